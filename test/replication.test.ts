/**
 * Active-active replication end to end: three regions of real servers with their agents, plain
 * ioredis clients writing to each region's primary, and checks that every region ends with the
 * same data.
 */
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '@georep/testkit';
import { georep } from './helpers.js';
import {
  REPLICATED_REGIONS as REGIONS,
  diffDatasets,
  readDataset,
  readKey,
  startReplicatedGroup,
  type ReplicatedGroup,
} from './replication-helpers.js';

describe('active-active replication across three regions', () => {
  let g: ReplicatedGroup;
  const dir = tempDir('replication');
  const client = (region: string) => g.client(region);
  const nats = (region: string) => g.nats(region);
  const status = (region: string) => g.status(region);
  const replicationOf = (region: string) => g.replicationOf(region);

  /** Waits until every region holds the same dataset; returns it. */
  async function converged(what: string, timeoutMs = 60_000) {
    let last: string[] = [];
    await waitFor(
      async () => {
        const sets = await Promise.all(REGIONS.map((r) => readDataset(client(r))));
        last = [...diffDatasets(sets[0]!, sets[1]!), ...diffDatasets(sets[0]!, sets[2]!)];
        return last.length === 0;
      },
      (ok) => ok,
      { timeoutMs, intervalMs: 250, what: `${what} (differences: ${last.slice(0, 5).join('; ')})` },
    );
    return readDataset(client('eu-west'));
  }

  beforeAll(async () => {
    g = await startReplicatedGroup('rep', join(dir, 'group'), {
      watermarkIntervalMs: 1000,
      gcIntervalMs: 1000,
      gcMinAgeMs: 0,
    });
  });

  afterAll(async () => {
    await g?.stop();
  });

  it('writes - plain clients write to any region; every type appears in the others', async () => {
    const eu = client('eu-west');
    await eu.set('greeting', 'hello', 'EX', 300);
    await eu.hset('user:1', { name: 'ann', city: 'Lisbon' });
    await eu.sadd('tags', 'a', 'b', 'c');
    await eu.zadd('board', 10, 'ann', 20, 'bob');
    await eu.rpush('queue', 'j1', 'j2');
    await eu.incrby('hits', 7);
    await client('us-east').set('from-us', 'x');
    await client('ap-south').hset('user:1', 'tier', 'gold');
    const data = await converged('writes reach every region');
    expect(data.get('greeting')).toMatchObject({ type: 'string', value: 'hello' });
    expect(data.get('greeting')!.pttl).toBeGreaterThan(290_000);
    expect(data.get('user:1')?.value).toEqual([
      ['city', 'Lisbon'],
      ['name', 'ann'],
      ['tier', 'gold'],
    ]);
    expect(data.get('tags')?.value).toEqual(['a', 'b', 'c']);
    expect(data.get('board')?.value).toEqual(['ann', '10', 'bob', '20']);
    expect(data.get('queue')?.value).toEqual(['j1', 'j2']);
    expect(data.get('hits')?.value).toBe('7');
    expect(data.get('from-us')?.value).toBe('x');

    await client('us-east').del('greeting');
    await client('ap-south').srem('tags', 'b');
    await converged('a delete and a remove reach every region');
    expect(await readKey(eu, 'greeting')).toBeNull();
    expect(await eu.smembers('tags')).toEqual(expect.arrayContaining(['a', 'c']));
    expect(await eu.scard('tags')).toBe(2);
  });

  it('writes - a batch larger than the NATS max_payload is split and arrives whole', async () => {
    const big = 'b'.repeat(100_000);
    const pipeline = client('eu-west').pipeline();
    for (let i = 0; i < 30; i++) pipeline.set(`big:${i}`, `${i}:${big}`);
    await pipeline.exec();
    for (const r of ['us-east', 'ap-south']) {
      await waitFor(
        async () => await client(r).mget(...Array.from({ length: 30 }, (_, i) => `big:${i}`)),
        (values) => values.every((v, i) => v === `${i}:${big}`),
        { timeoutMs: 20_000, intervalMs: 200, what: `30 values of 100 kB in ${r}` },
      );
    }
  });

  it('counters - concurrent increments in every region add up', async () => {
    const perRegion = 400;
    await Promise.all(
      REGIONS.map(async (r, i) => {
        const c = client(r);
        for (let n = 0; n < perRegion; n++) await c.incrby('counter:shared', i + 1);
      }),
    );
    await converged('counter increments reach every region');
    const expected = String(perRegion * (1 + 2 + 3));
    for (const r of REGIONS) expect(await client(r).get('counter:shared')).toBe(expected);
  });

  it('metrics - /metrics reports applied operations and backlog per peer', async () => {
    const port = g.plan.regions.find((r) => r.name === 'eu-west')!.agent.httpPort;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const applied = /georep_replication_applied_ops\{[^}]*peer="us-east"[^}]*\} (\d+)/.exec(text);
    expect(Number(applied?.[1])).toBeGreaterThan(0);
    expect(text).toMatch(/georep_replication_backlog_messages\{[^}]*peer="ap-south"[^}]*\} \d+/);
    expect(text).toMatch(/georep_replication_captured_ops\{[^}]*\} [1-9]/);
  });

  it('watermarks - every region reports what it applied; the gc horizon moves past old writes', async () => {
    const mark = Date.now();
    for (const r of REGIONS) await client(r).set(`wm:${r}`, 'x');
    const horizon = await waitFor(
      async () => (await replicationOf('us-east'))?.gcHorizon ?? null,
      (h) => h !== null && Number(h.slice(0, 15)) >= mark,
      { timeoutMs: 20_000, intervalMs: 250, what: 'a gc horizon past the writes' },
    );
    // The watermarks are in the group document, so eu-west computes a horizon past them too.
    await waitFor(
      async () => (await replicationOf('eu-west'))?.gcHorizon ?? '',
      (h) => h >= horizon!,
      { timeoutMs: 20_000, intervalMs: 250, what: 'the same horizon in eu-west' },
    );
    const view = await replicationOf('ap-south');
    expect(view?.links.every((l) => l.appliedTag !== null)).toBe(true);
  });

  it('gc - a tombstone is removed everywhere once every region has applied past it', async () => {
    await client('eu-west').set('gc:doomed', 'x');
    await converged('gc:doomed everywhere');
    await client('us-east').del('gc:doomed');
    await converged('the delete everywhere');
    for (const r of REGIONS) expect(await client(r).exists('__georep:m:gc:doomed')).toBe(1);
    // Later writes from every region move every watermark past the delete.
    for (const r of REGIONS) await client(r).set(`gc:after:${r}`, 'y');
    for (const r of REGIONS) {
      await waitFor(
        () => client(r).exists('__georep:m:gc:doomed'),
        (n) => n === 0,
        {
          timeoutMs: 30_000,
          intervalMs: 250,
          what: `the tombstone of gc:doomed collected in ${r}`,
        },
      );
    }
    const s = await replicationOf('eu-west');
    expect(s?.lastGc?.horizon).toMatch(/^\d{15}\.\d{6}\./);
    // A live key keeps its metadata.
    for (const r of REGIONS) expect(await client(r).exists('__georep:m:gc:after:eu-west')).toBe(1);
  });

  it('no echo - a write made in one region is applied once in each other region', async () => {
    const before = await Promise.all(REGIONS.map(replicationOf));
    await client('eu-west').set('echo:probe', 'once');
    await converged('the probe reaches every region');
    // Give an echo time to happen, then check that us-east and ap-south recorded nothing of
    // their own and that eu-west applied nothing back.
    await new Promise((r) => setTimeout(r, 1500));
    const after = await Promise.all(REGIONS.map(replicationOf));
    expect(after[0]!.capture!.ops - before[0]!.capture!.ops).toBe(1);
    expect(after[1]!.capture!.ops).toBe(before[1]!.capture!.ops);
    expect(after[2]!.capture!.ops).toBe(before[2]!.capture!.ops);
    const appliedAtEu = (s: (typeof before)[0]) =>
      s!.links.reduce((sum, l) => sum + l.appliedOps, 0);
    expect(appliedAtEu(after[0])).toBe(appliedAtEu(before[0]));
  });

  it('capture - refused credentials stop capture; once fixed it starts again without an agent restart', async () => {
    const eu = client('eu-west');
    // The primary starts requiring a password the agent does not have; its open connections stay
    // authenticated, and capture's link is cut so that it must log in again.
    await eu.config('SET', 'requirepass', 'not-the-agents');
    try {
      await eu.client('KILL', 'TYPE', 'replica');
      const failed = await waitFor(
        async () => (await replicationOf('eu-west'))?.captureError,
        (e) => e != null,
        { timeoutMs: 15_000, intervalMs: 250, what: 'capture of eu-west failing' },
      );
      expect(failed).toMatch(/auth|NOAUTH|password/i);
      await eu.set('written-while-capture-failed', 'yes');
    } finally {
      await eu.config('SET', 'requirepass', '');
    }
    await waitFor(
      () => client('us-east').get('written-while-capture-failed'),
      (v) => v === 'yes',
      {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: 'the write made while capture failed, in us-east',
      },
    );
    expect((await replicationOf('eu-west'))?.captureError ?? null).toBeNull();
  });

  it('force-unlink - a region that is gone stops holding back the survivors; its backlog is freed', async () => {
    client('ap-south').disconnect();
    await g.group.killRegion('ap-south');
    const eu = client('eu-west');
    for (let i = 0; i < 50; i++) await eu.set(`while-ap-down:${i}`, 'v'.repeat(100));
    const held = await waitFor(
      async () =>
        (await replicationOf('eu-west'))?.links.find((l) => l.peer === 'ap-south')?.backlog,
      (b) => b != null && b.messages > 0,
      { timeoutMs: 15_000, intervalMs: 250, what: 'eu-west holds a backlog for ap-south' },
    );
    expect(held!.bytes).toBeGreaterThan(0);
    await waitFor(
      async () => (await status('eu-west')).regions.find((r) => r.name === 'ap-south')?.state,
      (s) => s === 'down',
      { timeoutMs: 15_000, intervalMs: 250, what: 'ap-south down' },
    );
    const forced = await georep([
      '--nats',
      nats('eu-west'),
      '--group',
      'rep',
      'unlink',
      'ap-south',
      '--force',
      '--yes',
      '--reason',
      'region lost',
    ]);
    expect(forced.code, forced.stderr).toBe(0);
    // The survivors delete ap-south's consumers: with interest retention the stream keeps only
    // what us-east has not acknowledged, which drains to nothing. (An idle mark may be in
    // flight to us-east at any moment, so the backlog is awaited, not sampled once.)
    await waitFor(
      async () => (await replicationOf('eu-west'))?.links,
      (l) => l !== undefined && l.map((x) => x.peer).join() === 'us-east',
      { timeoutMs: 15_000, intervalMs: 250, what: 'eu-west drops its link to ap-south' },
    );
    await waitFor(
      async () => (await replicationOf('eu-west'))?.links[0]?.backlog?.messages ?? 0,
      (m) => m === 0,
      { timeoutMs: 15_000, intervalMs: 250, what: "eu-west's backlog for us-east drained" },
    );
    const nc = await connect({ servers: nats('eu-west') });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await waitFor(
        () => jsm.streams.info('GEOREP_OPS_rep_eu-west'),
        (i) => i.state.messages === 0,
        { timeoutMs: 15_000, intervalMs: 250, what: "eu-west's stream freed" },
      );
      expect(info.state.bytes).toBe(0);
    } finally {
      await nc.close();
    }
    // Replication between the survivors goes on.
    await eu.set('after-unlink', 'yes');
    await waitFor(
      () => client('us-east').get('after-unlink'),
      (v) => v === 'yes',
      { timeoutMs: 10_000, intervalMs: 100, what: 'us-east still receives eu-west writes' },
    );
  });
});
