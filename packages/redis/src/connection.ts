/**
 * ioredis clients for the nodes of a region, built from the region's Redis settings (ACL user,
 * password from env or file, TLS from files). Clients never queue commands while disconnected,
 * so a health sample of a dead node fails fast instead of piling up.
 */
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { resolveSecret, type ConfiguredNode, type RedisConfig, type TlsConfig } from '@georep/core';

/** TLS options for Node's `tls.connect`, read from the configured files. */
export function tlsOptionsFrom(tls: TlsConfig): {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
  servername?: string;
} {
  return {
    ...(tls.caFile === undefined ? {} : { ca: readFileSync(tls.caFile) }),
    ...(tls.certFile === undefined ? {} : { cert: readFileSync(tls.certFile) }),
    ...(tls.keyFile === undefined ? {} : { key: readFileSync(tls.keyFile) }),
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
  };
}

/** Options of {@link createNodeClient}. */
export interface NodeClientOptions {
  /** Shown in CLIENT LIST. */
  connectionName?: string;
  /** Connect now (default) or on first command. */
  lazyConnect?: boolean;
}

/** The ioredis options for one node of a region. */
export function nodeClientOptions(
  node: ConfiguredNode,
  config: RedisConfig,
  options: NodeClientOptions = {},
): RedisOptions {
  const password = resolveSecret(config.password, config.passwordFile);
  return {
    host: node.host,
    port: node.port,
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(password === undefined ? {} : { password }),
    ...(config.tls === undefined ? {} : { tls: tlsOptionsFrom(config.tls) }),
    connectionName: options.connectionName ?? 'georep',
    lazyConnect: options.lazyConnect ?? false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(1000, config.commandTimeoutMs),
    commandTimeout: config.commandTimeoutMs,
    // Keep trying forever, backing off to 2 s: a node that comes back is picked up again.
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    // A LOADING or READONLY reply is data for the health plane, not a reason to reconnect.
    reconnectOnError: () => false,
  };
}

/** A client for one node. The caller owns it and must `disconnect()` it. */
export function createNodeClient(
  node: ConfiguredNode,
  config: RedisConfig,
  options: NodeClientOptions = {},
): Redis {
  const client = new Redis(nodeClientOptions(node, config, options));
  // Connection errors surface through samples; without a listener ioredis would print them.
  client.on('error', () => undefined);
  return client;
}
