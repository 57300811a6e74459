// Parse throughput of @georep/rdb on a generated RDB file, side by side in one run: a raw fs read
// of the same file (the baseline), CRC64 alone over that read, the full parse with decoded values
// (record by record and in batches), and the raw mode (`decodeValues: false`: key + raw bytes).
// Every parse reads the file from disk through the same 256 KiB read stream. Prints figures; it
// asserts nothing.
//   node bench/rdb-parse.mjs [sizeMB] [rounds] [--baseline path/to/other/dist/index.js]
// With rounds > 1 every line is run that many times (interleaved) and the best run is printed,
// which steadies the figures on a busy machine. `--baseline` adds three parses (decoded record by
// record and in batches, raw in batches) by another build of @georep/rdb: a copy of an earlier
// `packages/rdb/dist`, placed where `@georep/core` resolves from it. They are interleaved with the
// others, so that before/after figures come from the same run on the same file.
import { createReadStream, closeSync, openSync, statSync, writeSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Crc64, RdbWriter, parseRdbFile, parseRdbFileBatches } from '@georep/rdb';

const args = process.argv.slice(2);
const baselineAt = args.indexOf('--baseline');
const baselinePath = baselineAt >= 0 ? args.splice(baselineAt, 2)[1] : undefined;
const targetMb = Number(args[0] ?? 200);
const rounds = Number(args[1] ?? 1);
const baseline =
  baselinePath === undefined
    ? undefined
    : await import(pathToFileURL(path.resolve(baselinePath)).href);
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

const lines = [
  [
    'baseline: fs read stream',
    async () => {
      let n = 0;
      for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
        n += chunk.length;
      }
      return `(${n} bytes)`;
    },
  ],
  [
    'CRC64 only (read + Crc64)',
    async () => {
      const crc = new Crc64();
      for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
        crc.update(chunk);
      }
      // Over the whole file, stored checksum included, a correct CRC-64/Jones gives zero.
      return `(residue ${crc.digest()})`;
    },
  ],
  [
    'parseRdbFile (+ CRC64)',
    async () => {
      let keys = 0;
      for await (const r of parseRdbFile(file)) if (r.kind === 'key') keys++;
      return `(${keys} keys, decoded values)`;
    },
  ],
  [
    'parseRdbFile (no CRC64)',
    async () => {
      let keys = 0;
      for await (const r of parseRdbFile(file, { verifyChecksum: false })) {
        if (r.kind === 'key') keys++;
      }
      return `(${keys} keys, decoded values)`;
    },
  ],
  [
    'parseRdbFileBatches (+ CRC64)',
    async () => {
      let keys = 0;
      for await (const batch of parseRdbFileBatches(file)) {
        for (const r of batch) if (r.kind === 'key') keys++;
      }
      return `(${keys} keys, decoded values)`;
    },
  ],
  [
    'parseRdbFile raw (+ CRC64)',
    async () => {
      let keys = 0;
      for await (const r of parseRdbFile(file, { decodeValues: false })) {
        if (r.kind === 'key') keys++;
      }
      return `(${keys} keys, key + raw only)`;
    },
  ],
  [
    'parseRdbFileBatches raw (+ CRC64)',
    async () => {
      let keys = 0;
      for await (const batch of parseRdbFileBatches(file, { decodeValues: false })) {
        for (const r of batch) if (r.kind === 'key') keys++;
      }
      return `(${keys} keys, key + raw only)`;
    },
  ],
];

if (baseline !== undefined) {
  lines.push(
    [
      'baseline build: parseRdbFile (+ CRC64)',
      async () => {
        let keys = 0;
        for await (const r of baseline.parseRdbFile(file)) if (r.kind === 'key') keys++;
        return `(${keys} keys, decoded values)`;
      },
    ],
    [
      'baseline build: parseRdbFileBatches (+ CRC64)',
      async () => {
        let keys = 0;
        for await (const batch of baseline.parseRdbFileBatches(file)) {
          for (const r of batch) if (r.kind === 'key') keys++;
        }
        return `(${keys} keys, decoded values)`;
      },
    ],
    [
      'baseline build: parseRdbFileBatches raw (+ CRC64)',
      async () => {
        let keys = 0;
        for await (const batch of baseline.parseRdbFileBatches(file, { decodeValues: false })) {
          for (const r of batch) if (r.kind === 'key') keys++;
        }
        return `(${keys} keys, key + raw only)`;
      },
    ],
  );
}

console.log(`file: ${mb.toFixed(1)} MB, ${i} keys${rounds > 1 ? `, best of ${rounds} runs` : ''}`);
const best = new Map();
for (let round = 0; round < rounds; round++) {
  for (const [label, fn] of lines) {
    const t0 = process.hrtime.bigint();
    const extra = await fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const prev = best.get(label);
    if (prev === undefined || s < prev.s) best.set(label, { s, extra });
  }
}
for (const [label, { s, extra }] of best) {
  console.log(
    `${label.padEnd(50)} ${(mb / s).toFixed(1).padStart(8)} MB/s  ${s.toFixed(2)} s ${extra ?? ''}`,
  );
}
rmSync(dir, { recursive: true, force: true });
