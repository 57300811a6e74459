/**
 * Typed errors of snapshot stores and RDB import.
 *
 * Each failure is a subclass of one of `@georep/core`'s error classes, so the CLI maps it to the
 * right exit status (`NotFoundError` → 5, `ConflictError` → 6, `UnreachableError` → 4 ...) and
 * callers branch on `code`, never on message text. Context lives in readonly fields and in
 * `details`, so `--json` output carries it too.
 */
import {
  ConflictError,
  GeorepError,
  NotFoundError,
  TimeoutError,
  UnreachableError,
  UsageError,
  type GeorepErrorOptions,
} from '@georep/core';

/** A snapshot name that is not `[A-Za-z0-9._-]{1,128}` (it becomes a file or object name). */
export class InvalidSnapshotNameError extends UsageError {
  override name = 'InvalidSnapshotNameError';
  constructor(snapshot: string, options: GeorepErrorOptions = {}) {
    super('snapshot.invalid-name', `invalid snapshot name ${JSON.stringify(snapshot)}`, {
      hint: "Use 1-128 letters, digits, '.', '_' or '-' (e.g. eu-west-20261123T181500Z).",
      ...options,
      details: { ...options.details, snapshot },
    });
  }
}

/** The store has no snapshot of that name. */
export class SnapshotNotFoundError extends NotFoundError {
  override name = 'SnapshotNotFoundError';
  readonly snapshot: string;
  constructor(snapshot: string, location: string, options: GeorepErrorOptions = {}) {
    super('snapshot.not-found', `snapshot ${snapshot} not found in ${location}`, {
      hint: 'List the available snapshots with `georep snapshot list`.',
      ...options,
      details: { ...options.details, snapshot, location },
    });
    this.snapshot = snapshot;
  }
}

/** A snapshot of that name is already stored: names are never overwritten. */
export class SnapshotExistsError extends ConflictError {
  override name = 'SnapshotExistsError';
  readonly snapshot: string;
  constructor(snapshot: string, location: string, options: GeorepErrorOptions = {}) {
    super('snapshot.exists', `snapshot ${snapshot} already exists in ${location}`, {
      hint: 'Pick another name, or delete the stored snapshot first.',
      ...options,
      details: { ...options.details, snapshot, location },
    });
    this.snapshot = snapshot;
  }
}

/**
 * The stored bytes do not match the snapshot's metadata (size or CRC64): the copy is damaged.
 * Nothing is left at the download's destination when this is thrown.
 */
export class SnapshotCorruptError extends GeorepError {
  override name = 'SnapshotCorruptError';
  readonly snapshot: string;
  /** Which check failed. */
  readonly check: 'size' | 'checksum' | 'digest';
  constructor(
    snapshot: string,
    check: 'size' | 'checksum' | 'digest',
    message: string,
    options: GeorepErrorOptions = {},
  ) {
    super('snapshot.corrupt', `snapshot ${snapshot} is damaged: ${message}`, {
      hint: 'Take a fresh snapshot, or use another copy; this one cannot be trusted.',
      ...options,
      details: { ...options.details, snapshot, check },
    });
    this.snapshot = snapshot;
    this.check = check;
  }
}

/** The store itself failed (disk full, permission denied, JetStream unavailable). */
export class SnapshotStoreError extends GeorepError {
  override name = 'SnapshotStoreError';
  constructor(message: string, options: GeorepErrorOptions = {}) {
    super('snapshot.store-failed', message, options);
  }
}

/** What an import had done when it stopped: enough to judge the target and retry. */
export interface ImportProgressAtFailure {
  /** Keys acknowledged by the target before the failure. */
  keysWritten: number;
  /** Last key acknowledged (latin1-decoded for display), if any. */
  lastKey: string | undefined;
  /** Database of the last acknowledged key. */
  lastDb: number | undefined;
}

/** The target node could not be reached, or the connection was lost during the import. */
export class ImportUnreachableError extends UnreachableError {
  override name = 'ImportUnreachableError';
  readonly progress: ImportProgressAtFailure;
  constructor(
    message: string,
    progress: ImportProgressAtFailure,
    options: GeorepErrorOptions = {},
  ) {
    super('import.target-unreachable', message, {
      hint:
        progress.keysWritten === 0
          ? 'Check the node address, TLS settings and firewall; nothing was written.'
          : 'The target holds a partial import; retry in replace mode, or merge mode with onConflict=replace, to converge.',
      ...options,
      details: { ...options.details, ...progress },
    });
    this.progress = progress;
  }
}

/** The target refused our credentials (`WRONGPASS`, `NOAUTH`, `NOPERM`). */
export class ImportAuthError extends UnreachableError {
  override name = 'ImportAuthError';
  constructor(message: string, options: GeorepErrorOptions = {}) {
    super('import.auth-failed', message, {
      hint: 'Check the Redis username/password of the target region (the ACL user needs +@all or at least +restore +select +flushdb +config).',
      ...options,
    });
  }
}

/** The target rejected a command for one key; the import stopped there. */
export class ImportRejectedError extends GeorepError {
  override name = 'ImportRejectedError';
  readonly progress: ImportProgressAtFailure;
  /** The key whose command was rejected (latin1-decoded). */
  readonly key: string;
  readonly db: number;
  /** The error text Redis replied with. */
  readonly redisError: string;
  constructor(
    key: string,
    db: number,
    redisError: string,
    progress: ImportProgressAtFailure,
    options: GeorepErrorOptions = {},
  ) {
    super(
      'import.rejected',
      `target rejected key ${JSON.stringify(key)} in db ${db}: ${redisError}`,
      {
        hint: 'Fix the cause (memory limit, ACL, incompatible version), then retry in replace mode or merge mode with onConflict=replace.',
        ...options,
        details: { ...options.details, key, db, redisError, ...progress },
      },
    );
    this.progress = progress;
    this.key = key;
    this.db = db;
    this.redisError = redisError;
  }
}

/** Nothing in the file can be loaded into this target (module data only, unknown types, ...). */
export class ImportIncompatibleError extends ConflictError {
  override name = 'ImportIncompatibleError';
  constructor(message: string, options: GeorepErrorOptions = {}) {
    super('import.incompatible', message, {
      hint: 'Import into a server of the same fork and a version at least as new as the source, with the same modules loaded.',
      ...options,
    });
  }
}

/** The import options are invalid (bad db, window, mode combination). */
export class ImportUsageError extends UsageError {
  override name = 'ImportUsageError';
  constructor(message: string, options: GeorepErrorOptions = {}) {
    super('import.invalid-options', message, options);
  }
}

/**
 * A native (replication) import could not make the target load the file: REPLICAOF was refused
 * (`NOPERM` without `+replicaof`, managed services), or the target dropped the transfer or failed
 * to load it. `stage` says which.
 */
export class ImportNativeRefusedError extends GeorepError {
  override name = 'ImportNativeRefusedError';
  /** `replicaof`: the command was refused, nothing changed. `load`: the sync itself failed. */
  readonly stage: 'replicaof' | 'load';
  constructor(stage: 'replicaof' | 'load', message: string, options: GeorepErrorOptions = {}) {
    super('import.native-refused', message, {
      hint:
        stage === 'replicaof'
          ? 'The ACL user needs +replicaof (managed services block it): use importRdb instead.'
          : 'Check the target log (RDB version, modules, databases, disk space in its dir) and that it can reach the listener (listenHost/advertiseHost).',
      ...options,
      details: { ...options.details, stage },
    });
    this.stage = stage;
  }
}

/** A native (replication) import did not finish within `timeoutMs`. */
export class ImportNativeTimeoutError extends TimeoutError {
  override name = 'ImportNativeTimeoutError';
  constructor(message: string, options: GeorepErrorOptions = {}) {
    super('import.native-timeout', message, {
      hint: 'Raise timeoutMs for large files; check that the target can reach the listener address (advertiseHost).',
      ...options,
    });
  }
}
