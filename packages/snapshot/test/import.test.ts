import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { exportRdb } from '@georep/redis';
import { fileSource, importRdb, type ImportRdbOptions } from '@georep/snapshot';
import { startRedis, tempDir, type RedisServer } from '@georep/testkit';
import {
  clientOf,
  diffStates,
  nodeOf,
  redisConfig,
  seedAllTypes,
  SEEDED_DBS,
  stateOf,
  type KeyState,
} from './redis-state.js';

let source: RedisServer;
let rdbFile: string;
let expected: Map<string, KeyState>;
let totalSeeded: number;
const cleanup: Array<() => Promise<void>> = [];

beforeAll(async () => {
  source = await startRedis({ dir: tempDir('imp-src') });
  const c = clientOf(source);
  await seedAllTypes(c);
  expected = await stateOf(c);
  totalSeeded = expected.size;
  c.disconnect();
  rdbFile = join(tempDir('imp-rdb'), 'dump.rdb');
  const r = await exportRdb({ node: nodeOf(source), config: redisConfig(), out: rdbFile });
  expect(r.source).toBe('psync');
});

afterAll(async () => {
  await source?.stop();
});

afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn();
});

/** A fresh target server and a client to it, stopped after the test. */
async function freshTarget(extraConfig: string[] = []): Promise<{ server: RedisServer; c: Redis }> {
  const server = await startRedis({ dir: tempDir('imp-tgt'), extraConfig });
  const c = clientOf(server);
  cleanup.push(async () => {
    c.disconnect();
    await server.stop();
  });
  return { server, c };
}

const run = (server: RedisServer, o: Partial<ImportRdbOptions> = {}) =>
  importRdb({
    source: fileSource(rdbFile),
    target: { node: nodeOf(server), config: redisConfig() },
    mode: 'replace',
    ...o,
  });

describe('import', () => {
  it("import - georep's own keys in a replicated region's snapshot are never written", async () => {
    const replicated = await startRedis({ dir: tempDir('imp-georep') });
    const file = join(tempDir('imp-georep-rdb'), 'dump.rdb');
    try {
      const c = clientOf(replicated);
      await c.set('user:1', 'ann');
      await c.hset('__georep:m:user:1', 't', '001795620000000.000000.eu-west');
      await c.set('__georep:outbox', '1\n10\npayload');
      c.disconnect();
      await exportRdb({ node: nodeOf(replicated), config: redisConfig(), out: file });
    } finally {
      await replicated.stop();
    }
    const { server, c } = await freshTarget();
    const r = await importRdb({
      source: fileSource(file),
      target: { node: nodeOf(server), config: redisConfig() },
      mode: 'merge',
    });
    expect(r).toMatchObject({ keysRead: 3, keysWritten: 1, skippedFiltered: 2 });
    expect(await c.get('user:1')).toBe('ann');
    expect(await c.keys('__georep:*')).toEqual([]);
  });

  it('import - replace into a fresh server restores every key, value, TTL and function', async () => {
    const { server, c } = await freshTarget();
    const progress: string[] = [];
    const r = await run(server, { onProgress: (p) => progress.push(p.phase) });
    expect(diffStates(expected, await stateOf(c))).toEqual([]);
    expect(r.keysRead).toBe(totalSeeded);
    expect(r.keysWritten).toBe(totalSeeded);
    expect(r.restored).toBe(totalSeeded);
    expect(r.viaCommands).toBe(0);
    expect(r.skippedUnsupported).toEqual([]);
    expect(r.dbs).toEqual(SEEDED_DBS);
    expect(r.flushed).toEqual(SEEDED_DBS);
    expect(r.functions).toEqual({ loaded: 1, skipped: 0 });
    expect(r.target).toMatchObject({ fork: 'redis', rdbVersion: 10 });
    expect(await c.call('FCALL', 'hello', 0)).toBe('hi');
    expect(new Set(progress)).toEqual(new Set(['verify', 'flush', 'import']));
    // RESTORE of raw bytes keeps the encoding byte for byte.
    for (const key of ['hash:small', 'zset:small', 'list:big', 'set:int', 'compressible']) {
      const src = clientOf(source);
      expect((await c.dumpBuffer(key)).equals(await src.dumpBuffer(key)), key).toBe(true);
      src.disconnect();
    }
  });

  it('import - replace flushes exactly the databases in the file and overwrites racing keys', async () => {
    const { server, c } = await freshTarget();
    await c
      .pipeline()
      .select(0)
      .set('stale', '1')
      .set('str:1', 'old')
      .select(7)
      .set('other-db', 'kept')
      .select(0)
      .exec();
    const r = await run(server);
    expect(await c.exists('stale')).toBe(0);
    expect(await c.get('str:1')).toBe('value-1');
    await c.select(7);
    expect(await c.get('other-db')).toBe('kept');
    await c.select(0);
    expect(r.flushed).toEqual([0, 1, 5]);
    const retry = await run(server);
    expect(retry.keysWritten).toBe(totalSeeded);
    expect(diffStates(expected, await stateOf(c))).toEqual([]);
  });

  it('import - merge keeps existing keys with onConflict=skip and overwrites them with replace', async () => {
    const { server, c } = await freshTarget();
    await c
      .pipeline()
      .set('str:1', 'target')
      .set('target-only', 'x')
      .rpush('list:small', 'mine')
      .exec();
    const skip = await run(server, { mode: 'merge' });
    expect(skip.skippedExisting).toBe(2);
    expect(skip.keysWritten).toBe(totalSeeded - 2);
    expect(await c.get('str:1')).toBe('target');
    expect(await c.lrange('list:small', 0, -1)).toEqual(['mine']);
    expect(await c.get('target-only')).toBe('x');
    expect(skip.flushed).toEqual([]);

    const replace = await run(server, { mode: 'merge', onConflict: 'replace' });
    expect(replace.skippedExisting).toBe(0);
    expect(replace.keysWritten).toBe(totalSeeded);
    expect(await c.get('str:1')).toBe('value-1');
    // Values are replaced, never combined: the list is the file's, not both.
    expect(await c.lrange('list:small', 0, -1)).toEqual(['x', 'y', 'z', '42']);
    expect(await c.get('target-only')).toBe('x');
  });

  it('import - match and db filters select the keys; replace+match deletes only matching keys', async () => {
    const { server, c } = await freshTarget();
    const r = await run(server, {
      mode: 'merge',
      match: 'str:1?',
      target: { node: nodeOf(server), config: redisConfig(), db: 0 },
    });
    expect(r.keysWritten).toBe(10);
    expect(r.skippedFiltered).toBe(totalSeeded - 10);
    expect((await c.keys('*')).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `str:1${i}`).sort(),
    );

    await c.set('str:14zz', 'gone').then(() => c.set('keep', 'me'));
    const sub = await run(server, {
      match: 'str:1[0-4]*',
      target: { node: nodeOf(server), config: redisConfig(), db: 0 },
    });
    expect(sub.flushed).toEqual([]);
    expect(sub.keysWritten).toBe(5);
    // Matching target keys absent from the file are deleted; the rest is left alone.
    expect(await c.exists('str:14zz')).toBe(0);
    expect(await c.get('keep')).toBe('me');
    expect(await c.get('str:15')).toBe('value-15');
    expect(await c.get('str:14')).toBe('value-14');

    const only5 = await run(server, {
      mode: 'merge',
      target: { node: nodeOf(server), config: redisConfig(), db: 5 },
    });
    expect(only5.dbs).toEqual([5]);
    expect(only5.keysWritten).toBe(3);
  });

  it('import - forced plain commands rebuild every type identically (streams with groups and PEL)', async () => {
    const { server, c } = await freshTarget();
    const r = await run(server, {
      forceCommands: ['string', 'list', 'set', 'zset', 'hash', 'stream'],
      pipeline: 16,
    });
    expect(r.viaCommands).toBe(totalSeeded);
    expect(r.restored).toBe(0);
    expect(diffStates(expected, await stateOf(c))).toEqual([]);
  });

  it('import - values over the target proto-max-bulk-len fall back to commands and stay identical', async () => {
    const { server, c } = await freshTarget(['proto-max-bulk-len 1mb']);
    const r = await run(server);
    // The RESTORE payloads of list:huge (2.2 MB) and edge:string (1 MB - 4 bytes + header and
    // footer) do not fit one 1 MB argument; their values do, written with plain commands.
    expect(r.viaCommands).toBe(2);
    // A 3 MB string cannot exist on this target at all.
    expect(r.skippedUnsupported).toEqual([
      expect.objectContaining({ db: 0, key: 'big:string', type: 'string' }),
    ]);
    expect(r.skippedUnsupported[0]!.reason).toMatch(/proto-max-bulk-len/);
    expect(r.restored).toBe(totalSeeded - 3);
    const want = new Map(expected);
    want.delete(`0/${Buffer.from('big:string').toString('hex')}`);
    expect(diffStates(want, await stateOf(c))).toEqual([]);
  });

  it('import - a rejected write stops with the exact count; a merge+replace retry converges', async () => {
    const { server, c } = await freshTarget();
    // Enough memory for some keys, not for the 3 MB string or the lists. Relative to what the
    // server already uses, which varies with its buffers.
    const used = Number(/used_memory:(\d+)/.exec(await c.info('memory'))?.[1]);
    await c.config('SET', 'maxmemory', String(used + 2 * 1024 * 1024));
    await c.config('SET', 'maxmemory-policy', 'noeviction');
    const err = await run(server, { pipeline: 1 }).then(
      () => undefined,
      (e: unknown) =>
        e as { code: string; progress: { keysWritten: number; lastKey?: string }; key: string },
    );
    expect(err?.code).toBe('import.rejected');
    const written = await c.dbsize();
    expect(err!.progress.keysWritten).toBeGreaterThan(0);
    // With a window of 1 nothing after the failure was sent: the count is exactly what is there.
    expect(written).toBe(err!.progress.keysWritten);
    expect(err!.key).not.toBe('');
    await c.config('SET', 'maxmemory', '0');
    const retry = await run(server, { mode: 'merge', onConflict: 'replace' });
    expect(retry.keysWritten).toBe(totalSeeded);
    expect(diffStates(expected, await stateOf(c))).toEqual([]);
  });

  it('import - a connection killed mid-import reports import.target-unreachable with progress', async () => {
    const { server, c } = await freshTarget();
    let killed = false;
    const err = await run(server, {
      pipeline: 4,
      onProgress: (p) => {
        if (p.phase === 'import' && p.keysWritten > 0 && !killed) {
          killed = true;
          void c.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
        }
      },
    }).then(
      () => undefined,
      (e: unknown) => e as { code: string; progress: { keysWritten: number } },
    );
    expect(killed).toBe(true);
    expect(err?.code).toBe('import.target-unreachable');
    expect(err!.progress.keysWritten).toBeGreaterThan(0);
    expect(await c.dbsize()).toBeGreaterThanOrEqual(0);
    const retry = await run(server, { mode: 'merge', onConflict: 'replace' });
    expect(retry.keysWritten).toBe(totalSeeded);
    expect(diffStates(expected, await stateOf(c))).toEqual([]);
  });
});
