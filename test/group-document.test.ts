/**
 * The group document across real regions: membership changes with votes, idempotent operations,
 * force-unlink and fencing of a returning region, partitions that heal into identical documents,
 * and recovery of a corrupted saved document from peers.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupView, OperationView, StatusReport } from '@georep/core';
import {
  fetchAgentHealth,
  planGroup,
  startGroup,
  tempDir,
  waitFor,
  type GroupPlan,
  type LocalGroup,
} from '@georep/testkit';
import { agentCommand, georep } from './helpers.js';

const DOWN_AFTER_MS = 2000;

async function launch(
  name: string,
  regions: string[],
): Promise<{ plan: GroupPlan; group: LocalGroup }> {
  const plan = await planGroup({
    group: name,
    dir: tempDir(name),
    regions,
    replicas: 0,
    ports: 'free',
    health: { intervalMs: 500, downAfterMs: DOWN_AFTER_MS },
    // The data plane has its own suites; off here keeps this one's timing on 2 cores.
    replication: { enabled: false },
  });
  return { plan, group: await startGroup(plan, { agentCommand, readyTimeoutMs: 30_000 }) };
}

function helpers(plan: GroupPlan) {
  const region = (name: string) => plan.regions.find((r) => r.name === name)!;
  const nats = (name: string) => `nats://127.0.0.1:${region(name).nats.port}`;
  const cli = (via: string, args: string[]) =>
    georep(['--nats', nats(via), '--group', plan.group, ...args]);
  const json = async <T>(via: string, args: string[]): Promise<T> => {
    const run = await cli(via, [...args, '--json']);
    if (run.code !== 0)
      throw new Error(`georep ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
    return JSON.parse(run.stdout) as T;
  };
  const view = (via: string) => json<GroupView>(via, ['group', 'show']);
  const headsEverywhere = async () =>
    Promise.all(plan.regions.map(async (r) => (await view(r.name)).heads.join()));
  const health = (name: string) => fetchAgentHealth('127.0.0.1', region(name).agent.httpPort);
  return { region, cli, json, view, headsEverywhere, health };
}

describe('group document across three regions', () => {
  let plan: GroupPlan;
  let group: LocalGroup;
  let h: ReturnType<typeof helpers>;

  beforeAll(async () => {
    ({ plan, group } = await launch('orders', ['eu-west', 'us-east', 'ap-south']));
    h = helpers(plan);
  });
  afterAll(async () => {
    await group?.stop();
  });

  it('group - every region starts linked, with identical documents everywhere', async () => {
    const view = await h.view('us-east');
    expect(view.regions.map((r) => [r.name, r.linkState])).toEqual([
      ['ap-south', 'linked'],
      ['eu-west', 'linked'],
      ['us-east', 'linked'],
    ]);
    const heads = await waitFor(h.headsEverywhere, (hs) => new Set(hs).size === 1);
    expect(heads).toHaveLength(3);
    const status = await h.json<StatusReport>('eu-west', ['status']);
    expect(status.regions.map((r) => r.linkState)).toEqual(['linked', 'linked', 'linked']);
  });

  it('ledger - the same client token runs once; other parameters with it are idempotency-conflict', async () => {
    const first = await h.json<OperationView>('eu-west', [
      'unlink',
      'ap-south',
      '--client-token',
      'drill-1',
    ]);
    expect(first).toMatchObject({
      kind: 'unlink',
      status: 'succeeded',
      clientToken: 'drill-1',
      result: { linkState: 'unlinked' },
    });
    const again = await h.json<OperationView>('us-east', [
      'unlink',
      'ap-south',
      '--client-token',
      'drill-1',
    ]);
    expect(again.id).toBe(first.id);
    const conflict = await h.cli('eu-west', ['unlink', 'us-east', '--client-token', 'drill-1']);
    expect(conflict.code).toBe(6);
    expect(conflict.stderr).toContain('[idempotency-conflict]');
    const history = await h.json<{ kind: string; operationId: string | null }[]>('eu-west', [
      'history',
    ]);
    expect(history.filter((e) => e.operationId === first.id).map((e) => e.kind)).toEqual([
      'region.unlinking',
      'region.unlinked',
    ]);
    const relinked = await h.json<OperationView>('eu-west', ['link', 'ap-south']);
    expect(relinked.status).toBe('succeeded');
  });

  it('fencing - a force-unlinked region that returns stays out, says why, and rejoins with link --resync', async () => {
    await group.killRegion('ap-south');
    await waitFor(
      async () => (await h.health('eu-west'))?.regions['ap-south'],
      (s) => s === 'down',
      { timeoutMs: DOWN_AFTER_MS + 5000 },
    );
    const unconfirmed = await h.cli('eu-west', ['unlink', 'ap-south', '--force']);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain('[usage.confirmation-required]');
    const forced = await h.json<OperationView>('eu-west', [
      'unlink',
      'ap-south',
      '--force',
      '--yes',
      '--reason',
      'region lost',
    ]);
    expect(forced).toMatchObject({ status: 'succeeded', result: { linkState: 'force-unlinked' } });
    expect(forced.forced?.reason).toBe('region lost');

    await group.reviveRegion('ap-south');
    await waitFor(
      () => h.health('ap-south'),
      (doc) => doc?.fenced === true,
      { timeoutMs: 15_000 },
    );
    const seenFromInside = await h.json<StatusReport>('ap-south', [
      'status',
      '--region',
      'ap-south',
    ]);
    expect(seenFromInside.regions.find((r) => r.name === 'ap-south')!.linkState).toBe(
      'force-unlinked',
    );
    const log = readFileSync(h.region('ap-south').agent.logFile, 'utf8');
    expect(log).toContain('this region was force-unlinked');
    expect(log).toContain('georep link ap-south --resync --yes');

    const plain = await h.cli('eu-west', ['link', 'ap-south']);
    expect(plain.code).toBe(6);
    expect(plain.stderr).toContain('[link.resync-required]');
    const resync = await h.json<OperationView>('eu-west', [
      'link',
      'ap-south',
      '--resync',
      '--yes',
    ]);
    expect(resync).toMatchObject({
      status: 'succeeded',
      result: { linkState: 'linked', resync: true },
    });
    await waitFor(
      () => h.health('ap-south'),
      (doc) => doc?.fenced === false && doc.linkState === 'linked',
      { timeoutMs: 10_000 },
    );
  });

  it('partition - both sides change the document; after healing every agent has identical heads', async () => {
    await group.partitionRegion('ap-south');
    await waitFor(
      async () => (await h.health('eu-west'))?.regions['ap-south'],
      (s) => s === 'down',
      { timeoutMs: DOWN_AFTER_MS + 8000 },
    );
    // Each side judges on its own clock: wait until the minority no longer hears the majority.
    await waitFor(
      async () => (await h.health('ap-south'))?.regions['eu-west'],
      (s) => s !== undefined && s !== 'up',
      { timeoutMs: DOWN_AFTER_MS + 8000 },
    );
    // The minority side cannot unlink the majority (it is not up as seen from there) ...
    const other = await h.cli('ap-south', ['unlink', 'eu-west']);
    expect(other.code).toBe(6);
    expect(other.stderr, other.stdout).toContain('[unlink.region-not-up]');
    // ... nor even unlink itself: the vote needs a majority of the linked regions.
    const self = await h.cli('ap-south', ['unlink', 'ap-south']);
    expect(self.code).toBe(6);
    expect(self.stdout + self.stderr).toContain('vote.no-quorum');
    // ... while the majority side can change membership (2 of 3 linked regions vote yes).
    expect((await h.json<OperationView>('eu-west', ['unlink', 'us-east'])).status).toBe(
      'succeeded',
    );
    const healedAt = Date.now();
    await group.healRegion('ap-south');
    const heads = await waitFor(h.headsEverywhere, (hs) => new Set(hs).size === 1, {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    expect(heads).toHaveLength(3);
    expect(Date.now() - healedAt).toBeLessThan(20_000);
    // The minority learned the majority's change, and the majority sees the minority's failed attempt.
    expect((await h.view('ap-south')).regions.find((r) => r.name === 'us-east')!.linkState).toBe(
      'unlinked',
    );
    // The minority's failed attempt is in the majority's ledger too.
    const history = await h.json<{ operationId: string | null }[]>('eu-west', [
      'history',
      '--limit',
      '200',
    ]);
    expect(history.length).toBeGreaterThan(0);
    expect((await h.view('eu-west')).operationCount).toBe(
      (await h.view('ap-south')).operationCount,
    );
    // With everyone reachable again, us-east can be linked back.
    expect((await h.json<OperationView>('eu-west', ['link', 'us-east'])).status).toBe('succeeded');
  });

  it('recovery - a corrupted saved document is kept aside and recovered from the peers', async () => {
    const agentDir = h.region('us-east').agent.dir;
    const file = join(agentDir, 'group.automerge');
    const agent = group.region('us-east').agent!;
    await agent.stop();
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await group.restartAgentProcess('us-east');
    const heads = await waitFor(h.headsEverywhere, (hs) => new Set(hs).size === 1, {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    expect(heads).toHaveLength(3);
    expect(readdirSync(agentDir).some((f) => f.startsWith('group.automerge.corrupt-'))).toBe(true);
    expect(readFileSync(h.region('us-east').agent.logFile, 'utf8')).toContain(
      'the saved group document is corrupt',
    );
    const view = await h.view('us-east');
    expect(view.operationCount).toBeGreaterThan(0);
    expect(view.operationCount).toBe((await h.view('eu-west')).operationCount);
    expect(existsSync(file)).toBe(true);
  });
});

describe('group document across two regions', () => {
  let plan: GroupPlan;
  let group: LocalGroup;
  let h: ReturnType<typeof helpers>;

  beforeAll(async () => {
    ({ plan, group } = await launch('pair', ['left', 'right']));
    h = helpers(plan);
  });
  afterAll(async () => {
    await group?.stop();
  });

  it('partition - neither side can unlink the other without --force --yes', async () => {
    await group.partitionRegion('right');
    await waitFor(
      async () => (await h.health('left'))?.regions.right,
      (s) => s === 'down',
      { timeoutMs: DOWN_AFTER_MS + 8000 },
    );
    await waitFor(
      async () => (await h.health('right'))?.regions.left,
      (s) => s === 'down',
      { timeoutMs: DOWN_AFTER_MS + 8000 },
    );
    for (const [via, target] of [
      ['left', 'right'],
      ['right', 'left'],
    ] as const) {
      const other = await h.cli(via, ['unlink', target]);
      expect(other.code).toBe(6);
      expect(other.stderr, other.stdout).toContain('[unlink.region-not-up]');
      const self = await h.cli(via, ['unlink', via]);
      expect(self.code).toBe(6);
      expect(self.stdout + self.stderr).toContain('vote.no-quorum');
    }
    const forced = await h.json<OperationView>('left', [
      'unlink',
      'right',
      '--force',
      '--yes',
      '--reason',
      'right is gone',
    ]);
    expect(forced.result).toMatchObject({ linkState: 'force-unlinked' });
    // The other side, which does not know yet, does the same: after the heal no region is linked
    // (the next test recovers from that).
    const mutual = await h.cli('right', [
      'unlink',
      'left',
      '--force',
      '--yes',
      '--reason',
      'left is gone',
    ]);
    expect(mutual.code, mutual.stderr).toBe(0);
    await group.healRegion('right');
    await waitFor(
      () => h.health('right'),
      (doc) => doc?.fenced === true,
      { timeoutMs: 20_000 },
    );
  });

  it('recovery - after both sides of a partition force-unlinked each other, link --force brings the chosen region back', async () => {
    await waitFor(
      async () => [await h.view('left'), await h.view('right')],
      (views) =>
        views.every(
          (v) =>
            v.regions.every((r) => r.linkState === 'force-unlinked') &&
            v.heads.join() === views[0]!.heads.join(),
        ),
      { timeoutMs: 30_000, intervalMs: 250, what: 'both regions force-unlinked everywhere' },
    );
    // Without a linked region nothing can be voted; a normal link is refused, a forced one
    // without --yes too.
    const normal = await h.cli('left', ['link', 'left']);
    expect(normal.code).toBe(6);
    const unconfirmed = await h.cli('left', ['link', 'left', '--force']);
    expect(unconfirmed.code).toBe(2);
    const recovered = await h.json<OperationView>('left', [
      'link',
      'left',
      '--force',
      '--yes',
      '--reason',
      'left keeps its data',
    ]);
    expect(recovered.status).toBe('succeeded');
    expect(recovered.forced?.reason).toBe('left keeps its data');
    await waitFor(
      () => h.health('left'),
      (doc) => doc?.fenced === false && doc.linkState === 'linked',
      { timeoutMs: 20_000, what: 'left linked and no longer fenced' },
    );
    // Now a linked region exists: --force is refused, a normal link is the way.
    const again = await h.cli('left', ['link', 'right', '--force', '--yes', '--json']);
    expect(again.code).toBe(6);
    expect(again.stderr).toContain('link.force-not-needed');
  });
});
