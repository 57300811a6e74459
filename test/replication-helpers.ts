/** Helpers of the replication suites: read a region's whole dataset the way a user compares it. */
import { Redis } from 'ioredis';
import type { RegionStatus, StatusReport } from '@georep/core';
import { planGroup, startGroup, waitFor, type GroupPlan, type LocalGroup } from '@georep/testkit';
import { agentCommand, georep } from './helpers.js';

/** One key's content: type, value in a canonical form, and TTL in ms (-1 none). */
export interface KeyContent {
  type: string;
  value: unknown;
  pttl: number;
}

/** Every key of db 0 except georep's own, with its content. */
export async function readDataset(client: Redis): Promise<Map<string, KeyContent>> {
  const out = new Map<string, KeyContent>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      if (key.startsWith('__georep:')) continue;
      const content = await readKey(client, key);
      if (content !== null) out.set(key, content);
    }
  } while (cursor !== '0');
  return out;
}

/** The content of one key, or null when it does not exist. */
export async function readKey(client: Redis, key: string): Promise<KeyContent | null> {
  const type = await client.type(key);
  let value: unknown;
  switch (type) {
    case 'none':
      return null;
    case 'string':
      value = await client.get(key);
      break;
    case 'hash':
      value = Object.entries(await client.hgetall(key)).sort(([a], [b]) => (a < b ? -1 : 1));
      break;
    case 'set':
      value = (await client.smembers(key)).sort();
      break;
    case 'zset':
      value = await client.zrange(key, 0, -1, 'WITHSCORES');
      break;
    case 'list':
      value = await client.lrange(key, 0, -1);
      break;
    default:
      value = (await client.dumpBuffer(key))?.toString('base64');
  }
  return { type, value, pttl: await client.pttl(key) };
}

/**
 * Differences between two datasets: keys missing on one side, or with another type or value, or
 * TTLs more than `ttlSlackMs` apart. Empty when they match.
 */
export function diffDatasets(
  a: Map<string, KeyContent>,
  b: Map<string, KeyContent>,
  ttlSlackMs = 1500,
): string[] {
  const out: string[] = [];
  for (const [key, ca] of a) {
    const cb = b.get(key);
    if (cb === undefined) {
      out.push(`${key}: only in the first (${JSON.stringify(ca)})`);
      continue;
    }
    if (ca.type !== cb.type || JSON.stringify(ca.value) !== JSON.stringify(cb.value)) {
      out.push(`${key}: ${JSON.stringify(ca)} vs ${JSON.stringify(cb)}`);
    } else if (ca.pttl < 0 !== cb.pttl < 0 || Math.abs(ca.pttl - cb.pttl) > ttlSlackMs) {
      out.push(`${key}: ttl ${ca.pttl} vs ${cb.pttl}`);
    }
  }
  for (const key of b.keys()) if (!a.has(key)) out.push(`${key}: only in the second`);
  return out;
}

/** The regions of the replication suites. */
export const REPLICATED_REGIONS = ['eu-west', 'us-east', 'ap-south'] as const;

/** A running three-region group with a client per primary and status helpers. */
export interface ReplicatedGroup {
  plan: GroupPlan;
  group: LocalGroup;
  /** A client of the region's primary (of `shard`, with several shards; the first by default). */
  client: (region: string, shard?: string) => Redis;
  nats: (region: string) => string;
  /** `georep status --region R --json`, asked of R's agent. */
  status: (region: string) => Promise<StatusReport>;
  /** The replication part of R's status, as R's agent reports it. */
  replicationOf: (region: string) => Promise<RegionStatus['replication']>;
  stop: () => Promise<void>;
}

/** Shards of {@link startReplicatedGroup}: `shards` per region (`s1`, `s2`, ...), minus `drop`. */
export interface ShardLayout {
  shards: number;
  /** region → shards it does not have. */
  drop?: Record<string, string[]>;
}

/**
 * Starts `regions` (three by default) with agents and waits until replication runs everywhere
 * (each region reports capture running and a link to every other).
 */
export async function startReplicatedGroup(
  name: string,
  dir: string,
  replication?: Record<string, unknown>,
  regions: readonly string[] = REPLICATED_REGIONS,
  layout: ShardLayout = { shards: 1 },
): Promise<ReplicatedGroup> {
  const plan = await planGroup({
    group: name,
    dir,
    regions: [...regions],
    replicas: 0,
    shards: layout.shards,
    ports: 'free',
    // Tight health timing for the usual three regions; a larger group on the same two cores
    // gets more slack, or busy agents would see each other down.
    health:
      regions.length <= 5
        ? { intervalMs: 500, downAfterMs: 2000 }
        : { intervalMs: 1000, downAfterMs: 6000 },
    ...(replication === undefined ? {} : { replication }),
  });
  for (const r of plan.regions) {
    const drop = layout.drop?.[r.name] ?? [];
    r.nodes = r.nodes.filter((n) => n.shard === undefined || !drop.includes(n.shard));
  }
  const group = await startGroup(plan, {
    agentCommand,
    readyTimeoutMs: 30_000 * Math.max(1, regions.length / 5),
  });
  const clients = new Map<string, Redis>();
  for (const r of plan.regions) {
    for (const node of r.nodes) {
      const key = `${r.name}/${node.shard ?? ''}`;
      if (!clients.has(r.name)) clients.set(r.name, new Redis(node.port, node.host));
      clients.set(key, new Redis(node.port, node.host));
    }
  }
  const nats = (region: string) =>
    `nats://127.0.0.1:${plan.regions.find((r) => r.name === region)!.nats.port}`;
  const status = async (region: string): Promise<StatusReport> => {
    const run = await georep([
      '--nats',
      nats(region),
      '--group',
      name,
      'status',
      '--region',
      region,
      '--json',
    ]);
    if (run.code !== 0) throw new Error(`georep status: ${run.stderr}`);
    return JSON.parse(run.stdout) as StatusReport;
  };
  const replicationOf = async (region: string) =>
    (await status(region)).regions.find((r) => r.name === region)?.replication;
  try {
    await waitFor(
      async () => Promise.all(regions.map(replicationOf)),
      (all) => all.every((s) => s?.state === 'running' && s.links.length === regions.length - 1),
      { timeoutMs: 30_000, intervalMs: 250, what: 'replication running in every region' },
    );
  } catch (err) {
    // Nobody else would stop the servers of a group that never became ready.
    for (const c of clients.values()) c.disconnect();
    await group.stop();
    throw err;
  }
  return {
    plan,
    group,
    client: (region, shard) => clients.get(shard === undefined ? region : `${region}/${shard}`)!,
    nats,
    status,
    replicationOf,
    stop: async () => {
      for (const c of clients.values()) c.disconnect();
      await group.stop();
    },
  };
}
