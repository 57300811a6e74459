/**
 * Synchronous decoding of one RDB "unit": the header, or one opcode with its payload, or one key
 * (its optional EXPIRETIME/IDLE/FREQ prefixes, type byte, key and value).
 *
 * A unit either decodes completely or throws, without side effects on parser state: the async
 * driver may decode the same unit several times while it waits for enough input.
 *
 * A key is read in two steps: a walk over its value's framing finds where the value ends (this is
 * the step that runs out of input, cheaply, when the window ends inside the value); then the value
 * is copied once, as `raw`, and decoded from that copy with its strings as views of it.
 */
import { FIRST_CHECKSUM_VERSION, RdbOpcode, isSupportedVersion } from './constants.js';
import { decodeModuleId, readModuleBody } from './module-value.js';
import {
  assertKnownValueType,
  decodeValueBody,
  encodingName,
  skipValue,
  typeName,
} from './value-decoder.js';
import { ModuleOpcode } from './constants.js';
import { StringSequence, isStringSequenceType } from './string-sequence.js';
import { NeedMoreData } from './byte-cursor.js';
import { RdbCursor } from './cursor.js';
import { RdbBadMagicError, RdbUnknownTypeError, RdbUnsupportedVersionError } from './errors.js';
import type { RdbMagic } from './constants.js';
import type { RdbFlavor } from './value-decoder.js';
import type {
  RdbEofRecord,
  RdbHeaderRecord,
  RdbKeyRecord,
  RdbRawKeyRecord,
  RdbRawRecord,
  RdbRecord,
  RdbValue,
} from './types.js';

/** Per-key attributes announced by opcodes before the type byte; they apply to the next key. */
export interface PendingKeyAttributes {
  expireAtMs?: number;
  idleSeconds?: number;
  lfuFreq?: number;
}

/** No pending attributes (shared, never mutated: units copy before they add to it). */
export const NO_PENDING: Readonly<PendingKeyAttributes> = Object.freeze({});

/** What {@link readUnit} returns at the EOF opcode. */
export const EOF_MARKER = Object.freeze({ kind: 'eof-marker' as const });

/** A record produced by one unit (anything but the header and the final `eof`). */
export type UnitRecord = Exclude<RdbRecord | RdbRawRecord, RdbHeaderRecord | RdbEofRecord>;

/**
 * Parser state a unit reads. A unit changes it (`pending`) only once it has decoded completely,
 * so a unit interrupted by {@link NeedMoreData} can be decoded again from its start.
 */
export interface UnitState {
  version: number;
  flavor: RdbFlavor;
  db: number;
  pending: Readonly<PendingKeyAttributes>;
  /** false: key records carry `raw` but no decoded value. */
  decodeValues: boolean;
  /**
   * Decode values in one pass straight from the window, as a plain decoder would, instead of
   * delimiting them first: the parser sets it to learn which error decoding would report first.
   */
  replay: boolean;
  /** Reused to decode values from their `raw` copy (in views mode). */
  valueCursor: RdbCursor;
  /** Reused to decode values that are sequences of strings in one pass. */
  strings: StringSequence;
}

/** A fresh {@link UnitState}. */
export function newUnitState(version: number, flavor: RdbFlavor, decodeValues: boolean): UnitState {
  return {
    version,
    flavor,
    db: 0,
    pending: NO_PENDING,
    decodeValues,
    replay: false,
    valueCursor: new RdbCursor(EMPTY, 0, 0, true, true),
    strings: new StringSequence(),
  };
}

const EMPTY = Buffer.alloc(0);

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

/**
 * Decodes the next unit after the header: returns its record, or {@link EOF_MARKER}. Throws
 * {@link NeedMoreData} (leaving `st` untouched) when the unit continues past the window.
 */
export function readUnit(cur: RdbCursor, st: UnitState): UnitRecord | typeof EOF_MARKER {
  let pending = st.pending;
  const offset = cur.offset;
  for (;;) {
    const opAt = cur.offset;
    const op = cur.u8();
    switch (op) {
      case RdbOpcode.EXPIRETIME_MS:
        pending = { ...pending, expireAtMs: cur.i64le() };
        continue;
      case RdbOpcode.EXPIRETIME:
        // Legacy seconds form (RDB < 3); stored as a 32-bit host-order (little-endian) int.
        pending = { ...pending, expireAtMs: cur.i32le() * 1000 };
        continue;
      case RdbOpcode.IDLE:
        pending = { ...pending, idleSeconds: cur.len() };
        continue;
      case RdbOpcode.FREQ:
        pending = { ...pending, lfuFreq: cur.u8() };
        continue;
      case RdbOpcode.EOF:
        st.pending = pending;
        return EOF_MARKER;
      case RdbOpcode.SELECTDB: {
        const record: UnitRecord = { kind: 'selectdb', db: cur.len(), offset };
        st.pending = pending;
        return record;
      }
      case RdbOpcode.RESIZEDB: {
        const dbSize = cur.len();
        const expiresSize = cur.len();
        st.pending = pending;
        return { kind: 'resizedb', dbSize, expiresSize, offset };
      }
      case RdbOpcode.AUX: {
        const name = cur.string().toString('latin1');
        const value = cur.string();
        st.pending = pending;
        return { kind: 'aux', name, value, offset };
      }
      case RdbOpcode.SLOT_INFO: {
        const slot = cur.len();
        const slotSize = cur.len();
        const expiresSlotSize = cur.len();
        st.pending = pending;
        return { kind: 'slot-info', slot, slotSize, expiresSlotSize, offset };
      }
      case RdbOpcode.FUNCTION2: {
        const code = cur.string();
        st.pending = pending;
        return { kind: 'function', code, offset };
      }
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
        st.pending = pending;
        return { kind: 'module-aux', moduleId, moduleName, when, body, offset };
      }
      default: {
        const record = readKey(cur, op, st, pending, offset);
        st.pending = NO_PENDING;
        return record;
      }
    }
  }
}

function readKey(
  cur: RdbCursor,
  typeCode: number,
  st: UnitState,
  pending: Readonly<PendingKeyAttributes>,
  offset: number,
): RdbKeyRecord | RdbRawKeyRecord {
  const typeAt = cur.offset - 1;
  if (typeCode >= 0xf0) {
    // Opcodes of newer formats (Redis KEY_META 0xF3, Valkey SLOT_IMPORT 0xF3...) land here.
    throw new RdbUnknownTypeError(typeCode, `unknown opcode 0x${typeCode.toString(16)}`, {
      offset: typeAt,
    });
  }
  assertKnownValueType(typeCode, st.flavor, typeAt);
  const key = cur.string();
  const valueStart = cur.pos;
  let value: RdbValue | undefined;
  let raw: Buffer;
  const strings = st.strings;
  if (
    st.decodeValues &&
    !st.replay &&
    isStringSequenceType(typeCode) &&
    strings.read(cur, typeCode)
  ) {
    // Decoded in one pass from the window (see string-sequence.ts), then copied.
    raw = cur.copyWithPrefix(typeCode, valueStart, cur.pos);
    value = strings.toValue(typeCode, cur.copySource, valueStart);
  } else if (!st.replay && delimitValue(cur, typeCode, st, valueStart)) {
    // The value is delimited: copy it once as `raw`, then decode from that copy, so strings of
    // the value can be views of `raw` rather than copies of their own.
    raw = cur.copyWithPrefix(typeCode, valueStart, cur.pos);
    if (st.decodeValues) {
      const vc = st.valueCursor;
      // raw[0] is the type byte; raw[1] is the file byte at valueStart.
      vc.reset(raw, 1, cur.base + valueStart - 1, true, cur.copySource);
      value = decodeValueBody(vc, typeCode, st.flavor);
      if (vc.pos !== raw.length) {
        throw cur.corrupt(`value decodes to ${vc.pos - 1} bytes, framing says ${raw.length - 1}`);
      }
    }
  } else {
    // Types without a framing walk (streams, modules), or a replay: decode in one pass.
    const decoded = decodeValueBody(cur, typeCode, st.flavor);
    if (st.decodeValues) value = decoded;
    raw = cur.copyWithPrefix(typeCode, valueStart, cur.pos);
  }
  const encoding = encodingName(typeCode);
  const type = value === undefined ? typeName(typeCode) : value.type;
  const db = st.db;
  if (pending === NO_PENDING) {
    return value === undefined
      ? { kind: 'key', db, key, typeCode, encoding, raw, offset, type }
      : ({
          kind: 'key',
          db,
          key,
          typeCode,
          encoding,
          raw,
          offset,
          type,
          value: value.value,
        } as RdbKeyRecord);
  }
  return value === undefined
    ? { kind: 'key', db, key, typeCode, encoding, ...pending, raw, offset, type }
    : { kind: 'key', db, key, typeCode, encoding, ...pending, raw, offset, ...value };
}

/**
 * Walks over the value with {@link skipValue}. Returns false (cursor untouched) for types it
 * cannot walk.
 */
function delimitValue(
  cur: RdbCursor,
  typeCode: number,
  st: UnitState,
  valueStart: number,
): boolean {
  try {
    return skipValue(cur, typeCode, st.flavor);
  } catch (err) {
    if (err instanceof NeedMoreData || !st.decodeValues) throw err;
    // The walk found a problem in the framing (truncation, a bad length). Decoding may meet
    // another one earlier (a broken listpack, an invalid score...): replay it so the error is the
    // one a plain decoder reports. It throws, or else the walk's error stands.
    cur.pos = valueStart;
    decodeValueBody(cur, typeCode, st.flavor);
    throw err;
  }
}
