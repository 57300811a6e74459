/**
 * Switchover and failover inside a region, end to end: the real CLI, real agents, real Redis
 * nodes in three shards per region, and real ioredis clients in Sentinel mode that find the
 * primaries through the agents' Sentinel-compatible endpoints.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { HistoryEventView, OperationView, StatusReport } from '@georep/core';
import {
  planGroup,
  startGroup,
  tempDir,
  waitFor,
  type GroupPlan,
  type LocalGroup,
} from '@georep/testkit';
import { agentCommand, georep } from './helpers.js';

const GROUP = 'sw';
const EU = 'eu-west';
const US = 'us-east';
const FAILOVER = { downAfterMs: 1500, failoverTimeoutMs: 5000, switchoverTimeoutMs: 3000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('switchover and failover', () => {
  let plan: GroupPlan;
  let group: LocalGroup;
  const clients: Redis[] = [];

  const nats = (region: string) =>
    `nats://127.0.0.1:${plan.regions.find((r) => r.name === region)!.nats.port}`;
  const cli = (args: string[], region = EU) =>
    georep(['--nats', nats(region), '--group', GROUP, ...args]);
  const status = async (region: string): Promise<StatusReport> => {
    const run = await cli(['status', '--region', region, '--json'], region);
    if (run.code !== 0) throw new Error(`georep status: ${run.stderr}`);
    return JSON.parse(run.stdout) as StatusReport;
  };
  /** shard → node id of the up primary, as the region's agent reports it. */
  const primaries = async (region: string): Promise<Record<string, string>> => {
    const r = (await status(region)).regions.find((x) => x.name === region)!;
    return Object.fromEntries(
      r.nodes
        .filter((n) => n.up && n.role === 'primary')
        .map((n): [string, string] => [n.shard ?? 'main', n.id]),
    );
  };
  const history = async (): Promise<HistoryEventView[]> =>
    JSON.parse((await cli(['history', '--json', '--limit', '500'])).stdout) as HistoryEventView[];
  const nodePlan = (id: string) => plan.regions.flatMap((r) => r.nodes).find((n) => n.id === id)!;
  const direct = (id: string) => {
    const c = new Redis(nodePlan(id).port, '127.0.0.1');
    clients.push(c);
    return c;
  };
  /** A client in Sentinel mode that knows the endpoints of both agents. */
  const sentinelClient = (name: string) => {
    const c = new Redis({
      sentinels: plan.regions.map((r) => ({ host: '127.0.0.1', port: r.agent.sentinelPort })),
      name,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 20,
      sentinelRetryStrategy: () => 50,
    });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  const jsonError = (stderr: string) =>
    (JSON.parse(stderr) as { error: { code: string; message: string } }).error;

  beforeAll(async () => {
    plan = await planGroup({
      group: GROUP,
      dir: tempDir('switchover'),
      regions: [EU, US],
      replicas: 1,
      shards: 3,
      ports: 'free',
      health: { intervalMs: 250, downAfterMs: 1500 },
      agent: { failover: FAILOVER },
    });
    group = await startGroup(plan, { agentCommand, readyTimeoutMs: 30_000 });
    await waitFor(
      () => primaries(EU),
      (p) => Object.keys(p).length === 3,
      { timeoutMs: 20_000, intervalMs: 250, what: 'three primaries in eu-west' },
    );
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await group?.stop();
  });

  it('switchover - invalid batches are refused before anything changes', async () => {
    const before = await primaries(EU);
    const twoInOneShard = await cli([
      'switchover',
      '--region',
      EU,
      '--node',
      'eu-west-s1-1',
      '--node',
      'eu-west-s1-2',
      '--json',
    ]);
    expect(twoInOneShard.code).toBe(2);
    expect(jsonError(twoInOneShard.stderr).code).toBe('switchover.duplicate-shard');

    const primaryAsTarget = await cli(['switchover', '--region', EU, '--node', 'eu-west-s2-1']);
    expect(primaryAsTarget.code).toBe(6);
    expect(primaryAsTarget.stderr).toContain('eu-west-s2-1 cannot become primary');
    expect(primaryAsTarget.stderr).toContain('[switchover.target-not-replica]');
    expect(primaryAsTarget.stderr).toContain('what to do:');

    const targets = Array.from({ length: 51 }, (_, i) => ['--node', `eu-west-s${i + 1}-2`]).flat();
    const tooMany = await cli(['switchover', '--region', EU, ...targets, '--json']);
    expect(tooMany.code).toBe(2);
    expect(jsonError(tooMany.stderr).code).toBe('switchover.too-many-shards');

    const unknown = await cli(['switchover', '--region', EU, '--node', 'nope', '--json']);
    expect(unknown.code).toBe(5);
    expect(jsonError(unknown.stderr).code).toBe('switchover.unknown-node');

    expect(await primaries(EU)).toEqual(before);
    expect((await history()).filter((e) => e.kind === 'switchover')).toEqual([]);
  });

  it('switchover - a safe switchover of two shards loses no acknowledged write and clients follow', async () => {
    const shards = ['s1', 's2'];
    const writers = shards.map((shard) => {
      const client = sentinelClient(`${EU}:${shard}`);
      const acked: number[] = [];
      let stop = false;
      let lastAck = 0;
      let longestGapMs = 0;
      const done = (async () => {
        await client.set(`w:${shard}:ready`, '1');
        for (let i = 0; !stop && i < 100_000; i++) {
          try {
            await client.set(`w:${shard}:${i}`, String(i));
            const now = performance.now();
            if (lastAck !== 0) longestGapMs = Math.max(longestGapMs, now - lastAck);
            lastAck = now;
            acked.push(i);
          } catch {
            // Not acknowledged: not counted, and allowed to be missing.
          }
          await sleep(1);
        }
      })();
      return {
        shard,
        client,
        acked,
        done,
        stop: () => (stop = true),
        gap: () => longestGapMs,
      };
    });
    await sleep(700);
    const run = await cli([
      'switchover',
      '--region',
      EU,
      '--node',
      'eu-west-s1-2',
      '--node',
      'eu-west-s2-2',
      '--wait',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const op = JSON.parse(run.stdout) as OperationView;
    expect(op.status).toBe('succeeded');
    const results = op.result!.shards as { shard: string; to: string; pauseMs: number }[];
    expect(results.map((r) => [r.shard, r.to]).sort()).toEqual([
      ['s1', 'eu-west-s1-2'],
      ['s2', 'eu-west-s2-2'],
    ]);
    for (const r of results) expect(r.pauseMs).toBeGreaterThanOrEqual(0);
    await sleep(1000);
    for (const w of writers) w.stop();
    await Promise.all(writers.map((w) => w.done));

    for (const w of writers) {
      const newPrimary = direct(`eu-west-${w.shard}-2`);
      expect(await newPrimary.call('ROLE').then((r) => (r as string[])[0])).toBe('master');
      expect(w.acked.length).toBeGreaterThan(100);
      const values = await newPrimary.mget(w.acked.map((i) => `w:${w.shard}:${i}`));
      const missing = w.acked.filter((_, k) => values[k] === null);
      expect(missing, `acknowledged writes missing in ${w.shard}`).toEqual([]);
      // Writes continued after the switchover: the client followed the new primary.
      expect(w.acked[w.acked.length - 1]).toBeGreaterThan(w.acked.length / 2);
      console.log(
        `shard ${w.shard}: longest gap between acknowledged writes ${w.gap().toFixed(0)} ms`,
      );
    }
    expect(await primaries(EU)).toEqual({
      s1: 'eu-west-s1-2',
      s2: 'eu-west-s2-2',
      s3: 'eu-west-s3-1',
    });
    const endpoint = new Redis(plan.regions[1]!.agent.sentinelPort, '127.0.0.1');
    clients.push(endpoint);
    expect(await endpoint.call('SENTINEL', 'get-master-addr-by-name', `${EU}:s1`)).toEqual([
      '127.0.0.1',
      String(nodePlan('eu-west-s1-2').port),
    ]);
    // Replication of each shard follows its new primary: writes there reach the same shard of
    // us-east.
    for (const shard of ['s1', 's2']) {
      await direct(`eu-west-${shard}-2`).set(`after-switchover-${shard}`, 'yes');
      await waitFor(
        () => direct(`us-east-${shard}-1`).get(`after-switchover-${shard}`),
        (v) => v === 'yes',
        { timeoutMs: 15_000, intervalMs: 200, what: `the write in ${shard} in us-east` },
      );
    }
  });

  it('switchover - a retried request with the same client token runs once', async () => {
    const args = ['switchover', '--region', EU, '--node', 'eu-west-s3-2', '--client-token', 'sw-3'];
    const first = await cli([...args, '--wait', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const again = await cli([...args, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const a = JSON.parse(first.stdout) as OperationView;
    const b = JSON.parse(again.stdout) as OperationView;
    expect(b.id).toBe(a.id);
    expect(b.status).toBe('succeeded');
    const events = (await history()).filter(
      (e) => e.kind === 'switchover' && e.message.startsWith(`${EU}/s3`),
    );
    expect(events).toHaveLength(1);
  });

  it('switchover - a maintenance-window switchover waits for the window, survives a restart, and can be cancelled', async () => {
    // Open a window 30 s from now (UTC wall clock), one minute long: time for two restarts first.
    const opensAt = Math.ceil((Date.now() + 30_000) / 1000) * 1000;
    const start = new Date(opensAt).toISOString().slice(11, 19);
    const region = plan.regions.find((r) => r.name === EU)!;
    const config = JSON.parse(readFileSync(region.agent.configFile, 'utf8')) as Record<
      string,
      unknown
    >;
    config.maintenanceWindow = { start, durationMinutes: 1, timeZone: 'UTC' };
    writeFileSync(region.agent.configFile, JSON.stringify(config));
    await group.restartAgent(EU);
    await waitFor(
      () => primaries(EU),
      (p) => Object.keys(p).length === 3,
      {
        timeoutMs: 20_000,
        what: 'eu-west agent back',
      },
    );

    const scheduled = await cli([
      'switchover',
      '--region',
      EU,
      '--node',
      'eu-west-s1-1',
      '--when',
      'maintenance-window',
      '--json',
    ]);
    expect(scheduled.code, scheduled.stderr).toBe(0);
    const op = JSON.parse(scheduled.stdout) as OperationView;
    expect(op.status).toBe('pending');
    const other = JSON.parse(
      (
        await cli([
          'switchover',
          '--region',
          EU,
          '--node',
          'eu-west-s2-1',
          '--when',
          'maintenance-window',
          '--json',
        ])
      ).stdout,
    ) as OperationView;
    const cancel = await cli(['operation', 'cancel', other.id, '--json']);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect((JSON.parse(cancel.stdout) as OperationView).status).toBe('cancelled');
    const cancelAgain = await cli(['operation', 'cancel', other.id, '--json']);
    expect(jsonError(cancelAgain.stderr).code).toBe('operation.not-cancellable');

    // Kept across a restart of the agent that runs it.
    await group.restartAgent(EU);
    const show = async (id: string) =>
      JSON.parse((await cli(['operation', 'show', id, '--json'])).stdout) as OperationView;
    expect(Date.now()).toBeLessThan(opensAt);
    expect((await show(op.id)).status).toBe('pending');

    const done = await waitFor(
      () => show(op.id),
      (o) => o.status === 'succeeded' || o.status === 'failed',
      { timeoutMs: 60_000, intervalMs: 500, what: 'the scheduled switchover' },
    );
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(done.startedAt!).toBeGreaterThanOrEqual(opensAt);
    expect((await show(other.id)).status).toBe('cancelled');
    const now = await primaries(EU);
    expect(now.s1).toBe('eu-west-s1-1');
    expect(now.s2).toBe('eu-west-s2-2');
  }, 120_000);

  it('failover - a killed primary is replaced within downAfterMs + 2 s, clients follow, and it returns as a replica', async () => {
    const victimId = (await primaries(EU)).s1!;
    const survivorId = victimId === 'eu-west-s1-1' ? 'eu-west-s1-2' : 'eu-west-s1-1';
    const client = sentinelClient(`${EU}:s1`);
    await client.set('before-kill', '1');
    const eu = group.region(EU);
    const victim = eu.nodes[plan.regions[0]!.nodes.findIndex((n) => n.id === victimId)]!;
    const killedAt = Date.now();
    await victim.kill();
    // Writes through Sentinel discovery resume on their own.
    const resumedAt = await waitFor(
      async () => {
        try {
          await client.set('after-kill', '1');
          return Date.now();
        } catch {
          return null;
        }
      },
      (t) => t !== null,
      { timeoutMs: 20_000, intervalMs: 50, what: 'writes after the primary was killed' },
    );
    const promoted = (await history()).find(
      (e) => e.kind === 'failover.auto' && e.message.startsWith(`${EU}/s1`),
    );
    expect(promoted, 'an automatic failover in the history').toBeDefined();
    expect(promoted!.message).toContain(`${survivorId} promoted`);
    expect(promoted!.at - killedAt).toBeLessThanOrEqual(FAILOVER.downAfterMs + 2000);
    console.log(
      `failover: promoted ${promoted!.at - killedAt} ms after the kill, writes resumed after ${resumedAt! - killedAt} ms`,
    );
    const metrics = await (
      await fetch(`http://127.0.0.1:${plan.regions[0]!.agent.httpPort}/metrics`)
    ).text();
    expect(metrics).toMatch(/georep_failovers_total\{[^}]*shard="s1"[^}]*\} 1/);
    expect(metrics).toMatch(
      new RegExp(`georep_shard_primary\\{[^}]*shard="s1"[^}]*node="${survivorId}"[^}]*\\} 1`),
    );
    expect(await direct(survivorId).get('before-kill')).toBe('1');
    expect(await direct(survivorId).get('after-kill')).toBe('1');
    // Replication follows the promoted primary of the first shard: its writes reach us-east.
    await waitFor(
      async () => direct((await primaries(US)).s1!).get('after-kill'),
      (v) => v === '1',
      { timeoutMs: 20_000, intervalMs: 200, what: 'the write after the failover in us-east' },
    );

    await victim.restart();
    await waitFor(
      async () => {
        const r = (await status(EU)).regions.find((x) => x.name === EU)!;
        return r.nodes.find((n) => n.id === victimId);
      },
      (n) =>
        n?.up === true &&
        n.role === 'replica' &&
        n.primary?.port === nodePlan(survivorId).port &&
        n.primary.linkUp,
      { timeoutMs: 20_000, intervalMs: 250, what: 'the old primary back as a replica' },
    );
    expect((await history()).some((e) => e.kind === 'failover.demoted')).toBe(true);
  });

  it("failover - regional failover moves a region's Sentinel clients to another region, fences the old one, and failback returns them", async () => {
    const client = sentinelClient(EU); // EU names its first shard
    await client.set('rf:before', '1');
    const answer = async (name: string) => {
      const endpoint = new Redis(plan.regions[1]!.agent.sentinelPort, '127.0.0.1');
      try {
        return (await endpoint.call('SENTINEL', 'get-master-addr-by-name', name)) as string[];
      } finally {
        endpoint.disconnect();
      }
    };
    const euPrimary = (await primaries(EU)).s1!;
    const usPrimary = (await primaries(US)).s1!;
    expect(await answer(EU)).toEqual(['127.0.0.1', String(nodePlan(euPrimary).port)]);

    // The data at risk is eu-west's backlog for us-east, known once replication measured it.
    await waitFor(
      async () =>
        (await status(EU)).regions
          .find((r) => r.name === EU)
          ?.replication?.links.find((l) => l.peer === US)?.backlog,
      (b) => b != null,
      { timeoutMs: 20_000, intervalMs: 250, what: 'the backlog of eu-west for us-east measured' },
    );
    const dry = await cli(['failover', '--from', EU, '--to', US, '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const plan1 = JSON.parse(dry.stdout) as {
      changes: { name: string; after: { port: number } | null }[];
      dataAtRisk: { operations: number } | null;
    };
    expect(plan1.changes.find((c) => c.name === EU)?.after?.port).toBe(nodePlan(usPrimary).port);
    expect(plan1.dataAtRisk?.operations, dry.stdout).toBeGreaterThanOrEqual(0);
    // A dry run changes nothing.
    expect(await answer(EU)).toEqual(['127.0.0.1', String(nodePlan(euPrimary).port)]);

    const run = await cli(['failover', '--from', EU, '--to', US, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const op = JSON.parse(run.stdout) as OperationView;
    expect(op.status).toBe('succeeded');
    expect(op.result!.changes).toEqual(plan1.changes);
    for (const change of plan1.changes) {
      expect(await answer(change.name)).toEqual(['127.0.0.1', String(change.after!.port)]);
    }
    // The Sentinel client lands in us-east; a client that did not move cannot write into eu-west.
    await waitFor(
      async () =>
        client.set('rf:during', '1').then(
          () => true,
          () => false,
        ),
      (ok) => ok,
      { timeoutMs: 10_000, intervalMs: 100, what: 'a write through Sentinel after the failover' },
    );
    expect(await direct(usPrimary).get('rf:during')).toBe('1');
    const stuck = new Redis({ port: nodePlan(euPrimary).port, commandTimeout: 700 });
    stuck.on('error', () => undefined);
    clients.push(stuck);
    await waitFor(
      async () =>
        stuck.set('rf:stuck', '1').then(
          () => 'written',
          (e: Error) => e.message,
        ),
      (outcome) => outcome !== 'written',
      { timeoutMs: 10_000, intervalMs: 200, what: 'the fence of eu-west' },
    );
    expect((await status(US)).regions.find((r) => r.name === EU)?.routedTo).toBe(US);
    const usMetrics = await (
      await fetch(`http://127.0.0.1:${plan.regions[1]!.agent.httpPort}/metrics`)
    ).text();
    expect(usMetrics).toMatch(
      /georep_region_routed\{[^}]*region="eu-west"[^}]*to="us-east"[^}]*\} 1/,
    );
    const human = await cli(['status', '--region', US], US);
    expect(human.stdout).toMatch(new RegExp(`${EU}\\s+up\\s+linked, served by ${US}`));

    const back = await cli(['failback', EU, '--json']);
    expect(back.code, back.stderr).toBe(0);
    expect((JSON.parse(back.stdout) as OperationView).status).toBe('succeeded');
    expect(await answer(EU)).toEqual(['127.0.0.1', String(nodePlan(euPrimary).port)]);
    // What was written in us-east meanwhile is in eu-west, and eu-west takes writes again.
    expect(await direct(euPrimary).get('rf:during')).toBe('1');
    // A client that reconnects (or listens to +switch-master) is sent back to eu-west; one that
    // stays on us-east meanwhile loses nothing, as both regions replicate to each other.
    client.disconnect(true);
    const port = await waitFor(
      async () =>
        client.call('CONFIG', 'GET', 'port').then(
          (r) => (r as string[])[1],
          () => null,
        ),
      (p) => p !== null,
      { timeoutMs: 10_000, intervalMs: 100, what: 'the Sentinel client after the failback' },
    );
    expect(port).toBe(String(nodePlan(euPrimary).port));
    expect(await stuck.set('rf:unstuck', '1')).toBe('OK');
    const again = await cli(['failback', EU, '--json']);
    expect(jsonError(again.stderr).code).toBe('failback.not-failed-over');
  });
});
