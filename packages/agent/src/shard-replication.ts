/**
 * Replication of one shard of this region: its operation stream with a consumer per peer that
 * has the shard, the capture pipeline that follows the shard's primary, and an apply feed per
 * peer into that primary. The {@link ReplicationPlane} decides which peers and whether this
 * region replicates at all; this class brings the shard in line, once a second.
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  DEFAULT_SHARD,
  type AgentConfig,
  type HybridLogicalClock,
  type Logger,
  type NodeSample,
  type ReplicationLink,
  type ShardReplicationStatus,
} from '@georep/core';
import { CapturePipeline, FilePositionStore, OpsStream, type OpBatch } from '@georep/replication';
import { emptyLink, startApplyFeed, type ApplyFeed } from './apply-feed.js';
import { withForecast } from './replication-status.js';

/** NATS's default `max_payload`, when the server did not say. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** How long after a capture failed for good a new one is started. */
const CAPTURE_RETRY_MS = 5000;

/**
 * How often an idle shard publishes a mark, in watermark intervals: often enough that garbage
 * collection is not held back for long (it keeps `gcMinAgeMs` of tombstones anyway), rarely
 * enough that an idle group's document changes seldom.
 */
const MARK_EVERY_WATERMARKS = 4;

/** What a shard needs from the plane. */
export interface ShardContext {
  config: AgentConfig;
  /** The region's clock, shared by every shard's pipeline and appliers. */
  clock: HybridLogicalClock;
  log: Logger;
  /** The shard's legitimate primary when it is up as primary. */
  primary: (shard: string) => NodeSample | undefined;
  /** The region's streams share `replication.streamMaxBytes` among this many shards. */
  shardCount: number;
  /** True when a peer's consumer on `shard` may be deleted (left the group or the shard). */
  gone: (peer: string, shard: string) => boolean;
  /** The gc horizon (outbox batches at or below it are not published again). */
  horizon: () => string;
  /** The server's `max_payload`, when known. */
  maxPayload: () => number | undefined;
  /** True once the whole plane stops. */
  stopped: () => boolean;
}

/** What {@link ShardReplication.reconcile} is told. */
export interface ShardPlan {
  /** This region replicates (linked or unlinking, not fenced, held or standing by). */
  active: boolean;
  /** The replicating peers that have the shard: a consumer and a feed each. */
  peers: string[];
  /** Regions being relinked with --resync that have the shard: a consumer, no feed yet. */
  resyncing: string[];
  /** Why capture stops, for the log, when it is running and `active` is false. */
  inactiveReason: Record<string, unknown>;
}

/** See the module comment. */
export class ShardReplication {
  readonly shard: string;
  readonly #ctx: ShardContext;
  #stream: OpsStream | null = null;
  /** Peers that have a consumer on this shard's stream. */
  readonly #consumers = new Set<string>();
  #capture: CapturePipeline | null = null;
  /** Why the last capture failed for good (shown by status until a new one runs). */
  #captureError: string | null = null;
  #captureFailedAt = 0;
  /** `host:port` of the primary the capture and the appliers were started against. */
  #capturedFrom: string | null = null;
  readonly #feeds = new Map<string, ApplyFeed>();
  readonly #backlogs = new Map<string, ReplicationLink['backlog']>();
  /** Backlog size samples per peer over the last minute (growth forecast). */
  readonly #samples = new Map<string, Array<{ at: number; bytes: number }>>();
  /** When capture last published a mark (an idle stream's watermark). */
  #markedAt = 0;

  constructor(shard: string, ctx: ShardContext) {
    this.shard = shard;
    this.#ctx = ctx;
  }

  /** The running capture, if any (for the produced watermark). */
  get capture(): CapturePipeline | null {
    return this.#capture;
  }

  /** Newest tag of `peer` applied into this shard ('' when none yet). */
  appliedTag(peer: string): string {
    return this.#feeds.get(peer)?.appliedTag() ?? '';
  }

  /** The shard's primary, or its first configured node while none is known. */
  endpoint(): { host: string; port: number } {
    const p = this.#ctx.primary(this.shard);
    if (p !== undefined) return { host: p.host, port: p.port };
    const nodes = this.#ctx.config.redis.nodes;
    const first = nodes.find((n) => (n.shard ?? DEFAULT_SHARD) === this.shard) ?? nodes[0]!;
    return { host: first.host, port: first.port };
  }

  /**
   * Brings the stream, consumers, capture and feeds in line with `plan`. Returns true when it
   * had to create the stream first (the plane then reports `starting`).
   */
  async reconcile(nc: NatsConnection, plan: ShardPlan): Promise<boolean> {
    const { config, log } = this.#ctx;
    const { peers, resyncing } = plan;
    let created = false;
    if (this.#stream === null) {
      if (!plan.active) return false;
      created = true;
      this.#stream = await OpsStream.ensure(await jetstreamManager(nc), {
        group: config.group,
        region: config.region,
        shard: this.shard,
        placementCluster: config.region,
        // The region's budget, shared evenly by its shards' streams.
        maxBytes: Math.max(
          1024 * 1024,
          Math.floor(config.replication.streamMaxBytes / this.#ctx.shardCount),
        ),
        // Longer than any agent restart: the outbox re-published at start must be recognised.
        duplicateWindowMs: 10 * 60_000,
      });
    }
    const stream = this.#stream;
    // Consumers for peers first: with interest retention, a batch published while a peer has
    // no consumer is not kept for it.
    for (const peer of [...peers, ...resyncing]) {
      if (!this.#consumers.has(peer)) {
        await stream.ensurePeerConsumer(peer);
        this.#consumers.add(peer);
      }
    }
    for (const peer of [...this.#consumers]) {
      if (!peers.includes(peer) && !resyncing.includes(peer) && this.#ctx.gone(peer, this.shard)) {
        await stream.deletePeerConsumer(peer);
        this.#consumers.delete(peer);
        this.#backlogs.delete(peer);
        log.warn(
          { peer, shard: this.shard },
          'peer removed from the group or the shard: its backlog is freed',
        );
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
      plan.active &&
      this.#capture === null &&
      Date.now() - this.#captureFailedAt >= CAPTURE_RETRY_MS
    )
      await this.#startCapture(stream);
    if (!plan.active && this.#capture !== null) {
      log.warn(
        { ...plan.inactiveReason, shard: this.shard },
        'this agent stops replicating the region (not linked, fenced, resyncing, or another agent of the region does it)',
      );
      await this.#capture.stop();
      this.#capture = null;
    }
    const capture = this.#capture;
    if (capture !== null) {
      this.#markIfIdle(capture);
      for (const peer of peers) {
        if (this.#feeds.has(peer)) continue;
        this.#feeds.set(
          peer,
          startApplyFeed({
            nc,
            group: config.group,
            region: config.region,
            peer,
            shard: this.shard,
            endpoint: this.endpoint(),
            redis: config.redis,
            clock: this.#ctx.clock,
            capture,
            logger: log,
            stopped: this.#ctx.stopped,
          }),
        );
      }
    }
    for (const peer of this.#consumers) {
      try {
        this.#backlogs.set(peer, withForecast(this.#samples, peer, await stream.backlog(peer)));
      } catch (err) {
        this.#backlogs.set(peer, null);
        log.debug({ peer, err: (err as Error).message }, 'backlog unknown');
      }
    }
    return created;
  }

  /** A mark when no batch went out for a while (see `CapturePipeline.mark`). */
  #markIfIdle(capture: CapturePipeline): void {
    const every = MARK_EVERY_WATERMARKS * this.#ctx.config.replication.watermarkIntervalMs;
    if (Date.now() - this.#markedAt < every) return;
    // A batch moves the watermarks too: a mark is only needed when none went out.
    if (Date.now() - capture.stats.lastBatchAt < every || capture.mark() !== null)
      this.#markedAt = Date.now();
  }

  /**
   * After a switchover or failover, capture and the appliers still talk to the old primary (now
   * a replica: its writes fail with READONLY). Restart them against the new one; capture resumes
   * from its saved position with a partial resync (PSYNC2 keeps the replication id history), and
   * the outbox and per-key metadata were replicated to the new primary with the data.
   */
  async #followPrimary(): Promise<void> {
    const current = this.#ctx.primary(this.shard);
    if (this.#capture === null || current === undefined || !current.up) return;
    const at = `${current.host}:${current.port}`;
    if (at === this.#capturedFrom) return;
    this.#ctx.log.info(
      { shard: this.shard, from: this.#capturedFrom, to: at },
      'primary changed: replication follows',
    );
    await this.stopCaptureAndFeeds();
  }

  /** Stops the appliers (they wait on capture) and then capture; reconcile restarts them. */
  async stopCaptureAndFeeds(): Promise<void> {
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
    this.#ctx.log.error(
      { shard: this.shard, err: failure.message, retryInMs: CAPTURE_RETRY_MS },
      'capture failed; it is started again',
    );
    await this.stopCaptureAndFeeds();
  }

  async #startCapture(stream: OpsStream): Promise<void> {
    const { config, log } = this.#ctx;
    const dataDir = replicationDataDir(config);
    const capture = new CapturePipeline({
      region: config.region,
      node: () => this.endpoint(),
      config: config.redis,
      clock: this.#ctx.clock,
      store: new FilePositionStore(join(dataDir, positionFile(this.shard))),
      spoolDir: dataDir,
      maxBatchOps: config.replication.maxBatchOps,
      replicaAckTimeoutMs: config.replication.replicaAckTimeoutMs,
      appliedEverywhere: this.#ctx.horizon,
      publish: async (batch: OpBatch) => {
        await stream.publishBatch(batch, this.#ctx.maxPayload() ?? DEFAULT_MAX_PAYLOAD);
      },
      publishMark: (tag) => stream.publishMark(tag),
      onWarning: (w) =>
        log.warn(
          { shard: this.shard, command: w.command, reason: w.reason },
          'replication.unsupported',
        ),
    });
    const at = this.endpoint();
    this.#capturedFrom = `${at.host}:${at.port}`;
    await capture.start();
    this.#capture = capture;
    this.#captureError = null;
    log.info({ shard: this.shard }, 'capture started');
  }

  /**
   * Forgets the stream and its consumers, after a resync deleted them (they held the region's
   * writes from before, which are not merged). The next reconcile creates them again.
   */
  forgetStream(): void {
    this.#stream = null;
    this.#consumers.clear();
    this.#backlogs.clear();
    this.#samples.clear();
  }

  status(): ShardReplicationStatus {
    const peers = new Set([...this.#feeds.keys(), ...this.#consumers]);
    const c = this.#capture?.stats;
    return {
      shard: this.shard,
      primary: this.#capture === null ? null : this.#capturedFrom,
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
      links: [...peers].sort().map((peer) => ({
        ...(this.#feeds.get(peer)?.link ?? emptyLink(peer)),
        backlog: this.#backlogs.get(peer) ?? null,
      })),
    };
  }
}

/** Where the agent keeps capture positions (and other replication files). */
export function replicationDataDir(config: AgentConfig): string {
  return config.dataDir ?? join(tmpdir(), 'georep', config.group, config.region);
}

/** Capture's position file of a shard; the default shard keeps the name from before shards. */
export function positionFile(shard: string): string {
  return shard === DEFAULT_SHARD ? 'capture-position.json' : `capture-position-${shard}.json`;
}
