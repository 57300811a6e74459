/**
 * The conformance suite every SnapshotStore implementation runs (the automerge-repo storage
 * adapter pattern): the same behaviours, asserted the same way, against a real backend.
 */
import { randomBytes } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  readdirSync,
  readFileSync,
  writeFileSync as writeFile,
} from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { GeorepError } from '@georep/core';
import { buildRdb, RdbWriter } from '@georep/rdb';
import { verifyRdb, type SnapshotMeta, type SnapshotStore } from '@georep/snapshot';
import { tempDir } from '@georep/testkit';

/** What a store's test provides: a fresh store, and optionally a way to damage stored bytes. */
export interface ConformanceSetup {
  store: SnapshotStore;
  /** Flips bytes in the stored copy of `name` (backends that allow it). */
  corrupt?: (name: string) => Promise<void>;
  teardown?: () => Promise<void>;
}

let counter = 0;

/** A small valid RDB file on disk, with its metadata. */
export function smallSnapshot(name = `snap-${++counter}`, createdAt = Date.now()) {
  const bytes = buildRdb({
    version: 10,
    aux: { 'redis-ver': '7.0.15' },
    databases: [
      {
        db: 0,
        keys: [
          { key: 'a', value: { type: 'string', value: Buffer.from('1') } },
          { key: 'b', value: { type: 'list', value: [Buffer.from('x'), Buffer.from('y')] } },
        ],
      },
    ],
  });
  const file = join(tempDir('conf-src'), `${name}.rdb`);
  writeFile(file, bytes);
  const meta: SnapshotMeta = {
    name,
    group: 'g',
    region: 'eu',
    node: 'n1',
    createdAt,
    size: 0,
    crc: '',
    rdbVersion: 10,
    redisVersion: '7.0.15',
    keys: 2,
    keysPerDb: { '0': 2 },
    replid: null,
    offset: null,
    pointInTime: false,
    source: 'file',
  };
  return { file, bytes, meta };
}

/** A valid RDB of about `mb` MB of incompressible strings, written incrementally. */
export async function largeRdb(mb: number): Promise<string> {
  const file = join(tempDir('conf-large'), 'large.rdb');
  const out = createWriteStream(file);
  const w = new RdbWriter({ version: 10, compress: false });
  const write = async (b: Buffer) => {
    if (!out.write(b)) await once(out, 'drain');
  };
  await write(w.header());
  await write(w.selectDb(0));
  for (let i = 0; i < mb; i++) {
    await write(w.key(`big:${i}`, { type: 'string', value: randomBytes(1024 * 1024) }));
  }
  await write(w.end());
  out.end();
  await once(out, 'finish');
  return file;
}

async function collect(
  it: AsyncIterable<Uint8Array>,
): Promise<{ bytes: Buffer; chunks: number[] }> {
  const parts: Buffer[] = [];
  const chunks: number[] = [];
  for await (const c of it) {
    parts.push(Buffer.from(c));
    chunks.push(c.length);
  }
  return { bytes: Buffer.concat(parts), chunks };
}

async function errorOf(p: Promise<unknown>): Promise<GeorepError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GeorepError);
  return err as GeorepError;
}

/** Registers the suite for the store made by `setup` (called once per test). */
export function runSnapshotStoreConformance(
  implementation: string,
  setup: () => Promise<ConformanceSetup>,
): void {
  describe(`${implementation} conformance`, () => {
    const withStore = (fn: (s: ConformanceSetup) => Promise<void>) => async () => {
      const s = await setup();
      try {
        await fn(s);
      } finally {
        await s.teardown?.();
      }
    };

    it(
      'store - put, head, list, download and read return the same bytes and metadata',
      withStore(async ({ store }) => {
        const older = smallSnapshot(undefined, 1_000);
        const newer = smallSnapshot(undefined, 2_000);
        const stored = await store.put(older.meta, older.file);
        expect(stored.size).toBe(older.bytes.length);
        expect(stored.crc).toBe(
          older.bytes
            .readBigUInt64LE(older.bytes.length - 8)
            .toString(16)
            .padStart(16, '0'),
        );
        await store.put(newer.meta, newer.file);
        expect(await store.head(older.meta.name)).toEqual(stored);
        expect(await store.head('no-such-snapshot')).toBeNull();
        const names = (await store.list()).map((m) => m.name);
        expect(names).toEqual([newer.meta.name, older.meta.name]);

        const out = join(tempDir('conf-dl'), 'copy.rdb');
        expect(await store.download(older.meta.name, out)).toEqual(stored);
        expect(readFileSync(out).equals(older.bytes)).toBe(true);
        const read = await collect(store.read(older.meta.name));
        expect(read.bytes.equals(older.bytes)).toBe(true);
        // read() is re-iterable: an import reads it twice.
        const again = await collect(store.read(older.meta.name));
        expect(again.bytes.equals(older.bytes)).toBe(true);
        expect((await verifyRdb(store.read(older.meta.name))).ok).toBe(true);
      }),
    );

    it(
      'store - a name is never overwritten: a second put is refused with snapshot.exists',
      withStore(async ({ store }) => {
        const s = smallSnapshot();
        await store.put(s.meta, s.file);
        const err = await errorOf(store.put(s.meta, s.file));
        expect(err.code).toBe('snapshot.exists');
        expect((await store.list()).length).toBe(1);
      }),
    );

    it(
      'store - unknown names fail with snapshot.not-found; invalid names with snapshot.invalid-name',
      withStore(async ({ store }) => {
        const out = join(tempDir('conf-missing'), 'x.rdb');
        expect((await errorOf(store.download('missing', out))).code).toBe('snapshot.not-found');
        expect(existsSync(out)).toBe(false);
        expect((await errorOf(collect(store.read('missing')))).code).toBe('snapshot.not-found');
        expect(await store.delete('missing')).toBe(false);
        expect((await errorOf(store.head('../etc/passwd'))).code).toBe('snapshot.invalid-name');
        const s = smallSnapshot();
        expect((await errorOf(store.put({ ...s.meta, name: 'a/b' }, s.file))).code).toBe(
          'snapshot.invalid-name',
        );
      }),
    );

    it(
      'store - delete removes the snapshot and frees its name',
      withStore(async ({ store }) => {
        const s = smallSnapshot();
        await store.put(s.meta, s.file);
        expect(await store.delete(s.meta.name)).toBe(true);
        expect(await store.head(s.meta.name)).toBeNull();
        expect(await store.list()).toEqual([]);
        expect(await store.delete(s.meta.name)).toBe(false);
        await store.put(s.meta, s.file);
        expect((await store.head(s.meta.name))?.size).toBe(s.bytes.length);
      }),
    );

    it(
      'store - a file whose content does not match its CRC64, or metadata that disagrees, is refused',
      withStore(async ({ store }) => {
        const s = smallSnapshot();
        const damaged = Buffer.from(s.bytes);
        damaged[20] = damaged[20]! ^ 0xff;
        writeFile(s.file, damaged);
        expect((await errorOf(store.put(s.meta, s.file))).code).toBe('snapshot.corrupt');
        const t = smallSnapshot();
        expect((await errorOf(store.put({ ...t.meta, size: 3 }, t.file))).code).toBe(
          'snapshot.corrupt',
        );
        expect(await store.list()).toEqual([]);
      }),
    );

    it(
      'store - damaged stored bytes are detected on download, and nothing is left at outFile',
      withStore(async ({ store, corrupt }) => {
        if (corrupt === undefined) return;
        const s = smallSnapshot();
        await store.put(s.meta, s.file);
        await corrupt(s.meta.name);
        const dir = tempDir('conf-corrupt');
        const out = join(dir, 'copy.rdb');
        const err = await errorOf(store.download(s.meta.name, out));
        expect(err.code).toBe('snapshot.corrupt');
        expect(readdirSync(dir)).toEqual([]);
        expect((await errorOf(collect(store.read(s.meta.name)))).code).toMatch(
          /^snapshot\.corrupt|^rdb\./,
        );
      }),
    );

    it(
      'store - a 20 MB snapshot is uploaded, downloaded and read in bounded chunks',
      withStore(async ({ store }) => {
        const file = await largeRdb(20);
        const size = readFileSync(file).length;
        const meta = { ...smallSnapshot().meta, name: `large-${++counter}` };
        const stored = await store.put(meta, file);
        expect(stored.size).toBe(size);
        const out = join(tempDir('conf-large-dl'), 'copy.rdb');
        await store.download(meta.name, out);
        expect(readFileSync(out).equals(readFileSync(file))).toBe(true);
        let chunks = 0;
        let largest = 0;
        let total = 0;
        for await (const c of store.read(meta.name)) {
          chunks++;
          largest = Math.max(largest, c.length);
          total += c.length;
        }
        expect(total).toBe(size);
        expect(chunks).toBeGreaterThan(10);
        expect(largest).toBeLessThanOrEqual(1024 * 1024);
      }),
      60_000,
    );
  });
}
