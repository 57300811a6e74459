/**
 * Point-in-time RDB export from a live node: a full sync as an rdb-only replica, spooled straight
 * into a temporary file next to the output, verified while it arrives, renamed into place only
 * when complete and valid. A node that refuses replication is exported with SCAN + DUMP instead,
 * when allowed, and the result says the file is not point-in-time.
 */
import { RdbCorruptError } from '@georep/rdb';
import { ExportPsyncRefusedError } from './export-errors.js';
import { startFullSync, type FullSync } from './replication-client.js';
import { verifyRdbStream } from './rdb-verify.js';
import { exportRdbByScan } from './scan-dump-export.js';
import { SpoolFile, partialPathFor } from './spool-file.js';
import type { ExportRdbOptions, ExportRdbResult, PsyncExportResult } from './export-types.js';

/**
 * Exports the dataset of `options.node` to the RDB file `options.out`.
 *
 * The file is written atomically: it is received into a temporary file in the same directory,
 * flushed, and renamed over `out` only after the transfer completed and the checksum (and, by
 * default, every record) verified. On any failure the temporary file is removed and `out` is
 * left untouched.
 *
 * The node sees an ordinary replica that asked for `rdb-only`: it forks once (diskless when
 * `repl-diskless-sync yes`), streams the snapshot and disconnects; its replication buffer does not
 * grow. The socket is drained at network speed whatever the verification speed, so the fork is
 * held no longer than the transfer needs.
 *
 * @throws ExportAuthError (`export.auth-failed`), ExportPsyncRefusedError (`export.psync-refused`,
 *   only with `allowScanFallback: false`), ExportConnectionLostError (`export.connection-lost`),
 *   ExportBadReplyError (`export.bad-reply`), ExportTimeoutError (`export.timeout`),
 *   ExportUnreachableError (`export.unreachable`), ExportWriteError (`export.write-failed`),
 *   RdbError subclasses (`rdb.bad-checksum`, `rdb.corrupt`, ...) when the received bytes are bad.
 *
 * @example
 * ```ts
 * const r = await exportRdb({ node: { host: '10.0.0.5', port: 6379 }, config, out: 'eu.rdb' });
 * if (r.pointInTime) console.log(`snapshot of ${r.replid} at offset ${r.offset}`);
 * ```
 */
export async function exportRdb(options: ExportRdbOptions): Promise<ExportRdbResult> {
  const started = performance.now();
  try {
    return await exportByPsync(options, started);
  } catch (err) {
    if (!(err instanceof ExportPsyncRefusedError) || options.allowScanFallback === false) throw err;
    return exportRdbByScan({
      node: options.node,
      config: options.config,
      out: options.out,
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      ...(options.scan === undefined ? {} : { tuning: options.scan }),
      fallbackFrom: err,
      startedAt: started,
    });
  }
}

async function exportByPsync(
  options: ExportRdbOptions,
  started: number,
): Promise<PsyncExportResult> {
  const mode = options.verify ?? 'records';
  const spool = await SpoolFile.create(partialPathFor(options.out));
  let sync: FullSync | undefined;
  try {
    const onProgress = options.onProgress;
    sync = await startFullSync({
      node: options.node,
      config: options.config,
      spool,
      ...(options.timeouts === undefined ? {} : { timeouts: options.timeouts }),
      ...(onProgress === undefined
        ? {}
        : {
            onBytes: (bytesReceived, totalBytes) =>
              onProgress({
                source: 'psync',
                bytesReceived,
                ...(totalBytes === undefined ? {} : { totalBytes }),
              }),
          }),
    });
    let transferMs = 0;
    const transferred = sync.completed.then((bytes) => {
      transferMs = performance.now() - started;
      return bytes;
    });
    // Awaited below; until then a failure is reported through the verifier, not as unhandled.
    transferred.catch(() => undefined);
    // Verification reads the spool behind the receiver; a bad byte stops the transfer at once
    // (the catch below aborts it) instead of letting the node stream the rest for nothing.
    const summary = await verifyRdbStream(spool.read(), mode);
    const bytes = await transferred;
    if (summary.bytes !== bytes) {
      throw new RdbCorruptError(`${bytes - summary.bytes} bytes follow the RDB checksum`, {
        offset: summary.bytes,
      });
    }
    await spool.commit(options.out);
    return {
      pointInTime: true,
      source: 'psync',
      out: options.out,
      bytes,
      rdbVersion: summary.rdbVersion,
      redisVersion: summary.redisVersion,
      crc: summary.crc,
      replid: sync.replid,
      offset: sync.offset,
      ...(summary.keysPerDb === undefined ? {} : { keysPerDb: summary.keysPerDb }),
      framing: sync.framing,
      checksum: summary.checksum,
      verify: mode,
      rdbOnly: sync.rdbOnly,
      aux: summary.aux,
      transferMs: Math.round(transferMs),
      durationMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    sync?.abort(err instanceof Error ? err : new Error(String(err)));
    await spool.discard();
    throw err;
  }
}
