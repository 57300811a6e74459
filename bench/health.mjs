#!/usr/bin/env node
// Health-plane figures for a local three-region group, each printed beside a baseline measured
// in the same run:
//   - agent resident memory and CPU when idle   (baseline: an idle `node` process)
//   - time from a region kill to `down` seen by the survivors (baseline: downAfterMs)
//   - `georep status` latency, whole CLI process (baseline: `node -e ""` start-up) and the
//     NATS request alone (baseline: a NATS echo request through the same servers)
// Usage: npm run bench:health [-- --idle-seconds 20 --kills 3 --status-runs 10]
// Loopback only; every loop is bounded. Run `npm run setup` first.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { groupSubjects } from '@georep/core';
import { fetchAgentHealth, planGroup, startGroup, tempDir, waitFor } from '@georep/testkit';

const { values } = parseArgs({
  options: {
    'idle-seconds': { type: 'string', default: '20' },
    kills: { type: 'string', default: '3' },
    'status-runs': { type: 'string', default: '10' },
    'down-after-ms': { type: 'string', default: '5000' },
  },
});
const IDLE_S = Number(values['idle-seconds']);
const KILLS = Number(values.kills);
const STATUS_RUNS = Number(values['status-runs']);
const DOWN_AFTER_MS = Number(values['down-after-ms']);
const BIN = fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url));
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const PAGE = Number(execFileSync('getconf', ['PAGESIZE']).toString().trim());

const cpuTicks = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
};
const rssBytes = (pid) => Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs, unit) =>
  `median ${median(xs).toFixed(1)}${unit} (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}, n=${xs.length})`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const timeProcess = (args) => {
  const t = performance.now();
  execFileSync(process.execPath, args, { stdio: 'ignore' });
  return performance.now() - t;
};

const agentCommand = (configFile) => ({
  command: process.execPath,
  args: [BIN, 'agent', '--config', configFile],
});
const regions = ['eu-west', 'us-east', 'ap-south'];
const plan = await planGroup({
  group: 'bench',
  dir: tempDir('bench'),
  regions,
  replicas: 1,
  ports: 'free',
  health: { intervalMs: 1000, downAfterMs: DOWN_AFTER_MS },
});
console.log(
  `starting ${regions.length} regions (1 primary + 1 replica each), downAfterMs ${DOWN_AFTER_MS} ...`,
);
const group = await startGroup(plan, { agentCommand });
const baseline = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
  stdio: 'ignore',
});
try {
  // 1. Idle cost.
  await sleep(3000);
  const pids = regions.map((r) => group.region(r).agent.pid);
  const before = [...pids, baseline.pid].map(cpuTicks);
  await sleep(IDLE_S * 1000);
  const after = [...pids, baseline.pid].map(cpuTicks);
  const cpuPct = after.map((a, i) => ((a - before[i]) / CLK_TCK / IDLE_S) * 100);
  const rss = [...pids, baseline.pid].map((pid) => rssBytes(pid) / 2 ** 20);
  console.log(`\n## Idle agent (over ${IDLE_S} s, 3 regions, heartbeat every 1 s)`);
  console.log(
    `agent RSS      ${fmt(rss.slice(0, 3), ' MiB')}   | baseline idle node: ${rss[3].toFixed(1)} MiB`,
  );
  console.log(
    `agent CPU      ${fmt(cpuPct.slice(0, 3), ' %')}   | baseline idle node: ${cpuPct[3].toFixed(2)} %`,
  );

  // 2. Outage detection.
  const detect = [];
  for (let i = 0; i < KILLS; i++) {
    const victim = regions[i % regions.length];
    const survivors = plan.regions.filter((r) => r.name !== victim);
    const killedAt = performance.now();
    await group.killRegion(victim);
    await waitFor(
      async () =>
        Promise.all(survivors.map((r) => fetchAgentHealth('127.0.0.1', r.agent.httpPort))),
      (hs) => hs.every((h) => h?.regions[victim] === 'down'),
      { timeoutMs: DOWN_AFTER_MS + 10_000, intervalMs: 20 },
    );
    detect.push(performance.now() - killedAt);
    await group.reviveRegion(victim);
    await waitFor(
      async () =>
        Promise.all(plan.regions.map((r) => fetchAgentHealth('127.0.0.1', r.agent.httpPort))),
      (hs) => hs.every((h) => h !== null && Object.values(h.regions).every((s) => s === 'up')),
      { timeoutMs: 30_000 },
    );
  }
  console.log(`\n## Kill to down, seen by every survivor (${KILLS} kills)`);
  console.log(
    `kill -> down   ${fmt(detect, ' ms')}   | baseline downAfterMs: ${DOWN_AFTER_MS} ms (+ up to one heartbeat interval since the last beat)`,
  );

  // 3. Status latency.
  const nats = `nats://127.0.0.1:${plan.regions[0].nats.port}`;
  const cli = [];
  const nodeStart = [];
  for (let i = 0; i < STATUS_RUNS; i++) {
    cli.push(timeProcess([BIN, '--nats', nats, '--group', 'bench', 'status', '--json']));
    nodeStart.push(timeProcess(['-e', '']));
  }
  const nc = await connect({ servers: nats });
  const echo = nc.subscribe('bench.echo', { callback: (_e, m) => m.respond(m.data) });
  const req = [];
  const echoReq = [];
  for (let i = 0; i < 100; i++) {
    let t = performance.now();
    await nc.request(groupSubjects('bench').status, '', { timeout: 2000 });
    req.push(performance.now() - t);
    t = performance.now();
    await nc.request('bench.echo', 'x', { timeout: 2000 });
    echoReq.push(performance.now() - t);
  }
  echo.unsubscribe();
  await nc.close();
  console.log(`\n## georep status latency`);
  console.log(
    `CLI process    ${fmt(cli, ' ms')}   | baseline node -e "": ${fmt(nodeStart, ' ms')}`,
  );
  console.log(`NATS request   ${fmt(req, ' ms')}   | baseline NATS echo:  ${fmt(echoReq, ' ms')}`);
} finally {
  baseline.kill();
  await group.stop();
}
