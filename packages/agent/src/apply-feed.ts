/**
 * One peer's writes into one shard of this region: a {@link PeerFeed} pulls the peer's batches of
 * that shard and an {@link Applier} applies them to the shard's primary.
 *
 * The reader pulls batches ahead (bounded); the writer applies everything that has arrived in one
 * transaction, so that under load one WATCH round and one wait for capture cover many batches
 * instead of one. A failed apply is retried in order until it works or the feed is stopped.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import {
  decodeHlc,
  type HybridLogicalClock,
  type Logger,
  type RedisConfig,
  type ReplicationLink,
} from '@georep/core';
import {
  Applier,
  PeerFeed,
  primaryClient,
  type CapturePipeline,
  type FeedBatch,
  type OpBatch,
} from '@georep/replication';

/** Batches pulled ahead of the apply. */
const APPLY_QUEUE_BATCHES = 64;
/**
 * Operations applied in one transaction at most (more than one batch when they queue up). Small,
 * because the transaction WATCHes every key first and Redis 7.0's WATCH costs O(n²) in the keys
 * of one transaction: 4096 keys take 50–100 ms of the primary's time, 512 keys about 1 ms.
 */
const APPLY_MAX_OPS = 512;

/** A running feed; see {@link startApplyFeed}. */
export interface ApplyFeed {
  peer: string;
  /** Counters and the last error, updated as batches are applied. */
  link: ReplicationLink;
  /** Newest tag of the peer applied through this feed ('' before the first). */
  appliedTag(): string;
  /** Stops pulling and applying; queued batches are dropped (unacked, so redelivered later). */
  stop(): Promise<void>;
}

/** What {@link startApplyFeed} needs. */
export interface ApplyFeedOptions {
  nc: NatsConnection;
  group: string;
  /** This region. */
  region: string;
  peer: string;
  shard: string;
  /** The shard's primary. */
  endpoint: { host: string; port: number };
  redis: RedisConfig;
  clock: HybridLogicalClock;
  /** The shard's capture: each apply waits until it has recorded the primary's offset. */
  capture: CapturePipeline;
  logger: Logger;
  /** True once the whole plane stops. */
  stopped: () => boolean;
}

/** Starts pulling and applying; see the module comment. */
export function startApplyFeed(o: ApplyFeedOptions): ApplyFeed {
  const { peer, capture, logger: log } = o;
  const link = emptyLink(peer);
  const client = primaryClient(o.endpoint, o.redis, `georep-apply-${peer}`);
  const applier = new Applier({
    client,
    clock: o.clock,
    awaitRecorded: (offset) => capture.awaitRecorded(offset),
  });
  const feed = new PeerFeed({
    nc: o.nc,
    group: o.group,
    origin: peer,
    shard: o.shard,
    peer: o.region,
    logger: log,
  });
  const queue: FeedBatch[] = [];
  let feedStopped = false;
  const halted = () => feedStopped || o.stopped();
  let wakeWriter: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  let reading = true;
  const reader = (async () => {
    try {
      for await (const item of feed) {
        if (item.type === 'stalled') link.error = item.error.message;
        else if (item.type === 'resumed') link.error = null;
        else if (item.type === 'lost') {
          link.error = `operations ${item.fromSeq}-${item.toSeq} of ${peer} (shard ${o.shard}) were dropped by its stream limit before this region got them; resync this region`;
          log.error(
            { peer, shard: o.shard, from: item.fromSeq, to: item.toSeq },
            'replication.backlog-lost',
          );
        } else if (item.type === 'batch') {
          queue.push(item);
          wakeWriter?.();
          while (queue.length >= APPLY_QUEUE_BATCHES && !o.stopped()) {
            // Timed, so that a stop while the writer is gone cannot leave this waiting.
            await new Promise<void>((r) => {
              wakeReader = r;
              setTimeout(r, 100);
            });
          }
        }
      }
    } finally {
      reading = false;
      wakeWriter?.();
    }
  })();
  const writer = (async () => {
    await client.connect().catch(() => undefined);
    for (;;) {
      if (queue.length === 0) {
        if (!reading || halted()) return;
        await new Promise<void>((r) => (wakeWriter = r));
        continue;
      }
      const take: FeedBatch[] = [];
      let ops = 0;
      while (queue.length > 0 && (take.length === 0 || ops < APPLY_MAX_OPS)) {
        const next = queue.shift()!;
        take.push(next);
        ops += next.batch.ops.length;
      }
      wakeReader?.();
      for (;;) {
        try {
          // Marks (empty batches) only move the watermark on.
          const batches = take.filter((t) => t.batch.ops.length > 0).map((t) => t.batch);
          const r = batches.length === 0 ? { ops: 0 } : await applier.applyMany(batches);
          // Applying again is a no-op, so an ack need not be confirmed (a lost one redelivers).
          for (const t of take) t.ackQuietly();
          if (batches.length > 0) {
            const last = batches[batches.length - 1]!;
            link.appliedBatches += batches.length;
            link.appliedOps += r.ops;
            link.lastAppliedAt = Date.now();
            link.lagMs = lagOf(last);
          }
          for (const t of take) {
            const newest = t.mark ?? newestTag(t.batch);
            if (newest > (link.appliedTag ?? '')) link.appliedTag = newest;
          }
          link.error = null;
          break;
        } catch (err) {
          link.error = (err as Error).message;
          log.warn({ peer, shard: o.shard, err: link.error }, 'apply failed; retrying');
          if (halted()) return;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    }
  })();
  const run = Promise.all([reader, writer])
    .then(() => undefined)
    .finally(() => client.disconnect());
  return {
    peer,
    link,
    appliedTag: () => link.appliedTag ?? '',
    stop: async () => {
      feedStopped = true;
      queue.length = 0;
      wakeWriter?.();
      await feed.stop();
      await run.catch(() => undefined);
    },
  };
}

/** A link before anything was applied or measured. */
export function emptyLink(peer: string): ReplicationLink {
  return {
    peer,
    lagMs: null,
    appliedBatches: 0,
    appliedOps: 0,
    lastAppliedAt: null,
    appliedTag: null,
    backlog: null,
    error: null,
  };
}

/** The newest tag of a batch ('' when empty). */
function newestTag(batch: OpBatch): string {
  let max = '';
  for (const op of batch.ops) if (op.tag > max) max = op.tag;
  return max;
}

/** ms between the newest op of a batch (its HLC wall time) and now. */
function lagOf(batch: OpBatch): number | null {
  const max = newestTag(batch);
  if (max === '') return null;
  return Math.max(0, Date.now() - decodeHlc(max).ms);
}
