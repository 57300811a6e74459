/**
 * Errors of capture (`capture.*`). Two of them are final, because retrying cannot help until an
 * operator acts: {@link CaptureAuthError} and {@link CapturePsyncRefusedError}. Everything else is
 * a link problem that capture retries with backoff, reporting it as a `disconnected` event.
 *
 * Replies are classified by `@georep/redis`'s `classifyReplyError` (the same rules as the RDB
 * export handshake) and re-issued here with capture's codes and hints.
 */
import { GeorepError, TimeoutError, UnreachableError, type GeorepErrorOptions } from '@georep/core';
import { ExportAuthError, ExportPsyncRefusedError, classifyReplyError } from '@georep/redis';

/** Where the node is, for messages and `details`. */
export interface CaptureEndpoint {
  host: string;
  port: number;
}

const where = (e: CaptureEndpoint) => `${e.host}:${e.port}`;

/** The node refused our credentials. Final: capture stops. */
export class CaptureAuthError extends GeorepError {
  override name = 'CaptureAuthError';
  readonly reply: string;
  constructor(endpoint: CaptureEndpoint, reply: string) {
    super('capture.auth-failed', `authentication to ${where(endpoint)} failed: ${reply}`, {
      hint: 'check redis.username and redis.password (or passwordFile) for this region',
      details: { ...endpoint, reply },
    });
    this.reply = reply;
  }
}

/**
 * The node will not replicate to us: PSYNC or REPLCONF forbidden by ACL (`-NOPERM`) or renamed
 * away (`unknown command`, as on managed services). Final: capture stops.
 */
export class CapturePsyncRefusedError extends GeorepError {
  override name = 'CapturePsyncRefusedError';
  readonly reply: string;
  /** The refused command (`PSYNC`, `REPLCONF`). */
  readonly command: string;
  constructor(endpoint: CaptureEndpoint, command: string, reply: string) {
    super('capture.psync-refused', `${where(endpoint)} refused ${command}: ${reply}`, {
      hint:
        'capture needs a user allowed to replicate: ACL SETUSER <user> +psync +replconf ' +
        '(+info to explain full resyncs); managed services that hide PSYNC cannot be captured',
      details: { ...endpoint, command, reply },
    });
    this.reply = reply;
    this.command = command;
  }
}

/** The node answered something the replication protocol does not allow here (or `-LOADING`...). */
export class CaptureBadReplyError extends GeorepError {
  override name = 'CaptureBadReplyError';
  readonly reply: string;
  constructor(endpoint: CaptureEndpoint, what: string, reply: string) {
    super('capture.bad-reply', `unexpected reply from ${where(endpoint)} to ${what}: ${reply}`, {
      hint: hintFor(reply),
      details: { ...endpoint, what, reply },
    });
    this.reply = reply;
  }
}

/** The link could not be opened or was lost; capture reconnects. */
export class CaptureConnectionError extends UnreachableError {
  override name = 'CaptureConnectionError';
  constructor(endpoint: CaptureEndpoint, what: string, options: GeorepErrorOptions = {}) {
    const reason = options.cause instanceof Error ? `: ${options.cause.message}` : '';
    super('capture.connection-lost', `link to ${where(endpoint)} ${what}${reason}`, {
      hint: 'capture reconnects by itself and resumes with PSYNC; check that the node is up',
      ...options,
      details: { ...endpoint, ...options.details },
    });
  }
}

/** Nothing arrived from the node for too long; capture reconnects. */
export class CaptureTimeoutError extends TimeoutError {
  override name = 'CaptureTimeoutError';
  readonly phase: string;
  readonly timeoutMs: number;
  constructor(endpoint: CaptureEndpoint, phase: string, timeoutMs: number) {
    super('capture.timeout', `no data from ${where(endpoint)} for ${timeoutMs} ms (${phase})`, {
      hint: 'the primary pings its replicas every repl-ping-replica-period; check the network',
      details: { ...endpoint, phase, timeoutMs },
    });
    this.phase = phase;
    this.timeoutMs = timeoutMs;
  }
}

/** True for errors that retrying cannot fix: capture stops and the iterator throws them. */
export function isFinalCaptureError(err: unknown): boolean {
  return err instanceof CaptureAuthError || err instanceof CapturePsyncRefusedError;
}

/** Turns an error reply to a handshake command into the matching capture error. */
export function captureReplyError(
  endpoint: CaptureEndpoint,
  command: string,
  reply: string,
): GeorepError {
  const classified = classifyReplyError(endpoint, command, reply);
  if (classified instanceof ExportAuthError) return new CaptureAuthError(endpoint, reply);
  if (classified instanceof ExportPsyncRefusedError) {
    return new CapturePsyncRefusedError(endpoint, command, reply);
  }
  return new CaptureBadReplyError(endpoint, command, reply);
}

function hintFor(reply: string): string {
  if (reply.startsWith('-NOMASTERLINK') || reply.startsWith('-MASTERDOWN')) {
    return 'this replica has lost its primary; capture retries until its link is back';
  }
  if (reply.startsWith('-LOADING')) return 'the node is loading its dataset; capture retries';
  return 'make sure host:port is a Redis or Valkey node and not a proxy (proxies cannot replicate)';
}
