/**
 * Plain commands that rebuild a decoded value on a target that cannot RESTORE its raw bytes: the
 * type code is too new for the target (a Redis 7.2 set listpack into 7.0), or the payload is
 * larger than the target's `proto-max-bulk-len`. The result is logically identical (same
 * members, scores, fields, stream ids and consumer groups); the target picks its own encoding.
 *
 * Aggregates are written in bounded batches, so no single command approaches the argument or
 * query-buffer limits. Strings and elements larger than the target's `proto-max-bulk-len` cannot
 * exist on it at all and are reported as unsupported.
 */
import type { HashEntry, RdbValue, StreamId, StreamValue } from '@georep/rdb';
import type { TargetInfo } from './target-info.js';

/** One command: name then arguments. */
export type Command = [name: string, ...args: Array<string | Buffer>];

/** The commands for one key, or why it cannot be written. */
export interface CommandPlan {
  commands: Command[];
  /** Set when the key cannot be written at all (the plan is then empty). */
  unsupported?: string;
  /** Set when the key is written but something is lost (hash field TTLs on an old target). */
  lossy?: string;
}

/** Most elements per variadic command: keeps each reply and each query buffer small. */
const MAX_ELEMENTS = 1024;
/** Most argument bytes per command, below any sane `proto-max-bulk-len`/query-buffer limit. */
const MAX_COMMAND_BYTES = 8 * 1024 * 1024;
/** `SCG_INVALID_ENTRIES_READ`: the group's read counter is unknown. */
const INVALID_ENTRIES_READ = 2n ** 64n - 1n;

/** Options of {@link commandsForValue}. */
export interface CommandOptions {
  /** Send `DEL key` first (replacing an existing key, or retrying a partial one). */
  deleteFirst: boolean;
  /** The absolute expiry to set with PEXPIREAT after the value, if any. */
  expireAtMs: number | undefined;
  /** "Now" for dropping already-expired hash fields. */
  now: number;
}

/** Builds the commands that write `value` under `key` on `target`. */
export function commandsForValue(
  key: Buffer,
  value: RdbValue,
  target: TargetInfo,
  options: CommandOptions,
): CommandPlan {
  const limit = target.protoMaxBulkLen;
  const out: Command[] = [];
  if (options.deleteFirst) out.push(['DEL', key]);
  let lossy: string | undefined;
  switch (value.type) {
    case 'string':
      // Redis caps a string's total size at proto-max-bulk-len too (APPEND checks it), so a
      // longer string cannot exist on this target at all.
      if (value.value.length > limit) return tooBig('string', value.value.length, limit);
      out.push(['SET', key, value.value]);
      break;
    case 'list':
    case 'set': {
      const big = value.value.find((e) => e.length > limit);
      if (big !== undefined) return tooBig(value.type, big.length, limit);
      const cmd = value.type === 'list' ? 'RPUSH' : 'SADD';
      batched(
        value.value,
        (e) => e.length,
        (batch) => out.push([cmd, key, ...batch]),
      );
      break;
    }
    case 'zset': {
      const big = value.value.find((e) => e.member.length > limit);
      if (big !== undefined) return tooBig('zset', big.member.length, limit);
      batched(
        value.value,
        (e) => e.member.length + 24,
        (batch) =>
          out.push(['ZADD', key, ...batch.flatMap((e) => [formatScore(e.score), e.member])]),
      );
      break;
    }
    case 'hash': {
      const live = value.value.filter(
        (e) => e.expireAtMs === undefined || e.expireAtMs > options.now,
      );
      const big = live.find((e) => e.field.length > limit || e.value.length > limit);
      if (big !== undefined)
        return tooBig('hash', Math.max(big.field.length, big.value.length), limit);
      // An aggregate whose every member expired is no key at all.
      if (live.length === 0) return { commands: [], unsupported: 'every hash field has expired' };
      batched(
        live,
        (e) => e.field.length + e.value.length,
        (batch) => out.push(['HSET', key, ...batch.flatMap((e) => [e.field, e.value])]),
      );
      lossy = pushFieldTtls(out, key, live, target);
      break;
    }
    case 'stream': {
      const r = pushStream(out, key, value.value, target);
      if (r !== undefined) return r;
      break;
    }
    case 'module':
      return {
        commands: [],
        unsupported: `module type ${value.value.moduleName} has no plain-command form; RESTORE needs the module on the target`,
      };
  }
  if (options.expireAtMs !== undefined) out.push(['PEXPIREAT', key, String(options.expireAtMs)]);
  return lossy === undefined ? { commands: out } : { commands: out, lossy };
}

function tooBig(type: string, size: number, limit: number): CommandPlan {
  const what = type === 'string' ? 'a string' : `a ${type} element`;
  return {
    commands: [],
    unsupported: `${what} of ${size} bytes exceeds the target's proto-max-bulk-len (${limit})`,
  };
}

/** Calls `emit` with consecutive slices bounded in count and bytes. */
function batched<T>(items: T[], size: (item: T) => number, emit: (batch: T[]) => void): void {
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    const s = size(items[i]!);
    if (i > start && (i - start >= MAX_ELEMENTS || bytes + s > MAX_COMMAND_BYTES)) {
      emit(items.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += s;
  }
  if (start < items.length) emit(items.slice(start));
}

/**
 * Shortest text that parses back to exactly the same double (JavaScript's number formatting
 * guarantees the round trip; Redis reads scores with strtod).
 */
export function formatScore(score: number): string {
  if (score === Infinity) return 'inf';
  if (score === -Infinity) return '-inf';
  return String(score);
}

/** HPEXPIREAT per distinct expiry; returns what is lost when the target has no field TTLs. */
function pushFieldTtls(
  out: Command[],
  key: Buffer,
  fields: HashEntry[],
  target: TargetInfo,
): string | undefined {
  const byExpiry = new Map<number, Buffer[]>();
  for (const f of fields) {
    if (f.expireAtMs === undefined) continue;
    const list = byExpiry.get(f.expireAtMs) ?? [];
    list.push(f.field);
    byExpiry.set(f.expireAtMs, list);
  }
  if (byExpiry.size === 0) return undefined;
  if (!target.hashFieldTtl) {
    const n = [...byExpiry.values()].reduce((a, l) => a + l.length, 0);
    return `${n} hash field TTL(s) dropped: the target has no HPEXPIREAT (needs Redis 7.4+ or Valkey 9+)`;
  }
  for (const [at, list] of byExpiry) {
    batched(
      list,
      (f) => f.length,
      (batch) =>
        out.push(['HPEXPIREAT', key, String(at), 'FIELDS', String(batch.length), ...batch]),
    );
  }
  return undefined;
}

function id(v: StreamId): string {
  return `${v.ms}-${v.seq}`;
}

/**
 * A stream: its live entries with their ids, the last id and counters (XSETID), consumer groups
 * with their last-delivered id and read counter, consumers, and each pending entry re-assigned
 * with its delivery time and count (XCLAIM ... FORCE JUSTID). Pending entries whose message was
 * deleted cannot be re-created and are reported as lossy via the unsupported-free return.
 */
function pushStream(
  out: Command[],
  key: Buffer,
  s: StreamValue,
  target: TargetInfo,
): CommandPlan | undefined {
  const live = s.entries.filter((e) => !e.deleted);
  for (const e of live) {
    if (e.fields.length === 0) continue;
    out.push(['XADD', key, id(e.id), ...e.fields.flatMap(([f, v]) => [f, v])]);
  }
  if (live.length === 0) {
    // An empty stream still exists (it keeps its last id and groups): create it empty.
    out.push(['XGROUP', 'CREATE', key, '__georep_import', '0', 'MKSTREAM']);
    out.push(['XGROUP', 'DESTROY', key, '__georep_import']);
  }
  const setId: Command = ['XSETID', key, id(s.lastId)];
  if (target.streamV2Commands && s.entriesAdded !== undefined) {
    setId.push('ENTRIESADDED', String(s.entriesAdded));
    if (s.maxDeletedId !== undefined) setId.push('MAXDELETEDID', id(s.maxDeletedId));
  }
  out.push(setId);
  const liveIds = new Set(live.map((e) => id(e.id)));
  for (const g of s.groups) {
    const create: Command = ['XGROUP', 'CREATE', key, g.name, id(g.lastId)];
    if (
      target.streamV2Commands &&
      g.entriesRead !== undefined &&
      g.entriesRead !== INVALID_ENTRIES_READ
    ) {
      create.push('ENTRIESREAD', String(g.entriesRead));
    }
    out.push(create);
    const delivery = new Map(g.pending.map((p) => [id(p.id), p]));
    for (const c of g.consumers) {
      if (target.createConsumer) out.push(['XGROUP', 'CREATECONSUMER', key, g.name, c.name]);
      for (const pid of c.pending) {
        const p = delivery.get(id(pid));
        if (p === undefined || !liveIds.has(id(pid))) continue;
        out.push([
          'XCLAIM',
          key,
          g.name,
          c.name,
          '0',
          id(pid),
          'TIME',
          String(p.deliveryTime),
          'RETRYCOUNT',
          String(p.deliveryCount),
          'FORCE',
          'JUSTID',
        ]);
      }
    }
  }
  return undefined;
}
