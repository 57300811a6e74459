/**
 * The health plane's wire types: what an agent samples, what it publishes every second, and the
 * status report it serves. Versioned with `v` so that mixed agent versions can coexist.
 */

/** A region as one agent sees it. `down` needs a majority of live agents to agree. */
export type RegionState = 'up' | 'suspect' | 'down';

/** The role Redis reports (`role:master` is shown as `primary`). */
export type NodeRole = 'primary' | 'replica';

/** A replica as its primary reports it (INFO replication `slaveN`). */
export interface ReplicaLink {
  host: string;
  port: number;
  state: string;
  offset: number;
  /** Bytes the replica is behind the primary's `master_repl_offset`. */
  lagBytes: number;
}

import type { LinkState } from './group-types.js';
import type { ScheduleStatus } from './snapshot-schedule.js';

/** One sample of one Redis node. Fields other than the identity are absent when `up` is false. */
export interface NodeSample {
  id: string;
  host: string;
  port: number;
  /** The node's shard (absent from agents older than shards: read it as `main`). */
  shard?: string;
  up: boolean;
  /** Why the node is not `up` (connection refused, timeout, LOADING, ...). */
  error?: string;
  /** Last role seen; kept while the node is down so `status` can still show it. */
  role: NodeRole;
  pingMs?: number;
  version?: string;
  /** `master_repl_offset`. */
  replOffset?: number;
  /** On a replica: how much of its primary's stream it has processed (`slave_repl_offset`). */
  replicaOffset?: number;
  /** `run_id` of the server process. */
  runId?: string;
  /** On a replica: `slave_priority`; 0 means it is never promoted. */
  replicaPriority?: number;
  /** `master_failover_state` while a FAILOVER runs on this node. */
  failoverState?: string;
  /** On a replica: its primary and the link. */
  primary?: { host: string; port: number; linkUp: boolean; lastIoSecondsAgo?: number };
  /** On a replica: bytes behind its primary, when the primary is sampled too. */
  lagBytes?: number;
  /** On a primary: its replicas. */
  replicas?: ReplicaLink[];
  usedMemoryBytes?: number;
  /** 0 means no limit, as in Redis. */
  maxMemoryBytes?: number;
  opsPerSec?: number;
  connectedClients?: number;
  rdbLastSaveTime?: number;
  rdbLastBgsaveOk?: boolean;
  rdbChangesSinceLastSave?: number;
  aofEnabled?: boolean;
  aofLastWriteOk?: boolean;
  /** Unix ms of the sample. */
  sampledAt: number;
}

/** Published by every agent every `intervalMs` on its region's heartbeat subject. */
export interface Heartbeat {
  v: 1;
  group: string;
  region: string;
  agent: { id: string; version: string; startedAt: number };
  /** Increments by one per heartbeat of one agent run. */
  seq: number;
  sentAt: number;
  intervalMs: number;
  downAfterMs: number;
  nodes: NodeSample[];
  /** This agent's own view of every region it knows (`up` or `suspect`; never `down`). */
  view: Record<string, 'up' | 'suspect'>;
  /** Heads of this agent's group document: peers whose heads differ keep syncing. */
  docHeads?: string[];
  /** The agent's Sentinel-compatible endpoint, for clients' sentinel lists. */
  sentinel?: { host: string; port: number };
  /** A switchover or failover running in the region (others are refused meanwhile). */
  activity?: RegionActivity | null;
}

/** Management work that holds a region's nodes: nothing else may change them meanwhile. */
export interface RegionActivity {
  kind: 'switching' | 'failing-over' | 'resyncing';
  operationId: string | null;
  since: number;
}

/** One region in a {@link StatusReport}. */
export interface RegionStatus {
  name: string;
  state: RegionState;
  /** Membership in the group as the asked agent's copy of the group document says; null if unknown. */
  linkState: LinkState | null;
  /** ms since the asked agent last heard this region's heartbeat; null if never. */
  heartbeatAgeMs: number | null;
  /** Agents (by region) whose latest view has this region up, and suspect. */
  seenUpBy: string[];
  seenSuspectBy: string[];
  /** The node currently primary, if any was seen. */
  primary: string | null;
  nodes: NodeSample[];
  agent: { id: string; version: string; startedAt: number } | null;
  /** Regional failover: the region serving this region's traffic, or null when it serves its own. */
  routedTo?: string | null;
  /** What the region is busy with (`switching` during a switchover), or null. */
  activity?: RegionActivity | null;
  /** The region agent's Sentinel-compatible endpoint, when it serves one. */
  sentinel?: { host: string; port: number } | null;
  /** Snapshot schedules run by this region's agent: next run, last result (its own region only). */
  schedules?: ScheduleStatus[];
  /** Replication of this region, filled in by the region's own agent. */
  replication?: ReplicationStatus;
}

/** One replication link of a region with a peer, in both directions. */
export interface ReplicationLink {
  peer: string;
  /** Receiving: ms between the newest operation of the last applied batch and its apply. */
  lagMs: number | null;
  appliedBatches: number;
  appliedOps: number;
  lastAppliedAt: number | null;
  /** Holding for the peer: what its consumer on this region's stream has not acknowledged. */
  backlog: {
    messages: number;
    bytes: number;
    oldestAgeMs: number | null;
    /** Operations were dropped by the stream limit before the peer got them: it needs a resync. */
    lost: boolean;
    /** Growth in bytes per second over the last minute; null until measured. */
    growthBytesPerSec: number | null;
    /** Seconds until the stream limit at that growth; null when not growing. */
    fullInSec: number | null;
    streamLimitBytes: number;
  } | null;
  /** Newest tag of the peer applied here (this region's watermark for it). */
  appliedTag: string | null;
  /** The last apply error, cleared by the next success. */
  error: string | null;
  /**
   * Shards that only one of the two regions has, which are not replicated between them, said
   * in words; absent when both have the same shards.
   */
  unpairedShards?: string;
}

/** Replication of one shard of a region: its capture and its links (one per peer having it). */
export interface ShardReplicationStatus {
  shard: string;
  /** `host:port` of the primary that capture and apply follow; null before capture started. */
  primary: string | null;
  capture: ReplicationStatus['capture'];
  captureError: string | null;
  links: ReplicationLink[];
}

/** The replication part of a region's status. */
export interface ReplicationStatus {
  enabled: boolean;
  /** `standby`: another agent of the region replicates it (see docs/failure-modes.md). */
  state: 'off' | 'starting' | 'running' | 'standby' | 'stopped';
  capture: {
    batches: number;
    ops: number;
    recordedOffset: number;
    warnings: number;
    /** Batches sent to other regions before a replica of the primary confirmed them. */
    unconfirmed?: number;
  } | null;
  /** Why capture last failed for good (refused credentials, ...), until a new capture runs. */
  captureError?: string | null;
  /**
   * One per peer, summed over the shards both regions have: counters add up, lag and backlog
   * age are the worst shard's, the applied tag is the oldest shard's (the watermark).
   */
  links: ReplicationLink[];
  /** Per shard, in the order of the region's shards (absent from agents that predate shards). */
  shards?: ShardReplicationStatus[];
  /**
   * Below this HLC tag every linked region has applied every other's writes (from the
   * watermarks in the group document); tombstones older than it can be collected. Null when a
   * linked region has not reported yet.
   */
  gcHorizon: string | null;
  /** The last garbage collection of tombstones and dead metadata in this region. */
  lastGc: { at: number; horizon: string; metaDeleted: number; fieldsDeleted: number } | null;
}

/** What `georep status` shows: the health of every region as one agent sees it. */
export interface StatusReport {
  v: 1;
  group: string;
  /** The region whose agent answered. */
  answeredBy: string;
  generatedAt: number;
  downAfterMs: number;
  regions: RegionStatus[];
}
