/**
 * `georep failover --from R --to S` and `georep failback R`: move a region's traffic to another
 * region and back. Sentinel-aware clients follow through the agents' Sentinel-compatible
 * endpoints; `--dry-run` prints what would change and the data at risk, changing nothing.
 */
import { Command, Option } from 'commander';
import { connectGroup } from '../agent-client.js';
import { printResult } from '../format.js';
import { changeOptions, requestedBy, submitAndWait, type ChangeOptions } from './group.js';

interface Plan {
  kind: string;
  region: string;
  servedBy: { before: string; after: string };
  changes: { name: string; before: Address | null; after: Address | null }[];
  dataAtRisk: { operations: number; bytes: number; oldestAgeMs: number | null } | null;
  dataAtRiskNote: string;
  fence: string;
  decision: string;
}
interface Address {
  host: string;
  port: number;
}

const address = (a: Address | null) => (a === null ? '(none)' : `${a.host}:${a.port}`);

/** The dry-run plan for humans. */
export function renderPlan(plan: Plan): string {
  const lines = [
    `dry run: ${plan.region}'s traffic would be served by ${plan.servedBy.after} (now ${plan.servedBy.before})`,
    ...plan.changes.map((c) => `  ${c.name}: ${address(c.before)} -> ${address(c.after)}`),
    `  data at risk: ${
      plan.dataAtRisk === null
        ? 'unknown'
        : `${plan.dataAtRisk.operations} batches, ${plan.dataAtRisk.bytes} bytes${plan.dataAtRisk.oldestAgeMs === null ? '' : `, oldest ${plan.dataAtRisk.oldestAgeMs} ms`}`
    }${plan.dataAtRiskNote === '' ? '' : ` (${plan.dataAtRiskNote})`}`,
    `  fence: ${plan.fence}`,
    `  decision: ${plan.decision}`,
  ];
  return lines.join('\n');
}

export function makeFailoverCommand(): Command {
  return changeOptions(
    new Command('failover')
      .description(
        "serve a region's traffic from another region (Sentinel clients follow; the region is fenced)",
      )
      .requiredOption('--from <region>', 'the region whose traffic moves')
      .requiredOption('--to <region>', 'the region that serves it')
      .option('--dry-run', 'print what would change and the data at risk; change nothing')
      .option('--force', 'skip the vote (a majority of linked regions cannot be reached)')
      .option('--yes', 'confirm --force')
      .option('--reason <text>', 'why (recorded with a forced failover)'),
    '30000',
  ).action(
    async (
      opts: ChangeOptions & {
        from: string;
        to: string;
        dryRun?: boolean;
        force?: boolean;
        yes?: boolean;
        reason?: string;
      },
      command: Command,
    ) => {
      const body = {
        region: opts.from,
        to: opts.to,
        force: opts.force === true,
        yes: opts.yes === true,
        ...(opts.reason === undefined ? {} : { reason: opts.reason }),
      };
      if (opts.dryRun === true) {
        const { client, group } = await connectGroup(command);
        await using _client = client;
        const plan = await client.api<Plan>(
          group,
          'failover',
          { ...body, dryRun: true, requestedBy: requestedBy() },
          opts.via,
        );
        printResult(opts.json, plan, () => renderPlan(plan));
        return;
      }
      await submitAndWait(command, opts, 'failover', body, opts.via);
    },
  );
}

export function makeFailbackCommand(): Command {
  return changeOptions(
    new Command('failback')
      .description(
        "return a region's traffic to it once it has caught up with the serving region both ways",
      )
      .argument('<region>')
      .addOption(
        new Option(
          '--catch-up-timeout <ms>',
          'how long to wait for both directions to catch up before refusing',
        ).default('120000'),
      ),
    '150000',
  ).action(
    async (region: string, opts: ChangeOptions & { catchUpTimeout: string }, command: Command) => {
      await submitAndWait(
        command,
        opts,
        'failback',
        { region, catchUpTimeoutMs: Number(opts.catchUpTimeout) },
        opts.via,
      );
    },
  );
}
