/**
 * The `georep` command tree and its error handling: every failure prints what was wrong and what
 * to do (or one JSON document with `--json`) and exits with the status of its code.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, GeorepError, exitCodeFor, toGeorepError } from '@georep/core';
import { AGENT_VERSION } from '@georep/agent/connection';
import { makeAgentCommand } from './commands/agent.js';
import { makeDevCommand } from './commands/dev.js';
import {
  makeGroupCommand,
  makeHistoryCommand,
  makeLinkCommand,
  makeOperationCommand,
  makeUnlinkCommand,
} from './commands/group.js';
import { makeSnapshotCommand } from './commands/snapshot.js';
import { makeStatusCommand } from './commands/status.js';
import { makeSwitchoverCommand } from './commands/switchover.js';
import { makeFailbackCommand, makeFailoverCommand } from './commands/failover.js';
import { addGlobalOptions } from './global-options.js';

/** Builds the root command. `exitOverride` makes commander throw instead of exiting (tests). */
export function makeProgram(): Command {
  const program = new Command('georep')
    .description('multi-region active-active geo-replication for self-hosted Redis')
    .version(AGENT_VERSION)
    .showSuggestionAfterError()
    .configureHelp({ showGlobalOptions: true });
  addGlobalOptions(program);
  program
    .addCommand(makeStatusCommand())
    .addCommand(makeGroupCommand())
    .addCommand(makeLinkCommand())
    .addCommand(makeUnlinkCommand())
    .addCommand(makeSwitchoverCommand())
    .addCommand(makeFailoverCommand())
    .addCommand(makeFailbackCommand())
    .addCommand(makeOperationCommand())
    .addCommand(makeHistoryCommand())
    .addCommand(makeSnapshotCommand())
    .addCommand(makeDevCommand())
    .addCommand(makeAgentCommand());
  program.exitOverride();
  for (const sub of program.commands) {
    sub.exitOverride();
    for (const leaf of sub.commands) leaf.exitOverride();
  }
  return program;
}

/** Writes `err` for a human (message, then the hint) or as JSON. */
export function reportError(err: GeorepError, json: boolean, write: (s: string) => void): void {
  if (json) {
    write(`${JSON.stringify({ error: err.toJSON() })}\n`);
    return;
  }
  write(`georep: ${err.message} [${err.code}]\n`);
  if (err.hint !== undefined) write(`  what to do: ${err.hint}\n`);
}

/** Runs the CLI with `argv`; resolves with the exit status instead of exiting. */
export async function runCli(
  argv: string[],
  write: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  const program = makeProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are exits with status 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    const error = toGeorepError(err);
    // A failed operation was already printed in full (with --json: as the one JSON document).
    if ((err as { alreadyReported?: boolean }).alreadyReported !== true)
      reportError(error, argv.includes('--json'), write);
    return exitCodeFor(error);
  }
}
