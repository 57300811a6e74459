/**
 * What record.lua and apply.lua share: the Lua helpers both scripts start with, the flat form
 * operations take between TypeScript and Lua, tag order, and the errors of the two scripts.
 *
 * The flat form is a list of byte strings, one field per item, so that keys, members, values and
 * DUMP payloads stay binary without any encoding. TypeScript passes it to a script packed into
 * one argument (`script-args.ts`); record.lua returns it (and stores it in the outbox) as
 * netstrings (`<length>:<bytes>`). The `cmsgpack` bundled with Redis 7.0 cannot be used for either direction: it refuses MessagePack
 * `bin` values, and it writes Lua strings as `str`, which is not valid for arbitrary bytes.
 *
 * One operation in flat form, by kind (every number as decimal text):
 *
 * | kind | items |
 * |---|---|
 * | value | `v db key tag dump pttl n (region cum)×n` (`dump` empty = deleted) |
 * | counter | `c db key tag cum` |
 * | expire | `e db key tag at prev` |
 * | elements | `l db key tag type n (member value)×n m (member observed)×m` |
 * | flush | `f db tag` |
 *
 * Metadata fields the scripts keep beyond the table in docs/replication-internals.md:
 *
 * - `e` is the list of live expiry changes, one per region, as `<tag>=<at>` separated by spaces
 *   (an expiry is a multi-value register: concurrent changes keep the longest).
 * - `d` is the newest `prev` seen: every expiry change up to it was replaced by a later one.
 *   `ExpireOp.prev` is the newest live change the origin saw (`''` for none).
 * - `p:<member>` holds an element (type byte `h`/`s`/`z`, then the value) added while the key had
 *   another type. A later write that deletes the key or gives it that type brings it in.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { GeorepError, type GeorepErrorOptions } from '@georep/core';
import { META_PREFIX, type ElementType, type Op, type Tag } from './ops.js';
import { LUA_UNPACK_ITEMS, type ScriptArgPacker } from './script-args.js';

/** A script (record.lua or apply.lua) failed in Redis, or replied with something unexpected. */
export class ReplicationScriptError extends GeorepError {
  override name = 'ReplicationScriptError';
  /** `record` or `apply`. */
  readonly script: string;
  constructor(
    code: 'replication.script-failed' | 'replication.bad-script-reply',
    script: string,
    message: string,
    options: GeorepErrorOptions = {},
  ) {
    super(code, `${script}.lua: ${message}`, {
      ...options,
      details: { script, ...options.details },
    });
    this.script = script;
  }
}

/** The `__georep:outbox` key holds something record.lua did not write. */
export class OutboxFormatError extends GeorepError {
  override name = 'OutboxFormatError';
  constructor(message: string, options: GeorepErrorOptions = {}) {
    super('replication.bad-outbox', `__georep:outbox: ${message}`, {
      hint: 'something other than georep wrote __georep:outbox; delete it and let capture resync',
      ...options,
    });
  }
}

/** A batch or a record input that the scripts cannot take (bad region name, version, kind). */
export class ReplicationInputError extends GeorepError {
  override name = 'ReplicationInputError';
  constructor(message: string, options: GeorepErrorOptions = {}) {
    super('replication.bad-input', message, options);
  }
}

/** Name of the metadata hash of `key`: `__georep:m:` followed by the key's bytes. */
export function metaKey(key: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(META_PREFIX, 'latin1'), key]);
}

/**
 * Orders two tags the way the scripts do: bytewise, `''` before every tag. Negative when `a`
 * is earlier.
 */
export function compareTags(a: Tag, b: Tag): number {
  return Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
}

/** SHA1 of a script, the name EVALSHA runs it by. */
export function scriptSha(lua: string): string {
  return createHash('sha1').update(lua).digest('hex');
}

/** Region names appear in tags and in metadata field names; the same syntax as HLC tags. */
export const REGION_NAME = /^[a-z0-9-]+$/;

/**
 * Lua helpers that start both scripts. Kept as plain Lua in one string so that the scripts read
 * top to bottom in `redis-cli SCRIPT` dumps and error messages point at real line numbers.
 */
export const LUA_HELPERS =
  LUA_UNPACK_ITEMS +
  String.raw`
local META = '__georep:m:'
local FLUSH_KEY = '__georep:flush'
local OUTBOX_KEY = '__georep:outbox'
local function outbox_key(seq)
  if tonumber(seq) % 2 == 1 then return OUTBOX_KEY .. ':1' end
  return OUTBOX_KEY
end
local APPLY_KEY = '__georep:apply'

-- The db this run has SELECTed: operations of one db in a row SELECT once. Whatever SELECTs
-- directly (flushes) sets it too.
local current_db = nil
local function select_db(db)
  if db ~= current_db then
    redis.call('SELECT', db)
    current_db = db
  end
end

-- The arguments are read in order: a fixed header, then the operations in flat form until the
-- end. The header is ARGV; the operations come packed in ARGV's last item (script-args.ts), and
-- each script unpacks them behind the header into args before it reads them.
local args = ARGV
local argi = 1
local function arg()
  local v = args[argi]
  argi = argi + 1
  return v
end
local function args_left()
  return argi <= #args
end

-- Byte order. Lua's < on strings calls strcoll(), and redis-server runs
-- setlocale(LC_COLLATE, ""), so < follows the server's locale, not the bytes.
local function lt(a, b)
  if a == b then return false end
  local la, lb = #a, #b
  local n = la < lb and la or lb
  local i = 1
  while i + 7 <= n and string.sub(a, i, i + 7) == string.sub(b, i, i + 7) do i = i + 8 end
  while i <= n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
    i = i + 1
  end
  return la < lb
end

-- Tags are <ms>.<counter>.<region>; region names have no dots.
local function region_of(tag)
  return string.match(tag, '^[^.]*%.[^.]*%.(.*)$') or ''
end

local function is_err(r)
  return type(r) == 'table' and r.err ~= nil
end

local function fmt_int(n)
  return string.format('%d', n)
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- unpack() is limited by the Lua C stack (8000 values): delete in chunks.
local function hdel_all(key, fields)
  for i = 1, #fields, 500 do
    local j = i + 499
    if j > #fields then j = #fields end
    redis.call('HDEL', key, unpack(fields, i, j))
  end
end

-- __georep:flush of the selected db, cached for this run (flushes in the batch update it).
local flush_tags = {}
local function flush_tag(db)
  local v = flush_tags[db]
  if v == nil then
    v = redis.call('GET', FLUSH_KEY) or ''
    flush_tags[db] = v
  end
  return v
end

-- Decimal arithmetic. Counter contributions are int64 in Redis; Lua numbers are doubles, exact
-- only up to 2^53. Integers are therefore added digit by digit; anything else (INCRBYFLOAT
-- counters) goes through doubles.
local function is_int(s)
  return string.find(s, '^%-?%d+$') ~= nil
end

local function strip_zeros(s)
  s = string.gsub(s, '^0+', '')
  if s == '' then return '0' end
  return s
end

local function mag_lt(a, b)
  if #a ~= #b then return #a < #b end
  return lt(a, b)
end

local function mag_add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = carry
    if i > 0 then s = s + string.byte(a, i) - 48 end
    if j > 0 then s = s + string.byte(b, j) - 48 end
    out[#out + 1] = s % 10
    carry = (s - s % 10) / 10
    i, j = i - 1, j - 1
  end
  return strip_zeros(string.reverse(table.concat(out)))
end

-- a >= b
local function mag_sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local s = string.byte(a, i) - 48 - borrow
    if j > 0 then s = s - (string.byte(b, j) - 48) end
    if s < 0 then s, borrow = s + 10, 1 else borrow = 0 end
    out[#out + 1] = s
    i, j = i - 1, j - 1
  end
  return strip_zeros(string.reverse(table.concat(out)))
end

local function int_add(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  local ma = strip_zeros(na and string.sub(a, 2) or a)
  local mb = strip_zeros(nb and string.sub(b, 2) or b)
  local m, neg
  if na == nb then
    m, neg = mag_add(ma, mb), na
  elseif mag_lt(ma, mb) then
    m, neg = mag_sub(mb, ma), nb
  else
    m, neg = mag_sub(ma, mb), na
  end
  if m == '0' or not neg then return m end
  return '-' .. m
end

local function num_neg(a)
  if string.sub(a, 1, 1) == '-' then return string.sub(a, 2) end
  return '-' .. a
end

local function num_add(a, b)
  if is_int(a) and is_int(b) then return int_add(a, b) end
  return string.format('%.17g', (tonumber(a) or 0) + (tonumber(b) or 0))
end

local function num_sub(a, b)
  return num_add(a, num_neg(b))
end

local function is_zero(s)
  return tonumber(s) == 0
end

-- INCRBY, or INCRBYFLOAT when the value or the delta is not an integer. Returns the new value
-- as Redis stores it, or nil when the value is not a number (it is left as it is).
local function incr_by(key, delta)
  if is_int(delta) then
    if not is_err(redis.pcall('INCRBY', key, delta)) then return redis.call('GET', key) end
  end
  local r = redis.pcall('INCRBYFLOAT', key, delta)
  if is_err(r) then return nil end
  return r
end

-- Members of hashes, sets and sorted sets, by type.
local function member_value(key, typ, m)
  if typ == 'hash' then return redis.call('HGET', key, m) end
  if typ == 'set' then
    if redis.call('SISMEMBER', key, m) == 1 then return '' end
    return false
  end
  if typ == 'zset' then return redis.call('ZSCORE', key, m) end
  return false
end

local function write_member(key, typ, m, v)
  if typ == 'hash' then redis.call('HSET', key, m, v)
  elseif typ == 'set' then redis.call('SADD', key, m)
  elseif typ == 'zset' then redis.call('ZADD', key, v, m) end
end

local function remove_member(key, typ, m)
  if typ == 'hash' then redis.call('HDEL', key, m)
  elseif typ == 'set' then redis.call('SREM', key, m)
  elseif typ == 'zset' then redis.call('ZREM', key, m) end
end

-- Type of an element waiting in p:<member>, as the first byte of the field's value.
local CHAR_OF = { hash = 'h', set = 's', zset = 'z' }
local TYPE_OF = { h = 'hash', s = 'set', z = 'zset' }

local function is_collection(typ)
  return typ == 'hash' or typ == 'set' or typ == 'zset'
end

-- Expiry heads. The expiry of a key is a multi-value register: field e lists, per region, the
-- latest expiry change from that region as <tag>=<at> (at = absolute ms, 0 = persist). Field d
-- is the newest tag that an expiry change observed (its prev): every change up to it has been
-- replaced. A head is live when its tag is >= t and > d. The key's expiry is the longest live
-- one (0 = persist = longest).
local function parse_heads(s)
  local h = {}
  if s then
    for tag, at in string.gmatch(s, '([^ =]+)=(%d+)') do h[region_of(tag)] = { tag, at } end
  end
  return h
end

local function is_live(h, t, dead)
  return not lt(h[1], t) and lt(dead, h[1])
end

-- The values of e and d (nil: no field), keeping only live heads and a d that can still matter
-- (newer than t).
local function heads_fields(heads, dead, t)
  local hs = {}
  for _, h in pairs(heads) do
    if is_live(h, t, dead) then hs[#hs + 1] = h[1] .. '=' .. h[2] end
  end
  local e, d = nil, nil
  if #hs == 1 then
    e = hs[1]
  elseif #hs > 1 then
    table.sort(hs, lt)
    e = table.concat(hs, ' ')
  end
  if lt(t, dead) then d = dead end
  return e, d
end

-- Writes e and d (see heads_fields).
local function store_heads(mk, heads, dead, t)
  local e, d = heads_fields(heads, dead, t)
  if e then redis.call('HSET', mk, 'e', e) else redis.call('HDEL', mk, 'e') end
  if d then redis.call('HSET', mk, 'd', d) else redis.call('HDEL', mk, 'd') end
end

local function effective_at(heads, dead, t)
  local best = nil
  for _, h in pairs(heads) do
    if is_live(h, t, dead) then
      local at = tonumber(h[2])
      if at == 0 then return 0 end
      if best == nil or at > best then best = at end
    end
  end
  return best or 0
end

-- The expiry the metadata says the key must have (selected db).
local function expiry_of(mk, db)
  local m = redis.call('HMGET', mk, 't', 'e', 'd')
  local t = m[1] or flush_tag(db)
  return effective_at(parse_heads(m[2]), m[3] or '', t)
end

-- Sets the key's expiry to at (0 = none) when it exists and differs.
local function set_expiry(key, at)
  local cur = redis.call('PEXPIRETIME', key)
  if cur == -2 then return end
  if at == 0 then
    if cur ~= -1 then redis.call('PERSIST', key) end
  elseif cur ~= at then
    redis.call('PEXPIREAT', key, fmt_int(at))
  end
end
`;

/** Appends one operation in flat form (the table above) to a script's packed argument. */
export function packOp(p: ScriptArgPacker, op: Op): void {
  switch (op.kind) {
    case 'value': {
      p.text('v');
      p.int(op.db);
      p.bytes(op.key);
      p.text(op.tag);
      if (op.dump === null) p.text('');
      else p.bytes(op.dump);
      p.int(op.pttl);
      const ob = Object.entries(op.ob);
      p.int(ob.length);
      for (const [region, cum] of ob) {
        p.text(region);
        p.text(cum);
      }
      return;
    }
    case 'counter':
      p.text('c');
      p.int(op.db);
      p.bytes(op.key);
      p.text(op.tag);
      p.text(op.cum);
      return;
    case 'expire':
      p.text('e');
      p.int(op.db);
      p.bytes(op.key);
      p.text(op.tag);
      p.int(op.at);
      p.text(op.prev);
      return;
    case 'elements':
      p.text('l');
      p.int(op.db);
      p.bytes(op.key);
      p.text(op.tag);
      p.text(op.type);
      p.int(op.add.length);
      for (const [m, v] of op.add) {
        p.bytes(m);
        p.bytes(v);
      }
      p.int(op.rem.length);
      for (const [m, o] of op.rem) {
        p.bytes(m);
        p.text(o);
      }
      return;
    case 'flush':
      p.text('f');
      p.int(op.db);
      p.text(op.tag);
      return;
  }
}

/**
 * Reads `<length>:<bytes>` items (record.lua's reply and outbox payload) one at a time, straight
 * from the reply: no list of items and no Buffer per item in between, which were most of the
 * garbage the capturing agent made per operation. Throws `what()` on anything malformed.
 */
export class NetstringReader {
  readonly #buf: Buffer;
  readonly #what: () => GeorepError;
  #pos = 0;
  /** End of the item the last #next() found. */
  #end = 0;

  constructor(buf: Buffer, what: () => GeorepError) {
    this.#buf = buf;
    this.#what = what;
  }

  /** True when every item has been read. */
  get done(): boolean {
    return this.#pos >= this.#buf.length;
  }

  /** A binary item, as a plain Uint8Array view of the reply (not a copy). */
  bytes(): Uint8Array {
    const start = this.#next();
    return new Uint8Array(this.#buf.buffer, this.#buf.byteOffset + start, this.#end - start);
  }

  /** A text item (tags, decimals, kinds, region names are latin1). */
  text(): string {
    const start = this.#next();
    return this.#buf.toString('latin1', start, this.#end);
  }

  int(): number {
    const n = Number(this.text());
    if (!Number.isSafeInteger(n)) throw this.#what();
    return n;
  }

  /** Start of the next item's bytes (its end in #end). */
  #next(): number {
    const buf = this.#buf;
    let i = this.#pos;
    let len = 0;
    for (; i < buf.length && i - this.#pos <= 12; i++) {
      const c = buf[i]!;
      if (c === 0x3a) break;
      if (c < 0x30 || c > 0x39) throw this.#what();
      len = len * 10 + (c - 0x30);
    }
    if (i === this.#pos || buf[i] !== 0x3a || i + 1 + len > buf.length) throw this.#what();
    this.#pos = this.#end = i + 1 + len;
    return i + 1;
  }
}

const ELEMENT_TYPES: readonly string[] = ['hash', 'set', 'zset'] satisfies ElementType[];

/** Reads operations in flat form until the end of `r`; throws what() on anything malformed. */
export function readOps(r: NetstringReader, what: () => GeorepError): Op[] {
  // Binary fields are plain Uint8Array views of the reply, not copies: an op lives until its
  // batch is published, and a copy per key and value was the largest source of garbage in the
  // capturing agent.
  const ops: Op[] = [];
  while (!r.done) {
    const kind = r.text();
    if (kind === 'f') {
      ops.push({ kind: 'flush', db: r.int(), tag: r.text() });
      continue;
    }
    const db = r.int();
    const key = r.bytes();
    const tag = r.text();
    switch (kind) {
      case 'v': {
        const dump = r.bytes();
        const pttl = r.int();
        const ob: Record<string, string> = {};
        for (let n = r.int(); n > 0; n--) {
          const region = r.text();
          ob[region] = r.text();
        }
        ops.push({
          kind: 'value',
          db,
          key,
          tag,
          dump: dump.length === 0 ? null : dump,
          pttl,
          ob,
        });
        break;
      }
      case 'c':
        ops.push({ kind: 'counter', db, key, tag, cum: r.text() });
        break;
      case 'e':
        ops.push({ kind: 'expire', db, key, tag, at: r.int(), prev: r.text() });
        break;
      case 'l': {
        const type = r.text();
        if (!ELEMENT_TYPES.includes(type)) throw what();
        const add: Array<[Uint8Array, Uint8Array]> = [];
        for (let n = r.int(); n > 0; n--) add.push([r.bytes(), r.bytes()]);
        const rem: Array<[Uint8Array, Tag]> = [];
        for (let n = r.int(); n > 0; n--) rem.push([r.bytes(), r.text()]);
        ops.push({ kind: 'elements', db, key, tag, type: type as ElementType, add, rem });
        break;
      }
      default:
        throw what();
    }
  }
  return ops;
}

/** True for the NOSCRIPT reply of EVALSHA (script cache flushed or never loaded). */
export function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.includes('NOSCRIPT');
}

/** Runs a script by SHA, sending the source once when the server does not have it cached. */
export async function evalScript(
  client: Redis,
  name: string,
  lua: string,
  sha: string,
  args: Array<string | Buffer>,
): Promise<unknown> {
  try {
    try {
      return await client.callBuffer('EVALSHA', sha, 0, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return await client.callBuffer('EVAL', lua, 0, ...args);
    }
  } catch (err) {
    throw new ReplicationScriptError('replication.script-failed', name, String(err), {
      cause: err,
    });
  }
}
