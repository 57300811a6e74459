import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { GeorepError } from '@georep/core';
import { startRedis, tempDir, waitFor, type RedisServer } from '@georep/testkit';
import {
  CaptureAuthError,
  CapturePsyncRefusedError,
  CaptureStream,
  MemoryPositionStore,
} from '@georep/replication';
import { Collector, clientOf, nodeOf, replInfo, replOffset, str } from './helpers.js';

describe('capture across a region topology', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let p: Redis;
  let r: Redis;
  const dir = tempDir('capture-topology');

  beforeAll(async () => {
    primary = await startRedis({ dir: join(dir, 'p') });
    p = clientOf(primary);
    // The primary's stream is left in db 3, so a replica passes on db-3 writes without a SELECT.
    await p.pipeline().set('zero', '0').select(3).set('three', '3').exec();
    replica = await startRedis({ dir: join(dir, 'r'), replicaOf: nodeOf(primary) });
    r = clientOf(replica);
    await waitFor(
      () => replInfo(r),
      (i) => i['master_link_status'] === 'up',
      {
        what: 'replica link',
      },
    );
  });

  afterAll(async () => {
    p?.disconnect();
    r?.disconnect();
    await replica?.stop();
    await primary?.stop();
  });

  it('chained - capture attached to a replica sees the primary writes, in the right db', async () => {
    const col = new Collector(CaptureStream.start({ node: nodeOf(replica) }));
    await col.until((c) => c.of('snapshot-end').length === 1, 'the snapshot from the replica');
    const keys = col.of('snapshot-keys').flatMap((e) => e.keys.map((k) => `${k.db}/${str(k.key)}`));
    expect(keys.sort()).toEqual(['0/zero', '3/three']);
    // The stream continues in db 3 (the RDB's repl-stream-db), with no SELECT in between.
    await p.pipeline().select(3).set('three-again', 'x').exec();
    await p.pipeline().select(0).set('zero-again', 'y').exec();
    await waitFor(
      () => replOffset(r),
      (o) => o > 0,
    );
    await col.caughtUp(r);
    expect(col.commands.map((c) => `${c.db}:${c.argv.map(str).join(' ')}`)).toEqual([
      '3:set three-again x',
      '0:set zero-again y',
    ]);
    expect(col.capture.position!.offset).toBe(await replOffset(p));
    await col.capture.stop();
  });

  it('failover - after promoting the replica, capture resumes on it with +CONTINUE <newreplid>', async () => {
    const store = new MemoryPositionStore();
    const first = new Collector(CaptureStream.start({ node: nodeOf(primary), store }));
    await p.set('before-failover', '1');
    await first.caughtUp(p);
    await first.capture.stop();
    const saved = store.load()!;
    const target = await replOffset(p);
    await waitFor(
      () => replOffset(r),
      (o) => o === target,
      { what: 'replica caught up' },
    );

    // Switchover: R becomes the primary (new replid, old one kept as replid2), P follows R.
    await r.replicaof('NO', 'ONE');
    await p.replicaof(replica.host, String(replica.port));
    const promoted = await replInfo(r);
    expect(promoted['master_replid2']).toBe(saved.replid);
    await r.set('after-failover', '2');

    const second = new Collector(CaptureStream.start({ node: nodeOf(replica), store }));
    await second.caughtUp(r);
    expect(second.events[0]).toMatchObject({
      type: 'resumed',
      previousReplid: saved.replid,
      replid: promoted['master_replid'],
      offset: saved.offset,
    });
    expect(second.of('snapshot-start')).toEqual([]);
    expect(second.commands.map((c) => c.argv.map(str).join(' '))).toEqual(['set after-failover 2']);
    await second.capture.stop();
    expect(store.load()!.replid).toBe(promoted['master_replid']);
  });
});

describe('capture with ACL users', () => {
  let server: RedisServer;
  let admin: Redis;
  const dir = tempDir('capture-acl');

  beforeAll(async () => {
    server = await startRedis({ dir, password: 'adminpw' });
    admin = clientOf(server, { password: 'adminpw' });
    // The least a capture user needs: PSYNC and REPLCONF (INFO only explains full resyncs).
    await admin.acl('SETUSER', 'capturer', 'on', '>cappw', '+psync', '+replconf');
    await admin.acl('SETUSER', 'app', 'on', '>apppw', '~*', '+@all', '-psync', '-sync');
  });

  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  it('acl - a user with +psync +replconf captures', async () => {
    await admin.set('k', 'v');
    const col = new Collector(
      CaptureStream.start({
        node: nodeOf(server),
        config: { username: 'capturer', password: 'cappw' },
      }),
    );
    await col.until((c) => c.of('snapshot-end').length === 1, 'snapshot');
    await admin.set('k2', 'v2');
    await col.caughtUp(admin);
    expect(col.commands.map((c) => c.argv.map(str).join(' '))).toEqual(['set k2 v2']);
    await col.capture.stop();
  });

  it('acl - a user without +psync gets capture.psync-refused and capture stops', async () => {
    const col = new Collector(
      CaptureStream.start({ node: nodeOf(server), config: { username: 'app', password: 'apppw' } }),
    );
    const err = await col.done;
    expect(err).toBeInstanceOf(CapturePsyncRefusedError);
    expect((err as GeorepError).code).toBe('capture.psync-refused');
    expect((err as CapturePsyncRefusedError).command).toBe('PSYNC');
    expect((err as GeorepError).hint).toContain('+psync');
  });

  it('auth - a wrong password gets capture.auth-failed', async () => {
    const col = new Collector(
      CaptureStream.start({
        node: nodeOf(server),
        config: { username: 'capturer', password: 'nope' },
      }),
    );
    const err = await col.done;
    expect(err).toBeInstanceOf(CaptureAuthError);
    expect((err as GeorepError).code).toBe('capture.auth-failed');
    // No password at all against a node that requires one: the first REPLCONF gets -NOAUTH.
    const anon = new Collector(CaptureStream.start({ node: nodeOf(server) }));
    expect(((await anon.done) as GeorepError).code).toBe('capture.auth-failed');
  });
});
