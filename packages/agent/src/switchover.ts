/**
 * Planned switchovers inside this agent's region: one replica promoted per shard, many shards in
 * one request, now or in the region's maintenance window.
 *
 * A request is checked completely before anything is recorded (every target a healthy replica of
 * its shard's primary, one target per shard, at most {@link MAX_SHARDS_PER_SWITCHOVER} shards),
 * so an invalid batch changes nothing. It is then an operation in the ledger, idempotent by client
 * token; a scheduled one stays `pending` in the group document (surviving agent restarts) until
 * the window opens, and can be cancelled until then.
 *
 * Safe mode builds on Redis's own handover, `FAILOVER TO host port TIMEOUT ms`: Redis pauses
 * writes, waits until the target has every byte, promotes it and demotes itself, or rolls back on
 * timeout; no acknowledged write is lost. Force mode promotes at once and reports the bytes the
 * target was behind. Afterwards the shard's other replicas follow the new primary, the old
 * primary's application clients are disconnected (so Sentinel-aware clients ask again), and the
 * new primary is recorded in the group document.
 */
import {
  ConflictError,
  GeorepError,
  NotFoundError,
  UsageError,
  configuredNodes,
  makeLogger,
  maintenanceWindowAt,
  type AgentConfig,
  type ConfiguredNode,
  type Logger,
  type NodeSample,
  type OperationView,
  type RegionActivity,
} from '@georep/core';
import { setShardPrimary, shardPrimaries } from '@georep/group';
import {
  createNodeClient,
  disconnectApplicationClients,
  forcePromote,
  persistRole,
  repointReplica,
  safeSwitchover,
} from '@georep/redis';
import type { Redis } from 'ioredis';
import type { GroupPlane } from './group-plane.js';
import type { OperationRunner } from './operations.js';
import { sameHost, shardOf, shardsOf, type ShardView } from './shards.js';

/** The managed services' limit, kept so that scripts written for them work unchanged. */
export const MAX_SHARDS_PER_SWITCHOVER = 50;
/** Shards switched at the same time within one request. */
const SHARD_CONCURRENCY = 8;
/** The operation kind in the ledger. */
export const SWITCHOVER_KIND = 'switchover';

/** A switchover request as the CLI sends it. */
export interface SwitchoverRequest {
  /** Target node ids: each becomes the primary of its shard. */
  nodes: string[];
  when: 'now' | 'maintenance-window';
  mode: 'safe' | 'force';
  clientToken: string | null;
  requestedBy: string;
}

/** What happened to one shard. */
export interface ShardSwitchResult {
  shard: string;
  from: string | null;
  to: string;
  mode: 'safe' | 'force';
  /** Safe mode: how long writes were paused, as observed. */
  pauseMs: number | null;
  /** Force mode: bytes of the old primary's stream the new one never received (null: unknown). */
  bytesBehind: number | null;
  /** Replicas repointed to the new primary, and those that could not be (with why). */
  repointed: string[];
  notRepointed: { node: string; error: string }[];
  clientsDisconnected: number;
}

/** What the switchover plane needs from the agent. */
export interface SwitchoverContext {
  config: AgentConfig;
  plane: GroupPlane;
  runner: OperationRunner;
  /** The latest samples of this region's nodes. */
  samples: () => NodeSample[];
  /** Called after a shard's primary changed (Sentinel endpoint, replication, heartbeat). */
  onTopologyChange: () => void;
}

/** True for a switchover waiting for the maintenance window: kept across agent restarts. */
export function isScheduledSwitchover(op: OperationView): boolean {
  return op.kind === SWITCHOVER_KIND && op.params.when === 'maintenance-window';
}

/** See the module comment. */
export class SwitchoverPlane {
  readonly #ctx: SwitchoverContext;
  readonly #log: Logger;
  readonly #nodes: Map<string, ConfiguredNode>;
  #activity: RegionActivity | null = null;

  constructor(context: SwitchoverContext) {
    this.#ctx = context;
    this.#log = makeLogger('switchover');
    this.#nodes = new Map(configuredNodes(context.config).map((n) => [n.id, n]));
  }

  /** What the region is busy with, or null. */
  get activity(): RegionActivity | null {
    return this.#activity === null ? null : { ...this.#activity };
  }

  /** Throws `region.busy` while a switchover or failover runs in this region. */
  assertNotBusy(what: string): void {
    const busy = this.#activity;
    if (busy === null) return;
    throw new ConflictError(
      'region.busy',
      `${this.#ctx.config.region} is ${busy.kind}${busy.operationId === null ? '' : ` (operation ${busy.operationId})`}; ${what} is refused until it finishes`,
      { hint: 'retry in a few seconds; georep status shows when the region is no longer busy' },
    );
  }

  /**
   * Marks the region busy for the duration of `work` (automatic failover uses it too), so that
   * nothing else changes the region's nodes at the same time.
   */
  async exclusive<T>(
    activity: Omit<RegionActivity, 'since'>,
    what: string,
    work: () => Promise<T>,
  ): Promise<T> {
    this.assertNotBusy(what);
    this.#activity = { ...activity, since: Date.now() };
    try {
      return await work();
    } finally {
      this.#activity = null;
    }
  }

  /** The region's shards now. */
  shards(): ShardView[] {
    const region = this.#ctx.config.region;
    return shardsOf(this.#ctx.samples(), shardPrimaries(this.#ctx.plane.document, region));
  }

  /** Validates, records and (for `now`) starts a switchover; see the module comment. */
  submit(request: SwitchoverRequest): OperationView {
    const params = {
      region: this.#ctx.config.region,
      nodes: [...new Set(request.nodes)].sort(),
      when: request.when,
      mode: request.mode,
    };
    const doc = this.#ctx.plane.document;
    const retried =
      request.clientToken !== null && doc.operationByToken(request.clientToken) !== undefined;
    if (!retried) {
      this.assertNotBusy('a switchover');
      this.#plan(params.nodes, request.mode);
      if (request.when === 'maintenance-window' && this.#ctx.config.maintenanceWindow === null) {
        throw new UsageError(
          'switchover.no-maintenance-window',
          `region ${this.#ctx.config.region} has no maintenance window configured`,
          {
            hint: 'set maintenanceWindow { start, durationMinutes, timeZone } in the agent configuration, or use --when now',
          },
        );
      }
    }
    const { operation, created } = this.#ctx.runner.recordTask(SWITCHOVER_KIND, params, request);
    if (created && request.when === 'now') this.#start(operation.id, params.nodes, request.mode);
    if (created && request.when === 'maintenance-window') {
      const window = maintenanceWindowAt(this.#ctx.config.maintenanceWindow!);
      this.#log.info(
        { operation: operation.id, opensAt: new Date(window.opensAt).toISOString() },
        'switchover scheduled for the maintenance window',
      );
    }
    return doc.operation(operation.id) ?? operation;
  }

  /** Starts scheduled switchovers of this region whose window is open. Called every tick. */
  runDue(now = Date.now()): void {
    const window = this.#ctx.config.maintenanceWindow;
    if (window === null || this.#activity !== null) return;
    if (!maintenanceWindowAt(window, now).open) return;
    const due = this.#ctx.plane.document
      .pendingOperations()
      .filter(
        (op) =>
          op.status === 'pending' &&
          op.requestedVia === this.#ctx.config.region &&
          isScheduledSwitchover(op),
      );
    const next = due[0];
    if (next === undefined) return;
    const nodes = Array.isArray(next.params.nodes) ? next.params.nodes.map(String) : [];
    const mode = next.params.mode === 'force' ? 'force' : 'safe';
    this.#log.info({ operation: next.id }, 'maintenance window open: starting the switchover');
    this.#start(next.id, nodes, mode);
  }

  #start(operationId: string, nodes: string[], mode: 'safe' | 'force'): void {
    this.#ctx.runner.startTask(operationId, () =>
      this.exclusive({ kind: 'switching', operationId }, 'a switchover', async () => {
        // Checked again: a scheduled switchover runs long after it was requested.
        const plan = this.#plan(nodes, mode);
        const outcomes = await mapLimit(plan, SHARD_CONCURRENCY, (step) =>
          this.#switchShard(step.shard, step.target, mode, operationId).then(
            (result) => ({ ok: true as const, result }),
            (error: unknown) => ({ ok: false as const, shard: step.shard.shard, error }),
          ),
        );
        const failed = outcomes.filter((o) => !o.ok);
        const results = outcomes.flatMap((o) => (o.ok ? [o.result] : []));
        if (failed.length > 0) {
          // One shard's failure does not undo the others (each handover is complete on its own);
          // the operation fails and says which shards switched and which did not.
          const first = failed[0]!.error;
          if (results.length === 0 && failed.length === 1 && first instanceof GeorepError)
            throw first;
          throw new ConflictError(
            'switchover.partial',
            `${failed.length} of ${outcomes.length} shards did not switch: ${failed
              .map((f) => `${f.shard} (${(f.error as Error).message})`)
              .join(
                '; ',
              )}${results.length > 0 ? `; switched: ${results.map((r) => `${r.shard} → ${r.to}`).join(', ')}` : ''}`,
            {
              hint: 'georep status shows the current primaries; repeat the request for the shards that did not switch',
            },
          );
        }
        const pauses = results.map((r) => r.pauseMs).filter((p): p is number => p !== null);
        return {
          region: this.#ctx.config.region,
          mode,
          shards: results,
          maxPauseMs: pauses.length === 0 ? null : Math.max(...pauses),
        };
      }),
    );
  }

  /**
   * Checks a batch against the region's current shards and returns one step per shard. Throws
   * before anything changes when any target is invalid.
   */
  #plan(nodes: string[], mode: 'safe' | 'force'): { shard: ShardView; target: NodeSample }[] {
    const region = this.#ctx.config.region;
    if (nodes.length === 0) {
      throw new UsageError('switchover.no-target', 'name at least one target node with --node', {
        hint: 'georep status shows the replicas of each shard',
      });
    }
    // More targets than the limit is refused whatever they are: one per shard at most.
    if (nodes.length > MAX_SHARDS_PER_SWITCHOVER) {
      throw new UsageError(
        'switchover.too-many-shards',
        `${nodes.length} targets in one switchover; the limit is ${MAX_SHARDS_PER_SWITCHOVER} shards, one target each`,
        { hint: `split the targets into batches of at most ${MAX_SHARDS_PER_SWITCHOVER}` },
      );
    }
    const shards = this.shards();
    const samples = this.#ctx.samples();
    const steps: { shard: ShardView; target: NodeSample }[] = [];
    // First what needs no health: every target known, one per shard. Then each target's state.
    const byShard = new Map<string, string>();
    const targets = nodes.map((id) => {
      const sample = samples.find((s) => s.id === id);
      if (sample === undefined || !this.#nodes.has(id)) {
        throw new NotFoundError('switchover.unknown-node', `${id} is not a node of ${region}`, {
          hint: `nodes: ${[...this.#nodes.keys()].join(', ')}`,
        });
      }
      const shardName = shardOf(sample);
      const other = byShard.get(shardName);
      if (other !== undefined) {
        throw new UsageError(
          'switchover.duplicate-shard',
          `${other} and ${id} are both in shard ${shardName}: one target per shard`,
          { hint: 'name one replica per shard' },
        );
      }
      byShard.set(shardName, id);
      return { id, sample, shardName };
    });
    for (const { id, sample, shardName } of targets) {
      const shard = shards.find((s) => s.shard === shardName)!;
      const primary = shard.primary;
      const follows =
        primary !== undefined &&
        sample.primary !== undefined &&
        sample.primary.port === primary.port &&
        sameHost(sample.primary.host, primary.host);
      // Force mode is for a primary that is gone: the target's link to it may be down too.
      const linkDown = mode === 'safe' && sample.primary?.linkUp !== true;
      if (!sample.up || sample.role !== 'replica' || !follows || linkDown) {
        const why = !sample.up
          ? `it is down (${sample.error ?? 'no answer'})`
          : sample.role !== 'replica'
            ? 'it is the primary'
            : !follows
              ? `it does not replicate from the shard's primary ${primary?.id ?? '(none)'}`
              : 'its link to the primary is down';
        throw new ConflictError(
          'switchover.target-not-replica',
          `${id} cannot become primary of shard ${shardName}: ${why}`,
          { hint: 'choose a healthy replica of the shard (georep status lists them)' },
        );
      }
      if (mode === 'safe' && primary?.up !== true) {
        throw new ConflictError(
          'switchover.primary-down',
          `the primary ${primary?.id ?? '(none)'} of shard ${shardName} is down; a safe switchover needs it to hand over`,
          {
            hint: 'use --mode force to promote without waiting (writes not yet replicated are lost)',
          },
        );
      }
      steps.push({ shard, target: sample });
    }
    return steps;
  }

  async #switchShard(
    shard: ShardView,
    target: NodeSample,
    mode: 'safe' | 'force',
    operationId: string,
  ): Promise<ShardSwitchResult> {
    const region = this.#ctx.config.region;
    const clients: Redis[] = [];
    const client = (id: string) => {
      const c = createNodeClient(this.#nodes.get(id)!, this.#ctx.config.redis, {
        connectionName: 'georep-switchover',
      });
      clients.push(c);
      return c;
    };
    const old = shard.primary;
    try {
      const targetClient = client(target.id);
      let pauseMs: number | null = null;
      let bytesBehind: number | null = null;
      if (mode === 'safe') {
        const done = await safeSwitchover({
          primary: client(old!.id),
          target: { id: target.id, host: target.host, port: target.port },
          targetClient,
          timeoutMs: this.#ctx.config.failover.switchoverTimeoutMs,
        });
        pauseMs = done.pauseMs;
      } else {
        const done = await forcePromote({
          target: targetClient,
          ...(old?.replOffset === undefined ? {} : { primaryOffset: old.replOffset }),
        });
        bytesBehind = done.bytesBehind;
      }
      // From here on the target is the primary: record it first, so that a failure below (a
      // replica that cannot be repointed) never leaves the document naming the old one.
      setShardPrimary(
        this.#ctx.plane.document,
        region,
        {
          shard: shard.shard,
          node: target.id,
          kind: 'switchover',
          message: `${region}/${shard.shard}: ${target.id} is primary (was ${old?.id ?? 'none'}; ${mode}${pauseMs === null ? '' : `, writes paused ${pauseMs} ms`}${bytesBehind ? `, ${bytesBehind} bytes lost` : ''})`,
        },
        { region, operationId },
      );
      this.#ctx.onTopologyChange();
      await persistRole(targetClient);
      const repointed: string[] = [];
      const notRepointed: { node: string; error: string }[] = [];
      let clientsDisconnected = 0;
      for (const node of shard.replicas.filter((n) => n.id !== target.id).concat(old ?? [])) {
        // The old primary already follows the target after a safe switchover; REPLICAOF to the
        // same primary is a no-op, so it is not special-cased.
        try {
          const c = client(node.id);
          await repointReplica(c, { host: target.host, port: target.port });
          await persistRole(c);
          if (node.id === old?.id) clientsDisconnected = await disconnectApplicationClients(c);
          repointed.push(node.id);
        } catch (err) {
          notRepointed.push({ node: node.id, error: (err as Error).message });
        }
      }
      this.#log.info(
        { shard: shard.shard, from: old?.id, to: target.id, mode, pauseMs, bytesBehind },
        'switchover done',
      );
      return {
        shard: shard.shard,
        from: old?.id ?? null,
        to: target.id,
        mode,
        pauseMs,
        bytesBehind,
        repointed,
        notRepointed,
        clientsDisconnected,
      };
    } finally {
      for (const c of clients) c.disconnect();
    }
  }
}

/** Runs `fn` over `items` with at most `limit` at a time, keeping the order of results. */
async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
