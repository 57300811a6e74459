/**
 * Reading a node's place in replication: INFO server and replication, CONFIG GET
 * replica-priority, and ROLE, typed as {@link ReplicationState}. Also the matching of configured
 * addresses against what a primary reports for its replicas, which node control needs to send
 * FAILOVER with the address Redis compares.
 *
 * INFO text is parsed by `info.ts`; this file only picks the replication fields out of it.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Redis } from 'ioredis';
import { waitForClientReady } from './client-ready.js';
import { infoNumber, parseInfo, parseReplicaLines, type InfoReplicaLine } from './info.js';
import { replyText, type NodeEndpoint } from './node-control-errors.js';

/** One replica as its primary reports it (`INFO replication` `slaveN` lines). */
export type ReplicaEntry = InfoReplicaLine;

/** What a node says about its place in replication. */
export interface ReplicationState {
  role: 'primary' | 'replica';
  /** `run_id`: changes on every restart; Sentinel's last tie-breaker. */
  runId: string;
  /** `master_repl_offset`: the end of the node's replication stream. */
  replOffset: number;
  /** `slave_repl_offset` (replicas): how much of its primary's stream it has applied. */
  replicaOffset?: number;
  /** The node's primary (replicas only), as configured by REPLICAOF. */
  primary?: { host: string; port: number; linkUp: boolean; downSinceSeconds?: number };
  /**
   * `replica-priority` (0 = never promote). Read with CONFIG GET; when that is refused (ACL, renamed)
   * a replica's INFO `slave_priority` is used, and otherwise Redis's default of 100.
   */
  replicaPriority: number;
  /** `master_failover_state`: `no-failover`, `waiting-for-sync` or `failover-in-progress`. */
  failoverState: string;
  /** False before Redis 6.2, which has neither FAILOVER nor `master_failover_state`. */
  failoverSupported: boolean;
  /** Connected replicas (primaries, or replicas with replicas of their own). */
  replicas: ReplicaEntry[];
}

/** What INFO replication alone tells: {@link ReplicationState} without INFO server and CONFIG. */
export type ReplicationInfo = Omit<ReplicationState, 'runId' | 'replicaPriority'>;

/** Redis's default `replica-priority`. */
const DEFAULT_REPLICA_PRIORITY = 100;

/**
 * Reads the replication state of the node behind `client`: role, offsets, its primary and link,
 * its replicas, its promotion priority and any coordinated failover under way.
 *
 * @throws NodeCommandError when INFO is refused. Connection errors are thrown as ioredis raises
 *   them.
 */
export async function readReplicationState(client: Redis): Promise<ReplicationState> {
  const endpoint = endpointOf(client);
  await waitForClientReady(client, { giveUpOn: 'end' });
  // One round trip: the pipeline answers each command separately, so a refused CONFIG GET does
  // not lose the INFO replies.
  const replies = await client
    .pipeline()
    .info('server')
    .info('replication')
    .config('GET', 'replica-priority')
    .exec();
  const [server, replication, priority] = replies ?? [];
  const serverInfo = parseInfo(replyText(endpoint, 'INFO server', server)).server ?? {};
  const state = parseReplication(replyText(endpoint, 'INFO replication', replication));
  return {
    ...state.base,
    runId: serverInfo.run_id ?? '',
    replicaPriority: configNumber(priority) ?? state.infoPriority ?? DEFAULT_REPLICA_PRIORITY,
  };
}

/** INFO replication parsed; `infoPriority` is `slave_priority`, which only replicas report. */
export function parseReplication(text: string): { base: ReplicationInfo; infoPriority?: number } {
  const repl = parseInfo(text).replication ?? {};
  const role = repl.role === 'slave' ? 'replica' : 'primary';
  const base: ReplicationInfo = {
    role,
    replOffset: infoNumber(repl.master_repl_offset) ?? 0,
    failoverState: repl.master_failover_state ?? 'no-failover',
    failoverSupported: repl.master_failover_state !== undefined,
    replicas: parseReplicaLines(repl),
  };
  if (role === 'replica' && repl.master_host !== undefined) {
    const downSince = infoNumber(repl.master_link_down_since_seconds);
    base.primary = {
      host: repl.master_host,
      port: infoNumber(repl.master_port) ?? 0,
      linkUp: repl.master_link_status === 'up',
      // -1 means "never connected since start": no time to report.
      ...(downSince === undefined || downSince < 0 ? {} : { downSinceSeconds: downSince }),
    };
    const replicaOffset = infoNumber(repl.slave_repl_offset);
    if (replicaOffset !== undefined) base.replicaOffset = replicaOffset;
  }
  const infoPriority = infoNumber(repl.slave_priority ?? repl.replica_priority);
  return infoPriority === undefined ? { base } : { base, infoPriority };
}

/** INFO replication of the node behind `client`, parsed; errors are thrown as ioredis raises them. */
export async function readReplication(client: Redis) {
  return parseReplication(await client.info('replication'));
}

/** ROLE is cheaper than INFO and answers during a write pause. */
export async function readRole(client: Redis): Promise<{ role: string; offset: number }> {
  const reply = (await client.call('ROLE')) as unknown[];
  const role = String(reply[0]);
  // master: [role, offset, replicas]; slave: [role, host, port, state, offset]
  const offset = Number(role === 'master' ? reply[1] : reply[4]);
  return { role, offset: Number.isFinite(offset) ? offset : 0 };
}

/** Finds `target` among a primary's replicas by port, and by host or the addresses it resolves to. */
export async function findReplicaEntry(
  replicas: ReplicaEntry[],
  target: NodeEndpoint,
): Promise<ReplicaEntry | undefined> {
  const samePort = replicas.filter((r) => r.port === target.port);
  const exact = samePort.find((r) => r.host.toLowerCase() === target.host.toLowerCase());
  if (exact !== undefined || samePort.length === 0 || isIP(target.host) !== 0) return exact;
  // The primary reports IP addresses; a configured hostname has to be resolved to compare.
  const addresses = await lookup(target.host, { all: true }).catch(() => []);
  return samePort.find((r) => addresses.some((a) => a.address === r.host));
}

/** How far `replica` is behind, by the offset it last acknowledged to `state`'s node. */
export function lagOf(
  state: { replOffset: number; replicas: ReplicaEntry[] },
  replica: NodeEndpoint,
) {
  const entry = state.replicas.find((r) => sameEndpoint(r, replica));
  return entry === undefined ? undefined : Math.max(0, state.replOffset - entry.offset);
}

/** Same port and same host, ignoring case; no name resolution. */
export function sameEndpoint(a: NodeEndpoint, b: NodeEndpoint): boolean {
  return a.port === b.port && a.host.toLowerCase() === b.host.toLowerCase();
}

/** Where `client` connects to, for messages and error details. */
export function endpointOf(client: Redis): NodeEndpoint {
  return { host: client.options.host ?? 'localhost', port: client.options.port ?? 6379 };
}

/** `CONFIG GET name` answers `[name, value]`; a refusal (ACL, renamed command) gives undefined. */
function configNumber(entry: [Error | null, unknown] | undefined): number | undefined {
  if (entry === undefined || entry[0] !== null || !Array.isArray(entry[1])) return undefined;
  return infoNumber(String(entry[1][1] ?? ''));
}
