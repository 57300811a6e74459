/**
 * gc.lua: garbage collection of tombstones and dead metadata below a horizon. States are built
 * with the real record and apply scripts (test/script-regions.ts). The servers are started once
 * for the file; the simple cases use regions a and b in dbs 0 to 5, the convergence property
 * uses all three regions in dbs 6 and 7.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, tempDir, type RedisServer, seededRandom } from '@georep/testkit';
import {
  APPLY_MARKER_KEY,
  FLUSH_KEY,
  OUTBOX_KEY,
  ReplicationInputError,
  collectGarbage,
  compareTags,
  metaKey,
  type Instruction,
  type OpBatch,
  type Tag,
} from '@georep/replication';
import {
  FakeTime,
  ScriptRegion,
  buf,
  counter,
  dbContent,
  elements,
  expire,
  keyState,
  prefix,
  value,
  type Pending,
} from './script-regions.js';

interface GcTotals {
  steps: number;
  scanned: number;
  maxScanned: number;
  metaDeleted: number;
  fieldsDeleted: number;
}

/** Runs collectGarbage over `dbs` until each scan is complete. */
async function gcAll(
  r: ScriptRegion,
  horizon: Tag,
  dbs: number[] = [0],
  count?: number,
): Promise<GcTotals> {
  const totals: GcTotals = {
    steps: 0,
    scanned: 0,
    maxScanned: 0,
    metaDeleted: 0,
    fieldsDeleted: 0,
  };
  for (const db of dbs) {
    let cursor = '0';
    do {
      const step = await collectGarbage(r.client, {
        horizon,
        db,
        cursor,
        ...(count === undefined ? {} : { count }),
      });
      cursor = step.cursor;
      totals.steps += 1;
      totals.scanned += step.scanned;
      totals.maxScanned = Math.max(totals.maxScanned, step.scanned);
      totals.metaDeleted += step.metaDeleted;
      totals.fieldsDeleted += step.fieldsDeleted;
    } while (cursor !== '0');
  }
  return totals;
}

describe('garbage collection below a horizon', () => {
  const dir = tempDir('gc');
  const time = new FakeTime();
  let servers: RedisServer[] = [];
  let a: ScriptRegion;
  let b: ScriptRegion;
  let c: ScriptRegion;

  beforeAll(async () => {
    servers = await Promise.all(
      ['a', 'b', 'c'].map((name) => startRedis({ dir: join(dir, name), name: `region ${name}` })),
    );
    // Skewed clocks, as in the convergence test of record and apply.
    a = new ScriptRegion('a', servers[0]!, time, 0);
    b = new ScriptRegion('b', servers[1]!, time, 3);
    c = new ScriptRegion('c', servers[2]!, time, -2);
  });

  afterAll(async () => {
    for (const r of [a, b, c]) r?.close();
    await Promise.all(servers.map((s) => s.stop()));
  });

  const meta = async (r: ScriptRegion, key: string, db = 0) => r.db(db).hgetall(metaKey(buf(key)));
  const hasMeta = async (r: ScriptRegion, key: string, db = 0) =>
    (await r.db(db).exists(metaKey(buf(key)))) === 1;
  const deliver = async (to: ScriptRegion, ...batches: OpBatch[]) => {
    for (const batch of batches) await to.apply(batch);
  };
  /**
   * A horizon after everything done so far: a tag of a's clock, with the physical time moved on
   * before and after, so every region's later tags are above it (the clocks share the time and
   * their skews are a few ms).
   */
  const horizon = (): Tag => {
    time.advance(10);
    const h = a.tag();
    time.advance(10);
    return h;
  };

  it('gc - a deleted key whose tombstone is below the horizon loses its metadata', async () => {
    const k = `${prefix()}:del`;
    await deliver(b, await a.run(['SET', k, 'v'], value(k)));
    await deliver(b, await a.run(['DEL', k], value(k)));
    expect(Object.keys(await meta(a, k)).sort()).toEqual(['t', 'x']);
    expect(Object.keys(await meta(b, k)).sort()).toEqual(['t', 'x']);
    const h = horizon();
    expect((await gcAll(a, h)).metaDeleted).toBeGreaterThanOrEqual(1);
    expect((await gcAll(b, h)).metaDeleted).toBeGreaterThanOrEqual(1);
    expect(await hasMeta(a, k)).toBe(false);
    expect(await hasMeta(b, k)).toBe(false);
    // A later write still replicates as usual.
    await deliver(b, await a.run(['SET', k, 'again'], value(k)));
    expect(await b.client.get(k)).toBe('again');
  });

  it('gc - a key that expired and was recorded as a delete loses its tombstone', async () => {
    const k = `${prefix()}:exp`;
    await deliver(b, await a.run(['SET', k, 'v', 'PX', '50'], value(k)));
    await sleep(120);
    // Redis replicates the expiry as DEL k; translate makes it a value instruction.
    expect(await a.client.exists(k)).toBe(0);
    await deliver(b, await a.record([value(k)(a.tag())]));
    expect(await meta(a, k)).toMatchObject({ x: '1' });
    const h = horizon();
    await gcAll(a, h);
    await gcAll(b, h);
    expect(await hasMeta(a, k)).toBe(false);
    expect(await hasMeta(b, k)).toBe(false);
  });

  it('gc - a tombstone newer than the horizon is kept', async () => {
    const k = `${prefix()}:new`;
    await deliver(b, await a.run(['SET', k, 'v'], value(k)));
    const h = horizon();
    await deliver(b, await a.run(['DEL', k], value(k)));
    const before = [await meta(a, k), await meta(b, k)];
    await gcAll(a, h);
    await gcAll(b, h);
    expect([await meta(a, k), await meta(b, k)]).toEqual(before);
    expect(before[0]).toMatchObject({ x: '1' });
  });

  it('gc - a deleted counter keeps its metadata, and later increments still add up', async () => {
    const k = `${prefix()}:n`;
    await deliver(b, await a.run(['INCRBY', k, '5'], counter(k, 5)));
    await deliver(a, await b.run(['INCRBY', k, '2'], counter(k, 2)));
    await deliver(b, await a.run(['DEL', k], value(k)));
    const before = await meta(a, k);
    expect(Object.keys(before).sort()).toEqual(['C:a', 'C:b', 'c:a', 'c:b', 't', 'x']);
    const h = horizon();
    await gcAll(a, h);
    await gcAll(b, h);
    expect(await meta(a, k)).toEqual(before);
    expect(Object.keys(await meta(b, k)).sort()).toEqual(Object.keys(before).sort());
    // b's contribution is carried as a cumulative sum (2 + 3): a needs c:b to add only 3.
    await deliver(a, await b.run(['INCRBY', k, '3'], counter(k, 3)));
    expect(await b.client.get(k)).toBe('3');
    expect(await a.client.get(k)).toBe('3');
  });

  it('gc - r: entries below the horizon are removed, newer ones kept', async () => {
    const k = `${prefix()}:set`;
    await deliver(
      b,
      await a.run(['SADD', k, 'm1', 'm2', 'm3'], elements(k, 'set', ['m1', 'm2', 'm3'])),
    );
    await deliver(b, await a.run(['SREM', k, 'm1'], elements(k, 'set', [], ['m1'])));
    const h = horizon();
    await deliver(b, await a.run(['SADD', k, 'm4'], elements(k, 'set', ['m4'])));
    await deliver(b, await a.run(['SREM', k, 'm4'], elements(k, 'set', [], ['m4'])));
    const before = await meta(a, k);
    expect(Object.keys(before).sort()).toEqual(['f:m2', 'f:m3', 'r:m1', 'r:m4']);
    expect(compareTags(before['r:m1']!, h)).toBeLessThan(0);
    expect(compareTags(before['r:m4']!, h)).toBeGreaterThan(0);
    const ga = await gcAll(a, h);
    await gcAll(b, h);
    expect(ga.fieldsDeleted).toBeGreaterThanOrEqual(1);
    const { ['r:m1']: _gone, ...kept } = before;
    expect(await meta(a, k)).toEqual(kept);
    expect(Object.keys(await meta(b, k)).sort()).toEqual(['f:m2', 'f:m3', 'r:m4']);
    // A remove that observed the old add of m1 still finds nothing to undo; a new add works.
    await deliver(b, await a.run(['SADD', k, 'm1'], elements(k, 'set', ['m1'])));
    expect((await b.client.smembers(k)).sort()).toEqual(['m1', 'm2', 'm3']);
  });

  it("gc - a live key's metadata is kept", async () => {
    const p = prefix();
    const s = `${p}:str`;
    const hk = `${p}:hash`;
    await deliver(b, await a.run(['SET', s, 'v', 'EX', '5000'], value(s)));
    await deliver(
      b,
      await a.run(['HSET', hk, 'f', '1', 'g', '2'], elements(hk, 'hash', ['f', 'g'])),
    );
    await deliver(b, await a.run(['HSET', hk, 'f', '3'], value(hk))); // base write t
    await deliver(b, await a.run(['HSET', hk, 'h', '4'], elements(hk, 'hash', ['h'])));
    const before = [await meta(a, s), await meta(a, hk), await meta(b, s), await meta(b, hk)];
    expect(Object.keys(before[0]!).sort()).toEqual(['e', 't']);
    expect(Object.keys(before[1]!).sort()).toEqual(['e', 'f:h', 't']);
    const h = horizon();
    await gcAll(a, h);
    await gcAll(b, h);
    expect([await meta(a, s), await meta(a, hk), await meta(b, s), await meta(b, hk)]).toEqual(
      before,
    );
  });

  it('gc - a missing key without a tombstone loses metadata that is all below the horizon', async () => {
    const k = `${prefix()}:gone`;
    await deliver(b, await a.run(['SADD', k, 'm'], elements(k, 'set', ['m'])));
    // The last member goes: Redis deletes the key, the hash keeps r:m and no tombstone.
    await deliver(b, await a.run(['SREM', k, 'm'], elements(k, 'set', [], ['m'])));
    expect(await a.client.exists(k)).toBe(0);
    expect(Object.keys(await meta(a, k))).toEqual(['r:m']);
    // The same, with an r: entry above the horizon: kept, without the r: below it.
    const k2 = `${prefix()}:gone2`;
    await deliver(b, await a.run(['SADD', k2, 'm', 'n'], elements(k2, 'set', ['m', 'n'])));
    await deliver(b, await a.run(['SREM', k2, 'm'], elements(k2, 'set', [], ['m'])));
    const h = horizon();
    await deliver(b, await a.run(['SADD', k2, 'o'], elements(k2, 'set', ['o'])));
    await deliver(b, await a.run(['SREM', k2, 'n', 'o'], elements(k2, 'set', [], ['n', 'o'])));
    expect(await a.client.exists(k2)).toBe(0);
    for (const r of [a, b]) await gcAll(r, h);
    for (const r of [a, b]) {
      expect(await hasMeta(r, k)).toBe(false);
      expect(Object.keys(await meta(r, k2)).sort()).toEqual(['r:o']);
    }
  });

  it('gc - a tombstone with a live expiry change is kept', async () => {
    const k = `${prefix()}:te`;
    await deliver(b, await a.run(['SET', k, 'v'], value(k)));
    const del = await a.run(['DEL', k], value(k));
    time.advance(5);
    // b sets an expiry concurrently, after the delete by tag: the change outlives the delete.
    const exp = await b.run(['EXPIRE', k, '5000'], expire(k));
    await deliver(a, exp);
    await deliver(b, del);
    for (const r of [a, b]) expect(Object.keys(await meta(r, k)).sort()).toEqual(['e', 't', 'x']);
    const before = await meta(a, k);
    await gcAll(a, horizon()); // b does not collect: it is the reference
    expect(await meta(a, k)).toEqual(before);
    // An element operation creating the key again gives it that expiry, unless its origin ships
    // an expiry change: a's record.lua sees the head and ships a persist, so b ends like a.
    // Without the head a would ship nothing, and b would expire the key.
    await deliver(b, await a.run(['SADD', k, 'm'], elements(k, 'set', ['m'])));
    expect(await keyState(b.client, buf(k))).toEqual(await keyState(a.client, buf(k)));
    expect((await keyState(a.client, buf(k))).expireAt).toBe(0);
  });

  it('gc - touches only __georep:m:* hashes of the db it is given', async () => {
    const p = prefix();
    const db = 2;
    const a2 = a.db(db);
    const tomb = `${p}:t`;
    await a.runIn(db, ['SET', tomb, 'v'], value(tomb, db));
    await a.runIn(db, ['DEL', tomb], value(tomb, db));
    const lookalike = [`__georep:x:${p}`, `__georep:m${p}`, `${p}:plain`];
    for (const key of lookalike) await a2.hset(key, 't', '000000000000001.000000.a', 'x', '1');
    const notHash = `__georep:m:${p}:str`;
    await a2.set(notHash, 'x');
    const specials = [OUTBOX_KEY, APPLY_MARKER_KEY, FLUSH_KEY];
    const specialsBefore = await Promise.all(specials.map((key) => a.client.getBuffer(key)));
    const h = horizon();

    await gcAll(a, h, [0]);
    expect(await hasMeta(a, tomb, db)).toBe(true);
    await gcAll(a, h, [db]);
    expect(await hasMeta(a, tomb, db)).toBe(false);
    for (const key of lookalike)
      expect(await a2.hgetall(key)).toEqual({ t: expect.any(String), x: '1' });
    expect(await a2.get(notHash)).toBe('x');
    expect(await Promise.all(specials.map((key) => a.client.getBuffer(key)))).toEqual(
      specialsBefore,
    );
  });

  it('gc - refuses a horizon that is not a tag, and a bad db or count', async () => {
    await expect(collectGarbage(a.client, { horizon: '9999' })).rejects.toBeInstanceOf(
      ReplicationInputError,
    );
    await expect(collectGarbage(a.client, { horizon: '' })).rejects.toBeInstanceOf(
      ReplicationInputError,
    );
    const h = horizon();
    await expect(collectGarbage(a.client, { horizon: h, db: -1 })).rejects.toBeInstanceOf(
      ReplicationInputError,
    );
    await expect(collectGarbage(a.client, { horizon: h, count: 0 })).rejects.toBeInstanceOf(
      ReplicationInputError,
    );
    await expect(collectGarbage(a.client, { horizon: h, cursor: 'x' })).rejects.toBeInstanceOf(
      ReplicationInputError,
    );
  });

  it('gc - the scan loops to completion over more than 1000 metadata hashes in bounded steps', async () => {
    const p = prefix();
    const db = 4;
    const key = (i: number) => `${p}:${i}`;
    const record = async (from: number, to: number) => {
      for (let i = from; i < to; i += 250) {
        const ins: Instruction[] = [];
        for (let j = i; j < Math.min(i + 250, to); j++) ins.push(value(key(j), db)(a.tag()));
        await a.record(ins);
      }
    };
    // 1200 tombstones (value on missing keys), 300 live keys, then 100 tombstones above H.
    await record(0, 1200);
    const live = a.db(db).pipeline();
    for (let i = 1200; i < 1500; i++) live.set(key(i), 'v');
    await live.exec();
    await record(1200, 1500);
    const h = horizon();
    await record(1500, 1600);

    const totals = await gcAll(a, h, [db], 100);
    expect(totals.metaDeleted).toBe(1200);
    expect(totals.fieldsDeleted).toBe(0);
    expect(totals.scanned).toBeGreaterThanOrEqual(1600);
    expect(totals.steps).toBeGreaterThanOrEqual(8);
    expect(totals.maxScanned).toBeLessThanOrEqual(400);
    let left = 0;
    for (let i = 0; i < 1600; i++) if (await hasMeta(a, key(i), db)) left += 1;
    expect(left).toBe(400);
    expect(await hasMeta(a, key(1300), db)).toBe(true);
    expect(await hasMeta(a, key(1550), db)).toBe(true);
    // A second pass finds nothing more.
    expect((await gcAll(a, h, [db])).metaDeleted).toBe(0);
  });

  it('gc - convergence: regions collecting garbage at safe horizons end identical to one that never does', async () => {
    const SEED = Number(process.env['GEOREP_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    console.info(`gc convergence seed ${SEED} (GEOREP_SEED=${SEED} replays this run)`);
    const rnd = seededRandom(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
    const regions = [a, b, c];
    const names = regions.map((r) => r.name);
    const DBS = [6, 7];
    const all = testKeys(DBS);
    const members = ['m0', 'm1', 'm2', 'm3', BINARY];
    const sums = new Map<string, bigint>();
    const queues = new Map<string, OpBatch[]>();
    for (const from of names)
      for (const to of names) if (from !== to) queues.set(`${from}>${to}`, []);
    const created: Tag[] = [];
    const gc: GcTotals = { steps: 0, scanned: 0, maxScanned: 0, metaDeleted: 0, fieldsDeleted: 0 };
    let commands = 0;
    let collections = 0;
    const future = () => Math.floor(Date.now() / 1000) + int(1000, 9000);

    async function command(r: ScriptRegion, k: TestKey): Promise<Pending[]> {
      const cl = r.db(k.db);
      const key = k.key;
      const roll = rnd();
      const some = () => {
        const out = new Map<string, Buffer>();
        for (let n = int(1, 3); n > 0; n--) {
          const m = buf(pick(members));
          out.set(m.toString('hex'), m);
        }
        return [...out.values()];
      };
      const ttl = async (): Promise<Pending[]> => {
        if (rnd() < 0.3) return (await cl.persist(key)) === 1 ? [expire(key, k.db)] : [];
        return (await cl.expireat(key, future())) === 1 ? [expire(key, k.db)] : [];
      };
      const del = async (): Promise<Pending[]> =>
        (await cl.del(key)) === 1 ? [value(key, k.db)] : [];
      switch (k.family) {
        case 'counter': {
          const delta = BigInt(int(-50, 100));
          await cl.incrby(key, delta.toString());
          const id = `${k.db}/${key.toString('hex')}`;
          sums.set(id, (sums.get(id) ?? 0n) + delta);
          return [counter(key, delta.toString(), k.db)];
        }
        case 'string': {
          if (roll < 0.35) {
            const v = rnd() < 0.5 ? String(int(-100, 1000)) : `v${int(0, 1e6)}`;
            if (rnd() < 0.2) await cl.set(key, v, 'EX', int(1000, 9000));
            else await cl.set(key, v);
            return [value(key, k.db)];
          }
          if (roll < 0.55) return del();
          if (roll < 0.8) {
            const cur = await cl.get(key);
            if (cur !== null && !/^-?\d+$/.test(cur)) return [];
            const delta = int(-20, 50);
            await cl.incrby(key, delta);
            return [counter(key, delta, k.db)];
          }
          return ttl();
        }
        default: {
          const type = k.family;
          if (roll < 0.45) {
            const ms = some();
            if (type === 'hash') {
              await cl.hset(key, ...ms.flatMap((m) => [m, `v${int(0, 99)}`]));
              return [elements(key, 'hash', ms, [], k.db)];
            }
            if (type === 'set') {
              return (await cl.sadd(key, ...ms)) > 0 ? [elements(key, 'set', ms, [], k.db)] : [];
            }
            const args = ms.flatMap((m) => [String(int(0, 20) / (rnd() < 0.5 ? 1 : 4)), m]);
            const changed = Number(await cl.call('ZADD', key, 'CH', ...args));
            return changed > 0 ? [elements(key, 'zset', ms, [], k.db)] : [];
          }
          if (roll < 0.8) {
            const ms = some();
            const removed =
              type === 'hash'
                ? await cl.hdel(key, ...ms)
                : type === 'set'
                  ? await cl.srem(key, ...ms)
                  : await cl.zrem(key, ...ms);
            return removed > 0 ? [elements(key, type, [], ms, k.db)] : [];
          }
          if (roll < 0.88) return del();
          if (roll < 0.91) {
            await cl.set(key, `str${int(0, 9)}`);
            return [value(key, k.db)];
          }
          return ttl();
        }
      }
    }

    async function localStep(): Promise<void> {
      const r = pick(regions);
      const instructions: Instruction[] = [];
      for (let n = int(1, 3); n > 0; n--) {
        const pending = await command(r, pick(all)).catch((err: unknown) => {
          if (String(err).includes('WRONGTYPE')) return [];
          throw err;
        });
        commands += 1;
        for (const p of pending) instructions.push(p(r.tag()));
        time.advance(int(0, 1));
      }
      if (instructions.length === 0) return;
      const batch = await r.record(instructions);
      created.push(batch.ops[0]!.tag);
      for (const to of names) if (to !== r.name) queues.get(`${r.name}>${to}`)!.push(batch);
    }

    /** Delivers the head of one queue; 10 % of the time it is delivered again later. */
    async function deliverHead(pair: string): Promise<void> {
      const q = queues.get(pair)!;
      const to = regions[names.indexOf(pair.split('>')[1]!)]!;
      await to.apply(q[0]!);
      const again = rnd();
      if (again < 0.05) await to.apply(q[0]!);
      else if (again < 0.1) return; // stays first in line
      q.shift();
    }

    async function deliverStep(): Promise<boolean> {
      const ready = [...queues.entries()].filter(([, q]) => q.length > 0);
      if (ready.length === 0) return false;
      await deliverHead(pick(ready)[0]);
      return true;
    }

    /**
     * The horizon of the moment: below every operation still queued (or queued again) and below
     * every tag the regions will make from now on. Everything up to it is applied everywhere.
     */
    function safeHorizon(): Tag {
      const tags: Tag[] = regions.map((r) => r.tag());
      for (const q of queues.values()) for (const batch of q) tags.push(batch.ops[0]!.tag);
      tags.sort(compareTags);
      // `<ms>.<counter>` sorts before every tag with that ms and counter.
      return tags[0]!.slice(0, 22);
    }

    /**
     * Brings the queues up to a recent cut (batches made before it), leaving the newer ones in
     * flight: those were made concurrently with what is delivered now. Then a and/or b collect
     * garbage at the safe horizon; c never does.
     */
    async function checkpoint(): Promise<void> {
      const cut = created[Math.max(0, created.length - int(5, 40))];
      if (cut !== undefined) {
        for (const pair of queues.keys()) {
          const q = queues.get(pair)!;
          while (q.length > 0 && compareTags(q[0]!.ops[0]!.tag, cut) < 0) await deliverHead(pair);
        }
      }
      const h = safeHorizon();
      const who = pick([[a], [b], [a, b]]);
      for (const r of who) {
        const t = await gcAll(r, h, DBS, int(5, 50));
        gc.steps += t.steps;
        gc.metaDeleted += t.metaDeleted;
        gc.fieldsDeleted += t.fieldsDeleted;
      }
      collections += 1;
      time.advance(int(0, 2));
    }

    const COMMANDS = 6000;
    let nextCheckpoint = 150;
    while (commands < COMMANDS) {
      if (rnd() < 0.45) await localStep();
      else await deliverStep();
      time.advance(int(0, 2));
      if (commands >= nextCheckpoint) {
        await checkpoint();
        nextCheckpoint += int(100, 250);
      }
    }
    while (await deliverStep()) time.advance(int(0, 2));

    const where = `(seed ${SEED}, ${commands} commands, ${collections} collections, ${gc.metaDeleted} hashes and ${gc.fieldsDeleted} fields collected)`;
    console.info(`done ${where}`);
    // The property is only worth something if garbage was collected, of both kinds.
    expect(gc.metaDeleted, where).toBeGreaterThan(0);
    expect(gc.fieldsDeleted, where).toBeGreaterThan(0);

    for (const db of DBS) {
      const [ref, ...others] = await Promise.all([c, a, b].map((r) => dbContent(r.db(db), db)));
      expect(ref!.length, `db ${db} has keys ${where}`).toBeGreaterThan(0);
      for (const [i, other] of others.entries()) {
        const byKey = new Map(other.map((s) => [s.key, s]));
        for (const s of ref!) {
          const o = byKey.get(s.key);
          const label = `db ${db} key ${Buffer.from(s.key, 'hex').toString('latin1')} in c vs ${['a', 'b'][i]} ${where}`;
          expect({ type: o?.type, value: o?.value }, label).toEqual({
            type: s.type,
            value: s.value,
          });
          expect(
            Math.abs((o?.expireAt ?? -99) - s.expireAt),
            `${label}: expiry`,
          ).toBeLessThanOrEqual(1000);
        }
        expect(
          other.map((s) => s.key),
          `db ${db} key sets ${where}`,
        ).toEqual(ref!.map((s) => s.key));
      }
    }
    for (const k of all.filter((x) => x.family === 'counter')) {
      const expected = (sums.get(`${k.db}/${k.key.toString('hex')}`) ?? 0n).toString();
      for (const r of regions) {
        expect(await r.db(k.db).get(k.key), `${k.key.toString()} in ${r.name} ${where}`).toBe(
          expected,
        );
      }
    }
  });
});

type Family = 'string' | 'counter' | 'hash' | 'set' | 'zset';
interface TestKey {
  family: Family;
  db: number;
  key: Buffer;
}

const BINARY = Buffer.from([0xff, 0x00, 0x3a, 0x0a]);

/** A few keys of each family over the given dbs; some with binary bytes in their names. */
function testKeys(dbs: number[]): TestKey[] {
  const out: TestKey[] = [];
  const [d0, d1] = [dbs[0]!, dbs[1] ?? dbs[0]!];
  const add = (family: Family, db: number, name: string | Buffer) =>
    out.push({ family, db, key: buf(name) });
  for (let i = 0; i < 4; i++) add('string', d0, `s${i}`);
  add('string', d1, 's4');
  add('string', d0, Buffer.concat([Buffer.from('s'), BINARY]));
  for (let i = 0; i < 2; i++) add('counter', d0, `n${i}`);
  add('counter', d1, 'n2');
  for (let i = 0; i < 3; i++) add('hash', d0, `h${i}`);
  add('hash', d1, 'h3');
  add('hash', d0, Buffer.concat([Buffer.from('h'), BINARY]));
  for (let i = 0; i < 3; i++) add('set', d0, `S${i}`);
  add('set', d1, 'S3');
  for (let i = 0; i < 2; i++) add('zset', d0, `z${i}`);
  add('zset', d1, 'z2');
  return out;
}
