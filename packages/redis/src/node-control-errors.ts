/**
 * Errors of switchover and failover inside one shard. Each failure has its own class and a stable
 * `code` (`switchover.*`, `node.*`) so the agent can decide what to do next (retry, fall back to a
 * forced promotion, page an operator) without reading message text.
 *
 * FAILOVER and REPLICAOF answer with `-ERR` text; {@link classifyFailoverReply} and
 * {@link classifyReplicaofReply} turn those replies into these classes at the boundary. The texts
 * are the ones in Redis's `replication.c` (6.2 to 7.x).
 */
import { ConflictError, GeorepError, TimeoutError, type GeorepErrorOptions } from '@georep/core';

/** Where a node is, for messages and `details`. */
export interface NodeEndpoint {
  host: string;
  port: number;
}

const where = (e: NodeEndpoint) => `${e.host}:${e.port}`;

/**
 * The node cannot run a coordinated switchover: Redis before 6.2 has no FAILOVER command (and no
 * `master_failover_state` in INFO), or the command was renamed or disabled.
 */
export class SwitchoverUnsupportedError extends GeorepError {
  override name = 'SwitchoverUnsupportedError';
  /** The server's reply, when the refusal came from a reply rather than from INFO. */
  readonly reply: string | undefined;
  constructor(primary: NodeEndpoint, reply?: string) {
    super(
      'switchover.unsupported',
      `${where(primary)} cannot run FAILOVER${reply === undefined ? ' (Redis before 6.2)' : `: ${reply}`}`,
      {
        hint:
          'upgrade the shard to Redis 6.2 or later (or re-enable the FAILOVER command), or use a ' +
          'forced promotion, which does not wait for the replica to catch up and can lose writes',
        details: { ...primary, ...(reply === undefined ? {} : { reply }) },
      },
    );
    this.reply = reply;
  }
}

/** FAILOVER was sent to a node that is not a primary (it follows another node). */
export class SwitchoverNotPrimaryError extends ConflictError {
  override name = 'SwitchoverNotPrimaryError';
  /** The primary the node follows, when known. */
  readonly follows: NodeEndpoint | undefined;
  constructor(node: NodeEndpoint, follows?: NodeEndpoint) {
    super(
      'switchover.not-primary',
      `${where(node)} is not a primary${follows === undefined ? '' : ` (it replicates from ${where(follows)})`}`,
      {
        hint: 'send the switchover to the current primary of the shard; re-read the topology first',
        details: { ...node, ...(follows === undefined ? {} : { follows }) },
      },
    );
    this.follows = follows;
  }
}

/**
 * The target is not a connected, online replica of that primary. Redis checks this by the address
 * the primary sees (the replica's `replica-announce-ip` or the address it connects from) and the
 * replica's listening port, so a hostname that resolves elsewhere also ends here.
 */
export class SwitchoverTargetNotReplicaError extends ConflictError {
  override name = 'SwitchoverTargetNotReplicaError';
  /** The replica link state the primary reports (`online`, `wait_bgsave`, ...), or null if absent. */
  readonly state: string | null;
  constructor(primary: NodeEndpoint, target: NodeEndpoint, state: string | null, reply?: string) {
    const why =
      state === null
        ? 'is not a replica of'
        : `is a replica of ${where(primary)} but not online (state ${state}) on`;
    super('switchover.target-not-replica', `${where(target)} ${why} ${where(primary)}`, {
      hint:
        state === null
          ? 'pick a target from the primary\'s INFO replication list ("slaveN:ip=...,port=..."), ' +
            'using the address the primary reports for it'
          : 'wait until the replica finishes its initial sync (state online), then retry',
      details: {
        primary,
        target,
        state,
        ...(reply === undefined ? {} : { reply }),
      },
    });
    this.state = state;
  }
}

/** The primary is already in a coordinated failover (`master_failover_state` is not `no-failover`). */
export class SwitchoverInProgressError extends ConflictError {
  override name = 'SwitchoverInProgressError';
  /** `waiting-for-sync` or `failover-in-progress` when read from INFO; `unknown` from a reply. */
  readonly failoverState: string;
  constructor(node: NodeEndpoint, failoverState: string, reply?: string) {
    super(
      'switchover.in-progress',
      `${where(node)} is already in a coordinated failover (${failoverState})`,
      {
        hint:
          'wait for it to finish (INFO replication master_failover_state: no-failover); if it is ' +
          'stuck, FAILOVER ABORT is safe in waiting-for-sync but can leave two primaries in ' +
          'failover-in-progress',
        details: { ...node, failoverState, ...(reply === undefined ? {} : { reply }) },
      },
    );
    this.failoverState = failoverState;
  }
}

/**
 * The target did not reach the primary's offset within the timeout; Redis rolled back, the old
 * primary is primary again and accepts writes.
 */
export class SwitchoverTimeoutError extends TimeoutError {
  override name = 'SwitchoverTimeoutError';
  /** How far the target's acknowledged offset was behind the primary's, or null if never seen. */
  readonly bytesBehind: number | null;
  readonly timeoutMs: number;
  constructor(
    primary: NodeEndpoint,
    target: NodeEndpoint,
    timeoutMs: number,
    bytesBehind: number | null,
  ) {
    const behind = bytesBehind === null ? '' : ` (${bytesBehind} bytes behind)`;
    super(
      'switchover.offset-timeout',
      `${where(target)} did not catch up with ${where(primary)} within ${timeoutMs} ms${behind}; ` +
        `the switchover was rolled back and ${where(primary)} is still primary`,
      {
        hint:
          'retry when write traffic is lower or with a longer timeout, pick a replica with less ' +
          'lag, or force the promotion if losing the unreplicated writes is acceptable',
        details: { primary, target, timeoutMs, bytesBehind },
      },
    );
    this.bytesBehind = bytesBehind;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The old primary demoted itself but the target refused PSYNC FAILOVER (an ACL without +psync, a
 * replica that lost its link); Redis rolled back, the old primary is primary again.
 */
export class SwitchoverRolledBackError extends GeorepError {
  override name = 'SwitchoverRolledBackError';
  constructor(primary: NodeEndpoint, target: NodeEndpoint, elapsedMs: number) {
    super(
      'switchover.rolled-back',
      `the switchover from ${where(primary)} to ${where(target)} was rolled back after ` +
        `${elapsedMs} ms, before its timeout; ${where(primary)} is still primary`,
      {
        hint:
          'look for "FAILOVER ... aborted" in the old primary\'s log: usually the target refused ' +
          'PSYNC FAILOVER (the replication user needs +psync) or lost its link; fix that and retry',
        details: { primary, target, elapsedMs },
      },
    );
  }
}

/**
 * The roles did not settle in time: after FAILOVER was accepted, the target did not report role
 * primary, or the old primary did not report itself as the target's replica, by the deadline.
 * Nothing is rolled back automatically, because FAILOVER ABORT in `failover-in-progress` can leave
 * two primaries.
 */
export class SwitchoverIncompleteError extends TimeoutError {
  override name = 'SwitchoverIncompleteError';
  constructor(
    primary: NodeEndpoint,
    target: NodeEndpoint,
    waitedMs: number,
    observed: { primaryRole?: string; failoverState?: string; targetRole?: string },
    options: GeorepErrorOptions = {},
  ) {
    super(
      'switchover.incomplete',
      `the switchover from ${where(primary)} to ${where(target)} did not settle within ` +
        `${waitedMs} ms (last seen: old primary ${observed.primaryRole ?? '?'}/` +
        `${observed.failoverState ?? '?'}, target ${observed.targetRole ?? '?'})`,
      {
        hint:
          'read the roles of both nodes (ROLE) and their logs; when exactly one is primary, repoint ' +
          'the others to it; when both are, keep the one with the higher offset and repoint the other',
        ...options,
        details: { primary, target, waitedMs, ...observed, ...options.details },
      },
    );
  }
}

/** A node-control command failed for a reason with no class of its own (ACL, cluster mode, ...). */
export class NodeCommandError extends GeorepError {
  override name = 'NodeCommandError';
  readonly command: string;
  readonly reply: string;
  constructor(node: NodeEndpoint, command: string, reply: string, hint?: string) {
    super('node.command-failed', `${command} on ${where(node)} failed: ${reply}`, {
      hint:
        hint ??
        'check the node log; the georep user needs +failover +replicaof +info +config|get +role',
      details: { ...node, command, reply },
    });
    this.command = command;
    this.reply = reply;
  }
}

/**
 * Turns an error reply to `FAILOVER TO host port ...` into the matching typed error. The texts are
 * those of `failoverCommand` in Redis 6.2–7.x; anything else becomes {@link NodeCommandError}.
 */
export function classifyFailoverReply(
  primary: NodeEndpoint,
  target: NodeEndpoint,
  reply: string,
): GeorepError {
  if (/unknown command/i.test(reply)) return new SwitchoverUnsupportedError(primary, reply);
  if (/FAILOVER already in progress/i.test(reply))
    return new SwitchoverInProgressError(primary, 'unknown', reply);
  if (/FAILOVER is not valid when server is a replica/i.test(reply))
    return new SwitchoverNotPrimaryError(primary);
  if (/FAILOVER requires connected replicas|target HOST and PORT is not a replica/i.test(reply))
    return new SwitchoverTargetNotReplicaError(primary, target, null, reply);
  if (/FAILOVER target replica is not online/i.test(reply))
    return new SwitchoverTargetNotReplicaError(primary, target, 'not online', reply);
  if (/not allowed in cluster mode/i.test(reply))
    return new NodeCommandError(
      primary,
      'FAILOVER',
      reply,
      'this is a Redis Cluster node: use CLUSTER FAILOVER on the replica instead',
    );
  return new NodeCommandError(primary, 'FAILOVER', reply);
}

/** Turns an error reply to `REPLICAOF` into the matching typed error. */
export function classifyReplicaofReply(node: NodeEndpoint, reply: string): GeorepError {
  // Redis refuses REPLICAOF on the old primary until its coordinated failover ends.
  if (/REPLICAOF not allowed while failing over/i.test(reply))
    return new SwitchoverInProgressError(node, 'unknown', reply);
  if (/not allowed in cluster mode/i.test(reply))
    return new NodeCommandError(
      node,
      'REPLICAOF',
      reply,
      'this is a Redis Cluster node: replicas are assigned with CLUSTER REPLICATE',
    );
  return new NodeCommandError(node, 'REPLICAOF', reply);
}

/** ioredis rejects server error replies with a `ReplyError`; anything else is a transport error. */
function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

/**
 * Classifies a server error reply with `classify`; transport errors (connection lost, timeout) are
 * returned unchanged, so callers can tell a refusal from an unreachable node.
 */
export function fromReply(err: unknown, classify: (reply: string) => GeorepError): Error {
  if (isReplyError(err)) return classify(err.message);
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * The text of one pipeline reply (`[error, value]`), or the typed error it failed with.
 *
 * @throws NodeCommandError for an error reply or a missing entry; transport errors unchanged.
 */
export function replyText(
  endpoint: NodeEndpoint,
  command: string,
  entry: [Error | null, unknown] | undefined,
): string {
  if (entry === undefined) throw new NodeCommandError(endpoint, command, 'no reply');
  const [err, value] = entry;
  if (err !== null) {
    throw fromReply(err, (reply) => new NodeCommandError(endpoint, command, reply));
  }
  return String(value);
}
