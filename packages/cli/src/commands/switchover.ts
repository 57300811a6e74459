/**
 * `georep switchover`: promote replicas to primary inside one region, one target per shard, now
 * or in the region's maintenance window. Returns the operation at once; `--wait` blocks until it
 * finished and prints the outcome (per shard: the write pause, or the bytes lost with --mode force).
 */
import { Command, Option } from 'commander';
import { UsageError } from '@georep/core';
import { submitAndWait, type ChangeOptions } from './group.js';

/** Options of `georep switchover`. */
interface SwitchoverOptions extends Omit<ChangeOptions, 'via'> {
  region: string;
  node: string[];
  when: 'now' | 'maintenance-window';
  mode: 'safe' | 'force';
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function makeSwitchoverCommand(): Command {
  return new Command('switchover')
    .description(
      'make replicas the primaries of their shards (safe: no acknowledged write lost; force: at once)',
    )
    .requiredOption('--region <region>', 'the region whose nodes switch')
    .requiredOption(
      '--node <id>',
      'a replica to promote; repeat for several shards (one per shard, at most 50)',
      collect,
    )
    .addOption(
      new Option('--when <when>', 'now, or when the maintenance window opens')
        .choices(['now', 'maintenance-window'])
        .default('now'),
    )
    .addOption(
      new Option(
        '--mode <mode>',
        'safe: pause writes until the target has every byte (rolls back on timeout); force: promote at once',
      )
        .choices(['safe', 'force'])
        .default('safe'),
    )
    .option('--wait', 'wait for the outcome instead of returning the operation id at once')
    .addOption(new Option('--wait-timeout <ms>', 'how long --wait waits').default('60000'))
    .option(
      '--client-token <token>',
      'idempotency token (1-127 printable ASCII): the same token runs the request once',
    )
    .option('--json', 'print one JSON document (the operation)')
    .action(async (opts: SwitchoverOptions, command: Command) => {
      if (opts.node.length === 0) {
        throw new UsageError('usage.missing-node', 'name the replicas to promote with --node');
      }
      await submitAndWait(
        command,
        { ...opts, wait: opts.wait === true },
        'switchover',
        { nodes: opts.node, when: opts.when, mode: opts.mode },
        opts.region,
      );
    });
}
