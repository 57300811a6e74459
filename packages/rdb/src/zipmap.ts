/**
 * Decoder of zipmaps, the compact hash encoding of Redis 2.x (type 9). Modern servers convert
 * them on load, but old snapshots still contain them.
 *
 * Layout: `zmlen` (1 byte, 254+ = unknown), then `<len>field<len><free>value<free bytes>` pairs,
 * then 0xFF. A `len` is one byte up to 253, or 254 followed by a 4-byte little-endian length.
 */
import { BlobReader } from './blob-reader.js';
import type { Blob } from './cursor.js';

const ZIPMAP_END = 0xff;
const ZIPMAP_BIGLEN = 254;

/** Decodes a zipmap blob into field/value pairs in stored order. */
export function decodeZipmap(blob: Blob): Array<[Buffer, Buffer]> {
  const r = new BlobReader(blob, 'zipmap');
  r.u8(); // zmlen: only a hint, unreliable above 253
  const out: Array<[Buffer, Buffer]> = [];
  for (;;) {
    const fieldLen = readLen(r);
    if (fieldLen === undefined) break;
    const field = r.take(fieldLen);
    const valueLen = readLen(r);
    if (valueLen === undefined) throw r.corrupt('end marker where a value length was expected');
    const free = r.u8();
    const value = r.take(valueLen);
    r.skip(free);
    out.push([field, value]);
  }
  if (r.remaining !== 0) throw r.corrupt('bytes after the end marker');
  return out;
}

/** A zipmap length, or undefined at the end marker. */
function readLen(r: BlobReader): number | undefined {
  const b = r.u8();
  if (b === ZIPMAP_END) return undefined;
  if (b < ZIPMAP_BIGLEN) return b;
  r.need(4);
  const len = r.bytes.readUInt32LE(r.pos);
  r.pos += 4;
  return len;
}
