/**
 * Runs this region's snapshot schedules. Every {@link TICK_MS} it looks at each schedule that
 * targets the region and is not paused; when the cron expression has a slot newer than the ones
 * already settled, it settles it through the region's leases (see schedule-lease.ts):
 *
 * 1. read the cursor (newest settled slot) of the schedule in this region;
 * 2. move it to the newest slot with a revision check: only one agent of the region wins, and a
 *    restarted agent finds the cursor where it was;
 * 3. slots between the old cursor and the newest one were not run by anyone: they are recorded as
 *    missed (one history event for the range). The newest slot too, when it is older than
 *    `schedules.missedGraceMs`;
 * 4. otherwise take the slot's lease (`kv.create`) and run it: an operation of the ledger that
 *    exports a node (a healthy replica first, unless the schedule says otherwise), catalogues the
 *    snapshot with the schedule's id, then applies the retention of the schedule.
 *
 * A run still in progress holds back the next slot of its schedule in this agent (it runs late,
 * within the grace, or is missed), so one slow export never piles up forks.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import {
  GeorepError,
  cronOf,
  latestSlot,
  makeLogger,
  nextSlot,
  serializeError,
  slotsBetween,
  type AgentConfig,
  type Logger,
  type OperationView,
  type ScheduleRunView,
  type ScheduleStatus,
  type SnapshotSchedule,
} from '@georep/core';
import {
  SCHEDULED_SNAPSHOT_KIND,
  listSchedules,
  recordMissedSlots,
  runKey,
  runViewOf,
  scheduleRunIndex,
  scheduleTargets,
  type ScheduleRunSummary,
  type ScheduledRunParams,
} from '@georep/group';
import type { GroupPlane } from './group-plane.js';
import type { OperationRunner } from './operations.js';
import { createScheduleMetrics, type ScheduleMetrics } from './schedule-metrics.js';
import { ScheduleLeases } from './schedule-lease.js';
import { runScheduledSnapshot } from './schedule-run.js';
import type { SnapshotPlane } from './snapshot-plane.js';

/** How often schedules are looked at: the delay between a slot and its export's start. */
const TICK_MS = 250;
/** How often the ledger is read again for runs made by other agents (status, metrics). */
const INDEX_REFRESH_MS = 10_000;

/** A schedule's croner job (never started: only used to compute times). */
type Cron = ReturnType<typeof cronOf>;

/** What the runner needs from the agent. */
export interface ScheduleRunnerContext {
  config: AgentConfig;
  plane: GroupPlane;
  runner: OperationRunner;
  snapshots: SnapshotPlane;
  /** This agent's id (`identity.id`): the holder of the leases it takes. */
  agentId: string;
  registry: Registry;
  /** Throws `region.busy` while a switchover or failover holds the region's nodes. */
  assertNotBusy: (what: string) => void;
}

/** What this agent knows about one schedule beyond the document. */
interface LocalState {
  /** Slots up to this one are settled as far as this agent is concerned. */
  handled: number | null;
  running: boolean;
  missed: number;
  problem: string | null;
  /** The slot the problem was logged for (one warning per slot). */
  problemSlot: number | null;
  lastRun: ScheduleRunView | null;
}

/** See the module comment. */
export class ScheduleRunner {
  readonly #ctx: ScheduleRunnerContext;
  readonly #log: Logger;
  readonly #metrics: ScheduleMetrics;
  readonly #states = new Map<string, LocalState>();
  readonly #crons = new Map<string, Cron>();
  #leases: ScheduleLeases | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** The tick in progress: {@link stop} waits for it, so no run starts after the agent stopped. */
  #ticking: Promise<void> | null = null;
  #stopped = false;
  #index = new Map<string, ScheduleRunSummary>();
  #indexHeads = '';
  #indexAt = 0;

  constructor(context: ScheduleRunnerContext) {
    this.#ctx = context;
    this.#log = makeLogger('schedules');
    this.#metrics = createScheduleMetrics(context.registry, () => this.status());
  }

  get #region(): string {
    return this.#ctx.config.region;
  }

  /** Starts running schedules over `nc` (leases need JetStream). */
  attach(nc: NatsConnection): void {
    this.#leases = new ScheduleLeases(nc, {
      group: this.#ctx.config.group,
      region: this.#region,
    });
    if (!this.#ctx.config.schedules.enabled) {
      this.#log.info({}, 'schedules are disabled in this agent (schedules.enabled: false)');
      return;
    }
    this.#timer = setInterval(() => void this.#tick(), TICK_MS);
  }

  /**
   * Stops looking at schedules and waits for the tick in progress. Runs in progress go on: the
   * operation runner's `idle()` waits for them.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#ticking;
  }

  /** The schedules this agent runs for its region, for its status report and metrics. */
  status(now = Date.now()): ScheduleStatus[] {
    this.#refreshIndex(now);
    return this.#mine().map((schedule) => {
      const state = this.#state(schedule.id);
      const summary = this.#index.get(runKey(schedule.id, this.#region));
      const lastRun = newer(state.lastRun, summary?.lastRun ?? null);
      const success = state.lastRun?.status === 'succeeded' ? state.lastRun.finishedAt : null;
      return {
        id: schedule.id,
        cron: schedule.cron,
        timeZone: schedule.timeZone,
        paused: schedule.paused,
        nextRunAt: schedule.paused ? null : this.nextRunOf(schedule, now),
        running: state.running,
        lastRun,
        lastSuccessAt: maxOrNull(success, summary?.lastSuccessAt ?? null),
        missedSinceStart: state.missed,
        problem: this.#ctx.config.schedules.enabled
          ? state.problem
          : 'not run by this agent: schedules.enabled is false in its configuration',
      };
    });
  }

  /** The next slot of a schedule after `now`, or null. */
  nextRunOf(schedule: SnapshotSchedule, now = Date.now()): number | null {
    return nextSlot(this.#cron(schedule), now);
  }

  /**
   * Runs a schedule now, outside its cron (`georep snapshot schedule run`): an operation of the
   * ledger, idempotent by client token; no slot and no lease (one request, one run).
   */
  runNow(
    schedule: SnapshotSchedule,
    request: { clientToken: string | null; requestedBy: string },
  ): OperationView {
    return this.#start(schedule, null, request);
  }

  /** Schedules that run in this region: its own, and every-region ones while it is linked. */
  #mine(): SnapshotSchedule[] {
    const linked = this.#ctx.plane.linkState === 'linked';
    return listSchedules(this.#ctx.plane.document).filter(
      (s) => scheduleTargets(s, this.#region) && (s.region !== null || linked),
    );
  }

  #state(id: string): LocalState {
    let state = this.#states.get(id);
    if (state === undefined) {
      state = {
        handled: null,
        running: false,
        missed: 0,
        problem: null,
        problemSlot: null,
        lastRun: null,
      };
      this.#states.set(id, state);
      this.#metrics.touch(id);
    }
    return state;
  }

  #cron(schedule: SnapshotSchedule): Cron {
    const key = `${schedule.cron}\u0000${schedule.timeZone}`;
    let cron = this.#crons.get(key);
    if (cron === undefined) {
      cron = cronOf(schedule);
      this.#crons.set(key, cron);
    }
    return cron;
  }

  /** Reads runs of other agents from the ledger, at a low rate and only when the document changed. */
  #refreshIndex(now: number): void {
    if (now - this.#indexAt < INDEX_REFRESH_MS && this.#indexAt !== 0) return;
    this.#indexAt = now;
    const heads = this.#ctx.plane.document.heads().join();
    if (heads === this.#indexHeads) return;
    this.#indexHeads = heads;
    try {
      this.#index = scheduleRunIndex(this.#ctx.plane.document);
    } catch (err) {
      this.#log.warn(
        { err: (err as Error).message },
        'could not read scheduled runs from the ledger',
      );
    }
  }

  async #tick(): Promise<void> {
    if (this.#ticking !== null || this.#stopped) return;
    const tick = (async () => {
      for (const schedule of this.#mine()) {
        if (this.#stopped) return;
        if (!schedule.paused) await this.#settle(schedule, Date.now());
      }
    })();
    this.#ticking = tick;
    try {
      await tick;
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'schedule tick failed');
    } finally {
      this.#ticking = null;
    }
  }

  /** Settles the newest slot of one schedule, if it is new (see the module comment). */
  async #settle(schedule: SnapshotSchedule, now: number): Promise<void> {
    const state = this.#state(schedule.id);
    const leases = this.#leases;
    if (state.running || leases === null) return;
    const cron = this.#cron(schedule);
    const latest = latestSlot(cron, now);
    if (latest === null || (state.handled !== null && latest <= state.handled)) return;
    // Slots before the schedule existed, or while it was paused, are nobody's to run.
    const floor = Math.max(schedule.createdAt, schedule.resumedAt ?? 0);
    if (latest <= floor) {
      state.handled = latest;
      return;
    }
    const holder = { agent: this.#ctx.agentId };
    try {
      const cursor = await leases.cursor(schedule.id);
      const from = Math.max(cursor?.slot ?? floor, floor);
      if (latest <= from) {
        state.handled = latest;
        return;
      }
      const grace = this.#ctx.config.schedules.missedGraceMs;
      const runLatest = now - latest <= grace;
      const skipped = slotsBetween(cron, from, latest);
      if (!(await leases.advanceCursor(schedule.id, cursor, latest, holder))) {
        this.#log.debug(
          { schedule: schedule.id, slot: iso(latest) },
          'another agent took the slot',
        );
        return;
      }
      state.handled = latest;
      state.problem = null;
      const missed = runLatest || skipped.more ? skipped.slots : [...skipped.slots, latest];
      if (missed.length > 0) this.#recordMissed(schedule, missed, skipped.more, grace);
      if (!runLatest) return;
      let claimed: boolean;
      try {
        claimed = await leases.claimSlot(schedule.id, latest, holder);
      } catch (err) {
        // The cursor is ours but the lease cannot be written: the slot is not run, and says so.
        this.#start(schedule, latest, cronRequest(schedule), err);
        return;
      }
      if (!claimed) {
        this.#log.info({ schedule: schedule.id, slot: iso(latest) }, 'slot already leased');
        return;
      }
      this.#start(schedule, latest, cronRequest(schedule));
      leases.pruneSlots(schedule.id).catch((err: unknown) => {
        this.#log.debug({ err: (err as Error).message }, 'could not purge old slot leases');
      });
    } catch (err) {
      state.problem = (err as Error).message;
      if (state.problemSlot !== latest) {
        state.problemSlot = latest;
        this.#log.warn(
          { schedule: schedule.id, slot: iso(latest), code: (err as GeorepError).code },
          `slot not settled, retrying: ${state.problem}`,
        );
      }
    }
  }

  #recordMissed(schedule: SnapshotSchedule, slots: number[], more: boolean, grace: number): void {
    const state = this.#state(schedule.id);
    state.missed += slots.length;
    this.#metrics.missed.inc({ schedule: schedule.id }, slots.length);
    const reason = `no agent of ${this.#region} ran them within schedules.missedGraceMs (${grace} ms)`;
    recordMissedSlots(this.#ctx.plane.document, {
      schedule: schedule.id,
      region: this.#region,
      slots,
      more,
      reason,
    });
    this.#log.warn(
      {
        schedule: schedule.id,
        missed: slots.length,
        first: iso(slots[0] ?? 0),
        last: iso(slots[slots.length - 1] ?? 0),
      },
      `snapshot schedule ${schedule.id}: slots missed: ${reason}`,
    );
  }

  /** Records a run in the ledger and starts it. */
  #start(
    schedule: SnapshotSchedule,
    slot: number | null,
    request: { clientToken: string | null; requestedBy: string },
    refused?: unknown,
  ): OperationView {
    const params: ScheduledRunParams = {
      schedule: schedule.id,
      region: this.#region,
      slot,
      trigger: slot === null ? 'manual' : 'cron',
    };
    const { operation, created } = this.#ctx.runner.recordTask(
      SCHEDULED_SNAPSHOT_KIND,
      { ...params },
      request,
    );
    if (!created) return operation;
    const state = this.#state(schedule.id);
    if (slot !== null) state.running = true;
    this.#ctx.runner.startTask(operation.id, async (operationId) => {
      // The ledger records the outcome after this returns; the status needs it at once.
      const finished = (update: Pick<OperationView, 'status' | 'result' | 'error'>) => {
        const op = this.#ctx.plane.document.operation(operationId);
        if (op === undefined) return;
        const run = runViewOf({ ...op, ...update, finishedAt: Date.now() });
        state.lastRun = newer(state.lastRun, run);
      };
      try {
        const result = await runScheduledSnapshot(
          {
            region: this.#region,
            agentId: this.#ctx.agentId,
            plane: this.#ctx.plane,
            snapshots: this.#ctx.snapshots,
            log: this.#log,
            metrics: this.#metrics,
            assertNotBusy: this.#ctx.assertNotBusy,
          },
          { schedule, slot, operationId, refused },
        );
        finished({ status: 'succeeded', result, error: null });
        return result;
      } catch (err) {
        const { code, message, hint } = serializeError(err);
        finished({
          status: 'failed',
          result: null,
          error: { code, message, ...(hint === undefined ? {} : { hint }) },
        });
        throw err;
      } finally {
        if (slot !== null) state.running = false;
      }
    });
    return this.#ctx.plane.document.operation(operation.id) ?? operation;
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

const cronRequest = (schedule: SnapshotSchedule) => ({
  clientToken: null,
  requestedBy: `schedule ${schedule.id}`,
});

const maxOrNull = (a: number | null, b: number | null): number | null =>
  a === null ? b : b === null ? a : Math.max(a, b);

/** The later of two runs (by slot, else start time); a finished copy beats an unfinished one. */
function newer(a: ScheduleRunView | null, b: ScheduleRunView | null): ScheduleRunView | null {
  if (a === null) return b;
  if (b === null) return a;
  if (a.operationId === b.operationId) return (a.finishedAt ?? 0) >= (b.finishedAt ?? 0) ? a : b;
  const at = (r: ScheduleRunView) => r.startedAt ?? r.slot ?? 0;
  return at(a) >= at(b) ? a : b;
}
