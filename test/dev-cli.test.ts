/**
 * The quick start as a user runs it: `georep dev start` with its fixed default ports, then
 * `georep status` with no flags, an outage drill, and `georep dev stop` leaving nothing behind.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '@georep/core';
import type { DevCluster } from '@georep/cli';
import { isAlive, tempDir, waitFor } from '@georep/testkit';
import { georep } from './helpers.js';

describe('georep dev', () => {
  const cwd = tempDir('dev-cli');
  const dir = join(cwd, '.georep-dev');
  const allPids = () => {
    const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as DevCluster;
    return cluster.regions
      .flatMap((r) => [r.agent.pid, r.natsPid, ...r.nodes.map((n) => n.pid)])
      .filter((p): p is number => p !== null);
  };
  let pids: number[] = [];

  afterAll(async () => {
    // Whatever happened, leave no process behind.
    if (existsSync(join(dir, 'cluster.json'))) await georep(['dev', 'stop'], { cwd });
    for (const pid of pids.filter(isAlive)) process.kill(pid, 'SIGKILL');
  });

  it('dev - start brings up three regions and writes cluster.json', async () => {
    const run = await georep(['dev', 'start', '--down-after-ms', '2000'], { cwd });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('group dev is up');
    const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as DevCluster;
    expect(cluster.group).toBe('dev');
    expect(cluster.regions.map((r) => r.name)).toEqual(['eu-west', 'us-east', 'ap-south']);
    expect(cluster.regions[0]!.nats).toBe('nats://127.0.0.1:4222');
    expect(cluster.regions[0]!.nodes).toMatchObject([
      { id: 'eu-west-1', host: '127.0.0.1', port: 7379, role: 'primary' },
      { id: 'eu-west-2', host: '127.0.0.1', port: 7380, role: 'replica' },
    ]);
    pids = allPids();
    expect(pids).toHaveLength(3 * 4);
    expect(pids.every(isAlive)).toBe(true);
  });

  it('dev - a second start on the same dir is refused with dev.already-running', async () => {
    const run = await georep(['dev', 'start'], { cwd });
    expect(run.code).toBe(6);
    expect(run.stderr).toContain('[dev.already-running]');
  });

  it('dev - georep status needs no flags and shows every region up', async () => {
    const run = await georep(['status', '--json'], { cwd });
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as StatusReport;
    expect(report.group).toBe('dev');
    expect(report.regions.map((r) => `${r.name}:${r.state}`).sort()).toEqual([
      'ap-south:up',
      'eu-west:up',
      'us-east:up',
    ]);
  });

  it('dev - the group replicates from the start: redis-cli writes in one region, every region reads it', async () => {
    const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as DevCluster;
    const primaries = cluster.regions.map((r) => r.nodes.find((n) => n.role === 'primary')!);
    const cli = (port: number, ...args: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile('redis-cli', ['-p', String(port), ...args], (err, out) => {
          if (err === null) resolve(out.trim());
          else reject(new Error(`redis-cli ${args.join(' ')}: ${err.message}`));
        }),
      );
    expect(await cli(primaries[1]!.port, 'SET', 'quickstart', 'written in us-east')).toBe('OK');
    expect(await cli(primaries[2]!.port, 'INCRBY', 'visits', '2')).toBe('2');
    for (const p of primaries) {
      await waitFor(
        async () => [await cli(p.port, 'GET', 'quickstart'), await cli(p.port, 'GET', 'visits')],
        ([v, n]) => v === 'written in us-east' && n === '2',
        { timeoutMs: 20_000, intervalMs: 100, what: `the writes in the region of port ${p.port}` },
      );
    }
  });

  it("dev - every region has a Sentinel endpoint that redis-cli asks for any region's primary", async () => {
    const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as DevCluster;
    for (const region of cluster.regions) {
      expect(region.sentinel).not.toBeNull();
      const other = cluster.regions.find((r) => r.name !== region.name)!;
      const primary = other.nodes.find((n) => n.role === 'primary')!;
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          'redis-cli',
          ['-p', String(region.sentinel!.port), 'SENTINEL', 'get-master-addr-by-name', other.name],
          (err, stdout) => (err === null ? resolve(stdout) : reject(new Error(err.message))),
        ),
      );
      expect(out.trim().split('\n')).toEqual([primary.host, String(primary.port)]);
    }
  });

  it('dev - kill shows the region down from a survivor; revive brings it back', async () => {
    const killed = await georep(['dev', 'kill', 'us-east'], { cwd });
    expect(killed.code).toBe(0);
    const stateOf = async (region: string) => {
      const run = await georep(['status', '--json'], { cwd });
      return (JSON.parse(run.stdout) as StatusReport).regions.find((r) => r.name === region)?.state;
    };
    await waitFor(
      () => stateOf('us-east'),
      (s) => s === 'down',
      { timeoutMs: 2000 + 3000 + 2000 },
    );
    const revived = await georep(['dev', 'revive', 'us-east'], { cwd });
    expect(revived.code).toBe(0);
    expect(await stateOf('us-east')).toBe('up');
    pids = [...pids, ...allPids()];
  });

  it('dev - stop leaves no process behind', async () => {
    const run = await georep(['dev', 'stop'], { cwd });
    expect(run.code).toBe(0);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(join(dir, 'cluster.json'))).toBe(false);
  });
});
