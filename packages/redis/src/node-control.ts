/**
 * Node-control primitives for moving the primary role inside one shard (a primary and its
 * replicas): a safe switchover with Redis's own FAILOVER, a forced promotion for when the primary is
 * gone, repointing replicas, and Sentinel's replica choice. Reading a node's replication state (INFO,
 * ROLE) lives in `replication-state.ts`.
 *
 * Facts about FAILOVER (Redis 6.2+, `replication.c`) that shape this file:
 * - `FAILOVER TO host port TIMEOUT ms` answers `+OK` at once; the work happens afterwards, so the
 *   outcome (done, timed out, rolled back) is only visible by polling INFO and ROLE.
 * - The primary pauses writes (CLIENT PAUSE WRITE), then waits until the target's *acknowledged*
 *   offset equals its own. It checks on every event-loop turn, but sends no REPLCONF GETACK while
 *   paused, so it waits for the replica's own once-a-second ACK: a shard that took writes since the
 *   last ACK pauses for up to about a second (measured on 7.0: 0.7–0.8 s under a write loop), an
 *   idle, acknowledged one for a few milliseconds.
 * - Once synced it demotes itself to a replica of the target and sends `PSYNC FAILOVER`, which makes
 *   the target a primary. Writes queued on the old primary during the pause are then answered with
 *   `-READONLY`, so nothing acknowledged is lost.
 * - Other replicas keep following the old primary (chained replication) until they are repointed
 *   with {@link repointReplica}; they can continue with a partial resync because the new primary
 *   keeps the old replication id as its `master_replid2`.
 * - On timeout, or when the target refuses PSYNC FAILOVER, Redis rolls back: the old primary is
 *   primary again and unpauses. Only the log says why; {@link safeSwitchover} tells the two apart by
 *   the time it took.
 */
import type { Redis } from 'ioredis';
import { waitForClientReady } from './client-ready.js';
import {
  NodeCommandError,
  SwitchoverIncompleteError,
  SwitchoverInProgressError,
  SwitchoverNotPrimaryError,
  SwitchoverRolledBackError,
  SwitchoverTargetNotReplicaError,
  SwitchoverTimeoutError,
  SwitchoverUnsupportedError,
  classifyFailoverReply,
  classifyReplicaofReply,
  fromReply,
  replyText,
  type NodeEndpoint,
} from './node-control-errors.js';
import {
  endpointOf,
  findReplicaEntry,
  lagOf,
  parseReplication,
  readReplication,
  readReplicationState,
  readRole,
  sameEndpoint,
} from './replication-state.js';

/** A configured node of a shard: its id and where to reach it. */
export interface NodeAddress {
  id: string;
  host: string;
  port: number;
}

/** Options of {@link safeSwitchover}. */
export interface SafeSwitchoverOptions {
  /** The current primary of the shard. */
  primary: Redis;
  /** The replica to promote, as configured. */
  target: NodeAddress;
  /** A client connected to the target, to see when it accepts writes. */
  targetClient: Redis;
  /** FAILOVER's TIMEOUT: how long writes may stay paused while the target catches up. */
  timeoutMs: number;
  /**
   * Extra time, beyond `timeoutMs`, for Redis to act on the timeout, for the PSYNC FAILOVER
   * handshake and for the roles to settle. Default 5000.
   */
  settleMarginMs?: number;
  /** Poll interval while waiting. Default 5 ms: the pause measurement is only as fine as this. */
  pollIntervalMs?: number;
}

/** The outcome of {@link safeSwitchover}. */
export interface SwitchoverResult {
  /**
   * Milliseconds from sending FAILOVER until the target reported role primary: the longest a
   * writer could have waited, as far as a client can observe it.
   */
  pauseMs: number;
  /** The target's replication offset when it first reported role primary (the handover point). */
  offset: number;
  /**
   * The old primary's offset while its writes were paused, or null when the pause ended before it
   * could be observed. Equal to `offset` when nothing was lost, which is what FAILOVER promises.
   */
  pausedAtOffset: number | null;
  /** Milliseconds from sending FAILOVER until the old primary reported itself a replica. */
  totalMs: number;
}

const DEFAULT_SETTLE_MARGIN_MS = 5000;
const DEFAULT_POLL_INTERVAL_MS = 5;

/**
 * Safe switchover: `FAILOVER TO host port TIMEOUT ms` on the primary (Redis 6.2+). Redis pauses
 * writes, waits until the target has the primary's offset, promotes it and turns the old primary
 * into its replica. Resolves once the target reports role primary and the old primary reports
 * itself a replica of the target, with the pause as observed and the handover offset.
 *
 * Checks first, so that a refusal changes nothing: the node must be a primary with FAILOVER, not
 * already failing over, and the target must be one of its online replicas. The target is matched
 * by port and by host, where a hostname also matches the addresses it resolves to; FAILOVER is then
 * sent with the address the primary itself reports for the target, which is what Redis compares.
 *
 * Other replicas keep following the old primary afterwards (chained); repoint them with
 * {@link repointReplica}.
 *
 * @throws SwitchoverUnsupportedError (`switchover.unsupported`) before Redis 6.2.
 * @throws SwitchoverNotPrimaryError (`switchover.not-primary`).
 * @throws SwitchoverInProgressError (`switchover.in-progress`).
 * @throws SwitchoverTargetNotReplicaError (`switchover.target-not-replica`).
 * @throws SwitchoverTimeoutError (`switchover.offset-timeout`) when Redis rolled back on timeout;
 *   the old primary is primary again.
 * @throws SwitchoverRolledBackError (`switchover.rolled-back`) when Redis rolled back early.
 * @throws SwitchoverIncompleteError (`switchover.incomplete`) when the roles did not settle by
 *   `timeoutMs + settleMarginMs`.
 *
 * @example
 * const { pauseMs } = await safeSwitchover({ primary, target, targetClient, timeoutMs: 5000 });
 * for (const other of otherReplicas) await repointReplica(other, target);
 */
export async function safeSwitchover(o: SafeSwitchoverOptions): Promise<SwitchoverResult> {
  const primaryAt = endpointOf(o.primary);
  const targetAt = { host: o.target.host, port: o.target.port };
  const before = await readReplicationState(o.primary);
  if (!before.failoverSupported) throw new SwitchoverUnsupportedError(primaryAt);
  if (before.role !== 'primary') throw new SwitchoverNotPrimaryError(primaryAt, before.primary);
  if (before.failoverState !== 'no-failover')
    throw new SwitchoverInProgressError(primaryAt, before.failoverState);
  const entry = await findReplicaEntry(before.replicas, targetAt);
  if (entry === undefined) throw new SwitchoverTargetNotReplicaError(primaryAt, targetAt, null);
  if (entry.state !== 'online')
    throw new SwitchoverTargetNotReplicaError(primaryAt, targetAt, entry.state);
  const seenAs = { host: entry.host, port: entry.port };

  const interval = o.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  await waitForClientReady(o.targetClient, { giveUpOn: 'end' });
  const sentAt = performance.now();
  const deadline = sentAt + o.timeoutMs + (o.settleMarginMs ?? DEFAULT_SETTLE_MARGIN_MS);
  const elapsed = () => Math.round(performance.now() - sentAt);
  try {
    await o.primary.call(
      'FAILOVER',
      'TO',
      seenAs.host,
      String(seenAs.port),
      'TIMEOUT',
      String(o.timeoutMs),
    );
  } catch (err) {
    throw fromReply(err, (reply) => classifyFailoverReply(primaryAt, targetAt, reply));
  }

  const observed: { primaryRole?: string; failoverState?: string; targetRole?: string } = {};
  let lastError: unknown;
  // One poll, bounded by the deadline; a failed poll is "not yet" and kept as the cause.
  const attempt = <T>(fn: () => Promise<T>) =>
    poll(fn, deadline).catch((err: unknown) => {
      lastError = err;
      return undefined;
    });
  const primaryNow = async () => {
    const state = (await attempt(() => readReplication(o.primary)))?.base;
    if (state !== undefined) {
      observed.primaryRole = state.role;
      observed.failoverState = state.failoverState;
    }
    return state;
  };
  const checkDeadline = () => {
    if (performance.now() > deadline)
      throw new SwitchoverIncompleteError(primaryAt, targetAt, elapsed(), observed, {
        ...(lastError === undefined ? {} : { cause: lastError }),
      });
  };
  const rolledBack = (s: { role: string; failoverState: string }) =>
    s.role === 'primary' && s.failoverState === 'no-failover';

  // Phase 1: the primary waits for the target's offset. Only the primary is asked, so a target
  // that is stalled (the usual reason for a timeout) cannot stall this loop.
  let pausedAtOffset: number | null = null;
  let bytesBehind: number | null = null;
  for (;;) {
    checkDeadline();
    const p = await primaryNow();
    if (p !== undefined) {
      if (p.role === 'primary' && p.failoverState === 'waiting-for-sync') {
        pausedAtOffset = p.replOffset;
        bytesBehind = lagOf(p, seenAs) ?? bytesBehind;
      } else if (rolledBack(p)) {
        // Redis starts its timer after our send, so a timeout shows here at timeoutMs or later;
        // anything earlier was an abort (PSYNC FAILOVER refused, or someone's FAILOVER ABORT).
        const took = elapsed();
        if (took < o.timeoutMs) throw new SwitchoverRolledBackError(primaryAt, targetAt, took);
        throw new SwitchoverTimeoutError(
          primaryAt,
          targetAt,
          o.timeoutMs,
          bytesBehind ?? lagOf(p, seenAs) ?? null,
        );
      } else {
        break; // failover-in-progress, or already demoted
      }
    }
    await sleep(interval);
  }

  // Phase 2: the old primary has demoted itself; the pause ends when the target takes writes.
  // The old primary is watched too: Redis rolls back if the target refuses PSYNC FAILOVER.
  let promoted: { pauseMs: number; offset: number } | undefined;
  while (promoted === undefined) {
    checkDeadline();
    const [role, p] = await Promise.all([attempt(() => readRole(o.targetClient)), primaryNow()]);
    if (role !== undefined) observed.targetRole = role.role;
    if (role?.role === 'master') {
      promoted = { pauseMs: Math.max(1, elapsed()), offset: role.offset };
    } else {
      if (p !== undefined && rolledBack(p))
        throw new SwitchoverRolledBackError(primaryAt, targetAt, elapsed());
      await sleep(interval);
    }
  }

  // Phase 3: the old primary reports itself a replica of the target (it reconnects by itself).
  for (;;) {
    checkDeadline();
    const p = await primaryNow();
    if (p?.role === 'replica' && p.primary !== undefined && sameEndpoint(p.primary, seenAs))
      return { ...promoted, pausedAtOffset, totalMs: elapsed() };
    await sleep(interval);
  }
}

/**
 * Forced promotion: `REPLICAOF NO ONE` on the target, without waiting for anything (availability
 * first: writes the target never received are lost). Returns the target's offset as a primary and,
 * when the old primary's last known offset is given, how many bytes the target was behind (never
 * negative). Promoting a node that is already primary changes nothing and reports its offset.
 *
 * @throws SwitchoverInProgressError when the node is in a coordinated failover.
 * @throws NodeCommandError for other refusals (ACL, cluster mode).
 */
export async function forcePromote(o: {
  target: Redis;
  primaryOffset?: number;
}): Promise<{ offset: number; bytesBehind: number | null; previousPrimary?: NodeEndpoint }> {
  const endpoint = endpointOf(o.target);
  await waitForClientReady(o.target, { giveUpOn: 'end' });
  // INFO before and after on the same connection, right around the promotion, so the offset is
  // the one the node had when it stopped replicating, not one moved by writes that came later.
  const replies = await o.target
    .pipeline()
    .info('replication')
    .call('REPLICAOF', 'NO', 'ONE')
    .info('replication')
    .exec();
  const [before, promoted, after] = replies ?? [];
  if (promoted?.[0] != null)
    throw fromReply(promoted[0], (reply) => classifyReplicaofReply(endpoint, reply));
  const previous = parseReplication(replyText(endpoint, 'INFO replication', before)).base;
  const { replOffset } = parseReplication(replyText(endpoint, 'INFO replication', after)).base;
  return {
    offset: replOffset,
    bytesBehind: o.primaryOffset === undefined ? null : Math.max(0, o.primaryOffset - replOffset),
    ...(previous.primary === undefined
      ? {}
      : { previousPrimary: { host: previous.primary.host, port: previous.primary.port } }),
  };
}

/**
 * Makes the node behind `client` replicate from `primary` (`REPLICAOF host port`). A no-op when it
 * already follows that address (even with its link down: it is reconnecting by itself), so the
 * agent can call it on every replica after a switchover without forcing resyncs. Works on a replica
 * chained behind a demoted primary: it moves with a partial resync.
 *
 * @returns whether a REPLICAOF was sent.
 * @throws SwitchoverInProgressError when the node is in a coordinated failover (Redis refuses
 *   REPLICAOF then).
 * @throws NodeCommandError for other refusals.
 */
export async function repointReplica(
  client: Redis,
  primary: { host: string; port: number },
): Promise<{ changed: boolean }> {
  const endpoint = endpointOf(client);
  await waitForClientReady(client, { giveUpOn: 'end' });
  let text: string;
  try {
    text = await client.info('replication');
  } catch (err) {
    throw fromReply(err, (reply) => new NodeCommandError(endpoint, 'INFO replication', reply));
  }
  const state = parseReplication(text).base;
  if (
    state.role === 'replica' &&
    state.primary !== undefined &&
    sameEndpoint(state.primary, primary)
  )
    return { changed: false };
  if (state.failoverState !== 'no-failover')
    throw new SwitchoverInProgressError(endpoint, state.failoverState);
  try {
    await client.call('REPLICAOF', primary.host, String(primary.port));
  } catch (err) {
    throw fromReply(err, (reply) => classifyReplicaofReply(endpoint, reply));
  }
  return { changed: true };
}

/**
 * Sentinel's replica choice: skips candidates with priority 0 (never promote) and those marked
 * `usable: false` (the caller decides: link down, loading, not `online`); prefers the lowest
 * priority, then the highest offset (least data lost), then the smallest run id, so every agent
 * that sees the same candidates picks the same one.
 *
 * @example
 * chooseBestReplica([
 *   { id: 'a', priority: 100, offset: 900, runId: 'b1' },
 *   { id: 'b', priority: 100, offset: 1000, runId: 'c2' },
 * ]); // → b
 */
export function chooseBestReplica<
  T extends { priority: number; offset: number; runId: string; usable?: boolean },
>(candidates: T[]): T | undefined {
  let best: T | undefined;
  for (const c of candidates) {
    if (c.priority <= 0 || c.usable === false) continue;
    if (best === undefined || compareCandidates(c, best) < 0) best = c;
  }
  return best;
}

function compareCandidates(
  a: { priority: number; offset: number; runId: string },
  b: { priority: number; offset: number; runId: string },
): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  if (a.offset !== b.offset) return b.offset - a.offset;
  // Sentinel compares run ids case-insensitively (strcasecmp).
  const x = a.runId.toLowerCase();
  const y = b.runId.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Runs one poll, giving up at the deadline so a stalled node cannot hold the caller past it. */
async function poll<T>(fn: () => Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error('no reply before the switchover deadline')),
      Math.max(0, deadline - performance.now()),
    );
  });
  try {
    return await Promise.race([fn(), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
