#!/usr/bin/env node
// Active-active replication figures for a local three-region group (region A writes, B and C
// receive), each beside a baseline measured in the same run:
//   1. memory of replication metadata in B: used_memory growth for N replicated string keys and
//      for hashes of 10 fields (baseline: the same writes into a plain redis-server)
//   2. lag from a SET in A until B and C see the key (keyspace notifications), at fixed write
//      rates (baseline: the same write seen by a subscriber on A itself, the floor of the
//      method: client -> server -> notification -> client)
//   3. maximum replicated writes/s: a pipelined blast of SETs into A until the last one is
//      visible in B and C (baseline: `redis-benchmark -t set -P 16` against the same A server,
//      with A's agent running and again with it stopped); the same redis-benchmark as the load of
//      the group, timed until a marker written after it is in B and C; and the same benchmark
//      into a primary of Redis's own replication with two replicas, timed until both have every
//      write: the native cost of three copies on this machine
//   4. agent resident memory, idle and after the load (VmRSS, peak VmHWM)
// A phase whose writes have not all arrived within its wait leaves a backlog behind; the next
// phase then runs on a fresh group so that its figures are its own (the old group's logs stay).
// Usage: npm run bench:replication [-- --seconds 10 --rates 1000,10000 --blast 200000
//        --mem-keys 100000 --hashes 10000 --drain-seconds 15 --replicas 0]
// BENCH_AGENT_NODE_ARGS passes node options to the agents (e.g. "--cpu-prof --cpu-prof-dir=DIR").
// Loopback only; every loop is bounded. Build first: npx turbo run build (or npm run setup).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { groupSubjects } from '@georep/core';
import { findBinary, planGroup, startGroup, startRedis, tempDir, waitFor } from '@georep/testkit';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rates: { type: 'string', default: '1000,10000' },
    blast: { type: 'string', default: '200000' },
    'mem-keys': { type: 'string', default: '100000' },
    hashes: { type: 'string', default: '10000' },
    'drain-seconds': { type: 'string', default: '15' },
    // Replicas per primary: with one, every batch waits for the replica (replicaAckTimeoutMs).
    replicas: { type: 'string', default: '0' },
  },
});
const SECONDS = Number(values.seconds);
const RATES = values.rates.split(',').map(Number);
const BLAST = Number(values.blast);
const MEM_KEYS = Number(values['mem-keys']);
const HASHES = Number(values.hashes);
/** How long writes may take to show up in B and C after the writer stopped. */
const DRAIN_MS = Number(values['drain-seconds']) * 1000;
/** The blast and the memory phase wait longer: they write everything at once. */
const BULK_WAIT_MS = 60_000;
const HASH_FIELDS = 10;
const STRING_VALUE = 'v'.repeat(32);
const FIELD_VALUE = 'f'.repeat(16);
/** The paced writer sends what is due every SLICE_MS, as one pipeline. */
const SLICE_MS = 10;
/** Pipelines of the bulk writes, and how many are in flight at once. */
const CHUNK = 1000;
const IN_FLIGHT = 8;
const BENCHMARK_RUNS = 3;
/** Node options for the agents, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile them. */
const AGENT_NODE_ARGS = (process.env.BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
const BIN = fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url));
const GROUP = 'benchrep';
const [A, B, C] = ['eu-west', 'us-east', 'ap-south'];
const REGIONS = [A, B, C];
const execFileAsync = promisify(execFile);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Percentile of an ascending array; Infinity stands for a write that never arrived. */
const pct = (sorted, p) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const ms = (x) => (x === Infinity ? 'not seen' : Number.isNaN(x) ? '-' : `${x.toFixed(1)} ms`);
const num = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : String(x));
const secs = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : 'not within the wait');
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
const procCpu = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / CLOCK_TICKS;
};
/** USER_HZ of Linux; 100 on every common platform. */
const CLOCK_TICKS = 100;

/** VmRSS and VmHWM (peak) of a process, in bytes. */
const procMemory = (pid) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
};
const usedMemory = async (client) =>
  Number(/^used_memory:(\d+)/m.exec(await client.info('memory'))?.[1]);
/** Throws on the first error reply of a pipeline. */
const checked = (results) => {
  for (const [err] of results) if (err) throw err;
  return results;
};
/** Runs `add(pipeline, i)` for i in [0, n), CHUNK per pipeline, IN_FLIGHT pipelines at once. */
async function pipelined(client, n, add) {
  const inFlight = [];
  for (let base = 0; base < n; base += CHUNK) {
    const p = client.pipeline();
    for (let i = base; i < Math.min(n, base + CHUNK); i++) add(p, i);
    inFlight.push(p.exec().then(checked));
    if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
  }
  await Promise.all(inFlight);
}
/** How many of `key(i)` for i in [0, n) exist on `client`. */
async function countExisting(client, n, key) {
  let found = 0;
  for (let base = 0; base < n; base += CHUNK) {
    const keys = [];
    for (let i = base; i < Math.min(n, base + CHUNK); i++) keys.push(key(i));
    found += await client.exists(...keys);
  }
  return found;
}
/** performance.now() when `check()` first holds (polled), or Infinity after `timeoutMs`. */
async function whenTrue(check, timeoutMs, intervalMs = 10) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return performance.now();
    await sleep(intervalMs);
  }
  return Infinity;
}

// --- the group --------------------------------------------------------------------------------
const root = tempDir('bench-replication');
let groups = 0;
/** The running group and its clients; replaced by {@link freshGroup}. */
let g = null;

async function startBenchGroup() {
  const plan = await planGroup({
    group: GROUP,
    dir: join(root, `group-${++groups}`),
    regions: REGIONS,
    replicas: Number(values.replicas),
    ports: 'free',
    health: { intervalMs: 1000, downAfterMs: 5000 },
  });
  console.log(
    `starting group ${groups}: ${REGIONS.join(', ')} (1 primary${Number(values.replicas) > 0 ? ` + ${values.replicas} replica(s)` : ''} each, agents) ...`,
  );
  console.log(`  agent logs: ${plan.dir}/<region>/agent/agent.log`);
  const group = await startGroup(plan, {
    agentCommand: (f) => ({
      command: process.execPath,
      args: [...AGENT_NODE_ARGS, BIN, 'agent', '--config', f],
    }),
    readyTimeoutMs: 30_000,
  });
  const clients = [];
  const ctx = { plan, group, clients, nc: null };
  try {
    ctx.node = (region) => plan.regions.find((r) => r.name === region).nodes[0];
    ctx.redis = (region) => {
      const n = ctx.node(region);
      const client = new Redis(n.port, n.host, { maxRetriesPerRequest: null });
      clients.push(client);
      return client;
    };
    [ctx.a, ctx.b, ctx.c] = REGIONS.map(ctx.redis);
    ctx.nc = await connect({ servers: `nats://127.0.0.1:${plan.regions[0].nats.port}` });
    const subjects = groupSubjects(GROUP);
    ctx.replicationOf = async (region) => {
      const reply = await ctx.nc.request(subjects.regionStatus(region), '', { timeout: 5000 });
      return reply.json().regions.find((r) => r.name === region)?.replication;
    };
    ctx.agentPid = (region) => group.region(region).agent.pid;
    await waitFor(
      async () => Promise.all(REGIONS.map(ctx.replicationOf)),
      (all) => all.every((s) => s?.state === 'running' && s.links.length === 2),
      { timeoutMs: 30_000, intervalMs: 250, what: 'replication running in every region' },
    );
    // Keyspace events of every kind: an apply writes with RESTORE, HSET, ... inside EVALSHA.
    for (const r of [ctx.a, ctx.b, ctx.c]) await r.config('SET', 'notify-keyspace-events', 'KA');
    return ctx;
  } catch (err) {
    await stopBenchGroup(ctx);
    throw err;
  }
}

async function stopBenchGroup(ctx) {
  for (const client of ctx.clients) client.disconnect();
  await ctx.nc?.close();
  await ctx.group.stop();
}

/**
 * Whether B and C hold everything A wrote so far: a marker written now arrives after it, since
 * each origin's batches are applied in order. Starts a fresh group when they do not within
 * `waitMs`, and says so.
 */
async function freshGroupIfBacklogged(what, waitMs = DRAIN_MS) {
  const marker = `drain:${what}`;
  await g.a.set(marker, '1');
  const at = await whenTrue(
    async () => (await g.b.exists(marker)) + (await g.c.exists(marker)) === 2,
    waitMs,
    50,
  );
  if (Number.isFinite(at)) return;
  const links = await g.replicationOf(A).catch(() => undefined);
  const held = links?.links.map((l) => `${l.peer} ${l.backlog?.messages ?? '?'} msgs`).join(', ');
  console.log(
    `  (${what}: ${B} and ${C} still behind ${waitMs / 1000} s later; ${A} holds ${held}; ` +
      `next phase on a fresh group)`,
  );
  await stopBenchGroup(g);
  g = await startBenchGroup();
}

const results = {
  regions: { A, B, C },
  memory: null,
  lag: [],
  throughput: null,
  agentMemory: null,
  groupsStarted: 0,
  finalLinks: null,
};
let plain = null;
g = await startBenchGroup();
try {
  await sleep(2000);
  const idle = Object.fromEntries(REGIONS.map((r) => [r, procMemory(g.agentPid(r)).rss]));

  // --- 1. memory per key (first, on otherwise empty servers) --------------------------------
  console.log(`\n## Memory: ${num(MEM_KEYS)} string keys, ${num(HASHES)} hashes x ${HASH_FIELDS}`);
  plain = await startRedis({ dir: join(root, 'plain') });
  const p = new Redis(plain.port, plain.host);
  const memory = {};
  // A batch is applied in order, so once the last key is complete in B the rest are there too;
  // the full count is still checked once.
  const measure = async (what, n, key, write, complete) => {
    const { a, b } = g;
    const before = await Promise.all([a, b, p].map(usedMemory));
    const t0 = performance.now();
    await write(a);
    await write(p);
    const at = await whenTrue(() => complete(b, key(n - 1)), BULK_WAIT_MS, 20);
    const present = await countExisting(b, n, key);
    await sleep(1000); // let B's last apply transaction and client buffers settle
    const after = await Promise.all([a, b, p].map(usedMemory));
    const [inA, inB, inPlain] = after.map((x, i) => (x - before[i]) / n);
    memory[what] = {
      n,
      present,
      arrivedMs: Math.round(at - t0),
      bytesPerUnitA: Math.round(inA),
      bytesPerUnitB: Math.round(inB),
      bytesPerUnitPlain: Math.round(inPlain),
    };
    return { inA, inB, inPlain, present, arrivedMs: at - t0 };
  };
  const sKey = (i) => `mem:s:${i}`;
  const strings = await measure(
    'string',
    MEM_KEYS,
    sKey,
    (r) => pipelined(r, MEM_KEYS, (pl, i) => pl.set(sKey(i), STRING_VALUE)),
    async (r, k) => (await r.exists(k)) === 1,
  );
  const hKey = (i) => `mem:h:${i}`;
  const fields = [];
  for (let f = 0; f < HASH_FIELDS; f++) fields.push(`field${f}`, FIELD_VALUE);
  const hashes = await measure(
    'hash',
    HASHES,
    hKey,
    (r) => pipelined(r, HASHES, (pl, i) => pl.hset(hKey(i), ...fields)),
    async (r, k) => (await r.hlen(k)) === HASH_FIELDS,
  );
  const usage = async (client, key) => (await client.memory('USAGE', key, 'SAMPLES', '0')) ?? 0;
  const sample = {
    stringMetaFields: await g.b.hgetall(`__georep:m:${sKey(0)}`),
    stringMetaUsage: await usage(g.b, `__georep:m:${sKey(0)}`),
    stringUsage: await usage(g.b, sKey(0)),
    stringUsagePlain: await usage(p, sKey(0)),
    hashMetaFieldCount: await g.b.hlen(`__georep:m:${hKey(0)}`),
    hashMetaUsage: await usage(g.b, `__georep:m:${hKey(0)}`),
    hashUsage: await usage(g.b, hKey(0)),
    hashUsagePlain: await usage(p, hKey(0)),
  };
  results.memory = { ...memory, sampleInB: sample };
  p.disconnect();
  await plain.stop();
  plain = null;
  const memRow = (label, m, tail) =>
    `${label.padEnd(28)} ${B} ${num(m.inB).padStart(5)} B   ${A} (origin) ${num(m.inA).padStart(5)} B` +
    `   | baseline plain redis ${num(m.inPlain).padStart(4)} B   -> overhead in ${B} ${tail}`;
  console.log(
    memRow(
      'used_memory per string key',
      strings,
      `${num(strings.inB - strings.inPlain)} B per key`,
    ),
  );
  const perHash = hashes.inB - hashes.inPlain;
  console.log(
    memRow(
      'used_memory per 10-field hash',
      hashes,
      `${num(perHash)} B per hash (${num(perHash / HASH_FIELDS)} B per field)`,
    ),
  );
  console.log(
    `  values: strings ${STRING_VALUE.length} B, hash fields ${FIELD_VALUE.length} B; ` +
      `present in ${B}: ${num(strings.present)}/${num(MEM_KEYS)} strings ` +
      `(${secs(strings.arrivedMs)}), ${num(hashes.present)}/${num(HASHES)} hashes (${secs(hashes.arrivedMs)})`,
  );
  console.log(
    `  sample string in ${B}: MEMORY USAGE ${sample.stringUsage} B (plain ${sample.stringUsagePlain} B) + ` +
      `metadata hash ${sample.stringMetaUsage} B ${JSON.stringify(sample.stringMetaFields)}`,
  );
  console.log(
    `  sample hash in ${B}: MEMORY USAGE ${sample.hashUsage} B (plain ${sample.hashUsagePlain} B) + ` +
      `metadata hash ${sample.hashMetaUsage} B with ${sample.hashMetaFieldCount} fields`,
  );
  await freshGroupIfBacklogged('memory');

  // --- 2. lag at fixed rates -----------------------------------------------------------------
  console.log(
    `\n## Lag from SET in ${A} to the keyspace event in ${B} and ${C} (${SECONDS} s per rate, ` +
      `a pipeline every ${SLICE_MS} ms, then up to ${DRAIN_MS / 1000} s for the rest to arrive)`,
  );
  for (const rate of RATES) {
    results.lag.push(await measureLag(rate));
    await freshGroupIfBacklogged(`lag-${rate}`);
  }

  // --- 3. maximum replicated writes/s ------------------------------------------------------
  console.log(`\n## Replicated throughput: ${num(BLAST)} pipelined SETs into ${A}`);
  const { a, b, c } = g;
  const bKey = (i) => `blast:${i}`;
  const last = bKey(BLAST - 1);
  // CPU seconds of every process of the group over the blast: is the machine the limit?
  const processes = REGIONS.flatMap((r) => [
    [`agent ${r}`, g.agentPid(r)],
    [`redis ${r}`, g.group.region(r).nodes[0].pid],
    [`nats ${r}`, g.group.region(r).nats.pid],
  ]);
  const cpuBefore = Object.fromEntries(processes.map(([name, pid]) => [name, procCpu(pid)]));
  const selfCpuBefore = process.cpuUsage();
  const t0 = performance.now();
  await pipelined(a, BLAST, (pl, i) => pl.set(bKey(i), STRING_VALUE));
  const acked = performance.now() - t0;
  const [inB, inC] = (
    await Promise.all(
      [b, c].map((r) => whenTrue(async () => (await r.exists(last)) === 1, BULK_WAIT_MS, 10)),
    )
  ).map((t) => t - t0);
  const blastSeconds = (performance.now() - t0) / 1000;
  const cpu = Object.fromEntries(
    processes.map(([name, pid]) => [name, procCpu(pid) - cpuBefore[name]]),
  );
  const self = process.cpuUsage(selfCpuBefore);
  cpu['bench (load + watch)'] = (self.user + self.system) / 1e6;
  const cpuTotal = Object.values(cpu).reduce((x, y) => x + y, 0);
  console.log(
    `CPU over the ${blastSeconds.toFixed(1)} s of the blast (2 cores = ${(2 * blastSeconds).toFixed(1)} s available): ${cpuTotal.toFixed(1)} s used`,
  );
  for (const [name, secs] of Object.entries(cpu).sort((x, y) => y[1] - x[1])) {
    console.log(
      `  ${name.padEnd(22)} ${secs.toFixed(2).padStart(6)} s  ${((100 * secs) / blastSeconds).toFixed(0).padStart(4)} % of one core`,
    );
  }
  const loaded = Object.fromEntries(REGIONS.map((r) => [r, procMemory(g.agentPid(r))]));
  const counts = await Promise.all([b, c].map((r) => countExisting(r, BLAST, bKey)));
  // When the wait ran out, what did arrive in it is the rate.
  const elapsed = Math.max(inB, inC);
  const replicated = Number.isFinite(elapsed)
    ? BLAST / (elapsed / 1000)
    : Math.min(...counts) / (BULK_WAIT_MS / 1000);

  // Baselines on the same A server: with its agent running (it captures the benchmark's SETs of
  // one key meanwhile), then with A's agent stopped (Redis alone).
  const benchmarkOnce = async (node = g.node(A), extra = []) => {
    const { stdout } = await execFileAsync(
      findBinary('redis-benchmark'),
      [
        '-h',
        node.host,
        '-p',
        `${node.port}`,
        '-t',
        'set',
        '-P',
        '16',
        '-n',
        `${BLAST}`,
        '-q',
        ...extra,
      ],
      { timeout: 120_000 },
    );
    return Number(/SET: ([\d.]+) requests per second/.exec(stdout)?.[1]);
  };
  // One run lasts well under a second, so take the median of three.
  const benchmark = async (once = benchmarkOnce) => {
    const runs = [];
    for (let i = 0; i < BENCHMARK_RUNS; i++) runs.push(await once());
    return runs.sort((x, y) => x - y)[Math.floor(runs.length / 2)];
  };
  // Replicated writes/s with the baseline's own load generator: redis-benchmark's SETs (random
  // keys among a million) into A, then one marker SET. Each origin's writes apply in order, so
  // once the marker is in B and C every SET before it is too. Unlike the blast above, the load
  // generator here costs what it costs in the baseline (the blast's ioredis client alone takes
  // about 5 µs of CPU per write, which caps the blast near 0.25-0.3x of the baseline even for a
  // replication that cost nothing).
  let markers = 0;
  const benchmarkReplicated = await benchmark(async () => {
    const marker = `bench-marker:${markers++}`;
    const t0 = performance.now();
    await benchmarkOnce(g.node(A), ['-r', '1000000']);
    await a.set(marker, '1');
    const seen = await Promise.all(
      [b, c].map((r) => whenTrue(async () => (await r.exists(marker)) === 1, BULK_WAIT_MS, 5)),
    );
    return BLAST / ((Math.max(...seen) - t0) / 1000);
  });
  const withAgent = await benchmark();
  const afterBenchmark = Object.fromEntries(REGIONS.map((r) => [r, procMemory(g.agentPid(r))]));
  await g.group.region(A).agent.stop();
  const withoutAgent = await benchmark();
  const native = await nativeReplication(benchmarkOnce, benchmark);
  results.throughput = {
    keys: BLAST,
    cpuSeconds: cpu,
    blastSeconds,
    acceptedByAPerSec: Math.round(BLAST / (acked / 1000)),
    lastVisibleInBMs: Math.round(inB),
    lastVisibleInCMs: Math.round(inC),
    presentInB: counts[0],
    presentInC: counts[1],
    replicatedPerSec: Math.round(replicated),
    redisBenchmarkPerSec: withAgent,
    redisBenchmarkAgentStoppedPerSec: withoutAgent,
    ratio: replicated / withAgent,
    ratioAgentStopped: replicated / withoutAgent,
    replicatedBenchmarkLoadPerSec: Math.round(benchmarkReplicated),
    ratioBenchmarkLoad: benchmarkReplicated / withoutAgent,
    nativeReplicationPerSec: Math.round(native),
    nativeReplicationRatio: native / withoutAgent,
  };
  console.log(`accepted by ${A}        ${num(BLAST / (acked / 1000))}/s (${secs(acked)})`);
  console.log(
    `last key visible       ${B} after ${secs(inB)}, ${C} after ${secs(inC)}; ` +
      `present ${num(counts[0])} in ${B}, ${num(counts[1])} in ${C} of ${num(BLAST)}`,
  );
  console.log(
    `replicated writes/s    ${num(replicated)}/s   | baseline redis-benchmark -t set -P 16 on ${A}: ` +
      `${num(withAgent)}/s with its agent running, ${num(withoutAgent)}/s with it stopped ` +
      `(median of ${BENCHMARK_RUNS})` +
      `   -> ratio ${(replicated / withAgent).toFixed(3)}x / ${(replicated / withoutAgent).toFixed(3)}x (goal >= 0.3x)`,
  );
  console.log(
    `replicated writes/s with redis-benchmark's load (-r 1000000, until a marker written after ` +
      `it is in ${B} and ${C}; median of ${BENCHMARK_RUNS}): ${num(benchmarkReplicated)}/s ` +
      `-> ratio ${(benchmarkReplicated / withoutAgent).toFixed(3)}x of the stopped-agent baseline`,
  );
  console.log(
    `Redis's own replication to 2 replicas (no agents, same machine): ${num(native)}/s until both ` +
      `replicas hold every write = ${(native / withoutAgent).toFixed(3)}x of the stopped-agent ` +
      `baseline; georep reaches ${(replicated / native).toFixed(3)}x of it`,
  );

  // --- 4. agent memory ------------------------------------------------------------------------
  const { stdout } = await execFileAsync(process.execPath, [
    '-e',
    `console.log(/VmRSS:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status','utf8'))[1])`,
  ]);
  const bareNode = Number(stdout.trim()) * 1024;
  results.agentMemory = { bareNodeRss: bareNode };
  console.log(
    `\n## Agent resident memory: idle (group 1), after the blast, after redis-benchmark, peak (VmHWM)`,
  );
  for (const r of REGIONS) {
    const m = { idle: idle[r], blast: loaded[r].rss, benchmark: afterBenchmark[r].rss };
    m.peak = afterBenchmark[r].hwm;
    results.agentMemory[r] = m;
    console.log(
      `${r.padEnd(9)} idle ${mib(m.idle).padStart(9)}   after blast ${mib(m.blast).padStart(9)}` +
        `   after redis-benchmark ${mib(m.benchmark).padStart(9)}   peak ${mib(m.peak).padStart(9)}` +
        `   | baseline bare node: ${mib(bareNode)}`,
    );
  }
  const final = await Promise.all([B, C].map((r) => g.replicationOf(r)));
  results.finalLinks = Object.fromEntries(
    [B, C].map((r, i) => [
      r,
      final[i]?.links.map((l) => ({
        peer: l.peer,
        appliedOps: l.appliedOps,
        appliedBatches: l.appliedBatches,
        error: l.error,
      })),
    ]),
  );
  results.groupsStarted = groups;
  console.log(`\n${JSON.stringify(results)}`);
} finally {
  await plain?.stop();
  await stopBenchGroup(g);
}

/**
 * redis-benchmark's SETs into a primary of Redis's own replication with two replicas (fresh
 * servers, no agents), counted until both replicas have every write: the cost of making three
 * copies natively on this machine, the ceiling of any replication that makes three. Median of
 * {@link BENCHMARK_RUNS}.
 */
async function nativeReplication(benchmarkOnce, benchmark) {
  const nodes = [];
  const clients = [];
  try {
    const primary = await startRedis({ dir: join(root, 'native-primary') });
    nodes.push(primary);
    for (const i of [1, 2]) {
      nodes.push(
        await startRedis({
          dir: join(root, `native-replica-${i}`),
          replicaOf: { host: primary.host, port: primary.port },
        }),
      );
    }
    const [p, ...replicas] = nodes.map((n) => new Redis(n.port, n.host));
    clients.push(p, ...replicas);
    const offset = async (c) =>
      Number(/master_repl_offset:(\d+)/.exec(await c.info('replication'))?.[1]);
    const online = async () =>
      ((await p.info('replication')).match(/state=online/g) ?? []).length === 2;
    if ((await whenTrue(online, 30_000, 50)) === Infinity)
      throw new Error('native replicas did not come online');
    return await benchmark(async () => {
      const rate = await benchmarkOnce(primary);
      const sent = performance.now();
      const target = await offset(p);
      const caughtUp = await whenTrue(
        async () => (await Promise.all(replicas.map(offset))).every((o) => o >= target),
        30_000,
        1,
      );
      // The replicas' catching up after the last reply counts into the run's time.
      return BLAST / (BLAST / rate + (caughtUp - sent) / 1000);
    });
  } finally {
    for (const c of clients) c.disconnect();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

/** One paced run at `rate` writes/s; prints and returns its figures. */
async function measureLag(rate) {
  const prefix = `lag:${rate}:`;
  const total = Math.round(rate * SECONDS);
  const sentAt = new Float64Array(total);
  const lag = Object.fromEntries(REGIONS.map((r) => [r, new Float64Array(total).fill(Infinity)]));
  const seen = Object.fromEntries(REGIONS.map((r) => [r, 0]));
  const channel = `__keyspace@0__:${prefix}`;
  const subscribers = REGIONS.map((region) => {
    const s = g.redis(region);
    s.on('pmessage', (_pattern, ch) => {
      const at = performance.now();
      const seq = Number(ch.slice(channel.length));
      // The first event of a key counts (an apply may touch it twice).
      if (!(seq < total) || lag[region][seq] !== Infinity) return;
      lag[region][seq] = at - sentAt[seq];
      seen[region]++;
    });
    return s;
  });
  await Promise.all(subscribers.map((s) => s.psubscribe(`${channel}*`)));

  // The lag B's agent reports for its link from A, once a second meanwhile.
  const reported = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const link = (await g.replicationOf(B).catch(() => undefined))?.links.find(
        (l) => l.peer === A,
      );
      if (link?.lagMs != null) reported.push(link.lagMs);
      await sleep(1000);
    }
  })();

  const writeErrors = [];
  const pending = [];
  const start = performance.now();
  let n = 0;
  let largestSlice = 0;
  while (n < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    if (due > n) {
      const pl = g.a.pipeline();
      const now = performance.now();
      const wall = `${Date.now()}`;
      largestSlice = Math.max(largestSlice, due - n);
      for (; n < due; n++) {
        sentAt[n] = now;
        pl.set(prefix + n, wall);
      }
      pending.push(pl.exec().then(checked, (err) => writeErrors.push(err)));
    }
    await sleep(SLICE_MS);
  }
  const writeMs = performance.now() - start;
  await Promise.all(pending);
  const drained = await whenTrue(async () => seen[B] === total && seen[C] === total, DRAIN_MS, 20);
  const watchedMs = performance.now() - start;
  sampling = false;
  await sampler;
  for (const s of subscribers) s.disconnect();

  const stats = Object.fromEntries(
    REGIONS.map((r) => {
      const xs = [...lag[r]].sort((x, y) => x - y);
      const p50 = pct(xs, 0.5);
      const p99 = pct(xs, 0.99);
      const max = seen[r] === 0 ? NaN : xs[seen[r] - 1];
      return [r, { seen: seen[r], p50, p99, maxSeen: max }];
    }),
  );
  const achieved = total / (writeMs / 1000);
  reported.sort((x, y) => x - y);
  console.log(
    `\n${num(rate)} writes/s target: ${num(total)} SETs sent at ${num(achieved)}/s ` +
      `(largest slice ${largestSlice} SETs, ${writeErrors.length} write errors)`,
  );
  for (const r of [B, C]) {
    const s = stats[r];
    console.log(
      `  ${r.padEnd(9)} seen ${num(s.seen).padStart(6)}/${num(total)}   p50 ${ms(s.p50).padStart(10)}` +
        `   p99 ${ms(s.p99).padStart(10)}   max of seen ${ms(s.maxSeen).padStart(10)}` +
        `   | baseline on ${A} itself: p50 ${ms(stats[A].p50)}, p99 ${ms(stats[A].p99)}`,
    );
    if (s.seen < total) {
      console.log(
        `  ${''.padEnd(9)} (${num(total - s.seen)} never seen: arrivals averaged ` +
          `${num(s.seen / (watchedMs / 1000))}/s over the ${secs(watchedMs)} watched)`,
      );
    }
  }
  console.log(
    `  lagMs reported by ${B}'s agent for its link from ${A} (1/s, n=${reported.length}): ` +
      `median ${reported[Math.floor(reported.length / 2)] ?? '-'} ms, max ${reported.at(-1) ?? '-'} ms`,
  );
  if (!Number.isFinite(drained)) {
    console.log(`  not every write arrived within ${DRAIN_MS / 1000} s after the writer stopped`);
  }
  const finite = (x) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null);
  return {
    targetRate: rate,
    achievedRate: Math.round(achieved),
    watchedMs: Math.round(watchedMs),
    sent: total,
    writeErrors: writeErrors.length,
    largestSlice,
    ...Object.fromEntries(
      REGIONS.map((r) => [
        r,
        {
          seen: stats[r].seen,
          p50Ms: finite(stats[r].p50),
          p99Ms: finite(stats[r].p99),
          maxSeenMs: finite(stats[r].maxSeen),
        },
      ]),
    ),
    agentReportedLagMs: {
      n: reported.length,
      median: reported[Math.floor(reported.length / 2)] ?? null,
      max: reported.at(-1) ?? null,
    },
  };
}
