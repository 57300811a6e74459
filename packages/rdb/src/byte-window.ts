/**
 * The parser's view of its input: a window of unconsumed bytes over an async chunk source.
 *
 * Memory stays bounded by the largest record (plus read-ahead): consumed bytes are dropped on the
 * next refill, and chunks are only concatenated when a record straddles them.
 */
import { GeorepError } from '@georep/core';

const EMPTY = Buffer.alloc(0);
/** Largest join buffer kept for reuse. */
const MAX_SPARE_BYTES = 8 * 1024 * 1024;

/** Anything the parser can read from: a Node stream, an async generator, an array of Buffers. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Unconsumed input bytes `buf[pos..]`, refilled from the source on demand. */
export class ByteWindow {
  /** The buffered bytes; `buf[pos..]` is not yet consumed. */
  buf: Buffer = EMPTY;
  /** First unconsumed byte in `buf`. */
  pos = 0;
  /** Absolute input offset of `buf[0]`. */
  base = 0;
  /** True once the source has no more chunks. */
  ended = false;
  readonly #it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  /** Buffers recycled for joining chunks (see `#concat`). */
  #spares: Buffer[] = [];

  constructor(source: ByteSource) {
    this.#it =
      Symbol.asyncIterator in source
        ? source[Symbol.asyncIterator]()
        : (source as Iterable<Uint8Array>)[Symbol.iterator]();
  }

  /** Number of buffered, unconsumed bytes. */
  get available(): number {
    return this.buf.length - this.pos;
  }

  /** Absolute input offset of the first unconsumed byte. */
  get offset(): number {
    return this.base + this.pos;
  }

  /** Marks bytes up to `pos` (an index into `buf`) as consumed. */
  consumeTo(pos: number): void {
    this.pos = pos;
  }

  /**
   * Reads from the source until at least `min` unconsumed bytes are buffered or the source ends.
   * Consumed bytes are dropped here, so `buf` is rebuilt from the unconsumed tail.
   */
  async fill(min: number): Promise<void> {
    if (this.available >= min || this.ended) return;
    const parts: Buffer[] = [];
    let total = this.available;
    if (total > 0) parts.push(this.buf.subarray(this.pos));
    while (total < min) {
      const r = await this.#it.next();
      if (r.done === true) {
        this.ended = true;
        break;
      }
      const chunk = toBuffer(r.value);
      if (chunk.length === 0) continue;
      parts.push(chunk);
      total += chunk.length;
    }
    this.base += this.pos;
    this.pos = 0;
    this.buf =
      parts.length === 1 ? parts[0]! : parts.length === 0 ? EMPTY : this.#concat(parts, total);
  }

  /**
   * Joins `parts` (the unconsumed tail and new chunks) into one buffer. The parser never hands out
   * views of its window (records copy what they keep), so the buffers used for joining are
   * recycled: two of them, so that the tail can be copied out of one into the other. Joins larger
   * than {@link MAX_SPARE_BYTES} get a buffer of their own, so a huge record does not keep its
   * window alive for the rest of the parse.
   */
  #concat(parts: Buffer[], total: number): Buffer {
    const inUse = this.buf.buffer;
    let out: Buffer | undefined;
    for (let i = 0; i < this.#spares.length; i++) {
      const spare = this.#spares[i]!;
      if (spare.length >= total && spare.buffer !== inUse) {
        out = spare;
        break;
      }
    }
    if (out === undefined) {
      const capacity = total + (total >> 1);
      if (capacity > MAX_SPARE_BYTES) return Buffer.concat(parts, total);
      out = Buffer.allocUnsafeSlow(capacity);
      // Keep the newest two; the one being replaced may still be the current window.
      this.#spares = this.#spares
        .filter((b) => b.buffer === inUse)
        .concat(out)
        .slice(-2);
    }
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out.subarray(0, total);
  }

  /** Releases the source (closes a file stream early when parsing stops before its end). */
  async close(): Promise<void> {
    await this.#it.return?.();
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array)
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new GeorepError(
    'rdb.invalid-source',
    `RDB input chunks must be bytes, got ${typeof chunk} (is the stream opened with an encoding?)`,
  );
}
