/**
 * A group larger than three regions: five regions write concurrently, to their own keys, to
 * shared keys and to one shared counter, and every region ends with the same data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '@georep/testkit';
import {
  diffDatasets,
  readDataset,
  startReplicatedGroup,
  type ReplicatedGroup,
} from './replication-helpers.js';

const REGIONS = ['r1', 'r2', 'r3', 'r4', 'r5'];

describe('replication across five regions', () => {
  let g: ReplicatedGroup;

  beforeAll(async () => {
    g = await startReplicatedGroup('five', tempDir('replication-five'), undefined, REGIONS);
  }, 180_000);

  afterAll(async () => {
    await g?.stop();
  });

  it('regions - five regions writing at once converge, and a counter adds every increment', async () => {
    await Promise.all(
      REGIONS.map(async (region, i) => {
        const c = g.client(region);
        for (let k = 0; k < 200; k++) {
          const p = c.pipeline();
          p.set(`own:${region}:${k}`, `${region}-${k}`);
          p.hset(`shared:h:${k % 20}`, region, String(k));
          p.incrby('shared:counter', i + 1);
          if (k % 10 === 0) p.sadd('shared:set', `${region}:${k}`);
          await p.exec();
        }
      }),
    );
    // Each region added (i + 1) × 200: 200 × (1 + 2 + 3 + 4 + 5).
    const expected = String(200 * 15);
    let last: string[] = [];
    await waitFor(
      async () => {
        const sets = await Promise.all(REGIONS.map((r) => readDataset(g.client(r))));
        last = sets.slice(1).flatMap((s) => diffDatasets(sets[0]!, s));
        return last.length === 0 ? sets[0]! : null;
      },
      (first) => first !== null && first.get('shared:counter')?.value === expected,
      { timeoutMs: 60_000, intervalMs: 500, what: 'five regions identical' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; differences: ${last.slice(0, 5).join('; ')}`);
    });
    for (const region of REGIONS) {
      expect(await g.client(region).get('shared:counter')).toBe(expected);
      expect(await g.client(region).dbsize()).toBeGreaterThanOrEqual(5 * 200 + 20 + 2);
    }
  });
});
