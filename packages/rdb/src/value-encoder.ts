/**
 * Encodes decoded values ({@link RdbValue}) into RDB value bodies for a chosen target version.
 *
 * The encodings are the simplest ones every server of the target version loads, not necessarily
 * the ones it would pick itself (servers convert on load anyway):
 *
 * | value  | RDB 10+ / Valkey 80              | older targets                   |
 * |--------|----------------------------------|---------------------------------|
 * | string | 0                                | 0                               |
 * | list   | 18 (listpack nodes, PLAIN ≥ 1 GiB)| 1 (linked list)                 |
 * | set    | 11 (intset, ≤ 512 integers) or 2 | 11 or 2                         |
 * | zset   | 5 (binary doubles)               | 5 from RDB 8, else 3            |
 * | hash   | 4; with field TTLs 24 (Redis 12) or 22 (Valkey 80) | 4              |
 * | stream | 21 (RDB 11+), 19 (RDB 10)        | 15 (RDB 9), refused before      |
 * | module | 7                                | 7 from RDB 8, refused before    |
 */
import { ByteSink } from './byte-sink.js';
import { ListpackBuilder, canonicalInt } from './listpack.js';
import { encodeIntset } from './intset.js';
import { QuicklistContainer, RdbType, VALKEY_RDB_VERSION } from './constants.js';
import { RdbUnencodableError } from './errors.js';
import { STREAM_ITEM_FLAG_SAMEFIELDS } from './stream-decoder.js';
import { writeAsciiDouble, writeLen, writeLenBig, writeString } from './primitives-writer.js';
import type { StringWriteOptions } from './primitives-writer.js';
import type { HashEntry, RdbValue, StreamEntry, StreamId, StreamValue } from './types.js';

/** Options of {@link encodeValue}. */
export interface EncodeValueOptions extends StringWriteOptions {
  /** RDB version of the target (1-12 for Redis, 80 for Valkey 9). */
  version: number;
}

/** A value body ready to be written after a key, or wrapped into a DUMP payload. */
export interface EncodedValue {
  typeCode: number;
  /** The value body, without the type byte. */
  body: Buffer;
}

/** Largest intset the writer produces (Redis's `set-max-intset-entries` default). */
const MAX_INTSET_ENTRIES = 512;
/** Target size of a list listpack node (Redis's `list-max-listpack-size -2`). */
const LIST_NODE_BYTES = 8 * 1024;
/** Elements at least this large get a PLAIN quicklist node, as Redis does. */
const PLAIN_NODE_THRESHOLD = 1024 * 1024 * 1024;
/** Entries per stream node (Redis's `stream-node-max-entries` default). */
const STREAM_NODE_ENTRIES = 100;
/** Largest field expiry Redis accepts (`EB_EXPIRE_TIME_MAX`). */
const MAX_FIELD_EXPIRY = 2 ** 48 - 1;
/** Stored as `entries_read` when a consumer group has no valid counter (-1 as unsigned). */
const INVALID_ENTRIES_READ = 2n ** 64n - 1n;

/**
 * Encodes `value` as the body of a value of the type chosen for `options.version`.
 *
 * @throws RdbUnencodableError when the target cannot represent the value (streams before RDB 9,
 *   hash field expirations before Redis RDB 12 / outside Valkey 80, modules before RDB 8).
 */
export function encodeValue(value: RdbValue, options: EncodeValueOptions): EncodedValue {
  const v = options.version;
  const sink = new ByteSink(64);
  const strOpts: StringWriteOptions = { compress: options.compress ?? true };
  const str = (s: Uint8Array): void => writeString(sink, s, strOpts);
  switch (value.type) {
    case 'string':
      str(value.value);
      return { typeCode: RdbType.STRING, body: sink.finish() };
    case 'list':
      if (v >= 10) {
        writeQuicklist2(sink, value.value, strOpts);
        return { typeCode: RdbType.LIST_QUICKLIST_2, body: sink.finish() };
      }
      writeLen(sink, value.value.length);
      for (const e of value.value) str(e);
      return { typeCode: RdbType.LIST, body: sink.finish() };
    case 'set': {
      const ints = value.value.length <= MAX_INTSET_ENTRIES ? asIntegers(value.value) : undefined;
      if (ints !== undefined && ints.length > 0 && v >= 2) {
        str(encodeIntset(ints));
        return { typeCode: RdbType.SET_INTSET, body: sink.finish() };
      }
      writeLen(sink, value.value.length);
      for (const e of value.value) str(e);
      return { typeCode: RdbType.SET, body: sink.finish() };
    }
    case 'zset':
      writeLen(sink, value.value.length);
      for (const { member, score } of value.value) {
        str(member);
        if (v >= 8) sink.f64le(score);
        else writeAsciiDouble(sink, score);
      }
      return { typeCode: v >= 8 ? RdbType.ZSET_2 : RdbType.ZSET, body: sink.finish() };
    case 'hash':
      return encodeHash(sink, value.value, v, str);
    case 'stream':
      return encodeStream(sink, value.value, v, str);
    case 'module':
      if (v < 8) throw new RdbUnencodableError(`module values need RDB 8+, target is ${v}`);
      writeLenBig(sink, value.value.moduleId);
      sink.bytes(value.value.body);
      return { typeCode: RdbType.MODULE_2, body: sink.finish() };
  }
}

/** The values as int64s when every one is a canonical integer, else undefined. */
function asIntegers(values: readonly Buffer[]): bigint[] | undefined {
  const out: bigint[] = [];
  for (const m of values) {
    const n = canonicalInt(m);
    if (n === undefined) return undefined;
    out.push(n);
  }
  return out;
}

function writeQuicklist2(
  sink: ByteSink,
  items: readonly Buffer[],
  strOpts: StringWriteOptions,
): void {
  const nodes: Array<{ container: number; bytes: Buffer }> = [];
  let lp: ListpackBuilder | undefined;
  const flush = (): void => {
    if (lp !== undefined && lp.count > 0) {
      nodes.push({ container: QuicklistContainer.PACKED, bytes: lp.finish() });
    }
    lp = undefined;
  };
  for (const item of items) {
    if (item.length >= PLAIN_NODE_THRESHOLD) {
      flush();
      nodes.push({ container: QuicklistContainer.PLAIN, bytes: item });
      continue;
    }
    lp ??= new ListpackBuilder();
    lp.addString(item);
    if (lp.byteLength >= LIST_NODE_BYTES) flush();
  }
  flush();
  writeLen(sink, nodes.length);
  for (const node of nodes) {
    writeLen(sink, node.container);
    writeString(sink, node.bytes, strOpts);
  }
}

function encodeHash(
  sink: ByteSink,
  entries: readonly HashEntry[],
  v: number,
  str: (s: Uint8Array) => void,
): EncodedValue {
  const withTtl = entries.some((e) => e.expireAtMs !== undefined);
  if (!withTtl) {
    writeLen(sink, entries.length);
    for (const e of entries) {
      str(e.field);
      str(e.value);
    }
    return { typeCode: RdbType.HASH, body: sink.finish() };
  }
  for (const e of entries) {
    const t = e.expireAtMs;
    if (t !== undefined && (!Number.isInteger(t) || t < 0 || t > MAX_FIELD_EXPIRY)) {
      throw new RdbUnencodableError(`hash field expiry ${t} is outside 0..2^48-1`);
    }
  }
  if (v >= VALKEY_RDB_VERSION) {
    // Valkey HASH_2: field, value, absolute int64 expiry with -1 for "none".
    writeLen(sink, entries.length);
    for (const e of entries) {
      str(e.field);
      str(e.value);
      sink.i64le(BigInt(e.expireAtMs ?? -1));
    }
    return { typeCode: RdbType.HASH_METADATA_PRE_GA, body: sink.finish() };
  }
  if (v < 12) {
    throw new RdbUnencodableError(
      `hash field expirations need Redis RDB 12 (7.4+) or Valkey 80, target is ${v}`,
    );
  }
  // Redis HASH_METADATA: TTLs relative to the smallest one, +1 so that 0 can mean "none".
  let min = Number.POSITIVE_INFINITY;
  for (const e of entries) if (e.expireAtMs !== undefined) min = Math.min(min, e.expireAtMs);
  sink.i64le(BigInt(min));
  writeLen(sink, entries.length);
  for (const e of entries) {
    writeLen(sink, e.expireAtMs === undefined ? 0 : e.expireAtMs - min + 1);
    str(e.field);
    str(e.value);
  }
  return { typeCode: RdbType.HASH_METADATA, body: sink.finish() };
}

function cmpId(a: StreamId, b: StreamId): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1;
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  return 0;
}

function writeLenId(sink: ByteSink, id: StreamId): void {
  writeLenBig(sink, id.ms);
  writeLenBig(sink, id.seq);
}

function encodeStream(
  sink: ByteSink,
  stream: StreamValue,
  v: number,
  str: (s: Uint8Array) => void,
): EncodedValue {
  if (v < 9) throw new RdbUnencodableError(`streams need RDB 9+, target is ${v}`);
  const typeCode =
    v >= 11
      ? RdbType.STREAM_LISTPACKS_3
      : v === 10
        ? RdbType.STREAM_LISTPACKS_2
        : RdbType.STREAM_LISTPACKS;
  // Deleted entries are gone for clients; they are not written back.
  const live = stream.entries.filter((e) => !e.deleted);
  for (let i = 1; i < live.length; i++) {
    if (cmpId(live[i - 1]!.id, live[i]!.id) >= 0) {
      throw new RdbUnencodableError('stream entries must be in strictly increasing ID order');
    }
  }
  const nodes: StreamEntry[][] = [];
  for (let i = 0; i < live.length; i += STREAM_NODE_ENTRIES) {
    nodes.push(live.slice(i, i + STREAM_NODE_ENTRIES));
  }
  writeLen(sink, nodes.length);
  for (const node of nodes) {
    const master = node[0]!.id;
    const key = Buffer.allocUnsafe(16);
    key.writeBigUInt64BE(master.ms, 0);
    key.writeBigUInt64BE(master.seq, 8);
    str(key);
    str(encodeStreamNode(node, master));
  }
  writeLen(sink, live.length);
  const newest = live.at(-1)?.id;
  const lastId = newest !== undefined && cmpId(newest, stream.lastId) > 0 ? newest : stream.lastId;
  writeLenId(sink, lastId);
  if (typeCode >= RdbType.STREAM_LISTPACKS_2) {
    writeLenId(sink, stream.firstId ?? live[0]?.id ?? { ms: 0n, seq: 0n });
    writeLenId(sink, stream.maxDeletedId ?? { ms: 0n, seq: 0n });
    writeLenBig(sink, stream.entriesAdded ?? BigInt(live.length));
  }
  writeLen(sink, stream.groups.length);
  for (const g of stream.groups) {
    str(g.name);
    writeLenId(sink, g.lastId);
    if (typeCode >= RdbType.STREAM_LISTPACKS_2)
      writeLenBig(sink, g.entriesRead ?? INVALID_ENTRIES_READ);
    writeLen(sink, g.pending.length);
    for (const p of g.pending) {
      writeRawId(sink, p.id);
      sink.i64le(BigInt(p.deliveryTime));
      writeLen(sink, p.deliveryCount);
    }
    writeLen(sink, g.consumers.length);
    for (const c of g.consumers) {
      str(c.name);
      sink.i64le(BigInt(c.seenTime));
      if (typeCode >= RdbType.STREAM_LISTPACKS_3) sink.i64le(BigInt(c.activeTime ?? c.seenTime));
      writeLen(sink, c.pending.length);
      for (const id of c.pending) writeRawId(sink, id);
    }
  }
  return { typeCode, body: sink.finish() };
}

function writeRawId(sink: ByteSink, id: StreamId): void {
  sink.u64be(id.ms).u64be(id.seq);
}

/** One stream listpack: master entry (fields of the first entry), then delta-encoded entries. */
function encodeStreamNode(node: readonly StreamEntry[], master: StreamId): Buffer {
  const lp = new ListpackBuilder(256);
  const masterFields = node[0]!.fields.map(([f]) => f);
  lp.addInt(node.length).addInt(0).addInt(masterFields.length);
  for (const f of masterFields) lp.addString(f);
  lp.addInt(0);
  for (const e of node) {
    const same =
      e.fields.length === masterFields.length &&
      e.fields.every(([f], i) => f.equals(masterFields[i]!));
    lp.addInt(same ? STREAM_ITEM_FLAG_SAMEFIELDS : 0);
    lp.addInt(e.id.ms - master.ms).addInt(e.id.seq - master.seq);
    if (same) {
      for (const [, value] of e.fields) lp.addString(value);
    } else {
      lp.addInt(e.fields.length);
      for (const [f, value] of e.fields) lp.addString(f).addString(value);
    }
    // lp-count: elements of this entry before it, so Redis can walk the node backwards.
    lp.addInt(same ? e.fields.length + 3 : e.fields.length * 2 + 4);
  }
  return lp.finish();
}
