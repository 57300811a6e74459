/**
 * The DUMP footer of a RESTORE payload, written in place: `version (u16 LE) + CRC64 (u64 LE)`,
 * the CRC-64/Jones (Redis flavour) covering the type byte, the body and the version.
 *
 * The import writes the payload straight into its output buffer, so the CRC is computed over
 * those bytes where they lie. Short payloads (the vast majority: small keys) go through a plain
 * table loop here, with no object or buffer per key; long ones through `@georep/rdb`'s `Crc64`,
 * whose slicing-by-16 is faster once its setup is paid.
 */
import { Crc64 } from '@georep/rdb';

/** Reflected Jones polynomial, in two 32-bit halves (as `@georep/rdb` keeps it). */
const POLY_LO = 0xac4bc9b5;
const POLY_HI = 0x95ac9329;
/** Up to this many bytes the table loop is used; above it, `Crc64`. */
const SHORT = 256;

const TABLE_LO = new Uint32Array(256);
const TABLE_HI = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let lo = n;
  let hi = 0;
  for (let bit = 0; bit < 8; bit++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (carry !== 0) {
      lo = (lo ^ POLY_LO) >>> 0;
      hi = (hi ^ POLY_HI) >>> 0;
    }
  }
  TABLE_LO[n] = lo;
  TABLE_HI[n] = hi;
}

/**
 * Writes the footer of the payload `buf[start..at)` (type byte + body) at `at`: `version`, then
 * the CRC64 of everything from `start` through the version. Returns the end of the footer.
 */
export function writeDumpFooter(buf: Buffer, start: number, at: number, version: number): number {
  buf[at] = version & 0xff;
  buf[at + 1] = version >>> 8;
  const end = at + 2;
  if (end - start > SHORT) {
    const crc = new Crc64().update(buf.subarray(start, end)).digestBytes();
    crc.copy(buf, end);
    return end + 8;
  }
  let lo = 0;
  let hi = 0;
  for (let i = start; i < end; i++) {
    const idx = (lo ^ buf[i]!) & 0xff;
    lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx]!;
    hi = (hi >>> 8) ^ TABLE_HI[idx]!;
  }
  buf.writeUInt32LE(lo >>> 0, end);
  buf.writeUInt32LE(hi >>> 0, end + 4);
  return end + 8;
}
