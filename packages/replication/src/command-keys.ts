/**
 * Which keys a replicated command writes, from its argv alone.
 *
 * The replication stream carries *effects*: since Redis 7.0 scripts and functions are replicated
 * as the commands they ran (wrapped in MULTI/EXEC when more than one), relative expiries arrive as
 * absolute ones (`SET k v PXAT`, `PEXPIREAT`), SPOP as SREM, blocking moves as their plain forms,
 * XREADGROUP as XCLAIM/XGROUP SETID, expiries and evictions as DEL/UNLINK. So a table of the write
 * commands, with where their keys sit, is enough; the table (in README.md) also covers the forms
 * that clients send, for streams from older servers and for apply-side checks.
 *
 * Commands not in the table come back as `{ unknown: true }`: the consumer then falls back to
 * shipping whole values of whatever it can find out, and nothing crashes.
 */

/** What a command does to the keyspace. */
export interface CommandWrites {
  /**
   * Lower-case command name; container commands carry their subcommand (`xgroup|create`,
   * `function|load`).
   */
  command: string;
  /**
   * Keys of the current database whose value may change: created, modified, expired or deleted
   * (a RENAME lists both names). Empty for commands that touch no single key.
   */
  keys: Buffer[];
  /** The command is not in the table: nothing is known about what it writes. */
  unknown?: true;
  /** FLUSHDB (`db`) or FLUSHALL (`all`). */
  flush?: 'db' | 'all';
  /** SELECT: the database of the following commands. Capture consumes these itself. */
  selectDb?: number;
  /** SWAPDB: the two databases exchanged. */
  swapDb?: [number, number];
  /** Keys written in another database: `COPY ... DB n` and `MOVE key n`. */
  otherDb?: { db: number; keys: Buffer[] };
  /**
   * MULTI (`begin`), EXEC (`commit`), DISCARD (`discard`). The commands between MULTI and EXEC in
   * the stream form one atomic unit: a transaction, or a script/function with several writes.
   */
  transaction?: 'begin' | 'commit' | 'discard';
  /**
   * EVAL/EVALSHA/FCALL seen verbatim (never in a Redis 7 stream; older servers could replicate
   * scripts verbatim): `keys` are the declared ones, but a script may write others.
   */
  script?: true;
  /** Effects outside the keyspace: function/script libraries, pub/sub messages, nothing. */
  nonKey?: 'functions' | 'pubsub' | 'none';
}

type Spec = (argv: readonly Buffer[]) => Omit<CommandWrites, 'command'>;

/** Keys at `argv[from..]` up to `end` (negative: counted from the end, -1 = last), every `step`. */
function range(from: number, end = -1, step = 1): Spec {
  return (argv) => {
    const last = end < 0 ? argv.length + end : end;
    const keys: Buffer[] = [];
    for (let i = from; i <= last && i < argv.length; i += step) keys.push(argv[i]!);
    return { keys };
  };
}

/** One key at `argv[at]`, and more at the other positions given. */
function at(...positions: number[]): Spec {
  // A plain loop: SET and most other writes go through here, once per captured command.
  return (argv) => {
    const keys: Buffer[] = [];
    for (const p of positions) {
      const key = argv[p];
      if (key !== undefined) keys.push(key);
    }
    return { keys };
  };
}

/** `numkeys key...` with the count at `argv[countAt]` (EVAL, LMPOP, ZUNIONSTORE sources...). */
function counted(countAt: number, extra: readonly number[] = []): Spec {
  return (argv) => {
    const n = int(argv[countAt]) ?? 0;
    const keys = extra.flatMap((p) => (argv[p] === undefined ? [] : [argv[p]]));
    for (let i = 0; i < n && countAt + 1 + i < argv.length; i++) keys.push(argv[countAt + 1 + i]!);
    return { keys };
  };
}

/** The argument following `keyword` (case-insensitive), e.g. SORT ... STORE dest. */
function afterKeyword(
  argv: readonly Buffer[],
  keywords: readonly string[],
  from: number,
): Buffer[] {
  const out: Buffer[] = [];
  for (let i = from; i < argv.length - 1; i++) {
    if (keywords.includes(lower(argv[i]))) out.push(argv[i + 1]!);
  }
  return out;
}

function int(b: Buffer | undefined): number | undefined {
  if (b === undefined) return undefined;
  const n = Number(b.toString('latin1'));
  return Number.isSafeInteger(n) ? n : undefined;
}

function lower(b: Buffer | undefined): string {
  return b === undefined ? '' : b.toString('latin1').toLowerCase();
}

const first = at(1);
const firstTwo = at(1, 2);
const allKeys = range(1);
const allButLast = range(1, -2);
const none: Spec = () => ({ keys: [] });

/** Subcommand-dispatched containers: key position per subcommand; others are unknown. */
const CONTAINERS: Record<string, Record<string, Spec>> = {
  xgroup: {
    create: at(2),
    setid: at(2),
    destroy: at(2),
    createconsumer: at(2),
    delconsumer: at(2),
  },
  function: {
    load: () => ({ keys: [], nonKey: 'functions' }),
    delete: () => ({ keys: [], nonKey: 'functions' }),
    flush: () => ({ keys: [], nonKey: 'functions' }),
    restore: () => ({ keys: [], nonKey: 'functions' }),
  },
  script: {
    load: () => ({ keys: [], nonKey: 'functions' }),
    flush: () => ({ keys: [], nonKey: 'functions' }),
  },
};

const SCRIPT: Spec = (argv) => ({ ...counted(2)(argv), script: true });

/** The table. Documented in README.md; keep both in step. */
const TABLE: Record<string, Spec> = {
  // Strings and counters.
  set: first,
  setnx: first,
  setex: first,
  psetex: first,
  getset: first,
  getdel: first,
  getex: first,
  append: first,
  setrange: first,
  incr: first,
  decr: first,
  incrby: first,
  decrby: first,
  incrbyfloat: first,
  mset: range(1, -1, 2),
  msetnx: range(1, -1, 2),
  setbit: first,
  bitfield: first,
  bitop: at(2),
  // Generic keyspace.
  del: allKeys,
  unlink: allKeys,
  expire: first,
  pexpire: first,
  expireat: first,
  pexpireat: first,
  persist: first,
  rename: firstTwo,
  renamenx: firstTwo,
  restore: first,
  'restore-asking': first,
  copy: (argv) => {
    const db = int(afterKeyword(argv, ['db'], 3)[0]);
    return db === undefined
      ? { keys: [argv[2]!] }
      : { keys: [], otherDb: { db, keys: [argv[2]!] } };
  },
  move: (argv) => ({ keys: [argv[1]!], otherDb: { db: int(argv[2]) ?? -1, keys: [argv[1]!] } }),
  sort: (argv) => ({ keys: afterKeyword(argv, ['store'], 2) }),
  migrate: (argv) => ({
    // MIGRATE deletes local keys (unless COPY); it reaches a stream only as the DELs it caused.
    keys: argv[3] !== undefined && argv[3].length > 0 ? [argv[3]] : keysAfter(argv, 'keys'),
  }),
  // Hashes.
  hset: first,
  hsetnx: first,
  hmset: first,
  hdel: first,
  hincrby: first,
  hincrbyfloat: first,
  hexpire: first,
  hpexpire: first,
  hexpireat: first,
  hpexpireat: first,
  hpersist: first,
  // Sets.
  sadd: first,
  srem: first,
  spop: first,
  smove: firstTwo,
  sunionstore: first,
  sinterstore: first,
  sdiffstore: first,
  // Sorted sets.
  zadd: first,
  zincrby: first,
  zrem: first,
  zremrangebyscore: first,
  zremrangebyrank: first,
  zremrangebylex: first,
  zpopmin: first,
  zpopmax: first,
  bzpopmin: allButLast,
  bzpopmax: allButLast,
  zmpop: counted(1),
  bzmpop: counted(2),
  zunionstore: first,
  zinterstore: first,
  zdiffstore: first,
  zrangestore: first,
  // Lists.
  lpush: first,
  rpush: first,
  lpushx: first,
  rpushx: first,
  lpop: first,
  rpop: first,
  linsert: first,
  lset: first,
  lrem: first,
  ltrim: first,
  rpoplpush: firstTwo,
  brpoplpush: firstTwo,
  lmove: firstTwo,
  blmove: firstTwo,
  blpop: allButLast,
  brpop: allButLast,
  lmpop: counted(1),
  blmpop: counted(2),
  // HyperLogLog (PFCOUNT may rewrite its cache, so it counts as a write).
  pfadd: first,
  pfmerge: first,
  pfcount: allKeys,
  // Geo.
  geoadd: first,
  geosearchstore: first,
  georadius: (argv) => ({ keys: afterKeyword(argv, ['store', 'storedist'], 5) }),
  georadiusbymember: (argv) => ({ keys: afterKeyword(argv, ['store', 'storedist'], 4) }),
  // Streams.
  xadd: first,
  xdel: first,
  xtrim: first,
  xack: first,
  xclaim: first,
  xautoclaim: first,
  xsetid: first,
  xreadgroup: (argv) => ({ keys: streamsKeys(argv) }),
  // Databases and transactions.
  flushdb: () => ({ keys: [], flush: 'db' }),
  flushall: () => ({ keys: [], flush: 'all' }),
  select: (argv) => ({ keys: [], selectDb: int(argv[1]) ?? 0 }),
  swapdb: (argv) => ({ keys: [], swapDb: [int(argv[1]) ?? -1, int(argv[2]) ?? -1] }),
  multi: () => ({ keys: [], transaction: 'begin' }),
  exec: () => ({ keys: [], transaction: 'commit' }),
  discard: () => ({ keys: [], transaction: 'discard' }),
  // Scripting, seen verbatim only from pre-7.0 servers (7.0 replicates effects).
  eval: SCRIPT,
  evalsha: SCRIPT,
  eval_ro: SCRIPT,
  evalsha_ro: SCRIPT,
  fcall: SCRIPT,
  fcall_ro: SCRIPT,
  // No keyspace effect.
  publish: () => ({ keys: [], nonKey: 'pubsub' }),
  spublish: () => ({ keys: [], nonKey: 'pubsub' }),
  ping: none,
  replconf: () => ({ keys: [], nonKey: 'none' }),
};

function keysAfter(argv: readonly Buffer[], keyword: string): Buffer[] {
  const i = argv.findIndex((a, j) => j > 0 && lower(a) === keyword);
  return i < 0 ? [] : argv.slice(i + 1);
}

/** XREADGROUP ... STREAMS k1 k2 id1 id2: the first half after STREAMS. */
function streamsKeys(argv: readonly Buffer[]): Buffer[] {
  const rest = keysAfter(argv, 'streams');
  return rest.slice(0, Math.floor(rest.length / 2));
}

/**
 * What `argv` writes. Never throws: malformed or unknown commands give `{ unknown: true }` (and
 * a known command with too few arguments gives the keys that are there).
 *
 * @example
 * ```ts
 * commandKeys([Buffer.from('RENAME'), Buffer.from('a'), Buffer.from('b')]);
 * // → { command: 'rename', keys: [<a>, <b>] }
 * ```
 */
export function commandKeys(argv: readonly Buffer[]): CommandWrites {
  const name = lower(argv[0]);
  const container = CONTAINERS[name];
  if (container !== undefined) {
    const sub = lower(argv[1]);
    const spec = container[sub];
    const command = `${name}|${sub}`;
    return spec === undefined ? { command, keys: [], unknown: true } : { command, ...spec(argv) };
  }
  const spec = TABLE[name];
  if (spec === undefined) return { command: name, keys: [], unknown: true };
  return { command: name, ...spec(argv) };
}

/** Names (lower case) of the commands {@link commandKeys} knows; containers as `name|sub`. */
export function knownWriteCommands(): string[] {
  const names = Object.keys(TABLE);
  for (const [name, subs] of Object.entries(CONTAINERS)) {
    for (const sub of Object.keys(subs)) names.push(`${name}|${sub}`);
  }
  return names.sort();
}
