/**
 * A growable output buffer for the encoders. Appending to one buffer that doubles when full
 * avoids allocating a Buffer per element (a listpack of a million members would otherwise
 * create a million tiny Buffers and a huge concat).
 */
export class ByteSink {
  #buf: Buffer;
  #len = 0;

  constructor(initialCapacity = 256) {
    this.#buf = Buffer.allocUnsafe(Math.max(16, initialCapacity));
  }

  /** Number of bytes written so far. */
  get length(): number {
    return this.#len;
  }

  #reserve(n: number): void {
    const needed = this.#len + n;
    if (needed <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < needed) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  u8(v: number): this {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  u16le(v: number): this {
    this.#reserve(2);
    this.#buf.writeUInt16LE(v, this.#len);
    this.#len += 2;
    return this;
  }

  u32le(v: number): this {
    this.#reserve(4);
    this.#buf.writeUInt32LE(v, this.#len);
    this.#len += 4;
    return this;
  }

  u32be(v: number): this {
    this.#reserve(4);
    this.#buf.writeUInt32BE(v, this.#len);
    this.#len += 4;
    return this;
  }

  i64le(v: bigint): this {
    this.#reserve(8);
    this.#buf.writeBigInt64LE(v, this.#len);
    this.#len += 8;
    return this;
  }

  u64be(v: bigint): this {
    this.#reserve(8);
    this.#buf.writeBigUInt64BE(v, this.#len);
    this.#len += 8;
    return this;
  }

  f64le(v: number): this {
    this.#reserve(8);
    this.#buf.writeDoubleLE(v, this.#len);
    this.#len += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  /** Overwrites a u32 LE already written (headers whose value is known only at the end). */
  patchU32le(at: number, v: number): void {
    this.#buf.writeUInt32LE(v, at);
  }

  /** Overwrites a u16 LE already written. */
  patchU16le(at: number, v: number): void {
    this.#buf.writeUInt16LE(v, at);
  }

  /** The bytes written, as a view (no copy). The sink must not be reused afterwards. */
  finish(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}
