/**
 * Writers of RDB primitives (length prefixes, strings, doubles), the inverse of the cursor's
 * readers. They choose the same forms Redis's `rdbSave*` functions choose, so output looks like a
 * server's and loads on every version that knows the surrounding type.
 */
import { lzfCompress } from './lzf.js';
import type { ByteSink } from './byte-sink.js';

const TWO_POW_32 = 4294967296;

/** Writes a length in the smallest form: 6-bit, 14-bit, 32-bit or 64-bit (big-endian). */
export function writeLen(sink: ByteSink, n: number): void {
  if (n < 64) {
    sink.u8(n);
  } else if (n < 16384) {
    sink.u8(0x40 | (n >> 8)).u8(n & 0xff);
  } else if (n < TWO_POW_32) {
    sink.u8(0x80).u32be(n);
  } else {
    sink.u8(0x81).u64be(BigInt(n));
  }
}

/** Writes an unsigned 64-bit length (module ids, stream counters). */
export function writeLenBig(sink: ByteSink, n: bigint): void {
  if (n < BigInt(TWO_POW_32)) writeLen(sink, Number(n));
  else sink.u8(0x81).u64be(n);
}

/** Options of {@link writeString}. */
export interface StringWriteOptions {
  /** Try LZF for strings over 20 bytes, as `rdbcompression yes` does. Default true. */
  compress?: boolean;
}

const CANONICAL_INT = /^(0|-?[1-9]\d{0,10})$/;

/**
 * Writes an RDB string: as an 8/16/32-bit integer when it is the canonical decimal form of one,
 * LZF-compressed when long and compressible, verbatim otherwise.
 */
export function writeString(sink: ByteSink, s: Uint8Array, options: StringWriteOptions = {}): void {
  const len = s.length;
  if (len > 0 && len <= 11) {
    const text = Buffer.from(s.buffer, s.byteOffset, len).toString('latin1');
    if (CANONICAL_INT.test(text)) {
      const v = Number(text);
      if (v >= -128 && v <= 127) {
        sink.u8(0xc0).u8(v & 0xff);
        return;
      }
      if (v >= -32768 && v <= 32767) {
        sink
          .u8(0xc1)
          .u8(v & 0xff)
          .u8((v >> 8) & 0xff);
        return;
      }
      if (v >= -2147483648 && v <= 2147483647) {
        sink.u8(0xc2).u32le(v >>> 0);
        return;
      }
    }
  }
  if ((options.compress ?? true) && len > 20) {
    const packed = lzfCompress(s);
    // Redis only keeps the compressed form when it saves at least 4 bytes.
    if (packed.length <= len - 4) {
      sink.u8(0xc3);
      writeLen(sink, packed.length);
      writeLen(sink, len);
      sink.bytes(packed);
      return;
    }
  }
  writeLen(sink, len);
  sink.bytes(s);
}

/** Writes a string verbatim (length + bytes), never integer- or LZF-encoded. */
export function writeRawString(sink: ByteSink, s: Uint8Array): void {
  writeLen(sink, s.length);
  sink.bytes(s);
}

/** Writes the ASCII double of ZSET type 3 (RDB < 8 targets). */
export function writeAsciiDouble(sink: ByteSink, v: number): void {
  if (Number.isNaN(v)) {
    sink.u8(253);
    return;
  }
  if (v === Number.POSITIVE_INFINITY) {
    sink.u8(254);
    return;
  }
  if (v === Number.NEGATIVE_INFINITY) {
    sink.u8(255);
    return;
  }
  // Shortest round-trip text, like Redis's "%.17g" but without needless digits.
  const text = Buffer.from(String(v), 'latin1');
  sink.u8(text.length).bytes(text);
}
