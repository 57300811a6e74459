/**
 * Encodes RESP commands straight into large output chunks, so that many small commands become
 * one socket write, without a buffer (or a `Buffer.concat`) per command.
 *
 * A caller sizes a command, {@link RespChunkWriter.reserve}s that many bytes, writes them at
 * `buf[pos..]` (with the helpers here, or directly) and advances `pos`. {@link take} hands over
 * everything written since the last call; those bytes are never written again, so the rest of
 * the chunk keeps being filled while they sit in the socket.
 */

/** Size of an output chunk: a socket write carries up to this much (unless one command is larger). */
export const CHUNK_BYTES = 256 * 1024;

/** A bulk string known in advance, e.g. `$7\r\nRESTORE\r\n`. */
export function bulkToken(s: string): Buffer {
  return Buffer.from(`$${Buffer.byteLength(s)}\r\n${s}\r\n`, 'utf8');
}

/** Decimal digits of a non-negative integer. */
export function decimalDigits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Bytes of a bulk string of `n` bytes: `$<n>\r\n<bytes>\r\n`. */
export function bulkSize(n: number): number {
  return 1 + decimalDigits(n) + 2 + n + 2;
}

/** See the module comment. */
export class RespChunkWriter {
  /** The current chunk; commands are written at `pos`. */
  buf: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  pos = 0;
  /** Start of what has not been taken yet in `buf`. */
  #start = 0;
  /** Filled parts of earlier chunks, not taken yet. */
  #sealed: Buffer[] = [];
  #sealedBytes = 0;

  /** Bytes written and not taken yet. */
  get pendingBytes(): number {
    return this.#sealedBytes + this.pos - this.#start;
  }

  /** Makes room for `n` more bytes at `pos` (a new chunk when the current one is too full). */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.#seal();
    this.buf = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, n));
    this.pos = 0;
    this.#start = 0;
  }

  /** Everything written since the last call, in order; the writer goes on after it. */
  take(): Buffer[] {
    this.#seal();
    const out = this.#sealed;
    this.#sealed = [];
    this.#sealedBytes = 0;
    return out;
  }

  /** Forgets everything written and not taken yet. */
  discard(): void {
    this.#sealed = [];
    this.#sealedBytes = 0;
    this.#start = this.pos;
  }

  #seal(): void {
    if (this.pos > this.#start) {
      this.#sealed.push(this.buf.subarray(this.#start, this.pos));
      this.#sealedBytes += this.pos - this.#start;
      this.#start = this.pos;
    }
  }

  /** `*<argc>\r\n` (room must be reserved). */
  arrayHeader(argc: number): void {
    this.buf[this.pos++] = 0x2a;
    this.decimal(argc);
    this.crlf();
  }

  /** `$<n>\r\n`, the header of a bulk string of `n` bytes (room must be reserved). */
  bulkHeader(n: number): void {
    this.buf[this.pos++] = 0x24;
    this.decimal(n);
    this.crlf();
  }

  /** A whole bulk string (room must be reserved). */
  bulk(b: Uint8Array): void {
    this.bulkHeader(b.length);
    this.bytes(b);
    this.crlf();
  }

  /** A non-negative integer as a bulk string (room must be reserved). */
  bulkDecimal(n: number): void {
    this.bulkHeader(decimalDigits(n));
    this.decimal(n);
    this.crlf();
  }

  /** Raw bytes (room must be reserved). */
  bytes(b: Uint8Array): void {
    const n = b.length;
    const buf = this.buf;
    let at = this.pos;
    if (n <= 16) {
      // Short keys and tokens: a loop beats the call into a native copy.
      for (let i = 0; i < n; i++) buf[at++] = b[i]!;
    } else {
      buf.set(b, at);
      at += n;
    }
    this.pos = at;
  }

  crlf(): void {
    this.buf[this.pos++] = 0x0d;
    this.buf[this.pos++] = 0x0a;
  }

  /** A non-negative integer in decimal (room must be reserved). */
  decimal(n: number): void {
    const buf = this.buf;
    if (n < 10) {
      buf[this.pos++] = 0x30 + n;
      return;
    }
    const end = this.pos + decimalDigits(n);
    let at = end;
    while (n >= 10) {
      const q = Math.floor(n / 10);
      buf[--at] = 0x30 + (n - q * 10);
      n = q;
    }
    buf[--at] = 0x30 + n;
    this.pos = end;
  }

  /** A command of strings (UTF-8) and buffers, as an array of bulk strings. */
  command(args: ReadonlyArray<string | Buffer>): void {
    let total = 1 + decimalDigits(args.length) + 2;
    for (const a of args) {
      total += bulkSize(typeof a === 'string' ? Buffer.byteLength(a) : a.length);
    }
    this.reserve(total);
    this.arrayHeader(args.length);
    for (const a of args) {
      if (typeof a === 'string') {
        const n = Buffer.byteLength(a);
        this.bulkHeader(n);
        this.pos += this.buf.write(a, this.pos, n, 'utf8');
        this.crlf();
      } else {
        this.bulk(a);
      }
    }
  }
}
