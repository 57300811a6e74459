/**
 * The wire form of batches: round trips of every operation kind, strict validation with a
 * precise `replication.bad-batch` error, and fuzzing with random and mutated input, which must
 * only ever produce a valid batch or a BadBatchError.
 */
import { Decoder, encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import {
  BadBatchError,
  decodeBatch,
  encodeBatch,
  type Op,
  type OpBatch,
} from '@georep/replication';
import { seededRandom } from '@georep/testkit';

const b = (s: string) => Buffer.from(s);
const T1 = '001732540000000.000003.eu-west';
const T2 = '001732540000001.000000.us-east';

/** One batch holding every kind of operation. */
function sample(): OpBatch {
  return {
    v: 1,
    origin: 'eu-west',
    seq: 42,
    ops: [
      {
        kind: 'value',
        db: 0,
        key: b('user:1'),
        tag: T1,
        dump: Buffer.from([0, 3, 0x61, 0x62, 0x63, 11, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
        pttl: 1_900_000_000_000,
        ob: { 'eu-west': '3', 'us-east': '-2.5' },
      },
      { kind: 'value', db: 3, key: b('gone'), tag: T1, dump: null, pttl: 0, ob: {} },
      { kind: 'counter', db: 0, key: b('hits'), tag: T2, cum: '17' },
      { kind: 'expire', db: 1, key: b('session'), tag: T1, at: 1_800_000_000_000, prev: '' },
      { kind: 'expire', db: 1, key: b('session'), tag: T2, at: 0, prev: T1 },
      {
        kind: 'elements',
        db: 0,
        key: b('h'),
        tag: T1,
        type: 'hash',
        add: [[b('f1'), b('v1')]],
        rem: [
          [b('f2'), T2],
          [b('f3'), ''],
        ],
      },
      {
        kind: 'elements',
        db: 0,
        key: b('s'),
        tag: T1,
        type: 'set',
        add: [[b('m'), b('')]],
        rem: [],
      },
      { kind: 'flush', db: -1, tag: T2 },
    ],
  };
}

/** Encodes an arbitrary object as MessagePack, bypassing encodeBatch's own checks. */
const raw = (value: unknown) => encode(value);

function badBatch(fn: () => unknown): BadBatchError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BadBatchError);
    const e = err as BadBatchError;
    expect(e.code).toBe('replication.bad-batch');
    return e;
  }
  throw new Error('expected a BadBatchError');
}

describe('batch codec', () => {
  it('codec - every operation kind round-trips', () => {
    const batch = sample();
    const decoded = decodeBatch(encodeBatch(batch));
    expect(decoded).toEqual(batch);
    // Binary fields come back as Buffers (ioredis sends those as they are), even from a plain
    // Uint8Array.
    const plain = decodeBatch(new Uint8Array(encodeBatch(batch)));
    for (const op of plain.ops) {
      if ('key' in op) expect(Buffer.isBuffer(op.key)).toBe(true);
    }
    expect(plain).toEqual(batch);
  });

  it('codec - only documented fields are written, in a fixed order', () => {
    const batch = sample();
    const noisy = { ...batch, extra: 'x', ops: batch.ops.map((op) => ({ ...op, junk: 1 })) };
    const reordered: OpBatch = { ops: batch.ops, seq: 42, origin: 'eu-west', v: 1 };
    const bytes = encodeBatch(batch);
    expect(encodeBatch(noisy as unknown as OpBatch)).toEqual(bytes);
    expect(encodeBatch(reordered)).toEqual(bytes);
    expect(encodeBatch({ ...batch, ops: [] })).toEqual(
      raw({ v: 1, origin: 'eu-west', seq: 42, ops: [] }),
    );
  });

  it('codec - each kind of garbage is rejected with the field and the reason', () => {
    const ok = sample();
    const cases: Array<[unknown, string, RegExp]> = [
      [{ ...ok, v: 2 }, 'v', /unsupported version 2/],
      [{ ...ok, origin: 'EU_west' }, 'origin', /region name/],
      [{ ...ok, seq: -1 }, 'seq', /integer >= 0/],
      [{ ...ok, seq: 1.5 }, 'seq', /integer/],
      [{ v: 1, origin: 'eu-west', seq: 1 }, 'ops', /missing/],
      [{ ...ok, more: true }, 'more', /unknown field/],
      [{ ...ok, ops: {} }, 'ops', /expected an array/],
      [{ ...ok, ops: [7] }, 'ops[0]', /expected a map/],
      [
        { ...ok, ops: [{ kind: 'delete', db: 0 }] },
        'ops[0].kind',
        /unknown operation kind "delete"/,
      ],
      [{ ...ok, ops: [{ ...ok.ops[2], tag: 'yesterday' }] }, 'ops[0].tag', /encodeHlc/],
      [{ ...ok, ops: [{ ...ok.ops[2], tag: '' }] }, 'ops[0].tag', /encodeHlc/],
      [{ ...ok, ops: [{ ...ok.ops[2], key: 'hits' }] }, 'ops[0].key', /expected bytes/],
      [{ ...ok, ops: [{ ...ok.ops[2], cum: '1x' }] }, 'ops[0].cum', /decimal/],
      [{ ...ok, ops: [{ ...ok.ops[2], db: -1 }] }, 'ops[0].db', /integer >= 0/],
      [{ ...ok, ops: [{ ...ok.ops[7], db: -2 }] }, 'ops[0].db', /integer >= -1/],
      [{ ...ok, ops: [{ ...ok.ops[0], dump: 'x' }] }, 'ops[0].dump', /expected bytes/],
      [{ ...ok, ops: [{ ...ok.ops[0], ob: { 'eu-west': 3 } }] }, 'ops[0].ob.eu-west', /decimal/],
      [{ ...ok, ops: [{ ...ok.ops[0], ob: [] }] }, 'ops[0].ob', /expected a map/],
      [{ ...ok, ops: [{ ...ok.ops[3], prev: 'x' }] }, 'ops[0].prev', /encodeHlc/],
      [{ ...ok, ops: [{ ...ok.ops[5], type: 'list' }] }, 'ops[0].type', /hash, set or zset/],
      [{ ...ok, ops: [{ ...ok.ops[5], add: [[b('f')]] }] }, 'ops[0].add[0]', /pair/],
      [{ ...ok, ops: [{ ...ok.ops[5], rem: [[b('f'), 'x']] }] }, 'ops[0].rem[0][1]', /encodeHlc/],
      [
        { ...ok, ops: [{ ...ok.ops[2], kind: 'counter', cum: undefined }] },
        'ops[0].cum',
        /decimal/,
      ],
    ];
    for (const [value, path, reason] of cases) {
      const err = badBatch(() => decodeBatch(raw(value)));
      expect(
        err.path,
        JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? '<bytes>' : v)),
      ).toBe(path);
      expect(err.message).toMatch(reason);
      expect(err.details).toMatchObject({ path });
      // encodeBatch checks by the same rules (it only leaves unknown fields out).
      if (reason.source !== 'unknown field') {
        expect(badBatch(() => encodeBatch(value as OpBatch)).path).toBe(path);
      }
    }
  });

  it('codec - not MessagePack, trailing bytes and non-map roots are bad batches', () => {
    expect(badBatch(() => decodeBatch(new Uint8Array())).message).toMatch(/not MessagePack/);
    expect(badBatch(() => decodeBatch(b('{"v":1}'))).message).toMatch(/not MessagePack|map/);
    const good = encodeBatch(sample());
    const trailing = new Uint8Array([...good, 0]);
    expect(badBatch(() => decodeBatch(trailing)).message).toMatch(/not MessagePack/);
    expect(badBatch(() => decodeBatch(raw([1, 'eu-west', 1, []]))).path).toBe('');
    expect(badBatch(() => decodeBatch(raw(null))).message).toMatch(/expected a map, got null/);
  });

  it('codec - encodeBatch refuses a malformed batch, so a producer bug stays at the producer', () => {
    const bad = { ...sample(), ops: [{ kind: 'flush', db: 0, tag: 'now' }] } as unknown as OpBatch;
    expect(badBatch(() => encodeBatch(bad)).path).toBe('ops[0].tag');
  });

  it('codec - thousands of random and mutated inputs give a batch or a BadBatchError, never a crash', () => {
    const rand = seededRandom(0x5eed);
    const int = (n: number) => Math.floor(rand() * n);
    const good = encodeBatch(sample());
    let decoded = 0;
    let rejected = 0;
    const check = (bytes: Uint8Array) => {
      let batch: OpBatch;
      try {
        batch = decodeBatch(bytes);
      } catch (err) {
        if (!(err instanceof BadBatchError)) {
          throw new Error(
            `non-BadBatchError for ${Buffer.from(bytes).toString('hex')}: ${String(err)}`,
          );
        }
        rejected++;
        return;
      }
      // Whatever decodes is a valid batch: it encodes again.
      encodeBatch(batch);
      decoded++;
    };
    for (let i = 0; i < 2000; i++) {
      const bytes = new Uint8Array(int(64));
      for (let j = 0; j < bytes.length; j++) bytes[j] = int(256);
      // Steer some inputs to start like a map, so the validator (not only the decoder) runs.
      if (i % 2 === 0 && bytes.length > 0) bytes[0] = 0x80 | int(16);
      check(bytes);
    }
    for (let i = 0; i < 3000; i++) {
      const bytes = Uint8Array.from(good);
      const mode = i % 4;
      if (mode === 0) {
        for (let k = 0; k <= int(3); k++) {
          const at = int(bytes.length);
          bytes[at] = (bytes[at] ?? 0) ^ (1 << int(8));
        }
        check(bytes);
      } else if (mode === 1) {
        check(bytes.subarray(0, int(bytes.length)));
      } else if (mode === 2) {
        bytes[int(bytes.length)] = int(256);
        check(bytes);
      } else {
        const at = int(bytes.length);
        check(new Uint8Array([...bytes.subarray(0, at), int(256), ...bytes.subarray(at)]));
      }
    }
    expect(rejected).toBeGreaterThan(4000);
    expect(decoded + rejected).toBe(5000);
  });

  it('codec - the bytes are what the generic MessagePack encoder writes, and read back the same', () => {
    // encodeBatch and decodeBatch have their own MessagePack for this shape: the wire must stay
    // what agents of the previous version write and read, whatever the lengths and numbers.
    const rand = seededRandom(0xc0dec);
    const int = (n: number) => Math.floor(rand() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const sizes = [0, 1, 31, 32, 255, 256, 65_535, 65_536, 70_000];
    const bytes = () => Buffer.alloc(rand() < 0.98 ? int(40) : pick(sizes), int(256));
    const ints = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
    const tag = () =>
      `${String(int(1e15)).padStart(15, '0')}.${String(int(1e6)).padStart(6, '0')}.${pick(['eu-west', 'a', 'r-1'])}`;
    const decimal = () =>
      pick(['0', '-1', '17', '-2.5', '1e+21', '123456789012345678901234567890']);
    const regions = ['eu-west', 'us-east', '1', '22', 'ap-south-1', 'x'];
    const op = (): Op => {
      const db = pick([0, 1, 15, 16, 127, 128, 0xffff]);
      switch (int(5)) {
        case 0: {
          const ob: Record<string, string> = {};
          for (let n = pick([0, 0, 1, 2, 6]); n > 0; n--) ob[pick(regions)] = decimal();
          const dump = rand() < 0.2 ? null : bytes();
          return { kind: 'value', db, key: bytes(), tag: tag(), dump, pttl: pick(ints), ob };
        }
        case 1:
          return { kind: 'counter', db, key: bytes(), tag: tag(), cum: decimal() };
        case 2:
          return {
            kind: 'expire',
            db,
            key: bytes(),
            tag: tag(),
            at: pick(ints),
            prev: pick(['', tag()]),
          };
        case 3: {
          const add: Array<[Buffer, Buffer]> = [];
          for (let n = pick([0, 1, 3, 15, 16]); n > 0; n--) add.push([bytes(), bytes()]);
          const rem: Array<[Buffer, string]> = [];
          for (let n = pick([0, 1, 2, 17]); n > 0; n--) rem.push([bytes(), pick(['', tag()])]);
          const type = pick(['hash', 'set', 'zset'] as const);
          return { kind: 'elements', db, key: bytes(), tag: tag(), type, add, rem };
        }
        default:
          return { kind: 'flush', db: pick([-1, 0, 3]), tag: tag() };
      }
    };
    const generic = new Decoder({ maxMapLength: 64, maxExtLength: 0 });
    for (let i = 0; i < 200; i++) {
      const ops = Array.from({ length: pick([0, 1, 2, 15, 16]) }, op);
      const batch: OpBatch = { v: 1, origin: pick(regions), seq: pick(ints), ops };
      const wire = Buffer.from(encodeBatch(batch));
      // Compared as bytes: a deep comparison of large Buffers is slow.
      expect(wire.equals(raw(batch))).toBe(true);
      expect(wire.equals(raw(decodeBatch(wire)))).toBe(true);
      // Whatever a changed message decodes to is what the generic decoder makes of it.
      for (let k = 0; k < 5; k++) {
        const changed = Buffer.from(wire);
        changed[int(changed.length)] = int(256);
        let decoded: OpBatch;
        try {
          decoded = decodeBatch(changed);
        } catch (err) {
          expect(err).toBeInstanceOf(BadBatchError);
          continue;
        }
        expect(Buffer.from(raw(decoded)).equals(raw(generic.decode(changed)))).toBe(true);
      }
    }
  });
});
