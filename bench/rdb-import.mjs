// Import throughput of @georep/snapshot importRdb and importRdbNative against the other ways to
// load an RDB's data into Redis, on loopback redis-servers. Prints figures side by side; it asserts nothing.
//   node bench/rdb-import.mjs [keys=1000000] [window=importRdb's default]
//   IMPORT_BASELINE=/path/to/other/snapshot/dist/index.js node bench/rdb-import.mjs
//     also times that build's importRdb, in the same run (before/after comparisons).
// 1. importRdb: verify pass + pipelined RESTORE of raw value bytes into a fresh server.
// 2. redis-cli --pipe: the same data as plain commands (SET/RPUSH/HSET/SADD/ZADD + PEXPIREAT,
//    generated from the parsed file with commandsForValue), piped into a fresh server.
// 3. redis-server loading the same RDB at startup, until PING answers and INFO says loading:0.
// 4. importRdbNative: verify pass, then the target loads the file through a full sync from this
//    process acting as its master (REPLICAOF), into a fresh server.
// "server cpu" is the CPU time the receiving redis-server used meanwhile (Linux /proc): the
// server's own share of each method, which no client can make smaller.
// Build first: npx tsc -b packages/snapshot packages/testkit
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, createReadStream, createWriteStream, readFileSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { parseAgentConfig } from '@georep/core';
import { parseRdb } from '@georep/rdb';
import { exportRdb } from '@georep/redis';
import {
  commandsForValue,
  fileSource,
  importRdb,
  importRdbNative,
  DEFAULT_PROTO_MAX_BULK_LEN,
} from '@georep/snapshot';
import { findBinary, startRedis, tempDir } from '@georep/testkit';

const keys = Number(process.argv[2] ?? 1_000_000);
const window = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const baseline = process.env.IMPORT_BASELINE;
const BATCH = 5_000;
const dir = tempDir('bench-import');
const config = (port) =>
  parseAgentConfig({
    group: 'g',
    region: 'r',
    nats: { servers: ['nats://127.0.0.1:1'] },
    redis: { nodes: [{ host: '127.0.0.1', port }] },
  }).redis;
const mb = (n) => (n / 1024 / 1024).toFixed(1);
const rate = (n, ms) => Math.round(n / (ms / 1000)).toLocaleString('en-US');
const servers = [];
const fresh = async (name) => {
  const s = await startRedis({ dir: join(dir, name) });
  servers.push(s);
  return s;
};
/** CPU time (user + system, ms) of a process so far; NaN where /proc is not available. */
const cpuMs = (pid) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
};
const cpu = (ms) => (Number.isNaN(ms) ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);
const dbsize = async (s) => {
  const c = new Redis(s.port, s.host);
  const n = await c.dbsize();
  c.disconnect();
  return n;
};

try {
  // --- source data: a mix close to real caches, some with TTLs ---------------------------
  const source = await fresh('source');
  const client = new Redis(source.port, source.host);
  const value = Array.from({ length: 5 }, () => Math.random().toString(36).slice(2, 10)).join('');
  let t = performance.now();
  for (let base = 0; base < keys; base += BATCH) {
    const p = client.pipeline();
    for (let i = base; i < Math.min(keys, base + BATCH); i++) {
      switch (i % 8) {
        case 0:
        case 1:
        case 2:
          p.set(`user:${i}:name`, value);
          break;
        case 3:
          p.set(`counter:${i}`, i, 'EX', 86_400);
          break;
        case 4:
          p.hset(`h:${i}`, 'a', value, 'b', i, 'c', 'short');
          break;
        case 5:
          p.rpush(`l:${i}`, 'x', 'y', value);
          break;
        case 6:
          p.sadd(`s:${i}`, i, i + 1, i + 2);
          break;
        default:
          p.zadd(`z:${i}`, 1, 'a', 2, 'b', i, value);
      }
    }
    await p.exec();
  }
  client.disconnect();
  const fillMs = performance.now() - t;
  const rdb = join(dir, 'dump.rdb');
  const exp = await exportRdb({
    node: { host: source.host, port: source.port },
    config: config(source.port),
    out: rdb,
    verify: 'checksum',
  });
  const size = statSync(rdb).size;
  console.log(
    `${keys.toLocaleString('en-US')} keys filled in ${(fillMs / 1000).toFixed(1)} s; RDB ${mb(size)} MB exported in ${exp.durationMs} ms`,
  );
  await source.stop();

  // --- 1. importRdb (and the baseline build's, when given) --------------------------------
  const runImport = async (name, fn) => {
    const a = await fresh(name);
    const cpu0 = cpuMs(a.pid);
    const t0 = performance.now();
    const r = await fn({
      source: fileSource(rdb),
      target: { node: { host: a.host, port: a.port }, config: config(a.port) },
      mode: 'replace',
      ...(window === undefined ? {} : { pipeline: window }),
    });
    const ms = performance.now() - t0;
    return { r, ms, serverMs: cpuMs(a.pid) - cpu0, keys: await dbsize(a) };
  };
  const base =
    baseline === undefined
      ? undefined
      : await runImport('import-baseline', (await import(baseline)).importRdb);
  const imp = await runImport('import', importRdb);

  // --- 4. importRdbNative: the target loads the file as a replica of this process ----------
  const n = await fresh('native');
  const nativeCpu0 = cpuMs(n.pid);
  t = performance.now();
  const nat = await importRdbNative({
    file: rdb,
    target: { node: { host: n.host, port: n.port }, config: config(n.port) },
  });
  const nativeMs = performance.now() - t;
  const nativeServerMs = cpuMs(n.pid) - nativeCpu0;
  const nativeKeys = await dbsize(n);

  // --- 2. redis-cli --pipe of the same data as commands -------------------------------------
  const resp = join(dir, 'commands.resp');
  t = performance.now();
  const out = createWriteStream(resp);
  let commands = 0;
  let currentDb = -1;
  const target = {
    protoMaxBulkLen: DEFAULT_PROTO_MAX_BULK_LEN,
    hashFieldTtl: false,
    streamV2Commands: true,
    createConsumer: true,
  };
  const encode = (args) => {
    const parts = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
      const b = typeof a === 'string' ? Buffer.from(a) : a;
      parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
    }
    return Buffer.concat(parts);
  };
  for await (const rec of parseRdb(createReadStream(rdb, { highWaterMark: 1 << 20 }))) {
    if (rec.kind !== 'key') continue;
    if (rec.db !== currentDb) {
      currentDb = rec.db;
      out.write(encode(['SELECT', String(rec.db)]));
    }
    const plan = commandsForValue(rec.key, rec, target, {
      deleteFirst: false,
      expireAtMs: rec.expireAtMs,
      now: Date.now(),
    });
    for (const cmd of plan.commands) {
      commands++;
      if (!out.write(encode(cmd))) await once(out, 'drain');
    }
  }
  out.end();
  await once(out, 'finish');
  const genMs = performance.now() - t;
  const b = await fresh('pipe');
  const pipeCpu0 = cpuMs(b.pid);
  t = performance.now();
  const pipeOut = await new Promise((resolve, reject) => {
    const child = spawn(findBinary('redis-cli'), ['-h', b.host, '-p', String(b.port), '--pipe'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.on('error', reject);
    child.on('close', () => resolve(text.trim()));
    createReadStream(resp).pipe(child.stdin);
  });
  const pipeMs = performance.now() - t;
  const pipeServerMs = cpuMs(b.pid) - pipeCpu0;
  const pipeKeys = await dbsize(b);

  // --- 3. redis-server loading the RDB at startup -------------------------------------------
  const loadDir = join(dir, 'load');
  await promisify(execFile)('mkdir', ['-p', loadDir]);
  copyFileSync(rdb, join(loadDir, 'dump.rdb'));
  t = performance.now();
  const c = await startRedis({ dir: loadDir });
  servers.push(c);
  const probe = new Redis(c.port, c.host);
  for (;;) {
    const info = await probe.info('persistence').catch(() => 'loading:1');
    if (/loading:0/.test(info)) break;
    await new Promise((res) => setTimeout(res, 5));
  }
  probe.disconnect();
  const loadMs = performance.now() - t;
  // The whole process: start and load.
  const loadServerMs = cpuMs(c.pid);
  const loadKeys = await dbsize(c);

  console.log('');
  console.log(
    'method                         time        keys/s      keys loaded  server cpu  notes',
  );
  const row = (name, ms, n, serverMs, notes) =>
    console.log(
      `${name.padEnd(30)} ${(ms / 1000).toFixed(2).padStart(7)} s ${rate(n, ms).padStart(11)} ${String(n).padStart(12)} ${cpu(serverMs).padStart(11)}  ${notes}`,
    );
  const importNotes = ({ r }) =>
    `verify ${(r.verifyMs / 1000).toFixed(2)} s + write; window ${window ?? 'default'}; restored ${r.restored}`;
  if (base !== undefined) {
    row('importRdb, baseline build', base.ms, base.keys, base.serverMs, importNotes(base));
  }
  row('importRdb (RESTORE)', imp.ms, imp.keys, imp.serverMs, importNotes(imp));
  row(
    'redis-cli --pipe (commands)',
    pipeMs,
    pipeKeys,
    pipeServerMs,
    `${commands.toLocaleString('en-US')} commands, +${(genMs / 1000).toFixed(2)} s to generate ${mb(statSync(resp).size)} MB; ${pipeOut.split('\n').pop()}`,
  );
  row(
    'importRdbNative (REPLICAOF)',
    nativeMs,
    nativeKeys,
    nativeServerMs,
    `verify ${(nat.verifyMs / 1000).toFixed(2)} s + transfer/load ${(nat.loadMs / 1000).toFixed(2)} s; keysLoaded ${nat.keysLoaded}`,
  );
  row('redis-server startup load', loadMs, loadKeys, loadServerMs, 'includes process start');
  console.log(
    `importRdb is ${(pipeMs / imp.ms).toFixed(2)}x the speed of redis-cli --pipe${base === undefined ? '' : `, ${(base.ms / imp.ms).toFixed(2)}x the baseline build`}; importRdbNative is ${(imp.ms / nativeMs).toFixed(2)}x importRdb`,
  );
} finally {
  for (const s of servers) await s.stop().catch(() => undefined);
}
