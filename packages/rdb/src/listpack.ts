/**
 * Listpacks: the compact encoding of Redis 7+ (types 16, 17, 18 nodes, 20, 25 and stream
 * nodes), decoder and encoder.
 *
 * Layout: total bytes (u32 LE), element count (u16 LE, 65535 = unknown), entries, 0xFF. Each
 * entry is `<encoding+data><backlen>`, where backlen stores the size of encoding+data in 1-5
 * bytes, 7 bits per byte, readable from right to left.
 */
import { BlobReader, elementToBuffer, narrow } from './blob-reader.js';
import { ByteSink } from './byte-sink.js';
import { intToBuffer, u32le } from './number-bytes.js';
import { viewOf, viewSource } from './buffer-view.js';
import type { Blob } from './cursor.js';
import type { CompactElement } from './blob-reader.js';

const LP_END = 0xff;
const HEADER_SIZE = 6;
const UNKNOWN_COUNT = 0xffff;

/** Decodes every element of a listpack blob, validating sizes and back-lengths. */
export function decodeListpack(blob: Blob): CompactElement[] {
  const r = new BlobReader(blob, 'listpack');
  r.need(HEADER_SIZE + 1);
  const totalBytes = r.bytes.readUInt32LE(0);
  if (totalBytes !== r.bytes.length) {
    throw r.corrupt(`header says ${totalBytes} bytes, blob has ${r.bytes.length}`, 0);
  }
  const declaredCount = r.bytes.readUInt16LE(4);
  r.pos = HEADER_SIZE;
  const out: CompactElement[] = [];
  for (;;) {
    r.need(1);
    if (r.bytes[r.pos] === LP_END) {
      r.pos++;
      break;
    }
    const start = r.pos;
    out.push(readEntry(r));
    checkBacklen(r, r.pos - start);
  }
  if (r.remaining !== 0) throw r.corrupt('bytes after the end marker');
  if (declaredCount !== UNKNOWN_COUNT && declaredCount !== out.length) {
    throw r.corrupt(`header says ${declaredCount} entries, found ${out.length}`, 4);
  }
  return out;
}

/**
 * {@link decodeListpack} for callers that want every element as the string Redis would reply
 * with (lists, sets, hashes): appends them to `out`, integers as decimal text, strings as views
 * of the blob. It walks the bytes directly instead of building an element array first. On
 * anything irregular it hands over to {@link decodeListpack}, which reports the problem exactly
 * as it always has.
 */
export function decodeListpackStrings(blob: Blob, out: Buffer[]): void {
  const bytes = blob.bytes;
  const size = bytes.length;
  const first = out.length;
  if (size >= HEADER_SIZE + 1 && u32le(bytes, 0) === size) {
    const source = viewSource(bytes);
    let p = HEADER_SIZE;
    while (p < size) {
      const b = bytes[p]!;
      if (b === LP_END) {
        const declared = bytes[4]! | (bytes[5]! << 8);
        if (p + 1 === size && (declared === UNKNOWN_COUNT || declared === out.length - first)) {
          return;
        }
        break;
      }
      const start = p;
      let len: number;
      if (b < 0x80) {
        out.push(intToBuffer(b));
        p++;
      } else if ((b & 0xc0) === 0x80) {
        len = b & 0x3f;
        p++;
        if (p + len > size) break;
        out.push(viewOf(source, p, p + len));
        p += len;
      } else if (p + 1 >= size) {
        break;
      } else if ((b & 0xe0) === 0xc0) {
        const v = ((b & 0x1f) << 8) | bytes[p + 1]!;
        out.push(intToBuffer(v >= 4096 ? v - 8192 : v));
        p += 2;
      } else if ((b & 0xf0) === 0xe0) {
        len = ((b & 0x0f) << 8) | bytes[p + 1]!;
        p += 2;
        if (p + len > size) break;
        out.push(viewOf(source, p, p + len));
        p += len;
      } else if (b === 0xf0) {
        if (p + 5 > size) break;
        len = u32le(bytes, p + 1);
        p += 5;
        if (p + len > size) break;
        out.push(viewOf(source, p, p + len));
        p += len;
      } else if (b === 0xf1) {
        if (p + 3 > size) break;
        out.push(intToBuffer(((bytes[p + 1]! | (bytes[p + 2]! << 8)) << 16) >> 16));
        p += 3;
      } else if (b === 0xf2) {
        if (p + 4 > size) break;
        out.push(
          intToBuffer(((bytes[p + 1]! | (bytes[p + 2]! << 8) | (bytes[p + 3]! << 16)) << 8) >> 8),
        );
        p += 4;
      } else if (b === 0xf3) {
        if (p + 5 > size) break;
        out.push(intToBuffer(u32le(bytes, p + 1) | 0));
        p += 5;
      } else if (b === 0xf4) {
        if (p + 9 > size) break;
        out.push(elementToBuffer(narrow(bytes.readBigInt64LE(p + 1))));
        p += 9;
      } else {
        break;
      }
      // The back-length, 7 bits per byte (as checkBacklen reads it); the 1- and 2-byte forms.
      len = p - start;
      if (len < 128) {
        if (p >= size || (bytes[p]! & 0x7f) !== len) break;
        p += 1;
      } else if (len < 16384) {
        if (p + 2 > size || (((bytes[p]! & 0x7f) << 7) | (bytes[p + 1]! & 0x7f)) !== len) break;
        p += 2;
      } else {
        p = checkBacklenAt(bytes, p, len);
        if (p < 0) break;
      }
    }
  }
  // Irregular: let the general decoder find (and report) the problem.
  out.length = first;
  for (const e of decodeListpack(blob)) out.push(elementToBuffer(e));
}

/** {@link checkBacklen} without a reader: the position after it, or -1 when it does not match. */
function checkBacklenAt(bytes: Buffer, p: number, len: number): number {
  const size = backlenSize(len);
  if (p + size > bytes.length) return -1;
  let v = 0;
  for (let i = 0; i < size; i++) v = v * 128 + (bytes[p + i]! & 0x7f);
  return v === len ? p + size : -1;
}

function readEntry(r: BlobReader): CompactElement {
  const at = r.pos;
  const b = r.u8();
  if (b < 0x80) return b; // 7-bit unsigned integer
  if ((b & 0xc0) === 0x80) return r.take(b & 0x3f); // 6-bit string length
  if ((b & 0xe0) === 0xc0) {
    // 13-bit signed integer, two's complement over 13 bits.
    const v = ((b & 0x1f) << 8) | r.u8();
    return v >= 4096 ? v - 8192 : v;
  }
  if ((b & 0xf0) === 0xe0) return r.take(((b & 0x0f) << 8) | r.u8()); // 12-bit string length
  switch (b) {
    case 0xf0: {
      r.need(4);
      const len = r.bytes.readUInt32LE(r.pos);
      r.pos += 4;
      return r.take(len);
    }
    case 0xf1:
      return r.intLE(2);
    case 0xf2:
      return r.intLE(3);
    case 0xf3:
      return r.intLE(4);
    case 0xf4:
      return r.intLE(8);
    default:
      throw r.corrupt(`invalid entry encoding 0x${b.toString(16)}`, at);
  }
}

/** Size in bytes of the back-length of an entry whose encoding+data is `len` bytes. */
function backlenSize(len: number): number {
  if (len < 128) return 1;
  if (len < 16384) return 2;
  if (len < 2097152) return 3;
  if (len < 268435456) return 4;
  return 5;
}

/**
 * Writes the back-length of `len` at `sink`: the byte at the highest address holds the lowest 7
 * bits, and every byte except the first has its top bit set, so a reader walking backwards knows
 * when to stop.
 */
function writeBacklen(sink: ByteSink, len: number): void {
  const size = backlenSize(len);
  for (let i = size - 1; i >= 0; i--) {
    const chunk = Math.floor(len / 2 ** (7 * i)) & 0x7f;
    sink.u8(i === size - 1 ? chunk : chunk | 0x80);
  }
}

function checkBacklen(r: BlobReader, len: number): void {
  const size = backlenSize(len);
  r.need(size);
  let v = 0;
  for (let i = 0; i < size; i++) {
    v = v * 128 + (r.bytes[r.pos + i]! & 0x7f);
  }
  if (v !== len) throw r.corrupt(`back-length ${v} does not match entry size ${len}`);
  r.pos += size;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const CANONICAL_INT = /^(0|-?[1-9]\d{0,19})$/;

/**
 * The integer a string stands for when Redis would store it as an integer (canonical decimal,
 * fits int64), else undefined. Used by every compact encoder.
 */
export function canonicalInt(s: Uint8Array): bigint | undefined {
  if (s.length === 0 || s.length > 20) return undefined;
  const text = Buffer.from(s.buffer, s.byteOffset, s.length).toString('latin1');
  if (!CANONICAL_INT.test(text)) return undefined;
  const v = BigInt(text);
  return v >= INT64_MIN && v <= INT64_MAX ? v : undefined;
}

/**
 * Builds a listpack element by element. Strings that are canonical integers are stored in
 * integer form, like Redis does, so that servers see the encoding they would have produced.
 */
export class ListpackBuilder {
  readonly #sink: ByteSink;
  #count = 0;

  constructor(sizeHint = 64) {
    this.#sink = new ByteSink(sizeHint + HEADER_SIZE + 1);
    this.#sink.u32le(0).u16le(0);
  }

  /** Number of elements added. */
  get count(): number {
    return this.#count;
  }

  /** Bytes used so far (for splitting lists into nodes). */
  get byteLength(): number {
    return this.#sink.length + 1;
  }

  /** Appends a string element (integer-encoded when canonical). */
  addString(s: Uint8Array): this {
    const asInt = canonicalInt(s);
    if (asInt !== undefined) return this.addInt(asInt);
    const len = s.length;
    const sink = this.#sink;
    let header: number;
    if (len < 64) {
      sink.u8(0x80 | len);
      header = 1;
    } else if (len < 4096) {
      sink.u8(0xe0 | (len >> 8)).u8(len & 0xff);
      header = 2;
    } else {
      sink.u8(0xf0).u32le(len);
      header = 5;
    }
    sink.bytes(s);
    writeBacklen(sink, header + len);
    this.#count++;
    return this;
  }

  /** Appends an integer element in the narrowest integer encoding. */
  addInt(value: bigint | number): this {
    const v = BigInt(value);
    const sink = this.#sink;
    let size: number;
    if (v >= 0n && v <= 127n) {
      sink.u8(Number(v));
      size = 1;
    } else if (v >= -4096n && v <= 4095n) {
      const u = Number(v < 0n ? v + 8192n : v);
      sink.u8(0xc0 | (u >> 8)).u8(u & 0xff);
      size = 2;
    } else if (v >= -32768n && v <= 32767n) {
      sink
        .u8(0xf1)
        .u8(Number(v) & 0xff)
        .u8((Number(v) >> 8) & 0xff);
      size = 3;
    } else if (v >= -8388608n && v <= 8388607n) {
      const n = Number(v);
      sink
        .u8(0xf2)
        .u8(n & 0xff)
        .u8((n >> 8) & 0xff)
        .u8((n >> 16) & 0xff);
      size = 4;
    } else if (v >= -2147483648n && v <= 2147483647n) {
      sink.u8(0xf3).u32le(Number(v) >>> 0);
      size = 5;
    } else {
      sink.u8(0xf4).i64le(v);
      size = 9;
    }
    writeBacklen(sink, size);
    this.#count++;
    return this;
  }

  /** Terminates the listpack and returns its bytes. The builder must not be reused. */
  finish(): Buffer {
    this.#sink.u8(LP_END);
    this.#sink.patchU32le(0, this.#sink.length);
    this.#sink.patchU16le(4, Math.min(this.#count, UNKNOWN_COUNT));
    return this.#sink.finish();
  }
}
