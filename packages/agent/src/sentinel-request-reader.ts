/**
 * The Sentinel endpoint's request reader: RESP multibulk (what every client library sends) and
 * inline commands (telnet, `redis-cli` piping). Hand-written rather than redis-parser, which
 * parses replies: it cannot read inline commands, accepts nested types a request must not
 * contain, and buffers a declared 512 MB bulk without a bound.
 *
 * Protocol errors are returned as the text Redis puts after `-ERR Protocol error: `, so the
 * caller can answer exactly as Redis does before closing the connection.
 */
import type { SentinelEndpointLimits } from './sentinel-types.js';

/** Longest inline request or length line, as in Redis (PROTO_INLINE_MAX_SIZE). */
const MAX_LINE_BYTES = 64 * 1024;

/** Limits that apply to the next request; the caller makes them tighter before AUTH, as Redis 7. */
export type RequestLimits = Pick<
  SentinelEndpointLimits,
  'maxArgs' | 'maxBulkBytes' | 'maxRequestBytes'
>;

/** Redis's string2ll: optional minus, no plus, no leading zeros, no spaces. */
function parseLength(text: string): number | null {
  return /^-?(0|[1-9]\d{0,15})$/.test(text) ? Number(text) : null;
}

/**
 * Splits an inline request like Redis's sdssplitargs: whitespace separates, "double quotes" take
 * \n \r \t \b \a \xHH escapes, 'single quotes' take \'. Null on unbalanced quotes.
 */
function splitInlineArgs(line: string): string[] | null {
  const args: string[] = [];
  const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  const escapes: Record<string, string> = { n: '\n', r: '\r', t: '\t', b: '\b', a: '\x07' };
  let i = 0;
  for (;;) {
    while (isSpace(line[i])) i++;
    if (i >= line.length) return args;
    let current = '';
    let quote: '"' | "'" | null = null;
    for (;;) {
      const c = line[i];
      if (quote === null) {
        if (c === undefined || isSpace(c)) break;
        if (c === '"' || c === "'") quote = c;
        else current += c;
        i++;
        continue;
      }
      if (c === undefined) return null;
      const next = line[i + 1];
      if (
        quote === '"' &&
        c === '\\' &&
        next === 'x' &&
        /^[0-9a-f]{2}$/i.test(line.slice(i + 2, i + 4))
      ) {
        current += String.fromCharCode(parseInt(line.slice(i + 2, i + 4), 16));
        i += 4;
      } else if (quote === '"' && c === '\\' && next !== undefined) {
        current += escapes[next] ?? next;
        i += 2;
      } else if (quote === "'" && c === '\\' && next === "'") {
        current += "'";
        i += 2;
      } else if (c === quote) {
        // A closing quote must end the argument: `"a"b` is an error in Redis too.
        if (next !== undefined && !isSpace(next)) return null;
        i++;
        break;
      } else {
        current += c;
        i++;
      }
    }
    args.push(current);
  }
}

/**
 * Finds the LF ending the line that starts at `start`: null when it has not arrived yet,
 * 'too-long' when the line (complete or not) is already over {@link MAX_LINE_BYTES}.
 */
function findLineEnd(buf: Buffer, start: number): number | null | 'too-long' {
  const nl = buf.indexOf(0x0a, start);
  if ((nl === -1 ? buf.length : nl) - start > MAX_LINE_BYTES) return 'too-long';
  return nl === -1 ? null : nl;
}

/** Reads a CRLF-terminated line at `start`: null when incomplete. */
function readLine(buf: Buffer, start: number): { text: string; next: number } | null | 'too-long' {
  const nl = findLineEnd(buf, start);
  if (nl === null || nl === 'too-long') return nl;
  const crlf = nl > start && buf[nl - 1] === 0x0d;
  // Without the CR the LF stays in the text, so the length parse fails as it would in Redis.
  return { text: buf.toString('latin1', start, crlf ? nl - 1 : nl + 1), next: nl + 1 };
}

/**
 * Turns a connection's bytes into commands, incrementally: finished arguments of a half-received
 * request are kept, and bytes are only joined and parsed again once enough have arrived (a
 * newline, or the rest of a bulk), so a client trickling one byte at a time costs no more than
 * one sending everything at once. One reader per connection; it holds at most one request's
 * worth of bytes, as bounded by the {@link RequestLimits} it is fed with.
 */
export class RequestReader {
  #chunks: Buffer[] = [];
  #pending = 0;
  /** Bytes needed before parsing again; -1 waits for a newline. */
  #need = -1;
  /** The request being read: its arguments so far and how many are left. */
  #request: { args: string[]; left: number; bytes: number } | null = null;
  /** Length of the bulk whose header was read, or -1 when the next thing is a header. */
  #bulkLength = -1;

  /**
   * Feeds bytes; calls `run` for each complete command, which returns false to stop reading
   * (QUIT). Returns a protocol error message (the caller replies and closes), else null.
   * `limits` is asked before each request part, so an AUTH earlier in the same chunk already
   * lifts them for the commands after it.
   */
  feed(
    chunk: Buffer,
    limits: () => RequestLimits,
    run: (args: string[]) => boolean,
  ): string | null {
    this.#chunks.push(chunk);
    this.#pending += chunk.length;
    const waiting =
      this.#need === -1
        ? !chunk.includes(0x0a) && this.#pending <= MAX_LINE_BYTES
        : this.#pending < this.#need;
    if (waiting) return null;
    const buf = this.#chunks.length === 1 ? chunk : Buffer.concat(this.#chunks, this.#pending);
    const { pos, error } = this.#parse(buf, limits, run);
    // Keep only what is unparsed: a view into `buf`, released with it at the next join.
    const rest = buf.subarray(pos);
    this.#chunks = rest.length === 0 ? [] : [rest];
    this.#pending = rest.length;
    return error;
  }

  /** Parses from the start of `buf`, which is always the start of a line or of a bulk body. */
  #parse(
    buf: Buffer,
    limits: () => RequestLimits,
    run: (args: string[]) => boolean,
  ): { pos: number; error: string | null } {
    let pos = 0;
    const stop = (error: string | null = null) => ({ pos, error });
    for (;;) {
      this.#need = -1;
      const request = this.#request;
      if (request !== null && this.#bulkLength !== -1) {
        const end = pos + this.#bulkLength;
        if (buf.length < end + 2) {
          this.#need = end + 2 - pos;
          return stop();
        }
        if (buf[end] !== 0x0d || buf[end + 1] !== 0x0a)
          return stop('expected CRLF after bulk data');
        request.args.push(buf.toString('utf8', pos, end));
        pos = end + 2;
        this.#bulkLength = -1;
        if (--request.left > 0) continue;
        this.#request = null;
        if (!run(request.args)) return stop();
        continue;
      }
      if (pos >= buf.length) return stop();
      const limit = limits();
      if (request !== null) {
        const first = buf[pos]!;
        if (first !== 0x24) return stop(`expected '$', got '${String.fromCharCode(first)}'`);
        const line = readLine(buf, pos + 1);
        if (line === 'too-long') return stop('too big bulk count string');
        if (line === null) return stop();
        const length = parseLength(line.text);
        if (length === null || length < 0 || length > limit.maxBulkBytes) {
          return stop('invalid bulk length');
        }
        request.bytes += length;
        if (request.bytes > limit.maxRequestBytes) return stop('too big request');
        this.#bulkLength = length;
        pos = line.next;
        continue;
      }
      if (buf[pos] === 0x2a) {
        const line = readLine(buf, pos + 1);
        if (line === 'too-long') return stop('too big mbulk count string');
        if (line === null) return stop();
        const count = parseLength(line.text);
        if (count === null || count > limit.maxArgs) return stop('invalid multibulk length');
        pos = line.next;
        // `*0` and `*-1` are empty requests, skipped silently as Redis does.
        if (count > 0) this.#request = { args: [], left: count, bytes: 0 };
        continue;
      }
      const nl = findLineEnd(buf, pos);
      if (nl === 'too-long') return stop('too big inline request');
      if (nl === null) return stop();
      const args = splitInlineArgs(buf.toString('utf8', pos, nl));
      if (args === null) return stop('unbalanced quotes in request');
      if (args.length > limit.maxArgs) return stop('too many arguments in inline request');
      pos = nl + 1;
      // An empty line is skipped: telnet users press return.
      if (args.length > 0 && !run(args)) return stop();
    }
  }
}
