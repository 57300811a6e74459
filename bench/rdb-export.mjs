// Export throughput of @georep/redis exportRdb against `redis-cli --rdb` on the same loopback
// redis-server (diskless sync, repl-diskless-sync-delay 0). Prints figures; it asserts nothing.
//   node bench/rdb-export.mjs [keys=1000000] [runs=3] [valueBytes=40]
// Small values make the server's fork the bottleneck; large ones (e.g. 1000) the transfer.
// BENCH_REDIS_CONFIG='rdbcompression no' adds redis.conf lines (';'-separated).
// Build first: npx tsc -b packages/redis packages/testkit
import { execFile } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { parseAgentConfig } from '@georep/core';
import { exportRdb } from '@georep/redis';
import { startRedis, tempDir } from '@georep/testkit';

const keys = Number(process.argv[2] ?? 1_000_000);
const runs = Number(process.argv[3] ?? 3);
const valueBytes = Number(process.argv[4] ?? 40);
const BATCH = 5_000;

const dir = tempDir('bench-export');
const server = await startRedis({
  dir: join(dir, 'server'),
  extraConfig: [
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    ...(process.env.BENCH_REDIS_CONFIG ?? '').split(';').filter((l) => l.trim() !== ''),
  ],
});
const config = parseAgentConfig({
  group: 'g',
  region: 'r',
  nats: { servers: ['nats://127.0.0.1:1'] },
  redis: { nodes: [{ host: server.host, port: server.port }] },
}).redis;

try {
  // A mix close to real caches: small strings, counters, small hashes, lists, sets, zsets.
  // Pipelined in bounded batches: one batch in flight, so memory stays flat.
  const client = new Redis(server.port, server.host);
  // Random-looking bytes so LZF cannot shrink them: the file size tracks the data size.
  const value = Array.from({ length: Math.ceil(valueBytes / 8) }, () =>
    Math.random().toString(36).slice(2, 10),
  )
    .join('')
    .slice(0, valueBytes);
  const t0 = performance.now();
  for (let base = 0; base < keys; base += BATCH) {
    const p = client.pipeline();
    for (let i = base; i < Math.min(keys, base + BATCH); i++) {
      switch (i % 6) {
        case 0:
        case 1:
          p.set(`user:${i}:name`, value);
          break;
        case 2:
          p.set(`counter:${i}`, i);
          break;
        case 3:
          p.hset(`h:${i}`, 'a', value, 'b', i, 'c', 'short');
          break;
        case 4:
          p.rpush(`l:${i}`, value, value, i);
          break;
        default:
          p.zadd(`z:${i}`, 1, 'a', 2, value);
      }
    }
    await p.exec();
  }
  const dbsize = await client.dbsize();
  const usedMemory = /used_memory_human:(\S+)/.exec(await client.info('memory'))?.[1];
  client.disconnect();
  console.log(
    `filled ${dbsize} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
      `(used_memory ${usedMemory}); redis-server ${server.host}:${server.port}`,
  );

  const run = promisify(execFile);
  const contenders = [
    {
      label: 'exportRdb (verify: records)',
      go: async (out) => exportRdb({ node: server, config, out, allowScanFallback: false }),
    },
    {
      label: 'exportRdb (verify: checksum)',
      go: async (out) =>
        exportRdb({ node: server, config, out, verify: 'checksum', allowScanFallback: false }),
    },
    {
      label: 'redis-cli --rdb',
      go: async (out) =>
        run('redis-cli', ['-h', server.host, '-p', `${server.port}`, '--rdb', out]),
    },
  ];

  console.log(
    `\n${'contender'.padEnd(30)} ${'run'.padStart(3)} ${'MB'.padStart(8)} ${'s'.padStart(7)} ${'MB/s'.padStart(8)}  notes`,
  );
  const summary = [];
  for (const c of contenders) {
    const rates = [];
    for (let i = 1; i <= runs; i++) {
      const out = join(dir, `run-${summary.length}-${i}.rdb`);
      const t = performance.now();
      const result = await c.go(out);
      const s = (performance.now() - t) / 1000;
      const mb = statSync(out).size / 1024 / 1024;
      rates.push(mb / s);
      const notes =
        result?.source === 'psync'
          ? `transfer ${(result.transferMs / 1000).toFixed(2)} s, ${
              result.keysPerDb === undefined
                ? 'keys not counted'
                : `${Object.values(result.keysPerDb).reduce((a, b) => a + b, 0)} keys`
            }, ${result.framing}`
          : '';
      console.log(
        `${c.label.padEnd(30)} ${String(i).padStart(3)} ${mb.toFixed(1).padStart(8)} ${s
          .toFixed(2)
          .padStart(7)} ${(mb / s).toFixed(1).padStart(8)}  ${notes}`,
      );
      rmSync(out, { force: true });
    }
    rates.sort((a, b) => a - b);
    summary.push({ label: c.label, median: rates[Math.floor(rates.length / 2)] });
  }
  console.log('\nmedian MB/s side by side:');
  for (const { label, median } of summary)
    console.log(`  ${label.padEnd(30)} ${median.toFixed(1).padStart(8)}`);
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
