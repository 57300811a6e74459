/**
 * Replication of regions with several shards: shard `s` of one region is applied into shard `s`
 * of the others, on a stream of its own. eu-west and us-east have shards s1 and s2; ap-south has
 * only s1, so its link reports s2 as unpaired and s2's writes do not travel there.
 */
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHlc, type ShardReplicationStatus } from '@georep/core';
import { tempDir, waitFor } from '@georep/testkit';
import { georep } from './helpers.js';
import { startReplicatedGroup, type ReplicatedGroup } from './replication-helpers.js';

const GROUP = 'shards';

describe('replication of several shards per region', () => {
  let g: ReplicatedGroup;
  const dir = tempDir('replication-shards');
  const until = <T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean) =>
    waitFor(read, ok, { timeoutMs: 20_000, intervalMs: 200, what });

  beforeAll(async () => {
    g = await startReplicatedGroup(
      GROUP,
      join(dir, 'group'),
      { watermarkIntervalMs: 1000 },
      undefined,
      { shards: 2, drop: { 'ap-south': ['s2'] } },
    );
  }, 90_000);

  afterAll(async () => {
    await g?.stop();
  });

  it('writes in each shard reach the same shard of every region that has it, both ways', async () => {
    await g.client('eu-west', 's1').set('k:s1', 'from eu s1');
    await g.client('eu-west', 's2').set('k:s2', 'from eu s2');
    await g.client('us-east', 's2').hset('h:s2', 'by', 'us');
    await g.client('us-east', 's1').set('k:us-s1', 'from us s1');
    await g.client('ap-south', 's1').sadd('set:s1', 'ap');

    await until(
      'eu-west s1 in us-east and ap-south',
      async () => [
        await g.client('us-east', 's1').get('k:s1'),
        await g.client('ap-south', 's1').get('k:s1'),
      ],
      (v) => v.every((x) => x === 'from eu s1'),
    );
    await until(
      'eu-west s2 in us-east s2',
      () => g.client('us-east', 's2').get('k:s2'),
      (v) => v === 'from eu s2',
    );
    await until(
      'us-east s2 in eu-west s2',
      () => g.client('eu-west', 's2').hget('h:s2', 'by'),
      (v) => v === 'us',
    );
    await until(
      'ap-south s1 in both s1',
      async () => [
        await g.client('eu-west', 's1').sismember('set:s1', 'ap'),
        await g.client('us-east', 's1').sismember('set:s1', 'ap'),
      ],
      (v) => v.every((x) => x === 1),
    );
    // Shards pair by name: nothing crosses into another shard, and s2 has nowhere to go in
    // ap-south.
    expect(await g.client('us-east', 's1').exists('k:s2', 'h:s2')).toBe(0);
    expect(await g.client('eu-west', 's2').exists('k:s1', 'set:s1')).toBe(0);
    expect(await g.client('ap-south', 's1').exists('k:s2', 'h:s2')).toBe(0);
  });

  it('status - per shard capture and links; the unpaired shard is reported', async () => {
    const rep = await until(
      'both shards applied from us-east',
      () => g.replicationOf('eu-west'),
      (r) =>
        r?.shards?.length === 2 &&
        r.shards.every((s) => s.links.find((l) => l.peer === 'us-east')?.appliedOps !== 0),
    );
    const byShard = new Map(
      rep!.shards!.map((s): [string, ShardReplicationStatus] => [s.shard, s]),
    );
    expect([...byShard.keys()]).toEqual(['s1', 's2']);
    for (const s of byShard.values()) {
      expect(s.capture).not.toBeNull();
      expect(s.primary).toBe(
        `127.0.0.1:${g.plan.regions[0]!.nodes.find((n) => n.shard === s.shard)!.port}`,
      );
    }
    expect(byShard.get('s1')!.links.map((l) => l.peer)).toEqual(['ap-south', 'us-east']);
    expect(byShard.get('s2')!.links.map((l) => l.peer)).toEqual(['us-east']);
    // One link per peer, summed over the shards: us-east's ops are s1's plus s2's, and the
    // watermark is the older shard's tag.
    const us = rep!.links.find((l) => l.peer === 'us-east')!;
    const usPerShard = [...byShard.values()].map((s) => s.links.find((l) => l.peer === 'us-east')!);
    expect(us.appliedOps).toBe(usPerShard.reduce((a, l) => a + l.appliedOps, 0));
    expect(us.appliedTag).toBe(usPerShard.map((l) => l.appliedTag!).sort()[0]);
    expect(us.unpairedShards).toBeUndefined();
    const ap = rep!.links.find((l) => l.peer === 'ap-south')!;
    expect(ap.unpairedShards).toContain('shard s2 of eu-west has no counterpart in ap-south');

    const text = await georep([
      '--nats',
      g.nats('eu-west'),
      '--group',
      GROUP,
      'status',
      '--region',
      'eu-west',
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/SHARD\s+PEER\s+LAG/);
    expect(text.stdout).toMatch(/\ns2\s+us-east\s/);
    expect(text.stdout).toContain(
      'warning: shard s2 of eu-west has no counterpart in ap-south: not replicated between them',
    );
    // Awaited, not sampled once: an idle mark may be in flight to ap-south at any moment.
    const metrics = await waitFor(
      async () =>
        (await fetch(`http://127.0.0.1:${g.plan.regions[0]!.agent.httpPort}/metrics`)).text(),
      (m) =>
        /georep_replication_shard_backlog_messages\{peer="ap-south",shard="s1",[^}]*\} 0/.test(m),
      { timeoutMs: 15_000, intervalMs: 250, what: "eu-west's s1 backlog for ap-south at 0" },
    );
    expect(metrics).toMatch(/georep_replication_shard_lag_seconds\{peer="us-east",shard="s2",/);
    expect(metrics).toMatch(
      /georep_replication_shard_backlog_messages\{peer="ap-south",shard="s1",[^}]*\} 0/,
    );
    expect(metrics).not.toMatch(/shard_backlog_messages\{peer="ap-south",shard="s2",/);
    // ap-south sees it from its side too.
    const apRep = await g.replicationOf('ap-south');
    expect(apRep!.links.find((l) => l.peer === 'eu-west')!.unpairedShards).toContain(
      'shard s2 of eu-west has no counterpart in ap-south',
    );
  });

  it('streams - one per shard, with consumers only for the regions that have the shard', async () => {
    const nc = await connect({ servers: g.nats('eu-west') });
    try {
      const jsm = await jetstreamManager(nc);
      const consumers = async (stream: string) =>
        (await jsm.consumers.list(stream).next()).map((c) => c.name).sort();
      expect(await consumers(`GEOREP_OPS_${GROUP}_eu-west_s1`)).toEqual([
        'peer-ap-south',
        'peer-us-east',
      ]);
      expect(await consumers(`GEOREP_OPS_${GROUP}_eu-west_s2`)).toEqual(['peer-us-east']);
      // Nothing is held for a region that cannot consume it.
      const s2 = await jsm.streams.info(`GEOREP_OPS_${GROUP}_eu-west_s2`);
      await until(
        's2 stream drained',
        async () => (await jsm.streams.info(`GEOREP_OPS_${GROUP}_eu-west_s2`)).state.messages,
        (n) => n === 0,
      );
      expect(s2.config.subjects).toEqual([`georep.${GROUP}.ops.eu-west.s2`]);
    } finally {
      await nc.close();
    }
  });

  it('watermarks - the gc horizon moves on while nobody writes (idle shards send marks)', async () => {
    // Without marks, the horizon stays at the oldest last write of any shard of any region.
    const since = Date.now();
    const horizon = await waitFor(
      async () => (await g.replicationOf('eu-west'))?.gcHorizon ?? null,
      (h) => h !== null && decodeHlc(h).ms > since,
      { timeoutMs: 30_000, intervalMs: 500, what: 'a gc horizon newer than the last write' },
    );
    expect(decodeHlc(horizon!).ms).toBeGreaterThan(since);
  });

  it('unlink - a graceful unlink drains what the region wrote just before, in every shard', async () => {
    // A burst in us-east, then at once a graceful unlink: it waits until eu-west applied it all.
    const N = 20_000;
    for (const shard of ['s1', 's2']) {
      const pipe = g.client('us-east', shard).pipeline();
      for (let i = 0; i < N; i++) pipe.set(`burst:${shard}:${i}`, String(i));
      await pipe.exec();
    }
    const run = await georep([
      '--nats',
      g.nats('eu-west'),
      '--group',
      GROUP,
      'unlink',
      'us-east',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      status: 'succeeded',
      result: { linkState: 'unlinked' },
    });
    for (const shard of ['s1', 's2']) {
      const eu = g.client('eu-west', shard);
      const keys = await eu.eval(
        `local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + 1 end return n`,
        0,
        `burst:${shard}:*`,
      );
      expect(keys, `keys of the burst in eu-west ${shard}`).toBe(N);
    }
    // Once eu-west dropped its link, what us-east writes stays there.
    await until(
      'eu-west drops its link to us-east',
      async () => (await g.replicationOf('eu-west'))?.links.map((l) => l.peer),
      (peers) => peers !== undefined && !peers.includes('us-east'),
    );
    await g.client('us-east', 's1').set('after-unlink', 'x');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await g.client('eu-west', 's1').exists('after-unlink')).toBe(0);
  });
});
