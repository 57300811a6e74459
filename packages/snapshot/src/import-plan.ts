/**
 * The verify pass of an import and the decisions shared by both passes: which keys an import
 * covers, which can be RESTOREd as raw bytes on the target, and whether the file can be imported
 * at all. Nothing here writes to the target.
 */
import {
  isTypeLoadable,
  parseDumpPayload,
  parseRdbBatches,
  RdbCorruptError,
  RdbError,
  type RdbKeyFields,
  type RdbKeyRecord,
  type RdbRawKeyRecord,
} from '@georep/rdb';
import { ImportIncompatibleError, ImportUsageError } from './errors.js';
import { KeyGlob } from './glob.js';
import type { ImportProgress, ImportRdbOptions } from './import-types.js';
import { printableKey } from './printable.js';
import { ByteCounter, openSource } from './source.js';
import type { TargetInfo } from './target-info.js';
import { commandsForValue } from './value-commands.js';

/** DUMP footer: 2-byte version + 8-byte CRC64. */
const FOOTER = 10;
/** Types 22/23 mean different things in the two forks; only a Valkey file's 22 may be RESTOREd. */
const FORK_AMBIGUOUS = new Set([22, 23]);

/** What the verify pass learnt. */
export interface Survey {
  version: number;
  magic: 'REDIS' | 'VALKEY';
  bytes: number;
  keysRead: number;
  /** Databases holding keys the import covers. */
  dbs: Set<number>;
  /** Keys the import covers that the target could hold. */
  writable: number;
  candidates: number;
  /** Keys the import covers whose value is module data. */
  moduleKeys: number;
}

/** Checks option values before connecting. */
export function validate(o: ImportRdbOptions): void {
  if (o.mode !== 'replace' && o.mode !== 'merge') {
    throw new ImportUsageError(`mode must be 'replace' or 'merge', not ${String(o.mode)}`);
  }
  if (o.onConflict !== undefined && o.mode !== 'merge') {
    throw new ImportUsageError('onConflict applies to merge mode only');
  }
  const db = o.target.db;
  if (db !== undefined && (!Number.isInteger(db) || db < 0)) {
    throw new ImportUsageError(`target.db must be a database number, not ${db}`);
  }
  const w = o.pipeline;
  if (w !== undefined && (!Number.isInteger(w) || w < 1)) {
    throw new ImportUsageError(`pipeline must be a positive integer, not ${w}`);
  }
}

/**
 * georep's own keys (replication metadata, outbox, markers) in a snapshot of a replicated region.
 * They describe that region's replication state, not data, and never go into a target.
 */
const GEOREP_PREFIX = Buffer.from('__georep:');

/** Whether the import covers this key at all (georep's keys, db and match filters). */
export function covered(
  rec: RdbKeyFields,
  options: ImportRdbOptions,
  glob: KeyGlob | undefined,
): boolean {
  if (
    rec.key.length >= GEOREP_PREFIX.length &&
    GEOREP_PREFIX.equals(rec.key.subarray(0, GEOREP_PREFIX.length))
  ) {
    return false;
  }
  if (options.target.db !== undefined && rec.db !== options.target.db) return false;
  return glob === undefined || glob.matches(rec.key);
}

/** RESTORE-able as raw bytes on this target? */
export function restorable(
  rec: RdbRawKeyRecord | RdbKeyRecord,
  target: TargetInfo,
  options: ImportRdbOptions,
  magic: string,
): boolean {
  if (options.forceCommands?.includes(rec.type) === true) return false;
  if (FORK_AMBIGUOUS.has(rec.typeCode) && magic !== 'VALKEY') return false;
  if (!isTypeLoadable(rec.typeCode, target.rdbVersion)) return false;
  return rec.raw.length + FOOTER <= target.protoMaxBulkLen;
}

/**
 * The decoded value of a key parsed without values, for the plain-command fallback: its `raw`
 * bytes decoded as a DUMP payload would be (the checksum, already verified with the file's, is
 * not recomputed).
 *
 * @throws RdbCorruptError (`rdb.corrupt`, at the record's offset) when the value does not decode.
 */
export function decodeRecord(rec: RdbRawKeyRecord, magic: 'REDIS' | 'VALKEY'): RdbKeyRecord {
  // A zeroed footer: version and CRC are neither used nor checked here.
  const payload = Buffer.alloc(rec.raw.length + FOOTER);
  rec.raw.copy(payload);
  try {
    const parsed = parseDumpPayload(payload, {
      flavor: magic === 'VALKEY' ? 'valkey' : 'redis',
      skipChecksum: true,
    });
    return { ...rec, type: parsed.type, value: parsed.value } as RdbKeyRecord;
  } catch (err) {
    if (!(err instanceof RdbError)) throw err;
    // Offsets of the payload mean nothing to the caller: report the record's.
    throw new RdbCorruptError(
      `the value of key ${printableKey(rec.key)} (record at byte ${rec.offset}) does not decode: ${err.message}`,
      { offset: rec.offset, cause: err },
    );
  }
}

/**
 * Parses the whole source (CRC64 included) and surveys what would be written. Values are only
 * delimited, not decoded (the write pass sends their bytes as they are), except those of keys
 * that need the plain-command fallback, which are decoded to check that they can be written.
 */
export async function verifyPass(options: ImportRdbOptions, target: TargetInfo): Promise<Survey> {
  const counter = new ByteCounter();
  const glob = options.match === undefined ? undefined : new KeyGlob(options.match);
  const survey: Survey = {
    version: 0,
    magic: 'REDIS',
    bytes: 0,
    keysRead: 0,
    dbs: new Set(),
    writable: 0,
    candidates: 0,
    moduleKeys: 0,
  };
  let lastBytes = 0;
  const now = Date.now();
  const source = counter.count(openSource(options.source, 0));
  for await (const batch of parseRdbBatches(source, { decodeValues: false })) {
    for (const rec of batch) {
      if (rec.kind === 'header') {
        survey.version = rec.version;
        survey.magic = rec.magic;
      }
      if (rec.kind !== 'key') continue;
      survey.keysRead++;
      if (counter.bytes !== lastBytes) {
        lastBytes = counter.bytes;
        report(options, 'verify', counter.bytes, undefined, survey.keysRead, 0);
      }
      if (!covered(rec, options, glob)) continue;
      if (rec.expireAtMs !== undefined && rec.expireAtMs <= now) continue;
      survey.candidates++;
      survey.dbs.add(rec.db);
      if (rec.type === 'module') {
        survey.moduleKeys++;
        // Whether the module exists on the target shows only when RESTORE is tried.
        if (isTypeLoadable(rec.typeCode, target.rdbVersion)) survey.writable++;
      } else if (
        restorable(rec, target, options, survey.magic) ||
        commandsForValue(rec.key, decodeRecord(rec, survey.magic), target, {
          deleteFirst: false,
          expireAtMs: undefined,
          now,
        }).unsupported === undefined
      ) {
        survey.writable++;
      }
    }
  }
  survey.bytes = counter.bytes;
  return survey;
}

/**
 * Refuses, before anything is written, a file the target cannot take: databases it does not have,
 * or keys none of which it can hold (`import.incompatible`).
 */
export function checkCompatible(
  survey: Survey,
  target: TargetInfo,
  options: ImportRdbOptions,
): void {
  const tooHigh = [...survey.dbs].filter(
    (db) => target.databases !== undefined && db >= target.databases,
  );
  if (tooHigh.length > 0) {
    throw new ImportIncompatibleError(
      `the file has keys in database(s) ${tooHigh.join(', ')} but the target has only ${target.databases} databases`,
      { details: { dbs: tooHigh, databases: target.databases } },
    );
  }
  if (survey.candidates > 0 && survey.writable === 0) {
    throw new ImportIncompatibleError(
      `none of the ${survey.candidates} keys of this RDB ${survey.version} file can be written to ${target.fork} ${target.version}`,
      { details: { candidates: survey.candidates, mode: options.mode } },
    );
  }
}

/** Calls the caller's progress callback, if any. */
export function report(
  options: ImportRdbOptions,
  phase: ImportProgress['phase'],
  bytesRead: number,
  totalBytes: number | undefined,
  keysRead: number,
  keysWritten: number,
): void {
  options.onProgress?.({ phase, bytesRead, totalBytes, keysRead, keysWritten });
}
