/**
 * NATS connections from a {@link NatsConfig}: servers, user/password, token, nkey seed or
 * credentials file, and TLS. The agent and the CLI both connect through here, so every auth
 * method works the same for both.
 */
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from '@nats-io/transport-node';
import { ConfigError, UnreachableError, resolveSecret, type NatsConfig } from '@georep/core';

/** Options of {@link connectNats}. */
export interface ConnectNatsOptions {
  /** Client name shown by the server (`connz`). */
  name: string;
  /** Keep retrying the first connection (the agent); the CLI fails fast instead. */
  waitOnFirstConnect?: boolean;
  timeoutMs?: number;
}

function readFileOrFail(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError('config.secret-unreadable', `cannot read ${what} ${path}`, {
      cause: err,
      hint: 'check the path and that this user may read it',
    });
  }
}

/** The nats.js connection options for `config` (secrets are read from files here). */
export function natsConnectionOptions(
  config: NatsConfig,
  options: ConnectNatsOptions,
): NodeConnectionOptions {
  const opts: NodeConnectionOptions = {
    servers: config.servers,
    name: options.name,
    timeout: options.timeoutMs ?? 5000,
    waitOnFirstConnect: options.waitOnFirstConnect ?? false,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 10_000,
  };
  const password = resolveSecret(config.password, config.passwordFile);
  if (config.user !== undefined) {
    opts.user = config.user;
    if (password !== undefined) opts.pass = password;
  }
  const token = resolveSecret(config.token, config.tokenFile);
  if (token !== undefined) opts.token = token;
  if (config.credsFile !== undefined) {
    opts.authenticator = credsAuthenticator(
      readFileOrFail(config.credsFile, 'NATS credentials file'),
    );
  } else if (config.nkeySeedFile !== undefined) {
    const seed = new TextDecoder()
      .decode(readFileOrFail(config.nkeySeedFile, 'NATS nkey seed file'))
      .trim();
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  if (config.tls !== undefined) {
    opts.tls = {
      ...(config.tls.caFile === undefined ? {} : { caFile: config.tls.caFile }),
      ...(config.tls.certFile === undefined ? {} : { certFile: config.tls.certFile }),
      ...(config.tls.keyFile === undefined ? {} : { keyFile: config.tls.keyFile }),
    };
  }
  return opts;
}

/**
 * Connects to NATS. Fails with `nats.unreachable` (no server answered) or `nats.auth-failed`
 * (credentials refused), each with the fix.
 */
export async function connectNats(
  config: NatsConfig,
  options: ConnectNatsOptions,
): Promise<NatsConnection> {
  const opts = natsConnectionOptions(config, options);
  try {
    return await connect(opts);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/authorization|authentication|permissions/i.test(message)) {
      throw new UnreachableError('nats.auth-failed', `NATS refused the credentials: ${message}`, {
        cause: err,
        hint: 'check the NATS user/password, token, nkey or credentials file (GEOREP_NATS_* variables)',
      });
    }
    throw new UnreachableError(
      'nats.unreachable',
      `cannot connect to NATS at ${config.servers.join(', ')}: ${message}`,
      {
        cause: err,
        hint: 'check --nats / GEOREP_NATS_URL; after `georep dev start` the default nats://127.0.0.1:4222 works',
        details: { servers: config.servers },
      },
    );
  }
}
