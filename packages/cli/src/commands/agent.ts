/** `georep agent --config FILE`: run the region agent in the foreground. */
import { Command, Option } from 'commander';
import { loadAgentConfig, splitList } from '@georep/core';

interface AgentOptions {
  config: string;
  logLevel?: string;
  nats?: string;
  httpPort?: string;
}

export function makeAgentCommand(): Command {
  return new Command('agent')
    .description('run the agent of one region (foreground; logs JSON to stdout)')
    .requiredOption('-c, --config <file>', 'agent configuration file (JSON)')
    .addOption(
      new Option('--log-level <level>', 'trace|debug|info|warn|error').env('GEOREP_LOG_LEVEL'),
    )
    .option('--http-port <port>', 'port of /healthz and /metrics (0 = any free port)')
    .action(async (opts: AgentOptions, command: Command) => {
      // --nats is global; only an explicit flag (not the CLI's default) overrides the file.
      const natsSource = command.parent?.getOptionValueSource('nats');
      const globalNats = command.optsWithGlobals<{ nats?: string }>().nats;
      const overrides: Record<string, unknown> = {};
      if (natsSource === 'cli' && globalNats !== undefined)
        overrides.nats = { servers: splitList(globalNats) };
      if (opts.logLevel !== undefined) overrides.log = { level: opts.logLevel };
      if (opts.httpPort !== undefined) overrides.http = { port: Number(opts.httpPort) };
      const config = loadAgentConfig(opts.config, process.env, overrides);
      // Loaded here so that other commands do not pay for the daemon's modules at start-up.
      const { Agent, installAgentLogger } = await import('@georep/agent');
      const log = installAgentLogger(config.log.level, {
        group: config.group,
        region: config.region,
      });
      process.on('unhandledRejection', (reason) => {
        log.error(
          { err: reason instanceof Error ? reason.message : String(reason) },
          'unhandled rejection (agent keeps running)',
        );
      });
      const agent = await Agent.start(config);
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string) => {
          log.info({ signal }, 'shutting down');
          agent.stop().then(resolve, resolve);
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      });
    });
}
