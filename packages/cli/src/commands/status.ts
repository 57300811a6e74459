/** `georep status`: every region's health, asked of any reachable agent. */
import { Command, Option } from 'commander';
import type { RegionStatus, ReplicationLink, ReplicationStatus, StatusReport } from '@georep/core';
import { connectGroup } from '../agent-client.js';
import { formatAge, formatBytes, renderTable } from '../format.js';
import { renderSchedules } from './snapshot-schedule.js';

/** One table row per region. */
export function renderStatus(report: StatusReport): string {
  const rows = report.regions.map((r) => regionRow(r));
  const title = `group ${report.group}: ${report.regions.length} regions, as seen by the agent of ${report.answeredBy}`;
  return `${title}\n${renderTable(
    [
      'REGION',
      'STATE',
      'LINK',
      'PRIMARY',
      'REPLICAS',
      'LAG',
      'MEMORY',
      'OPS/S',
      'HEARTBEAT',
      'AGREE',
    ],
    rows,
  )}${renderNodes(report)}${renderReplication(report)}${renderSchedules(report)}`;
}

/**
 * The answering region's nodes shard by shard: what an operator needs to pick switchover targets
 * (a healthy replica of each shard) and to see replica lag.
 */
function renderNodes(report: StatusReport): string {
  const self = report.regions.find((r) => r.name === report.answeredBy);
  if (self === undefined || self.nodes.length === 0) return '';
  const rows = [...self.nodes]
    .sort((a, b) =>
      (a.shard ?? 'main') === (b.shard ?? 'main')
        ? Number(a.role === 'replica') - Number(b.role === 'replica')
        : (a.shard ?? 'main') < (b.shard ?? 'main')
          ? -1
          : 1,
    )
    .map((n) => [
      n.shard ?? 'main',
      n.id,
      n.role,
      n.up ? 'up' : `down: ${n.error ?? 'no answer'}`,
      `${n.host}:${n.port}`,
      n.role === 'replica'
        ? `${n.lagBytes === undefined ? '-' : formatBytes(n.lagBytes)}${n.primary?.linkUp === false ? ' (link down)' : ''}`
        : '',
      n.role === 'replica' && n.replicaPriority !== undefined ? String(n.replicaPriority) : '',
    ]);
  return `\n\nnodes of ${self.name}\n${renderTable(
    ['SHARD', 'NODE', 'ROLE', 'STATE', 'ADDRESS', 'LAG', 'PRIORITY'],
    rows,
  )}`;
}

/** An hour: a backlog forecast to fill the stream sooner than this is a warning. */
const FORECAST_WARNING_SEC = 3600;

/** The answering region's replication links, and warnings about backlogs about to overflow. */
function renderReplication(report: StatusReport): string {
  const self = report.regions.find((r) => r.name === report.answeredBy);
  const rep = self?.replication;
  if (rep === undefined) return '';
  if (!rep.enabled) return `\nreplication of ${report.answeredBy}: off`;
  // Several shards: a row per shard and peer, so that a lagging shard is not hidden by the sum.
  const perShard = (rep.shards?.length ?? 0) > 1;
  const linkRows: Array<{ shard: string | null; link: ReplicationLink }> = perShard
    ? rep.shards!.flatMap((s) => s.links.map((link) => ({ shard: s.shard, link })))
    : rep.links.map((link) => ({ shard: null, link }));
  const rows = linkRows.map(({ shard, link: l }) => [
    ...(perShard ? [shard ?? '-'] : []),
    l.peer,
    l.lagMs === null ? '-' : `${l.lagMs} ms`,
    String(l.appliedOps),
    l.backlog === null ? '-' : `${l.backlog.messages} msgs / ${formatBytes(l.backlog.bytes)}`,
    l.backlog?.growthBytesPerSec == null ? '-' : `${formatBytes(l.backlog.growthBytesPerSec)}/s`,
    l.backlog?.fullInSec == null ? '-' : formatAge(l.backlog.fullInSec * 1000),
    l.backlog?.lost === true ? 'LOST: resync needed' : (l.error ?? ''),
  ]);
  const warnings = rep.links
    .filter((l) => l.backlog?.fullInSec != null && l.backlog.fullInSec < FORECAST_WARNING_SEC)
    .map(
      (l) =>
        `warning: the backlog held for ${l.peer} reaches the stream limit (${formatBytes(l.backlog!.streamLimitBytes)}) in about ${formatAge(l.backlog!.fullInSec! * 1000)}; bring ${l.peer} back or force-unlink it`,
    );
  const unpaired = rep.links.flatMap((l) =>
    l.unpairedShards === undefined ? [] : [`warning: ${l.unpairedShards}`],
  );
  const captureOf = (capture: ReplicationStatus['capture'], error: string | null | undefined) =>
    capture === null
      ? error == null
        ? 'not started'
        : `capture failed: ${error}; started again every 5 s`
      : `${capture.ops} ops captured`;
  const capture = perShard
    ? rep.shards!.map((s) => `${s.shard}: ${captureOf(s.capture, s.captureError)}`).join('; ')
    : captureOf(rep.capture, rep.captureError);
  return `\n\nreplication of ${report.answeredBy} (${rep.state}, ${capture})\n${renderTable(
    [
      ...(perShard ? ['SHARD'] : []),
      'PEER',
      'LAG',
      'APPLIED',
      'BACKLOG HELD',
      'GROWTH',
      'FULL IN',
      'PROBLEM',
    ],
    rows,
  )}${[...warnings, ...unpaired].map((w) => `\n${w}`).join('')}`;
}

function regionRow(region: RegionStatus): string[] {
  const primary = region.nodes.find((n) => n.id === region.primary);
  const replicas = region.nodes.filter((n) => n.role === 'replica');
  const lags = replicas.map((n) => n.lagBytes).filter((l): l is number => l !== undefined);
  const agree =
    region.state === 'up'
      ? `up: ${region.seenUpBy.join(',') || '-'}`
      : `suspect: ${region.seenSuspectBy.join(',') || '-'}`;
  return [
    region.name,
    // A switchover or failover in progress, and a region whose traffic another region serves.
    region.activity == null ? region.state : `${region.state} (${region.activity.kind})`,
    `${region.linkState ?? '-'}${region.routedTo == null ? '' : `, served by ${region.routedTo}`}`,
    primary === undefined ? '-' : `${primary.id} ${primary.host}:${primary.port}`,
    replicas.length === 0 ? '0' : `${replicas.filter((n) => n.up).length}/${replicas.length} up`,
    lags.length === 0 ? '-' : formatBytes(Math.max(...lags)),
    formatBytes(primary?.usedMemoryBytes),
    primary?.opsPerSec === undefined ? '-' : String(primary.opsPerSec),
    formatAge(region.heartbeatAgeMs),
    agree,
  ];
}

interface StatusOptions {
  json?: boolean;
  watch?: boolean;
  region?: string;
  interval: string;
}

export function makeStatusCommand(): Command {
  return new Command('status')
    .description("show every region's health, as seen by one agent")
    .option('--json', 'print one JSON document')
    .option('--watch', 'refresh every second until interrupted')
    .option('--region <name>', 'ask the agent of this region (default: any agent, nearest first)')
    .addOption(
      new Option('--interval <ms>', 'refresh interval with --watch').default('1000').hideHelp(),
    )
    .action(async (opts: StatusOptions, command: Command) => {
      const { client, group } = await connectGroup(command);
      await using _client = client;
      const show = async () => {
        const report = await client.status(group, opts.region);
        return opts.json === true ? JSON.stringify(report, null, 2) : renderStatus(report);
      };
      if (opts.watch !== true) {
        process.stdout.write(`${await show()}\n`);
        return;
      }
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      while (!stop.signal.aborted) {
        const text = await show().catch((err: unknown) => `(no answer: ${(err as Error).message})`);
        process.stdout.write(`\x1b[2J\x1b[H${text}\n`);
        await new Promise((resolve) => setTimeout(resolve, Number(opts.interval)));
      }
    });
}
