/**
 * Writes RDB files for a chosen target version.
 *
 * {@link RdbWriter} produces the file piece by piece (each method returns the bytes to append),
 * so a caller can stream a snapshot of any size to disk or a socket; the CRC64 is accumulated as
 * pieces are produced and emitted by {@link RdbWriter.end}. {@link buildRdb} is the one-call form
 * for small files and tests.
 */
import { ByteSink } from './byte-sink.js';
import { Crc64 } from './crc64.js';
import {
  FIRST_CHECKSUM_VERSION,
  MAX_REDIS_RDB_VERSION,
  RdbOpcode,
  VALKEY_RDB_VERSION,
  magicForVersion,
} from './constants.js';
import { RdbUnencodableError } from './errors.js';
import { isTypeLoadable } from './compatibility.js';
import { encodeValue } from './value-encoder.js';
import { writeLen, writeString } from './primitives-writer.js';
import type { RdbValue } from './types.js';

/** Options of {@link RdbWriter}. */
export interface RdbWriterOptions {
  /** Target RDB version: 1-12 (Redis, magic `REDIS`) or 80 (Valkey 9, magic `VALKEY`). */
  version: number;
  /** LZF-compress long strings (like `rdbcompression yes`). Default true. */
  compress?: boolean;
  /** Write a zero checksum (like `rdbchecksum no`). Default false. */
  disableChecksum?: boolean;
}

/** Per-key attributes written before the type byte. */
export interface KeyWriteOptions {
  /** Absolute expiry in Unix ms. */
  expireAtMs?: number;
  /** LRU idle seconds (IDLE opcode; RDB 9+, silently omitted for older targets). */
  idleSeconds?: number;
  /** LFU counter 0-255 (FREQ opcode; RDB 9+, silently omitted for older targets). */
  lfuFreq?: number;
}

/**
 * Incremental RDB file writer. Call {@link header} first, {@link end} last; every method returns
 * the bytes to append to the output, in order.
 *
 * @example
 * ```ts
 * const w = new RdbWriter({ version: 10 });
 * const parts = [w.header(), w.aux('redis-ver', '7.0.15'), w.selectDb(0),
 *   w.key('greeting', { type: 'string', value: Buffer.from('hi') }), w.end()];
 * await fs.writeFile('dump.rdb', Buffer.concat(parts));
 * ```
 */
export class RdbWriter {
  /** The target RDB version. */
  readonly version: number;
  readonly #compress: boolean;
  readonly #disableChecksum: boolean;
  readonly #crc = new Crc64();
  #ended = false;

  constructor(options: RdbWriterOptions) {
    const v = options.version;
    const valid =
      Number.isInteger(v) && ((v >= 1 && v <= MAX_REDIS_RDB_VERSION) || v === VALKEY_RDB_VERSION);
    if (!valid) {
      throw new RdbUnencodableError(`cannot write RDB version ${v}: use 1-12 or 80`);
    }
    this.version = v;
    this.#compress = options.compress ?? true;
    this.#disableChecksum = options.disableChecksum ?? false;
  }

  #emit(sink: ByteSink): Buffer {
    if (this.#ended) throw new RdbUnencodableError('RdbWriter used after end()');
    const bytes = sink.finish();
    this.#crc.update(bytes);
    return bytes;
  }

  #requireVersion(min: number, what: string): void {
    if (this.version < min) {
      throw new RdbUnencodableError(`${what} needs RDB ${min}+, target is ${this.version}`);
    }
  }

  /** The 9-byte header: `REDIS0010`, `VALKEY080`, ... */
  header(): Buffer {
    const magic = magicForVersion(this.version);
    const digits = String(this.version).padStart(magic === 'REDIS' ? 4 : 3, '0');
    return this.#emit(new ByteSink(9).bytes(Buffer.from(magic + digits, 'latin1')));
  }

  /** An AUX field (RDB 7+). */
  aux(name: string, value: string | Uint8Array): Buffer {
    this.#requireVersion(7, 'AUX fields');
    const sink = new ByteSink(32).u8(RdbOpcode.AUX);
    writeString(sink, Buffer.from(name, 'latin1'), { compress: false });
    writeString(sink, typeof value === 'string' ? Buffer.from(value) : value, {
      compress: this.#compress,
    });
    return this.#emit(sink);
  }

  /** SELECTDB: following keys go to database `db`. */
  selectDb(db: number): Buffer {
    const sink = new ByteSink(8).u8(RdbOpcode.SELECTDB);
    writeLen(sink, db);
    return this.#emit(sink);
  }

  /** RESIZEDB size hints for the current database (RDB 7+). */
  resizeDb(dbSize: number, expiresSize: number): Buffer {
    this.#requireVersion(7, 'RESIZEDB');
    const sink = new ByteSink(16).u8(RdbOpcode.RESIZEDB);
    writeLen(sink, dbSize);
    writeLen(sink, expiresSize);
    return this.#emit(sink);
  }

  /** A function library (FUNCTION2, RDB 10+), given as its source code. */
  function(code: string | Uint8Array): Buffer {
    this.#requireVersion(10, 'functions');
    const sink = new ByteSink(64).u8(RdbOpcode.FUNCTION2);
    writeString(sink, typeof code === 'string' ? Buffer.from(code) : code, {
      compress: this.#compress,
    });
    return this.#emit(sink);
  }

  /** A key with a decoded value, encoded for the target version. */
  key(key: string | Uint8Array, value: RdbValue, options: KeyWriteOptions = {}): Buffer {
    const { typeCode, body } = encodeValue(value, {
      version: this.version,
      compress: this.#compress,
    });
    return this.#keyRecord(key, typeCode, body, options);
  }

  /**
   * A key whose value is given as raw bytes (type byte + body, as in a parser record's `raw` or
   * a DUMP payload without its footer): copies values between files without re-encoding.
   *
   * @throws RdbUnencodableError when the target version cannot load that type.
   */
  rawKey(key: string | Uint8Array, raw: Uint8Array, options: KeyWriteOptions = {}): Buffer {
    const typeCode = raw[0];
    if (typeCode === undefined) throw new RdbUnencodableError('raw value is empty');
    if (!isTypeLoadable(typeCode, this.version)) {
      throw new RdbUnencodableError(
        `value type ${typeCode} cannot be loaded by RDB ${this.version}; decode and re-encode it`,
      );
    }
    return this.#keyRecord(key, typeCode, raw.subarray(1), options);
  }

  #keyRecord(
    key: string | Uint8Array,
    typeCode: number,
    body: Uint8Array,
    options: KeyWriteOptions,
  ): Buffer {
    const sink = new ByteSink(body.length + 32);
    if (options.expireAtMs !== undefined) {
      if (this.version >= 3) {
        sink.u8(RdbOpcode.EXPIRETIME_MS).i64le(BigInt(Math.trunc(options.expireAtMs)));
      } else {
        // RDB 1-2 only know expiry in whole seconds; round up so the key never expires early.
        sink.u8(RdbOpcode.EXPIRETIME);
        const seconds = Math.ceil(options.expireAtMs / 1000);
        const b = Buffer.allocUnsafe(4);
        b.writeInt32LE(seconds);
        sink.bytes(b);
      }
    }
    if (this.version >= 9) {
      if (options.idleSeconds !== undefined) {
        sink.u8(RdbOpcode.IDLE);
        writeLen(sink, options.idleSeconds);
      }
      if (options.lfuFreq !== undefined) sink.u8(RdbOpcode.FREQ).u8(options.lfuFreq & 0xff);
    }
    sink.u8(typeCode);
    writeString(sink, typeof key === 'string' ? Buffer.from(key) : key, {
      compress: this.#compress,
    });
    sink.bytes(body);
    return this.#emit(sink);
  }

  /** The EOF opcode and, for RDB 5+, the CRC64 of everything written. Ends the writer. */
  end(): Buffer {
    const eof = this.#emit(new ByteSink(1).u8(RdbOpcode.EOF));
    this.#ended = true;
    if (this.version < FIRST_CHECKSUM_VERSION) return eof;
    const crc = this.#disableChecksum ? Buffer.alloc(8) : this.#crc.digestBytes();
    return Buffer.concat([eof, crc]);
  }
}

/** A key for {@link buildRdb}. */
export interface RdbKeySpec extends KeyWriteOptions {
  key: string | Uint8Array;
  value: RdbValue;
}

/** A whole file for {@link buildRdb}. */
export interface RdbFileSpec extends RdbWriterOptions {
  /** AUX fields, written after the header (RDB 7+). */
  aux?: Record<string, string>;
  /** Function library sources (RDB 10+). */
  functions?: Array<string | Uint8Array>;
  /** Databases with their keys; RESIZEDB hints are added for RDB 7+. */
  databases: Array<{ db: number; keys: RdbKeySpec[] }>;
}

/** Builds a complete RDB file in memory. For large outputs use {@link RdbWriter} directly. */
export function buildRdb(spec: RdbFileSpec): Buffer {
  const w = new RdbWriter(spec);
  const parts: Buffer[] = [w.header()];
  for (const [name, value] of Object.entries(spec.aux ?? {})) parts.push(w.aux(name, value));
  for (const code of spec.functions ?? []) parts.push(w.function(code));
  for (const { db, keys } of spec.databases) {
    parts.push(w.selectDb(db));
    if (w.version >= 7) {
      parts.push(w.resizeDb(keys.length, keys.filter((k) => k.expireAtMs !== undefined).length));
    }
    for (const k of keys) parts.push(w.key(k.key, k.value, k));
  }
  parts.push(w.end());
  return Buffer.concat(parts);
}
