/**
 * The health plane across three real regions (nats-server gateways, Redis primary + replica,
 * an agent process each): outage detection, recovery, and restarts of single components.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegionState, StatusReport } from '@georep/core';
import {
  fetchAgentHealth,
  planGroup,
  startGroup,
  tempDir,
  waitFor,
  type GroupPlan,
  type LocalGroup,
} from '@georep/testkit';
import { GEOREP_BIN, agentCommand, georep } from './helpers.js';

const DOWN_AFTER_MS = 2000;
const regions = ['eu-west', 'us-east', 'ap-south'];

describe('group health across three regions', () => {
  let plan: GroupPlan;
  let group: LocalGroup;
  const natsUrl = (region: string) => {
    const r = plan.regions.find((x) => x.name === region)!;
    return `nats://127.0.0.1:${r.nats.port}`;
  };
  const stateSeenBy = async (asker: string, region: string): Promise<RegionState | undefined> => {
    const r = plan.regions.find((x) => x.name === asker)!;
    return (await fetchAgentHealth('127.0.0.1', r.agent.httpPort))?.regions[region];
  };
  const errorLines = (region: string) =>
    readFileSync(plan.regions.find((x) => x.name === region)!.agent.logFile, 'utf8')
      .split('\n')
      .filter((line) => /"level":(50|60)/.test(line));

  const transitionsOf = (asker: string, region: string) =>
    readFileSync(plan.regions.find((x) => x.name === asker)!.agent.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.includes(`"subject_region":"${region}"`))
      .map((line) => (JSON.parse(line) as { to: string }).to);

  beforeAll(async () => {
    plan = await planGroup({
      group: 'orders',
      dir: tempDir('group'),
      regions,
      replicas: 1,
      ports: 'free',
      appendonly: true,
      health: { intervalMs: 500, downAfterMs: DOWN_AFTER_MS },
      // The data plane has its own suites; off here keeps this one's timing on 2 cores.
      replication: { enabled: false },
    });
    group = await startGroup(plan, { agentCommand, readyTimeoutMs: 30_000 });
  });

  afterAll(async () => {
    await group?.stop();
  });

  it('status - georep status from any region shows all three up with their nodes', async () => {
    const run = await georep(['--nats', natsUrl('us-east'), 'status', '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as StatusReport;
    expect(report.group).toBe('orders');
    expect(report.answeredBy).toBe('us-east');
    expect(report.regions.map((r) => [r.name, r.state])).toEqual([
      ['ap-south', 'up'],
      ['eu-west', 'up'],
      ['us-east', 'up'],
    ]);
    for (const region of report.regions) {
      const planned = plan.regions.find((r) => r.name === region.name)!;
      expect(
        region.nodes.map((n) => ({ id: n.id, role: n.role, host: n.host, port: n.port, up: n.up })),
      ).toEqual(
        planned.nodes.map((n) => ({
          id: n.id,
          role: n.role,
          host: n.host,
          port: n.port,
          up: true,
        })),
      );
    }
    const table = await georep(['--nats', natsUrl('eu-west'), 'status']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/ap-south\s+up\s+linked\s+ap-south-1/);
  });

  it('status - --watch redraws until interrupted and exits 0', async () => {
    const child = spawn(process.execPath, [
      GEOREP_BIN,
      '--nats',
      natsUrl('eu-west'),
      'status',
      '--watch',
      '--interval',
      '200',
    ]);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitFor(
      () => out.split('\x1b[2J').length - 1,
      (frames) => frames >= 3,
      { timeoutMs: 10_000 },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toContain('as seen by the agent of eu-west');
  });

  it('outage - a killed region is suspect then down within downAfterMs + 3 s, and up again after revival', async () => {
    const killedAt = Date.now();
    await group.killRegion('ap-south');
    await waitFor(
      () => stateSeenBy('eu-west', 'ap-south'),
      (state) => state === 'down',
      {
        timeoutMs: DOWN_AFTER_MS + 3000 + 1000,
        intervalMs: 50,
        what: 'ap-south down as seen by eu-west',
      },
    );
    const detectedMs = Date.now() - killedAt;
    expect(detectedMs).toBeLessThanOrEqual(DOWN_AFTER_MS + 3000);
    // The survivor that first misses the heartbeats reports suspect until the other agrees;
    // every transition is logged, so the logs show the order.
    const transitions = ['eu-west', 'us-east'].flatMap((r) => transitionsOf(r, 'ap-south'));
    expect(transitions).toContain('suspect');
    expect(transitions).toContain('down');
    expect(transitions.indexOf('suspect')).toBeLessThan(transitions.lastIndexOf('down'));
    expect(await stateSeenBy('us-east', 'ap-south')).toBe('down');

    const run = await georep(['--nats', natsUrl('eu-west'), 'status', '--json']);
    const report = JSON.parse(run.stdout) as StatusReport;
    const apSouth = report.regions.find((r) => r.name === 'ap-south')!;
    expect(apSouth.state).toBe('down');
    expect(apSouth.seenSuspectBy.sort()).toEqual(['eu-west', 'us-east']);
    expect(apSouth.nodes.every((n) => !n.up)).toBe(true);

    await group.reviveRegion('ap-south');
    await waitFor(
      () => stateSeenBy('eu-west', 'ap-south'),
      (s) => s === 'up',
      { timeoutMs: 10_000 },
    );
    await waitFor(
      () => stateSeenBy('ap-south', 'eu-west'),
      (s) => s === 'up',
      { timeoutMs: 10_000 },
    );
    expect(errorLines('eu-west')).toEqual([]);
    expect(errorLines('us-east')).toEqual([]);
  });

  it('restart - a restarted agent rejoins and the others keep running', async () => {
    await group.restartAgent('us-east');
    await waitFor(
      () => stateSeenBy('us-east', 'eu-west'),
      (s) => s === 'up',
      { timeoutMs: 10_000 },
    );
    await waitFor(
      () => stateSeenBy('eu-west', 'us-east'),
      (s) => s === 'up',
      { timeoutMs: 10_000 },
    );
    expect(group.region('eu-west').agent!.running).toBe(true);
    expect(group.region('ap-south').agent!.running).toBe(true);
  });

  it('restart - a Redis primary restart shows the node down then up; agents stay up', async () => {
    const primary = group.region('eu-west').nodes[0]!;
    await primary.kill();
    const nodeUp = async () => {
      const run = await georep(['--nats', natsUrl('us-east'), 'status', '--json']);
      const report = JSON.parse(run.stdout) as StatusReport;
      return report.regions
        .find((r) => r.name === 'eu-west')!
        .nodes.find((n) => n.id === 'eu-west-1')!.up;
    };
    await waitFor(nodeUp, (up) => !up, { timeoutMs: 10_000 });
    await primary.restart();
    await waitFor(nodeUp, (up) => up, { timeoutMs: 15_000 });
    expect(group.region('eu-west').agent!.running).toBe(true);
  });

  it('restart - a nats-server restart: its agent reconnects and the region is up again everywhere', async () => {
    await group.region('us-east').nats.restart();
    await waitFor(
      () => stateSeenBy('eu-west', 'us-east'),
      (s) => s === 'up',
      { timeoutMs: 15_000 },
    );
    await waitFor(
      () => stateSeenBy('us-east', 'ap-south'),
      (s) => s === 'up',
      { timeoutMs: 15_000 },
    );
    for (const region of regions) expect(group.region(region).agent!.running).toBe(true);
    expect(errorLines('eu-west')).toEqual([]);
    expect(errorLines('ap-south')).toEqual([]);
  });
});
