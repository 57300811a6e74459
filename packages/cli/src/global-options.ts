/**
 * Options every command accepts: where NATS is, which group, and how to authenticate. Flags win
 * over `GEOREP_*` environment variables, which win over defaults (the `georep dev` ports).
 */
import { Command, Option } from 'commander';
import { splitList, type NatsConfig } from '@georep/core';

/** The default NATS URL: the first region of `georep dev start`. */
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** Parsed global options. */
export interface GlobalOptions {
  nats: string;
  group?: string;
  natsUser?: string;
  natsPassword?: string;
  natsPasswordFile?: string;
  natsToken?: string;
  natsTokenFile?: string;
  natsCreds?: string;
  natsNkeySeed?: string;
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
  timeout: string;
}

/** Adds the global options to the root command. */
export function addGlobalOptions(program: Command): Command {
  return program
    .addOption(
      new Option('--nats <urls>', 'NATS server URL(s), comma-separated')
        .env('GEOREP_NATS_URL')
        .default(DEFAULT_NATS_URL),
    )
    .addOption(
      new Option('--group <name>', 'group name (default: the only group the agents serve)').env(
        'GEOREP_GROUP',
      ),
    )
    .addOption(new Option('--nats-user <user>', 'NATS user').env('GEOREP_NATS_USER'))
    .addOption(
      new Option('--nats-password <password>', 'NATS password (prefer the env variable)')
        .env('GEOREP_NATS_PASSWORD')
        .hideHelp(),
    )
    .addOption(
      new Option('--nats-password-file <file>', 'file holding the NATS password').env(
        'GEOREP_NATS_PASSWORD_FILE',
      ),
    )
    .addOption(
      new Option('--nats-token <token>', 'NATS token (prefer the env variable)')
        .env('GEOREP_NATS_TOKEN')
        .hideHelp(),
    )
    .addOption(
      new Option('--nats-token-file <file>', 'file holding the NATS token').env(
        'GEOREP_NATS_TOKEN_FILE',
      ),
    )
    .addOption(
      new Option('--nats-creds <file>', 'NATS credentials file (JWT + nkey)').env(
        'GEOREP_NATS_CREDS',
      ),
    )
    .addOption(
      new Option('--nats-nkey-seed <file>', 'file holding an NATS nkey seed').env(
        'GEOREP_NATS_NKEY_SEED_FILE',
      ),
    )
    .addOption(
      new Option('--nats-ca <file>', 'CA certificate to verify NATS TLS').env('GEOREP_NATS_CA'),
    )
    .addOption(
      new Option('--nats-cert <file>', 'client certificate for NATS TLS').env('GEOREP_NATS_CERT'),
    )
    .addOption(new Option('--nats-key <file>', 'client key for NATS TLS').env('GEOREP_NATS_KEY'))
    .addOption(
      new Option('--timeout <ms>', 'how long to wait for an agent to answer').default('3000'),
    );
}

/** The NATS connection settings described by the global options. */
export function natsConfigFrom(opts: GlobalOptions): NatsConfig {
  const tls =
    opts.natsCa !== undefined || opts.natsCert !== undefined
      ? {
          rejectUnauthorized: true,
          ...(opts.natsCa === undefined ? {} : { caFile: opts.natsCa }),
          ...(opts.natsCert === undefined ? {} : { certFile: opts.natsCert }),
          ...(opts.natsKey === undefined ? {} : { keyFile: opts.natsKey }),
        }
      : undefined;
  return {
    servers: splitList(opts.nats),
    ...(opts.natsUser === undefined ? {} : { user: opts.natsUser }),
    ...(opts.natsPassword === undefined ? {} : { password: opts.natsPassword }),
    ...(opts.natsPasswordFile === undefined ? {} : { passwordFile: opts.natsPasswordFile }),
    ...(opts.natsToken === undefined ? {} : { token: opts.natsToken }),
    ...(opts.natsTokenFile === undefined ? {} : { tokenFile: opts.natsTokenFile }),
    ...(opts.natsCreds === undefined ? {} : { credsFile: opts.natsCreds }),
    ...(opts.natsNkeySeed === undefined ? {} : { nkeySeedFile: opts.natsNkeySeed }),
    ...(tls === undefined ? {} : { tls }),
  };
}

/** Global options of the command being run. */
export function globalsOf(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}
