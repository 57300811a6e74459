/**
 * Garbage collection of replication metadata in one shard: tombstones and dead entries below the
 * horizon (see docs/replication-internals.md, "Watermarks and garbage collection").
 */
import type { RedisConfig } from '@georep/core';
import { keyspaceDbs, parseInfo } from '@georep/redis';
import { collectGarbage, primaryClient } from '@georep/replication';

/**
 * Collects below `horizon` on the shard's primary, in bounded SCAN steps over every db that has
 * keys, pausing between steps so that the primary serves its clients. Stops early once `stopped`
 * says so.
 */
export async function collectShardGarbage(
  endpoint: { host: string; port: number },
  redis: RedisConfig,
  options: { horizon: string; stopped: () => boolean },
): Promise<{ metaDeleted: number; fieldsDeleted: number }> {
  const client = primaryClient(endpoint, redis, 'georep-gc');
  let metaDeleted = 0;
  let fieldsDeleted = 0;
  try {
    await client.connect();
    for (const db of keyspaceDbs(parseInfo(await client.info('keyspace')))) {
      let cursor = '0';
      do {
        if (options.stopped()) return { metaDeleted, fieldsDeleted };
        const step = await collectGarbage(client, {
          horizon: options.horizon,
          db,
          cursor,
          count: 500,
        });
        cursor = step.cursor;
        metaDeleted += step.metaDeleted;
        fieldsDeleted += step.fieldsDeleted;
        await new Promise((r) => setTimeout(r, 10));
      } while (cursor !== '0');
    }
    return { metaDeleted, fieldsDeleted };
  } finally {
    client.disconnect();
  }
}
