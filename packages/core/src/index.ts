export {
  ExitCode,
  GeorepError,
  ConfigError,
  UnreachableError,
  NotFoundError,
  ConflictError,
  DependencyMissingError,
  TimeoutError,
  UsageError,
  toGeorepError,
  exitCodeFor,
  serializeError,
  deserializeError,
} from './errors.js';
export type { GeorepErrorOptions } from './errors.js';
export { isValidName, parseRegionId, parseGroupName, parseNodeId } from './ids.js';
export type { Brand, RegionId, GroupName, NodeId } from './ids.js';
export { HybridLogicalClock, ClockDriftError, compareHlc, encodeHlc, decodeHlc } from './hlc.js';
export type { HlcTimestamp, HlcOptions } from './hlc.js';
export { makeLogger, setLoggerFactory, silentLogger } from './logger.js';
export type { Logger, LoggerFactory, LogFields } from './logger.js';
export { SERVICE_NAME, groupSubjects } from './subjects.js';
export type { GroupSubjects } from './subjects.js';
export {
  agentConfigSchema,
  CONFIG_ENV,
  applyEnv,
  splitList,
  parseAgentConfig,
  readJsonFile,
  loadAgentConfig,
  configuredNodes,
  resolveSecret,
  DEFAULT_SHARD,
} from './config.js';
export type {
  AgentConfig,
  NatsConfig,
  RedisConfig,
  TlsConfig,
  ConfiguredNode,
  MaintenanceWindowConfig,
} from './config.js';
export { maintenanceWindowAt, isTimeZone } from './maintenance-window.js';
export {
  SCHEDULE_PREFERENCES,
  SCHEDULE_STORES,
  parseDuration,
  formatDuration,
  cronOf,
  latestSlot,
  nextSlot,
  slotsBetween,
  scheduledSnapshotName,
  validateScheduleId,
  validateScheduleRequest,
} from './snapshot-schedule.js';
export { snapshotsToDelete, describeRetention } from './schedule-retention.js';
export type {
  SchedulePreference,
  ScheduleStoreKind,
  ScheduleRetention,
  SnapshotSchedule,
  ScheduleRequest,
  ScheduleRunView,
  ScheduleStatus,
} from './snapshot-schedule.js';
export type { RetentionCandidate } from './schedule-retention.js';
export type { DailyWindow, WindowTimes } from './maintenance-window.js';
export type {
  RegionState,
  NodeRole,
  ReplicaLink,
  NodeSample,
  Heartbeat,
  RegionStatus,
  StatusReport,
  ReplicationLink,
  ReplicationStatus,
  ShardReplicationStatus,
  RegionActivity,
} from './health.js';
export { isTerminalStatus } from './group-types.js';
export type {
  LinkState,
  OperationStatus,
  OperationView,
  HistoryEventView,
  RegionMembership,
  GroupView,
  ApiReply,
  SerializedError,
} from './group-types.js';
