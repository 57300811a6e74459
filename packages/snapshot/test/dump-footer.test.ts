import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dumpPayloadFromRaw } from '@georep/rdb';
import { writeDumpFooter } from '../src/dump-footer.js';

describe('dump footer', () => {
  it('dump footer - written in place, it equals dumpPayloadFromRaw for short and long payloads', () => {
    for (const len of [1, 2, 7, 63, 64, 65, 255, 256, 257, 1000, 70_000]) {
      for (const version of [9, 10, 12, 80]) {
        const raw = randomBytes(len);
        // At an odd offset inside a larger buffer, as in the import's output chunks.
        const buf = Buffer.alloc(len + 40, 0xee);
        raw.copy(buf, 13);
        const end = writeDumpFooter(buf, 13, 13 + len, version);
        expect(end).toBe(13 + len + 10);
        expect(
          buf.subarray(13, end).equals(dumpPayloadFromRaw(raw, version)),
          `${len}/${version}`,
        ).toBe(true);
        expect(buf[end]).toBe(0xee);
      }
    }
  });
});
