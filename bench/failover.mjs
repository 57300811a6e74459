#!/usr/bin/env node
// Switchover and failover figures for one local region (a primary and a replica, an agent with
// its Sentinel-compatible endpoint), each beside a baseline measured in the same run:
//   1. safe switchovers (`georep switchover --wait`) while an ioredis client in Sentinel mode
//      writes a numbered key every millisecond: the write pause per switchover (the longest gap
//      between acknowledged writes around it, and the pause the agent reports), and acknowledged
//      writes lost over all switchovers (every acknowledged key must be on the final primary).
//      Baseline: the longest gap between acknowledged writes over the same time without any
//      switchover (what the machine itself costs).
//   2. time from SIGKILL of the primary until writes succeed again through Sentinel discovery,
//      with the agent's automatic failover, next to Debian's redis-sentinel (`redis-server
//      --sentinel`, one sentinel, quorum 1) with the same down-after-milliseconds on the same
//      machine.
// Usage: npm run bench:failover [-- --switchovers 20 --kills 3 --down-after 2000]
// Loopback only; every loop is bounded. Build first: npx turbo run build (or npm run setup).
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import {
  findBinary,
  getFreePorts,
  planGroup,
  startGroup,
  startRedis,
  tempDir,
  waitFor,
} from '@georep/testkit';

const { values } = parseArgs({
  options: {
    switchovers: { type: 'string', default: '20' },
    kills: { type: 'string', default: '3' },
    'down-after': { type: 'string', default: '2000' },
  },
});
const SWITCHOVERS = Number(values.switchovers);
const KILLS = Number(values.kills);
const DOWN_AFTER_MS = Number(values['down-after']);
const BIN = fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url));
const REGION = 'eu-west';
const execFileAsync = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (xs) =>
  `p50 ${pct(xs, 50).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (n=${xs.length})`;

/** A client that writes `prefix:i` every ms until stopped; records acks and gaps. */
function startWriter(client, prefix) {
  const acked = [];
  const ackTimes = [];
  let stop = false;
  const done = (async () => {
    for (let i = 0; !stop && i < 10_000_000; i++) {
      try {
        await client.set(`${prefix}:${i}`, '1');
        acked.push(i);
        ackTimes.push(performance.now());
      } catch {
        // not acknowledged: allowed to be missing
      }
      await sleep(1);
    }
  })();
  return {
    acked,
    ackTimes,
    stop: async () => {
      stop = true;
      await done;
    },
    /** Longest gap between acknowledged writes within [from, to] (performance.now() times). */
    longestGap(from, to) {
      let prev = null;
      let gap = 0;
      for (const t of ackTimes) {
        if (t < from) {
          prev = t;
          continue;
        }
        if (prev !== null) gap = Math.max(gap, t - prev);
        prev = t;
        if (t > to) break;
      }
      return gap;
    },
  };
}

function sentinelClient(port, name) {
  const c = new Redis({
    sentinels: [{ host: '127.0.0.1', port }],
    name,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 20,
    sentinelRetryStrategy: () => 50,
  });
  c.on('error', () => undefined);
  return c;
}

async function georep(args) {
  const { stdout } = await execFileAsync(process.execPath, [BIN, ...args], { timeout: 120_000 });
  return stdout;
}

async function switchovers(plan) {
  const region = plan.regions[0];
  const nats = `nats://127.0.0.1:${region.nats.port}`;
  const client = sentinelClient(region.agent.sentinelPort, REGION);
  await client.set('ready', '1');
  const writer = startWriter(client, 'w');
  // Baseline: the same writer with nothing happening.
  const baseFrom = performance.now();
  await sleep(3000);
  const baseline = writer.longestGap(baseFrom, performance.now());
  const gaps = [];
  const reported = [];
  let current = region.nodes[0].id;
  for (let i = 0; i < SWITCHOVERS; i++) {
    const target = region.nodes.find((n) => n.id !== current).id;
    const from = performance.now();
    const out = await georep([
      '--nats',
      nats,
      '--group',
      plan.group,
      'switchover',
      '--region',
      REGION,
      '--node',
      target,
      '--wait',
      '--json',
    ]);
    const op = JSON.parse(out);
    if (op.status !== 'succeeded') throw new Error(`switchover ${i}: ${JSON.stringify(op.error)}`);
    reported.push(op.result.maxPauseMs);
    // Let the client reach the new primary and the replica resync before the next one.
    await sleep(1500);
    gaps.push(writer.longestGap(from, performance.now()));
    current = target;
  }
  await writer.stop();
  const final = new Redis(region.nodes.find((n) => n.id === current).port, '127.0.0.1');
  let lost = 0;
  for (let k = 0; k < writer.acked.length; k += 1000) {
    const keys = writer.acked.slice(k, k + 1000).map((i) => `w:${i}`);
    const values = await final.mget(keys);
    lost += values.filter((v) => v === null).length;
  }
  final.disconnect();
  client.disconnect();
  return { baseline, gaps, reported, lost, acked: writer.acked.length };
}

/** Kill the primary `kills` times; time until a write through Sentinel discovery succeeds. */
async function killAndMeasure(kills, sentinelPort, name, nodes) {
  const times = [];
  for (let k = 0; k < kills; k++) {
    const client = sentinelClient(sentinelPort, name);
    await client.set('before', '1');
    const port = Number((await client.call('CONFIG', 'GET', 'port'))[1]);
    const victim = nodes.find((n) => n.port === port);
    const killedAt = performance.now();
    await victim.kill();
    const resumed = await waitFor(
      async () =>
        client.set('after', '1').then(
          () => performance.now(),
          () => null,
        ),
      (t) => t !== null,
      { timeoutMs: 60_000, intervalMs: 10, what: 'writes after the kill' },
    );
    times.push(resumed - killedAt);
    client.disconnect();
    // Bring the old primary back (it rejoins as a replica) and let things settle.
    await victim.restart();
    await sleep(DOWN_AFTER_MS + 3000);
  }
  return times;
}

async function georepFailover() {
  const plan = await planGroup({
    group: 'benchfo',
    dir: tempDir('bench-failover'),
    regions: [REGION, 'us-east'],
    replicas: 1,
    ports: 'free',
    health: { intervalMs: 250, downAfterMs: 2000 },
    replication: { enabled: false },
    agent: { failover: { downAfterMs: DOWN_AFTER_MS, failoverTimeoutMs: 3000 } },
  });
  const group = await startGroup(plan, {
    agentCommand: (configFile) => ({
      command: process.execPath,
      args: [BIN, 'agent', '--config', configFile],
    }),
    readyTimeoutMs: 30_000,
  });
  try {
    await sleep(2000);
    const so = await switchovers(plan);
    const region = plan.regions[0];
    const kills = await killAndMeasure(
      KILLS,
      region.agent.sentinelPort,
      REGION,
      group.region(REGION).nodes,
    );
    return { so, kills };
  } finally {
    await group.stop();
  }
}

async function sentinelFailover() {
  const dir = tempDir('bench-sentinel');
  const primary = await startRedis({ dir: join(dir, 'p') });
  const replica = await startRedis({
    dir: join(dir, 'r'),
    replicaOf: { host: primary.host, port: primary.port },
  });
  const [port] = await getFreePorts(1, '127.0.0.1');
  const confDir = join(dir, 'sentinel');
  mkdirSync(confDir, { recursive: true });
  const conf = join(confDir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${confDir}`,
      `sentinel monitor m 127.0.0.1 ${primary.port} 1`,
      `sentinel down-after-milliseconds m ${DOWN_AFTER_MS}`,
      'sentinel failover-timeout m 3000',
      'sentinel parallel-syncs m 1',
      '',
    ].join('\n'),
  );
  const sentinel = spawn(findBinary('redis-server'), [conf, '--sentinel'], { stdio: 'ignore' });
  try {
    await sleep(1500);
    return await killAndMeasure(KILLS, port, 'm', [primary, replica]);
  } finally {
    sentinel.kill('SIGKILL');
    await Promise.all([primary.stop(), replica.stop()]);
  }
}

const georepRun = await georepFailover();
const sentinelTimes = await sentinelFailover();
const { so } = georepRun;
console.log(`\nsafe switchovers (${SWITCHOVERS}), ioredis in Sentinel mode writing every ms:`);
console.log(`  longest gap between acks, no switchover (baseline): ${so.baseline.toFixed(0)} ms`);
console.log(`  write pause seen by the client per switchover:      ${fmt(so.gaps)}`);
console.log(`  pause reported by the agent:                        ${fmt(so.reported)}`);
console.log(`  acknowledged writes: ${so.acked}, lost: ${so.lost}`);
console.log(
  `\nprimary killed -> writes succeed again through Sentinel discovery (down-after ${DOWN_AFTER_MS} ms):`,
);
console.log(`  georep agent:                ${fmt(georepRun.kills)}`);
console.log(`  redis-sentinel (baseline):   ${fmt(sentinelTimes)}`);
