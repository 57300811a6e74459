import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAgentConfig, type RedisConfig } from '@georep/core';
import { createNodeClient, parseInfo, sampleNode, summarizeInfo } from '@georep/redis';
import {
  makeTestCertificates,
  startRedis,
  tempDir as tmp,
  waitFor,
  type RedisServer,
} from '@georep/testkit';

const redisConfig = (redis: Record<string, unknown>): RedisConfig =>
  parseAgentConfig({ group: 'g', region: 'r', nats: { servers: ['nats://127.0.0.1:1'] }, redis })
    .redis;

describe('node sampling', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  beforeAll(async () => {
    primary = await startRedis({ dir: tmp('p') });
    replica = await startRedis({
      dir: tmp('r'),
      replicaOf: { host: primary.host, port: primary.port },
    });
  });
  afterAll(async () => {
    await Promise.all([primary.stop(), replica.stop()]);
  });

  it('sample - a primary reports its role, version, offsets and connected replica', async () => {
    const node = { id: 'p1', host: primary.host, port: primary.port };
    const client = createNodeClient(node, redisConfig({ nodes: [node] }));
    try {
      await sampleNode(client, node, 'primary'); // connects the client
      await client.set('x', '1');
      const sample = await waitFor(
        () => sampleNode(client, node, 'primary'),
        (s) => s.replicas?.[0]?.state === 'online' && (s.replOffset ?? 0) > 0,
      );
      expect(sample.up).toBe(true);
      expect(sample.role).toBe('primary');
      expect(sample.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(sample.replOffset).toBeGreaterThan(0);
      expect(sample.replicas).toHaveLength(1);
      expect(sample.replicas![0]).toMatchObject({ port: replica.port, state: 'online' });
      expect(sample.usedMemoryBytes).toBeGreaterThan(0);
      expect(sample.pingMs).toBeGreaterThanOrEqual(0);
    } finally {
      client.disconnect();
    }
  });

  it('sample - a replica reports its primary and the link state', async () => {
    const node = { id: 'r1', host: replica.host, port: replica.port };
    const client = createNodeClient(node, redisConfig({ nodes: [node] }));
    try {
      const sample = await sampleNode(client, node, 'primary');
      expect(sample.role).toBe('replica');
      expect(sample.primary).toMatchObject({
        host: primary.host,
        port: primary.port,
        linkUp: true,
      });
    } finally {
      client.disconnect();
    }
  });

  it('sample - a node that is down gives up=false with a reason and keeps the last role', async () => {
    const node = { id: 'gone', host: '127.0.0.1', port: 1 };
    const client = createNodeClient(node, redisConfig({ nodes: [node] }));
    try {
      const sample = await sampleNode(client, node, 'replica');
      expect(sample).toMatchObject({ id: 'gone', up: false, role: 'replica' });
      expect(sample.error).toBeTruthy();
    } finally {
      client.disconnect();
    }
  });

  it('info - unknown sections and keys are kept; replica lines are parsed', () => {
    const info = parseInfo(
      '# Replication\r\nrole:master\r\nmaster_repl_offset:100\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset=90,lag=0\r\n# Future\r\nnew_field:1\r\n',
    );
    expect(info.future).toEqual({ new_field: '1' });
    expect(summarizeInfo(info).replicas).toEqual([
      { host: '10.0.0.2', port: 6380, state: 'online', offset: 90, lagBytes: 10 },
    ]);
  });
});

describe('node connections with ACL and TLS', () => {
  let server: RedisServer;
  let passwordFile: string;
  let certs: ReturnType<typeof makeTestCertificates>;
  beforeAll(async () => {
    const dir = tmp('acl');
    certs = makeTestCertificates(join(dir, 'certs'));
    passwordFile = join(dir, 'password');
    writeFileSync(passwordFile, 'agent-secret\n');
    server = await startRedis({
      dir,
      password: 'default-secret',
      user: { name: 'georep', password: 'agent-secret' },
      tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile },
    });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('tls+acl - an ACL user with the password from a file connects over verified TLS', async () => {
    const node = { id: 'n', host: server.host, port: server.port };
    const config = redisConfig({
      nodes: [node],
      username: 'georep',
      passwordFile,
      tls: { caFile: certs.caFile },
    });
    const client = createNodeClient(node, config);
    try {
      const sample = await sampleNode(client, node, 'primary');
      expect(sample.up).toBe(true);
      expect(await client.acl('WHOAMI')).toBe('georep');
    } finally {
      client.disconnect();
    }
  });

  it('tls+acl - a wrong password is reported in the sample, not thrown', async () => {
    const node = { id: 'n', host: server.host, port: server.port };
    const config = redisConfig({
      nodes: [node],
      username: 'georep',
      password: 'wrong',
      tls: { caFile: certs.caFile },
    });
    const client = createNodeClient(node, config);
    try {
      const sample = await sampleNode(client, node, 'primary');
      expect(sample.up).toBe(false);
      expect(sample.error).toMatch(/WRONGPASS|invalid username-password|not connected/i);
    } finally {
      client.disconnect();
    }
  });
});
