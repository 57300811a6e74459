/**
 * Group membership commands: `group show`, `link`, `unlink`, `operation show`, `history`.
 * Changes are operations in the group's ledger: the agent asked records them and runs them
 * (votes, link-state changes); the CLI waits for the outcome unless told not to.
 */
import { hostname, userInfo } from 'node:os';
import { Command, Option } from 'commander';
import {
  TimeoutError,
  deserializeError,
  isTerminalStatus,
  type GroupView,
  type HistoryEventView,
  type OperationView,
} from '@georep/core';
import { connectGroup, type AgentClient } from '../agent-client.js';
import { printResult, renderTable } from '../format.js';

const when = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());

/** The region an operation is about, for display. */
const targetOf = (op: OperationView): string =>
  typeof op.params.region === 'string' ? op.params.region : '';

/** One line per operation field, for humans. */
export function renderOperation(op: OperationView): string {
  const lines = [
    `operation ${op.id}: ${op.kind} ${targetOf(op)} — ${op.status}`,
    `  requested ${when(op.createdAt)} via ${op.requestedVia} by ${op.requestedBy}${op.clientToken === null ? '' : ` (client token ${op.clientToken})`}`,
  ];
  if (op.forced !== null) lines.push(`  forced by ${op.forced.by}: ${op.forced.reason}`);
  if (op.finishedAt !== null) lines.push(`  finished ${when(op.finishedAt)}`);
  if (op.result !== null) {
    for (const [k, v] of Object.entries(op.result))
      lines.push(`  ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  if (op.error !== null) {
    lines.push(`  error: ${op.error.message} [${op.error.code}]`);
    if (op.error.hint !== undefined) lines.push(`  what to do: ${op.error.hint}`);
  }
  return lines.join('\n');
}

/**
 * Polls an operation until it finished. It asks the agent of the region that recorded it (its
 * copy is the first to change), and rides out transient errors (a NATS hiccup, a copy that has
 * not synced the operation yet) until the deadline.
 */
async function waitForOperation(
  client: AgentClient,
  group: string,
  id: string,
  timeoutMs: number,
  region?: string,
): Promise<OperationView> {
  const deadline = Date.now() + timeoutMs;
  let last: OperationView | null = null;
  let via = region;
  for (;;) {
    try {
      const op = await client.api<OperationView>(group, 'op.get', { id }, via);
      last = op;
      via = op.requestedVia;
      if (isTerminalStatus(op.status)) return op;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'operation.not-found' && code !== 'agent.unreachable') throw err;
    }
    if (Date.now() > deadline) {
      throw new TimeoutError(
        'operation.wait-timeout',
        `operation ${id} is still ${last?.status ?? 'unknown'} after ${timeoutMs} ms`,
        {
          hint: `follow it with: georep operation show ${id} --wait`,
          details: { id },
        },
      );
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Prints the operation and turns a failed one into the error it failed with (exit status). */
function finish(op: OperationView, json: boolean | undefined): void {
  printResult(json, op, () => renderOperation(op));
  if (op.status === 'failed' && op.error !== null) {
    const error = deserializeError({ kind: kindOf(op.error.code), ...op.error });
    // Already printed in full above; the error only carries the exit status out.
    throw Object.assign(error, { alreadyReported: true });
  }
}

/** Error codes an operation can fail with, by the class that gives their exit status. */
function kindOf(code: string): string {
  if (
    code.startsWith('vote.') ||
    code.startsWith('link.') ||
    code.startsWith('unlink.') ||
    code.startsWith('switchover.') ||
    code.startsWith('failover.') ||
    code.startsWith('failback.') ||
    code === 'region.busy' ||
    code === 'idempotency-conflict'
  )
    return 'ConflictError';
  if (code.endsWith('not-found')) return 'NotFoundError';
  return 'GeorepError';
}

/** Options shared by the commands that submit an operation. */
export interface ChangeOptions {
  json?: boolean | undefined;
  wait: boolean;
  clientToken?: string;
  via?: string;
  waitTimeout: string;
}

/**
 * Sends an operation request (`verb` of the agent API) to any agent, or to the agent of
 * `region`, then waits for its outcome unless `--no-wait`, prints it, and turns a failed
 * operation into its error's exit status. Returns the last state seen.
 */
export async function submitAndWait(
  command: Command,
  opts: ChangeOptions,
  verb: string,
  body: Record<string, unknown>,
  region?: string,
): Promise<OperationView> {
  const { client, group } = await connectGroup(command);
  await using _client = client;
  const op = await client.api<OperationView>(
    group,
    verb,
    {
      ...body,
      requestedBy: requestedBy(),
      ...(opts.clientToken === undefined ? {} : { clientToken: opts.clientToken }),
    },
    region,
  );
  if (!opts.wait) {
    printResult(opts.json, op, () => renderOperation(op));
    return op;
  }
  const done = await waitForOperation(
    client,
    group,
    op.id,
    Number(opts.waitTimeout),
    op.requestedVia,
  );
  finish(done, opts.json);
  return done;
}

/** `user@host` of the operator, recorded with every request. */
export function requestedBy(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container): keep 'unknown'
  }
  return `${user}@${hostname()}`;
}

/** The options of every command that submits an operation (`--wait-timeout` default varies). */
export const changeOptions = (cmd: Command, waitTimeoutDefault = '30000') =>
  cmd
    .option('--json', 'print one JSON document (the operation)')
    .option('--no-wait', 'return the operation id at once instead of waiting for the outcome')
    .option(
      '--client-token <token>',
      'idempotency token (1-127 printable ASCII): the same token runs the request once',
    )
    .option('--via <region>', 'send the request to the agent of this region (default: any agent)')
    .addOption(
      new Option('--wait-timeout <ms>', 'how long to wait for the outcome').default(
        waitTimeoutDefault,
      ),
    );

export function makeLinkCommand(): Command {
  return changeOptions(
    new Command('link')
      .description('link a region into the group (votes of a majority of linked regions)')
      .argument('<region>')
      .option('--resync', 'for a force-unlinked region: replace its data with the group data')
      .option(
        '--force',
        'recovery only: link without a vote when no region of the group is linked any more',
      )
      .option('--reason <text>', 'why (recorded with a forced link)')
      .option('--yes', 'confirm --resync or --force'),
  ).action(
    async (
      region: string,
      opts: ChangeOptions & { resync?: boolean; yes?: boolean; force?: boolean; reason?: string },
      command: Command,
    ) => {
      await submitAndWait(
        command,
        opts,
        'op.submit',
        {
          kind: 'link',
          region,
          resync: opts.resync === true,
          force: opts.force === true,
          yes: opts.yes === true,
          ...(opts.reason === undefined ? {} : { reason: opts.reason }),
        },
        opts.via,
      );
    },
  );
}

export function makeUnlinkCommand(): Command {
  return changeOptions(
    new Command('unlink')
      .description('unlink a region gracefully, or force-unlink a region that is gone')
      .argument('<region>')
      .option('--force', 'skip the vote: for a region that is down (it is fenced when it returns)')
      .option('--yes', 'confirm --force')
      .option('--reason <text>', 'why (recorded with a forced unlink)'),
  ).action(
    async (
      region: string,
      opts: ChangeOptions & { force?: boolean; yes?: boolean; reason?: string },
      command: Command,
    ) => {
      await submitAndWait(
        command,
        opts,
        'op.submit',
        {
          kind: 'unlink',
          region,
          force: opts.force === true,
          yes: opts.yes === true,
          ...(opts.reason === undefined ? {} : { reason: opts.reason }),
        },
        opts.via,
      );
    },
  );
}

/** Members, link states and pending operations. */
export function renderGroup(view: GroupView): string {
  const rows = view.regions.map((r) => [
    r.name,
    r.linkState,
    String(r.epoch),
    r.changedAt === 0 ? 'founding' : new Date(r.changedAt).toISOString(),
    r.forced === null ? '' : `forced by ${r.forced.by}: ${r.forced.reason}`,
  ]);
  const pending = view.pendingOperations.map(
    (op) => `  ${op.id} ${op.kind} ${targetOf(op)} ${op.status}`,
  );
  return [
    `group ${view.group}, epoch ${view.epoch}, as seen by the agent of ${view.answeredBy} (document ${view.documentBytes} bytes, ${view.operationCount} operations)`,
    renderTable(['REGION', 'LINK STATE', 'EPOCH', 'CHANGED', 'NOTE'], rows),
    pending.length === 0 ? 'no pending operations' : `pending operations:\n${pending.join('\n')}`,
  ].join('\n');
}

export function makeGroupCommand(): Command {
  return new Command('group').description('the group document').addCommand(
    new Command('show')
      .description('members, link states, epoch and pending operations')
      .option('--json', 'print one JSON document')
      .option('--region <name>', 'ask the agent of this region')
      .action(async (opts: { json?: boolean; region?: string }, command: Command) => {
        const { client, group } = await connectGroup(command);
        await using _client = client;
        const view = await client.api<GroupView>(group, 'group.show', {}, opts.region);
        printResult(opts.json, view, () => renderGroup(view));
      }),
  );
}

export function makeOperationCommand(): Command {
  return new Command('operation')
    .description('operations in the ledger')
    .addCommand(
      new Command('cancel')
        .description('cancel an operation that has not started (a scheduled switchover)')
        .argument('<id>')
        .option('--json', 'print one JSON document (the cancelled operation)')
        .action(async (id: string, opts: { json?: boolean }, command: Command) => {
          const { client, group } = await connectGroup(command);
          await using _client = client;
          // Cancel at the agent that will run it: that copy decides whether it already started.
          const op = await client.api<OperationView>(group, 'op.get', { id });
          const cancelled = await client.api<OperationView>(
            group,
            'op.cancel',
            { id, requestedBy: requestedBy() },
            op.requestedVia,
          );
          printResult(opts.json, cancelled, () => renderOperation(cancelled));
        }),
    )
    .addCommand(
      new Command('show')
        .description('one operation: status, parameters, result or error')
        .argument('<id>')
        .option('--json', 'print one JSON document')
        .option('--wait', 'wait until it finished')
        .addOption(new Option('--wait-timeout <ms>', 'how long to wait').default('30000'))
        .action(
          async (
            id: string,
            opts: { json?: boolean; wait?: boolean; waitTimeout: string },
            command: Command,
          ) => {
            const { client, group } = await connectGroup(command);
            await using _client = client;
            const op =
              opts.wait === true
                ? await waitForOperation(client, group, id, Number(opts.waitTimeout))
                : await client.api<OperationView>(group, 'op.get', { id });
            printResult(opts.json, op, () => renderOperation(op));
          },
        ),
    );
}

export function makeHistoryCommand(): Command {
  return new Command('history')
    .description('what happened to the group, oldest first')
    .option('--json', 'print one JSON document')
    .option('--limit <n>', 'how many events', '50')
    .action(async (opts: { json?: boolean; limit: string }, command: Command) => {
      const { client, group } = await connectGroup(command);
      await using _client = client;
      const events = await client.api<HistoryEventView[]>(group, 'history', {
        limit: Number(opts.limit),
      });
      printResult(opts.json, events, () =>
        events.length === 0
          ? 'no events yet'
          : renderTable(
              ['AT', 'BY', 'EVENT', 'OPERATION'],
              events.map((e) => [
                new Date(e.at).toISOString(),
                e.region,
                e.message,
                e.operationId ?? '',
              ]),
            ),
      );
    });
}
