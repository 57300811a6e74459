/**
 * The data plane in the agent: active-active replication of this region with its linked peers.
 *
 * - This region's writes: {@link CapturePipeline} follows the primary, records each batch
 *   (metadata and outbox, atomically) and publishes it on this region's operation stream. The
 *   stream is placed in this region, with one durable consumer per linked peer.
 * - The peers' writes: one feed per linked peer pulls from that peer's stream, as this region's
 *   consumer, and an {@link Applier} applies each batch to the primary.
 *
 * Membership comes from the group document and is reconciled every second: a peer that becomes
 * linked gets a consumer and a feed; a force-unlinked peer's consumer is deleted, which frees the
 * backlog it held; a fenced or unlinked self stops capture and apply.
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  HybridLogicalClock,
  decodeHlc,
  encodeHlc,
  makeLogger,
  type AgentConfig,
  type Logger,
  type NodeSample,
  type ReplicationLink,
  type ReplicationStatus,
} from '@georep/core';
import {
  Applier,
  CapturePipeline,
  collectGarbage,
  FilePositionStore,
  OpsStream,
  PeerFeed,
  primaryClient,
  type OpBatch,
  type FeedBatch,
  type PeerBacklog,
} from '@georep/replication';
import { parseInfo } from '@georep/redis';
import type { GroupPlane } from './group-plane.js';

interface Feed {
  peer: string;
  feed: PeerFeed;
  run: Promise<void>;
  link: ReplicationLink;
  /** Stops pulling and applying; queued batches are dropped (unacked, so redelivered later). */
  stop: () => Promise<void>;
}

/** Batches pulled ahead of the apply, per peer. */
const APPLY_QUEUE_BATCHES = 64;
/**
 * Operations applied in one transaction at most (more than one batch when they queue up). Small,
 * because the transaction WATCHes every key first and Redis 7.0's WATCH costs O(n²) in the keys
 * of one transaction: 4096 keys take 50–100 ms of the primary's time, 512 keys about 1 ms.
 */
const APPLY_MAX_OPS = 512;

/** NATS's default `max_payload`, when the server did not say. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** How long after a capture failed for good a new one is started. */
const CAPTURE_RETRY_MS = 5000;

/** See the module comment. */
export class ReplicationPlane {
  readonly #config: AgentConfig;
  readonly #group: GroupPlane;
  readonly #primary: () => NodeSample | undefined;
  readonly #log: Logger;
  readonly #clock: HybridLogicalClock;
  #nc: NatsConnection | null = null;
  #stream: OpsStream | null = null;
  #capture: CapturePipeline | null = null;
  /** Why the last capture failed for good (shown by status until a new one runs). */
  #captureError: string | null = null;
  #captureFailedAt = 0;
  /** `host:port` of the primary the capture and the appliers were started against. */
  #capturedFrom: string | null = null;
  readonly #feeds = new Map<string, Feed>();
  readonly #consumers = new Set<string>();
  #state: ReplicationStatus['state'] = 'off';
  #reconciling = false;
  #stopped = false;
  #backlogs = new Map<string, ReplicationLink['backlog']>();
  /** Newest tag applied per peer. */
  readonly #applied = new Map<string, string>();
  #watermarksAt = 0;
  #gc: Promise<void> | null = null;
  #gcAt = 0;
  #gcStats: { at: number; horizon: string; metaDeleted: number; fieldsDeleted: number } | null =
    null;
  readonly #samples = new Map<string, Array<{ at: number; bytes: number }>>();

  constructor(config: AgentConfig, group: GroupPlane, primary: () => NodeSample | undefined) {
    this.#config = config;
    this.#group = group;
    this.#primary = primary;
    this.#log = makeLogger('replication');
    this.#clock = new HybridLogicalClock(config.region);
  }

  attach(nc: NatsConnection): void {
    this.#nc = nc;
  }

  /** Brings consumers, capture and feeds in line with the group document. Called every second. */
  async reconcile(): Promise<void> {
    if (!this.#config.replication.enabled || this.#stopped || this.#reconciling) return;
    const nc = this.#nc;
    if (nc === null) return;
    this.#reconciling = true;
    try {
      const self = this.#config.region;
      const active = this.#group.linkState === 'linked' && !this.#group.fenced;
      const peers = active
        ? this.#group.document
            .regions()
            .filter((r) => r.name !== self && r.linkState === 'linked')
            .map((r) => r.name)
        : [];
      if (this.#stream === null) {
        if (!active) return;
        this.#state = 'starting';
        this.#stream = await OpsStream.ensure(await jetstreamManager(nc), {
          group: this.#config.group,
          region: self,
          placementCluster: self,
          maxBytes: this.#config.replication.streamMaxBytes,
          // Longer than any agent restart: the outbox re-published at start must be recognised.
          duplicateWindowMs: 10 * 60_000,
        });
      }
      const stream = this.#stream;
      // Consumers for peers first: with interest retention, a batch published while a peer has
      // no consumer is not kept for it.
      for (const peer of peers) {
        if (!this.#consumers.has(peer)) {
          await stream.ensurePeerConsumer(peer);
          this.#consumers.add(peer);
        }
      }
      for (const peer of [...this.#consumers]) {
        if (!peers.includes(peer) && this.#gone(peer)) {
          await stream.deletePeerConsumer(peer);
          this.#consumers.delete(peer);
          this.#log.warn({ peer }, 'peer removed from the group: its backlog is freed');
        }
      }
      // Feeds of peers that left go first, and before capture: their applies wait on capture.
      for (const [peer, f] of this.#feeds) {
        if (!peers.includes(peer)) {
          this.#feeds.delete(peer);
          // Not awaited: an apply in progress may take until its wait for capture times out.
          void f.stop();
        }
      }
      await this.#followPrimary();
      await this.#dropFailedCapture();
      if (
        active &&
        this.#capture === null &&
        Date.now() - this.#captureFailedAt >= CAPTURE_RETRY_MS
      )
        await this.#startCapture(stream);
      if (!active && this.#capture !== null) {
        this.#log.warn(
          { linkState: this.#group.linkState },
          'this region is not linked: capture stops',
        );
        await this.#capture.stop();
        this.#capture = null;
      }
      for (const peer of peers) if (!this.#feeds.has(peer)) this.#startFeed(nc, peer);
      for (const peer of this.#consumers) {
        try {
          this.#backlogs.set(peer, this.#withForecast(peer, await stream.backlog(peer)));
        } catch (err) {
          this.#backlogs.set(peer, null);
          this.#log.debug({ peer, err: (err as Error).message }, 'backlog unknown');
        }
      }
      if (this.#capture !== null) this.#state = 'running';
      this.#recordWatermarks();
      if (
        this.#capture !== null &&
        this.#gc === null &&
        Date.now() - this.#gcAt >= this.#config.replication.gcIntervalMs
      ) {
        this.#gcAt = Date.now();
        this.#gc = this.#collectGarbage().finally(() => (this.#gc = null));
      }
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'replication not ready; retrying');
    } finally {
      this.#reconciling = false;
    }
  }

  /**
   * The backlog with its growth over the last minute and when the stream limit is reached at that
   * rate: the warning an operator needs before a down peer's backlog is dropped.
   */
  #withForecast(peer: string, b: PeerBacklog): NonNullable<ReplicationLink['backlog']> {
    const now = Date.now();
    const samples = (this.#samples.get(peer) ?? []).filter((x) => now - x.at <= 60_000);
    samples.push({ at: now, bytes: b.pendingBytes });
    this.#samples.set(peer, samples);
    const first = samples[0]!;
    const spanSec = (now - first.at) / 1000;
    const growth = spanSec >= 5 ? (b.pendingBytes - first.bytes) / spanSec : null;
    const room = b.streamLimitBytes - b.streamBytes;
    return {
      messages: b.pendingMessages,
      bytes: b.pendingBytes,
      oldestAgeMs: b.oldestAgeMs,
      lost: b.lost,
      growthBytesPerSec: growth === null ? null : Math.round(growth),
      fullInSec: growth !== null && growth > 0 ? Math.max(0, Math.round(room / growth)) : null,
      streamLimitBytes: b.streamLimitBytes,
    };
  }

  /**
   * Writes this region's row of watermarks into the group document at a low rate: the newest tag
   * it published, and per peer the newest tag it applied. The document keeps history, so this is
   * a change every `replication.watermarkIntervalMs` at most, and only when a tag moved.
   */
  #recordWatermarks(): void {
    const now = Date.now();
    if (now - this.#watermarksAt < this.#config.replication.watermarkIntervalMs) return;
    this.#watermarksAt = now;
    const row: Record<string, string> = Object.fromEntries(this.#applied);
    const produced = this.#capture?.stats.lastTag ?? '';
    if (produced !== '') row[this.#config.region] = produced;
    if (Object.keys(row).length > 0) this.#group.document.setWatermarks(this.#config.region, row);
  }

  /**
   * Removes tombstones and dead metadata below the horizon, in bounded SCAN steps over every db
   * that has keys. The horizon is held back by `replication.gcMinAgeMs` as well, so that a batch
   * re-published late (an agent down past JetStream's duplicate window) finds its tombstones.
   */
  async #collectGarbage(): Promise<void> {
    const fromDoc = this.#group.document.gcHorizon();
    if (fromDoc === '') return;
    const cap = encodeHlc({
      ms: Date.now() - this.#config.replication.gcMinAgeMs,
      counter: 0,
      region: 'a',
    });
    const horizon = fromDoc < cap ? fromDoc : cap;
    const client = primaryClient(this.#endpoint(), this.#config.redis, 'georep-gc');
    try {
      await client.connect();
      const keyspace = parseInfo(await client.info('keyspace')).keyspace ?? {};
      const dbs = Object.keys(keyspace)
        .map((k) => Number(k.replace(/^db/, '')))
        .filter((n) => Number.isInteger(n));
      let deleted = 0;
      let fields = 0;
      for (const db of dbs) {
        let cursor = '0';
        do {
          if (this.#stopped) return;
          const step = await collectGarbage(client, { horizon, db, cursor, count: 500 });
          cursor = step.cursor;
          deleted += step.metaDeleted;
          fields += step.fieldsDeleted;
          // Bounded work per step; let the primary serve its clients in between.
          await new Promise((r) => setTimeout(r, 10));
        } while (cursor !== '0');
      }
      this.#gcStats = { at: Date.now(), horizon, metaDeleted: deleted, fieldsDeleted: fields };
      if (deleted + fields > 0) {
        this.#log.info({ horizon, metaDeleted: deleted, fieldsDeleted: fields }, 'replication gc');
      }
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'replication gc failed; retried later');
    } finally {
      client.disconnect();
    }
  }

  /** A peer whose consumer may be deleted: unlinked or force-unlinked (not merely linking). */
  #gone(peer: string): boolean {
    const state = this.#group.document.region(peer)?.linkState;
    return state === undefined || state === 'unlinked' || state === 'force-unlinked';
  }

  /**
   * After a switchover or failover, capture and the appliers still talk to the old primary (now
   * a replica: its writes fail with READONLY). Restart them against the new one; capture resumes
   * from its saved position with a partial resync (PSYNC2 keeps the replication id history), and
   * the outbox and per-key metadata were replicated to the new primary with the data.
   */
  async #followPrimary(): Promise<void> {
    const current = this.#primary();
    if (this.#capture === null || current === undefined || !current.up) return;
    const at = `${current.host}:${current.port}`;
    if (at === this.#capturedFrom) return;
    this.#log.info({ from: this.#capturedFrom, to: at }, 'primary changed: replication follows');
    await this.#stopCaptureAndFeeds();
  }

  /** Stops the appliers (they wait on capture) and then capture; reconcile starts them again. */
  async #stopCaptureAndFeeds(): Promise<void> {
    const feeds = [...this.#feeds.values()];
    this.#feeds.clear();
    await Promise.all(feeds.map((f) => f.stop()));
    await this.#capture?.stop();
    this.#capture = null;
  }

  /**
   * Capture ends on its own only for errors it cannot retry (credentials refused, PSYNC
   * refused). The operator may fix them without restarting the agent, so a failed capture is
   * dropped, with its appliers (they wait on it), and started again after CAPTURE_RETRY_MS.
   */
  async #dropFailedCapture(): Promise<void> {
    const failure = this.#capture?.failure;
    if (failure == null) return;
    this.#captureError = failure.message;
    this.#captureFailedAt = Date.now();
    this.#log.error(
      { err: failure.message, retryInMs: CAPTURE_RETRY_MS },
      'capture failed; it is started again',
    );
    await this.#stopCaptureAndFeeds();
  }

  async #startCapture(stream: OpsStream): Promise<void> {
    const capture = new CapturePipeline({
      region: this.#config.region,
      node: () => this.#endpoint(),
      config: this.#config.redis,
      clock: this.#clock,
      store: new FilePositionStore(join(this.#dataDir(), 'capture-position.json')),
      spoolDir: this.#dataDir(),
      maxBatchOps: this.#config.replication.maxBatchOps,
      replicaAckTimeoutMs: this.#config.replication.replicaAckTimeoutMs,
      appliedEverywhere: () => this.#group.document.gcHorizon(),
      publish: async (batch: OpBatch) => {
        await stream.publishBatch(batch, this.#nc?.info?.max_payload ?? DEFAULT_MAX_PAYLOAD);
      },
      onWarning: (w) =>
        this.#log.warn({ command: w.command, reason: w.reason }, 'replication.unsupported'),
    });
    this.#capturedFrom = `${this.#endpoint().host}:${this.#endpoint().port}`;
    await capture.start();
    this.#capture = capture;
    this.#captureError = null;
    this.#log.info({}, 'capture started');
  }

  #startFeed(nc: NatsConnection, peer: string): void {
    const capture = this.#capture;
    if (capture === null) return;
    const link = emptyLink(peer);
    const client = primaryClient(this.#endpoint(), this.#config.redis, `georep-apply-${peer}`);
    const applier = new Applier({
      client,
      clock: this.#clock,
      awaitRecorded: (offset) => capture.awaitRecorded(offset),
    });
    const feed = new PeerFeed({
      nc,
      group: this.#config.group,
      origin: peer,
      peer: this.#config.region,
      logger: this.#log,
    });
    // The reader pulls batches ahead (bounded), the writer applies everything that has arrived
    // in one transaction: under load, one WATCH round and one wait for capture cover many
    // batches instead of one.
    const queue: FeedBatch[] = [];
    let feedStopped = false;
    let wakeWriter: (() => void) | undefined;
    let wakeReader: (() => void) | undefined;
    let reading = true;
    const reader = (async () => {
      try {
        for await (const item of feed) {
          if (item.type === 'stalled') link.error = item.error.message;
          else if (item.type === 'resumed') link.error = null;
          else if (item.type === 'lost') {
            link.error = `operations ${item.fromSeq}-${item.toSeq} of ${peer} were dropped by its stream limit before this region got them; resync this region`;
            this.#log.error(
              { peer, from: item.fromSeq, to: item.toSeq },
              'replication.backlog-lost',
            );
          } else if (item.type === 'batch') {
            queue.push(item);
            wakeWriter?.();
            while (queue.length >= APPLY_QUEUE_BATCHES && !this.#stopped) {
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
          if (!reading || this.#stopped || feedStopped) return;
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
            const r = await applier.applyMany(take.map((t) => t.batch));
            // Applying again is a no-op, so the acks need not hold up the next transaction.
            for (const t of take) void t.ack().catch(() => false);
            const last = take[take.length - 1]!.batch;
            link.appliedBatches += take.length;
            link.appliedOps += r.ops;
            link.lastAppliedAt = Date.now();
            link.lagMs = lagOf(last);
            const newest = newestTag(last);
            if (newest > (this.#applied.get(peer) ?? '')) this.#applied.set(peer, newest);
            link.error = null;
            break;
          } catch (err) {
            link.error = (err as Error).message;
            this.#log.warn({ peer, err: link.error }, 'apply failed; retrying');
            if (this.#stopped || feedStopped) return;
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      }
    })();
    const run = Promise.all([reader, writer])
      .then(() => undefined)
      .finally(() => client.disconnect());
    const stop = async () => {
      feedStopped = true;
      queue.length = 0;
      wakeWriter?.();
      await feed.stop();
      await run.catch(() => undefined);
    };
    this.#feeds.set(peer, { peer, feed, run, link, stop });
  }

  #endpoint(): { host: string; port: number } {
    const p = this.#primary();
    if (p !== undefined) return { host: p.host, port: p.port };
    const first = this.#config.redis.nodes[0]!;
    return { host: first.host, port: first.port };
  }

  #dataDir(): string {
    return (
      this.#config.dataDir ?? join(tmpdir(), 'georep', this.#config.group, this.#config.region)
    );
  }

  status(): ReplicationStatus {
    const links: ReplicationLink[] = [];
    const peers = new Set([...this.#feeds.keys(), ...this.#consumers]);
    for (const peer of [...peers].sort()) {
      const f = this.#feeds.get(peer);
      const base = f?.link ?? emptyLink(peer);
      links.push({
        ...base,
        appliedTag: this.#applied.get(peer) ?? null,
        backlog: this.#backlogs.get(peer) ?? null,
      });
    }
    const c = this.#capture?.stats;
    return {
      enabled: this.#config.replication.enabled,
      state: this.#state,
      capture:
        c === undefined
          ? null
          : {
              batches: c.batches,
              ops: c.ops,
              recordedOffset: c.recordedOffset,
              warnings: c.warnings,
              unconfirmed: c.unconfirmed,
            },
      captureError: this.#captureError,
      links,
      gcHorizon: this.#group.document.gcHorizon() || null,
      lastGc: this.#gcStats,
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#state = 'stopped';
    await Promise.all([...this.#feeds.values()].map((f) => f.stop()));
    this.#feeds.clear();
    await this.#gc?.catch(() => undefined);
    await this.#capture?.stop();
  }
}

/** A link before anything was applied or measured. */
function emptyLink(peer: string): ReplicationLink {
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
