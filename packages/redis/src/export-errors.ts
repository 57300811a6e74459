/**
 * Errors of RDB export. Each failure a user can hit has its own class and a stable `code`
 * (`export.*`), so the CLI can map it to an exit status and print the hint, and
 * {@link exportRdb} can decide to fall back to SCAN + DUMP on `export.psync-refused` alone.
 *
 * Server replies are parsed into these classes at the boundary (see {@link classifyReplyError});
 * nothing downstream looks at reply text.
 */
import { GeorepError, TimeoutError, UnreachableError, type GeorepErrorOptions } from '@georep/core';

/** Where the node is, for messages and `details`. */
export interface ExportEndpoint {
  host: string;
  port: number;
}

const where = (e: ExportEndpoint) => `${e.host}:${e.port}`;

/** The node refused our credentials (`-WRONGPASS`, `-NOAUTH`, or AUTH without a password set). */
export class ExportAuthError extends GeorepError {
  override name = 'ExportAuthError';
  /** The server's error reply, verbatim. */
  readonly reply: string;
  constructor(endpoint: ExportEndpoint, reply: string, options: GeorepErrorOptions = {}) {
    super('export.auth-failed', `authentication to ${where(endpoint)} failed: ${reply}`, {
      hint: 'check redis.username and redis.password (or passwordFile) for this region',
      ...options,
      details: { ...endpoint, reply, ...options.details },
    });
    this.reply = reply;
  }
}

/**
 * The node will not replicate to us: PSYNC/SYNC/REPLCONF are forbidden by ACL (`-NOPERM`), renamed
 * or disabled (`-ERR unknown command`), as on managed services. SCAN + DUMP can still export.
 */
export class ExportPsyncRefusedError extends GeorepError {
  override name = 'ExportPsyncRefusedError';
  readonly reply: string;
  /** The command that was refused (`PSYNC`, `REPLCONF`). */
  readonly command: string;
  constructor(endpoint: ExportEndpoint, command: string, reply: string) {
    super('export.psync-refused', `${where(endpoint)} refused ${command}: ${reply}`, {
      hint:
        'grant the user +psync +replconf (e.g. ACL SETUSER <user> +psync +replconf), or allow the ' +
        'SCAN + DUMP fallback, which is not point-in-time',
      details: { ...endpoint, command, reply },
    });
    this.reply = reply;
    this.command = command;
  }
}

/** The connection closed or failed before the whole RDB arrived. */
export class ExportConnectionLostError extends UnreachableError {
  override name = 'ExportConnectionLostError';
  /** RDB payload bytes received before the loss. */
  readonly bytesReceived: number;
  constructor(endpoint: ExportEndpoint, bytesReceived: number, options: GeorepErrorOptions = {}) {
    super(
      'export.connection-lost',
      `connection to ${where(endpoint)} lost after ${bytesReceived} bytes of RDB`,
      {
        hint:
          'check that the node is up and look at its log: a fork failure, OOM kill or ' +
          '"client-output-buffer-limit" closes the link; then retry the export',
        ...options,
        details: { ...endpoint, bytesReceived, ...options.details },
      },
    );
    this.bytesReceived = bytesReceived;
  }
}

/** The node could not be reached at all (refused, DNS, TLS handshake). */
export class ExportUnreachableError extends UnreachableError {
  override name = 'ExportUnreachableError';
  constructor(endpoint: ExportEndpoint, options: GeorepErrorOptions = {}) {
    const reason = options.cause instanceof Error ? `: ${options.cause.message}` : '';
    super('export.unreachable', `cannot connect to ${where(endpoint)}${reason}`, {
      hint: 'check the host and port, that the node is up, and the TLS settings of the region',
      ...options,
      details: { ...endpoint, ...options.details },
    });
  }
}

/** The node sent something the replication protocol does not allow at this point. */
export class ExportBadReplyError extends GeorepError {
  override name = 'ExportBadReplyError';
  readonly reply: string;
  constructor(endpoint: ExportEndpoint, what: string, reply: string, hint?: string) {
    super('export.bad-reply', `unexpected reply from ${where(endpoint)} to ${what}: ${reply}`, {
      hint:
        hint ??
        'make sure host:port is a Redis or Valkey node and not a proxy (proxies cannot replicate)',
      details: { ...endpoint, what, reply },
    });
    this.reply = reply;
  }
}

/** Nothing arrived from the node for too long (connecting, handshake, or mid-transfer). */
export class ExportTimeoutError extends TimeoutError {
  override name = 'ExportTimeoutError';
  /** What we were waiting for. */
  readonly phase: string;
  readonly timeoutMs: number;
  constructor(endpoint: ExportEndpoint, phase: string, timeoutMs: number) {
    super('export.timeout', `no data from ${where(endpoint)} for ${timeoutMs} ms (${phase})`, {
      hint:
        'the node may be overloaded or the network stalled; raise the export timeouts for ' +
        'large datasets on slow disks (disk-based sync first writes the whole RDB)',
      details: { ...endpoint, phase, timeoutMs },
    });
    this.phase = phase;
    this.timeoutMs = timeoutMs;
  }
}

/** The local output could not be written (disk full, permissions, directory missing). */
export class ExportWriteError extends GeorepError {
  override name = 'ExportWriteError';
  readonly path: string;
  constructor(path: string, options: GeorepErrorOptions = {}) {
    const reason = options.cause instanceof Error ? `: ${options.cause.message}` : '';
    super('export.write-failed', `cannot write ${path}${reason}`, {
      hint: 'check that the directory exists, is writable and has room for the snapshot',
      ...options,
      details: { path, ...options.details },
    });
    this.path = path;
  }
}

/** SCAN + DUMP was refused or failed (ACL without +scan/+dump/+pttl, or a command error). */
export class ExportScanError extends GeorepError {
  override name = 'ExportScanError';
  constructor(endpoint: ExportEndpoint, message: string, options: GeorepErrorOptions = {}) {
    super('export.scan-failed', `SCAN + DUMP export from ${where(endpoint)} failed: ${message}`, {
      hint: 'the user needs +info +select +scan +dump +pttl (and +function for functions)',
      ...options,
      details: { ...endpoint, ...options.details },
    });
  }
}

/**
 * Turns an error reply to a handshake command into the matching typed error: authentication
 * problems, refusals that SCAN + DUMP can work around, and anything else as a bad reply.
 */
export function classifyReplyError(
  endpoint: ExportEndpoint,
  command: string,
  reply: string,
): GeorepError {
  const code = /^-(\S+)/.exec(reply)?.[1] ?? '';
  if (
    code === 'NOAUTH' ||
    code === 'WRONGPASS' ||
    /invalid password|without any password configured/i.test(reply)
  ) {
    return new ExportAuthError(endpoint, reply);
  }
  if (code === 'NOPERM' || /unknown command|not allowed|disabled/i.test(reply)) {
    return new ExportPsyncRefusedError(endpoint, command, reply);
  }
  if (code === 'NOMASTERLINK' || code === 'MASTERDOWN') {
    return new ExportBadReplyError(
      endpoint,
      command,
      reply,
      'this replica has lost its primary; export from the primary or wait for the link',
    );
  }
  if (code === 'LOADING') {
    return new ExportBadReplyError(
      endpoint,
      command,
      reply,
      'the node is loading its dataset; retry once INFO shows loading:0',
    );
  }
  return new ExportBadReplyError(endpoint, command, reply);
}
