/**
 * One connection to a node as a replica: handshake, PSYNC, the RDB of a full resync spooled to a
 * temporary file, then the command stream, parsed and handed over command by command.
 *
 * A raw socket rather than a RESP client, because after PSYNC the node stops speaking RESP
 * replies. The handshake is a Redis replica's (`syncWithMaster`):
 *
 *   [AUTH] → [INFO replication] → REPLCONF listening-port → REPLCONF capa eof capa psync2 →
 *   PSYNC <replid> <offset+1> | PSYNC ? -1
 *
 * `INFO replication` is only read when resuming, to explain a refused partial resync
 * (see resync-reason.ts); a user without `+info` just gets reason `unknown`.
 *
 * The link never stops reading during the RDB: a replica that stalls a full sync holds the
 * primary's fork and is dropped after `repl-timeout`. The payload goes to disk at network speed
 * and is handed over whole; the consumer parses it from disk at its own pace.
 */
import type { Socket } from 'node:net';
import { join } from 'node:path';
import {
  RdbPayloadDecoder,
  ReplicationLineReader,
  SpoolFile,
  parseInfo,
  parsePayloadPreamble,
  partialPathFor,
  type InfoSections,
} from '@georep/redis';
import { resolveSecret, type RedisConfig } from '@georep/core';
import {
  CaptureBadReplyError,
  CaptureConnectionError,
  CaptureTimeoutError,
  captureReplyError,
  type CaptureEndpoint,
} from './capture-errors.js';
import type { Position } from './position-store.js';
import { encodeCommand, openSocket, streamDbOf } from './replica-io.js';
import { RespStreamParser } from './resp-stream-parser.js';
import { explainFullResync, type FullResyncExplanation } from './resync-reason.js';

/** Credentials and TLS of the node's region (a subset of the agent's `redis` settings). */
export type CaptureCredentials = Pick<
  RedisConfig,
  'username' | 'password' | 'passwordFile' | 'tls'
>;

/** Where the stream is, as received: a position plus whether a MULTI block is open there. */
export interface StreamState extends Position {
  inMulti: boolean;
}

/** A stream command, as handed to the consumer. */
export interface CaptureCommand {
  type: 'command';
  /** Database the command applies to. */
  db: number;
  /** Arguments as sent, command name first (not upper-cased). */
  argv: Buffer[];
  /** Replication offset just after this command. */
  offset: number;
  /** Stream bytes of this command (`offset - bytes` is the offset before it). */
  bytes: number;
}

/** A full resync whose RDB is completely in a spool file. */
export interface SpooledSnapshot extends FullResyncExplanation {
  spool: SpoolFile;
  replid: string;
  /** The snapshot is the dataset at exactly this offset. */
  offset: number;
  rdbBytes: number;
  framing: 'length' | 'eof-marker';
  /** Database the stream has selected at `offset` (the RDB's `repl-stream-db`). */
  streamDb: number;
  node: CaptureEndpoint;
}

/** What a link reports, synchronously and in stream order. */
export interface LinkSink {
  /** `+CONTINUE`: the stream resumes right after `from`, now under `replid`. */
  continued(replid: string, previousReplid: string): void;
  /** A full resync's RDB has arrived whole; the stream continues from its offset. */
  snapshot(snapshot: SpooledSnapshot): void;
  /** One stream command: `command` is absent for those capture consumes itself (PING, ...). */
  received(state: StreamState, command: CaptureCommand | undefined): void;
}

/** Options of {@link openReplicaLink}. */
export interface ReplicaLinkOptions {
  node: CaptureEndpoint;
  config: CaptureCredentials;
  /** Resume after this point; `null` asks for a full sync. */
  from: StreamState | null;
  listeningPort: number;
  spoolDir: string;
  connectMs: number;
  replyMs: number;
  idleMs: number;
  ackIntervalMs: number;
  maxBulkBytes: number | undefined;
  sink: LinkSink;
}

/** A running link. */
export interface ReplicaLink {
  /** Settles when the link ends: resolves after {@link close}, rejects with why otherwise. */
  done: Promise<void>;
  /** Closes the connection (idempotent). */
  close(): void;
  /** Stops reading the socket (backpressure); the primary buffers the stream meanwhile. */
  pause(): void;
  resume(): void;
}

const EMPTY = Buffer.alloc(0);
/** Extra ACKs after a sync starts, in ms (see `#startAcks`). */
const EARLY_ACKS_MS = [10, 30, 60, 100, 200, 400];
const lower = (b: Buffer | undefined) =>
  b === undefined ? '' : b.toString('latin1').toLowerCase();

/**
 * Connects to `options.node` and runs the replica protocol until closed or failed.
 *
 * @throws (through `done`) CaptureAuthError, CapturePsyncRefusedError, CaptureBadReplyError,
 *   CaptureConnectionError, CaptureTimeoutError, RespProtocolError.
 */
export async function openReplicaLink(options: ReplicaLinkOptions): Promise<ReplicaLink> {
  const password = resolveSecret(options.config.password, options.config.passwordFile);
  const socket = await openSocket(options);
  const link = new Link(options, password, socket);
  link.start();
  return {
    done: link.done,
    close: () => link.close(),
    pause: () => link.setPaused(true),
    resume: () => link.setPaused(false),
  };
}

type Phase = 'handshake' | 'info' | 'payload' | 'stream' | 'ended';

class Link {
  readonly #o: ReplicaLinkOptions;
  readonly #password: string | undefined;
  readonly #socket: Socket;
  readonly #lines = new ReplicationLineReader();
  readonly #parser: RespStreamParser;
  readonly done: Promise<void>;
  #settle!: { resolve: () => void; reject: (err: Error) => void };
  #phase: Phase = 'handshake';
  #onLine: ((line: string) => void) | undefined;
  /** INFO bulk reply being collected: bytes still wanted and what arrived. */
  #bulk: { want: number; parts: Buffer[]; got: number; then: (body: Buffer) => void } | undefined;
  #info: InfoSections | undefined;
  #state: StreamState | null;
  #decoder: RdbPayloadDecoder | undefined;
  #spool: SpoolFile | undefined;
  #full: { replid: string; offset: number } | undefined;
  /** Stream bytes held while the snapshot's AUX fields are read (socket paused meanwhile). */
  #held: Buffer[] | undefined;
  #ackTimer: NodeJS.Timeout | undefined;
  #earlyAcks: NodeJS.Timeout[] = [];
  #paused = false;
  #holdPause = false;

  constructor(o: ReplicaLinkOptions, password: string | undefined, socket: Socket) {
    this.#o = o;
    this.#password = password;
    this.#socket = socket;
    this.#state = o.from === null ? null : { ...o.from };
    this.#parser = new RespStreamParser(
      o.maxBulkBytes === undefined ? {} : { maxBulkBytes: o.maxBulkBytes },
    );
    this.done = new Promise<void>((resolve, reject) => (this.#settle = { resolve, reject }));
    // The owner awaits `done`; a link that fails before it does must not be an unhandled rejection.
    this.done.catch(() => undefined);
  }

  start(): void {
    const s = this.#socket;
    s.setTimeout(this.#o.replyMs);
    s.on('timeout', () => {
      // A paused socket is silent by our choice, not the primary's.
      if (this.#paused || this.#holdPause) return;
      const phase = this.#phase === 'stream' ? 'streaming' : this.#phase;
      this.#fail(new CaptureTimeoutError(this.#o.node, phase, s.timeout ?? 0));
    });
    s.on('data', (chunk: Buffer) => this.#onData(chunk));
    s.on('error', (err) =>
      this.#fail(new CaptureConnectionError(this.#o.node, 'failed', { cause: err })),
    );
    s.on('close', () => this.#fail(new CaptureConnectionError(this.#o.node, 'closed by the peer')));
    this.#handshake();
  }

  close(): void {
    if (this.#phase === 'ended') return;
    this.#end();
    void this.#spool?.discard();
    this.#settle.resolve();
  }

  setPaused(paused: boolean): void {
    this.#paused = paused;
    this.#applyPause();
  }

  #applyPause(): void {
    if (this.#phase === 'ended') return;
    if (this.#paused || this.#holdPause) this.#socket.pause();
    else this.#socket.resume();
  }

  #handshake(): void {
    const { config, node, from } = this.#o;
    const steps: Array<{ name: string; args: string[]; optional?: boolean }> = [];
    if (this.#password !== undefined) {
      steps.push({
        name: 'AUTH',
        args:
          config.username === undefined
            ? ['AUTH', this.#password]
            : ['AUTH', config.username, this.#password],
      });
    }
    if (from !== null) steps.push({ name: 'INFO', args: ['INFO', 'replication'], optional: true });
    steps.push({
      name: 'REPLCONF',
      args: ['REPLCONF', 'listening-port', String(this.#o.listeningPort)],
    });
    steps.push({ name: 'REPLCONF', args: ['REPLCONF', 'capa', 'eof', 'capa', 'psync2'] });
    const next = (i: number): void => {
      const step = steps[i];
      if (step === undefined) return this.#psync();
      this.#send(step.args, (line) => {
        if (step.name === 'INFO' && line.startsWith('$')) {
          return this.#readBulk(Number(line.slice(1)), (body) => {
            this.#info = parseInfo(body.toString('utf8'));
            next(i + 1);
          });
        }
        if (line.startsWith('+')) return next(i + 1);
        const err = line.startsWith('-')
          ? captureReplyError(node, step.name, line)
          : new CaptureBadReplyError(node, step.name, line);
        // INFO only explains full resyncs; a user without +info still captures.
        if (step.optional === true && line.startsWith('-NOPERM')) return next(i + 1);
        this.#fail(err);
      });
    };
    next(0);
  }

  #psync(): void {
    const { node } = this.#o;
    const from = this.#state;
    const args =
      from === null ? ['PSYNC', '?', '-1'] : ['PSYNC', from.replid, String(from.offset + 1)];
    this.#send(args, (line) => {
      this.#socket.setTimeout(this.#o.idleMs);
      const cont = /^\+CONTINUE(?: ([0-9a-zA-Z]{40}))?$/.exec(line);
      if (cont !== null && from !== null) {
        const replid = cont[1] ?? from.replid;
        this.#state = { ...from, replid };
        this.#phase = 'stream';
        this.#o.sink.continued(replid, from.replid);
        this.#startAcks();
        this.#stream(this.#lines.takeRest());
        return;
      }
      const full = /^\+FULLRESYNC ([0-9a-zA-Z]{40}) (\d+)$/.exec(line);
      if (full === null) {
        this.#fail(
          line.startsWith('-')
            ? captureReplyError(node, 'PSYNC', line)
            : new CaptureBadReplyError(node, 'PSYNC', line),
        );
        return;
      }
      this.#full = { replid: full[1]!, offset: Number(full[2]) };
      this.#onLine = (preamble) => this.#preamble(preamble);
      this.#drainLines();
    });
  }

  #preamble(line: string): void {
    const framing = parsePayloadPreamble(line);
    if (framing === undefined) {
      this.#fail(
        line.startsWith('-')
          ? captureReplyError(this.#o.node, 'PSYNC', line)
          : new CaptureBadReplyError(this.#o.node, 'the RDB preamble', line),
      );
      return;
    }
    this.#phase = 'payload';
    this.#decoder = new RdbPayloadDecoder(framing);
    // Creating the spool takes a moment; hold the socket meanwhile (the primary is just forking).
    this.#holdPause = true;
    this.#applyPause();
    SpoolFile.create(partialPathFor(join(this.#o.spoolDir, 'capture-snapshot.rdb'))).then(
      (spool) => {
        if (this.#phase === 'ended') {
          void spool.discard();
          return;
        }
        this.#spool = spool;
        this.#holdPause = false;
        this.#applyPause();
        // Everything after the preamble line, including what arrived while the file was opened.
        this.#payload(this.#lines.takeRest());
      },
      (err: unknown) => this.#fail(err instanceof Error ? err : new Error(String(err))),
    );
  }

  #payload(chunk: Buffer): void {
    const decoder = this.#decoder!;
    const before = decoder.payloadBytes;
    for (const piece of decoder.push(chunk)) this.#spool!.append(piece);
    if (!decoder.done) return;
    // With `$<len>` framing the command stream follows the payload in the same read.
    const rest =
      decoder.framing.kind === 'length' ? chunk.subarray(decoder.framing.length - before) : EMPTY;
    const spool = this.#spool!;
    this.#spool = undefined;
    spool.finish();
    const full = this.#full!;
    this.#phase = 'stream';
    // A diskless primary sends nothing more until the first ACK (`repl_start_cmd_stream_on_ack`).
    this.#state = { replid: full.replid, offset: full.offset, db: 0, inMulti: false };
    this.#startAcks();
    // The stream continues in whatever db the primary's stream had selected: a primary re-emits
    // SELECT after a full sync, but a replica passes its primary's stream through unchanged, so
    // read `repl-stream-db` from the RDB (as Redis's replica does) before parsing commands.
    this.#held = rest.length === 0 ? [] : [rest];
    this.#holdPause = true;
    this.#applyPause();
    streamDbOf(spool).then(
      (db) => {
        if (this.#phase === 'ended') {
          void spool.discard();
          return;
        }
        this.#state!.db = db;
        const explanation = explainFullResync(this.#o.from, this.#info);
        this.#o.sink.snapshot({
          ...explanation,
          spool,
          replid: full.replid,
          offset: full.offset,
          rdbBytes: decoder.payloadBytes,
          framing: decoder.framing.kind,
          streamDb: db,
          node: this.#o.node,
        });
        const held = this.#held ?? [];
        this.#held = undefined;
        this.#holdPause = false;
        this.#applyPause();
        for (const b of held) this.#stream(b);
      },
      (err: unknown) => {
        void spool.discard();
        this.#fail(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  #stream(chunk: Buffer): void {
    if (this.#held !== undefined) {
      this.#held.push(chunk);
      return;
    }
    this.#parser.push(chunk);
    const state = this.#state!;
    try {
      for (let cmd = this.#parser.next(); cmd !== undefined; cmd = this.#parser.next()) {
        if (this.#phase !== 'stream') return;
        state.offset += cmd.bytes;
        const name = lower(cmd.argv[0]);
        let command: CaptureCommand | undefined;
        if (name === '' || name === 'ping') {
          // Keepalives: they only move the offset.
        } else if (name === 'replconf') {
          if (lower(cmd.argv[1]) === 'getack') this.#ack();
        } else if (name === 'select') {
          const db = Number(cmd.argv[1]?.toString('latin1'));
          if (Number.isSafeInteger(db) && db >= 0) state.db = db;
        } else {
          if (name === 'multi') state.inMulti = true;
          else if (name === 'exec' || name === 'discard') state.inMulti = false;
          command = {
            type: 'command',
            db: state.db,
            argv: cmd.argv,
            offset: state.offset,
            bytes: cmd.bytes,
          };
        }
        this.#o.sink.received({ ...state }, command);
      }
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #startAcks(): void {
    this.#ack();
    // After a diskless transfer the primary starts the command stream on the first ACK it gets
    // once its fork child has exited, and ignores earlier ones. The last RDB byte can reach us
    // before the primary has reaped the child, so repeat the ACK a few times early on instead of
    // leaving the stream stalled until the next regular ACK.
    for (const ms of EARLY_ACKS_MS) this.#earlyAcks.push(setTimeout(() => this.#ack(), ms));
    // Every second, as a replica does: without ACKs the primary drops us after repl-timeout.
    this.#ackTimer = setInterval(() => this.#ack(), this.#o.ackIntervalMs);
  }

  #ack(): void {
    if (this.#phase !== 'stream' || this.#state === null) return;
    this.#socket.write(encodeCommand(['REPLCONF', 'ACK', String(this.#state.offset)]));
  }

  #send(args: string[], onLine: (line: string) => void): void {
    this.#onLine = onLine;
    this.#socket.write(encodeCommand(args));
  }

  #onData(chunk: Buffer): void {
    switch (this.#phase) {
      case 'stream':
        return this.#stream(chunk);
      case 'payload':
        if (this.#spool === undefined) this.#lines.push(chunk);
        else this.#payload(chunk);
        return;
      case 'info':
        return this.#bulkData(chunk);
      case 'handshake':
        this.#lines.push(chunk);
        return this.#drainLines();
      case 'ended':
        return;
    }
  }

  #drainLines(): void {
    while (this.#phase === 'handshake' && this.#onLine !== undefined) {
      let line: string | undefined;
      try {
        line = this.#lines.nextLine();
      } catch (err) {
        this.#fail(new CaptureBadReplyError(this.#o.node, 'the handshake', (err as Error).message));
        return;
      }
      if (line === undefined) return;
      const handler = this.#onLine;
      this.#onLine = undefined;
      handler(line);
    }
  }

  /** Collects a `$<len>` reply body (INFO) from the bytes after its header line. */
  #readBulk(len: number, then: (body: Buffer) => void): void {
    if (!Number.isSafeInteger(len) || len < 0) {
      this.#fail(new CaptureBadReplyError(this.#o.node, 'INFO', `$${len}`));
      return;
    }
    this.#phase = 'info';
    this.#bulk = { want: len + 2, parts: [], got: 0, then };
    this.#bulkData(this.#lines.takeRest());
  }

  #bulkData(chunk: Buffer): void {
    const bulk = this.#bulk!;
    bulk.parts.push(chunk);
    bulk.got += chunk.length;
    if (bulk.got < bulk.want) return;
    const all = Buffer.concat(bulk.parts);
    this.#bulk = undefined;
    this.#phase = 'handshake';
    this.#lines.push(all.subarray(bulk.want));
    bulk.then(all.subarray(0, bulk.want - 2));
    this.#drainLines();
  }

  #end(): void {
    this.#phase = 'ended';
    if (this.#ackTimer !== undefined) clearInterval(this.#ackTimer);
    for (const t of this.#earlyAcks) clearTimeout(t);
    this.#socket.destroy();
  }

  #fail(err: Error): void {
    if (this.#phase === 'ended') return;
    this.#end();
    if (this.#spool !== undefined) {
      this.#spool.fail(err);
      void this.#spool.discard();
    }
    this.#settle.reject(err);
  }
}
