/**
 * The receiving half of replication: applies one peer region's batches to this region's primary.
 *
 * Each batch goes through the race protocol of docs/replication-internals.md:
 * 1. WATCH the batch's data keys;
 * 2. read the primary's `master_repl_offset`;
 * 3. wait until this region's capture has recorded the stream up to that offset, so the keys'
 *    metadata knows every local write made before the WATCH;
 * 4. MULTI + apply.lua + EXEC. A null EXEC means that an application wrote one of the keys
 *    after step 1. The batch is then tried again.
 *
 * apply.lua is idempotent (strict tag comparisons, per-origin counter tags), so a batch that is
 * redelivered after a crash changes nothing.
 */
import type { Redis } from 'ioredis';
import { decodeHlc, makeLogger, type HybridLogicalClock, type Logger } from '@georep/core';
import { parseInfo } from '@georep/redis';
import { applyBatchesOnce } from './apply-script.js';
import { META_PREFIX, type OpBatch } from './ops.js';

/** Options of {@link Applier}. */
export interface ApplierOptions {
  /** A dedicated connection to this region's primary (WATCH is per connection). */
  client: Redis;
  clock: HybridLogicalClock;
  /** Resolves once this region's capture has recorded its stream up to `offset`. */
  awaitRecorded: (offset: number) => Promise<void>;
  /** Longest wait for capture before the attempt is given up and retried. Default 10 s. */
  recordWaitMs?: number;
  logger?: Logger;
}

/** Outcome of applying one batch. */
export interface AppliedBatch {
  /** EXEC aborted this many times because the application wrote a watched key. */
  retries: number;
  ops: number;
}

/** The capture of this region did not record up to the offset in time. */
export class CaptureBehindError extends Error {
  override name = 'CaptureBehindError';
}

/** Applies batches from one origin, one at a time. */
export class Applier {
  readonly #o: ApplierOptions;
  readonly #log: Logger;

  constructor(options: ApplierOptions) {
    this.#o = options;
    this.#log = options.logger ?? makeLogger('replication.apply');
  }

  /** Applies `batch` atomically. Throws when the primary or capture is unavailable. */
  async apply(batch: OpBatch): Promise<AppliedBatch> {
    return this.applyMany([batch]);
  }

  /**
   * Applies several batches of one origin, in order, in one transaction: one WATCH round and one
   * wait for capture for all of them. Throws when the primary or capture is unavailable.
   */
  async applyMany(batches: readonly OpBatch[]): Promise<AppliedBatch> {
    for (const batch of batches) this.#advanceClock(batch);
    const client = this.#o.client;
    const byDb = keysByDb(batches);
    const ops = batches.reduce((n, b) => n + b.ops.length, 0);
    for (let attempt = 0; ; attempt++) {
      try {
        // One round trip and one socket write: Redis runs them in order, so the offset is read
        // after the WATCH.
        const watch = client.pipeline();
        for (const [db, keys] of byDb) {
          watch.select(db);
          if (keys.length > 0) watch.watch(...keys);
        }
        watch.info('replication');
        const replies = (await watch.exec()) ?? [];
        for (const [err] of replies) if (err !== null) throw err;
        const text = replies[replies.length - 1]?.[1];
        const info = parseInfo(typeof text === 'string' ? text : '');
        const offset = Number(info.replication?.master_repl_offset ?? '0');
        await withTimeout(
          this.#o.awaitRecorded(offset),
          this.#o.recordWaitMs ?? 10_000,
          () => new CaptureBehindError(`capture has not recorded up to offset ${offset}`),
        );
        const stats = await applyBatchesOnce(client, batches);
        if (stats !== null) return { retries: attempt, ops };
      } catch (err) {
        await client.unwatch().catch(() => undefined);
        throw err;
      }
      if (attempt > 0 && attempt % 50 === 0) {
        this.#log.warn(
          { origin: batches[0]?.origin, seq: batches[0]?.seq, attempt },
          'keys keep changing under the apply; retrying',
        );
      }
      // Let the conflicting local write reach capture before trying again.
      await new Promise((r) => setTimeout(r, Math.min(attempt, 20)));
    }
  }

  /** Receiving a tag advances this region's clock past it (HLC receive rule). */
  #advanceClock(batch: OpBatch): void {
    let max = '';
    for (const op of batch.ops) if (op.tag > max) max = op.tag;
    if (max === '') return;
    try {
      this.#o.clock.receive(decodeHlc(max));
    } catch (err) {
      // A remote clock far ahead is logged; the op still applies by its tag.
      this.#log.warn({ err: (err as Error).message, origin: batch.origin }, 'clock drift');
    }
  }
}

/**
 * Data keys of the batches per db, each once (metadata keys are not watched: only apply writes
 * them). Each once matters beyond the round trip: Redis 7.0's WATCH looks every key up in the
 * list of keys the connection already watches, so it costs O(n²) in the keys of one transaction.
 */
function keysByDb(batches: readonly OpBatch[]): Map<number, Buffer[]> {
  const out = new Map<number, { keys: Buffer[]; seen: Set<string> }>();
  const meta = Buffer.from(META_PREFIX);
  for (const batch of batches) {
    for (const op of batch.ops) {
      if (op.kind === 'flush') continue;
      let db = out.get(op.db);
      if (db === undefined) out.set(op.db, (db = { keys: [], seen: new Set() }));
      const key = Buffer.isBuffer(op.key)
        ? op.key
        : Buffer.from(op.key.buffer, op.key.byteOffset, op.key.byteLength);
      if (key.length >= meta.length && meta.equals(key.subarray(0, meta.length))) continue;
      const id = key.toString('latin1');
      if (db.seen.has(id)) continue;
      db.seen.add(id);
      db.keys.push(key);
    }
  }
  const byDb = new Map([...out].map(([db, { keys }]) => [db, keys]));
  if (byDb.size === 0) byDb.set(0, []);
  return byDb;
}

async function withTimeout<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(error()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
