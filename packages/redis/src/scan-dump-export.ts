/**
 * Export without the replication protocol: SCAN every database, DUMP + PTTL each key, and write
 * the values into an RDB file as they are. For nodes that refuse PSYNC (managed services, ACL
 * users without +psync, renamed commands).
 *
 * A DUMP payload is the value exactly as an RDB file stores it plus a footer, so the body goes
 * into the file unchanged (`RdbWriter.rawKey`): no decoding, no re-encoding, and the file version
 * is the node's own (the footer's), so every type the node dumps is loadable from the file.
 *
 * The result is not a point-in-time snapshot: keys written during the scan may be missed or
 * copied at different moments. Each key on its own is consistent.
 */
import { Redis } from 'ioredis';
import { GeorepError } from '@georep/core';
import { RdbWriter, crc64 } from '@georep/rdb';
import { nodeClientOptions } from './connection.js';
import {
  ExportAuthError,
  ExportScanError,
  ExportTimeoutError,
  ExportUnreachableError,
  type ExportEndpoint,
} from './export-errors.js';
import { parseInfo, parseInfoList } from './info.js';
import { SpoolFile, partialPathFor } from './spool-file.js';
import type {
  ExportProgress,
  ExportRdbOptions,
  ScanDumpExportResult,
  ScanDumpTuning,
} from './export-types.js';

/** Options of {@link exportRdbByScan}. */
export interface ScanDumpExportOptions extends Pick<ExportRdbOptions, 'config' | 'out'> {
  node: ExportEndpoint;
  onProgress?: (progress: ExportProgress) => void;
  tuning?: ScanDumpTuning;
  /** The PSYNC refusal this export replaces; recorded in the result. */
  fallbackFrom?: GeorepError;
  /** `performance.now()` when the export began (includes the failed PSYNC attempt). */
  startedAt?: number;
}

const DUMP_FOOTER_BYTES = 10;

/**
 * Exports every key of `node` with SCAN + DUMP + PTTL into the RDB file `out`, atomically (temp
 * file, then rename). Keys are fetched in pipelined batches of `tuning.batchSize`, one batch in
 * flight at a time, so memory stays bounded and the node serves other clients between batches.
 * SCAN may return a key twice; duplicates are dropped, since a duplicate key makes a loader abort.
 *
 * @throws ExportAuthError, ExportUnreachableError, ExportTimeoutError, ExportScanError,
 *   ExportWriteError.
 */
export async function exportRdbByScan(
  options: ScanDumpExportOptions,
): Promise<ScanDumpExportResult> {
  const started = options.startedAt ?? performance.now();
  const { node, config } = options;
  const batchSize = options.tuning?.batchSize ?? 500;
  const commandTimeoutMs = options.tuning?.commandTimeoutMs ?? 60_000;
  const client = new Redis({
    ...nodeClientOptions({ id: 'export', ...node }, config, {
      connectionName: 'georep-export',
      lazyConnect: true,
    }),
    commandTimeout: commandTimeoutMs,
    // One attempt: an export that silently reconnects could miss or repeat a SELECT.
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  const spool = await SpoolFile.create(partialPathFor(options.out));
  try {
    await client.connect().catch((err: unknown) => {
      throw mapClientError(node, err, 'connecting', commandTimeoutMs);
    });
    const info = parseInfo(await run(node, commandTimeoutMs, 'INFO', () => client.info()));
    const server = info.server ?? {};
    const repl = info.replication ?? {};
    const redisVersion = server.valkey_version ?? server.redis_version;
    const functions = await readFunctionLibraries(client);
    const dbs = Object.entries(info.keyspace ?? {})
      .map(([name, value]) => ({ m: /^db(\d+)$/.exec(name), stats: parseInfoList(value) }))
      .filter((d) => d.m !== null)
      .map((d) => ({
        db: Number(d.m![1]),
        keys: Number(d.stats.keys ?? 0),
        expires: Number(d.stats.expires ?? 0),
      }))
      .sort((a, b) => a.db - b.db);

    let writer: RdbWriter | undefined;
    // The file version is only known from the first DUMP footer, so the head is written late.
    const open = (version: number): RdbWriter => {
      if (writer !== undefined) return writer;
      writer = new RdbWriter({ version });
      spool.append(writer.header());
      if (redisVersion !== undefined) spool.append(writer.aux('redis-ver', redisVersion));
      spool.append(writer.aux('redis-bits', server.arch_bits ?? '64'));
      spool.append(writer.aux('ctime', String(Math.floor(Date.now() / 1000))));
      // Marks the file itself, not only the result, as a key-by-key copy.
      spool.append(writer.aux('georep-export', 'scan-dump'));
      if (writer.version >= 10) for (const code of functions) spool.append(writer.function(code));
      return writer;
    };

    const keysPerDb: Record<number, number> = {};
    let keysWritten = 0;
    for (const { db, keys: hintKeys, expires: hintExpires } of dbs) {
      await run(node, commandTimeoutMs, 'SELECT', () => client.select(db));
      const seen = new Set<string>();
      let selected = false;
      let cursor = '0';
      do {
        const [next, keys] = await run(node, commandTimeoutMs, 'SCAN', () =>
          client.scanBuffer(cursor, 'COUNT', batchSize),
        );
        cursor = next.toString();
        const fresh = keys.filter((k) => {
          const id = k.toString('latin1');
          if (seen.has(id)) return false;
          seen.add(id);
          return true;
        });
        if (fresh.length === 0) continue;
        const pipe = client.pipeline();
        for (const key of fresh) pipe.pttl(key).dumpBuffer(key);
        const replies = (await run(node, commandTimeoutMs, 'DUMP', () => pipe.exec())) ?? [];
        const now = Date.now();
        for (let i = 0; i < fresh.length; i++) {
          const [ttlErr, ttl] = replies[2 * i] ?? [];
          const [dumpErr, payload] = replies[2 * i + 1] ?? [];
          if (ttlErr) throw mapClientError(node, ttlErr, 'PTTL', commandTimeoutMs);
          if (dumpErr) throw mapClientError(node, dumpErr, 'DUMP', commandTimeoutMs);
          // Deleted or expired since SCAN returned it: nothing to copy.
          if (!Buffer.isBuffer(payload) || ttl === -2) continue;
          const raw = dumpBody(node, fresh[i]!, payload);
          const w = open(payload.readUInt16LE(payload.length - DUMP_FOOTER_BYTES));
          if (!selected) {
            spool.append(w.selectDb(db));
            // Only a sizing hint for the loader, taken from INFO before the scan.
            if (w.version >= 7) spool.append(w.resizeDb(hintKeys, hintExpires));
            selected = true;
          }
          const expireAtMs = typeof ttl === 'number' && ttl >= 0 ? now + ttl : undefined;
          spool.append(w.rawKey(fresh[i]!, raw, expireAtMs === undefined ? {} : { expireAtMs }));
          keysPerDb[db] = (keysPerDb[db] ?? 0) + 1;
          keysWritten++;
        }
        options.onProgress?.({
          source: 'scan-dump',
          bytesReceived: spool.bytesAppended,
          keysWritten,
        });
      } while (cursor !== '0');
    }

    const w = open(rdbVersionForServer(server));
    const tail = w.end();
    spool.append(tail);
    spool.finish();
    const bytes = await spool.flushed();
    await spool.commit(options.out);
    return {
      pointInTime: false,
      source: 'scan-dump',
      out: options.out,
      bytes,
      rdbVersion: w.version,
      redisVersion,
      crc: tail
        .readBigUInt64LE(tail.length - 8)
        .toString(16)
        .padStart(16, '0'),
      replid: repl.master_replid ?? '',
      offset: Number(repl.master_repl_offset ?? 0),
      keysPerDb,
      functions: w.version >= 10 ? functions.length : 0,
      ...(options.fallbackFrom === undefined
        ? {}
        : { fallback: { code: options.fallbackFrom.code, message: options.fallbackFrom.message } }),
      durationMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    await spool.discard();
    throw err;
  } finally {
    client.disconnect();
  }
}

/** The DUMP payload without its footer, after checking the footer's CRC64. */
function dumpBody(node: ExportEndpoint, key: Buffer, payload: Buffer): Buffer {
  const end = payload.length - 8;
  if (
    payload.length <= DUMP_FOOTER_BYTES ||
    crc64(payload.subarray(0, end)) !== payload.readBigUInt64LE(end)
  ) {
    throw new ExportScanError(
      node,
      `DUMP of key ${JSON.stringify(key.toString())} has a bad checksum`,
    );
  }
  return payload.subarray(0, payload.length - DUMP_FOOTER_BYTES);
}

/** Function library sources (`FUNCTION LIST WITHCODE`, Redis 7.0+); none on older servers. */
async function readFunctionLibraries(client: Redis): Promise<string[]> {
  let reply: unknown;
  try {
    reply = await client.call('FUNCTION', 'LIST', 'WITHCODE');
  } catch {
    // Older servers, or a user without +function: the keys are what matters most.
    return [];
  }
  const out: string[] = [];
  for (const lib of Array.isArray(reply) ? (reply as unknown[]) : []) {
    if (!Array.isArray(lib)) continue;
    const at = lib.indexOf('library_code');
    const code: unknown = at >= 0 ? lib[at + 1] : undefined;
    if (typeof code === 'string') out.push(code);
  }
  return out;
}

/** RDB version a server writes, for the header of a file with no keys to learn it from. */
function rdbVersionForServer(server: Record<string, string>): number {
  const valkey = server.valkey_version;
  const [major = 0, minor = 0] = (valkey ?? server.redis_version ?? '')
    .split('.')
    .map((n) => Number(n));
  const at = (m: number, n: number) => major > m || (major === m && minor >= n);
  if (valkey !== undefined) return at(9, 0) ? 80 : 11;
  if (at(7, 4)) return 12;
  if (at(7, 2)) return 11;
  if (at(7, 0)) return 10;
  if (at(5, 0)) return 9;
  if (at(4, 0)) return 8;
  return at(3, 2) ? 7 : 6;
}

/** Runs one command (or pipeline), mapping client failures to export errors. */
async function run<T>(
  node: ExportEndpoint,
  timeoutMs: number,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapClientError(node, err, what, timeoutMs);
  }
}

/** ioredis errors → export errors, by the reply code or the connection failure. */
function mapClientError(
  node: ExportEndpoint,
  err: unknown,
  what: string,
  timeoutMs: number,
): GeorepError {
  if (err instanceof GeorepError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/^(WRONGPASS|NOAUTH)|invalid password|without any password configured/i.test(message)) {
    return new ExportAuthError(node, message, { cause: err });
  }
  if (/timed out/i.test(message)) return new ExportTimeoutError(node, what, timeoutMs);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (what === 'connecting' || (typeof code === 'string' && /^E[A-Z]+$/.test(code))) {
    return new ExportUnreachableError(node, { cause: err });
  }
  return new ExportScanError(node, `${what}: ${message}`, { cause: err });
}
