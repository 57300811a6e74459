import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '@georep/core';
import { renderStatus, runCli } from '@georep/cli';
import { reportWith } from './status-fixture.js';
import { getFreePort, tempDir } from '@georep/testkit';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await runCli(args, (s) => (err += s));
  return { code, err };
}

describe('cli errors', () => {
  it('cli - status with no NATS reachable exits 4 with nats.unreachable and what to do', async () => {
    const port = await getFreePort();
    const { code, err } = await run(['--nats', `nats://127.0.0.1:${port}`, 'status']);
    expect(code).toBe(ExitCode.unreachable);
    expect(err).toContain('[nats.unreachable]');
    expect(err).toContain('what to do:');
  });

  it('cli - --json errors are one JSON document with the code and hint', async () => {
    const port = await getFreePort();
    const { code, err } = await run(['--nats', `nats://127.0.0.1:${port}`, 'status', '--json']);
    expect(code).toBe(ExitCode.unreachable);
    const doc = JSON.parse(err) as { error: { code: string; hint: string } };
    expect(doc.error.code).toBe('nats.unreachable');
    expect(doc.error.hint).toBeTruthy();
  });

  it('cli - agent with a missing or invalid config exits 3 and names the bad fields', async () => {
    const missing = await run(['agent', '--config', '/nonexistent/agent.json']);
    expect(missing.code).toBe(ExitCode.config);
    expect(missing.err).toContain('[config.not-found]');
    const dir = tempDir('cli');
    const file = join(dir, 'agent.json');
    writeFileSync(
      file,
      JSON.stringify({
        group: 'Bad Name',
        region: 'r',
        nats: { servers: [] },
        redis: { nodes: [] },
      }),
    );
    const invalid = await run(['agent', '--config', file]);
    expect(invalid.code).toBe(ExitCode.config);
    expect(invalid.err).toContain('group:');
    expect(invalid.err).toContain('nats.servers:');
    expect(invalid.err).toContain('redis.nodes:');
  });

  it('cli - dev commands without a running group exit 5 with dev.not-running', async () => {
    const dir = tempDir('cli-dev');
    const { code, err } = await run(['dev', 'kill', 'eu-west', '--dir', dir]);
    expect(code).toBe(ExitCode.notFound);
    expect(err).toContain('[dev.not-running]');
  });

  it('cli - usage errors exit 2; bad --regions is a config error', async () => {
    expect((await run(['no-such-command'])).code).toBe(ExitCode.usage);
    const bad = await run(['dev', 'start', '--dir', tempDir('cli-bad'), '--regions', 'EU,eu']);
    expect(bad.code).toBe(ExitCode.config);
    expect(bad.err).toContain('[config.invalid-regions]');
  });
});

describe('status rendering', () => {
  it('status - replication links with a backlog about to fill the stream print a warning', () => {
    const link = {
      peer: 'ap-south',
      lagMs: null,
      appliedOps: 0,
      appliedBatches: 0,
      lastAppliedAt: null,
      appliedTag: null,
      error: null,
      backlog: {
        messages: 1200,
        bytes: 900 * 1024 * 1024,
        oldestAgeMs: 600_000,
        lost: false,
        growthBytesPerSec: 1024 * 1024,
        fullInSec: 124,
        streamLimitBytes: 1024 * 1024 * 1024,
      },
    };
    const text = renderStatus(
      reportWith({
        replication: {
          enabled: true,
          state: 'running',
          capture: { batches: 3, ops: 42, recordedOffset: 10, warnings: 0 },
          links: [link, { ...link, peer: 'us-east', lagMs: 7, appliedOps: 40, backlog: null }],
          gcHorizon: null,
          lastGc: null,
        },
      }),
    );
    expect(text).toContain('replication of eu-west (running, 42 ops captured)');
    expect(text).toMatch(/ap-south\s+-\s+0\s+1200 msgs/);
    expect(text).toMatch(/us-east\s+7 ms\s+40/);
    expect(text).toContain('warning: the backlog held for ap-south reaches the stream limit');
  });

  it("status - the answering region's nodes are listed shard by shard, primary first, with replica lag", () => {
    const node = (id: string, shard: string, role: 'primary' | 'replica', extra = {}) => ({
      id,
      host: '10.0.0.1',
      port: 6379,
      shard,
      role,
      up: true,
      sampledAt: 0,
      ...extra,
    });
    const text = renderStatus(
      reportWith({
        routedTo: 'us-east',
        activity: { kind: 'switching', operationId: 'op-1', since: 0 },
        primary: 'e-s1-1',
        nodes: [
          node('e-s2-2', 's2', 'replica', { lagBytes: 2048, replicaPriority: 100 }),
          node('e-s1-2', 's1', 'replica', {
            up: false,
            error: 'connect ECONNREFUSED',
          }),
          node('e-s2-1', 's2', 'primary'),
          node('e-s1-1', 's1', 'primary'),
        ],
      }),
    );
    expect(text).toMatch(/eu-west\s+up \(switching\)\s+linked, served by us-east/);
    const lines = text.slice(text.indexOf('nodes of eu-west')).split('\n');
    expect(lines[1]).toMatch(/^SHARD\s+NODE\s+ROLE/);
    expect(lines.slice(2, 6).map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual([
      's1 e-s1-1 primary',
      's1 e-s1-2 replica',
      's2 e-s2-1 primary',
      's2 e-s2-2 replica',
    ]);
    expect(lines[3]).toContain('down: connect ECONNREFUSED');
    expect(lines[5]).toMatch(/2\.0K\s+100$/);
  });
});
