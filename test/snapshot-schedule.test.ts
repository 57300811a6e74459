/**
 * Snapshot schedules end to end, through the CLI, on real servers: refusals before anything is
 * stored, a manual run, a 5-second schedule with `--keep-last 2` over a minute through agent
 * restarts and an outage, two agents of one region sharing the slots, and a failing run visible
 * in status and metrics until the region recovers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HistoryEventView, OperationView, StatusReport } from '@georep/core';
import {
  planGroup,
  startGroup,
  tempDir,
  waitFor,
  type GroupPlan,
  type LocalGroup,
} from '@georep/testkit';
import { agentCommand, georep, startTwinAgent } from './helpers.js';

/** What `schedule list --json` returns per schedule (the fields the suite reads). */
interface ListEntry {
  id: string;
  paused: boolean;
  nextRunAt: number | null;
  regions: {
    region: string;
    runs: number;
    failures: number;
    inProgress: number;
    lastRun: { status: string; name: string | null } | null;
  }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('snapshot schedules', () => {
  let plan: GroupPlan;
  let group: LocalGroup;
  const dir = tempDir('snapshot-schedule');
  const nats = (region: string) =>
    `nats://127.0.0.1:${plan.regions.find((r) => r.name === region)!.nats.port}`;
  const cli = (args: string[], via = 'us-east') =>
    georep(['--nats', nats(via), '--group', 'sched', ...args]);
  const json = async <T>(args: string[], via = 'us-east'): Promise<T> => {
    const run = await cli([...args, '--json'], via);
    if (run.code !== 0)
      throw new Error(`georep ${args.join(' ')} exited ${run.code}: ${run.stdout} ${run.stderr}`);
    return JSON.parse(run.stdout) as T;
  };
  const schedules = () => json<ListEntry[]>(['snapshot', 'schedule', 'list']);
  const added = async (prefix: string): Promise<string[]> =>
    (await json<HistoryEventView[]>(['history', '--limit', '1000']))
      .filter((e) => e.kind === 'snapshot.added' && e.message.startsWith(`snapshot ${prefix}-`))
      .map((e) => e.message.slice('snapshot '.length));
  const catalog = async (prefix: string): Promise<string[]> =>
    (await json<{ name: string }[]>(['snapshot', 'list']))
      .map((s) => s.name)
      .filter((n) => n.startsWith(`${prefix}-`));
  /** Pauses a schedule and waits until its runs are finished everywhere. */
  const pauseAndSettle = async (id: string) => {
    expect((await cli(['snapshot', 'schedule', 'pause', id])).code).toBe(0);
    await sleep(1500);
    await waitFor(
      schedules,
      (all) => all.find((s) => s.id === id)!.regions.every((r) => r.inProgress === 0),
      { timeoutMs: 30_000, what: `runs of ${id} finished` },
    );
  };

  beforeAll(async () => {
    plan = await planGroup({
      group: 'sched',
      dir: join(dir, 'group'),
      regions: ['eu-west', 'us-east'],
      replicas: 1,
      ports: 'free',
      health: { intervalMs: 500, downAfterMs: 2000 },
      replication: { enabled: false },
      // Killing a region's nodes must leave them down (no promotion), and a short grace makes
      // an agent outage of a few seconds miss slots.
      agent: { failover: { auto: false }, schedules: { missedGraceMs: 4000 } },
    });
    group = await startGroup(plan, { agentCommand, readyTimeoutMs: 30_000 });
    for (const region of plan.regions) {
      const p = region.nodes[0]!;
      const client = new Redis(p.port, p.host);
      for (let i = 0; i < 50; i++) await client.set(`${region.name}:key:${i}`, `value-${i}`);
      client.disconnect();
    }
  });

  afterAll(async () => {
    await group?.stop();
  });

  it('schedule add - bad cron, unknown regions and conflicting retention are refused, nothing stored', async () => {
    const add = (args: string[]) =>
      cli(['snapshot', 'schedule', 'add', 'bad', '--keep-last', '3', ...args]);
    const badCron = await add(['--region', 'eu-west', '--cron', '61 * * * *']);
    expect(badCron.code).toBe(2);
    expect(badCron.stderr).toContain('[schedule.bad-cron]');
    expect(badCron.stderr).toContain('Invalid value for minute: 61');
    expect(badCron.stderr).toContain('what to do:');
    const unknown = await add(['--region', 'mars', '--cron', '0 3 * * *']);
    expect(unknown.code).toBe(5);
    expect(unknown.stderr).toContain('[schedule.unknown-region]');
    expect(unknown.stderr).toContain('eu-west, us-east');
    const conflict = await add(['--region', 'eu-west', '--cron', '0 3 * * *', '--keep-all']);
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toContain('[schedule.retention-conflict]');
    const tooShort = await add([
      '--region',
      'eu-west',
      '--cron',
      '0 3 * * *',
      '--keep-within',
      '2h',
    ]);
    expect(tooShort.code).toBe(2);
    expect(tooShort.stderr).toContain('[schedule.retention-conflict]');
    const both = await add(['--region', 'eu-west', '--all-regions', '--cron', '0 3 * * *']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('[schedule.bad-target]');
    expect(await schedules()).toEqual([]);
    expect(
      (await json<HistoryEventView[]>(['history'])).some((e) => e.kind.startsWith('schedule.')),
    ).toBe(false);
  });

  it('schedule run, pause, resume, remove - a run now, outside the cron, in one or every region', async () => {
    const add = await json<ListEntry>([
      'snapshot',
      'schedule',
      'add',
      'manual',
      '--region',
      'eu-west',
      '--cron',
      '0 0 1 1 *',
      '--keep-all',
    ]);
    expect(add.nextRunAt).toBeGreaterThan(Date.now());
    const op = await json<OperationView>(['snapshot', 'schedule', 'run', 'manual']);
    expect(op).toMatchObject({
      kind: 'snapshot.schedule',
      status: 'succeeded',
      requestedVia: 'eu-west',
    });
    expect(op.result).toMatchObject({ schedule: 'manual', node: 'eu-west-2', keys: 50 });
    expect(String(op.result!.name)).toMatch(/^manual-eu-west-\d{8}T\d{6}Z-manual$/);
    const verify = await json<{ ok: boolean }>(['snapshot', 'verify', String(op.result!.name)]);
    expect(verify.ok).toBe(true);

    expect((await cli(['snapshot', 'schedule', 'pause', 'manual'])).code).toBe(0);
    let entry = (await schedules()).find((s) => s.id === 'manual')!;
    expect(entry).toMatchObject({ paused: true, nextRunAt: null });
    expect(entry.regions[0]).toMatchObject({ region: 'eu-west', runs: 1, failures: 0 });
    expect((await cli(['snapshot', 'schedule', 'resume', 'manual'])).code).toBe(0);
    entry = (await schedules()).find((s) => s.id === 'manual')!;
    expect(entry.paused).toBe(false);

    await json([
      'snapshot',
      'schedule',
      'add',
      'both',
      '--all-regions',
      '--cron',
      '0 0 1 1 *',
      '--keep-last',
      '1',
    ]);
    const ops = await json<OperationView[]>(['snapshot', 'schedule', 'run', 'both']);
    expect(ops.map((o) => [o.requestedVia, o.status]).sort()).toEqual([
      ['eu-west', 'succeeded'],
      ['us-east', 'succeeded'],
    ]);

    for (const id of ['manual', 'both']) {
      expect((await cli(['snapshot', 'schedule', 'remove', id])).code).toBe(0);
    }
    expect(await schedules()).toEqual([]);
    const again = await cli(['snapshot', 'schedule', 'remove', 'manual']);
    expect(again.code).toBe(5);
    expect(again.stderr).toContain('[schedule.not-found]');
    // Removing a schedule keeps its snapshots.
    expect(await catalog('manual')).toHaveLength(1);
  });

  it('schedule - every 5 s with --keep-last 2 over a minute leaves exactly 2 valid snapshots; restarts and an outage never run a slot twice', async () => {
    const startedAt = Date.now();
    await json([
      'snapshot',
      'schedule',
      'add',
      'every5s',
      '--region',
      'eu-west',
      '--cron',
      '*/5 * * * * *',
      '--keep-last',
      '2',
    ]);
    await sleep(22_000);
    // A graceful restart: the run in progress (if any) finishes, the cursor survives.
    await group.restartAgent('eu-west');
    await sleep(12_000);
    // An outage longer than the grace (4 s): the slots meanwhile are recorded as missed.
    const eu = group.region('eu-west').agent!;
    await eu.stop();
    await sleep(11_000);
    await group.restartAgentProcess('eu-west');
    await sleep(Math.max(0, startedAt + 62_000 - Date.now()));
    await pauseAndSettle('every5s');

    const names = await waitFor(
      () => catalog('every5s'),
      (n) => n.length === 2,
      { timeoutMs: 15_000, what: 'exactly two snapshots of every5s in the catalog' },
    );
    const runs = await added('every5s');
    expect(new Set(runs).size).toBe(runs.length);
    expect(runs.length).toBeGreaterThanOrEqual(7);
    // The two kept are the newest two that were made.
    expect([...names].sort()).toEqual([...runs].sort().slice(-2));
    for (const name of names) {
      const verify = await cli(['snapshot', 'verify', name]);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
      expect(verify.stdout).toContain(': ok (50 keys');
    }
    const entry = (await schedules()).find((s) => s.id === 'every5s')!;
    expect(entry.regions[0]!.failures).toBe(0);
    expect(entry.regions[0]!.runs).toBe(runs.length);
    const history = await json<HistoryEventView[]>(['history', '--limit', '1000']);
    expect(history.some((e) => e.kind === 'schedule.missed' && e.message.includes('every5s'))).toBe(
      true,
    );
  }, 150_000);

  it('schedule - two agents of one region take one snapshot per slot', async () => {
    const region = plan.regions.find((r) => r.name === 'eu-west')!;
    const twinAgent = await startTwinAgent(plan, 'eu-west', join(dir, 'eu-west-twin'));
    const twin = twinAgent.process;
    const { httpPort } = twinAgent;
    const twinDir = twinAgent.dir;
    try {
      // Both agents have the schedule before its first slot.
      await json([
        'snapshot',
        'schedule',
        'add',
        'twin',
        '--region',
        'eu-west',
        '--cron',
        '*/2 * * * * *',
        '--keep-last',
        '3',
      ]);
      // The twin competes for the slots once its copy of the group document has the schedule.
      await waitFor(
        async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text(),
        (text) =>
          /georep_snapshot_schedule_next_run_timestamp_seconds\{[^}]*schedule="twin"/.test(text),
        { timeoutMs: 15_000, what: 'the twin agent to know the schedule' },
      );
      await sleep(5000);
      // While the first agent is away the twin takes every slot; then they share them again.
      const first = group.region('eu-west').agent!;
      await first.stop();
      await sleep(6000);
      await group.restartAgentProcess('eu-west');
      await sleep(5000);
      await pauseAndSettle('twin');
      const runs = await added('twin');
      expect(runs.length).toBeGreaterThanOrEqual(7);
      expect(new Set(runs).size).toBe(runs.length);
      const entry = await waitFor(
        async () => (await schedules()).find((s) => s.id === 'twin')!.regions[0]!,
        (r) => r.runs >= runs.length,
        { timeoutMs: 15_000, what: 'every run of twin in the ledger' },
      );
      expect(entry).toMatchObject({ runs: runs.length, failures: 0 });
      // Each agent logs the runs it made: together one per slot. Which agent wins a shared slot
      // depends on their timer phases; the twin alone ran the slots while the first was away.
      const made = [region.agent.logFile, join(twinDir, 'agent.log')].map(
        (file) =>
          readFileSync(file, 'utf8')
            .split('\n')
            .filter(
              (l) => l.includes('"schedule":"twin"') && l.includes('scheduled snapshot succeeded'),
            ).length,
      );
      expect(made[1]).toBeGreaterThanOrEqual(2);
      expect(made[0]! + made[1]!).toBe(runs.length);
    } finally {
      await twin.stop();
    }
  }, 90_000);

  it('schedule - a failing run shows in status and metrics, and the next slot after recovery succeeds', async () => {
    const us = group.region('us-east');
    const httpPort = plan.regions.find((r) => r.name === 'us-east')!.agent.httpPort;
    const metric = async (name: string): Promise<number | null> => {
      const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith(name) && l.includes('schedule="fragile"'));
      return line === undefined ? null : Number(line.split(' ').pop());
    };
    const mine = async () =>
      (await json<StatusReport>(['status', '--region', 'us-east'])).regions
        .find((r) => r.name === 'us-east')!
        .schedules!.find((s) => s.id === 'fragile')!;

    await json([
      'snapshot',
      'schedule',
      'add',
      'fragile',
      '--region',
      'us-east',
      '--cron',
      '*/3 * * * * *',
      '--keep-last',
      '1',
    ]);
    await waitFor(mine, (s) => s.lastRun?.status === 'succeeded', {
      timeoutMs: 15_000,
      what: 'a first success',
    });
    await Promise.all(us.nodes.map((n) => n.kill()));
    const failed = await waitFor(mine, (s) => s.lastRun?.status === 'failed', {
      timeoutMs: 20_000,
      what: 'a failed run in status',
    });
    expect(failed.lastRun!.error!.code).toMatch(/^(snapshot|export)\./);
    const human = await cli(['status', '--region', 'us-east']);
    expect(human.stdout).toContain('snapshot schedules of us-east');
    expect(human.stdout).toMatch(/fragile .*FAILED/);
    expect(await metric('georep_snapshot_schedule_failures_total')).toBeGreaterThanOrEqual(1);
    expect(await metric('georep_snapshot_schedule_last_run_failed')).toBe(1);

    const recoveredAt = Date.now();
    for (const node of us.nodes) await node.restart();
    const ok = await waitFor(
      mine,
      (s) => s.lastRun?.status === 'succeeded' && (s.lastRun.finishedAt ?? 0) > recoveredAt,
      { timeoutMs: 30_000, what: 'a success after the nodes came back' },
    );
    expect(ok.lastSuccessAt).toBeGreaterThan(recoveredAt);
    expect(await metric('georep_snapshot_schedule_last_run_failed')).toBe(0);
    expect(
      (await metric('georep_snapshot_last_success_timestamp_seconds'))! * 1000,
    ).toBeGreaterThan(recoveredAt);
    await pauseAndSettle('fragile');
  }, 90_000);
});
