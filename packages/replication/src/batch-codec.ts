/**
 * The wire form of an {@link OpBatch}: one MessagePack map per message (docs/replication-internals.md,
 * "Operations"). Binary fields (keys, members, values, DUMP payloads) are MessagePack `bin`, tags
 * and decimal numbers are `str`, integers are `int`.
 *
 * The common case is written and read by `batch-msgpack.ts`, specialised to this shape; the
 * generic MessagePack decoder reads whatever it does not take (and gives the precise error).
 *
 * Decoding is strict, because a batch is applied to a region's primary: every field must be
 * present with its type, `v` must be 1, kinds must be known, tags must be `encodeHlc()` strings
 * and no field may be added. Anything else, including random bytes, is a {@link BadBatchError};
 * the decoder never throws anything else.
 */
import { Decoder } from '@msgpack/msgpack';
import { isValidName } from '@georep/core';
import { FIELDS, readBatch, writeBatch } from './batch-msgpack.js';
import type { ElementType, Op, OpBatch, Tag } from './ops.js';
import { BadBatchError } from './transport-errors.js';

/** The format of an `encodeHlc()` string (`decodeHlc` accepts exactly these). */
const TAG = /^\d{15}\.\d{6}\.[a-z0-9-]+$/;
/** A counter contribution: what INCRBY / INCRBYFLOAT leave in Redis, as a decimal string. */
const DECIMAL = /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$/;
const ELEMENT_TYPES: ReadonlySet<string> = new Set<ElementType>(['hash', 'set', 'zset']);

/**
 * Maps are small (an op has at most 8 fields, `ob` one entry per region), so a large map length
 * is garbage; refusing it early keeps random input from allocating.
 */
const decoder = new Decoder({ maxMapLength: 64, maxExtLength: 0 });

/**
 * Encodes `batch` for the stream. The batch is checked with the same rules as
 * {@link decodeBatch} first, so a producer bug fails here rather than on every peer. Only the
 * documented fields are written (others are left out), in a fixed order, so equal batches
 * encode to equal bytes.
 *
 * @throws {BadBatchError} when `batch` does not have the documented shape.
 */
export function encodeBatch(batch: OpBatch): Uint8Array {
  // writeBatch reads only the documented fields, so a batch that passes the checks is written as
  // it is; checkBatch's copy is only needed for its errors.
  return writeBatch(isWellFormed(batch) ? batch : checkBatch(batch, false));
}

/**
 * True when {@link checkBatch} would accept `batch` as it is: the same rules, without building a
 * checked copy or an error (the capturing agent encodes every batch it publishes). False leaves it
 * to checkBatch, which names what is wrong.
 */
function isWellFormed(batch: OpBatch): boolean {
  if (!isMap(batch) || !has(batch, BATCH_FIELDS) || batch.v !== 1) return false;
  if (typeof batch.origin !== 'string' || !isValidName(batch.origin)) return false;
  if (!isInt(batch.seq, 0) || !Array.isArray(batch.ops)) return false;
  for (const op of batch.ops) if (!isWellFormedOp(op)) return false;
  return true;
}

function isWellFormedOp(op: Op): boolean {
  if (!isMap(op)) return false;
  const fields = FIELDS.get(op.kind);
  if (fields === undefined || !has(op, fields)) return false;
  if (!isInt(op.db, op.kind === 'flush' ? -1 : 0) || op.db > 0xffff) return false;
  if (typeof op.tag !== 'string' || !TAG.test(op.tag)) return false;
  if (op.kind === 'flush') return true;
  if (!(op.key instanceof Uint8Array)) return false;
  switch (op.kind) {
    case 'value': {
      if (op.dump !== null && !(op.dump instanceof Uint8Array)) return false;
      if (!isInt(op.pttl, 0) || !isMap(op.ob)) return false;
      for (const [region, contribution] of Object.entries(op.ob)) {
        if (!isValidName(region) || !isDecimal(contribution)) return false;
      }
      return true;
    }
    case 'counter':
      return isDecimal(op.cum);
    case 'expire':
      return isInt(op.at, 0) && isTagOrEmpty(op.prev);
    case 'elements':
      return (
        typeof op.type === 'string' &&
        ELEMENT_TYPES.has(op.type) &&
        Array.isArray(op.add) &&
        op.add.every((p) => isPair(p) && p[1] instanceof Uint8Array) &&
        Array.isArray(op.rem) &&
        op.rem.every((p) => isPair(p) && isTagOrEmpty(p[1]))
      );
    default:
      return false;
  }
}

const BATCH_FIELDS = ['v', 'origin', 'seq', 'ops'];

const has = (m: object, fields: readonly string[]): boolean =>
  fields.every((f) => Object.hasOwn(m, f));
const isInt = (v: unknown, min: number): boolean =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isDecimal = (v: unknown): boolean => typeof v === 'string' && DECIMAL.test(v);
const isTagOrEmpty = (v: unknown): boolean => typeof v === 'string' && (v === '' || TAG.test(v));
const isPair = (p: unknown): p is [unknown, unknown] =>
  Array.isArray(p) && p.length === 2 && p[0] instanceof Uint8Array;

/**
 * Decodes and validates one message of a region's stream.
 *
 * The binary fields of the result are `Buffer`s viewing `bytes` (no copy): keep `bytes`
 * unchanged while the batch is in use.
 *
 * @throws {BadBatchError} (`replication.bad-batch`) for anything that is not a valid batch,
 * saying which field is wrong and why.
 */
export function decodeBatch(bytes: Uint8Array): OpBatch {
  // Decode from a Buffer view so every binary field is a Buffer: ioredis sends Buffers as they
  // are, while it would stringify a plain Uint8Array.
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const batch = readBatch(buf);
  if (batch !== undefined) return batch;
  let raw: unknown;
  try {
    raw = decoder.decode(buf);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new BadBatchError('', `not MessagePack (${reason})`, { cause: err });
  }
  return checkBatch(raw, true);
}

/**
 * Validates `raw` as a batch and rebuilds it from its documented fields only. `strict` also
 * refuses undocumented fields (decoding); encoding just leaves them out.
 */
function checkBatch(raw: unknown, strict: boolean): OpBatch {
  const m = record(raw, '', ['v', 'origin', 'seq', 'ops'], strict);
  if (m.v !== 1) throw new BadBatchError('v', `unsupported version ${show(m.v)} (expected 1)`);
  const origin = m.origin;
  if (typeof origin !== 'string' || !isValidName(origin)) {
    throw new BadBatchError('origin', `expected a region name, got ${show(origin)}`);
  }
  const seq = integer(m.seq, 'seq', 0);
  if (!Array.isArray(m.ops))
    throw new BadBatchError('ops', `expected an array, got ${show(m.ops)}`);
  const ops = m.ops.map((op: unknown, i) => checkOp(op, `ops[${i}]`, strict));
  return { v: 1, origin, seq, ops };
}

function checkOp(raw: unknown, path: string, strict: boolean): Op {
  if (!isMap(raw)) throw new BadBatchError(path, `expected a map, got ${show(raw)}`);
  const kind = raw.kind;
  switch (kind) {
    case 'value': {
      const m = record(raw, path, ['kind', 'db', 'key', 'tag', 'dump', 'pttl', 'ob'], strict);
      return {
        kind,
        db: db(m.db, `${path}.db`),
        key: bytes(m.key, `${path}.key`),
        tag: tag(m.tag, `${path}.tag`),
        dump: m.dump === null ? null : bytes(m.dump, `${path}.dump`),
        pttl: integer(m.pttl, `${path}.pttl`, 0),
        ob: observed(m.ob, `${path}.ob`),
      };
    }
    case 'counter': {
      const m = record(raw, path, ['kind', 'db', 'key', 'tag', 'cum'], strict);
      return {
        kind,
        db: db(m.db, `${path}.db`),
        key: bytes(m.key, `${path}.key`),
        tag: tag(m.tag, `${path}.tag`),
        cum: decimal(m.cum, `${path}.cum`),
      };
    }
    case 'expire': {
      const m = record(raw, path, ['kind', 'db', 'key', 'tag', 'at', 'prev'], strict);
      return {
        kind,
        db: db(m.db, `${path}.db`),
        key: bytes(m.key, `${path}.key`),
        tag: tag(m.tag, `${path}.tag`),
        at: integer(m.at, `${path}.at`, 0),
        prev: tag(m.prev, `${path}.prev`, true),
      };
    }
    case 'elements': {
      const m = record(raw, path, ['kind', 'db', 'key', 'tag', 'type', 'add', 'rem'], strict);
      if (typeof m.type !== 'string' || !ELEMENT_TYPES.has(m.type)) {
        throw new BadBatchError(`${path}.type`, `expected hash, set or zset, got ${show(m.type)}`);
      }
      return {
        kind,
        db: db(m.db, `${path}.db`),
        key: bytes(m.key, `${path}.key`),
        tag: tag(m.tag, `${path}.tag`),
        type: m.type as ElementType,
        add: pairs(m.add, `${path}.add`, (v, p) => bytes(v, p)),
        rem: pairs(m.rem, `${path}.rem`, (v, p) => tag(v, p, true)),
      };
    }
    case 'flush': {
      const m = record(raw, path, ['kind', 'db', 'tag'], strict);
      return { kind, db: db(m.db, `${path}.db`, -1), tag: tag(m.tag, `${path}.tag`) };
    }
    default:
      throw new BadBatchError(`${path}.kind`, `unknown operation kind ${show(kind)}`);
  }
}

/** A plain map with every field of `fields` (and, when `strict`, nothing else). */
function record(
  raw: unknown,
  path: string,
  fields: string[],
  strict: boolean,
): Record<string, unknown> {
  if (!isMap(raw)) throw new BadBatchError(path, `expected a map, got ${show(raw)}`);
  const m = raw;
  for (const field of fields) {
    if (!Object.hasOwn(m, field)) throw new BadBatchError(at(path, field), 'missing');
  }
  for (const field of strict ? Object.keys(m) : []) {
    if (!fields.includes(field)) throw new BadBatchError(at(path, field), 'unknown field');
  }
  return m;
}

function integer(v: unknown, path: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new BadBatchError(path, `expected an integer >= ${min}, got ${show(v)}`);
  }
  return v;
}

/** A Redis db index; `min` is -1 for flush (FLUSHALL). */
function db(v: unknown, path: string, min = 0): number {
  const n = integer(v, path, min);
  if (n > 0xffff) throw new BadBatchError(path, `db ${n} out of range`);
  return n;
}

function bytes(v: unknown, path: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new BadBatchError(path, `expected bytes, got ${show(v)}`);
  return v;
}

/** An `encodeHlc()` string; `''` (no tag yet) only where `absentOk`. */
function tag(v: unknown, path: string, absentOk = false): Tag {
  if (typeof v !== 'string' || !(TAG.test(v) || (absentOk && v === ''))) {
    throw new BadBatchError(path, `expected an encodeHlc() tag, got ${show(v)}`);
  }
  return v;
}

function decimal(v: unknown, path: string): string {
  if (typeof v !== 'string' || !DECIMAL.test(v)) {
    throw new BadBatchError(path, `expected a decimal string, got ${show(v)}`);
  }
  return v;
}

/** `ob`: region name → decimal counter contribution. */
function observed(v: unknown, path: string): Record<string, string> {
  if (!isMap(v)) throw new BadBatchError(path, `expected a map, got ${show(v)}`);
  const out: Record<string, string> = {};
  for (const [region, contribution] of Object.entries(v)) {
    if (!isValidName(region)) {
      throw new BadBatchError(path, `expected region names as keys, got ${show(region)}`);
    }
    out[region] = decimal(contribution, at(path, region));
  }
  return out;
}

/** An array of `[bytes, T]` pairs. */
function pairs<T>(
  v: unknown,
  path: string,
  second: (v: unknown, path: string) => T,
): Array<[Uint8Array, T]> {
  if (!Array.isArray(v)) throw new BadBatchError(path, `expected an array, got ${show(v)}`);
  return v.map((pair: unknown, i): [Uint8Array, T] => {
    const p = `${path}[${i}]`;
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new BadBatchError(p, `expected a [member, value] pair, got ${show(pair)}`);
    }
    return [bytes(pair[0], `${p}[0]`), second(pair[1], `${p}[1]`)];
  });
}

/** A MessagePack map as decoded: a plain object (not an array, bytes or null). */
function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

const at = (path: string, field: string) => (path === '' ? field : `${path}.${field}`);

/** A short description of a bad value for messages (never the whole value: it may be large). */
function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return typeof v === 'object' ? 'a map' : typeof v;
}
