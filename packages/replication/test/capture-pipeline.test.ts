/**
 * The capture pipeline against a real Redis: what it publishes, in which order, and what happens
 * when publishing fails or the agent restarts between record and publish.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HybridLogicalClock, encodeHlc, silentLogger } from '@georep/core';
import {
  CapturePipeline,
  GatedPositionStore,
  MemoryPositionStore,
  readOutbox,
  recordBatch,
  type OpBatch,
} from '@georep/replication';
import { startRedis, tempDir, waitFor, type RedisServer } from '@georep/testkit';

describe('capture pipeline', () => {
  let server: RedisServer;
  let client: Redis;

  beforeAll(async () => {
    server = await startRedis({ dir: tempDir('capture-pipeline') });
    client = new Redis(server.port, '127.0.0.1');
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  /** A pipeline of region eu on the test server, publishing with `publish`. */
  const pipelineWith = (store: MemoryPositionStore, publish: (b: OpBatch) => Promise<void>) =>
    new CapturePipeline({
      region: 'eu',
      node: { host: '127.0.0.1', port: server.port },
      config: { commandTimeoutMs: 1000 },
      clock: new HybridLogicalClock('eu'),
      store,
      logger: silentLogger,
      publish,
    });

  const keysOf = (batches: OpBatch[]) =>
    batches.flatMap((b) => b.ops.map((op) => ('key' in op ? Buffer.from(op.key).toString() : '')));

  it('pipeline - a failing publish is retried until it works; nothing is skipped or reordered', async () => {
    const published: OpBatch[] = [];
    let failures = 3;
    const pipeline = pipelineWith(new MemoryPositionStore(), (batch) => {
      if (failures > 0) {
        failures--;
        return Promise.reject(new Error('JetStream unavailable'));
      }
      published.push(batch);
      return Promise.resolve();
    });
    await pipeline.start();
    try {
      await client.set('p:1', 'a');
      await new Promise((r) => setTimeout(r, 50));
      await client.set('p:2', 'b');
      await client.set('p:3', 'c');
      await waitFor(
        () => keysOf(published).filter((k) => k.startsWith('p:')),
        (keys) => keys.length === 3,
        { timeoutMs: 15_000, intervalMs: 50, what: 'the three writes published' },
      );
      expect(keysOf(published).filter((k) => k.startsWith('p:'))).toEqual(['p:1', 'p:2', 'p:3']);
      const seqs = published.map((b) => b.seq);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
      expect(pipeline.stats.publishFailures).toBe(3);
    } finally {
      await pipeline.stop();
    }
  });

  it('pipeline - a batch recorded but not published is published at the next start, once', async () => {
    const store = new MemoryPositionStore();
    const make = (publish: (b: OpBatch) => Promise<void>) => pipelineWith(store, publish);
    // The first run records the increment but never manages to publish it, then stops (a crash
    // before the ack). Everything before it (its full sync) is published normally.
    const firstPublished: OpBatch[] = [];
    const first = make((b) => {
      if (b.ops.some((op) => op.kind === 'counter')) return Promise.reject(new Error('down'));
      firstPublished.push(b);
      return Promise.resolve();
    });
    await client.set('o:marker', 'x');
    await first.start();
    await waitFor(
      () => keysOf(firstPublished),
      (keys) => keys.includes('o:marker'),
      { timeoutMs: 10_000, intervalMs: 50, what: 'the full sync of the first run published' },
    );
    await client.incrby('o:counter', 5);
    await waitFor(
      async () => {
        const o = await readOutbox(client);
        return o === null ? [] : o.batch.ops.map((op) => op.kind);
      },
      (kinds) => kinds.includes('counter'),
      { timeoutMs: 10_000, intervalMs: 50, what: 'the increment in the outbox' },
    );
    await first.stop();
    const outbox = await readOutbox(client);

    const published: OpBatch[] = [];
    const second = make((b) => {
      published.push(b);
      return Promise.resolve();
    });
    await second.start();
    try {
      await client.set('o:after', '1');
      await waitFor(
        () => keysOf(published),
        (keys) => keys.includes('o:after'),
        { timeoutMs: 10_000, intervalMs: 50, what: 'the next write published' },
      );
      // The outbox went out first (both slots, oldest first) with its own seqs; the increment
      // was not recorded twice.
      expect(published.map((b) => b.seq)).toContain(outbox!.seq);
      expect(published.findIndex((b) => b.seq === outbox!.seq)).toBeLessThan(
        published.findIndex((b) => keysOf([b]).includes('o:after')),
      );
      const counters = published.flatMap((b) => b.ops).filter((op) => op.kind === 'counter');
      expect(counters).toHaveLength(1);
      expect(counters[0]).toMatchObject({ kind: 'counter', cum: '5' });
    } finally {
      await second.stop();
    }
  });

  it('pipeline - after a failover that lost the outbox, new batches get seqs (message ids) never used before', async () => {
    const store = new MemoryPositionStore();
    const seqs: number[] = [];
    const run = async (key: string) => {
      const pipeline = pipelineWith(store, (b) => {
        seqs.push(b.seq);
        return Promise.resolve();
      });
      await pipeline.start();
      try {
        await client.set(key, '1');
        await waitFor(
          () => seqs.length,
          (n) => n > 0 && seqs.length === new Set(seqs).size,
          { timeoutMs: 10_000, intervalMs: 50, what: `${key} published` },
        );
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        await pipeline.stop();
      }
    };
    await run('f:before');
    const before = Math.max(...seqs);
    // The promoted replica never received the outbox slots of the last batches.
    await client.del('__georep:outbox', '__georep:outbox:1');
    const count = seqs.length;
    await run('f:after');
    const after = seqs.slice(count);
    expect(after.length).toBeGreaterThan(0);
    for (const seq of after) expect(seq).toBeGreaterThan(before);
  });

  it('full sync - a key deleted while capture could not follow gets a delete; a tombstone does not', async () => {
    const ops = new Map<string, Array<{ deleted: boolean; db: number }>>();
    const db2 = client.duplicate({ db: 2 });
    const binary = Buffer.from([0x67, 0xff, 0x00, 0x0a]);
    const run = async (store: MemoryPositionStore, work: () => Promise<void>, until: string) => {
      const pipeline = pipelineWith(store, (b) => {
        for (const op of b.ops) {
          if (op.kind !== 'value') continue;
          const key = Buffer.from(op.key).toString('latin1');
          ops.set(key, [...(ops.get(key) ?? []), { deleted: op.dump === null, db: op.db }]);
        }
        return Promise.resolve();
      });
      await pipeline.start();
      try {
        await work();
        await waitFor(
          () => ops.has(until),
          (ok) => ok,
          { timeoutMs: 10_000, intervalMs: 50, what: `${until} published` },
        );
      } finally {
        await pipeline.stop();
      }
    };
    await run(
      new MemoryPositionStore(),
      async () => {
        await client.set('gap:live', 'a');
        await client.set('gap:gone', 'b');
        await client.set('gap:old', 'c');
        await client.del('gap:old');
        await db2.set(binary, 'e');
        await db2.set('gap:db2', 'f');
        await client.set('gap:last', 'd');
      },
      'gap:last',
    );
    // While no capture runs, gap:gone is deleted; the next capture has no position: a full sync.
    // (The outbox is dropped so that the next start does not publish the last batches again, and
    // the position mirrored in Redis so that it does not resume from there.)
    await client.del('gap:gone', '__georep:outbox', '__georep:outbox:1', '__georep:capture');
    await db2.del(binary);
    db2.disconnect();
    ops.clear();
    await run(new MemoryPositionStore(), () => Promise.resolve(), 'gap:gone');
    expect(ops.get('gap:gone')).toEqual([{ deleted: true, db: 0 }]);
    expect(ops.get('gap:live')).toEqual([{ deleted: false, db: 0 }]);
    // In another database, with a name that is not text.
    expect(ops.get(binary.toString('latin1'))).toEqual([{ deleted: true, db: 2 }]);
    expect(ops.get('gap:db2')).toEqual([{ deleted: false, db: 2 }]);
    // Deleted before, with a tombstone: no new delete that could override a peer's later write.
    expect(ops.has('gap:old')).toBe(false);
  });

  it('pipeline - a batch is published only once a replica has it, or after the timeout when none answers', async () => {
    const replica = await startRedis({
      dir: tempDir('capture-pipeline-replica'),
      replicaOf: { host: '127.0.0.1', port: server.port },
    });
    const onReplica = new Redis(replica.port, '127.0.0.1');
    const seen: Array<{ key: string; onReplica: string | null; at: number }> = [];
    const pipeline = new CapturePipeline({
      region: 'eu',
      node: { host: '127.0.0.1', port: server.port },
      config: { commandTimeoutMs: 1000 },
      clock: new HybridLogicalClock('eu'),
      store: new MemoryPositionStore(),
      logger: silentLogger,
      replicaAckTimeoutMs: 1500,
      publish: async (batch) => {
        for (const key of keysOf([batch]).filter((k) => k.startsWith('w:'))) {
          const at = Date.now();
          // The stopped replica of the second step cannot be asked.
          const value = key === 'w:healthy' ? await onReplica.get(key) : null;
          seen.push({ key, onReplica: value, at });
        }
      },
    });
    try {
      await waitFor(
        async () => (await client.info('replication')).includes('state=online'),
        (ok) => ok,
        { timeoutMs: 10_000, intervalMs: 50, what: 'the replica online' },
      );
      await pipeline.start();
      await client.set('w:healthy', '1');
      await waitFor(
        () => seen.length,
        (n) => n === 1,
        {
          timeoutMs: 10_000,
          intervalMs: 20,
          what: 'w:healthy published',
        },
      );
      // When it was published, the replica already had it.
      expect(seen[0]).toMatchObject({ key: 'w:healthy', onReplica: '1' });
      expect(pipeline.stats.unconfirmed).toBe(0);

      // A replica that answers nothing holds a batch back for the timeout, not forever.
      process.kill(replica.pid, 'SIGSTOP');
      const writtenAt = Date.now();
      try {
        await client.set('w:stuck', '1');
        await waitFor(
          () => seen.length,
          (n) => n === 2,
          {
            timeoutMs: 10_000,
            intervalMs: 20,
            what: 'w:stuck published after the timeout',
          },
        );
      } finally {
        process.kill(replica.pid, 'SIGCONT');
      }
      expect(seen[1]!.key).toBe('w:stuck');
      expect(seen[1]!.at - writtenAt).toBeGreaterThanOrEqual(1400);
      expect(pipeline.stats.unconfirmed).toBe(1);
    } finally {
      await pipeline.stop();
      onReplica.disconnect();
      await replica.stop();
    }
  });

  it('position - commits reach the store at most once per interval, the last one always', async () => {
    const inner = new MemoryPositionStore();
    const gate = new GatedPositionStore(inner, 50);
    const at = (offset: number) => ({ replid: 'r'.repeat(40), offset, db: 0 });
    for (const offset of [10, 20, 30]) gate.save(at(offset));
    gate.commit(10);
    expect(inner.load()?.offset).toBe(10);
    gate.commit(20);
    gate.commit(30);
    // Within the interval: waiting; the newest commit replaces the older one.
    expect(inner.load()?.offset).toBe(10);
    expect(inner.saves).toBe(1);
    await waitFor(
      () => inner.load()?.offset,
      (offset) => offset === 30,
      { timeoutMs: 2000, intervalMs: 10, what: 'the waiting commit saved' },
    );
    expect(inner.saves).toBe(2);
    // flush() saves a waiting commit at once (stop, full resync); a commit past every saved
    // position moves nothing.
    gate.save(at(40));
    gate.commit(40);
    gate.commit(99);
    gate.flush();
    expect(inner.load()?.offset).toBe(40);
    expect(inner.saves).toBe(3);
  });

  it('record - the same batch recorded twice (a lost reply) counts its increments once', async () => {
    const clock = new HybridLogicalClock('eu');
    const input = {
      origin: 'eu',
      seq: 9001,
      offset: 424242,
      instructions: [
        {
          kind: 'counter' as const,
          db: 0,
          key: Buffer.from('r:counter'),
          tag: encodeHlc(clock.tick()),
          delta: '7',
        },
      ],
    };
    await client.incrby('r:counter', 7);
    const first = await recordBatch(client, input);
    const again = await recordBatch(client, input);
    expect(again).toEqual(first);
    expect(await client.hget('__georep:m:r:counter', 'c:eu')).toBe('7');
  });
});
