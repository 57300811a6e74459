/**
 * Replication operations: what capture records in a region and what travels to the others.
 * The format and the rules per kind are in docs/replication-internals.md; this file is the
 * TypeScript contract shared by translate, record, transport and apply.
 */

/** An `encodeHlc()` string: its byte order is the HLC order. `''` sorts before every tag. */
export type Tag = string;

/** The collection types with element-level merge rules. */
export type ElementType = 'hash' | 'set' | 'zset';

/** Fields every per-key operation has. */
interface KeyOpBase {
  db: number;
  key: Uint8Array;
  tag: Tag;
}

/** A whole value (DUMP payload), or a delete when `dump` is null. Last writer wins by tag. */
export interface ValueOp extends KeyOpBase {
  kind: 'value';
  /** DUMP payload (RDB value + version + CRC64), or null when the key was deleted. */
  dump: Uint8Array | null;
  /** Absolute expire time in ms, 0 for none. */
  pttl: number;
  /** Counter contributions per region that the write observed (`c:<region>` at record time). */
  ob: Record<string, string>;
}

/** An increment of a counter, carried as the origin's cumulative contribution afterwards. */
export interface CounterOp extends KeyOpBase {
  kind: 'counter';
  /** Decimal string: the origin region's total contribution to this key after this op. */
  cum: string;
}

/** An expiry change: PEXPIREAT (`at` > 0) or PERSIST (`at` = 0). */
export interface ExpireOp extends KeyOpBase {
  kind: 'expire';
  at: number;
  /** The `e` tag in force at the origin before this change (detects concurrent changes). */
  prev: Tag;
}

/** Adds and removes of hash fields, set members or sorted-set members. */
export interface ElementsOp extends KeyOpBase {
  kind: 'elements';
  type: ElementType;
  /** [member, value]: the hash value, the zset score as a decimal string, empty for sets. */
  add: Array<[Uint8Array, Uint8Array]>;
  /** [member, the member's add tag the remove observed]. */
  rem: Array<[Uint8Array, Tag]>;
}

/** FLUSHDB (`db` >= 0) or FLUSHALL (`db` = -1). */
export interface FlushOp {
  kind: 'flush';
  db: number;
  tag: Tag;
}

/** One replicated operation. */
export type Op = ValueOp | CounterOp | ExpireOp | ElementsOp | FlushOp;

/** One message on a region's stream. */
export interface OpBatch {
  /** Format version. */
  v: 1;
  /** Region that produced the operations. */
  origin: string;
  /** Batch sequence number of the origin, increasing by one per batch; the dedup id. */
  seq: number;
  ops: Op[];
}

/**
 * What translate produces from one captured command, for one key: what record.lua must read
 * and update. The tag is assigned before record runs.
 */
export type Instruction =
  | { kind: 'value'; db: number; key: Uint8Array; tag: Tag }
  | { kind: 'counter'; db: number; key: Uint8Array; tag: Tag; delta: string }
  | { kind: 'expire'; db: number; key: Uint8Array; tag: Tag }
  | {
      kind: 'elements';
      db: number;
      key: Uint8Array;
      tag: Tag;
      type: ElementType;
      add: Uint8Array[];
      rem: Uint8Array[];
    }
  | { kind: 'flush'; db: number; tag: Tag };

/** Prefix of every key georep owns in Redis; capture never ships them. */
export const GEOREP_KEY_PREFIX = '__georep:';
/** Metadata hash of a key: prefix + the key's bytes, same db. */
export const META_PREFIX = '__georep:m:';
/** Apply marker: the first write of every apply transaction. */
export const APPLY_MARKER_KEY = '__georep:apply';
/** Last recorded batch (db 0). */
export const OUTBOX_KEY = '__georep:outbox';
/**
 * Capture's position, mirrored into the primary (db 0) about once a second: an agent without a
 * position file of its own (a standby taking over, a lost data directory) resumes from it
 * instead of starting over with a full sync.
 */
export const POSITION_KEY = '__georep:capture';
/** Tag of the last flush of a db. */
export const FLUSH_KEY = '__georep:flush';
