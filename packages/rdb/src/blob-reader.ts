/**
 * Bounds-checked reading inside a blob that is already fully in memory (a ziplist, listpack,
 * intset or zipmap stored as one RDB string).
 *
 * Unlike the stream cursor there is no "need more data" here: the blob is complete, so running
 * past its end means the blob is corrupt.
 */
import { RdbCorruptError } from './errors.js';
import { intToBuffer } from './number-bytes.js';
import { viewOf, viewSource } from './buffer-view.js';
import type { Blob } from './cursor.js';
import type { ViewSource } from './buffer-view.js';

/** An element of a compact encoding: a string, or an integer (bigint beyond 2^53). */
export type CompactElement = Buffer | number | bigint;

/** Sequential reader over a {@link Blob}. */
export class BlobReader {
  readonly bytes: Buffer;
  pos = 0;
  readonly #blob: Blob;
  readonly #what: string;
  /** {@link viewSource} of `bytes`, read on the first {@link BlobReader.take}. */
  #source: ViewSource | undefined;

  constructor(blob: Blob, what: string) {
    this.bytes = blob.bytes;
    this.#blob = blob;
    this.#what = what;
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  /** A corrupt-blob error, located in the file as precisely as the blob allows. */
  corrupt(message: string, at = this.pos): RdbCorruptError {
    const offset = this.#blob.exact ? this.#blob.origin + at : this.#blob.origin;
    return new RdbCorruptError(`${this.#what}: ${message}`, {
      offset,
      details: { blobOffset: at },
    });
  }

  need(n: number): void {
    if (n < 0 || this.pos + n > this.bytes.length) {
      throw this.corrupt(`needs ${n} bytes, ${this.remaining} left`);
    }
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  /**
   * `n` bytes as a view of the blob. A blob always belongs to one record (a copy out of the read
   * window, a view of the record's `raw`, or a decompressed buffer), so elements pin at most the
   * bytes of their own record, never the parser's window.
   */
  take(n: number): Buffer {
    this.need(n);
    const at = this.pos;
    this.pos += n;
    this.#source ??= viewSource(this.bytes);
    return viewOf(this.#source, at, at + n);
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** Signed little-endian integer of 1-8 bytes; bigint only when it does not fit 2^53. */
  intLE(width: number): number | bigint {
    this.need(width);
    const p = this.pos;
    this.pos += width;
    switch (width) {
      case 1:
        return this.bytes.readInt8(p);
      case 2:
        return this.bytes.readInt16LE(p);
      case 3:
        return this.bytes.readIntLE(p, 3);
      case 4:
        return this.bytes.readInt32LE(p);
      case 8:
        return narrow(this.bytes.readBigInt64LE(p));
      default:
        throw this.corrupt(`unsupported integer width ${width}`, p);
    }
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

/** A bigint as a number when exact, else unchanged. */
export function narrow(v: bigint): number | bigint {
  return v <= MAX_SAFE && v >= MIN_SAFE ? Number(v) : v;
}

/** The Redis-visible string form of an element (integers as decimal text). */
export function elementToBuffer(e: CompactElement): Buffer {
  if (typeof e === 'number') return intToBuffer(e);
  return typeof e === 'bigint' ? Buffer.from(e.toString(), 'latin1') : e;
}

/** An element as a bigint integer, or undefined when it is a non-numeric string. */
export function elementToBigInt(e: CompactElement): bigint | undefined {
  if (typeof e === 'bigint') return e;
  if (typeof e === 'number') return BigInt(e);
  const text = e.toString('latin1');
  if (!/^-?\d{1,20}$/.test(text)) return undefined;
  return BigInt(text);
}
