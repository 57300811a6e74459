/**
 * Incremental parser of the replication command stream: what a primary sends its replicas after
 * `+CONTINUE` or after the RDB of a full sync.
 *
 * The stream is the primary's replication backlog verbatim: RESP2 arrays of bulk strings
 * (`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n`), and in principle inline commands (a text line, as
 * Redis's own replica accepts: `processInlineBuffer`). The replication offset counts *bytes* of
 * this stream, so every parsed command carries the exact number of wire bytes it took, and the
 * sum over all commands is the distance between two offsets. A bare `\n` or `\r\n` is an empty
 * inline command: it carries no argv but its bytes still count, exactly as a Redis replica counts
 * them (its `reploff` is "bytes of query buffer processed").
 *
 * Memory: bytes are appended into one window that grows geometrically, so a value arriving in many
 * small reads costs O(n) copying, not O(n²). Each completed command is copied out once; its argv
 * entries are views of that copy, so keeping a command keeps only its own bytes alive.
 */
import { GeorepError } from '@georep/core';

/** One command of the replication stream. */
export interface RespCommand {
  /** The arguments, command name first, as sent (not upper-cased). Empty for a bare newline. */
  argv: Buffer[];
  /** Exact number of stream bytes this command took, header and CRLFs included. */
  bytes: number;
  /** True when the command was an inline (text line) command rather than a RESP array. */
  inline: boolean;
}

/** Limits of {@link RespStreamParser}. */
export interface RespStreamParserOptions {
  /**
   * Largest bulk string accepted. Default 512 MiB, Redis's default `proto-max-bulk-len`; raise it
   * when the primary's `proto-max-bulk-len` is larger.
   */
  maxBulkBytes?: number;
  /** Largest argument count accepted. Default 2^31 - 1, what Redis itself allows. */
  maxArgs?: number;
}

/** The stream is not RESP: a garbled link, or we are not talking to a replication peer. */
export class RespProtocolError extends GeorepError {
  override name = 'RespProtocolError';
  /** Stream offset (bytes fed to the parser before the problem). */
  readonly streamOffset: number;
  constructor(message: string, streamOffset: number) {
    super('capture.protocol-error', `replication stream: ${message} at byte ${streamOffset}`, {
      hint: 'the link delivered bytes that are not RESP; capture reconnects and resumes with PSYNC',
      details: { streamOffset },
    });
    this.streamOffset = streamOffset;
  }
}

/** A header line (`*N`, `$N`) longer than this means we are not reading RESP any more. */
const MAX_HEADER_LINE = 64;
/** Redis's `PROTO_INLINE_MAX_SIZE`: an inline command longer than this is a protocol error. */
const MAX_INLINE_LINE = 64 * 1024;
const INITIAL_CAPACITY = 16 * 1024;
const SHRINK_ABOVE = 1024 * 1024;
const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;
const MINUS = 0x2d;
const ZERO = 0x30;

/**
 * Splits a byte stream into replication commands. Feed received chunks with {@link push}, then call
 * {@link next} until it returns `undefined`. The split points of the input never change the
 * result.
 *
 * @example
 * ```ts
 * const parser = new RespStreamParser();
 * socket.on('data', (chunk) => {
 *   parser.push(chunk);
 *   for (let cmd = parser.next(); cmd !== undefined; cmd = parser.next()) offset += cmd.bytes;
 * });
 * ```
 */
export class RespStreamParser {
  readonly #maxBulk: number;
  readonly #maxArgs: number;
  #buf: Buffer = Buffer.allocUnsafe(INITIAL_CAPACITY);
  /** Bytes of `#buf` holding data. */
  #len = 0;
  /** Start of the command being parsed. */
  #start = 0;
  /** Parse cursor (always `>= #start`). */
  #pos = 0;
  /** Bytes dropped from the front of the window so far: turns window indexes into stream bytes. */
  #consumedBefore = 0;
  /** Argument count of the array being parsed; -1 before its header is read. */
  #argc = -1;
  /** Length of the bulk string whose body we wait for; -1 before its `$` header is read. */
  #bulkLen = -1;
  /** `[start, end)` pairs of the parsed arguments, relative to `#start`. */
  #spans: number[] = [];

  constructor(options: RespStreamParserOptions = {}) {
    this.#maxBulk = options.maxBulkBytes ?? 512 * 1024 * 1024;
    this.#maxArgs = options.maxArgs ?? 2 ** 31 - 1;
  }

  /** Bytes received but not yet returned as part of a command. */
  get bufferedBytes(): number {
    return this.#len - this.#start;
  }

  /** Appends received bytes (copied: the caller may reuse `chunk`). */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#reserve(chunk.length);
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
  }

  /**
   * The next complete command, or `undefined` until more bytes arrive.
   *
   * @throws RespProtocolError (`capture.protocol-error`) when the bytes are not RESP; the parser
   *   is unusable afterwards (the stream position is lost).
   */
  next(): RespCommand | undefined {
    if (this.#argc < 0) {
      if (this.#pos >= this.#len) return undefined;
      if (this.#buf[this.#pos] !== STAR) return this.#inline();
      const count = this.#headerNumber(STAR);
      if (count === undefined) return undefined;
      if (count > this.#maxArgs) this.#fail(`too many arguments (${count})`);
      // `*0` and `*-1` are empty commands: Redis skips them, but their bytes are in the offset.
      if (count <= 0) return this.#complete(false);
      this.#argc = count;
    }
    while (this.#spans.length < this.#argc * 2) {
      if (this.#bulkLen < 0) {
        if (this.#pos >= this.#len) return undefined;
        if (this.#buf[this.#pos] !== DOLLAR) this.#fail("expected '$' (bulk string)");
        const len = this.#headerNumber(DOLLAR);
        if (len === undefined) return undefined;
        if (len < 0 || len > this.#maxBulk) this.#fail(`invalid bulk length ${len}`);
        this.#bulkLen = len;
        // Make room for the whole body now, so a large value is copied into place only once.
        this.#reserve(len + 2 - (this.#len - this.#pos));
      }
      const len = this.#bulkLen;
      if (this.#len - this.#pos < len + 2) return undefined;
      if (this.#buf[this.#pos + len] !== CR || this.#buf[this.#pos + len + 1] !== LF) {
        this.#fail('bulk string not terminated by CRLF');
      }
      this.#spans.push(this.#pos - this.#start, this.#pos - this.#start + len);
      this.#pos += len + 2;
      this.#bulkLen = -1;
    }
    return this.#complete(false);
  }

  /** Reads `<prefix><integer>\r\n` at the cursor; `undefined` when the line is incomplete. */
  #headerNumber(prefix: number): number | undefined {
    const nl = this.#buf.indexOf(LF, this.#pos);
    if (nl < 0 || nl >= this.#len) {
      if (this.#len - this.#pos > MAX_HEADER_LINE) this.#fail('header line too long');
      return undefined;
    }
    if (nl - this.#pos > MAX_HEADER_LINE) this.#fail('header line too long');
    const end = nl > this.#pos && this.#buf[nl - 1] === CR ? nl - 1 : nl;
    // Digit by digit: two headers per argument make this the parser's hottest loop.
    const buf = this.#buf;
    let i = this.#pos + 1;
    const negative = i < end && buf[i] === MINUS;
    if (negative) i++;
    let n = 0;
    if (i >= end) n = NaN;
    for (; i < end; i++) {
      const digit = buf[i]! - ZERO;
      if (digit < 0 || digit > 9) {
        n = NaN;
        break;
      }
      n = n * 10 + digit;
    }
    if (Number.isNaN(n)) {
      const text = buf.toString('latin1', this.#pos + 1, end);
      this.#fail(`bad ${String.fromCharCode(prefix)} header ${JSON.stringify(text)}`);
    }
    this.#pos = nl + 1;
    return negative ? -n : n;
  }

  /** An inline command: one text line split on blanks (no quoting, which replication never uses). */
  #inline(): RespCommand | undefined {
    const nl = this.#buf.indexOf(LF, this.#pos);
    if (nl < 0 || nl >= this.#len) {
      if (this.#len - this.#pos > MAX_INLINE_LINE) this.#fail('inline command too long');
      return undefined;
    }
    const end = nl > this.#pos && this.#buf[nl - 1] === CR ? nl - 1 : nl;
    let i = this.#pos;
    while (i < end) {
      while (i < end && isBlank(this.#buf[i])) i++;
      if (i >= end) break;
      const from = i;
      while (i < end && !isBlank(this.#buf[i])) i++;
      this.#spans.push(from - this.#start, i - this.#start);
    }
    this.#pos = nl + 1;
    return this.#complete(true);
  }

  /** Copies out the command `[#start, #pos)` and resets the state for the next one. */
  #complete(inline: boolean): RespCommand {
    const bytes = this.#pos - this.#start;
    // One allocation for the copy (Buffer.from of a subarray made a view first).
    const own = Buffer.allocUnsafe(bytes);
    this.#buf.copy(own, 0, this.#start, this.#pos);
    const spans = this.#spans;
    const argv: Buffer[] = new Array<Buffer>(spans.length / 2);
    for (let i = 0; i < spans.length; i += 2) argv[i / 2] = own.subarray(spans[i], spans[i + 1]);
    this.#start = this.#pos;
    this.#argc = -1;
    this.#bulkLen = -1;
    spans.length = 0;
    if (this.#start === this.#len) {
      // Everything consumed: restart at the front instead of sliding the window later.
      this.#consumedBefore += this.#len;
      this.#start = this.#pos = this.#len = 0;
      // Give back the room a huge value needed; the next one grows it again if it must.
      if (this.#buf.length > SHRINK_ABOVE) this.#buf = Buffer.allocUnsafe(INITIAL_CAPACITY);
    }
    return { argv, bytes, inline };
  }

  /** Ensures `extra` more bytes fit after `#len`, sliding out consumed bytes or growing. */
  #reserve(extra: number): void {
    if (extra <= 0 || this.#len + extra <= this.#buf.length) return;
    const live = this.#len - this.#start;
    const need = live + extra;
    let target = this.#buf;
    if (need > this.#buf.length) {
      let cap = this.#buf.length;
      while (cap < need) cap *= 2;
      target = Buffer.allocUnsafe(cap);
    }
    this.#buf.copy(target, 0, this.#start, this.#len);
    this.#buf = target;
    this.#consumedBefore += this.#start;
    this.#pos -= this.#start;
    this.#len = live;
    this.#start = 0;
  }

  #fail(message: string): never {
    throw new RespProtocolError(message, this.#consumedBefore + this.#pos);
  }
}

function isBlank(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === CR;
}
