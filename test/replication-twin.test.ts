/**
 * Two agents of one region with replication on (a rolling replacement, a standby agent): only the
 * one started first replicates, or every write would be captured twice and every increment
 * counted twice. The other takes over once the first has gone quiet.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '@georep/core';
import {
  planGroup,
  startGroup,
  tempDir,
  waitFor,
  type GroupPlan,
  type LocalGroup,
  type ManagedProcess,
} from '@georep/testkit';
import { agentCommand, georep, startTwinAgent } from './helpers.js';

describe('replication with two agents in one region', () => {
  let plan: GroupPlan;
  let group: LocalGroup;
  let twin: { process: ManagedProcess; logFile: string } | undefined;
  const clients: Redis[] = [];
  const dir = tempDir('replication-twin');
  const client = (region: string) => {
    const node = plan.regions.find((r) => r.name === region)!.nodes[0]!;
    const c = new Redis(node.port, node.host);
    clients.push(c);
    return c;
  };
  const appliedFromEu = async () => {
    const nats = `nats://127.0.0.1:${plan.regions[1]!.nats.port}`;
    const run = await georep(['--nats', nats, '--group', 'twinrep', 'status', '--json']);
    const report = JSON.parse(run.stdout) as StatusReport;
    const us = report.regions.find((r) => r.name === 'us-east')!;
    return us.replication?.links.find((l) => l.peer === 'eu-west')?.appliedOps ?? 0;
  };

  beforeAll(async () => {
    plan = await planGroup({
      group: 'twinrep',
      dir,
      regions: ['eu-west', 'us-east'],
      replicas: 0,
      ports: 'free',
      health: { intervalMs: 250, downAfterMs: 1500 },
    });
    group = await startGroup(plan, { agentCommand, readyTimeoutMs: 30_000 });
    twin = await startTwinAgent(plan, 'eu-west', join(dir, 'eu-west-twin'));
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await twin?.process.stop();
    await group?.stop();
  });

  it('twin - the agent started later stands by; increments are counted once', async () => {
    const eu = client('eu-west');
    const us = client('us-east');
    await waitFor(
      () => Promise.resolve(readFileSync(twin!.logFile, 'utf8')),
      (log) => log.includes('another agent publishes heartbeats for this region'),
      { timeoutMs: 10_000, what: 'the twin hears the first agent' },
    );
    const before = await appliedFromEu();
    for (let i = 0; i < 50; i++) await eu.set(`page:${i}`, String(i));
    await waitFor(
      () => us.get('page:49'),
      (v) => v === '49',
      { timeoutMs: 15_000, intervalMs: 100, what: 'the 50 keys in us-east' },
    );
    for (let i = 0; i < 50; i++) await eu.incr('visits');
    await waitFor(
      () => us.get('visits'),
      (v) => v === '50',
      { timeoutMs: 15_000, intervalMs: 100, what: 'the 50 increments in us-east' },
    );
    // Settled: nothing more arrives (a second capture would bring every increment again).
    await new Promise((r) => setTimeout(r, 1500));
    expect(await us.get('visits')).toBe('50');
    // One operation per key written (the increments travel as one running contribution).
    const applied = (await appliedFromEu()) - before;
    expect(applied).toBeGreaterThanOrEqual(51);
    expect(applied).toBeLessThanOrEqual(100);
    const twinLog = readFileSync(twin!.logFile, 'utf8');
    expect(twinLog).not.toContain('"msg":"capture started"');
    // Whichever agent a region request lands on, the answer is the replicating agent's.
    const nats = `nats://127.0.0.1:${plan.regions[0]!.nats.port}`;
    for (let i = 0; i < 6; i++) {
      const run = await georep([
        '--nats',
        nats,
        '--group',
        'twinrep',
        'status',
        '--region',
        'eu-west',
        '--json',
      ]);
      const rep = (JSON.parse(run.stdout) as StatusReport).regions.find(
        (r) => r.name === 'eu-west',
      )?.replication;
      expect(rep?.state).toBe('running');
      expect(rep?.links.map((l) => l.peer)).toEqual(['us-east']);
    }
  });

  it('twin - once the first agent is gone, the standby replicates the region', async () => {
    const eu = client('eu-west');
    const us = client('us-east');
    await group.region('eu-west').agent!.stop();
    await waitFor(
      () => Promise.resolve(readFileSync(twin!.logFile, 'utf8')),
      (log) => log.includes('"msg":"capture started"'),
      { timeoutMs: 15_000, what: 'the twin starts capturing' },
    );
    for (let i = 0; i < 10; i++) await eu.incr('visits');
    await eu.set('after-takeover', 'yes');
    await waitFor(
      async () => [await us.get('after-takeover'), await us.get('visits')],
      (v) => v[0] === 'yes' && v[1] === '60',
      { timeoutMs: 20_000, intervalMs: 200, what: 'writes after the takeover in us-east' },
    );
    // It resumed where the first agent was (mirrored in the primary), without a full sync that
    // would have sent every key again.
    const log = readFileSync(twin!.logFile, 'utf8');
    expect(log).toContain('resuming from the one mirrored in the primary');
    expect(log).not.toContain('full sync of the primary');
  });
});
