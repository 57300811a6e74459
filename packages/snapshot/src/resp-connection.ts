/**
 * A minimal RESP2 connection for the import's write path: commands are encoded straight into
 * socket writes and replies are only delimited, classified (ok / error) and handed back in order.
 *
 * Why not ioredis here: an import sends one command per key, millions of times. ioredis builds a
 * Command object, a promise and several buffers per command; profiling showed that (and the GC it
 * causes) dominating the import at about 17 µs per key. This connection keeps the per-command cost
 * to one encoded buffer. ioredis is still used for everything else (probing, flushing).
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
  readonly #handlers: RespReplyHandler[] = [];
  #head = 0;
  #buf: Buffer = Buffer.alloc(0);
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
    return this.#handlers.length - this.#head;
  }

  /** Writes already-encoded commands and registers their handlers (one per command, in order). */
  write(encoded: Buffer, handlers: RespReplyHandler[]): void {
    if (this.#closed !== undefined) {
      for (const h of handlers) h(this.#closed, null);
      return;
    }
    for (const h of handlers) this.#handlers.push(h);
    this.#socket.write(encoded);
  }

  /** Sends one command and waits for its reply. */
  call(args: ReadonlyArray<string | Buffer>): Promise<RespValue> {
    return new Promise((resolve, reject) => {
      this.write(encodeCommand(args), [
        (err, value) => (err === null ? resolve(value) : reject(err)),
      ]);
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
    const rest = this.#handlers.slice(this.#head);
    this.#handlers.length = 0;
    this.#head = 0;
    for (const h of rest) h(err, null);
  }

  #onData(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let pos = 0;
    try {
      for (;;) {
        const r = parseReply(this.#buf, pos);
        if (r === undefined) break;
        pos = r.end;
        const h = this.#handlers[this.#head++];
        if (h !== undefined) h(r.error === undefined ? null : new RespReplyError(r.error), r.value);
      }
    } catch (err) {
      // Not RESP (a proxy, a TLS mismatch): nothing after this can be trusted.
      this.#socket.destroy();
      this.#fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.#buf = pos === this.#buf.length ? Buffer.alloc(0) : this.#buf.subarray(pos);
    // Compact the handler queue now and then instead of shifting per reply.
    if (this.#head > 4096 && this.#head * 2 > this.#handlers.length) {
      this.#handlers.splice(0, this.#head);
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
