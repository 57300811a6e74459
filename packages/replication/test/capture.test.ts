import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startRedis, tempDir, waitFor, type RedisServer } from '@georep/testkit';
import {
  CaptureStream,
  FilePositionStore,
  MemoryPositionStore,
  commandKeys,
  type CaptureCommand,
} from '@georep/replication';
import { Collector, clientOf, nodeOf, replInfo, str } from './helpers.js';

/** `db:name key key...` for a captured command, the way the assertions below read. */
const summary = (c: CaptureCommand) =>
  `${c.db}:${str(c.argv[0]!).toLowerCase()} ${commandKeys(c.argv).keys.map(str).join(' ')}`.trim();

describe('capture from a primary', () => {
  let primary: RedisServer;
  let client: Redis;
  let collector: Collector;
  let store: FilePositionStore;
  const dir = tempDir('capture');

  beforeAll(async () => {
    // Pings every second, so the offset accounting must also count the commands capture skips.
    primary = await startRedis({
      dir: join(dir, 'p'),
      extraConfig: ['repl-ping-replica-period 1'],
    });
    client = clientOf(primary);
    const p = client.pipeline();
    p.set('s', 'v').set('ttl', 'x', 'EX', 3600);
    p.rpush('l', 'a', 'b').hset('h', { f: '1' }).sadd('set', 'm').zadd('z', 1, 'a');
    p.xadd('st', '*', 'f', 'v');
    p.select(3).set('db3', 'x').select(0);
    await p.exec();
    store = new FilePositionStore(join(dir, 'position.json'));
  });

  afterAll(async () => {
    await collector?.capture.stop();
    client?.disconnect();
    await primary?.stop();
  });

  it('capture - initial full sync reports every pre-existing key', async () => {
    collector = new Collector(
      CaptureStream.start({ node: nodeOf(primary), store, spoolDir: join(dir, 'p') }),
    );
    await collector.until((c) => c.of('snapshot-end').length === 1, 'snapshot');
    const start = collector.of('snapshot-start')[0]!;
    expect(start.reason).toBe('first-sync');
    expect(start.framing).toBe('eof-marker');
    const keys = collector.of('snapshot-keys').flatMap((e) => e.keys);
    const seen = new Map(keys.map((k) => [`${k.db}/${str(k.key)}`, k]));
    expect([...seen.keys()].sort()).toEqual(
      ['0/h', '0/l', '0/s', '0/set', '0/st', '0/ttl', '0/z', '3/db3'].sort(),
    );
    expect(seen.get('0/h')!.type).toBe('hash');
    expect(seen.get('0/st')!.type).toBe('stream');
    expect(seen.get('0/ttl')!.expireAtMs).toBeGreaterThan(Date.now());
    expect(seen.get('0/s')!.raw.length).toBeGreaterThan(0);
    const end = collector.of('snapshot-end')[0]!;
    expect(end.keys).toBe(8);
    expect(end.replid).toBe(start.replid);
    await collector.caughtUp(client);
    expect(collector.capture.position!.replid).toBe(start.replid);
  });

  it('capture - writes of every family arrive in order with db, argv and keys', async () => {
    const before = collector.commands.length;
    const c = client;
    const expected: string[] = [];
    const step = async (run: () => Promise<unknown>, ...want: string[]) => {
      await run();
      expected.push(...want);
    };
    await step(() => c.set('a', '1'), '0:set a');
    await step(() => c.setex('a', 100, 'x'), '0:set a'); // SET a x PXAT <abs>
    await step(() => c.psetex('a', 100_000, 'x'), '0:set a');
    await step(() => c.getset('a', 'y'), '0:set a');
    await step(() => c.append('a', 'z'), '0:append a');
    await step(() => c.setrange('a', 0, 'Q'), '0:setrange a');
    await step(() => c.incr('n'), '0:incr n');
    await step(() => c.incrby('n', 5), '0:incrby n');
    await step(() => c.decr('n'), '0:decr n');
    await step(() => c.incrbyfloat('fl', 1.5), '0:set fl'); // SET fl 1.5 KEEPTTL
    await step(() => c.mset('m1', '1', 'm2', '2'), '0:mset m1 m2');
    await step(() => c.expire('a', 50), '0:pexpireat a');
    await step(() => c.persist('a'), '0:persist a');
    await step(() => c.getex('a', 'EX', 10), '0:pexpireat a');
    await step(() => c.getdel('m1'), '0:del m1');
    await step(() => c.hset('hh', 'f', 'v', 'g', 'w'), '0:hset hh');
    await step(() => c.hincrby('hh', 'n', 2), '0:hincrby hh');
    await step(() => c.hdel('hh', 'g'), '0:hdel hh');
    await step(() => c.sadd('ss', 'a', 'b'), '0:sadd ss');
    await step(() => c.srem('ss', 'a'), '0:srem ss');
    await step(() => c.spop('ss'), '0:srem ss'); // SPOP is replicated as SREM
    await step(() => c.sadd('ss2', 'x'), '0:sadd ss2');
    await step(() => c.smove('ss2', 'ss3', 'x'), '0:smove ss2 ss3');
    await step(() => c.sunionstore('su', 'ss3', 'set'), '0:sunionstore su');
    await step(() => c.sinterstore('si', 'ss3', 'ss3'), '0:sinterstore si');
    await step(() => c.sdiffstore('sd', 'ss3', 'set'), '0:sdiffstore sd');
    await step(() => c.zadd('zz', 1, 'a', 2, 'b', 3, 'c'), '0:zadd zz');
    await step(() => c.zincrby('zz', 2, 'a'), '0:zincrby zz');
    await step(() => c.zrem('zz', 'b'), '0:zrem zz');
    await step(() => c.zunionstore('zu', 2, 'zz', 'z'), '0:zunionstore zu');
    await step(() => c.zinterstore('zi', 2, 'zz', 'z'), '0:zinterstore zi');
    await step(() => c.zpopmin('zz'), '0:zpopmin zz');
    await step(() => c.bzpopmax('zz', 0), '0:zpopmax zz');
    await step(() => c.rpush('ll', 'a', 'b', 'c', 'd'), '0:rpush ll');
    await step(() => c.lpush('ll', 'z'), '0:lpush ll');
    await step(() => c.lpop('ll'), '0:lpop ll');
    await step(() => c.lset('ll', 0, 'A'), '0:lset ll');
    await step(() => c.lmove('ll', 'll2', 'LEFT', 'RIGHT'), '0:lmove ll ll2');
    await step(() => c.blmove('ll', 'll2', 'LEFT', 'RIGHT', 0), '0:lmove ll ll2');
    await step(() => c.rpoplpush('ll', 'll2'), '0:rpoplpush ll ll2');
    await step(() => c.blpop('ll2', 0), '0:lpop ll2');
    await step(() => c.ltrim('ll2', 0, 0), '0:ltrim ll2');
    await step(() => c.xadd('xs', '*', 'f', '1'), '0:xadd xs');
    await step(() => c.xadd('xs', '*', 'f', '2'), '0:xadd xs');
    await step(() => c.xgroup('CREATE', 'xs', 'g', '0'), '0:xgroup xs');
    await step(
      () => c.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 1, 'STREAMS', 'xs', '>'),
      '0:xclaim xs', // XREADGROUP is replicated as XCLAIM ... JUSTID
    );
    await step(() => c.xautoclaim('xs', 'g', 'c2', 0, '0'), '0:xclaim xs');
    const [firstId] = (await c.xrange('xs', '-', '+', 'COUNT', 1))[0]!;
    await step(() => c.xack('xs', 'g', firstId), '0:xack xs');
    await step(() => c.xdel('xs', firstId), '0:xdel xs');
    await step(() => c.xadd('xs', '*', 'f', '3'), '0:xadd xs');
    await step(() => c.xtrim('xs', 'MAXLEN', 1), '0:xtrim xs');
    await step(() => c.pfadd('hl', 'a', 'b'), '0:pfadd hl');
    await step(() => c.pfmerge('hl2', 'hl'), '0:pfmerge hl2');
    await step(() => c.geoadd('geo', 13.36, 38.11, 'p'), '0:zadd geo'); // GEOADD → ZADD
    await step(() => c.setbit('bits', 3, 1), '0:setbit bits');
    await step(() => c.bitop('OR', 'bo', 'bits', 'bits'), '0:bitop bo');
    await step(() => c.copy('a', 'acopy'), '0:copy acopy');
    await step(() => c.rename('acopy', 'arenamed'), '0:rename acopy arenamed');
    await step(async () => c.restore('rst', 0, await c.dumpBuffer('ll2')), '0:restore rst');
    await step(() => c.unlink('rst'), '0:unlink rst');
    await step(() => c.del('arenamed', 'nope'), '0:del arenamed nope');
    // Another database: SELECT is consumed by capture and shows as the db of what follows.
    await step(
      async () => {
        const p = c.pipeline().select(5).set('five', '5').hset('fh', 'a', '1').flushdb().select(0);
        await p.exec();
      },
      ...['5:set five', '5:hset fh', '5:flushdb'],
    );
    await step(() => c.swapdb(6, 7), '0:swapdb');
    const target = await collector.caughtUp(client);
    const got = collector.commands.slice(before);
    expect(got.map(summary)).toEqual(expected);
    // Offsets: each command ends where the next begins, minus the PINGs/SELECTs capture skipped.
    for (let i = 1; i < got.length; i++) {
      expect(got[i]!.offset - got[i]!.bytes).toBeGreaterThanOrEqual(got[i - 1]!.offset);
    }
    expect(got.at(-1)!.offset).toBeLessThanOrEqual(target);
    expect(collector.capture.position!.offset).toBe(target);
    expect(
      got.find((c) => str(c.argv[0]!) === 'set' && str(c.argv[1]!) === 'a')!.argv.map(str),
    ).toEqual(['set', 'a', '1']);
    const flush = got.find((c) => commandKeys(c.argv).flush !== undefined)!;
    expect(commandKeys(flush.argv)).toMatchObject({ flush: 'db' });
  });

  it('capture - MULTI/EXEC, EVAL and FCALL arrive as their effects between MULTI and EXEC', async () => {
    await client.function(
      'LOAD',
      'REPLACE',
      "#!lua name=caplib\nredis.register_function('capfn', function(keys, args) redis.call('set', keys[1], args[1]); redis.call('hset', keys[2], 'f', args[1]); return 1 end)",
    );
    await collector.caughtUp(client);
    const before = collector.commands.length;
    await client.multi().set('t1', '1').incr('t2').exec();
    await client.eval(
      "redis.call('set', KEYS[1], 'a'); redis.call('lpush', KEYS[2], 'b'); return 1",
      2,
      'e1',
      'e2',
    );
    await client.eval("redis.call('set', KEYS[1], 'one'); return 1", 1, 'e3');
    await client.eval("return redis.call('get', KEYS[1])", 1, 'e3');
    await client.fcall('capfn', 2, 'f1', 'f2', 'v');
    await collector.caughtUp(client);
    const got = collector.commands
      .slice(before)
      .map((c) => [str(c.argv[0]!).toUpperCase(), ...c.argv.slice(1).map(str)].join(' '));
    expect(got).toEqual([
      'MULTI',
      'SET t1 1',
      'INCR t2',
      'EXEC',
      'MULTI',
      'SET e1 a',
      'LPUSH e2 b',
      'EXEC',
      'SET e3 one', // a script with one write is not wrapped; a read-only one is not replicated
      'MULTI',
      'SET f1 v',
      'HSET f2 f v',
      'EXEC',
    ]);
    expect(
      collector.commands
        .slice(before)
        .map((c) => commandKeys(c.argv).transaction ?? '-')
        .join(','),
    ).toBe('begin,-,-,commit,begin,-,-,commit,-,begin,-,-,commit');
  });

  it('capture - stop and resume from the saved position is a partial resync without gaps', async () => {
    await client.set('before-stop', '1');
    await collector.caughtUp(client);
    const first = collector;
    await first.capture.stop();
    await first.done;
    const saved = store.load()!;
    expect(saved).toEqual(first.capture.position);
    const seenBefore = first.commands.length;

    const more = Array.from({ length: 50 }, (_, i) => `after-${i}`);
    for (const k of more) await client.set(k, 'v');
    collector = new Collector(CaptureStream.start({ node: nodeOf(primary), store }));
    await collector.caughtUp(client);
    const kinds = collector.events.map((e) => e.type);
    expect(kinds[0]).toBe('resumed');
    expect(kinds).not.toContain('snapshot-start');
    const resumed = collector.of('resumed')[0]!;
    expect(resumed.offset).toBe(saved.offset);
    expect(resumed.replid).toBe(saved.replid);
    expect(collector.commands.map((c) => str(c.argv[1]!))).toEqual(more);
    // Contiguous with what the first capture saw.
    expect(collector.commands[0]!.offset - collector.commands[0]!.bytes).toBeGreaterThanOrEqual(
      first.commands[seenBefore - 1]!.offset,
    );
  });

  it('capture - a primary restart is reported and capture goes on', async () => {
    await client.set('before-restart', '1');
    await collector.caughtUp(client);
    await primary.restart();
    await collector.until((c) => c.of('disconnected').length > 0, 'the disconnect');
    // Without persistence the restarted node is a new history: a full resync, and it says why.
    await collector.until(
      (c) => c.of('snapshot-end').length === 1,
      'the full sync after the restart',
    );
    const start = collector.of('snapshot-start').at(-1)!;
    expect(start.reason).toBe('history-unknown');
    expect(start.detail).toContain('does not know replication id');
    await client.set('after-restart', '1');
    await collector.caughtUp(client);
    expect(collector.commands.at(-1)!.argv.map(str)).toEqual(['set', 'after-restart', '1']);
  });
});

describe('capture edge cases', () => {
  const servers: RedisServer[] = [];
  const dir = tempDir('capture-edge');

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('capture - a consumer that falls behind: capture holds about maxQueuedBytes, the primary the rest', async () => {
    const s = await startRedis({ dir: join(dir, 'slow') });
    servers.push(s);
    const c = clientOf(s);
    const capture = CaptureStream.start({ node: nodeOf(s), maxQueuedBytes: 4 * 1024 * 1024 });
    const events = capture[Symbol.asyncIterator]();
    for (;;) {
      const r = await events.next();
      if (r.done === true || r.value.type === 'snapshot-end') break;
    }
    const start = capture.receivedPosition!.offset;
    // 300,000 small SETs nobody consumes yet: about 22 MB on the wire, ten times that as queued
    // commands in the agent.
    const N = 300_000;
    for (let i = 0; i < N; i += 10_000) {
      const p = c.pipeline();
      for (let j = i; j < i + 10_000; j++) p.set(`slow:${j}`, 'v');
      await p.exec();
    }
    // The primary holds what capture did not read, in its output buffer for the replica.
    const omem = await waitFor(
      async () =>
        Number(/omem=(\d+)/.exec(String(await c.call('CLIENT', 'LIST', 'TYPE', 'replica')))?.[1]),
      (m) => m > 0,
      { timeoutMs: 10_000, intervalMs: 100, what: 'the primary buffering for capture' },
    );
    expect(omem).toBeGreaterThan(0);
    // Capture read about 4 MiB worth of queued commands: a few hundred kB of the wire, not 4 MiB.
    expect(capture.receivedPosition!.offset - start).toBeLessThan(1024 * 1024);
    // Once consumed, every write arrives, in order.
    let next = 0;
    while (next < N) {
      const r = await events.next();
      if (r.done === true) break;
      const ev = r.value;
      if (ev.type !== 'command' || str(ev.argv[0]!).toLowerCase() !== 'set') continue;
      expect(str(ev.argv[1]!)).toBe(`slow:${next}`);
      next++;
    }
    expect(next).toBe(N);
    await capture.stop();
    c.disconnect();
  });

  it('capture - a disk-based full sync ($<len> framing) then the stream', async () => {
    const s = await startRedis({ dir: join(dir, 'disk'), extraConfig: ['repl-diskless-sync no'] });
    servers.push(s);
    const c = clientOf(s);
    await c.set('k', 'v'.repeat(10_000));
    const col = new Collector(CaptureStream.start({ node: nodeOf(s) }));
    await col.until((x) => x.of('snapshot-end').length === 1, 'the snapshot');
    expect(col.of('snapshot-start')[0]!.framing).toBe('length');
    expect(col.of('snapshot-keys')[0]!.keys.map((k) => str(k.key))).toEqual(['k']);
    await c.set('after', '1');
    await col.caughtUp(c);
    expect(col.commands.map((x) => x.argv.map(str).join(' '))).toEqual(['set after 1']);
    await col.capture.stop();
    c.disconnect();
  });

  it('capture - a position older than the backlog gives a full resync saying why', async () => {
    const s = await startRedis({
      dir: join(dir, 'backlog'),
      extraConfig: ['repl-backlog-size 16kb'],
    });
    servers.push(s);
    const c = clientOf(s);
    const store = new MemoryPositionStore();
    const first = new Collector(CaptureStream.start({ node: nodeOf(s), store }));
    await c.set('x', '1');
    await first.caughtUp(c);
    await first.capture.stop();
    const p = c.pipeline();
    for (let i = 0; i < 100; i++) p.set(`big${i}`, 'x'.repeat(1000));
    await p.exec();
    const second = new Collector(CaptureStream.start({ node: nodeOf(s), store }));
    await second.caughtUp(c);
    const start = second.of('snapshot-start')[0]!;
    expect(start.reason).toBe('backlog-exceeded');
    expect(start.detail).toContain('repl-backlog-size');
    expect(second.of('snapshot-end')[0]!.keys).toBe(101);
    expect(second.of('resumed')).toEqual([]);
    expect((await replInfo(c))['connected_slaves']).toBe('1');
    await second.capture.stop();
    c.disconnect();
  });
});
