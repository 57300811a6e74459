/**
 * A synchronous reader of RDB primitives over an in-memory window of the input.
 *
 * The streaming parser decodes one record at a time synchronously (fast: no promise per byte).
 * When the window runs out in the middle of a record the cursor throws {@link NeedMoreData}; the
 * async driver then fetches more input and decodes the record again from its start. When the
 * input has ended (`final`), running out is a real {@link RdbTruncatedError} instead.
 */
import { RdbCorruptError, RdbTruncatedError } from './errors.js';
import { lzfDecompressRange } from './lzf.js';
import { allocBytes, allocSource, viewOf, viewSource } from './buffer-view.js';
import { intToBuffer } from './number-bytes.js';
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

/** A binary blob read from an RDB string, with what is needed to report offsets inside it. */
export interface Blob {
  bytes: Buffer;
  /**
   * Absolute offset of `bytes[0]` when the string was stored verbatim; of the string header when
   * it was LZF-compressed (positions inside decompressed data have no file offset).
   */
  origin: number;
  /** Whether `origin + i` is the exact file offset of `bytes[i]`. */
  exact: boolean;
}

const TWO_POW_32 = 4294967296;
const MAX_LZF_RATIO = 88;
const EMPTY = Buffer.alloc(0);
/** First byte of an LZF-compressed string (`11` + encoding 3). */
const LZF_STRING = 0xc3;

/** Reader of RDB primitives (lengths, strings, numbers) over `buf[pos..]`. */
export class RdbCursor {
  /** The buffered window. */
  buf: Buffer;
  /** Current position inside `buf`. */
  pos: number;
  /** Absolute input offset of `buf[0]`. */
  base: number;
  /** True when no more input will come: running out means the input is truncated. */
  final: boolean;
  /**
   * Whether {@link RdbCursor.bytes} may return views of `buf` instead of copies. Only for a `buf`
   * that belongs to the record being decoded (the `raw` copy of a key record), never for the
   * shared read window.
   */
  views: boolean;
  /** The {@link ViewSource} of the Buffer {@link RdbCursor.copyWithPrefix} last returned. */
  copySource: ViewSource = viewSource(EMPTY);
  /** Where the bytes of the last string {@link RdbCursor.stringOrVerbatim} skipped start. */
  verbatimAt = 0;
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
   * {@link RdbCursor.views} mode, as a view of the record's own buffer.
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

  /**
   * Reads a length prefix. Returns the length, or for the `11xxxxxx` form the encoding number
   * with `encoded` set (only meaningful where a string is expected).
   */
  lenOrEncoding(): { encoded: boolean; value: number } {
    const start = this.offset;
    const first = this.u8();
    switch (first >> 6) {
      case 0:
        return { encoded: false, value: first & 0x3f };
      case 1:
        return { encoded: false, value: ((first & 0x3f) << 8) | this.u8() };
      case 2:
        return { encoded: false, value: this.#wideLen(first, start) };
      default:
        return { encoded: true, value: first & 0x3f };
    }
  }

  #wideLen(first: number, start: number): number {
    if (first === 0x80) {
      this.ensure(4);
      const v = this.buf.readUInt32BE(this.pos);
      this.pos += 4;
      return v;
    }
    if (first === 0x81) {
      this.ensure(8);
      const hi = this.buf.readUInt32BE(this.pos);
      const lo = this.buf.readUInt32BE(this.pos + 4);
      this.pos += 8;
      // Anything above 2^53 is not a real length (no machine holds that much).
      if (hi >= 0x200000) throw this.corrupt('64-bit length beyond 2^53', start);
      return hi * TWO_POW_32 + lo;
    }
    throw this.corrupt(`invalid length prefix 0x${first.toString(16)}`, start);
  }

  /** Reads a plain length (a count or size); the encoded-string form is corrupt here. */
  len(): number {
    // Fast path for the 6- and 14-bit forms, whole in the window.
    const buf = this.buf;
    const pos = this.pos;
    if (pos + 1 < buf.length) {
      const first = buf[pos]!;
      if (first < 0x40) {
        this.pos = pos + 1;
        return first;
      }
      if (first < 0x80) {
        this.pos = pos + 2;
        return ((first & 0x3f) << 8) | buf[pos + 1]!;
      }
    }
    return this.#lenSlow();
  }

  #lenSlow(): number {
    const start = this.offset;
    const r = this.lenOrEncoding();
    if (r.encoded) throw this.corrupt('string encoding where a length was expected', start);
    return r.value;
  }

  /** Reads a plain length as an unsigned 64-bit bigint (counters that may use all 64 bits). */
  lenBig(): bigint {
    this.ensure(1);
    if (this.buf[this.pos] === 0x81) {
      this.ensure(9);
      const v = this.buf.readBigUInt64BE(this.pos + 1);
      this.pos += 9;
      return v;
    }
    return BigInt(this.len());
  }

  /** Reads an RDB string: verbatim, integer-encoded or LZF-compressed. */
  string(): Buffer {
    // Fast paths for the common verbatim short string and LZF, without building a Blob.
    const first = this.buf[this.pos];
    if (first !== undefined) {
      if (first < 0x40) {
        this.pos++;
        return this.bytes(first);
      }
      if (first === LZF_STRING) {
        const start = this.offset;
        this.pos++;
        return this.#lzf(start);
      }
      // Integer-encoded (`11` + 0/1/2: int8, int16, int32 little-endian), whole in the window.
      const buf = this.buf;
      const pos = this.pos;
      if (first === 0xc0 && pos + 2 <= buf.length) {
        this.pos = pos + 2;
        return intToBuffer((buf[pos + 1]! << 24) >> 24);
      }
      if (first === 0xc1 && pos + 3 <= buf.length) {
        this.pos = pos + 3;
        return intToBuffer(((buf[pos + 1]! | (buf[pos + 2]! << 8)) << 16) >> 16);
      }
      if (first === 0xc2 && pos + 5 <= buf.length) {
        this.pos = pos + 5;
        return intToBuffer(
          buf[pos + 1]! | (buf[pos + 2]! << 8) | (buf[pos + 3]! << 16) | (buf[pos + 4]! << 24),
        );
      }
    }
    return this.blob().bytes;
  }

  /**
   * Reads an RDB string like {@link RdbCursor.string}, except that a verbatim one (stored as it
   * is) is not materialised: it returns undefined and leaves the position of its bytes in `buf`
   * in {@link RdbCursor.verbatimAt}. Decoders use it to make views of a copy that does not exist
   * yet. Same checks and "need more data" points as {@link RdbCursor.string}.
   */
  stringOrVerbatim(): Buffer | undefined {
    const first = this.buf[this.pos];
    if (first === undefined || first >= 0xc0) return this.string();
    const n = first < 0x40 ? (this.pos++, first) : this.len();
    if (n === 0) return EMPTY;
    this.ensure(n);
    this.verbatimAt = this.pos;
    this.pos += n;
    return undefined;
  }

  /** The LZF string whose header starts at offset `start`, its first byte already read. */
  #lzf(start: number): Buffer {
    const compressedLen = this.len();
    const plainLen = this.len();
    // One 3-byte LZF back-reference expands to at most 264 bytes, so a larger claimed size
    // is corrupt; checking it first stops garbage from requesting a huge allocation.
    if (plainLen > compressedLen * MAX_LZF_RATIO) {
      throw this.corrupt(`LZF string claims ${plainLen} bytes from ${compressedLen}`, start);
    }
    this.ensure(compressedLen);
    const dataOffset = this.offset;
    const at = this.pos;
    this.pos += compressedLen;
    return lzfDecompressRange(this.buf, at, at + compressedLen, plainLen, dataOffset);
  }

  /**
   * Steps over an RDB string without materialising it: the same framing checks and the same
   * "need more data" points as {@link RdbCursor.blob}, but no copy and no LZF decompression.
   */
  skipString(): void {
    const first = this.buf[this.pos];
    if (first !== undefined && first < 0x40) {
      this.pos++;
      if (first !== 0) this.skip(first);
      return;
    }
    const start = this.offset;
    if (first === LZF_STRING) {
      this.pos++;
      const compressedLen = this.len();
      const plainLen = this.len();
      if (plainLen > compressedLen * MAX_LZF_RATIO) {
        throw this.corrupt(`LZF string claims ${plainLen} bytes from ${compressedLen}`, start);
      }
      this.skip(compressedLen);
      return;
    }
    const r = this.lenOrEncoding();
    if (!r.encoded) {
      if (r.value !== 0) this.skip(r.value);
      return;
    }
    switch (r.value) {
      case 0:
        this.skip(1);
        return;
      case 1:
        this.skip(2);
        return;
      case 2:
        this.skip(4);
        return;
      case 3: {
        const compressedLen = this.len();
        const plainLen = this.len();
        if (plainLen > compressedLen * MAX_LZF_RATIO) {
          throw this.corrupt(`LZF string claims ${plainLen} bytes from ${compressedLen}`, start);
        }
        this.skip(compressedLen);
        return;
      }
      default:
        throw this.corrupt(`unknown string encoding ${r.value}`, start);
    }
  }

  /** Steps over the ASCII double of ZSET type 3 (see {@link RdbCursor.asciiDouble}). */
  skipAsciiDouble(): void {
    const n = this.u8();
    if (n < 253) this.skip(n);
  }

  /** Reads an RDB string and says where it came from, for decoders of embedded blobs. */
  blob(): Blob {
    const start = this.offset;
    const r = this.lenOrEncoding();
    if (!r.encoded) {
      const origin = this.offset;
      return { bytes: this.bytes(r.value), origin, exact: true };
    }
    switch (r.value) {
      case 0: {
        this.ensure(1);
        const v = this.buf.readInt8(this.pos++);
        return { bytes: intToBuffer(v), origin: start, exact: false };
      }
      case 1:
        this.ensure(2);
        this.pos += 2;
        return {
          bytes: intToBuffer(this.buf.readInt16LE(this.pos - 2)),
          origin: start,
          exact: false,
        };
      case 2:
        return { bytes: intToBuffer(this.i32le()), origin: start, exact: false };
      case 3:
        return { bytes: this.#lzf(start), origin: start, exact: false };
      default:
        throw this.corrupt(`unknown string encoding ${r.value}`, start);
    }
  }

  /** Reads the ASCII double of ZSET type 3 (length byte, 253/254/255 = NaN/+inf/-inf). */
  asciiDouble(): number {
    const start = this.offset;
    const n = this.u8();
    if (n === 253) return Number.NaN;
    if (n === 254) return Number.POSITIVE_INFINITY;
    if (n === 255) return Number.NEGATIVE_INFINITY;
    this.ensure(n);
    const text = this.buf.toString('latin1', this.pos, this.pos + n);
    this.pos += n;
    const v = parseScore(text);
    if (v === undefined) throw this.corrupt(`invalid score "${text}"`, start);
    return v;
  }

  /** Reads a 16-byte stream ID (two big-endian uint64). */
  streamId(): { ms: bigint; seq: bigint } {
    const ms = this.u64be();
    const seq = this.u64be();
    return { ms, seq };
  }
}

/** Below this size a byte loop beats a native copy (which has a fixed call cost). */
const SMALL_COPY = 16;
/** `Uint8Array#set`, called on Buffers through the prototype that defines it. */
// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called with `.call`
const typedArraySet = Uint8Array.prototype.set;

/** Parses a score as Redis's `strtod` would accept it (`inf`, `-inf`, `nan` included). */
export function parseScore(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'inf' || t === '+inf' || t === 'infinity' || t === '+infinity') {
    return Number.POSITIVE_INFINITY;
  }
  if (t === '-inf' || t === '-infinity') return Number.NEGATIVE_INFINITY;
  if (t === 'nan' || t === '-nan') return Number.NaN;
  if (t === '') return undefined;
  const v = Number(t);
  return Number.isNaN(v) ? undefined : v;
}
