/**
 * The parser streams: a file of tens of MB is parsed from disk without ever holding it, and a
 * value larger than the read chunks is assembled only as itself.
 */
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RdbWriter, parseRdbFile } from '@georep/rdb';
import { binary } from './helpers/values.js';

const KEYS = 60_000;
const BIG_VALUE_BYTES = 4 * 1024 * 1024;

let dir: string;
let file: string;

/** Writes the file piece by piece, as an exporter would, so the test never holds it either. */
function writeBigRdb(target: string): void {
  const fd = openSync(target, 'w');
  try {
    const w = new RdbWriter({ version: 10, compress: false });
    writeSync(fd, w.header());
    writeSync(fd, w.aux('redis-ver', '7.0.15'));
    writeSync(fd, w.selectDb(0));
    writeSync(fd, w.resizeDb(KEYS + 1, 0));
    const payload = binary(1000, 77);
    for (let i = 0; i < KEYS; i++) {
      if (i % 10 === 0) {
        const items = Array.from({ length: 20 }, (_, j) => payload.subarray(j * 10, j * 10 + 40));
        writeSync(fd, w.key(`list:${i}`, { type: 'list', value: items }));
      } else {
        writeSync(fd, w.key(`str:${i}`, { type: 'string', value: payload }));
      }
    }
    writeSync(fd, w.key('big', { type: 'string', value: binary(BIG_VALUE_BYTES, 5) }));
    writeSync(fd, w.end());
  } finally {
    closeSync(fd);
  }
}

/**
 * A full GC, so that samples measure what is retained rather than garbage not yet collected
 * (vitest workers do not run with --expose-gc, hence the flag flip).
 */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const used = (): number => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

describe('streaming', () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'georep-rdb-stream-'));
    file = path.join(dir, 'big.rdb');
    writeBigRdb(file);
    // Let the backing stores of the written buffers go (they are freed after GC, off-thread),
    // so they do not count as growth during parsing.
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('streaming - a file of tens of MB parses with memory growth well under its size', async () => {
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(50 * 1024 * 1024);
    // Growth is measured from the lowest sample: backing stores of the buffers written in
    // beforeAll are released lazily, so the first sample can be the highest of all.
    let low = used();
    let peak = low;
    const sample = (): void => {
      const u = used();
      low = Math.min(low, u);
      peak = Math.max(peak, u);
    };
    let keys = 0;
    let bigLength = 0;
    let checksum = '';
    const held: Buffer[] = [];
    for await (const r of parseRdbFile(file, { highWaterMark: 64 * 1024 })) {
      if (r.kind === 'key') {
        keys++;
        if (r.key.toString() === 'big' && r.type === 'string') {
          // Sampled while the record is held: the one place a value is whole in memory.
          held.push(r.value, r.raw);
          sample();
          bigLength = r.value.length;
          held.length = 0;
        } else if (keys % 5000 === 0) {
          sample();
        }
      } else if (r.kind === 'eof') {
        checksum = r.checksum;
      }
    }
    sample();
    expect(keys).toBe(KEYS + 1);
    expect(bigLength).toBe(BIG_VALUE_BYTES);
    expect(checksum).toBe('verified');
    // Loose on purpose: holding the file would cost more than its size; streaming costs the
    // read window plus the one big value (decoded + raw) while it is alive.
    expect(peak - low).toBeGreaterThan(BIG_VALUE_BYTES);
    expect(peak - low).toBeLessThan(size / 3);
  });
});
