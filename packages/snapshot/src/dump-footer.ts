/**
 * The DUMP footer of a RESTORE payload, written in place: `version (u16 LE) + CRC64 (u64 LE)`,
 * the CRC-64/Jones (Redis flavour) covering the type byte, the body and the version.
 *
 * The import writes the payload straight into its output buffer, so the CRC is computed over
 * those bytes where they lie, with `@georep/rdb`'s allocation-free `writeCrc64`.
 */
import { writeCrc64 } from '@georep/rdb';

/**
 * Writes the footer of the payload `buf[start..at)` (type byte + body) at `at`: `version`, then
 * the CRC64 of everything from `start` through the version. Returns the end of the footer.
 */
export function writeDumpFooter(buf: Buffer, start: number, at: number, version: number): number {
  buf[at] = version & 0xff;
  buf[at + 1] = version >>> 8;
  const end = at + 2;
  writeCrc64(buf, start, end, buf, end);
  return end + 8;
}
