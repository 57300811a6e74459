/**
 * One run of a snapshot schedule in this region: export a node (the schedule's preference: a
 * healthy replica first by default), catalogue the snapshot with the schedule's id, then apply
 * the schedule's retention. The caller records it as an operation of the ledger; this returns
 * the result (name, size, durations, what retention deleted) or throws the run's error.
 *
 * Retention only considers snapshots catalogued with the schedule's id in this region (a
 * snapshot made by hand, or by another schedule, is never touched), and the newest of them is
 * always kept, whatever the policy says (see `snapshotsToDelete` in core).
 */
import {
  scheduledSnapshotName,
  serializeError,
  snapshotsToDelete,
  toGeorepError,
  type GeorepError,
  type Logger,
  type SnapshotSchedule,
} from '@georep/core';
import type { GroupPlane } from './group-plane.js';
import type { ScheduleMetrics } from './schedule-metrics.js';
import type { SnapshotPlane } from './snapshot-plane.js';

/** What a run needs from the agent. */
export interface RunContext {
  region: string;
  /** The agent's id, recorded in the result: which agent of the region ran the slot. */
  agentId: string;
  plane: GroupPlane;
  snapshots: SnapshotPlane;
  log: Logger;
  metrics: ScheduleMetrics;
  /** Throws `region.busy` while a switchover or failover holds the region's nodes. */
  assertNotBusy: (what: string) => void;
}

/** What to run: the slot (null for `schedule run`), and an error that refuses it up front. */
export interface RunRequest {
  schedule: SnapshotSchedule;
  slot: number | null;
  operationId: string;
  /** The run fails with this (e.g. its lease could not be written), still counted and logged. */
  refused?: unknown;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** See the module comment. */
export async function runScheduledSnapshot(
  ctx: RunContext,
  request: RunRequest,
): Promise<Record<string, unknown>> {
  const { schedule, slot, operationId } = request;
  const started = Date.now();
  const fields = { schedule: schedule.id, slot: slot === null ? 'manual' : iso(slot), operationId };
  ctx.log.info(fields, 'scheduled snapshot started');
  try {
    if (request.refused !== undefined) throw toGeorepError(request.refused);
    ctx.assertNotBusy('a scheduled snapshot');
    const node = ctx.snapshots.chooseNode(undefined, schedule.prefer);
    const name = scheduledSnapshotName(schedule, ctx.region, slot ?? started, slot === null);
    const meta = await ctx.snapshots.export(
      {
        name,
        ...(schedule.store === null ? {} : { store: schedule.store }),
        labels: { schedule: schedule.id, slot, trigger: slot === null ? 'manual' : 'cron' },
      },
      node,
      operationId,
    );
    const exportMs = Date.now() - started;
    const retention = await applyRetention(ctx, schedule, operationId);
    const durationMs = Date.now() - started;
    ctx.metrics.runs.inc({ schedule: schedule.id, result: 'succeeded' });
    ctx.log.info(
      { ...fields, name, node: node.id, bytes: meta.size, durationMs, deleted: retention.deleted },
      'scheduled snapshot succeeded',
    );
    return {
      schedule: schedule.id,
      region: ctx.region,
      slot,
      agent: ctx.agentId,
      name,
      node: node.id,
      size: meta.size,
      keys: meta.keys,
      pointInTime: meta.pointInTime,
      exportMs,
      durationMs,
      deleted: retention.deleted,
      ...(retention.errors.length === 0 ? {} : { retentionErrors: retention.errors }),
    };
  } catch (err) {
    const wire = serializeError(err);
    ctx.metrics.runs.inc({ schedule: schedule.id, result: 'failed' });
    ctx.metrics.failures.inc({ schedule: schedule.id });
    ctx.log.warn(
      { ...fields, code: wire.code, durationMs: Date.now() - started },
      `scheduled snapshot failed: ${wire.message}`,
    );
    throw err;
  }
}

/**
 * Deletes the schedule's snapshots of this region that its retention no longer keeps, from their
 * store and the catalog (recorded under `operationId`). A failed delete does not fail the run:
 * it is returned (and logged), and the next run tries again.
 */
export async function applyRetention(
  ctx: Pick<RunContext, 'region' | 'plane' | 'snapshots' | 'log'>,
  schedule: SnapshotSchedule,
  operationId: string,
): Promise<{ deleted: string[]; errors: string[] }> {
  const own = ctx.plane.document
    .snapshots()
    .filter((s) => s.schedule === schedule.id && s.region === ctx.region)
    .map((s) => ({
      name: String(s.name),
      createdAt: Number(s.createdAt),
      store: typeof s.store === 'string' ? s.store : '',
    }));
  const deleted: string[] = [];
  const errors: string[] = [];
  for (const doomed of snapshotsToDelete(own, schedule.retention, Date.now())) {
    const kind = ctx.snapshots.kindAt(doomed.store);
    if (kind === undefined) {
      errors.push(`${doomed.name}: in ${doomed.store}, not a store of this agent`);
      continue;
    }
    try {
      await ctx.snapshots.delete(doomed.name, operationId, kind);
      deleted.push(doomed.name);
    } catch (err) {
      // Another agent of the region may have deleted it first: that is the same outcome.
      if ((err as GeorepError).code === 'snapshot.not-found') continue;
      errors.push(`${doomed.name}: ${(err as Error).message}`);
    }
  }
  if (errors.length > 0) {
    ctx.log.warn({ schedule: schedule.id, errors }, 'retention could not delete every snapshot');
  }
  return { deleted, errors };
}
