/**
 * Decoder of ziplists, the compact list encoding Redis used up to 6.2 (types 10, 12, 13 and the
 * nodes of quicklist type 14).
 *
 * Layout: `zlbytes` (u32 LE) `zltail` (u32 LE) `zllen` (u16 LE, 65535 = "count by walking"),
 * entries, `0xFF`. Each entry is `prevlen` (1 byte, or 0xFE + u32 LE), an encoding byte and the
 * data. Integer encodings come back as numbers (bigint beyond 2^53); callers turn them into the
 * decimal text Redis would reply with.
 */
import { BlobReader, elementToBuffer, narrow } from './blob-reader.js';
import { intToBuffer, u32le } from './number-bytes.js';
import { viewOf, viewSource } from './buffer-view.js';
import type { Blob } from './cursor.js';
import type { CompactElement } from './blob-reader.js';

const ZIP_END = 0xff;
const ZIP_BIG_PREVLEN = 0xfe;
const HEADER_SIZE = 10;

/** Decodes every element of a ziplist blob, validating its structure as it goes. */
export function decodeZiplist(blob: Blob): CompactElement[] {
  const r = new BlobReader(blob, 'ziplist');
  r.need(HEADER_SIZE + 1);
  const totalBytes = r.bytes.readUInt32LE(0);
  if (totalBytes !== r.bytes.length) {
    throw r.corrupt(`header says ${totalBytes} bytes, blob has ${r.bytes.length}`, 0);
  }
  const declaredCount = r.bytes.readUInt16LE(8);
  r.pos = HEADER_SIZE;
  const out: CompactElement[] = [];
  for (;;) {
    r.need(1);
    if (r.bytes[r.pos] === ZIP_END) {
      r.pos++;
      break;
    }
    // prevlen exists for backwards traversal; a reader going forwards only skips it.
    if (r.u8() === ZIP_BIG_PREVLEN) r.skip(4);
    out.push(readEntry(r));
  }
  if (r.remaining !== 0) throw r.corrupt('bytes after the end marker');
  if (declaredCount !== 0xffff && declaredCount !== out.length) {
    throw r.corrupt(`header says ${declaredCount} entries, found ${out.length}`, 8);
  }
  return out;
}

/**
 * {@link decodeZiplist} for callers that want every element as the string Redis would reply
 * with: appends them to `out`, integers as decimal text, strings as views of the blob, without
 * an element array in between. On anything irregular it hands over to {@link decodeZiplist},
 * which reports the problem exactly as it always has.
 */
export function decodeZiplistStrings(blob: Blob, out: Buffer[]): void {
  const bytes = blob.bytes;
  const size = bytes.length;
  const first = out.length;
  if (size >= HEADER_SIZE + 1 && u32le(bytes, 0) === size) {
    const source = viewSource(bytes);
    let p = HEADER_SIZE;
    while (p < size) {
      if (bytes[p] === ZIP_END) {
        const declared = bytes[8]! | (bytes[9]! << 8);
        if (p + 1 === size && (declared === 0xffff || declared === out.length - first)) return;
        break;
      }
      if (bytes[p] === ZIP_BIG_PREVLEN) p += 4;
      p++;
      if (p >= size) break;
      const enc = bytes[p++]!;
      let len = -1;
      switch (enc >> 6) {
        case 0:
          len = enc & 0x3f;
          break;
        case 1:
          if (p >= size) break;
          len = ((enc & 0x3f) << 8) | bytes[p++]!;
          break;
        case 2:
          if (enc !== 0x80 || p + 4 > size) break;
          len = bytes.readUInt32BE(p);
          p += 4;
          break;
        default: {
          let width = 0;
          if (enc === 0xc0) width = 2;
          else if (enc === 0xd0) width = 4;
          else if (enc === 0xe0) width = 8;
          else if (enc === 0xf0) width = 3;
          else if (enc === 0xfe) width = 1;
          else if (enc >= 0xf1 && enc <= 0xfd) {
            out.push(intToBuffer((enc & 0x0f) - 1));
            continue;
          } else {
            len = -2;
            break;
          }
          if (p + width > size) {
            len = -2;
            break;
          }
          if (width === 8) out.push(elementToBuffer(narrow(bytes.readBigInt64LE(p))));
          else out.push(intToBuffer(smallIntLE(bytes, p, width)));
          p += width;
          continue;
        }
      }
      if (len < 0 || p + len > size) {
        p = -1;
        break;
      }
      out.push(viewOf(source, p, p + len));
      p += len;
    }
  }
  // Irregular: let the general decoder find (and report) the problem.
  out.length = first;
  for (const e of decodeZiplist(blob)) out.push(elementToBuffer(e));
}

/** The signed little-endian integer of 1-4 bytes at `bytes[p]` (in bounds). */
function smallIntLE(bytes: Buffer, p: number, width: number): number {
  const shift = 32 - 8 * width;
  let v = bytes[p]!;
  for (let i = 1; i < width; i++) v |= bytes[p + i]! << (8 * i);
  return (v << shift) >> shift;
}

function readEntry(r: BlobReader): CompactElement {
  const at = r.pos;
  const enc = r.u8();
  switch (enc >> 6) {
    case 0:
      return r.take(enc & 0x3f);
    case 1:
      return r.take(((enc & 0x3f) << 8) | r.u8());
    case 2: {
      if (enc !== 0x80) throw r.corrupt(`invalid string encoding 0x${enc.toString(16)}`, at);
      r.need(4);
      const len = r.bytes.readUInt32BE(r.pos);
      r.pos += 4;
      return r.take(len);
    }
    default:
      break;
  }
  switch (enc) {
    case 0xc0:
      return r.intLE(2);
    case 0xd0:
      return r.intLE(4);
    case 0xe0:
      return r.intLE(8);
    case 0xf0:
      return r.intLE(3);
    case 0xfe:
      return r.intLE(1);
    default:
      // 0xF1..0xFD: a 4-bit immediate integer 0..12 stored in the encoding byte itself.
      if (enc >= 0xf1 && enc <= 0xfd) return (enc & 0x0f) - 1;
      throw r.corrupt(`invalid integer encoding 0x${enc.toString(16)}`, at);
  }
}
