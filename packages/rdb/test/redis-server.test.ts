/**
 * Against a real redis-server 7.0 (RDB 10): its DUMP payloads and full RDB snapshots must decode
 * to what its own commands report, and what the writer produces must load back into it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildRdb,
  dumpPayloadFromRaw,
  encodeDumpPayload,
  formatStreamId,
  isTypeLoadable,
  parseDumpPayload,
  parseRdbFile,
} from '@georep/rdb';
import type { RdbKeyRecord, RdbRecord, RdbValue } from '@georep/rdb';
import { RespError } from './helpers/resp-client.js';
import { fixturesDir, haveFixtures } from './helpers/fixtures.js';
import { startRedis } from './helpers/redis-server.js';
import { binary, sampleStream, sampleValues } from './helpers/values.js';
import type { RespClient, RespReply } from './helpers/resp-client.js';
import type { TestRedis } from './helpers/redis-server.js';

const run = promisify(execFile);
/** Redis 7.0's RDB version, used as the DUMP footer for payloads sent to it. */
const TARGET_VERSION = 10;

const hex = (b: Buffer): string => b.toString('hex');
const asBuffers = (r: RespReply): Buffer[] => (r as Buffer[]) ?? [];

/** A value as comparable plain data; sets/zsets/hashes sorted since their order is not defined. */
type Comparable = { type: string; value: unknown };

function fromDecoded(v: RdbValue): Comparable {
  switch (v.type) {
    case 'string':
      return { type: 'string', value: hex(v.value) };
    case 'list':
      return { type: 'list', value: v.value.map(hex) };
    case 'set':
      return { type: 'set', value: v.value.map(hex).sort() };
    case 'zset':
      return {
        type: 'zset',
        value: v.value
          .map((z) => [hex(z.member), z.score])
          .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      };
    case 'hash':
      return { type: 'hash', value: v.value.map((h) => [hex(h.field), hex(h.value)]).sort() };
    case 'stream':
      return {
        type: 'stream',
        value: v.value.entries
          .filter((e) => !e.deleted)
          .map((e) => ({
            id: formatStreamId(e.id),
            fields: e.fields.map(([f, x]) => [hex(f), hex(x)]),
          })),
      };
    case 'module':
      return { type: 'module', value: hex(v.value.body) };
  }
}

function parseScore(s: string): number {
  if (s === 'inf' || s === '+inf') return Number.POSITIVE_INFINITY;
  if (s === '-inf') return Number.NEGATIVE_INFINITY;
  return Number(s);
}

/** Reads a key through ordinary commands, into the same shape as {@link fromDecoded}. */
async function readViaCommands(c: RespClient, key: string | Buffer): Promise<Comparable> {
  const type = String(await c.call('TYPE', key));
  switch (type) {
    case 'string':
      return { type, value: hex((await c.call('GET', key)) as Buffer) };
    case 'list':
      return { type, value: asBuffers(await c.call('LRANGE', key, 0, -1)).map(hex) };
    case 'set':
      return {
        type,
        value: asBuffers(await c.call('SMEMBERS', key))
          .map(hex)
          .sort(),
      };
    case 'zset': {
      const flat = asBuffers(await c.call('ZRANGE', key, 0, -1, 'WITHSCORES'));
      const pairs: Array<[string, number]> = [];
      for (let i = 0; i < flat.length; i += 2)
        pairs.push([hex(flat[i]!), parseScore(flat[i + 1]!.toString())]);
      return { type, value: pairs.sort((a, b) => a[0].localeCompare(b[0])) };
    }
    case 'hash': {
      const flat = asBuffers(await c.call('HGETALL', key));
      const pairs: string[][] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push([hex(flat[i]!), hex(flat[i + 1]!)]);
      return { type, value: pairs.sort() };
    }
    case 'stream': {
      const entries = (await c.call('XRANGE', key, '-', '+')) as Array<[Buffer, Buffer[]]>;
      return {
        type,
        value: entries.map(([id, flat]) => {
          const fields: string[][] = [];
          for (let i = 0; i < flat.length; i += 2) fields.push([hex(flat[i]!), hex(flat[i + 1]!)]);
          return { id: id.toString(), fields };
        }),
      };
    }
    default:
      throw new Error(`unexpected type ${type} for ${String(key)}`);
  }
}

async function populate(c: RespClient): Promise<void> {
  await c.call('SET', 's:int', '12345');
  await c.call('SET', 's:raw', 'hello world');
  await c.call('SET', 's:long', 'ab'.repeat(600));
  await c.call('SET', 's:bin', binary(5000, 2));
  await c.call('RPUSH', 'l:small', 'a', 'b', '1', '-70000', '');
  await c.call('RPUSH', 'l:big', ...Array.from({ length: 3000 }, (_, i) => `element-${i}`));
  await c.call('RPUSH', 'l:wide', binary(20_000, 5), 'tail');
  await c.call('SADD', 'set:int', '1', '2', '-3', '100000');
  await c.call('SADD', 'set:str', 'x', 'y', 'z');
  await c.call('SADD', 'set:big', ...Array.from({ length: 700 }, (_, i) => `${i}`));
  await c.call('ZADD', 'z:small', '1', 'a', '2.5', 'b', '-inf', 'c', '+inf', 'd');
  await c.call(
    'ZADD',
    'z:big',
    ...Array.from({ length: 300 }, (_, i) => [String(i / 3), `m${i}`]).flat(),
  );
  await c.call('HSET', 'h:small', 'f', 'v', 'n', '7');
  await c.call(
    'HSET',
    'h:big',
    ...Array.from({ length: 700 }, (_, i) => [`f${i}`, `v${i}`]).flat(),
  );
  await c.call('XADD', 'st', '1-1', 'a', '1', 'b', '2');
  await c.call('XADD', 'st', '1-2', 'a', '3', 'b', '4');
  await c.call('XADD', 'st', '2-0', 'c', '5');
  await c.call('XADD', 'st', '3-0', 'a', '6', 'b', '7');
  await c.call('XGROUP', 'CREATE', 'st', 'g1', '0');
  await c.call('XREADGROUP', 'GROUP', 'g1', 'alice', 'COUNT', '2', 'STREAMS', 'st', '>');
  await c.call('XREADGROUP', 'GROUP', 'g1', 'bob', 'COUNT', '1', 'STREAMS', 'st', '>');
  await c.call('XACK', 'st', 'g1', '1-1');
  await c.call('XDEL', 'st', '3-0');
}

describe('redis-server 7.0', () => {
  let redis: TestRedis;
  let c: RespClient;

  beforeAll(async () => {
    // No diskless-sync delay, so that redis-cli --rdb does not wait 5 s for other replicas.
    redis = await startRedis({ extraArgs: ['--repl-diskless-sync-delay', '0'] });
    c = redis.client;
    await populate(c);
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('redis - DUMP payloads of every type decode to what commands return', async () => {
    const keys = asBuffers(await c.call('KEYS', '*'))
      .map(String)
      .sort();
    expect(keys.length).toBe(15);
    for (const key of keys) {
      const payload = (await c.call('DUMP', key)) as Buffer;
      const parsed = parseDumpPayload(payload);
      expect(parsed.version, key).toBe(TARGET_VERSION);
      expect(fromDecoded(parsed), key).toEqual(await readViaCommands(c, key));
    }
  });

  it('redis - DUMP of a stream carries its groups, PEL and consumers', async () => {
    const parsed = parseDumpPayload((await c.call('DUMP', 'st')) as Buffer);
    if (parsed.type !== 'stream') throw new Error('expected a stream');
    const s = parsed.value;
    expect(parsed.typeCode).toBe(19);
    expect(s.length).toBe(Number(await c.call('XLEN', 'st')));
    expect(s.entries.filter((e) => e.deleted).map((e) => formatStreamId(e.id))).toEqual(['3-0']);
    expect(formatStreamId(s.lastId)).toBe('3-0');
    expect(formatStreamId(s.maxDeletedId!)).toBe('3-0');
    expect(s.entriesAdded).toBe(4n);
    const g = s.groups[0]!;
    expect(g.name.toString()).toBe('g1');
    // XPENDING reports what is still unacknowledged: 1-2 (alice) and 2-0 (bob).
    const pending = (await c.call('XPENDING', 'st', 'g1', '-', '+', '10')) as Array<
      [Buffer, Buffer, number, number]
    >;
    expect(g.pending.map((p) => [formatStreamId(p.id), p.deliveryCount])).toEqual(
      pending.map(([id, , , count]) => [id.toString(), count]),
    );
    const owners = Object.fromEntries(
      g.consumers.map((x) => [x.name.toString(), x.pending.map(formatStreamId)]),
    );
    expect(owners).toEqual(
      Object.fromEntries(pending.map(([id, who]) => [who.toString(), [id.toString()]])),
    );
  });

  it('redis - RESTORE of writer payloads reads back the same through commands', async () => {
    const values: Record<string, RdbValue> = {
      ...sampleValues(),
      stream: { type: 'stream', value: sampleStream() },
    };
    for (const [name, value] of Object.entries(values)) {
      const key = `restored:${name}`;
      const reply = await c.send(
        'RESTORE',
        key,
        0,
        encodeDumpPayload(value, { version: TARGET_VERSION }),
      );
      expect(reply instanceof RespError ? reply.message : reply, name).toBe('OK');
      expect(await readViaCommands(c, key), name).toEqual(fromDecoded(value));
    }
    // The stream's consumer group state survives too.
    const groups = (await c.call('XINFO', 'GROUPS', 'restored:stream')) as RespReply[][];
    expect(groups.map((g) => String(g[1])).sort()).toEqual(['empty', 'g1']);
    expect(Number(await c.call('XLEN', 'restored:stream'))).toBe(250);
  });

  it.runIf(haveFixtures)(
    'redis - raw values of old encodings from fixtures RESTORE as decoded',
    async () => {
      const dir = path.join(fixturesDir, 'hdt3213');
      let restored = 0;
      for (const file of (await readdir(dir)).filter((f) => f.endsWith('.rdb'))) {
        for await (const r of parseRdbFile(path.join(dir, file))) {
          if (r.kind !== 'key' || !isTypeLoadable(r.typeCode, TARGET_VERSION)) continue;
          // Its zipmap header byte is 255, which Redis 7.0's integrity check refuses ("Bad data
          // format") although older servers and other parsers read it.
          if (file === 'zipmap_big_len.rdb') continue;
          const key = Buffer.concat([Buffer.from(`fx:${file}:`), r.key]);
          const reply = await c.send(
            'RESTORE',
            key,
            0,
            dumpPayloadFromRaw(r.raw, TARGET_VERSION),
            'REPLACE',
          );
          expect(reply instanceof RespError ? `${file}: ${reply.message}` : reply).toBe('OK');
          expect(await readViaCommands(c, key), `${file} ${String(r.key)}`).toEqual(fromDecoded(r));
          restored++;
        }
      }
      expect(restored).toBeGreaterThan(100);
    },
  );

  it('redis - a full RDB from redis-cli --rdb parses with checksum verified', async () => {
    const file = path.join(redis.dir, 'snapshot.rdb');
    await run('redis-cli', ['-p', String(redis.port), '--rdb', file]);
    const records: RdbRecord[] = [];
    for await (const r of parseRdbFile(file)) records.push(r);
    expect(records[0]).toMatchObject({ kind: 'header', magic: 'REDIS', version: TARGET_VERSION });
    expect(records.find((r) => r.kind === 'aux' && r.name === 'redis-ver')).toBeDefined();
    const keys = records.filter((r): r is RdbKeyRecord => r.kind === 'key');
    expect(keys.length).toBe(Number(await c.call('DBSIZE')));
    for (const k of keys.filter((x) => !x.key.toString().startsWith('fx:'))) {
      expect(fromDecoded(k), String(k.key)).toEqual(await readViaCommands(c, k.key));
    }
    expect(records.at(-1)).toMatchObject({ kind: 'eof', checksum: 'verified' });
  });

  it('redis - an RDB written by the writer loads into a fresh server', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'georep-rdb-load-'));
    const values: Record<string, RdbValue> = {
      ...sampleValues(),
      stream: { type: 'stream', value: sampleStream() },
    };
    const expireAtMs = Date.now() + 3_600_000;
    await writeFile(
      path.join(dir, 'dump.rdb'),
      buildRdb({
        version: TARGET_VERSION,
        aux: { 'redis-ver': '7.0.15', 'redis-bits': '64' },
        functions: [
          "#!lua name=georeplib\nredis.register_function('georep_f', function() return 42 end)",
        ],
        databases: [
          { db: 0, keys: Object.entries(values).map(([key, value]) => ({ key, value })) },
          {
            db: 3,
            keys: [
              {
                key: 'expiring',
                value: { type: 'string', value: Buffer.from('soon') },
                expireAtMs,
              },
            ],
          },
        ],
      }),
    );
    const loaded = await startRedis({ dir, extraArgs: ['--dbfilename', 'dump.rdb'] });
    try {
      const lc = loaded.client;
      expect(Number(await lc.call('DBSIZE'))).toBe(Object.keys(values).length);
      for (const [key, value] of Object.entries(values)) {
        expect(await readViaCommands(lc, key), key).toEqual(fromDecoded(value));
      }
      expect(await lc.call('FCALL', 'georep_f', 0)).toBe(42);
      await lc.call('SELECT', 3);
      expect(String(await lc.call('GET', 'expiring'))).toBe('soon');
      expect(Number(await lc.call('PEXPIRETIME', 'expiring'))).toBe(expireAtMs);
    } finally {
      await loaded.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
