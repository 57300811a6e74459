/**
 * record.lua: the capturing side of a batch. It runs on the region's own primary, once per batch,
 * after the batch's commands: it reads what the operations need (DUMP, PEXPIRETIME, element
 * values, observed tags and counter contributions), updates the keys' metadata, and stores the
 * operations in `__georep:outbox`, all in one atomic step. See docs/replication-internals.md.
 *
 * The outbox holds `<seq>\n<offset>\n<payload>`, where the payload is record.lua's own reply:
 * netstrings of `1`, the origin region, then the operations in the flat form of `meta.ts`.
 * {@link recordBatch} and {@link readOutbox} rebuild the same {@link OpBatch} from it, so a
 * batch re-published after a crash encodes to the same message.
 */
import type { Redis } from 'ioredis';
import type { GeorepError } from '@georep/core';
import type { Instruction, OpBatch } from './ops.js';
import {
  LUA_HELPERS,
  OutboxFormatError,
  REGION_NAME,
  ReplicationInputError,
  ReplicationScriptError,
  evalScript,
  NetstringReader,
  readOps,
  scriptSha,
} from './meta.js';
import { ScriptArgPacker } from './script-args.js';

/** Format version of the outbox payload (the first netstring). */
const PAYLOAD_VERSION = '1';

/**
 * Source of record.lua. ARGV: origin, seq, offset, then the instructions, one after another,
 * packed into one argument (`script-args.ts`): `v db key tag`, `c db key tag delta`,
 * `e db key tag`, `l db key tag type n member×n m member×m`, `f db tag`. Replies with the payload
 * it stored.
 */
export const RECORD_SCRIPT: string =
  LUA_HELPERS +
  String.raw`
local origin, seq, offset = ARGV[1], ARGV[2], ARGV[3]

-- The same batch again (the reply of the first run was lost to a timeout or a dropped
-- connection): return what was recorded then, so that nothing, counters above all, is recorded
-- twice.
select_db(0)
local recorded = redis.call('GET', outbox_key(seq))
if recorded then
  local nl1 = string.find(recorded, '\n', 1, true)
  if nl1 and string.sub(recorded, 1, nl1 - 1) == seq then
    local nl2 = string.find(recorded, '\n', nl1 + 1, true)
    if nl2 and string.sub(recorded, nl1 + 1, nl2 - 1) == offset then
      return string.sub(recorded, nl2 + 1)
    end
  end
end

local function ns(s)
  return #s .. ':' .. s
end

-- The reply, as the pieces table.concat joins: each item's length header and the item itself
-- (no concatenated copy of every item, DUMPs included), counted in nout rather than with #out.
local out, nout = {}, 0
local function emit(s)
  out[nout + 1] = #s .. ':'
  out[nout + 2] = s
  nout = nout + 2
end
-- The db numbers as text, made once per db.
local db_texts = {}
local function db_text(db)
  local s = db_texts[db]
  if s == nil then
    s = fmt_int(db)
    db_texts[db] = s
  end
  return s
end
emit('1')
emit(origin)

-- The DUMPs show the keys as the whole batch left them, so the counter contributions a value
-- observed are read at the end of the batch too (a later INCRBY of the batch is in the DUMP).
local observed = {}

-- An expiry change by this region replaces every head it sees; prev, the newest of them, tells
-- receivers which changes it replaced (a sequential change) and which it did not see
-- (concurrent ones, where the longest expiry wins).
local function record_expiry(db, key, tag, at, mk, t, e, d)
  local heads = parse_heads(e)
  local prev = d or ''
  for _, h in pairs(heads) do
    if is_live(h, t, prev) and lt(prev, h[1]) then prev = h[1] end
  end
  store_heads(mk, { [origin] = { tag, at } }, prev, t)
  -- Changes before t were replaced by the base write already; t itself is the base's expiry.
  if lt(prev, t) then prev = '' end
  emit('e'); emit(db_text(db)); emit(key); emit(tag); emit(at); emit(prev)
end

-- Keys whose c: fields a counter instruction of this batch changed, per db.
local counted = {}

local function record_value(db, key, tag)
  local mk = META .. key
  local flat = redis.call('HGETALL', mk)
  local dump = redis.call('DUMP', key)
  -- A whole-value write replaces every element and every expiry change before it. The HSET
  -- below overwrites e (a value) or x (a delete), so only the other one is deleted.
  local drop, has_counter = {}, false
  for i = 1, #flat, 2 do
    local f = flat[i]
    local p = string.sub(f, 1, 2)
    if p == 'f:' or p == 'r:' or p == 'p:' or p == 'd' or (p == 'e' and not dump)
      or (p == 'x' and dump) then
      drop[#drop + 1] = f
    elseif p == 'c:' then
      has_counter = true
    end
  end
  hdel_all(mk, drop)
  local pttl = '0'
  if dump then
    local pt = redis.call('PEXPIRETIME', key)
    if pt > 0 then pttl = fmt_int(pt) end
    redis.call('HSET', mk, 't', tag, 'e', tag .. '=' .. pttl)
  else
    dump = ''
    redis.call('HSET', mk, 't', tag, 'x', '1')
  end
  emit('v'); emit(db_text(db)); emit(key); emit(tag); emit(dump); emit(pttl)
  nout = nout + 1
  out[nout] = ''
  observed[#observed + 1] = { nout, db, key, has_counter }
end

-- Fills in ob (n, then region and contribution n times) of the value operations. A key without
-- c: fields when its value was recorded, and no counter instruction since, observed none.
local function fill_observed()
  for _, o in ipairs(observed) do
    local db, key = o[2], o[3]
    if o[4] or (counted[db] and counted[db][key]) then
      select_db(db)
      local ob = {}
      for f, v in pairs(hgetall(META .. key)) do
        if string.sub(f, 1, 2) == 'c:' then ob[#ob + 1] = { string.sub(f, 3), v } end
      end
      table.sort(ob, function(a, b) return lt(a[1], b[1]) end)
      local s = { ns(tostring(#ob)) }
      for _, c in ipairs(ob) do
        s[#s + 1] = ns(c[1])
        s[#s + 1] = ns(c[2])
      end
      out[o[1]] = table.concat(s)
    else
      out[o[1]] = '1:0'
    end
  end
end

-- Redis changes expiries on its own: a collection emptied and created again, or a counter
-- created by INCRBY, has none. When the key's expiry no longer is what the metadata says,
-- record that as an expiry change of this op's tag, so every region agrees with this one.
local function reconcile_expiry(db, key, tag, mk)
  local pt = redis.call('PEXPIRETIME', key)
  if pt == -2 then return end
  local actual = 0
  if pt > 0 then actual = pt end
  local m = redis.call('HMGET', mk, 't', 'e', 'd')
  local t = m[1] or flush_tag(db)
  if effective_at(parse_heads(m[2]), m[3] or '', t) ~= actual then
    record_expiry(db, key, tag, fmt_int(actual), mk, t, m[2], m[3])
  end
end

local function record_counter(db, key, tag, delta)
  local mk = META .. key
  if not counted[db] then counted[db] = {} end
  counted[db][key] = true
  local cf = 'c:' .. origin
  local r = nil
  if is_int(delta) then r = redis.pcall('HINCRBY', mk, cf, delta) end
  -- Exact int64 sums in Redis; a float delta or contribution switches to HINCRBYFLOAT.
  if r == nil or is_err(r) then redis.call('HINCRBYFLOAT', mk, cf, delta) end
  redis.call('HSET', mk, 'C:' .. origin, tag)
  emit('c'); emit(db_text(db)); emit(key); emit(tag); emit(redis.call('HGET', mk, cf))
  reconcile_expiry(db, key, tag, mk)
end

local function record_expire(db, key, tag)
  local pt = redis.call('PEXPIRETIME', key)
  -- EXPIRE with a time in the past deletes the key: that is a delete.
  if pt == -2 then return record_value(db, key, tag) end
  local mk = META .. key
  local m = redis.call('HMGET', mk, 't', 'e', 'd')
  local at = '0'
  if pt > 0 then at = fmt_int(pt) end
  record_expiry(db, key, tag, at, mk, m[1] or flush_tag(db), m[2], m[3])
end

local function record_elements(db, key, tag, typ, adds, rems)
  local mk = META .. key
  local ktype = redis.call('TYPE', key).ok
  local t = redis.call('HGET', mk, 't') or flush_tag(db)
  local add_out, rem_out = {}, {}
  for _, m in ipairs(adds) do
    -- A member a later command of the batch removed again is not shipped: its remove is.
    local v = false
    if ktype == typ then v = member_value(key, typ, m) end
    if v then
      redis.call('HSET', mk, 'f:' .. m, tag)
      add_out[#add_out + 1] = m
      add_out[#add_out + 1] = v
    end
  end
  for _, m in ipairs(rems) do
    -- The remove observed the member's latest add, or the base write it came with.
    local o = redis.call('HGET', mk, 'f:' .. m) or t
    if o ~= '' then
      local r = redis.call('HGET', mk, 'r:' .. m) or ''
      if lt(r, o) then redis.call('HSET', mk, 'r:' .. m, o) end
    end
    redis.call('HDEL', mk, 'f:' .. m, 'p:' .. m)
    rem_out[#rem_out + 1] = m
    rem_out[#rem_out + 1] = o
  end
  emit('l'); emit(db_text(db)); emit(key); emit(tag); emit(typ)
  emit(tostring(#add_out / 2))
  for _, s in ipairs(add_out) do emit(s) end
  emit(tostring(#rem_out / 2))
  for _, s in ipairs(rem_out) do emit(s) end
  reconcile_expiry(db, key, tag, mk)
end

local function record_flush(db, tag)
  if db >= 0 then
    select_db(db)
    redis.call('SET', FLUSH_KEY, tag)
    flush_tags[db] = tag
  else
    current_db = nil
    local d = 0
    while not is_err(redis.pcall('SELECT', d)) do
      redis.call('SET', FLUSH_KEY, tag)
      flush_tags[d] = tag
      d = d + 1
    end
  end
  emit('f'); emit(fmt_int(db)); emit(tag)
end

args = unpack_items(ARGV[4], {})
while args_left() do
  local kind = arg()
  if kind == 'f' then
    local db = tonumber(arg())
    record_flush(db, arg())
  else
    local db = tonumber(arg())
    local key, tag = arg(), arg()
    select_db(db)
    if kind == 'v' then
      record_value(db, key, tag)
    elseif kind == 'c' then
      record_counter(db, key, tag, arg())
    elseif kind == 'e' then
      record_expire(db, key, tag)
    elseif kind == 'l' then
      local typ = arg()
      local adds, rems = {}, {}
      for j = 1, tonumber(arg()) do adds[j] = arg() end
      for j = 1, tonumber(arg()) do rems[j] = arg() end
      record_elements(db, key, tag, typ, adds, rems)
    else
      return redis.error_reply('unknown instruction kind ' .. tostring(kind))
    end
  end
end

fill_observed()
local payload = table.concat(out)
select_db(0)
-- Two slots, by the parity of seq: batch seq+1 may be recorded while batch seq is being
-- published, and batch seq+2 only after seq was published.
redis.call('SET', outbox_key(seq), seq .. '\n' .. offset .. '\n' .. payload)
return payload
`;

/** SHA1 of {@link RECORD_SCRIPT}. */
export const RECORD_SCRIPT_SHA: string = scriptSha(RECORD_SCRIPT);

/** What {@link recordBatch} records. */
export interface RecordInput {
  /** This region: the origin of the batch, and the `c:<region>` counter field it updates. */
  origin: string;
  /** The batch sequence number (the message id on the region's stream). */
  seq: number;
  /** Stream offset of the batch's last command; kept in the outbox for restart. */
  offset: number;
  /** One per key touched, in command order, each with its new tag from this region's clock. */
  instructions: readonly Instruction[];
}

/** The last recorded batch, as {@link readOutbox} finds it. */
export interface OutboxEntry {
  seq: number;
  offset: number;
  batch: OpBatch;
}

/** What INCRBY / INCRBYFLOAT accept as a delta. */
const DECIMAL = /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$/;
const TAG = /^\d{15}\.\d{6}\.[a-z0-9-]+$/;

/**
 * Checks what record.lua cannot check before writing: Redis does not roll a script back, so a
 * bad instruction found halfway would leave metadata updated without an outbox.
 */
function checkInstruction(ins: Instruction, i: number): void {
  const bad = (why: string) => new ReplicationInputError(`instruction ${i} (${ins.kind}): ${why}`);
  if (!Number.isSafeInteger(ins.db) || ins.db < (ins.kind === 'flush' ? -1 : 0)) {
    throw bad(`db ${ins.db} is not a database index`);
  }
  if (!TAG.test(ins.tag)) throw bad(`tag "${ins.tag}" is not an encodeHlc() string`);
  if (ins.kind === 'counter' && !DECIMAL.test(ins.delta)) {
    throw bad(`delta "${ins.delta}" is not a decimal number`);
  }
  if (ins.kind === 'elements' && !['hash', 'set', 'zset'].includes(ins.type)) {
    throw bad(`type "${String(ins.type)}" is not hash, set or zset`);
  }
}

function packInstruction(p: ScriptArgPacker, ins: Instruction): void {
  switch (ins.kind) {
    case 'value':
    case 'expire':
      p.text(ins.kind === 'value' ? 'v' : 'e');
      p.int(ins.db);
      p.bytes(ins.key);
      p.text(ins.tag);
      return;
    case 'counter':
      p.text('c');
      p.int(ins.db);
      p.bytes(ins.key);
      p.text(ins.tag);
      p.text(ins.delta);
      return;
    case 'elements':
      p.text('l');
      p.int(ins.db);
      p.bytes(ins.key);
      p.text(ins.tag);
      p.text(ins.type);
      p.int(ins.add.length);
      for (const m of ins.add) p.bytes(m);
      p.int(ins.rem.length);
      for (const m of ins.rem) p.bytes(m);
      return;
    case 'flush':
      p.text('f');
      p.int(ins.db);
      p.text(ins.tag);
      return;
  }
}

function batchFromPayload(payload: Buffer, seq: number, bad: () => GeorepError): OpBatch {
  const r = new NetstringReader(payload, bad);
  if (r.done || r.text() !== PAYLOAD_VERSION || r.done) throw bad();
  const origin = r.text();
  return { v: 1, origin, seq, ops: readOps(r, bad) };
}

/**
 * Records one batch: runs record.lua for `instructions` and returns the operations to publish.
 * The metadata updates and the outbox write are one atomic step in Redis, so a crash leaves
 * either both or neither. Run it on the region's primary, after the batch's commands executed.
 *
 * @example
 * const batch = await recordBatch(primary, { origin: 'eu', seq: 42, offset, instructions });
 * await publish(encode(batch), { msgID: `eu:${batch.seq}` });
 */
export async function recordBatch(client: Redis, input: RecordInput): Promise<OpBatch> {
  const { origin, seq, offset } = input;
  if (!REGION_NAME.test(origin)) {
    throw new ReplicationInputError(`region name "${origin}" is not [a-z0-9-]+`);
  }
  if (!Number.isSafeInteger(seq) || seq < 0 || !Number.isSafeInteger(offset) || offset < 0) {
    throw new ReplicationInputError(`seq ${seq} and offset ${offset} must be integers >= 0`);
  }
  input.instructions.forEach(checkInstruction);
  const packer = new ScriptArgPacker(256 + 64 * input.instructions.length);
  for (const ins of input.instructions) packInstruction(packer, ins);
  const args = [origin, String(seq), String(offset), packer.finish()];
  const reply = await evalScript(client, 'record', RECORD_SCRIPT, RECORD_SCRIPT_SHA, args);
  const bad = () =>
    new ReplicationScriptError('replication.bad-script-reply', 'record', 'malformed reply');
  if (!Buffer.isBuffer(reply)) throw bad();
  return batchFromPayload(reply, seq, bad);
}

const READ_OUTBOX = String.raw`
redis.call('SELECT', 0)
return { redis.call('GET', '__georep:outbox'), redis.call('GET', '__georep:outbox:1') }
`;

/**
 * The batches record.lua stored in its two outbox slots, oldest first (none, one or two). At
 * start the agent publishes them again in this order (JetStream drops what it already stored)
 * and resumes capture after the newest `offset`. Throws {@link OutboxFormatError} when a slot
 * holds something else.
 */
export async function readOutboxes(client: Redis): Promise<OutboxEntry[]> {
  const raw: unknown = await client.callBuffer('EVAL', READ_OUTBOX, 0);
  if (!Array.isArray(raw)) throw new OutboxFormatError('not two slots');
  const entries = raw
    .filter((slot: unknown) => slot !== null && slot !== false)
    .map((slot: unknown) => parseOutbox(slot));
  return entries.sort((a, b) => a.seq - b.seq);
}

/** The newest batch of the outbox, or null when there is none. */
export async function readOutbox(client: Redis): Promise<OutboxEntry | null> {
  const entries = await readOutboxes(client);
  return entries[entries.length - 1] ?? null;
}

function parseOutbox(raw: unknown): OutboxEntry {
  if (!Buffer.isBuffer(raw)) throw new OutboxFormatError('not a string');
  const nl1 = raw.indexOf(0x0a);
  const nl2 = nl1 < 0 ? -1 : raw.indexOf(0x0a, nl1 + 1);
  const seq = Number(raw.toString('latin1', 0, Math.max(nl1, 0)));
  const offset = Number(raw.toString('latin1', nl1 + 1, Math.max(nl2, 0)));
  if (nl2 < 0 || !Number.isSafeInteger(seq) || !Number.isSafeInteger(offset)) {
    throw new OutboxFormatError('expected <seq>\\n<offset>\\n<payload>');
  }
  const bad = () => new OutboxFormatError('malformed payload');
  return { seq, offset, batch: batchFromPayload(raw.subarray(nl2 + 1), seq, bad) };
}
