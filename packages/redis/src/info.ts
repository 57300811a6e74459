/**
 * Parsing of the INFO reply. INFO is text: `# Section` headers and `key:value` lines; some values
 * are themselves `k=v,k=v` lists (replicas, keyspace). Unknown keys are kept, so newer servers
 * (Redis 7.x, Valkey 8) parse without changes.
 */
import type { NodeRole, ReplicaLink } from '@georep/core';

/** INFO as nested maps: section name (lower case) → key → raw value. */
export type InfoSections = Record<string, Record<string, string>>;

/** Parses the raw INFO text. */
export function parseInfo(text: string): InfoSections {
  const sections: InfoSections = {};
  let current: Record<string, string> = {};
  sections[''] = current;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      current = {};
      sections[line.slice(1).trim().toLowerCase()] = current;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    current[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return sections;
}

/** Parses `k=v,k=v` (INFO `slave0`, `db0`) into a map. */
export function parseInfoList(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** The databases INFO `keyspace` lists (those holding keys), in ascending order. */
export function keyspaceDbs(info: InfoSections): number[] {
  return Object.keys(info.keyspace ?? {})
    .map((name) => /^db(\d+)$/.exec(name)?.[1])
    .filter((d): d is string => d !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** A numeric INFO value; undefined when absent, empty or not a number. */
export function infoNumber(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** Short name for the many reads below. */
const num = infoNumber;

/** One replica as its primary reports it (`INFO replication` `slaveN` lines). */
export interface InfoReplicaLine {
  /** The address the primary sees: `replica-announce-ip`, or where the replica connects from. */
  host: string;
  port: number;
  /** `online` once the initial sync is done; `wait_bgsave`, `send_bulk` before. */
  state: string;
  /** The replica's last acknowledged offset (acknowledged about once a second). */
  offset: number;
  /** Seconds since the last acknowledgement. */
  lagSeconds?: number;
}

/** The `slaveN` lines of a parsed INFO replication section, typed, in the order INFO lists them. */
export function parseReplicaLines(repl: Record<string, string>): InfoReplicaLine[] {
  const replicas: InfoReplicaLine[] = [];
  for (const [key, value] of Object.entries(repl)) {
    if (!/^slave\d+$/.test(key)) continue;
    const r = parseInfoList(value);
    const lag = num(r.lag);
    replicas.push({
      host: r.ip ?? '',
      port: num(r.port) ?? 0,
      state: r.state ?? 'unknown',
      offset: num(r.offset) ?? 0,
      ...(lag === undefined ? {} : { lagSeconds: lag }),
    });
  }
  return replicas;
}

/** The fields of INFO that the health plane reports, typed. */
export interface InfoSummary {
  version?: string;
  role: NodeRole;
  replOffset?: number;
  primary?: { host: string; port: number; linkUp: boolean; lastIoSecondsAgo?: number };
  /** A replica's own processed offset (`slave_repl_offset`). */
  replicaOffset?: number;
  replicas: ReplicaLink[];
  /** `run_id`: changes at every restart; Sentinel's last tie-breaker between replicas. */
  runId?: string;
  /** A replica's `slave_priority` (0: never promote it). */
  replicaPriority?: number;
  /** `master_failover_state` while a FAILOVER is running (absent when none). */
  failoverState?: string;
  usedMemoryBytes?: number;
  maxMemoryBytes?: number;
  opsPerSec?: number;
  connectedClients?: number;
  rdbLastSaveTime?: number;
  rdbLastBgsaveOk?: boolean;
  rdbChangesSinceLastSave?: number;
  aofEnabled?: boolean;
  aofLastWriteOk?: boolean;
  /** `loading:1` while the node loads its dataset. */
  loading: boolean;
}

/** Extracts the health-relevant fields from parsed INFO. */
export function summarizeInfo(info: InfoSections): InfoSummary {
  const server = info.server ?? {};
  const repl = info.replication ?? {};
  const memory = info.memory ?? {};
  const stats = info.stats ?? {};
  const persistence = info.persistence ?? {};
  const clients = info.clients ?? {};
  const role: NodeRole = repl.role === 'slave' ? 'replica' : 'primary';
  const replOffset = num(repl.master_repl_offset);
  const replicas: ReplicaLink[] = parseReplicaLines(repl).map(({ host, port, state, offset }) => ({
    host,
    port,
    state,
    offset,
    lagBytes: Math.max(0, (replOffset ?? offset) - offset),
  }));
  const summary: InfoSummary = {
    role,
    replicas,
    loading: persistence.loading === '1',
  };
  const set = <K extends keyof InfoSummary>(key: K, value: InfoSummary[K] | undefined) => {
    if (value !== undefined) summary[key] = value;
  };
  set('version', server.redis_version ?? server.valkey_version);
  set('replOffset', replOffset);
  set('runId', server.run_id);
  if (repl.master_failover_state !== undefined && repl.master_failover_state !== 'no-failover')
    summary.failoverState = repl.master_failover_state;
  if (role === 'replica' && repl.master_host !== undefined) {
    const lastIo = num(repl.master_last_io_seconds_ago);
    summary.primary = {
      host: repl.master_host,
      port: num(repl.master_port) ?? 0,
      linkUp: repl.master_link_status === 'up',
      ...(lastIo === undefined || lastIo < 0 ? {} : { lastIoSecondsAgo: lastIo }),
    };
    set('replicaOffset', num(repl.slave_repl_offset));
    set('replicaPriority', num(repl.slave_priority ?? repl.replica_priority));
  }
  set('usedMemoryBytes', num(memory.used_memory));
  set('maxMemoryBytes', num(memory.maxmemory));
  set('opsPerSec', num(stats.instantaneous_ops_per_sec));
  set('connectedClients', num(clients.connected_clients));
  set('rdbLastSaveTime', num(persistence.rdb_last_save_time));
  if (persistence.rdb_last_bgsave_status !== undefined)
    summary.rdbLastBgsaveOk = persistence.rdb_last_bgsave_status === 'ok';
  set('rdbChangesSinceLastSave', num(persistence.rdb_changes_since_last_save));
  if (persistence.aof_enabled !== undefined) summary.aofEnabled = persistence.aof_enabled === '1';
  if (persistence.aof_last_write_status !== undefined)
    summary.aofLastWriteOk = persistence.aof_last_write_status === 'ok';
  return summary;
}
