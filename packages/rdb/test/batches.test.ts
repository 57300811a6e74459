/**
 * The batch API and the raw mode give the same records as `parseRdb` (minus decoded values in raw
 * mode), records stay valid after the parser's input buffers are reused, and errors come after
 * the records that precede them. Also the bulk paths of CRC64 and LZF on unaligned and
 * overlapping input.
 */
import { describe, expect, it } from 'vitest';
import {
  buildRdb,
  crc64,
  lzfDecompress,
  parseRdb,
  parseRdbBatches,
  parseRdbFile,
  parseRdbFileBatches,
} from '@georep/rdb';
import type { ParseRdbOptions, RdbKeyRecord, RdbRawRecord, RdbRecord, RdbValue } from '@georep/rdb';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { binary, sampleStream, sampleValues } from './helpers/values.js';

function sampleFile(version: number, compress: boolean): Buffer {
  const values: Record<string, RdbValue> = { ...sampleValues() };
  if (version >= 9) values.stream = { type: 'stream', value: sampleStream() };
  return buildRdb({
    version,
    compress,
    aux: { 'redis-ver': '7.2.0' },
    databases: [
      {
        db: 0,
        keys: Object.entries(values).map(([key, value], i) => ({
          key,
          value,
          ...(i % 3 === 0 ? { expireAtMs: 2e12 + i } : {}),
        })),
      },
      { db: 5, keys: [{ key: 'last', value: { type: 'string', value: Buffer.from('v') } }] },
    ],
  });
}

/** Fresh copies of `buf` in `chunk`-byte pieces; `reuse` zeroes them all once parsing is done. */
function chunked(buf: Buffer, chunk: number): { chunks: Buffer[]; reuse: () => void } {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) chunks.push(Buffer.from(buf.subarray(i, i + chunk)));
  return { chunks, reuse: () => chunks.forEach((c) => c.fill(0)) };
}

async function viaRecords(
  buf: Buffer,
  chunk: number,
  options: ParseRdbOptions = {},
): Promise<{ records: unknown[]; error?: unknown }> {
  const records: unknown[] = [];
  try {
    for await (const r of parseRdb(chunked(buf, chunk).chunks, options)) records.push(r);
    return { records };
  } catch (error) {
    return { records, error };
  }
}

async function viaBatches(
  buf: Buffer,
  chunk: number,
  options: ParseRdbOptions = {},
): Promise<{ records: unknown[]; error?: unknown; batches: number }> {
  const records: unknown[] = [];
  let batches = 0;
  try {
    for await (const batch of parseRdbBatches(chunked(buf, chunk).chunks, options)) {
      expect(batch.length).toBeGreaterThan(0);
      batches++;
      records.push(...batch);
    }
    return { records, batches };
  } catch (error) {
    return { records, error, batches };
  }
}

describe('batches', () => {
  it('batches - flattened batches equal the records of parseRdb at any chunk size', async () => {
    for (const version of [10, 12]) {
      const file = sampleFile(version, true);
      const expected = (await viaRecords(file, 1 << 20)).records;
      expect(expected.at(-1)).toMatchObject({ kind: 'eof', checksum: 'verified' });
      for (const chunk of [1, 13, 4096, 1 << 20]) {
        const got = await viaBatches(file, chunk);
        expect(got.error).toBeUndefined();
        expect(got.records).toEqual(expected);
        expect((await viaRecords(file, chunk)).records).toEqual(expected);
      }
    }
  });

  it('batches - records stay valid after the input chunks are overwritten', async () => {
    const file = sampleFile(11, false);
    const expected = (await viaRecords(file, 1 << 20)).records;
    for (const chunk of [7, 5000]) {
      const { chunks, reuse } = chunked(file, chunk);
      const records: RdbRecord[] = [];
      for await (const batch of parseRdbBatches(chunks)) records.push(...batch);
      reuse();
      expect(records).toEqual(expected);
    }
  });

  it('batches - a truncated file yields the records before the problem, then the same error', async () => {
    const file = sampleFile(12, true);
    for (const cut of [9, 100, Math.floor(file.length / 2), file.length - 3]) {
      const a = await viaRecords(file.subarray(0, cut), 4096);
      const b = await viaBatches(file.subarray(0, cut), 4096);
      expect(a.error).toBeDefined();
      expect(b.error).toEqual(a.error);
      expect((b.error as { code: string }).code).toBe('rdb.truncated');
      expect((b.error as { offset: number }).offset).toBe((a.error as { offset: number }).offset);
      expect(b.records).toEqual(a.records);
    }
  });

  it('batches - parseRdbFileBatches and parseRdbFile read a file from disk', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'georep-rdb-batches-'));
    try {
      const file = path.join(dir, 'a.rdb');
      const buf = sampleFile(12, true);
      await writeFile(file, buf);
      const expected = (await viaRecords(buf, 1 << 20)).records;
      const fromBatches: RdbRecord[] = [];
      for await (const b of parseRdbFileBatches(file, { highWaterMark: 1000 })) {
        fromBatches.push(...b);
      }
      expect(fromBatches).toEqual(expected);
      const fromRecords: RdbRecord[] = [];
      for await (const r of parseRdbFile(file, { highWaterMark: 1000 })) fromRecords.push(r);
      expect(fromRecords).toEqual(expected);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('batches - stopping early closes the source', async () => {
    const file = sampleFile(10, true);
    let closed = false;
    async function* source(): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; i < file.length; i += 64) yield file.subarray(i, i + 64);
      } finally {
        closed = true;
      }
    }
    for await (const r of parseRdb(source())) if (r.kind === 'key') break;
    expect(closed).toBe(true);
  });
});

describe('raw mode', () => {
  it('raw mode - key records are the decoded ones without value, with the same raw bytes', async () => {
    for (const [version, compress] of [
      [7, true],
      [9, false],
      [10, true],
      [11, true],
      [12, true],
      [80, true],
    ] as const) {
      const file = sampleFile(version, compress);
      const decoded = (await viaRecords(file, 1 << 20)).records as RdbRecord[];
      for (const chunk of [3, 4096]) {
        const raw: RdbRawRecord[] = [];
        for await (const b of parseRdbBatches(chunked(file, chunk).chunks, {
          decodeValues: false,
        })) {
          raw.push(...b);
        }
        expect(raw.length).toBe(decoded.length);
        raw.forEach((r, i) => {
          const d = decoded[i]!;
          if (d.kind !== 'key') {
            expect(r).toEqual(d);
            return;
          }
          const { value: _value, ...withoutValue } = d;
          expect(r).toEqual(withoutValue);
          expect('value' in r).toBe(false);
        });
      }
    }
  });

  it('raw mode - checks framing only: a broken listpack passes, the checksum catches it', async () => {
    const value: RdbValue = { type: 'list', value: [Buffer.from('a'), Buffer.from('some value')] };
    const file = buildRdb({
      version: 10,
      compress: false,
      databases: [{ db: 0, keys: [{ key: 'l', value }] }],
    });
    const records = (await viaRecords(file, 1 << 20)).records as RdbRecord[];
    const rec = records.find((r): r is RdbKeyRecord => r.kind === 'key')!;
    expect(rec.encoding).toBe('quicklist2');
    // Body: node count, container (packed), string header, then the listpack, which starts with
    // its total size.
    const listpackAt = file.indexOf(rec.raw.subarray(1)) + 3;
    const damaged = Buffer.from(file);
    damaged[listpackAt]! ^= 0x01;

    const decodedErr = (await viaRecords(damaged, 1 << 20, { verifyChecksum: false })).error;
    expect(decodedErr).toMatchObject({ code: 'rdb.corrupt', offset: listpackAt });
    const raw = await viaRecords(damaged, 1 << 20, { verifyChecksum: false, decodeValues: false });
    expect(raw.error).toBeUndefined();
    expect(raw.records.find((r) => (r as RdbRecord).kind === 'key')).toMatchObject({
      type: 'list',
      encoding: 'quicklist2',
    });
    const verified = await viaRecords(damaged, 1 << 20, { decodeValues: false });
    expect(verified.error).toMatchObject({ code: 'rdb.bad-checksum' });
  });

  it('raw mode - a framing error is reported as in decoded mode', async () => {
    const file = sampleFile(10, true);
    for (const cut of [50, Math.floor(file.length / 3)]) {
      const a = await viaRecords(file.subarray(0, cut), 100);
      const b = await viaRecords(file.subarray(0, cut), 100, { decodeValues: false });
      expect(b.error).toEqual(a.error);
      expect((b.error as { code: string }).code).toBe('rdb.truncated');
    }
  });
});

describe('bulk paths', () => {
  /** Bit-at-a-time reference (reflected Jones, init 0, no final xor). */
  function referenceCrc64(bytes: Uint8Array): bigint {
    const poly = 0x95ac9329ac4bc9b5n;
    let crc = 0n;
    for (const b of bytes) {
      crc ^= BigInt(b);
      for (let i = 0; i < 8; i++) crc = (crc & 1n) === 1n ? (crc >> 1n) ^ poly : crc >> 1n;
    }
    return crc;
  }

  it('crc64 - the word loop agrees with the reference at every alignment and length', () => {
    const data = binary(700, 3);
    for (let start = 0; start < 8; start++) {
      for (const len of [0, 1, 15, 63, 64, 65, 79, 80, 81, 200, 611]) {
        const slice = data.subarray(start, start + len);
        expect(crc64(slice), `start ${start} len ${len}`).toBe(referenceCrc64(slice));
      }
    }
  });

  it('lzf - long back-references at every distance decode like the byte-by-byte definition', () => {
    /** The format's definition, one byte at a time. */
    function reference(block: Uint8Array, size: number): Buffer {
      const out = Buffer.alloc(size);
      let ip = 0;
      let op = 0;
      while (ip < block.length) {
        const ctrl = block[ip++]!;
        if (ctrl < 32) {
          for (let k = 0; k <= ctrl; k++) out[op++] = block[ip++]!;
          continue;
        }
        let len = ctrl >> 5;
        if (len === 7) len += block[ip++]!;
        const ref = op - ((ctrl & 0x1f) << 8) - block[ip++]! - 1;
        for (let k = 0; k < len + 2; k++) out[op++] = out[ref + k]!;
      }
      return out;
    }
    const literal = binary(300, 11);
    for (const distance of [1, 2, 3, 7, 15, 16, 17, 31, 32, 100, 255, 264, 300]) {
      for (const len of [3, 15, 16, 17, 40, 100, 264]) {
        // `distance` literals (in runs of at most 32), then one back-reference of `len` bytes.
        const parts: number[] = [];
        for (let i = 0; i < distance; i += 32) {
          const run = literal.subarray(i, Math.min(distance, i + 32));
          parts.push(run.length - 1, ...run);
        }
        const d = distance - 1;
        if (len - 2 < 7) parts.push(((len - 2) << 5) | (d >> 8), d & 0xff);
        else parts.push((7 << 5) | (d >> 8), len - 2 - 7, d & 0xff);
        const block = Buffer.from(parts);
        const size = distance + len;
        expect(lzfDecompress(block, size), `distance ${distance} len ${len}`).toEqual(
          reference(block, size),
        );
      }
    }
  });
});
