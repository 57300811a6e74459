/**
 * The decoded shapes the parser produces and the writer consumes.
 *
 * Keys, members, fields and values are `Buffer`s because Redis strings are binary: converting to
 * JavaScript strings would corrupt anything that is not valid UTF-8. Integers stored in compact
 * encodings (intsets, listpacks) are turned back into their decimal text, as Redis does when it
 * replies to a client.
 */
import type { RdbMagic } from './constants.js';

/** A member of a sorted set. */
export interface ZsetEntry {
  member: Buffer;
  score: number;
}

/** A field of a hash, with its per-field expiration (Redis 7.4+ / Valkey 9) when it has one. */
export interface HashEntry {
  field: Buffer;
  value: Buffer;
  /** Absolute Unix time in ms at which the field expires; absent when it does not expire. */
  expireAtMs?: number;
}

/** A stream entry ID. Both halves are unsigned 64-bit, hence bigint. */
export interface StreamId {
  ms: bigint;
  seq: bigint;
}

/** One stream entry. Deleted entries are kept (flagged) because they occupy listpack space. */
export interface StreamEntry {
  id: StreamId;
  /** Field/value pairs in their stored order. */
  fields: Array<[field: Buffer, value: Buffer]>;
  /** True for an entry removed by XDEL but still present in its listpack. */
  deleted: boolean;
}

/** A pending (delivered, not acknowledged) entry in a consumer group's PEL. */
export interface StreamPendingEntry {
  id: StreamId;
  /** Unix time in ms of the last delivery. */
  deliveryTime: number;
  deliveryCount: number;
}

/** A consumer of a consumer group. */
export interface StreamConsumer {
  name: Buffer;
  /** Unix ms of the consumer's last interaction. */
  seenTime: number;
  /** Unix ms of the last successful interaction (RDB 11+ streams, type 21); absent before. */
  activeTime?: number;
  /** IDs this consumer owns in the group's PEL. */
  pending: StreamId[];
}

/** A consumer group of a stream. */
export interface StreamGroup {
  name: Buffer;
  lastId: StreamId;
  /** Logical read counter (type 19+); 2^64-1 in the file means "invalid" and is kept as-is. */
  entriesRead?: bigint;
  pending: StreamPendingEntry[];
  consumers: StreamConsumer[];
}

/** A decoded stream value. */
export interface StreamValue {
  entries: StreamEntry[];
  /** Number of live (not deleted) entries, as stored. */
  length: number;
  lastId: StreamId;
  /** Type 19+ only. */
  firstId?: StreamId;
  /** Type 19+ only. */
  maxDeletedId?: StreamId;
  /** Type 19+ only: entries ever added. */
  entriesAdded?: bigint;
  groups: StreamGroup[];
}

/**
 * A module value (type 7). It cannot be interpreted without the module, so it is kept opaque:
 * the id (which encodes the module type name and encoding version) and the bytes after the id.
 */
export interface ModuleValue {
  /** The 64-bit module type id as stored. */
  moduleId: bigint;
  /** The 9-character module type name encoded in the id (e.g. `ReJSON-RL`). */
  moduleName: string;
  /** The module's encoding version (low 10 bits of the id). */
  encodingVersion: number;
  /** The serialized module data after the id, through its EOF opcode. */
  body: Buffer;
}

/**
 * A decoded value, discriminated by `type`. The same shape is accepted by the writer, so a parsed
 * value can be written back to any target version that can represent it.
 */
export type RdbValue =
  | { type: 'string'; value: Buffer }
  | { type: 'list'; value: Buffer[] }
  | { type: 'set'; value: Buffer[] }
  | { type: 'zset'; value: ZsetEntry[] }
  | { type: 'hash'; value: HashEntry[] }
  | { type: 'stream'; value: StreamValue }
  | { type: 'module'; value: ModuleValue };

/** Name of a value type. */
export type RdbValueType = RdbValue['type'];

/** The file header. */
export interface RdbHeaderRecord {
  kind: 'header';
  magic: RdbMagic;
  version: number;
  offset: number;
}

/** An AUX field (`redis-ver`, `ctime`, `repl-offset`, ...). Unknown fields are reported too. */
export interface RdbAuxRecord {
  kind: 'aux';
  /** Field name; AUX names are ASCII in practice, decoded as latin1 so no byte is lost. */
  name: string;
  value: Buffer;
  offset: number;
}

/** SELECTDB: the following keys belong to database `db`. */
export interface RdbSelectDbRecord {
  kind: 'selectdb';
  db: number;
  offset: number;
}

/** RESIZEDB: size hints for the current database. */
export interface RdbResizeDbRecord {
  kind: 'resizedb';
  dbSize: number;
  expiresSize: number;
  offset: number;
}

/** SLOT_INFO (Redis 7.4+ cluster mode): the following keys are in `slot`. */
export interface RdbSlotInfoRecord {
  kind: 'slot-info';
  slot: number;
  slotSize: number;
  expiresSlotSize: number;
  offset: number;
}

/** FUNCTION2: one function library, as its source code (`#!lua name=...`). */
export interface RdbFunctionRecord {
  kind: 'function';
  code: Buffer;
  offset: number;
}

/** MODULE_AUX: module-global data, kept opaque. */
export interface RdbModuleAuxRecord {
  kind: 'module-aux';
  moduleId: bigint;
  moduleName: string;
  /** 1 = before the keyspace, 2 = after it (Redis's REDISMODULE_AUX_BEFORE_RDB / AFTER_RDB). */
  when: number;
  /** The module data after `when`, through its EOF opcode. */
  body: Buffer;
  offset: number;
}

/** The fields every key record has, whether or not its value was decoded. */
export interface RdbKeyFields {
  kind: 'key';
  db: number;
  key: Buffer;
  /** The type byte as stored (see {@link RdbType}). */
  typeCode: number;
  /** Name of the stored encoding (`listpack`, `quicklist2`, `intset`, ...). */
  encoding: string;
  /** Absolute expiry in Unix ms, absent when the key does not expire. */
  expireAtMs?: number;
  /** LRU idle time in seconds (IDLE opcode), when stored. */
  idleSeconds?: number;
  /** LFU counter (FREQ opcode), when stored. */
  lfuFreq?: number;
  /**
   * Type byte + value body exactly as in the file: a DUMP payload is this plus a footer
   * ({@link dumpPayloadFromRaw}). A copy that belongs to the record: it stays valid however long
   * it is kept. Decoded strings of the value may be views of it (or of the record's decompressed
   * data), so they share its memory.
   */
  raw: Buffer;
  /** Offset of the record's first byte (its first per-key opcode or the type byte). */
  offset: number;
}

/** A key with its decoded value, plus everything needed to RESTORE it without re-encoding. */
export type RdbKeyRecord = RdbKeyFields & RdbValue;

/**
 * A key as parsed with `decodeValues: false`: its Redis `type` but no decoded `value`. `raw`
 * holds the value exactly as stored.
 */
export type RdbRawKeyRecord = RdbKeyFields & { type: RdbValueType; value?: undefined };

/** End of file, with the outcome of the checksum check. */
export interface RdbEofRecord {
  kind: 'eof';
  /**
   * `verified`: the stored CRC64 matched; `disabled`: stored as zero (`rdbchecksum no`);
   * `absent`: RDB version < 5, which has no checksum; `unverified`: the caller turned
   * verification off (`verifyChecksum: false`).
   */
  checksum: 'verified' | 'disabled' | 'absent' | 'unverified';
  /** The stored CRC64, when present. */
  crc?: bigint;
  offset: number;
}

/** Everything the streaming parser yields, in file order. */
export type RdbRecord =
  | RdbHeaderRecord
  | RdbAuxRecord
  | RdbSelectDbRecord
  | RdbResizeDbRecord
  | RdbSlotInfoRecord
  | RdbFunctionRecord
  | RdbModuleAuxRecord
  | RdbKeyRecord
  | RdbEofRecord;

/** What the parser yields with `decodeValues: false`: key records without decoded values. */
export type RdbRawRecord = Exclude<RdbRecord, RdbKeyRecord> | RdbRawKeyRecord;
