/**
 * Intsets: the sorted-integer set encoding (type 11), decoder and encoder.
 *
 * Layout: `encoding` (u32 LE: 2, 4 or 8 bytes per element), `length` (u32 LE, the number of
 * elements, not bytes), then the elements as signed little-endian integers in ascending order.
 */
import { BlobReader, elementToBuffer } from './blob-reader.js';
import type { Blob } from './cursor.js';

/** Decodes an intset blob, appending each integer to `out` as its decimal text. */
export function decodeIntsetStrings(blob: Blob, out: Buffer[]): void {
  const r = new BlobReader(blob, 'intset');
  r.need(8);
  const width = r.bytes.readUInt32LE(0);
  const count = r.bytes.readUInt32LE(4);
  r.pos = 8;
  if (width !== 2 && width !== 4 && width !== 8) throw r.corrupt(`invalid width ${width}`, 0);
  if (r.remaining !== count * width) {
    throw r.corrupt(`${count} elements of ${width} bytes do not fill ${r.remaining} bytes`, 4);
  }
  for (let i = 0; i < count; i++) out.push(elementToBuffer(r.intLE(width)));
}

const INT16_MIN = -(2n ** 15n);
const INT16_MAX = 2n ** 15n - 1n;
const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;

/**
 * Encodes integers as an intset (sorted, deduplicated, narrowest width that fits them all).
 * Callers make sure every value fits a signed 64-bit integer.
 */
export function encodeIntset(values: readonly bigint[]): Buffer {
  const sorted = [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let width = 2;
  for (const v of sorted) {
    if (v < INT32_MIN || v > INT32_MAX) width = 8;
    else if ((v < INT16_MIN || v > INT16_MAX) && width < 4) width = 4;
  }
  const out = Buffer.allocUnsafe(8 + sorted.length * width);
  out.writeUInt32LE(width, 0);
  out.writeUInt32LE(sorted.length, 4);
  let p = 8;
  for (const v of sorted) {
    if (width === 2) out.writeInt16LE(Number(v), p);
    else if (width === 4) out.writeInt32LE(Number(v), p);
    else out.writeBigInt64LE(v, p);
    p += width;
  }
  return out;
}
