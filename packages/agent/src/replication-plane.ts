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
import type { NatsConnection } from '@nats-io/transport-node';
import {
  DEFAULT_SHARD,
  HybridLogicalClock,
  encodeHlc,
  makeLogger,
  type AgentConfig,
  type Logger,
  type NodeSample,
  type ReplicationStatus,
} from '@georep/core';
import { regionShards, resyncOf, setRegionShards } from '@georep/group';
import type { GroupPlane } from './group-plane.js';
import { collectShardGarbage } from './replication-gc.js';
import { combineLinks, sumCaptures, unpairedShards } from './replication-status.js';
import { ShardReplication } from './shard-replication.js';

/** See the module comment. */
export class ReplicationPlane {
  readonly #config: AgentConfig;
  readonly #group: GroupPlane;
  readonly #standby: () => boolean;
  readonly #log: Logger;
  readonly #units: ShardReplication[];
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
    this.#standby = standby;
    this.#log = makeLogger('replication');
    const names = shardNames(config);
    const context = {
      config,
      // One clock per region, shared by the shards' pipelines and appliers.
      clock: new HybridLogicalClock(config.region),
      log: this.#log,
      primary,
      shardCount: names.length,
      gone: (peer: string, shard: string) => this.#gone(peer, shard),
      horizon: () => this.#group.document.gcHorizon(),
      maxPayload: () => this.#nc?.info?.max_payload,
      stopped: () => this.#stopped,
    };
    this.#units = names.map((shard) => new ShardReplication(shard, context));
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
      const inactiveReason = {
        linkState: this.#group.linkState,
        fenced: this.#group.fenced,
        held: this.#held,
        standby,
      };
      for (const unit of this.#units) {
        const having = (list: string[]) =>
          list.filter((p) => peerShards.get(p)!.includes(unit.shard));
        const created = await unit.reconcile(nc, {
          active,
          peers: having(peers),
          resyncing: having(resyncing),
          inactiveReason,
        });
        if (created) this.#state = 'starting';
      }
      const capturing = this.#units.some((u) => u.capture !== null);
      if (capturing) this.#state = 'running';
      else if (standby) this.#state = 'standby';
      this.#noteApplied(peers, peerShards);
      this.#recordWatermarks();
      if (
        capturing &&
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
        const tag = unit.appliedTag(peer);
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
        const r = await collectShardGarbage(unit.endpoint(), this.#config.redis, {
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
   * Stops every capture and feed now and keeps them stopped until {@link release}, whatever the
   * document says: a resync replaces the data and the capture positions underneath them. Waits
   * for a reconcile in progress (it may start a capture) before stopping.
   */
  async hold(): Promise<void> {
    this.#held = true;
    for (let i = 0; i < 600 && this.#reconciling; i++) await new Promise((r) => setTimeout(r, 50));
    for (const unit of this.#units) await unit.stopCaptureAndFeeds();
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
    for (const unit of this.#units) unit.forgetStream();
  }

  /** This region's shard names, in order. */
  get shards(): string[] {
    return this.#units.map((u) => u.shard);
  }

  status(): ReplicationStatus {
    const shards = this.#units.map((u) => u.status());
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
    await this.#gc?.catch(() => undefined);
    await Promise.all(this.#units.map((u) => u.stopCaptureAndFeeds()));
  }
}

/** The region's shard names: the default shard first, then by name (as `shardsOf` sorts). */
function shardNames(config: AgentConfig): string[] {
  const names = new Set(config.redis.nodes.map((n) => n.shard ?? DEFAULT_SHARD));
  return [...names].sort((a, b) =>
    a === DEFAULT_SHARD ? -1 : b === DEFAULT_SHARD ? 1 : a < b ? -1 : 1,
  );
}
