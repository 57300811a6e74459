/**
 * A synchronous reader over an in-memory window of the input: bounds, fixed-width numbers, byte
 * ranges (copied, or viewed when the window belongs to the record) and the `raw` copy of a value.
 *
 * The streaming parser decodes one record at a time synchronously (fast: no promise per byte).
 * When the window runs out in the middle of a record the cursor throws {@link NeedMoreData}; the
 * async driver then fetches more input and decodes the record again from its start. When the
 * input has ended (`final`), running out is a real {@link RdbTruncatedError} instead.
 *
 * RDB's own encodings (length prefixes, integer and LZF strings) are in `cursor.ts`.
 */
import { RdbCorruptError, RdbTruncatedError } from './errors.js';
import { allocSource, allocBytes, viewOf, viewSource } from './buffer-view.js';
import type { ViewSource } from './buffer-view.js';

/**
 * Internal signal: the record being decoded continues past the bytes buffered so far. Never
 * escapes the package; the driver catches it and refills.
 */
export class NeedMoreData extends Error {
  override name = 'NeedMoreData';
  /** Absolute input offset up to which bytes are needed (exclusive). */
  readonly until: number;
  constructor(until: number) {
    super(`input needed up to byte ${until}`);
    this.until = until;
  }

  /**
   * A {@link NeedMoreData} without a stack trace: it is thrown at the end of every window and
   * caught a few frames up, so capturing the stack would be pure cost.
   */
  static at(until: number): NeedMoreData {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new NeedMoreData(until);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

const TWO_POW_32 = 4294967296;
const EMPTY = Buffer.alloc(0);

/**
 * Reader of fixed-width numbers and byte ranges over `buf[pos..]`, the part of the cursor that
 * knows nothing of RDB encodings. `RdbCursor` (cursor.ts) adds lengths and strings on top.
 */
export class ByteCursor {
  /** The buffered window. */
  buf: Buffer;
  /** Current position inside `buf`. */
  pos: number;
  /** Absolute input offset of `buf[0]`. */
  base: number;
  /** True when no more input will come: running out means the input is truncated. */
  final: boolean;
  /**
   * Whether {@link ByteCursor.bytes} may return views of `buf` instead of copies. Only for a `buf`
   * that belongs to the record being decoded (the `raw` copy of a key record), never for the
   * shared read window.
   */
  views: boolean;
  /** The {@link ViewSource} of the Buffer {@link ByteCursor.copyWithPrefix} last returned. */
  copySource: ViewSource = viewSource(EMPTY);
  /** The {@link ViewSource} of `#sourceOf`, read once per `buf` (see `#view`). */
  #source: ViewSource = viewSource(EMPTY);
  #sourceOf: Buffer = EMPTY;

  constructor(buf: Buffer, pos: number, base: number, final: boolean, views = false) {
    this.buf = buf;
    this.pos = pos;
    this.base = base;
    this.final = final;
    this.views = views;
  }

  /**
   * Points the cursor at another buffer (the parser reuses one cursor per window). `source`, when
   * known, is `buf`'s {@link ViewSource}, which saves reading it again.
   */
  reset(buf: Buffer, pos: number, base: number, final: boolean, source?: ViewSource): void {
    this.buf = buf;
    this.pos = pos;
    this.base = base;
    this.final = final;
    if (source !== undefined) {
      this.#sourceOf = buf;
      this.#source = source;
    }
  }

  /** Absolute input offset of the next byte. */
  get offset(): number {
    return this.base + this.pos;
  }

  /** Throws unless `n` more bytes are buffered. */
  ensure(n: number): void {
    if (this.buf.length - this.pos < n) this.#short(n);
  }

  #short(n: number): never {
    if (this.final) {
      throw new RdbTruncatedError(
        `input ends at byte ${this.base + this.buf.length}, ${n} bytes needed at ${this.offset}`,
        { offset: this.base + this.buf.length, details: { neededAt: this.offset, needed: n } },
      );
    }
    throw NeedMoreData.at(this.offset + n);
  }

  /** A corrupt-data error at the current position (or at `offset`). */
  corrupt(message: string, offset = this.offset): RdbCorruptError {
    return new RdbCorruptError(message, { offset });
  }

  u8(): number {
    this.ensure(1);
    return this.buf[this.pos++]!;
  }

  u16le(): number {
    this.ensure(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32le(): number {
    this.ensure(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  i32le(): number {
    this.ensure(4);
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Signed 64-bit little-endian as a number (exact for Unix-ms times and other |v| < 2^53). */
  i64le(): number {
    this.ensure(8);
    const v = this.buf.readUInt32LE(this.pos) + this.buf.readInt32LE(this.pos + 4) * TWO_POW_32;
    this.pos += 8;
    return v;
  }

  /** Unsigned 64-bit big-endian as bigint (stream IDs). */
  u64be(): bigint {
    this.ensure(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  f64le(): number {
    this.ensure(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  f32le(): number {
    this.ensure(4);
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }

  /**
   * `n` bytes as a fresh Buffer, so the result does not pin the whole window in memory; or, in
   * {@link ByteCursor.views} mode, as a view of the record's own buffer.
   */
  bytes(n: number): Buffer {
    if (n === 0) return EMPTY;
    this.ensure(n);
    const at = this.pos;
    this.pos += n;
    if (this.views) return this.#view(at, n);
    const out = allocBytes(n);
    this.#copyInto(out, 0, at, n);
    return out;
  }

  /** A view of `buf[at, at + n)`. */
  #view(at: number, n: number): Buffer {
    return viewOf(this.#sourceOfBuf(), at, at + n);
  }

  #sourceOfBuf(): ViewSource {
    if (this.#sourceOf !== this.buf) {
      this.#sourceOf = this.buf;
      this.#source = viewSource(this.buf);
    }
    return this.#source;
  }

  /**
   * A fresh Buffer holding `prefix` followed by `buf[start, end)`: the `raw` of a key record is
   * its type byte followed by the value body (the key sits between them in a file).
   */
  copyWithPrefix(prefix: number, start: number, end: number): Buffer {
    const n = end - start;
    const source = allocSource(1 + n);
    const out = viewOf(source, 0, 1 + n);
    out[0] = prefix;
    this.#copyInto(out, 1, start, n);
    this.copySource = source;
    return out;
  }

  /** Copies `buf[start, start + n)` to `out[at...]`. */
  #copyInto(out: Buffer, at: number, start: number, n: number): void {
    const buf = this.buf;
    if (n < SMALL_COPY) {
      for (let i = 0; i < n; i++) out[at + i] = buf[start + i]!;
      return;
    }
    // `TypedArray#set` from a plain view of the source: a native copy without the checks of
    // `Buffer#copy`, and without reading `buf.buffer` again (it is cached per window).
    const source = this.#sourceOfBuf();
    typedArraySet.call(out, new Uint8Array(source.buffer, source.byteOffset + start, n), at);
  }

  skip(n: number): void {
    this.ensure(n);
    this.pos += n;
  }
}

/** Below this size a byte loop beats a native copy (which has a fixed call cost). */
const SMALL_COPY = 16;
/** `Uint8Array#set`, called on Buffers through the prototype that defines it. */
// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called with `.call`
const typedArraySet = Uint8Array.prototype.set;
