/**
 * One shard's stream of batches in a region: the JetStream stream `GEOREP_OPS_<group>_<region>`
 * on subject `georep.<group>.ops.<region>` for the default shard (`main`), and
 * `GEOREP_OPS_<group>_<region>_<shard>` on `georep.<group>.ops.<region>.<shard>` for any other,
 * with one durable pull consumer per peer region (`peer-<peer>`). A stream per shard keeps order,
 * limits, backlog and loss detection per shard, each as simple as with one shard
 * (docs/replication-internals.md, "Several shards per region").
 *
 * Retention is **interest**: a batch stays until every peer consumer has acked it, then the
 * server drops it. So the stream holds exactly what some peer still needs, and unlinking a
 * peer (deleting its consumer) releases its backlog. Limits (`maxBytes`, `maxAgeMs`) discard the
 * oldest batches; a peer that had not acked them is **lost** ({@link PeerBacklog.lost}) and needs
 * a resync. Consequence of interest retention: a batch published while no peer consumer exists
 * is not kept (no one needs it), so consumers must exist before their peers rely on the stream.
 *
 * The message id of a batch is `<origin>:<seq>`, so re-publishing the outbox after a crash is
 * dropped by the server within the duplicate window (docs/replication-internals.md).
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { DEFAULT_SHARD } from '@georep/core';
import type { OpBatch } from './ops.js';
import { encodeBatch } from './batch-codec.js';
import { BadBatchError, OpsPublishError, OpsStreamError } from './transport-errors.js';

/**
 * The stream of the batches of `region`'s `shard` in `group`. Group, region and shard names are
 * `[a-z0-9-]`, so `_` separates them without ambiguity. The default shard keeps the name streams
 * had before shards, so that an upgrade finds its stream.
 */
export function opsStreamName(group: string, region: string, shard = DEFAULT_SHARD): string {
  const name = `GEOREP_OPS_${group}_${region}`;
  return shard === DEFAULT_SHARD ? name : `${name}_${shard}`;
}

/**
 * The subject `region`'s `shard` publishes its batches on (next to the group subjects of
 * `@georep/core`); the default shard's is the subject from before shards.
 */
export function opsSubject(group: string, region: string, shard = DEFAULT_SHARD): string {
  const subject = `georep.${group}.ops.${region}`;
  return shard === DEFAULT_SHARD ? subject : `${subject}.${shard}`;
}

/** The durable consumer through which `peer` pulls an origin's stream. */
export function peerConsumerName(peer: string): string {
  return `peer-${peer}`;
}

/**
 * Header of a mark: an empty batch that says "every operation of this stream tagged at or below
 * this tag was published before me" (see {@link OpsStream.publishMark}).
 */
export const MARK_HEADER = 'Georep-Mark';

/** The `Nats-Msg-Id` of a batch: the dedup key of the stream. */
export function opsMsgId(origin: string, seq: number): string {
  return `${origin}:${seq}`;
}

/** Options of {@link OpsStream.ensure}. */
export interface OpsStreamOptions {
  group: string;
  /** The origin region: the one whose batches the stream carries. */
  region: string;
  /** The origin's shard (default {@link DEFAULT_SHARD}). */
  shard?: string;
  /** JetStream cluster to place the stream in (each region's servers form a cluster named after it). */
  placementCluster?: string;
  /** Largest size of the stream; beyond it the oldest batches are discarded. */
  maxBytes: number;
  /** Oldest batch kept, in ms; 0 or absent for no age limit. */
  maxAgeMs?: number;
  /** Window in which a re-published message id is dropped; at most `maxAgeMs` when that is set. */
  duplicateWindowMs: number;
  /** Stream replicas within the placement cluster (default 1). */
  replicas?: number;
}

/** Options of {@link OpsStream.ensurePeerConsumer}. */
export interface PeerConsumerOptions {
  /** Batches delivered but not yet acked before the server pauses delivery (default 64). */
  maxAckPending?: number;
  /** How long a delivered batch may stay unacked before it is redelivered (default 30 s). */
  ackWaitMs?: number;
}

/** Default {@link PeerConsumerOptions}. */
export const PEER_CONSUMER_DEFAULTS = { maxAckPending: 64, ackWaitMs: 30_000 } as const;

/** What {@link OpsStream.publish} stored. */
export interface PublishedBatch {
  /** Stream sequence of the batch (of the first copy, for a duplicate). */
  seq: number;
  /** True when the message id was already in the stream: nothing was added. */
  duplicate: boolean;
}

/** How far behind one peer is on an origin's stream; see {@link OpsStream.backlog}. */
export interface PeerBacklog {
  /** Batches the peer has not acked yet: not yet delivered plus delivered and unacked. */
  pendingMessages: number;
  /**
   * Estimate of the bytes of those batches: the stream's average message size times
   * `pendingMessages` (JetStream does not count bytes per consumer).
   */
  pendingBytes: number;
  /** Age of the oldest batch the peer has not acked, in ms; 0 when nothing is pending. */
  oldestAgeMs: number;
  streamBytes: number;
  /** The stream's `max_bytes` (-1: unlimited). */
  streamLimitBytes: number;
  /**
   * True when batches the peer had not acked were discarded by the limits (the consumer's ack
   * floor is below the stream's first sequence): the peer can no longer catch up from the
   * stream and needs a resync.
   */
  lost: boolean;
}

/** A region's ops stream, as its origin (publish) or as anyone managing peer consumers. */
export class OpsStream {
  readonly group: string;
  readonly region: string;
  readonly shard: string;
  /** {@link opsStreamName}. */
  readonly name: string;
  /** {@link opsSubject}. */
  readonly subject: string;
  readonly #jsm: JetStreamManager;
  readonly #js: JetStreamClient;

  private constructor(jsm: JetStreamManager, group: string, region: string, shard: string) {
    this.#jsm = jsm;
    this.#js = jsm.jetstream();
    this.group = group;
    this.region = region;
    this.shard = shard;
    this.name = opsStreamName(group, region, shard);
    this.subject = opsSubject(group, region, shard);
  }

  /**
   * Creates the stream of `options.region`, or updates its limits, placement and duplicate window
   * when it exists. Storage is file, retention interest, discard old.
   *
   * @throws {OpsStreamError} when JetStream refuses (e.g. no meta leader, or an existing stream
   * with another retention, which cannot be changed in place).
   */
  static async ensure(jsm: JetStreamManager, options: OpsStreamOptions): Promise<OpsStream> {
    const stream = new OpsStream(
      jsm,
      options.group,
      options.region,
      options.shard ?? DEFAULT_SHARD,
    );
    const wanted: Partial<StreamConfig> = {
      subjects: [stream.subject],
      description: `georep batches of region ${options.region}, shard ${stream.shard}, in group ${options.group}`,
      storage: StorageType.File,
      retention: RetentionPolicy.Interest,
      discard: DiscardPolicy.Old,
      max_bytes: options.maxBytes,
      max_age: nanos(options.maxAgeMs ?? 0),
      duplicate_window: nanos(options.duplicateWindowMs),
      num_replicas: options.replicas ?? 1,
      ...(options.placementCluster === undefined
        ? {}
        : { placement: { cluster: options.placementCluster, tags: [] } }),
    };
    const target = { stream: stream.name };
    let existing: StreamInfo | null;
    try {
      existing = await jsm.streams.info(stream.name).catch((err: unknown) => {
        if (apiCode(err) === JetStreamApiCodes.StreamNotFound) return null;
        throw err;
      });
      if (existing === null) {
        await jsm.streams.add({ name: stream.name, ...wanted });
        return stream;
      }
    } catch (err) {
      throw new OpsStreamError('creating the stream', target, { cause: err });
    }
    if (existing.config.retention !== RetentionPolicy.Interest) {
      throw new OpsStreamError('checking the stream', target, {
        hint: `the stream has ${existing.config.retention} retention; delete it (nats stream rm ${stream.name}) and link the peers again`,
      });
    }
    if (differs(existing.config, wanted)) {
      try {
        const { retention: _r, storage: _s, ...mutable } = wanted;
        await jsm.streams.update(stream.name, { ...existing.config, ...mutable });
      } catch (err) {
        throw new OpsStreamError('updating the stream', target, { cause: err });
      }
    }
    return stream;
  }

  /**
   * A handle on an existing stream without asking the server (to manage peer consumers or read
   * backlogs from a region that does not own the stream).
   */
  static attach(
    jsm: JetStreamManager,
    group: string,
    region: string,
    shard = DEFAULT_SHARD,
  ): OpsStream {
    return new OpsStream(jsm, group, region, shard);
  }

  /**
   * Creates `peer`'s durable pull consumer (`peer-<peer>`): explicit acks, delivery of everything
   * the stream holds, bounded unacked batches, redelivery after `ackWaitMs`, never given up
   * (`max_deliver` -1). An existing consumer keeps its position; its ack wait and max ack
   * pending are updated when they differ.
   */
  async ensurePeerConsumer(peer: string, options: PeerConsumerOptions = {}): Promise<void> {
    const name = peerConsumerName(peer);
    const maxAckPending = options.maxAckPending ?? PEER_CONSUMER_DEFAULTS.maxAckPending;
    const ackWait = nanos(options.ackWaitMs ?? PEER_CONSUMER_DEFAULTS.ackWaitMs);
    const target = { stream: this.name, consumer: name };
    try {
      const existing = await this.#consumerInfo(name);
      if (existing === null) {
        const config: Partial<ConsumerConfig> = {
          durable_name: name,
          description: `georep: region ${peer} pulls the batches of ${this.region}, shard ${this.shard}`,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          replay_policy: ReplayPolicy.Instant,
          max_ack_pending: maxAckPending,
          ack_wait: ackWait,
          max_deliver: -1,
        };
        await this.#jsm.consumers.add(this.name, config);
      } else if (
        existing.config.max_ack_pending !== maxAckPending ||
        existing.config.ack_wait !== ackWait
      ) {
        await this.#jsm.consumers.update(this.name, name, {
          max_ack_pending: maxAckPending,
          ack_wait: ackWait,
        });
      }
    } catch (err) {
      throw new OpsStreamError('creating the peer consumer', target, { cause: err });
    }
  }

  /**
   * Deletes `peer`'s consumer (unlink or force-unlink). With interest retention the server then
   * drops every batch no remaining peer needs, which frees the stream. Returns false when there
   * was no such consumer.
   */
  async deletePeerConsumer(peer: string): Promise<boolean> {
    const name = peerConsumerName(peer);
    try {
      return await this.#jsm.consumers.delete(this.name, name);
    } catch (err) {
      if (apiCode(err) === JetStreamApiCodes.ConsumerNotFound) return false;
      throw new OpsStreamError(
        'deleting the peer consumer',
        { stream: this.name, consumer: name },
        {
          cause: err,
        },
      );
    }
  }

  /**
   * Stores one encoded batch (`bytes` = `encodeBatch(batch)`) with message id `<origin>:<seq>`.
   * A re-publish within the duplicate window returns `duplicate: true` and the original sequence.
   *
   * @throws {BadBatchError} when the batch is not from this stream's region.
   * @throws {OpsPublishError} when the stream did not acknowledge the message.
   */
  async publish(batch: OpBatch, bytes: Uint8Array, part = 0): Promise<PublishedBatch> {
    if (batch.origin !== this.region) {
      throw new BadBatchError(
        'origin',
        `batch of ${batch.origin} sent to the stream of ${this.region}`,
      );
    }
    try {
      const ack = await this.#js.publish(this.subject, bytes, {
        msgID:
          part === 0
            ? opsMsgId(batch.origin, batch.seq)
            : `${opsMsgId(batch.origin, batch.seq)}.${part}`,
        expect: { streamName: this.name },
      });
      return { seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      throw new OpsPublishError(this.name, batch.seq, { cause: err });
    }
  }

  /**
   * Publishes a mark: an empty batch (sequence 0, no message id) with `tag` in the
   * {@link MARK_HEADER} header. Its publisher guarantees that every operation tagged at or below
   * `tag` was published before it, so a peer that applied the stream up to the mark has applied
   * them all: its watermark for this origin moves on while the origin writes nothing. Peers that
   * predate marks apply an empty batch, which changes nothing.
   *
   * @throws {OpsPublishError} when the stream did not acknowledge the message.
   */
  async publishMark(tag: string): Promise<void> {
    const bytes = encodeBatch({ v: 1, origin: this.region, seq: 0, ops: [] });
    const h = headers();
    h.set(MARK_HEADER, tag);
    try {
      await this.#js.publish(this.subject, bytes, {
        headers: h,
        expect: { streamName: this.name },
      });
    } catch (err) {
      throw new OpsPublishError(this.name, 0, { cause: err });
    }
  }

  /**
   * Publishes a batch in as many messages as it takes to keep each under `maxBytes` (the
   * server's `max_payload`). The split depends only on the batch, so a batch published again
   * from the outbox gets the same message ids and JetStream drops the copies. Each part is a
   * batch of its own with the same `seq`.
   *
   * @throws {OpsPublishError} when one operation alone is larger than `maxBytes`.
   */
  async publishBatch(batch: OpBatch, maxBytes: number): Promise<number> {
    const whole = encodeBatch(batch);
    if (whole.length <= maxBytes) {
      await this.publish(batch, whole);
      return 1;
    }
    const parts: OpBatch[] = [];
    let current: OpBatch['ops'] = [];
    let size = 0;
    // Room for the batch envelope around the operations.
    const budget = maxBytes - 256;
    for (const op of batch.ops) {
      const opSize = encodeBatch({ ...batch, ops: [op] }).length;
      if (opSize > budget) {
        throw new OpsPublishError(this.name, batch.seq, {
          cause: new Error(
            `one operation on a key is ${opSize} bytes, more than the NATS max_payload of ${maxBytes}; raise max_payload (and max_pending) on every NATS server of the group`,
          ),
        });
      }
      if (current.length > 0 && size + opSize > budget) {
        parts.push({ ...batch, ops: current });
        current = [];
        size = 0;
      }
      current.push(op);
      size += opSize;
    }
    if (current.length > 0) parts.push({ ...batch, ops: current });
    for (let i = 0; i < parts.length; i++) await this.publish(parts[i]!, encodeBatch(parts[i]!), i);
    return parts.length;
  }

  /**
   * How far behind `peer` is. `pendingBytes` is an estimate (see {@link PeerBacklog}).
   *
   * @throws {OpsStreamError} when the stream or the consumer cannot be read (or does not exist).
   */
  async backlog(peer: string): Promise<PeerBacklog> {
    const name = peerConsumerName(peer);
    let stream: StreamInfo;
    let consumer: ConsumerInfo;
    try {
      [stream, consumer] = await Promise.all([
        this.#jsm.streams.info(this.name),
        this.#jsm.consumers.info(this.name, name),
      ]);
    } catch (err) {
      throw new OpsStreamError(
        'reading the backlog',
        { stream: this.name, consumer: name },
        {
          cause: err,
        },
      );
    }
    const s = stream.state;
    // The first batch the peer still needs. Under interest retention only limits remove a batch
    // a consumer has not acked, so a first sequence beyond it means batches were discarded.
    const firstNeeded = consumer.ack_floor.stream_seq + 1;
    const lost = firstNeeded < s.first_seq;
    const pendingMessages = consumer.num_pending + consumer.num_ack_pending;
    const pendingBytes =
      s.messages === 0
        ? 0
        : Math.round((s.bytes * Math.min(pendingMessages, s.messages)) / s.messages);
    return {
      pendingMessages,
      pendingBytes,
      oldestAgeMs:
        pendingMessages === 0
          ? 0
          : await this.#ageOf(Math.max(firstNeeded, s.first_seq), s.first_ts),
      streamBytes: s.bytes,
      streamLimitBytes: stream.config.max_bytes,
      lost,
    };
  }

  /** Age of the message at `seq`; the stream's first message time when `seq` is gone. */
  async #ageOf(seq: number, firstTs: string): Promise<number> {
    const msg = await this.#jsm.streams.getMessage(this.name, { seq }).catch(() => null);
    const time = msg?.time.getTime() ?? Date.parse(firstTs);
    return Number.isFinite(time) ? Math.max(0, Date.now() - time) : 0;
  }

  async #consumerInfo(name: string): Promise<ConsumerInfo | null> {
    try {
      return await this.#jsm.consumers.info(this.name, name);
    } catch (err) {
      if (apiCode(err) === JetStreamApiCodes.ConsumerNotFound) return null;
      throw err;
    }
  }
}

/** The JetStream API error code of `err`, if it is one. */
export function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/** JetStream durations are nanoseconds. */
const nanos = (ms: number): number => ms * 1_000_000;

/** True when a field of `wanted` is not what the server has (placement: by cluster only). */
function differs(have: StreamConfig, wanted: Partial<StreamConfig>): boolean {
  return (Object.keys(wanted) as Array<keyof StreamConfig>).some((k) =>
    k === 'placement'
      ? have.placement?.cluster !== wanted.placement?.cluster
      : JSON.stringify(have[k]) !== JSON.stringify(wanted[k]),
  );
}
