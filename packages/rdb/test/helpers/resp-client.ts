/**
 * A minimal RESP2 client over node:net, enough for tests: binary-safe arguments and replies
 * (DUMP payloads must stay Buffers), no pipelining helpers, no reconnects.
 */
import net from 'node:net';

/** A RESP error reply. */
export class RespError extends Error {
  override name = 'RespError';
}

/** A decoded reply: bulk strings stay Buffers. */
export type RespReply = Buffer | number | null | string | RespError | RespReply[];

type Parsed = { value: RespReply; end: number } | undefined;

function parseReply(buf: Buffer, pos: number): Parsed {
  const lineEnd = buf.indexOf('\r\n', pos, 'latin1');
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[pos]!);
  const line = buf.toString('latin1', pos + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RespError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return undefined;
      return { value: Buffer.from(buf.subarray(next, next + len)), end: next + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespReply[] = [];
      let p = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, p);
        if (item === undefined) return undefined;
        items.push(item.value);
        p = item.end;
      }
      return { value: items, end: p };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

function encodeCommand(args: ReadonlyArray<string | Buffer | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** One connection; replies are matched to calls in order. */
export class RespClient {
  readonly #socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  readonly #waiting: Array<{ resolve: (r: RespReply) => void; reject: (e: Error) => void }> = [];

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      for (;;) {
        const parsed = parseReply(this.#buf, 0);
        if (parsed === undefined) break;
        this.#buf = this.#buf.subarray(parsed.end);
        this.#waiting.shift()?.resolve(parsed.value);
      }
    });
    const failAll = (err: Error): void => {
      for (const w of this.#waiting.splice(0)) w.reject(err);
    };
    socket.on('error', failAll);
    socket.on('close', () => failAll(new Error('connection closed')));
  }

  /** Connects to 127.0.0.1:`port`. */
  static connect(port: number): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new RespClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends one command and resolves with its reply (error replies resolve as RespError). */
  send(...args: Array<string | Buffer | number>): Promise<RespReply> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#socket.write(encodeCommand(args));
    });
  }

  /** Like {@link send} but rejects on an error reply. */
  async call(...args: Array<string | Buffer | number>): Promise<RespReply> {
    const reply = await this.send(...args);
    if (reply instanceof RespError) throw reply;
    return reply;
  }

  close(): void {
    this.#socket.destroy();
  }
}
