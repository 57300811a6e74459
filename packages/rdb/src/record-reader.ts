/**
 * Synchronous decoding of one RDB "unit": the header, or one opcode with its payload, or one key
 * (its optional EXPIRETIME/IDLE/FREQ prefixes, type byte, key and value).
 *
 * A unit either decodes completely or throws, without side effects on parser state: the async
 * driver may decode the same unit several times while it waits for enough input.
 */
import { FIRST_CHECKSUM_VERSION, RdbOpcode, isSupportedVersion } from './constants.js';
import { decodeModuleId, readModuleBody } from './module-value.js';
import { assertKnownValueType, decodeValue } from './value-decoder.js';
import { ModuleOpcode } from './constants.js';
import { RdbBadMagicError, RdbUnknownTypeError, RdbUnsupportedVersionError } from './errors.js';
import type { RdbMagic } from './constants.js';
import type { RdbCursor } from './cursor.js';
import type { RdbFlavor } from './value-decoder.js';
import type { RdbHeaderRecord, RdbKeyRecord, RdbRecord } from './types.js';

/** Per-key attributes announced by opcodes before the type byte; they apply to the next key. */
export interface PendingKeyAttributes {
  expireAtMs?: number;
  idleSeconds?: number;
  lfuFreq?: number;
}

/** Result of one unit: a record to emit (or the EOF marker) and the per-key attributes left. */
export interface UnitResult {
  record: Exclude<RdbRecord, RdbHeaderRecord | { kind: 'eof' }> | { kind: 'eof-marker' };
  pending: PendingKeyAttributes;
}

/** Parser state a unit needs (read only while decoding). */
export interface UnitContext {
  version: number;
  flavor: RdbFlavor;
  db: number;
  pending: PendingKeyAttributes;
}

/**
 * Reads the 9-byte header: `REDIS` + 4 digits or `VALKEY` + 3 digits.
 *
 * @param strictVersion - reject versions this codec was not written for (default behaviour);
 *   when false, any version is attempted, as Valkey's `rdb-version-check relaxed` does.
 */
export function readHeader(cur: RdbCursor, strictVersion: boolean): RdbHeaderRecord {
  cur.ensure(9);
  const text = cur.buf.toString('latin1', cur.pos, cur.pos + 9);
  let magic: RdbMagic;
  let digits: string;
  if (text.startsWith('REDIS')) {
    magic = 'REDIS';
    digits = text.slice(5);
  } else if (text.startsWith('VALKEY')) {
    magic = 'VALKEY';
    digits = text.slice(6);
  } else {
    throw new RdbBadMagicError(`not an RDB file: starts with ${JSON.stringify(text.slice(0, 6))}`, {
      offset: 0,
    });
  }
  if (!/^\d+$/.test(digits)) {
    throw new RdbBadMagicError(`RDB version is not a number: ${JSON.stringify(digits)}`, {
      offset: magic.length,
    });
  }
  const version = Number(digits);
  if (version < 1 || (strictVersion && !isSupportedVersion(magic, version))) {
    throw new RdbUnsupportedVersionError(version, `unsupported RDB version ${magic}${digits}`, {
      offset: magic.length,
    });
  }
  const offset = cur.offset;
  cur.pos += 9;
  return { kind: 'header', magic, version, offset };
}

/** Whether files of this version end with a CRC64. */
export function hasChecksum(version: number): boolean {
  return version >= FIRST_CHECKSUM_VERSION;
}

/** Decodes the next unit after the header. */
export function readUnit(cur: RdbCursor, ctx: UnitContext): UnitResult {
  const pending: PendingKeyAttributes = { ...ctx.pending };
  const offset = cur.offset;
  for (;;) {
    const opAt = cur.offset;
    const op = cur.u8();
    switch (op) {
      case RdbOpcode.EXPIRETIME_MS:
        pending.expireAtMs = cur.i64le();
        continue;
      case RdbOpcode.EXPIRETIME:
        // Legacy seconds form (RDB < 3); stored as a 32-bit host-order (little-endian) int.
        pending.expireAtMs = cur.i32le() * 1000;
        continue;
      case RdbOpcode.IDLE:
        pending.idleSeconds = cur.len();
        continue;
      case RdbOpcode.FREQ:
        pending.lfuFreq = cur.u8();
        continue;
      case RdbOpcode.EOF:
        return { record: { kind: 'eof-marker' }, pending };
      case RdbOpcode.SELECTDB:
        return { record: { kind: 'selectdb', db: cur.len(), offset }, pending };
      case RdbOpcode.RESIZEDB: {
        const dbSize = cur.len();
        const expiresSize = cur.len();
        return { record: { kind: 'resizedb', dbSize, expiresSize, offset }, pending };
      }
      case RdbOpcode.AUX: {
        const name = cur.string().toString('latin1');
        const value = cur.string();
        return { record: { kind: 'aux', name, value, offset }, pending };
      }
      case RdbOpcode.SLOT_INFO: {
        const slot = cur.len();
        const slotSize = cur.len();
        const expiresSlotSize = cur.len();
        return { record: { kind: 'slot-info', slot, slotSize, expiresSlotSize, offset }, pending };
      }
      case RdbOpcode.FUNCTION2:
        return { record: { kind: 'function', code: cur.string(), offset }, pending };
      case RdbOpcode.FUNCTION_PRE_GA:
        throw new RdbUnknownTypeError(
          op,
          'functions from Redis 7.0 release candidates (opcode 0xF6) are not supported',
          { offset: opAt },
        );
      case RdbOpcode.MODULE_AUX: {
        const moduleId = cur.lenBig();
        const whenAt = cur.offset;
        if (cur.len() !== ModuleOpcode.UINT) {
          throw cur.corrupt('MODULE_AUX "when" is not stored as an unsigned integer', whenAt);
        }
        const when = cur.len();
        const body = readModuleBody(cur);
        const moduleName = decodeModuleId(moduleId).name;
        return {
          record: { kind: 'module-aux', moduleId, moduleName, when, body, offset },
          pending,
        };
      }
      default:
        return { record: readKey(cur, op, ctx, pending, offset), pending: {} };
    }
  }
}

function readKey(
  cur: RdbCursor,
  typeCode: number,
  ctx: UnitContext,
  pending: PendingKeyAttributes,
  offset: number,
): RdbKeyRecord {
  const typeAt = cur.offset - 1;
  if (typeCode >= 0xf0) {
    // Opcodes of newer formats (Redis KEY_META 0xF3, Valkey SLOT_IMPORT 0xF3...) land here.
    throw new RdbUnknownTypeError(typeCode, `unknown opcode 0x${typeCode.toString(16)}`, {
      offset: typeAt,
    });
  }
  assertKnownValueType(typeCode, ctx.flavor, typeAt);
  const key = cur.string();
  const valueStart = cur.pos;
  const { value, encoding } = decodeValue(cur, typeCode, ctx.flavor, typeAt);
  // The RESTORE form of a value is its type byte followed by the value body; in the file the
  // key sits between the two, so the raw form is reassembled here.
  const raw = Buffer.allocUnsafe(1 + cur.pos - valueStart);
  raw[0] = typeCode;
  cur.buf.copy(raw, 1, valueStart, cur.pos);
  return {
    kind: 'key',
    db: ctx.db,
    key,
    typeCode,
    encoding,
    ...pending,
    raw,
    offset,
    ...value,
  };
}
