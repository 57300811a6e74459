/**
 * The optional policy `replication.autoForceUnlinkAfterMs`, end to end: three regions, one of them
 * cut off by a partition. The majority side force-unlinks it once it has been down long enough;
 * the cut-off region, which sees the others down too, unlinks nobody.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupView, HistoryEventView, OperationView } from '@georep/core';
import { tempDir, waitFor } from '@georep/testkit';
import { georep } from './helpers.js';
import { startReplicatedGroup, type ReplicatedGroup } from './replication-helpers.js';

const AFTER_MS = 3000;

describe('automatic force-unlink', () => {
  let g: ReplicatedGroup;
  const show = async (region: string): Promise<GroupView> => {
    const run = await georep([
      '--nats',
      g.nats(region),
      '--group',
      'autoul',
      'group',
      'show',
      '--json',
    ]);
    if (run.code !== 0) throw new Error(run.stderr);
    return JSON.parse(run.stdout) as GroupView;
  };
  const linkOf = (view: GroupView, region: string) =>
    view.regions.find((r) => r.name === region)?.linkState;

  beforeAll(async () => {
    g = await startReplicatedGroup('autoul', tempDir('auto-unlink'), {
      autoForceUnlinkAfterMs: AFTER_MS,
    });
  }, 120_000);

  afterAll(async () => {
    await g?.stop();
  });

  it('auto-unlink - the majority force-unlinks a region down past the policy; the cut-off region unlinks nobody', async () => {
    await g.group.partitionRegion('ap-south');
    const cutAt = Date.now();
    const unlinked = await waitFor(
      () => show('eu-west'),
      (v) => linkOf(v, 'ap-south') === 'force-unlinked',
      { timeoutMs: 30_000, intervalMs: 250, what: 'ap-south force-unlinked by the majority' },
    );
    // Not before the region was down (downAfterMs) and then down for the policy's length.
    expect(Date.now() - cutAt).toBeGreaterThanOrEqual(AFTER_MS);
    expect(linkOf(unlinked, 'eu-west')).toBe('linked');
    expect(linkOf(unlinked, 'us-east')).toBe('linked');
    const history = JSON.parse(
      (await georep(['--nats', g.nats('eu-west'), '--group', 'autoul', 'history', '--json']))
        .stdout,
    ) as HistoryEventView[];
    const event = history.find((e) => e.kind === 'region.force-unlinked');
    expect(event?.message).toContain('automatic: down for');
    const op = JSON.parse(
      (
        await georep([
          '--nats',
          g.nats('eu-west'),
          '--group',
          'autoul',
          'operation',
          'show',
          event!.operationId!,
          '--json',
        ])
      ).stdout,
    ) as OperationView;
    expect(op.forced?.reason).toContain('replication.autoForceUnlinkAfterMs');
    // The survivors stop holding a backlog for it.
    await waitFor(
      async () => (await g.replicationOf('eu-west'))?.links.map((l) => l.peer).join(),
      (peers) => peers === 'us-east',
      { timeoutMs: 15_000, intervalMs: 250, what: "eu-west drops ap-south's link" },
    );

    // The cut-off side saw eu-west and us-east down just as long, and must not have acted.
    const lonely = await show('ap-south');
    expect(linkOf(lonely, 'eu-west')).toBe('linked');
    expect(linkOf(lonely, 'us-east')).toBe('linked');

    // After the heal ap-south learns it was force-unlinked, and stays out (fenced).
    await g.group.healRegion('ap-south');
    await waitFor(
      () => show('ap-south'),
      (v) => linkOf(v, 'ap-south') === 'force-unlinked' && linkOf(v, 'eu-west') === 'linked',
      { timeoutMs: 30_000, intervalMs: 250, what: 'ap-south learns it was force-unlinked' },
    );
  });
});
