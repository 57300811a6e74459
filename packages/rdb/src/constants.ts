/**
 * Numeric constants of the RDB format: value type codes, opcodes, and which versions exist.
 *
 * Names follow Redis's `rdb.h` so that they can be looked up there. Where the two forks give the
 * same byte different meanings (type 22, 23), both names are listed and the decoder picks by
 * the file's magic and version.
 */

/** Value type codes (the byte before a key). */
export const RdbType = {
  STRING: 0,
  LIST: 1,
  SET: 2,
  ZSET: 3,
  HASH: 4,
  ZSET_2: 5,
  MODULE_PRE_GA: 6,
  MODULE_2: 7,
  HASH_ZIPMAP: 9,
  LIST_ZIPLIST: 10,
  SET_INTSET: 11,
  ZSET_ZIPLIST: 12,
  HASH_ZIPLIST: 13,
  LIST_QUICKLIST: 14,
  STREAM_LISTPACKS: 15,
  HASH_LISTPACK: 16,
  ZSET_LISTPACK: 17,
  LIST_QUICKLIST_2: 18,
  STREAM_LISTPACKS_2: 19,
  SET_LISTPACK: 20,
  STREAM_LISTPACKS_3: 21,
  /** Redis 7.4 release candidates: HASH_METADATA_PRE_GA. Valkey 9 (RDB 80): HASH_2. */
  HASH_METADATA_PRE_GA: 22,
  /** Redis 7.4 release candidates only. */
  HASH_LISTPACK_EX_PRE_GA: 23,
  HASH_METADATA: 24,
  HASH_LISTPACK_EX: 25,
} as const;

/** Valkey's name for type 22 in files with the VALKEY magic (RDB 80). */
export const VALKEY_HASH_2 = 22;

/** Opcodes, read where a type byte is expected. */
export const RdbOpcode = {
  SLOT_INFO: 0xf4,
  FUNCTION2: 0xf5,
  FUNCTION_PRE_GA: 0xf6,
  MODULE_AUX: 0xf7,
  IDLE: 0xf8,
  FREQ: 0xf9,
  AUX: 0xfa,
  RESIZEDB: 0xfb,
  EXPIRETIME_MS: 0xfc,
  EXPIRETIME: 0xfd,
  SELECTDB: 0xfe,
  EOF: 0xff,
} as const;

/** Sub-opcodes inside module values and MODULE_AUX blocks. */
export const ModuleOpcode = {
  EOF: 0,
  SINT: 1,
  UINT: 2,
  FLOAT: 3,
  DOUBLE: 4,
  STRING: 5,
} as const;

/** Container kinds of quicklist 2 nodes (type 18). */
export const QuicklistContainer = { PLAIN: 1, PACKED: 2 } as const;

/** The magic prefixes an RDB file can start with. */
export type RdbMagic = 'REDIS' | 'VALKEY';

/** Newest Redis RDB version this codec reads and writes (Redis 7.4 / 8.0-8.4). */
export const MAX_REDIS_RDB_VERSION = 12;
/** The Valkey 9.0 RDB version (magic `VALKEY080`). */
export const VALKEY_RDB_VERSION = 80;
/** First version whose files end with a CRC64. */
export const FIRST_CHECKSUM_VERSION = 5;

/**
 * Whether `version` is one this codec understands with the given magic: Redis 1-12 under
 * `REDIS`, 80 under `VALKEY` (Valkey forbids the other combinations).
 */
export function isSupportedVersion(magic: RdbMagic, version: number): boolean {
  if (magic === 'VALKEY') return version === VALKEY_RDB_VERSION;
  return version >= 1 && version <= MAX_REDIS_RDB_VERSION;
}

/** The magic a writer uses for `version`: Valkey's scheme starts at 80. */
export function magicForVersion(version: number): RdbMagic {
  return version >= VALKEY_RDB_VERSION ? 'VALKEY' : 'REDIS';
}
