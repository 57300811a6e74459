/**
 * The search for a full sync's gap deletes, against a real Redis: which keys with live metadata
 * count as deleted (or rewritten) since the snapshot, in every database, and the fingerprint of
 * the snapshot's keys it relies on.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnapshotKeys, findGapDeletes } from '@georep/replication';
import { startRedis, tempDir, type RedisServer } from '@georep/testkit';

describe('full sync gap', () => {
  let server: RedisServer;
  let client: Redis;

  beforeAll(async () => {
    server = await startRedis({ dir: tempDir('full-sync-gap') });
    client = new Redis(server.port, '127.0.0.1');
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('gap - live metadata without the key in the snapshot is found; tombstones and snapshot keys are not', async () => {
    const meta = (key: string | Buffer) =>
      Buffer.concat([Buffer.from('__georep:m:'), Buffer.from(key)]);
    const binary = Buffer.from([0x67, 0xff, 0x00, 0x0a]);
    const db2 = client.duplicate({ db: 2 });
    const search = client.duplicate();
    try {
      // In the snapshot and still there.
      await client.set('kept', 'v');
      await client.hset(meta('kept'), 't', '1');
      // Deleted in the gap: live metadata, no key.
      await client.hset(meta('deleted'), 't', '1');
      // Deleted in the gap, then written again after the snapshot: live metadata, a key, but not
      // in the snapshot.
      await client.hset('rewritten', 'f', 'new');
      await client.hset(meta('rewritten'), 't', '1');
      // Deleted before: a tombstone.
      await client.hset(meta('tombstone'), 't', '1', 'x', '1');
      // Metadata that is not a hash counts as live.
      await client.set(meta('odd'), 'not a hash');
      // Another database, a name that is not text.
      await db2.hset(meta(binary), 't', '1');
      await db2.set('db2-kept', 'v');
      await db2.hset(meta('db2-kept'), 't', '1');

      const snapshot = new SnapshotKeys();
      snapshot.add(0, Buffer.from('kept'));
      snapshot.add(2, Buffer.from('db2-kept'));
      // A key of the same name in another database does not stand for `deleted` in db 0.
      snapshot.add(1, Buffer.from('deleted'));

      const gap = await findGapDeletes(search, snapshot);
      const found = gap.map((g) => `${g.db}:${g.key.toString('latin1')}`).sort();
      expect(found).toEqual(
        ['0:deleted', '0:odd', '0:rewritten', `2:${binary.toString('latin1')}`].sort(),
      );
    } finally {
      db2.disconnect();
      search.disconnect();
    }
  });

  it('fingerprint - every added key is found and other keys are not', () => {
    const snapshot = new SnapshotKeys();
    for (let i = 0; i < 100_000; i++) snapshot.add(i % 3, Buffer.from(`key:${i}`));
    let missed = 0;
    let extra = 0;
    for (let i = 0; i < 100_000; i++) {
      if (!snapshot.has(i % 3, Buffer.from(`key:${i}`))) missed++;
      if (snapshot.has(i % 3, Buffer.from(`other:${i}`))) extra++;
      if (snapshot.has((i + 1) % 3, Buffer.from(`key:${i}`))) extra++;
    }
    expect(missed).toBe(0);
    expect(extra).toBe(0);
  });
});
