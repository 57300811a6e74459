/**
 * `georep dev`: a whole local group on loopback (nats-servers joined by gateways, Redis primary
 * and replicas, one agent per region), running in the background, for trying georep and for
 * outage drills (`kill` / `revive`).
 */
import { createServer } from 'node:net';
import { mkdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { ConfigError, ConflictError, isValidName, splitList } from '@georep/core';
import {
  MAX_REGIONS,
  findBinary,
  isAlive,
  planGroup,
  startGroup,
  startRegion,
  waitForRegionStates,
  type GroupPlan,
} from '@georep/testkit';
import { renderTable } from '../format.js';
import { globalsOf } from '../global-options.js';
import {
  assertNotRunning,
  clusterFile,
  describeRegion,
  findRegion,
  planFile,
  readCluster,
  readPlan,
  regionPids,
  writeJsonAtomic,
  type DevCluster,
} from '../dev-state.js';

export const DEFAULT_DEV_DIR = '.georep-dev';
export const DEFAULT_DEV_REGIONS = 'eu-west,us-east,ap-south';
export const DEFAULT_DEV_GROUP = 'dev';

const BIN = fileURLToPath(new URL('./bin.js', new URL('..', import.meta.url)));

/** Agents of `georep dev` run this very CLI: `node <bin> agent --config FILE`. */
const agentCommand = (configFile: string) => ({
  command: process.execPath,
  args: [BIN, 'agent', '--config', configFile],
});

const dirOption = () =>
  new Option('--dir <dir>', 'directory of the local group').default(DEFAULT_DEV_DIR);

async function assertPortsFree(plan: GroupPlan): Promise<void> {
  const ports = plan.regions.flatMap((r) => [
    r.nats.port,
    r.nats.monitorPort,
    r.nats.clusterPort,
    r.nats.gatewayPort,
    r.agent.httpPort,
    ...(r.agent.sentinelPort === undefined ? [] : [r.agent.sentinelPort]),
    ...r.nodes.map((n) => n.port),
  ]);
  for (const port of ports) {
    const free = await new Promise<boolean>((done) => {
      const server = createServer();
      server.once('error', () => done(false));
      server.listen(port, plan.host, () => server.close(() => done(true)));
    });
    if (!free) {
      throw new ConflictError('dev.port-in-use', `port ${port} on ${plan.host} is in use`, {
        hint: 'stop what uses it (an earlier georep dev? run georep dev stop) or start fewer regions',
        details: { port },
      });
    }
  }
}

function parseRegions(value: string): string[] {
  const regions = splitList(value);
  const bad = regions.filter((r) => !isValidName(r));
  if (
    regions.length < 1 ||
    regions.length > MAX_REGIONS ||
    bad.length > 0 ||
    new Set(regions).size !== regions.length
  ) {
    throw new ConfigError('config.invalid-regions', `invalid --regions "${value}"`, {
      hint: `give 1-${MAX_REGIONS} distinct names of lower-case letters, digits and '-', comma-separated`,
    });
  }
  return regions;
}

function printCluster(cluster: DevCluster, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(cluster, null, 2)}\n`);
    return;
  }
  const rows = cluster.regions.map((r) => [
    r.name,
    r.nats,
    r.nodes.map((n) => `${n.id}=${n.host}:${n.port}${n.role === 'primary' ? '*' : ''}`).join(' '),
    r.agent.http,
    r.sentinel == null ? '-' : `${r.sentinel.host}:${r.sentinel.port}`,
  ]);
  process.stdout.write(
    `group ${cluster.group} is up (${cluster.regions.length} regions; * = primary)\n` +
      `${renderTable(['REGION', 'NATS', 'REDIS NODES', 'AGENT HTTP', 'SENTINEL'], rows)}\n` +
      `state: ${clusterFile(cluster.dir)}\nnext: georep status    stop: georep dev stop${cluster.dir === resolve(DEFAULT_DEV_DIR) ? '' : ` --dir ${cluster.dir}`}\n`,
  );
}

async function stopPids(pids: number[], graceMs = 5000): Promise<void> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of pids.filter(isAlive)) signal(pid, 'SIGKILL');
  while (pids.some(isAlive)) await new Promise((r) => setTimeout(r, 20));
}

function makeStart(): Command {
  return new Command('start')
    .description('start a local group in the background and wait until every region is up')
    .addOption(dirOption())
    .option('--regions <names>', 'comma-separated region names', DEFAULT_DEV_REGIONS)
    .option('--replicas <n>', 'replicas per primary', '1')
    .option('--down-after-ms <ms>', 'heartbeat silence before a region is suspect', '5000')
    .option('--json', 'print cluster.json')
    .action(
      async (
        opts: {
          dir: string;
          regions: string;
          replicas: string;
          downAfterMs: string;
          json?: boolean;
        },
        command: Command,
      ) => {
        const dir = resolve(opts.dir);
        const group = globalsOf(command).group ?? DEFAULT_DEV_GROUP;
        const replicas = Number(opts.replicas);
        if (!Number.isInteger(replicas) || replicas < 0 || replicas > 5) {
          throw new ConfigError(
            'config.invalid-replicas',
            `invalid --replicas "${opts.replicas}"`,
            { hint: 'give 0-5' },
          );
        }
        const regions = parseRegions(opts.regions);
        findBinary('redis-server');
        findBinary('nats-server');
        mkdirSync(dir, { recursive: true });
        assertNotRunning(dir);
        const plan = await planGroup({
          group,
          dir,
          regions,
          replicas,
          ports: 'fixed',
          appendonly: true,
          health: { intervalMs: 1000, downAfterMs: Number(opts.downAfterMs) },
        });
        await assertPortsFree(plan);
        writeJsonAtomic(planFile(dir), plan);
        if (process.stderr.isTTY)
          process.stderr.write(`starting ${regions.length} regions in ${dir} ...\n`);
        const started = await startGroup(plan, {
          detached: true,
          agentCommand,
          readyTimeoutMs: 60_000,
        });
        const cluster: DevCluster = {
          group,
          dir,
          startedAt: new Date().toISOString(),
          regions: regions.map((name) =>
            describeRegion(plan, name, started.regions.get(name) ?? null),
          ),
        };
        writeJsonAtomic(clusterFile(dir), cluster);
        printCluster(cluster, opts.json === true);
      },
    );
}

function makeStop(): Command {
  return new Command('stop')
    .description('stop every process of the local group')
    .addOption(dirOption())
    .option('--purge', 'also delete the data directory')
    .action(async (opts: { dir: string; purge?: boolean }) => {
      const dir = resolve(opts.dir);
      const cluster = readCluster(dir);
      // Agents first, so they do not log their servers disappearing.
      await stopPids(
        cluster.regions.map((r) => r.agent.pid).filter((p): p is number => p !== null),
      );
      await stopPids(cluster.regions.flatMap(regionPids));
      rmSync(clusterFile(dir), { force: true });
      if (opts.purge === true) rmSync(dir, { recursive: true, force: true });
      process.stdout.write(`stopped group ${cluster.group} (${cluster.regions.length} regions)\n`);
    });
}

function makeKill(): Command {
  return new Command('kill')
    .description('hard-kill every process of one region (simulates a regional outage)')
    .argument('<region>')
    .addOption(dirOption())
    .action(async (name: string, opts: { dir: string }) => {
      const dir = resolve(opts.dir);
      const cluster = readCluster(dir);
      const region = findRegion(cluster, name);
      for (const pid of regionPids(region)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      while (regionPids(region).some(isAlive)) await new Promise((r) => setTimeout(r, 20));
      Object.assign(region, describeRegion(readPlan(dir), name, null));
      writeJsonAtomic(clusterFile(dir), cluster);
      process.stdout.write(`killed region ${name}\n`);
    });
}

function makeRevive(): Command {
  return new Command('revive')
    .description('start a killed region again with the same ports and data')
    .argument('<region>')
    .addOption(dirOption())
    .option('--no-wait', 'return without waiting for the region to be seen up')
    .action(async (name: string, opts: { dir: string; wait: boolean }) => {
      const dir = resolve(opts.dir);
      const cluster = readCluster(dir);
      const region = findRegion(cluster, name);
      if (regionPids(region).some(isAlive)) {
        throw new ConflictError('dev.region-running', `region ${name} is running`, {
          hint: `kill it first with: georep dev kill ${name}`,
        });
      }
      const plan = readPlan(dir);
      const processes = await startRegion(plan, name, { detached: true, agentCommand });
      Object.assign(region, describeRegion(plan, name, processes));
      writeJsonAtomic(clusterFile(dir), cluster);
      if (opts.wait) {
        const alive = cluster.regions.filter((r) => !r.killed).map((r) => r.name);
        await waitForRegionStates(plan, { [name]: 'up' }, { askRegions: alive, timeoutMs: 30_000 });
      }
      process.stdout.write(`revived region ${name}\n`);
    });
}

export function makeDevCommand(): Command {
  return new Command('dev')
    .description('run a whole local group on loopback (for trying georep and outage drills)')
    .addCommand(makeStart())
    .addCommand(makeStop())
    .addCommand(makeKill())
    .addCommand(makeRevive());
}
