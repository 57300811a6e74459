import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { GeorepError } from '@georep/core';
import { crc64 } from '@georep/rdb';
import { exportRdb } from '@georep/redis';
import {
  abandonNativeImport,
  importRdbNative,
  type ImportNativeRefusedError,
  type ImportRdbNativeOptions,
  type NativeImportProgress,
} from '@georep/snapshot';
import {
  sharedRdbFixturesDir,
  startRedis,
  tempDir,
  waitFor,
  type RedisServer,
} from '@georep/testkit';
import {
  clientOf,
  diffStates,
  nodeOf,
  redisConfig,
  seedAllTypes,
  stateOf,
  totalKeys,
  type KeyState,
} from './redis-state.js';

let source: RedisServer;
let rdbFile: string;
let expected: Map<string, KeyState>;
const cleanup: Array<() => Promise<void>> = [];
const FIXTURES = sharedRdbFixturesDir();
const haveFixtures = existsSync(join(FIXTURES, 'rdbtools'));
/** Databases compared on the target: the seeded ones and the one the junk lives in. */
const DBS = [0, 1, 3, 5];

beforeAll(async () => {
  source = await startRedis({ dir: tempDir('nimp-src') });
  const c = clientOf(source);
  await seedAllTypes(c);
  expected = await stateOf(c);
  c.disconnect();
  rdbFile = join(tempDir('nimp-rdb'), 'dump.rdb');
  await exportRdb({ node: nodeOf(source), config: redisConfig(), out: rdbFile });
});

afterAll(async () => {
  await source?.stop();
});

afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn();
});

/** A fresh target holding junk keys (db 0, db 3) that a replace must remove. */
async function targetWithJunk(
  options: Parameters<typeof startRedis>[0] = {},
): Promise<{ server: RedisServer; c: Redis }> {
  const server = await startRedis({ dir: tempDir('nimp-tgt'), ...options });
  const c = clientOf(server);
  cleanup.push(async () => {
    c.disconnect();
    await server.stop();
  });
  await c.set('junk:a', '1');
  await c.set('str:0', 'overwritten by the import');
  await c.select(3);
  await c.set('junk:b', '2', 'EX', 1000);
  await c.select(0);
  return { server, c };
}

const run = (server: RedisServer, o: Partial<ImportRdbNativeOptions> = {}) =>
  importRdbNative({
    file: rdbFile,
    target: { node: nodeOf(server), config: redisConfig() },
    timeoutMs: 60_000,
    ...o,
  });

async function failure(p: Promise<unknown>): Promise<GeorepError> {
  try {
    await p;
  } catch (err) {
    return err as GeorepError;
  }
  throw new Error('expected a failure');
}

/** The target is a primary that still holds exactly its junk. */
async function expectUntouched(c: Redis): Promise<void> {
  const repl = await c.info('replication');
  expect(repl).toMatch(/role:master/);
  expect(repl).not.toMatch(/master_host:/);
  expect(await c.get('junk:a')).toBe('1');
  expect(await c.get('str:0')).toBe('overwritten by the import');
  expect(await totalKeys(c)).toBe(3);
}

describe('importRdbNative', () => {
  it('importRdbNative - replaces every database with the file and leaves a primary', async () => {
    const { server, c } = await targetWithJunk();
    const phases = new Set<NativeImportProgress['phase']>();
    const r = await run(server, { onProgress: (p) => phases.add(p.phase) });
    expect(r.method).toBe('replication');
    expect(r.keysLoaded).toBe(expected.size);
    expect(r.bytes).toBe(readFileSync(rdbFile).length);
    expect(r.target).toMatchObject({ fork: 'redis', rdbVersion: 10 });
    expect(r.verifyMs).toBeGreaterThanOrEqual(0);
    expect(r.loadMs).toBeLessThanOrEqual(r.durationMs);
    // Junk gone (db 3 included), every key, value and TTL identical.
    expect(diffStates(expected, await stateOf(c, DBS))).toEqual([]);
    expect(await c.ttl('ttl:ex')).toBeGreaterThan(3500);
    expect(await c.call('FCALL', 'hello', 0)).toBe('hi');
    // A writable primary again, linked to nothing.
    const repl = await c.info('replication');
    expect(repl).toMatch(/role:master/);
    expect(repl).not.toMatch(/master_host:/);
    expect(await c.set('after', 'x')).toBe('OK');
    expect(phases).toEqual(new Set(['verify', 'transfer', 'load']));
  });

  it('importRdbNative - a target loading from the socket (repl-diskless-load swapdb) ends up equal too', async () => {
    const { server, c } = await targetWithJunk({ extraConfig: ['repl-diskless-load swapdb'] });
    const r = await run(server);
    expect(r.keysLoaded).toBe(expected.size);
    expect(diffStates(expected, await stateOf(c, DBS))).toEqual([]);
    expect(await c.info('replication')).toMatch(/role:master/);
  });

  it('importRdbNative - a target that cannot reach the listener times out and is a primary again', async () => {
    const { server, c } = await targetWithJunk();
    // Nothing listens on 127.0.0.2 (the listener binds 127.0.0.1): the target never connects.
    const err = await failure(run(server, { advertiseHost: '127.0.0.2', timeoutMs: 1500 }));
    expect(err.code).toBe('import.native-timeout');
    await expectUntouched(c);
  });

  it('abandonNativeImport - a target left replicating from a dead listener is a primary again with its data', async () => {
    const { server, c } = await targetWithJunk();
    // What a killed importer leaves: the target told to replicate from a listener that is gone.
    await c.call('REPLICAOF', '127.0.0.2', '9');
    const target = { node: nodeOf(server), config: redisConfig() };
    // Another listener's marker does not touch it.
    expect(await abandonNativeImport(target, { host: '127.0.0.2', port: 10 })).toBe(false);
    expect(String(await c.call('INFO', 'replication'))).toContain('role:slave');
    expect(await abandonNativeImport(target, { host: '127.0.0.2', port: 9 })).toBe(true);
    expect(String(await c.call('INFO', 'replication'))).toContain('role:master');
    await expectUntouched(c);
    // Done twice (a second restart) it finds nothing to undo.
    expect(await abandonNativeImport(target, { host: '127.0.0.2', port: 9 })).toBe(false);
  });

  it('abandonNativeImport - a target still linked to its master is left alone (its importer is alive)', async () => {
    const { server, c } = await targetWithJunk();
    // A live importer's listener answers like the source does here: the link is up.
    await c.call('REPLICAOF', source.host, String(source.port));
    await waitFor(
      async () => String(await c.call('INFO', 'replication')),
      (text) => text.includes('master_link_status:up'),
      { timeoutMs: 10_000, what: 'the target linked to the source' },
    );
    const target = { node: nodeOf(server), config: redisConfig() };
    const err = await failure(
      abandonNativeImport(target, { host: source.host, port: source.port }),
    );
    expect(err.code).toBe('import.native-in-progress');
    expect(String(await c.call('INFO', 'replication'))).toContain('role:slave');
    await c.call('REPLICAOF', 'NO', 'ONE');
  });

  it('importRdbNative - a target that cannot store the transfer fails with stage load and is restored', async () => {
    const { server, c } = await targetWithJunk({ extraConfig: ['enable-protected-configs yes'] });
    // Disk loading writes a temporary file in `dir`; a directory that vanished makes that fail
    // (even for root), so the target drops the sync and asks again.
    const gone = join(tempDir('nimp-gone'), 'dir');
    mkdirSync(gone);
    await c.config('SET', 'dir', gone);
    rmSync(gone, { recursive: true });
    const err = await failure(run(server));
    expect(err.code).toBe('import.native-refused');
    expect((err as ImportNativeRefusedError).stage).toBe('load');
    await expectUntouched(c);
  });

  it('importRdbNative - a corrupt file fails before REPLICAOF and leaves the target as it was', async () => {
    const { server, c } = await targetWithJunk();
    const bytes = readFileSync(rdbFile);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    const bad = join(tempDir('nimp-bad'), 'bad.rdb');
    writeFileSync(bad, bytes);
    const err = await failure(run(server, { file: bad }));
    expect(err.code).toMatch(/^rdb\./);
    await expectUntouched(c);
  });

  it('importRdbNative - an RDB version newer than the target fails with import.incompatible', async () => {
    const { server, c } = await targetWithJunk();
    // The same content announced as RDB 12 (Redis 7.4), checksum recomputed: valid, too new.
    const bytes = readFileSync(rdbFile);
    bytes.write('0012', 5, 'latin1');
    bytes.writeBigUInt64LE(crc64(bytes.subarray(0, bytes.length - 8)), bytes.length - 8);
    const newer = join(tempDir('nimp-new'), 'newer.rdb');
    writeFileSync(newer, bytes);
    const err = await failure(run(server, { file: newer }));
    expect(err.code).toBe('import.incompatible');
    await expectUntouched(c);
  });

  it('importRdbNative - a user without +replicaof gets import.native-refused, target untouched', async () => {
    const { server, c } = await targetWithJunk({
      extraConfig: ['user limited on >pw ~* &* +@all -replicaof -slaveof'],
    });
    const err = await failure(
      run(server, {
        target: {
          node: nodeOf(server),
          config: redisConfig({ username: 'limited', password: 'pw' }),
        },
      }),
    );
    expect(err.code).toBe('import.native-refused');
    expect((err as ImportNativeRefusedError).stage).toBe('replicaof');
    expect(err.message).toMatch(/NOPERM/);
    await expectUntouched(c);
  });

  it.skipIf(!haveFixtures && process.env.CI === undefined)(
    'importRdbNative - module keys on a target without modules fail with import.incompatible',
    async () => {
      const { server, c } = await targetWithJunk();
      // A plain string and a ReJSON value: loading it would stop this server (fatal load error).
      const err = await failure(
        run(server, { file: join(FIXTURES, 'rdbtools/redis_40_with_module.rdb') }),
      );
      expect(err.code).toBe('import.incompatible');
      expect(err.message).toMatch(/module/);
      await expectUntouched(c);
    },
  );
});
