/**
 * Which value types a given target version can load. This is what decides whether raw bytes
 * from a newer server can be RESTOREd into an older one as they are (a Redis 7.2 list is type 18,
 * which Redis 6.2 cannot read even though the data is a plain list).
 */
import { MAX_REDIS_RDB_VERSION, RdbType, VALKEY_RDB_VERSION } from './constants.js';

/** First Redis RDB version whose loader knows each type code. */
const FIRST_REDIS_VERSION: Record<number, number> = {
  [RdbType.STRING]: 1,
  [RdbType.LIST]: 1,
  [RdbType.SET]: 1,
  [RdbType.ZSET]: 1,
  [RdbType.HASH]: 1,
  [RdbType.ZSET_2]: 8,
  [RdbType.MODULE_2]: 8,
  [RdbType.HASH_ZIPMAP]: 2,
  [RdbType.LIST_ZIPLIST]: 2,
  [RdbType.SET_INTSET]: 2,
  [RdbType.ZSET_ZIPLIST]: 2,
  [RdbType.HASH_ZIPLIST]: 4,
  [RdbType.LIST_QUICKLIST]: 7,
  [RdbType.STREAM_LISTPACKS]: 9,
  [RdbType.HASH_LISTPACK]: 10,
  [RdbType.ZSET_LISTPACK]: 10,
  [RdbType.LIST_QUICKLIST_2]: 10,
  [RdbType.STREAM_LISTPACKS_2]: 10,
  [RdbType.SET_LISTPACK]: 11,
  [RdbType.STREAM_LISTPACKS_3]: 11,
  [RdbType.HASH_METADATA]: 12,
  [RdbType.HASH_LISTPACK_EX]: 12,
};

/**
 * Whether a server whose RDB version is `version` can load values of type `typeCode`.
 * Valkey 80 loads every type of RDB 11 plus its own HASH_2 (22), but not Redis 7.4's 24/25.
 * Types 22/23 of Redis 7.4 release candidates are treated as loadable nowhere.
 */
export function isTypeLoadable(typeCode: number, version: number): boolean {
  if (version >= VALKEY_RDB_VERSION) {
    if (typeCode === RdbType.HASH_METADATA_PRE_GA) return true;
    const first = FIRST_REDIS_VERSION[typeCode];
    return first !== undefined && first <= 11;
  }
  const first = FIRST_REDIS_VERSION[typeCode];
  return first !== undefined && first <= version && version <= MAX_REDIS_RDB_VERSION;
}
