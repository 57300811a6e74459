import { createServer } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { DependencyMissingError } from '@georep/core';
import {
  ProcessStartError,
  findBinary,
  DEV_PORTS,
  getFreePort,
  isDevPort,
  startNats,
  startRedis,
  tempDir as tmp,
  waitFor,
  type RedisServer,
} from '@georep/testkit';

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  await Promise.all(cleanup.map((f) => f()));
});
const track = <T extends { stop: () => Promise<void> }>(server: T): T => {
  cleanup.push(() => server.stop());
  return server;
};

describe('testkit redis-server', () => {
  it('redis - a replica started with replicaOf receives the primary writes', async () => {
    const primary = track(await startRedis({ dir: tmp('primary') }));
    const replica = track(
      await startRedis({
        dir: tmp('replica'),
        replicaOf: { host: primary.host, port: primary.port },
      }),
    );
    const p = new Redis(primary.port, primary.host);
    const r = new Redis(replica.port, replica.host);
    try {
      await p.set('k', 'v');
      expect(
        await waitFor(
          () => r.get('k'),
          (v) => v === 'v',
        ),
      ).toBe('v');
      expect(await r.info('replication')).toContain('role:slave');
    } finally {
      p.disconnect();
      r.disconnect();
    }
  });

  it('redis - a killed node restarts on the same port with its append-only data', async () => {
    const node: RedisServer = track(
      await startRedis({ dir: tmp('aof'), appendonly: true, extraConfig: ['appendfsync always'] }),
    );
    const client = new Redis(node.port, node.host, { lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    try {
      await client.set('survives', 'yes');
      const oldPid = node.pid;
      await node.kill();
      expect(node.running).toBe(false);
      await node.restart();
      expect(node.pid).not.toBe(oldPid);
      expect(
        await waitFor(
          () => client.get('survives'),
          (v) => v === 'yes',
        ),
      ).toBe('yes');
    } finally {
      client.disconnect();
    }
  });

  it('redis - a port already taken fails fast with the server log in the error', async () => {
    const port = await getFreePort();
    const blocker = createServer().listen(port, '127.0.0.1');
    try {
      const err = await startRedis({ dir: tmp('busy'), port }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProcessStartError);
      expect((err as ProcessStartError).code).toBe('testkit.exited-early');
      expect((err as ProcessStartError).message).toMatch(/Address already in use|bind/i);
    } finally {
      blocker.close();
    }
  });

  it('binaries - a missing server binary says which package to install', () => {
    expect(() => findBinary('georep-no-such-server')).toThrow(DependencyMissingError);
    try {
      findBinary('nats-server', { PATH: '/nonexistent' });
    } catch {
      throw new Error('nats-server must also be found in /usr/sbin');
    }
  });
});

describe('testkit ports', () => {
  it("ports - free ports for tests leave out georep dev's fixed ports, which its test binds", async () => {
    expect(isDevPort(DEV_PORTS.sentinel)).toBe(true);
    expect(isDevPort(DEV_PORTS.sentinel + 15)).toBe(true);
    expect(isDevPort(DEV_PORTS.sentinel + 16)).toBe(false);
    expect(isDevPort(DEV_PORTS.redis + 10 * 15 + 2)).toBe(true);
    for (let i = 0; i < 50; i++) expect(isDevPort(await getFreePort())).toBe(false);
  });
});

describe('testkit nats-server', () => {
  it('nats - two servers joined by gateways carry messages both ways, with JetStream on', async () => {
    const [gwA, gwB] = [await getFreePort(), await getFreePort()];
    const remotes = [
      { name: 'a', port: gwA },
      { name: 'b', port: gwB },
    ];
    const a = track(
      await startNats({ dir: tmp('nats-a'), serverName: 'a', gateway: { port: gwA, remotes } }),
    );
    const b = track(
      await startNats({ dir: tmp('nats-b'), serverName: 'b', gateway: { port: gwB, remotes } }),
    );
    const ncA = await connect({ servers: a.url });
    const ncB = await connect({ servers: b.url });
    try {
      const jsz = (await (await fetch(`http://127.0.0.1:${a.monitorPort}/varz`)).json()) as {
        jetstream?: { config?: unknown };
      };
      expect(jsz.jetstream?.config).toBeDefined();
      const sub = ncA.subscribe('probe', { max: 1 });
      await ncA.flush();
      const received = (async () => {
        for await (const m of sub) return m.string();
        return null;
      })();
      // Gateway links come up asynchronously; publish until the message crosses.
      const deadline = Date.now() + 10_000;
      let got: string | null = null;
      const timer = setInterval(() => ncB.publish('probe', 'from-b'), 100);
      try {
        got = await Promise.race([
          received,
          new Promise<null>((r) => setTimeout(() => r(null), deadline - Date.now())),
        ]);
      } finally {
        clearInterval(timer);
      }
      expect(got).toBe('from-b');
    } finally {
      await ncA.close();
      await ncB.close();
    }
  });
});
