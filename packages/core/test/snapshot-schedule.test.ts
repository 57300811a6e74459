import { describe, expect, it } from 'vitest';
import {
  UsageError,
  cronOf,
  formatDuration,
  latestSlot,
  nextSlot,
  parseDuration,
  scheduledSnapshotName,
  slotsBetween,
  snapshotsToDelete,
  validateScheduleRequest,
} from '@georep/core';

const NOW = Date.parse('2026-11-25T16:24:32.500Z');
const base = { id: 'nightly', region: 'eu-west', cron: '0 3 * * *', keepLast: 7 };

/** The code of the UsageError `fn` throws. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).hint).toBeTruthy();
    return (err as UsageError).code;
  }
  throw new Error('did not throw');
}

describe('snapshot schedule validation', () => {
  it('request - a valid request gets defaults: UTC, replica-first, the id as name prefix', () => {
    expect(validateScheduleRequest(base, NOW)).toEqual({
      id: 'nightly',
      region: 'eu-west',
      prefer: 'replica-first',
      cron: '0 3 * * *',
      timeZone: 'UTC',
      retention: { keepLast: 7, keepWithin: null, keepWithinMs: null },
      namePrefix: 'nightly',
      store: null,
      paused: false,
    });
    const all = validateScheduleRequest(
      {
        id: 'every5s',
        allRegions: true,
        cron: '*/5 * * * * *',
        keepLast: '2',
        keepWithin: '1h',
        prefer: 'replica-only',
        timeZone: 'Europe/Berlin',
        store: 'directory',
        namePrefix: 'fast',
        paused: true,
      },
      NOW,
    );
    expect(all).toMatchObject({
      region: null,
      retention: { keepLast: 2, keepWithin: '1h', keepWithinMs: 3_600_000 },
      prefer: 'replica-only',
      store: 'directory',
      paused: true,
    });
  });

  it('request - bad cron, time zone, target and names are refused with their codes', () => {
    expect(codeOf(() => validateScheduleRequest({ ...base, cron: '61 * * * *' }, NOW))).toBe(
      'schedule.bad-cron',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, cron: 'every day' }, NOW))).toBe(
      'schedule.bad-cron',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, cron: '0 0 0 * * * *' }, NOW))).toBe(
      'schedule.bad-cron',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, cron: '0 0 30 2 *' }, NOW))).toBe(
      'schedule.never-runs',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, timeZone: 'Mars/Base' }, NOW))).toBe(
      'schedule.bad-time-zone',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, region: undefined }, NOW))).toBe(
      'schedule.bad-target',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, allRegions: true }, NOW))).toBe(
      'schedule.bad-target',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, id: 'Bad Id' }, NOW))).toBe(
      'schedule.invalid-id',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, namePrefix: 'a/b' }, NOW))).toBe(
      'schedule.bad-name-prefix',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, prefer: 'fastest' }, NOW))).toBe(
      'schedule.bad-preference',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, store: 's3' }, NOW))).toBe(
      'schedule.bad-store',
    );
  });

  it('retention - missing, malformed and conflicting settings are refused', () => {
    const { keepLast: _, ...noRetention } = base;
    expect(codeOf(() => validateScheduleRequest(noRetention, NOW))).toBe(
      'schedule.retention-required',
    );
    for (const keepLast of [0, -1, 1.5, 'abc', 10_001]) {
      expect(codeOf(() => validateScheduleRequest({ ...base, keepLast }, NOW))).toBe(
        'schedule.bad-retention',
      );
    }
    expect(codeOf(() => validateScheduleRequest({ ...base, keepWithin: 'soon' }, NOW))).toBe(
      'schedule.bad-retention',
    );
    expect(codeOf(() => validateScheduleRequest({ ...base, keepAll: true }, NOW))).toBe(
      'schedule.retention-conflict',
    );
    // A daily schedule that keeps 12 hours would only ever keep the newest snapshot.
    expect(codeOf(() => validateScheduleRequest({ ...base, keepWithin: '12h' }, NOW))).toBe(
      'schedule.retention-conflict',
    );
    expect(validateScheduleRequest({ ...noRetention, keepAll: true }, NOW).retention).toEqual({
      keepLast: null,
      keepWithin: null,
      keepWithinMs: null,
    });
  });

  it('durations - units add up and print back', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1d12h')).toBe(36 * 3_600_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    expect(formatDuration(36 * 3_600_000)).toBe('1d12h');
    expect(formatDuration(5000)).toBe('5s');
    expect(() => parseDuration('12')).toThrow(UsageError);
    expect(() => parseDuration('1x')).toThrow(UsageError);
  });
});

describe('snapshot schedule slots', () => {
  it('slots - latest, next and the ones in between, seconds included', () => {
    const cron = cronOf({ cron: '*/5 * * * * *', timeZone: 'UTC' });
    const at30 = Date.parse('2026-11-25T16:24:30Z');
    expect(latestSlot(cron, NOW)).toBe(at30);
    expect(latestSlot(cron, at30)).toBe(at30);
    expect(nextSlot(cron, at30)).toBe(at30 + 5000);
    expect(slotsBetween(cron, at30 - 20_000, at30)).toEqual({
      slots: [at30 - 15_000, at30 - 10_000, at30 - 5000],
      more: false,
    });
    expect(slotsBetween(cron, at30 - 20_000, at30, 2)).toEqual({
      slots: [at30 - 15_000, at30 - 10_000],
      more: true,
    });
  });

  it('slots - the time zone decides the wall clock', () => {
    const cron = cronOf({ cron: '0 3 * * *', timeZone: 'America/New_York' });
    expect(new Date(nextSlot(cron, NOW)!).toISOString()).toBe('2026-11-26T08:00:00.000Z');
  });

  it('names - prefix, region and UTC slot time; manual runs are told apart', () => {
    const at = Date.parse('2026-11-25T16:24:30Z');
    expect(scheduledSnapshotName({ namePrefix: 'nightly' }, 'eu-west', at)).toBe(
      'nightly-eu-west-20261125T162430Z',
    );
    expect(scheduledSnapshotName({ namePrefix: 'nightly' }, 'eu-west', at, true)).toBe(
      'nightly-eu-west-20261125T162430Z-manual',
    );
  });
});

describe('snapshot schedule retention', () => {
  const snaps = [5, 4, 3, 2, 1].map((i) => ({ name: `s${i}`, createdAt: i * 1000 }));

  it('retention - keep-last keeps the newest n', () => {
    const doomed = snapshotsToDelete(snaps, { keepLast: 2, keepWithinMs: null }, 6000);
    expect(doomed.map((s) => s.name)).toEqual(['s3', 's2', 's1']);
  });

  it('retention - keep-within and keep-last together keep what either keeps', () => {
    const doomed = snapshotsToDelete(snaps, { keepLast: 1, keepWithinMs: 3500 }, 6000);
    expect(doomed.map((s) => s.name)).toEqual(['s2', 's1']);
  });

  it('retention - the newest snapshot is never deleted, even when no rule keeps it', () => {
    const doomed = snapshotsToDelete(snaps, { keepLast: null, keepWithinMs: 1000 }, 60_000);
    expect(doomed.map((s) => s.name)).toEqual(['s4', 's3', 's2', 's1']);
    expect(snapshotsToDelete(snaps, { keepLast: null, keepWithinMs: null }, 60_000)).toEqual([]);
  });
});
