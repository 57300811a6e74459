/**
 * A test harness for record.lua and apply.lua without capture or transport: a "region" is one
 * redis-server with its own hybrid logical clock. A test runs a command on a region, says by hand
 * which instructions it makes (the translation is known: the test just ran it), records them and
 * hands the batch to other regions, in any order it likes.
 */
import { Redis } from 'ioredis';
import { HybridLogicalClock, decodeHlc, encodeHlc } from '@georep/core';
import type { RedisServer } from '@georep/testkit';
import {
  applyBatchOnce,
  recordBatch,
  type ApplyStats,
  type ElementType,
  type Instruction,
  type OpBatch,
  type Tag,
} from '@georep/replication';

/** Physical time shared by the regions' clocks, moved by the test so tags are reproducible. */
export class FakeTime {
  ms = 1_750_000_000_000;
  advance(by = 1): void {
    this.ms += by;
  }
}

/** An instruction waiting for its tag. */
export type Pending = (tag: Tag) => Instruction;

export const u8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));

export const buf = (k: string | Buffer): Buffer => (typeof k === 'string' ? Buffer.from(k) : k);

export const value =
  (key: string | Buffer, db = 0): Pending =>
  (tag) => ({ kind: 'value', db, key: buf(key), tag });
export const counter =
  (key: string | Buffer, delta: string | number, db = 0): Pending =>
  (tag) => ({ kind: 'counter', db, key: buf(key), tag, delta: String(delta) });
export const expire =
  (key: string | Buffer, db = 0): Pending =>
  (tag) => ({ kind: 'expire', db, key: buf(key), tag });
export const elements =
  (
    key: string | Buffer,
    type: ElementType,
    add: Array<string | Buffer>,
    rem: Array<string | Buffer> = [],
    db = 0,
  ): Pending =>
  (tag) => ({
    kind: 'elements',
    db,
    key: buf(key),
    tag,
    type,
    add: add.map(buf),
    rem: rem.map(buf),
  });
export const flush =
  (db: number): Pending =>
  (tag) => ({ kind: 'flush', db, tag });

/** One region: a server, a client in db 0, a clock. */
export class ScriptRegion {
  readonly clock: HybridLogicalClock;
  readonly client: Redis;
  seq = 0;
  readonly #clients = new Map<number, Redis>();

  constructor(
    readonly name: string,
    readonly server: RedisServer,
    time: FakeTime,
    skewMs = 0,
  ) {
    this.clock = new HybridLogicalClock(name, { now: () => time.ms + skewMs });
    this.client = this.db(0);
  }

  /** A client with `db` selected (one per db, kept). */
  db(db: number): Redis {
    let c = this.#clients.get(db);
    if (c === undefined) {
      c = new Redis({ host: this.server.host, port: this.server.port, db, lazyConnect: false });
      this.#clients.set(db, c);
    }
    return c;
  }

  tag(): Tag {
    return encodeHlc(this.clock.tick());
  }

  /** Runs `command` in `db`, then records `pending` (tagged now) as one batch. */
  async run(command: Array<string | Buffer | number>, ...pending: Pending[]): Promise<OpBatch> {
    return this.runIn(0, command, ...pending);
  }

  async runIn(
    db: number,
    command: Array<string | Buffer | number>,
    ...pending: Pending[]
  ): Promise<OpBatch> {
    const [name, ...args] = command;
    await this.db(db).call(String(name), ...args);
    return this.record(pending.map((p) => p(this.tag())));
  }

  async record(instructions: Instruction[]): Promise<OpBatch> {
    this.seq += 1;
    return recordBatch(this.client, {
      origin: this.name,
      seq: this.seq,
      offset: this.seq * 100,
      instructions,
    });
  }

  /** Applies a batch from another region, advancing this region's clock past its tags. */
  async apply(batch: OpBatch): Promise<ApplyStats> {
    for (const op of batch.ops) this.clock.receive(decodeHlc(op.tag));
    const stats = await applyBatchOnce(this.client, batch);
    if (stats === null) throw new Error('EXEC aborted without a WATCH');
    return stats;
  }

  close(): void {
    for (const c of this.#clients.values()) c.disconnect();
  }
}

/** A key's content, comparable across servers. */
export interface KeyState {
  key: string;
  type: string;
  value: unknown;
  expireAt: number;
}

const hex = (b: Buffer) => b.toString('hex');

/** Every key of `db` but georep's own, by content, sorted by key. */
export async function dbContent(client: Redis, db: number): Promise<KeyState[]> {
  const keys: Buffer[] = [];
  let cursor = '0';
  do {
    const [next, batch] = (await client.callBuffer('SCAN', cursor, 'COUNT', 1000)) as [
      Buffer,
      Buffer[],
    ];
    cursor = next.toString();
    keys.push(...batch.filter((k) => !k.toString('latin1').startsWith('__georep:')));
  } while (cursor !== '0');
  void db;
  const out: KeyState[] = [];
  for (const key of keys) out.push(await keyState(client, key));
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** One key's type, content and absolute expiry (0 = none, -2 = missing). */
export async function keyState(client: Redis, key: Buffer): Promise<KeyState> {
  const type = String(await client.type(key));
  let value: unknown = null;
  switch (type) {
    case 'string':
      value = hex((await client.getBuffer(key))!);
      break;
    case 'hash': {
      const flat = (await client.callBuffer('HGETALL', key)) as Buffer[];
      const pairs: string[] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push(`${hex(flat[i]!)}=${hex(flat[i + 1]!)}`);
      value = pairs.sort();
      break;
    }
    case 'set':
      value = ((await client.callBuffer('SMEMBERS', key)) as Buffer[]).map(hex).sort();
      break;
    case 'zset':
      value = ((await client.callBuffer('ZRANGE', key, 0, -1, 'WITHSCORES')) as Buffer[]).map((b) =>
        b.toString('latin1'),
      );
      break;
  }
  const at = Number(await client.call('PEXPIRETIME', key));
  return { key: hex(key), type, value, expireAt: at === -1 ? 0 : at };
}

/** A random key prefix, so tests sharing a server do not see each other's keys. */
export function prefix(): string {
  return `t${Math.random().toString(36).slice(2, 10)}`;
}
