/**
 * Per-region facts of the control plane beyond membership: which node is each shard's primary
 * (so that a restarted agent, and every other region, knows which of two nodes claiming to be
 * primary is the legitimate one), where the region's traffic is routed (regional failover), its
 * maintenance window, and cancelling a scheduled operation. Each region's agent writes only its
 * own region's entry, except routing, which a voted or forced operation writes.
 */
import { ConflictError, DEFAULT_SHARD, NotFoundError } from '@georep/core';
import type { GroupDocument } from './group-document.js';
import type { MaintenanceWindow, ResyncDoc, ResyncLoad } from './schema.js';

/** Who made a change, for the history. */
export interface ChangeBy {
  region: string;
  operationId: string | null;
}

/** shard → node id of its primary, as recorded; empty when never recorded. */
export function shardPrimaries(doc: GroupDocument, region: string): Record<string, string> {
  return { ...(doc.doc.regions[region]?.primaries ?? {}) };
}

/**
 * Records `node` as the primary of `shard` in `region` and writes `message` to the history under
 * `kind` (e.g. `switchover`, `failover.auto`). A no-op for an unknown region.
 */
export function setShardPrimary(
  doc: GroupDocument,
  region: string,
  change: { shard: string; node: string; kind: string; message: string },
  by: ChangeBy,
): void {
  if (doc.doc.regions[region] === undefined) return;
  doc.change(`${region}: ${change.shard} primary ${change.node}`, (d) => {
    const entry = d.regions[region];
    if (entry === undefined) return;
    if (entry.primaries === undefined) entry.primaries = {};
    entry.primaries[change.shard] = change.node;
    d.history.push({
      at: Date.now(),
      region: by.region,
      kind: change.kind,
      message: change.message,
      operationId: by.operationId,
    });
  });
}

/** The shard names `region`'s agent recorded, sorted; the default shard alone when none were. */
export function regionShards(doc: GroupDocument, region: string): string[] {
  const recorded = doc.doc.regions[region]?.shards;
  return recorded === undefined || recorded.length === 0 ? [DEFAULT_SHARD] : [...recorded];
}

/**
 * Records `region`'s shard names (from its agent's configuration) when they differ from what the
 * document holds. A region with only the default shard needs no entry (that is what an absent
 * one means), so a one-shard group's document never changes for this. A no-op for an unknown
 * region.
 */
export function setRegionShards(doc: GroupDocument, region: string, shards: string[]): void {
  const sorted = [...new Set(shards)].sort();
  const entry = doc.doc.regions[region];
  if (entry === undefined) return;
  if (regionShards(doc, region).join(',') === sorted.join(',')) return;
  doc.change(`${region}: shards ${sorted.join(', ')}`, (d) => {
    const e = d.regions[region];
    if (e !== undefined) e.shards = sorted;
  });
}

/** The `link --resync` of `region` in progress, if any. */
export function resyncOf(doc: GroupDocument, region: string): ResyncDoc | null {
  const r = doc.doc.regions[region]?.resync;
  if (r == null) return null;
  const out: ResyncDoc = { from: r.from, operationId: r.operationId, previous: r.previous };
  const loads = Object.entries(r.loads ?? {});
  if (loads.length > 0) {
    out.loads = Object.fromEntries(
      loads.map(([shard, l]) => [
        shard,
        {
          node: { host: String(l.node.host), port: Number(l.node.port) },
          master: { host: String(l.master.host), port: Number(l.master.port) },
        },
      ]),
    );
  }
  return out;
}

/**
 * Records that the resync of `region` loads `shard` natively (or, with null, that the load is
 * over). A no-op when the region has no resync.
 */
export function setResyncLoad(
  doc: GroupDocument,
  region: string,
  shard: string,
  load: ResyncLoad | null,
): void {
  const current = doc.doc.regions[region]?.resync;
  if (current == null || (load === null && current.loads?.[shard] === undefined)) return;
  doc.change(`${region}: resync load of ${shard} ${load === null ? 'over' : 'started'}`, (d) => {
    const r = d.regions[region]?.resync;
    if (r == null) return;
    if (load !== null) {
      if (r.loads === undefined) r.loads = {};
      r.loads[shard] = { node: { ...load.node }, master: { ...load.master } };
    } else if (r.loads !== undefined) {
      delete r.loads[shard];
    }
  });
}

/** Sets or clears (null) the `link --resync` of `region`. A no-op for an unknown region. */
export function setResync(doc: GroupDocument, region: string, resync: ResyncDoc | null): void {
  if (doc.doc.regions[region] === undefined) return;
  doc.change(`${region}: resync ${resync === null ? 'done' : `from ${resync.from}`}`, (d) => {
    const e = d.regions[region];
    // The loads map is made with the entry: two agents each making it later would make two
    // maps, and the merge would keep one of them only.
    if (e !== undefined) e.resync = resync === null ? null : { loads: {}, ...resync };
  });
}

/** The region serving `region`'s traffic, or null when it serves its own. */
export function routedTo(doc: GroupDocument, region: string): string | null {
  return doc.doc.regions[region]?.routedTo ?? null;
}

/** True while `region`'s primaries must refuse application writes (see {@link setRouting}). */
export function writesFenced(doc: GroupDocument, region: string): boolean {
  return doc.doc.regions[region]?.writesFenced === true;
}

/**
 * Routes `region`'s traffic to `to` (null: back to itself) and sets whether its primaries refuse
 * application writes meanwhile; recorded in the history under `kind`.
 */
export function setRouting(
  doc: GroupDocument,
  region: string,
  change: { to: string | null; fenceWrites: boolean; kind: string },
  by: ChangeBy & { message: string },
): void {
  if (doc.doc.regions[region] === undefined) {
    throw new NotFoundError('region.not-found', `region ${region} is not a member of the group`);
  }
  doc.change(`${region}: routed to ${change.to ?? 'itself'}`, (d) => {
    const entry = d.regions[region];
    if (entry === undefined) return;
    entry.routedTo = change.to;
    entry.writesFenced = change.fenceWrites;
    d.history.push({
      at: Date.now(),
      region: by.region,
      kind: change.kind,
      message: by.message,
      operationId: by.operationId,
    });
  });
}

/** The maintenance window a region's agent published, or null. */
export function maintenanceWindowOf(doc: GroupDocument, region: string): MaintenanceWindow | null {
  const w = doc.doc.regions[region]?.maintenanceWindow;
  return w == null
    ? null
    : { start: w.start, durationMinutes: w.durationMinutes, timeZone: w.timeZone };
}

/** Publishes a region's configured window so that every agent and the CLI can show it. */
export function setMaintenanceWindow(
  doc: GroupDocument,
  region: string,
  window: MaintenanceWindow | null,
): void {
  const current = maintenanceWindowOf(doc, region);
  if (doc.doc.regions[region] === undefined) return;
  if (JSON.stringify(current) === JSON.stringify(window)) return;
  doc.change(`${region}: maintenance window`, (d) => {
    const entry = d.regions[region];
    if (entry !== undefined) entry.maintenanceWindow = window === null ? null : { ...window };
  });
}

/**
 * Cancels an operation that has not started. Throws `operation.not-found`, or
 * `operation.not-cancellable` when it is running or finished (a running switchover is not
 * interrupted half-way: it finishes or rolls back on its own).
 */
export function cancelOperation(doc: GroupDocument, id: string, by: { requestedBy: string }): void {
  const op = doc.operation(id);
  if (op === undefined) {
    throw new NotFoundError('operation.not-found', `no operation ${id} in the ledger`, {
      hint: 'list recent operations with georep history',
    });
  }
  if (op.status !== 'pending') {
    throw new ConflictError(
      'operation.not-cancellable',
      `operation ${id} is ${op.status}; only a pending (scheduled) operation can be cancelled`,
      {
        hint:
          op.status === 'running'
            ? 'a running switchover finishes or rolls back on its own; watch it with georep operation get'
            : 'nothing to cancel',
      },
    );
  }
  doc.updateOperation(id, {
    status: 'cancelled',
    error: { code: 'operation.cancelled', message: `cancelled by ${by.requestedBy}` },
  });
}
