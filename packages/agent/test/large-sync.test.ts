import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAgentConfig } from '@georep/core';
import { Agent } from '@georep/agent';
import {
  startNats,
  startRedis,
  tempDir,
  waitFor,
  type NatsServer,
  type RedisServer,
} from '@georep/testkit';

/**
 * A peer that is far behind gets the whole document in one Automerge sync message, larger than
 * the server's max_payload: it must arrive in chunks.
 */
describe('group document sync larger than max_payload', () => {
  let nats: NatsServer;
  let redis: RedisServer;
  const agents: Agent[] = [];
  const config = (region: string) =>
    parseAgentConfig({
      group: 'big',
      region,
      regions: ['a', 'b'],
      nats: { servers: [nats.url] },
      redis: { nodes: [{ host: redis.host, port: redis.port }] },
      health: { intervalMs: 200, downAfterMs: 1000 },
      http: false,
      dataDir: tempDir(`large-sync-${region}`),
    });

  beforeAll(async () => {
    nats = await startNats({
      dir: tempDir('large-sync-nats'),
      serverName: 'n',
      jetstream: false,
      extraConfig: ['max_payload: 8192'],
    });
    redis = await startRedis({ dir: tempDir('large-sync-redis') });
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await Promise.all([nats?.stop(), redis?.stop()]);
  });

  it('sync - a 100 KB document reaches a new peer through an 8 KB max_payload', async () => {
    const a = await Agent.start(config('a'));
    agents.push(a);
    for (let i = 0; i < 300; i++) {
      a.plane.document.record({
        at: i,
        region: 'a',
        kind: 'note',
        message: `event ${i} ${randomBytes(150).toString('hex')}`,
        operationId: null,
      });
    }
    expect(a.plane.document.save().byteLength).toBeGreaterThan(8192 * 4);
    const b = await Agent.start(config('b'));
    agents.push(b);
    await waitFor(
      () => b.plane.document.heads().join(),
      (h) => h === a.plane.document.heads().join(),
      { timeoutMs: 20_000 },
    );
    expect(b.plane.document.history(1000)).toHaveLength(300);
  });
});
