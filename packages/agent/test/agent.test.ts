import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupSubjects, parseAgentConfig, type Heartbeat, type StatusReport } from '@georep/core';
import { Agent } from '@georep/agent';
import {
  startNats,
  startRedis,
  tempDir as tmp,
  waitFor,
  type NatsServer,
  type RedisServer,
} from '@georep/testkit';

const subjects = groupSubjects('g');

describe('agent against real servers', () => {
  let nats: NatsServer;
  let primary: RedisServer;
  let replica: RedisServer;
  let agent: Agent;
  let nc: NatsConnection;

  const status = async (): Promise<StatusReport> =>
    (await nc.request(subjects.status, '', { timeout: 2000 })).json<StatusReport>();
  const http = async (path: string) => fetch(`http://127.0.0.1:${agent.httpPort}${path}`);

  beforeAll(async () => {
    nats = await startNats({ dir: tmp('nats'), serverName: 'a' });
    primary = await startRedis({ dir: tmp('p') });
    replica = await startRedis({
      dir: tmp('r'),
      replicaOf: { host: primary.host, port: primary.port },
    });
    agent = await Agent.start(
      parseAgentConfig({
        group: 'g',
        region: 'a',
        regions: ['a'],
        nats: { servers: [nats.url] },
        redis: {
          nodes: [
            { id: 'a-1', host: primary.host, port: primary.port },
            { id: 'a-2', host: replica.host, port: replica.port },
          ],
        },
        health: { intervalMs: 250, downAfterMs: 1000 },
        http: { host: '127.0.0.1', port: 0 },
      }),
    );
    await agent.connected();
    nc = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await nc?.close();
    await agent?.stop();
    await Promise.all([nats?.stop(), primary?.stop(), replica?.stop()]);
  });

  it('agent - answers status over NATS with both nodes, their roles and the replica lag', async () => {
    const report = await waitFor(status, (r) => r.regions[0]?.nodes.every((n) => n.up) === true);
    expect(report).toMatchObject({ v: 1, group: 'g', answeredBy: 'a' });
    const region = report.regions[0]!;
    expect(region).toMatchObject({ name: 'a', state: 'up', primary: 'a-1' });
    expect(region.nodes.map((n) => [n.id, n.role, n.port])).toEqual([
      ['a-1', 'primary', primary.port],
      ['a-2', 'replica', replica.port],
    ]);
    expect(region.nodes[1]!.lagBytes).toBeGreaterThanOrEqual(0);
  });

  it('agent - /healthz is 200 with the region view and /metrics is Prometheus text', async () => {
    const health = await http('/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      ok: true,
      region: 'a',
      natsConnected: true,
      regions: { a: 'up' },
    });
    const metrics = await (await http('/metrics')).text();
    expect(metrics).toMatch(/georep_node_up\{[^}]*node="a-1"[^}]*\} 1/);
    expect(metrics).toMatch(/georep_region_state\{[^}]*region="a"[^}]*\} 1/);
    expect(metrics).toMatch(/process_resident_memory_bytes/);
    expect((await http('/nope')).status).toBe(404);
  });

  it('agent - a peer heartbeat makes the peer up; its silence makes it suspect then down', async () => {
    const beat = (seq: number): Heartbeat => ({
      v: 1,
      group: 'g',
      region: 'b',
      agent: { id: 'b/test/1', version: 'test', startedAt: Date.now() },
      seq,
      sentAt: Date.now(),
      intervalMs: 250,
      downAfterMs: 1000,
      nodes: [],
      view: { a: 'up', b: 'up' },
    });
    nc.publish(subjects.heartbeat('b'), JSON.stringify(beat(1)));
    const up = await waitFor(status, (r) => r.regions.find((x) => x.name === 'b')?.state === 'up');
    expect(up.regions.map((r) => r.name)).toEqual(['a', 'b']);
    // Only agent a is live afterwards, so its own suspicion is a majority: b goes down.
    const down = await waitFor(
      status,
      (r) => r.regions.find((x) => x.name === 'b')?.state === 'down',
      { timeoutMs: 5000 },
    );
    expect(down.regions.find((x) => x.name === 'b')!.seenSuspectBy).toEqual(['a']);
  });

  it('agent - garbage on heartbeat subjects is counted and dropped; the agent keeps answering', async () => {
    nc.publish(subjects.heartbeat('x'), 'not json at all');
    nc.publish(subjects.heartbeat('y'), JSON.stringify({ v: 1, group: 'other' }));
    nc.publish(subjects.heartbeat('z'), new Uint8Array([0xff, 0xfe, 0x00]));
    await nc.flush();
    const metrics = await waitFor(
      async () => (await http('/metrics')).text(),
      (text) => /georep_bad_messages_total\{[^}]*subject="georep\.g\.hb\.z"[^}]*\} 1/.test(text),
    );
    expect(metrics).toMatch(/subject="georep\.g\.hb\.x"[^}]*\} 1/);
    expect((await status()).regions.map((r) => r.name)).not.toContain('x');
  });

  it('agent - a replica that dies is shown down and comes back up after a restart', async () => {
    await replica.kill();
    const down = await waitFor(status, (r) => r.regions[0]?.nodes[1]?.up === false);
    expect(down.regions[0]!.nodes[1]!.role).toBe('replica');
    expect(down.regions[0]!.nodes[1]!.error).toBeTruthy();
    await replica.restart();
    await waitFor(status, (r) => r.regions[0]?.nodes[1]?.up === true, { timeoutMs: 15_000 });
  });

  it('agent - survives a NATS restart and resumes heartbeats and answers', async () => {
    await nats.restart();
    const watcher = await connect({ servers: nats.url });
    try {
      const sub = watcher.subscribe(subjects.heartbeat('a'), { max: 1 });
      const got = (async () => {
        for await (const m of sub) return m.json<Heartbeat>();
        return null;
      })();
      const heartbeat = await Promise.race([
        got,
        new Promise<null>((r) => setTimeout(() => r(null), 10_000)),
      ]);
      expect(heartbeat?.region).toBe('a');
      const report = await waitFor(
        async () =>
          (await watcher.request(subjects.status, '', { timeout: 1000 })).json<StatusReport>(),
        () => true,
      );
      expect(report.answeredBy).toBe('a');
      expect(agent.natsConnected).toBe(true);
    } finally {
      await watcher.close();
    }
  });
});
