/**
 * CRC-64/Jones exactly as Redis and Valkey compute it for RDB files and DUMP payloads.
 *
 * Parameters: reflected polynomial 0x95ac9329ac4bc9b5 (normal form 0xad93d23594c935a9), input and
 * output reflected, initial value 0 (Redis calls `crc64(0, ...)`, whatever the pycrc comment in its
 * source says) and no final xor. Check value for "123456789" is 0xe9c6d914c4b8d9ca.
 *
 * The 64-bit register is kept as two unsigned 32-bit halves: JavaScript bitwise operators work on
 * 32 bits, and BigInt arithmetic per byte would be two orders of magnitude slower. Bulk data goes
 * through slicing-by-16 (sixteen 256-entry tables, one lookup per input byte but no serial
 * dependency between the sixteen lookups of a block). On little-endian hosts the bulk is read as
 * aligned 32-bit words through an `Int32Array` view instead of byte by byte.
 */

/** Low and high halves of the reflected Jones polynomial. */
const POLY_LO = 0xac4bc9b5;
const POLY_HI = 0x95ac9329;

/** Number of slicing tables: bytes consumed per step of the bulk loop. */
const SLICES = 16;
/** Sixteen tables of 256 entries each, table k at [k * 256, (k + 1) * 256). */
const TABLE_LO = new Uint32Array(SLICES * 256);
const TABLE_HI = new Uint32Array(SLICES * 256);
/** Below this many bytes the word loop's setup (a typed-array view) is not worth it. */
const MIN_BULK = 64;
/** Whether a 32-bit word read through an `Int32Array` has its first byte in the low bits. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function buildTables(): void {
  for (let n = 0; n < 256; n++) {
    let lo = n;
    let hi = 0;
    for (let bit = 0; bit < 8; bit++) {
      const carry = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (carry !== 0) {
        lo = (lo ^ POLY_LO) >>> 0;
        hi = (hi ^ POLY_HI) >>> 0;
      }
    }
    TABLE_LO[n] = lo;
    TABLE_HI[n] = hi;
  }
  // Table k advances a byte through k further zero bytes, which is what lets slicing-by-16 handle
  // sixteen input bytes with independent lookups.
  for (let k = 1; k < SLICES; k++) {
    for (let n = 0; n < 256; n++) {
      const prevLo = TABLE_LO[(k - 1) * 256 + n]!;
      const prevHi = TABLE_HI[(k - 1) * 256 + n]!;
      const idx = prevLo & 0xff;
      TABLE_LO[k * 256 + n] = (((prevLo >>> 8) | (prevHi << 24)) ^ TABLE_LO[idx]!) >>> 0;
      TABLE_HI[k * 256 + n] = ((prevHi >>> 8) ^ TABLE_HI[idx]!) >>> 0;
    }
  }
}
buildTables();

/**
 * Incremental CRC-64/Jones. Feed bytes with {@link Crc64.update} in any number of pieces; the
 * result of {@link Crc64.digest} only depends on the concatenation.
 *
 * @example
 * ```ts
 * const crc = new Crc64();
 * crc.update(Buffer.from('12345'));
 * crc.update(Buffer.from('6789'));
 * crc.digest(); // 0xe9c6d914c4b8d9can
 * ```
 */
export class Crc64 {
  /**
   * The register's low and high halves. Kept in a typed array rather than two number fields: a
   * field that holds a small integer first and a value of 2^31 or more later changes
   * representation, and V8 then kept deoptimising `update` on every call (one parse saw it
   * deoptimised about 800 times, which made the CRC three to four times slower than it is).
   */
  readonly #state = new Uint32Array(2);

  /** Adds `bytes` to the running checksum and returns `this` for chaining. */
  update(bytes: Uint8Array): this {
    const state = this.#state;
    let lo = state[0]!;
    let hi = state[1]!;
    const len = bytes.length;
    let i = 0;
    if (LITTLE_ENDIAN && len >= MIN_BULK) {
      // Bytewise up to a 4-byte boundary, then whole 16-byte blocks as aligned words.
      const head = (4 - (bytes.byteOffset & 3)) & 3;
      for (; i < head; i++) {
        const idx = (lo ^ bytes[i]!) & 0xff;
        lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx]!;
        hi = (hi >>> 8) ^ TABLE_HI[idx]!;
      }
      const words = ((len - head) >>> 4) << 2;
      const w = new Int32Array(bytes.buffer, bytes.byteOffset + head, words);
      for (let j = 0; j < words; j += 4) {
        const u = lo ^ w[j]!;
        const v = hi ^ w[j + 1]!;
        const x = w[j + 2]!;
        const y = w[j + 3]!;
        const a = 3840 + (u & 0xff);
        const b = 3584 + ((u >>> 8) & 0xff);
        const c = 3328 + ((u >>> 16) & 0xff);
        const d = 3072 + (u >>> 24);
        const e = 2816 + (v & 0xff);
        const f = 2560 + ((v >>> 8) & 0xff);
        const g = 2304 + ((v >>> 16) & 0xff);
        const h = 2048 + (v >>> 24);
        const k = 1792 + (x & 0xff);
        const l = 1536 + ((x >>> 8) & 0xff);
        const m = 1280 + ((x >>> 16) & 0xff);
        const n = 1024 + (x >>> 24);
        const o = 768 + (y & 0xff);
        const p = 512 + ((y >>> 8) & 0xff);
        const q = 256 + ((y >>> 16) & 0xff);
        const r = y >>> 24;
        lo =
          TABLE_LO[a]! ^
          TABLE_LO[b]! ^
          TABLE_LO[c]! ^
          TABLE_LO[d]! ^
          TABLE_LO[e]! ^
          TABLE_LO[f]! ^
          TABLE_LO[g]! ^
          TABLE_LO[h]! ^
          TABLE_LO[k]! ^
          TABLE_LO[l]! ^
          TABLE_LO[m]! ^
          TABLE_LO[n]! ^
          TABLE_LO[o]! ^
          TABLE_LO[p]! ^
          TABLE_LO[q]! ^
          TABLE_LO[r]!;
        hi =
          TABLE_HI[a]! ^
          TABLE_HI[b]! ^
          TABLE_HI[c]! ^
          TABLE_HI[d]! ^
          TABLE_HI[e]! ^
          TABLE_HI[f]! ^
          TABLE_HI[g]! ^
          TABLE_HI[h]! ^
          TABLE_HI[k]! ^
          TABLE_HI[l]! ^
          TABLE_HI[m]! ^
          TABLE_HI[n]! ^
          TABLE_HI[o]! ^
          TABLE_HI[p]! ^
          TABLE_HI[q]! ^
          TABLE_HI[r]!;
      }
      i = head + words * 4;
    }
    while (i < len) {
      const idx = (lo ^ bytes[i]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx]!;
      hi = (hi >>> 8) ^ TABLE_HI[idx]!;
      i++;
    }
    state[0] = lo;
    state[1] = hi;
    return this;
  }

  /** The checksum of everything fed so far, as an unsigned 64-bit value. */
  digest(): bigint {
    return (BigInt(this.#state[1]!) << 32n) | BigInt(this.#state[0]!);
  }

  /** The checksum as the 8 little-endian bytes that RDB files and DUMP payloads store. */
  digestBytes(): Buffer {
    const out = Buffer.allocUnsafe(8);
    out.writeUInt32LE(this.#state[0]!, 0);
    out.writeUInt32LE(this.#state[1]!, 4);
    return out;
  }
}

/** Up to this many bytes a plain byte loop beats slicing-by-16 (whose setup is then not paid back). */
const SHORT_INPUT = 256;

/**
 * Computes the CRC64 of `bytes[start, end)` and writes it little-endian at `out[outAt, outAt + 8)`,
 * allocating nothing: the hot path of building RESTORE payloads in place (one call per key).
 */
export function writeCrc64(
  bytes: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  outAt: number,
): void {
  let lo = 0;
  let hi = 0;
  if (end - start > SHORT_INPUT) {
    const digest = new Crc64().update(bytes.subarray(start, end)).digestBytes();
    out.set(digest, outAt);
    return;
  }
  for (let i = start; i < end; i++) {
    const idx = (lo ^ bytes[i]!) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx]!) >>> 0;
    hi = ((hi >>> 8) ^ TABLE_HI[idx]!) >>> 0;
  }
  out[outAt] = lo & 0xff;
  out[outAt + 1] = (lo >>> 8) & 0xff;
  out[outAt + 2] = (lo >>> 16) & 0xff;
  out[outAt + 3] = lo >>> 24;
  out[outAt + 4] = hi & 0xff;
  out[outAt + 5] = (hi >>> 8) & 0xff;
  out[outAt + 6] = (hi >>> 16) & 0xff;
  out[outAt + 7] = hi >>> 24;
}

/** One-shot CRC-64/Jones of `bytes` (Redis flavour: init 0, no final xor). */
export function crc64(bytes: Uint8Array): bigint {
  return new Crc64().update(bytes).digest();
}
