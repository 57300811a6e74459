import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis, type RedisOptions } from 'ioredis';
import { GeorepError, parseAgentConfig, type RedisConfig } from '@georep/core';
import { buildRdb, parseRdbFile } from '@georep/rdb';
import { exportRdb, parseInfo, type ExportRdbOptions } from '@georep/redis';
import {
  makeTestCertificates,
  startRedis,
  tempDir,
  waitFor,
  type RedisServer,
} from '@georep/testkit';

const redisConfig = (redis: Record<string, unknown> = {}): RedisConfig =>
  parseAgentConfig({
    group: 'g',
    region: 'r',
    nats: { servers: ['nats://127.0.0.1:1'] },
    redis: { nodes: [{ host: '127.0.0.1', port: 1 }], ...redis },
  }).redis;

const nodeOf = (s: RedisServer) => ({ host: s.host, port: s.port });
const outFile = () => join(tempDir('export'), 'dump.rdb');

/** Runs an export that must fail; returns its error after checking nothing was left behind. */
async function failingExport(options: ExportRdbOptions): Promise<GeorepError> {
  const err = await exportRdb(options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GeorepError);
  expect(existsSync(options.out)).toBe(false);
  expect(readdirSync(join(options.out, '..'))).toEqual([]);
  return err as GeorepError;
}

/** A mix of types and encodings in two databases, with TTLs. */
async function seed(c: Redis): Promise<void> {
  const p = c.pipeline().select(0);
  for (let i = 0; i < 200; i++) p.set(`str:${i}`, `value-${i}`);
  p.set('int', '12345')
    .set('long', 'abc'.repeat(2000))
    .set('bin', Buffer.from([0, 1, 255, 254]));
  p.rpush('list', ...Array.from({ length: 50 }, (_, i) => `item${i}`));
  p.rpush('biglist', ...Array.from({ length: 300 }, (_, i) => `${i}`.padEnd(100, '.')));
  p.hset('hash', { a: '1', b: '2' }).expire('hash', 3600);
  p.hset('bighash', Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}`, i])));
  p.sadd('intset', 1, 2, 3).sadd('set', 'a', 'b');
  p.sadd('bigset', ...Array.from({ length: 300 }, (_, i) => `m${i}`));
  p.zadd('zset', 1, 'a', 2.5, 'b');
  p.zadd('bigzset', ...Array.from({ length: 300 }, (_, i) => [i, `z${i}`]).flat());
  p.xadd('stream', '*', 'f', 'v1').xadd('stream', '*', 'f', 'v2');
  p.xgroup('CREATE', 'stream', 'g', '0');
  p.set('ttl:short', 'x', 'PX', 600_000).set('ttl:long', 'y', 'EX', 86_400);
  p.select(5).set('db5:a', '1').set('db5:ttl', '2', 'EX', 1000).rpush('db5:list', 'q');
  p.select(0);
  await p.exec();
  await c.xreadgroup('GROUP', 'g', 'consumer', 'COUNT', 1, 'STREAMS', 'stream', '>');
}

type KeyState = { raw: string; expireAtMs: number | undefined };

/** Every key of the file: db/key → value bytes (as DUMP would give them) and expiry. */
async function fileState(path: string): Promise<Map<string, KeyState>> {
  const keys = new Map<string, KeyState>();
  for await (const rec of parseRdbFile(path)) {
    if (rec.kind !== 'key') continue;
    keys.set(`${rec.db}/${rec.key.toString()}`, {
      raw: rec.raw.toString('hex'),
      expireAtMs: rec.expireAtMs,
    });
  }
  return keys;
}

/** The same view of the live server, through SCAN + DUMP + PEXPIRETIME. */
async function serverState(c: Redis, dbs: number[]): Promise<Map<string, KeyState>> {
  const keys = new Map<string, KeyState>();
  for (const db of dbs) {
    await c.select(db);
    let cursor = '0';
    do {
      const [next, batch] = await c.scanBuffer(cursor, 'COUNT', 1000);
      cursor = next.toString();
      for (const key of batch) {
        const dump = await c.dumpBuffer(key);
        const at = Number(await c.call('PEXPIRETIME', key));
        keys.set(`${db}/${key.toString()}`, {
          raw: dump.subarray(0, dump.length - 10).toString('hex'),
          expireAtMs: at < 0 ? undefined : at,
        });
      }
    } while (cursor !== '0');
  }
  await c.select(0);
  return keys;
}

/** Asserts the file holds exactly the server's keys and values; expiries within `ttlSlackMs`. */
async function expectSameData(file: string, c: Redis, ttlSlackMs = 0): Promise<void> {
  const [inFile, onServer] = await Promise.all([fileState(file), serverState(c, [0, 5])]);
  expect([...inFile.keys()].sort()).toEqual([...onServer.keys()].sort());
  for (const [key, want] of onServer) {
    const got = inFile.get(key)!;
    expect(got.raw, key).toBe(want.raw);
    if (want.expireAtMs === undefined) expect(got.expireAtMs, key).toBeUndefined();
    else expect(Math.abs(got.expireAtMs! - want.expireAtMs), key).toBeLessThanOrEqual(ttlSlackMs);
  }
}

const replication = async (c: Redis) => parseInfo(await c.info('replication')).replication!;

describe('rdb export - from a primary', () => {
  let diskless: RedisServer;
  let diskBased: RedisServer;
  let cDiskless: Redis;
  let cDisk: Redis;
  beforeAll(async () => {
    [diskless, diskBased] = await Promise.all([
      startRedis({
        dir: tempDir('exp-diskless'),
        extraConfig: ['repl-diskless-sync yes', 'repl-diskless-sync-delay 0'],
      }),
      startRedis({ dir: tempDir('exp-disk'), extraConfig: ['repl-diskless-sync no'] }),
    ]);
    cDiskless = new Redis(diskless.port, diskless.host);
    cDisk = new Redis(diskBased.port, diskBased.host);
    await Promise.all([seed(cDiskless), seed(cDisk)]);
  });
  afterAll(async () => {
    cDiskless.disconnect();
    cDisk.disconnect();
    await Promise.all([diskless.stop(), diskBased.stop()]);
  });

  it('export - diskless sync ($EOF marker) writes a verified file with the same keys, values and TTLs', async () => {
    const before = await replication(cDiskless);
    const out = outFile();
    const progress: number[] = [];
    const r = await exportRdb({
      node: nodeOf(diskless),
      config: redisConfig(),
      out,
      onProgress: (p) => progress.push(p.bytesReceived),
    });
    const after = await replication(cDiskless);
    expect(r).toMatchObject({ pointInTime: true, source: 'psync', framing: 'eof-marker' });
    expect(r).toMatchObject({ checksum: 'verified', rdbOnly: true, rdbVersion: 10 });
    expect(r.redisVersion).toMatch(/^7\.0\./);
    expect(r.replid).toBe(after.master_replid);
    expect(r.offset).toBeGreaterThanOrEqual(Number(before.master_repl_offset));
    expect(r.offset).toBeLessThanOrEqual(Number(after.master_repl_offset));
    expect(r.keysPerDb).toEqual({ 0: 215, 5: 3 });
    expect(r.bytes).toBe(readFileSync(out).length);
    expect(progress.at(-1)).toBe(r.bytes);
    // The CRC in the result is the one stored in the file, and the codec agrees it is right.
    expect(
      readFileSync(out)
        .readBigUInt64LE(r.bytes - 8)
        .toString(16)
        .padStart(16, '0'),
    ).toBe(r.crc);
    expect(readdirSync(join(out, '..'))).toEqual(['dump.rdb']);
    await expectSameData(out, cDiskless);
  });

  it('export - disk-based sync ($<len>) gives the same data and announces the size', async () => {
    const out = outFile();
    let total: number | undefined;
    const r = await exportRdb({
      node: nodeOf(diskBased),
      config: redisConfig(),
      out,
      onProgress: (p) => (total = p.totalBytes),
    });
    expect(r).toMatchObject({ pointInTime: true, framing: 'length', checksum: 'verified' });
    expect(total).toBe(r.bytes);
    expect(r.replid).toBe((await replication(cDisk)).master_replid);
    await expectSameData(out, cDisk);
  });

  it('export - checksum-only verification reports the stored CRC and AUX fields, not key counts', async () => {
    const out = outFile();
    const r = await exportRdb({
      node: nodeOf(diskless),
      config: redisConfig(),
      out,
      verify: 'checksum',
    });
    expect(r.source).toBe('psync');
    if (r.source !== 'psync') return;
    expect(r.verify).toBe('checksum');
    expect(r.keysPerDb).toBeUndefined();
    expect(r.aux['redis-ver']).toBe(r.redisVersion);
    const file = readFileSync(out);
    expect(
      file
        .readBigUInt64LE(file.length - 8)
        .toString(16)
        .padStart(16, '0'),
    ).toBe(r.crc);
    await expectSameData(out, cDiskless);
  });

  it('export - writes continuing during the export do not break it', async () => {
    const writer = new Redis(diskless.port, diskless.host);
    const before = await cDiskless.dbsize();
    let stop = false;
    let written = 0;
    const writing = (async () => {
      // Bounded: at most 20 000 new keys, in pipelined batches of 100.
      while (!stop && written < 20_000) {
        const p = writer.pipeline();
        for (let i = 0; i < 100; i++) p.set(`live:${written + i}`, 'v'.repeat(50));
        await p.exec();
        written += 100;
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 20));
      const r = await exportRdb({ node: nodeOf(diskless), config: redisConfig(), out: outFile() });
      stop = true;
      await writing;
      expect(r.pointInTime).toBe(true);
      const inFile = r.source === 'psync' ? r.keysPerDb![0]! : -1;
      expect(inFile).toBeGreaterThanOrEqual(before);
      expect(inFile).toBeLessThanOrEqual(before + written);
    } finally {
      stop = true;
      await writing;
      writer.disconnect();
    }
  });

  it('export - an unreachable node fails with export.unreachable and leaves no file', async () => {
    const err = await failingExport({
      node: { host: '127.0.0.1', port: 1 },
      config: redisConfig(),
      out: outFile(),
    });
    expect(err.code).toBe('export.unreachable');
    expect(err.hint).toBeTruthy();
  });
});

describe('rdb export - from a replica', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let client: Redis;
  let replicaClient: Redis;
  beforeAll(async () => {
    primary = await startRedis({ dir: tempDir('exp-p') });
    client = new Redis(primary.port, primary.host);
    await seed(client);
    replica = await startRedis({ dir: tempDir('exp-r'), replicaOf: nodeOf(primary) });
    replicaClient = new Redis(replica.port, replica.host);
    await waitFor(
      () => replication(replicaClient),
      (info) => info.master_link_status === 'up',
    );
    // Writes after the replica attached move the replication offset past zero.
    await client.set('after-attach', '1');
    await waitFor(
      async () => replicaClient.exists('after-attach'),
      (n) => n === 1,
    );
  });
  afterAll(async () => {
    client.disconnect();
    replicaClient.disconnect();
    await replica.stop();
    await primary.stop();
  });

  it('export - a replica serves a point-in-time snapshot of the primary history', async () => {
    const out = outFile();
    const before = await replication(replicaClient);
    const r = await exportRdb({ node: nodeOf(replica), config: redisConfig(), out });
    const after = await replication(replicaClient);
    expect(r).toMatchObject({ pointInTime: true, source: 'psync' });
    // A replica shares its primary's replication id and serves snapshots at its own offset.
    expect(r.replid).toBe((await replication(client)).master_replid);
    expect(r.offset).toBeGreaterThan(0);
    expect(r.offset).toBeGreaterThanOrEqual(Number(before.master_repl_offset));
    expect(r.offset).toBeLessThanOrEqual(Number(after.master_repl_offset));
    // Compared with the replica's own DUMPs: hashtable-encoded values iterate in another order
    // on a replica than on its primary, so only the exported node's bytes must match exactly.
    await expectSameData(out, replicaClient);
  });
});

describe('rdb export - authentication and TLS', () => {
  let withPassword: RedisServer;
  let withUser: RedisServer;
  let withTls: RedisServer;
  let tlsCa: string;
  beforeAll(async () => {
    const certs = makeTestCertificates(tempDir('exp-certs'));
    tlsCa = certs.caFile;
    [withPassword, withUser, withTls] = await Promise.all([
      startRedis({ dir: tempDir('exp-pass'), password: 's3cret' }),
      startRedis({ dir: tempDir('exp-user'), user: { name: 'exporter', password: 'pw-1' } }),
      startRedis({
        dir: tempDir('exp-tls'),
        tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile },
      }),
    ]);
    const seedWith = async (s: RedisServer, o: RedisOptions) => {
      const c = new Redis({ host: s.host, port: s.port, ...o });
      await c.set('k', 'v');
      c.disconnect();
    };
    await seedWith(withPassword, { password: 's3cret' });
    await seedWith(withUser, { username: 'exporter', password: 'pw-1' });
    await seedWith(withTls, { tls: { ca: readFileSync(tlsCa) } });
  });
  afterAll(async () => {
    await Promise.all([withPassword.stop(), withUser.stop(), withTls.stop()]);
  });

  it('export - requirepass: the right password exports', async () => {
    const r = await exportRdb({
      node: nodeOf(withPassword),
      config: redisConfig({ password: 's3cret' }),
      out: outFile(),
    });
    expect(r).toMatchObject({ pointInTime: true, keysPerDb: { 0: 1 } });
  });

  it('export - ACL user: user and password export', async () => {
    const r = await exportRdb({
      node: nodeOf(withUser),
      config: redisConfig({ username: 'exporter', password: 'pw-1' }),
      out: outFile(),
    });
    expect(r).toMatchObject({ pointInTime: true, keysPerDb: { 0: 1 } });
  });

  it('export - TLS with the CA of the test certificates', async () => {
    const r = await exportRdb({
      node: nodeOf(withTls),
      config: redisConfig({ tls: { caFile: tlsCa } }),
      out: outFile(),
    });
    expect(r).toMatchObject({ pointInTime: true, keysPerDb: { 0: 1 } });
  });

  it('export - a wrong password, a missing one, or one the node does not expect fail with export.auth-failed', async () => {
    const cases: Array<[RedisServer, Record<string, unknown>]> = [
      [withPassword, { password: 'nope' }],
      [withPassword, {}],
      [withUser, { username: 'exporter', password: 'nope' }],
      // The default user of this node has no password: AUTH itself is refused.
      [withUser, { password: 'x' }],
    ];
    for (const [server, auth] of cases) {
      const err = await failingExport({
        node: nodeOf(server),
        config: redisConfig(auth),
        out: outFile(),
      });
      expect(err.code, JSON.stringify(auth)).toBe('export.auth-failed');
      expect(err.hint).toMatch(/password/);
    }
  });
});

describe('rdb export - nodes that refuse replication', () => {
  let server: RedisServer;
  let client: Redis;
  const limited = { username: 'limited', password: 'pw' };
  beforeAll(async () => {
    server = await startRedis({
      dir: tempDir('exp-acl'),
      extraConfig: ['user limited on >pw ~* &* +@all -psync -sync'],
    });
    client = new Redis(server.port, server.host);
    await seed(client);
    await client.call(
      'FUNCTION',
      'LOAD',
      "#!lua name=georeplib\nredis.register_function('one', function() return 1 end)",
    );
  });
  afterAll(async () => {
    client.disconnect();
    await server.stop();
  });

  it('export - without +psync it falls back to SCAN + DUMP, labelled not point-in-time', async () => {
    const out = outFile();
    const r = await exportRdb({ node: nodeOf(server), config: redisConfig(limited), out });
    expect(r).toMatchObject({ pointInTime: false, source: 'scan-dump', rdbVersion: 10 });
    if (r.source !== 'scan-dump') return;
    expect(r.fallback?.code).toBe('export.psync-refused');
    expect(r.keysPerDb).toEqual({ 0: 215, 5: 3 });
    expect(r.functions).toBe(1);
    expect(r.replid).toBe((await replication(client)).master_replid);
    // TTLs are re-based from PTTL, so they may differ from PEXPIRETIME by the round trip.
    await expectSameData(out, client, 1000);
    const kinds = new Set<string>();
    for await (const rec of parseRdbFile(out)) kinds.add(rec.kind);
    expect(kinds).toContain('function');
    expect(readdirSync(join(out, '..'))).toEqual(['dump.rdb']);
  });

  it('export - with allowScanFallback false the refusal is export.psync-refused', async () => {
    const err = await failingExport({
      node: nodeOf(server),
      config: redisConfig(limited),
      out: outFile(),
      allowScanFallback: false,
    });
    expect(err.code).toBe('export.psync-refused');
    expect(err.hint).toMatch(/\+psync/);
  });
});

describe('rdb export - losing the node mid-transfer', () => {
  let server: RedisServer;
  beforeAll(async () => {
    // Uncompressed values so the RDB is large (about 100 MB) and the transfer takes a while.
    server = await startRedis({
      dir: tempDir('exp-kill'),
      extraConfig: ['rdbcompression no', 'enable-debug-command yes'],
    });
    const c = new Redis(server.port, server.host);
    await c.call('DEBUG', 'POPULATE', '500000', 'key', '200');
    c.disconnect();
  });
  afterAll(async () => {
    if (server.running) await server.stop();
  });

  it('export - a node killed during the transfer gives export.connection-lost and no file', async () => {
    let killing: Promise<void> | undefined;
    let seen = 0;
    const err = await failingExport({
      node: nodeOf(server),
      config: redisConfig(),
      out: outFile(),
      onProgress: (p) => {
        seen = p.bytesReceived;
        killing ??= server.kill();
      },
    });
    await killing;
    expect(seen).toBeGreaterThan(0);
    expect(err.code).toBe('export.connection-lost');
    expect(err.details.bytesReceived).toBeLessThan(100_000_000);
  });
});

/**
 * A scripted primary on a real socket: `+OK` to every handshake command, then `onPsync` writes
 * whatever the case needs. Each client command is one write awaited before the next, so one
 * 'data' event is one command.
 */
async function fakePrimary(onPsync: (socket: Socket) => Promise<void> | void) {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('data', (data) => {
      if (data.includes('PSYNC')) void onPsync(socket);
      else socket.write('+OK\r\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    node: { host: '127.0.0.1', port },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
const REPLID = 'f'.repeat(40);
const MARK = 'm'.repeat(20) + 'M'.repeat(20);

describe('rdb export - protocol edge cases (scripted primary)', () => {
  const rdb = buildRdb({
    version: 10,
    aux: { 'redis-ver': '7.0.99' },
    databases: [
      { db: 0, keys: [{ key: 'a', value: { type: 'string', value: Buffer.from('1') } }] },
      { db: 2, keys: [{ key: 'b', value: { type: 'list', value: [Buffer.from('x')] } }] },
    ],
  });

  it('export - keepalives before the preamble and a payload in tiny chunks arrive intact', async () => {
    const primary = await fakePrimary(async (socket) => {
      socket.write(`+FULLRESYNC ${REPLID} 4242\r\n`);
      for (let i = 0; i < 3; i++) {
        await tick(20);
        socket.write('\n');
      }
      socket.write(`$EOF:${MARK}\r\n`);
      const stream = Buffer.concat([rdb, Buffer.from(MARK)]);
      for (let at = 0; at < stream.length; at += 7) {
        socket.write(stream.subarray(at, at + 7));
        await tick();
      }
    });
    try {
      const out = outFile();
      const r = await exportRdb({ node: primary.node, config: redisConfig(), out });
      expect(r).toMatchObject({
        pointInTime: true,
        replid: REPLID,
        offset: 4242,
        framing: 'eof-marker',
        keysPerDb: { 0: 1, 2: 1 },
        redisVersion: '7.0.99',
        bytes: rdb.length,
      });
      expect(readFileSync(out).equals(rdb)).toBe(true);
    } finally {
      await primary.close();
    }
  });

  it('export - a corrupted payload fails with rdb.bad-checksum and leaves no file', async () => {
    const bad = Buffer.from(rdb);
    bad[20] = bad[20]! ^ 0xff;
    const primary = await fakePrimary((socket) => {
      socket.write(`+FULLRESYNC ${REPLID} 1\r\n$${bad.length}\r\n`);
      socket.write(bad);
    });
    try {
      const err = await failingExport({
        node: primary.node,
        config: redisConfig(),
        out: outFile(),
      });
      expect(err.code).toMatch(/^rdb\./);
    } finally {
      await primary.close();
    }
  });

  it('export - a peer that answers PSYNC with something else fails with export.bad-reply', async () => {
    const primary = await fakePrimary((socket) => socket.write(`+CONTINUE ${REPLID}\r\n`));
    try {
      const err = await failingExport({
        node: primary.node,
        config: redisConfig(),
        out: outFile(),
      });
      expect(err.code).toBe('export.bad-reply');
    } finally {
      await primary.close();
    }
  });

  it('export - a primary that goes silent fails with export.timeout', async () => {
    const primary = await fakePrimary((socket) => {
      socket.write(`+FULLRESYNC ${REPLID} 1\r\n$EOF:${MARK}\r\n`);
      socket.write(rdb.subarray(0, 10));
    });
    try {
      const err = await failingExport({
        node: primary.node,
        config: redisConfig(),
        out: outFile(),
        timeouts: { idleMs: 200 },
      });
      expect(err.code).toBe('export.timeout');
      expect(err.details).toMatchObject({ phase: 'transfer', timeoutMs: 200 });
    } finally {
      await primary.close();
    }
  });
});
