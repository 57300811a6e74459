import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { ObjectStoreSnapshotStore, snapshotBucketName } from '@georep/snapshot';
import { startNats, tempDir, type NatsServer } from '@georep/testkit';
import { runSnapshotStoreConformance, smallSnapshot } from './store-conformance.js';

let nats: NatsServer;
let nc: NatsConnection;
let buckets = 0;

beforeAll(async () => {
  nats = await startNats({ dir: tempDir('snap-nats'), serverName: 'snap', jetstream: true });
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

runSnapshotStoreConformance('object store', async () => {
  const bucket = `conformance_${++buckets}`;
  const store = await ObjectStoreSnapshotStore.open(nc, { bucket });
  return {
    store,
    teardown: async () => {
      await (await new Objm(nc).open(bucket)).destroy();
    },
  };
});

describe('object store', () => {
  it('object store - bucket names are sanitised; location is nats:<bucket>', async () => {
    expect(snapshotBucketName('prod', 'eu-west')).toBe('georep_prod_eu-west');
    expect(snapshotBucketName('a.b', 'c d/e')).toBe('georep_a_b_c_d_e');
    const store = await ObjectStoreSnapshotStore.open(nc, {
      bucket: snapshotBucketName('g.1', 'eu'),
    });
    expect(store.location).toBe('nats:georep_g_1_eu');
    expect(store.kind).toBe('object-store');
  });

  it('object store - metadata travels in the object metadata; foreign objects are not listed', async () => {
    const bucket = 'meta_check';
    const store = await ObjectStoreSnapshotStore.open(nc, { bucket });
    const s = smallSnapshot('eu-west-20261123T181500Z');
    const stored = await store.put(s.meta, s.file);
    const os = await new Objm(nc).open(bucket);
    const info = await os.info(s.meta.name);
    expect(JSON.parse(info!.metadata!['georep-snapshot']!)).toEqual(stored);
    await os.putBlob({ name: 'not-a-snapshot' }, new Uint8Array([1, 2, 3]));
    expect((await store.list()).map((m) => m.name)).toEqual(['eu-west-20261123T181500Z']);
    // A second store opened on the same bucket sees the same snapshots (the bucket exists now).
    const again = await ObjectStoreSnapshotStore.open(nc, { bucket });
    expect(await again.head(s.meta.name)).toEqual(stored);
    await os.destroy();
  });
});
