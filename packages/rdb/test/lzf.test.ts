import { describe, expect, it } from 'vitest';
import { RdbCorruptError, lzfCompress, lzfDecompress } from '@georep/rdb';

describe('lzf', () => {
  it('lzf - decodes a literal run followed by a back-reference', () => {
    // 0x02: 3 literals "abc"; 0x20 0x02: length 1+2=3, distance 2+1=3 -> "abc" again.
    const block = Buffer.from([0x02, 0x61, 0x62, 0x63, 0x20, 0x02]);
    expect(lzfDecompress(block, 6).toString()).toBe('abcabc');
  });

  it('lzf - decodes an overlapping back-reference (run of one byte)', () => {
    // "a" then length 7+3+2=12 at distance 1: the copy reads bytes it has just written.
    const block = Buffer.from([0x00, 0x61, 0xe0, 0x03, 0x00]);
    expect(lzfDecompress(block, 13).toString()).toBe('a'.repeat(13));
  });

  it('lzf - decodes the long-length form (length byte after the control byte)', () => {
    const block = Buffer.from([0x01, 0x78, 0x79, 0xe0, 0x10, 0x01]);
    expect(lzfDecompress(block, 2 + 7 + 16 + 2).toString()).toBe('xy'.repeat(13) + 'x');
  });

  it('lzf - rejects a back-reference before the start of the output', () => {
    expect(() => lzfDecompress(Buffer.from([0x20, 0x05]), 3)).toThrow(RdbCorruptError);
  });

  it('lzf - rejects output that does not match the announced length', () => {
    const block = Buffer.from([0x02, 0x61, 0x62, 0x63]);
    expect(() => lzfDecompress(block, 4)).toThrow(RdbCorruptError);
    expect(() => lzfDecompress(block, 2)).toThrow(RdbCorruptError);
  });

  it('lzf - rejects a literal run past the end of the input', () => {
    expect(() => lzfDecompress(Buffer.from([0x05, 0x61]), 6)).toThrow(RdbCorruptError);
  });

  it('lzf - round trips text, runs, binary and edge sizes', () => {
    let seed = 7;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 24;
    };
    const samples: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from('a'),
      Buffer.from('ab'),
      Buffer.from('abc'),
      Buffer.from('a'.repeat(10_000)),
      Buffer.from('the quick brown fox jumps over the lazy dog '.repeat(300)),
      Buffer.from(Array.from({ length: 50_000 }, () => rand())),
      Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i % 251) ^ (i >> 9))),
    ];
    for (const s of samples) {
      const packed = lzfCompress(s);
      expect(lzfDecompress(packed, s.length)).toEqual(s);
    }
  });

  it('lzf - compresses repetitive data well', () => {
    const s = Buffer.from('0123456789'.repeat(1000));
    expect(lzfCompress(s).length).toBeLessThan(s.length / 10);
  });
});
