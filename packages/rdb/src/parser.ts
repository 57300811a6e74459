/**
 * The streaming RDB parser: bytes in (any async iterable of chunks, e.g. `fs.createReadStream`),
 * records out (an async iterator), CRC64 verified on the way.
 *
 * Memory is bounded by the largest single record, not by the file: each unit (an opcode with its
 * payload, or one key with its value) is decoded synchronously from a window of buffered bytes;
 * when the window ends inside a unit, more input is read and the unit is decoded again. The
 * window grows geometrically while one unit is incomplete, so a value of N bytes costs O(N) work
 * however it is chunked.
 */
import { createReadStream } from 'node:fs';
import { ByteWindow } from './byte-window.js';
import { Crc64 } from './crc64.js';
import { NeedMoreData, RdbCursor } from './cursor.js';
import { RdbChecksumError, RdbRecordTooLargeError } from './errors.js';
import { hasChecksum, readHeader, readUnit } from './record-reader.js';
import type { ByteSource } from './byte-window.js';
import type { PendingKeyAttributes } from './record-reader.js';
import type { RdbEofRecord, RdbHeaderRecord, RdbRecord } from './types.js';

/** Options of {@link parseRdb}. */
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
}

const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024 * 1024;
/** Cap on read-ahead growth per refill while one unit is incomplete. */
const MAX_GROWTH = 64 * 1024 * 1024;
const CHECKSUM_BYTES = 8;

/**
 * Parses an RDB file from a stream of chunks, yielding records in file order: the header, then
 * AUX fields, databases, keys, functions and module data as they appear, then an `eof` record
 * saying whether the checksum was verified.
 *
 * @throws RdbError subclasses (`rdb.truncated`, `rdb.bad-checksum`, `rdb.corrupt`, ...) with the
 *   byte offset of the problem. Errors of the source itself (I/O) propagate unchanged.
 *
 * @example
 * ```ts
 * for await (const rec of parseRdb(fs.createReadStream('dump.rdb'))) {
 *   if (rec.kind === 'key') console.log(rec.db, rec.key.toString(), rec.type);
 * }
 * ```
 */
export async function* parseRdb(
  source: ByteSource,
  options: ParseRdbOptions = {},
): AsyncGenerator<RdbRecord, void, undefined> {
  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  const verify = options.verifyChecksum ?? true;
  const win = new ByteWindow(source);
  const crc = new Crc64();
  let header: RdbHeaderRecord | undefined;
  let db = 0;
  let pending: PendingKeyAttributes = {};

  /** Decodes one unit with `decode`, refilling the window until it fits; commits it to the CRC. */
  async function unit<T>(decode: (cur: RdbCursor) => T, checksummed = true): Promise<T> {
    for (;;) {
      const cur = new RdbCursor(win.buf, win.pos, win.base, win.ended);
      let result: T;
      try {
        result = decode(cur);
      } catch (err) {
        if (!(err instanceof NeedMoreData)) throw err;
        const required = err.until - win.offset;
        if (required > maxRecordBytes) {
          throw new RdbRecordTooLargeError(
            `record at byte ${win.offset} needs ${required} bytes, limit is ${maxRecordBytes}`,
            { offset: win.offset, details: { required, maxRecordBytes } },
          );
        }
        const avail = win.available;
        const target = Math.min(
          Math.max(required, Math.min(avail * 2, avail + MAX_GROWTH)),
          Math.max(required, maxRecordBytes),
        );
        await win.fill(target);
        continue;
      }
      if (checksummed && verify) crc.update(win.buf.subarray(win.pos, cur.pos));
      win.consumeTo(cur.pos);
      return result;
    }
  }

  try {
    header = await unit((cur) => readHeader(cur, options.strictVersion ?? true));
    yield header;
    const version = header.version;
    const flavor = header.magic === 'VALKEY' ? 'valkey' : 'redis';

    for (;;) {
      const { record, pending: left } = await unit((cur) =>
        readUnit(cur, { version, flavor, db, pending }),
      );
      pending = left;
      if (record.kind === 'eof-marker') break;
      if (record.kind === 'selectdb') db = record.db;
      yield record;
    }

    const eofOffset = win.offset - 1;
    if (!hasChecksum(version)) {
      yield { kind: 'eof', checksum: 'absent', offset: eofOffset };
      return;
    }
    const computed = crc.digest();
    const checksumOffset = win.offset;
    const stored = await unit((cur) => {
      cur.ensure(CHECKSUM_BYTES);
      const v = cur.buf.readBigUInt64LE(cur.pos);
      cur.pos += CHECKSUM_BYTES;
      return v;
    }, false);
    const eof: RdbEofRecord = { kind: 'eof', checksum: 'verified', crc: stored, offset: eofOffset };
    if (stored === 0n) {
      // Saved with `rdbchecksum no` (or a Valkey TLS diskless sync): nothing to compare.
      eof.checksum = 'disabled';
    } else if (verify && stored !== computed) {
      throw new RdbChecksumError(stored, computed, { offset: checksumOffset });
    } else if (!verify) {
      eof.checksum = 'unverified';
    }
    yield eof;
  } finally {
    await win.close();
  }
}

/**
 * Parses the RDB file at `path` with {@link parseRdb}, streaming it from disk.
 *
 * @param highWaterMark - read chunk size; larger chunks mean fewer refills. Default 256 KiB.
 */
export function parseRdbFile(
  path: string,
  options: ParseRdbOptions & { highWaterMark?: number } = {},
): AsyncGenerator<RdbRecord, void, undefined> {
  // The file is opened when iteration starts, so a generator never iterated opens nothing.
  const source: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () =>
      createReadStream(path, {
        highWaterMark: options.highWaterMark ?? 256 * 1024,
      })[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>,
  };
  return parseRdb(source, options);
}
