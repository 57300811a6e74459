/**
 * Retention of snapshot schedules as pure rules: which of a schedule's snapshots a policy
 * deletes, and how a policy reads in messages. The agent applies them after each run.
 */
import type { ScheduleRetention } from './snapshot-schedule.js';

/** A catalogued snapshot as retention sees it. */
export interface RetentionCandidate {
  name: string;
  createdAt: number;
}

/**
 * The snapshots a retention policy deletes, from the snapshots of one schedule in one region.
 * A snapshot is kept when it is among the `keepLast` newest or younger than `keepWithinMs`; the
 * newest is kept in every case (even when a rule would drop it, e.g. a clock that jumped). With
 * neither rule nothing is deleted.
 */
export function snapshotsToDelete<T extends RetentionCandidate>(
  snapshots: readonly T[],
  retention: Pick<ScheduleRetention, 'keepLast' | 'keepWithinMs'>,
  now: number,
): T[] {
  if (retention.keepLast === null && retention.keepWithinMs === null) return [];
  const newestFirst = [...snapshots].sort(
    (a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : -1),
  );
  return newestFirst.filter((s, index) => {
    if (index === 0) return false;
    if (retention.keepLast !== null && index < retention.keepLast) return false;
    if (retention.keepWithinMs !== null && s.createdAt >= now - retention.keepWithinMs)
      return false;
    return true;
  });
}

/** The retention policy in words: `last 7, within 2d`, or `all`. */
export function describeRetention(retention: ScheduleRetention): string {
  const parts = [
    retention.keepLast === null ? null : `last ${retention.keepLast}`,
    retention.keepWithin === null ? null : `within ${retention.keepWithin}`,
  ].filter((p) => p !== null);
  return parts.length === 0 ? 'all' : parts.join(', ');
}
