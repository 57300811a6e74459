/**
 * `georep snapshot schedule ...`: cron schedules of snapshot exports, per region or for every
 * region, with retention. Schedules live in the group document (any agent stores them); each
 * region's agent runs its region's slots, at most once per slot. `run` exports at once, outside
 * the cron, as an operation of the ledger.
 *
 * Requests are validated here first (no network needed for a bad cron expression) and again by
 * the agent, which also knows the group's regions.
 */
import { Command, Option } from 'commander';
import {
  SCHEDULE_PREFERENCES,
  SCHEDULE_STORES,
  TimeoutError,
  deserializeError,
  describeRetention,
  isTerminalStatus,
  validateScheduleId,
  validateScheduleRequest,
  type OperationView,
  type ScheduleRunView,
  type ScheduleStatus,
  type SnapshotSchedule,
  type StatusReport,
} from '@georep/core';
import { connectGroup, type AgentClient } from '../agent-client.js';
import { formatBytes, printResult, renderTable } from '../format.js';
import { renderOperation, requestedBy, submitAndWait, type ChangeOptions } from './group.js';

/** A schedule as `schedule list` returns it (see the agent's `ScheduleListEntry`). */
interface ListEntry extends SnapshotSchedule {
  nextRunAt: number | null;
  regions: {
    region: string;
    lastRun: ScheduleRunView | null;
    lastSuccessAt: number | null;
    runs: number;
    failures: number;
    inProgress: number;
  }[];
}

const when = (ms: number | null): string =>
  ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** `succeeded 2026-11-25T16:24:30Z (name, 1.2M)` or `failed: message [code]`. */
export function describeRun(run: ScheduleRunView | null): string {
  if (run === null) return 'never ran';
  const at = when(run.finishedAt ?? run.startedAt ?? run.slot);
  if (run.status === 'succeeded') {
    return `succeeded ${at} (${run.name ?? '?'}, ${formatBytes(run.size ?? undefined)})`;
  }
  if (run.status === 'failed' && run.error !== null) {
    return `FAILED ${at}: ${run.error.message} [${run.error.code}]`;
  }
  return `${run.status} since ${at}`;
}

/** The answering region's schedules in `georep status`: next run and last result. */
export function renderSchedules(report: StatusReport): string {
  const schedules: ScheduleStatus[] =
    report.regions.find((r) => r.name === report.answeredBy)?.schedules ?? [];
  if (schedules.length === 0) return '';
  const rows = schedules.map((s) => [
    s.id,
    `${s.cron}${s.timeZone === 'UTC' ? '' : ` (${s.timeZone})`}`,
    s.paused ? 'paused' : s.running ? 'running' : when(s.nextRunAt),
    describeRun(s.lastRun),
    s.problem ?? (s.missedSinceStart === 0 ? '' : `${s.missedSinceStart} slot(s) missed`),
  ]);
  return `\n\nsnapshot schedules of ${report.answeredBy}\n${renderTable(
    ['SCHEDULE', 'CRON', 'NEXT RUN', 'LAST RESULT', 'PROBLEM'],
    rows,
  )}`;
}

function renderList(entries: ListEntry[]): string {
  if (entries.length === 0) return 'no snapshot schedules';
  return renderTable(
    ['ID', 'TARGET', 'CRON', 'TIME ZONE', 'KEEP', 'STATE', 'NEXT RUN', 'LAST RESULT'],
    entries.map((e) => [
      e.id,
      `${e.region ?? 'all regions'}${e.prefer === 'replica-first' ? '' : ` (${e.prefer})`}`,
      e.cron,
      e.timeZone,
      describeRetention(e.retention),
      e.paused ? 'paused' : 'active',
      when(e.nextRunAt),
      e.regions.length === 0
        ? '-'
        : e.regions
            .map(
              (r) =>
                `${e.region === null ? `${r.region}: ` : ''}${describeRun(r.lastRun)}${r.inProgress > 0 ? ' (running now)' : ''}`,
            )
            .join('; '),
    ]),
  );
}

interface AddOptions {
  cron: string;
  region?: string;
  allRegions?: boolean;
  prefer: string;
  timeZone: string;
  keepLast?: string;
  keepWithin?: string;
  keepAll?: boolean;
  namePrefix?: string;
  store?: string;
  paused?: boolean;
  json?: boolean;
}

function makeAdd(): Command {
  return new Command('add')
    .description('add a cron schedule of snapshot exports (validated before it is stored)')
    .argument('<id>', "schedule id: 1-48 lower-case letters, digits or '-'")
    .requiredOption(
      '--cron <expression>',
      '5 fields (minute hour dom month dow), or 6 with seconds first: "0 3 * * *", "*/30 * * * * *"',
    )
    .option('--region <name>', 'the region to snapshot')
    .option('--all-regions', 'snapshot every linked region (each agent its own)')
    .addOption(
      new Option('--prefer <node>', 'which node exports')
        .choices([...SCHEDULE_PREFERENCES])
        .default('replica-first'),
    )
    .option('--time-zone <zone>', 'IANA time zone the cron expression is read in', 'UTC')
    .option('--keep-last <n>', 'keep the n newest snapshots of the schedule (per region)')
    .option('--keep-within <duration>', 'keep snapshots younger than this (30m, 36h, 7d, 2w)')
    .option('--keep-all', 'keep every snapshot (no retention)')
    .option(
      '--name-prefix <prefix>',
      'snapshot names are <prefix>-<region>-<UTC time> (default: the id)',
    )
    .addOption(
      new Option(
        '--store <store>',
        "where snapshots go (default: the region's configured store)",
      ).choices([...SCHEDULE_STORES]),
    )
    .option('--paused', 'store it paused (resume it later)')
    .option('--json', 'print one JSON document (the stored schedule)')
    .action(async (id: string, opts: AddOptions, command: Command) => {
      const request = {
        id,
        cron: opts.cron,
        region: opts.region,
        allRegions: opts.allRegions === true,
        prefer: opts.prefer,
        timeZone: opts.timeZone,
        keepLast: opts.keepLast,
        keepWithin: opts.keepWithin,
        keepAll: opts.keepAll === true,
        namePrefix: opts.namePrefix,
        store: opts.store,
        paused: opts.paused === true,
      };
      // Refuse bad input before connecting; the agent validates again (and checks the region).
      validateScheduleRequest(request);
      const { client, group } = await connectGroup(command);
      await using _client = client;
      const entry = await client.api<ListEntry>(group, 'schedule.add', {
        ...request,
        requestedBy: requestedBy(),
      });
      printResult(
        opts.json,
        entry,
        () =>
          `schedule ${entry.id} added: ${entry.cron} (${entry.timeZone}) for ${entry.region ?? 'every region'}, keeps ${describeRetention(entry.retention)}; ` +
          (entry.paused ? 'paused' : `next run ${when(entry.nextRunAt)}`),
      );
    });
}

async function list(client: AgentClient, group: string): Promise<ListEntry[]> {
  return (await client.api<{ schedules: ListEntry[] }>(group, 'schedule.list', {})).schedules;
}

function makeList(): Command {
  return new Command('list')
    .description('schedules with their next run and last result per region')
    .option('--json', 'print one JSON document')
    .action(async (opts: { json?: boolean }, command: Command) => {
      const { client, group } = await connectGroup(command);
      await using _client = client;
      const entries = await list(client, group);
      printResult(opts.json, entries, () => renderList(entries));
    });
}

/** `remove`, `pause`, `resume`: one document edit by any agent. */
function makeEdit(verb: 'remove' | 'pause' | 'resume', description: string): Command {
  return new Command(verb)
    .description(description)
    .argument('<id>')
    .option('--json', 'print one JSON document (the schedule)')
    .action(async (id: string, opts: { json?: boolean }, command: Command) => {
      validateScheduleId(id);
      const { client, group } = await connectGroup(command);
      await using _client = client;
      const schedule = await client.api<SnapshotSchedule>(group, `schedule.${verb}`, {
        id,
        requestedBy: requestedBy(),
      });
      const done = verb === 'remove' ? 'removed (its snapshots are kept)' : `${verb}d`;
      printResult(opts.json, schedule, () => `schedule ${id} ${done}`);
    });
}

interface RunOptions extends ChangeOptions {
  region?: string;
}

function makeRun(): Command {
  return new Command('run')
    .description('export now, outside the cron (retention applies afterwards)')
    .argument('<id>')
    .option('--region <name>', 'for an every-region schedule: only this region (default: all)')
    .option('--json', 'print one JSON document (the operation, or one per region)')
    .option('--no-wait', 'return the operation at once')
    .option('--client-token <token>', 'idempotency token (per region for an every-region schedule)')
    .addOption(new Option('--wait-timeout <ms>', 'how long to wait').default('600000'))
    .action(async (id: string, opts: RunOptions, command: Command) => {
      validateScheduleId(id);
      const { client, group } = await connectGroup(command);
      const entry = await list(client, group)
        .then((all) => all.find((e) => e.id === id))
        .finally(() => client.close());
      if (entry === undefined) {
        // The agent says it with its own words (schedule.not-found).
        await submitAndWait(command, opts, 'schedule.run', { id });
        return;
      }
      const regions =
        opts.region !== undefined ? [opts.region] : entry.regions.map((r) => r.region);
      if (regions.length === 1) {
        await submitAndWait(command, opts, 'schedule.run', { id }, regions[0]);
        return;
      }
      await runInRegions(command, opts, id, regions);
    });
}

/** `run` of an every-region schedule: one operation per region, waited for together. */
async function runInRegions(
  command: Command,
  opts: RunOptions,
  id: string,
  regions: string[],
): Promise<void> {
  const { client, group } = await connectGroup(command);
  await using _client = client;
  const submitted = await Promise.all(
    regions.map((region) =>
      client.api<OperationView>(
        group,
        'schedule.run',
        {
          id,
          requestedBy: requestedBy(),
          ...(opts.clientToken === undefined
            ? {}
            : { clientToken: `${opts.clientToken}/${region}` }),
        },
        region,
      ),
    ),
  );
  const deadline = Date.now() + Number(opts.waitTimeout);
  const ops = submitted;
  while (opts.wait && ops.some((op) => !isTerminalStatus(op.status))) {
    if (Date.now() > deadline) {
      throw new TimeoutError(
        'operation.wait-timeout',
        `runs of schedule ${id} still going after ${opts.waitTimeout} ms: ${ops.map((o) => o.id).join(', ')}`,
        { hint: 'follow them with georep operation show ID --wait' },
      );
    }
    await new Promise((r) => setTimeout(r, 200));
    for (const [i, op] of ops.entries()) {
      if (isTerminalStatus(op.status)) continue;
      ops[i] = await client
        .api<OperationView>(group, 'op.get', { id: op.id }, op.requestedVia)
        .catch(() => op);
    }
  }
  printResult(opts.json, ops, () => ops.map(renderOperation).join('\n'));
  const failed = ops.find((op) => op.status === 'failed' && op.error !== null);
  if (failed?.error != null) {
    throw Object.assign(deserializeError({ kind: 'GeorepError', ...failed.error }), {
      alreadyReported: true,
    });
  }
}

/** `georep snapshot schedule ...`. */
export function makeScheduleCommand(): Command {
  const command = new Command('schedule')
    .description(
      'cron schedules of snapshot exports with retention: add, list, run, pause, resume, remove',
    )
    .addCommand(makeAdd())
    .addCommand(makeList())
    .addCommand(makeRun())
    .addCommand(
      makeEdit('pause', 'stop running a schedule (slots while paused are skipped, not missed)'),
    )
    .addCommand(makeEdit('resume', 'run a paused schedule again from its next slot'))
    .addCommand(makeEdit('remove', 'delete a schedule (its snapshots stay in the catalog)'));
  // The root sets exitOverride two levels deep; these commands are one further.
  command.exitOverride();
  for (const leaf of command.commands) leaf.exitOverride();
  return command;
}
