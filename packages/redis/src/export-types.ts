/**
 * The shapes shared by both export paths: options, progress and results. The result says plainly
 * whether the file is a point-in-time snapshot (PSYNC) or a best-effort copy (SCAN + DUMP), so
 * nothing downstream can mistake one for the other.
 */
import type { RedisConfig } from '@georep/core';
import type { ExportEndpoint } from './export-errors.js';
import type { ReplicationTimeouts } from './replication-client.js';
import type { RdbVerifyMode } from './rdb-verify.js';

/** Progress of an export, reported as bytes arrive (PSYNC) or keys are written (SCAN + DUMP). */
export interface ExportProgress {
  source: 'psync' | 'scan-dump';
  /** RDB bytes received from the node (PSYNC) or written to the file so far (SCAN + DUMP). */
  bytesReceived: number;
  /** The payload size when the node announced it (disk-based sync, `$<len>`). */
  totalBytes?: number;
  /** Keys written so far (SCAN + DUMP only). */
  keysWritten?: number;
}

/** Options of {@link exportRdb}. */
export interface ExportRdbOptions {
  /** The node to export from: a primary or a replica. */
  node: ExportEndpoint;
  /** Credentials and TLS of the node's region (`commandTimeoutMs` is not used for the sync). */
  config: RedisConfig;
  /** Path of the RDB file to write. It appears only once the export has succeeded. */
  out: string;
  /** Called as the export advances. It must not throw; if it does, the export fails. */
  onProgress?: (progress: ExportProgress) => void;
  /**
   * Fall back to SCAN + DUMP when the node refuses to replicate (`export.psync-refused`).
   * The fallback is not point-in-time, and the result says so. Default true.
   */
  allowScanFallback?: boolean;
  /** `records` (default): parse every record and count keys; `checksum`: CRC64 only, faster. */
  verify?: RdbVerifyMode;
  /** Timeouts of the replication connection. */
  timeouts?: ReplicationTimeouts;
  /** SCAN + DUMP tuning. */
  scan?: ScanDumpTuning;
}

/** Knobs of the SCAN + DUMP export. */
export interface ScanDumpTuning {
  /** SCAN COUNT, and so the number of keys DUMPed per pipelined round trip. Default 500. */
  batchSize?: number;
  /** Timeout of one round trip (one SCAN, or one batch of DUMP + PTTL). Default 60 000 ms. */
  commandTimeoutMs?: number;
}

/** What every export reports. */
interface ExportResultBase {
  /** The file written. */
  out: string;
  /** Size of the file. */
  bytes: number;
  /** RDB format version of the file (10 for Redis 7.0, 11 for 7.2, ...). */
  rdbVersion: number;
  /** Server version from the `redis-ver`/`valkey-ver` AUX field or INFO. */
  redisVersion: string | undefined;
  /** The file's CRC64 (as stored in its last 8 bytes), 16 hex digits. */
  crc: string;
  /** Replication id of the node's history. */
  replid: string;
  /** Wall time of the whole export, including verification. */
  durationMs: number;
}

/** A point-in-time snapshot taken through the replication protocol. */
export interface PsyncExportResult extends ExportResultBase {
  pointInTime: true;
  source: 'psync';
  /** Replication offset of the snapshot: the file is the dataset at exactly this offset. */
  offset: number;
  /** Key records per database; absent with `verify: 'checksum'`. */
  keysPerDb?: Record<number, number>;
  /** `eof-marker`: diskless transfer; `length`: the node wrote the RDB to its disk first. */
  framing: 'eof-marker' | 'length';
  /** `disabled` when the node runs with `rdbchecksum no`: the file has no CRC to check. */
  checksum: 'verified' | 'disabled';
  /** How deeply the file was checked. */
  verify: RdbVerifyMode;
  /** False when the node is older than Redis 6.2 and streamed as to a full replica. */
  rdbOnly: boolean;
  /** AUX fields from the head of the file (`redis-ver`, `ctime`, `repl-offset`, ...). */
  aux: Record<string, string>;
  /** Time until the whole payload was on local disk; the node was busy only this long. */
  transferMs: number;
}

/** A key-by-key copy: every key is consistent, the whole is not (keys may change meanwhile). */
export interface ScanDumpExportResult extends ExportResultBase {
  pointInTime: false;
  source: 'scan-dump';
  /** `master_repl_offset` when the scan started; the file matches no single offset. */
  offset: number;
  /** Keys written per database. */
  keysPerDb: Record<number, number>;
  /** Function libraries copied (Redis 7.0+). */
  functions: number;
  /** Why PSYNC was not used, when this export is a fallback. */
  fallback?: { code: string; message: string };
}

/** Result of {@link exportRdb}; branch on `source` (or `pointInTime`). */
export type ExportRdbResult = PsyncExportResult | ScanDumpExportResult;
