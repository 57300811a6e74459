/**
 * Script-level convergence: three regions write the same ~30 keys at random, record their
 * batches, and receive each other's batches in random interleavings (FIFO per origin and
 * receiver, some batches delivered twice). Once everything is delivered, all three servers must
 * hold the same data. The run is driven by a seeded PRNG: set GEOREP_SEED to replay a failure.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, tempDir, type RedisServer, seededRandom } from '@georep/testkit';
import { metaKey, type Instruction, type OpBatch } from '@georep/replication';
import {
  FakeTime,
  ScriptRegion,
  buf,
  counter,
  dbContent,
  elements,
  expire,
  keyState,
  value,
  type Pending,
} from './script-regions.js';

const SEED = Number(process.env['GEOREP_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
/** Local commands to run before draining every queue. */
const COMMANDS = 6000;

type Family = 'string' | 'counter' | 'hash' | 'set' | 'zset';
interface TestKey {
  family: Family;
  db: number;
  key: Buffer;
}

const BINARY = Buffer.from([0xff, 0x00, 0x3a, 0x0a]);

/** ~30 keys over two dbs; one of each family has binary bytes in its name. */
function keys(): TestKey[] {
  const out: TestKey[] = [];
  const add = (family: Family, db: number, name: string | Buffer) =>
    out.push({ family, db, key: buf(name) });
  for (let i = 0; i < 6; i++) add('string', 0, `s${i}`);
  add('string', 1, 's6');
  add('string', 0, Buffer.concat([Buffer.from('s'), BINARY]));
  for (let i = 0; i < 3; i++) add('counter', 0, `n${i}`);
  add('counter', 1, 'n3');
  add('counter', 0, 'nbig');
  for (let i = 0; i < 4; i++) add('hash', 0, `h${i}`);
  add('hash', 1, 'h4');
  add('hash', 0, Buffer.concat([Buffer.from('h'), BINARY]));
  for (let i = 0; i < 3; i++) add('set', 0, `S${i}`);
  add('set', 1, 'S3');
  for (let i = 0; i < 3; i++) add('zset', 0, `z${i}`);
  add('zset', 1, 'z3');
  return out;
}

describe('record and apply scripts: convergence of three regions', () => {
  const dir = tempDir('record-apply-convergence');
  const names = ['a', 'b', 'c'];
  let servers: RedisServer[] = [];
  let regions: ScriptRegion[] = [];
  const time = new FakeTime();

  beforeAll(async () => {
    servers = await Promise.all(
      names.map((name) => startRedis({ dir: join(dir, name), name: `region ${name}` })),
    );
    // Skewed clocks: ties and reorderings between regions' tags happen all the time.
    regions = names.map((name, i) => new ScriptRegion(name, servers[i]!, time, [0, 3, -2][i]));
  });

  afterAll(async () => {
    for (const r of regions) r.close();
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('convergence - random writes in three regions end identical everywhere', async () => {
    console.info(`convergence seed ${SEED} (GEOREP_SEED=${SEED} replays this run)`);
    const rnd = seededRandom(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
    const all = keys();
    const members = ['m0', 'm1', 'm2', 'm3', 'm4', BINARY];
    const sums = new Map<string, bigint>();
    const queues = new Map<string, OpBatch[]>();
    for (const from of names)
      for (const to of names) if (from !== to) queues.set(`${from}>${to}`, []);
    let commands = 0;
    let delivered = 0;
    let redelivered = 0;
    const future = () => Math.floor(Date.now() / 1000) + int(1000, 9000);

    /** One random command on `k` in region `r`, and its instructions (none if Redis did nothing). */
    async function command(r: ScriptRegion, k: TestKey): Promise<Pending[]> {
      const c = r.db(k.db);
      const key = k.key;
      const roll = rnd();
      const someMembers = () => {
        const n = int(1, 3);
        const out = new Map<string, Buffer>();
        for (let i = 0; i < n; i++) {
          const m = buf(pick(members));
          out.set(m.toString('hex'), m);
        }
        return [...out.values()];
      };
      const ttl = async (): Promise<Pending[]> => {
        if (rnd() < 0.3) return (await c.persist(key)) === 1 ? [expire(key, k.db)] : [];
        return (await c.expireat(key, future())) === 1 ? [expire(key, k.db)] : [];
      };
      const del = async (): Promise<Pending[]> =>
        (await c.del(key)) === 1 ? [value(key, k.db)] : [];
      // Collections sometimes become strings and strings hashes: concurrent type changes.
      const typeChange = async (): Promise<Pending[]> => {
        await c.set(key, `str${int(0, 9)}`);
        return [value(key, k.db)];
      };
      switch (k.family) {
        case 'counter': {
          const delta =
            k.key.toString() === 'nbig'
              ? BigInt(int(-(2 ** 20), 2 ** 21)) * 2n ** 30n
              : BigInt(int(-50, 100));
          await c.incrby(key, delta.toString());
          const id = `${k.db}/${key.toString('hex')}`;
          sums.set(id, (sums.get(id) ?? 0n) + delta);
          return [counter(key, delta.toString(), k.db)];
        }
        case 'string': {
          if (roll < 0.35) {
            const v = rnd() < 0.5 ? String(int(-100, 1000)) : `v${int(0, 1e6)}`;
            if (rnd() < 0.2) await c.set(key, v, 'EX', int(1000, 9000));
            else await c.set(key, v);
            return [value(key, k.db)];
          }
          if (roll < 0.45) return del();
          if (roll < 0.75) {
            const cur = await c.get(key);
            if (cur !== null && !/^-?\d+$/.test(cur)) return [];
            const delta = int(-20, 50);
            await c.incrby(key, delta);
            return [counter(key, delta, k.db)];
          }
          return ttl();
        }
        case 'hash': {
          if (roll < 0.5) {
            const fields = someMembers();
            await c.hset(key, ...fields.flatMap((f) => [f, `v${int(0, 99)}`]));
            return [elements(key, 'hash', fields, [], k.db)];
          }
          if (roll < 0.8) {
            const fields = someMembers();
            return (await c.hdel(key, ...fields)) > 0
              ? [elements(key, 'hash', [], fields, k.db)]
              : [];
          }
          if (roll < 0.87) return del();
          if (roll < 0.9) return typeChange();
          return ttl();
        }
        case 'set': {
          if (roll < 0.5) {
            const ms = someMembers();
            return (await c.sadd(key, ...ms)) > 0 ? [elements(key, 'set', ms, [], k.db)] : [];
          }
          if (roll < 0.8) {
            const ms = someMembers();
            return (await c.srem(key, ...ms)) > 0 ? [elements(key, 'set', [], ms, k.db)] : [];
          }
          if (roll < 0.87) return del();
          if (roll < 0.9) return typeChange();
          return ttl();
        }
        case 'zset': {
          if (roll < 0.5) {
            const ms = someMembers();
            const args = ms.flatMap((m) => [String(int(0, 20) / (rnd() < 0.5 ? 1 : 4)), m]);
            const changed = Number(await c.call('ZADD', key, 'CH', ...args));
            return changed > 0 ? [elements(key, 'zset', ms, [], k.db)] : [];
          }
          if (roll < 0.8) {
            const ms = someMembers();
            return (await c.zrem(key, ...ms)) > 0 ? [elements(key, 'zset', [], ms, k.db)] : [];
          }
          if (roll < 0.87) return del();
          if (roll < 0.9) return typeChange();
          return ttl();
        }
      }
    }

    /** GEOREP_TRACE_KEY=<name>: prints every batch touching that key and the key after it. */
    const traced = process.env['GEOREP_TRACE_KEY'];
    async function trace(r: ScriptRegion, batch: OpBatch, how: string): Promise<void> {
      if (traced === undefined) return;
      const ops = batch.ops.filter(
        (op) => op.kind !== 'flush' && Buffer.from(op.key).toString() === traced,
      );
      if (ops.length === 0) return;
      const db = ops[0]!.db;
      const show = ops.map((op) => {
        const { key: _k, ...rest } = op as Record<string, unknown>;
        return JSON.stringify(rest, (_, v: unknown) =>
          v instanceof Uint8Array ? Buffer.from(v).toString('latin1').slice(0, 40) : v,
        );
      });
      const state = await keyState(r.db(db), buf(traced));
      const meta = await r.db(db).hgetall(metaKey(buf(traced)));
      console.info(
        `${r.name} ${how} #${batch.seq}: ${show.join(' ')}\n   -> ${JSON.stringify(state.value)} ${state.type} exp=${state.expireAt} meta=${JSON.stringify(meta)}`,
      );
    }

    /** 1 to 3 commands in one region, recorded as one batch and queued for the others. */
    async function localStep(): Promise<void> {
      const r = pick(regions);
      const instructions: Instruction[] = [];
      for (let n = int(1, 3); n > 0; n--) {
        // A command Redis refuses (WRONGTYPE after a type change) writes nothing: no instruction.
        const pending = await command(r, pick(all)).catch((err: unknown) => {
          if (String(err).includes('WRONGTYPE')) return [];
          throw err;
        });
        commands += 1;
        // Tags are given in command order, as translate does.
        for (const p of pending) instructions.push(p(r.tag()));
        time.advance(int(0, 1));
      }
      if (instructions.length === 0) return;
      const batch = await r.record(instructions);
      await trace(r, batch, 'local');
      for (const to of names) if (to !== r.name) queues.get(`${r.name}>${to}`)!.push(batch);
    }

    /** The next batch of one origin→receiver queue; sometimes delivered again later. */
    async function deliverStep(): Promise<boolean> {
      const ready = [...queues.entries()].filter(([, q]) => q.length > 0);
      if (ready.length === 0) return false;
      const [pair, q] = pick(ready);
      const to = regions[names.indexOf(pair.split('>')[1]!)]!;
      const batch = q[0]!;
      await to.apply(batch);
      await trace(to, batch, `from ${pair.split('>')[0]}`);
      delivered += 1;
      const again = rnd();
      if (again < 0.05) {
        await to.apply(batch); // redelivered at once
        redelivered += 1;
      } else if (again < 0.1) {
        redelivered += 1; // stays first in line: delivered again after other origins' batches
        return true;
      }
      q.shift();
      return true;
    }

    while (commands < COMMANDS) {
      if (rnd() < 0.45) await localStep();
      else await deliverStep();
      time.advance(int(0, 2));
    }
    while (await deliverStep()) time.advance(int(0, 2));

    console.info(
      `done: ${commands} commands, ${delivered} deliveries, ${redelivered} redeliveries`,
    );
    const where = `(seed ${SEED}, ${commands} commands, ${delivered} deliveries, ${redelivered} redeliveries)`;
    for (const db of [0, 1]) {
      const contents = await Promise.all(regions.map((r) => dbContent(r.db(db), db)));
      const [first, ...rest] = contents;
      expect(first!.length, `db ${db} has keys ${where}`).toBeGreaterThan(0);
      // Element-wise first, so a failure names the key.
      for (const [i, other] of rest.entries()) {
        const byKey = new Map(other.map((s) => [s.key, s]));
        for (const s of first!) {
          const o = byKey.get(s.key);
          const label = `db ${db} key ${Buffer.from(s.key, 'hex').toString('latin1')} in a vs ${names[i + 1]} ${where}`;
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
        ).toEqual(first!.map((s) => s.key));
      }
    }

    // Counters only ever INCRBY'd hold the sum of every increment, in every region.
    for (const k of all.filter((x) => x.family === 'counter')) {
      const expected = (sums.get(`${k.db}/${k.key.toString('hex')}`) ?? 0n).toString();
      for (const r of regions) {
        expect(await r.db(k.db).get(k.key), `${k.key.toString()} in ${r.name} ${where}`).toBe(
          expected,
        );
      }
    }

    // Metadata stays bounded: string keys keep t, x, e, d and c:/C: per region at most.
    for (const k of all.filter((x) => x.family === 'string' || x.family === 'counter')) {
      for (const r of regions) {
        expect(await r.db(k.db).hlen(metaKey(k.key))).toBeLessThanOrEqual(4 + 2 * names.length);
      }
    }
  });
});
