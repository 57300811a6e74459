/**
 * Looking inside an RDB without a server: what it holds per database, by type and encoding, its
 * biggest keys and a memory estimate (`inspectRdb`), or just whether it is intact (`verifyRdb`).
 * Both stream the source once with bounded memory (the parser holds one record at a time, the
 * top-10 list holds ten keys).
 */
import { GeorepError } from '@georep/core';
import { parseRdbBatches, RdbError, type RdbEofRecord, type RdbValueType } from '@georep/rdb';
import { printableKey } from './printable.js';
import { ByteCounter } from './source.js';

/** Per-database summary. */
export interface DbSummary {
  db: number;
  keys: number;
  /** Keys with an expiry. */
  expires: number;
  byType: Partial<Record<RdbValueType, number>>;
  /** By stored encoding name (`listpack`, `quicklist2`, `intset`, `hashtable`, ...). */
  byEncoding: Record<string, number>;
}

/** One of the biggest keys, by the size of its serialized value. */
export interface BigKey {
  db: number;
  /** Printable, escaped key name (see `printableKey`). */
  key: string;
  type: RdbValueType;
  /** Serialized value size in the file (type byte + body), not the in-memory size. */
  bytes: number;
}

/** Result of {@link inspectRdb}. */
export interface RdbInspection {
  header: { magic: 'REDIS' | 'VALKEY'; version: number };
  /** AUX fields (`redis-ver`, `ctime`, `used-mem`, `repl-id`, ...), values as latin1 text. */
  aux: Record<string, string>;
  checksum: RdbEofRecord['checksum'];
  /** Databases in file order. */
  dbs: DbSummary[];
  /** The 10 largest keys, largest first. */
  biggestKeys: BigKey[];
  /**
   * A rough estimate of the memory the dataset needs once loaded: serialized value sizes plus a
   * fixed per-key overhead ({@link PER_KEY_OVERHEAD} bytes plus the key length, plus 24 bytes for
   * an expiry). Compact encodings (listpacks, intsets) are about their serialized size in memory;
   * hashtable and skiplist encodings need several times more, so real usage is often higher.
   */
  memoryEstimateBytes: number;
  /** Function libraries (FUNCTION2 records). */
  functions: number;
  /** Module types with values in the file, and modules with global (aux) data. */
  modules: Array<{ name: string; keys: number; aux: boolean }>;
  /** Total key records. */
  keys: number;
  /** Size of the source. */
  bytes: number;
}

/** Approximate bytes per key besides its value: dict entry, key object, sds header, robj. */
export const PER_KEY_OVERHEAD = 72;
/** Approximate bytes per expiry: an entry in the expires dict. */
const PER_EXPIRE_OVERHEAD = 24;
const TOP_N = 10;

/**
 * Reads a whole RDB and summarises it.
 *
 * @throws RdbError subclasses (`rdb.*`) when the file is damaged.
 */
export async function inspectRdb(source: AsyncIterable<Uint8Array>): Promise<RdbInspection> {
  const counter = new ByteCounter();
  const result: RdbInspection = {
    header: { magic: 'REDIS', version: 0 },
    aux: {},
    checksum: 'absent',
    dbs: [],
    biggestKeys: [],
    memoryEstimateBytes: 0,
    functions: 0,
    modules: [],
    keys: 0,
    bytes: 0,
  };
  const dbs = new Map<number, DbSummary>();
  const modules = new Map<string, { name: string; keys: number; aux: boolean }>();
  const module = (name: string) => {
    let m = modules.get(name);
    if (m === undefined) modules.set(name, (m = { name, keys: 0, aux: false }));
    return m;
  };
  const top: BigKey[] = [];
  // Batches: one await per batch of records instead of one per record.
  for await (const batch of parseRdbBatches(counter.count(source))) {
    for (const rec of batch) {
      switch (rec.kind) {
        case 'header':
          result.header = { magic: rec.magic, version: rec.version };
          break;
        case 'aux':
          result.aux[rec.name] = rec.value.toString('latin1');
          break;
        case 'function':
          result.functions++;
          break;
        case 'module-aux':
          module(rec.moduleName).aux = true;
          break;
        case 'eof':
          result.checksum = rec.checksum;
          break;
        case 'key': {
          result.keys++;
          let d = dbs.get(rec.db);
          if (d === undefined) {
            dbs.set(rec.db, (d = { db: rec.db, keys: 0, expires: 0, byType: {}, byEncoding: {} }));
          }
          d.keys++;
          if (rec.expireAtMs !== undefined) d.expires++;
          d.byType[rec.type] = (d.byType[rec.type] ?? 0) + 1;
          d.byEncoding[rec.encoding] = (d.byEncoding[rec.encoding] ?? 0) + 1;
          if (rec.type === 'module') module(rec.value.moduleName).keys++;
          result.memoryEstimateBytes +=
            rec.raw.length +
            PER_KEY_OVERHEAD +
            rec.key.length +
            (rec.expireAtMs === undefined ? 0 : PER_EXPIRE_OVERHEAD);
          const size = rec.raw.length;
          if (top.length < TOP_N || size > top[top.length - 1]!.bytes) {
            top.push({ db: rec.db, key: printableKey(rec.key), type: rec.type, bytes: size });
            top.sort((a, b) => b.bytes - a.bytes);
            if (top.length > TOP_N) top.pop();
          }
          break;
        }
        default:
          break;
      }
    }
  }
  result.dbs = [...dbs.values()];
  result.biggestKeys = top;
  result.modules = [...modules.values()];
  result.bytes = counter.bytes;
  return result;
}

/** Result of {@link verifyRdb}. */
export interface RdbVerification {
  ok: boolean;
  /** The checksum outcome, or `failed` when the file did not parse to its end. */
  checksum: RdbEofRecord['checksum'] | 'failed';
  /** Key records parsed (up to the error, if any). */
  keys: number;
  /** Bytes read (up to the error, if any). */
  bytes: number;
  /** The first problem: an `rdb.*` code with the byte offset, or the source's own error. */
  error?: { code: string; message: string; offset: number | undefined };
}

/**
 * Parses a whole RDB (every record and the CRC64) and reports whether it is intact. Damage is a
 * result, not an exception; only programming errors throw.
 */
export async function verifyRdb(source: AsyncIterable<Uint8Array>): Promise<RdbVerification> {
  const counter = new ByteCounter();
  let keys = 0;
  let checksum: RdbVerification['checksum'] = 'failed';
  try {
    for await (const batch of parseRdbBatches(counter.count(source))) {
      for (const rec of batch) {
        if (rec.kind === 'key') keys++;
        else if (rec.kind === 'eof') checksum = rec.checksum;
      }
    }
  } catch (err) {
    const error = {
      code:
        err instanceof GeorepError ? err.code : ((err as NodeJS.ErrnoException).code ?? 'internal'),
      message: err instanceof Error ? err.message : String(err),
      offset: err instanceof RdbError ? err.offset : undefined,
    };
    return { ok: false, checksum: 'failed', keys, bytes: counter.bytes, error };
  }
  return { ok: true, checksum, keys, bytes: counter.bytes };
}
