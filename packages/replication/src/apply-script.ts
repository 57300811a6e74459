/**
 * apply.lua: the receiving side of a batch. The applier runs it inside `MULTI` … `EXEC` after
 * `WATCH`ing the batch's keys and waiting for capture (docs/replication-internals.md, "The race
 * between capture and apply"). Its first write is `SET __georep:apply <origin>:<seq>` in db 0,
 * so the receiving region's capture recognises the transaction and does not echo it back.
 *
 * Every rule compares tags, so applying a batch twice changes nothing the second time, and
 * batches from different origins can be applied in any order: the regions converge.
 */
import type { ChainableCommander, Redis } from 'ioredis';
import type { Op, OpBatch } from './ops.js';
import {
  LUA_HELPERS,
  REGION_NAME,
  ReplicationInputError,
  ReplicationScriptError,
  isNoScript,
  packOp,
  scriptSha,
} from './meta.js';
import { ScriptArgPacker } from './script-args.js';

/**
 * Source of apply.lua. ARGV: origin, seq, then the operations in flat form (see `meta.ts`),
 * packed into one argument (`script-args.ts`).
 * Replies with ten integers: applied and dropped counts for value, counter, expire, elements
 * and flush operations.
 */
export const APPLY_SCRIPT: string =
  LUA_HELPERS +
  String.raw`
local origin, seq = ARGV[1], ARGV[2]

-- First write of the transaction: capture skips transactions that start with it.
select_db(0)
redis.call('SET', APPLY_KEY, origin .. ':' .. seq)

-- Shared by the operations that have nothing of a kind (no table built per operation).
local NONE = {}

-- The general case of a value operation (the common one is apply_value's).
local function apply_value_general(db, key, T, dump, pttl, ob, mk, flat)
  -- plain: only the one-letter fields t, e, d and x (every other field has a two-byte prefix),
  -- the common case of a string key. Then there are no elements to save or remove and no counter
  -- contributions: the work below that reads them is skipped.
  local fields, plain = {}, true
  for i = 1, #flat, 2 do
    local f = flat[i]
    fields[f] = flat[i + 1]
    if #f > 1 then plain = false end
  end
  local t = fields['t'] or flush_tag(db)
  if not lt(t, T) then return false end

  -- Elements added after T (concurrently with this write) survive it: read them first, from the
  -- key or from p: (elements waiting for the key to have their type). Drop the element tags T
  -- replaces, and the removes that observed only what T replaces.
  -- Increments the write did not observe are added to it: sigma = sum over regions of
  -- (contribution known here - contribution the write observed).
  local saved, removed = NONE, NONE
  local obs = {}
  for k = 1, #ob, 2 do obs[ob[k]] = ob[k + 1] end
  local sigma, last_counter = '0', ''
  if not plain then
    local obsolete, ktype = {}, nil
    saved, removed = {}, {}
    for f, v in pairs(fields) do
      local p = string.sub(f, 1, 2)
      if p == 'f:' then
        local m = string.sub(f, 3)
        if lt(T, v) then
          local pending = fields['p:' .. m]
          if pending then
            saved[#saved + 1] = { m, string.sub(pending, 2), TYPE_OF[string.sub(pending, 1, 1)] }
          else
            if ktype == nil then ktype = redis.call('TYPE', key).ok end
            if is_collection(ktype) then
              local val = member_value(key, ktype, m)
              if val then saved[#saved + 1] = { m, val, ktype } end
            end
          end
        else
          obsolete[#obsolete + 1] = f
          if fields['p:' .. m] then obsolete[#obsolete + 1] = 'p:' .. m end
        end
      elseif p == 'r:' then
        if lt(v, T) then obsolete[#obsolete + 1] = f else removed[#removed + 1] = string.sub(f, 3) end
      elseif p == 'c:' then
        local r = string.sub(f, 3)
        sigma = num_add(sigma, num_sub(v, obs[r] or '0'))
        obs[r] = nil
      elseif p == 'C:' and lt(last_counter, v) then
        last_counter = v
      end
    end
    hdel_all(mk, obsolete)
  end
  for _, v in pairs(obs) do sigma = num_sub(sigma, v) end

  if dump ~= '' then
    -- A DUMP from a newer Redis (RDB version) fails here: stop the batch with a clear error.
    local r = redis.pcall('RESTORE', key, pttl, dump, 'REPLACE', 'ABSTTL')
    if is_err(r) then error({ err = 'georep apply: RESTORE in db ' .. db .. ' failed: ' .. r.err }) end
  else
    redis.call('DEL', key)
  end

  -- touched: the key was written after the RESTORE or DEL (it may not have the expiry the
  -- RESTORE gave it, or exist again without one).
  local touched = false
  if dump ~= '' then
    if not is_zero(sigma) and redis.call('TYPE', key).ok == 'string' then
      incr_by(key, sigma)
      touched = true
    end
  elseif not is_zero(sigma) or lt(T, last_counter) then
    -- After a delete the counter exists again if increments it did not observe add up to
    -- something, or if one came after it: exactly when INCRBY recreated it elsewhere.
    incr_by(key, sigma)
    touched = true
  end

  if #saved > 0 or #removed > 0 then
    local ntype = redis.call('TYPE', key).ok
    if is_collection(ntype) then
      local keep = {}
      for _, s in ipairs(saved) do keep[s[1]] = true end
      -- Removes that observed this write (r:m >= T) apply to the members it restored.
      for _, m in ipairs(removed) do
        if not keep[m] then remove_member(key, ntype, m) end
      end
    end
    -- The saved elements go back into the key when it has their type (or is gone); otherwise
    -- they wait in p: for a later write that gives it their type.
    for _, s in ipairs(saved) do
      if ntype == 'none' or ntype == s[3] then
        write_member(key, s[3], s[1], s[2])
        ntype = s[3]
        touched = true
        redis.call('HDEL', mk, 'p:' .. s[1])
      else
        redis.call('HSET', mk, 'p:' .. s[1], CHAR_OF[s[3]] .. s[2])
      end
    end
  end

  local dead = fields['d'] or ''
  local heads = NONE
  local old_e = fields['e']
  if old_e then
    -- A single head older than T (the common case: the last write's own) is dead once t is T:
    -- there is nothing to parse.
    local eq = string.find(old_e, '=', 1, true)
    local single = eq and not string.find(old_e, ' ', eq, true)
    if not (single and lt(string.sub(old_e, 1, eq - 1), T)) then heads = parse_heads(old_e) end
  end
  if dump ~= '' then
    local q = region_of(T)
    local h = heads[q]
    if lt(dead, T) and (h == nil or lt(h[1], T)) then
      if heads == NONE then heads = {} end
      heads[q] = { T, pttl }
    end
  end
  -- The metadata in one HSET and at most one HDEL of fields that are there.
  local e, d = heads_fields(heads, dead, T)
  local set, del = { 't', T }, {}
  if dump == '' then
    set[3], set[4] = 'x', '1'
  elseif fields['x'] then
    del[#del + 1] = 'x'
  end
  if e then
    set[#set + 1], set[#set + 2] = 'e', e
  elseif fields['e'] then
    del[#del + 1] = 'e'
  end
  if d then
    set[#set + 1], set[#set + 2] = 'd', d
  elseif fields['d'] then
    del[#del + 1] = 'd'
  end
  redis.call('HSET', mk, unpack(set))
  if #del > 0 then redis.call('HDEL', mk, unpack(del)) end
  -- RESTORE … ABSTTL gave the key the expiry pttl, and a DEL left none: only a key written since,
  -- or one whose live expiry changes say otherwise, needs its expiry set.
  local at = effective_at(heads, dead, T)
  if touched or (dump ~= '' and at ~= tonumber(pttl)) then set_expiry(key, at) end
  return true
end

local function apply_value(db, key, T, dump, pttl, ob)
  local mk = META .. key
  local flat = redis.call('HGETALL', mk)
  -- The common case: a string key written again, or a new key. Its metadata is at most t, x and
  -- one expiry head older than T (the last write's own), and the write observed no counter. Then
  -- T replaces all of it: the general rules below come down to the value, t, and T's own expiry
  -- head, without the tables they build to get there.
  if #ob == 0 then
    local ft, fe, fx, simple = nil, nil, nil, true
    for i = 1, #flat, 2 do
      local f = flat[i]
      if f == 't' then
        ft = flat[i + 1]
      elseif f == 'e' then
        fe = flat[i + 1]
      elseif f == 'x' then
        fx = true
      else
        simple = false
        break
      end
    end
    if simple and fe then
      local eq = string.find(fe, '=', 1, true)
      simple = eq ~= nil and not string.find(fe, ' ', eq, true) and lt(string.sub(fe, 1, eq - 1), T)
    end
    if simple then
      if not lt(ft or flush_tag(db), T) then return false end
      if dump ~= '' then
        local r = redis.pcall('RESTORE', key, pttl, dump, 'REPLACE', 'ABSTTL')
        if is_err(r) then error({ err = 'georep apply: RESTORE in db ' .. db .. ' failed: ' .. r.err }) end
        redis.call('HSET', mk, 't', T, 'e', T .. '=' .. pttl)
        if fx then redis.call('HDEL', mk, 'x') end
      else
        redis.call('DEL', key)
        redis.call('HSET', mk, 't', T, 'x', '1')
        if fe then redis.call('HDEL', mk, 'e') end
      end
      return true
    end
  end
  return apply_value_general(db, key, T, dump, pttl, ob, mk, flat)
end

local function apply_counter(db, key, T, cum)
  local mk = META .. key
  local m = redis.call('HMGET', mk, 'C:' .. origin, 'c:' .. origin, 't', 'x')
  if not lt(m[1] or '', T) then return false end
  local delta = num_sub(cum, m[2] or '0')
  redis.call('HSET', mk, 'c:' .. origin, cum, 'C:' .. origin, T)
  -- After a delete (x), the key exists only while it has increments it did not observe that
  -- add up to something, or increments after it. Without a delete, INCRBY rules.
  local after_delete = true
  if m[4] == '1' then
    local t = m[3] or flush_tag(db)
    after_delete = false
    for f, v in pairs(hgetall(mk)) do
      if string.sub(f, 1, 2) == 'C:' and lt(t, v) then after_delete = true end
    end
  end
  if redis.call('EXISTS', key) == 1 then
    -- A value that is not a number is left as it is; the contribution is kept in c:.
    local v = incr_by(key, delta)
    if v and not after_delete and is_zero(v) then redis.call('DEL', key) end
  elseif after_delete or not is_zero(delta) then
    incr_by(key, delta)
    set_expiry(key, expiry_of(mk, db))
  end
  return true
end

local function apply_expire(db, key, T, at, prev)
  local mk = META .. key
  local m = redis.call('HMGET', mk, 't', 'e', 'd')
  local t = m[1] or flush_tag(db)
  if not lt(t, T) then return false end
  local heads, dead = parse_heads(m[2]), m[3] or ''
  -- Every change up to prev is replaced, including those not delivered here yet.
  if lt(dead, prev) then dead = prev end
  local q = region_of(T)
  local h = heads[q]
  local fresh = (h == nil or lt(h[1], T)) and lt(dead, T)
  if fresh then heads[q] = { T, at } end
  store_heads(mk, heads, dead, t)
  set_expiry(key, effective_at(heads, dead, t))
  return fresh
end

local function apply_elements(db, key, T, typ, adds, rems)
  local mk = META .. key
  local t = redis.call('HGET', mk, 't') or flush_tag(db)
  if not lt(t, T) then return false end
  local ktype = redis.call('TYPE', key).ok
  -- A key of another type keeps its value (the last whole-value write decides the type). The
  -- element waits in p:<member> instead, so that a later write that deletes the key or gives it
  -- this type brings it in, on every region whatever the order of arrival.
  local writable = ktype == 'none' or ktype == typ
  for k = 1, #adds, 2 do
    local m, v = adds[k], adds[k + 1]
    local f = redis.call('HGET', mk, 'f:' .. m) or ''
    local r = redis.call('HGET', mk, 'r:' .. m) or ''
    -- An older add loses to the latest one; an add a remove observed stays removed.
    if lt(f, T) and lt(r, T) then
      redis.call('HSET', mk, 'f:' .. m, T)
      if writable then
        write_member(key, typ, m, v)
        redis.call('HDEL', mk, 'p:' .. m)
      else
        redis.call('HSET', mk, 'p:' .. m, CHAR_OF[typ] .. v)
      end
    end
  end
  for k = 1, #rems, 2 do
    local m, o = rems[k], rems[k + 1]
    local r = redis.call('HGET', mk, 'r:' .. m) or ''
    if lt(r, o) then
      redis.call('HSET', mk, 'r:' .. m, o)
      r = o
    end
    -- Add wins: the member goes only if its latest add (or the base write) was observed.
    local f = redis.call('HGET', mk, 'f:' .. m)
    if not lt(r, f or t) then
      if writable then remove_member(key, typ, m) end
      if f then redis.call('HDEL', mk, 'f:' .. m, 'p:' .. m) end
    end
  end
  if ktype == 'none' then set_expiry(key, expiry_of(mk, db)) end
  return true
end

local function flush_db(d, T)
  local cur = redis.call('GET', FLUSH_KEY) or ''
  if not lt(cur, T) then return false end
  -- The outbox is this region's own capture state, not data: it survives a remote flush.
  local outbox, outbox1, marker = false, false, false
  if d == 0 then
    outbox = redis.call('GET', OUTBOX_KEY)
    outbox1 = redis.call('GET', OUTBOX_KEY .. ':1')
    marker = redis.call('GET', APPLY_KEY)
  end
  redis.call('FLUSHDB')
  redis.call('SET', FLUSH_KEY, T)
  if outbox then redis.call('SET', OUTBOX_KEY, outbox) end
  if outbox1 then redis.call('SET', OUTBOX_KEY .. ':1', outbox1) end
  if marker then redis.call('SET', APPLY_KEY, marker) end
  flush_tags[d] = T
  return true
end

local function apply_flush(db, T)
  if db >= 0 then
    select_db(db)
    return flush_db(db, T)
  end
  current_db = nil
  local any, d = false, 0
  while not is_err(redis.pcall('SELECT', d)) do
    if flush_db(d, T) then any = true end
    d = d + 1
  end
  return any
end

local stats = { v = { 0, 0 }, c = { 0, 0 }, e = { 0, 0 }, l = { 0, 0 }, f = { 0, 0 } }
args = unpack_items(ARGV[3], {})
while args_left() do
  local kind = arg()
  local done
  if kind == 'f' then
    local db = tonumber(arg())
    done = apply_flush(db, arg())
  else
    local db = tonumber(arg())
    local key, T = arg(), arg()
    select_db(db)
    if kind == 'v' then
      local dump, pttl, n = arg(), arg(), tonumber(arg())
      local ob = NONE
      if n > 0 then
        ob = {}
        for j = 1, 2 * n do ob[j] = arg() end
      end
      done = apply_value(db, key, T, dump, pttl, ob)
    elseif kind == 'c' then
      done = apply_counter(db, key, T, arg())
    elseif kind == 'e' then
      local at = arg()
      done = apply_expire(db, key, T, at, arg())
    elseif kind == 'l' then
      local typ = arg()
      local adds, rems = {}, {}
      for j = 1, 2 * tonumber(arg()) do adds[j] = arg() end
      for j = 1, 2 * tonumber(arg()) do rems[j] = arg() end
      done = apply_elements(db, key, T, typ, adds, rems)
    else
      return redis.error_reply('unknown operation kind ' .. tostring(kind))
    end
  end
  local s = stats[kind]
  if done then s[1] = s[1] + 1 else s[2] = s[2] + 1 end
end

return { stats.v[1], stats.v[2], stats.c[1], stats.c[2], stats.e[1], stats.e[2],
  stats.l[1], stats.l[2], stats.f[1], stats.f[2] }
`;

/** SHA1 of {@link APPLY_SCRIPT}: what {@link queueApply} calls with EVALSHA. */
export const APPLY_SCRIPT_SHA: string = scriptSha(APPLY_SCRIPT);

/** A count per operation kind. */
export type OpKindCounts = Record<Op['kind'], number>;

/**
 * What one apply did. An operation is dropped when its tag shows it is already applied or
 * replaced (a redelivery, or an older write than the key's), applied otherwise.
 */
export interface ApplyStats {
  applied: OpKindCounts;
  dropped: OpKindCounts;
}

const KINDS = ['value', 'counter', 'expire', 'elements', 'flush'] as const;

/** Script arguments for a batch; throws {@link ReplicationInputError} for a batch it cannot run. */
function applyArgs(batch: OpBatch): Array<string | Buffer> {
  if (batch.v !== 1) {
    throw new ReplicationInputError(`batch format v${String(batch.v)} is not supported`, {
      hint: 'upgrade this agent: a peer region runs a newer georep',
    });
  }
  if (!REGION_NAME.test(batch.origin)) {
    throw new ReplicationInputError(`region name "${batch.origin}" is not [a-z0-9-]+`);
  }
  // Room for a string write of a short key and value (the common case) without growing.
  const packer = new ScriptArgPacker(256 + 128 * batch.ops.length);
  for (const op of batch.ops) packOp(packer, op);
  return [batch.origin, String(batch.seq), packer.finish()];
}

/**
 * Adds `EVALSHA apply …` for `batch` to a transaction the caller builds (after its WATCH). The
 * script must be cached on the server ({@link loadApplyScript}); when it is not, EXEC replies
 * NOSCRIPT for this command and nothing of the batch is applied. Read the reply with
 * {@link parseApplyReply}.
 */
export function queueApply(multi: ChainableCommander, batch: OpBatch): void {
  multi.evalsha(APPLY_SCRIPT_SHA, 0, ...applyArgs(batch));
}

/** Caches apply.lua on the server (SCRIPT LOAD). Touches no key, so it is safe under WATCH. */
export async function loadApplyScript(client: Redis): Promise<void> {
  await client.script('LOAD', APPLY_SCRIPT);
}

/** Reads apply.lua's reply (the ten counters) into {@link ApplyStats}. */
export function parseApplyReply(reply: unknown): ApplyStats {
  if (!Array.isArray(reply) || reply.length !== 2 * KINDS.length) {
    throw new ReplicationScriptError('replication.bad-script-reply', 'apply', 'malformed reply', {
      details: { reply },
    });
  }
  const counts = reply.map(Number);
  const applied = {} as OpKindCounts;
  const dropped = {} as OpKindCounts;
  KINDS.forEach((kind, k) => {
    applied[kind] = counts[2 * k] ?? 0;
    dropped[kind] = counts[2 * k + 1] ?? 0;
  });
  return { applied, dropped };
}

const loaded = new WeakSet<Redis>();

/**
 * One attempt to apply `batch`: `MULTI`, `EVALSHA apply`, `EXEC`. The caller owns the rest of the
 * protocol: WATCH the batch's keys and wait for capture before calling this, and start over when
 * it returns null. Null means nothing was applied: EXEC aborted because a WATCHed key changed, or
 * the server had lost the script (it is loaded again for the next attempt). Throws
 * {@link ReplicationScriptError} when the script fails.
 */
export async function applyBatchOnce(client: Redis, batch: OpBatch): Promise<ApplyStats | null> {
  const stats = await applyBatchesOnce(client, [batch]);
  return stats === null ? null : stats[0]!;
}

/**
 * {@link applyBatchOnce} for several batches in one transaction: one EVALSHA each, in order, in
 * one MULTI/EXEC, so one WATCH round and one wait for capture cover them all. The first write of
 * the transaction is still the first batch's apply marker, so capture skips all of it.
 */
export async function applyBatchesOnce(
  client: Redis,
  batches: readonly OpBatch[],
): Promise<ApplyStats[] | null> {
  const args = batches.map(applyArgs);
  if (!loaded.has(client)) {
    await loadApplyScript(client);
    loaded.add(client);
  }
  let result: Array<[Error | null, unknown]> | null;
  try {
    const multi = client.multi();
    for (const a of args) multi.evalsha(APPLY_SCRIPT_SHA, 0, ...a);
    result = await multi.exec();
  } catch (err) {
    // Redis may refuse the whole transaction (EXECABORT) when the script is missing.
    if (isNoScript(err)) return reload(client);
    throw new ReplicationScriptError('replication.script-failed', 'apply', String(err), {
      cause: err,
    });
  }
  if (result === null) return null;
  const stats: ApplyStats[] = [];
  for (let i = 0; i < batches.length; i++) {
    const [err, reply] = result[i] ?? [new Error('short EXEC reply'), null];
    if (err !== null) {
      if (isNoScript(err)) return reload(client);
      // The batches before this one were applied; applying them again is a no-op.
      throw new ReplicationScriptError('replication.script-failed', 'apply', err.message, {
        cause: err,
      });
    }
    stats.push(parseApplyReply(reply));
  }
  return stats;
}

async function reload(client: Redis): Promise<null> {
  await loadApplyScript(client);
  return null;
}
