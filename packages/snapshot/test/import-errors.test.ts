import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { GeorepError, exitCodeFor, ExitCode } from '@georep/core';
import { buildRdb } from '@georep/rdb';
import { fileSource, importRdb, type ImportRdbOptions } from '@georep/snapshot';
import {
  makeTestCertificates,
  startRedis,
  tempDir,
  type RedisServer,
  sharedRdbFixturesDir,
} from '@georep/testkit';
import { clientOf, nodeOf, redisConfig, totalKeys } from './redis-state.js';

const FIXTURES = sharedRdbFixturesDir();
const haveFixtures = existsSync(join(FIXTURES, 'hdt3213'));

let target: RedisServer;
let c: Redis;
const cleanup: Array<() => Promise<void>> = [];

beforeAll(async () => {
  target = await startRedis({ dir: tempDir('imperr-tgt'), extraConfig: ['databases 4'] });
  c = clientOf(target);
});

afterAll(async () => {
  c?.disconnect();
  await target?.stop();
});

afterEach(async () => {
  await c.flushall();
  for (const fn of cleanup.splice(0)) await fn();
});

const run = (source: ImportRdbOptions['source'], o: Partial<ImportRdbOptions> = {}) =>
  importRdb({
    source,
    target: { node: nodeOf(target), config: redisConfig() },
    mode: 'replace',
    ...o,
  });

async function failure(p: Promise<unknown>): Promise<GeorepError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GeorepError);
  return err as GeorepError;
}

function fileWith(bytes: Buffer): string {
  const file = join(tempDir('imperr'), 'x.rdb');
  writeFileSync(file, bytes);
  return file;
}

const sample = () =>
  buildRdb({
    version: 10,
    databases: [
      {
        db: 0,
        keys: Array.from({ length: 50 }, (_, i) => ({
          key: `k${i}`,
          value: { type: 'string' as const, value: Buffer.from(`value ${i} `.repeat(20)) },
        })),
      },
    ],
  });

describe('import - bad input', () => {
  it('import - a truncated, bit-flipped or garbage file fails with rdb.* and writes nothing', async () => {
    await c.set('pre-existing', '1');
    const good = sample();
    const truncated = good.subarray(0, good.length - 100);
    const flipped = Buffer.from(good);
    flipped[Math.floor(good.length / 2)] = flipped[Math.floor(good.length / 2)]! ^ 0x10;
    for (const [what, bytes, code] of [
      ['truncated', truncated, /^rdb\.truncated$/],
      ['bit-flipped', flipped, /^rdb\.(bad-checksum|corrupt)$/],
      ['garbage', randomBytes(4096), /^rdb\.bad-magic$/],
      ['empty', Buffer.alloc(0), /^rdb\./],
    ] as const) {
      const err = await failure(run(fileSource(fileWith(bytes))));
      expect(err.code, what).toMatch(code);
      // The verify pass failed before anything was flushed or written.
      expect(await totalKeys(c), what).toBe(1);
      expect(await c.get('pre-existing')).toBe('1');
    }
  });

  it('import - a one-shot stream is refused (the source is read twice); a factory works', async () => {
    const file = fileWith(sample());
    const err = await failure(run(createReadStream(file)));
    expect(err.code).toBe('import.invalid-options');
    expect(exitCodeFor(err)).toBe(ExitCode.usage);
    const r = await run(() => createReadStream(file));
    expect(r.keysWritten).toBe(50);
  });

  it('import - keys already expired are skipped and counted; future TTLs are kept absolute', async () => {
    const future = Date.now() + 3_600_000;
    const file = fileWith(
      buildRdb({
        version: 9,
        databases: [
          {
            db: 2,
            keys: [
              {
                key: 'dead',
                value: { type: 'string', value: Buffer.from('x') },
                expireAtMs: Date.now() - 1000,
              },
              {
                key: 'alive',
                value: { type: 'string', value: Buffer.from('y') },
                expireAtMs: future,
              },
              { key: 'forever', value: { type: 'list', value: [Buffer.from('a')] } },
            ],
          },
        ],
      }),
    );
    const r = await run(fileSource(file));
    expect(r).toMatchObject({
      keysRead: 3,
      keysWritten: 2,
      skippedExpired: 1,
      dbs: [2],
      sourceRdbVersion: 9,
    });
    await c.select(2);
    expect(Number(await c.call('PEXPIRETIME', 'alive'))).toBe(future);
    expect(await c.ttl('forever')).toBe(-1);
    expect(await c.exists('dead')).toBe(0);
    await c.select(0);
  });

  it('import - a file with databases the target lacks fails with import.incompatible before writing', async () => {
    const file = fileWith(
      buildRdb({
        version: 10,
        databases: [
          { db: 0, keys: [{ key: 'a', value: { type: 'string', value: Buffer.from('1') } }] },
          { db: 9, keys: [{ key: 'b', value: { type: 'string', value: Buffer.from('2') } }] },
        ],
      }),
    );
    const err = await failure(run(fileSource(file)));
    expect(err.code).toBe('import.incompatible');
    expect(err.hint).toBeDefined();
    expect(await totalKeys(c)).toBe(0);
    // Importing only db 0 of the same file is fine.
    const r = await run(fileSource(file), {
      target: { node: nodeOf(target), config: redisConfig(), db: 0 },
    });
    expect(r.keysWritten).toBe(1);
  });
});

describe('import - target errors', () => {
  it('import - an unreachable target fails with import.target-unreachable (exit status 4)', async () => {
    const gone = await startRedis({ dir: tempDir('imperr-gone') });
    const node = nodeOf(gone);
    await gone.stop();
    const err = await failure(
      importRdb({
        source: fileSource(fileWith(sample())),
        target: { node, config: redisConfig() },
        mode: 'merge',
      }),
    );
    expect(err.code).toBe('import.target-unreachable');
    expect(exitCodeFor(err)).toBe(ExitCode.unreachable);
  });

  it('import - wrong credentials fail with import.auth-failed; the right ones work', async () => {
    const secured = await startRedis({ dir: tempDir('imperr-auth'), password: 's3cret' });
    cleanup.push(() => secured.stop());
    const file = fileSource(fileWith(sample()));
    for (const config of [redisConfig(), redisConfig({ password: 'wrong' })]) {
      const err = await failure(
        importRdb({ source: file, target: { node: nodeOf(secured), config }, mode: 'merge' }),
      );
      expect(err.code).toBe('import.auth-failed');
    }
    const r = await importRdb({
      source: file,
      target: { node: nodeOf(secured), config: redisConfig({ password: 's3cret' }) },
      mode: 'merge',
    });
    expect(r.keysWritten).toBe(50);
  });

  it('import - TLS and an ACL user from the RedisConfig are used by both connections', async () => {
    const certs = makeTestCertificates(tempDir('imperr-certs'));
    const secured = await startRedis({
      dir: tempDir('imperr-tls'),
      tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile },
      user: { name: 'georep', password: 'pw' },
      password: 'default-pw',
    });
    cleanup.push(() => secured.stop());
    const r = await importRdb({
      source: fileSource(fileWith(sample())),
      target: {
        node: nodeOf(secured),
        config: redisConfig({ username: 'georep', password: 'pw', tls: { caFile: certs.caFile } }),
      },
      mode: 'replace',
    });
    expect(r.keysWritten).toBe(50);
    const err = await failure(
      importRdb({
        source: fileSource(fileWith(sample())),
        target: {
          node: nodeOf(secured),
          config: redisConfig({
            username: 'georep',
            password: 'nope',
            tls: { caFile: certs.caFile },
          }),
        },
        mode: 'merge',
      }),
    );
    expect(err.code).toBe('import.auth-failed');
  });

  it('import - invalid options are refused with import.invalid-options', async () => {
    const file = fileSource(fileWith(sample()));
    expect((await failure(run(file, { onConflict: 'replace' }))).code).toBe(
      'import.invalid-options',
    );
    expect((await failure(run(file, { pipeline: 0 }))).code).toBe('import.invalid-options');
  });
});

describe.skipIf(!haveFixtures && process.env.CI === undefined)(
  'import - fixtures from newer servers',
  () => {
    const fixture = (name: string) => fileSource(join(FIXTURES, name));

    it('import - the fixture folder is present (required in CI)', () => {
      expect(existsSync(join(FIXTURES, 'hdt3213'))).toBe(true);
    });

    it('import - Redis 7.2 set listpacks and v3 streams are rebuilt with commands on 7.0', async () => {
      const set = await run(fixture('hdt3213/set_listpack.rdb'));
      expect(set).toMatchObject({ keysWritten: 1, viaCommands: 1, restored: 0 });
      expect((await c.smembers('s')).sort()).toEqual(['a', 'b', 'c', 'd']);
      const stream = await run(fixture('hdt3213/stream_listoacks_3.rdb'));
      expect(stream.viaCommands).toBe(1);
      expect(await c.xrange('mystream', '-', '+')).toEqual([
        ['1704557973866-0', ['name', 'Sara', 'surname', 'OConnor']],
      ]);
      const pending = (await c.xpending(
        'mystream',
        'consumer-group-name',
        '-',
        '+',
        10,
      )) as unknown[][];
      expect(pending.map((p) => [p[0], p[1], p[3]])).toEqual([
        ['1704557973866-0', 'consumer-name', 1],
      ]);
    });

    it('import - hash field TTLs (Redis 7.4) are written without TTLs on 7.0 and reported', async () => {
      const r = await run(fixture('hdt3213/hash_with_hfe.rdb'));
      expect(r.viaCommands).toBe(1);
      expect(r.lossy).toEqual([expect.objectContaining({ key: 'hash-hfe', type: 'hash' })]);
      expect(r.lossy[0]!.reason).toMatch(/3 hash field TTL/);
      expect(await c.hlen('hash-hfe')).toBe(8);
    });

    it('import - functions load; module values the target lacks are skipped with a reason', async () => {
      const fn = await run(fixture('hdt3213/function.rdb'));
      expect(fn.functions.loaded).toBe(1);
      const again = await run(fixture('hdt3213/function.rdb'), { mode: 'merge' });
      expect(again.functions).toEqual({ loaded: 0, skipped: 1 });
      const mod = await run(fixture('rdbtools/redis_40_with_module.rdb'));
      // The file holds a plain string and a ReJSON value; this server has no ReJSON module.
      expect(mod.keysWritten).toBe(1);
      expect(await c.get('simplekey')).not.toBeNull();
      expect(mod.skippedUnsupported).toEqual([
        expect.objectContaining({ db: 0, key: 'foo', type: 'module' }),
      ]);
      expect(mod.skippedUnsupported[0]!.reason).toMatch(/module/);
    });
  },
);
