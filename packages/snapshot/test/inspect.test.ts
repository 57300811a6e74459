import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportRdb } from '@georep/redis';
import { fileSource, inspectRdb, verifyRdb } from '@georep/snapshot';
import { sharedRdbFixturesDir, startRedis, tempDir, type RedisServer } from '@georep/testkit';
import { clientOf, nodeOf, redisConfig, seedAllTypes } from './redis-state.js';

const FIXTURES = join(sharedRdbFixturesDir(), 'hdt3213');
const haveFixtures = existsSync(FIXTURES);

let source: RedisServer;
let rdbFile: string;

beforeAll(async () => {
  source = await startRedis({ dir: tempDir('insp-src') });
  const c = clientOf(source);
  await seedAllTypes(c);
  c.disconnect();
  rdbFile = join(tempDir('insp-rdb'), 'dump.rdb');
  await exportRdb({ node: nodeOf(source), config: redisConfig(), out: rdbFile });
});

afterAll(async () => {
  await source?.stop();
});

describe('inspect', () => {
  it('inspect - a real export: header, aux, per-db counts by type and encoding, biggest keys', async () => {
    const i = await inspectRdb(fileSource(rdbFile));
    expect(i.header).toEqual({ magic: 'REDIS', version: 10 });
    expect(i.aux['redis-ver']).toMatch(/^7\.0\./);
    expect(i.checksum).toBe('verified');
    expect(i.dbs.map((d) => [d.db, d.keys])).toEqual([
      [0, expect.any(Number) as number],
      [1, 2],
      [5, 3],
    ]);
    const db0 = i.dbs[0]!;
    expect(db0.byType).toMatchObject({ stream: 3, zset: 3, set: 3 });
    expect(db0.byEncoding).toMatchObject({ intset: 1, listpack: expect.any(Number) as number });
    expect(db0.byEncoding.quicklist2).toBeGreaterThanOrEqual(3);
    expect(db0.expires).toBe(3);
    expect(i.dbs[1]!.expires).toBe(1);
    expect(i.keys).toBe(i.dbs.reduce((a, d) => a + d.keys, 0));
    expect(i.biggestKeys).toHaveLength(10);
    expect(i.biggestKeys[0]).toMatchObject({ db: 0, key: 'big:string', type: 'string' });
    expect(i.biggestKeys[0]!.bytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(i.biggestKeys.map((k) => k.bytes)).toEqual(
      [...i.biggestKeys.map((k) => k.bytes)].sort((a, b) => b - a),
    );
    expect(i.memoryEstimateBytes).toBeGreaterThan(i.bytes * 0.9);
    expect(i.functions).toBe(1);
    expect(i.modules).toEqual([]);
    expect(i.bytes).toBe(readFileSync(rdbFile).length);
  });

  it('inspect - binary key names are shown escaped, as redis-cli does', async () => {
    const i = await inspectRdb(fileSource(rdbFile));
    expect(i.dbs[0]!.keys).toBeGreaterThan(0);
    const { printableKey } = await import('@georep/snapshot');
    expect(printableKey(Buffer.from([0xff, 0x00, 0x41, 0x0a, 0x22]))).toBe('\\xff\\x00A\\n\\"');
  });

  it('verify - a good file is ok; a damaged one reports the rdb code and byte offset', async () => {
    const good = await verifyRdb(fileSource(rdbFile));
    expect(good).toMatchObject({
      ok: true,
      checksum: 'verified',
      bytes: readFileSync(rdbFile).length,
    });
    const bytes = readFileSync(rdbFile);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x01;
    const bad = join(tempDir('insp-bad'), 'bad.rdb');
    writeFileSync(bad, bytes);
    const r = await verifyRdb(fileSource(bad));
    expect(r.ok).toBe(false);
    expect(r.checksum).toBe('failed');
    expect(r.error?.code).toBe('rdb.bad-checksum');
    expect(r.error?.offset).toBeGreaterThan(0);
    expect(r.keys).toBe(good.keys);
    const missing = await verifyRdb(fileSource(join(tempDir('insp-none'), 'nope.rdb')));
    expect(missing.error?.code).toBe('ENOENT');
  });
});

describe.skipIf(!haveFixtures && process.env.CI === undefined)('inspect - fixtures', () => {
  it('inspect - the fixture folder is present (required in CI)', () => {
    expect(haveFixtures).toBe(true);
  });

  it('inspect - key counts and types agree with the fixtures JSON descriptions', async () => {
    const names = readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.rdb') && existsSync(join(FIXTURES, f.replace(/\.rdb$/, '.json'))))
      .slice(0, 40);
    expect(names.length).toBeGreaterThan(10);
    let checked = 0;
    for (const name of names) {
      const described = JSON.parse(
        readFileSync(join(FIXTURES, name.replace(/\.rdb$/, '.json')), 'utf8'),
      ) as Array<{ type: string; db: number }>;
      const keys = described.filter((k) => k.type !== 'aux' && k.type !== 'functions');
      const v = await verifyRdb(fileSource(join(FIXTURES, name)));
      expect(v.ok, name).toBe(true);
      const i = await inspectRdb(fileSource(join(FIXTURES, name)));
      expect(i.keys, name).toBe(keys.length);
      const byType: Record<string, number> = {};
      for (const k of keys) byType[k.type] = (byType[k.type] ?? 0) + 1;
      const got: Record<string, number> = {};
      for (const d of i.dbs)
        for (const [t, n] of Object.entries(d.byType)) got[t] = (got[t] ?? 0) + n;
      expect(got, name).toEqual(byType);
      checked++;
    }
    expect(checked).toBe(names.length);
  });

  it('inspect - functions and hash field expirations are reported', async () => {
    expect((await inspectRdb(fileSource(join(FIXTURES, 'function.rdb')))).functions).toBe(1);
    const hfe = await inspectRdb(fileSource(join(FIXTURES, 'hash_with_hfe.rdb')));
    expect(hfe.header.version).toBe(12);
    expect(hfe.dbs[0]!.byType).toEqual({ hash: 1 });
  });
});
