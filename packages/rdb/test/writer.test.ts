import { describe, expect, it } from 'vitest';
import {
  RdbUnencodableError,
  RdbWriter,
  buildRdb,
  dumpPayloadFromRaw,
  encodeDumpPayload,
  encodeModuleId,
  parseDumpPayload,
  parseRdb,
} from '@georep/rdb';
import type { RdbKeyRecord, RdbRecord, RdbValue, StreamValue } from '@georep/rdb';
import { sampleStream, sampleValues } from './helpers/values.js';

async function collect(buf: Buffer, chunk = 7): Promise<RdbRecord[]> {
  // Small, odd-sized chunks so that every record straddles chunk boundaries.
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
  }
  const out: RdbRecord[] = [];
  for await (const r of parseRdb(chunks())) out.push(r);
  return out;
}

/** Order-insensitive where Redis types are unordered (sets); everything else as is. */
function normalize(v: RdbValue): unknown {
  if (v.type === 'string') return { type: v.type, value: v.value };
  if (v.type === 'set') return { type: 'set', value: v.value.map((m) => m.toString('hex')).sort() };
  if (v.type === 'stream') {
    return {
      type: 'stream',
      value: { ...v.value, entries: v.value.entries.filter((e) => !e.deleted) },
    };
  }
  return { type: v.type, value: v.value };
}

/** What a stream keeps when stored in an RDB `version` file (older types drop metadata). */
function streamForVersion(stream: StreamValue, version: number): StreamValue {
  if (version >= 11) return stream;
  const groups = stream.groups.map((g) => ({
    ...g,
    consumers: g.consumers.map(({ activeTime: _, ...c }) => c),
  }));
  if (version === 10) return { ...stream, groups };
  const { firstId: _f, maxDeletedId: _m, entriesAdded: _e, ...rest } = stream;
  return { ...rest, groups: groups.map(({ entriesRead: _r, ...g }) => g) };
}

const ALL_VERSIONS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 80];

describe('writer', () => {
  it.each(ALL_VERSIONS)(
    'writer - RDB %i file round trips every value type it can encode',
    async (version) => {
      const values = sampleValues();
      if (version >= 9) values.stream = { type: 'stream', value: sampleStream() };
      if (version >= 8) {
        values.module = {
          type: 'module',
          value: {
            moduleId: encodeModuleId('test-type', 3),
            moduleName: 'test-type',
            encodingVersion: 3,
            // UINT 7, STRING "hi", DOUBLE 1.5, EOF
            body: Buffer.from('02070502686904000000000000f83f00', 'hex'),
          },
        };
      }
      const names = Object.keys(values);
      const expected = { ...values };
      if (version >= 9)
        expected.stream = { type: 'stream', value: streamForVersion(sampleStream(), version) };
      const file = buildRdb({
        version,
        ...(version >= 7 ? { aux: { 'redis-ver': '7.0.15', 'redis-bits': '64' } } : {}),
        ...(version >= 10
          ? { functions: ['#!lua name=lib\nredis.register_function("f", function() return 1 end)'] }
          : {}),
        databases: [
          {
            db: 0,
            keys: names.map((key, i) => ({
              key,
              value: values[key]!,
              ...(i % 3 === 0 ? { expireAtMs: 2000000000000 + i * 1000 } : {}),
              ...(i % 4 === 1 ? { idleSeconds: 100 + i } : {}),
              ...(i % 4 === 2 ? { lfuFreq: i } : {}),
            })),
          },
          {
            db: 5,
            keys: [{ key: 'other-db', value: { type: 'string', value: Buffer.from('x') } }],
          },
        ],
      });
      const records = await collect(file);
      expect(records[0]).toMatchObject({
        kind: 'header',
        version,
        magic: version === 80 ? 'VALKEY' : 'REDIS',
      });
      const keys = records.filter((r): r is RdbKeyRecord => r.kind === 'key');
      expect(keys.map((k) => k.key.toString())).toEqual([...names, 'other-db']);
      keys.slice(0, names.length).forEach((k, i) => {
        expect(k.db).toBe(0);
        expect(normalize(k)).toEqual(normalize(expected[names[i]!]!));
        // Whole seconds, so RDB 1-2 (seconds only) keep them exactly too.
        expect(k.expireAtMs).toBe(i % 3 === 0 ? 2000000000000 + i * 1000 : undefined);
        expect(k.idleSeconds).toBe(version >= 9 && i % 4 === 1 ? 100 + i : undefined);
        expect(k.lfuFreq).toBe(version >= 9 && i % 4 === 2 ? i : undefined);
      });
      expect(keys.at(-1)?.db).toBe(5);
      if (version >= 7) expect(records.filter((r) => r.kind === 'aux')).toHaveLength(2);
      if (version >= 10) expect(records.filter((r) => r.kind === 'function')).toHaveLength(1);
      expect(records.at(-1)).toMatchObject({
        kind: 'eof',
        checksum: version >= 5 ? 'verified' : 'absent',
      });
    },
  );

  it('writer - chooses compact encodings for RDB 10 (quicklist2, intset, zset2)', async () => {
    const v = sampleValues();
    const records = await collect(
      buildRdb({
        version: 10,
        databases: [
          {
            db: 0,
            keys: ['list:big', 'set:intset', 'set:big-ints', 'zset:small', 'hash:small'].map(
              (key) => ({ key, value: v[key]! }),
            ),
          },
        ],
      }),
    );
    const codes = records.flatMap((r) => (r.kind === 'key' ? [r.typeCode] : []));
    expect(codes).toEqual([18, 11, 2, 5, 4]);
  });

  it('writer - hash field expirations use type 24 on Redis RDB 12 and 22 on Valkey 80', async () => {
    const hash: RdbValue = {
      type: 'hash',
      value: [
        { field: Buffer.from('a'), value: Buffer.from('1'), expireAtMs: 4102444800123 },
        { field: Buffer.from('b'), value: Buffer.from('2') },
        { field: Buffer.from('c'), value: Buffer.from('3'), expireAtMs: 4102444900000 },
      ],
    };
    for (const [version, code] of [
      [12, 24],
      [80, 22],
    ] as const) {
      const records = await collect(
        buildRdb({ version, databases: [{ db: 0, keys: [{ key: 'h', value: hash }] }] }),
      );
      const key = records.find((r): r is RdbKeyRecord => r.kind === 'key');
      expect(key?.typeCode).toBe(code);
      expect(key?.type === 'hash' ? key.value : undefined).toEqual(hash.value);
    }
    expect(() =>
      buildRdb({ version: 11, databases: [{ db: 0, keys: [{ key: 'h', value: hash }] }] }),
    ).toThrow(RdbUnencodableError);
  });

  it('writer - refuses what the target cannot represent', () => {
    expect(() => new RdbWriter({ version: 13 })).toThrow(RdbUnencodableError);
    expect(() => new RdbWriter({ version: 6 }).aux('a', 'b')).toThrow(RdbUnencodableError);
    expect(() =>
      encodeDumpPayload({ type: 'stream', value: sampleStream() }, { version: 8 }),
    ).toThrow(RdbUnencodableError);
    // A Redis 7.0 list (type 18) cannot be copied raw into an RDB 9 file.
    const raw = Buffer.from([18, 0]);
    expect(() => new RdbWriter({ version: 9 }).rawKey('k', raw)).toThrow(RdbUnencodableError);
  });

  it('writer - raw values from the parser are copied byte for byte', async () => {
    const v = sampleValues();
    const original = buildRdb({
      version: 11,
      databases: [
        {
          db: 0,
          keys: Object.entries(v).map(([key, value]) => ({
            key,
            value,
            expireAtMs: 4102444800000,
          })),
        },
      ],
    });
    const parsed = (await collect(original)).filter((r): r is RdbKeyRecord => r.kind === 'key');
    const w = new RdbWriter({ version: 11 });
    const copy = Buffer.concat([
      w.header(),
      w.selectDb(0),
      w.resizeDb(parsed.length, parsed.length),
      ...parsed.map((k) => w.rawKey(k.key, k.raw, { expireAtMs: k.expireAtMs! })),
      w.end(),
    ]);
    expect(copy).toEqual(original);
  });

  it('writer - a zero checksum is written when checksums are disabled and reported as such', async () => {
    const file = buildRdb({ version: 10, disableChecksum: true, databases: [] });
    expect(file.subarray(-8)).toEqual(Buffer.alloc(8));
    expect((await collect(file)).at(-1)).toMatchObject({ kind: 'eof', checksum: 'disabled' });
  });
});

describe('dump', () => {
  it('dump - payloads of every type parse back to the same value', () => {
    const values: Record<string, RdbValue> = {
      ...sampleValues(),
      stream: { type: 'stream', value: sampleStream() },
    };
    for (const [name, value] of Object.entries(values)) {
      const payload = encodeDumpPayload(value, { version: 11 });
      const parsed = parseDumpPayload(payload);
      expect(parsed.version, name).toBe(11);
      expect(normalize(parsed), name).toEqual(normalize(value));
      expect(dumpPayloadFromRaw(parsed.raw, 11)).toEqual(payload);
    }
  });

  it('dump - parses the redis.io RESTORE example (ziplist list, version 4)', () => {
    const payload = Buffer.from(
      '0a1717000000120000000300' +
        '00c00100' +
        '04c00200' +
        '04c00300' +
        'ff' +
        '0400' +
        '75233cc03b2ee9dd',
      'hex',
    );
    const parsed = parseDumpPayload(payload);
    expect(parsed).toMatchObject({ version: 4, typeCode: 10, encoding: 'ziplist', type: 'list' });
    expect(parsed.type === 'list' ? parsed.value.map(String) : []).toEqual(['1', '2', '3']);
  });

  it('dump - parses the redis-doc string example and a Redis 7.2 integer', () => {
    const hello = Buffer.concat([
      Buffer.from('0015', 'hex'),
      Buffer.from('hello, dumping world!'),
      Buffer.from('060045a05a82d872c1de', 'hex'),
    ]);
    expect(parseDumpPayload(hello)).toMatchObject({
      version: 6,
      type: 'string',
      value: Buffer.from('hello, dumping world!'),
    });
    const one = Buffer.from('00c0010b004fa75ac52c9ef875', 'hex');
    expect(parseDumpPayload(one)).toMatchObject({
      version: 11,
      type: 'string',
      value: Buffer.from('1'),
    });
  });

  it('dump - dumpPayloadFromRaw only changes the footer version', () => {
    const raw = Buffer.from('00c001', 'hex');
    const p6 = dumpPayloadFromRaw(raw, 6);
    const p10 = dumpPayloadFromRaw(raw, 10);
    expect(p6.subarray(0, 3)).toEqual(raw);
    expect(p6.readUInt16LE(3)).toBe(6);
    expect(parseDumpPayload(p10).version).toBe(10);
  });
});
