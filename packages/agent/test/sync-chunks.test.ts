import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChunkReassembler, parseChunkHeader, splitMessage } from '@georep/agent';

describe('sync chunks', () => {
  it('chunks - a large message split and reassembled in any order is identical', () => {
    const message = randomBytes(10_000);
    const pieces = splitMessage(message, 999);
    expect(pieces).toHaveLength(11);
    const r = new ChunkReassembler();
    const order = [...pieces.keys()].reverse();
    let whole: Uint8Array | null = null;
    for (const i of order)
      whole = r.add('eu-west', `abc/${i}/${pieces.length}`, pieces[i]!) ?? whole;
    expect(Buffer.from(whole!).equals(message)).toBe(true);
  });

  it('chunks - duplicates, malformed headers, oversize and stale messages are dropped', () => {
    let now = 0;
    const r = new ChunkReassembler({ maxBytes: 100, timeoutMs: 1000, now: () => now });
    expect(parseChunkHeader('x/2/2')).toBeNull();
    expect(parseChunkHeader('x/0/0')).toBeNull();
    expect(r.add('a', 'garbage', new Uint8Array(1))).toBeNull();
    expect(r.add('a', 'm1/0/2', new Uint8Array(60))).toBeNull();
    expect(r.add('a', 'm1/0/2', new Uint8Array(60))).toBeNull(); // duplicate
    expect(r.add('a', 'm1/1/2', new Uint8Array(60))).toBeNull(); // 120 bytes > maxBytes
    expect(r.add('b', 'm2/0/2', new Uint8Array(10))).toBeNull();
    now = 5000; // m2 expired
    expect(r.add('b', 'm2/1/2', new Uint8Array(10))).toBeNull();
    expect(r.add('b', 'm3/0/1', new Uint8Array(3))).toHaveLength(3);
  });
});
