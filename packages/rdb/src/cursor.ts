/**
 * The RDB encodings read on top of {@link ByteCursor}: length prefixes (6/14/32/64-bit and the
 * `11xxxxxx` string encodings), strings stored verbatim, as integers or LZF-compressed, the ASCII
 * doubles of old sorted sets and stream IDs; and the walks that step over them without decoding.
 */
import { lzfDecompressRange } from './lzf.js';
import { intToBuffer } from './number-bytes.js';
import { ByteCursor } from './byte-cursor.js';

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
export class RdbCursor extends ByteCursor {
  /** Where the bytes of the last string {@link RdbCursor.stringOrVerbatim} skipped start. */
  verbatimAt = 0;

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
      this.#skipLzf(start);
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
      case 3:
        this.#skipLzf(start);
        return;
      default:
        throw this.corrupt(`unknown string encoding ${r.value}`, start);
    }
  }

  /** Steps over an LZF string after its type byte: both lengths checked, no decompression. */
  #skipLzf(start: number): void {
    const compressedLen = this.len();
    const plainLen = this.len();
    if (plainLen > compressedLen * MAX_LZF_RATIO) {
      throw this.corrupt(`LZF string claims ${plainLen} bytes from ${compressedLen}`, start);
    }
    this.skip(compressedLen);
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
