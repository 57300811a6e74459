/**
 * Integers read from and written as bytes in the decoders' per-element loops, without the argument
 * checks of Buffer's own methods (`readUInt32LE`, `Buffer.from(String(n))`), which cost more than
 * the work itself there.
 */
import { allocBytes } from './buffer-view.js';

/**
 * The decimal text of a safe integer as a fresh Buffer: what `Buffer.from(String(v))` gives,
 * without the string and the UTF-8 encoder in between.
 */
export function intToBuffer(v: number): Buffer {
  // Integers of the 32-bit range (nearly all of them: RDB int strings are 8-32 bits, compact
  // encodings mostly too) take integer arithmetic; the rest goes through doubles.
  if ((v | 0) !== v) return wideIntToBuffer(v);
  const negative = v < 0;
  // `>>> 0` keeps -2^31 exact: its magnitude does not fit an int32, but fits a uint32.
  let n = (negative ? -v : v) >>> 0;
  const digits = decimalDigits(n);
  const len = negative ? digits + 1 : digits;
  const out = allocBytes(len);
  for (let p = len - 1; p >= len - digits; p--) {
    const q = (n / 10) >>> 0;
    out[p] = 48 + n - q * 10;
    n = q;
  }
  if (negative) out[0] = 45;
  return out;
}

/**
 * The unsigned 32-bit little-endian integer at `bytes[at]` (in bounds): `readUInt32LE` without
 * its argument checks, which cost more than the read in per-element loops.
 */
export function u32le(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0
  );
}

/** Number of decimal digits of a uint32. */
function decimalDigits(n: number): number {
  if (n < 100000) return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : 5;
  return n < 1000000 ? 6 : n < 10000000 ? 7 : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10;
}

/** {@link intToBuffer} of integers beyond 32 bits. */
function wideIntToBuffer(v: number): Buffer {
  if (!Number.isSafeInteger(v)) return Buffer.from(String(v), 'latin1');
  const negative = v < 0;
  let n = negative ? -v : v;
  let len = negative ? 2 : 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) len++;
  const out = allocBytes(len);
  let p = len;
  do {
    out[--p] = 48 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  if (negative) out[0] = 45;
  return out;
}
