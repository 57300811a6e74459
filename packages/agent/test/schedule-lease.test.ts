import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ScheduleLeases, scheduleLeaseBucket } from '@georep/agent';
import { startNats, tempDir, type NatsServer } from '@georep/testkit';

let nats: NatsServer;
let first: NatsConnection;
let second: NatsConnection;

beforeAll(async () => {
  nats = await startNats({ dir: tempDir('lease-nats'), serverName: 'eu-west', jetstream: true });
  first = await connect({ servers: nats.url });
  second = await connect({ servers: nats.url });
});

afterAll(async () => {
  await first?.close();
  await second?.close();
  await nats?.stop();
});

describe('schedule leases', () => {
  it('leases - the bucket is per group and region, placed in the region', () => {
    expect(scheduleLeaseBucket('orders', 'eu-west')).toBe('georep_sched_orders_eu-west');
    expect(scheduleLeaseBucket('a.b', 'c')).toBe('georep_sched_a_b_c');
  });

  it('leases - of two agents reading the same cursor, exactly one moves it', async () => {
    // Two agents of one region, each with its own connection (as two processes would be).
    const a = new ScheduleLeases(first, { group: 'g1', region: 'eu-west' });
    const b = new ScheduleLeases(second, { group: 'g1', region: 'eu-west' });
    expect(await a.cursor('nightly')).toBeNull();
    const results = await Promise.all([
      a.advanceCursor('nightly', null, 5000, { agent: 'a' }),
      b.advanceCursor('nightly', null, 5000, { agent: 'b' }),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const cursor = (await b.cursor('nightly'))!;
    expect(cursor.slot).toBe(5000);
    const next = await Promise.all([
      a.advanceCursor('nightly', cursor, 10_000, { agent: 'a' }),
      b.advanceCursor('nightly', cursor, 10_000, { agent: 'b' }),
    ]);
    expect(next.filter(Boolean)).toHaveLength(1);
    // A stale read (the revision moved on) never moves it.
    expect(await a.advanceCursor('nightly', cursor, 15_000, { agent: 'a' })).toBe(false);
    expect((await a.cursor('nightly'))!.slot).toBe(10_000);
  });

  it('leases - a slot is leased once, also after a restart (a new client)', async () => {
    const a = new ScheduleLeases(first, { group: 'g2', region: 'eu-west' });
    const b = new ScheduleLeases(second, { group: 'g2', region: 'eu-west' });
    const claims = await Promise.all([
      a.claimSlot('nightly', 5000, { agent: 'a' }),
      b.claimSlot('nightly', 5000, { agent: 'b' }),
    ]);
    expect(claims.filter(Boolean)).toHaveLength(1);
    const restarted = new ScheduleLeases(first, { group: 'g2', region: 'eu-west' });
    expect(await restarted.claimSlot('nightly', 5000, { agent: 'a2' })).toBe(false);
    // Another region's leases are its own (its own bucket and keys).
    const us = new ScheduleLeases(second, { group: 'g2', region: 'us-east' });
    expect(us.bucket).toBe('georep_sched_g2_us-east');
    expect(await us.claimSlot('nightly', 5000, { agent: 'us' })).toBe(true);
  });

  it('leases - old slot keys are purged, the newest kept', async () => {
    const a = new ScheduleLeases(first, { group: 'g3', region: 'eu-west' });
    for (let slot = 1; slot <= 12; slot++) {
      expect(await a.claimSlot('fast', slot * 1000, { agent: 'a' })).toBe(true);
    }
    await a.pruneSlots('fast');
    // The newest slots are still leased; a purged one could be leased again, but the cursor
    // (already past it) keeps any agent from trying.
    expect(await a.claimSlot('fast', 12_000, { agent: 'a' })).toBe(false);
    expect(await a.claimSlot('fast', 1000, { agent: 'a' })).toBe(true);
  });
});
