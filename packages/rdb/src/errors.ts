/**
 * Typed errors of the RDB codec.
 *
 * Every problem with the input bytes surfaces as a subclass of {@link RdbError}, itself a
 * `GeorepError`, so callers can branch on `code` or on the class. Each error carries the byte
 * `offset` (from the start of the file or payload) where the problem was seen, both as a readonly
 * field and in `details`, because "corrupt at byte 1234567" is what a person debugging a
 * snapshot needs first.
 */
import { GeorepError } from '@georep/core';
import type { GeorepErrorOptions } from '@georep/core';

/** Options of every {@link RdbError}: the usual georep options plus the byte offset. */
export interface RdbErrorOptions extends GeorepErrorOptions {
  /** Byte offset of the problem, from the start of the file or DUMP payload. */
  offset: number;
}

/** Base class of every RDB codec error; `offset` says where in the input it happened. */
export class RdbError extends GeorepError {
  override name = 'RdbError';
  /** Byte offset of the problem, from the start of the file or DUMP payload. */
  readonly offset: number;

  constructor(code: `rdb.${string}`, message: string, options: RdbErrorOptions) {
    super(code, message, {
      ...options,
      details: { ...options.details, offset: options.offset },
    });
    this.offset = options.offset;
  }
}

/** The input ended before the structure it announced was complete. */
export class RdbTruncatedError extends RdbError {
  override name = 'RdbTruncatedError';
  constructor(message: string, options: RdbErrorOptions) {
    super('rdb.truncated', message, {
      hint: 'The file or payload is incomplete; fetch it again (a transfer was probably cut short).',
      ...options,
    });
  }
}

/** The stored CRC64 does not match the bytes: the data was damaged after it was written. */
export class RdbChecksumError extends RdbError {
  override name = 'RdbChecksumError';
  /** CRC64 stored in the input. */
  readonly expected: bigint;
  /** CRC64 computed over the bytes actually read. */
  readonly actual: bigint;

  constructor(expected: bigint, actual: bigint, options: RdbErrorOptions) {
    super(
      'rdb.bad-checksum',
      `CRC64 mismatch: stored 0x${expected.toString(16).padStart(16, '0')}, computed 0x${actual
        .toString(16)
        .padStart(16, '0')}`,
      {
        hint: 'The snapshot is damaged; take or download a fresh one.',
        ...options,
        details: {
          ...options.details,
          expected: `0x${expected.toString(16)}`,
          actual: `0x${actual.toString(16)}`,
        },
      },
    );
    this.expected = expected;
    this.actual = actual;
  }
}

/** The file does not start with `REDIS` or `VALKEY`: it is not an RDB file at all. */
export class RdbBadMagicError extends RdbError {
  override name = 'RdbBadMagicError';
  constructor(message: string, options: RdbErrorOptions) {
    super('rdb.bad-magic', message, {
      hint: 'Check that the file is an RDB snapshot (it must start with REDIS or VALKEY).',
      ...options,
    });
  }
}

/** The RDB version (header or DUMP footer) is outside what this codec understands. */
export class RdbUnsupportedVersionError extends RdbError {
  override name = 'RdbUnsupportedVersionError';
  /** The version found in the input. */
  readonly version: number;

  constructor(version: number, message: string, options: RdbErrorOptions) {
    super('rdb.unsupported-version', message, {
      hint: 'This codec reads Redis RDB versions 1-12 and Valkey 80.',
      ...options,
      details: { ...options.details, version },
    });
    this.version = version;
  }
}

/** A type byte or opcode that no supported Redis/Valkey version defines (or that is refused). */
export class RdbUnknownTypeError extends RdbError {
  override name = 'RdbUnknownTypeError';
  /** The offending type byte or opcode. */
  readonly typeCode: number;

  constructor(typeCode: number, message: string, options: RdbErrorOptions) {
    super('rdb.unknown-type', message, {
      ...options,
      details: { ...options.details, typeCode },
    });
    this.typeCode = typeCode;
  }
}

/** The bytes are structurally invalid (bad length prefix, broken listpack, impossible count...). */
export class RdbCorruptError extends RdbError {
  override name = 'RdbCorruptError';
  constructor(message: string, options: RdbErrorOptions) {
    super('rdb.corrupt', message, options);
  }
}

/** A single record (one key with its value) is larger than the configured limit. */
export class RdbRecordTooLargeError extends RdbError {
  override name = 'RdbRecordTooLargeError';
  constructor(message: string, options: RdbErrorOptions) {
    super('rdb.record-too-large', message, {
      hint: 'Raise maxRecordBytes if the snapshot really holds values this large.',
      ...options,
    });
  }
}

/**
 * The writer was asked for something the chosen target version cannot represent (for example
 * hash field expirations for a target older than RDB 12). Not an input error, so no offset.
 */
export class RdbUnencodableError extends GeorepError {
  override name = 'RdbUnencodableError';
  constructor(message: string, options: GeorepErrorOptions = {}) {
    super('rdb.unencodable', message, options);
  }
}
