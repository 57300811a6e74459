/**
 * Decoder of ziplists, the compact list encoding Redis used up to 6.2 (types 10, 12, 13 and the
 * nodes of quicklist type 14).
 *
 * Layout: `zlbytes` (u32 LE) `zltail` (u32 LE) `zllen` (u16 LE, 65535 = "count by walking"),
 * entries, `0xFF`. Each entry is `prevlen` (1 byte, or 0xFE + u32 LE), an encoding byte and the
 * data. Integer encodings come back as numbers (bigint beyond 2^53); callers turn them into the
 * decimal text Redis would reply with.
 */
import { BlobReader } from './blob-reader.js';
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
