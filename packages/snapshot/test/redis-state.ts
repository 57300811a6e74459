/**
 * Test helpers: fill a real server with every type, and read a server's whole logical state
 * (type, value, expiry of every key) with plain commands, so two servers can be compared the way
 * a user would check them.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { parseAgentConfig, type RedisConfig } from '@georep/core';
import type { RedisServer } from '@georep/testkit';

/** A RedisConfig with defaults (no auth, no TLS) plus overrides. */
export const redisConfig = (redis: Record<string, unknown> = {}): RedisConfig =>
  parseAgentConfig({
    group: 'g',
    region: 'r',
    nats: { servers: ['nats://127.0.0.1:1'] },
    redis: { nodes: [{ host: '127.0.0.1', port: 1 }], ...redis },
  }).redis;

export const nodeOf = (s: RedisServer) => ({ host: s.host, port: s.port });

export const clientOf = (s: RedisServer, options: { password?: string } = {}) =>
  new Redis({ host: s.host, port: s.port, lazyConnect: false, ...options });

/** Databases the seed writes to. */
export const SEEDED_DBS = [0, 1, 5];

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Every type and encoding Redis 7.0 writes: embstr/int/raw/compressible strings, listpack and
 * hashtable hashes, intsets and hashtable sets, listpack and skiplist zsets, small and
 * multi-node quicklists, streams with deleted entries, consumer groups, consumers and pending
 * entries, TTLs, several databases, a function library, a large string and a large list.
 */
export async function seedAllTypes(c: Redis): Promise<void> {
  const p = c.pipeline().select(0);
  for (const i of range(100)) p.set(`str:${i}`, `value-${i}`);
  p.set('int', '12345').set('negint', '-9000000000').set('float', '3.14');
  p.set('compressible', 'abc'.repeat(5000));
  p.set('bin', Buffer.from([0, 1, 2, 255, 254, 0x0a, 0x22]));
  p.set(Buffer.from([0xff, 0x00, 0x41]), 'binary key');
  // Random bytes: LZF cannot shrink them, so the RESTORE payload really is 3 MB.
  p.set('big:string', randomBytes(3 * 1024 * 1024));
  // Fits a 1 MB argument, but its RESTORE payload (header + footer) does not.
  p.set('edge:string', randomBytes(1024 * 1024 - 4));
  p.hset('hash:small', { a: '1', b: 'two', c: '3.5' });
  p.hset('hash:big', Object.fromEntries(range(600).map((i) => [`field${i}`, `v${i}`])));
  p.sadd('set:int', 1, 2, 3, -7, 100000);
  p.sadd('set:str', 'alpha', 'beta', 'gamma');
  p.sadd('set:big', ...range(700).map((i) => `member${i}`));
  p.zadd('zset:small', 1, 'a', 2.5, 'b', -3, 'c', 0.1, 'd');
  p.zadd('zset:big', ...range(300).flatMap((i) => [i / 7, `z${i}`]));
  p.zadd('zset:inf', 'inf', 'top', '-inf', 'bottom', 1e-300, 'tiny');
  p.rpush('list:small', 'x', 'y', 'z', '42');
  p.rpush('list:big', ...range(5000).map((i) => `item-${i}-${'p'.repeat(i % 50)}`));
  p.rpush('list:huge', ...range(2200).map(() => randomBytes(1000)));
  p.set('ttl:ex', 'x', 'EX', 3600).set('ttl:px', 'y', 'PX', 900_000);
  p.hset('ttl:hash', 'f', 'v').pexpire('ttl:hash', 7_200_000);
  // Streams: entries, a deleted entry, two groups, consumers with pending (unacked) entries.
  for (const i of range(30))
    p.xadd('stream', `${1000 + i}-${i % 3}`, 'n', `${i}`, 'sq', `${i * i}`);
  p.xdel('stream', '1005-2');
  p.xgroup('CREATE', 'stream', 'g1', '0');
  p.xgroup('CREATE', 'stream', 'g2', '1010-1');
  p.xadd('stream:other', '*', 'a', '1');
  p.xgroup('CREATE', 'stream:empty', 'g', '$', 'MKSTREAM');
  p.select(1).set('db1:a', '1').sadd('db1:set', 'q').expire('db1:set', 5000);
  p.select(5).set('db5:a', 'five').rpush('db5:list', 'l1', 'l2').hset('db5:hash', 'k', 'v');
  p.select(0);
  await p.exec();
  await c.xreadgroup('GROUP', 'g1', 'alice', 'COUNT', 5, 'STREAMS', 'stream', '>');
  await c.xreadgroup('GROUP', 'g1', 'bob', 'COUNT', 3, 'STREAMS', 'stream', '>');
  await c.xack('stream', 'g1', '1001-1');
  await c.xreadgroup('GROUP', 'g2', 'carol', 'COUNT', 2, 'STREAMS', 'stream', '>');
  // Delivered twice: the delivery count must survive.
  await c.xclaim('stream', 'g1', 'bob', 0, '1002-2');
  await c.call(
    'FUNCTION',
    'LOAD',
    "#!lua name=georeplib\nredis.register_function('hello', function() return 'hi' end)",
  );
}

type Json = string | number | null | Json[] | { [k: string]: Json };

const hex = (b: Buffer) => b.toString('hex');

async function valueOf(c: Redis, key: Buffer, type: string): Promise<Json> {
  switch (type) {
    case 'string':
      return hex((await c.getBuffer(key))!);
    case 'list':
      return (await c.lrangeBuffer(key, 0, -1)).map(hex);
    case 'set':
      return (await c.smembersBuffer(key)).map(hex).sort();
    case 'zset':
      return await c.zrange(key, 0, -1, 'WITHSCORES');
    case 'hash': {
      const all = await c.hgetallBuffer(key);
      return Object.entries(all)
        .map(([f, v]) => `${f}=${hex(v)}`)
        .sort();
    }
    case 'stream': {
      const info = (await c.call('XINFO', 'STREAM', key)) as Json[];
      const fields: Record<string, Json> = {};
      for (let i = 0; i < info.length; i += 2) fields[info[i] as string] = info[i + 1]!;
      const groups = (await c.call('XINFO', 'GROUPS', key)) as Json[][];
      const groupState: Json[] = [];
      for (const g of groups) {
        const gf: Record<string, Json> = {};
        for (let i = 0; i < g.length; i += 2) gf[g[i] as string] = g[i + 1]!;
        const consumers = (await c.call('XINFO', 'CONSUMERS', key, gf.name as string)) as Json[][];
        const pending = (await c.call(
          'XPENDING',
          key,
          gf.name as string,
          '-',
          '+',
          1000,
        )) as Json[][];
        groupState.push({
          name: gf.name!,
          lastDelivered: gf['last-delivered-id']!,
          entriesRead: gf['entries-read'] ?? null,
          lag: gf.lag ?? null,
          pendingCount: gf.pending!,
          consumers: consumers.map((cf) => `${cf[1] as string}:${cf[3] as number}`).sort(),
          // id, consumer, delivery count (idle time moves on, so it is left out)
          pending: pending.map((p) => [p[0]!, p[1]!, p[3]!]),
        });
      }
      return {
        entries: (await c.call('XRANGE', key, '-', '+')) as Json,
        length: fields.length!,
        lastId: fields['last-generated-id']!,
        maxDeleted: fields['max-deleted-entry-id'] ?? null,
        entriesAdded: fields['entries-added'] ?? null,
        firstRecorded: fields['recorded-first-entry-id'] ?? null,
        groups: groupState,
      };
    }
    default:
      return `unknown type ${type}`;
  }
}

/** One key's logical state. */
export interface KeyState {
  type: string;
  value: string;
  /** Absolute expiry in ms, or -1. */
  expireAt: number;
}

/** The logical state of every key in `dbs`, by `db/hex(key)`. */
export async function stateOf(
  c: Redis,
  dbs: number[] = SEEDED_DBS,
): Promise<Map<string, KeyState>> {
  const out = new Map<string, KeyState>();
  for (const db of dbs) {
    await c.select(db);
    let cursor = '0';
    do {
      const [next, keys] = await c.scanBuffer(cursor, 'COUNT', 1000);
      cursor = next.toString();
      for (const key of keys) {
        const type = await c.type(key);
        const expireAt = Number(await c.call('PEXPIRETIME', key));
        out.set(`${db}/${hex(key)}`, {
          type,
          value: JSON.stringify(await valueOf(c, key, type)),
          expireAt,
        });
      }
    } while (cursor !== '0');
  }
  await c.select(0);
  return out;
}

/** Asserts-friendly diff: keys missing/extra/different, TTLs compared within `slackMs`. */
export function diffStates(
  expected: Map<string, KeyState>,
  actual: Map<string, KeyState>,
  slackMs = 1000,
): string[] {
  const problems: string[] = [];
  for (const [k, e] of expected) {
    const a = actual.get(k);
    if (a === undefined) problems.push(`missing ${k}`);
    else if (a.type !== e.type) problems.push(`${k}: type ${a.type} != ${e.type}`);
    else if (a.value !== e.value)
      problems.push(`${k}: value ${a.value.slice(0, 300)} != ${e.value.slice(0, 300)}`);
    else if (
      (e.expireAt === -1) !== (a.expireAt === -1) ||
      Math.abs(a.expireAt - e.expireAt) > slackMs
    ) {
      problems.push(`${k}: expireAt ${a.expireAt} != ${e.expireAt}`);
    }
  }
  for (const k of actual.keys()) if (!expected.has(k)) problems.push(`extra ${k}`);
  return problems;
}

/** Total keys in all databases (INFO keyspace). */
export async function totalKeys(c: Redis): Promise<number> {
  const info = await c.info('keyspace');
  let n = 0;
  for (const m of info.matchAll(/keys=(\d+)/g)) n += Number(m[1]);
  return n;
}
