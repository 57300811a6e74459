/**
 * gc.lua: garbage collection of tombstones and dead metadata below a horizon.
 *
 * The agent computes a horizon H (a tag): every linked region has applied every other region's
 * operations up to H, and every region's clock is past H, so no operation with a tag ≤ H can
 * still arrive anywhere. Metadata that only orders operations against tags below H can then go.
 * {@link collectGarbage} does one bounded step: a SCAN of `__georep:m:*` in one db, then one
 * script call that, per metadata hash and atomically:
 *
 * 1. deletes the whole hash when its key does not exist and nothing in it can matter any more:
 *    `t` (if any) < H, no `c:`/`C:` (counter contributions are needed forever: later increments
 *    carry cumulative sums), no `p:` (a parked element is data), every `f:`/`r:` < H, `d` (if
 *    any) < H, and no `e` (live expiry changes are given to the key if an element or counter
 *    operation creates it again). This covers tombstones (`x` = 1, also those record.lua writes
 *    when a key expires: Redis replicates the expiry as a DEL) and collections emptied by their
 *    last remove;
 * 2. otherwise deletes the `r:<member>` fields whose value < H, and nothing else.
 *
 * Why each deletion is safe is in the comments of {@link GC_SCRIPT}.
 */
import type { Redis } from 'ioredis';
import type { Tag } from './ops.js';
import { META_PREFIX } from './ops.js';
import {
  LUA_HELPERS,
  ReplicationInputError,
  ReplicationScriptError,
  evalScript,
  scriptSha,
} from './meta.js';

/**
 * Source of gc.lua. ARGV: db, horizon, then metadata key names (anything not starting with
 * `__georep:m:`, or not a hash, is skipped). Replies `{ hashes deleted, fields deleted }`.
 *
 * Future operations all have tags T > H. Against the rules of apply.lua and record.lua:
 *
 * - `t` < H: every future comparison is `t < T`, true with `t` or with the db's flush tag that
 *   replaces it when absent (a hash with `t` was written after the last flush, so flush ≤ `t`).
 *   `x` only matters in apply_counter together with `C:` fields, which keep the hash.
 * - `f:m` < H on a key that does not exist: `f:m < T` holds for every future add either way; a
 *   future remove of `m` cannot remove anything from a missing key, and it leaves the same `r:m`
 *   and no `f:m` either way. On a key that exists, `f:m` is kept: an operation newer than H may
 *   have been made before the add at `f:m` arrived at its origin, so a remove carrying an older
 *   observed tag must still lose against it (add wins).
 * - `r:m` < H: an add is written only if T > `r:m`; every future add has T > H > `r:m`. A value
 *   operation drops `r:` below its tag. A remove sets `r:m` = max(`r:m`, observed) and removes
 *   when that is ≥ (`f:m` or `t`). Dropping `r:m` = R changes this only for an observed tag
 *   o < R, and only if o < X ≤ R with X = `f:m` or `t`. `f:m`, when present, is always > `r:m`
 *   (an add is written only above `r:m`, a local add has a newer tag, and a remove reaching
 *   `f:m` deletes it), so X = `t` and `f:m` is absent: then `m` is not in the key (the remove
 *   that set R ≥ `t` removed it, or was replayed by the value write at `t`), so removing it or
 *   not is the same, and the `r:m` left (R or o) is below H either way. record.lua only raises
 *   `r:m` and emits the observed tag from `f:m`/`t`, which stay.
 * - `d` < H with no `e`: heads at or below `d` are dead already; future heads have tags > H.
 * - `e` is never deleted: a live expiry head (also a persist, `=0`) decides the expiry of the key
 *   if an element or counter operation creates it again, and an expire operation newer than H
 *   may not replace it (its `prev` can be older). Keys with `e` keep their hash.
 */
export const GC_SCRIPT: string =
  LUA_HELPERS +
  String.raw`
local db, H = tonumber(ARGV[1]), ARGV[2]
redis.call('SELECT', db)

local hashes, deleted = 0, 0
for i = 3, #ARGV do
  local mk = ARGV[i]
  if string.sub(mk, 1, #META) == META and redis.call('TYPE', mk).ok == 'hash' then
    local fields = hgetall(mk)
    local dead = {}
    -- The whole hash can go only when its key is missing and no field can order a future op.
    local whole = fields['e'] == nil and redis.call('EXISTS', string.sub(mk, #META + 1)) == 0
    for f, v in pairs(fields) do
      local p = string.sub(f, 1, 2)
      if p == 'r:' then
        if lt(v, H) then dead[#dead + 1] = f else whole = false end
      elseif p == 'f:' or f == 't' or f == 'd' then
        if not lt(v, H) then whole = false end
      elseif f ~= 'x' then
        -- c:, C:, p:, e and anything unknown keep the hash.
        whole = false
      end
    end
    if whole then
      redis.call('DEL', mk)
      hashes = hashes + 1
    elseif #dead > 0 then
      hdel_all(mk, dead)
      deleted = deleted + #dead
    end
  end
end
return { hashes, deleted }
`;

/** SHA1 of {@link GC_SCRIPT}. */
export const GC_SCRIPT_SHA: string = scriptSha(GC_SCRIPT);

/** SCAN in a given db, without changing the db the connection has selected. */
const SCAN_SCRIPT = String.raw`
redis.call('SELECT', tonumber(ARGV[1]))
return redis.call('SCAN', ARGV[2], 'MATCH', ARGV[3], 'COUNT', ARGV[4])
`;
const SCAN_SCRIPT_SHA = scriptSha(SCAN_SCRIPT);

/** What {@link collectGarbage} collects, and where its step starts. */
export interface CollectGarbageOptions {
  /** Every operation with a tag ≤ horizon has been applied in every region. */
  horizon: Tag;
  /** Database index (default 0). The caller loops over databases. */
  db?: number;
  /** SCAN cursor of this step: `'0'` (the default) to start, then the returned one. */
  cursor?: string;
  /** SCAN COUNT hint: about how many keys the step looks at (default 500). */
  count?: number;
}

/** What one {@link collectGarbage} step did. */
export interface CollectGarbageStep {
  /** Cursor of the next step; `'0'` when the db has been scanned completely. */
  cursor: string;
  /** Metadata hashes this step looked at. */
  scanned: number;
  /** Metadata hashes deleted whole. */
  metaDeleted: number;
  /** Fields (`r:` entries) deleted from hashes that stay. */
  fieldsDeleted: number;
}

/** The forms of an HLC horizon: a tag, or its `<ms>.<counter>` prefix (below all its regions). */
const HORIZON = /^\d{15}\.\d{6}(?:\.[a-z0-9-]*)?$/;

/**
 * One bounded step of garbage collection in one db: SCAN `__georep:m:*` from `cursor`, then
 * one gc.lua call over the metadata keys found. Deletes tombstones and dead metadata of missing
 * keys whose every tag is below `horizon`, and `r:` entries below it (see {@link GC_SCRIPT}).
 * Touches no other key. Loop until the returned cursor is `'0'`:
 *
 * @example
 * let cursor = '0';
 * do {
 *   ({ cursor } = await collectGarbage(primary, { horizon, db, cursor }));
 * } while (cursor !== '0');
 */
export async function collectGarbage(
  client: Redis,
  options: CollectGarbageOptions,
): Promise<CollectGarbageStep> {
  const { horizon, db = 0, cursor = '0', count = 500 } = options;
  if (!HORIZON.test(horizon)) {
    throw new ReplicationInputError(`horizon "${horizon}" is not an encodeHlc() tag`);
  }
  if (!Number.isSafeInteger(db) || db < 0) {
    throw new ReplicationInputError(`db ${db} is not a database index`);
  }
  if (!/^\d+$/.test(cursor)) {
    throw new ReplicationInputError(`cursor "${cursor}" is not a SCAN cursor`);
  }
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new ReplicationInputError(`count ${count} must be an integer >= 1`);
  }
  const scan = await evalScript(client, 'gc', SCAN_SCRIPT, SCAN_SCRIPT_SHA, [
    String(db),
    cursor,
    `${META_PREFIX}*`,
    String(count),
  ]);
  const bad = (what: string, reply: unknown) =>
    new ReplicationScriptError('replication.bad-script-reply', 'gc', `malformed ${what} reply`, {
      details: { reply },
    });
  if (!Array.isArray(scan) || scan.length !== 2) throw bad('SCAN', scan);
  const [next, keys] = scan as [unknown, unknown];
  if (!Buffer.isBuffer(next) || !Array.isArray(keys) || !keys.every((k) => Buffer.isBuffer(k))) {
    throw bad('SCAN', scan);
  }
  const step: CollectGarbageStep = {
    cursor: next.toString('latin1'),
    scanned: keys.length,
    metaDeleted: 0,
    fieldsDeleted: 0,
  };
  if (keys.length === 0) return step;
  const reply = await evalScript(client, 'gc', GC_SCRIPT, GC_SCRIPT_SHA, [
    String(db),
    horizon,
    ...keys,
  ]);
  if (!Array.isArray(reply) || reply.length !== 2 || !reply.every((n) => typeof n === 'number')) {
    throw bad('script', reply);
  }
  step.metaDeleted = reply[0] as number;
  step.fieldsDeleted = reply[1] as number;
  return step;
}
