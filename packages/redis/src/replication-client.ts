/**
 * A raw replica connection that asks a node for a full sync and receives the RDB.
 *
 * This is a socket, not an ioredis client: after PSYNC the primary stops speaking RESP (status
 * lines, keepalive newlines, an unframed or marker-framed binary payload), which no RESP client
 * can read. The handshake is redis-cli `--rdb`'s, with PSYNC so the reply carries the replication
 * id and offset of the snapshot:
 *
 *   [AUTH [user] password] → REPLCONF capa eof → REPLCONF rdb-only 1 → PSYNC ? -1
 *
 * `capa eof` lets the primary stream diskless (no RDB file on its disk); `rdb-only` makes it send
 * the snapshot without the command stream that would otherwise follow, so no replication buffer
 * builds up on the primary and it disconnects us when done.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { resolveSecret, type RedisConfig } from '@georep/core';
import { tlsOptionsFrom } from './connection.js';
import {
  ExportBadReplyError,
  ExportConnectionLostError,
  ExportTimeoutError,
  ExportUnreachableError,
  classifyReplyError,
  type ExportEndpoint,
} from './export-errors.js';
import {
  RdbPayloadDecoder,
  ReplicationLineReader,
  parsePayloadPreamble,
  type PayloadFraming,
} from './replication-framing.js';
import type { SpoolFile } from './spool-file.js';

/** Timeouts of a full sync, in ms. */
export interface ReplicationTimeouts {
  /** TCP connect and TLS handshake. Default 10 000. */
  connectMs?: number;
  /** Each reply of the handshake (AUTH, REPLCONF, PSYNC). Default 10 000. */
  replyMs?: number;
  /**
   * Silence after PSYNC: waiting for the fork and during the transfer. The primary sends a
   * keepalive every second while it prepares the RDB, so this only fires on a stalled link.
   * Default 60 000, Redis's `repl-timeout`.
   */
  idleMs?: number;
}

/** Options of {@link startFullSync}. */
export interface FullSyncOptions {
  node: ExportEndpoint;
  /** Credentials and TLS of the node's region. */
  config: Pick<RedisConfig, 'username' | 'password' | 'passwordFile' | 'tls'>;
  /** Where the payload goes; the transfer appends to it and calls `finish`/`fail`. */
  spool: SpoolFile;
  timeouts?: ReplicationTimeouts;
  /** Called for every received payload chunk; must not throw. */
  onBytes?: (bytesReceived: number, totalBytes: number | undefined) => void;
}

/** A full sync in progress, returned once the payload preamble has arrived. */
export interface FullSync {
  /** Replication id from `+FULLRESYNC`: the history the snapshot belongs to. */
  replid: string;
  /** Replication offset from `+FULLRESYNC`: the snapshot is the dataset at exactly this offset. */
  offset: number;
  /** `eof-marker` for a diskless transfer, `length` for a disk-based one. */
  framing: PayloadFraming['kind'];
  /** Payload size when announced (`length` framing). */
  totalBytes: number | undefined;
  /** False when the node predates `REPLCONF rdb-only` (Redis < 6.2). */
  rdbOnly: boolean;
  /** Resolves with the payload size once all of it is in the spool; rejects on failure. */
  completed: Promise<number>;
  /** Closes the connection and fails the spool with `reason` (no-op once completed). */
  abort(reason: Error): void;
}

const DEFAULTS = { connectMs: 10_000, replyMs: 10_000, idleMs: 60_000 };

/**
 * Connects to `node`, performs the replica handshake and starts receiving the RDB into
 * `options.spool`. Resolves after the payload preamble, while the payload is still arriving.
 *
 * @throws ExportUnreachableError, ExportAuthError, ExportPsyncRefusedError, ExportBadReplyError,
 *   ExportTimeoutError, ExportConnectionLostError.
 */
export async function startFullSync(options: FullSyncOptions): Promise<FullSync> {
  const timeouts = { ...DEFAULTS, ...options.timeouts };
  // Read before connecting: an unreadable passwordFile must not leave a socket open.
  const password = resolveSecret(options.config.password, options.config.passwordFile);
  const socket = await openSocket(options, timeouts.connectMs);
  return new Promise<FullSync>((resolve, reject) => {
    new SyncSession(options, password, timeouts, socket, resolve, reject).start();
  });
}

async function openSocket(options: FullSyncOptions, connectMs: number): Promise<Socket> {
  const { node, config } = options;
  return new Promise<Socket>((resolve, reject) => {
    const socket =
      config.tls === undefined
        ? netConnect({ host: node.host, port: node.port, noDelay: true })
        : tlsConnect({ host: node.host, port: node.port, ...tlsOptionsFrom(config.tls) });
    const ready = config.tls === undefined ? 'connect' : 'secureConnect';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ExportTimeoutError(node, 'connecting', connectMs));
    }, connectMs);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new ExportUnreachableError(node, { cause: err }));
    };
    socket.once('error', onError);
  });
}

/** Encodes a command as a RESP array, so passwords with any bytes are sent intact. */
function encodeCommand(args: string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(''));
}

type Phase = 'handshake' | 'payload' | 'done' | 'failed';

/** One connection's state machine: handshake lines, then the payload, then done or failed. */
class SyncSession {
  readonly #opts: FullSyncOptions;
  readonly #password: string | undefined;
  readonly #timeouts: Required<ReplicationTimeouts>;
  readonly #socket: Socket;
  readonly #resolve: (sync: FullSync) => void;
  readonly #reject: (err: Error) => void;
  readonly #lines = new ReplicationLineReader();
  #phase: Phase = 'handshake';
  /** `+FULLRESYNC` arrived: the primary is forking and will send the preamble. */
  #afterPsync = false;
  #decoder: RdbPayloadDecoder | undefined;
  /** The handshake step waiting for its reply line. */
  #onLine: ((line: string) => void) | undefined;
  #completed!: { resolve: (n: number) => void; reject: (err: Error) => void };

  constructor(
    opts: FullSyncOptions,
    password: string | undefined,
    timeouts: Required<ReplicationTimeouts>,
    socket: Socket,
    resolve: (sync: FullSync) => void,
    reject: (err: Error) => void,
  ) {
    this.#opts = opts;
    this.#password = password;
    this.#timeouts = timeouts;
    this.#socket = socket;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  start(): void {
    const s = this.#socket;
    s.setTimeout(this.#timeouts.replyMs);
    s.on('timeout', () => {
      const stage =
        this.#phase === 'payload'
          ? 'transfer'
          : this.#afterPsync
            ? 'waiting for the snapshot'
            : 'handshake';
      this.#fail(new ExportTimeoutError(this.#opts.node, stage, s.timeout ?? 0));
    });
    s.on('data', (chunk: Buffer) => this.#onData(chunk));
    s.on('error', (err) => this.#lost(err));
    s.on('close', () => this.#lost(undefined));
    this.#handshake();
  }

  /** Sends the handshake commands one at a time, so each refusal is attributed to its command. */
  #handshake(): void {
    const { config, node } = this.#opts;
    const password = this.#password;
    const steps: Array<{ args: string[]; name: string; tolerate?: RegExp }> = [];
    if (password !== undefined) {
      steps.push({
        name: 'AUTH',
        args:
          config.username === undefined ? ['AUTH', password] : ['AUTH', config.username, password],
      });
    }
    steps.push({ name: 'REPLCONF', args: ['REPLCONF', 'capa', 'eof'] });
    // Redis < 6.2 does not know rdb-only; the sync still works, the command stream is just ignored.
    steps.push({
      name: 'REPLCONF',
      args: ['REPLCONF', 'rdb-only', '1'],
      tolerate: /Unrecognized REPLCONF option/i,
    });
    let rdbOnly = true;
    const next = (i: number): void => {
      const step = steps[i];
      if (step === undefined) {
        this.#psync(rdbOnly);
        return;
      }
      this.#send(step.args, (line) => {
        if (line.startsWith('+')) return next(i + 1);
        if (line.startsWith('-') && step.tolerate?.test(line) === true) {
          rdbOnly = false;
          return next(i + 1);
        }
        this.#fail(
          line.startsWith('-')
            ? classifyReplyError(node, step.name, line)
            : new ExportBadReplyError(node, step.name, line),
        );
      });
    };
    next(0);
  }

  #psync(rdbOnly: boolean): void {
    const { node } = this.#opts;
    this.#send(['PSYNC', '?', '-1'], (line) => {
      const m = /^\+FULLRESYNC ([0-9a-zA-Z]{40}) (\d+)$/.exec(line);
      if (m === null) {
        this.#fail(
          line.startsWith('-')
            ? classifyReplyError(node, 'PSYNC', line)
            : new ExportBadReplyError(node, 'PSYNC', line),
        );
        return;
      }
      const replid = m[1]!;
      const offset = Number(m[2]);
      this.#afterPsync = true;
      // From here on the primary may take long to fork (disk-based: to write the whole RDB), but
      // it sends keepalives every second, so the idle timeout stays meaningful.
      this.#socket.setTimeout(this.#timeouts.idleMs);
      this.#onLine = (preamble) => {
        const framing = parsePayloadPreamble(preamble);
        if (framing === undefined) {
          this.#fail(
            preamble.startsWith('-')
              ? classifyReplyError(node, 'PSYNC', preamble)
              : new ExportBadReplyError(node, 'the RDB preamble', preamble),
          );
          return;
        }
        this.#startPayload(framing, replid, offset, rdbOnly);
      };
      this.#drainLines();
    });
  }

  #startPayload(framing: PayloadFraming, replid: string, offset: number, rdbOnly: boolean): void {
    this.#phase = 'payload';
    this.#decoder = new RdbPayloadDecoder(framing);
    const completed = new Promise<number>((resolve, reject) => {
      this.#completed = { resolve, reject };
    });
    // The caller may stop listening (e.g. after a parse error); never let this go unhandled.
    completed.catch(() => undefined);
    this.#resolve({
      replid,
      offset,
      framing: framing.kind,
      totalBytes: framing.kind === 'length' ? framing.length : undefined,
      rdbOnly,
      completed,
      abort: (reason) => this.#fail(reason),
    });
    this.#payload(this.#lines.takeRest());
  }

  #send(args: string[], onLine: (line: string) => void): void {
    this.#onLine = onLine;
    this.#socket.write(encodeCommand(args));
  }

  #onData(chunk: Buffer): void {
    if (this.#phase === 'payload') {
      this.#payload(chunk);
    } else if (this.#phase === 'handshake') {
      this.#lines.push(chunk);
      this.#drainLines();
    }
  }

  #drainLines(): void {
    while (this.#phase === 'handshake' && this.#onLine !== undefined) {
      let line: string | undefined;
      try {
        line = this.#lines.nextLine();
      } catch (err) {
        this.#fail(
          new ExportBadReplyError(this.#opts.node, 'the handshake', (err as Error).message),
        );
        return;
      }
      if (line === undefined) return;
      const handler = this.#onLine;
      this.#onLine = undefined;
      handler(line);
    }
  }

  #payload(chunk: Buffer): void {
    const decoder = this.#decoder!;
    const spool = this.#opts.spool;
    for (const piece of decoder.push(chunk)) spool.append(piece);
    try {
      this.#opts.onBytes?.(decoder.payloadBytes, this.#totalBytes(decoder));
    } catch (err) {
      // A failing progress callback must not be thrown from a socket event (it would crash the
      // process); it aborts the transfer instead.
      this.#fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (!decoder.done) return;
    this.#phase = 'done';
    // Everything we wanted is here; rdb-only primaries close anyway, older ones would go on.
    this.#socket.destroy();
    spool.finish();
    spool.flushed().then(this.#completed.resolve, this.#completed.reject);
  }

  #totalBytes(decoder: RdbPayloadDecoder): number | undefined {
    return decoder.framing.kind === 'length' ? decoder.framing.length : undefined;
  }

  #lost(err: Error | undefined): void {
    if (this.#phase === 'done' || this.#phase === 'failed') return;
    const received = this.#decoder?.payloadBytes ?? 0;
    this.#fail(
      new ExportConnectionLostError(
        this.#opts.node,
        received,
        err === undefined ? {} : { cause: err },
      ),
    );
  }

  #fail(err: Error): void {
    if (this.#phase === 'done' || this.#phase === 'failed') return;
    const wasPayload = this.#phase === 'payload';
    this.#phase = 'failed';
    this.#socket.destroy();
    if (wasPayload) {
      this.#opts.spool.fail(err);
      this.#completed.reject(err);
    } else {
      this.#reject(err);
    }
  }
}
