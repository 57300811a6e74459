/**
 * RESP2 replies of the Sentinel endpoint, and the field/value lists of `SENTINEL masters`,
 * `replicas` and `sentinels`, in the order a real redis-sentinel 7.0 answers them (checked
 * against one).
 *
 * Replies are built as strings: every value here is text, and one write per command keeps
 * pipelined replies in order without a reply queue.
 */
import {
  sentinelRunId,
  type SentinelMaster,
  type SentinelPeer,
  type SentinelReplica,
} from './sentinel-types.js';

/** The nil bulk string (`$-1`): an unset client name, an unsubscribe with nothing to drop. */
export const NIL_BULK = '$-1\r\n';
/** The nil array (`*-1`): how Sentinel says "no such master" to `get-master-addr-by-name`. */
export const NIL_ARRAY = '*-1\r\n';
/** The `+OK` status reply. */
export const OK = '+OK\r\n';

/** A bulk string; its length header counts UTF-8 bytes, not UTF-16 units. */
export const bulk = (s: string): string => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
/** An integer reply. */
export const integer = (n: number): string => `:${n}\r\n`;
/** An array of already-encoded replies. */
export const array = (encoded: string[]): string => `*${encoded.length}\r\n${encoded.join('')}`;
/** An array of bulk strings, the shape of most Sentinel replies. */
export const bulks = (strings: string[]): string => array(strings.map(bulk));
/**
 * An error reply; `message` starts with its code (`ERR`, `NOAUTH`, ...). A CR or LF inside an
 * error line would desynchronise the client, so they become spaces.
 */
export const errorReply = (message: string): string => `-${message.replace(/[\r\n]/g, ' ')}\r\n`;

/** Sentinel's default `down-after-milliseconds`. */
const DEFAULT_DOWN_AFTER_MS = 30_000;
/** Sentinel's default `failover-timeout`. */
const DEFAULT_FAILOVER_TIMEOUT_MS = 180_000;

/** The link fields every instance entry carries; georep pings nothing, so they are constant. */
const LINK_FIELDS = [
  ...['link-pending-commands', '0', 'link-refcount', '1', 'last-ping-sent', '0'],
  ...['last-ok-ping-reply', '0', 'last-ping-reply', '0'],
];

const downAfterMs = (master: SentinelMaster): string =>
  String(master.downAfterMs ?? DEFAULT_DOWN_AFTER_MS);

/**
 * The quorum reported for `master` when `sentinels` sentinels (this one included) watch it: its
 * own `quorum`, else a majority.
 */
export function quorumOf(master: SentinelMaster, sentinels: number): number {
  return master.quorum ?? Math.floor(sentinels / 2) + 1;
}

/**
 * The flat field/value list of `SENTINEL master(s)`, in redis-sentinel 7.0's order.
 * `otherSentinels` counts the peers (not this endpoint); `primarySince` is when this endpoint
 * first saw the current primary (epoch ms), which gives `role-reported-time`.
 */
export function masterFields(
  master: SentinelMaster,
  otherSentinels: number,
  primarySince: number | undefined,
): string[] {
  const { primary } = master;
  return [
    ...['name', master.name, 'ip', primary.host, 'port', String(primary.port)],
    ...['runid', primary.runId ?? '', 'flags', primary.flags ?? 'master'],
    ...LINK_FIELDS,
    ...['down-after-milliseconds', downAfterMs(master), 'info-refresh', '0'],
    ...['role-reported', 'master'],
    ...['role-reported-time', String(primarySince === undefined ? 0 : Date.now() - primarySince)],
    ...['config-epoch', String(master.configEpoch ?? 0)],
    ...['num-slaves', String(master.replicas.length)],
    ...['num-other-sentinels', String(otherSentinels)],
    ...['quorum', String(quorumOf(master, otherSentinels + 1))],
    ...['failover-timeout', String(master.failoverTimeoutMs ?? DEFAULT_FAILOVER_TIMEOUT_MS)],
    ...['parallel-syncs', '1'],
  ];
}

/** The flat field/value list of one `SENTINEL replicas` entry, in redis-sentinel 7.0's order. */
export function replicaFields(master: SentinelMaster, replica: SentinelReplica): string[] {
  const { host, port } = replica;
  const fields = [
    ...['name', `${host}:${port}`, 'ip', host, 'port', String(port)],
    ...['runid', replica.runId ?? '', 'flags', replica.up ? 'slave' : 'slave,s_down'],
    ...LINK_FIELDS,
    ...['down-after-milliseconds', downAfterMs(master), 'info-refresh', '0'],
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

/** The flat field/value list of one `SENTINEL sentinels` entry, in redis-sentinel 7.0's order. */
export function peerFields(master: SentinelMaster, peer: SentinelPeer): string[] {
  const runId = peer.runId ?? sentinelRunId(`${peer.host}:${peer.port}`);
  return [
    ...['name', runId, 'ip', peer.host, 'port', String(peer.port), 'runid', runId],
    ...['flags', 'sentinel'],
    ...LINK_FIELDS,
    ...['down-after-milliseconds', downAfterMs(master)],
    ...['last-hello-message', '0', 'voted-leader', '?', 'voted-leader-epoch', '0'],
  ];
}
