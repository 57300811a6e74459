/**
 * Translate: which instruction each command of a Redis 7 replication stream becomes, and what is
 * never shipped (georep's own keys, apply transactions).
 */
import { describe, expect, it } from 'vitest';
import { Translator, type Instruction } from '@georep/replication';

const argv = (...parts: string[]) => parts.map((p) => Buffer.from(p));

function translator() {
  let n = 0;
  return new Translator(() => `tag-${++n}`);
}

function feed(t: Translator, db: number, ...parts: string[]): Instruction[] {
  return t.feed(db, argv(...parts)).instructions;
}

/** Instructions with keys/members as strings, for readable expectations. */
function readable(list: Instruction[]): unknown[] {
  return list.map((i) => {
    const out: Record<string, unknown> = { ...i };
    for (const [k, v] of Object.entries(i)) {
      if (v instanceof Uint8Array) out[k] = Buffer.from(v).toString();
      if (Array.isArray(v)) out[k] = v.map((x: Uint8Array) => Buffer.from(x).toString());
    }
    delete out.tag;
    return out;
  });
}

describe('translate', () => {
  it('translate - counters carry their delta; a non-integer INCRBY falls back to the value', () => {
    const t = translator();
    expect(readable(feed(t, 0, 'INCR', 'c'))).toEqual([
      { kind: 'counter', db: 0, key: 'c', delta: '1' },
    ]);
    expect(readable(feed(t, 0, 'decrby', 'c', '-9223372036854775807'))).toEqual([
      { kind: 'counter', db: 0, key: 'c', delta: '9223372036854775807' },
    ]);
    expect(readable(feed(t, 2, 'DECR', 'c'))).toEqual([
      { kind: 'counter', db: 2, key: 'c', delta: '-1' },
    ]);
    expect(readable(feed(t, 0, 'INCRBY', 'c', 'x'))).toEqual([{ kind: 'value', db: 0, key: 'c' }]);
  });

  it('translate - hash, set and zset commands become element adds and removes', () => {
    const t = translator();
    expect(readable(feed(t, 0, 'HSET', 'h', 'a', '1', 'b', '2'))).toEqual([
      { kind: 'elements', db: 0, key: 'h', type: 'hash', add: ['a', 'b'], rem: [] },
    ]);
    expect(readable(feed(t, 0, 'HINCRBY', 'h', 'a', '5'))).toEqual([
      { kind: 'elements', db: 0, key: 'h', type: 'hash', add: ['a'], rem: [] },
    ]);
    expect(readable(feed(t, 0, 'HDEL', 'h', 'a', 'b'))).toEqual([
      { kind: 'elements', db: 0, key: 'h', type: 'hash', add: [], rem: ['a', 'b'] },
    ]);
    expect(readable(feed(t, 0, 'SADD', 's', 'x', 'y'))).toEqual([
      { kind: 'elements', db: 0, key: 's', type: 'set', add: ['x', 'y'], rem: [] },
    ]);
    expect(readable(feed(t, 0, 'SREM', 's', 'x'))).toEqual([
      { kind: 'elements', db: 0, key: 's', type: 'set', add: [], rem: ['x'] },
    ]);
    expect(readable(feed(t, 0, 'ZADD', 'z', 'GT', 'CH', '1', 'm1', '2.5', 'm2'))).toEqual([
      { kind: 'elements', db: 0, key: 'z', type: 'zset', add: ['m1', 'm2'], rem: [] },
    ]);
    expect(readable(feed(t, 0, 'ZINCRBY', 'z', '3', 'm1'))).toEqual([
      { kind: 'elements', db: 0, key: 'z', type: 'zset', add: ['m1'], rem: [] },
    ]);
    expect(readable(feed(t, 0, 'ZREM', 'z', 'm2'))).toEqual([
      { kind: 'elements', db: 0, key: 'z', type: 'zset', add: [], rem: ['m2'] },
    ]);
  });

  it('translate - expiries, flushes, and whole values for everything else', () => {
    const t = translator();
    expect(readable(feed(t, 0, 'PEXPIREAT', 'k', '1999999999999'))).toEqual([
      { kind: 'expire', db: 0, key: 'k' },
    ]);
    expect(readable(feed(t, 0, 'PERSIST', 'k'))).toEqual([{ kind: 'expire', db: 0, key: 'k' }]);
    expect(readable(feed(t, 0, 'SET', 'k', 'v', 'PXAT', '1999999999999'))).toEqual([
      { kind: 'value', db: 0, key: 'k' },
    ]);
    expect(readable(feed(t, 0, 'DEL', 'a', 'b'))).toEqual([
      { kind: 'value', db: 0, key: 'a' },
      { kind: 'value', db: 0, key: 'b' },
    ]);
    expect(readable(feed(t, 0, 'LMOVE', 'l1', 'l2', 'LEFT', 'RIGHT'))).toEqual([
      { kind: 'value', db: 0, key: 'l1' },
      { kind: 'value', db: 0, key: 'l2' },
    ]);
    expect(readable(feed(t, 0, 'MOVE', 'k', '4'))).toEqual([
      { kind: 'value', db: 0, key: 'k' },
      { kind: 'value', db: 4, key: 'k' },
    ]);
    expect(readable(feed(t, 3, 'FLUSHDB'))).toEqual([{ kind: 'flush', db: 3 }]);
    expect(readable(feed(t, 3, 'FLUSHALL'))).toEqual([{ kind: 'flush', db: -1 }]);
  });

  it('translate - every instruction gets its own tag, in stream order', () => {
    const t = translator();
    const tags = [
      ...feed(t, 0, 'DEL', 'a', 'b'),
      ...feed(t, 0, 'INCR', 'c'),
      ...feed(t, 0, 'SET', 'd', '1'),
    ].map((i) => i.tag);
    expect(tags).toEqual(['tag-1', 'tag-2', 'tag-3', 'tag-4']);
  });

  it('translate - georep keys and apply transactions are never shipped; app transactions are', () => {
    const t = translator();
    expect(feed(t, 0, 'HSET', '__georep:m:k', 't', 'x')).toEqual([]);
    expect(feed(t, 0, 'SET', '__georep:outbox', 'x')).toEqual([]);
    expect(feed(t, 0, 'hdel', '__georep:m:k', 'f:x')).toEqual([]);
    expect(readable(feed(t, 0, 'hset', 'h', 'f', 'v'))).toEqual([
      { kind: 'elements', db: 0, key: 'h', type: 'hash', add: ['f'], rem: [] },
    ]);
    // record.lua's effects: a transaction of writes to georep keys only.
    expect(feed(t, 0, 'MULTI')).toEqual([]);
    expect(feed(t, 0, 'HSET', '__georep:m:k', 't', 'x')).toEqual([]);
    expect(feed(t, 0, 'SET', '__georep:outbox', 'x')).toEqual([]);
    expect(feed(t, 0, 'EXEC')).toEqual([]);
    // An apply transaction: the marker is its first write.
    expect(feed(t, 0, 'MULTI')).toEqual([]);
    expect(feed(t, 0, 'SET', '__georep:apply', 'eu:7')).toEqual([]);
    expect(feed(t, 0, 'SET', 'k', 'remote')).toEqual([]);
    expect(feed(t, 0, 'INCRBY', 'c', '5')).toEqual([]);
    expect(feed(t, 0, 'EXEC')).toEqual([]);
    // An application's transaction right after is shipped.
    expect(feed(t, 0, 'MULTI')).toEqual([]);
    expect(readable(feed(t, 0, 'SET', 'k', 'local'))).toEqual([{ kind: 'value', db: 0, key: 'k' }]);
    expect(readable(feed(t, 0, 'SET', '__georep:apply', 'x'))).toEqual([]);
    expect(feed(t, 0, 'EXEC')).toEqual([]);
    expect(readable(feed(t, 0, 'SET', 'k', 'after'))).toEqual([{ kind: 'value', db: 0, key: 'k' }]);
  });

  it('translate - an apply transaction ends at EXEC or DISCARD in any case, not at look-alikes', () => {
    const t = translator();
    expect(feed(t, 0, 'multi')).toEqual([]);
    expect(feed(t, 0, 'set', '__georep:apply', 'eu:8')).toEqual([]);
    expect(feed(t, 0, 'EXECX', 'k')).toEqual([]);
    expect(feed(t, 0, 'EXE', 'k')).toEqual([]);
    expect(feed(t, 0, 'eXeC')).toEqual([]);
    expect(readable(feed(t, 0, 'SET', 'k', 'local'))).toEqual([{ kind: 'value', db: 0, key: 'k' }]);
    expect(feed(t, 0, 'MULTI')).toEqual([]);
    expect(feed(t, 0, 'SET', '__georep:apply', 'eu:9')).toEqual([]);
    expect(feed(t, 0, 'DiScArD')).toEqual([]);
    expect(readable(feed(t, 0, 'DEL', 'k'))).toEqual([{ kind: 'value', db: 0, key: 'k' }]);
  });

  it('translate - SWAPDB and unknown commands are reported, not shipped', () => {
    const t = translator();
    expect(t.feed(0, argv('SWAPDB', '0', '1'))).toEqual({
      instructions: [],
      warning: { command: 'swapdb', reason: 'swapdb' },
    });
    expect(t.feed(0, argv('MYMODULE.SET', 'k', 'v')).warning).toMatchObject({
      reason: 'unknown-command',
    });
    expect(t.feed(0, argv('PUBLISH', 'ch', 'm'))).toEqual({ instructions: [] });
  });
});
