/**
 * The producing half of replication in one region: capture → translate → record → publish.
 *
 * Batches are recorded and published one at a time, in stream order. A batch is recorded by
 * record.lua, which updates metadata and stores the batch in the outbox in one atomic step.
 * The batch is then published with its sequence number as the JetStream message id. Only after
 * that may capture's saved position move past its commands (see {@link GatedPositionStore}). At
 * start the outbox is published again: JetStream drops it if it already has it. Then the
 * commands up to the outbox's offset are skipped, because they were already recorded. A crash
 * anywhere therefore neither loses a write nor records one twice.
 *
 * {@link awaitRecorded} is the other half of the capture/apply race protocol (see
 * docs/replication-internals.md): the applier waits on it before it EXECs.
 */
import { Redis } from 'ioredis';
import { nodeClientOptions, parseInfo } from '@georep/redis';
import {
  encodeHlc,
  makeLogger,
  type HybridLogicalClock,
  type Logger,
  type RedisConfig,
} from '@georep/core';
import { CaptureStream } from './capture.js';
import type { CaptureEndpoint } from './capture-errors.js';
import type { CaptureEvent } from './capture-events.js';
import { POSITION_KEY, type Instruction, type OpBatch } from './ops.js';
import { isPosition, type Position, type PositionStore } from './position-store.js';
import { readOutboxes, recordBatch } from './record-script.js';
import { isGeorepKey, Translator, type TranslateWarning } from './translate.js';
import { SnapshotKeys, findGapDeletes } from './full-sync-gap.js';

/** Tries of the search for a full sync's gap deletes before it is given up. */
const GAP_SEARCH_ATTEMPTS = 3;

/**
 * Wraps a {@link PositionStore} so that capture's saves only reach it for positions whose
 * commands are recorded: capture saves what the consumer has *pulled*, which runs ahead.
 */
export class GatedPositionStore implements PositionStore {
  readonly #inner: PositionStore;
  readonly #persistIntervalMs: number;
  #candidates: Position[] = [];
  /** Bumped by a full resync: commits of batches from before it are ignored. */
  #history = 0;
  /** Committed but not yet handed to the inner store (see {@link commit}). */
  #unsaved: Position | undefined;
  #persistedAt = 0;
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param persistIntervalMs commits reach `inner` at most this often (default 100 ms, as capture
   *   saves its own position); a later commit replaces a waiting one.
   */
  readonly #onPersist: ((position: Position) => void) | undefined;

  /**
   * @param onPersist called with each position handed to `inner` (capture mirrors it into Redis).
   */
  constructor(
    inner: PositionStore,
    persistIntervalMs = 100,
    onPersist?: (position: Position) => void,
  ) {
    this.#inner = inner;
    this.#persistIntervalMs = persistIntervalMs;
    this.#onPersist = onPersist;
  }

  /** Saves `position` as the starting point when the store has none (see {@link POSITION_KEY}). */
  restore(position: Position): void {
    this.#inner.save(position);
  }

  load(): Position | null {
    return this.#inner.load();
  }

  save(position: Position): void {
    this.#candidates.push({ ...position });
    if (this.#candidates.length > 1024) this.#candidates.splice(0, 512);
  }

  /** The history that positions saved from now on belong to. */
  get history(): number {
    return this.#history;
  }

  /**
   * A full resync began: offsets start over under a new replication id, so the saved candidates
   * and any commit of an older batch no longer compare with what comes.
   */
  newHistory(): void {
    this.flush();
    this.#history++;
    this.#candidates = [];
  }

  /** Persists the newest saved position at or before `offset`, for batches of `history`. */
  commit(offset: number, history = this.#history): void {
    if (history !== this.#history) return;
    let chosen: Position | undefined;
    let keep = 0;
    for (let i = 0; i < this.#candidates.length; i++) {
      const c = this.#candidates[i]!;
      if (c.offset <= offset) {
        chosen = c;
        keep = i + 1;
      }
    }
    if (chosen === undefined) return;
    this.#candidates = this.#candidates.slice(keep);
    // A receiving region's capture commits after every apply it reads, hundreds of times a second
    // under load; a file write each time would cost more than the capture. A position that lags a
    // little is safe: a restart replays from it and skips what the outbox covers.
    this.#unsaved = chosen;
    const due = this.#persistedAt + this.#persistIntervalMs - Date.now();
    if (due <= 0) this.flush();
    else this.#timer ??= setTimeout(() => this.#flushQuietly(), due).unref();
  }

  /** Hands the last commit to the inner store now (at stop, and before a new history). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const position = this.#unsaved;
    if (position === undefined) return;
    this.#unsaved = undefined;
    this.#persistedAt = Date.now();
    try {
      this.#inner.save(position);
      this.#onPersist?.(position);
    } catch (err) {
      this.#unsaved ??= position;
      throw err;
    }
  }

  /** {@link flush} from a timer: a failed save waits for the next commit or the stop. */
  #flushQuietly(): void {
    try {
      this.flush();
    } catch {
      this.#timer = undefined;
    }
  }
}

/** Options of {@link CapturePipeline}. */
export interface CapturePipelineOptions {
  region: string;
  /** The region's primary, or a function asked on every reconnect (switchovers). */
  node: CaptureEndpoint | (() => CaptureEndpoint);
  config: RedisConfig;
  clock: HybridLogicalClock;
  /** Where capture's position is kept (a FilePositionStore in the agent's data dir). */
  store: PositionStore;
  /** Stores one batch durably; resolves once stored (a duplicate counts as stored). */
  publish: (batch: OpBatch) => Promise<void>;
  /** Largest number of instructions per batch. Default 512. */
  maxBatchOps?: number;
  spoolDir?: string;
  logger?: Logger;
  /**
   * The garbage-collection horizon: every linked region has applied every write tagged at or
   * below it. The outbox left by a previous run is not published again when all its tags are at
   * or below it, because the peers applied it and may have collected the tombstones it would
   * otherwise bring back (JetStream's duplicate window may be over).
   */
  appliedEverywhere?: () => string;
  /**
   * Publishes a mark (`OpsStream.publishMark`) on the stream `publish` writes to; see
   * {@link CapturePipeline.mark}.
   */
  publishMark?: (tag: string) => Promise<void>;
  /** Called for each command that cannot be replicated (SWAPDB, unknown commands). */
  onWarning?: (warning: TranslateWarning) => void;
  /**
   * How long a recorded batch may wait for a replica of the primary to have it before it is
   * published anyway (0: do not wait). See {@link CapturePipeline}'s `#confirmOnReplica`.
   */
  replicaAckTimeoutMs?: number;
}

interface Entry {
  /** The capture history (full resyncs) the command belongs to. */
  history: number;
  instructions: Instruction[];
  /** Stream offset after the command (-1 for snapshot keys). */
  offset: number;
}

/** Counters for status and metrics. */
export interface CaptureStats {
  batches: number;
  ops: number;
  /** Stream offset up to which every command is recorded. */
  recordedOffset: number;
  lastBatchAt: number;
  warnings: number;
  /** Newest tag published (the region's produced watermark); '' before the first batch. */
  lastTag: string;
  /** Failed publish attempts (each is retried until it succeeds). */
  publishFailures: number;
  /** Batches published without a replica confirming them in time (see replicaAckTimeoutMs). */
  unconfirmed: number;
}

/** Capture → translate → record → publish for one region. */
export class CapturePipeline {
  readonly #o: CapturePipelineOptions;
  readonly #log: Logger;
  readonly #gate: GatedPositionStore;
  readonly #translator: Translator;
  #client: Redis | undefined;
  #capture: CaptureStream | undefined;
  #pending: Entry[] = [];
  #seq = 0;
  #skipUntil = -1;
  #mirroredAt = 0;
  /** The full sync in progress: the node it comes from and the keys its snapshot holds. */
  #snapshot: { node: CaptureEndpoint; keys: SnapshotKeys } | null = null;
  #flushing: Promise<void> | undefined;
  /** The publish in flight (true once stored; false when the pipeline stopped first). */
  #inflight: Promise<boolean> | undefined;
  #waiters: Array<{ offset: number; resolve: () => void }> = [];
  #spaceWaiter: (() => void) | undefined;
  #stopped = false;
  #run: Promise<void> | undefined;
  #failure: Error | null = null;
  #poll: NodeJS.Timeout | undefined;
  readonly stats: CaptureStats = {
    batches: 0,
    ops: 0,
    recordedOffset: -1,
    lastBatchAt: 0,
    warnings: 0,
    lastTag: '',
    publishFailures: 0,
    unconfirmed: 0,
  };
  /** `connected_slaves` of the primary and when it was read. */
  #replicas = { count: 0, at: 0 };
  #unconfirmedLoggedAt = 0;

  constructor(options: CapturePipelineOptions) {
    this.#o = options;
    this.#log = options.logger ?? makeLogger('replication.capture');
    this.#gate = new GatedPositionStore(options.store, 100, (p) => this.#mirror(p));
    this.#translator = new Translator(() => encodeHlc(options.clock.tick()));
  }

  /** Publishes the outbox left by a previous run, then starts capturing. */
  async start(): Promise<void> {
    const node = typeof this.#o.node === 'function' ? this.#o.node() : this.#o.node;
    this.#client = primaryClient(node, this.#o.config, 'georep-capture');
    try {
      await this.#client.connect();
      await this.#restorePosition(this.#client);
      await this.#publishOutbox(this.#client);
    } catch (err) {
      // The caller tries again with a new pipeline: do not leave a connection behind.
      this.#client.disconnect();
      throw err;
    }
    this.#capture = CaptureStream.start({
      node: this.#o.node,
      config: this.#o.config,
      store: this.#gate,
      ...(this.#o.spoolDir === undefined ? {} : { spoolDir: this.#o.spoolDir }),
    });
    // Pings and REPLCONF in the stream move capture's position without a command.
    this.#poll = setInterval(() => this.#settle(), 5).unref();
    this.#run = this.#loop();
  }

  /**
   * Without a position of its own (a standby agent taking over, a lost data directory), capture
   * starts from the one mirrored into the primary by the last agent that captured it: a partial
   * resync instead of a full sync, which would send every key again as a new write. Commands
   * between that position and the outbox are skipped as already recorded.
   */
  async #restorePosition(client: Redis): Promise<void> {
    if (this.#gate.load() !== null) return;
    const raw = await client.get(POSITION_KEY);
    if (raw === null) return;
    try {
      const position: unknown = JSON.parse(raw);
      if (!isPosition(position)) return;
      this.#gate.restore(position);
      this.#log.info(
        { replid: position.replid, offset: position.offset },
        'no saved position: resuming from the one mirrored in the primary',
      );
    } catch {
      // Not ours, or damaged: a full sync it is.
    }
  }

  /** Mirrors a persisted position into the primary, at most once a second. */
  #mirror(position: Position): void {
    const now = Date.now();
    if (now - this.#mirroredAt < 1000) return;
    this.#mirroredAt = now;
    void this.#client
      ?.set(POSITION_KEY, JSON.stringify(position))
      .catch((err: unknown) =>
        this.#log.debug({ err: (err as Error).message }, 'position not mirrored'),
      );
  }

  /** Publishes the outbox slots a previous run left, oldest first, and resumes after them. */
  async #publishOutbox(client: Redis): Promise<void> {
    const horizon = this.#o.appliedEverywhere?.() ?? '';
    const entries = await readOutboxes(client);
    for (const entry of entries) {
      const newest = entry.batch.ops.reduce((m, op) => (op.tag > m ? op.tag : m), '');
      if (horizon !== '' && newest <= horizon) {
        this.#log.info({ seq: entry.seq }, 'outbox already applied everywhere; not re-published');
      } else {
        await this.#o.publish(entry.batch);
        this.#log.info({ seq: entry.seq, offset: entry.offset }, 'outbox re-published');
      }
      this.#seq = Math.max(this.#seq, entry.seq);
    }
    // New batches continue above every seq this region can have used before, even when the
    // outbox lost its newest slots: a replica promoted by a failover may not have received them,
    // and reusing their seqs would reuse their message ids, which JetStream drops as duplicates
    // for its duplicate window. A seq is a message id and an apply marker, nothing orders by it,
    // so it may jump: to the clock in µs, which no earlier run can have reached.
    this.#seq = Math.max(this.#seq, Date.now() * 1000);
    // The newest batch's offset: the older slot may belong to a history before a full resync.
    const newest = entries[entries.length - 1];
    if (newest !== undefined) {
      this.#skipUntil = newest.offset;
      this.#gate.commit(newest.offset);
    }
  }

  /** Position capture has reached (what a restart resumes from lags behind this). */
  get position(): Position | null {
    return this.#capture?.position ?? null;
  }

  /**
   * Resolves once every command of the primary's stream up to `offset` has been recorded.
   * The applier calls it with the `master_repl_offset` it read after WATCH.
   */
  awaitRecorded(offset: number): Promise<void> {
    if (this.#recordedThrough() >= offset) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ offset, resolve }));
  }

  /**
   * Why capture ended on its own (a final error such as refused credentials), or null while it
   * runs. Capture does not retry such errors itself; its owner starts a new pipeline later.
   */
  get failure(): Error | null {
    return this.#failure;
  }

  /**
   * When everything captured so far is published (nothing pending, recording or in flight),
   * publishes a mark with a fresh tag of the clock: every operation before it was published, and
   * every later one gets a greater tag. Peers then move their watermark for this stream on while
   * it carries no writes, so an idle region or shard does not hold garbage collection back.
   * Returns the tag, or null when busy (a batch will move the watermarks instead). A mark that
   * fails to publish is simply not sent.
   */
  mark(): string | null {
    const publish = this.#o.publishMark;
    if (
      publish === undefined ||
      this.#stopped ||
      this.#client === undefined ||
      this.#pending.length > 0 ||
      this.#flushing !== undefined ||
      this.#inflight !== undefined
    )
      return null;
    const tag = encodeHlc(this.#o.clock.tick());
    // Taken as the publish in flight, so that the next batch is published after it.
    const inflight: Promise<boolean> = publish(tag).then(
      () => true,
      (err: unknown) => {
        this.#log.debug({ err: (err as Error).message }, 'mark not published');
        return true;
      },
    );
    this.#inflight = inflight;
    void inflight.then(() => {
      if (this.#inflight === inflight) this.#inflight = undefined;
    });
    return tag;
  }

  /** Stops capture after the batch in flight; the saved position covers what was published. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#poll);
    this.#spaceWaiter?.();
    await this.#capture?.stop();
    await this.#run?.catch(() => undefined);
    await this.#flushing?.catch(() => undefined);
    try {
      this.#gate.flush();
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'saving the capture position failed');
    }
    this.#client?.disconnect();
  }

  async #loop(): Promise<void> {
    const capture = this.#capture!;
    try {
      for await (const ev of capture) {
        this.#take(ev, ev.type === 'snapshot-end' ? await this.#findGapDeletes() : []);
        if (this.#pending.length > 0) this.#kick();
        // Bounded memory: wait while a lot is pending.
        while (!this.#stopped && this.#pending.length > 16 * this.#maxOps()) {
          await new Promise<void>((resolve) => (this.#spaceWaiter = resolve));
        }
      }
    } catch (err) {
      if (!this.#stopped) {
        this.#failure = err as Error;
        this.#log.error({ err: (err as Error).message }, 'capture stopped');
      }
      throw err;
    }
  }

  /**
   * The keys deleted while capture could not follow, read from the node of the full sync on a
   * connection of its own (the search moves between databases). A search that keeps failing is
   * given up with an error in the log rather than failing capture, whose restart would be another
   * full sync: those keys then stay in the peers until written or deleted again.
   */
  async #findGapDeletes(): Promise<Array<{ db: number; key: Buffer }>> {
    if (this.#snapshot === null) return [];
    const { node, keys } = this.#snapshot;
    for (let attempt = 1; ; attempt++) {
      const client = primaryClient(node, this.#o.config, 'georep-capture-gap');
      try {
        await client.connect();
        return await findGapDeletes(client, keys, () => this.#stopped);
      } catch (err) {
        if (attempt >= GAP_SEARCH_ATTEMPTS || this.#stopped) {
          this.#log.error(
            { err: (err as Error).message, node: `${node.host}:${node.port}` },
            'full sync: the search for keys deleted in the gap failed; such keys stay in the peers (the user needs +scan)',
          );
          return [];
        }
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        client.disconnect();
      }
    }
  }

  /** `gapDeletes`: with `snapshot-end`, the keys {@link #findGapDeletes} found. */
  #take(ev: CaptureEvent, gapDeletes: Array<{ db: number; key: Buffer }>): void {
    switch (ev.type) {
      case 'command': {
        const t = this.#translator.feed(ev.db, ev.argv);
        if (t.warning !== undefined) {
          this.stats.warnings++;
          this.#o.onWarning?.(t.warning);
        }
        const skip = ev.offset <= this.#skipUntil;
        const instructions = skip ? [] : t.instructions;
        const last = this.#pending[this.#pending.length - 1];
        // Commands without instructions (above all the effects of this region's own applies,
        // which capture reads too) only move the offset: one entry holds a run of them.
        if (
          instructions.length === 0 &&
          last !== undefined &&
          last.instructions.length === 0 &&
          last.history === this.#gate.history &&
          last.offset >= 0
        ) {
          last.offset = ev.offset;
          return;
        }
        this.#pending.push({ history: this.#gate.history, instructions, offset: ev.offset });
        return;
      }
      case 'snapshot-start':
        // A full resync: the dataset is the snapshot; every key in it is a write. Offsets start
        // over under a new history: nothing from the old one may be skipped, committed or count
        // as recorded for the new one.
        this.#skipUntil = -1;
        this.#translator.reset();
        this.#gate.newHistory();
        this.stats.recordedOffset = -1;
        this.#snapshot = { node: ev.node, keys: new SnapshotKeys() };
        this.#log.info({ reason: ev.reason, detail: ev.detail }, 'full sync of the primary');
        return;
      case 'snapshot-keys': {
        const tick = () => encodeHlc(this.#o.clock.tick());
        const instructions: Instruction[] = [];
        for (const k of ev.keys) {
          if (!isGeorepKey(k.key)) {
            this.#snapshot?.keys.add(k.db, k.key);
            instructions.push({ kind: 'value', db: k.db, key: k.key, tag: tick() });
          }
        }
        this.#pending.push({ history: this.#gate.history, instructions, offset: -1 });
        return;
      }
      case 'snapshot-end': {
        // Keys deleted while capture could not follow: a value instruction of a missing key
        // records a delete.
        this.#snapshot = null;
        if (gapDeletes.length > 0) {
          this.#log.info({ keys: gapDeletes.length }, 'full sync: deletes of keys gone in the gap');
          const tick = () => encodeHlc(this.#o.clock.tick());
          this.#pending.push({
            history: this.#gate.history,
            instructions: gapDeletes.map((k) => ({
              kind: 'value',
              db: k.db,
              key: k.key,
              tag: tick(),
            })),
            offset: -1,
          });
        }
        this.#pending.push({ history: this.#gate.history, instructions: [], offset: ev.offset });
        return;
      }
      case 'resumed':
        this.#log.info({ offset: ev.offset, replid: ev.replid }, 'capture resumed');
        return;
      case 'disconnected':
        this.#log.warn(
          { err: ev.error.message, retryInMs: ev.retryInMs },
          'capture link down; retrying',
        );
        return;
    }
  }

  #maxOps(): number {
    return this.#o.maxBatchOps ?? 512;
  }

  /** Starts the flusher unless it runs. */
  #kick(): void {
    if (this.#flushing !== undefined || this.#stopped) return;
    let failed = false;
    this.#flushing = this.#flushAll()
      .catch((err: unknown) => {
        failed = true;
        const cause = (err as Error).cause;
        this.#log.error(
          {
            err: (err as Error).message,
            ...(cause instanceof Error ? { cause: cause.message } : {}),
          },
          'recording or publishing failed; retrying',
        );
      })
      .finally(() => {
        this.#flushing = undefined;
        this.#settle();
        if (this.#pending.length === 0 || this.#stopped) return;
        // Retry after a pause when the last round failed; at once otherwise (events that
        // arrived while the last round finished).
        if (failed) setTimeout(() => this.#kick(), 200).unref();
        else this.#kick();
      });
  }

  /**
   * Records batches one after the other and publishes each in the background: batch n+1 is
   * recorded while batch n is being published (the outbox has two slots). Publishes stay in
   * order: n+1 starts after n is stored. Capture's saved position moves only behind publishes.
   */
  async #flushAll(): Promise<void> {
    while (this.#pending.length > 0 && !this.#stopped) {
      // One splice, not a shift per entry: thousands of entries wait under load.
      const pending = this.#pending;
      let n = 0;
      let count = 0;
      while (n < pending.length) {
        const next = pending[n]!;
        if (n > 0 && count + next.instructions.length > this.#maxOps()) break;
        if (n > 0 && next.history !== pending[0]!.history) break;
        count += next.instructions.length;
        n++;
      }
      const take = pending.splice(0, n);
      const instructions = take.flatMap((e) => e.instructions);
      const last = take.reduce((m, e) => Math.max(m, e.offset), -1);
      const history = take[0]!.history;
      if (instructions.length > 0) {
        const seq = this.#seq + 1;
        let batch: OpBatch;
        try {
          batch = await recordBatch(this.#client!, {
            instructions,
            seq,
            origin: this.#o.region,
            // Snapshot keys have no stream offset of their own.
            offset: Math.max(last, 0),
          });
        } catch (err) {
          this.#pending.unshift(...take);
          throw err;
        }
        this.#seq = seq;
        await this.#confirmOnReplica();
        // The previous batch must be stored first: later batches must not overtake it (peers
        // apply in stream order), and the next record reuses its outbox slot. When the agent
        // stops meanwhile, the outbox has both and the next start publishes them.
        if (this.#inflight !== undefined && !(await this.#inflight)) return;
        this.#inflight = this.#publishAndCommit(batch, last, history);
      } else if (last >= 0) {
        const before = this.#inflight;
        this.#inflight =
          before === undefined
            ? Promise.resolve(this.#commit(last, history))
            : before.then((ok) => ok && this.#commit(last, history));
      }
      // The race protocol needs the metadata, which is written: the applier may go on.
      if (last >= 0 && history === this.#gate.history) {
        this.stats.recordedOffset = Math.max(this.stats.recordedOffset, last);
      }
      this.#spaceWaiter?.();
      this.#settle();
    }
    const inflight = this.#inflight;
    if (inflight !== undefined) {
      await inflight;
      if (this.#inflight === inflight) this.#inflight = undefined;
    }
  }

  /**
   * Waits until a replica of the primary has the batch just recorded (and so every write before
   * it), bounded by `replicaAckTimeoutMs`. Then an automatic failover, which promotes the replica
   * with the most data, never loses a write that other regions already applied. `WAIT` counts
   * from the last write of the connection it is sent on, so it goes on the recording connection;
   * this agent's own capture is a replica too, so one real replica means two. A primary without
   * replicas, or one that does not answer in time, does not hold the region's writes back.
   */
  async #confirmOnReplica(): Promise<void> {
    const timeoutMs = this.#o.replicaAckTimeoutMs ?? 0;
    const client = this.#client;
    if (timeoutMs <= 0 || client === undefined) return;
    try {
      if (Date.now() - this.#replicas.at > 1000) {
        const info = parseInfo(await client.info('replication')).replication ?? {};
        this.#replicas = { count: Number(info.connected_slaves ?? 0), at: Date.now() };
      }
      if (this.#replicas.count < 2) return;
      const acked = Number(await client.call('WAIT', '2', String(timeoutMs)));
      if (acked >= 2) return;
    } catch {
      // Unconfirmed, like a timeout: replication to other regions goes on.
    }
    this.stats.unconfirmed++;
    if (Date.now() - this.#unconfirmedLoggedAt > 60_000) {
      this.#unconfirmedLoggedAt = Date.now();
      this.#log.warn(
        { timeoutMs, unconfirmed: this.stats.unconfirmed },
        'no replica confirmed a recorded batch in time; published anyway (a failover now could lose it here while other regions have it)',
      );
    }
  }

  async #publishAndCommit(batch: OpBatch, last: number, history: number): Promise<boolean> {
    if (!(await this.#publishUntilDone(batch))) return false;
    this.stats.batches++;
    this.stats.ops += batch.ops.length;
    this.stats.lastBatchAt = Date.now();
    for (const op of batch.ops) if (op.tag > this.stats.lastTag) this.stats.lastTag = op.tag;
    return this.#commit(last, history);
  }

  /** Lets capture's saved position move up to `last` (its commands are published). */
  #commit(last: number, history: number): boolean {
    if (last >= 0) this.#gate.commit(last, history);
    return true;
  }

  /** Publishes `batch`, retrying with backoff; false when the pipeline stopped first. */
  async #publishUntilDone(batch: OpBatch): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#o.publish(batch);
        if (attempt > 0)
          this.#log.info({ seq: batch.seq, attempt }, 'batch published after retries');
        return true;
      } catch (err) {
        if (this.#stopped) return false;
        const cause = (err as Error).cause;
        this.stats.publishFailures++;
        if (attempt % 10 === 0) {
          this.#log.warn(
            {
              seq: batch.seq,
              attempt,
              err: (err as Error).message,
              ...(cause instanceof Error ? { cause: cause.message } : {}),
            },
            'publishing a recorded batch failed; retrying',
          );
        }
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** Math.min(attempt, 5), 2000)));
      }
    }
  }

  /** Everything up to this offset is recorded. */
  #recordedThrough(): number {
    if (this.#pending.length > 0 || this.#flushing !== undefined) return this.stats.recordedOffset;
    // Nothing pending: everything capture handed over (its processed position) is recorded.
    return Math.max(this.stats.recordedOffset, this.#capture?.position?.offset ?? -1);
  }

  #settle(): void {
    if (this.#waiters.length === 0) return;
    const through = this.#recordedThrough();
    const ready = this.#waiters.filter((w) => w.offset <= through);
    if (ready.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => w.offset > through);
    for (const w of ready) w.resolve();
  }
}

/** A command client for the region's primary, with its credentials and TLS. */
export function primaryClient(
  node: CaptureEndpoint,
  config: RedisConfig,
  connectionName: string,
): Redis {
  return new Redis({
    ...nodeClientOptions({ id: `${node.host}:${node.port}`, ...node }, config, {
      connectionName,
      lazyConnect: true,
    }),
    // Record and apply scripts over large batches can take longer than a health probe.
    commandTimeout: Math.max(config.commandTimeoutMs, 30_000),
  });
}
