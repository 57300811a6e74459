/**
 * The CLI's side of the agent protocol: connect to NATS, find the group, ask an agent. The CLI
 * never talks to Redis; everything goes through an agent over NATS request/reply.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm } from '@nats-io/services';
import {
  ConfigError,
  GeorepError,
  SERVICE_NAME,
  UnreachableError,
  deserializeError,
  groupSubjects,
  type ApiReply,
  type NatsConfig,
  type StatusReport,
} from '@georep/core';
import { connectNats } from '@georep/agent/connection';
import type { Command } from 'commander';
import { globalsOf, natsConfigFrom } from './global-options.js';

/** A NATS connection for one CLI command; `await using` closes it. */
export class AgentClient implements AsyncDisposable {
  readonly nc: NatsConnection;
  readonly timeoutMs: number;

  private constructor(nc: NatsConnection, timeoutMs: number) {
    this.nc = nc;
    this.timeoutMs = timeoutMs;
  }

  static async connect(config: NatsConfig, timeoutMs: number): Promise<AgentClient> {
    const nc = await connectNats(config, { name: 'georep-cli', timeoutMs });
    return new AgentClient(nc, timeoutMs);
  }

  /** Groups served by the agents reachable on this NATS, from the services framework's discovery. */
  async discoverGroups(): Promise<Map<string, string[]>> {
    const groups = new Map<string, string[]>();
    const infos = await new Svcm(this.nc)
      .client({ strategy: 'stall', stall: 150, maxWait: Math.min(this.timeoutMs, 1500) })
      .info(SERVICE_NAME);
    for await (const info of infos) {
      const group = info.metadata?.group;
      const region = info.metadata?.region;
      if (group === undefined || region === undefined) continue;
      groups.set(group, [...(groups.get(group) ?? []), region]);
    }
    return groups;
  }

  /** `explicit`, or the single group the reachable agents serve. */
  async resolveGroup(explicit: string | undefined): Promise<string> {
    if (explicit !== undefined) return explicit;
    const groups = await this.discoverGroups();
    if (groups.size === 1) return [...groups.keys()][0] as string;
    if (groups.size === 0) throw noAgent(undefined);
    throw new ConfigError(
      'config.group-ambiguous',
      `agents of several groups answer here: ${[...groups.keys()].sort().join(', ')}`,
      {
        hint: 'choose one with --group NAME or GEOREP_GROUP',
      },
    );
  }

  /** Asks any agent of `group` (or the agent of `region`) for its status report. */
  async status(group: string, region?: string): Promise<StatusReport> {
    const subjects = groupSubjects(group);
    const subject = region === undefined ? subjects.status : subjects.regionStatus(region);
    try {
      const reply = await this.nc.request(subject, '', { timeout: this.timeoutMs });
      return reply.json<StatusReport>();
    } catch (err) {
      throw noAgent(group, region, err);
    }
  }

  /**
   * Calls an agent API verb (`group.show`, `op.submit`, `op.get`, `history`) on any agent of the
   * group, or on the agent of `region`. Errors come back typed, with their exit status.
   */
  async api<T>(
    group: string,
    verb: string,
    body: Record<string, unknown>,
    region?: string,
  ): Promise<T> {
    const subjects = groupSubjects(group);
    const subject = region === undefined ? subjects.api(verb) : subjects.regionApi(region, verb);
    let reply: ApiReply<T>;
    try {
      reply = (
        await this.nc.request(subject, JSON.stringify(body), { timeout: this.timeoutMs })
      ).json<ApiReply<T>>();
    } catch (err) {
      throw noAgent(group, region, err);
    }
    if (!reply.ok) throw deserializeError(reply.error);
    return reply.result;
  }

  async close(): Promise<void> {
    await this.nc.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Connects with the global options of `command` and resolves the group (given, or the only one
 * the reachable agents serve). The caller closes the client (`await using`).
 */
export async function connectGroup(
  command: Command,
): Promise<{ client: AgentClient; group: string }> {
  const globals = globalsOf(command);
  const client = await AgentClient.connect(natsConfigFrom(globals), Number(globals.timeout));
  try {
    return { client, group: await client.resolveGroup(globals.group) };
  } catch (err) {
    await client.close();
    throw err;
  }
}

function noAgent(group: string | undefined, region?: string, cause?: unknown): GeorepError {
  const who = region !== undefined ? `the agent of region ${region}` : 'no georep agent';
  const scope = group === undefined ? '' : ` of group ${group}`;
  return new UnreachableError(
    'agent.unreachable',
    region !== undefined ? `${who}${scope} did not answer` : `${who}${scope} answered on this NATS`,
    {
      ...(cause === undefined ? {} : { cause }),
      hint:
        region !== undefined
          ? 'check that region is up (georep status) and its agent is running'
          : 'start the agents (georep agent --config FILE, or georep dev start) or point --nats/--group at them',
    },
  );
}
