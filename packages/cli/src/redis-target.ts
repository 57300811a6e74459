/**
 * `--target redis://[user:pass@]host:port[/db]` (or `rediss://` for TLS): a Redis node the CLI
 * writes to directly, for the offline snapshot tools. Credentials in the URL are accepted but
 * `GEOREP_REDIS_PASSWORD` keeps them out of shell history.
 */
import { DEFAULT_SHARD, UsageError, type RedisConfig } from '@georep/core';

/** A parsed target: where, how to authenticate, which db. */
export interface RedisTarget {
  node: { id: string; host: string; port: number };
  config: RedisConfig;
  db: number | undefined;
}

/** Parses a target URL; throws `usage.invalid-target` with the expected form. */
export function parseRedisTarget(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
  caFile?: string,
): RedisTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(url);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw invalid(url);
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const dbText = parsed.pathname.replace(/^\//, '');
  const db = dbText === '' ? undefined : Number(dbText);
  if (
    parsed.hostname === '' ||
    !Number.isInteger(port) ||
    (db !== undefined && (!Number.isInteger(db) || db < 0))
  )
    throw invalid(url);
  const username = decodeURIComponent(parsed.username) || env.GEOREP_REDIS_USERNAME || undefined;
  const password = decodeURIComponent(parsed.password) || env.GEOREP_REDIS_PASSWORD || undefined;
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  return {
    node: { id: `${host}:${port}`, host, port },
    config: {
      nodes: [{ host, port, shard: DEFAULT_SHARD }],
      commandTimeoutMs: 10_000,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      ...(parsed.protocol === 'rediss:'
        ? { tls: { rejectUnauthorized: true, ...(caFile === undefined ? {} : { caFile }) } }
        : {}),
    },
    db,
  };
}

function invalid(url: string): UsageError {
  return new UsageError(
    'usage.invalid-target',
    `invalid --target "${url.replace(/\/\/[^@/]*@/, '//***@')}"`,
    {
      hint: 'use redis://[user:password@]host:port[/db] (rediss:// for TLS)',
    },
  );
}
