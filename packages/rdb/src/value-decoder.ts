/**
 * Decodes one value body (the bytes after the key, or after the type byte in a DUMP payload)
 * for every type code of Redis RDB 1-12 and Valkey 80.
 *
 * Compact encodings (ziplist, listpack, intset, zipmap) are expanded into the same logical shape
 * as their hashtable/skiplist counterparts, so callers see one shape per Redis type whatever the
 * server chose to store.
 */
import { decodeIntsetStrings } from './intset.js';
import { decodeListpack, decodeListpackStrings } from './listpack.js';
import { decodeModuleId, readModuleBody } from './module-value.js';
import { decodeStream } from './stream-decoder.js';
import { decodeZiplist, decodeZiplistStrings } from './ziplist.js';
import { decodeZipmap } from './zipmap.js';
import { QuicklistContainer, RdbType } from './constants.js';
import { elementToBigInt, elementToBuffer } from './blob-reader.js';
import { RdbCorruptError, RdbUnknownTypeError } from './errors.js';
import { parseScore } from './cursor.js';
import type { CompactElement } from './blob-reader.js';
import type { Blob, RdbCursor } from './cursor.js';
import type { HashEntry, RdbValue, RdbValueType, ZsetEntry } from './types.js';

/** Which fork wrote the data: decides what type 22/23 mean. */
export type RdbFlavor = 'redis' | 'valkey';

/** A decoded value with the name of the encoding it was stored in. */
export interface DecodedValue {
  value: RdbValue;
  encoding: string;
}

/** Encoding names per type code, for reports (they follow Redis's OBJECT ENCODING names). */
const ENCODING_NAMES: Record<number, string> = {
  [RdbType.STRING]: 'string',
  [RdbType.LIST]: 'linkedlist',
  [RdbType.SET]: 'hashtable',
  [RdbType.ZSET]: 'skiplist',
  [RdbType.HASH]: 'hashtable',
  [RdbType.ZSET_2]: 'skiplist',
  [RdbType.MODULE_2]: 'module',
  [RdbType.HASH_ZIPMAP]: 'zipmap',
  [RdbType.LIST_ZIPLIST]: 'ziplist',
  [RdbType.SET_INTSET]: 'intset',
  [RdbType.ZSET_ZIPLIST]: 'ziplist',
  [RdbType.HASH_ZIPLIST]: 'ziplist',
  [RdbType.LIST_QUICKLIST]: 'quicklist',
  [RdbType.STREAM_LISTPACKS]: 'stream',
  [RdbType.HASH_LISTPACK]: 'listpack',
  [RdbType.ZSET_LISTPACK]: 'listpack',
  [RdbType.LIST_QUICKLIST_2]: 'quicklist2',
  [RdbType.STREAM_LISTPACKS_2]: 'stream',
  [RdbType.SET_LISTPACK]: 'listpack',
  [RdbType.STREAM_LISTPACKS_3]: 'stream',
  [RdbType.HASH_METADATA_PRE_GA]: 'hashtable-ex',
  [RdbType.HASH_LISTPACK_EX_PRE_GA]: 'listpack-ex',
  [RdbType.HASH_METADATA]: 'hashtable-ex',
  [RdbType.HASH_LISTPACK_EX]: 'listpack-ex',
};

/** Whether `typeCode` is a value type this codec can decode for the given fork. */
export function isKnownValueType(typeCode: number, flavor: RdbFlavor): boolean {
  if (typeCode === RdbType.MODULE_PRE_GA) return false;
  // Valkey 9 only defines 22 (HASH_2) among the codes Redis added after 21.
  if (flavor === 'valkey' && typeCode > RdbType.HASH_METADATA_PRE_GA) return false;
  return ENCODING_NAMES[typeCode] !== undefined;
}

/**
 * Decodes the value of type `typeCode` at the cursor.
 *
 * @throws RdbUnknownTypeError for a type byte no supported version defines.
 * @throws RdbCorruptError / RdbTruncatedError for malformed data.
 */
export function decodeValue(
  cur: RdbCursor,
  typeCode: number,
  flavor: RdbFlavor,
  typeOffset: number,
): DecodedValue {
  assertKnownValueType(typeCode, flavor, typeOffset);
  const encoding = ENCODING_NAMES[typeCode]!;
  return { value: decodeByType(cur, typeCode, flavor), encoding };
}

/** Throws {@link RdbUnknownTypeError} unless {@link isKnownValueType}. */
export function assertKnownValueType(
  typeCode: number,
  flavor: RdbFlavor,
  typeOffset: number,
): void {
  if (!isKnownValueType(typeCode, flavor)) {
    const why =
      typeCode === RdbType.MODULE_PRE_GA
        ? 'module values from Redis 4.0 release candidates (type 6) are not supported'
        : `unknown value type ${typeCode}`;
    throw new RdbUnknownTypeError(typeCode, why, { offset: typeOffset });
  }
}

/** Redis type of each value type code (the `type` field of records). */
const TYPE_NAMES: Record<number, RdbValueType> = {
  [RdbType.STRING]: 'string',
  [RdbType.LIST]: 'list',
  [RdbType.SET]: 'set',
  [RdbType.ZSET]: 'zset',
  [RdbType.HASH]: 'hash',
  [RdbType.ZSET_2]: 'zset',
  [RdbType.MODULE_2]: 'module',
  [RdbType.HASH_ZIPMAP]: 'hash',
  [RdbType.LIST_ZIPLIST]: 'list',
  [RdbType.SET_INTSET]: 'set',
  [RdbType.ZSET_ZIPLIST]: 'zset',
  [RdbType.HASH_ZIPLIST]: 'hash',
  [RdbType.LIST_QUICKLIST]: 'list',
  [RdbType.STREAM_LISTPACKS]: 'stream',
  [RdbType.HASH_LISTPACK]: 'hash',
  [RdbType.ZSET_LISTPACK]: 'zset',
  [RdbType.LIST_QUICKLIST_2]: 'list',
  [RdbType.STREAM_LISTPACKS_2]: 'stream',
  [RdbType.SET_LISTPACK]: 'set',
  [RdbType.STREAM_LISTPACKS_3]: 'stream',
  [RdbType.HASH_METADATA_PRE_GA]: 'hash',
  [RdbType.HASH_LISTPACK_EX_PRE_GA]: 'hash',
  [RdbType.HASH_METADATA]: 'hash',
  [RdbType.HASH_LISTPACK_EX]: 'hash',
};

/** Encoding name of a known value type code. */
export function encodingName(typeCode: number): string {
  return ENCODING_NAMES[typeCode]!;
}

/** Redis type of a known value type code. */
export function typeName(typeCode: number): RdbValueType {
  return TYPE_NAMES[typeCode]!;
}

/**
 * Steps over a value body without decoding it, checking only its framing (lengths, string
 * headers, quicklist containers): what is needed to find where the value ends. The inside of
 * compact encodings, LZF data and scores are not looked at. It stops at the same "need more
 * data" points as {@link decodeValue}.
 *
 * @returns false, with the cursor untouched, for types it does not walk (streams and modules);
 *   decode those with {@link decodeValue} instead.
 */
export function skipValue(cur: RdbCursor, typeCode: number, flavor: RdbFlavor): boolean {
  switch (typeCode) {
    case RdbType.STRING:
    case RdbType.HASH_ZIPMAP:
    case RdbType.LIST_ZIPLIST:
    case RdbType.SET_INTSET:
    case RdbType.SET_LISTPACK:
    case RdbType.ZSET_ZIPLIST:
    case RdbType.ZSET_LISTPACK:
    case RdbType.HASH_ZIPLIST:
    case RdbType.HASH_LISTPACK:
    case RdbType.HASH_LISTPACK_EX_PRE_GA:
      cur.skipString();
      return true;
    case RdbType.HASH_LISTPACK_EX:
      cur.skip(8);
      cur.skipString();
      return true;
    case RdbType.LIST:
    case RdbType.SET:
    case RdbType.LIST_QUICKLIST:
      skipStrings(cur, cur.len());
      return true;
    case RdbType.HASH:
      skipStrings(cur, cur.len() * 2);
      return true;
    case RdbType.ZSET:
    case RdbType.ZSET_2: {
      const n = cur.len();
      for (let i = 0; i < n; i++) {
        cur.skipString();
        if (typeCode === RdbType.ZSET) cur.skipAsciiDouble();
        else cur.skip(8);
      }
      return true;
    }
    case RdbType.LIST_QUICKLIST_2: {
      const nodes = cur.len();
      for (let i = 0; i < nodes; i++) {
        const at = cur.offset;
        const container = cur.len();
        if (container !== QuicklistContainer.PLAIN && container !== QuicklistContainer.PACKED) {
          throw cur.corrupt(`invalid quicklist container ${container}`, at);
        }
        cur.skipString();
      }
      return true;
    }
    case RdbType.HASH_METADATA_PRE_GA:
    case RdbType.HASH_METADATA: {
      const valkey = typeCode === RdbType.HASH_METADATA_PRE_GA && flavor === 'valkey';
      if (typeCode === RdbType.HASH_METADATA) cur.skip(8);
      const n = cur.len();
      for (let i = 0; i < n; i++) {
        if (!valkey) cur.len();
        cur.skipString();
        cur.skipString();
        if (valkey) cur.skip(8);
      }
      return true;
    }
    default:
      return false;
  }
}

function skipStrings(cur: RdbCursor, n: number): void {
  for (let i = 0; i < n; i++) cur.skipString();
}

/**
 * {@link decodeValue} without the type check (the caller has done it) and without the encoding
 * name: what the streaming parser calls once per key.
 */
export function decodeValueBody(cur: RdbCursor, typeCode: number, flavor: RdbFlavor): RdbValue {
  return decodeByType(cur, typeCode, flavor);
}

function decodeByType(cur: RdbCursor, typeCode: number, flavor: RdbFlavor): RdbValue {
  switch (typeCode) {
    case RdbType.STRING:
      return { type: 'string', value: cur.string() };
    case RdbType.LIST:
      return { type: 'list', value: readStrings(cur) };
    case RdbType.SET:
      return { type: 'set', value: readStrings(cur) };
    case RdbType.ZSET:
    case RdbType.ZSET_2: {
      const n = cur.len();
      const out: ZsetEntry[] = [];
      for (let i = 0; i < n; i++) {
        const member = cur.string();
        const score = typeCode === RdbType.ZSET ? cur.asciiDouble() : cur.f64le();
        out.push({ member, score });
      }
      return { type: 'zset', value: out };
    }
    case RdbType.HASH: {
      const n = cur.len();
      const out: HashEntry[] = [];
      for (let i = 0; i < n; i++) {
        const field = cur.string();
        out.push({ field, value: cur.string() });
      }
      return { type: 'hash', value: out };
    }
    case RdbType.MODULE_2: {
      const moduleId = cur.lenBig();
      const { name, encodingVersion } = decodeModuleId(moduleId);
      const body = readModuleBody(cur);
      return { type: 'module', value: { moduleId, moduleName: name, encodingVersion, body } };
    }
    case RdbType.HASH_ZIPMAP:
      return {
        type: 'hash',
        value: decodeZipmap(cur.blob()).map(([field, value]) => ({ field, value })),
      };
    case RdbType.LIST_ZIPLIST: {
      const out: Buffer[] = [];
      decodeZiplistStrings(cur.blob(), out);
      return { type: 'list', value: out };
    }
    case RdbType.SET_INTSET: {
      const out: Buffer[] = [];
      decodeIntsetStrings(cur.blob(), out);
      return { type: 'set', value: out };
    }
    case RdbType.SET_LISTPACK: {
      const out: Buffer[] = [];
      decodeListpackStrings(cur.blob(), out);
      return { type: 'set', value: out };
    }
    case RdbType.ZSET_ZIPLIST:
    case RdbType.ZSET_LISTPACK: {
      const blob = cur.blob();
      const els = typeCode === RdbType.ZSET_ZIPLIST ? decodeZiplist(blob) : decodeListpack(blob);
      return { type: 'zset', value: pairsToZset(els, blob) };
    }
    case RdbType.HASH_ZIPLIST:
    case RdbType.HASH_LISTPACK: {
      const blob = cur.blob();
      const els: Buffer[] = [];
      if (typeCode === RdbType.HASH_ZIPLIST) decodeZiplistStrings(blob, els);
      else decodeListpackStrings(blob, els);
      return { type: 'hash', value: pairsToHash(els, blob) };
    }
    case RdbType.LIST_QUICKLIST:
    case RdbType.LIST_QUICKLIST_2:
      return { type: 'list', value: readQuicklist(cur, typeCode) };
    case RdbType.STREAM_LISTPACKS:
    case RdbType.STREAM_LISTPACKS_2:
    case RdbType.STREAM_LISTPACKS_3:
      return { type: 'stream', value: decodeStream(cur, typeCode) };
    case RdbType.HASH_METADATA_PRE_GA:
      return {
        type: 'hash',
        value: flavor === 'valkey' ? readValkeyHash2(cur) : readHashMetadata(cur, false),
      };
    case RdbType.HASH_METADATA:
      return { type: 'hash', value: readHashMetadata(cur, true) };
    case RdbType.HASH_LISTPACK_EX_PRE_GA:
    case RdbType.HASH_LISTPACK_EX: {
      // The GA form starts with the smallest field expiry; the 7.4-rc form does not.
      if (typeCode === RdbType.HASH_LISTPACK_EX) cur.i64le();
      const blob = cur.blob();
      return { type: 'hash', value: triplesToHash(decodeListpack(blob), blob) };
    }
    default:
      // isKnownValueType() guards every caller.
      throw new RdbUnknownTypeError(typeCode, `unknown value type ${typeCode}`, {
        offset: cur.offset,
      });
  }
}

function readStrings(cur: RdbCursor): Buffer[] {
  const n = cur.len();
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(cur.string());
  return out;
}

function readQuicklist(cur: RdbCursor, typeCode: number): Buffer[] {
  const nodes = cur.len();
  const out: Buffer[] = [];
  for (let i = 0; i < nodes; i++) {
    if (typeCode === RdbType.LIST_QUICKLIST) {
      decodeZiplistStrings(cur.blob(), out);
      continue;
    }
    const at = cur.offset;
    const container = cur.len();
    if (container === QuicklistContainer.PLAIN) {
      // A PLAIN node holds one element too big for a listpack.
      out.push(cur.string());
    } else if (container === QuicklistContainer.PACKED) {
      decodeListpackStrings(cur.blob(), out);
    } else {
      throw cur.corrupt(`invalid quicklist container ${container}`, at);
    }
  }
  return out;
}

function pairsToZset(els: CompactElement[], blob: Blob): ZsetEntry[] {
  if (els.length % 2 !== 0) throw blobCorrupt(blob, 'odd number of zset elements');
  const out: ZsetEntry[] = [];
  for (let i = 0; i < els.length; i += 2) {
    const raw = els[i + 1]!;
    let score: number | undefined;
    if (Buffer.isBuffer(raw)) score = parseScore(raw.toString('latin1'));
    else score = Number(raw);
    if (score === undefined) throw blobCorrupt(blob, 'invalid zset score');
    out.push({ member: elementToBuffer(els[i]!), score });
  }
  return out;
}

function pairsToHash(els: Buffer[], blob: Blob): HashEntry[] {
  if (els.length % 2 !== 0) throw blobCorrupt(blob, 'odd number of hash elements');
  const out: HashEntry[] = [];
  for (let i = 0; i < els.length; i += 2) out.push({ field: els[i]!, value: els[i + 1]! });
  return out;
}

/** Listpack of (field, value, ttl) triplets, ttl absolute Unix ms, 0 = no expiry. */
function triplesToHash(els: CompactElement[], blob: Blob): HashEntry[] {
  if (els.length % 3 !== 0) throw blobCorrupt(blob, 'hash listpack-ex not made of triplets');
  const out: HashEntry[] = [];
  for (let i = 0; i < els.length; i += 3) {
    const ttl = elementToBigInt(els[i + 2]!);
    if (ttl === undefined || ttl < 0n) throw blobCorrupt(blob, 'invalid field expiry');
    const entry: HashEntry = {
      field: elementToBuffer(els[i]!),
      value: elementToBuffer(els[i + 1]!),
    };
    if (ttl !== 0n) entry.expireAtMs = Number(ttl);
    out.push(entry);
  }
  return out;
}

/**
 * Redis 7.4 hashtable hash with field expirations. GA (type 24) stores each TTL relative to a
 * leading minimum (`expireAt = ttl + min - 1`, 0 = none); the pre-GA form stores it absolute.
 */
function readHashMetadata(cur: RdbCursor, relative: boolean): HashEntry[] {
  const minExpire = relative ? cur.i64le() : 0;
  const n = cur.len();
  const out: HashEntry[] = [];
  for (let i = 0; i < n; i++) {
    const ttl = cur.len();
    const field = cur.string();
    const entry: HashEntry = { field, value: cur.string() };
    if (ttl !== 0) entry.expireAtMs = relative ? ttl + minExpire - 1 : ttl;
    out.push(entry);
  }
  return out;
}

/** Valkey 9 HASH_2: (field, value, int64 LE expiry) with -1 meaning no expiry. */
function readValkeyHash2(cur: RdbCursor): HashEntry[] {
  const n = cur.len();
  const out: HashEntry[] = [];
  for (let i = 0; i < n; i++) {
    const field = cur.string();
    const entry: HashEntry = { field, value: cur.string() };
    const expiry = cur.i64le();
    if (expiry !== -1) entry.expireAtMs = expiry;
    out.push(entry);
  }
  return out;
}

function blobCorrupt(blob: Blob, message: string): RdbCorruptError {
  return new RdbCorruptError(message, { offset: blob.origin });
}
