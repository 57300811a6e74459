/**
 * Streaming integrity check of an RDB file: its size and CRC64, computed while the bytes pass by.
 *
 * An RDB ends with the CRC64 (Jones) of everything before it, stored little-endian. A stream does
 * not know where it ends, so the last 8 bytes seen are held back from the running checksum until
 * the next chunk proves they were not the trailer.
 */
import { Crc64 } from '@georep/rdb';
import { SnapshotCorruptError } from './errors.js';
import type { SnapshotMeta } from './snapshot-meta.js';

const TRAILER = 8;

/** What {@link RdbDigest.finish} measured. */
export interface RdbDigestResult {
  size: number;
  /** The trailing 8 bytes as a little-endian u64, 16 hex digits ('' for files under 8 bytes). */
  storedCrc: string;
  /** CRC64 of everything before the trailer, 16 hex digits. */
  computedCrc: string;
}

/** Accumulates size and CRC64 over a stream of chunks. */
export class RdbDigest {
  readonly #crc = new Crc64();
  #tail: Buffer = Buffer.alloc(0);
  #size = 0;

  /** Feeds the next chunk. */
  update(chunk: Uint8Array): void {
    this.#size += chunk.length;
    if (chunk.length >= TRAILER) {
      if (this.#tail.length > 0) this.#crc.update(this.#tail);
      this.#crc.update(chunk.subarray(0, chunk.length - TRAILER));
      // Copy: the caller may reuse or release its buffer.
      this.#tail = Buffer.from(chunk.subarray(chunk.length - TRAILER));
      return;
    }
    const joined = Buffer.concat([this.#tail, chunk]);
    const spill = Math.max(0, joined.length - TRAILER);
    if (spill > 0) this.#crc.update(joined.subarray(0, spill));
    this.#tail = joined.subarray(spill);
  }

  /** Bytes fed so far. */
  get size(): number {
    return this.#size;
  }

  /** The measurements; call once the stream ended. */
  finish(): RdbDigestResult {
    const storedCrc = this.#tail.length === TRAILER ? hex64(this.#tail.readBigUInt64LE(0)) : '';
    return { size: this.#size, storedCrc, computedCrc: hex64(this.#crc.digest()) };
  }
}

function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

const DISABLED = '0'.repeat(16);

/**
 * Checks measured bytes against what they claim: the trailer against the computed CRC64 (unless
 * checksums were disabled, stored as zero, or the RDB predates checksums), and, when `expected`
 * is given, size and CRC against the stored metadata.
 *
 * @throws SnapshotCorruptError with `check` = `size` or `checksum`.
 */
export function checkDigest(
  name: string,
  got: RdbDigestResult,
  expected?: Pick<SnapshotMeta, 'size' | 'crc' | 'rdbVersion'>,
): void {
  if (expected !== undefined && expected.size > 0 && got.size !== expected.size) {
    throw new SnapshotCorruptError(
      name,
      'size',
      `expected ${expected.size} bytes, got ${got.size}`,
      { details: { expectedSize: expected.size, actualSize: got.size } },
    );
  }
  const hasCrc = expected === undefined || expected.rdbVersion === 0 || expected.rdbVersion >= 5;
  if (hasCrc && got.storedCrc !== DISABLED && got.storedCrc !== got.computedCrc) {
    throw new SnapshotCorruptError(
      name,
      'checksum',
      `CRC64 of the content is ${got.computedCrc}, the file's trailer says ${got.storedCrc}`,
      { details: { stored: got.storedCrc, computed: got.computedCrc } },
    );
  }
  if (expected !== undefined && expected.crc !== '' && got.storedCrc !== expected.crc) {
    throw new SnapshotCorruptError(
      name,
      'checksum',
      `the file's CRC64 is ${got.storedCrc}, the snapshot metadata says ${expected.crc}`,
      { details: { stored: got.storedCrc, expected: expected.crc } },
    );
  }
}
