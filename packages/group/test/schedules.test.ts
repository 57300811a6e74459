import * as A from '@automerge/automerge';
import { describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, type SnapshotSchedule } from '@georep/core';
import {
  GroupDocument,
  SCHEDULED_SNAPSHOT_KIND,
  addSchedule,
  getSchedule,
  listSchedules,
  recordMissedSlots,
  removeSchedule,
  runKey,
  scheduleRunIndex,
  setSchedulePaused,
} from '@georep/group';

const founders = ['eu-west', 'us-east'];
const by = { region: 'eu-west', operationId: null };

function schedule(id: string, overrides: Partial<SnapshotSchedule> = {}): SnapshotSchedule {
  return {
    id,
    region: 'eu-west',
    prefer: 'replica-first',
    cron: '*/5 * * * * *',
    timeZone: 'UTC',
    retention: { keepLast: 2, keepWithin: null, keepWithinMs: null },
    namePrefix: id,
    store: null,
    paused: false,
    createdAt: 1000,
    createdBy: 'test',
    updatedAt: 1000,
    resumedAt: null,
    ...overrides,
  };
}

/** Merges `b`'s changes into `a` (both sides of a partition meeting again). */
function merge(a: GroupDocument, b: GroupDocument): void {
  a.replace(A.merge(A.clone(a.doc), b.doc));
}

describe('snapshot schedules in the group document', () => {
  it('schedules - add, list, pause, resume and remove, each in the history', () => {
    const doc = GroupDocument.create('g', founders);
    addSchedule(doc, schedule('b'), by);
    addSchedule(doc, schedule('a'), by);
    expect(listSchedules(doc).map((s) => s.id)).toEqual(['a', 'b']);
    expect(() => addSchedule(doc, schedule('a'), by)).toThrow(ConflictError);

    const paused = setSchedulePaused(doc, 'a', true, by);
    expect(paused.paused).toBe(true);
    const resumed = setSchedulePaused(doc, 'a', false, by);
    expect(resumed.paused).toBe(false);
    expect(resumed.resumedAt).toBeGreaterThan(0);

    removeSchedule(doc, 'b', by);
    expect(getSchedule(doc, 'b')).toBeUndefined();
    expect(() => removeSchedule(doc, 'b', by)).toThrow(NotFoundError);
    expect(doc.history().map((e) => e.kind)).toEqual([
      'schedule.added',
      'schedule.added',
      'schedule.paused',
      'schedule.resumed',
      'schedule.removed',
    ]);
  });

  it('schedules - concurrent edits of one schedule keep one whole version, never a mix', () => {
    const left = GroupDocument.create('g', founders);
    addSchedule(left, schedule('nightly'), by);
    const right = GroupDocument.load(left.save(), 'g');
    // Each side rewrites the whole schedule; different fields change on each side.
    setSchedulePaused(left, 'nightly', true, by);
    right.change('edit', (d) => {
      d.schedules.nightly = JSON.stringify(schedule('nightly', { cron: '0 3 * * *' }));
    });
    addSchedule(right, schedule('other'), by);
    merge(left, right);
    merge(right, left);
    const merged = getSchedule(left, 'nightly')!;
    expect(getSchedule(right, 'nightly')).toEqual(merged);
    // One side's version as a whole: either paused with the old cron, or the new cron unpaused.
    expect(
      (merged.paused && merged.cron === '*/5 * * * * *') ||
        (!merged.paused && merged.cron === '0 3 * * *'),
    ).toBe(true);
    expect(listSchedules(left).map((s) => s.id)).toEqual(['nightly', 'other']);
  });

  it('runs - the ledger gives the last run, last success and failures per schedule and region', () => {
    const doc = GroupDocument.create('g', founders);
    const run = (slot: number | null, region = 'eu-west') =>
      doc.createOperation({
        kind: SCHEDULED_SNAPSHOT_KIND,
        params: { schedule: 'a', region, slot, trigger: slot === null ? 'manual' : 'cron' },
        clientToken: null,
        requestedVia: region,
        requestedBy: 'schedule a',
      }).operation.id;
    const first = run(5000);
    doc.updateOperation(first, { status: 'running' });
    doc.updateOperation(first, { status: 'succeeded', result: { name: 'a-1', size: 10 } });
    const second = run(10_000);
    doc.updateOperation(second, { status: 'running' });
    doc.updateOperation(second, {
      status: 'failed',
      error: { code: 'snapshot.no-node', message: 'no node of region eu-west is up' },
    });
    run(5000, 'us-east');
    const index = scheduleRunIndex(doc);
    const summary = index.get(runKey('a', 'eu-west'))!;
    expect(summary).toMatchObject({ runs: 2, failures: 1, lastSlot: 10_000 });
    expect(summary.lastRun).toMatchObject({
      operationId: second,
      status: 'failed',
      error: { code: 'snapshot.no-node' },
    });
    expect(summary.lastSuccessAt).toBeGreaterThan(0);
    expect(index.get(runKey('a', 'us-east'))?.runs).toBe(1);
  });

  it('missed - a range of missed slots is one history event', () => {
    const doc = GroupDocument.create('g', founders);
    recordMissedSlots(doc, {
      schedule: 'a',
      region: 'eu-west',
      slots: [Date.parse('2026-01-01T00:00:05Z'), Date.parse('2026-01-01T00:00:10Z')],
      more: false,
      reason: 'the agent was down',
    });
    const [event] = doc.history();
    expect(event).toMatchObject({ kind: 'schedule.missed', region: 'eu-west' });
    expect(event!.message).toContain('2 slot(s) missed');
  });
});
