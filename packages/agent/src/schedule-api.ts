/**
 * The agent API verbs of snapshot schedules (`schedule.*`). Any agent stores, pauses, resumes and
 * removes schedules (they are group document edits); `schedule.run` goes to the agent of the
 * region that runs it. Requests are validated completely before anything is stored, so a refused
 * schedule leaves no trace.
 */
import {
  NotFoundError,
  UsageError,
  validateScheduleId,
  validateScheduleRequest,
  type SnapshotSchedule,
} from '@georep/core';
import {
  addSchedule,
  listSchedules,
  removeSchedule,
  requireSchedule,
  runKey,
  emptyRunSummary,
  scheduleRunIndex,
  scheduleTargets,
  setSchedulePaused,
  type ScheduleRunSummary,
} from '@georep/group';
import { requestedByOf } from './api-requests.js';
import type { GroupPlane } from './group-plane.js';
import type { ScheduleRunner } from './schedule-runner.js';

/** Verbs served on `georep.<group>.api.<verb>` and the region's API subjects. */
export const SCHEDULE_API_VERBS = [
  'schedule.add',
  'schedule.list',
  'schedule.remove',
  'schedule.pause',
  'schedule.resume',
  'schedule.run',
] as const;

/** A schedule as `schedule list` shows it: the schedule, its next slot, its runs per region. */
export interface ScheduleListEntry extends SnapshotSchedule {
  nextRunAt: number | null;
  regions: ({ region: string } & ScheduleRunSummary)[];
}

/** What the verbs need from the agent. */
export interface ScheduleApiContext {
  region: string;
  plane: GroupPlane;
  schedules: ScheduleRunner;
}

/** Answers one `schedule.*` verb (synchronously: runs continue in the background). */
export function scheduleApi(
  ctx: ScheduleApiContext,
  verb: string,
  body: Record<string, unknown>,
): unknown {
  const doc = ctx.plane.document;
  const by = { region: ctx.region, operationId: null };
  switch (verb) {
    case 'schedule.add': {
      const validated = validateScheduleRequest(body);
      if (validated.region !== null && doc.region(validated.region) === undefined) {
        throw new NotFoundError(
          'schedule.unknown-region',
          `region ${validated.region} is not a member of group ${doc.group}`,
          {
            hint: `members: ${doc
              .regions()
              .map((r) => r.name)
              .join(', ')}; use one of them, or --all-regions`,
          },
        );
      }
      const now = Date.now();
      const schedule: SnapshotSchedule = {
        ...validated,
        createdAt: now,
        createdBy: requestedByOf(body),
        updatedAt: now,
        resumedAt: null,
      };
      addSchedule(doc, schedule, by);
      return entryOf(ctx, schedule, new Map());
    }
    case 'schedule.list': {
      const index = scheduleRunIndex(doc);
      return { schedules: listSchedules(doc).map((s) => entryOf(ctx, s, index)) };
    }
    case 'schedule.remove':
      return removeSchedule(doc, idOf(body), by);
    case 'schedule.pause':
    case 'schedule.resume':
      return setSchedulePaused(doc, idOf(body), verb === 'schedule.pause', by);
    case 'schedule.run': {
      const schedule = requireSchedule(doc, idOf(body));
      if (!scheduleTargets(schedule, ctx.region)) {
        throw new UsageError(
          'schedule.not-targeted',
          `schedule ${schedule.id} snapshots ${schedule.region ?? 'every region'}, not ${ctx.region}`,
          { hint: `run it in its region: georep snapshot schedule run ${schedule.id}` },
        );
      }
      return ctx.schedules.runNow(schedule, {
        clientToken: typeof body.clientToken === 'string' ? body.clientToken : null,
        requestedBy: requestedByOf(body),
      });
    }
    default:
      throw new UsageError('usage.bad-request', `unknown schedule verb ${verb}`, {
        hint: 'use the georep CLI of the same version as the agents',
      });
  }
}

function idOf(body: Record<string, unknown>): string {
  return validateScheduleId(body.id);
}

function entryOf(
  ctx: ScheduleApiContext,
  schedule: SnapshotSchedule,
  index: Map<string, ScheduleRunSummary>,
): ScheduleListEntry {
  const doc = ctx.plane.document;
  const regions =
    schedule.region === null
      ? doc
          .regions()
          .filter((r) => r.linkState === 'linked')
          .map((r) => r.name)
      : [schedule.region];
  return {
    ...schedule,
    nextRunAt: schedule.paused ? null : ctx.schedules.nextRunOf(schedule),
    regions: regions.map((region) => ({
      region,
      ...(index.get(runKey(schedule.id, region)) ?? emptyRunSummary()),
    })),
  };
}
