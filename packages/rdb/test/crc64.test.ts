import { describe, expect, it } from 'vitest';
import { Crc64, crc64, writeCrc64 } from '@georep/rdb';

/** Bit-at-a-time reference over BigInt, written from the parameters alone (reflected Jones). */
function referenceCrc64(bytes: Uint8Array): bigint {
  const poly = 0x95ac9329ac4bc9b5n;
  let crc = 0n;
  for (const b of bytes) {
    crc ^= BigInt(b);
    for (let i = 0; i < 8; i++) crc = (crc & 1n) === 1n ? (crc >> 1n) ^ poly : crc >> 1n;
  }
  return crc;
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('crc64', () => {
  it('crc64 - check value for "123456789" is 0xe9c6d914c4b8d9ca', () => {
    expect(crc64(Buffer.from('123456789'))).toBe(0xe9c6d914c4b8d9can);
  });

  it('crc64 - empty input gives 0 (init 0, no final xor)', () => {
    expect(crc64(Buffer.alloc(0))).toBe(0n);
  });

  it('crc64 - matches the footer of the redis-doc DUMP example (RDB 6)', () => {
    const body = Buffer.concat([hex('0015'), Buffer.from('hello, dumping world!'), hex('0600')]);
    expect(new Crc64().update(body).digestBytes()).toEqual(hex('45a05a82d872c1de'));
  });

  it('crc64 - matches the footer of a Redis 7.2 DUMP of integer 1', () => {
    expect(new Crc64().update(hex('00c0010b00')).digestBytes()).toEqual(hex('4fa75ac52c9ef875'));
  });

  it('crc64 - matches the footer of the redis.io RESTORE ziplist example', () => {
    // List [1,2,3] as a ziplist (type 10) of int16 entries, RDB version 4 in the footer.
    const payload = hex('0a 17 17000000 12000000 0300 00c00100 04c00200 04c00300 ff 0400');
    expect(new Crc64().update(payload).digestBytes()).toEqual(hex('75233cc03b2ee9dd'));
  });

  it('crc64 - incremental updates equal one-shot over any split', () => {
    const data = Buffer.alloc(1000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    const whole = crc64(data);
    for (const split of [0, 1, 3, 7, 8, 9, 63, 500, 999, 1000]) {
      const c = new Crc64().update(data.subarray(0, split)).update(data.subarray(split));
      expect(c.digest()).toBe(whole);
    }
  });

  it('crc64 - slicing-by-8 agrees with a bitwise reference on random lengths', () => {
    let seed = 12345;
    for (let n = 0; n < 80; n++) {
      const data = Buffer.alloc(n * 3 + (n % 8));
      for (let i = 0; i < data.length; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        data[i] = seed >>> 24;
      }
      expect(crc64(data)).toBe(referenceCrc64(data));
    }
  });
});

describe('writeCrc64', () => {
  it('crc64 - writeCrc64 writes the same CRC as crc64() for short and long inputs, in place', () => {
    for (const size of [0, 1, 7, 255, 256, 257, 1000]) {
      const bytes = new Uint8Array(size + 20).map((_, i) => (i * 31 + size) & 0xff);
      const out = new Uint8Array(size + 40);
      writeCrc64(bytes, 10, 10 + size, out, 3);
      const expected = Buffer.alloc(8);
      expected.writeBigUInt64LE(crc64(bytes.subarray(10, 10 + size)));
      expect(Buffer.from(out.subarray(3, 11)).equals(expected), `size ${size}`).toBe(true);
    }
  });
});
