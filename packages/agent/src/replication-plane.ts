/**
 * The data plane in the agent: active-active replication of this region with its linked peers,
 * shard by shard. Shards pair by name across regions: shard `s` of a peer is applied into shard
 * `s` here, and a shard only one side has is reported on the link and not replicated.
 *
 * Per shard:
 * - This region's writes: {@link CapturePipeline} follows the shard's primary, records each batch
 *   (metadata and outbox, atomically) and publishes it on the shard's operation stream. The
 *   stream is placed in this region, with one durable consumer per linked peer having the shard.
 * - The peers' writes: one feed per peer pulls that peer's stream of the shard, as this region's
 *   consumer, and an applier applies each batch to the shard's primary ({@link startApplyFeed}).
 *
 * Membership comes from the group document and is reconciled every second: a peer that becomes
 * linked gets consumers and feeds; a force-unlinked peer's consumers are deleted, which frees the
 * backlog they held; a fenced or unlinked self stops capture and apply. Each region records its
 * shard names in the document, so that its peers know which consumers it needs.
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  DEFAULT_SHARD,
  HybridLogicalClock,
  encodeHlc,
  makeLogger,
  type AgentConfig,
  type Logger,
  type NodeSample,
  type ReplicationLink,
  type ReplicationStatus,
  type ShardReplicationStatus,
} from '@georep/core';
import { CapturePipeline, FilePositionStore, OpsStream, type OpBatch } from '@georep/replication';
import { regionShards, resyncOf, setRegionShards } from '@georep/group';
import type { GroupPlane } from './group-plane.js';
import { emptyLink, startApplyFeed, type ApplyFeed } from './apply-feed.js';
import { collectShardGarbage } from './replication-gc.js';
import { combineLinks, sumCaptures, unpairedShards, withForecast } from './replication-status.js';

/** NATS's default `max_payload`, when the server did not say. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** How long after a capture failed for good a new one is started. */
const CAPTURE_RETRY_MS = 5000;

/** Replication of one shard: its stream, consumers, capture and feeds. */
interface ShardUnit {
  shard: string;
  stream: OpsStream | null;
  /** Peers that have a consumer on this shard's stream. */
  consumers: Set<string>;
  capture: CapturePipeline | null;
  /** Why the last capture failed for good (shown by status until a new one runs). */
  captureError: string | null;
  captureFailedAt: number;
  /** `host:port` of the primary the capture and the appliers were started against. */
  capturedFrom: string | null;
  feeds: Map<string, ApplyFeed>;
  backlogs: Map<string, ReplicationLink['backlog']>;
  /** Backlog size samples per peer over the last minute (growth forecast). */
  samples: Map<string, Array<{ at: number; bytes: number }>>;
  /** When capture last published a mark (an idle stream's watermark). */
  markedAt: number;
}

/**
 * How often an idle shard publishes a mark, in watermark intervals: often enough that garbage
 * collection is not held back for long (it keeps `gcMinAgeMs` of tombstones anyway), rarely
 * enough that an idle group's document changes seldom.
 */
const MARK_EVERY_WATERMARKS = 4;

/** See the module comment. */
export class ReplicationPlane {
  readonly #config: AgentConfig;
  readonly #group: GroupPlane;
  readonly #primary: (shard: string) => NodeSample | undefined;
  readonly #log: Logger;
  /** One clock per region, shared by the shards' pipelines and appliers. */
  readonly #clock: HybridLogicalClock;
  readonly #units: ShardUnit[];
  #nc: NatsConnection | null = null;
  #state: ReplicationStatus['state'] = 'off';
  #reconciling = false;
  #stopped = false;
  /** Set by {@link hold}: nothing captures or applies until {@link release}. */
  #held = false;
  /** Newest tag applied per peer (the oldest over the shards both have). */
  readonly #applied = new Map<string, string>();
  /** Per peer, a description of the shards only one side has ('' when they match). */
  readonly #unpaired = new Map<string, string>();
  #watermarksAt = 0;
  #gc: Promise<void> | null = null;
  #gcAt = 0;
  #gcStats: { at: number; horizon: string; metaDeleted: number; fieldsDeleted: number } | null =
    null;

  /**
   * @param primary the legitimate primary of a shard when it is up as primary, else undefined.
   */
  readonly #standby: () => boolean;

  /**
   * @param standby true while another agent of this region replicates it: this one captures and
   *   applies nothing meanwhile (two captures of one primary would record every write twice).
   */
  constructor(
    config: AgentConfig,
    group: GroupPlane,
    primary: (shard: string) => NodeSample | undefined,
    standby: () => boolean = () => false,
  ) {
    this.#config = config;
    this.#group = group;
    this.#primary = primary;
    this.#standby = standby;
    this.#log = makeLogger('replication');
    this.#clock = new HybridLogicalClock(config.region);
    this.#units = shardNames(config).map((shard) => ({
      shard,
      stream: null,
      consumers: new Set(),
      capture: null,
      captureError: null,
      captureFailedAt: 0,
      capturedFrom: null,
      feeds: new Map(),
      backlogs: new Map(),
      samples: new Map(),
      markedAt: 0,
    }));
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
      const doc = this.#group.document;
      setRegionShards(
        doc,
        self,
        this.#units.map((u) => u.shard),
      );
      // A region being unlinked gracefully replicates both ways until its backlogs drained.
      const replicates = (state: string | null) => state === 'linked' || state === 'unlinking';
      const standby = this.#standby();
      const active =
        replicates(this.#group.linkState) && !this.#group.fenced && !this.#held && !standby;
      const peers = active
        ? doc
            .regions()
            .filter((r) => r.name !== self && replicates(r.linkState))
            .map((r) => r.name)
        : [];
      // A region relinked with --resync gets its consumers before its agent takes the snapshot
      // it loads, so that every batch published after the snapshot is kept for it.
      const resyncing = active
        ? doc
            .regions()
            .filter((r) => r.name !== self && r.linkState === 'linking')
            .filter((r) => resyncOf(doc, r.name) !== null)
            .map((r) => r.name)
        : [];
      const peerShards = new Map(
        [...peers, ...resyncing].map((p) => [p, regionShards(doc, p)] as const),
      );
      this.#noteUnpaired(new Map(peers.map((p) => [p, peerShards.get(p)!])));
      for (const unit of this.#units) {
        const having = (list: string[]) =>
          list.filter((p) => peerShards.get(p)!.includes(unit.shard));
        await this.#reconcileShard(nc, unit, active, having(peers), having(resyncing));
      }
      if (this.#units.some((u) => u.capture !== null)) this.#state = 'running';
      else if (standby) this.#state = 'standby';
      this.#noteApplied(peers, peerShards);
      this.#recordWatermarks();
      if (
        this.#units.some((u) => u.capture !== null) &&
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
   * One shard: its stream, the consumers of `peers` (the linked peers having it) and of
   * `resyncing` (regions being relinked with --resync: a consumer, no feed yet), capture, feeds.
   */
  async #reconcileShard(
    nc: NatsConnection,
    unit: ShardUnit,
    active: boolean,
    peers: string[],
    resyncing: string[],
  ): Promise<void> {
    if (unit.stream === null) {
      if (!active) return;
      this.#state = 'starting';
      unit.stream = await OpsStream.ensure(await jetstreamManager(nc), {
        group: this.#config.group,
        region: this.#config.region,
        shard: unit.shard,
        placementCluster: this.#config.region,
        // The region's budget, shared evenly by its shards' streams.
        maxBytes: Math.max(
          1024 * 1024,
          Math.floor(this.#config.replication.streamMaxBytes / this.#units.length),
        ),
        // Longer than any agent restart: the outbox re-published at start must be recognised.
        duplicateWindowMs: 10 * 60_000,
      });
    }
    const stream = unit.stream;
    // Consumers for peers first: with interest retention, a batch published while a peer has
    // no consumer is not kept for it.
    for (const peer of [...peers, ...resyncing]) {
      if (!unit.consumers.has(peer)) {
        await stream.ensurePeerConsumer(peer);
        unit.consumers.add(peer);
      }
    }
    for (const peer of [...unit.consumers]) {
      if (!peers.includes(peer) && !resyncing.includes(peer) && this.#gone(peer, unit.shard)) {
        await stream.deletePeerConsumer(peer);
        unit.consumers.delete(peer);
        unit.backlogs.delete(peer);
        this.#log.warn(
          { peer, shard: unit.shard },
          'peer removed from the group or the shard: its backlog is freed',
        );
      }
    }
    // Feeds of peers that left go first, and before capture: their applies wait on capture.
    for (const [peer, f] of unit.feeds) {
      if (!peers.includes(peer)) {
        unit.feeds.delete(peer);
        // Not awaited: an apply in progress may take until its wait for capture times out.
        void f.stop();
      }
    }
    await this.#followPrimary(unit);
    await this.#dropFailedCapture(unit);
    if (active && unit.capture === null && Date.now() - unit.captureFailedAt >= CAPTURE_RETRY_MS)
      await this.#startCapture(unit, stream);
    if (!active && unit.capture !== null) {
      this.#log.warn(
        {
          linkState: this.#group.linkState,
          fenced: this.#group.fenced,
          standby: this.#standby(),
          shard: unit.shard,
        },
        'this agent stops replicating the region (not linked, fenced, resyncing, or another agent of the region does it)',
      );
      await unit.capture.stop();
      unit.capture = null;
    }
    const capture = unit.capture;
    const markEvery = MARK_EVERY_WATERMARKS * this.#config.replication.watermarkIntervalMs;
    if (capture !== null && Date.now() - unit.markedAt >= markEvery) {
      // A batch moves the watermarks too: a mark is only needed when none went out.
      if (Date.now() - capture.stats.lastBatchAt < markEvery || capture.mark() !== null)
        unit.markedAt = Date.now();
    }
    if (capture !== null) {
      for (const peer of peers) {
        if (unit.feeds.has(peer)) continue;
        unit.feeds.set(
          peer,
          startApplyFeed({
            nc,
            group: this.#config.group,
            region: this.#config.region,
            peer,
            shard: unit.shard,
            endpoint: this.#endpoint(unit.shard),
            redis: this.#config.redis,
            clock: this.#clock,
            capture,
            logger: this.#log,
            stopped: () => this.#stopped,
          }),
        );
      }
    }
    for (const peer of unit.consumers) {
      try {
        unit.backlogs.set(peer, withForecast(unit.samples, peer, await stream.backlog(peer)));
      } catch (err) {
        unit.backlogs.set(peer, null);
        this.#log.debug({ peer, err: (err as Error).message }, 'backlog unknown');
      }
    }
  }

  /** Notes, and logs once per change, the shards a peer has that this region lacks and back. */
  #noteUnpaired(peerShards: Map<string, string[]>): void {
    const mine = this.#units.map((u) => u.shard);
    for (const peer of this.#unpaired.keys())
      if (!peerShards.has(peer)) this.#unpaired.delete(peer);
    for (const [peer, theirs] of peerShards) {
      const text = unpairedShards(mine, this.#config.region, theirs, peer);
      if (text !== '' && text !== this.#unpaired.get(peer))
        this.#log.warn({ peer, shards: theirs }, 'replication.unpaired-shards');
      this.#unpaired.set(peer, text);
    }
  }

  /**
   * This region's watermark for each peer: the oldest over the shards both have of the newest tag
   * applied from it. Each shard's stream is in tag order, so every operation of the peer at or
   * below that tag has been applied here. A shard that has applied nothing yet holds it back.
   */
  #noteApplied(peers: string[], peerShards: Map<string, string[]>): void {
    for (const peer of peers) {
      let mark: string | undefined;
      for (const unit of this.#units) {
        if (!peerShards.get(peer)!.includes(unit.shard)) continue;
        const tag = unit.feeds.get(peer)?.appliedTag() ?? '';
        if (mark === undefined || tag < mark) mark = tag;
      }
      if (mark !== undefined && mark > (this.#applied.get(peer) ?? ''))
        this.#applied.set(peer, mark);
    }
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
    let produced = '';
    for (const u of this.#units) {
      const tag = u.capture?.stats.lastTag ?? '';
      if (tag > produced) produced = tag;
    }
    if (produced !== '') row[this.#config.region] = produced;
    if (Object.keys(row).length > 0) this.#group.document.setWatermarks(this.#config.region, row);
  }

  /**
   * Removes tombstones and dead metadata below the horizon, in bounded SCAN steps over every db
   * of every shard's primary that has keys. The horizon is held back by `replication.gcMinAgeMs`
   * as well, so that a batch re-published late (an agent down past JetStream's duplicate window)
   * finds its tombstones.
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
    let deleted = 0;
    let fields = 0;
    for (const unit of this.#units) {
      if (unit.capture === null || this.#stopped) continue;
      try {
        const r = await collectShardGarbage(this.#endpoint(unit.shard), this.#config.redis, {
          horizon,
          stopped: () => this.#stopped,
        });
        deleted += r.metaDeleted;
        fields += r.fieldsDeleted;
      } catch (err) {
        this.#log.warn(
          { shard: unit.shard, err: (err as Error).message },
          'replication gc failed; retried later',
        );
      }
    }
    this.#gcStats = { at: Date.now(), horizon, metaDeleted: deleted, fieldsDeleted: fields };
    if (deleted + fields > 0) {
      this.#log.info({ horizon, metaDeleted: deleted, fieldsDeleted: fields }, 'replication gc');
    }
  }

  /**
   * A peer whose consumer on `shard` may be deleted: unlinked or force-unlinked (not merely
   * linking), or linked without that shard any more.
   */
  #gone(peer: string, shard: string): boolean {
    const doc = this.#group.document;
    const state = doc.region(peer)?.linkState;
    if (state === 'linked') return !regionShards(doc, peer).includes(shard);
    return state === undefined || state === 'unlinked' || state === 'force-unlinked';
  }

  /**
   * After a switchover or failover, capture and the appliers still talk to the old primary (now
   * a replica: its writes fail with READONLY). Restart them against the new one; capture resumes
   * from its saved position with a partial resync (PSYNC2 keeps the replication id history), and
   * the outbox and per-key metadata were replicated to the new primary with the data.
   */
  async #followPrimary(unit: ShardUnit): Promise<void> {
    const current = this.#primary(unit.shard);
    if (unit.capture === null || current === undefined || !current.up) return;
    const at = `${current.host}:${current.port}`;
    if (at === unit.capturedFrom) return;
    this.#log.info(
      { shard: unit.shard, from: unit.capturedFrom, to: at },
      'primary changed: replication follows',
    );
    await this.#stopCaptureAndFeeds(unit);
  }

  /** Stops the shard's appliers (they wait on capture) and then capture; reconcile restarts them. */
  async #stopCaptureAndFeeds(unit: ShardUnit): Promise<void> {
    const feeds = [...unit.feeds.values()];
    unit.feeds.clear();
    await Promise.all(feeds.map((f) => f.stop()));
    await unit.capture?.stop();
    unit.capture = null;
  }

  /**
   * Capture ends on its own only for errors it cannot retry (credentials refused, PSYNC
   * refused). The operator may fix them without restarting the agent, so a failed capture is
   * dropped, with its appliers (they wait on it), and started again after CAPTURE_RETRY_MS.
   */
  async #dropFailedCapture(unit: ShardUnit): Promise<void> {
    const failure = unit.capture?.failure;
    if (failure == null) return;
    unit.captureError = failure.message;
    unit.captureFailedAt = Date.now();
    this.#log.error(
      { shard: unit.shard, err: failure.message, retryInMs: CAPTURE_RETRY_MS },
      'capture failed; it is started again',
    );
    await this.#stopCaptureAndFeeds(unit);
  }

  async #startCapture(unit: ShardUnit, stream: OpsStream): Promise<void> {
    const endpoint = () => this.#endpoint(unit.shard);
    const capture = new CapturePipeline({
      region: this.#config.region,
      node: endpoint,
      config: this.#config.redis,
      clock: this.#clock,
      store: new FilePositionStore(join(this.#dataDir(), positionFile(unit.shard))),
      spoolDir: this.#dataDir(),
      maxBatchOps: this.#config.replication.maxBatchOps,
      replicaAckTimeoutMs: this.#config.replication.replicaAckTimeoutMs,
      appliedEverywhere: () => this.#group.document.gcHorizon(),
      publish: async (batch: OpBatch) => {
        await stream.publishBatch(batch, this.#nc?.info?.max_payload ?? DEFAULT_MAX_PAYLOAD);
      },
      publishMark: (tag) => stream.publishMark(tag),
      onWarning: (w) =>
        this.#log.warn(
          { shard: unit.shard, command: w.command, reason: w.reason },
          'replication.unsupported',
        ),
    });
    unit.capturedFrom = `${endpoint().host}:${endpoint().port}`;
    await capture.start();
    unit.capture = capture;
    unit.captureError = null;
    this.#log.info({ shard: unit.shard }, 'capture started');
  }

  /** The shard's primary, or its first configured node while none is known. */
  #endpoint(shard: string): { host: string; port: number } {
    const p = this.#primary(shard);
    if (p !== undefined) return { host: p.host, port: p.port };
    const first =
      this.#config.redis.nodes.find((n) => (n.shard ?? DEFAULT_SHARD) === shard) ??
      this.#config.redis.nodes[0]!;
    return { host: first.host, port: first.port };
  }

  #dataDir(): string {
    return replicationDataDir(this.#config);
  }

  /**
   * Stops every capture and feed now and keeps them stopped until {@link release}, whatever the
   * document says: a resync replaces the data and the capture positions underneath them. Waits
   * for a reconcile in progress (it may start a capture) before stopping.
   */
  async hold(): Promise<void> {
    this.#held = true;
    for (let i = 0; i < 600 && this.#reconciling; i++) await new Promise((r) => setTimeout(r, 50));
    for (const unit of this.#units) await this.#stopCaptureAndFeeds(unit);
  }

  /** Ends a {@link hold}: the next reconcile starts what the document asks for. */
  release(): void {
    this.#held = false;
  }

  /**
   * Forgets this region's streams and consumers, after a resync deleted them (they held the
   * region's writes from before, which are not merged). The next reconcile creates them again.
   * Call only while the region is not replicating.
   */
  forgetStreams(): void {
    for (const unit of this.#units) {
      unit.stream = null;
      unit.consumers.clear();
      unit.backlogs.clear();
      unit.samples.clear();
    }
  }

  /** This region's shard names, in order. */
  get shards(): string[] {
    return this.#units.map((u) => u.shard);
  }

  status(): ReplicationStatus {
    const shards: ShardReplicationStatus[] = this.#units.map((unit) => {
      const peers = new Set([...unit.feeds.keys(), ...unit.consumers]);
      const c = unit.capture?.stats;
      return {
        shard: unit.shard,
        primary: unit.capture === null ? null : unit.capturedFrom,
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
        captureError: unit.captureError,
        links: [...peers].sort().map((peer) => ({
          ...(unit.feeds.get(peer)?.link ?? emptyLink(peer)),
          backlog: unit.backlogs.get(peer) ?? null,
        })),
      };
    });
    const peers = new Set([
      ...this.#unpaired.keys(),
      ...shards.flatMap((s) => s.links.map((l) => l.peer)),
    ]);
    const links = [...peers].sort().map((peer) =>
      combineLinks(
        peer,
        shards.flatMap((s) => {
          const link = s.links.find((l) => l.peer === peer);
          return link === undefined ? [] : [{ shard: s.shard, link }];
        }),
        this.#unpaired.get(peer) || null,
      ),
    );
    return {
      enabled: this.#config.replication.enabled,
      state: this.#state,
      capture: sumCaptures(shards.map((s) => s.capture)),
      captureError: shards.find((s) => s.captureError !== null)?.captureError ?? null,
      links,
      shards,
      gcHorizon: this.#group.document.gcHorizon() || null,
      lastGc: this.#gcStats,
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#state = 'stopped';
    await Promise.all(this.#units.flatMap((u) => [...u.feeds.values()].map((f) => f.stop())));
    for (const u of this.#units) u.feeds.clear();
    await this.#gc?.catch(() => undefined);
    await Promise.all(this.#units.map((u) => u.capture?.stop() ?? Promise.resolve()));
  }
}

/** The region's shard names: the default shard first, then by name (as {@link shardsOf} sorts). */
function shardNames(config: AgentConfig): string[] {
  const names = new Set(config.redis.nodes.map((n) => n.shard ?? DEFAULT_SHARD));
  return [...names].sort((a, b) =>
    a === DEFAULT_SHARD ? -1 : b === DEFAULT_SHARD ? 1 : a < b ? -1 : 1,
  );
}

/** Where the agent keeps capture positions (and other replication files). */
export function replicationDataDir(config: AgentConfig): string {
  return config.dataDir ?? join(tmpdir(), 'georep', config.group, config.region);
}

/** Capture's position file of a shard; the default shard keeps the name from before shards. */
export function positionFile(shard: string): string {
  return shard === DEFAULT_SHARD ? 'capture-position.json' : `capture-position-${shard}.json`;
}
