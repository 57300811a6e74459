export { keyspaceDbs, parseInfo, parseInfoList, summarizeInfo } from './info.js';
export type { InfoSections, InfoSummary } from './info.js';
export { createNodeClient, nodeClientOptions, tlsOptionsFrom } from './connection.js';
export type { NodeClientOptions } from './connection.js';
export { sampleNode } from './sample.js';
export { exportRdb } from './rdb-export.js';
export { exportRdbByScan } from './scan-dump-export.js';
export { startFullSync } from './replication-client.js';
export {
  RdbPayloadDecoder,
  ReplicationLineReader,
  parsePayloadPreamble,
  EOF_MARKER_LENGTH,
} from './replication-framing.js';
export { SpoolFile, partialPathFor } from './spool-file.js';
export { verifyRdbStream } from './rdb-verify.js';
export {
  ExportAuthError,
  ExportPsyncRefusedError,
  ExportConnectionLostError,
  ExportUnreachableError,
  ExportBadReplyError,
  ExportTimeoutError,
  ExportWriteError,
  ExportScanError,
  classifyReplyError,
} from './export-errors.js';
export type {
  ExportRdbOptions,
  ExportRdbResult,
  PsyncExportResult,
  ScanDumpExportResult,
  ExportProgress,
  ScanDumpTuning,
} from './export-types.js';
export type { ScanDumpExportOptions } from './scan-dump-export.js';
export type { FullSync, FullSyncOptions, ReplicationTimeouts } from './replication-client.js';
export type { PayloadFraming } from './replication-framing.js';
export type { RdbVerifyMode, RdbStreamSummary } from './rdb-verify.js';
export type { ExportEndpoint } from './export-errors.js';
export { parseClientList, disconnectApplicationClients } from './client-kill.js';
export { readReplicationState } from './replication-state.js';
export type { ReplicaEntry, ReplicationState } from './replication-state.js';
export { safeSwitchover, forcePromote, repointReplica, chooseBestReplica } from './node-control.js';
export type { NodeAddress, SafeSwitchoverOptions, SwitchoverResult } from './node-control.js';
export {
  SwitchoverUnsupportedError,
  SwitchoverNotPrimaryError,
  SwitchoverTargetNotReplicaError,
  SwitchoverInProgressError,
  SwitchoverTimeoutError,
  SwitchoverRolledBackError,
  SwitchoverIncompleteError,
  NodeCommandError,
  classifyFailoverReply,
  classifyReplicaofReply,
} from './node-control-errors.js';
export type { NodeEndpoint } from './node-control-errors.js';
export { persistRole } from './persist-role.js';
