/**
 * `link --resync`: a region cut off and force-unlinked took writes of its own meanwhile. Relinked
 * with --resync, its data is replaced by the group's: its own writes from the outage are gone
 * everywhere, what the group wrote meanwhile is there, and replication runs both ways again
 * without the region re-sending its whole dataset. An application writing into the region through
 * the resync loses nothing written after the load.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationView } from '@georep/core';
import { parseRdbFile } from '@georep/rdb';
import { parseInfo } from '@georep/redis';
import { tempDir, waitFor } from '@georep/testkit';
import { georep, startTwinAgent, type TwinAgent } from './helpers.js';
import {
  diffDatasets,
  readDataset,
  startReplicatedGroup,
  type ReplicatedGroup,
} from './replication-helpers.js';

const GROUP = 'resync';

/** How {@link resyncKilledWhile} treats the killed agent. */
interface KillOptions {
  /** Runs while the agent is dead. */
  whileDead?: () => Promise<void>;
  /** Starts the agent again afterwards (default); false leaves the region to another agent. */
  restart?: boolean;
}

describe('link --resync', () => {
  let g: ReplicatedGroup;
  let twin: TwinAgent | undefined;
  const dir = tempDir('replication-resync');
  const cli = (args: string[], via = 'eu-west') =>
    georep(['--nats', g.nats(via), '--group', GROUP, ...args]);
  const until = <T>(
    what: string,
    read: () => Promise<T>,
    ok: (v: T) => boolean,
    timeoutMs = 20_000,
  ) => waitFor(read, ok, { timeoutMs, intervalMs: 250, what });
  const linkStateOf = async (region: string, seenBy: string) =>
    (await g.status(seenBy)).regions.find((r) => r.name === region)?.linkState;
  /** Cuts ap-south off and force-unlinks it; `meanwhile` writes on both sides; then heals. */
  const forceUnlinkAp = async (reason: string, meanwhile: () => Promise<void>) => {
    await g.group.partitionRegion('ap-south');
    await until(
      'ap-south down as eu-west sees it',
      async () => (await g.status('eu-west')).regions.find((r) => r.name === 'ap-south')?.state,
      (s) => s === 'down',
    );
    const forced = await cli(['unlink', 'ap-south', '--force', '--yes', '--reason', reason]);
    expect(forced.code, forced.stderr).toBe(0);
    await meanwhile();
    await g.group.healRegion('ap-south');
    await until(
      'ap-south learns it was force-unlinked',
      () => linkStateOf('ap-south', 'ap-south'),
      (s) => s === 'force-unlinked',
    );
  };
  const resyncAp = () =>
    cli(['link', 'ap-south', '--resync', '--yes', '--json', '--wait-timeout', '90000']);
  /**
   * Runs `link ap-south --resync`, kills ap-south's agent once `busy` says the resync is at the
   * step wanted, starts it again (unless `restart` is false), and expects the operation to succeed
   * all the same.
   */
  const resyncKilledWhile = async (
    what: string,
    busy: () => Promise<boolean>,
    { whileDead = async () => undefined, restart = true }: KillOptions = {},
  ) => {
    const run = resyncAp();
    await waitFor(busy, (b) => b, { timeoutMs: 30_000, intervalMs: 20, what });
    await g.group.region('ap-south').agent!.kill();
    try {
      await whileDead();
    } finally {
      // Even when a check above failed: a dead agent would fail every later test of the file.
      if (restart) await g.group.restartAgentProcess('ap-south');
    }
    const done = await run;
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({
      status: 'succeeded',
      result: { linkState: 'linked', resync: true, from: 'eu-west' },
    });
  };
  /** Waits until no export a resync of ap-south made is left in the catalog. */
  const noExportLeft = () =>
    until(
      'no resync export left in the catalog',
      async () => (await cli(['snapshot', 'list', '--json'])).stdout,
      (out) => out.includes('"diverged-ap-south-') && !out.includes('"resync-ap-south-'),
      30_000,
    );
  /** Waits until ap-south holds exactly eu-west's data. */
  const expectApEqualsEu = async () => {
    let diff: string[] = [];
    await until(
      'ap-south equals eu-west',
      async () => {
        diff = diffDatasets(
          await readDataset(g.client('eu-west')),
          await readDataset(g.client('ap-south')),
        );
        return diff;
      },
      (d) => d.length === 0,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${diff.slice(0, 5).join('; ')}`);
    });
  };

  /**
   * Force-unlinks ap-south (with writes `<tag>-outage` there and `<tag>-during` in eu-west
   * meanwhile), runs `link --resync` and kills ap-south's agent while its primary loads the group
   * data, `killAfterMs` into the load; `whileDead` runs before the agent starts again (unless
   * `restart` is false). The resync must succeed: ap-south a primary again, equal to eu-west, and
   * no export left behind.
   */
  const resyncKilledInLoad = async (
    tag: string,
    { killAfterMs = 0, ...kill }: KillOptions & { killAfterMs?: number } = {},
  ) => {
    const eu = g.client('eu-west');
    const ap = g.client('ap-south');
    // A loading server answers clients only between chunks of its file (see below): a file of a
    // few keys (this test run alone) would be loaded in one, and nothing could watch the load.
    if ((await eu.dbsize()) < 200) {
      const pad = eu.pipeline();
      for (let i = 0; i < 200; i++) pad.set(`pad:${i}`, 'x'.repeat(32));
      await pad.exec();
    }
    await forceUnlinkAp(`${tag} time`, async () => {
      await ap.set(`${tag}-outage`, 'ap write');
      await eu.set(`${tag}-during`, 'group write');
    });

    // The load of the group's keys is slowed to about 4 s, whatever their number: the agent is
    // killed in it (a faster load could end, and the node be promoted, before the kill lands).
    // A loading server answers clients only every `loading-process-events-interval-bytes` (2 MB
    // by default, more than this whole file): without a smaller one, the probe's INFO would wait
    // for the end of the load and report `slave` just before the agent promotes the node.
    const perKeyUs = Math.max(1000, Math.ceil(4_000_000 / Math.max(1, await eu.dbsize())));
    const [, interval] = (await ap.config('GET', 'loading-process-events-interval-bytes')) as [
      string,
      string,
    ];
    await ap.config('SET', 'key-load-delay', String(perKeyUs));
    await ap.config('SET', 'loading-process-events-interval-bytes', '1024');
    const probe = ap.duplicate();
    const role = async () => parseInfo(await probe.info('replication')).replication?.role;
    try {
      await resyncKilledWhile(
        "ap-south's primary loading the group data",
        async () => {
          if ((await role()) !== 'slave') return false;
          await sleep(killAfterMs);
          return true;
        },
        {
          ...kill,
          whileDead: async () => {
            // Left alone, the primary keeps replicating from the listener that died with the agent.
            await sleep(1500);
            expect(await role()).toBe('slave');
            await kill.whileDead?.();
          },
        },
      );
    } finally {
      await ap.config('SET', 'key-load-delay', '0');
      await ap.config('SET', 'loading-process-events-interval-bytes', interval);
      probe.disconnect();
    }
    expect(parseInfo(await ap.info('replication')).replication?.role).toBe('master');
    await expectApEqualsEu();
    expect(await ap.exists(`${tag}-outage`)).toBe(0);
    expect(await ap.get(`${tag}-during`)).toBe('group write');
    // Every run exported under names of its own, and none of them is left in eu-west's store.
    await noExportLeft();
  };

  beforeAll(async () => {
    g = await startReplicatedGroup(GROUP, join(dir, 'group'));
  }, 90_000);

  afterAll(async () => {
    await twin?.process.stop();
    await g?.stop();
  });

  it('resync - a force-unlinked region gets the group data; its outage writes are dropped', async () => {
    const eu = g.client('eu-west');
    const ap = g.client('ap-south');
    for (let i = 0; i < 200; i++) await eu.set(`bulk:${i}`, String(i));
    await eu.hset('profile', { name: 'ann' });
    await until(
      'the bulk keys in ap-south',
      () => ap.get('bulk:199'),
      (v) => v === '199',
    );

    // ap-south is cut off and force-unlinked; both sides write meanwhile.
    await forceUnlinkAp('cut off', async () => {
      await ap.set('ap-only', 'outage write');
      await ap.set('bulk:7', 'changed in ap-south');
      await ap.hset('profile', 'city', 'Pune');
      await eu.set('during', 'group write');
      await eu.hset('profile', 'tier', 'gold');
    });

    const refused = await cli(['link', 'ap-south']);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain('[link.resync-required]');

    // An application keeps writing into ap-south through the resync, ignoring refusals (during
    // the load ap-south is a replica). What it wrote before the load is replaced; what it wrote
    // from the load on must reach the group like any write, the first milliseconds included.
    const racer = ap.duplicate();
    let racing = true;
    const raced = (async () => {
      for (let i = 0; racing && i < 50_000; i++) {
        await racer.set(`racer:${i}`, String(i)).catch(() => undefined);
        await sleep(1);
      }
    })();
    const run = await resyncAp();
    racing = false;
    await raced;
    racer.disconnect();
    expect(run.code, run.stderr).toBe(0);
    const op = JSON.parse(run.stdout) as OperationView;
    expect(op).toMatchObject({
      status: 'succeeded',
      result: { linkState: 'linked', resync: true, from: 'eu-west', notReplaced: [] },
    });
    expect(
      (op.result as { replaced: Array<{ keysLoaded: number }> }).replaced[0]!.keysLoaded,
    ).toBeGreaterThan(200);

    // Its own data from before the resync is kept apart as a snapshot in its store.
    const kept = (op.result as { replaced: Array<{ divergedSnapshot: string }> }).replaced[0]!
      .divergedSnapshot;
    const file = join(dir, 'diverged.rdb');
    const download = await cli(['snapshot', 'download', kept, '--out', file], 'ap-south');
    expect(download.code, download.stderr).toBe(0);
    const keptKeys = new Set<string>();
    for await (const rec of parseRdbFile(file)) {
      if (rec.kind === 'key') keptKeys.add(rec.key.toString());
    }
    expect(keptKeys.has('ap-only')).toBe(true);
    expect(keptKeys.has('during')).toBe(false);

    // ap-south holds exactly the group's data.
    await expectApEqualsEu();
    expect(await ap.exists('ap-only')).toBe(0);
    expect(await ap.get('bulk:7')).toBe('7');
    expect(await ap.get('during')).toBe('group write');
    expect(await ap.hgetall('profile')).toEqual({ name: 'ann', tier: 'gold' });
    // The outage writes reached nobody.
    for (const region of ['eu-west', 'us-east']) {
      expect(await g.client(region).exists('ap-only')).toBe(0);
      expect(await g.client(region).hget('profile', 'city')).toBeNull();
    }

    // Replication runs both ways again, and ap-south did not send its dataset as new writes.
    await ap.set('after-ap', 'from ap');
    await eu.set('after-eu', 'from eu');
    await until(
      'writes after the resync, both ways',
      async () => [await eu.get('after-ap'), await ap.get('after-eu')],
      (v) => v[0] === 'from ap' && v[1] === 'from eu',
    );
    const racerKeys = (await ap.keys('racer:*')).length;
    expect(racerKeys).toBeGreaterThan(0);
    const fromAp = (await g.replicationOf('eu-west'))?.links.find((l) => l.peer === 'ap-south');
    expect(fromAp?.appliedOps ?? 0).toBeLessThanOrEqual(5 + racerKeys);
    expect(await linkStateOf('ap-south', 'us-east')).toBe('linked');
  }, 90_000);

  it('resync - an agent killed in the middle of the load finishes the resync after its restart', async () => {
    const eu = g.client('eu-west');
    const ap = g.client('ap-south');
    // The first test's racer keys would make the slowed load below last many seconds.
    const racers = await eu.keys('racer:*');
    if (racers.length > 0) await eu.del(...racers);
    await until(
      'the racer keys gone from ap-south',
      async () => (await ap.keys('racer:*')).length,
      (n) => n === 0,
    );
    await resyncKilledInLoad('second');
    await ap.set('after-restart', 'from ap');
    await until(
      'writes from ap-south after the resync',
      () => eu.get('after-restart'),
      (v) => v === 'from ap',
    );
  }, 120_000);

  it('resync - an agent killed while the source exports finishes the resync; no export is left behind', async () => {
    const eu = g.client('eu-west');
    const ap = g.client('ap-south');
    await forceUnlinkAp('a third time', async () => {
      await ap.set('third-outage', 'ap write');
      await eu.set('third-during', 'group write');
    });
    // eu-west's export is slowed to about 4 s, whatever the number of keys: the agent is killed
    // in it.
    const perKeyUs = Math.max(1000, Math.ceil(4_000_000 / Math.max(1, await eu.dbsize())));
    await eu.config('SET', 'rdb-key-save-delay', String(perKeyUs));
    try {
      await resyncKilledWhile(
        "eu-west's primary exporting for the resync",
        async () =>
          parseInfo(await eu.info('persistence')).persistence?.rdb_bgsave_in_progress === '1',
      );
    } finally {
      await eu.config('SET', 'rdb-key-save-delay', '0');
    }
    await expectApEqualsEu();
    expect(await ap.exists('third-outage')).toBe(0);
    expect(await ap.get('third-during')).toBe('group write');
    // The killed run's export finished at eu-west after its agent died; it is swept too.
    await noExportLeft();
  }, 120_000);

  // Last: afterwards the twin, not the agent of the group's plan, runs ap-south.
  it('resync - a second agent of the region takes over from one killed in the load, undoes the load and finishes the resync', async () => {
    twin = await startTwinAgent(g.group.plan, 'ap-south', join(dir, 'ap-south-twin'));
    await until(
      'the twin hears the first agent',
      () => Promise.resolve(readFileSync(twin!.logFile, 'utf8')),
      (log) => log.includes('another agent publishes heartbeats for this region'),
    );
    // The twin has no marker file of the first agent's load: only the group document, which every
    // agent holds, says which load to undo. The first agent writes it when the load starts; 500 ms
    // leave the change time to reach the twin before the kill, well inside the 4 s load.
    await resyncKilledInLoad('fourth', { killAfterMs: 500, restart: false });
    expect(readFileSync(twin.logFile, 'utf8')).toContain(
      'a resync load whose agent died was undone',
    );
  }, 120_000);
});
