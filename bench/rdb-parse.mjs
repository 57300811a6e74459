// Parse throughput of @georep/rdb on a generated RDB file, with a raw fs read of the same file
// as the baseline in the same run. Prints figures; it asserts nothing.
//   node bench/rdb-parse.mjs [sizeMB]
import { createReadStream, closeSync, openSync, statSync, writeSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RdbWriter, parseRdbFile } from '@georep/rdb';

const targetMb = Number(process.argv[2] ?? 200);
const dir = mkdtempSync(path.join(os.tmpdir(), 'georep-bench-'));
const file = path.join(dir, 'bench.rdb');

// A mix close to real caches: small strings, integers, hashes and lists in listpack nodes.
const fd = openSync(file, 'w');
const w = new RdbWriter({ version: 10 });
writeSync(fd, w.header());
writeSync(fd, w.selectDb(0));
let i = 0;
let written = 0;
const value = Buffer.from('x'.repeat(40) + Math.random().toString(36));
while (written < targetMb * 1024 * 1024) {
  let part;
  switch (i % 4) {
    case 0:
      part = w.key(`user:${i}:name`, { type: 'string', value });
      break;
    case 1:
      part = w.key(`counter:${i}`, { type: 'string', value: Buffer.from(String(i)) });
      break;
    case 2:
      part = w.key(`h:${i}`, {
        type: 'hash',
        value: Array.from({ length: 10 }, (_, j) => ({ field: Buffer.from(`f${j}`), value })),
      });
      break;
    default:
      part = w.key(`l:${i}`, { type: 'list', value: Array.from({ length: 20 }, () => value) });
  }
  writeSync(fd, part);
  written += part.length;
  i++;
}
writeSync(fd, w.end());
closeSync(fd);
const size = statSync(file).size;
const mb = size / 1024 / 1024;

async function time(label, fn) {
  const t0 = process.hrtime.bigint();
  const extra = await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `${label.padEnd(28)} ${(mb / s).toFixed(1).padStart(8)} MB/s  ${s.toFixed(2)} s ${extra ?? ''}`,
  );
}

console.log(`file: ${mb.toFixed(1)} MB, ${i} keys`);
await time('baseline: fs read stream', async () => {
  let n = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 }))
    n += chunk.length;
  return `(${n} bytes)`;
});
await time('parseRdbFile (+ CRC64)', async () => {
  let keys = 0;
  for await (const r of parseRdbFile(file)) if (r.kind === 'key') keys++;
  return `(${keys} keys)`;
});
await time('parseRdbFile (no CRC64)', async () => {
  let keys = 0;
  for await (const r of parseRdbFile(file, { verifyChecksum: false })) if (r.kind === 'key') keys++;
  return `(${keys} keys)`;
});
rmSync(dir, { recursive: true, force: true });
