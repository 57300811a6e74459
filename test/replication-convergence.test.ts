/**
 * The convergence test of active-active replication: concurrent random workloads in three
 * regions on overlapping keys (strings, counters, hashes, sets, sorted sets, lists, TTLs,
 * deletes; 54,000 operations), with one region partitioned and healed and one agent killed
 * with SIGKILL and restarted in the middle. After writes stop and backlogs drain, every region
 * must hold identical data, and every counter must equal the sum of all increments made anywhere.
 *
 * The workload is seeded (GEOREP_SEED=<n> reruns one); the seed is printed on failure.
 * GEOREP_SHARDS=<n> runs it on n shards per region, each key in the shard its hash names.
 */
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom, tempDir, waitFor } from '@georep/testkit';
import {
  REPLICATED_REGIONS as REGIONS,
  diffDatasets,
  readDataset,
  startReplicatedGroup,
  type KeyContent,
  type ReplicatedGroup,
} from './replication-helpers.js';

const OPS_PER_REGION = 18_000;
const CHUNK = 200;
const SEED = Number(process.env.GEOREP_SEED ?? Date.now() % 1_000_000);
const SHARDS = Number(process.env.GEOREP_SHARDS ?? 1);
/** The shard of a key (`s1`..`sN`, as the testkit names them; undefined with one shard). */
const shardOf = (key: string): string | undefined => {
  if (SHARDS <= 1) return undefined;
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return `s${(h % SHARDS) + 1}`;
};
const SHARD_NAMES =
  SHARDS <= 1 ? [undefined] : Array.from({ length: SHARDS }, (_, i) => `s${i + 1}`);

describe('replication convergence under faults', () => {
  let g: ReplicatedGroup;
  const dir = tempDir('convergence');
  const client = (region: string, shard?: string) => g.client(region, shard);
  /** Every key of a region, over its shards. */
  const datasetOf = async (region: string) => {
    const all = new Map<string, KeyContent>();
    for (const shard of SHARD_NAMES)
      for (const [k, v] of await readDataset(client(region, shard))) all.set(k, v);
    return all;
  };
  /** Sum of all increments per counter key, over every region. */
  const increments = new Map<string, number>();
  /** Operations sent so far per region. */
  const progress = new Map<string, number>(REGIONS.map((r) => [r, 0]));

  beforeAll(async () => {
    g = await startReplicatedGroup('conv', join(dir, 'group'), undefined, undefined, {
      shards: SHARDS,
    });
  });

  afterAll(async () => {
    await g?.stop();
  });

  /** One region's random workload, pipelined in chunks. */
  async function workload(region: string, index: number): Promise<void> {
    const rnd = seededRandom(SEED * 31 + index);
    const pick = (n: number) => Math.floor(rnd() * n);
    for (let done = 0; done < OPS_PER_REGION; done += CHUNK) {
      // One pipeline per shard; each command goes to the shard of its key.
      const pipes = new Map(SHARD_NAMES.map((s) => [s, client(region, s).pipeline()]));
      const p = new Proxy({} as ReturnType<Redis['pipeline']>, {
        get:
          (_, method: string) =>
          (key: string, ...rest: unknown[]) =>
            (pipes.get(shardOf(key)) as unknown as Record<string, (...a: unknown[]) => unknown>)[
              method
            ]!(key, ...rest),
      });
      for (let i = 0; i < CHUNK; i++) {
        const r = rnd();
        const n = pick(30);
        if (r < 0.2) p.set(`str:${n}`, `${region}-${done + i}`);
        else if (r < 0.25) p.set(`str:${n}`, `${region}-${done + i}`, 'EX', 200 + pick(400));
        else if (r < 0.3) p.del(`str:${n}`);
        else if (r < 0.45) {
          const key = `ctr:${pick(10)}`;
          const by = 1 + pick(5);
          increments.set(key, (increments.get(key) ?? 0) + by);
          p.incrby(key, by);
        } else if (r < 0.55) p.hset(`hash:${pick(10)}`, `f${pick(8)}`, `${region}-${i}`);
        else if (r < 0.6) p.hdel(`hash:${pick(10)}`, `f${pick(8)}`);
        else if (r < 0.68) p.sadd(`set:${pick(10)}`, `m${pick(12)}`);
        else if (r < 0.73) p.srem(`set:${pick(10)}`, `m${pick(12)}`);
        else if (r < 0.81) p.zadd(`zset:${pick(10)}`, pick(1000), `m${pick(12)}`);
        else if (r < 0.84) p.zrem(`zset:${pick(10)}`, `m${pick(12)}`);
        else if (r < 0.9) p.rpush(`list:${pick(5)}`, `${region}-${i}`);
        else if (r < 0.93) p.ltrim(`list:${pick(5)}`, -20, -1);
        else if (r < 0.96)
          p.expire(`${['str', 'hash', 'set'][pick(3)]}:${n % 10}`, 300 + pick(600));
        else if (r < 0.98) p.persist(`str:${n}`);
        else p.del(`${['hash', 'set', 'zset'][pick(3)]}:${pick(10)}`);
      }
      await Promise.all([...pipes.values()].map((x) => x.exec()));
      progress.set(region, done + CHUNK);
      // Spread the workload over about 12 s so the faults land in the middle of it.
      await new Promise((r) => setTimeout(r, 120));
    }
  }

  const totalProgress = () => [...progress.values()].reduce((a, b) => a + b, 0);
  const reach = (fraction: number) =>
    waitFor(
      () => totalProgress(),
      (n) => n >= fraction * OPS_PER_REGION * REGIONS.length,
      { timeoutMs: 120_000, intervalMs: 20, what: `${fraction * 100}% of the workload` },
    );

  it(
    'convergence - random workloads, a partition and an agent kill; every region ends identical',
    { timeout: 300_000 },
    async () => {
      const writers = Promise.all(REGIONS.map((r, i) => workload(r, i)));
      await reach(0.25);
      await g.group.partitionRegion('ap-south');
      await reach(0.5);
      const us = g.group.region('us-east').agent!;
      await us.kill();
      await reach(0.65);
      await g.group.restartAgentProcess('us-east');
      await reach(0.8);
      await g.group.healRegion('ap-south');
      // The faults happened while every region was still writing.
      expect(totalProgress()).toBeLessThan(OPS_PER_REGION * REGIONS.length);
      await writers;

      let diff: string[] = [];
      try {
        await waitFor(
          async () => {
            const sets = await Promise.all(REGIONS.map((r) => datasetOf(r)));
            diff = [...diffDatasets(sets[0]!, sets[1]!), ...diffDatasets(sets[0]!, sets[2]!)];
            return diff.length;
          },
          (n) => n === 0,
          { timeoutMs: 150_000, intervalMs: 1000, what: 'every region identical' },
        );
      } catch (err) {
        throw new Error(
          `seed ${SEED}: regions differ in ${diff.length} keys: ${diff.slice(0, 8).join('; ')}`,
          { cause: err },
        );
      }
      for (const [key, sum] of increments) {
        for (const r of REGIONS) {
          expect(await client(r, shardOf(key)).get(key), `${key} in ${r} (seed ${SEED})`).toBe(
            String(sum),
          );
        }
      }
      const data = await datasetOf('eu-west');
      expect(data.size).toBeGreaterThan(50);
    },
  );
});
