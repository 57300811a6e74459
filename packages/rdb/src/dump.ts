/**
 * DUMP / RESTORE payloads: `type byte + value body + RDB version (u16 LE) + CRC64 (u64 LE)`,
 * the CRC covering everything before it.
 *
 * The footer version is only a gate: the target refuses payloads whose version is newer than its
 * own RDB version, but never uses it to decode. What must really match the target is the type
 * byte (see {@link isTypeLoadable}).
 */
import { Crc64, crc64 } from './crc64.js';
import { RdbCursor } from './cursor.js';
import {
  RdbChecksumError,
  RdbCorruptError,
  RdbTruncatedError,
  RdbUnencodableError,
} from './errors.js';
import { VALKEY_RDB_VERSION } from './constants.js';
import { decodeValue } from './value-decoder.js';
import { encodeValue } from './value-encoder.js';
import type { RdbFlavor } from './value-decoder.js';
import type { RdbValue } from './types.js';

const FOOTER_BYTES = 10;

/**
 * Wraps raw value bytes (a parser record's `raw`: type byte + body) into a DUMP payload with
 * footer `version`, ready for `RESTORE key ttl payload`.
 *
 * @param version - the RDB version written in the footer; must not exceed the target's own
 *   (e.g. 10 for Redis 7.0). It does not change the body.
 */
export function dumpPayloadFromRaw(raw: Uint8Array, version: number): Buffer {
  if (raw.length === 0) throw new RdbUnencodableError('raw value is empty');
  if (!Number.isInteger(version) || version < 0 || version > 0xffff) {
    throw new RdbUnencodableError(`DUMP footer version ${version} does not fit 16 bits`);
  }
  const out = Buffer.allocUnsafe(raw.length + FOOTER_BYTES);
  out.set(raw, 0);
  out.writeUInt16LE(version, raw.length);
  const crc = new Crc64().update(out.subarray(0, raw.length + 2)).digestBytes();
  crc.copy(out, raw.length + 2);
  return out;
}

/** Options of {@link encodeDumpPayload}. */
export interface EncodeDumpOptions {
  /** Target RDB version: picks the encodings and is written in the footer. */
  version: number;
  /** LZF-compress long strings. Default true. */
  compress?: boolean;
}

/** Encodes a decoded value as a DUMP payload for the target version. */
export function encodeDumpPayload(value: RdbValue, options: EncodeDumpOptions): Buffer {
  const { typeCode, body } = encodeValue(value, options);
  const raw = Buffer.allocUnsafe(1 + body.length);
  raw[0] = typeCode;
  body.copy(raw, 1);
  return dumpPayloadFromRaw(raw, options.version);
}

/** A verified, decoded DUMP payload. */
export type ParsedDumpPayload = {
  /** The RDB version in the footer. */
  version: number;
  typeCode: number;
  encoding: string;
  /** Type byte + body, without the footer (what an RDB file stores after the key). */
  raw: Buffer;
} & RdbValue;

/** Options of {@link parseDumpPayload}. */
export interface ParseDumpOptions {
  /**
   * Which fork wrote the payload, for type 22. Default: `valkey` when the footer version is 80
   * or more, else `redis`.
   */
  flavor?: RdbFlavor;
  /** Skip the CRC check (like `skip_checksum_validation`). Default false. */
  skipChecksum?: boolean;
}

/**
 * Verifies a DUMP payload's CRC64 and decodes its value.
 *
 * @throws RdbTruncatedError when shorter than the 10-byte footer plus a type byte.
 * @throws RdbChecksumError when the CRC does not match.
 * @throws RdbCorruptError when the body is malformed or does not end exactly at the footer.
 */
export function parseDumpPayload(
  payload: Uint8Array,
  options: ParseDumpOptions = {},
): ParsedDumpPayload {
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (buf.length < FOOTER_BYTES + 1) {
    throw new RdbTruncatedError(`DUMP payload of ${buf.length} bytes is shorter than its footer`, {
      offset: buf.length,
    });
  }
  const bodyEnd = buf.length - FOOTER_BYTES;
  const version = buf.readUInt16LE(bodyEnd);
  if (options.skipChecksum !== true) {
    const stored = buf.readBigUInt64LE(bodyEnd + 2);
    const actual = crc64(buf.subarray(0, bodyEnd + 2));
    if (stored !== actual) throw new RdbChecksumError(stored, actual, { offset: bodyEnd + 2 });
  }
  // `raw` is copied first and decoded in views mode: the value's strings share its memory
  // instead of being copied one by one, and none of them pins the caller's payload.
  const raw = Buffer.from(buf.subarray(0, bodyEnd));
  // final=true: the whole payload is here, so running out means truncated, never "need more".
  const cur = new RdbCursor(raw, 0, 0, true, true);
  const typeCode = cur.u8();
  const flavor = options.flavor ?? (version >= VALKEY_RDB_VERSION ? 'valkey' : 'redis');
  const { value, encoding } = decodeValue(cur, typeCode, flavor, 0);
  if (cur.pos !== bodyEnd) {
    throw new RdbCorruptError(`value ends at byte ${cur.pos}, footer starts at ${bodyEnd}`, {
      offset: cur.pos,
    });
  }
  return { version, typeCode, encoding, raw, ...value };
}
