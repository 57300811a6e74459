/**
 * Capture: follow a node's replication stream as a replica, for as long as it runs, and hand
 * every write to a consumer in order, resuming where it left off across disconnects, restarts and
 * in-region switchovers.
 *
 * Two positions matter:
 * - **received**: the end of what the link delivered into capture's queue. In-process reconnects
 *   PSYNC from here, since everything before it is already queued;
 * - **processed**: the end of what the consumer has finished with. This is what the
 *   {@link PositionStore} keeps, so a crashed agent replays what it had not finished
 *   (at-least-once) and never skips anything.
 *
 * Like a Redis replica (its `reploff` only moves outside MULTI), the processed position never
 * stops inside a MULTI/EXEC block, so a resume replays a transaction whole.
 */
import { tmpdir } from 'node:os';
import { toGeorepError } from '@georep/core';
import { parseRdbBatches, type RdbRawKeyRecord } from '@georep/rdb';
import { isFinalCaptureError, type CaptureEndpoint } from './capture-errors.js';
import type { CaptureEvent } from './capture-events.js';
import { MemoryPositionStore, type Position, type PositionStore } from './position-store.js';
import {
  openReplicaLink,
  type CaptureCredentials,
  type LinkSink,
  type ReplicaLink,
  type SpooledSnapshot,
  type StreamState,
} from './replica-link.js';

/** Options of {@link CaptureStream.start}. */
export interface CaptureOptions {
  /** The node to replicate from, or a function asked on every (re)connect, to follow a switchover. */
  node: CaptureEndpoint | (() => CaptureEndpoint);
  /** Credentials and TLS of the region. Default: none. */
  config?: CaptureCredentials;
  /** Where the position is kept. Default: in memory (every new stream full-syncs). */
  store?: PositionStore;
  /**
   * Port announced with `REPLCONF listening-port`. Default 0: the primary lists us in INFO as
   * `port=0`, so Sentinel cannot reach (and never promotes) the capture "replica".
   */
  listeningPort?: number;
  /** Directory for the RDB of a full resync while it is consumed. Default: the OS temp dir. */
  spoolDir?: string;
  /** How often the processed position is saved when it moved. Default 100 ms. */
  saveIntervalMs?: number;
  /** How often `REPLCONF ACK` is sent. Default 1000 ms, as Redis replicas do. */
  ackIntervalMs?: number;
  timeouts?: {
    /** TCP connect and TLS handshake. Default 10 000. */
    connectMs?: number;
    /** Each handshake reply. Default 10 000. */
    replyMs?: number;
    /** Silence after PSYNC; primaries ping every 10 s. Default 60 000 (`repl-timeout`). */
    idleMs?: number;
  };
  /** Reconnect delays: doubling from `initialMs` up to `maxMs`. Default 100 / 5000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /**
   * Memory of the commands queued for the consumer (their bytes and the objects that hold them,
   * estimated) above which capture stops reading the socket: the primary buffers meanwhile, in
   * its compact wire form, up to its `client-output-buffer-limit replica`. Default 8 MiB: a
   * larger queue only moves the same backlog from Redis's compact form into the agent's heap
   * (64 MiB made the origin agent peak at about 450 MiB in `bench/replication.mjs`, 8 MiB at
   * about 255 MiB, with throughput and CPU within the machine's noise).
   */
  maxQueuedBytes?: number;
  /** Largest argument accepted (the primary's `proto-max-bulk-len`). Default 512 MiB. */
  maxBulkBytes?: number;
}

type Item =
  | { kind: 'event'; event: CaptureEvent; after: Position | undefined; bytes: number }
  | { kind: 'advance'; after: Position }
  | { kind: 'snapshot'; snapshot: SpooledSnapshot };

type Expanded = { event: CaptureEvent; after?: Position };

const toPosition = (s: StreamState): Position => ({ replid: s.replid, offset: s.offset, db: s.db });

/**
 * A capture of one node's replication stream, consumed with `for await`.
 *
 * An event counts as processed when the consumer asks for the next one, or calls {@link ack}.
 * Leaving the loop (`break`, `return`, a throw) stops the capture without acknowledging the last
 * event, so it is delivered again on resume; call {@link ack} first when it was handled.
 *
 * @example
 * ```ts
 * const capture = CaptureStream.start({ node, config, store: new FilePositionStore('pos.json') });
 * for await (const ev of capture) {
 *   if (ev.type === 'command') console.log(ev.db, ev.argv.map(String), commandKeys(ev.argv));
 *   if (ev.type === 'snapshot-start') console.log(`full sync (${ev.reason}): ${ev.detail}`);
 * }
 * ```
 */
export class CaptureStream implements AsyncIterable<CaptureEvent>, AsyncDisposable {
  readonly #o: CaptureOptions;
  readonly #store: PositionStore;
  #received: StreamState | null;
  #processed: Position | null;
  #dirty = false;
  /** Position reached once the last yielded event is processed (undefined: does not move). */
  #pendingAfter: Position | undefined;
  readonly #queue: Item[] = [];
  #head = 0;
  #queuedBytes = 0;
  #backpressure = false;
  #expansion: AsyncGenerator<Expanded, void, undefined> | undefined;
  #wake: (() => void) | undefined;
  #link: ReplicaLink | undefined;
  #node: CaptureEndpoint | undefined;
  #stopped = false;
  #error: Error | undefined;
  #run: Promise<void> | undefined;
  #saveTimer: NodeJS.Timeout | undefined;
  #sleep: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  #stopping: Promise<void> | undefined;
  #iterating = false;

  private constructor(options: CaptureOptions) {
    this.#o = options;
    this.#store = options.store ?? new MemoryPositionStore();
    this.#processed = this.#store.load();
    this.#received = this.#processed === null ? null : { ...this.#processed, inMulti: false };
  }

  /**
   * Starts capturing from `options.node`, resuming from the stored position when there is one.
   *
   * @throws PositionFileError when the store holds something that is not a position.
   */
  static start(options: CaptureOptions): CaptureStream {
    const capture = new CaptureStream(options);
    // Unref'd: the link's socket keeps the process alive while capturing, this timer must not.
    capture.#saveTimer = setInterval(() => capture.#save(), options.saveIntervalMs ?? 100).unref();
    capture.#run = capture.#loop();
    return capture;
  }

  /** What the consumer has processed: the position a restart resumes from. */
  get position(): Position | null {
    return this.#processed === null ? null : { ...this.#processed };
  }

  /** The end of what has been received from the node (ahead of {@link position}). */
  get receivedPosition(): Position | null {
    return this.#received === null ? null : toPosition(this.#received);
  }

  /** The node of the current or last link. */
  get node(): CaptureEndpoint | undefined {
    return this.#node;
  }

  /** Marks every event yielded so far as processed. */
  ack(): void {
    if (this.#pendingAfter !== undefined) this.#setProcessed(this.#pendingAfter);
    this.#pendingAfter = undefined;
  }

  /**
   * Stops capturing: closes the link, drops what was not yielded, saves the processed position.
   * The iterator then ends. Idempotent.
   *
   * @throws whatever the {@link PositionStore} throws on the final save.
   */
  async stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  [Symbol.asyncIterator](): AsyncIterator<CaptureEvent> {
    if (this.#iterating) throw new Error('a CaptureStream can be iterated only once');
    this.#iterating = true;
    return {
      next: () => this.#next(),
      return: async () => {
        await this.stop();
        return { done: true, value: undefined };
      },
    };
  }

  async #shutdown(): Promise<void> {
    this.#stopped = true;
    this.#link?.close();
    if (this.#sleep !== undefined) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.resolve();
    }
    clearInterval(this.#saveTimer);
    this.#wakeConsumer();
    await this.#run;
    await this.#expansion?.return().catch(() => undefined);
    for (let i = this.#head; i < this.#queue.length; i++) {
      const item = this.#queue[i]!;
      if (item.kind === 'snapshot') await item.snapshot.spool.discard();
    }
    this.#queue.length = 0;
    this.#head = 0;
    this.#dirty = true;
    this.#save(true);
  }

  async #loop(): Promise<void> {
    let failures = 0;
    const backoff = { initialMs: 100, maxMs: 5000, ...this.#o.backoff };
    while (!this.#stopped) {
      const node = typeof this.#o.node === 'function' ? this.#o.node() : this.#o.node;
      this.#node = node;
      let synced = false;
      try {
        const link = await openReplicaLink({
          node,
          config: this.#o.config ?? {},
          from: this.#received,
          listeningPort: this.#o.listeningPort ?? 0,
          spoolDir: this.#o.spoolDir ?? tmpdir(),
          connectMs: this.#o.timeouts?.connectMs ?? 10_000,
          replyMs: this.#o.timeouts?.replyMs ?? 10_000,
          idleMs: this.#o.timeouts?.idleMs ?? 60_000,
          ackIntervalMs: this.#o.ackIntervalMs ?? 1000,
          maxBulkBytes: this.#o.maxBulkBytes,
          sink: this.#sink(node, () => (synced = true)),
        });
        if (this.#stopped) {
          link.close();
          break;
        }
        this.#link = link;
        if (this.#backpressure) link.pause();
        await link.done;
      } catch (err) {
        if (this.#stopped) break;
        if (isFinalCaptureError(err)) {
          this.#error = err as Error;
          this.#stopped = true;
          this.#wakeConsumer();
          break;
        }
        if (synced) failures = 0;
        const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failures, 20));
        failures++;
        this.#push({
          kind: 'event',
          event: { type: 'disconnected', error: toGeorepError(err), retryInMs: delay, node },
          after: undefined,
          bytes: 0,
        });
        await new Promise<void>((resolve) => {
          this.#sleep = { timer: setTimeout(resolve, delay), resolve };
        });
        this.#sleep = undefined;
      } finally {
        this.#link = undefined;
      }
    }
  }

  #sink(node: CaptureEndpoint, onSynced: () => void): LinkSink {
    return {
      continued: (replid, previousReplid) => {
        onSynced();
        const state = this.#received!;
        state.replid = replid;
        this.#push({
          kind: 'event',
          event: { type: 'resumed', replid, previousReplid, offset: state.offset, node },
          after: state.inMulti ? undefined : toPosition(state),
          bytes: 0,
        });
      },
      snapshot: (snapshot) => {
        onSynced();
        this.#received = {
          replid: snapshot.replid,
          offset: snapshot.offset,
          db: snapshot.streamDb,
          inMulti: false,
        };
        this.#push({ kind: 'snapshot', snapshot });
      },
      received: (state, command) => {
        this.#received = state;
        const after = state.inMulti ? undefined : toPosition(state);
        if (command !== undefined) {
          this.#push({ kind: 'event', event: command, after, bytes: queuedSize(command) });
        } else if (after !== undefined) {
          this.#push({ kind: 'advance', after });
        }
      },
    };
  }

  #push(item: Item): void {
    this.#queue.push(item);
    if (item.kind === 'event' && item.bytes > 0) {
      this.#queuedBytes += item.bytes;
      if (!this.#backpressure && this.#queuedBytes > this.#maxQueued()) {
        this.#backpressure = true;
        this.#link?.pause();
      }
    }
    this.#wakeConsumer();
  }

  #shift(): Item | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const item = this.#queue[this.#head]!;
    this.#head++;
    // Compact now and then instead of Array.shift on every item (which is O(n)).
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    if (item.kind === 'event' && item.bytes > 0) {
      this.#queuedBytes -= item.bytes;
      if (this.#backpressure && this.#queuedBytes <= this.#maxQueued() / 2) {
        this.#backpressure = false;
        this.#link?.resume();
      }
    }
    return item;
  }

  #maxQueued(): number {
    return this.#o.maxQueuedBytes ?? 8 * 1024 * 1024;
  }

  async #next(): Promise<IteratorResult<CaptureEvent, undefined>> {
    this.ack();
    for (;;) {
      if (this.#expansion !== undefined) {
        let r: IteratorResult<Expanded, void>;
        try {
          r = await this.#expansion.next();
        } catch (err) {
          this.#expansion = undefined;
          if (this.#stopped) return { done: true, value: undefined };
          // A snapshot that does not parse cannot be skipped: the consumer would miss keys.
          this.#error = err as Error;
          await this.stop();
          throw err;
        }
        if (!r.done) {
          this.#pendingAfter = r.value.after;
          return { done: false, value: r.value.event };
        }
        this.#expansion = undefined;
        continue;
      }
      if (this.#stopped && this.#error === undefined && this.#stopping !== undefined) {
        return { done: true, value: undefined };
      }
      const item = this.#shift();
      if (item === undefined) {
        if (this.#error !== undefined) {
          const err = this.#error;
          await this.stop();
          throw err;
        }
        if (this.#stopped) return { done: true, value: undefined };
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      if (item.kind === 'advance') {
        this.#setProcessed(item.after);
      } else if (item.kind === 'event') {
        this.#pendingAfter = item.after;
        return { done: false, value: item.event };
      } else {
        this.#expansion = expandSnapshot(item.snapshot);
      }
    }
  }

  #wakeConsumer(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #setProcessed(p: Position): void {
    this.#processed = p;
    this.#dirty = true;
  }

  #save(final = false): void {
    if (!this.#dirty || this.#processed === null) return;
    try {
      this.#store.save(this.#processed);
      this.#dirty = false;
    } catch (err) {
      // Periodic saves retry on the next tick; only the final one reports the failure.
      if (final) throw err;
    }
  }
}

/**
 * What a queued command costs in memory, roughly: its bytes, plus per argument a Buffer view
 * (about 100 B of heap) and per command the event, its argv array, its position and the queue
 * item (about 300 B). A small SET takes ten times its wire size, so counting wire bytes alone let
 * a burst of 15 MB of commands hold hundreds of MB in the agent.
 */
function queuedSize(command: { bytes: number; argv: readonly unknown[] }): number {
  return command.bytes + 300 + 100 * command.argv.length;
}

/** Turns a spooled RDB into snapshot events, parsing it from disk as the consumer pulls. */
async function* expandSnapshot(s: SpooledSnapshot): AsyncGenerator<Expanded, void, undefined> {
  try {
    yield {
      event: {
        type: 'snapshot-start',
        replid: s.replid,
        offset: s.offset,
        reason: s.reason,
        detail: s.detail,
        rdbBytes: s.rdbBytes,
        framing: s.framing,
        node: s.node,
      },
    };
    let keys = 0;
    const functions: Buffer[] = [];
    for await (const batch of parseRdbBatches(s.spool.read(), { decodeValues: false })) {
      const records: RdbRawKeyRecord[] = [];
      for (const rec of batch) {
        if (rec.kind === 'key') records.push(rec);
        else if (rec.kind === 'function') functions.push(rec.code);
      }
      if (records.length === 0) continue;
      keys += records.length;
      yield { event: { type: 'snapshot-keys', keys: records } };
    }
    yield {
      event: {
        type: 'snapshot-end',
        replid: s.replid,
        offset: s.offset,
        keys,
        functions,
        rdbBytes: s.rdbBytes,
      },
      after: { replid: s.replid, offset: s.offset, db: s.streamDb },
    };
  } finally {
    await s.spool.discard();
  }
}
