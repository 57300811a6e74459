/**
 * Options, progress and result of {@link importRdb}.
 */
import type { RedisConfig } from '@georep/core';
import type { RdbValueType } from '@georep/rdb';
import type { RdbSource } from './source.js';

/** Where to import. */
export interface ImportTarget {
  /** The node to write to: the region's primary. */
  node: { host: string; port: number };
  /** Credentials and TLS of the target region. */
  config: RedisConfig;
  /** Import only this database of the file (into the same database number). Default: all. */
  db?: number;
}

/** Progress of an import; `phase` says which pass is running. */
export interface ImportProgress {
  phase: 'verify' | 'flush' | 'import';
  /** Bytes of the source read in this pass. */
  bytesRead: number;
  /** Size of the source, known after the verify pass. */
  totalBytes: number | undefined;
  /** Key records read in this pass. */
  keysRead: number;
  /** Keys acknowledged by the target (import pass). */
  keysWritten: number;
}

/** Options of {@link importRdb}. */
export interface ImportRdbOptions {
  /**
   * The RDB bytes. Read twice (verify, then import): give a factory, `fileSource(path)` or
   * `store.read(name)`; a one-shot stream is refused with `import.invalid-options`.
   */
  source: RdbSource;
  target: ImportTarget;
  /**
   * `replace`: the target's databases that the import covers end up equal to the file's (see the
   * README: FLUSHDB of each database present in the file, or only `target.db`; with `match`,
   * only the target keys matching the pattern are deleted). `merge`: nothing is deleted; keys
   * present on both sides are resolved by `onConflict`.
   */
  mode: 'replace' | 'merge';
  /** Merge only: keep the target's key (`skip`, default) or overwrite it with the file's. */
  onConflict?: 'skip' | 'replace';
  /** Only keys matching this Redis glob (`*`, `?`, `[...]`, `\`) are imported. */
  match?: string;
  /** Most commands in flight (default 4096; in-flight bytes are capped at 64 MB besides). */
  pipeline?: number;
  /** Load the file's function libraries (Redis 7.0+ targets). Default true. */
  functions?: boolean;
  /**
   * Write these value types with plain commands even when RESTORE would work (a downgrade
   * knob, and how tests exercise the fallback). Default none.
   */
  forceCommands?: RdbValueType[];
  /** Called per source chunk and at phase changes. Must not throw. */
  onProgress?: (progress: ImportProgress) => void;
}

/** A key that was not written, and why. */
export interface SkippedKey {
  db: number;
  /** Printable, escaped key name. */
  key: string;
  type: RdbValueType;
  reason: string;
}

/** What an import did. Counters never overlap: each key read lands in exactly one of them. */
export interface ImportRdbResult {
  /** Key records in the file. */
  keysRead: number;
  /** Keys acknowledged by the target (`restored` + `viaCommands`). */
  keysWritten: number;
  /** Keys written with RESTORE of their raw bytes. */
  restored: number;
  /** Keys rebuilt with plain commands (type too new for the target, or payload too large). */
  viaCommands: number;
  /** Keys whose absolute expiry had passed: not written. */
  skippedExpired: number;
  /** Merge with onConflict=skip: keys the target already had, left as they were. */
  skippedExisting: number;
  /** Keys outside `target.db` or not matching `match`. */
  skippedFiltered: number;
  /** Keys the target cannot hold (module types it lacks, elements over its limits). */
  skippedUnsupported: SkippedKey[];
  /** Keys written with a loss (hash field TTLs on targets without HPEXPIREAT). */
  lossy: SkippedKey[];
  /** Function libraries loaded, and skipped (already present in merge/skip, or no support). */
  functions: { loaded: number; skipped: number };
  /** Databases written to, ascending. */
  dbs: number[];
  /** Keys written per database. */
  keysPerDb: Record<string, number>;
  /** Databases emptied first (replace mode without `match`). */
  flushed: number[];
  /** Size of the source in bytes. */
  bytes: number;
  /** RDB version of the file. */
  sourceRdbVersion: number;
  /** The target as probed. */
  target: { fork: 'redis' | 'valkey'; version: string; rdbVersion: number };
  /** Wall time of the whole import, both passes. */
  durationMs: number;
  /** Wall time of the verify pass. */
  verifyMs: number;
}
