/**
 * The snapshot store contract. Two implementations exist (a local directory and a JetStream
 * Object Store) and both pass one conformance suite (`test/store-conformance.ts`), so the CLI and
 * the agent can use either without knowing which.
 */
import type { SnapshotMeta } from './snapshot-meta.js';

/**
 * Where snapshots live. Names are unique and never overwritten; every read of a snapshot's bytes
 * can be checked against the size and CRC64 in its metadata.
 */
export interface SnapshotStore {
  /** Which implementation this is. */
  readonly kind: 'directory' | 'object-store';
  /** A directory path, or `nats:<bucket>`. */
  readonly location: string;
  /**
   * Uploads the local RDB file `file` under `meta.name`. The file is streamed (never loaded
   * whole); its size and trailing CRC64 are measured on the way and the returned metadata carries
   * the measured values. The snapshot becomes visible only once completely stored.
   *
   * @throws SnapshotExistsError (`snapshot.exists`) when the name is taken.
   * @throws SnapshotCorruptError (`snapshot.corrupt`) when the file's CRC64 does not match its
   *   content, or `meta.size`/`meta.crc` (when non-zero/non-empty) disagree with the file.
   */
  put(meta: SnapshotMeta, file: string): Promise<SnapshotMeta>;
  /**
   * Writes the snapshot to `outFile` atomically (a temporary file in the same directory, renamed
   * once verified): size and CRC64 are checked while writing, and on any failure nothing is left
   * at `outFile`.
   *
   * @throws SnapshotNotFoundError (`snapshot.not-found`).
   * @throws SnapshotCorruptError (`snapshot.corrupt`) when the stored bytes are damaged.
   */
  download(name: string, outFile: string): Promise<SnapshotMeta>;
  /**
   * Streams the snapshot's bytes, for import or inspection without a local copy. Memory stays
   * bounded by a few chunks. The iterator throws `snapshot.corrupt` at the end when size or CRC
   * do not match, and `snapshot.not-found` on the first `next()` when the name is unknown.
   */
  read(name: string): AsyncIterable<Uint8Array>;
  /** The snapshot's metadata, or null when there is none of that name. */
  head(name: string): Promise<SnapshotMeta | null>;
  /** Every snapshot, newest first (by `createdAt`, then name). */
  list(): Promise<SnapshotMeta[]>;
  /** Deletes the snapshot; true when something was deleted. */
  delete(name: string): Promise<boolean>;
}
