/**
 * What the Buffers of decoded records are: ordinary Buffers (what `deepStrictEqual` and
 * prototype checks see), their own memory (valid after the parser's input is reused), strings
 * stored verbatim shared with the record's `raw`, and integers of every width turned into the
 * same decimal text whichever compact encoding held them.
 */
import { deepStrictEqual } from 'node:assert';
import { describe, expect, it } from 'vitest';
import { buildRdb, parseDumpPayload, parseRdb, encodeDumpPayload } from '@georep/rdb';
import type { RdbKeyRecord, RdbValue } from '@georep/rdb';
import { sampleValues } from './helpers/values.js';

const b = (s: string): Buffer => Buffer.from(s);

/** Integers at every width boundary of intsets, ziplists, listpacks and RDB int strings. */
const INTEGERS = [
  '0', '1', '-1', '12', '13', '127', '128', '-128', '-129', '4095', '4096', '-4096', '-4097',
  '32767', '32768', '-32768', '-32769', '8388607', '8388608', '-8388608', '-8388609',
  '2147483647', '2147483648', '-2147483648', '-2147483649', '4294967295', '4294967296',
  '9007199254740991', '9007199254740993', '-9223372036854775808', '9223372036854775807',
]; // prettier-ignore

function buffersOf(value: unknown, out: Buffer[] = []): Buffer[] {
  if (Buffer.isBuffer(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) buffersOf(v, out);
  else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) buffersOf(v, out);
  }
  return out;
}

/** Sets in a stable order (intsets store them sorted). */
function normalized(v: RdbValue): RdbValue {
  return v.type === 'set'
    ? { type: 'set', value: [...v.value].sort((x, y) => Buffer.compare(x, y)) }
    : v;
}

async function decodedKeys(file: Buffer, chunk: number): Promise<RdbKeyRecord[]> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < file.length; i += chunk)
    chunks.push(Buffer.from(file.subarray(i, i + chunk)));
  const keys: RdbKeyRecord[] = [];
  for await (const r of parseRdb(chunks)) if (r.kind === 'key') keys.push(r);
  for (const c of chunks) c.fill(0xee);
  return keys;
}

function fileOf(version: number, values: Record<string, RdbValue>, compress = true): Buffer {
  return buildRdb({
    version,
    compress,
    databases: [{ db: 0, keys: Object.entries(values).map(([key, value]) => ({ key, value })) }],
  });
}

describe('decoded buffers', () => {
  it('decoded buffers - every key, raw and value Buffer is a plain Buffer that outlives the input', async () => {
    for (const version of [6, 9, 10, 11, 12]) {
      const values = sampleValues();
      const keys = await decodedKeys(fileOf(version, values), 333);
      expect(keys.length).toBe(Object.keys(values).length);
      for (const rec of keys) {
        for (const buf of [rec.key, rec.raw, ...buffersOf(rec.value)]) {
          expect(Object.getPrototypeOf(buf)).toBe(Buffer.prototype);
        }
        // node:assert compares prototypes too: decoded values equal freshly made Buffers.
        deepStrictEqual(
          normalized({ type: rec.type, value: rec.value } as RdbValue),
          normalized(values[rec.key.toString()]!),
        );
      }
    }
  });

  it('decoded buffers - strings stored verbatim are views of the record raw', async () => {
    const field = b('field-stored-verbatim');
    const values: Record<string, RdbValue> = {
      hash: { type: 'hash', value: [{ field, value: b('v') }] },
      list: { type: 'list', value: [b('a'), field] },
      string: { type: 'string', value: field },
    };
    for (const version of [6, 10, 12]) {
      for (const rec of await decodedKeys(fileOf(version, values, false), 7)) {
        const inner = buffersOf(rec.value).filter((x) => x.equals(field));
        expect(inner.length).toBe(1);
        expect(inner[0]!.buffer).toBe(rec.raw.buffer);
        expect(inner[0]!.byteOffset).toBeGreaterThan(rec.raw.byteOffset);
        expect(inner[0]!.byteOffset + field.length).toBeLessThanOrEqual(
          rec.raw.byteOffset + rec.raw.length,
        );
      }
    }
  });

  it('decoded buffers - integers of every width decode to their decimal text in every encoding', async () => {
    const list = INTEGERS.map(b);
    const values: Record<string, RdbValue> = {
      list: { type: 'list', value: list },
      set: { type: 'set', value: list },
      hash: { type: 'hash', value: list.map((v, i) => ({ field: b(`f${i}`), value: v })) },
      ...Object.fromEntries(
        INTEGERS.map((v, i): [string, RdbValue] => [`string${i}`, { type: 'string', value: b(v) }]),
      ),
    };
    // Versions 6 (ziplists, intsets), 9 (quicklist of ziplists) and 10+ (listpacks).
    for (const version of [6, 9, 10, 11, 12]) {
      for (const rec of await decodedKeys(fileOf(version, values), 4096)) {
        const expected = values[rec.key.toString()]!;
        const sort = (xs: Buffer[]): string[] => xs.map(String).sort();
        if (rec.type === 'set' && expected.type === 'set') {
          expect(sort(rec.value)).toEqual(sort(expected.value));
        } else {
          expect({ type: rec.type, value: rec.value }).toEqual(expected);
        }
      }
      // DUMP payloads go through the same decoders, from a payload instead of a stream.
      for (const value of Object.values(values)) {
        const parsed = parseDumpPayload(encodeDumpPayload(value, { version }));
        expect(buffersOf(parsed.value).map(String).sort()).toEqual(
          buffersOf(value.value).map(String).sort(),
        );
      }
    }
  });
});
