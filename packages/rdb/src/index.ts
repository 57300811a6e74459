/**
 * `@georep/rdb`: a streaming codec for Redis/Valkey RDB files and DUMP payloads.
 *
 * No network and no dependencies beyond `@georep/core`: parse snapshots from any byte stream,
 * write snapshots and RESTORE payloads for a chosen target version, CRC64-Jones and LZF.
 */
export { parseRdb, parseRdbBatches, parseRdbFile, parseRdbFileBatches } from './parser.js';
export { RdbWriter, buildRdb } from './writer.js';
export { dumpPayloadFromRaw, encodeDumpPayload, parseDumpPayload } from './dump.js';
export { encodeValue } from './value-encoder.js';
export { Crc64, crc64, writeCrc64 } from './crc64.js';
export { lzfCompress, lzfDecompress } from './lzf.js';
export { isTypeLoadable } from './compatibility.js';
export { decodeModuleId, encodeModuleId } from './module-value.js';
export {
  RdbType,
  RdbOpcode,
  MAX_REDIS_RDB_VERSION,
  VALKEY_RDB_VERSION,
  isSupportedVersion,
  magicForVersion,
} from './constants.js';
export {
  RdbError,
  RdbTruncatedError,
  RdbChecksumError,
  RdbBadMagicError,
  RdbUnsupportedVersionError,
  RdbUnknownTypeError,
  RdbCorruptError,
  RdbRecordTooLargeError,
  RdbUnencodableError,
} from './errors.js';
export { formatStreamId } from './stream-id.js';

export type {
  ParseRdbOptions,
  ParseRdbDecodedOptions,
  ParseRdbRawOptions,
  ParseRdbFileOptions,
} from './parser.js';
export type { ByteSource } from './byte-window.js';
export type { RdbWriterOptions, KeyWriteOptions, RdbKeySpec, RdbFileSpec } from './writer.js';
export type { EncodeDumpOptions, ParseDumpOptions, ParsedDumpPayload } from './dump.js';
export type { EncodeValueOptions, EncodedValue } from './value-encoder.js';
export type { RdbFlavor } from './value-decoder.js';
export type { RdbMagic } from './constants.js';
export type { RdbErrorOptions } from './errors.js';
export type {
  RdbValue,
  RdbValueType,
  ZsetEntry,
  HashEntry,
  StreamId,
  StreamEntry,
  StreamPendingEntry,
  StreamConsumer,
  StreamGroup,
  StreamValue,
  ModuleValue,
  RdbRecord,
  RdbHeaderRecord,
  RdbAuxRecord,
  RdbSelectDbRecord,
  RdbResizeDbRecord,
  RdbSlotInfoRecord,
  RdbFunctionRecord,
  RdbModuleAuxRecord,
  RdbKeyRecord,
  RdbKeyFields,
  RdbRawKeyRecord,
  RdbRawRecord,
  RdbEofRecord,
} from './types.js';
