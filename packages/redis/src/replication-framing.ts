/**
 * The byte-level framing of a full sync, without any I/O, so it can be tested chunk by chunk.
 *
 * What a primary sends a replica is not RESP: status lines (`+OK`, `+FULLRESYNC ...`), bare `\n`
 * keepalives while the fork runs, then one of two payload framings:
 *
 * - disk-based: `$<len>\r\n` and exactly `len` RDB bytes, with no trailing CRLF;
 * - diskless: `$EOF:<40 random chars>\r\n`, the RDB bytes, then the same 40 characters. The length
 *   is not known in advance and the marker may straddle reads, so the last 40 bytes seen are held
 *   back until more bytes prove they are payload, exactly as Redis's own replica and redis-cli do.
 */

/** How the RDB payload of a full sync is delimited. */
export type PayloadFraming =
  { kind: 'length'; length: number } | { kind: 'eof-marker'; marker: Buffer };

/** Length of the random end marker of a diskless transfer (`RDB_EOF_MARK_SIZE`). */
export const EOF_MARKER_LENGTH = 40;

/** A status line can never be this long; more means we are not talking to a replication peer. */
const MAX_LINE_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);
const LF = 0x0a;

/**
 * Parses the bulk preamble line (`$<len>` or `$EOF:<mark>`, CR/LF already removed).
 *
 * @returns the framing, or `undefined` when the line is not a valid preamble.
 */
export function parsePayloadPreamble(line: string): PayloadFraming | undefined {
  if (line.startsWith('$EOF:')) {
    const mark = line.slice(5);
    if (mark.length !== EOF_MARKER_LENGTH) return undefined;
    return { kind: 'eof-marker', marker: Buffer.from(mark, 'latin1') };
  }
  if (!/^\$\d+$/.test(line)) return undefined;
  const length = Number(line.slice(1));
  return Number.isSafeInteger(length) ? { kind: 'length', length } : undefined;
}

/**
 * Splits the handshake part of the stream into lines. Bare `\n` keepalives are skipped; what
 * follows the last line read is handed to the payload decoder with {@link takeRest}.
 */
export class ReplicationLineReader {
  #buf: Buffer = EMPTY;

  /** Appends received bytes. */
  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
  }

  /**
   * The next non-empty line without its CR/LF, or `undefined` until one is complete.
   *
   * @throws RangeError when a line grows past 64 KiB (the peer is not a Redis primary).
   */
  nextLine(): string | undefined {
    for (;;) {
      const nl = this.#buf.indexOf(LF);
      if (nl < 0) {
        if (this.#buf.length > MAX_LINE_BYTES) {
          throw new RangeError(`reply line longer than ${MAX_LINE_BYTES} bytes`);
        }
        return undefined;
      }
      const end = nl > 0 && this.#buf[nl - 1] === 0x0d ? nl - 1 : nl;
      const line = this.#buf.toString('latin1', 0, end);
      this.#buf = this.#buf.subarray(nl + 1);
      // A keepalive is a lone "\n": an empty line. Skip it and look for the next real one.
      if (line !== '') return line;
    }
  }

  /** Removes and returns the bytes buffered after the last line. */
  takeRest(): Buffer {
    const rest = this.#buf;
    this.#buf = EMPTY;
    return rest;
  }
}

/**
 * Extracts the RDB payload from the bytes after the preamble. Feed every received chunk to
 * {@link push}; it returns the payload pieces that are certain (possibly none) and sets
 * {@link done} once the end is seen. Bytes after the end (the command stream of a replica that
 * is not rdb-only) are counted in {@link trailingBytes} and dropped.
 *
 * Memory is constant: at most {@link EOF_MARKER_LENGTH} bytes are held back, and pieces are views
 * of the input chunks rather than copies.
 */
export class RdbPayloadDecoder {
  readonly framing: PayloadFraming;
  #done = false;
  #emitted = 0;
  #trailing = 0;
  /** EOF-marker mode: the last bytes seen, which may be (part of) the marker. */
  #tail: Buffer = EMPTY;

  constructor(framing: PayloadFraming) {
    this.framing = framing;
    if (framing.kind === 'length' && framing.length === 0) this.#done = true;
  }

  /** True once the whole payload has been returned. */
  get done(): boolean {
    return this.#done;
  }

  /** Payload bytes returned so far. */
  get payloadBytes(): number {
    return this.#emitted;
  }

  /** Bytes received after the end of the payload. */
  get trailingBytes(): number {
    return this.#trailing;
  }

  /** Consumes one received chunk and returns the payload bytes it completes, in order. */
  push(chunk: Buffer): Buffer[] {
    if (this.#done) {
      this.#trailing += chunk.length;
      return [];
    }
    const out =
      this.framing.kind === 'length'
        ? this.#pushCounted(chunk, this.framing.length)
        : this.#pushMarked(chunk, this.framing.marker);
    for (const piece of out) this.#emitted += piece.length;
    return out;
  }

  #pushCounted(chunk: Buffer, length: number): Buffer[] {
    const want = length - this.#emitted;
    if (chunk.length < want) return chunk.length === 0 ? [] : [chunk];
    this.#done = true;
    this.#trailing += chunk.length - want;
    return want === 0 ? [] : [chunk.subarray(0, want)];
  }

  #pushMarked(chunk: Buffer, marker: Buffer): Buffer[] {
    const m = EOF_MARKER_LENGTH;
    if (chunk.length === 0) return [];
    // The marker is the last 40 bytes of the whole stream: the primary sends nothing after it
    // until the replica ACKs, and rdb-only clients are disconnected. So after each read only the
    // final 40 bytes need comparing, wherever the read boundaries fell.
    if (chunk.length >= m) {
      const last = chunk.subarray(chunk.length - m);
      const out: Buffer[] = [];
      if (this.#tail.length > 0) out.push(this.#tail);
      if (chunk.length > m) out.push(chunk.subarray(0, chunk.length - m));
      if (last.equals(marker)) {
        this.#done = true;
        this.#tail = EMPTY;
      } else {
        this.#tail = last;
      }
      return out;
    }
    // A short read: the candidate window spans the held tail and this chunk (at most 80 bytes).
    const joined = Buffer.concat([this.#tail, chunk]);
    if (joined.length < m) {
      this.#tail = joined;
      return [];
    }
    const safe = joined.subarray(0, joined.length - m);
    const last = joined.subarray(joined.length - m);
    if (last.equals(marker)) {
      this.#done = true;
      this.#tail = EMPTY;
    } else {
      this.#tail = last;
    }
    return safe.length === 0 ? [] : [safe];
  }
}
