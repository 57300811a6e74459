/**
 * Deletes a full sync would otherwise miss. Capture falls back to a full sync when the primary no
 * longer has its position (a restart without the position file, a backlog that overflowed, a
 * resync). The snapshot then stands for the dataset, and every key in it is recorded as a write;
 * but a key deleted (or expired) in the gap is simply absent, and its peers would keep it for
 * good. Its metadata is still there, though: a key whose metadata says it is live (no tombstone)
 * while the key is not in the snapshot was deleted in the gap, and gets a `value` instruction,
 * which records a delete when the key is missing and the whole value when the application wrote
 * it again since the snapshot (an element or counter op alone would leave the peers' older fields
 * or contributions in place).
 * Keys whose metadata is a tombstone (`x` = 1) are left alone: a new delete of those would wipe a
 * peer's later write that this region has not applied yet.
 *
 * What the snapshot held is kept as a {@link SnapshotKeys} fingerprint (8 bytes a key, not the key
 * names), and the metadata is read from the primary once the snapshot's keys are queued, in SCAN
 * pages, so that the agent holds one page of names at a time whatever the size of the dataset.
 */
import type { Redis } from 'ioredis';
import { keyspaceDbs, parseInfo } from '@georep/redis';
import { META_PREFIX } from './ops.js';

/** Meta keys per SCAN page, and so per script call. */
const PAGE = 1000;

/**
 * ARGV[1]: the length of the metadata prefix; ARGV[2..]: metadata keys. Replies the data keys
 * whose metadata is live (anything but a hash with `x` = 1).
 */
const LIVE_SCRIPT = `
local plen = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  if redis.pcall('HGET', ARGV[i], 'x') ~= '1' then out[#out + 1] = string.sub(ARGV[i], plen + 1) end
end
return out
`;

/**
 * The keys of a snapshot as 64-bit hashes of (db, key): enough to tell whether a key was in it
 * at 8 bytes a key. Two different keys share a hash with a probability of about n / 2^64.
 */
export class SnapshotKeys {
  #hashes = new BigUint64Array(1024);
  #size = 0;
  #sorted = true;

  add(db: number, key: Uint8Array): void {
    if (this.#size === this.#hashes.length) {
      const grown = new BigUint64Array(this.#hashes.length * 2);
      grown.set(this.#hashes);
      this.#hashes = grown;
    }
    this.#hashes[this.#size++] = keyHash(db, key);
    this.#sorted = false;
  }

  has(db: number, key: Uint8Array): boolean {
    if (!this.#sorted) {
      this.#hashes = this.#hashes.slice(0, this.#size).sort();
      this.#sorted = true;
    }
    const h = keyHash(db, key);
    let lo = 0;
    let hi = this.#size - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.#hashes[mid]!;
      if (v === h) return true;
      if (v < h) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }
}

/** Two 32-bit FNV-1a variants (different offsets) over the db number and the key's bytes. */
function keyHash(db: number, key: Uint8Array): bigint {
  let a = 0x811c9dc5 ^ db;
  let b = 0x050c5d1f ^ Math.imul(db, 0x9e3779b1);
  for (let i = 0; i < key.length; i++) {
    a = Math.imul(a ^ key[i]!, 0x01000193);
    b = Math.imul(b ^ key[i]!, 0x01000193) ^ (b >>> 15);
  }
  return (BigInt(a >>> 0) << 32n) | BigInt(b >>> 0);
}

/**
 * The keys of every database of the primary behind `client` whose metadata is live while the
 * key is not in `snapshot`: deleted in the gap (and maybe written again since). `client` must be
 * a connection of its own: it is moved between databases.
 */
export async function findGapDeletes(
  client: Redis,
  snapshot: SnapshotKeys,
  stopped: () => boolean = () => false,
): Promise<Array<{ db: number; key: Buffer }>> {
  const dbs = keyspaceDbs(parseInfo(await client.info('keyspace')));
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
      const live = (await client.callBuffer(
        'EVAL',
        LIVE_SCRIPT,
        '0',
        prefixLength,
        ...metas,
      )) as Buffer[];
      for (const key of live) if (!snapshot.has(db, key)) out.push({ db, key });
    } while (cursor !== '0');
  }
  return out;
}
