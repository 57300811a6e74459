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
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { ConfigError, ConflictError, GeorepError, makeLogger, type Logger } from '@georep/core';
import { AGENT_VERSION } from './version.js';

/** A host and port, as Sentinel replies carry them. */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** The primary of a master name. */
export interface SentinelPrimary extends SentinelAddress {
  /** The node's `run_id` from INFO; reported as `runid` (empty when unknown, as Sentinel does). */
  runId?: string;
  /** Sentinel flags, e.g. `master` or `master,s_down`; default `master`. */
  flags?: string;
}

/** A replica of a master name, as `SENTINEL replicas` reports it. */
export interface SentinelReplica extends SentinelAddress {
  /** False gives flags `slave,s_down`, which makes clients (ioredis `role: 'slave'`) skip it. */
  up: boolean;
  /** Replication offset (`slave-repl-offset`), default 0. */
  offset?: number;
  /** Bytes behind the primary; reported in the extra field `georep-lag-bytes` when set. */
  lagBytes?: number;
  /** `slave-priority`, default 100 (Redis's `replica-priority` default). */
  priority?: number;
  runId?: string;
}

/** What the endpoint reports for one master name. */
export interface SentinelMaster {
  /** The name clients ask for, e.g. `eu-west` or `eu-west:s2`. */
  name: string;
  primary: SentinelPrimary;
  replicas: SentinelReplica[];
  /** Reported as `quorum`; default a majority of the sentinels (this one and the others). */
  quorum?: number;
  /** Reported as `down-after-milliseconds`; default 30000 (Sentinel's default). */
  downAfterMs?: number;
  /** Reported as `failover-timeout`; default 180000 (Sentinel's default). */
  failoverTimeoutMs?: number;
  /** Reported as `config-epoch`; default 0. */
  configEpoch?: number;
}

/** Another agent's sentinel endpoint. */
export interface SentinelPeer extends SentinelAddress {
  /** Its run id; default a stable hash of `host:port` (see {@link sentinelRunId}). */
  runId?: string;
}

/**
 * The agent's current answer, read on every command. Implementations must be cheap and must not
 * block: they run on the event loop for each request.
 */
export interface SentinelView {
  /** The current answer for every master name. */
  masters(): SentinelMaster[];
  /** Other agents' sentinel endpoints for `name` (never this one); clients add them to their list. */
  sentinels(name: string): SentinelPeer[];
  /** The 40-hex run id of this endpoint (`SENTINEL myid`); {@link sentinelRunId} makes one. */
  myId: string;
}

/** Bounds on what one client may make the endpoint hold. */
export interface SentinelEndpointLimits {
  /** Open connections; the next one gets `-ERR max number of clients reached`. */
  maxConnections: number;
  /** Arguments in one request. */
  maxArgs: number;
  /** Bytes in one argument. */
  maxBulkBytes: number;
  /** Bytes of one request's arguments together (what a half-received request may buffer). */
  maxRequestBytes: number;
  /** Unsent reply bytes before a connection (a subscriber that stopped reading) is dropped. */
  maxOutputBytes: number;
}

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

/**
 * A stable 40-hex run id. With a `seed` (e.g. the agent id) it is the same across restarts, as a
 * real Sentinel's `myid` is (it persists it), so clients do not see a new sentinel each restart.
 */
export function sentinelRunId(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// RESP2 replies. Replies are built as strings: every value here is text, and one write per
// command keeps pipelined replies in order without a reply queue.

const NIL_BULK = '$-1\r\n';
const NIL_ARRAY = '*-1\r\n';
const OK = '+OK\r\n';
const bulk = (s: string): string => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const integer = (n: number): string => `:${n}\r\n`;
const array = (encoded: string[]): string => `*${encoded.length}\r\n${encoded.join('')}`;
const bulks = (strings: string[]): string => array(strings.map(bulk));
/** A CR or LF inside an error line would desynchronise the client, so they become spaces. */
const error = (message: string): string => `-${message.replace(/[\r\n]/g, ' ')}\r\n`;

// ---------------------------------------------------------------------------------------------
// Request reader: RESP multibulk (what every client library sends) and inline commands (telnet,
// `redis-cli` piping). Hand-written rather than redis-parser, which parses replies: it cannot
// read inline commands, accepts nested types a request must not contain, and buffers a declared
// 512 MB bulk without a bound.

/** Longest inline request or length line, as in Redis (PROTO_INLINE_MAX_SIZE). */
const MAX_LINE_BYTES = 64 * 1024;

/** Limits that apply to the next request; tighter before AUTH, as in Redis 7. */
interface RequestLimits {
  maxArgs: number;
  maxBulkBytes: number;
  maxRequestBytes: number;
}

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
 * Turns a connection's bytes into commands, incrementally: finished arguments of a half-received
 * request are kept, and bytes are only joined and parsed again once enough have arrived (a
 * newline, or the rest of a bulk), so a client trickling one byte at a time costs no more than
 * one sending everything at once.
 */
class RequestReader {
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
      const nl = buf.indexOf(0x0a, pos);
      if ((nl === -1 ? buf.length : nl) - pos > MAX_LINE_BYTES)
        return stop('too big inline request');
      if (nl === -1) return stop();
      const args = splitInlineArgs(buf.toString('utf8', pos, nl));
      if (args === null) return stop('unbalanced quotes in request');
      if (args.length > limit.maxArgs) return stop('too many arguments in inline request');
      pos = nl + 1;
      // An empty line is skipped: telnet users press return.
      if (args.length > 0 && !run(args)) return stop();
    }
  }
}

/** Reads a CRLF-terminated line at `start`: null when incomplete. */
function readLine(buf: Buffer, start: number): { text: string; next: number } | null | 'too-long' {
  const nl = buf.indexOf(0x0a, start);
  if ((nl === -1 ? buf.length : nl) - start > MAX_LINE_BYTES) return 'too-long';
  if (nl === -1) return null;
  const crlf = nl > start && buf[nl - 1] === 0x0d;
  // Without the CR the LF stays in the text, so the length parse fails as it would in Redis.
  return { text: buf.toString('latin1', start, crlf ? nl - 1 : nl + 1), next: nl + 1 };
}

// ---------------------------------------------------------------------------------------------
// Glob patterns of PSUBSCRIBE, with Redis's stringmatch syntax: * ? [abc] [^a] [a-z] \x.
// Matched by greedy backtracking to the last star, which is O(pattern x channel) whatever the
// pattern, so a client cannot make matching exponential with `*a*a*a*b`.

type GlobToken = { star: true } | { star: false; test: (c: string) => boolean };

function compileGlob(pattern: string): (subject: string) => boolean {
  const tokens: GlobToken[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (tokens.at(-1)?.star !== true) tokens.push({ star: true });
    } else if (c === '?') {
      tokens.push({ star: false, test: () => true });
    } else if (c === '[') {
      const negate = pattern[i + 1] === '^';
      if (negate) i++;
      const ranges: [string, string][] = [];
      // As in Redis, a class without `]` runs to the end of the pattern.
      for (i++; i < pattern.length && pattern[i] !== ']'; i++) {
        const from = pattern[i]!;
        if (from === '\\' && i + 1 < pattern.length) {
          i++;
          ranges.push([pattern[i]!, pattern[i]!]);
        } else if (pattern[i + 1] === '-' && i + 2 < pattern.length) {
          const to = pattern[i + 2]!;
          ranges.push(from <= to ? [from, to] : [to, from]);
          i += 2;
        } else {
          ranges.push([from, from]);
        }
      }
      const inClass = (ch: string) => ranges.some(([lo, hi]) => ch >= lo && ch <= hi);
      tokens.push({ star: false, test: (ch) => inClass(ch) !== negate });
    } else {
      const literal = c === '\\' && i + 1 < pattern.length ? pattern[++i]! : c;
      tokens.push({ star: false, test: (ch) => ch === literal });
    }
  }
  return (subject) => {
    let t = 0;
    let s = 0;
    let starToken = -1;
    let starSubject = 0;
    while (s < subject.length) {
      const token = tokens[t];
      if (token !== undefined && !token.star && token.test(subject[s]!)) {
        t++;
        s++;
      } else if (token?.star === true) {
        starToken = t++;
        starSubject = s;
      } else if (starToken !== -1) {
        t = starToken + 1;
        s = ++starSubject;
      } else {
        return false;
      }
    }
    while (tokens[t]?.star === true) t++;
    return t === tokens.length;
  };
}

// ---------------------------------------------------------------------------------------------
// Connections and commands.

/** One client connection: its socket, parser and Redis client state. */
class Session {
  readonly id: number;
  readonly socket: Socket;
  readonly reader = new RequestReader();
  authenticated: boolean;
  name: string | null = null;
  readonly channels = new Set<string>();
  readonly patterns = new Map<string, (channel: string) => boolean>();
  closing = false;
  /** Reading is paused until the client reads its replies. */
  paused = false;

  constructor(id: number, socket: Socket, authenticated: boolean) {
    this.id = id;
    this.socket = socket;
    this.authenticated = authenticated;
  }

  /** Channels plus patterns: the count every (un)subscribe reply carries. */
  get subscriptions(): number {
    return this.channels.size + this.patterns.size;
  }
}

/** What command handlers read and change, shared by every session of one endpoint. */
interface EndpointState {
  readonly view: SentinelView;
  readonly password: string | undefined;
  readonly limits: SentinelEndpointLimits;
  readonly startedAt: number;
  readonly sessions: ReadonlySet<Session>;
  port(): number;
  /** When this endpoint first saw `name` at its current primary (for `role-reported-time`). */
  primarySince(name: string, primary: SentinelAddress): number | undefined;
}

interface CommandSpec {
  /** Redis arity: N means exactly N words, -N at least N, counting the command (and subcommand). */
  arity: number;
  /** Allowed before AUTH. */
  noAuth?: boolean;
  /** Allowed while subscribed (RESP2 pub/sub mode). */
  inSubscribedMode?: boolean;
  run?: (state: EndpointState, session: Session, args: string[]) => string;
  subcommands?: Record<string, CommandSpec>;
}

/** Thrown by handlers for a reply-level error; anything else is logged as a bug. */
class ReplyError extends Error {}

function findMaster(state: EndpointState, name: string | undefined): SentinelMaster {
  const master = state.view.masters().find((m) => m.name === name);
  if (master === undefined) throw new ReplyError('ERR No such master with that name');
  return master;
}

function peersOf(state: EndpointState, name: string): SentinelPeer[] {
  return state.view.sentinels(name).filter((peer) => peer.runId !== state.view.myId);
}

function quorumOf(master: SentinelMaster, sentinels: number): number {
  return master.quorum ?? Math.floor(sentinels / 2) + 1;
}

/** The flat field/value list of `SENTINEL master(s)`, in redis-sentinel 7.0's order. */
function masterFields(state: EndpointState, master: SentinelMaster): string[] {
  const { primary } = master;
  const others = peersOf(state, master.name).length;
  const since = state.primarySince(master.name, primary);
  return [
    ...['name', master.name, 'ip', primary.host, 'port', String(primary.port)],
    ...['runid', primary.runId ?? '', 'flags', primary.flags ?? 'master'],
    ...['link-pending-commands', '0', 'link-refcount', '1', 'last-ping-sent', '0'],
    ...['last-ok-ping-reply', '0', 'last-ping-reply', '0'],
    ...['down-after-milliseconds', String(master.downAfterMs ?? 30_000), 'info-refresh', '0'],
    ...['role-reported', 'master'],
    ...['role-reported-time', String(since === undefined ? 0 : Date.now() - since)],
    ...['config-epoch', String(master.configEpoch ?? 0)],
    ...['num-slaves', String(master.replicas.length), 'num-other-sentinels', String(others)],
    ...['quorum', String(quorumOf(master, others + 1))],
    ...['failover-timeout', String(master.failoverTimeoutMs ?? 180_000), 'parallel-syncs', '1'],
  ];
}

/** The flat field/value list of one `SENTINEL replicas` entry, in redis-sentinel 7.0's order. */
function replicaFields(master: SentinelMaster, replica: SentinelReplica): string[] {
  const fields = [
    ...[
      'name',
      `${replica.host}:${replica.port}`,
      'ip',
      replica.host,
      'port',
      String(replica.port),
    ],
    ...['runid', replica.runId ?? '', 'flags', replica.up ? 'slave' : 'slave,s_down'],
    ...['link-pending-commands', '0', 'link-refcount', '1', 'last-ping-sent', '0'],
    ...['last-ok-ping-reply', '0', 'last-ping-reply', '0'],
    ...['down-after-milliseconds', String(master.downAfterMs ?? 30_000), 'info-refresh', '0'],
    ...['role-reported', 'slave', 'role-reported-time', '0', 'master-link-down-time', '0'],
    ...['master-link-status', replica.up ? 'ok' : 'err'],
    ...['master-host', master.primary.host, 'master-port', String(master.primary.port)],
    ...['slave-priority', String(replica.priority ?? 100)],
    ...['slave-repl-offset', String(replica.offset ?? 0), 'replica-announced', '1'],
  ];
  // Extra pairs are safe: every client reads these replies as a map of fields.
  if (replica.lagBytes !== undefined) fields.push('georep-lag-bytes', String(replica.lagBytes));
  return fields;
}

/** The flat field/value list of one `SENTINEL sentinels` entry. */
function peerFields(master: SentinelMaster, peer: SentinelPeer): string[] {
  const runId = peer.runId ?? sentinelRunId(`${peer.host}:${peer.port}`);
  return [
    ...['name', runId, 'ip', peer.host, 'port', String(peer.port), 'runid', runId],
    ...['flags', 'sentinel', 'link-pending-commands', '0', 'link-refcount', '1'],
    ...['last-ping-sent', '0', 'last-ok-ping-reply', '0', 'last-ping-reply', '0'],
    ...['down-after-milliseconds', String(master.downAfterMs ?? 30_000)],
    ...['last-hello-message', '0', 'voted-leader', '?', 'voted-leader-epoch', '0'],
  ];
}

function infoReply(state: EndpointState, sections: string[]): string {
  const masters = state.view.masters();
  const all: Record<string, string[]> = {
    server: [
      // Clients read redis_mode to tell a sentinel from a server; the version is the Sentinel
      // behaviour this endpoint reproduces.
      'redis_version:7.0.0',
      'redis_mode:sentinel',
      `georep_agent_version:${AGENT_VERSION}`,
      `process_id:${process.pid}`,
      `run_id:${state.view.myId}`,
      `tcp_port:${state.port()}`,
      `uptime_in_seconds:${Math.floor((Date.now() - state.startedAt) / 1000)}`,
    ],
    clients: [
      `connected_clients:${state.sessions.size}`,
      `maxclients:${state.limits.maxConnections}`,
    ],
    sentinel: [
      `sentinel_masters:${masters.length}`,
      'sentinel_tilt:0',
      'sentinel_tilt_since_seconds:-1',
      'sentinel_running_scripts:0',
      'sentinel_scripts_queue_length:0',
      'sentinel_simulate_failure_flags:0',
      ...masters.map((m, i) => {
        const flags = m.primary.flags ?? '';
        const status = flags.includes('o_down')
          ? 'odown'
          : flags.includes('s_down')
            ? 'sdown'
            : 'ok';
        const address = `${m.primary.host}:${m.primary.port}`;
        const sentinels = peersOf(state, m.name).length + 1;
        return `master${i}:name=${m.name},status=${status},address=${address},slaves=${m.replicas.length},sentinels=${sentinels}`;
      }),
    ],
  };
  const wanted = sections.map((s) => s.toLowerCase());
  const everything =
    wanted.length === 0 || wanted.some((s) => ['all', 'default', 'everything'].includes(s));
  const names = Object.keys(all).filter((name) => everything || wanted.includes(name));
  const heading = (name: string) => `# ${name[0]!.toUpperCase()}${name.slice(1)}`;
  return bulk(
    names.map((name) => [heading(name), ...all[name]!].join('\r\n') + '\r\n').join('\r\n'),
  );
}

/** One reply per name, each with the subscription count after that name was added. */
function subscribeReply(
  session: Session,
  kind: string,
  names: string[],
  add: (name: string) => void,
): string {
  let reply = '';
  for (const name of names) {
    add(name);
    reply += array([bulk(kind), bulk(name), integer(session.subscriptions)]);
  }
  return reply;
}

function unsubscribeReply(
  session: Session,
  kind: string,
  names: string[],
  remove: (n: string) => void,
): string {
  // With nothing to drop Redis still answers once, with a nil name, so the client's count agrees.
  if (names.length === 0) return array([bulk(kind), NIL_BULK, integer(session.subscriptions)]);
  let reply = '';
  for (const name of names) {
    remove(name);
    reply += array([bulk(kind), bulk(name), integer(session.subscriptions)]);
  }
  return reply;
}

/** Mutating Sentinel subcommands: georep owns failover and configuration, so they are refused. */
const READ_ONLY_SUBCOMMANDS = [
  'failover',
  'reset',
  'monitor',
  'remove',
  'set',
  'config',
  'flushconfig',
  'simulate-failure',
  'debug',
];

const SENTINEL_SUBCOMMANDS: Record<string, CommandSpec> = {
  'get-master-addr-by-name': {
    arity: 3,
    run: (state, _session, args) => {
      const master = state.view.masters().find((m) => m.name === args[2]);
      // A nil array, not an error: ioredis and redis-py take it as "this sentinel does not know".
      if (master === undefined) return NIL_ARRAY;
      return bulks([master.primary.host, String(master.primary.port)]);
    },
  },
  masters: {
    arity: 2,
    run: (state) => array(state.view.masters().map((m) => bulks(masterFields(state, m)))),
  },
  master: {
    arity: 3,
    run: (state, _s, args) => bulks(masterFields(state, findMaster(state, args[2]))),
  },
  replicas: {
    arity: 3,
    run: (state, _session, args) => {
      const master = findMaster(state, args[2]);
      return array(master.replicas.map((r) => bulks(replicaFields(master, r))));
    },
  },
  sentinels: {
    arity: 3,
    run: (state, _session, args) => {
      const master = findMaster(state, args[2]);
      return array(peersOf(state, master.name).map((p) => bulks(peerFields(master, p))));
    },
  },
  myid: { arity: 2, run: (state) => bulk(state.view.myId) },
  ckquorum: {
    arity: 3,
    run: (state, _session, args) => {
      const master = findMaster(state, args[2]);
      // Peers are reported by the agent as reachable, so every one of them is usable.
      const usable = peersOf(state, master.name).length + 1;
      if (usable < quorumOf(master, usable)) {
        throw new ReplyError(
          `NOQUORUM ${usable} usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master`,
        );
      }
      return `+OK ${usable} usable Sentinels. Quorum and failover authorization can be reached\r\n`;
    },
  },
  'is-master-down-by-addr': {
    arity: 6,
    // "Not down", no vote (leader `*`, epoch 0): a real Sentinel asking this cannot make georep
    // take part in its failover election.
    run: () => array([integer(0), bulk('*'), integer(0)]),
  },
  help: {
    arity: 2,
    run: () =>
      array(
        [
          'SENTINEL <subcommand> [<arg> ...]. Served by georep, read-only. Subcommands are:',
          'GET-MASTER-ADDR-BY-NAME <master-name>',
          'MASTERS',
          'MASTER <master-name>',
          'REPLICAS <master-name>',
          'SLAVES <master-name>',
          'SENTINELS <master-name>',
          'MYID',
          'CKQUORUM <master-name>',
          'IS-MASTER-DOWN-BY-ADDR <ip> <port> <current-epoch> <runid>',
        ].map((line) => `+${line}\r\n`),
      ),
  },
};
SENTINEL_SUBCOMMANDS.slaves = SENTINEL_SUBCOMMANDS.replicas!;
for (const name of READ_ONLY_SUBCOMMANDS) {
  SENTINEL_SUBCOMMANDS[name] = {
    arity: -2,
    run: () => {
      throw new ReplyError(
        'ERR this Sentinel endpoint is served by georep and is read-only: run failovers and configuration changes through georep',
      );
    },
  };
}

/** Client names, as in Redis: printable ASCII without spaces. */
const isPrintableWord = (s: string) => /^[!-~]*$/.test(s);

const COMMANDS: Record<string, CommandSpec> = {
  ping: {
    arity: -1,
    inSubscribedMode: true,
    run: (_state, session, args) => {
      if (args.length > 2) throw new ReplyError("ERR wrong number of arguments for 'ping' command");
      // In RESP2 pub/sub mode PING answers with a ["pong", message] array, not a status.
      if (session.subscriptions > 0) return array([bulk('pong'), bulk(args[1] ?? '')]);
      return args[1] === undefined ? '+PONG\r\n' : bulk(args[1]);
    },
  },
  auth: {
    arity: -2,
    noAuth: true,
    run: (state, session, args) => {
      if (args.length > 3) throw new ReplyError('ERR syntax error');
      if (state.password === undefined) {
        throw new ReplyError(
          'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
        );
      }
      const user = args.length === 3 ? args[1] : 'default';
      const digest = (s: string) => createHash('sha256').update(s).digest();
      const good = timingSafeEqual(digest(args.at(-1)!), digest(state.password));
      if (user !== 'default' || !good) {
        throw new ReplyError('WRONGPASS invalid username-password pair or user is disabled.');
      }
      session.authenticated = true;
      return OK;
    },
  },
  client: {
    arity: -2,
    subcommands: {
      setname: {
        arity: 3,
        run: (_state, session, args) => {
          const name = args[2]!;
          if (!isPrintableWord(name)) {
            throw new ReplyError(
              'ERR Client names cannot contain spaces, newlines or special characters.',
            );
          }
          session.name = name === '' ? null : name;
          return OK;
        },
      },
      getname: {
        arity: 2,
        run: (_state, session) => (session.name === null ? NIL_BULK : bulk(session.name)),
      },
      // ioredis sends LIB-NAME and LIB-VER on every connection (Redis 7.2); accepted, not kept.
      setinfo: {
        arity: 4,
        run: (_state, _session, args) => {
          const attribute = args[2]!.toLowerCase();
          if (attribute !== 'lib-name' && attribute !== 'lib-ver') {
            throw new ReplyError(`ERR Unrecognized option '${args[2]}'`);
          }
          return OK;
        },
      },
      id: { arity: 2, run: (_state, session) => integer(session.id) },
    },
  },
  sentinel: { arity: -2, subcommands: SENTINEL_SUBCOMMANDS },
  info: { arity: -1, run: (state, _session, args) => infoReply(state, args.slice(1)) },
  role: {
    arity: 1,
    run: (state) => array([bulk('sentinel'), bulks(state.view.masters().map((m) => m.name))]),
  },
  subscribe: {
    arity: -2,
    inSubscribedMode: true,
    run: (_state, session, args) =>
      subscribeReply(session, 'subscribe', args.slice(1), (c) => session.channels.add(c)),
  },
  psubscribe: {
    arity: -2,
    inSubscribedMode: true,
    run: (_state, session, args) =>
      subscribeReply(session, 'psubscribe', args.slice(1), (p) => {
        if (!session.patterns.has(p)) session.patterns.set(p, compileGlob(p));
      }),
  },
  unsubscribe: {
    arity: -1,
    inSubscribedMode: true,
    run: (_state, session, args) =>
      unsubscribeReply(
        session,
        'unsubscribe',
        args.length > 1 ? args.slice(1) : [...session.channels],
        (c) => session.channels.delete(c),
      ),
  },
  punsubscribe: {
    arity: -1,
    inSubscribedMode: true,
    run: (_state, session, args) =>
      unsubscribeReply(
        session,
        'punsubscribe',
        args.length > 1 ? args.slice(1) : [...session.patterns.keys()],
        (p) => session.patterns.delete(p),
      ),
  },
  // QUIT itself is handled by the dispatcher, which closes the connection after the reply.
  quit: { arity: -1, noAuth: true, inSubscribedMode: true, run: () => OK },
};

/** Redis's unknown-command text: the name and the start of the arguments, each cut to 128. */
function unknownCommand(args: string[]): string {
  let tail = '';
  for (const arg of args.slice(1)) {
    if (tail.length >= 128) break;
    tail += `'${arg.slice(0, 128 - tail.length)}' `;
  }
  return `ERR unknown command '${args[0]!.slice(0, 128)}', with args beginning with: ${tail}`;
}

/** Runs one command and returns its encoded reply, checking in the order Redis does. */
function dispatch(state: EndpointState, session: Session, args: string[], log: Logger): string {
  const command = COMMANDS[args[0]!.toLowerCase()];
  if (command === undefined) return error(unknownCommand(args));
  let spec = command;
  let fullName = args[0]!.toLowerCase();
  if (command.subcommands !== undefined && args.length >= 2) {
    const sub = command.subcommands[args[1]!.toLowerCase()];
    if (sub === undefined) {
      return error(
        `ERR unknown subcommand '${args[1]!.slice(0, 128)}'. Try ${fullName.toUpperCase()} HELP.`,
      );
    }
    spec = sub;
    fullName = `${fullName}|${args[1]!.toLowerCase()}`;
  }
  const arityOk = spec.arity >= 0 ? args.length === spec.arity : args.length >= -spec.arity;
  if (!arityOk || spec.run === undefined) {
    return error(`ERR wrong number of arguments for '${fullName}' command`);
  }
  if (!session.authenticated && spec.noAuth !== true)
    return error('NOAUTH Authentication required.');
  if (session.subscriptions > 0 && spec.inSubscribedMode !== true) {
    return error(
      `ERR Can't execute '${fullName}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`,
    );
  }
  try {
    return spec.run(state, session, args);
  } catch (err) {
    if (err instanceof ReplyError) return error(err.message);
    // The view is the agent's code; a throw there must cost one reply, not the connection.
    log.error({ err, command: fullName }, 'sentinel command failed');
    const reason = err instanceof Error ? err.message : String(err);
    return error(`ERR georep could not answer '${fullName}': ${reason}`);
  }
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

// ---------------------------------------------------------------------------------------------

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
        return known?.host === primary.host && known.port === primary.port
          ? known.since
          : undefined;
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
      if (before?.host === primary.host && before.port === primary.port) continue;
      this.#primaries.set(name, { host: primary.host, port: primary.port, since: Date.now() });
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
        if (!this.#primaries.has(name)) {
          this.#primaries.set(name, { host: primary.host, port: primary.port, since: Date.now() });
        }
      }
    } catch (err) {
      this.#log.warn({ err }, 'sentinel view failed at start; the first refresh sets the baseline');
    }
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
      replies += error(`ERR Protocol error: ${protocolError}`);
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
