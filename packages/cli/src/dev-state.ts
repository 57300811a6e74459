/**
 * What `georep dev` records about the group it started: `plan.json` (ports, dirs, node ids; enough
 * to revive a region) and `cluster.json` (endpoints and pids; documented in docs/cli.md and read
 * by scripts and tests).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError, NotFoundError } from '@georep/core';
import { isAlive, type GroupPlan, type RegionProcesses } from '@georep/testkit';

/** One region in `cluster.json`. */
export interface DevRegion {
  name: string;
  nats: string;
  natsMonitor: string;
  agent: { http: string; pid: number | null; log: string };
  /** The agent's Sentinel-compatible endpoint: point Sentinel-aware clients here. */
  sentinel: { host: string; port: number } | null;
  nodes: {
    id: string;
    host: string;
    port: number;
    role: 'primary' | 'replica';
    pid: number | null;
  }[];
  natsPid: number | null;
  /** Set by `georep dev kill`, cleared by `revive`. */
  killed: boolean;
}

/** The content of `cluster.json`. */
export interface DevCluster {
  group: string;
  dir: string;
  startedAt: string;
  regions: DevRegion[];
}

export const clusterFile = (dir: string) => join(dir, 'cluster.json');
export const planFile = (dir: string) => join(dir, 'plan.json');

/** Writes a file atomically (temp file + rename), so a crash never leaves half a JSON document. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

/** Reads `cluster.json`, or throws `dev.not-running`. */
export function readCluster(dir: string): DevCluster {
  const path = clusterFile(dir);
  if (!existsSync(path)) {
    throw new NotFoundError('dev.not-running', `no local group in ${dir} (no cluster.json)`, {
      hint: 'start one with: georep dev start (or pass the --dir you started it with)',
    });
  }
  return JSON.parse(readFileSync(path, 'utf8')) as DevCluster;
}

/** Reads `plan.json` written by `dev start`. */
export function readPlan(dir: string): GroupPlan {
  return JSON.parse(readFileSync(planFile(dir), 'utf8')) as GroupPlan;
}

/** The region of the cluster, or `dev.unknown-region`. */
export function findRegion(cluster: DevCluster, name: string): DevRegion {
  const region = cluster.regions.find((r) => r.name === name);
  if (region === undefined) {
    throw new NotFoundError('dev.unknown-region', `region ${name} is not part of the local group`, {
      hint: `regions: ${cluster.regions.map((r) => r.name).join(', ')}`,
    });
  }
  return region;
}

/** Every pid recorded for a region, agent first (so it stops before the servers). */
export function regionPids(region: DevRegion): number[] {
  return [region.agent.pid, region.natsPid, ...region.nodes.map((n) => n.pid)].filter(
    (p): p is number => p !== null,
  );
}

/** Throws `dev.already-running` when a recorded process of the cluster in `dir` still runs. */
export function assertNotRunning(dir: string): void {
  if (!existsSync(clusterFile(dir))) return;
  const cluster = readCluster(dir);
  const alive = cluster.regions.flatMap(regionPids).filter(isAlive);
  if (alive.length > 0) {
    throw new ConflictError(
      'dev.already-running',
      `a local group is already running from ${dir} (pids ${alive.join(', ')})`,
      {
        hint: 'stop it first with: georep dev stop',
      },
    );
  }
}

/** The `cluster.json` entry of one region started from `plan`. */
export function describeRegion(
  plan: GroupPlan,
  name: string,
  processes: RegionProcesses | null,
): DevRegion {
  const region = plan.regions.find((r) => r.name === name);
  if (region === undefined) throw new Error(`region ${name} not in plan`);
  return {
    name,
    nats: `nats://${region.nats.host}:${region.nats.port}`,
    natsMonitor: `http://${region.nats.host}:${region.nats.monitorPort}`,
    agent: {
      http: `http://${plan.host}:${region.agent.httpPort}`,
      pid: processes?.agent?.pid ?? null,
      log: region.agent.logFile,
    },
    sentinel:
      region.agent.sentinelPort === undefined
        ? null
        : { host: plan.host, port: region.agent.sentinelPort },
    nodes: region.nodes.map((n, i) => ({
      id: n.id,
      host: n.host,
      port: n.port,
      role: n.role,
      pid: processes?.nodes[i]?.pid ?? null,
    })),
    natsPid: processes?.nats.pid ?? null,
    killed: processes === null,
  };
}
