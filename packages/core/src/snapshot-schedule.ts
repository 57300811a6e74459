/**
 * Snapshot schedules: what a schedule is, how a request for one is validated, and the slot
 * arithmetic every agent must agree on. A slot is one firing time of the cron expression (Unix
 * ms); agents of a region compute the same slots from the same schedule, which is what lets them
 * lease a slot so that it runs once.
 *
 * Cron parsing is croner's (5 fields, or 6 with seconds first); nothing here parses cron itself.
 * Validation runs in the CLI (to fail before the network) and again in the agent that stores
 * the schedule (the authority: requests can come from anyone with publish rights).
 */
import { isTimeZone } from './maintenance-window.js';
import { Cron } from 'croner';
import { UsageError } from './errors.js';
import { isValidName } from './ids.js';

/** Which node of the region a scheduled export reads from. */
export type SchedulePreference = 'replica-first' | 'replica-only' | 'primary';
/** Where a schedule's snapshots go; null in a schedule means the region's configured store. */
export type ScheduleStoreKind = 'object-store' | 'directory';

export const SCHEDULE_PREFERENCES: readonly SchedulePreference[] = [
  'replica-first',
  'replica-only',
  'primary',
];
export const SCHEDULE_STORES: readonly ScheduleStoreKind[] = ['object-store', 'directory'];

/**
 * How many snapshots of a schedule a region keeps. A snapshot is kept when any rule keeps it;
 * both null means keep all. The newest snapshot is kept whatever the rules say.
 */
export interface ScheduleRetention {
  keepLast: number | null;
  /** As given (`7d`, `12h`), for display. */
  keepWithin: string | null;
  keepWithinMs: number | null;
}

/** A snapshot schedule as stored in the group document (one JSON string per id). */
export interface SnapshotSchedule {
  id: string;
  /** The region whose agent runs it, or null for every member region (`--all-regions`). */
  region: string | null;
  prefer: SchedulePreference;
  /** 5 fields, or 6 with seconds first. */
  cron: string;
  /** IANA time zone the cron expression is read in. */
  timeZone: string;
  retention: ScheduleRetention;
  /** Snapshot names are `<prefix>-<region>-<slot time, UTC>`. */
  namePrefix: string;
  store: ScheduleStoreKind | null;
  paused: boolean;
  createdAt: number;
  createdBy: string;
  updatedAt: number;
  /**
   * When it was last resumed: slots before it were skipped on purpose and are not reported as
   * missed. Null when never paused.
   */
  resumedAt: number | null;
}

/** A schedule request as the CLI sends it (strings from the command line are accepted). */
export interface ScheduleRequest {
  id?: unknown;
  region?: unknown;
  allRegions?: unknown;
  prefer?: unknown;
  cron?: unknown;
  timeZone?: unknown;
  keepLast?: unknown;
  keepWithin?: unknown;
  keepAll?: unknown;
  namePrefix?: unknown;
  store?: unknown;
  paused?: unknown;
}

/** The last run of a schedule in one region, from the ledger. */
export interface ScheduleRunView {
  operationId: string;
  /** The slot (Unix ms) for a cron run; null for `schedule run`. */
  slot: number | null;
  trigger: 'cron' | 'manual';
  status: 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  startedAt: number | null;
  finishedAt: number | null;
  /** Snapshot name, size and export time of a successful run. */
  name: string | null;
  size: number | null;
  durationMs: number | null;
  error: { code: string; message: string; hint?: string } | null;
}

/** One schedule as one region's agent runs it: part of that region's status report. */
export interface ScheduleStatus {
  id: string;
  cron: string;
  timeZone: string;
  paused: boolean;
  /** Next slot (Unix ms), null when paused or when the expression never fires again. */
  nextRunAt: number | null;
  /** A run of this agent is in progress. */
  running: boolean;
  /** The newest finished run: the schedule's last result in this region. */
  lastRun: ScheduleRunView | null;
  lastSuccessAt: number | null;
  /** Slots this agent declared missed since it started. */
  missedSinceStart: number;
  /** The last problem that kept a slot from being considered (lease store unreachable), or null. */
  problem: string | null;
}

/** The largest keep-last. */
const MAX_KEEP_LAST = 10_000;
const ID_RE = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;
const PREFIX_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DURATION_UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

function usage(code: string, message: string, hint: string): UsageError {
  return new UsageError(code, message, { hint });
}

/**
 * Parses a duration such as `90s`, `15m`, `12h`, `7d`, `2w` or `1d12h` into ms.
 *
 * @throws UsageError `schedule.bad-retention` for anything else.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  const parts = [...trimmed.matchAll(/(\d+)\s*([smhdw])/g)];
  const rebuilt = parts.map((p) => p[0]).join('');
  if (parts.length === 0 || rebuilt.replace(/\s/g, '') !== trimmed.replace(/\s/g, '')) {
    throw usage(
      'schedule.bad-retention',
      `--keep-within ${JSON.stringify(text)} is not a duration`,
      'write a number and a unit: s, m, h, d or w (e.g. 36h, 7d, 1d12h)',
    );
  }
  return parts.reduce((ms, p) => ms + Number(p[1]) * (DURATION_UNITS[p[2] ?? 's'] ?? 0), 0);
}

/** `5000` → `5s`, `129600000` → `1d12h`: for messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let rest = Math.round(ms / 1000);
  const out: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      out.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return out.join('');
}

/** The croner job of a schedule, never started (only used to compute times). */
export function cronOf(schedule: Pick<SnapshotSchedule, 'cron' | 'timeZone'>): Cron {
  return new Cron(schedule.cron, {
    timezone: schedule.timeZone,
    paused: true,
    mode: '5-or-6-parts',
  });
}

/** The latest slot at or before `now`, or null when there is none. */
export function latestSlot(cron: Cron, now: number): number | null {
  return cron.previousRuns(1, new Date(now + 1))[0]?.getTime() ?? null;
}

/** The first slot after `after`, or null when the expression never fires again. */
export function nextSlot(cron: Cron, after: number): number | null {
  return cron.nextRun(new Date(after))?.getTime() ?? null;
}

/**
 * The slots strictly after `from` and strictly before `to`, oldest first, at most `limit` of
 * them; `more` says whether the limit cut the list (an outage of a frequent schedule).
 */
export function slotsBetween(
  cron: Cron,
  from: number,
  to: number,
  limit = 10_000,
): { slots: number[]; more: boolean } {
  const slots: number[] = [];
  let at = from;
  for (;;) {
    const next = nextSlot(cron, at);
    if (next === null || next >= to) return { slots, more: false };
    if (slots.length === limit) return { slots, more: true };
    slots.push(next);
    at = next;
  }
}

/** The largest gap between two consecutive slots among the next `count`, or null if fewer than two. */
function largestGap(cron: Cron, from: number, count = 24): number | null {
  const runs = cron.nextRuns(count, new Date(from)).map((d) => d.getTime());
  let gap: number | null = null;
  for (let i = 1; i < runs.length; i++) gap = Math.max(gap ?? 0, runs[i]! - runs[i - 1]!);
  return gap;
}

/** `<prefix>-<region>-<YYYYMMDDTHHMMSSZ>` of a slot (or of the time of a manual run + `-manual`). */
export function scheduledSnapshotName(
  schedule: Pick<SnapshotSchedule, 'namePrefix'>,
  region: string,
  at: number,
  manual = false,
): string {
  const stamp = new Date(at)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
  return `${schedule.namePrefix}-${region}-${stamp}${manual ? '-manual' : ''}`;
}

/** Validates a schedule id; throws `schedule.invalid-id`. */
export function validateScheduleId(id: unknown): string {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw usage(
      'schedule.invalid-id',
      `schedule id ${JSON.stringify(id)} is not valid`,
      "use 1-48 lower-case letters, digits or '-', starting and ending with a letter or digit (e.g. nightly)",
    );
  }
  return id;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const flag = (v: unknown): boolean => v === true || v === 'true';

/**
 * Validates a schedule request and returns the schedule it describes (without the bookkeeping
 * fields). Every refusal is a {@link UsageError} with a `schedule.*` code saying what to change.
 * Membership of the region is checked by the agent, which knows the group.
 *
 * @example validateScheduleRequest({ id: 'nightly', region: 'eu-west', cron: '0 3 * * *', keepLast: 7 })
 */
export function validateScheduleRequest(
  request: ScheduleRequest,
  now = Date.now(),
): Omit<SnapshotSchedule, 'createdAt' | 'createdBy' | 'updatedAt' | 'resumedAt'> {
  const id = validateScheduleId(request.id);
  const region = text(request.region) ?? null;
  const allRegions = flag(request.allRegions);
  if ((region === null) === !allRegions) {
    throw usage(
      'schedule.bad-target',
      region === null
        ? 'say which region the schedule snapshots: --region NAME or --all-regions'
        : `--region ${region} and --all-regions exclude each other`,
      'give exactly one of --region NAME and --all-regions',
    );
  }
  if (region !== null && !isValidName(region)) {
    throw usage(
      'schedule.bad-target',
      `${JSON.stringify(region)} is not a region name`,
      'region names are 1-32 lower-case letters, digits or - (georep status lists them)',
    );
  }
  const prefer = text(request.prefer) ?? 'replica-first';
  if (!SCHEDULE_PREFERENCES.includes(prefer as SchedulePreference)) {
    throw usage(
      'schedule.bad-preference',
      `--prefer ${prefer} is not a node preference`,
      `use one of ${SCHEDULE_PREFERENCES.join(', ')}`,
    );
  }
  const store = text(request.store) ?? null;
  if (store !== null && !SCHEDULE_STORES.includes(store as ScheduleStoreKind)) {
    throw usage(
      'schedule.bad-store',
      `--store ${store} is not a snapshot store`,
      `use ${SCHEDULE_STORES.join(' or ')}, or leave it out for the region's configured store`,
    );
  }
  const namePrefix = text(request.namePrefix) ?? id;
  if (!PREFIX_RE.test(namePrefix)) {
    throw usage(
      'schedule.bad-name-prefix',
      `name prefix ${JSON.stringify(namePrefix)} is not valid in snapshot names`,
      "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    );
  }
  const timeZone = text(request.timeZone) ?? 'UTC';
  if (!isTimeZone(timeZone)) {
    throw usage(
      'schedule.bad-time-zone',
      `time zone ${JSON.stringify(timeZone)} is unknown`,
      'use an IANA time zone such as UTC, Europe/Berlin or America/New_York',
    );
  }
  const expression = text(request.cron)?.trim() ?? '';
  let cron: Cron;
  try {
    cron = cronOf({ cron: expression, timeZone });
  } catch (err) {
    throw usage(
      'schedule.bad-cron',
      `cron expression ${JSON.stringify(expression)} is not valid: ${(err as Error).message.replace(/^CronPattern: /, '')}`,
      'use 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; e.g. "0 3 * * *" daily at 03:00, "*/30 * * * * *" every 30 s',
    );
  }
  if (nextSlot(cron, now) === null) {
    throw usage(
      'schedule.never-runs',
      `cron expression "${expression}" never fires after ${new Date(now).toISOString()}`,
      'check the day and month fields (e.g. 30 February never happens)',
    );
  }
  const retention = validateRetention(request, cron, now);
  return {
    id,
    region,
    prefer: prefer as SchedulePreference,
    cron: expression,
    timeZone,
    retention,
    namePrefix,
    store: store as ScheduleStoreKind | null,
    paused: flag(request.paused),
  };
}

function validateRetention(request: ScheduleRequest, cron: Cron, now: number): ScheduleRetention {
  const keepAll = flag(request.keepAll);
  const lastGiven = request.keepLast !== undefined && request.keepLast !== null;
  const withinGiven = request.keepWithin !== undefined && request.keepWithin !== null;
  if (keepAll && (lastGiven || withinGiven)) {
    throw usage(
      'schedule.retention-conflict',
      `--keep-all keeps every snapshot, which contradicts ${lastGiven ? '--keep-last' : '--keep-within'}`,
      'keep --keep-all alone, or drop it and keep --keep-last and/or --keep-within',
    );
  }
  if (!keepAll && !lastGiven && !withinGiven) {
    throw usage(
      'schedule.retention-required',
      'say how many snapshots the schedule keeps',
      'add --keep-last N and/or --keep-within DURATION (e.g. --keep-last 7), or --keep-all to keep every snapshot',
    );
  }
  let keepLast: number | null = null;
  if (lastGiven) {
    const n = typeof request.keepLast === 'string' ? Number(request.keepLast) : request.keepLast;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_KEEP_LAST) {
      throw usage(
        'schedule.bad-retention',
        `--keep-last ${String(request.keepLast)} is not a whole number from 1 to ${MAX_KEEP_LAST}`,
        'the newest snapshot is always kept, so the smallest useful value is 1',
      );
    }
    keepLast = n;
  }
  let keepWithin: string | null = null;
  let keepWithinMs: number | null = null;
  if (withinGiven) {
    keepWithin = String(request.keepWithin).trim();
    keepWithinMs = parseDuration(keepWithin);
    if (keepWithinMs < 1000) {
      throw usage(
        'schedule.bad-retention',
        `--keep-within ${keepWithin} is shorter than a second`,
        'give at least 1s (e.g. 7d)',
      );
    }
    const gap = largestGap(cron, now);
    if (gap !== null && keepWithinMs < gap) {
      throw usage(
        'schedule.retention-conflict',
        `--keep-within ${keepWithin} is shorter than the ${formatDuration(gap)} between two runs of the schedule: it would never keep more than the newest snapshot`,
        `raise --keep-within to at least ${formatDuration(gap)}, or use --keep-last 1 to keep only the newest`,
      );
    }
  }
  return { keepLast, keepWithin, keepWithinMs };
}
