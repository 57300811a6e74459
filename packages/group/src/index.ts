export { SCHEMA_VERSION } from './schema.js';
export type {
  GroupDocShape,
  RegionDoc,
  OperationDoc,
  HistoryEvent,
  Forced,
  MaintenanceWindow,
  ResyncDoc,
  ResyncLoad,
} from './schema.js';
export { createGenesis, genesisActor, rootActor } from './genesis.js';
export { GroupDocument, DocumentLoadError } from './group-document.js';
export type { NewOperation } from './group-document.js';
export {
  validateClientToken,
  canonicalJson,
  newOperationId,
  IdempotencyConflictError,
} from './ledger.js';
export {
  openDocument,
  writeFileAtomic,
  DocumentSaver,
  DOCUMENT_FILE,
  CHANGES_FILE,
} from './document-store.js';
export type { OpenedDocument } from './document-store.js';
export { DocumentSync } from './document-sync.js';
export type { SyncSend, DocumentSyncOptions } from './document-sync.js';
export { Voter, collectVotes, quorumFor, noQuorumError } from './votes.js';
export type { Proposal, Ballot, VoteResult, Grant, GrantStore } from './votes.js';
export {
  shardPrimaries,
  setShardPrimary,
  regionShards,
  setRegionShards,
  resyncOf,
  setResync,
  setResyncLoad,
  routedTo,
  setRouting,
  writesFenced,
  maintenanceWindowOf,
  setMaintenanceWindow,
  cancelOperation,
} from './region-topology.js';
export type { ChangeBy } from './region-topology.js';
export {
  SCHEDULED_SNAPSHOT_KIND,
  listSchedules,
  getSchedule,
  requireSchedule,
  scheduleTargets,
  addSchedule,
  setSchedulePaused,
  removeSchedule,
  recordMissedSlots,
  scheduleRunIndex,
  runKey,
  emptyRunSummary,
  runViewOf,
} from './schedules.js';
export type { ScheduledRunParams, ScheduleRunSummary } from './schedules.js';
