/**
 * `@georep/replication`: active-active replication of a region's writes.
 *
 * This first part is capture: following a node's replication stream as a replica
 * ({@link CaptureStream}), parsing it ({@link RespStreamParser}) and telling which keys each
 * command writes ({@link commandKeys}).
 */
export { CaptureStream } from './capture.js';
export { RespStreamParser, RespProtocolError } from './resp-stream-parser.js';
export { commandKeys, knownWriteCommands } from './command-keys.js';
export {
  FilePositionStore,
  MemoryPositionStore,
  PositionFileError,
  isPosition,
} from './position-store.js';
export {
  CaptureAuthError,
  CapturePsyncRefusedError,
  CaptureBadReplyError,
  CaptureConnectionError,
  CaptureTimeoutError,
  isFinalCaptureError,
} from './capture-errors.js';
export { explainFullResync } from './resync-reason.js';

export type { CaptureOptions } from './capture.js';
export type {
  CaptureEvent,
  CaptureCommand,
  CaptureSnapshotStart,
  CaptureSnapshotKeys,
  CaptureSnapshotEnd,
  CaptureResumed,
  CaptureDisconnected,
} from './capture-events.js';
export type { RespCommand, RespStreamParserOptions } from './resp-stream-parser.js';
export type { CommandWrites } from './command-keys.js';
export type { Position, PositionStore } from './position-store.js';
export type { CaptureEndpoint } from './capture-errors.js';
export type { CaptureCredentials } from './replica-link.js';
export type { FullResyncReason, FullResyncExplanation } from './resync-reason.js';

// operations and translation
export { Translator, isGeorepKey } from './translate.js';
export {
  GEOREP_KEY_PREFIX,
  META_PREFIX,
  APPLY_MARKER_KEY,
  OUTBOX_KEY,
  FLUSH_KEY,
  POSITION_KEY,
} from './ops.js';
export type { Translated, TranslateWarning } from './translate.js';
export type {
  Tag,
  ElementType,
  ValueOp,
  CounterOp,
  ExpireOp,
  ElementsOp,
  FlushOp,
  Op,
  OpBatch,
  Instruction,
} from './ops.js';

// transport
export { encodeBatch, decodeBatch } from './batch-codec.js';
export {
  OpsStream,
  PEER_CONSUMER_DEFAULTS,
  opsStreamName,
  opsSubject,
  peerConsumerName,
  opsMsgId,
} from './ops-stream.js';
export { PeerFeed } from './peer-feed.js';
export {
  BadBatchError,
  OpsStreamError,
  OpsPublishError,
  OriginUnreachableError,
  PeerConsumerMissingError,
} from './transport-errors.js';
export type {
  OpsStreamOptions,
  PeerConsumerOptions,
  PublishedBatch,
  PeerBacklog,
} from './ops-stream.js';
export type {
  PeerFeedOptions,
  FeedItem,
  FeedBatch,
  FeedRejected,
  FeedLost,
  FeedStalled,
  FeedResumed,
} from './peer-feed.js';
export type { OpsStreamTarget } from './transport-errors.js';

// record and apply scripts
export {
  recordBatch,
  readOutbox,
  readOutboxes,
  RECORD_SCRIPT,
  RECORD_SCRIPT_SHA,
} from './record-script.js';
export {
  applyBatchOnce,
  applyBatchesOnce,
  queueApply,
  loadApplyScript,
  parseApplyReply,
  APPLY_SCRIPT,
  APPLY_SCRIPT_SHA,
} from './apply-script.js';
export {
  compareTags,
  metaKey,
  ReplicationScriptError,
  OutboxFormatError,
  ReplicationInputError,
} from './meta.js';
export type { RecordInput, OutboxEntry } from './record-script.js';
export type { ApplyStats, OpKindCounts } from './apply-script.js';

// pipeline: capture → record → publish, and apply
export { CapturePipeline, GatedPositionStore, primaryClient } from './capture-pipeline.js';
export { SnapshotKeys, findGapDeletes } from './full-sync-gap.js';
export { Applier, CaptureBehindError } from './applier.js';
export type { CapturePipelineOptions, CaptureStats } from './capture-pipeline.js';
export type { ApplierOptions, AppliedBatch } from './applier.js';

// garbage collection
export { collectGarbage, GC_SCRIPT, GC_SCRIPT_SHA } from './gc-script.js';
export type { CollectGarbageOptions, CollectGarbageStep } from './gc-script.js';
