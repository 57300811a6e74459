/**
 * What the Sentinel-compatible endpoint reports, and the {@link SentinelView} it reads it from.
 * These are the endpoint's contract with the agent: the agent fills them in (see
 * `sentinel-view.ts`), the endpoint only turns them into Sentinel replies. They live apart from
 * the server so that the reply and command modules can use them without importing it back.
 * Import them from `./sentinel-endpoint.js`, which re-exports every one.
 */
import { createHash } from 'node:crypto';

/** A host and port, as Sentinel replies carry them. */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** The primary of a master name. */
export interface SentinelPrimary extends SentinelAddress {
  /** The node's `run_id` from INFO; reported as `runid` (empty when unknown, as Sentinel does). */
  runId?: string;
  /** Sentinel flags, e.g. `master` or `master,s_down`; default `master`. */
  flags?: string;
}

/** A replica of a master name, as `SENTINEL replicas` reports it. */
export interface SentinelReplica extends SentinelAddress {
  /** False gives flags `slave,s_down`, which makes clients (ioredis `role: 'slave'`) skip it. */
  up: boolean;
  /** Replication offset (`slave-repl-offset`), default 0. */
  offset?: number;
  /** Bytes behind the primary; reported in the extra field `georep-lag-bytes` when set. */
  lagBytes?: number;
  /** `slave-priority`, default 100 (Redis's `replica-priority` default). */
  priority?: number;
  /** The node's `run_id` from INFO; reported as `runid` (empty when unknown). */
  runId?: string;
}

/** What the endpoint reports for one master name. */
export interface SentinelMaster {
  /** The name clients ask for, e.g. `eu-west` or `eu-west:s2`. */
  name: string;
  primary: SentinelPrimary;
  replicas: SentinelReplica[];
  /** Reported as `quorum`; default a majority of the sentinels (this one and the others). */
  quorum?: number;
  /** Reported as `down-after-milliseconds`; default 30000 (Sentinel's default). */
  downAfterMs?: number;
  /** Reported as `failover-timeout`; default 180000 (Sentinel's default). */
  failoverTimeoutMs?: number;
  /** Reported as `config-epoch`; default 0. */
  configEpoch?: number;
}

/** Another agent's sentinel endpoint. */
export interface SentinelPeer extends SentinelAddress {
  /** Its run id; default a stable hash of `host:port` (see {@link sentinelRunId}). */
  runId?: string;
}

/**
 * The agent's current answer, read on every command. Implementations must be cheap and must not
 * block: they run on the event loop for each request.
 */
export interface SentinelView {
  /** The current answer for every master name. */
  masters(): SentinelMaster[];
  /** Other agents' sentinel endpoints for `name` (never this one); clients add them to their list. */
  sentinels(name: string): SentinelPeer[];
  /** The 40-hex run id of this endpoint (`SENTINEL myid`); {@link sentinelRunId} makes one. */
  myId: string;
}

/** Bounds on what one client may make the endpoint hold. */
export interface SentinelEndpointLimits {
  /** Open connections; the next one gets `-ERR max number of clients reached`. */
  maxConnections: number;
  /** Arguments in one request. */
  maxArgs: number;
  /** Bytes in one argument. */
  maxBulkBytes: number;
  /** Bytes of one request's arguments together (what a half-received request may buffer). */
  maxRequestBytes: number;
  /** Unsent reply bytes before a connection (a subscriber that stopped reading) is dropped. */
  maxOutputBytes: number;
}

/**
 * A stable 40-hex run id. With a `seed` (e.g. the agent id) it is the same across restarts, as a
 * real Sentinel's `myid` is (it persists it), so clients do not see a new sentinel each restart.
 *
 * @example
 * ```ts
 * sentinelRunId('prod/eu-west/26379'); // the same 40 hex digits on every restart
 * ```
 */
export function sentinelRunId(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}
