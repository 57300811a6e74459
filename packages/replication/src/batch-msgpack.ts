/**
 * MessagePack written and read for the one shape a batch has (`batch-codec.ts`), without the
 * generic encoder's and decoder's walk over arbitrary values.
 *
 * Why: the generic path built every batch twice (the checked copy, then the encoded bytes) and
 * decoded it twice (the generic objects, then the checked batch). In the capturing agent and in
 * every receiving one this was a large share of the CPU and of the garbage per operation.
 *
 * The bytes are exactly what `encode()` of `@msgpack/msgpack` writes for the checked batch (the
 * same field order, the smallest header of each type), so nothing changes on the wire and agents
 * of either version read each other's batches. The reader accepts exactly the layout the writer
 * produces; for anything else (another encoder's field order, a float, a field that fails a
 * check) it answers `undefined`, and the caller takes the generic path, which decodes what is
 * valid and names the field and reason of what is not.
 */
import { isValidName } from '@georep/core';
import type { Op, OpBatch, Tag } from './ops.js';

const TAG = /^\d{15}\.\d{6}\.[a-z0-9-]+$/;
const DECIMAL = /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$/;
/** The generic decoder's `maxMapLength`. */
const MAX_MAP = 64;

/** A field name as its fixstr bytes. */
const fixstr = (name: string): Buffer => Buffer.from([0xa0 + name.length, ...Buffer.from(name)]);
const K = {
  v: fixstr('v'),
  origin: fixstr('origin'),
  seq: fixstr('seq'),
  ops: fixstr('ops'),
  kind: fixstr('kind'),
  db: fixstr('db'),
  key: fixstr('key'),
  tag: fixstr('tag'),
  dump: fixstr('dump'),
  pttl: fixstr('pttl'),
  ob: fixstr('ob'),
  cum: fixstr('cum'),
  at: fixstr('at'),
  prev: fixstr('prev'),
  type: fixstr('type'),
  add: fixstr('add'),
  rem: fixstr('rem'),
} as const;

/** Writes one batch; the caller has checked it (see `batch-codec.ts`). */
export function writeBatch(batch: OpBatch): Uint8Array {
  const w = new Writer(256 + 128 * batch.ops.length);
  w.mapHeader(4);
  w.raw(K.v);
  w.int(1);
  w.raw(K.origin);
  w.str(batch.origin);
  w.raw(K.seq);
  w.int(batch.seq);
  w.raw(K.ops);
  w.arrayHeader(batch.ops.length);
  for (const op of batch.ops) writeOp(w, op);
  return w.finish();
}

function writeOp(w: Writer, op: Op): void {
  w.mapHeader(FIELDS.get(op.kind)!.length);
  w.raw(K.kind);
  w.str(op.kind);
  w.raw(K.db);
  w.int(op.db);
  if (op.kind === 'flush') {
    w.raw(K.tag);
    w.str(op.tag);
    return;
  }
  w.raw(K.key);
  w.bin(op.key);
  w.raw(K.tag);
  w.str(op.tag);
  switch (op.kind) {
    case 'value': {
      w.raw(K.dump);
      if (op.dump === null) w.nil();
      else w.bin(op.dump);
      w.raw(K.pttl);
      w.int(op.pttl);
      w.raw(K.ob);
      const regions = Object.keys(op.ob);
      w.mapHeader(regions.length);
      for (const region of regions) {
        w.str(region);
        w.str(op.ob[region]!);
      }
      return;
    }
    case 'counter':
      w.raw(K.cum);
      w.str(op.cum);
      return;
    case 'expire':
      w.raw(K.at);
      w.int(op.at);
      w.raw(K.prev);
      w.str(op.prev);
      return;
    case 'elements':
      w.raw(K.type);
      w.str(op.type);
      w.raw(K.add);
      w.arrayHeader(op.add.length);
      for (const [m, v] of op.add) {
        w.arrayHeader(2);
        w.bin(m);
        w.bin(v);
      }
      w.raw(K.rem);
      w.arrayHeader(op.rem.length);
      for (const [m, o] of op.rem) {
        w.arrayHeader(2);
        w.bin(m);
        w.str(o);
      }
      return;
  }
}

/** The fields of each kind, in the order they are written (and, in batch-codec, checked). */
export const FIELDS: ReadonlyMap<string, readonly string[]> = new Map([
  ['value', ['kind', 'db', 'key', 'tag', 'dump', 'pttl', 'ob']],
  ['counter', ['kind', 'db', 'key', 'tag', 'cum']],
  ['expire', ['kind', 'db', 'key', 'tag', 'at', 'prev']],
  ['elements', ['kind', 'db', 'key', 'tag', 'type', 'add', 'rem']],
  ['flush', ['kind', 'db', 'tag']],
]);

/** A growing buffer with MessagePack's smallest header for each value. */
class Writer {
  #buf: Buffer;
  #pos = 0;

  constructor(size: number) {
    this.#buf = Buffer.allocUnsafe(size);
  }

  /** The bytes written, as a plain Uint8Array (what the generic encoder returns). */
  finish(): Uint8Array {
    return new Uint8Array(this.#buf.buffer, this.#buf.byteOffset, this.#pos);
  }

  nil(): void {
    this.#reserve(1);
    this.#buf[this.#pos++] = 0xc0;
  }

  /** A safe integer (the caller checked it). */
  int(n: number): void {
    this.#reserve(9);
    const b = this.#buf;
    if (n >= 0) {
      if (n < 0x80) b[this.#pos++] = n;
      else if (n < 0x100) {
        b[this.#pos++] = 0xcc;
        b[this.#pos++] = n;
      } else if (n < 0x10000) {
        b[this.#pos++] = 0xcd;
        this.#pos = b.writeUInt16BE(n, this.#pos);
      } else if (n < 0x100000000) {
        b[this.#pos++] = 0xce;
        this.#pos = b.writeUInt32BE(n, this.#pos);
      } else {
        b[this.#pos++] = 0xcf;
        this.#pos = b.writeUInt32BE(Math.floor(n / 0x100000000), this.#pos);
        this.#pos = b.writeUInt32BE(n >>> 0, this.#pos);
      }
    } else if (n >= -0x20) {
      b[this.#pos++] = 0xe0 | (n + 0x20);
    } else if (n >= -0x80) {
      b[this.#pos++] = 0xd0;
      this.#pos = b.writeInt8(n, this.#pos);
    } else if (n >= -0x8000) {
      b[this.#pos++] = 0xd1;
      this.#pos = b.writeInt16BE(n, this.#pos);
    } else if (n >= -0x80000000) {
      b[this.#pos++] = 0xd2;
      this.#pos = b.writeInt32BE(n, this.#pos);
    } else {
      b[this.#pos++] = 0xd3;
      this.#pos = b.writeBigInt64BE(BigInt(n), this.#pos);
    }
  }

  /** An ASCII string (tags, names and decimals are; the caller checked them). */
  str(s: string): void {
    const n = s.length;
    this.#reserve(n + 5);
    this.#header(n, 0xa0, 32, 0xd9);
    if (n > 64) {
      this.#pos += this.#buf.write(s, this.#pos, n, 'latin1');
      return;
    }
    // Short strings (tags above all): a loop is several times cheaper than Buffer.write.
    const b = this.#buf;
    let p = this.#pos;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    this.#pos = p;
  }

  /** Bytes already encoded (a field name). */
  raw(v: Buffer): void {
    this.#reserve(v.length);
    const b = this.#buf;
    let p = this.#pos;
    for (let i = 0; i < v.length; i++) b[p++] = v[i]!;
    this.#pos = p;
  }

  bin(v: Uint8Array): void {
    const n = v.length;
    this.#reserve(n + 5);
    this.#header(n, -1, 0, 0xc4);
    this.#buf.set(v, this.#pos);
    this.#pos += n;
  }

  arrayHeader(n: number): void {
    this.#reserve(5);
    if (n < 16) this.#buf[this.#pos++] = 0x90 + n;
    else this.#header(n, -1, 0, -1, 0xdc);
  }

  mapHeader(n: number): void {
    this.#reserve(5);
    if (n < 16) this.#buf[this.#pos++] = 0x80 + n;
    else this.#header(n, -1, 0, -1, 0xde);
  }

  /**
   * The length header of a str, bin, array or map: `fix` + n below `fixMax`, then the 8-, 16- and
   * 32-bit forms (`code8` -1: none, as for arrays and maps; `code16`, `code16 + 1` = 32-bit).
   */
  #header(n: number, fix: number, fixMax: number, code8: number, code16 = code8 + 1): void {
    const b = this.#buf;
    if (n < fixMax) b[this.#pos++] = fix + n;
    else if (code8 >= 0 && n < 0x100) {
      b[this.#pos++] = code8;
      b[this.#pos++] = n;
    } else if (n < 0x10000) {
      b[this.#pos++] = code16;
      this.#pos = b.writeUInt16BE(n, this.#pos);
    } else {
      b[this.#pos++] = code16 + 1;
      this.#pos = b.writeUInt32BE(n, this.#pos);
    }
  }

  #reserve(more: number): void {
    if (this.#pos + more <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.#buf.length, this.#pos + more));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }
}

/**
 * Thrown inside the reader when the input leaves the layout it knows; never escapes. One
 * instance, made once: it is control flow, and a stack per throw would cost more than the read.
 */
const OTHER = new (class NotTheLayout extends Error {})('not the layout writeBatch produces');

/**
 * Reads a batch `writeBatch` wrote, checking every field as `decodeBatch` does. Binary fields
 * are Buffer views of `buf`. Undefined for anything else (see the module comment).
 */
export function readBatch(buf: Buffer): OpBatch | undefined {
  const r = new Reader(buf);
  try {
    if (r.mapHeader() !== 4) return undefined;
    r.key(K.v);
    if (r.int() !== 1) return undefined;
    r.key(K.origin);
    const origin = r.name();
    r.key(K.seq);
    const seq = r.int();
    if (seq < 0) return undefined;
    r.key(K.ops);
    const n = r.arrayHeader();
    const ops: Op[] = [];
    for (let i = 0; i < n; i++) ops.push(readOp(r));
    if (!r.atEnd()) return undefined;
    return { v: 1, origin, seq, ops };
  } catch (err) {
    if (err === OTHER) return undefined;
    throw err;
  }
}

function readOp(r: Reader): Op {
  const fields = r.mapHeader();
  r.key(K.kind);
  const kind = r.ascii();
  if (FIELDS.get(kind)?.length !== fields) throw OTHER;
  r.key(K.db);
  const db = r.int();
  if (db < (kind === 'flush' ? -1 : 0) || db > 0xffff) throw OTHER;
  if (kind === 'flush') {
    r.key(K.tag);
    return { kind, db, tag: r.tag() };
  }
  r.key(K.key);
  const key = r.bin();
  r.key(K.tag);
  const tag = r.tag();
  switch (kind) {
    case 'value': {
      r.key(K.dump);
      const dump = r.nilOrBin();
      r.key(K.pttl);
      const pttl = r.int();
      if (pttl < 0) throw OTHER;
      r.key(K.ob);
      const regions = r.mapHeader();
      if (regions > MAX_MAP) throw OTHER;
      const ob: Record<string, string> = {};
      for (let i = 0; i < regions; i++) {
        const region = r.name();
        ob[region] = r.decimal();
      }
      return { kind, db, key, tag, dump, pttl, ob };
    }
    case 'counter':
      r.key(K.cum);
      return { kind, db, key, tag, cum: r.decimal() };
    case 'expire': {
      r.key(K.at);
      const at = r.int();
      if (at < 0) throw OTHER;
      r.key(K.prev);
      return { kind, db, key, tag, at, prev: r.tag(true) };
    }
    case 'elements': {
      r.key(K.type);
      const type = r.ascii();
      if (type !== 'hash' && type !== 'set' && type !== 'zset') throw OTHER;
      r.key(K.add);
      const add: Array<[Uint8Array, Uint8Array]> = [];
      for (let i = r.arrayHeader(); i > 0; i--) {
        if (r.arrayHeader() !== 2) throw OTHER;
        add.push([r.bin(), r.bin()]);
      }
      r.key(K.rem);
      const rem: Array<[Uint8Array, Tag]> = [];
      for (let i = r.arrayHeader(); i > 0; i--) {
        if (r.arrayHeader() !== 2) throw OTHER;
        rem.push([r.bin(), r.tag(true)]);
      }
      return { kind, db, key, tag, type: type, add, rem };
    }
    default:
      throw OTHER;
  }
}

/** A cursor over one message; every mismatch throws {@link OTHER}. */
class Reader {
  readonly #b: Buffer;
  #pos = 0;

  constructor(b: Buffer) {
    this.#b = b;
  }

  atEnd(): boolean {
    return this.#pos === this.#b.length;
  }

  #byte(): number {
    const v = this.#b[this.#pos++];
    if (v === undefined) throw OTHER;
    return v;
  }

  #u16(): number {
    if (this.#pos + 2 > this.#b.length) throw OTHER;
    const v = this.#b.readUInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  #u32(): number {
    if (this.#pos + 4 > this.#b.length) throw OTHER;
    const v = this.#b.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** One field name, which must be the expected one. */
  key(expected: Buffer): void {
    const b = this.#b;
    const end = this.#pos + expected.length;
    if (end > b.length) throw OTHER;
    for (let i = 0; i < expected.length; i++) if (b[this.#pos + i] !== expected[i]) throw OTHER;
    this.#pos = end;
  }

  /** A safe integer in any of MessagePack's integer forms (not a float). */
  int(): number {
    const c = this.#byte();
    if (c < 0x80) return c;
    if (c >= 0xe0) return c - 0x100;
    let v: number;
    switch (c) {
      case 0xcc:
        return this.#byte();
      case 0xcd:
        return this.#u16();
      case 0xce:
        return this.#u32();
      case 0xcf:
        v = this.#u32() * 0x100000000 + this.#u32();
        break;
      case 0xd0:
        return (this.#byte() << 24) >> 24;
      case 0xd1:
        return (this.#u16() << 16) >> 16;
      case 0xd2:
        return this.#u32() | 0;
      case 0xd3: {
        const hi = this.#u32() | 0;
        v = hi * 0x100000000 + this.#u32();
        break;
      }
      default:
        throw OTHER;
    }
    if (!Number.isSafeInteger(v)) throw OTHER;
    return v;
  }

  #strLength(): number {
    const c = this.#byte();
    if (c >= 0xa0 && c < 0xc0) return c - 0xa0;
    if (c === 0xd9) return this.#byte();
    if (c === 0xda) return this.#u16();
    if (c === 0xdb) return this.#u32();
    throw OTHER;
  }

  /** A str read as latin1: every caller checks it against an ASCII-only pattern or value. */
  ascii(): string {
    const n = this.#strLength();
    const end = this.#pos + n;
    if (end > this.#b.length) throw OTHER;
    const s = this.#b.toString('latin1', this.#pos, end);
    this.#pos = end;
    return s;
  }

  tag(emptyOk = false): Tag {
    const s = this.ascii();
    if (!(TAG.test(s) || (emptyOk && s === ''))) throw OTHER;
    return s;
  }

  name(): string {
    const s = this.ascii();
    if (!isValidName(s)) throw OTHER;
    return s;
  }

  decimal(): string {
    const s = this.ascii();
    if (!DECIMAL.test(s)) throw OTHER;
    return s;
  }

  bin(): Buffer {
    const c = this.#byte();
    const n = c === 0xc4 ? this.#byte() : c === 0xc5 ? this.#u16() : c === 0xc6 ? this.#u32() : -1;
    if (n < 0) throw OTHER;
    const end = this.#pos + n;
    if (end > this.#b.length) throw OTHER;
    const v = this.#b.subarray(this.#pos, end);
    this.#pos = end;
    return v;
  }

  nilOrBin(): Buffer | null {
    if (this.#b[this.#pos] === 0xc0) {
      this.#pos++;
      return null;
    }
    return this.bin();
  }

  arrayHeader(): number {
    const c = this.#byte();
    if (c >= 0x90 && c < 0xa0) return c - 0x90;
    if (c === 0xdc) return this.#u16();
    if (c === 0xdd) return this.#u32();
    throw OTHER;
  }

  mapHeader(): number {
    const c = this.#byte();
    if (c >= 0x80 && c < 0x90) return c - 0x80;
    if (c === 0xde) return this.#u16();
    if (c === 0xdf) return this.#u32();
    throw OTHER;
  }
}
