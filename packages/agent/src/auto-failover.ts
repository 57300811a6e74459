/**
 * Automatic failover inside the region: Sentinel's job, done by the agent that already samples
 * every node each second.
 *
 * A shard's primary is failed over when the agent has not reached it for `failover.downAfterMs`
 * AND every reachable replica of the shard confirms that its own link to the primary is down.
 * The replicas are the witnesses: an agent cut off from the primary alone (its own network path)
 * never promotes anything. The replica chosen is Sentinel's: lowest `replica-priority` (0 never),
 * then the most data (offset), then the smallest run id. At most one failover per shard per
 * `failover.failoverTimeoutMs`. Each one is recorded in the group document's history.
 *
 * A node that returns claiming to be primary while the document records another one (the old
 * primary after a failover) is made a replica of the recorded primary, and its application clients
 * are disconnected so they rediscover the primary.
 */
import { makeLogger, type AgentConfig, type Logger, type NodeSample } from '@georep/core';
import { setShardPrimary, shardPrimaries } from '@georep/group';
import {
  chooseBestReplica,
  createNodeClient,
  disconnectApplicationClients,
  forcePromote,
  persistRole,
  repointReplica,
} from '@georep/redis';
import type { Redis } from 'ioredis';
import type { GroupPlane } from './group-plane.js';
import type { ShardView } from './shards.js';
import type { SwitchoverPlane } from './switchover.js';

/** What the monitor needs from the agent. */
export interface AutoFailoverContext {
  config: AgentConfig;
  plane: GroupPlane;
  switchover: SwitchoverPlane;
  onTopologyChange: () => void;
  /**
   * Takes the region-wide one-time lease `key`: true for one agent of the region, false for the
   * others, null when the lease store cannot be reached (then the agent acts alone: a region with
   * its JetStream down still fails over).
   */
  claim?: (key: string) => Promise<boolean | null>;
  /** Gives a lease back after the failover it guarded failed, so that it is tried again. */
  release?: (key: string) => Promise<void>;
  /** Called after each automatic failover (metrics). */
  onFailover?: (event: AutoFailoverEvent) => void;
}

/** One automatic failover, as the monitor reports it. */
export interface AutoFailoverEvent {
  shard: string;
  from: string;
  to: string;
  at: number;
  downForMs: number;
  bytesBehind: number | null;
}

/** See the module comment. */
export class AutoFailover {
  readonly #ctx: AutoFailoverContext;
  readonly #log: Logger;
  /** shard → when its primary was first seen unreachable (local clock). */
  readonly #downSince = new Map<string, number>();
  /** shard → when it was last failed over. */
  readonly #lastFailover = new Map<string, number>();
  /** shard → the reason the last check did not fail over, so that it is logged once. */
  readonly #held = new Map<string, string>();
  /** shard → run id of its primary when last seen up: it names the lease of its failover. */
  readonly #runIds = new Map<string, string>();
  #checking = false;
  readonly events: AutoFailoverEvent[] = [];

  constructor(context: AutoFailoverContext) {
    this.#ctx = context;
    this.#log = makeLogger('failover');
  }

  /** Looks at every shard once (after each health sample). Never throws. */
  async check(now = Date.now()): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      for (const shard of this.#ctx.switchover.shards()) {
        try {
          await this.#demoteStale(shard);
          if (this.#ctx.config.failover.auto) await this.#checkShard(shard, now);
        } catch (err) {
          this.#log.error(
            { shard: shard.shard, err: (err as Error).message },
            'failover check failed; retried at the next sample',
          );
        }
      }
    } finally {
      this.#checking = false;
    }
  }

  async #checkShard(shard: ShardView, now: number): Promise<void> {
    const { failover } = this.#ctx.config;
    const primary = shard.primary;
    if (primary === undefined || primary.up) {
      this.#downSince.delete(shard.shard);
      this.#held.delete(shard.shard);
      if (primary?.runId !== undefined) this.#runIds.set(shard.shard, primary.runId);
      return;
    }
    const since = this.#downSince.get(shard.shard) ?? now;
    this.#downSince.set(shard.shard, since);
    if (now - since < failover.downAfterMs) return;
    const reachable = shard.replicas.filter((r) => r.up && r.role === 'replica');
    const stillLinked = reachable.filter((r) => r.primary?.linkUp === true);
    const last = this.#lastFailover.get(shard.shard);
    const hold =
      reachable.length === 0
        ? 'no replica of the shard is reachable'
        : stillLinked.length > 0
          ? `replicas ${stillLinked.map((r) => r.id).join(', ')} still reach the primary`
          : last !== undefined && now - last < failover.failoverTimeoutMs
            ? `the shard failed over ${now - last} ms ago (failover.failoverTimeoutMs ${failover.failoverTimeoutMs})`
            : null;
    const candidates = reachable.map((r) => ({
      node: r,
      priority: r.replicaPriority ?? 100,
      offset: r.replicaOffset ?? r.replOffset ?? 0,
      runId: r.runId ?? '',
    }));
    const best = hold === null ? chooseBestReplica(candidates) : undefined;
    const reason = hold ?? (best === undefined ? 'every replica has replica-priority 0' : null);
    if (reason !== null || best === undefined) {
      if (this.#held.get(shard.shard) !== reason) {
        this.#held.set(shard.shard, reason ?? '');
        this.#log.warn(
          { shard: shard.shard, primary: primary.id, reason },
          'primary is down; not failing over',
        );
      }
      return;
    }
    if (this.#ctx.switchover.activity !== null) return;
    // Two agents of one region see the same dead primary: one lease per primary process (its run
    // id) lets exactly one of them act.
    const lease = `failover.${shard.shard}.${primary.id}.${this.#runIds.get(shard.shard) ?? 'unknown'}`;
    const won =
      this.#ctx.claim === undefined ? null : await this.#ctx.claim(lease).catch(() => null);
    if (won === false) {
      if (this.#held.get(shard.shard) !== 'lease') {
        this.#held.set(shard.shard, 'lease');
        this.#log.info(
          { shard: shard.shard, primary: primary.id },
          'another agent of this region fails this primary over',
        );
      }
      return;
    }
    try {
      await this.#ctx.switchover.exclusive(
        { kind: 'failing-over', operationId: null },
        'an automatic failover',
        () => this.#promote(shard, primary, best.node, now - since),
      );
    } catch (err) {
      if (won === true) await this.#ctx.release?.(lease).catch(() => undefined);
      throw err;
    }
  }

  async #promote(
    shard: ShardView,
    old: NodeSample,
    target: NodeSample,
    downForMs: number,
  ): Promise<void> {
    const region = this.#ctx.config.region;
    const clients: Redis[] = [];
    const client = (node: NodeSample) => {
      const c = createNodeClient(node, this.#ctx.config.redis, {
        connectionName: 'georep-failover',
      });
      clients.push(c);
      return c;
    };
    try {
      const promoted = client(target);
      const { bytesBehind } = await forcePromote({
        target: promoted,
        ...(old.replOffset === undefined ? {} : { primaryOffset: old.replOffset }),
      });
      await persistRole(promoted);
      const at = Date.now();
      this.#lastFailover.set(shard.shard, at);
      this.#downSince.delete(shard.shard);
      this.#held.delete(shard.shard);
      setShardPrimary(
        this.#ctx.plane.document,
        region,
        {
          shard: shard.shard,
          node: target.id,
          kind: 'failover.auto',
          message: `${region}/${shard.shard}: ${old.id} unreachable for ${downForMs} ms; ${target.id} promoted${bytesBehind ? ` (${bytesBehind} bytes lost)` : ''}`,
        },
        { region, operationId: null },
      );
      const event = { shard: shard.shard, from: old.id, to: target.id, at, downForMs, bytesBehind };
      this.events.push(event);
      this.#ctx.onFailover?.(event);
      this.#log.warn(
        { shard: shard.shard, from: old.id, to: target.id, downForMs, bytesBehind },
        'automatic failover: replica promoted',
      );
      this.#ctx.onTopologyChange();
      for (const other of shard.replicas) {
        if (other.id === target.id || !other.up) continue;
        const c = client(other);
        await repointReplica(c, { host: target.host, port: target.port })
          .then(() => persistRole(c))
          .catch((err: Error) =>
            this.#log.warn({ node: other.id, err: err.message }, 'could not repoint a replica'),
          );
      }
    } finally {
      for (const c of clients) c.disconnect();
    }
  }

  /**
   * A node claiming primary beside the recorded primary is demoted, only when the document
   * records the shard's primary (without a record there is no telling which one is right).
   */
  async #demoteStale(shard: ShardView): Promise<void> {
    const recorded = shardPrimaries(this.#ctx.plane.document, this.#ctx.config.region)[shard.shard];
    const primary = shard.primary;
    if (recorded === undefined || primary?.id !== recorded || !primary.up) return;
    for (const stale of shard.stalePrimaries) {
      const c = createNodeClient(stale, this.#ctx.config.redis, {
        connectionName: 'georep-failover',
      });
      try {
        await repointReplica(c, { host: primary.host, port: primary.port });
        await persistRole(c);
        const killed = await disconnectApplicationClients(c);
        this.#ctx.plane.document.record({
          at: Date.now(),
          region: this.#ctx.config.region,
          kind: 'failover.demoted',
          message: `${this.#ctx.config.region}/${shard.shard}: ${stale.id} returned as primary; made a replica of ${primary.id}`,
          operationId: null,
        });
        this.#log.warn(
          { shard: shard.shard, node: stale.id, primary: primary.id, clientsDisconnected: killed },
          'a returning old primary was made a replica',
        );
      } finally {
        c.disconnect();
      }
    }
  }
}
