/**
 * Verification of a received RDB stream, and the metadata read on the way.
 *
 * Two depths, because they differ by an order of magnitude in speed:
 * - `records` runs the full streaming parser: every record is decoded, so the structure is proven
 *   loadable, keys are counted per database, and the CRC64 is checked. About 30 MB/s.
 * - `checksum` only computes the CRC64 over the bytes and compares it with the 8 stored after the
 *   EOF opcode (hundreds of MB/s); AUX fields are still read from the head of the file, but keys
 *   are not counted.
 */
import { Crc64, RdbChecksumError, RdbCorruptError, RdbTruncatedError, parseRdb } from '@georep/rdb';

/** How deeply {@link verifyRdbStream} checks the bytes. */
export type RdbVerifyMode = 'records' | 'checksum';

/** What verification learnt about the file. */
export interface RdbStreamSummary {
  /**
   * Where the RDB ends (after its checksum). In `records` mode the parser stops there, so a
   * caller that knows the stream's length compares the two to catch trailing bytes.
   */
  bytes: number;
  rdbVersion: number;
  /** `redis-ver` or `valkey-ver` AUX field, when present. */
  redisVersion: string | undefined;
  /** AUX fields at the head of the file (`redis-ver`, `ctime`, `repl-offset`, ...). */
  aux: Record<string, string>;
  /** Key records per database (`records` mode only). */
  keysPerDb: Record<number, number> | undefined;
  /** The stored CRC64 as 16 hex digits. */
  crc: string;
  /** `disabled` when the node saved with `rdbchecksum no` (stored CRC is zero). */
  checksum: 'verified' | 'disabled';
}

const CHECKSUM_BYTES = 8;
const EOF_OPCODE = 0xff;

const hex64 = (v: bigint) => v.toString(16).padStart(16, '0');

/**
 * Verifies the RDB read from `source` (which must yield the whole file, in order).
 *
 * @throws RdbError subclasses (`rdb.bad-checksum`, `rdb.truncated`, `rdb.corrupt`, ...) for bad
 *   data; errors of `source` itself propagate unchanged.
 */
export async function verifyRdbStream(
  source: AsyncIterable<Buffer>,
  mode: RdbVerifyMode,
): Promise<RdbStreamSummary> {
  return mode === 'records' ? verifyRecords(source) : verifyChecksum(source);
}

async function verifyRecords(source: AsyncIterable<Buffer>): Promise<RdbStreamSummary> {
  let rdbVersion = 0;
  const aux: Record<string, string> = {};
  const keysPerDb: Record<number, number> = {};
  let eofAt = -1;
  let crc = 0n;
  let checksum: RdbStreamSummary['checksum'] = 'verified';
  for await (const rec of parseRdb(source)) {
    switch (rec.kind) {
      case 'header':
        rdbVersion = rec.version;
        break;
      case 'aux':
        aux[rec.name] = rec.value.toString('utf8');
        break;
      case 'key':
        keysPerDb[rec.db] = (keysPerDb[rec.db] ?? 0) + 1;
        break;
      case 'eof':
        eofAt = rec.offset;
        crc = rec.crc ?? 0n;
        // Servers that can replicate all write RDB >= 5, so 'absent' cannot happen here.
        checksum = rec.checksum === 'disabled' ? 'disabled' : 'verified';
        break;
      default:
        break;
    }
  }
  return {
    bytes: eofAt + 1 + CHECKSUM_BYTES,
    rdbVersion,
    redisVersion: aux['redis-ver'] ?? aux['valkey-ver'],
    aux,
    keysPerDb,
    crc: hex64(crc),
    checksum,
  };
}

async function verifyChecksum(source: AsyncIterable<Buffer>): Promise<RdbStreamSummary> {
  const crc = new Crc64();
  // The last 9 bytes (EOF opcode + stored CRC) are held back until the stream ends, like the
  // payload decoder holds back a possible end marker.
  let held = Buffer.alloc(0);
  let bytes = 0;
  const head: Buffer[] = [];
  let headBytes = 0;
  for await (const chunk of source) {
    bytes += chunk.length;
    if (headBytes < HEAD_BYTES) {
      head.push(chunk);
      headBytes += chunk.length;
    }
    if (chunk.length >= CHECKSUM_BYTES + 1) {
      crc.update(held);
      crc.update(chunk.subarray(0, chunk.length - CHECKSUM_BYTES - 1));
      held = Buffer.from(chunk.subarray(chunk.length - CHECKSUM_BYTES - 1));
    } else {
      const joined = Buffer.concat([held, chunk]);
      const keep = Math.min(joined.length, CHECKSUM_BYTES + 1);
      crc.update(joined.subarray(0, joined.length - keep));
      held = joined.subarray(joined.length - keep);
    }
  }
  if (held.length < CHECKSUM_BYTES + 1 || held[0] !== EOF_OPCODE) {
    throw new RdbCorruptError('the RDB does not end with the EOF opcode and a checksum', {
      offset: Math.max(0, bytes - CHECKSUM_BYTES - 1),
    });
  }
  crc.update(held.subarray(0, 1));
  const stored = held.readBigUInt64LE(1);
  const computed = crc.digest();
  if (stored !== 0n && stored !== computed) {
    throw new RdbChecksumError(stored, computed, { offset: bytes - CHECKSUM_BYTES });
  }
  const { rdbVersion, aux } = await readHead(head);
  return {
    bytes,
    rdbVersion,
    redisVersion: aux['redis-ver'] ?? aux['valkey-ver'],
    aux,
    keysPerDb: undefined,
    crc: hex64(stored),
    checksum: stored === 0n ? 'disabled' : 'verified',
  };
}

/** Bytes kept from the start of the file to read the header and AUX fields from. */
const HEAD_BYTES = 64 * 1024;

/** Header and the AUX fields that precede the keyspace, parsed from the first bytes. */
async function readHead(
  head: Buffer[],
): Promise<{ rdbVersion: number; aux: Record<string, string> }> {
  let rdbVersion = 0;
  const aux: Record<string, string> = {};
  try {
    for await (const rec of parseRdb(head, { verifyChecksum: false })) {
      if (rec.kind === 'header') rdbVersion = rec.version;
      else if (rec.kind === 'aux') aux[rec.name] = rec.value.toString('utf8');
      else break;
    }
  } catch (err) {
    // The head is cut at an arbitrary byte: running out there is expected, anything else is not.
    if (!(err instanceof RdbTruncatedError)) throw err;
  }
  return { rdbVersion, aux };
}
