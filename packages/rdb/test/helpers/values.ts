/**
 * Sample values of every type, shaped to hit each encoder branch: integers of every width,
 * compressible and binary strings, list node splits, intsets vs hashtable sets, +/-inf scores,
 * streams with groups, consumers and PELs.
 */
import type { RdbValue, StreamValue } from '@georep/rdb';

const b = (s: string): Buffer => Buffer.from(s);

/** A deterministic pseudo-random byte string (binary, incompressible). */
export function binary(len: number, seed = 1): Buffer {
  const out = Buffer.alloc(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A stream with two groups, a PEL and consumers; IDs and times as Redis would store them. */
export function sampleStream(): StreamValue {
  const entries = Array.from({ length: 250 }, (_, i) => ({
    id: { ms: 1700000000000n + BigInt(Math.floor(i / 3)), seq: BigInt(i % 3) },
    fields:
      i % 7 === 0
        ? ([[b('other'), b(`v${i}`)]] as Array<[Buffer, Buffer]>)
        : ([
            [b('name'), b(`n${i}`)],
            [b('count'), b(String(i * 1000))],
          ] as Array<[Buffer, Buffer]>),
    deleted: false,
  }));
  const id = (i: number): { ms: bigint; seq: bigint } => entries[i]!.id;
  return {
    entries,
    length: entries.length,
    lastId: id(249),
    firstId: id(0),
    maxDeletedId: { ms: 0n, seq: 0n },
    entriesAdded: 250n,
    groups: [
      {
        name: b('g1'),
        lastId: id(10),
        entriesRead: 11n,
        pending: [
          { id: id(3), deliveryTime: 1700000000100, deliveryCount: 1 },
          { id: id(5), deliveryTime: 1700000000200, deliveryCount: 3 },
        ],
        consumers: [
          {
            name: b('alice'),
            seenTime: 1700000000300,
            activeTime: 1700000000250,
            pending: [id(3)],
          },
          { name: b('bob'), seenTime: 1700000000400, activeTime: 1700000000400, pending: [id(5)] },
        ],
      },
      {
        name: b('empty'),
        lastId: { ms: 0n, seq: 0n },
        entriesRead: 0n,
        pending: [],
        consumers: [],
      },
    ],
  };
}

/** Named values covering every writer branch that works on all RDB 10+ targets. */
export function sampleValues(): Record<string, RdbValue> {
  return {
    'str:int8': { type: 'string', value: b('-12') },
    'str:int16': { type: 'string', value: b('30000') },
    'str:int32': { type: 'string', value: b('-2000000000') },
    'str:int64': { type: 'string', value: b('9223372036854775807') },
    'str:not-canonical': { type: 'string', value: b('007') },
    'str:empty': { type: 'string', value: b('') },
    'str:compressible': { type: 'string', value: b('abc'.repeat(1000)) },
    'str:binary': { type: 'string', value: binary(3000, 9) },
    'str:utf8': { type: 'string', value: b('héllo wörld ✓') },
    'list:small': { type: 'list', value: [b('a'), b('1'), b('-5000'), b('70000'), b('')] },
    'list:big': {
      type: 'list',
      value: Array.from({ length: 3000 }, (_, i) => b(i % 2 === 0 ? `item-${i}` : String(i * 97))),
    },
    'list:large-elements': { type: 'list', value: [binary(20_000, 3), b('x'), binary(70_000, 4)] },
    'set:intset': { type: 'set', value: [b('3'), b('-1'), b('100000'), b('9007199254740993')] },
    'set:strings': { type: 'set', value: [b('apple'), b('banana'), b('cherry'), b('1')] },
    'set:big-ints': {
      type: 'set',
      value: Array.from({ length: 600 }, (_, i) => b(String(i))),
    },
    'zset:small': {
      type: 'zset',
      value: [
        { member: b('a'), score: 1.5 },
        { member: b('b'), score: -2 },
        { member: b('c'), score: 1e300 },
        { member: b('d'), score: Number.POSITIVE_INFINITY },
        { member: b('e'), score: Number.NEGATIVE_INFINITY },
        { member: b('f'), score: 0.1 },
      ],
    },
    'zset:big': {
      type: 'zset',
      value: Array.from({ length: 500 }, (_, i) => ({ member: b(`m${i}`), score: i / 7 })),
    },
    'hash:small': {
      type: 'hash',
      value: [
        { field: b('f1'), value: b('v1') },
        { field: b('n'), value: b('42') },
        { field: b('bin'), value: binary(100, 5) },
      ],
    },
    'hash:big': {
      type: 'hash',
      value: Array.from({ length: 1000 }, (_, i) => ({
        field: b(`field:${i}`),
        value: b(`value:${i}`),
      })),
    },
  };
}
