/**
 * What an import needs to know about its target before writing: which fork and version it runs,
 * which RDB version (and so which value type codes and DUMP footers) it accepts, and its
 * `proto-max-bulk-len`. Also the connection itself: an ioredis client that never reconnects
 * behind our back, because a silently resumed connection would hide a half-applied batch.
 */
import { Redis, ReplyError } from 'ioredis';
import type { RedisConfig } from '@georep/core';
import { MAX_REDIS_RDB_VERSION, VALKEY_RDB_VERSION } from '@georep/rdb';
import { nodeClientOptions, parseInfo } from '@georep/redis';
import { ImportAuthError, ImportUnreachableError } from './errors.js';

/** Default `proto-max-bulk-len` of Redis, used when CONFIG is refused (managed services). */
export const DEFAULT_PROTO_MAX_BULK_LEN = 512 * 1024 * 1024;

/** The target's capabilities, as far as an import cares. */
export interface TargetInfo {
  fork: 'redis' | 'valkey';
  /** Server version, e.g. `7.0.15`. */
  version: string;
  /** RDB version the server writes and accepts (7.0 → 10, 7.2 → 11, 7.4+ → 12, Valkey 9 → 80). */
  rdbVersion: number;
  /** Largest single argument the server accepts. */
  protoMaxBulkLen: number;
  /** Whether CONFIG GET answered (false on services that rename or block CONFIG). */
  configReadable: boolean;
  /** `databases`, when CONFIG GET answered. */
  databases: number | undefined;
  /** RESTORE accepts ABSTTL / IDLETIME / FREQ (Redis 5.0+). */
  restoreAbsTtl: boolean;
  /** HPEXPIREAT exists (Redis 7.4+, Valkey 9+). */
  hashFieldTtl: boolean;
  /** XSETID ENTRIESADDED/MAXDELETEDID and XGROUP CREATE ENTRIESREAD (Redis 7.0+, all Valkey). */
  streamV2Commands: boolean;
  /** XGROUP CREATECONSUMER (Redis 6.2+). */
  createConsumer: boolean;
  /** FUNCTION LOAD (Redis 7.0+, all Valkey). */
  functions: boolean;
  /** FLUSHDB ASYNC (Redis 4.0+). */
  asyncFlush: boolean;
}

/** Parses `7.0.15` into comparable numbers. */
function versionParts(v: string): [number, number, number] {
  const [a, b, c] = v.split('.').map((x) => Number.parseInt(x, 10));
  return [a ?? 0, Number.isFinite(b) ? b! : 0, Number.isFinite(c) ? c! : 0];
}

function atLeast(v: [number, number, number], major: number, minor = 0): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

/**
 * The RDB version a server writes, from its fork and version (rdb.h of each release). Redis 8.6+
 * writes 13+, which `@georep/rdb` does not know; those targets still accept everything up to 12,
 * so the result is capped there: footers and type checks stay within what the codec knows.
 */
export function rdbVersionOf(fork: 'redis' | 'valkey', version: string): number {
  const v = versionParts(version);
  if (fork === 'valkey') return atLeast(v, 9) ? VALKEY_RDB_VERSION : 11;
  if (atLeast(v, 7, 4)) return MAX_REDIS_RDB_VERSION;
  if (atLeast(v, 7, 2)) return 11;
  if (atLeast(v, 7)) return 10;
  if (atLeast(v, 5)) return 9;
  if (atLeast(v, 4)) return 8;
  if (atLeast(v, 3, 2)) return 7;
  return 6;
}

/** Whether a reply error means our credentials were refused. */
export function isAuthError(err: unknown): boolean {
  // ioredis may wrap the reply ("Ready check failed: NOAUTH ..."), so search, not anchor.
  return (
    err instanceof Error &&
    /\b(WRONGPASS|NOAUTH|NOPERM)\b|invalid password|invalid username-password|AUTH <password> called without/.test(
      err.message,
    )
  );
}

/**
 * Connects to the target. The client never reconnects and never queues offline: after a lost
 * connection every command fails, and the import stops with an exact account of what was
 * acknowledged. Commands have no timeout (a FLUSHDB or a big RESTORE may legitimately take long).
 *
 * @throws ImportAuthError, ImportUnreachableError.
 */
export async function connectTarget(
  node: { host: string; port: number },
  config: RedisConfig,
): Promise<Redis> {
  const base = nodeClientOptions({ id: `${node.host}:${node.port}`, ...node }, config, {
    connectionName: 'georep-import',
    lazyConnect: true,
  });
  const client = new Redis({
    ...base,
    commandTimeout: undefined,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
  });
  // The reason a connection closed (a refused ready check) arrives as an 'error' event, while
  // connect() only says "Connection is closed"; keep the last one to classify the failure.
  let lastError: unknown;
  client.on('error', (e: unknown) => {
    lastError = e;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (thrown) {
    client.disconnect();
    const err = !isAuthError(thrown) && isAuthError(lastError) ? lastError : thrown;
    const where = `${node.host}:${node.port}`;
    if (isAuthError(err)) {
      throw new ImportAuthError(
        `target ${where} refused the credentials: ${(err as Error).message}`,
        {
          cause: err,
          details: { node: where },
        },
      );
    }
    throw new ImportUnreachableError(
      `cannot connect to target ${where}: ${err instanceof Error ? err.message : String(err)}`,
      { keysWritten: 0, lastKey: undefined, lastDb: undefined },
      { cause: err, details: { node: where } },
    );
  }
  return client;
}

/** Reads the target's fork, version and limits (INFO server, CONFIG GET). */
export async function probeTarget(client: Redis): Promise<TargetInfo> {
  const server = parseInfo(await client.info('server')).server ?? {};
  const fork: 'redis' | 'valkey' =
    server.server_name === 'valkey' || server.valkey_version !== undefined ? 'valkey' : 'redis';
  // Valkey reports redis_version 7.2.4 for compatibility; its own version is valkey_version.
  const version =
    (fork === 'valkey' ? server.valkey_version : undefined) ?? server.redis_version ?? '0.0.0';
  const v = versionParts(version);
  let protoMaxBulkLen = DEFAULT_PROTO_MAX_BULK_LEN;
  let databases: number | undefined;
  let configReadable = false;
  try {
    const reply = (await client.config('GET', 'proto-max-bulk-len')) as string[];
    const n = Number(reply[1]);
    if (Number.isFinite(n) && n > 0) protoMaxBulkLen = n;
    const dbs = (await client.config('GET', 'databases')) as string[];
    const d = Number(dbs[1]);
    if (Number.isFinite(d) && d > 0) databases = d;
    configReadable = true;
  } catch (err) {
    // Managed services refuse CONFIG; Redis's default limit is the best guess there.
    if (!(err instanceof ReplyError)) throw err;
  }
  const valkey = fork === 'valkey';
  return {
    fork,
    version,
    rdbVersion: rdbVersionOf(fork, version),
    protoMaxBulkLen,
    configReadable,
    databases,
    restoreAbsTtl: valkey || atLeast(v, 5),
    hashFieldTtl: valkey ? atLeast(v, 9) : atLeast(v, 7, 4),
    streamV2Commands: valkey || atLeast(v, 7),
    createConsumer: valkey || atLeast(v, 6, 2),
    functions: valkey || atLeast(v, 7),
    asyncFlush: valkey || atLeast(v, 4),
  };
}
