/**
 * The streaming RDB parser: bytes in (any async iterable of chunks, e.g. `fs.createReadStream`),
 * records out, CRC64 verified on the way.
 *
 * Memory is bounded by the largest single record, not by the file: each unit (an opcode with its
 * payload, or one key with its value) is decoded synchronously from a window of buffered bytes;
 * when the window ends inside a unit, more input is read and the unit is decoded again. The
 * window grows geometrically while one unit is incomplete, so a value of N bytes costs O(N) work
 * however it is chunked.
 *
 * Every unit that fits in the window is decoded in one synchronous run and handed over as one
 * batch ({@link parseRdbBatches}); {@link parseRdb} hands the same records over one at a time.
 */
import { createReadStream } from 'node:fs';
import { ByteWindow } from './byte-window.js';
import { Crc64 } from './crc64.js';
import { NeedMoreData } from './byte-cursor.js';
import { RdbCursor } from './cursor.js';
import { RdbChecksumError, RdbRecordTooLargeError } from './errors.js';
import { hasChecksum, newUnitState, readHeader, readUnit } from './record-reader.js';
import type { ByteSource } from './byte-window.js';
import type { RdbEofRecord, RdbRawRecord, RdbRecord } from './types.js';

/** Options of {@link parseRdb} and {@link parseRdbBatches}. */
export interface ParseRdbOptions {
  /**
   * Largest single record (a key with its value, or an AUX/function payload) accepted, in bytes.
   * Also caps what a corrupt length prefix can make the parser buffer. Default 1 GiB.
   */
  maxRecordBytes?: number;
  /**
   * `true` (default): throw {@link RdbChecksumError} when the stored CRC64 does not match.
   * `false`: compute nothing and report the stored value only (for salvaging damaged files).
   */
  verifyChecksum?: boolean;
  /**
   * `true` (default): refuse versions other than Redis 1-12 and Valkey 80. `false`: try anyway,
   * like Valkey's `rdb-version-check relaxed` (unknown types still fail).
   */
  strictVersion?: boolean;
  /**
   * `true` (default): key records carry the decoded `value`. `false`: they carry `key`, `type`,
   * `encoding`, the per-key attributes and `raw` but no `value` ({@link RdbRawKeyRecord}); values
   * are only delimited, not decoded (no LZF decompression, no listpack walk), which is all that
   * RESTORE-based import and key counting need. Only the framing of a value is checked then: a
   * broken listpack or LZF block inside a value is not noticed (the CRC64 still is).
   */
  decodeValues?: boolean;
}

/** Options of a parse that decodes values (the default). */
export type ParseRdbDecodedOptions = ParseRdbOptions & { decodeValues?: true };
/** Options of a parse that does not decode values. */
export type ParseRdbRawOptions = ParseRdbOptions & { decodeValues: false };
/** Options of {@link parseRdbFile} and {@link parseRdbFileBatches}. */
export interface ParseRdbFileOptions {
  /** Read chunk size; larger chunks mean fewer refills. Default 256 KiB. */
  highWaterMark?: number;
}

const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024 * 1024;
/** Cap on read-ahead growth per refill while one unit is incomplete. */
const MAX_GROWTH = 64 * 1024 * 1024;
const CHECKSUM_BYTES = 8;
/** Most records in one batch (a batch otherwise ends where the buffered input does). */
const MAX_BATCH = 256;
const EMPTY = Buffer.alloc(0);

type AnyRecord = RdbRecord | RdbRawRecord;

/**
 * Parses an RDB file from a stream of chunks, yielding records in file order: the header, then
 * AUX fields, databases, keys, functions and module data as they appear, then an `eof` record
 * saying whether the checksum was verified.
 *
 * Records are decoded in batches ({@link parseRdbBatches}) and handed out one by one; this costs
 * one promise per record. Use {@link parseRdbBatches} to avoid even that.
 *
 * @throws RdbError subclasses (`rdb.truncated`, `rdb.bad-checksum`, `rdb.corrupt`, ...) with the
 *   byte offset of the problem, after every record before it has been yielded. Errors of the
 *   source itself (I/O) propagate unchanged.
 *
 * @example
 * ```ts
 * for await (const rec of parseRdb(fs.createReadStream('dump.rdb'))) {
 *   if (rec.kind === 'key') console.log(rec.db, rec.key.toString(), rec.type);
 * }
 * ```
 */
export function parseRdb(
  source: ByteSource,
  options: ParseRdbRawOptions,
): AsyncGenerator<RdbRawRecord, void, undefined>;
export function parseRdb(
  source: ByteSource,
  options?: ParseRdbDecodedOptions,
): AsyncGenerator<RdbRecord, void, undefined>;
export function parseRdb(
  source: ByteSource,
  options: ParseRdbOptions,
): AsyncGenerator<AnyRecord, void, undefined>;
export function parseRdb(
  source: ByteSource,
  options: ParseRdbOptions = {},
): AsyncGenerator<AnyRecord, void, undefined> {
  return new RecordIterator(batches(source, options));
}

/**
 * {@link parseRdb}, handing records over in arrays: every record decoded from the input buffered
 * so far (at most 256), in file order. One await per batch instead of one per record, which is
 * what a consumer of millions of small keys wants. The arrays and records are the caller's.
 *
 * @throws like {@link parseRdb}: the records before the problem come first, in a last batch.
 *
 * @example
 * ```ts
 * for await (const batch of parseRdbBatches(fs.createReadStream('dump.rdb'), { decodeValues: false })) {
 *   for (const rec of batch) if (rec.kind === 'key') restore(rec.key, rec.raw);
 * }
 * ```
 */
export function parseRdbBatches(
  source: ByteSource,
  options: ParseRdbRawOptions,
): AsyncGenerator<RdbRawRecord[], void, undefined>;
export function parseRdbBatches(
  source: ByteSource,
  options?: ParseRdbDecodedOptions,
): AsyncGenerator<RdbRecord[], void, undefined>;
export function parseRdbBatches(
  source: ByteSource,
  options: ParseRdbOptions,
): AsyncGenerator<AnyRecord[], void, undefined>;
export function parseRdbBatches(
  source: ByteSource,
  options: ParseRdbOptions = {},
): AsyncGenerator<AnyRecord[], void, undefined> {
  return batches(source, options);
}

async function* batches(
  source: ByteSource,
  options: ParseRdbOptions,
): AsyncGenerator<AnyRecord[], void, undefined> {
  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  const verify = options.verifyChecksum ?? true;
  const decodeValues = options.decodeValues ?? true;
  const win = new ByteWindow(source);
  const crc = new Crc64();
  const cur = new RdbCursor(EMPTY, 0, 0, false);
  /** `win.buf[crcFrom..win.pos)` is consumed but not yet in the CRC. */
  let crcFrom = 0;
  let batch: AnyRecord[] = [];

  /** Adds the bytes consumed since the last call to the CRC. */
  const checksumConsumed = (): void => {
    if (verify && win.pos > crcFrom) crc.update(win.buf.subarray(crcFrom, win.pos));
    crcFrom = win.pos;
  };

  /**
   * Reads more input so that the unit at `win.offset` can be decoded up to byte `until`.
   * `tooLarge` is called first when that would exceed `maxRecordBytes`.
   */
  const refill = async (until: number, tooLarge?: () => void): Promise<void> => {
    const required = until - win.offset;
    if (required > maxRecordBytes) {
      tooLarge?.();
      throw new RdbRecordTooLargeError(
        `record at byte ${win.offset} needs ${required} bytes, limit is ${maxRecordBytes}`,
        { offset: win.offset, details: { required, maxRecordBytes } },
      );
    }
    checksumConsumed();
    const avail = win.available;
    const target = Math.min(
      Math.max(required, Math.min(avail * 2, avail + MAX_GROWTH)),
      Math.max(required, maxRecordBytes),
    );
    await win.fill(target);
    crcFrom = win.pos;
  };

  /** Decodes one unit with `decode`, refilling the window until it fits. */
  const single = async <T>(decode: (c: RdbCursor) => T): Promise<T> => {
    for (;;) {
      cur.reset(win.buf, win.pos, win.base, win.ended);
      try {
        const result = decode(cur);
        win.consumeTo(cur.pos);
        return result;
      } catch (err) {
        if (!(err instanceof NeedMoreData)) throw err;
        await refill(err.until);
      }
    }
  };

  try {
    const header = await single((c) => readHeader(c, options.strictVersion ?? true));
    batch.push(header);
    const version = header.version;
    const st = newUnitState(version, header.magic === 'VALKEY' ? 'valkey' : 'redis', decodeValues);

    /**
     * Before giving up on a unit too large to buffer, decodes it once more in one pass, as a
     * plain decoder would: if that meets a corrupt value first, that error is the one to report.
     */
    const replayTooLarge = (): void => {
      if (!decodeValues) return;
      cur.reset(win.buf, win.pos, win.base, win.ended);
      st.replay = true;
      try {
        readUnit(cur, st);
      } catch (err) {
        if (!(err instanceof NeedMoreData)) throw err;
      } finally {
        st.replay = false;
      }
    };

    for (;;) {
      cur.reset(win.buf, win.pos, win.base, win.ended);
      let until = -1;
      let eof = false;
      try {
        while (batch.length < MAX_BATCH) {
          const record = readUnit(cur, st);
          win.consumeTo(cur.pos);
          if (record.kind === 'eof-marker') {
            eof = true;
            break;
          }
          if (record.kind === 'selectdb') st.db = record.db;
          batch.push(record);
        }
      } catch (err) {
        if (!(err instanceof NeedMoreData)) throw err;
        until = err.until;
      }
      if (eof) break;
      if (batch.length > 0) {
        const out = batch;
        batch = [];
        yield out;
      }
      if (until >= 0) await refill(until, replayTooLarge);
    }

    const eofOffset = win.offset - 1;
    if (!hasChecksum(version)) {
      batch.push({ kind: 'eof', checksum: 'absent', offset: eofOffset });
      const out = batch;
      batch = [];
      yield out;
      return;
    }
    checksumConsumed();
    const computed = crc.digest();
    const checksumOffset = win.offset;
    const stored = await single((c) => {
      c.ensure(CHECKSUM_BYTES);
      const v = c.buf.readBigUInt64LE(c.pos);
      c.pos += CHECKSUM_BYTES;
      return v;
    });
    const eof: RdbEofRecord = { kind: 'eof', checksum: 'verified', crc: stored, offset: eofOffset };
    if (stored === 0n) {
      // Saved with `rdbchecksum no` (or a Valkey TLS diskless sync): nothing to compare.
      eof.checksum = 'disabled';
    } else if (verify && stored !== computed) {
      throw new RdbChecksumError(stored, computed, { offset: checksumOffset });
    } else if (!verify) {
      eof.checksum = 'unverified';
    }
    batch.push(eof);
    const out = batch;
    batch = [];
    yield out;
  } catch (err) {
    // Records decoded before the problem are delivered first, as a record-by-record parser would.
    if (batch.length > 0) {
      const out = batch;
      batch = [];
      yield out;
    }
    throw err;
  } finally {
    await win.close();
  }
}

/**
 * Hands the records of a batch generator over one at a time. A hand-written iterator rather than
 * an async generator: taking the next record of a batch costs one resolved promise, where an
 * async generator's `yield` costs several microtask hops per record.
 */
class RecordIterator<T> implements AsyncGenerator<T, void, undefined> {
  readonly #batches: AsyncGenerator<T[], void, undefined>;
  #batch: (T | undefined)[] = [];
  #index = 0;
  #done = false;
  /** The pending fetch of the next batch; calls of `next()` made meanwhile wait for it. */
  #fetching: Promise<IteratorResult<T, void>> | undefined;

  constructor(batchIterator: AsyncGenerator<T[], void, undefined>) {
    this.#batches = batchIterator;
  }

  next(): Promise<IteratorResult<T, void>> {
    if (this.#fetching !== undefined) {
      const after = (): Promise<IteratorResult<T, void>> => this.next();
      return this.#fetching.then(after, after);
    }
    if (this.#index < this.#batch.length) {
      const value = this.#batch[this.#index] as T;
      // Let go of records already handed out, so a batch does not keep them alive.
      this.#batch[this.#index++] = undefined;
      return Promise.resolve({ value, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    const fetching = this.#fetch();
    this.#fetching = fetching;
    return fetching;
  }

  async #fetch(): Promise<IteratorResult<T, void>> {
    try {
      for (;;) {
        const r = await this.#batches.next();
        if (r.done === true) {
          this.#done = true;
          this.#batch = [];
          return { value: undefined, done: true };
        }
        if (r.value.length === 0) continue;
        this.#batch = r.value;
        this.#index = 1;
        const value = r.value[0]!;
        this.#batch[0] = undefined;
        return { value, done: false };
      }
    } catch (err) {
      this.#done = true;
      this.#batch = [];
      throw err;
    } finally {
      this.#fetching = undefined;
    }
  }

  async return(): Promise<IteratorResult<T, void>> {
    this.#done = true;
    this.#batch = [];
    await this.#batches.return(undefined);
    return { value: undefined, done: true };
  }

  async throw(err: unknown): Promise<IteratorResult<T, void>> {
    this.#done = true;
    this.#batch = [];
    await this.#batches.throw(err);
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }
}

/** An async iterable of the file's chunks; the file is opened when iteration starts. */
function fileSource(path: string, highWaterMark = 256 * 1024): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () =>
      createReadStream(path, { highWaterMark })[
        Symbol.asyncIterator
      ]() as AsyncIterator<Uint8Array>,
  };
}

/**
 * Parses the RDB file at `path` with {@link parseRdb}, streaming it from disk.
 *
 * @param highWaterMark - read chunk size; larger chunks mean fewer refills. Default 256 KiB.
 */
export function parseRdbFile(
  path: string,
  options: ParseRdbRawOptions & ParseRdbFileOptions,
): AsyncGenerator<RdbRawRecord, void, undefined>;
export function parseRdbFile(
  path: string,
  options?: ParseRdbDecodedOptions & ParseRdbFileOptions,
): AsyncGenerator<RdbRecord, void, undefined>;
export function parseRdbFile(
  path: string,
  options: ParseRdbOptions & ParseRdbFileOptions,
): AsyncGenerator<AnyRecord, void, undefined>;
export function parseRdbFile(
  path: string,
  options: ParseRdbOptions & ParseRdbFileOptions = {},
): AsyncGenerator<AnyRecord, void, undefined> {
  return parseRdb(fileSource(path, options.highWaterMark), options);
}

/** {@link parseRdbBatches} of the RDB file at `path`, streamed from disk. */
export function parseRdbFileBatches(
  path: string,
  options: ParseRdbRawOptions & ParseRdbFileOptions,
): AsyncGenerator<RdbRawRecord[], void, undefined>;
export function parseRdbFileBatches(
  path: string,
  options?: ParseRdbDecodedOptions & ParseRdbFileOptions,
): AsyncGenerator<RdbRecord[], void, undefined>;
export function parseRdbFileBatches(
  path: string,
  options: ParseRdbOptions & ParseRdbFileOptions,
): AsyncGenerator<AnyRecord[], void, undefined>;
export function parseRdbFileBatches(
  path: string,
  options: ParseRdbOptions & ParseRdbFileOptions = {},
): AsyncGenerator<AnyRecord[], void, undefined> {
  return batches(fileSource(path, options.highWaterMark), options);
}
