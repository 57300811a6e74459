/**
 * A minimal RESP2 connection for the import's write path: commands are encoded straight into
 * socket writes and replies are only delimited, classified (ok / error) and handed back in order.
 *
 * Why not ioredis here: an import sends one command per key, millions of times. ioredis builds a
 * Command object, a promise and several buffers per command; profiling showed that (and the GC it
 * causes) dominating the import at about 17 µs per key. Here a pipeline writes many commands at
 * once (already encoded into shared chunks) with one reply handler for all of them, and `+OK`
 * replies are recognised without allocating. ioredis is still used for everything else (probing,
 * flushing).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { resolveSecret, type RedisConfig } from '@georep/core';
import { tlsOptionsFrom } from '@georep/redis';

/** An error reply (`-ERR ...`, `-BUSYKEY ...`) from the server. */
export class RespReplyError extends Error {
  override name = 'RespReplyError';
}

/** A reply: `null` for bulk strings and arrays (their content is not needed), else its value. */
export type RespValue = string | number | null;

/** Called once per command, in send order. */
export type RespReplyHandler = (err: Error | null, value: RespValue) => void;

const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);

/**
 * Encodes one command as a RESP array of bulk strings into a single buffer: lengths are
 * computed first so each command costs one allocation and one copy per argument.
 */
export function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  let total = 1 + digits(args.length) + 2;
  const lens: number[] = [];
  for (const a of args) {
    const n = typeof a === 'string' ? Buffer.byteLength(a) : a.length;
    lens.push(n);
    total += 1 + digits(n) + 2 + n + 2;
  }
  const out = Buffer.allocUnsafe(total);
  let at = out.write(`*${args.length}\r\n`, 0, 'latin1');
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const n = lens[i]!;
    at += out.write(`$${n}\r\n`, at, 'latin1');
    at += typeof a === 'string' ? out.write(a, at, 'utf8') : a.copy(out, at);
    out[at++] = 0x0d;
    out[at++] = 0x0a;
  }
  return out;
}

function digits(n: number): number {
  return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : String(n).length;
}

/** One connection; see the module comment. */
export class RespConnection {
  readonly #socket: Socket;
  /**
   * Who gets the replies still expected, in send order: `#handlers[i]` takes the next
   * `#counts[i]` replies (a pipeline registers one handler per write, not one per command).
   */
  readonly #handlers: RespReplyHandler[] = [];
  readonly #counts: number[] = [];
  #head = 0;
  #pending = 0;
  #buf: Buffer = EMPTY;
  #closed: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error('connection closed by the server')));
  }

  /**
   * Connects (TLS when configured) and authenticates like ioredis would.
   *
   * @throws the socket error, or RespReplyError when AUTH is refused.
   */
  static async open(
    node: { host: string; port: number },
    config: RedisConfig,
  ): Promise<RespConnection> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s =
        config.tls === undefined
          ? netConnect({ host: node.host, port: node.port })
          : tlsConnect({ host: node.host, port: node.port, ...tlsOptionsFrom(config.tls) });
      const ready = config.tls === undefined ? 'connect' : 'secureConnect';
      s.once(ready, () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
    socket.setNoDelay(true);
    const conn = new RespConnection(socket);
    const password = resolveSecret(config.password, config.passwordFile);
    if (password !== undefined) {
      const args =
        config.username === undefined ? ['AUTH', password] : ['AUTH', config.username, password];
      await conn.call(args);
    }
    await conn.call(['CLIENT', 'SETNAME', 'georep-import']);
    return conn;
  }

  /** The error that closed the connection, if it is closed. */
  get closedBy(): Error | undefined {
    return this.#closed;
  }

  /** Replies still expected. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Writes `count` already-encoded commands (one buffer, or several sent in one `writev`);
   * `handler` is called once per reply, in order.
   */
  write(encoded: Buffer | readonly Buffer[], count: number, handler: RespReplyHandler): void {
    if (this.#closed !== undefined) {
      for (let i = 0; i < count; i++) handler(this.#closed, null);
      return;
    }
    if (count > 0) {
      this.#handlers.push(handler);
      this.#counts.push(count);
      this.#pending += count;
    }
    if (Buffer.isBuffer(encoded)) {
      this.#socket.write(encoded);
    } else if (encoded.length === 1) {
      this.#socket.write(encoded[0]!);
    } else {
      this.#socket.cork();
      for (const b of encoded) this.#socket.write(b);
      this.#socket.uncork();
    }
  }

  /** Sends one command and waits for its reply. */
  call(args: ReadonlyArray<string | Buffer>): Promise<RespValue> {
    return new Promise((resolve, reject) => {
      this.write(encodeCommand(args), 1, (err, value) =>
        err === null ? resolve(value) : reject(err),
      );
    });
  }

  /** Closes the socket; pending handlers get an error. */
  close(): void {
    this.#socket.destroy();
    this.#fail(new Error('connection closed'));
  }

  #fail(err: Error): void {
    if (this.#closed !== undefined) return;
    this.#closed = err;
    const handlers = this.#handlers.slice(this.#head);
    const counts = this.#counts.slice(this.#head);
    this.#handlers.length = 0;
    this.#counts.length = 0;
    this.#head = 0;
    this.#pending = 0;
    for (let i = 0; i < handlers.length; i++) {
      for (let n = 0; n < counts[i]!; n++) handlers[i]!(err, null);
    }
  }

  /** Hands one reply to its handler. */
  #dispatch(err: Error | null, value: RespValue): void {
    const i = this.#head;
    const h = this.#handlers[i];
    if (h === undefined) return; // unsolicited: nothing is waiting for it
    this.#pending--;
    if (--this.#counts[i]! === 0) this.#head = i + 1;
    h(err, value);
  }

  #onData(chunk: Buffer): void {
    const buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const len = buf.length;
    let pos = 0;
    try {
      while (pos < len) {
        // The reply of almost every import command: +OK, decoded without allocating.
        if (
          buf[pos] === 0x2b &&
          pos + 4 < len &&
          buf[pos + 1] === 0x4f &&
          buf[pos + 2] === 0x4b &&
          buf[pos + 3] === 0x0d &&
          buf[pos + 4] === 0x0a
        ) {
          pos += 5;
          this.#dispatch(null, 'OK');
          continue;
        }
        const r = parseReply(buf, pos);
        if (r === undefined) break;
        pos = r.end;
        this.#dispatch(r.error === undefined ? null : new RespReplyError(r.error), r.value);
        if (this.#closed !== undefined) return;
      }
    } catch (err) {
      // Not RESP (a proxy, a TLS mismatch): nothing after this can be trusted.
      this.#socket.destroy();
      this.#fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.#buf = pos === len ? EMPTY : buf.subarray(pos);
    // Compact the handler queue now and then instead of shifting per reply.
    if (this.#head > 1024 && this.#head * 2 > this.#handlers.length) {
      this.#handlers.splice(0, this.#head);
      this.#counts.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

interface Parsed {
  end: number;
  value: RespValue;
  error?: string;
}

/** Delimits one reply starting at `pos`; undefined when it is not complete yet. */
function parseReply(buf: Buffer, pos: number): Parsed | undefined {
  if (pos >= buf.length) return undefined;
  const eol = buf.indexOf(CRLF, pos + 1);
  if (eol < 0) return undefined;
  const type = buf[pos];
  const line = buf.toString('latin1', pos + 1, eol);
  const after = eol + 2;
  switch (type) {
    case 0x2b: // +
      return { end: after, value: line };
    case 0x2d: // -
      return { end: after, value: null, error: line };
    case 0x3a: // :
      return { end: after, value: Number(line) };
    case 0x24: {
      // $
      const n = Number(line);
      if (n < 0) return { end: after, value: null };
      return after + n + 2 <= buf.length ? { end: after + n + 2, value: null } : undefined;
    }
    case 0x2a: {
      // *
      const n = Number(line);
      let at = after;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, at);
        if (r === undefined) return undefined;
        at = r.end;
      }
      return { end: at, value: null };
    }
    default:
      throw new Error(`unexpected RESP reply type 0x${(type ?? 0).toString(16)}`);
  }
}
