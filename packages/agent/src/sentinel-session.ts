/**
 * What a Sentinel endpoint command handler works with: the client's {@link Session}, the
 * {@link EndpointState} every session of one endpoint shares, the {@link CommandSpec} shape of
 * the command tables, {@link ReplyError} for answers that are errors, and the view lookups
 * several handlers need.
 */
import type { Socket } from 'node:net';
import { RequestReader } from './sentinel-request-reader.js';
import type {
  SentinelAddress,
  SentinelEndpointLimits,
  SentinelMaster,
  SentinelPeer,
  SentinelView,
} from './sentinel-types.js';

/** One client connection: its socket, parser and Redis client state. */
export class Session {
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
export interface EndpointState {
  readonly view: SentinelView;
  readonly password: string | undefined;
  readonly limits: SentinelEndpointLimits;
  readonly startedAt: number;
  readonly sessions: ReadonlySet<Session>;
  port(): number;
  /** When this endpoint first saw `name` at its current primary (for `role-reported-time`). */
  primarySince(name: string, primary: SentinelAddress): number | undefined;
}

/** One entry of a command table: its arity, where it may run, and its handler or subcommands. */
export interface CommandSpec {
  /** Redis arity: N means exactly N words, -N at least N, counting the command (and subcommand). */
  arity: number;
  /** Allowed before AUTH. */
  noAuth?: boolean;
  /** Allowed while subscribed (RESP2 pub/sub mode). */
  inSubscribedMode?: boolean;
  /** Returns the encoded reply; throws {@link ReplyError} for an error reply. */
  run?: (state: EndpointState, session: Session, args: string[]) => string;
  subcommands?: Record<string, CommandSpec>;
}

/**
 * Thrown by handlers for a reply-level error, whose message is the whole error line (`ERR ...`,
 * `WRONGPASS ...`); anything else a handler throws is logged as a bug.
 */
export class ReplyError extends Error {}

/** The master called `name`: the first one the view lists, as every query answers. */
export function masterNamed(
  state: EndpointState,
  name: string | undefined,
): SentinelMaster | undefined {
  return state.view.masters().find((m) => m.name === name);
}

/** Like {@link masterNamed}, but an unknown name is Sentinel's `No such master` error. */
export function findMaster(state: EndpointState, name: string | undefined): SentinelMaster {
  const master = masterNamed(state, name);
  if (master === undefined) throw new ReplyError('ERR No such master with that name');
  return master;
}

/** The other sentinels of `name`: the view's peers, minus any entry that is this endpoint. */
export function peersOf(state: EndpointState, name: string): SentinelPeer[] {
  return state.view.sentinels(name).filter((peer) => peer.runId !== state.view.myId);
}
