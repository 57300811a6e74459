/** Helpers of the replication suites: read a region's whole dataset the way a user compares it. */
import type { Redis } from 'ioredis';

/** One key's content: type, value in a canonical form, and TTL in ms (-1 none). */
export interface KeyContent {
  type: string;
  value: unknown;
  pttl: number;
}

/** Every key of db 0 except georep's own, with its content. */
export async function readDataset(client: Redis): Promise<Map<string, KeyContent>> {
  const out = new Map<string, KeyContent>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      if (key.startsWith('__georep:')) continue;
      const content = await readKey(client, key);
      if (content !== null) out.set(key, content);
    }
  } while (cursor !== '0');
  return out;
}

/** The content of one key, or null when it does not exist. */
export async function readKey(client: Redis, key: string): Promise<KeyContent | null> {
  const type = await client.type(key);
  let value: unknown;
  switch (type) {
    case 'none':
      return null;
    case 'string':
      value = await client.get(key);
      break;
    case 'hash':
      value = Object.entries(await client.hgetall(key)).sort(([a], [b]) => (a < b ? -1 : 1));
      break;
    case 'set':
      value = (await client.smembers(key)).sort();
      break;
    case 'zset':
      value = await client.zrange(key, 0, -1, 'WITHSCORES');
      break;
    case 'list':
      value = await client.lrange(key, 0, -1);
      break;
    default:
      value = (await client.dumpBuffer(key))?.toString('base64');
  }
  return { type, value, pttl: await client.pttl(key) };
}

/**
 * Differences between two datasets: keys missing on one side, or with another type or value, or
 * TTLs more than `ttlSlackMs` apart. Empty when they match.
 */
export function diffDatasets(
  a: Map<string, KeyContent>,
  b: Map<string, KeyContent>,
  ttlSlackMs = 1500,
): string[] {
  const out: string[] = [];
  for (const [key, ca] of a) {
    const cb = b.get(key);
    if (cb === undefined) {
      out.push(`${key}: only in the first (${JSON.stringify(ca)})`);
      continue;
    }
    if (ca.type !== cb.type || JSON.stringify(ca.value) !== JSON.stringify(cb.value)) {
      out.push(`${key}: ${JSON.stringify(ca)} vs ${JSON.stringify(cb)}`);
    } else if (ca.pttl < 0 !== cb.pttl < 0 || Math.abs(ca.pttl - cb.pttl) > ttlSlackMs) {
      out.push(`${key}: ttl ${ca.pttl} vs ${cb.pttl}`);
    }
  }
  for (const key of b.keys()) if (!a.has(key)) out.push(`${key}: only in the second`);
  return out;
}
