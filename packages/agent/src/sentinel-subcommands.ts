/**
 * The `SENTINEL` command's subcommands. The read-only ones answer from the view exactly as
 * redis-sentinel 7.0 does; the mutating ones are refused, because georep owns failover and
 * configuration and a client must not be able to start either behind its back.
 */
import {
  array,
  bulk,
  bulks,
  integer,
  masterFields,
  NIL_ARRAY,
  peerFields,
  quorumOf,
  replicaFields,
} from './sentinel-replies.js';
import {
  findMaster,
  masterNamed,
  peersOf,
  ReplyError,
  type CommandSpec,
  type EndpointState,
} from './sentinel-session.js';
import type { SentinelMaster } from './sentinel-types.js';

/** Mutating Sentinel subcommands: georep owns failover and configuration, so they are refused. */
const MUTATING_SUBCOMMANDS = [
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

/** One `SENTINEL master(s)` entry. */
function masterReply(state: EndpointState, master: SentinelMaster): string {
  const others = peersOf(state, master.name).length;
  return bulks(masterFields(master, others, state.primarySince(master.name, master.primary)));
}

/**
 * The subcommand table of `SENTINEL`, keyed by lower-case name (`slaves` is `replicas`, as in
 * Sentinel). Arity counts `SENTINEL` and the subcommand.
 */
export const SENTINEL_SUBCOMMANDS: Record<string, CommandSpec> = {
  'get-master-addr-by-name': {
    arity: 3,
    run: (state, _session, args) => {
      const master = masterNamed(state, args[2]);
      // A nil array, not an error: ioredis and redis-py take it as "this sentinel does not know".
      if (master === undefined) return NIL_ARRAY;
      return bulks([master.primary.host, String(master.primary.port)]);
    },
  },
  masters: {
    arity: 2,
    run: (state) => array(state.view.masters().map((m) => masterReply(state, m))),
  },
  master: {
    arity: 3,
    run: (state, _s, args) => masterReply(state, findMaster(state, args[2])),
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
for (const name of MUTATING_SUBCOMMANDS) {
  SENTINEL_SUBCOMMANDS[name] = {
    arity: -2,
    run: () => {
      throw new ReplyError(
        'ERR this Sentinel endpoint is served by georep and is read-only: run failovers and configuration changes through georep',
      );
    },
  };
}
