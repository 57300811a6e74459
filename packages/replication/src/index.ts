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
