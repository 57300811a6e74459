/**
 * Snapshot schedules in the group document: the `schedules` map holds one JSON string per
 * schedule id, so two concurrent edits of one schedule resolve to one whole version (never a mix
 * of fields), and edits of different schedules never conflict. Every change is in the history.
 *
 * Runs are ordinary operations of the ledger (kind {@link SCHEDULED_SNAPSHOT_KIND}); this module
 * also reads the ledger back into "last run per schedule and region".
 */
import {
  ConflictError,
  NotFoundError,
  validateScheduleId,
  type ScheduleRunView,
  type SnapshotSchedule,
} from '@georep/core';
import type { GroupDocument } from './group-document.js';
import type { ChangeBy } from './region-topology.js';

/** Ledger kind of a scheduled snapshot run (cron slot or `schedule run`). */
export const SCHEDULED_SNAPSHOT_KIND = 'snapshot.schedule';

/** Parameters of a run in the ledger. */
export interface ScheduledRunParams {
  schedule: string;
  region: string;
  /** The cron slot (Unix ms), or null for a manual run. */
  slot: number | null;
  trigger: 'cron' | 'manual';
}

/** Parses a stored schedule; null when the JSON is not one (written by a newer agent, or damaged). */
function parseSchedule(json: string): SnapshotSchedule | null {
  try {
    const value = JSON.parse(json) as Partial<SnapshotSchedule> | null;
    if (
      value === null ||
      typeof value.id !== 'string' ||
      typeof value.cron !== 'string' ||
      typeof value.timeZone !== 'string' ||
      typeof value.retention !== 'object' ||
      value.retention === null
    )
      return null;
    return value as SnapshotSchedule;
  } catch {
    return null;
  }
}

/** Every schedule, sorted by id. Unreadable entries are skipped. */
export function listSchedules(doc: GroupDocument): SnapshotSchedule[] {
  return Object.values(doc.doc.schedules ?? {})
    .map(parseSchedule)
    .filter((s): s is SnapshotSchedule => s !== null)
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** One schedule, or undefined. */
export function getSchedule(doc: GroupDocument, id: string): SnapshotSchedule | undefined {
  const json = doc.doc.schedules?.[id];
  return json === undefined ? undefined : (parseSchedule(json) ?? undefined);
}

/** The schedule, or `schedule.not-found`. */
export function requireSchedule(doc: GroupDocument, id: string): SnapshotSchedule {
  const schedule = getSchedule(doc, validateScheduleId(id));
  if (schedule === undefined) {
    throw new NotFoundError('schedule.not-found', `no snapshot schedule ${id} in the group`, {
      hint: 'georep snapshot schedule list shows the schedules',
    });
  }
  return schedule;
}

/** Whether `schedule` runs in `region`. */
export function scheduleTargets(schedule: SnapshotSchedule, region: string): boolean {
  return schedule.region === null || schedule.region === region;
}

/** Adds a schedule; `schedule.exists` when the id is taken. */
export function addSchedule(doc: GroupDocument, schedule: SnapshotSchedule, by: ChangeBy): void {
  if (getSchedule(doc, schedule.id) !== undefined) {
    throw new ConflictError(
      'schedule.exists',
      `a snapshot schedule ${schedule.id} already exists`,
      {
        hint: `choose another id, or remove it first: georep snapshot schedule remove ${schedule.id}`,
      },
    );
  }
  write(doc, schedule, 'schedule.added', `snapshot schedule ${schedule.id} added`, by);
}

/** Pauses or resumes a schedule; returns it. A no-op (no change) when it already is. */
export function setSchedulePaused(
  doc: GroupDocument,
  id: string,
  paused: boolean,
  by: ChangeBy,
): SnapshotSchedule {
  const current = requireSchedule(doc, id);
  if (current.paused === paused) return current;
  const now = Date.now();
  const next: SnapshotSchedule = {
    ...current,
    paused,
    updatedAt: now,
    resumedAt: paused ? current.resumedAt : now,
  };
  write(
    doc,
    next,
    paused ? 'schedule.paused' : 'schedule.resumed',
    `snapshot schedule ${id} ${paused ? 'paused' : 'resumed'}`,
    by,
  );
  return next;
}

/** Removes a schedule (its snapshots stay); `schedule.not-found` when there is none. */
export function removeSchedule(doc: GroupDocument, id: string, by: ChangeBy): SnapshotSchedule {
  const current = requireSchedule(doc, id);
  doc.change(`schedule ${id} removed`, (d) => {
    delete d.schedules[id];
    d.history.push({
      at: Date.now(),
      region: by.region,
      kind: 'schedule.removed',
      message: `snapshot schedule ${id} removed (its snapshots are kept)`,
      operationId: by.operationId,
    });
  });
  return current;
}

/** Records slots of a schedule that were not run (the agent was down, or busy past the grace). */
export function recordMissedSlots(
  doc: GroupDocument,
  missed: { schedule: string; region: string; slots: number[]; more: boolean; reason: string },
): void {
  const first = missed.slots[0];
  const last = missed.slots[missed.slots.length - 1];
  if (first === undefined || last === undefined) return;
  const count = `${missed.slots.length}${missed.more ? '+' : ''}`;
  const range =
    first === last
      ? new Date(first).toISOString()
      : `${new Date(first).toISOString()} to ${new Date(last).toISOString()}`;
  doc.record({
    at: Date.now(),
    region: missed.region,
    kind: 'schedule.missed',
    message: `snapshot schedule ${missed.schedule} in ${missed.region}: ${count} slot(s) missed (${range}): ${missed.reason}`,
    operationId: null,
  });
}

function write(
  doc: GroupDocument,
  schedule: SnapshotSchedule,
  kind: string,
  message: string,
  by: ChangeBy,
): void {
  doc.change(`schedule ${schedule.id}`, (d) => {
    // Older documents may lack the map (it is part of the genesis, but be lenient).
    if (d.schedules === undefined) d.schedules = {};
    d.schedules[schedule.id] = JSON.stringify(schedule);
    d.history.push({
      at: Date.now(),
      region: by.region,
      kind,
      message,
      operationId: by.operationId,
    });
  });
}

/** What the ledger says about one schedule in one region. */
export interface ScheduleRunSummary {
  /** The newest finished run (succeeded, failed or cancelled): the schedule's last result. */
  lastRun: ScheduleRunView | null;
  lastSuccessAt: number | null;
  /** Runs recorded, how many of them failed, and how many have not finished. */
  runs: number;
  failures: number;
  inProgress: number;
  /** The newest cron slot that has a run. */
  lastSlot: number | null;
}

/** The summary of a schedule in a region that has not run yet. */
export function emptyRunSummary(): ScheduleRunSummary {
  return {
    lastRun: null,
    lastSuccessAt: null,
    runs: 0,
    failures: 0,
    inProgress: 0,
    lastSlot: null,
  };
}

/** Key of {@link scheduleRunIndex}. */
export const runKey = (schedule: string, region: string): string => `${schedule}/${region}`;

/**
 * Reads every scheduled run of the ledger into a summary per `schedule/region` (see
 * {@link runKey}). It walks the whole ledger: call it on demand or at a low rate.
 */
export function scheduleRunIndex(doc: GroupDocument): Map<string, ScheduleRunSummary> {
  const index = new Map<string, ScheduleRunSummary>();
  for (const op of Object.values(doc.doc.operations)) {
    if (op.kind !== SCHEDULED_SNAPSHOT_KIND) continue;
    const view = doc.operation(op.id);
    if (view === undefined) continue;
    const schedule = view.params.schedule;
    const region = view.params.region;
    if (typeof schedule !== 'string' || typeof region !== 'string') continue;
    const key = runKey(schedule, region);
    const summary = index.get(key) ?? emptyRunSummary();
    const run = runViewOf(view);
    summary.runs += 1;
    if (run.status === 'failed') summary.failures += 1;
    const finished = run.status !== 'pending' && run.status !== 'running';
    if (!finished) summary.inProgress += 1;
    if (
      finished &&
      (summary.lastRun === null || startOf(run, view.createdAt) >= startOf(summary.lastRun, 0))
    )
      summary.lastRun = { ...run };
    if (run.status === 'succeeded' && run.finishedAt !== null)
      summary.lastSuccessAt = Math.max(summary.lastSuccessAt ?? 0, run.finishedAt);
    if (run.slot !== null) summary.lastSlot = Math.max(summary.lastSlot ?? 0, run.slot);
    index.set(key, summary);
  }
  return index;
}

/** When a run started (a pending run: its slot), to order runs of both triggers. */
const startOf = (run: ScheduleRunView, fallback: number): number =>
  run.startedAt ?? run.slot ?? fallback;

/** A ledger operation of kind {@link SCHEDULED_SNAPSHOT_KIND} as a run. */
export function runViewOf(op: {
  id: string;
  status: ScheduleRunView['status'];
  params: Record<string, unknown>;
  startedAt: number | null;
  finishedAt: number | null;
  createdAt?: number;
  result: Record<string, unknown> | null;
  error: ScheduleRunView['error'];
}): ScheduleRunView {
  const result = op.result ?? {};
  return {
    operationId: op.id,
    slot: typeof op.params.slot === 'number' ? op.params.slot : null,
    trigger: op.params.trigger === 'manual' ? 'manual' : 'cron',
    status: op.status,
    startedAt: op.startedAt ?? op.createdAt ?? null,
    finishedAt: op.finishedAt,
    name: typeof result.name === 'string' ? result.name : null,
    size: typeof result.size === 'number' ? result.size : null,
    durationMs: typeof result.durationMs === 'number' ? result.durationMs : null,
    error: op.error === null ? null : { ...op.error },
  };
}
