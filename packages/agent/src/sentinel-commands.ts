/**
 * The Sentinel endpoint's command table and dispatcher: the commands Sentinel-aware clients send
 * (PING, AUTH, CLIENT, SENTINEL, INFO, ROLE, the RESP2 pub/sub family, QUIT), with Redis's
 * arity, authentication and subscribed-mode checks in Redis's order and its error texts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from '@georep/core';
import { compileGlob } from './glob-match.js';
import { array, bulk, bulks, errorReply, integer, NIL_BULK, OK } from './sentinel-replies.js';
import {
  peersOf,
  ReplyError,
  type CommandSpec,
  type EndpointState,
  type Session,
} from './sentinel-session.js';
import { SENTINEL_SUBCOMMANDS } from './sentinel-subcommands.js';
import { AGENT_VERSION } from './version.js';

/**
 * INFO: the sections Sentinel clients read (server, clients, sentinel), all of them or the ones
 * asked for.
 */
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

/**
 * The replies of (P)SUBSCRIBE and (P)UNSUBSCRIBE: one per name, each with the subscription count
 * after `change` was applied to that name.
 */
function subscriptionReplies(
  session: Session,
  kind: string,
  names: string[],
  change: (name: string) => void,
): string {
  // With nothing to drop Redis still answers once, with a nil name, so the client's count agrees.
  // Only an UNSUBSCRIBE gets here without names: SUBSCRIBE's arity requires one.
  if (names.length === 0) return array([bulk(kind), NIL_BULK, integer(session.subscriptions)]);
  let reply = '';
  for (const name of names) {
    change(name);
    reply += array([bulk(kind), bulk(name), integer(session.subscriptions)]);
  }
  return reply;
}

/** Client names, as in Redis: printable ASCII without spaces. */
const isPrintableWord = (s: string) => /^[!-~]*$/.test(s);

/** The top-level commands, keyed by lower-case name; anything else is an unknown command. */
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
      subscriptionReplies(session, 'subscribe', args.slice(1), (c) => session.channels.add(c)),
  },
  psubscribe: {
    arity: -2,
    inSubscribedMode: true,
    run: (_state, session, args) =>
      subscriptionReplies(session, 'psubscribe', args.slice(1), (p) => {
        if (!session.patterns.has(p)) session.patterns.set(p, compileGlob(p));
      }),
  },
  unsubscribe: {
    arity: -1,
    inSubscribedMode: true,
    run: (_state, session, args) =>
      subscriptionReplies(
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
      subscriptionReplies(
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

/**
 * Runs one command (`args` is never empty) and returns its encoded reply, checking in the order
 * Redis does: known command and subcommand, arity, authentication, subscribed mode. It never
 * throws: a handler's {@link ReplyError} becomes its error reply, and any other throw (a bug in
 * the view, say) is logged and answered with an error, so it costs one reply, not the
 * connection. QUIT only gets its `+OK` here; closing is the caller's job.
 */
export function dispatch(
  state: EndpointState,
  session: Session,
  args: string[],
  log: Logger,
): string {
  const command = COMMANDS[args[0]!.toLowerCase()];
  if (command === undefined) return errorReply(unknownCommand(args));
  let spec = command;
  let fullName = args[0]!.toLowerCase();
  if (command.subcommands !== undefined && args.length >= 2) {
    const sub = command.subcommands[args[1]!.toLowerCase()];
    if (sub === undefined) {
      return errorReply(
        `ERR unknown subcommand '${args[1]!.slice(0, 128)}'. Try ${fullName.toUpperCase()} HELP.`,
      );
    }
    spec = sub;
    fullName = `${fullName}|${args[1]!.toLowerCase()}`;
  }
  const arityOk = spec.arity >= 0 ? args.length === spec.arity : args.length >= -spec.arity;
  if (!arityOk || spec.run === undefined) {
    return errorReply(`ERR wrong number of arguments for '${fullName}' command`);
  }
  if (!session.authenticated && spec.noAuth !== true)
    return errorReply('NOAUTH Authentication required.');
  if (session.subscriptions > 0 && spec.inSubscribedMode !== true) {
    return errorReply(
      `ERR Can't execute '${fullName}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`,
    );
  }
  try {
    return spec.run(state, session, args);
  } catch (err) {
    if (err instanceof ReplyError) return errorReply(err.message);
    // The view is the agent's code; a throw there must cost one reply, not the connection.
    log.error({ err, command: fullName }, 'sentinel command failed');
    const reason = err instanceof Error ? err.message : String(err);
    return errorReply(`ERR georep could not answer '${fullName}': ${reason}`);
  }
}
