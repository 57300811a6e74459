/**
 * The shape of the group document (schema version 1). Everything here merges as a CRDT: maps keyed
 * by region, operation id or client token, and an append-only history list. Values are plain
 * JSON (no `undefined`: Automerge refuses it), parameters and results as JSON strings so that a
 * concurrent edit never interleaves two parameter sets.
 *
 * High-rate data stays out: heartbeats live on core NATS, per-key tags in Redis.
 */
import type { Counter } from '@automerge/automerge';
import type { LinkState, OperationStatus } from '@georep/core';

/** The schema version this code writes; a newer one on disk is refused rather than misread. */
export const SCHEMA_VERSION = 1;

/** Who forced a change that skipped the vote, and why. */
export interface Forced {
  by: string;
  reason: string;
}

/** A region's maintenance window (used by scheduled switchovers). */
export interface MaintenanceWindow {
  /** `HH:MM`, 24 h. */
  start: string;
  durationMinutes: number;
  timeZone: string;
}

/** A `link --resync` waiting for or being run by the region's own agent. */
export interface ResyncDoc {
  from: string;
  operationId: string;
  /** The link state to return to when the resync fails. */
  previous: LinkState;
  /**
   * Native loads running, by shard: the node loading and the agent's listener it replicates from.
   * Kept here as well as in the agent's data directory so that whichever agent of the region runs
   * the resync next (the same one restarted, or a second one taking over) can undo a load whose
   * agent died. Empty (or absent, in entries made by older agents) when none runs.
   */
  loads?: Record<string, ResyncLoad>;
}

/** A native load of a resync: `node` replicates from `master`, the loading agent's listener. */
export interface ResyncLoad {
  node: { host: string; port: number };
  master: { host: string; port: number };
}

/** A member of the group. */
export interface RegionDoc {
  name: string;
  linkState: LinkState;
  epoch: number;
  changedAt: number;
  nats: string[];
  maintenanceWindow: MaintenanceWindow | null;
  forced: Forced | null;
  /**
   * shard → node id of its primary, as the region's agent last set it (switchover, failover).
   * Only that agent writes it. Absent until the first change.
   */
  primaries?: Record<string, string>;
  /**
   * The region's shard names, sorted, as its agent last wrote them from its configuration.
   * Replication pairs shards by name: shard `s` of one region is applied into shard `s` of the
   * others. Absent for a region whose agent predates shards: it has the default shard only.
   */
  shards?: string[];
  /**
   * `link --resync` in progress: the region is `linking`, and its own agent replaces its data with
   * a snapshot of region `from`, then links it (or puts it back to `previous` on failure).
   */
  resync?: ResyncDoc | null;
  /**
   * Regional failover: the region whose primaries serve this region's traffic, or null/absent
   * when the region serves its own.
   */
  routedTo?: string | null;
  /**
   * While routed away: the region's own primaries refuse application writes (its agent pauses
   * them), so clients that did not move cannot write into a region the group stopped serving.
   * Lifted first by a failback, so that the region can catch up before traffic returns.
   */
  writesFenced?: boolean;
}

/** A management operation in the ledger. */
export interface OperationDoc {
  id: string;
  kind: string;
  status: OperationStatus;
  /** Canonical JSON of the parameters (sorted keys): equal strings mean equal requests. */
  params: string;
  clientToken: string | null;
  requestedVia: string;
  requestedBy: string;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** JSON of the result. */
  result: string | null;
  error: { code: string; message: string; hint: string | null } | null;
  forced: Forced | null;
}

/** An entry of the history. */
export interface HistoryEvent {
  at: number;
  region: string;
  kind: string;
  message: string;
  operationId: string | null;
}

/** The whole document. */
export interface GroupDocShape {
  schema: number;
  group: string;
  /**
   * Bumped by every change that needed a vote (or was forced). A CRDT counter: concurrent bumps
   * add up, so a merge never moves the epoch backwards.
   */
  epoch: Counter;
  regions: Record<string, RegionDoc>;
  operations: Record<string, OperationDoc>;
  /** client token → operation id. */
  clientTokens: Record<string, string>;
  history: HistoryEvent[];
  /** region → peer → HLC watermark (filled by the data plane). */
  watermarks: Record<string, Record<string, string>>;
  /** Filled by the snapshot milestones. */
  snapshots: Record<string, string>;
  schedules: Record<string, string>;
}
