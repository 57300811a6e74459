/**
 * Imports an RDB file into a live Redis/Valkey node.
 *
 * Two passes over the source. The verify pass parses every record to the end and checks the
 * CRC64 before anything is written: a damaged file fails with its `rdb.*` error and the target is
 * untouched. The write pass sends, per key, `RESTORE key <abs-ms> <raw bytes + footer> ABSTTL`
 * (no re-encoding: listpacks load almost as a memcpy) when the target can load the value's type
 * code and the payload fits its `proto-max-bulk-len`; otherwise plain commands rebuilt from the
 * decoded value. Everything goes through one bounded pipeline whose replies are accounted in
 * order, so a failure reports exactly what was written.
 */
import { ImportAuthError, ImportUnreachableError } from './errors.js';
import { checkCompatible, validate, verifyPass } from './import-plan.js';
import { ImportRun } from './import-run.js';
import type { ImportRdbOptions, ImportRdbResult } from './import-types.js';
import { RespConnection } from './resp-connection.js';
import { connectTarget, isAuthError, probeTarget } from './target-info.js';

/**
 * Imports the RDB `source` into `target`; see {@link ImportRdbOptions} for the modes.
 *
 * @throws RdbError subclasses (`rdb.*`) when the file is damaged: nothing was written.
 * @throws ImportUnreachableError (`import.target-unreachable`), ImportAuthError
 *   (`import.auth-failed`), ImportRejectedError (`import.rejected`) with the counts written so
 *   far, ImportIncompatibleError (`import.incompatible`) before writing, ImportUsageError.
 *
 * @example
 * ```ts
 * const r = await importRdb({ source: fileSource('eu.rdb'), target: { node, config }, mode: 'replace' });
 * console.log(`${r.keysWritten} keys (${r.viaCommands} via commands), ${r.skippedExpired} expired`);
 * ```
 */
export async function importRdb(options: ImportRdbOptions): Promise<ImportRdbResult> {
  const started = Date.now();
  validate(options);
  const client = await connectTarget(options.target.node, options.target.config);
  try {
    const target = await probeTarget(client);
    const verifyStarted = Date.now();
    const survey = await verifyPass(options, target);
    const verifyMs = Date.now() - verifyStarted;
    checkCompatible(survey, target, options);
    const conn = await openWriter(options);
    try {
      const run = new ImportRun(client, conn, target, options, survey);
      await run.prepare();
      await run.writePass();
      return { ...run.result(), verifyMs, durationMs: Date.now() - started };
    } finally {
      conn.close();
    }
  } finally {
    client.disconnect();
  }
}

/** The raw connection of the write pass (ioredis is too slow per command; see resp-connection). */
async function openWriter(options: ImportRdbOptions): Promise<RespConnection> {
  const { node, config } = options.target;
  try {
    return await RespConnection.open(node, config);
  } catch (err) {
    const where = `${node.host}:${node.port}`;
    const message = err instanceof Error ? err.message : String(err);
    if (isAuthError(err)) {
      throw new ImportAuthError(`target ${where} refused the credentials: ${message}`, {
        cause: err,
      });
    }
    throw new ImportUnreachableError(
      `cannot open the write connection to ${where}: ${message}`,
      { keysWritten: 0, lastKey: undefined, lastDb: undefined },
      { cause: err },
    );
  }
}
