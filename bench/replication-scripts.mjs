#!/usr/bin/env node
// Cost of the replication Lua scripts alone, on local redis-servers, without agents or NATS:
//   - baseline: the same SETs, pipelined plainly into a redis-server (what the application pays)
//   - record.lua: recordBatch() over batches of `value` instructions for those SETs (origin side)
//   - apply.lua: applyBatchesOnce() of the recorded batches on a second server (receiving side),
//     several batches per transaction as the agent does: first for new keys, then for updates of
//     the same keys (metadata present), then the same batches again (redeliveries: all dropped);
//     and once through the agent's Applier, whose WATCH of every key costs O(n²) per transaction
//     (with the receiving server's CPU per op; --batch 128 --per-tx 128 shows smaller transactions)
//     on Redis 7.0 (512 operations per transaction, as the agent, and 4096 for comparison)
//   - the wire: encodeBatch/decodeBatch of the recorded batches (MessagePack, in this process)
// The same figures for a mix of hash fields, set members, counters and expiries follow.
// Prints ops/s and µs per op beside the baseline, the servers' time in the scripts and this
// process's CPU (what the agent spends around them); asserts nothing.
//   node bench/replication-scripts.mjs [--keys 100000] [--batch 512] [--per-tx 512] [--rounds 3]
// With rounds > 1 every figure is measured that many times and the best run is printed.
// Build first: npx turbo run build.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { startRedis, tempDir } from '@georep/testkit';
import { HybridLogicalClock } from '@georep/core';
import {
  Applier,
  applyBatchesOnce,
  decodeBatch,
  encodeBatch,
  recordBatch,
} from '@georep/replication';

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '512' },
    'per-tx': { type: 'string', default: '512' },
    rounds: { type: 'string', default: '3' },
  },
});
const KEYS = Number(values.keys);
const BATCH = Number(values.batch);
const PER_TX = Number(values['per-tx']);
const ROUNDS = Number(values.rounds);
const VALUE = 'v'.repeat(32);
const CHUNK = 1000;
const IN_FLIGHT = 8;

const root = tempDir('bench-replication-scripts');
const servers = await Promise.all(
  ['origin', 'receiver'].map((name) => startRedis({ dir: join(root, name), name })),
);
const [origin, receiver] = servers.map(
  (s) => new Redis(s.port, s.host, { maxRetriesPerRequest: null }),
);

let tick = 0;
const tagOf = (ms) => `${String(ms).padStart(15, '0')}.${String(tick++ % 1e6).padStart(6, '0')}.a`;
const us = (seconds, n) => ((seconds * 1e6) / n).toFixed(2);
const rate = (seconds, n) => Math.round(n / seconds).toLocaleString('en-US');

async function pipelined(client, n, add) {
  const inFlight = [];
  for (let base = 0; base < n; base += CHUNK) {
    const p = client.pipeline();
    for (let i = base; i < Math.min(n, base + CHUNK); i++) add(p, i);
    inFlight.push(p.exec());
    if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
  }
  await Promise.all(inFlight);
}

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Microseconds the servers spent in EVALSHA so far (INFO commandstats). */
async function scriptUsec() {
  let total = 0;
  for (const c of [origin, receiver]) {
    const m = /^cmdstat_evalsha:calls=\d+,usec=(\d+)/m.exec(await c.info('commandstats'));
    total += Number(m?.[1] ?? 0);
  }
  return total;
}

/** Server-side seconds in scripts of the best round of the last {@link best}. */
let lastScriptSeconds = NaN;
/** CPU seconds of this process (the agent's side: building commands, parsing replies) in it. */
let lastClientSeconds = NaN;
const cpuSeconds = (since) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};

/** Best of ROUNDS; `prepare` runs untimed before each round. */
async function best(prepare, fn) {
  let min = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    await prepare(r);
    const before = await scriptUsec();
    const cpu = process.cpuUsage();
    const seconds = await timed(fn);
    const client = cpuSeconds(cpu);
    if (seconds < min) {
      min = seconds;
      lastScriptSeconds = ((await scriptUsec()) - before) / 1e6;
      lastClientSeconds = client;
    }
  }
  return min;
}

let seq = 0;
/** Records `instructions` on the origin in batches of BATCH; returns the batches. */
async function recordAll(instructions) {
  const batches = [];
  for (let i = 0; i < instructions.length; i += BATCH) {
    seq++;
    batches.push(
      await recordBatch(origin, {
        origin: 'a',
        seq,
        offset: seq,
        instructions: instructions.slice(i, i + BATCH),
      }),
    );
  }
  return batches;
}

/** The agent's applier on the receiver, with a capture that is never behind. */
const applier = new Applier({
  client: receiver,
  clock: new HybridLogicalClock('z'),
  awaitRecorded: () => Promise.resolve(),
});

/** CPU seconds (user + system) the receiving redis-server has used so far (INFO cpu). */
async function receiverCpu() {
  const info = await receiver.info('cpu');
  const field = (name) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/**
 * Applies `batches`, `perTx` operations per transaction at most, one transaction at a time: with
 * the Applier (WATCH of the keys, INFO, MULTI/EVALSHA/EXEC) when `watch`, else the script alone.
 */
async function applyAll(batches, { perTx = PER_TX, watch = false } = {}) {
  let i = 0;
  while (i < batches.length) {
    const take = [];
    let ops = 0;
    while (i < batches.length && (take.length === 0 || ops < perTx)) {
      ops += batches[i].ops.length;
      take.push(batches[i++]);
    }
    if (watch) await applier.applyMany(take);
    else if ((await applyBatchesOnce(receiver, take)) === null) throw new Error('EXEC aborted');
  }
}

const line = (
  label,
  seconds,
  n,
  baseline,
  scriptSeconds = lastScriptSeconds,
  clientSeconds = lastClientSeconds,
) =>
  console.log(
    `${label.padEnd(44)} ${rate(seconds, n).padStart(10)} ops/s  ${us(seconds, n).padStart(7)} µs/op` +
      (scriptSeconds > 0 ? `  (${us(scriptSeconds, n).padStart(6)} µs/op in the script)` : '') +
      (clientSeconds > 0 ? `  (${us(clientSeconds, n).padStart(6)} µs/op CPU in node)` : '') +
      (baseline === undefined ? '' : `   ${(baseline / seconds).toFixed(3)}x the baseline rate`),
  );

try {
  const key = (i) => `k:${i}`;
  const keyBufs = Array.from({ length: KEYS }, (_, i) => Buffer.from(key(i)));
  console.log(
    `## ${KEYS.toLocaleString('en-US')} string keys, ${VALUE.length} B values, batches of ${BATCH}, ` +
      `up to ${PER_TX} ops per apply transaction, best of ${ROUNDS}`,
  );
  const baseline = await best(
    () => origin.flushall(),
    () => pipelined(origin, KEYS, (p, i) => p.set(key(i), VALUE)),
  );
  line('baseline: plain SETs, pipelined', baseline, KEYS, undefined, 0);

  let batches = [];
  const stringInstructions = () => {
    const ms = Date.now();
    return keyBufs.map((k) => ({ kind: 'value', db: 0, key: k, tag: tagOf(ms) }));
  };
  let ins;
  const recordNew = await best(
    async () => {
      await origin.flushall();
      await pipelined(origin, KEYS, (p, i) => p.set(key(i), VALUE));
      ins = stringInstructions();
    },
    async () => (batches = await recordAll(ins)),
  );
  line('record.lua, new keys', recordNew, KEYS, baseline);
  const recordUpdate = await best(
    () => (ins = stringInstructions()),
    async () => (batches = await recordAll(ins)),
  );
  line('record.lua, keys with metadata', recordUpdate, KEYS, baseline);

  let encoded = [];
  const encode = await best(
    () => undefined,
    async () => (encoded = batches.map(encodeBatch)),
  );
  line('encodeBatch (MessagePack)', encode, KEYS, baseline, 0);
  const decode = await best(
    () => undefined,
    async () => (batches = encoded.map(decodeBatch)),
  );
  line('decodeBatch (MessagePack + checks)', decode, KEYS, baseline, 0);

  const applyNew = await best(
    () => receiver.flushall(),
    () => applyAll(batches),
  );
  line('apply.lua, new keys', applyNew, KEYS, baseline);
  // The receiver's CPU per op is what a busy receiving region pays: the transactions of a busy
  // agent overlap, so their round trips cost no server time, only the WATCH and the script do.
  for (const perTx of [PER_TX, 4096]) {
    let cpu = NaN;
    const withWatch = await best(
      () => receiver.flushall(),
      async () => {
        const before = await receiverCpu();
        await applyAll(batches, { perTx, watch: true });
        cpu = (await receiverCpu()) - before;
      },
    );
    line(`Applier (WATCH + apply), new keys, ${perTx}/tx`, withWatch, KEYS, baseline);
    console.log(
      `${''.padEnd(44)}   receiving redis-server CPU: ${us(cpu, KEYS)} µs/op (last round)`,
    );
  }
  const older = batches;
  const applyDropped = await best(
    () => undefined,
    () => applyAll(older),
  );
  line('apply.lua, redelivered (all dropped)', applyDropped, KEYS, baseline);
  const newer = await recordAll(stringInstructions());
  const applyUpdate = await best(
    async () => {
      await receiver.flushall();
      await applyAll(older);
    },
    () => applyAll(newer),
  );
  line('apply.lua, updates (metadata present)', applyUpdate, KEYS, baseline);
  const ttlIns = () => {
    const ms = Date.now();
    return keyBufs.map((k) => ({ kind: 'value', db: 0, key: k, tag: tagOf(ms) }));
  };
  await pipelined(origin, KEYS, (p, i) => p.set(key(i), VALUE, 'PX', 3_600_000));
  const withTtl = await recordAll(ttlIns());
  const applyTtl = await best(
    async () => {
      await receiver.flushall();
      await applyAll(older);
    },
    () => applyAll(withTtl),
  );
  line('apply.lua, updates with a TTL', applyTtl, KEYS, baseline);

  // A mix: hash fields, set members, counters, expiries and deletes, on KEYS / 10 keys.
  const n = Math.max(1000, Math.floor(KEYS / 10));
  console.log(`\n## a mix of ${n.toLocaleString('en-US')} element, counter, expire and delete ops`);
  const mixed = async () => {
    const ms = Date.now();
    const p = origin.pipeline();
    const out = [];
    for (let i = 0; i < n; i++) {
      const k = Buffer.from(`m:${i % 997}:${i % 5}`);
      switch (i % 5) {
        case 0:
          p.hset(k, `f${i % 13}`, 'x');
          out.push({
            kind: 'elements',
            db: 0,
            key: k,
            tag: tagOf(ms),
            type: 'hash',
            add: [Buffer.from(`f${i % 13}`)],
            rem: [],
          });
          break;
        case 1:
          p.sadd(k, `m${i % 17}`);
          out.push({
            kind: 'elements',
            db: 0,
            key: k,
            tag: tagOf(ms),
            type: 'set',
            add: [Buffer.from(`m${i % 17}`)],
            rem: [],
          });
          break;
        case 2:
          p.incrby(k, 3);
          out.push({ kind: 'counter', db: 0, key: k, tag: tagOf(ms), delta: '3' });
          break;
        case 3:
          p.set(k, 'x', 'PX', 60_000);
          out.push({ kind: 'value', db: 0, key: k, tag: tagOf(ms) });
          break;
        default:
          p.del(k);
          out.push({ kind: 'value', db: 0, key: k, tag: tagOf(ms) });
      }
    }
    await p.exec();
    return out;
  };
  let mixBatches = [];
  let recordMix = Infinity;
  let recordMixScript = NaN;
  let recordMixClient = NaN;
  const applyMix = await best(
    async () => {
      ins = await mixed();
      const before = await scriptUsec();
      const cpu = process.cpuUsage();
      const seconds = await timed(async () => (mixBatches = await recordAll(ins)));
      const client = cpuSeconds(cpu);
      if (seconds < recordMix) {
        recordMix = seconds;
        recordMixScript = ((await scriptUsec()) - before) / 1e6;
        recordMixClient = client;
      }
    },
    () => applyAll(mixBatches),
  );
  const applyMixScript = lastScriptSeconds;
  line('record.lua, mix', recordMix, n, undefined, recordMixScript, recordMixClient);
  line('apply.lua, mix (after the first round: updates)', applyMix, n, undefined, applyMixScript);
} finally {
  origin.disconnect();
  receiver.disconnect();
  await Promise.all(servers.map((s) => s.stop()));
}
