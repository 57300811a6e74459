/**
 * A whole local group: per region a nats-server (JetStream, gateways to every other region), a
 * Redis primary with replicas, and an agent. The plan (ports, dirs, node ids) is plain data
 * that `georep dev` saves, so a killed region can be revived later with the same ports and data.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { TimeoutError, type RegionState } from '@georep/core';
import { NatsServer, natsJetStreamReady } from './nats-server.js';
import { DEV_PORTS, MAX_REGIONS } from './dev-ports.js';
import { getFreePorts } from './ports.js';
import { ManagedProcess } from './process.js';
import { RedisServer } from './redis-server.js';

export { DEV_PORTS, MAX_REGIONS };

/** One Redis node in a plan. */
export interface NodePlan {
  id: string;
  host: string;
  port: number;
  role: 'primary' | 'replica';
  /** Set when the region has more than one shard. */
  shard?: string;
  dir: string;
}

/** Everything about one region in a plan. */
export interface RegionPlan {
  name: string;
  dir: string;
  nats: {
    host: string;
    port: number;
    monitorPort: number;
    clusterPort: number;
    gatewayPort: number;
    dir: string;
  };
  nodes: NodePlan[];
  agent: {
    configFile: string;
    httpPort: number;
    /** The agent's Sentinel-compatible endpoint. */
    sentinelPort: number;
    logFile: string;
    dir: string;
  };
}

/** A laid-out group; JSON-serialisable. */
export interface GroupPlan {
  group: string;
  dir: string;
  host: string;
  health: { intervalMs: number; downAfterMs: number };
  /** The agents' `replication` config section, when a test sets one. */
  replication?: Record<string, unknown>;
  /** Keep Redis data across kill/revive (append-only file). */
  appendonly: boolean;
  /** Extra agent configuration merged into every agent's file. */
  agent?: Record<string, unknown>;
  regions: RegionPlan[];
}

/** Options of {@link planGroup}. */
export interface PlanOptions {
  group: string;
  dir: string;
  regions: string[];
  /** Replicas per primary. */
  replicas: number;
  /** Shards (primary + replicas each) per region; default 1. */
  shards?: number;
  /** Extra agent configuration merged into every agent's file (e.g. `failover`). */
  agent?: Record<string, unknown>;
  /** `fixed` uses {@link DEV_PORTS}; `free` asks the OS (tests). */
  ports: 'fixed' | 'free';
  health?: { intervalMs: number; downAfterMs: number };
  /** The agents' `replication` config section (agent defaults otherwise). */
  replication?: Record<string, unknown>;
  appendonly?: boolean;
}

/** Lays out ports, directories and node ids. Nothing is started or written. */
export async function planGroup(options: PlanOptions): Promise<GroupPlan> {
  const host = '127.0.0.1';
  const dir = resolve(options.dir);
  const shards = options.shards ?? 1;
  const perShard = 1 + options.replicas;
  const perRegion = 6 + shards * perShard;
  const free =
    options.ports === 'free' ? await getFreePorts(perRegion * options.regions.length, host) : [];
  const regions = options.regions.map((name, i): RegionPlan => {
    const take = (fixed: number) => (options.ports === 'free' ? (free.shift() as number) : fixed);
    const regionDir = join(dir, name);
    const nats = {
      host,
      port: take(DEV_PORTS.natsClient + i),
      monitorPort: take(DEV_PORTS.natsMonitor + i),
      clusterPort: take(DEV_PORTS.natsCluster + i),
      gatewayPort: take(DEV_PORTS.natsGateway + i),
      dir: join(regionDir, 'nats'),
    };
    // One shard keeps the short ids (eu-1, eu-2); several shards name theirs (eu-s2-1).
    const nodes = Array.from({ length: shards * perShard }, (_, n): NodePlan => {
      const j = Math.floor(n / perShard);
      const k = n % perShard;
      const id = shards === 1 ? `${name}-${k + 1}` : `${name}-s${j + 1}-${k + 1}`;
      return {
        id,
        host,
        port: take(DEV_PORTS.redis + 10 * i + n),
        role: k === 0 ? 'primary' : 'replica',
        ...(shards === 1 ? {} : { shard: `s${j + 1}` }),
        dir: join(regionDir, `redis-${id.slice(name.length + 1)}`),
      };
    });
    const agentDir = join(regionDir, 'agent');
    return {
      name,
      dir: regionDir,
      nats,
      nodes,
      agent: {
        configFile: join(agentDir, 'agent.json'),
        httpPort: take(DEV_PORTS.agentHttp + i),
        sentinelPort: take(DEV_PORTS.sentinel + i),
        logFile: join(agentDir, 'agent.log'),
        dir: agentDir,
      },
    };
  });
  return {
    group: options.group,
    dir,
    host,
    health: options.health ?? { intervalMs: 1000, downAfterMs: 5000 },
    ...(options.replication === undefined ? {} : { replication: options.replication }),
    appendonly: options.appendonly ?? false,
    ...(options.agent === undefined ? {} : { agent: options.agent }),
    regions,
  };
}

/** The agent configuration file content for one region of a plan. */
export function agentConfigFor(plan: GroupPlan, region: RegionPlan): Record<string, unknown> {
  return {
    group: plan.group,
    region: region.name,
    regions: plan.regions.map((r) => r.name),
    nats: { servers: [`nats://${region.nats.host}:${region.nats.port}`] },
    redis: {
      nodes: region.nodes.map((n) => ({
        id: n.id,
        host: n.host,
        port: n.port,
        ...(n.shard === undefined ? {} : { shard: n.shard }),
      })),
    },
    health: plan.health,
    ...(plan.replication === undefined ? {} : { replication: plan.replication }),
    http: { host: plan.host, port: region.agent.httpPort },
    // Plans saved before the Sentinel endpoint have no port: leave it off for them.
    sentinel:
      region.agent.sentinelPort === undefined
        ? false
        : { host: plan.host, port: region.agent.sentinelPort },
    dataDir: region.agent.dir,
    ...plan.agent,
  };
}

/** Writes every region's agent config file. */
export function writeAgentConfigs(plan: GroupPlan): void {
  for (const region of plan.regions) {
    mkdirSync(region.agent.dir, { recursive: true });
    writeFileSync(
      region.agent.configFile,
      `${JSON.stringify(agentConfigFor(plan, region), null, 2)}\n`,
    );
  }
}

/** How to run an agent for a config file (the testkit does not depend on the agent package). */
export type AgentCommand = (configFile: string) => { command: string; args: string[] };

/** The processes of one running region. */
export interface RegionProcesses {
  nats: NatsServer;
  nodes: RedisServer[];
  agent: ManagedProcess | null;
}

/** Options of {@link startRegion} and {@link startGroup}. */
export interface LaunchOptions {
  detached?: boolean;
  /** Omit to start servers only (no agents). */
  agentCommand?: AgentCommand;
  /** Extra environment for agents (e.g. log level). */
  agentEnv?: NodeJS.ProcessEnv;
  /** How long an agent (and, in startGroup, the whole group) may take to get ready. */
  readyTimeoutMs?: number;
}

/** Starts the nats-server, Redis nodes and agent of one region of the plan. */
export async function startRegion(
  plan: GroupPlan,
  regionName: string,
  options: LaunchOptions = {},
): Promise<RegionProcesses> {
  const region = plan.regions.find((r) => r.name === regionName);
  if (region === undefined) throw new Error(`region ${regionName} is not in the plan`);
  const detached = options.detached ?? false;
  const nats = await NatsServer.start({
    dir: region.nats.dir,
    serverName: region.name,
    host: region.nats.host,
    port: region.nats.port,
    monitorPort: region.nats.monitorPort,
    clusterPort: region.nats.clusterPort,
    gateway: {
      port: region.nats.gatewayPort,
      remotes: plan.regions.map((r) => ({ name: r.name, port: r.nats.gatewayPort })),
    },
    detached,
  });
  const nodes: RedisServer[] = [];
  let agent: ManagedProcess | null = null;
  try {
    for (const node of region.nodes) {
      const primary = region.nodes.find((n) => n.role === 'primary' && n.shard === node.shard);
      nodes.push(
        await RedisServer.start({
          dir: node.dir,
          host: node.host,
          port: node.port,
          name: `redis ${node.id}`,
          appendonly: plan.appendonly,
          detached,
          ...(node.role === 'replica' && primary !== undefined
            ? { replicaOf: { host: primary.host, port: primary.port } }
            : {}),
        }),
      );
    }
    if (options.agentCommand !== undefined) {
      writeAgentConfigs(plan);
      const { command, args } = options.agentCommand(region.agent.configFile);
      const url = { host: plan.host, port: region.agent.httpPort };
      agent = await ManagedProcess.start({
        name: `agent ${region.name}`,
        command,
        args,
        env: { ...process.env, ...options.agentEnv },
        logFile: region.agent.logFile,
        ready: async () => (await fetchAgentHealth(url.host, url.port)) !== null,
        detached,
        ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs }),
      });
    }
  } catch (err) {
    // The region is not handed back, so nobody else would stop its servers.
    await Promise.all([nats.stop(), ...nodes.map((n) => n.stop())]);
    throw err;
  }
  return { nats, nodes, agent };
}

/** The agent's `/healthz` document (null when it does not answer). */
export interface AgentHealth {
  ok: boolean;
  region: string;
  regions: Record<string, RegionState>;
}

/** GETs an agent's `/healthz`; null when unreachable. */
export async function fetchAgentHealth(
  host: string,
  port: number,
  timeoutMs = 1000,
): Promise<AgentHealth | null> {
  return new Promise((resolvePromise) => {
    const req = request({ host, port, path: '/healthz', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          resolvePromise(JSON.parse(body) as AgentHealth);
        } catch {
          resolvePromise(null);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolvePromise(null));
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the agent of every region in `askRegions` sees every region of the plan in
 * `state` (default `up`). Throws `testkit.group-not-ready` with the last views on timeout.
 */
export async function waitForRegionStates(
  plan: GroupPlan,
  expected: Record<string, RegionState>,
  options: { askRegions?: string[]; timeoutMs?: number } = {},
): Promise<void> {
  const ask = plan.regions.filter((r) => options.askRegions?.includes(r.name) ?? true);
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let last: Record<string, AgentHealth | null> = {};
  for (;;) {
    last = {};
    let all = true;
    for (const region of ask) {
      const health = await fetchAgentHealth(plan.host, region.agent.httpPort);
      last[region.name] = health;
      const matches =
        health !== null &&
        Object.entries(expected).every(([name, state]) => health.regions[name] === state);
      if (!matches) all = false;
    }
    if (all) return;
    if (Date.now() > deadline) {
      throw new TimeoutError(
        'testkit.group-not-ready',
        `regions did not reach ${JSON.stringify(expected)}: ${JSON.stringify(last)}`,
      );
    }
    await sleep(200);
  }
}

/** Every region `up` as seen by every agent. */
export function allUp(plan: GroupPlan): Record<string, RegionState> {
  return Object.fromEntries(plan.regions.map((r) => [r.name, 'up' as const]));
}

/** A running local group started by {@link startGroup}. `await using` stops it. */
export class LocalGroup implements AsyncDisposable {
  readonly plan: GroupPlan;
  readonly regions = new Map<string, RegionProcesses>();
  readonly #options: LaunchOptions;

  constructor(plan: GroupPlan, options: LaunchOptions) {
    this.plan = plan;
    this.#options = options;
  }

  /** The processes of `name`; throws if it is not running. */
  region(name: string): RegionProcesses {
    const processes = this.regions.get(name);
    if (processes === undefined) throw new Error(`region ${name} is not running`);
    return processes;
  }

  /** Hard-kills every process of one region (an outage). */
  async killRegion(name: string): Promise<void> {
    const processes = this.region(name);
    await Promise.all([
      processes.agent?.kill() ?? Promise.resolve(),
      processes.nats.kill(),
      ...processes.nodes.map((n) => n.kill()),
    ]);
    this.regions.delete(name);
  }

  /** Stops the agent of one region gracefully and starts it again with the same config. */
  async restartAgent(name: string): Promise<void> {
    const processes = this.region(name);
    if (processes.agent === null) throw new Error(`region ${name} runs no agent`);
    await processes.agent.stop();
    await this.restartAgentProcess(name);
  }

  /** Starts the agent of one region again after it was stopped (e.g. to edit its files meanwhile). */
  async restartAgentProcess(name: string): Promise<void> {
    const processes = this.region(name);
    if (processes.agent === null) throw new Error(`region ${name} runs no agent`);
    if (processes.agent.running) throw new Error(`the agent of ${name} is running`);
    processes.agent = await ManagedProcess.start(processes.agent.spec);
  }

  /** Partitions one region: its NATS server loses every gateway link (see `setGateways`). */
  async partitionRegion(name: string): Promise<void> {
    await this.region(name).nats.setGateways(false);
  }

  /** Heals a partition made by {@link partitionRegion}. */
  async healRegion(name: string): Promise<void> {
    await this.region(name).nats.setGateways(true);
  }

  /** Starts a killed region again with the same ports and data. */
  async reviveRegion(name: string): Promise<void> {
    this.regions.set(name, await startRegion(this.plan, name, this.#options));
  }

  /** Stops every process, agents first so they do not log the servers going away. */
  async stop(): Promise<void> {
    const all = [...this.regions.values()];
    await Promise.all(all.map(async (p) => p.agent?.stop()));
    await Promise.all(all.flatMap((p) => [p.nats.stop(), ...p.nodes.map((n) => n.stop())]));
    this.regions.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts every region of the plan and, with agents, waits until each agent sees all regions up.
 * On failure everything already started is stopped before the error is rethrown.
 */
export async function startGroup(
  plan: GroupPlan,
  options: LaunchOptions = {},
): Promise<LocalGroup> {
  const group = new LocalGroup(plan, options);
  try {
    // NATS servers first in every region so gateways find each other, then the rest.
    for (const region of plan.regions) {
      group.regions.set(region.name, await startRegion(plan, region.name, options));
    }
    if (options.agentCommand !== undefined) {
      await waitForRegionStates(plan, allUp(plan), { timeoutMs: options.readyTimeoutMs ?? 30_000 });
    }
    // JetStream elects its meta leader across the whole supercluster a few seconds after start;
    // the group is ready when every server reaches it (snapshots and streams need it).
    for (const region of plan.regions) {
      const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
      while (!(await natsJetStreamReady(region.nats.host, region.nats.monitorPort))) {
        if (Date.now() > deadline) {
          throw new TimeoutError(
            'testkit.jetstream-not-ready',
            `JetStream of ${region.name} has no meta leader`,
          );
        }
        await sleep(100);
      }
    }
    return group;
  } catch (err) {
    await group.stop();
    throw err;
  }
}
