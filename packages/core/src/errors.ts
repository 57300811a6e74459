/**
 * Errors with stable codes.
 *
 * Every failure a user can trigger is a subclass of {@link GeorepError}. The `code` is stable
 * (documented in docs/cli.md) and callers branch on it or on the class, never on the message.
 * `hint` says what to do next; the CLI prints it under the message and maps the code to an exit
 * status with {@link exitCodeFor}.
 */

/** Exit statuses of the `georep` CLI, stable across releases. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  unreachable: 4,
  notFound: 5,
  conflict: 6,
  dependencyMissing: 7,
  timeout: 8,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Options accepted by every georep error. */
export interface GeorepErrorOptions extends ErrorOptions {
  /** What the user should do about it, one sentence. */
  hint?: string;
  /** Extra context shown with `--json` and in logs. */
  details?: Record<string, unknown>;
}

/** Base class of every georep error: a stable `code`, a `hint`, and context in `details`. */
export class GeorepError extends Error {
  override name = 'GeorepError';
  readonly code: string;
  readonly hint: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options: GeorepErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  /** The machine-readable form printed by `--json` and logged by the agent. */
  toJSON(): { code: string; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(Object.keys(this.details).length === 0 ? {} : { details: { ...this.details } }),
    };
  }
}

/** The configuration (file, environment or flags) is missing or invalid. */
export class ConfigError extends GeorepError {
  override name = 'ConfigError';
  constructor(code: `config.${string}`, message: string, options?: GeorepErrorOptions) {
    super(code, message, options);
  }
}

/** A server (NATS, Redis) or a peer agent could not be reached. */
export class UnreachableError extends GeorepError {
  override name = 'UnreachableError';
}

/** A named thing (region, node, operation) does not exist. */
export class NotFoundError extends GeorepError {
  override name = 'NotFoundError';
}

/** The request conflicts with the current state (already running, busy, ...). */
export class ConflictError extends GeorepError {
  override name = 'ConflictError';
}

/** A program georep needs (redis-server, nats-server) is not installed. */
export class DependencyMissingError extends GeorepError {
  override name = 'DependencyMissingError';
}

/** Something did not happen within its deadline. */
export class TimeoutError extends GeorepError {
  override name = 'TimeoutError';
}

/** A user or operator asked for something invalid (a missing confirmation, a bad value). */
export class UsageError extends GeorepError {
  override name = 'UsageError';
}

const ERROR_CLASSES: Record<
  string,
  new (code: string, message: string, options?: GeorepErrorOptions) => GeorepError
> = {
  GeorepError,
  UnreachableError,
  NotFoundError,
  ConflictError,
  DependencyMissingError,
  TimeoutError,
  UsageError,
};

/** The wire form of an error (see `SerializedError`), keeping its class name as `kind`. */
export function serializeError(err: unknown): {
  kind: string;
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
} {
  const e = toGeorepError(err);
  return { kind: e instanceof ConfigError ? 'ConfigError' : e.name, ...e.toJSON() };
}

/** Rebuilds an error received over the wire, as the class it had (unknown kinds: GeorepError). */
export function deserializeError(wire: {
  kind?: string;
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}): GeorepError {
  const options = {
    ...(wire.hint === undefined ? {} : { hint: wire.hint }),
    ...(wire.details === undefined ? {} : { details: wire.details }),
  };
  if (wire.kind === 'ConfigError' && wire.code.startsWith('config.')) {
    return new ConfigError(wire.code as `config.${string}`, wire.message, options);
  }
  const Class = ERROR_CLASSES[wire.kind ?? ''] ?? GeorepError;
  return new Class(wire.code, wire.message, options);
}

/** Wraps anything thrown that is not a GeorepError, keeping it as the cause. */
export function toGeorepError(err: unknown): GeorepError {
  if (err instanceof GeorepError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GeorepError('internal', message, { cause: err });
}

/** Maps an error to the CLI exit status; unknown errors exit with {@link ExitCode.failure}. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof ConfigError) return ExitCode.config;
  if (err instanceof UnreachableError) return ExitCode.unreachable;
  if (err instanceof NotFoundError) return ExitCode.notFound;
  if (err instanceof ConflictError) return ExitCode.conflict;
  if (err instanceof DependencyMissingError) return ExitCode.dependencyMissing;
  if (err instanceof TimeoutError) return ExitCode.timeout;
  if (err instanceof UsageError) return ExitCode.usage;
  if (err instanceof GeorepError && err.code.startsWith('usage.')) return ExitCode.usage;
  return ExitCode.failure;
}
