/**
 * The receiving end of an origin's ops stream: a region pulls the origin's batches through its
 * own durable consumer (`peer-<this region>`, made by {@link OpsStream.ensurePeerConsumer}).
 *
 * The feed is an async iterable of {@link FeedItem}s. It pulls with bounded `fetch()`es
 * (`batchSize` batches, each fetch waiting at most `expiresMs`), so at most `batchSize` batches are
 * buffered, and the consumer's `max_ack_pending` bounds the unacked ones. It never throws for a
 * network or JetStream problem: an unreachable origin (gateway down, no meta leader, timeouts)
 * or a missing consumer becomes a `stalled` item, and the feed retries with exponential backoff
 * until it works again (`resumed`) or {@link PeerFeed.stop} is called. It ends when stopped,
 * when the loop breaks out of it, or when the NATS connection is closed.
 *
 * Garbage on the subject (a message that {@link decodeBatch} rejects) is **terminated** (`+TERM`:
 * never redelivered, counts as acked for interest retention), logged as a warning and reported
 * as a `rejected` item with its {@link BadBatchError}. Retrying could not help, and leaving it
 * unacked would redeliver it forever and hold the stream. The item carries the message's stream
 * sequence, so the applier can decide to resync.
 *
 * Lost batches: when the stream's limits discarded batches before this peer got them, the feed
 * yields a `lost` item before the next batch (see {@link FeedLost}); {@link OpsStream.backlog}
 * reports the same condition as `lost` while the peer has not passed the gap.
 *
 * Redelivery: a batch neither acked nor naked within the consumer's ack wait is delivered again
 * (`deliveryCount` > 1), possibly after newer batches. apply.lua is idempotent, so applying it
 * twice is harmless.
 */
import {
  JetStreamApiCodes,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeHlc, makeLogger, type Logger } from '@georep/core';
import { decodeBatch } from './batch-codec.js';
import type { OpBatch } from './ops.js';
import { MARK_HEADER, apiCode, opsStreamName, peerConsumerName } from './ops-stream.js';
import {
  BadBatchError,
  OriginUnreachableError,
  PeerConsumerMissingError,
  type OpsStreamTarget,
} from './transport-errors.js';

/** Options of {@link PeerFeed}. */
export interface PeerFeedOptions {
  /** This region's connection (its own nats-server); the origin is reached through gateways. */
  nc: NatsConnection;
  group: string;
  /** The region whose stream is pulled. */
  origin: string;
  /** The origin's shard whose stream is pulled (default {@link DEFAULT_SHARD}). */
  shard?: string;
  /** This region: the feed pulls through consumer `peer-<peer>`. */
  peer: string;
  /** Batches per fetch (default 16). */
  batchSize?: number;
  /** Longest wait of one fetch for batches, in ms (default 5000; the server minimum is 1000). */
  expiresMs?: number;
  /** Backoff between failed attempts: doubles from `initialMs` up to `maxMs` (250 ms → 10 s). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How long {@link FeedBatch.ack} waits for the server's confirmation (default 5000 ms). */
  ackTimeoutMs?: number;
  logger?: Logger;
}

/** One batch of the origin. Ack it once applied; nak it to have it redelivered. */
export interface FeedBatch {
  type: 'batch';
  batch: OpBatch;
  /** Sequence of the message in the origin's stream. */
  streamSeq: number;
  /** 1 on first delivery, more on redeliveries. */
  deliveryCount: number;
  /** Batches of the stream not yet delivered to this consumer, as of this delivery. */
  pending: number;
  /**
   * For a mark (an empty batch, see `OpsStream.publishMark`): every operation of the origin's
   * stream tagged at or below it came before it.
   */
  mark?: string;
  /**
   * Acks the batch and waits for the server's confirmation. True when confirmed; false when it
   * could not be confirmed (then the batch may be delivered again, which apply tolerates).
   */
  ack(): Promise<boolean>;
  /**
   * Acks the batch without waiting for a confirmation: no request and no reply per batch. A lost
   * ack means one redelivery after the ack wait, which an idempotent apply tolerates.
   */
  ackQuietly(): void;
  /** Asks for redelivery after `delayMs` (default: at once). */
  nak(delayMs?: number): void;
  /** Tells the server the batch is still being worked on: restarts its ack wait. */
  working(): void;
}

/** A message that is not a batch; it was already terminated (see the module comment). */
export interface FeedRejected {
  type: 'rejected';
  error: BadBatchError;
  streamSeq: number;
}

/** Pulling failed; the feed retries by itself after `retryInMs`. */
export interface FeedStalled {
  type: 'stalled';
  error: OriginUnreachableError | PeerConsumerMissingError;
  /** Consecutive failures so far (1 for the first). */
  attempt: number;
  retryInMs: number;
}

/**
 * Batches `fromSeq`..`toSeq` of the stream were discarded by its limits before this peer got
 * them: this region can no longer catch up from the stream and needs a resync. Yielded before
 * the first batch after the gap; the feed goes on, the caller decides.
 */
export interface FeedLost {
  type: 'lost';
  fromSeq: number;
  toSeq: number;
}

/** The feed works again after one or more `stalled` items. */
export interface FeedResumed {
  type: 'resumed';
}

/** What a {@link PeerFeed} yields. */
export type FeedItem = FeedBatch | FeedRejected | FeedLost | FeedStalled | FeedResumed;

const STOPPED = Symbol('stopped');

/** Pulls one origin's batches as one peer; see the module comment. */
export class PeerFeed implements AsyncIterable<FeedItem> {
  readonly origin: string;
  readonly peer: string;
  readonly #o: PeerFeedOptions;
  readonly #target: OpsStreamTarget;
  readonly #log: Logger;
  #consumer: Consumer | undefined;
  #messages: ConsumerMessages | undefined;
  #stopped = false;
  /** Highest stream sequence delivered to this consumer so far (gap detection). */
  #lastSeq = 0;
  #iterating = false;
  /** Wakes the waits of the loop (see #race) when stop() is called. */
  readonly #wakers = new Set<() => void>();

  constructor(options: PeerFeedOptions) {
    this.#o = options;
    this.origin = options.origin;
    this.peer = options.peer;
    this.#target = {
      stream: opsStreamName(options.group, options.origin, options.shard),
      consumer: peerConsumerName(options.peer),
    };
    this.#log = (options.logger ?? makeLogger('replication.transport')).child({
      origin: options.origin,
      stream: this.#target.stream,
    });
  }

  /** True once {@link stop} was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Ends the feed promptly: the current fetch and any backoff wait are cancelled and the
   * iteration ends at its next step. Fetched batches not yet handed out are redelivered after
   * the ack wait. Does not wait for the loop (which may be busy with a batch of its own).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const wake of this.#wakers) wake();
    // Not awaited: the fetch finishes closing only when the loop takes its next step.
    void this.#messages?.close();
  }

  /** The feed can be iterated once. Breaking out of the loop stops it. */
  [Symbol.asyncIterator](): AsyncIterator<FeedItem> {
    if (this.#iterating) throw new Error('a PeerFeed can be iterated only once');
    this.#iterating = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<FeedItem, void, undefined> {
    let failures = 0;
    try {
      while (!this.#stopped && !this.#o.nc.isClosed()) {
        try {
          const consumer = this.#consumer ?? (await this.#race(this.#getConsumer()));
          if (consumer === STOPPED) return;
          const messages = await consumer.fetch({
            max_messages: this.#o.batchSize ?? 16,
            expires: Math.max(1000, this.#o.expiresMs ?? 5000),
          });
          this.#messages = messages;
          if (this.#stopped) {
            void messages.close();
            return;
          }
          for await (const m of messages) {
            // close() lets buffered messages through first; they are redelivered later.
            if (this.#stopped) break;
            if (failures > 0) {
              failures = 0;
              yield { type: 'resumed' };
            }
            const lost = await this.#checkGap(m.info.streamSequence);
            if (lost !== undefined) yield lost;
            yield this.#item(m);
          }
          if (failures > 0 && !this.#stopped) {
            failures = 0;
            yield { type: 'resumed' };
          }
        } catch (err) {
          if (this.#stopped || this.#o.nc.isClosed()) return;
          failures++;
          // Look the consumer up again next time: that tells "missing" from "unreachable".
          this.#consumer = undefined;
          const retryInMs = this.#backoff(failures);
          const error = this.#classify(err);
          this.#log.warn(
            { code: error.code, attempt: failures, retryInMs, cause: String(err) },
            `cannot pull from ${this.origin}; retrying`,
          );
          yield { type: 'stalled', error, attempt: failures, retryInMs };
          await this.#race(sleep(retryInMs));
        } finally {
          this.#messages = undefined;
        }
      }
    } finally {
      this.#stopped = true;
    }
  }

  #item(m: JsMsg): FeedBatch | FeedRejected {
    const streamSeq = m.info.streamSequence;
    let batch: OpBatch;
    try {
      batch = decodeBatch(m.data);
    } catch (err) {
      const error =
        err instanceof BadBatchError
          ? err
          : new BadBatchError('', String(err), { cause: err, details: { streamSeq } });
      // No reason text: servers before 2.11 ignore a `+TERM` that carries one.
      m.term();
      this.#log.warn(
        {
          code: error.code,
          streamSeq,
          path: error.path,
          reason: error.reason,
          bytes: m.data.length,
        },
        'terminated a message that is not a batch',
      );
      return { type: 'rejected', error, streamSeq };
    }
    const ackTimeout = this.#o.ackTimeoutMs ?? 5000;
    const mark = batch.ops.length === 0 ? markOf(m) : undefined;
    return {
      type: 'batch',
      batch,
      ...(mark === undefined ? {} : { mark }),
      streamSeq,
      deliveryCount: m.info.deliveryCount,
      pending: m.info.pending,
      ack: () => m.ackAck({ timeout: ackTimeout }).catch(() => false),
      ackQuietly: () => m.ack(),
      nak: (delayMs?: number) => m.nak(delayMs),
      working: () => m.working(),
    };
  }

  async #getConsumer(): Promise<Consumer> {
    if (this.#consumer === undefined) {
      const consumer = await jetstream(this.#o.nc).consumers.get(
        this.#target.stream,
        this.#target.consumer,
      );
      // What the server already delivered (to an earlier feed too) is no gap.
      const delivered = (await consumer.info(true)).delivered.stream_seq;
      this.#lastSeq = Math.max(this.#lastSeq, delivered);
      this.#consumer = consumer;
    }
    return this.#consumer;
  }

  /**
   * A `lost` item when batches between the last one delivered and `streamSeq` are gone from
   * the stream. The consumer takes every message of the stream in order, so a jump means either
   * that the limits discarded batches (lost) or that a delivery never reached this client (it
   * comes again after the ack wait). The stream's first sequence tells the two apart.
   */
  async #checkGap(streamSeq: number): Promise<FeedLost | undefined> {
    const expected = this.#lastSeq + 1;
    this.#lastSeq = Math.max(this.#lastSeq, streamSeq);
    if (streamSeq <= expected) return undefined;
    const info = await this.#race(
      jetstreamManager(this.#o.nc, { checkAPI: false }).then((jsm) =>
        jsm.streams.info(this.#target.stream),
      ),
    ).catch((err: unknown) => {
      this.#log.warn({ cause: String(err), expected, streamSeq }, 'cannot check a sequence gap');
      return undefined;
    });
    if (info === undefined || info === STOPPED || info.state.first_seq <= expected)
      return undefined;
    const lost: FeedLost = {
      type: 'lost',
      fromSeq: expected,
      toSeq: Math.min(streamSeq, info.state.first_seq) - 1,
    };
    this.#log.warn(
      { fromSeq: lost.fromSeq, toSeq: lost.toSeq },
      `batches of ${this.origin} were discarded before this region got them; it needs a resync`,
    );
    return lost;
  }

  #classify(err: unknown): OriginUnreachableError | PeerConsumerMissingError {
    const code = apiCode(err);
    if (code === JetStreamApiCodes.ConsumerNotFound || code === JetStreamApiCodes.StreamNotFound) {
      return new PeerConsumerMissingError(this.#target, { cause: err });
    }
    return new OriginUnreachableError(this.#target, this.origin, { cause: err });
  }

  #backoff(attempt: number): number {
    const initial = this.#o.backoff?.initialMs ?? 250;
    const max = this.#o.backoff?.maxMs ?? 10_000;
    const base = Math.min(max, initial * 2 ** Math.min(attempt - 1, 20));
    // Jitter, so peers cut off together do not retry in lockstep.
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  /**
   * `p`, or STOPPED as soon as stop() is called. Each wait registers its own waker and removes
   * it when settled, so a feed running for weeks does not accumulate handlers.
   */
  async #race<T>(p: Promise<T>): Promise<T | typeof STOPPED> {
    p.catch(() => undefined);
    if (this.#stopped) return STOPPED;
    let wake = (): void => undefined;
    const stopped = new Promise<typeof STOPPED>((resolve) => {
      wake = () => resolve(STOPPED);
    });
    this.#wakers.add(wake);
    try {
      return await Promise.race([p, stopped]);
    } finally {
      this.#wakers.delete(wake);
    }
  }
}

/** Waits `ms`; the timer does not keep the process alive. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The mark a message carries, when it is a well-formed tag. */
function markOf(m: JsMsg): string | undefined {
  const tag = m.headers?.get(MARK_HEADER) ?? '';
  if (tag === '') return undefined;
  try {
    decodeHlc(tag);
    return tag;
  } catch {
    return undefined;
  }
}
