/**
 * A Sentinel-compatible discovery endpoint, so unmodified Sentinel-aware clients (ioredis with
 * `sentinels`, redis-py `Sentinel`, Jedis `JedisSentinelPool`, Lettuce `redis-sentinel://`,
 * `redis-cli`) find a shard's primary through georep and follow its changes, without anyone
 * running Redis Sentinel.
 *
 * The endpoint decides nothing: every answer is read from the {@link SentinelView} the agent
 * supplies, at the moment the command arrives. It speaks RESP2 only (no HELLO), and where a
 * client can see the difference it answers byte for byte like redis-sentinel 7.0: reply shapes
 * and field order of `SENTINEL masters/replicas/sentinels`, the nil array of an unknown name,
 * error texts, pub/sub replies. Those were checked against a real sentinel, because clients
 * branch on them (ioredis treats anything but an array from `get-master-addr-by-name` as "ask the
 * next sentinel").
 *
 * Clients reach it before they reach Redis, often from networks georep does not control, so
 * input is bounded everywhere: connections, arguments, bulk sizes, buffered bytes, output to
 * slow subscribers. Bad input gets `-ERR Protocol error: ...` and that connection is closed.
 *
 * This module is the server: connections, their limits, output back-pressure and the
 * `+switch-master` announcements. Requests are parsed by `sentinel-request-reader.ts`, answered
 * by `sentinel-commands.ts` (and `sentinel-subcommands.ts` for `SENTINEL`), and encoded by
 * `sentinel-replies.ts`.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { ConfigError, ConflictError, GeorepError, makeLogger, type Logger } from '@georep/core';
import { dispatch } from './sentinel-commands.js';
import { bulks, errorReply } from './sentinel-replies.js';
import type { RequestLimits } from './sentinel-request-reader.js';
import { Session, type EndpointState } from './sentinel-session.js';
import type {
  SentinelAddress,
  SentinelEndpointLimits,
  SentinelMaster,
  SentinelView,
} from './sentinel-types.js';

// The view's contract lives in sentinel-types.ts (so the reply and command modules need not
// import this one back); it is re-exported here, where the agent and index.ts import it from.
export { sentinelRunId } from './sentinel-types.js';
export type {
  SentinelAddress,
  SentinelPrimary,
  SentinelReplica,
  SentinelMaster,
  SentinelPeer,
  SentinelView,
  SentinelEndpointLimits,
} from './sentinel-types.js';

/** The defaults: Sentinel requests are a few short strings, so these are generous. */
export const DEFAULT_SENTINEL_LIMITS: Readonly<SentinelEndpointLimits> = Object.freeze({
  maxConnections: 1024,
  maxArgs: 1024,
  maxBulkBytes: 1024 * 1024,
  maxRequestBytes: 4 * 1024 * 1024,
  maxOutputBytes: 8 * 1024 * 1024,
});

/** Options of {@link SentinelEndpoint.start}. */
export interface SentinelEndpointOptions {
  host: string;
  /** 0 lets the OS pick; read the result from {@link SentinelEndpoint.port}. */
  port: number;
  view: SentinelView;
  /** Clients must AUTH with it (ioredis `sentinelPassword`); user `default` or none. */
  password?: string;
  logger?: Logger;
  limits?: Partial<SentinelEndpointLimits>;
}

/** Whether `known` (absent when never seen) is at `address`. */
function sameAddress(known: SentinelAddress | undefined, address: SentinelAddress): boolean {
  return known?.host === address.host && known.port === address.port;
}

/** How long a client told to go may keep its side open before the endpoint cuts it off. */
const CLOSE_GRACE_MS = 2000;

/**
 * Like Redis's close-after-reply: sends the reply and a FIN, and keeps reading (and dropping)
 * input, because closing a socket with unread input sends a reset that can destroy the error
 * reply before the client reads it.
 */
function closeAfterReply(socket: Socket): void {
  socket.end();
  socket.resume();
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}

/**
 * The Sentinel-compatible endpoint of one agent. Start it with {@link SentinelEndpoint.start},
 * call {@link SentinelEndpoint.refresh} after every routing or topology change, and close it
 * (or `await using`) on shutdown.
 *
 * @example
 * ```ts
 * await using endpoint = await SentinelEndpoint.start({ host: '0.0.0.0', port: 26379, view });
 * // ... after a switchover moved eu-west's primary:
 * endpoint.refresh(); // subscribers get "+switch-master eu-west 10.0.0.1 6379 10.0.0.2 6379"
 * ```
 */
export class SentinelEndpoint implements AsyncDisposable {
  readonly #server: Server;
  readonly #state: EndpointState;
  readonly #sessions = new Set<Session>();
  /** Every open socket, refused ones included, so close() does not wait for their grace time. */
  readonly #sockets = new Set<Socket>();
  readonly #log: Logger;
  /**
   * The last primary announced for each name. A name that leaves the view keeps its entry, so
   * its return at another address is still announced to clients connected to the old one.
   */
  #primaries = new Map<string, SentinelAddress & { since: number }>();
  #nextSessionId = 1;
  #refusing = false;
  #closed: Promise<void> | null = null;
  /** Kept from listen(), so `port` and `address` still answer after close(). */
  #bound: SentinelAddress = { host: '', port: 0 };

  private constructor(server: Server, options: SentinelEndpointOptions, log: Logger) {
    this.#server = server;
    this.#log = log;
    const limits = { ...DEFAULT_SENTINEL_LIMITS, ...options.limits };
    this.#state = {
      view: options.view,
      password: options.password,
      limits,
      startedAt: Date.now(),
      sessions: this.#sessions,
      port: () => this.port,
      primarySince: (name, primary) => {
        const known = this.#primaries.get(name);
        return sameAddress(known, primary) ? known?.since : undefined;
      },
    };
    server.on('connection', (socket) => this.#accept(socket));
  }

  /**
   * Listens and resolves once bound. The current view becomes the baseline of
   * {@link SentinelEndpoint.refresh}. Rejects with `config.sentinel-id` for a `myId` that is not
   * 40 hex digits and `sentinel.port-in-use` when the port is taken.
   */
  static async start(options: SentinelEndpointOptions): Promise<SentinelEndpoint> {
    if (!/^[0-9a-f]{40}$/i.test(options.view.myId)) {
      throw new ConfigError('config.sentinel-id', 'the sentinel run id must be 40 hex digits', {
        hint: 'derive one with sentinelRunId(agentId)',
        details: { myId: options.view.myId },
      });
    }
    const log = options.logger ?? makeLogger('sentinel');
    const endpoint = new SentinelEndpoint(createServer({ noDelay: true }), options, log);
    await new Promise<void>((resolve, reject) => {
      endpoint.#server.once('error', (err: NodeJS.ErrnoException) => {
        const where = { host: options.host, port: options.port };
        reject(
          err.code === 'EADDRINUSE'
            ? new ConflictError('sentinel.port-in-use', `port ${options.port} is in use`, {
                cause: err,
                hint: 'set another sentinel.port in the agent config, or 0 for any free port',
                details: where,
              })
            : new GeorepError('sentinel.listen-failed', `cannot listen: ${err.message}`, {
                cause: err,
                details: where,
              }),
        );
      });
      endpoint.#server.listen(options.port, options.host, () => resolve());
    });
    const bound = endpoint.#server.address() as AddressInfo;
    endpoint.#bound = { host: bound.address, port: bound.port };
    endpoint.#server.on('error', (err) => log.error({ err }, 'sentinel endpoint server error'));
    endpoint.#readBaseline();
    log.info({ address: endpoint.address }, 'sentinel endpoint listening');
    return endpoint;
  }

  /** The bound port (the OS's choice when started with port 0). */
  get port(): number {
    return this.#bound.port;
  }

  /** The bound host and port (`0.0.0.0` when listening on every interface). */
  get address(): SentinelAddress {
    return { ...this.#bound };
  }

  /** Open client connections. */
  get connections(): number {
    return this.#sessions.size;
  }

  /**
   * Re-reads the view; for every name whose primary address changed since the last call (or
   * since start), publishes `+switch-master` with `<name> <oldip> <oldport> <newip> <newport>`,
   * as Sentinel does at the end of a failover. Clients with a failover detector (ioredis
   * `failoverDetector`, Jedis, Lettuce) reconnect on it. A view that throws is logged and the
   * previous state kept, so the next successful call still announces the change.
   */
  refresh(): void {
    let masters: SentinelMaster[];
    try {
      masters = this.#state.view.masters();
    } catch (err) {
      this.#log.warn(
        { err },
        'sentinel view failed; switch announcements wait for the next refresh',
      );
      return;
    }
    const seen = new Set<string>();
    for (const { name, primary } of masters) {
      if (seen.has(name)) continue; // the first entry answers queries, so it is the one announced
      seen.add(name);
      const before = this.#primaries.get(name);
      if (sameAddress(before, primary)) continue;
      this.#notePrimary(name, primary);
      if (before === undefined) continue;
      const message = `${name} ${before.host} ${before.port} ${primary.host} ${primary.port}`;
      const receivers = this.publish('+switch-master', message);
      this.#log.info({ name, message, receivers }, 'announced +switch-master');
    }
  }

  /**
   * Publishes a Sentinel event (e.g. `+failover-end`, `+sdown`) to subscribers of `channel` and
   * of patterns matching it. Returns how many deliveries were made, as Redis PUBLISH does.
   */
  publish(channel: string, message: string): number {
    let receivers = 0;
    for (const session of this.#sessions) {
      if (session.closing) continue;
      if (session.channels.has(channel)) {
        this.#write(session, bulks(['message', channel, message]));
        receivers++;
      }
      for (const [pattern, matches] of session.patterns) {
        if (!matches(channel)) continue;
        this.#write(session, bulks(['pmessage', pattern, channel, message]));
        receivers++;
      }
    }
    return receivers;
  }

  /** Stops listening and closes every client connection. Idempotent. */
  async close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
    });
    return this.#closed;
  }

  /** Same as {@link SentinelEndpoint.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #readBaseline(): void {
    try {
      for (const { name, primary } of this.#state.view.masters()) {
        if (!this.#primaries.has(name)) this.#notePrimary(name, primary);
      }
    } catch (err) {
      this.#log.warn({ err }, 'sentinel view failed at start; the first refresh sets the baseline');
    }
  }

  #notePrimary(name: string, primary: SentinelAddress): void {
    this.#primaries.set(name, { host: primary.host, port: primary.port, since: Date.now() });
  }

  #accept(socket: Socket): void {
    socket.on('error', (err) => this.#log.debug({ err }, 'sentinel client connection error'));
    if (this.#closed !== null) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    const { maxConnections } = this.#state.limits;
    if (this.#sessions.size >= maxConnections) {
      // Once per episode: a client retrying in a loop must not flood the log.
      if (!this.#refusing)
        this.#log.warn({ maxConnections }, 'sentinel connections refused: limit');
      this.#refusing = true;
      socket.write('-ERR max number of clients reached\r\n');
      closeAfterReply(socket);
      return;
    }
    const session = new Session(this.#nextSessionId++, socket, this.#state.password === undefined);
    this.#sessions.add(session);
    socket.on('close', () => {
      this.#sessions.delete(session);
      if (this.#sessions.size < maxConnections) this.#refusing = false;
    });
    socket.on('data', (chunk: Buffer) => this.#receive(session, chunk));
  }

  #limitsFor(session: Session): RequestLimits {
    const { maxArgs, maxBulkBytes, maxRequestBytes } = this.#state.limits;
    // As Redis 7: before AUTH a client gets small requests only, so it cannot make the endpoint
    // buffer megabytes without knowing the password.
    return session.authenticated
      ? { maxArgs, maxBulkBytes, maxRequestBytes }
      : {
          maxArgs: Math.min(maxArgs, 10),
          maxBulkBytes: Math.min(maxBulkBytes, 16_384),
          maxRequestBytes: 16_384 * 10,
        };
  }

  #receive(session: Session, chunk: Buffer): void {
    if (session.closing) return;
    let replies = '';
    const protocolError = session.reader.feed(
      chunk,
      () => this.#limitsFor(session),
      (args) => {
        replies += dispatch(this.#state, session, args, this.#log);
        if (args[0]!.toLowerCase() !== 'quit') return true;
        session.closing = true;
        return false;
      },
    );
    if (protocolError !== null) {
      replies += errorReply(`ERR Protocol error: ${protocolError}`);
      session.closing = true;
      this.#log.debug({ client: session.id, error: protocolError }, 'sentinel protocol error');
    }
    if (replies !== '') this.#write(session, replies);
    // Like Redis's close-after-reply: the reply is flushed, then the connection goes, whatever
    // the client still sends.
    if (session.closing) closeAfterReply(session.socket);
  }

  #write(session: Session, data: string): void {
    const { socket } = session;
    if (socket.destroyed) return;
    const drained = socket.write(data);
    if (socket.writableLength > this.#state.limits.maxOutputBytes) {
      // A subscriber that stopped reading would otherwise grow this process without bound.
      this.#log.warn(
        { client: session.id, name: session.name },
        'sentinel client dropped: output limit',
      );
      session.closing = true;
      socket.destroy();
    } else if (!drained && !session.closing && !session.paused) {
      // Stop reading a client that does not read its replies until they are flushed.
      session.paused = true;
      socket.pause();
      socket.once('drain', () => {
        session.paused = false;
        socket.resume();
      });
    }
  }
}
