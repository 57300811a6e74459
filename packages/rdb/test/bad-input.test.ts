/**
 * Damaged input must end in a typed `rdb.*` error with a byte offset: never a crash with a
 * foreign error, never a hang, never a silently wrong result when a checksum is present.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GeorepError } from '@georep/core';
import { describe, expect, it } from 'vitest';
import {
  RdbError,
  buildRdb,
  dumpPayloadFromRaw,
  encodeDumpPayload,
  parseDumpPayload,
  parseRdb,
} from '@georep/rdb';
import type { ParseRdbOptions, RdbValue } from '@georep/rdb';
import { fixturesDir, haveFixtures } from './helpers/fixtures.js';
import { sampleStream, sampleValues } from './helpers/values.js';

/** Parses `buf` fed in `chunk`-byte pieces; resolves with the error thrown, or undefined. */
async function parseError(
  buf: Buffer,
  options: ParseRdbOptions = {},
  chunk = 4096,
): Promise<unknown> {
  function* chunks(): Generator<Buffer> {
    for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
  }
  try {
    for await (const _ of parseRdb(chunks(), options)) {
      // drain
    }
    return undefined;
  } catch (err) {
    return err;
  }
}

function expectRdbError(err: unknown, inputLength: number): RdbError {
  expect(err).toBeInstanceOf(GeorepError);
  expect(err).toBeInstanceOf(RdbError);
  const e = err as RdbError;
  expect(e.code).toMatch(/^rdb\./);
  expect(Number.isInteger(e.offset)).toBe(true);
  expect(e.offset).toBeGreaterThanOrEqual(0);
  expect(e.offset).toBeLessThanOrEqual(inputLength);
  expect(e.details.offset).toBe(e.offset);
  return e;
}

function sampleFile(): Buffer {
  const values: Record<string, RdbValue> = {
    ...sampleValues(),
    stream: { type: 'stream', value: sampleStream() },
  };
  return buildRdb({
    version: 11,
    aux: { 'redis-ver': '7.2.0' },
    databases: [
      {
        db: 0,
        keys: Object.entries(values).map(([key, value], i) => ({
          key,
          value,
          expireAtMs: 2e12 + i,
        })),
      },
    ],
  });
}

let seed = 42;
function rand(n: number): number {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed % n;
}

describe('bad input', () => {
  it('bad input - every cut point of a generated file gives rdb.truncated with an offset', async () => {
    const file = sampleFile();
    const cuts = new Set<number>();
    for (let i = 0; i < 64; i++) cuts.add(i);
    for (let i = file.length - 64; i < file.length; i++) cuts.add(i);
    while (cuts.size < 700) cuts.add(rand(file.length));
    for (const cut of cuts) {
      const err = await parseError(file.subarray(0, cut), {}, 1 + (cut % 5000));
      const e = expectRdbError(err, cut);
      expect(e.code, `cut at ${cut}`).toBe('rdb.truncated');
    }
  });

  it.runIf(haveFixtures)(
    'bad input - every cut point of small fixtures gives rdb.truncated',
    async () => {
      for (const name of [
        'hash_with_hfe',
        'stream_listoacks_3',
        'listpack',
        'zipmap_that_compresses_easily',
        'function',
      ]) {
        const file = readFileSync(path.join(fixturesDir, 'hdt3213', `${name}.rdb`));
        for (let cut = 0; cut < file.length; cut++) {
          const e = expectRdbError(await parseError(file.subarray(0, cut)), cut);
          expect(e.code, `${name} cut at ${cut}`).toBe('rdb.truncated');
        }
      }
    },
  );

  it('bad input - single bit flips are always detected (checksum or typed error)', async () => {
    const file = sampleFile();
    const codes = new Set<string>();
    for (let n = 0; n < 400; n++) {
      const damaged = Buffer.from(file);
      const pos = n < 100 ? n : rand(file.length);
      damaged[pos]! ^= 1 << rand(8);
      const err = await parseError(damaged);
      if (err === undefined) {
        // The one blind spot: a flip in the version digits that turns it below 5, where files
        // have no checksum (the parser stops at EOF and never looks at the CRC bytes).
        expect(pos).toBeGreaterThanOrEqual(5);
        expect(pos).toBeLessThan(9);
        expect(Number(damaged.toString('latin1', 5, 9))).toBeLessThan(5);
        continue;
      }
      codes.add(expectRdbError(err, damaged.length).code);
    }
    expect(codes).toContain('rdb.bad-checksum');
    expect(codes).toContain('rdb.bad-magic');
  });

  it('bad input - with verification off, damaged files still fail only with typed errors', async () => {
    const file = sampleFile();
    for (let n = 0; n < 1500; n++) {
      const damaged = Buffer.from(file);
      for (let k = 1 + rand(3); k > 0; k--) damaged[9 + rand(file.length - 9)]! ^= 1 << rand(8);
      const err = await parseError(damaged, { verifyChecksum: false, maxRecordBytes: 1 << 20 });
      if (err !== undefined) expectRdbError(err, damaged.length);
    }
  });

  it('bad input - random garbage after a valid header ends in a typed error or EOF, never hangs', async () => {
    for (let n = 0; n < 500; n++) {
      const garbage = Buffer.alloc(1 + rand(2000));
      for (let i = 0; i < garbage.length; i++) garbage[i] = rand(256);
      const buf = Buffer.concat([Buffer.from('REDIS0011'), garbage]);
      const err = await parseError(buf, { maxRecordBytes: 1 << 20 }, 1 + rand(100));
      if (err !== undefined) expectRdbError(err, buf.length);
    }
  });

  it('bad input - header problems have their own codes', async () => {
    expect(expectRdbError(await parseError(Buffer.from('RADIS0011\xff')), 10).code).toBe(
      'rdb.bad-magic',
    );
    expect(expectRdbError(await parseError(Buffer.from('REDIS0013\xff')), 10).code).toBe(
      'rdb.unsupported-version',
    );
    expect(expectRdbError(await parseError(Buffer.from('VALKEY011\xff')), 10).code).toBe(
      'rdb.unsupported-version',
    );
    expect(expectRdbError(await parseError(Buffer.from('REDIS00x1\xff')), 10).code).toBe(
      'rdb.bad-magic',
    );
    expect(expectRdbError(await parseError(Buffer.alloc(0)), 0).code).toBe('rdb.truncated');
  });

  it('bad input - unknown type bytes and opcodes give rdb.unknown-type at their offset', async () => {
    for (const type of [6, 8, 26, 0xf3, 0xf6]) {
      const buf = Buffer.concat([
        Buffer.from('REDIS0011'),
        Buffer.from([0xfe, 0x00, type, 0x01, 0x61, 0x00]),
      ]);
      const e = expectRdbError(await parseError(buf), buf.length);
      expect(e.code, `type ${type}`).toBe('rdb.unknown-type');
      expect(e.offset).toBe(11);
    }
    // Type 24 is Redis-only: a Valkey file cannot contain it.
    const valkey = Buffer.concat([Buffer.from('VALKEY080'), Buffer.from([24, 0x01, 0x61])]);
    expect(expectRdbError(await parseError(valkey), valkey.length).code).toBe('rdb.unknown-type');
  });

  it('bad input - a huge announced length is refused once past maxRecordBytes', async () => {
    // A string claiming 2^32-1 bytes: the parser must not try to buffer the rest of the world.
    const buf = Buffer.concat([
      Buffer.from('REDIS0011'),
      Buffer.from([0x00, 0x01, 0x61, 0x80, 0xff, 0xff, 0xff, 0xff]),
      Buffer.alloc(5000),
    ]);
    async function* endless(): AsyncGenerator<Buffer> {
      yield buf;
      for (;;) yield Buffer.alloc(64 * 1024);
    }
    let err: unknown;
    try {
      for await (const _ of parseRdb(endless(), { maxRecordBytes: 1 << 20 })) {
        // drain
      }
    } catch (e) {
      err = e;
    }
    expect(expectRdbError(err, Number.MAX_SAFE_INTEGER).code).toBe('rdb.record-too-large');
  });

  it('bad input - DUMP payloads: short, bad CRC, trailing or missing body bytes', () => {
    const payload = encodeDumpPayload(
      { type: 'list', value: [Buffer.from('a'), Buffer.from('b')] },
      { version: 10 },
    );
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
        return undefined;
      } catch (err) {
        expect(err).toBeInstanceOf(RdbError);
        return (err as RdbError).code;
      }
    };
    expect(code(() => parseDumpPayload(payload.subarray(0, 5)))).toBe('rdb.truncated');
    const flipped = Buffer.from(payload);
    flipped[2]! ^= 0x10;
    expect(code(() => parseDumpPayload(flipped))).toBe('rdb.bad-checksum');
    // Valid CRCs over a body with one byte too many / too few.
    const raw = payload.subarray(0, payload.length - 10);
    expect(
      code(() => parseDumpPayload(dumpPayloadFromRaw(Buffer.concat([raw, Buffer.from([0])]), 10))),
    ).toBe('rdb.corrupt');
    expect(
      code(() => parseDumpPayload(dumpPayloadFromRaw(raw.subarray(0, raw.length - 1), 10))),
    ).toBe('rdb.truncated');
  });
});
