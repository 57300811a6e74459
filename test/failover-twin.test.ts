/**
 * Two agents of one region (a standby agent, say) both see the region's primary die. The region's
 * lease lets exactly one of them fail it over (without it, both promote: the test fails).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '@georep/core';
import {
  ManagedProcess,
  planGroup,
  startGroup,
  tempDir,
  waitFor,
  type GroupPlan,
  type LocalGroup,
} from '@georep/testkit';
import { agentCommand, georep, startTwinAgent } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('automatic failover with two agents in one region', () => {
  let plan: GroupPlan;
  let group: LocalGroup;
  let twin: ManagedProcess | undefined;
  const dir = tempDir('failover-twin');
  const twinDir = join(dir, 'eu-west-twin');

  beforeAll(async () => {
    plan = await planGroup({
      group: 'twin',
      dir,
      regions: ['eu-west', 'us-east'],
      replicas: 2,
      ports: 'free',
      health: { intervalMs: 250, downAfterMs: 1500 },
      replication: { enabled: false },
      agent: { failover: { downAfterMs: 1500, failoverTimeoutMs: 5000 } },
    });
    group = await startGroup(plan, { agentCommand, readyTimeoutMs: 30_000 });
    twin = (await startTwinAgent(plan, 'eu-west', twinDir)).process;
  }, 120_000);

  afterAll(async () => {
    await twin?.stop();
    await group?.stop();
  });

  it('failover - of two agents of a region that see its primary die, exactly one promotes a replica', async () => {
    const region = plan.regions[0]!;
    const eu = group.region('eu-west');
    // Both agents have seen the primary up (and its run id) before it dies.
    await sleep(1000);
    await eu.nodes[0]!.kill();
    const killed = region.nodes[0]!.id;
    const nats = `nats://127.0.0.1:${plan.regions[1]!.nats.port}`;
    const status = async (): Promise<StatusReport> =>
      JSON.parse(
        (
          await georep([
            '--nats',
            nats,
            '--group',
            'twin',
            'status',
            '--region',
            'eu-west',
            '--json',
          ])
        ).stdout,
      ) as StatusReport;
    // Not the killed primary, which a status sampled just before the kill still shows up.
    const promoted = await waitFor(
      async () =>
        (await status()).regions
          .find((r) => r.name === 'eu-west')
          ?.nodes.find((n) => n.up && n.role === 'primary' && n.id !== killed),
      (n) => n !== undefined,
      { timeoutMs: 20_000, intervalMs: 250, what: 'a replica promoted in eu-west' },
    );
    // Long enough for the other agent to have acted too, had it been allowed to.
    await sleep(3000);
    const logs = [region.agent.logFile, join(twinDir, 'agent.log')].map((f) =>
      readFileSync(f, 'utf8'),
    );
    const promotions = logs.map(
      (text) =>
        text.split('\n').filter((l) => l.includes('automatic failover: replica promoted')).length,
    );
    expect(
      promotions.reduce((a, b) => a + b, 0),
      `promotions per agent: ${promotions.join(', ')}`,
    ).toBe(1);
    // One primary, and the other replica follows it.
    const nodes = (await status()).regions.find((r) => r.name === 'eu-west')!.nodes;
    expect(nodes.filter((n) => n.up && n.role === 'primary').map((n) => n.id)).toEqual([
      promoted!.id,
    ]);
    const other = nodes.find((n) => n.up && n.id !== promoted!.id)!;
    expect(other.role).toBe('replica');
    expect(other.primary?.port).toBe(promoted!.port);
  });
});
