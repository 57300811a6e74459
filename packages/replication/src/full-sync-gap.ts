/**
 * Deletes a full sync would otherwise miss. Capture falls back to a full sync when the primary no
 * longer has its position (a restart without the position file, a backlog that overflowed, a
 * resync). The snapshot then stands for the dataset, and every key in it is recorded as a write;
 * but a key deleted (or expired) in the gap is simply absent, and its peers would keep it for
 * good. Its metadata is still there, though: a key whose metadata says it is live (no tombstone)
 * while the key itself is missing was deleted in the gap, and gets a delete.
 * Keys whose metadata is a tombstone (`x` = 1) are left alone: a new delete of those would wipe a
 * peer's later write that this region has not applied yet.
 *
 * The check runs against the primary itself once the snapshot's keys are queued, in SCAN pages,
 * so that the agent holds one page at a time whatever the size of the dataset (collecting the
 * snapshot's keys instead would hold every key name of it in memory). It is as good as a check of
 * the snapshot: the record of a missing key (a `value` instruction) is a delete anyway, peers'
 * applies wait while a full sync is recorded, and what changed since the snapshot is in the
 * stream that follows: a key deleted since gets the same delete twice, which changes nothing, and
 * a key written since exists and is left alone.
 */
import type { Redis } from 'ioredis';
import { parseInfo } from '@georep/redis';
import { META_PREFIX } from './ops.js';

/** Meta keys per SCAN page, and so per script call. */
const PAGE = 1000;

/**
 * ARGV[1]: the length of the metadata prefix; ARGV[2..]: metadata keys. Replies the data keys
 * whose metadata is live (anything but a hash with `x` = 1) while the key does not exist.
 */
const GAP_SCRIPT = `
local plen = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  local x = redis.pcall('HGET', ARGV[i], 'x')
  if x ~= '1' then
    local key = string.sub(ARGV[i], plen + 1)
    if redis.call('EXISTS', key) == 0 then out[#out + 1] = key end
  end
end
return out
`;

/**
 * The keys of every database of the primary behind `client` whose metadata is live while the key
 * is missing. `client` must be a connection of its own: it is moved between databases.
 */
export async function findGapDeletes(
  client: Redis,
  stopped: () => boolean = () => false,
): Promise<Array<{ db: number; key: Buffer }>> {
  const keyspace = parseInfo(await client.info('keyspace')).keyspace ?? {};
  const dbs = Object.keys(keyspace)
    .map((name) => /^db(\d+)$/.exec(name)?.[1])
    .filter((d): d is string => d !== undefined)
    .map(Number);
  const out: Array<{ db: number; key: Buffer }> = [];
  const prefixLength = String(Buffer.byteLength(META_PREFIX));
  for (const db of dbs) {
    await client.select(db);
    let cursor = '0';
    do {
      if (stopped()) return out;
      const [next, metas] = await client.scanBuffer(
        cursor,
        'MATCH',
        `${META_PREFIX}*`,
        'COUNT',
        PAGE,
      );
      cursor = next.toString();
      if (metas.length === 0) continue;
      const missing = (await client.callBuffer(
        'EVAL',
        GAP_SCRIPT,
        '0',
        prefixLength,
        ...metas,
      )) as Buffer[];
      for (const key of missing) out.push({ db, key });
    } while (cursor !== '0');
  }
  return out;
}
