/**
 * What a {@link CaptureStream} yields, in replication-stream order.
 *
 * A session looks like one of:
 *
 *   snapshot-start, snapshot-keys*, snapshot-end, command*            (full sync)
 *   resumed, command*                                                 (partial resync)
 *
 * with `disconnected` between sessions when the link drops. A full sync says the region's
 * dataset *is* the snapshot at its offset: every key in it counts as a write, and keys the
 * consumer knew that are absent from it no longer exist.
 */
import type { GeorepError } from '@georep/core';
import type { RdbRawKeyRecord } from '@georep/rdb';
import type { CaptureEndpoint } from './capture-errors.js';
import type { CaptureCommand } from './replica-link.js';
import type { FullResyncReason } from './resync-reason.js';

export type { CaptureCommand } from './replica-link.js';

/** A full resync begins: the node sent an RDB of its dataset at `offset`. */
export interface CaptureSnapshotStart {
  type: 'snapshot-start';
  replid: string;
  offset: number;
  /** Why the node did not continue the saved position (`first-sync` when there was none). */
  reason: FullResyncReason;
  /** The reason with its figures, for logs. */
  detail: string;
  /** Size of the RDB (already received whole into a temporary file). */
  rdbBytes: number;
  /** `eof-marker`: diskless transfer; `length`: disk-based. */
  framing: 'length' | 'eof-marker';
  node: CaptureEndpoint;
}

/**
 * Keys of the snapshot, in RDB order, parsed without decoding values: each has `db`, `key`,
 * `type`, `expireAtMs` and `raw` (wrap with `dumpPayloadFromRaw` for a RESTORE payload).
 */
export interface CaptureSnapshotKeys {
  type: 'snapshot-keys';
  keys: RdbRawKeyRecord[];
}

/** The snapshot is complete; commands after `offset` follow. */
export interface CaptureSnapshotEnd {
  type: 'snapshot-end';
  replid: string;
  offset: number;
  /** Number of keys in the snapshot. */
  keys: number;
  /** Function libraries in the snapshot (their `#!lua name=...` source). */
  functions: Buffer[];
  rdbBytes: number;
}

/** `+CONTINUE`: a partial resync; the stream resumes right after `offset`. */
export interface CaptureResumed {
  type: 'resumed';
  /** The history the stream continues under (new after a failover, PSYNC2). */
  replid: string;
  /** The replication id capture asked for; differs from `replid` after a failover. */
  previousReplid: string;
  offset: number;
  node: CaptureEndpoint;
}

/** The link dropped (or could not be opened); capture retries after `retryInMs`. */
export interface CaptureDisconnected {
  type: 'disconnected';
  error: GeorepError;
  retryInMs: number;
  node: CaptureEndpoint;
}

/** Everything a {@link CaptureStream} yields. */
export type CaptureEvent =
  | CaptureCommand
  | CaptureSnapshotStart
  | CaptureSnapshotKeys
  | CaptureSnapshotEnd
  | CaptureResumed
  | CaptureDisconnected;
