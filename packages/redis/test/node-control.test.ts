import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import {
  SwitchoverInProgressError,
  SwitchoverNotPrimaryError,
  SwitchoverTargetNotReplicaError,
  SwitchoverTimeoutError,
  chooseBestReplica,
  classifyFailoverReply,
  classifyReplicaofReply,
  forcePromote,
  readReplicationState,
  repointReplica,
  safeSwitchover,
} from '@georep/redis';
import { startRedis, tempDir, waitFor, type RedisServer } from '@georep/testkit';

/** Clients opened by a describe block; closed in its afterAll. */
function clientPool() {
  const clients: Redis[] = [];
  return {
    connect(server: RedisServer, options: { retries?: number } = {}): Redis {
      const client = new Redis({
        host: server.host,
        port: server.port,
        maxRetriesPerRequest: options.retries ?? 1,
        connectTimeout: 2000,
        // A node stopped on purpose must not fill the output with reconnect attempts.
        retryStrategy: (times) => Math.min(times * 50, 500),
      });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    },
    close(): void {
      for (const c of clients) c.disconnect();
    },
  };
}

const at = (s: RedisServer, id = `${s.port}`) => ({ id, host: s.host, port: s.port });

/** Until every replica of `primary` is online and has acknowledged its whole stream. */
async function waitInSync(primary: Redis, replicas: number) {
  return waitFor(
    () => readReplicationState(primary),
    (s) =>
      s.replicas.length === replicas &&
      s.replicas.every((r) => r.state === 'online' && r.offset === s.replOffset),
    { what: `${replicas} replica(s) in sync`, timeoutMs: 15_000 },
  );
}

/** SIGSTOP: the process stays connected but answers nothing, like a replica stuck on a slow disk. */
async function whileStopped<T>(server: RedisServer, fn: () => Promise<T>): Promise<T> {
  process.kill(server.pid, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    process.kill(server.pid, 'SIGCONT');
  }
}

async function catchError(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('node control - replication state and repointing', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let other: RedisServer;
  const pool = clientPool();
  beforeAll(async () => {
    [primary, other] = await Promise.all([
      startRedis({ dir: tempDir('nc-p') }),
      startRedis({ dir: tempDir('nc-q') }),
    ]);
    replica = await startRedis({
      dir: tempDir('nc-r'),
      replicaOf: { host: primary.host, port: primary.port },
      extraConfig: ['replica-priority 42'],
    });
  });
  afterAll(async () => {
    pool.close();
    await Promise.all([primary.stop(), replica.stop(), other.stop()]);
  });

  it('node control - readReplicationState reports a primary with its online replica', async () => {
    const p = pool.connect(primary);
    await p.set('k', 'v');
    const s = await waitInSync(p, 1);
    expect(s).toMatchObject({
      role: 'primary',
      failoverState: 'no-failover',
      failoverSupported: true,
      replicaPriority: 100,
    });
    expect(s.runId).toMatch(/^[0-9a-f]{40}$/);
    expect(s.replOffset).toBeGreaterThan(0);
    expect(s.primary).toBeUndefined();
    expect(s.replicas).toEqual([
      expect.objectContaining({
        host: '127.0.0.1',
        port: replica.port,
        state: 'online',
        offset: s.replOffset,
      }),
    ]);
  });

  it('node control - readReplicationState reports a replica with its primary, link and offsets', async () => {
    const r = pool.connect(replica);
    const s = await waitFor(
      () => readReplicationState(r),
      (x) => x.primary?.linkUp === true,
    );
    expect(s).toMatchObject({
      role: 'replica',
      replicaPriority: 42,
      failoverState: 'no-failover',
      primary: { host: primary.host, port: primary.port, linkUp: true },
      replicas: [],
    });
    expect(s.primary?.downSinceSeconds).toBeUndefined();
    expect(s.replicaOffset).toBeGreaterThan(0);
    expect(s.runId).not.toBe((await readReplicationState(pool.connect(primary))).runId);
  });

  it('node control - a client that is still connecting is waited for, not failed', async () => {
    // As the agent's node clients are: no offline queue, so a first command would otherwise fail.
    const fresh = new Redis({ host: replica.host, port: replica.port, enableOfflineQueue: false });
    fresh.on('error', () => undefined);
    try {
      expect((await readReplicationState(fresh)).role).toBe('replica');
    } finally {
      fresh.disconnect();
    }
  });

  it('node control - repointReplica is a no-op when the node already follows that primary', async () => {
    const p = pool.connect(primary);
    const r = pool.connect(replica);
    await waitInSync(p, 1);
    const syncs = async () => {
      const stats = await p.info('stats');
      return /sync_full:(\d+)/.exec(stats)?.[1] + '/' + /sync_partial_ok:(\d+)/.exec(stats)?.[1];
    };
    const before = await syncs();
    expect(await repointReplica(r, { host: primary.host, port: primary.port })).toEqual({
      changed: false,
    });
    expect(await syncs()).toBe(before);
    expect((await readReplicationState(r)).primary).toMatchObject({
      port: primary.port,
      linkUp: true,
    });
  });

  it('node control - repointReplica moves a replica to another primary', async () => {
    const q = pool.connect(other);
    const r = pool.connect(replica);
    await q.set('only-on-q', 'yes');
    expect(await repointReplica(r, { host: other.host, port: other.port })).toEqual({
      changed: true,
    });
    const s = await waitFor(
      () => readReplicationState(r),
      (x) => x.primary?.port === other.port && x.primary.linkUp,
      { what: 'replica following the other primary' },
    );
    expect(s.role).toBe('replica');
    expect(await r.get('only-on-q')).toBe('yes');
    expect((await readReplicationState(q)).replicas.map((x) => x.port)).toEqual([replica.port]);
  });
});

describe('node control - safe switchover of a primary with two replicas', () => {
  let primary: RedisServer;
  let target: RedisServer;
  let sibling: RedisServer;
  let outsider: RedisServer;
  const pool = clientPool();
  beforeAll(async () => {
    [primary, outsider] = await Promise.all([
      startRedis({ dir: tempDir('nc-sw-p') }),
      startRedis({ dir: tempDir('nc-sw-x') }),
    ]);
    const replicaOf = { host: primary.host, port: primary.port };
    [target, sibling] = await Promise.all([
      startRedis({ dir: tempDir('nc-sw-t'), replicaOf }),
      startRedis({ dir: tempDir('nc-sw-s'), replicaOf }),
    ]);
  });
  afterAll(async () => {
    pool.close();
    await Promise.all([primary.stop(), target.stop(), sibling.stop(), outsider.stop()]);
  });

  it('node control - a target that is not a replica of that primary is refused and nothing changes', async () => {
    const p = pool.connect(primary);
    await waitInSync(p, 2);
    const err = await catchError(
      safeSwitchover({
        primary: p,
        target: at(outsider),
        targetClient: pool.connect(outsider),
        timeoutMs: 1000,
      }),
    );
    expect(err).toBeInstanceOf(SwitchoverTargetNotReplicaError);
    expect(err).toMatchObject({ code: 'switchover.target-not-replica', state: null });
    expect((err as SwitchoverTargetNotReplicaError).hint).toBeTruthy();
    const after = await readReplicationState(p);
    expect(after).toMatchObject({ role: 'primary', failoverState: 'no-failover' });
    expect(after.replicas).toHaveLength(2);
    expect((await readReplicationState(pool.connect(outsider))).role).toBe('primary');
  });

  it('node control - a switchover sent to a replica is refused as not-primary', async () => {
    const err = await catchError(
      safeSwitchover({
        primary: pool.connect(target),
        target: at(sibling),
        targetClient: pool.connect(sibling),
        timeoutMs: 1000,
      }),
    );
    expect(err).toBeInstanceOf(SwitchoverNotPrimaryError);
    expect(err).toMatchObject({
      code: 'switchover.not-primary',
      follows: { host: primary.host, port: primary.port },
    });
  });

  it('node control - safe switchover keeps every acknowledged write and chains the other replica', async () => {
    const p = pool.connect(primary);
    const t = pool.connect(target);
    const s = pool.connect(sibling);
    const pre = Array.from({ length: 500 }, (_, i) => [`pre:${i}`, String(i)]).flat();
    await p.mset(...pre);
    await waitInSync(p, 2);

    // A writer in a tight loop during the switchover; it counts a write only on an OK reply.
    const writer = pool.connect(primary, { retries: 0 });
    await writer.ping();
    const acked: number[] = [];
    const failed: number[] = [];
    let stop = false;
    const writing = (async () => {
      for (let i = 0; !stop && i < 500_000; i++) {
        try {
          if ((await writer.set(`w:${i}`, String(i))) === 'OK') acked.push(i);
          else failed.push(i);
        } catch {
          failed.push(i); // READONLY once the old primary is demoted, or a dropped connection
        }
      }
    })();
    await waitFor(
      () => acked.length,
      (n) => n > 100,
    );
    const ackedBefore = acked.length;

    const result = await safeSwitchover({
      primary: p,
      target: at(target),
      targetClient: t,
      timeoutMs: 5000,
    });
    stop = true;
    await writing;

    expect(acked.length).toBeGreaterThan(ackedBefore);
    expect(typeof result.pauseMs).toBe('number');
    expect(result.pauseMs).toBeGreaterThan(0);
    expect(result.totalMs).toBeGreaterThanOrEqual(result.pauseMs);
    // The old primary's offset while paused can only be observed when the pause outlasts a poll.
    expect(result.offset).toBeGreaterThanOrEqual(result.pausedAtOffset ?? 0);

    // Writes refused during the switch are retried against the new primary, as a client would.
    for (const i of failed) {
      if ((await t.set(`w:${i}`, String(i))) === 'OK') acked.push(i);
    }
    const keys = acked.map((i) => `w:${i}`);
    for (let k = 0; k < keys.length; k += 1000) {
      const chunk = keys.slice(k, k + 1000);
      const values = await t.mget(...chunk);
      const missing = chunk.filter((key, j) => values[j] !== key.slice(2));
      expect(missing).toEqual([]);
    }
    expect(await t.mget('pre:0', 'pre:499')).toEqual(['0', '499']);

    const newPrimary = await readReplicationState(t);
    expect(newPrimary.role).toBe('primary');
    const oldPrimary = await readReplicationState(p);
    expect(oldPrimary).toMatchObject({
      role: 'replica',
      failoverState: 'no-failover',
      primary: { host: target.host, port: target.port },
    });

    // FAILOVER leaves the other replica behind the old primary: chained replication.
    const chained = await readReplicationState(s);
    expect(chained.primary).toMatchObject({ host: primary.host, port: primary.port });
    expect(await repointReplica(s, { host: target.host, port: target.port })).toEqual({
      changed: true,
    });
    await t.set('after-repoint', '1');
    const moved = await waitFor(
      () => readReplicationState(s),
      (x) => x.primary?.port === target.port && x.primary.linkUp,
      { what: 'sibling following the new primary' },
    );
    expect(moved.role).toBe('replica');
    await waitInSync(t, 2);
    expect(await s.get('after-repoint')).toBe('1');
    expect(await s.dbsize()).toBe(await t.dbsize());
  });
});

describe('node control - switchover that cannot complete', () => {
  let primary: RedisServer;
  let target: RedisServer;
  const pool = clientPool();
  beforeAll(async () => {
    primary = await startRedis({ dir: tempDir('nc-to-p') });
    target = await startRedis({
      dir: tempDir('nc-to-t'),
      replicaOf: { host: primary.host, port: primary.port },
    });
  });
  afterAll(async () => {
    pool.close();
    await Promise.all([primary.stop(), target.stop()]);
  });

  it('node control - a switchover is refused while another failover is in progress', async () => {
    const p = pool.connect(primary);
    await waitInSync(p, 1);
    await whileStopped(target, async () => {
      await p.set('lag', 'x');
      await p.call('FAILOVER', 'TO', target.host, String(target.port), 'TIMEOUT', '30000');
      try {
        const err = await catchError(
          safeSwitchover({
            primary: p,
            target: at(target),
            targetClient: pool.connect(target),
            timeoutMs: 1000,
          }),
        );
        expect(err).toBeInstanceOf(SwitchoverInProgressError);
        expect(err).toMatchObject({
          code: 'switchover.in-progress',
          failoverState: 'waiting-for-sync',
        });
      } finally {
        await p.call('FAILOVER', 'ABORT');
      }
    });
    expect(await readReplicationState(p)).toMatchObject({
      role: 'primary',
      failoverState: 'no-failover',
    });
  });

  it('node control - a switchover that times out is rolled back and the primary keeps taking writes', async () => {
    const p = pool.connect(primary);
    await waitInSync(p, 1);
    const err = await whileStopped(target, async () => {
      // The target is frozen, so it cannot acknowledge what is written now.
      await p.mset(
        ...Array.from({ length: 200 }, (_, i) => [`burst:${i}`, 'x'.repeat(100)]).flat(),
      );
      return catchError(
        safeSwitchover({
          primary: p,
          target: at(target),
          targetClient: pool.connect(target),
          timeoutMs: 200,
        }),
      );
    });
    expect(err).toBeInstanceOf(SwitchoverTimeoutError);
    expect(err).toMatchObject({ code: 'switchover.offset-timeout', timeoutMs: 200 });
    expect((err as SwitchoverTimeoutError).bytesBehind).toBeGreaterThan(0);
    expect((err as SwitchoverTimeoutError).message).toMatch(/\d+ bytes behind/);

    expect(await readReplicationState(p)).toMatchObject({
      role: 'primary',
      failoverState: 'no-failover',
    });
    expect(await p.set('after-rollback', '1')).toBe('OK');
    const t = pool.connect(target);
    expect((await readReplicationState(t)).role).toBe('replica');
    await waitInSync(p, 1);
    expect(await t.get('after-rollback')).toBe('1');
  });
});

describe('node control - forced promotion', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  const pool = clientPool();
  beforeAll(async () => {
    primary = await startRedis({ dir: tempDir('nc-fp-p') });
    replica = await startRedis({
      dir: tempDir('nc-fp-r'),
      replicaOf: { host: primary.host, port: primary.port },
    });
  });
  afterAll(async () => {
    pool.close();
    await Promise.all([primary.stop(), replica.stop()]);
  });

  it('node control - forcePromote makes a replica of a dead primary a primary and reports its lag', async () => {
    const p = pool.connect(primary);
    const r = pool.connect(replica);
    await p.set('before', '1');
    await waitInSync(p, 1);

    // Freeze the replica, write more than the loopback socket buffers hold, then crash the
    // primary: what was still in its output buffer never reaches the replica.
    let primaryOffset = 0;
    await whileStopped(replica, async () => {
      const big = 'x'.repeat(1024 * 1024);
      for (let i = 0; i < 32; i++) await p.set(`big:${i}`, big);
      primaryOffset = (await readReplicationState(p)).replOffset;
      await primary.kill();
    });

    const down = await waitFor(
      () => readReplicationState(r),
      (x) => x.primary?.linkUp === false,
      { what: 'replica noticing its primary is gone' },
    );
    expect(down.role).toBe('replica');
    expect(down.primary?.downSinceSeconds).toBeGreaterThanOrEqual(0);

    const promoted = await forcePromote({ target: r, primaryOffset });
    expect(promoted.offset).toBeGreaterThan(0);
    expect(promoted.bytesBehind).toBe(primaryOffset - promoted.offset);
    expect(promoted.bytesBehind).toBeGreaterThan(0);
    expect(promoted.previousPrimary).toEqual({ host: primary.host, port: primary.port });

    expect((await readReplicationState(r)).role).toBe('primary');
    expect(await r.set('after', '1')).toBe('OK');
    expect(await r.get('before')).toBe('1');

    // Without the old primary's offset there is nothing to compare with; promoting twice is harmless.
    const again = await forcePromote({ target: r });
    expect(again.bytesBehind).toBeNull();
    expect(again.previousPrimary).toBeUndefined();
    expect(again.offset).toBeGreaterThanOrEqual(promoted.offset);
  });
});

describe('node control - replica choice and reply classification', () => {
  const c = (id: string, priority: number, offset: number, runId: string, usable?: boolean) => ({
    id,
    priority,
    offset,
    runId,
    ...(usable === undefined ? {} : { usable }),
  });

  it('node control - chooseBestReplica prefers low priority, then high offset, then small run id', () => {
    expect(
      chooseBestReplica([c('a', 100, 900, 'aa'), c('b', 10, 100, 'bb'), c('c', 100, 1000, 'cc')])
        ?.id,
    ).toBe('b');
    expect(chooseBestReplica([c('a', 100, 900, 'aa'), c('c', 100, 1000, 'cc')])?.id).toBe('c');
    expect(chooseBestReplica([c('y', 100, 1000, 'f0'), c('x', 100, 1000, 'E1')])?.id).toBe('x');
  });

  it('node control - chooseBestReplica never picks priority 0 or an unusable replica', () => {
    expect(chooseBestReplica([c('a', 0, 5000, 'aa'), c('b', 100, 10, 'bb')])?.id).toBe('b');
    expect(chooseBestReplica([c('a', 1, 5000, 'aa', false), c('b', 100, 10, 'bb', true)])?.id).toBe(
      'b',
    );
    expect(chooseBestReplica([c('a', 0, 5000, 'aa'), c('b', 5, 1, 'bb', false)])).toBeUndefined();
    expect(chooseBestReplica([])).toBeUndefined();
  });

  it('node control - FAILOVER and REPLICAOF error replies become typed errors', () => {
    const p = { host: '10.0.0.1', port: 6379 };
    const t = { host: '10.0.0.2', port: 6379 };
    const code = (reply: string) => classifyFailoverReply(p, t, reply).code;
    expect(code('ERR FAILOVER target HOST and PORT is not a replica.')).toBe(
      'switchover.target-not-replica',
    );
    expect(code('ERR FAILOVER target replica is not online.')).toBe(
      'switchover.target-not-replica',
    );
    expect(code('ERR FAILOVER requires connected replicas.')).toBe('switchover.target-not-replica');
    expect(code('ERR FAILOVER is not valid when server is a replica.')).toBe(
      'switchover.not-primary',
    );
    expect(code('ERR FAILOVER already in progress.')).toBe('switchover.in-progress');
    expect(code("ERR unknown command 'FAILOVER', with args beginning with: 'TO' ")).toBe(
      'switchover.unsupported',
    );
    expect(code("NOPERM this user has no permissions to run the 'failover' command")).toBe(
      'node.command-failed',
    );
    expect(classifyReplicaofReply(p, 'ERR REPLICAOF not allowed while failing over.').code).toBe(
      'switchover.in-progress',
    );
    for (const reply of ['ERR FAILOVER is not valid when server is a replica.', 'ERR x']) {
      const err = classifyFailoverReply(p, t, reply);
      expect(err.hint).toBeTruthy();
      expect(err.message).toContain('10.0.0.1:6379');
    }
  });
});
