export { Agent } from './agent.js';
export { RegionTracker } from './region-tracker.js';
export type { RegionTrackerOptions } from './region-tracker.js';
export { decodeHeartbeat } from './heartbeat.js';
export { connectNats, natsConnectionOptions } from './nats-connection.js';
export type { ConnectNatsOptions } from './nats-connection.js';
export { withReplicaLag, NodeSampler } from './node-sampler.js';
export { installAgentLogger, REDACT_PATHS } from './logging.js';
export { AGENT_VERSION } from './version.js';
export type { HealthDocument } from './http-server.js';
export type { AgentMetrics } from './metrics.js';
export { GroupPlane } from './group-plane.js';
export type { GroupPlaneOptions } from './group-plane.js';
export { OperationRunner } from './operations.js';
export { ScheduleRunner } from './schedule-runner.js';
export type { ScheduleRunnerContext } from './schedule-runner.js';
export { ScheduleLeases, scheduleLeaseBucket } from './schedule-lease.js';
export type { LeaseCursor, LeaseHolder } from './schedule-lease.js';
export { SCHEDULE_API_VERBS, scheduleApi } from './schedule-api.js';
export type { ScheduleListEntry, ScheduleApiContext } from './schedule-api.js';
export type { MembershipRequest, RunnerContext } from './operations.js';
export { splitMessage, ChunkReassembler, parseChunkHeader, CHUNK_HEADER } from './sync-chunks.js';
export { shardsOf, shardOf, sameHost } from './shards.js';
export type { ShardView } from './shards.js';
export {
  SwitchoverPlane,
  isScheduledSwitchover,
  MAX_SHARDS_PER_SWITCHOVER,
  SWITCHOVER_KIND,
} from './switchover.js';
export type { SwitchoverRequest, ShardSwitchResult, SwitchoverContext } from './switchover.js';
export { AutoFailover } from './auto-failover.js';
export type { AutoFailoverEvent, AutoFailoverContext } from './auto-failover.js';
export { SentinelEndpoint, sentinelRunId, DEFAULT_SENTINEL_LIMITS } from './sentinel-endpoint.js';
export type {
  SentinelAddress,
  SentinelPrimary,
  SentinelReplica,
  SentinelMaster,
  SentinelPeer,
  SentinelView,
  SentinelEndpointLimits,
  SentinelEndpointOptions,
} from './sentinel-endpoint.js';
