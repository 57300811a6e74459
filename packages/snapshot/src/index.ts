/**
 * `@georep/snapshot`: where RDB snapshots are kept (a directory or a JetStream Object Store) and
 * what can be done with them without a server restart: import into a live node, inspect, verify.
 */
export {
  snapshotNameOf,
  isValidSnapshotName,
  assertSnapshotName,
  validateSnapshotName,
  snapshotMetaFromExport,
  compareNewestFirst,
  parseSnapshotMeta,
} from './snapshot-meta.js';
export { DirectorySnapshotStore } from './directory-store.js';
export { ObjectStoreSnapshotStore, snapshotBucketName } from './object-store.js';
export { RdbDigest, checkDigest } from './rdb-digest.js';
export { importRdb } from './import.js';
export { abandonNativeImport, importRdbNative } from './native-import.js';
export { inspectRdb, verifyRdb, PER_KEY_OVERHEAD } from './inspect.js';
export { fileSource } from './source.js';
export { KeyGlob } from './glob.js';
export { printableKey } from './printable.js';
export { rdbVersionOf, DEFAULT_PROTO_MAX_BULK_LEN } from './target-info.js';
export { commandsForValue, formatScore } from './value-commands.js';
export {
  InvalidSnapshotNameError,
  SnapshotNotFoundError,
  SnapshotExistsError,
  SnapshotCorruptError,
  SnapshotStoreError,
  ImportUnreachableError,
  ImportAuthError,
  ImportRejectedError,
  ImportIncompatibleError,
  ImportUsageError,
  ImportNativeRefusedError,
  ImportNativeTimeoutError,
} from './errors.js';

export type { SnapshotMeta } from './snapshot-meta.js';
export type { SnapshotStore } from './store.js';
export type { ObjectStoreSnapshotStoreOptions } from './object-store.js';
export type { RdbDigestResult } from './rdb-digest.js';
export type {
  ImportRdbOptions,
  ImportRdbResult,
  ImportTarget,
  ImportProgress,
  SkippedKey,
} from './import-types.js';
export type { RdbInspection, RdbVerification, DbSummary, BigKey } from './inspect.js';
export type { RdbSource } from './source.js';
export type {
  ImportRdbNativeOptions,
  ImportRdbNativeResult,
  NativeImportProgress,
} from './native-import.js';
export type { TargetInfo } from './target-info.js';
export type { Command, CommandPlan, CommandOptions } from './value-commands.js';
export type { ImportProgressAtFailure } from './errors.js';
