/**
 * Snapshots end to end through the CLI: export from a replica and a primary of a live region
 * (also while writes continue), the group catalog seen from another region, download, verify,
 * inspect, import into a fresh Redis, idempotency, deletion, and bad input.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationView } from '@georep/core';
import {
  planGroup,
  startGroup,
  startRedis,
  tempDir,
  waitFor,
  type GroupPlan,
  type LocalGroup,
  type RedisServer,
} from '@georep/testkit';
import { agentCommand, georep } from './helpers.js';

describe('snapshots across two regions', () => {
  let plan: GroupPlan;
  let group: LocalGroup;
  let primary: Redis;
  let fresh: RedisServer;
  const dir = tempDir('snapshots');
  const nats = (region: string) =>
    `nats://127.0.0.1:${plan.regions.find((r) => r.name === region)!.nats.port}`;
  const cli = (via: string, args: string[]) =>
    georep(['--nats', nats(via), '--group', 'snap', ...args]);
  const json = async <T>(via: string, args: string[]): Promise<T> => {
    const run = await cli(via, [...args, '--json']);
    if (run.code !== 0)
      throw new Error(`georep ${args.join(' ')} exited ${run.code}: ${run.stdout} ${run.stderr}`);
    return JSON.parse(run.stdout) as T;
  };

  beforeAll(async () => {
    plan = await planGroup({
      group: 'snap',
      dir: join(dir, 'group'),
      regions: ['eu-west', 'us-east'],
      replicas: 1,
      ports: 'free',
      health: { intervalMs: 500, downAfterMs: 2000 },
      // The snapshots must hold exactly the keys written here: without replication, no region
      // gets the other's keys or georep's metadata keys (the replication suites cover those).
      replication: { enabled: false },
    });
    group = await startGroup(plan, { agentCommand, readyTimeoutMs: 30_000 });
    const p = plan.regions[0]!.nodes[0]!;
    primary = new Redis(p.port, p.host);
    const pipeline = primary.pipeline();
    for (let i = 0; i < 500; i++) pipeline.set(`str:${i}`, `value-${i}-${'x'.repeat(i % 50)}`);
    pipeline.hset('hash:small', { a: '1', b: '2' });
    for (let i = 0; i < 300; i++) pipeline.hset('hash:big', `field-${i}`, 'v'.repeat(80));
    pipeline.sadd('set:ints', 1, 2, 3, 400000);
    pipeline.sadd('set:strings', 'alpha', 'beta', 'gamma');
    pipeline.zadd('zset', 1.5, 'a', -2, 'b', 1e9, 'c');
    pipeline.rpush('list', 'one', 'two', 'three');
    pipeline.xadd('stream', '1-1', 'k', 'v');
    pipeline.xadd('stream', '2-1', 'k', 'w');
    pipeline.xgroup('CREATE', 'stream', 'readers', '0');
    pipeline.set('ttl:key', 'soon', 'PX', 3_600_000);
    pipeline.select(3);
    pipeline.set('db3:key', 'in db 3');
    pipeline.select(0);
    await pipeline.exec();
    await primary.xreadgroup('GROUP', 'readers', 'alice', 'COUNT', 1, 'STREAMS', 'stream', '>');
    fresh = await startRedis({ dir: join(dir, 'fresh') });
  });

  afterAll(async () => {
    primary?.disconnect();
    await fresh?.stop();
    await group?.stop();
  });

  let exported: string;

  it('export - without --node a healthy replica is exported, point in time, into the catalog', async () => {
    // Wait until the replica caught up, so the replica's snapshot has every key.
    const replica = new Redis(plan.regions[0]!.nodes[1]!.port, '127.0.0.1');
    await waitFor(
      () => replica.dbsize(),
      (n) => n >= 506,
    );
    replica.disconnect();
    const op = await json<OperationView>('eu-west', [
      'snapshot',
      'export',
      '--region',
      'eu-west',
      '--client-token',
      'nightly-1',
    ]);
    expect(op.status).toBe('succeeded');
    expect(op.result).toMatchObject({
      region: 'eu-west',
      node: 'eu-west-2',
      pointInTime: true,
      source: 'psync',
    });
    expect(op.result!.keys).toBe(509);
    exported = String(op.result!.name);
    const again = await json<OperationView>('eu-west', [
      'snapshot',
      'export',
      '--region',
      'eu-west',
      '--client-token',
      'nightly-1',
    ]);
    expect(again.id).toBe(op.id);
  });

  it('export - from the primary by --node, while writes continue', async () => {
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 20_000 && writing; i++) await primary.set(`busy:${i}`, i);
    })();
    const op = await json<OperationView>('eu-west', [
      'snapshot',
      'export',
      '--region',
      'eu-west',
      '--node',
      'eu-west-1',
      '--name',
      'primary-while-busy',
    ]);
    writing = false;
    await writer;
    expect(op.result).toMatchObject({
      name: 'primary-while-busy',
      node: 'eu-west-1',
      pointInTime: true,
    });
    expect(Number(op.result!.keys)).toBeGreaterThanOrEqual(509);
  });

  it('catalog - another region lists both snapshots, newest first', async () => {
    const list = await waitFor(
      () => json<{ name: string; region: string }[]>('us-east', ['snapshot', 'list']),
      (l) => l.length >= 2,
    );
    expect(list.map((s) => s.name)).toEqual(['primary-while-busy', exported]);
    expect(list.every((s) => s.region === 'eu-west')).toBe(true);
  });

  it('download, verify, inspect - the snapshot is valid and says what it holds', async () => {
    const file = join(dir, 'download.rdb');
    expect((await cli('us-east', ['snapshot', 'download', exported, '--out', file])).code).toBe(0);
    const verified = await json<{ ok: boolean; keys: number }>('us-east', [
      'snapshot',
      'verify',
      file,
    ]);
    expect(verified).toMatchObject({ ok: true, keys: 509 });
    const report = await json<{ dbs: { db: number; keys: number }[] }>('us-east', [
      'snapshot',
      'inspect',
      exported,
    ]);
    expect(report.dbs.map((d) => [d.db, d.keys])).toEqual([
      [0, 508],
      [3, 1],
    ]);
  });

  it('import - into a fresh Redis every key is identical, TTLs kept', async () => {
    const result = await json<{ keysWritten: number }>('us-east', [
      'snapshot',
      'import',
      '--target',
      `redis://127.0.0.1:${fresh.port}`,
      '--from',
      exported,
      '--mode',
      'replace',
    ]);
    expect(result.keysWritten).toBe(509);
    const target = new Redis(fresh.port, '127.0.0.1');
    try {
      // Compact encodings (listpack, intset, quicklist) DUMP to the same bytes; a hashtable's DUMP
      // depends on its iteration order, so hashtable hashes and sets are compared by content.
      expect(await target.hgetall('hash:big')).toEqual(await primary.hgetall('hash:big'));
      expect(await target.object('ENCODING', 'hash:big')).toBe('hashtable');
      expect((await target.smembers('set:strings')).sort()).toEqual(
        (await primary.smembers('set:strings')).sort(),
      );
      // A replica records its own consumer seen-times, so the stream is compared by what it holds.
      expect(await target.xrange('stream', '-', '+')).toEqual(
        await primary.xrange('stream', '-', '+'),
      );
      expect(await target.xpending('stream', 'readers')).toEqual(
        await primary.xpending('stream', 'readers'),
      );
      for (const key of ['str:7', 'set:ints', 'zset', 'list', 'hash:small']) {
        expect((await target.dumpBuffer(key))?.equals(await primary.dumpBuffer(key)), key).toBe(
          true,
        );
      }
      expect(
        Math.abs((await target.pttl('ttl:key')) - (await primary.pttl('ttl:key'))),
      ).toBeLessThan(2000);
      await target.select(3);
      expect(await target.get('db3:key')).toBe('in db 3');
    } finally {
      target.disconnect();
    }
  });

  it('import --native - a catalog snapshot replaces the whole target at load speed', async () => {
    const target = await startRedis({ dir: join(dir, 'native') });
    const client = new Redis(target.port, '127.0.0.1');
    try {
      await client.set('stale', 'from before the import');
      const refused = await cli('us-east', [
        'snapshot',
        'import',
        '--native',
        '--match',
        'str:*',
        '--target',
        `redis://127.0.0.1:${target.port}`,
        '--from',
        exported,
      ]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('[snapshot.native-conflict]');
      expect(await client.get('stale')).toBe('from before the import');

      const result = await json<{ keysLoaded: number; method: string }>('us-east', [
        'snapshot',
        'import',
        '--native',
        '--target',
        `redis://127.0.0.1:${target.port}`,
        '--from',
        exported,
      ]);
      expect(result).toMatchObject({ keysLoaded: 509, method: 'replication' });
      expect(await client.get('stale')).toBeNull();
      expect(await client.get('str:7')).toBe(await primary.get('str:7'));
      expect(await client.hgetall('hash:big')).toEqual(await primary.hgetall('hash:big'));
      // The target is a primary again and accepts writes.
      expect((await client.info('replication')).includes('role:master')).toBe(true);
      expect(await client.set('after', '1')).toBe('OK');
    } finally {
      client.disconnect();
      await target.stop();
    }
  });

  it('import --region - the agent imports a catalogued snapshot into its primary', async () => {
    const us = plan.regions.find((r) => r.name === 'us-east')!.nodes[0]!;
    const usClient = new Redis(us.port, us.host);
    try {
      await usClient.set('str:7', 'already here');
      const unconfirmed = await cli('eu-west', [
        'snapshot',
        'import',
        '--region',
        'us-east',
        '--from',
        exported,
        '--mode',
        'replace',
      ]);
      expect(unconfirmed.code).toBe(2);
      expect(unconfirmed.stderr).toContain('[usage.confirmation-required]');
      const file = await cli('eu-west', [
        'snapshot',
        'import',
        '--region',
        'us-east',
        '--from',
        join(dir, 'download.rdb'),
      ]);
      expect(file.code).toBe(2);
      expect(file.stderr).toContain('[snapshot.file-needs-target]');

      const op = await json<OperationView>('eu-west', [
        'snapshot',
        'import',
        '--region',
        'us-east',
        '--from',
        exported,
        '--mode',
        'merge',
      ]);
      expect(op).toMatchObject({ kind: 'snapshot.import', status: 'succeeded' });
      expect(op.result).toMatchObject({ keysWritten: 508, skippedExisting: 1 });
      // Merge keeps the key us-east had; the rest came from eu-west's snapshot.
      expect(await usClient.get('str:7')).toBe('already here');
      expect(await usClient.get('str:8')).toBe(await primary.get('str:8'));
      expect(await usClient.hgetall('hash:big')).toEqual(await primary.hgetall('hash:big'));
    } finally {
      usClient.disconnect();
    }
  });

  it('errors - an unknown node, and a corrupt file that leaves the target untouched', async () => {
    const unknown = await cli('eu-west', [
      'snapshot',
      'export',
      '--region',
      'eu-west',
      '--node',
      'nope',
    ]);
    expect(unknown.code).toBe(5);
    expect(unknown.stderr).toContain('[node.not-found]');
    const good = readFileSync(join(dir, 'download.rdb'));
    const bad = join(dir, 'corrupt.rdb');
    writeFileSync(bad, good.subarray(0, Math.floor(good.length * 0.6)));
    const empty = await startRedis({ dir: join(dir, 'empty') });
    try {
      const run = await cli('us-east', [
        'snapshot',
        'import',
        '--target',
        `redis://127.0.0.1:${empty.port}`,
        '--from',
        bad,
      ]);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(/\[rdb\.[a-z-]+\]/);
      const client = new Redis(empty.port, '127.0.0.1');
      expect(await client.dbsize()).toBe(0);
      client.disconnect();
    } finally {
      await empty.stop();
    }
  });

  it('delete - removes the snapshot from the store and the catalog', async () => {
    expect((await cli('eu-west', ['snapshot', 'delete', 'primary-while-busy'])).code).toBe(0);
    const list = await json<{ name: string }[]>('us-east', ['snapshot', 'list']);
    expect(list.map((s) => s.name)).toEqual([exported]);
  });
});
