/**
 * Replace-mode import at the target's native RDB load speed: this process acts as a replication
 * master. It listens on a TCP port, tells the target `REPLICAOF <advertiseHost> <port>`, answers
 * the target's handshake (`PING` → `+PONG`, `AUTH`/`REPLCONF` → `+OK`, `PSYNC` →
 * `+FULLRESYNC <replid> 0`), sends `$<len>\r\n` and the file's bytes, waits until the target
 * reports `master_link_status:up` and `loading:0`, then sends `REPLICAOF NO ONE`.
 *
 * The target flushes ALL its databases and loads the file exactly as it would a full sync. The
 * whole file is verified (the import's raw-mode verify pass, CRC64 included) before REPLICAOF is
 * sent, and the target's RDB version is checked like `importRdb` does. See the README for the
 * caveats (permissions, reachability, `repl-diskless-load`).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { ReplyError, type Redis } from 'ioredis';
import { GeorepError, type RedisConfig } from '@georep/core';
import { parseInfo, parseInfoList } from '@georep/redis';
import {
  ImportIncompatibleError,
  ImportNativeRefusedError,
  ImportNativeTimeoutError,
  ImportUsageError,
} from './errors.js';
import { checkCompatible, verifyPass } from './import-plan.js';
import type { ImportRdbOptions } from './import-types.js';
import { fileSource } from './source.js';
import { connectTarget, probeTarget, type TargetInfo } from './target-info.js';

/** Default deadline of the replication phase (REPLICAOF → loaded). */
const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;
/** How long the target may take to dial the listener after REPLICAOF. */
const CONNECT_TIMEOUT_MS = 30_000;
/** INFO polling period while the target syncs. */
const POLL_MS = 50;
/** Newline keepalive period after the payload (a master's `repl-ping-replica-period`). */
const KEEPALIVE_MS = 10_000;
/** How long the restore of `REPLICAOF NO ONE` retries while the target answers `-LOADING`. */
const RESTORE_RETRY_MS = 60_000;
/** Highest RDB version of a Redis file that Valkey loads (Valkey 8 writes/reads 11). */
const VALKEY_MAX_FOREIGN_RDB = 11;

/** Progress of a native import. */
export interface NativeImportProgress {
  /** `verify`: reading the file; `transfer`: sending it; `load`: the target is loading it. */
  phase: 'verify' | 'transfer' | 'load';
  /** Bytes verified, sent, or loaded by the target (INFO `loading_loaded_bytes`). */
  bytes: number;
  /** Size of the file, once known. */
  totalBytes: number | undefined;
  /** Key records read by the verify pass. */
  keysRead: number;
}

/** Options of {@link importRdbNative}. */
export interface ImportRdbNativeOptions {
  /** Path of the RDB file (its length must be known before sending, so a file, not a stream). */
  file: string;
  /** The node to replace the dataset of, with its credentials and TLS. */
  target: { node: { host: string; port: number }; config: RedisConfig };
  /** Address the listener binds to. Default `127.0.0.1`. */
  listenHost?: string;
  /** Port the listener binds to. Default 0 (any free port). */
  listenPort?: number;
  /** Address the target dials (`REPLICAOF <advertiseHost> <port>`). Default `listenHost`. */
  advertiseHost?: string;
  /** Deadline of the replication phase, from REPLICAOF to the end of the load. Default 30 min. */
  timeoutMs?: number;
  /** Called per chunk verified or sent and per INFO poll while loading. Must not throw. */
  onProgress?: (progress: NativeImportProgress) => void;
  /**
   * Called just before `REPLICAOF` with the address the target is told to replicate from. A
   * caller that may die before the import ends records it, so that a later run can undo a target
   * left replicating from a listener that is gone ({@link abandonNativeImport}). Must not throw.
   */
  onReplicaOf?: (master: { host: string; port: number }) => void;
}

/** What a native import did. */
export interface ImportRdbNativeResult {
  /** Keys on the target afterwards (INFO keyspace, all databases). */
  keysLoaded: number;
  /** Size of the file. */
  bytes: number;
  /** From REPLICAOF to the target reporting the link up and the load finished. */
  loadMs: number;
  /** Wall time of the whole import. */
  durationMs: number;
  /** Wall time of the verify pass. */
  verifyMs: number;
  /** RDB version of the file. */
  sourceRdbVersion: number;
  /** The target as probed. */
  target: { fork: 'redis' | 'valkey'; version: string; rdbVersion: number };
  method: 'replication';
}

/**
 * Replaces the whole dataset of `target` (every database, and its functions) with the RDB `file`,
 * loaded by the target itself through a full sync from this process.
 *
 * @throws RdbError subclasses (`rdb.*`) when the file is damaged: REPLICAOF was not sent.
 * @throws ImportIncompatibleError (`import.incompatible`) when the target cannot load the file's
 *   RDB version or databases: REPLICAOF was not sent.
 * @throws ImportNativeRefusedError (`import.native-refused`): REPLICAOF refused (stage
 *   `replicaof`, target untouched), or the target failed the sync (stage `load`).
 * @throws ImportNativeTimeoutError (`import.native-timeout`).
 * @throws ImportUnreachableError, ImportAuthError, ImportUsageError.
 * On every failure after REPLICAOF the target is sent `REPLICAOF NO ONE` and the listener closed.
 */
export async function importRdbNative(
  options: ImportRdbNativeOptions,
): Promise<ImportRdbNativeResult> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new ImportUsageError(`timeoutMs must be a positive number, not ${timeoutMs}`);
  }
  const { node, config } = options.target;
  const client = await connectTarget(node, config);
  try {
    const target = await probeTarget(client);
    // The shared verify pass: every record parsed (raw mode), CRC64 checked, dbs surveyed.
    const verifyStarted = Date.now();
    const importOptions: ImportRdbOptions = {
      source: fileSource(options.file),
      target: { node, config },
      mode: 'replace',
      onProgress: (p) =>
        options.onProgress?.({
          phase: 'verify',
          bytes: p.bytesRead,
          totalBytes: p.totalBytes,
          keysRead: p.keysRead,
        }),
    };
    const survey = await verifyPass(importOptions, target);
    const verifyMs = Date.now() - verifyStarted;
    checkLoadable(survey.version, survey.magic, target);
    if (survey.moduleKeys > 0) await checkModules(client, survey.moduleKeys);
    checkCompatible(survey, target, importOptions);
    const bytes = (await stat(options.file)).size;
    if (bytes !== survey.bytes) {
      throw new ImportUsageError(
        `${options.file} changed during the import (${survey.bytes} bytes verified, now ${bytes})`,
      );
    }

    const master = await FakeMaster.listen(
      options.file,
      bytes,
      options.listenHost,
      options.listenPort,
    );
    const loadStarted = Date.now();
    let replicaOf = false;
    try {
      const host = options.advertiseHost ?? advertisable(options.listenHost);
      options.onReplicaOf?.({ host, port: master.port });
      try {
        await client.call('REPLICAOF', host, String(master.port));
      } catch (err) {
        if (err instanceof ReplyError) {
          throw new ImportNativeRefusedError(
            'replicaof',
            `target ${node.host}:${node.port} refused REPLICAOF: ${(err as Error).message}`,
            { cause: err },
          );
        }
        throw err;
      }
      replicaOf = true;
      await waitLoaded(client, master, host, timeoutMs, bytes, options);
      const loadMs = Date.now() - loadStarted;
      await client.call('REPLICAOF', 'NO', 'ONE');
      replicaOf = false;
      master.close();
      return {
        keysLoaded: await keyCount(client),
        bytes,
        loadMs,
        durationMs: Date.now() - started,
        verifyMs,
        sourceRdbVersion: survey.version,
        target: { fork: target.fork, version: target.version, rdbVersion: target.rdbVersion },
        method: 'replication',
      };
    } finally {
      master.close();
      if (replicaOf) await restorePrimary(client, node, config);
    }
  } finally {
    client.disconnect();
  }
}

/** Refuses a file the target's loader rejects (too new an RDB version, another fork's file). */
function checkLoadable(version: number, magic: 'REDIS' | 'VALKEY', target: TargetInfo): void {
  let why: string | undefined;
  if (magic === 'VALKEY' && target.fork !== 'valkey') {
    why = `a Valkey RDB ${version} file cannot be loaded by redis ${target.version}`;
  } else if (version > target.rdbVersion) {
    why = `RDB version ${version} is newer than what ${target.fork} ${target.version} loads (${target.rdbVersion})`;
  } else if (magic === 'REDIS' && target.fork === 'valkey' && version > VALKEY_MAX_FOREIGN_RDB) {
    why = `a Redis RDB ${version} file cannot be loaded by valkey ${target.version} (Redis files up to RDB ${VALKEY_MAX_FOREIGN_RDB} only)`;
  }
  if (why !== undefined) {
    throw new ImportIncompatibleError(`native import impossible: ${why}`, {
      hint: 'Use importRdb, which rewrites values the target cannot load, or a newer target.',
      details: { sourceRdbVersion: version, magic, targetRdbVersion: target.rdbVersion },
    });
  }
}

/**
 * A replica that meets module data it has no module for stops with a fatal error (the whole
 * process exits, unlike a RESTORE that fails for one key): refuse when the target has no module
 * loaded at all. Which module a key needs cannot be told from MODULE LIST (type names are not
 * module names), so a target with other modules passes; the README says so.
 */
async function checkModules(client: Redis, moduleKeys: number): Promise<void> {
  let modules: unknown[] = [];
  try {
    modules = (await client.call('MODULE', 'LIST')) as unknown[];
  } catch (err) {
    if (!(err instanceof ReplyError)) throw err;
  }
  if (modules.length === 0) {
    throw new ImportIncompatibleError(
      `native import impossible: the file has ${moduleKeys} module keys and the target has no module loaded (loading them would stop the target)`,
      {
        hint: 'Load the module on the target, or use importRdb (it skips the keys it cannot hold).',
        details: { moduleKeys },
      },
    );
  }
}

/** A host the target can dial for a listen address (a wildcard bind is not one). */
function advertisable(listenHost: string | undefined): string {
  if (listenHost === undefined || listenHost === '0.0.0.0' || listenHost === '::') {
    return '127.0.0.1';
  }
  return listenHost;
}

/** Sum of `keys=` over the databases in INFO keyspace. */
async function keyCount(client: Redis): Promise<number> {
  const keyspace = parseInfo(await client.info('keyspace')).keyspace ?? {};
  let n = 0;
  for (const v of Object.values(keyspace)) n += Number(parseInfoList(v).keys ?? 0);
  return n;
}

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/**
 * Polls INFO until the target is linked to `master`, the payload was sent and the load is over.
 *
 * @throws ImportNativeRefusedError (stage `load`) when the master saw the sync fail,
 *   ImportNativeTimeoutError past the deadline.
 */
async function waitLoaded(
  client: Redis,
  master: FakeMaster,
  host: string,
  timeoutMs: number,
  bytes: number,
  options: ImportRdbNativeOptions,
): Promise<void> {
  const start = Date.now();
  const where = `${host}:${master.port}`;
  let lastSent = -1;
  for (;;) {
    if (master.failure !== undefined) throw master.failure;
    const elapsed = Date.now() - start;
    if (elapsed > timeoutMs) {
      throw new ImportNativeTimeoutError(
        `the target did not finish loading within ${timeoutMs} ms (${master.bytesSent} of ${bytes} bytes sent)`,
        { details: { bytesSent: master.bytesSent, bytes, listener: where } },
      );
    }
    if (master.syncs === 0 && elapsed > Math.min(timeoutMs, CONNECT_TIMEOUT_MS)) {
      throw new ImportNativeTimeoutError(
        `the target never connected to ${where} within ${Math.round(elapsed / 1000)} s`,
        {
          hint: 'Set listenHost/advertiseHost to an address the target can reach (and open the port).',
          details: { listener: where },
        },
      );
    }
    if (!master.payloadSent) {
      if (master.bytesSent !== lastSent) {
        lastSent = master.bytesSent;
        options.onProgress?.({
          phase: 'transfer',
          bytes: master.bytesSent,
          totalBytes: bytes,
          keysRead: 0,
        });
      }
      await sleep(POLL_MS);
      continue;
    }
    const info = parseInfo(await client.info());
    const repl = info.replication ?? {};
    const loading = info.persistence?.loading === '1';
    if (loading) {
      options.onProgress?.({
        phase: 'load',
        bytes: Number(info.persistence?.loading_loaded_bytes ?? 0),
        totalBytes: bytes,
        keysRead: 0,
      });
    }
    if (
      !loading &&
      repl.master_link_status === 'up' &&
      repl.master_port === String(master.port) &&
      repl.master_sync_in_progress !== '1'
    ) {
      options.onProgress?.({ phase: 'load', bytes, totalBytes: bytes, keysRead: 0 });
      return;
    }
    await sleep(POLL_MS);
  }
}

/**
 * Undoes a native import whose process died (see `onReplicaOf`): when `target` still replicates
 * from `master`, it is made a primary again. It keeps the dataset it had, or the file's when the
 * whole transfer had arrived (a replica swaps in a full sync's data only then). Returns whether
 * the target was restored.
 *
 * A load that still looks alive is left alone: the target receiving the transfer, loading it, or
 * linked to `master` (its importer answers, so it did not die: it may be another process that the
 * caller lost touch with).
 * @throws ImportUnreachableError, ImportAuthError when the target cannot be reached;
 *   GeorepError `import.native-in-progress` when the load still looks alive, and
 *   `import.native-not-undone` when it still replicates from `master` afterwards: try again
 *   later.
 */
export async function abandonNativeImport(
  target: { node: { host: string; port: number }; config: RedisConfig },
  master: { host: string; port: number },
): Promise<boolean> {
  const client = await connectTarget(target.node, target.config);
  try {
    const info = parseInfo(String(await client.call('INFO')));
    const replication = info.replication ?? {};
    if (
      replication.role !== 'slave' ||
      replication.master_host !== master.host ||
      Number(replication.master_port) !== master.port
    )
      return false;
    if (
      replication.master_link_status === 'up' ||
      replication.master_sync_in_progress === '1' ||
      info.persistence?.loading === '1'
    ) {
      throw new GeorepError(
        'import.native-in-progress',
        `${target.node.host}:${target.node.port} is still ${info.persistence?.loading === '1' ? 'loading' : 'receiving'} the import from ${master.host}:${master.port}`,
        {
          hint: 'a load that is alive is not undone: try again once it ended or its importer died',
        },
      );
    }
    if (!(await restorePrimary(client, target.node, target.config))) {
      throw new GeorepError(
        'import.native-not-undone',
        `${target.node.host}:${target.node.port} still replicates from ${master.host}:${master.port}`,
        {
          hint: 'the node refused REPLICAOF NO ONE or stopped answering: check it, then try again',
        },
      );
    }
    return true;
  } finally {
    client.disconnect();
  }
}

/**
 * Best effort: makes the target a primary again after a failure. Retries while it answers
 * `-LOADING` (a load of what was already sent cannot be interrupted), on a fresh connection if
 * the import's one is gone. Returns whether `REPLICAOF NO ONE` went through.
 */
async function restorePrimary(
  client: Redis,
  node: { host: string; port: number },
  config: RedisConfig,
): Promise<boolean> {
  const deadline = Date.now() + RESTORE_RETRY_MS;
  let conn = client;
  try {
    for (;;) {
      try {
        if (conn.status !== 'ready') conn = await connectTarget(node, config);
        await conn.call('REPLICAOF', 'NO', 'ONE');
        return true;
      } catch (err) {
        const retry = !(err instanceof ReplyError) || /^LOADING\b/.test((err as Error).message);
        if (!retry || Date.now() > deadline) return false;
        await sleep(200);
      }
    }
  } finally {
    if (conn !== client) conn.disconnect();
  }
}

/**
 * The master side of one full sync: answers the handshake of the first replica connection and
 * streams the file after `+FULLRESYNC`. A second sync after the whole payload was sent means the
 * target failed to load it (it reconnects after a failed load), which is recorded as `failure`.
 */
class FakeMaster {
  readonly #server: Server;
  readonly #file: string;
  readonly #size: number;
  readonly #replid = randomBytes(20).toString('hex');
  readonly #sockets = new Set<Socket>();
  #active: Socket | undefined;
  #keepalive: NodeJS.Timeout | undefined;
  #closed = false;
  /** PSYNC/SYNC requests served. */
  syncs = 0;
  bytesSent = 0;
  payloadSent = false;
  failure: Error | undefined;

  private constructor(server: Server, file: string, size: number) {
    this.#server = server;
    this.#file = file;
    this.#size = size;
    server.on('connection', (s) => this.#onConnection(s));
  }

  static async listen(
    file: string,
    size: number,
    host = '127.0.0.1',
    port = 0,
  ): Promise<FakeMaster> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new FakeMaster(server, file, size);
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#keepalive !== undefined) clearInterval(this.#keepalive);
    this.#server.close();
    for (const s of this.#sockets) s.destroy();
  }

  #onConnection(socket: Socket): void {
    if (this.#closed || (this.#active !== undefined && !this.#active.destroyed)) {
      // One replica at a time: someone else (or a duplicate) dialing in is not served.
      socket.destroy();
      return;
    }
    this.#active = socket;
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        const parsed = parseCommand(buf);
        if (parsed === undefined) break;
        buf = buf.subarray(parsed.end);
        if (parsed.args.length > 0) this.#onCommand(socket, parsed.args);
      }
    });
  }

  #onCommand(socket: Socket, args: string[]): void {
    const name = args[0]!.toUpperCase();
    switch (name) {
      case 'PING':
        socket.write('+PONG\r\n');
        return;
      case 'AUTH':
        socket.write('+OK\r\n');
        return;
      case 'REPLCONF': {
        // ACKs (after the sync) get no reply; handshake REPLCONFs get +OK.
        const sub = (args[1] ?? '').toUpperCase();
        if (sub !== 'ACK' && sub !== 'GETACK') socket.write('+OK\r\n');
        return;
      }
      case 'PSYNC':
      case 'SYNC':
        this.#sync(socket, name === 'PSYNC');
        return;
      default:
        socket.write(`-ERR georep import master does not serve ${name}\r\n`);
    }
  }

  #sync(socket: Socket, psync: boolean): void {
    this.syncs++;
    if (this.syncs > 1) {
      this.failure = new ImportNativeRefusedError(
        'load',
        this.payloadSent
          ? 'the target asked for a new full sync after receiving the whole file: it failed to load it (see its log)'
          : `the target dropped the transfer after ${this.bytesSent} of ${this.#size} bytes and asked again`,
        { details: { bytesSent: this.bytesSent, bytes: this.#size } },
      );
      socket.destroy();
      return;
    }
    if (psync) socket.write(`+FULLRESYNC ${this.#replid} 0\r\n`);
    socket.write(`$${this.#size}\r\n`);
    const stream = createReadStream(this.#file, { highWaterMark: 1024 * 1024 });
    stream.on('data', (chunk) => {
      this.bytesSent += chunk.length;
    });
    stream.on('end', () => {
      if (this.bytesSent !== this.#size) {
        this.failure = new ImportUsageError(
          `${this.#file} changed during the import (${this.#size} bytes announced, ${this.bytesSent} sent)`,
        );
        socket.destroy();
        return;
      }
      this.payloadSent = true;
      // Like a master's pings: keeps the link alive through a long load on the target.
      this.#keepalive = setInterval(() => {
        if (!socket.destroyed) socket.write('\n');
      }, KEEPALIVE_MS);
    });
    stream.on('error', (err) => {
      this.failure = err;
      socket.destroy();
    });
    socket.on('close', () => stream.destroy());
    stream.pipe(socket, { end: false });
  }
}

/** One RESP array of bulk strings, or an inline command line; undefined when incomplete. */
function parseCommand(buf: Buffer): { args: string[]; end: number } | undefined {
  if (buf.length === 0) return undefined;
  const eol = buf.indexOf('\r\n');
  if (buf[0] !== 0x2a) {
    const nl = buf.indexOf('\n');
    if (nl < 0) return undefined;
    const line = buf.toString('latin1', 0, nl).trim();
    return { args: line === '' ? [] : line.split(/\s+/), end: nl + 1 };
  }
  if (eol < 0) return undefined;
  const n = Number(buf.toString('latin1', 1, eol));
  let at = eol + 2;
  const args: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = buf.indexOf('\r\n', at);
    if (e < 0 || buf[at] !== 0x24) return undefined;
    const len = Number(buf.toString('latin1', at + 1, e));
    const start = e + 2;
    if (start + len + 2 > buf.length) return undefined;
    args.push(buf.toString('latin1', start, start + len));
    at = start + len + 2;
  }
  return { args, end: at };
}
