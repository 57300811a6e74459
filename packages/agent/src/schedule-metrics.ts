/**
 * Prometheus metrics of snapshot schedules, registered on the agent's registry. Gauges are read
 * from the schedules' status at scrape time (so they agree with `georep status` and survive
 * restarts: the last success comes from the ledger); counters count what this agent did since
 * it started.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ScheduleStatus } from '@georep/core';

/** The counters the schedule runner increments. */
export interface ScheduleMetrics {
  runs: Counter<'schedule' | 'result'>;
  failures: Counter<'schedule'>;
  missed: Counter<'schedule'>;
  /** Makes the counters of a schedule exist at 0, so alerts see it before its first failure. */
  touch: (schedule: string) => void;
}

/** Registers the schedule metrics; `status` is read on every scrape. */
export function createScheduleMetrics(
  registry: Registry,
  status: () => ScheduleStatus[],
): ScheduleMetrics {
  const fromStatus = (
    name: string,
    help: string,
    value: (s: ScheduleStatus) => number | null | undefined,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['schedule'],
      registers: [registry],
      collect() {
        this.reset();
        for (const s of status()) {
          const v = value(s);
          if (v !== null && v !== undefined) this.set({ schedule: s.id }, v);
        }
      },
    });
  fromStatus(
    'georep_snapshot_last_success_timestamp_seconds',
    'Unix time at which the last successful run of the schedule finished in this region',
    (s) => (s.lastSuccessAt === null ? null : s.lastSuccessAt / 1000),
  );
  fromStatus(
    'georep_snapshot_schedule_next_run_timestamp_seconds',
    'Unix time of the next slot of the schedule (absent while paused)',
    (s) => (s.nextRunAt === null ? null : s.nextRunAt / 1000),
  );
  fromStatus(
    'georep_snapshot_schedule_last_duration_seconds',
    'Duration of the last successful run (export, upload and retention)',
    (s) => (s.lastRun?.durationMs == null ? null : s.lastRun.durationMs / 1000),
  );
  fromStatus(
    'georep_snapshot_schedule_last_size_bytes',
    'Size of the snapshot of the last successful run',
    (s) => s.lastRun?.size,
  );
  fromStatus(
    'georep_snapshot_schedule_last_run_failed',
    'Whether the last finished run of the schedule failed (1) or succeeded (0)',
    (s) =>
      s.lastRun === null || (s.lastRun.status !== 'failed' && s.lastRun.status !== 'succeeded')
        ? null
        : s.lastRun.status === 'failed'
          ? 1
          : 0,
  );
  const runs = new Counter({
    name: 'georep_snapshot_schedule_runs_total',
    help: 'Scheduled snapshot runs finished by this agent, by result (succeeded, failed)',
    labelNames: ['schedule', 'result'],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'georep_snapshot_schedule_failures_total',
    help: 'Scheduled snapshot runs of this agent that failed',
    labelNames: ['schedule'],
    registers: [registry],
  });
  const missed = new Counter({
    name: 'georep_snapshot_schedule_missed_total',
    help: 'Slots of the schedule recorded as missed by this agent (no agent ran them within the grace period)',
    labelNames: ['schedule'],
    registers: [registry],
  });
  const touched = new Set<string>();
  return {
    runs,
    failures,
    missed,
    touch: (schedule) => {
      if (touched.has(schedule)) return;
      touched.add(schedule);
      failures.inc({ schedule }, 0);
      missed.inc({ schedule }, 0);
    },
  };
}
