/**
 * record.lua and apply.lua, rule by rule: two regions (two redis-servers), a command on one,
 * its batch applied on the other, sometimes twice or in the other order.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, tempDir, type RedisServer } from '@georep/testkit';
import {
  APPLY_MARKER_KEY,
  OUTBOX_KEY,
  applyBatchOnce,
  compareTags,
  metaKey,
  readOutbox,
  readOutboxes,
  recordBatch,
  type OpBatch,
} from '@georep/replication';
import {
  FakeTime,
  ScriptRegion,
  buf,
  u8,
  counter,
  elements,
  expire,
  flush,
  keyState,
  prefix,
  value,
} from './script-regions.js';

describe('record and apply scripts', () => {
  const dir = tempDir('record-apply');
  const time = new FakeTime();
  let servers: RedisServer[] = [];
  let a: ScriptRegion;
  let b: ScriptRegion;

  beforeAll(async () => {
    servers = await Promise.all(
      ['a', 'b'].map((name) => startRedis({ dir: join(dir, name), name: `region ${name}` })),
    );
    a = new ScriptRegion('a', servers[0]!, time);
    b = new ScriptRegion('b', servers[1]!, time);
  });

  afterAll(async () => {
    a?.close();
    b?.close();
    await Promise.all(servers.map((s) => s.stop()));
  });

  const get = async (r: ScriptRegion, key: string) => (await r.client.get(key)) ?? null;
  const meta = async (r: ScriptRegion, key: string | Buffer, db = 0) =>
    r.db(db).hgetall(metaKey(buf(key)));
  const expireAt = async (r: ScriptRegion, key: string) =>
    Number(await r.client.call('PEXPIRETIME', key));
  const deliver = async (to: ScriptRegion, ...batches: OpBatch[]) => {
    for (const batch of batches) await to.apply(batch);
  };

  describe('record', () => {
    it('record - value on a missing key records a tombstone', async () => {
      const k = `${prefix()}:k`;
      const batch = await a.record([value(k)(a.tag())]);
      expect(batch.ops).toHaveLength(1);
      const op = batch.ops[0]!;
      expect(op).toMatchObject({ kind: 'value', db: 0, dump: null, pttl: 0, ob: {} });
      expect(await meta(a, k)).toEqual({ t: op.tag, x: '1' });
    });

    it('record - value on a present key clears tombstone and element tags', async () => {
      const k = `${prefix()}:h`;
      await a.run(['HSET', k, 'f', '1'], elements(k, 'hash', ['f']));
      await a.run(['DEL', k], value(k));
      await a.run(['HSET', k, 'g', '2'], elements(k, 'hash', ['g']));
      expect(Object.keys(await meta(a, k)).sort()).toEqual(['f:g', 't', 'x']);
      const batch = await a.run(['HSET', k, 'h', '3'], value(k));
      const op = batch.ops[0]!;
      expect(op.kind === 'value' && op.dump !== null).toBe(true);
      expect(await meta(a, k)).toEqual({ t: op.tag, e: `${op.tag}=0` });
    });

    it('record - a plain string key keeps a small metadata hash', async () => {
      const k = `${prefix()}:s`;
      for (let i = 0; i < 50; i++) {
        const batch = await a.run(['SET', k, `v${i}`], value(k));
        if (i % 2 === 0) await deliver(b, batch);
        else await deliver(b, await b.run(['SET', k, `w${i}`], value(k)));
        await a.run(['EXPIRE', k, 1000 + i], expire(k));
      }
      expect(Object.keys(await meta(a, k)).length).toBeLessThanOrEqual(3);
      expect(Object.keys(await meta(b, k)).length).toBeLessThanOrEqual(3);
    });

    it('record - the outbox holds seq, offset and a payload readOutbox rebuilds', async () => {
      const k = `${prefix()}:o`;
      await a.client.del(OUTBOX_KEY, `${OUTBOX_KEY}:1`);
      expect(await readOutbox(a.client)).toBeNull();
      await a.client.call('SET', k, '5');
      const batch = await recordBatch(a.client, {
        origin: 'a',
        seq: 78,
        offset: 123456,
        instructions: [value(k)(a.tag()), counter(k, 5)(a.tag()), expire(k)(a.tag())],
      });
      // Even sequence numbers use the first slot, odd ones the second.
      const raw = await a.client.getBuffer(OUTBOX_KEY);
      expect(raw!.subarray(0, 10).toString()).toBe('78\n123456\n');
      const entry = await readOutbox(a.client);
      expect(entry).toEqual({ seq: 78, offset: 123456, batch });
      const next = await recordBatch(a.client, {
        origin: 'a',
        seq: 79,
        offset: 123500,
        instructions: [value(k)(a.tag())],
      });
      expect((await readOutboxes(a.client)).map((e) => [e.seq, e.batch])).toEqual([
        [78, batch],
        [79, next],
      ]);
      expect(batch.ops.map((op) => op.kind)).toEqual(['value', 'counter', 'expire']);
    });

    it('record - a bad instruction is refused before anything is written', async () => {
      const k = `${prefix()}:bad`;
      const outbox = await a.client.getBuffer(OUTBOX_KEY);
      const good = value(k)(a.tag());
      await expect(
        recordBatch(a.client, {
          origin: 'a',
          seq: 1,
          offset: 1,
          instructions: [good, { ...counter(k, 1)(a.tag()), delta: 'ten' }],
        }),
      ).rejects.toMatchObject({ code: 'replication.bad-input' });
      expect(await a.client.exists(metaKey(buf(k)))).toBe(0);
      expect(await a.client.getBuffer(OUTBOX_KEY)).toEqual(outbox);
    });

    it('record - an outbox georep did not write is reported', async () => {
      const saved = await a.client.getBuffer(OUTBOX_KEY);
      try {
        await a.client.set(OUTBOX_KEY, '1\n2\n3:abc');
        await expect(readOutbox(a.client)).rejects.toMatchObject({
          code: 'replication.bad-outbox',
        });
        await a.client.set(OUTBOX_KEY, 'garbage');
        await expect(readOutbox(a.client)).rejects.toMatchObject({
          code: 'replication.bad-outbox',
        });
      } finally {
        if (saved !== null) await a.client.set(OUTBOX_KEY, saved);
      }
    });

    it('record - binary keys, members and values survive both scripts', async () => {
      const k = Buffer.concat([Buffer.from(prefix()), Buffer.from([0, 0xff, 0x0a, 0x3a])]);
      const h = Buffer.concat([k, Buffer.from([0xfe])]);
      const v = Buffer.from([0xc4, 0, 0x80, 0xff, 0x0a]);
      const m = Buffer.from([0x00, 0x3a, 0xff]);
      await a.client.call('SET', k, v);
      await a.client.call('HSET', h, m, v);
      const batch = await a.record([value(k)(a.tag()), elements(h, 'hash', [m])(a.tag())]);
      await deliver(b, batch);
      expect(await b.client.getBuffer(k)).toEqual(v);
      expect(await b.client.hgetBuffer(h, m)).toEqual(v);
      await deliver(b, await a.run(['HDEL', h, m], elements(h, 'hash', [], [m])));
      expect(await b.client.exists(h)).toBe(0);
    });
  });

  it('record - items of every length class (empty, 254, 255, 70,000 bytes) survive both scripts', async () => {
    // The scripts take their items packed, with a one-byte length up to 254 and a four-byte one
    // above: lengths around that boundary, and a key and members as long, must come through.
    const lengths = [1, 254, 255, 70_000];
    const keys = lengths.map((n) => Buffer.concat([Buffer.from(prefix()), Buffer.alloc(n, 0x6b)]));
    const members = lengths.map((n) => Buffer.alloc(n, 0x6d));
    for (const [i, k] of keys.entries())
      await a.client.call('SET', k, Buffer.alloc(lengths[i]!, i));
    const h = keys[1]!;
    await a.client.call('DEL', h);
    for (const m of members) await a.client.call('HSET', h, m, Buffer.alloc(0));
    const batch = await a.record([
      ...keys.filter((k) => k !== h).map((k) => value(k)(a.tag())),
      elements(h, 'hash', members)(a.tag()),
    ]);
    await deliver(b, batch);
    for (const [i, k] of keys.entries()) {
      if (k === h) continue;
      expect(await b.client.getBuffer(k)).toEqual(Buffer.alloc(lengths[i]!, i));
    }
    for (const m of members) expect(await b.client.hgetBuffer(h, m)).toEqual(Buffer.alloc(0));
    await deliver(b, await a.run(['HDEL', h, members[3]!], elements(h, 'hash', [], [members[3]!])));
    expect(await b.client.hlen(h)).toBe(3);
  });

  describe('apply', () => {
    it('apply - the first write of the transaction is the apply marker', async () => {
      const k = `${prefix()}:m`;
      const batch = await a.run(['SET', k, '1'], value(k), expire(k));
      const monitor = await b.client.monitor();
      const seen: string[][] = [];
      monitor.on('monitor', (_time: string, args: string[]) => seen.push(args));
      await deliver(b, batch);
      // MONITOR is asynchronous: wait until the script's last command shows up.
      await b.client.ping();
      for (let i = 0; i < 50 && !seen.some((c) => c[0] === 'exec'); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      monitor.disconnect();
      const writes = seen
        .map((c) => c.map((s) => s.toLowerCase()))
        .filter((c) => !['multi', 'evalsha', 'select', 'exec'].includes(c[0]!));
      expect(writes[0]).toEqual(['set', APPLY_MARKER_KEY, `a:${batch.seq}`]);
      expect(await b.client.get(APPLY_MARKER_KEY)).toBe(`a:${batch.seq}`);
    });

    it('apply - a WATCH abort applies nothing and returns null', async () => {
      const k = `${prefix()}:w`;
      const batch = await a.run(['SET', k, 'remote'], value(k));
      const watcher = new Redis({ host: b.server.host, port: b.server.port });
      try {
        await watcher.watch(k);
        await b.client.set(k, 'local');
        expect(await applyBatchOnce(watcher, batch)).toBeNull();
        expect(await get(b, k)).toBe('local');
        await watcher.watch(k);
        expect((await applyBatchOnce(watcher, batch))?.applied.value).toBe(1);
        expect(await get(b, k)).toBe('remote');
      } finally {
        watcher.disconnect();
      }
    });

    it('apply - after SCRIPT FLUSH the next attempt works again', async () => {
      const k = `${prefix()}:f`;
      const batch = await a.run(['SET', k, '1'], value(k));
      await b.client.script('FLUSH');
      expect(await applyBatchOnce(b.client, batch)).toBeNull();
      expect(await get(b, k)).toBeNull();
      expect((await applyBatchOnce(b.client, batch))?.applied.value).toBe(1);
    });

    it('apply - operations in other dbs leave the caller in its db', async () => {
      const k = `${prefix()}:db`;
      const batch = await a.runIn(3, ['SET', k, 'three'], value(k, 3));
      expect(batch.ops[0]).toMatchObject({ db: 3 });
      await deliver(b, batch);
      expect(await b.db(3).get(k)).toBe('three');
      expect(await b.client.get(k)).toBeNull();
      expect(await meta(b, k, 3)).toHaveProperty('t', batch.ops[0]!.tag);
      // record.lua's SELECTs do not leak either.
      expect(await a.client.get(k)).toBeNull();
    });
  });

  describe('value', () => {
    it('value - the later tag wins and the earlier one is dropped', async () => {
      const k = `${prefix()}:lww`;
      const early = await a.run(['SET', k, 'from-a'], value(k));
      time.advance(5);
      const late = await b.run(['SET', k, 'from-b'], value(k));
      expect(compareTags(early.ops[0]!.tag, late.ops[0]!.tag)).toBeLessThan(0);
      await deliver(a, late);
      expect((await b.apply(early)).dropped.value).toBe(1);
      expect(await get(a, k)).toBe('from-b');
      expect(await get(b, k)).toBe('from-b');
    });

    it('value - a redelivered batch changes nothing', async () => {
      const k = `${prefix()}:re`;
      const one = await a.run(['SET', k, '1', 'PX', 3_600_000], value(k));
      const two = await a.run(['SET', k, '2'], value(k));
      expect((await b.apply(one)).applied.value).toBe(1);
      expect((await b.apply(one)).dropped.value).toBe(1);
      await deliver(b, two);
      expect((await b.apply(two)).dropped.value).toBe(1);
      expect(await keyState(b.client, buf(k))).toEqual(await keyState(a.client, buf(k)));
      expect(await get(b, k)).toBe('2');
    });

    it('value - a delete is a tombstone older writes cannot undo', async () => {
      const k = `${prefix()}:del`;
      await deliver(b, await a.run(['SET', k, 'x'], value(k)));
      const old = await b.run(['SET', k, 'y'], value(k));
      time.advance(5);
      const del = await a.run(['DEL', k], value(k));
      await deliver(b, del);
      await deliver(a, old);
      expect(await a.client.exists(k)).toBe(0);
      expect(await b.client.exists(k)).toBe(0);
      expect(await meta(a, k)).toMatchObject({ x: '1', t: del.ops[0]!.tag });
    });

    it('value - hash fields added concurrently after the write survive it', async () => {
      const k = `${prefix()}:keep`;
      await deliver(b, await a.run(['HSET', k, 'old', '1'], elements(k, 'hash', ['old'])));
      // a replaces the whole hash; b concurrently adds a field with a later tag.
      const whole = await a.run(['DEL', k], value(k));
      time.advance(5);
      const add = await b.run(['HSET', k, 'new', '2'], elements(k, 'hash', ['new']));
      await deliver(b, whole);
      await deliver(a, add);
      expect(await a.client.hgetall(k)).toEqual({ new: '2' });
      expect(await b.client.hgetall(k)).toEqual({ new: '2' });
    });
  });

  describe('counter', () => {
    it('counter - concurrent increments from two regions add up', async () => {
      const k = `${prefix()}:n`;
      const fromA = await a.run(['INCRBY', k, 5], counter(k, 5));
      const fromB = await b.run(['INCRBY', k, 7], counter(k, 7));
      const fromB2 = await b.run(['DECRBY', k, 2], counter(k, -2));
      await deliver(a, fromB, fromB2);
      await deliver(b, fromA);
      expect(await get(a, k)).toBe('10');
      expect(await get(b, k)).toBe('10');
      expect(fromB2.ops[0]).toMatchObject({ kind: 'counter', cum: '5' });
    });

    it('counter - a concurrent SET keeps increments it did not observe', async () => {
      const k = `${prefix()}:set`;
      await deliver(b, await a.run(['INCRBY', k, 3], counter(k, 3)));
      // b increments; a, not having seen it, sets the counter (observing only its own 3).
      const inc = await b.run(['INCRBY', k, 4], counter(k, 4));
      time.advance(5);
      const set = await a.run(['SET', k, '100'], value(k));
      expect(set.ops[0]).toMatchObject({ ob: { a: '3' } });
      await deliver(b, set);
      await deliver(a, inc);
      expect(await get(a, k)).toBe('104');
      expect(await get(b, k)).toBe('104');
    });

    it('counter - a concurrent DEL keeps increments it did not observe', async () => {
      const k = `${prefix()}:cdel`;
      await deliver(b, await a.run(['INCRBY', k, 3], counter(k, 3)));
      const inc = await b.run(['INCRBY', k, 4], counter(k, 4));
      time.advance(5);
      const del = await a.run(['DEL', k], value(k));
      await deliver(b, del);
      await deliver(a, inc);
      expect(await get(a, k)).toBe('4');
      expect(await get(b, k)).toBe('4');
    });

    it('counter - a redelivered increment counts once', async () => {
      const k = `${prefix()}:once`;
      const one = await a.run(['INCRBY', k, 2], counter(k, 2));
      const two = await a.run(['INCRBY', k, 3], counter(k, 3));
      await deliver(b, one, one, two, two);
      expect((await b.apply(one)).dropped.counter).toBe(1);
      expect(await get(b, k)).toBe('5');
    });

    it('counter - a value that is not a number is left alone, contributions still count', async () => {
      const k = `${prefix()}:nan`;
      await deliver(a, await b.run(['SET', k, '1'], value(k)));
      const inc = await a.run(['INCRBY', k, 9], counter(k, 9));
      time.advance(5);
      await b.run(['SET', k, 'text'], value(k));
      await deliver(b, inc);
      expect(await get(b, k)).toBe('text');
      expect(await meta(b, k)).toMatchObject({ 'c:a': '9', 'C:a': inc.ops[0]!.tag });
    });

    it('counter - sums beyond 2^53 stay exact', async () => {
      const k = `${prefix()}:big`;
      const big = '4611686018427387903'; // 2^62 - 1
      const batches = [
        await a.run(['INCRBY', k, big], counter(k, big)),
        await a.run(['INCRBY', k, '-3'], counter(k, -3)),
      ];
      const fromB = await b.run(
        ['INCRBY', k, '1000000000000000001'],
        counter(k, '1000000000000000001'),
      );
      await deliver(b, ...batches);
      await deliver(a, fromB);
      const expected = (BigInt(big) - 3n + 1000000000000000001n).toString();
      expect(await get(a, k)).toBe(expected);
      expect(await get(b, k)).toBe(expected);
      // A SET that observed only a's contribution keeps b's beyond 2^53 too.
      time.advance(5);
      const set = await a.run(['SET', k, '1'], value(k));
      await deliver(b, set);
      expect(await get(b, k)).toBe('1');
    });
  });

  describe('expire', () => {
    const soon = () => Math.floor(Date.now() / 1000) + 1000;

    it('expire - a sequential change applies, even a shorter one', async () => {
      const k = `${prefix()}:seq`;
      const set = await a.run(['SET', k, 'v'], value(k));
      const long = await a.run(['EXPIREAT', k, soon() + 500], expire(k));
      const short = await a.run(['EXPIREAT', k, soon()], expire(k));
      expect(short.ops[0]).toMatchObject({ prev: long.ops[0]!.tag });
      await deliver(b, set, long, short);
      expect(await expireAt(b, k)).toBe(await expireAt(a, k));
      expect(await expireAt(b, k)).toBe(soon() * 1000);
    });

    it("expire - a change after another region's SET replaces the SET's expiry", async () => {
      const k = `${prefix()}:after`;
      const set = await b.run(['SET', k, 'v'], value(k));
      await deliver(a, set);
      const exp = await a.run(['EXPIRE', k, 100], expire(k));
      expect(exp.ops[0]).toMatchObject({ prev: set.ops[0]!.tag });
      await deliver(b, exp);
      expect(await expireAt(b, k)).toBe(await expireAt(a, k));
      expect(await expireAt(b, k)).toBeGreaterThan(0);
    });

    it('expire - concurrent: longer TTL wins', async () => {
      const k = `${prefix()}:conc`;
      await deliver(b, await a.run(['SET', k, 'v'], value(k)));
      const longer = await a.run(['EXPIREAT', k, soon() + 500], expire(k));
      time.advance(5);
      const shorter = await b.run(['EXPIREAT', k, soon()], expire(k));
      expect(compareTags(longer.ops[0]!.tag, shorter.ops[0]!.tag)).toBeLessThan(0);
      await deliver(a, shorter);
      await deliver(b, longer);
      expect(await expireAt(a, k)).toBe((soon() + 500) * 1000);
      expect(await expireAt(b, k)).toBe((soon() + 500) * 1000);
    });

    it('expire - concurrent: PERSIST is the longest', async () => {
      const k = `${prefix()}:persist`;
      await deliver(b, await a.run(['SET', k, 'v', 'EX', 5000], value(k)));
      const persist = await a.run(['PERSIST', k], expire(k));
      const shorter = await b.run(['EXPIRE', k, 100], expire(k));
      await deliver(a, shorter);
      await deliver(b, persist);
      expect(await expireAt(a, k)).toBe(-1);
      expect(await expireAt(b, k)).toBe(-1);
    });

    it('expire - a redelivered change is dropped', async () => {
      const k = `${prefix()}:redeliver`;
      const set = await a.run(['SET', k, 'v'], value(k));
      const first = await a.run(['EXPIRE', k, 5000], expire(k));
      const second = await a.run(['PERSIST', k], expire(k));
      await deliver(b, set, first, second);
      expect((await b.apply(first)).dropped.expire).toBe(1);
      expect(await expireAt(b, k)).toBe(-1);
    });

    it('expire - a SET replaces an older concurrent expiry change', async () => {
      const k = `${prefix()}:setexp`;
      await deliver(b, await a.run(['SET', k, 'v'], value(k)));
      const exp = await b.run(['EXPIRE', k, 3000], expire(k));
      time.advance(5);
      const set = await a.run(['SET', k, 'w', 'EX', 100], value(k));
      await deliver(a, exp);
      await deliver(b, set);
      expect(await get(b, k)).toBe('w');
      expect(await expireAt(b, k)).toBe(await expireAt(a, k));
      expect(await expireAt(a, k)).toBe(set.ops[0]!.kind === 'value' ? set.ops[0]!.pttl : 0);
    });

    it('expire - a later concurrent expiry change than a SET: the longer wins', async () => {
      const k = `${prefix()}:expset`;
      await deliver(b, await a.run(['SET', k, 'v'], value(k)));
      const set = await a.run(['SET', k, 'w', 'EX', 3000], value(k));
      time.advance(5);
      const exp = await b.run(['EXPIRE', k, 100], expire(k));
      await deliver(a, exp);
      await deliver(b, set);
      expect(await get(b, k)).toBe('w');
      expect(await expireAt(a, k)).toBe(await expireAt(b, k));
      expect(await expireAt(a, k)).toBeGreaterThan(Date.now() + 2_000_000);
    });
  });

  describe('elements', () => {
    it('hash - add wins over a concurrent remove', async () => {
      const k = `${prefix()}:h`;
      await deliver(
        b,
        await a.run(['HSET', k, 'f', '1', 'g', '1'], elements(k, 'hash', ['f', 'g'])),
      );
      // b removes f having seen a's add; a concurrently updates f.
      const rem = await b.run(['HDEL', k, 'f'], elements(k, 'hash', [], ['f']));
      const add = await a.run(['HSET', k, 'f', '2'], elements(k, 'hash', ['f']));
      await deliver(a, rem);
      await deliver(b, add);
      expect(await a.client.hgetall(k)).toEqual({ f: '2', g: '1' });
      expect(await b.client.hgetall(k)).toEqual({ f: '2', g: '1' });
    });

    it('hash - a remove that observed the add removes the field', async () => {
      const k = `${prefix()}:hr`;
      const add = await a.run(['HSET', k, 'f', '1', 'g', '1'], elements(k, 'hash', ['f', 'g']));
      await deliver(b, add);
      const rem = await b.run(['HDEL', k, 'f'], elements(k, 'hash', [], ['f']));
      expect(rem.ops[0]).toMatchObject({ rem: [[u8('f'), add.ops[0]!.tag]] });
      await deliver(a, rem, rem);
      expect(await a.client.hgetall(k)).toEqual({ g: '1' });
      // An older add arriving after the remove does not bring it back.
      expect(await meta(a, k)).toMatchObject({ 'r:f': add.ops[0]!.tag });
    });

    it('hash - field values are last writer wins', async () => {
      const k = `${prefix()}:hv`;
      const early = await a.run(['HSET', k, 'f', 'early'], elements(k, 'hash', ['f']));
      time.advance(5);
      const late = await b.run(['HSET', k, 'f', 'late'], elements(k, 'hash', ['f']));
      await deliver(a, late);
      await deliver(b, early);
      expect(await a.client.hget(k, 'f')).toBe('late');
      expect(await b.client.hget(k, 'f')).toBe('late');
    });

    it('set - concurrent adds and removes converge, adds win', async () => {
      const k = `${prefix()}:set`;
      await deliver(b, await a.run(['SADD', k, 'x', 'y'], elements(k, 'set', ['x', 'y'])));
      const remA = await a.run(['SREM', k, 'x', 'y'], elements(k, 'set', [], ['x', 'y']));
      const addB = await b.run(['SADD', k, 'y', 'z'], elements(k, 'set', ['y', 'z']));
      await deliver(a, addB);
      await deliver(b, remA);
      expect((await a.client.smembers(k)).sort()).toEqual(['y', 'z']);
      expect((await b.client.smembers(k)).sort()).toEqual(['y', 'z']);
    });

    it('zset - scores are last writer wins by the add tag', async () => {
      const k = `${prefix()}:z`;
      const early = await a.run(['ZADD', k, 1.5, 'm'], elements(k, 'zset', ['m']));
      time.advance(5);
      const late = await b.run(['ZADD', k, 2.25, 'm', 7, 'n'], elements(k, 'zset', ['m', 'n']));
      expect(late.ops[0]).toMatchObject({
        add: [
          [u8('m'), u8('2.25')],
          [u8('n'), u8('7')],
        ],
      });
      await deliver(a, late);
      await deliver(b, early);
      expect(await a.client.zrange(k, 0, -1, 'WITHSCORES')).toEqual(['m', '2.25', 'n', '7']);
      expect(await b.client.zrange(k, 0, -1, 'WITHSCORES')).toEqual(['m', '2.25', 'n', '7']);
    });

    it('elements - a key of another type keeps its value', async () => {
      const k = `${prefix()}:type`;
      const set = await b.run(['SET', k, 'string'], value(k));
      time.advance(5);
      const add = await a.run(['HSET', k, 'f', '1'], elements(k, 'hash', ['f']));
      await deliver(b, add);
      expect(await get(b, k)).toBe('string');
      expect(await meta(b, k)).toHaveProperty('f:f', add.ops[0]!.tag);
      // The write is older than the add, yet the value keeps its type: the same on a.
      await deliver(a, set);
      expect(await get(a, k)).toBe('string');
    });

    it('elements - an element a type change parked comes back when the key is deleted', async () => {
      const k = `${prefix()}:park`;
      // b writes a string then deletes it; a, concurrently and later by tag, adds a hash field.
      const set = await b.run(['SET', k, 'string'], value(k));
      const del = await b.run(['DEL', k], value(k));
      time.advance(5);
      const add = await a.run(['HSET', k, 'f', '1'], elements(k, 'hash', ['f']));
      await deliver(a, set);
      expect(await get(a, k)).toBe('string');
      expect(await meta(a, k)).toHaveProperty('p:f', 'h1');
      await deliver(a, del);
      await deliver(b, add);
      expect(await a.client.hgetall(k)).toEqual({ f: '1' });
      expect(await b.client.hgetall(k)).toEqual({ f: '1' });
      expect(await meta(a, k)).not.toHaveProperty('p:f');
    });
  });

  describe('flush', () => {
    it('flush - FLUSHDB applies once, a redelivery is dropped', async () => {
      const k = `${prefix()}:fl`;
      await deliver(b, await a.runIn(5, ['SET', k, '1'], value(k, 5)));
      const fl = await a.runIn(5, ['FLUSHDB'], flush(5));
      await deliver(b, fl);
      expect(await b.db(5).dbsize()).toBe(1); // __georep:flush
      await b.db(5).set(`${k}:local`, 'after');
      expect((await b.apply(fl)).dropped.flush).toBe(1);
      expect(await b.db(5).get(`${k}:local`)).toBe('after');
    });

    it('flush - an older write arriving after the flush is dropped', async () => {
      const k = `${prefix()}:fo`;
      const old = await b.runIn(6, ['SET', k, 'old'], value(k, 6));
      time.advance(5);
      const fl = await a.runIn(6, ['FLUSHDB'], flush(6));
      await deliver(a, old);
      await deliver(b, fl);
      expect(await a.db(6).get(k)).toBeNull();
      expect(await b.db(6).get(k)).toBeNull();
    });

    it('flush - the outbox survives a remote FLUSHALL', async () => {
      const before = await readOutbox(b.client);
      expect(before).not.toBeNull();
      const fl = await a.run(['FLUSHALL'], flush(-1));
      expect(fl.ops[0]).toMatchObject({ kind: 'flush', db: -1 });
      await deliver(b, fl);
      expect(await readOutbox(b.client)).toEqual(before);
      expect(await b.db(3).get('__georep:flush')).toBe(fl.ops[0]!.tag);
    });
  });
});
