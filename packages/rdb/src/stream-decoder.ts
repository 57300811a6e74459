/**
 * Decoder of stream values (types 15, 19 and 21).
 *
 * A stream is a radix tree of listpacks, each keyed by its master entry ID, followed by the
 * stream metadata and its consumer groups. Inside a listpack the first entries form the master
 * entry (`count, deleted, num-fields, fields..., 0`); every following entry is
 * `flags, ms-delta, seq-delta, [num-fields, field/value pairs | values only when SAMEFIELDS],
 * lp-count`, with IDs stored as deltas from the master ID.
 */
import { RdbType } from './constants.js';
import { decodeListpack } from './listpack.js';
import { elementToBigInt, elementToBuffer } from './blob-reader.js';
import { RdbCorruptError } from './errors.js';
import type { CompactElement } from './blob-reader.js';
import type { Blob, RdbCursor } from './cursor.js';
import type {
  StreamConsumer,
  StreamEntry,
  StreamGroup,
  StreamId,
  StreamPendingEntry,
  StreamValue,
} from './types.js';

/** Entry flag: removed by XDEL but still stored. */
export const STREAM_ITEM_FLAG_DELETED = 1;
/** Entry flag: the entry has exactly the master entry's fields, only values are stored. */
export const STREAM_ITEM_FLAG_SAMEFIELDS = 2;

/** Decodes a stream value of type `typeCode` (15, 19 or 21) at the cursor. */
export function decodeStream(cur: RdbCursor, typeCode: number): StreamValue {
  const entries: StreamEntry[] = [];
  const nodeCount = cur.len();
  for (let i = 0; i < nodeCount; i++) {
    const key = cur.blob();
    if (key.bytes.length !== 16) {
      throw new RdbCorruptError(`stream node key of ${key.bytes.length} bytes, expected 16`, {
        offset: key.origin,
      });
    }
    const master: StreamId = {
      ms: key.bytes.readBigUInt64BE(0),
      seq: key.bytes.readBigUInt64BE(8),
    };
    const lp = cur.blob();
    decodeStreamNode(lp, master, entries);
  }
  const length = cur.len();
  const lastId = readLenId(cur);
  const value: StreamValue = { entries, length, lastId, groups: [] };
  const v2 = typeCode >= RdbType.STREAM_LISTPACKS_2;
  if (v2) {
    value.firstId = readLenId(cur);
    value.maxDeletedId = readLenId(cur);
    value.entriesAdded = cur.lenBig();
  }
  const groupCount = cur.len();
  for (let g = 0; g < groupCount; g++) {
    value.groups.push(readGroup(cur, typeCode));
  }
  return value;
}

function readLenId(cur: RdbCursor): StreamId {
  const ms = cur.lenBig();
  const seq = cur.lenBig();
  return { ms, seq };
}

function readGroup(cur: RdbCursor, typeCode: number): StreamGroup {
  const name = cur.string();
  const lastId = readLenId(cur);
  const group: StreamGroup = { name, lastId, pending: [], consumers: [] };
  if (typeCode >= RdbType.STREAM_LISTPACKS_2) group.entriesRead = cur.lenBig();
  const pelCount = cur.len();
  for (let i = 0; i < pelCount; i++) {
    const id = cur.streamId();
    const deliveryTime = cur.i64le();
    const deliveryCount = cur.len();
    const p: StreamPendingEntry = { id, deliveryTime, deliveryCount };
    group.pending.push(p);
  }
  const consumerCount = cur.len();
  for (let c = 0; c < consumerCount; c++) {
    const consumerName = cur.string();
    const seenTime = cur.i64le();
    const consumer: StreamConsumer = { name: consumerName, seenTime, pending: [] };
    if (typeCode >= RdbType.STREAM_LISTPACKS_3) consumer.activeTime = cur.i64le();
    const ownCount = cur.len();
    for (let i = 0; i < ownCount; i++) consumer.pending.push(cur.streamId());
    group.consumers.push(consumer);
  }
  return group;
}

/** Decodes one listpack node of a stream, appending its entries (deleted ones flagged). */
function decodeStreamNode(lp: Blob, master: StreamId, out: StreamEntry[]): void {
  const els = decodeListpack(lp);
  const fail = (what: string): RdbCorruptError =>
    new RdbCorruptError(`stream listpack: ${what}`, { offset: lp.origin });
  let i = 0;
  const next = (): CompactElement => {
    const e = els[i++];
    if (e === undefined) throw fail('ends in the middle of an entry');
    return e;
  };
  const int = (): bigint => {
    const v = elementToBigInt(next());
    if (v === undefined) throw fail('string where an integer was expected');
    return v;
  };
  const count = (): number => {
    const v = int();
    if (v < 0n || v > BigInt(els.length)) throw fail(`impossible count ${v}`);
    return Number(v);
  };

  if (els.length === 0) throw fail('empty node');
  int(); // live entry count: recomputed from the flags, so not needed
  int(); // deleted entry count
  const masterFieldCount = count();
  const masterFields: Buffer[] = [];
  for (let f = 0; f < masterFieldCount; f++) masterFields.push(elementToBuffer(next()));
  if (int() !== 0n) throw fail('master entry not terminated by 0');

  while (i < els.length) {
    const flags = Number(int());
    const id: StreamId = { ms: master.ms + int(), seq: master.seq + int() };
    const fields: Array<[Buffer, Buffer]> = [];
    if ((flags & STREAM_ITEM_FLAG_SAMEFIELDS) !== 0) {
      for (const field of masterFields) fields.push([field, elementToBuffer(next())]);
    } else {
      const n = count();
      for (let f = 0; f < n; f++) {
        const field = elementToBuffer(next());
        fields.push([field, elementToBuffer(next())]);
      }
    }
    int(); // lp-count: lets Redis walk backwards, redundant going forwards
    out.push({ id, fields, deleted: (flags & STREAM_ITEM_FLAG_DELETED) !== 0 });
  }
}
