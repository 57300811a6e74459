/**
 * A group larger than three regions: five regions (GEOREP_REGIONS=n for another count, up to the
 * design limit of 16) write concurrently, to their own keys, to shared keys and to one shared
 * counter, and every region ends with the same data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '@georep/testkit';
import {
  diffDatasets,
  readDataset,
  startReplicatedGroup,
  type ReplicatedGroup,
} from './replication-helpers.js';

const COUNT = Number(process.env.GEOREP_REGIONS ?? 5);
if (!Number.isInteger(COUNT) || COUNT < 2 || COUNT > 16) {
  throw new Error(
    `GEOREP_REGIONS must be a whole number from 2 to 16, not ${process.env.GEOREP_REGIONS}`,
  );
}
const REGIONS = Array.from({ length: COUNT }, (_, i) => `r${i + 1}`);

describe(`replication across ${COUNT} regions`, () => {
  let g: ReplicatedGroup;

  beforeAll(
    async () => {
      g = await startReplicatedGroup('five', tempDir('replication-five'), undefined, REGIONS);
    },
    60_000 * Math.max(3, COUNT / 2),
  );

  afterAll(async () => {
    await g?.stop();
  });

  it(
    `regions - ${COUNT} regions writing at once converge, and a counter adds every increment`,
    async () => {
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
      // Each region added (i + 1) × 200: 200 × (1 + 2 + … + COUNT).
      const expected = String((200 * COUNT * (COUNT + 1)) / 2);
      let last: string[] = [];
      await waitFor(
        async () => {
          const sets = await Promise.all(REGIONS.map((r) => readDataset(g.client(r))));
          last = sets.slice(1).flatMap((s) => diffDatasets(sets[0]!, s));
          return last.length === 0 ? sets[0]! : null;
        },
        (first) => first !== null && first.get('shared:counter')?.value === expected,
        {
          timeoutMs: 60_000 * Math.max(1, COUNT / 5),
          intervalMs: 500,
          what: `${COUNT} regions identical`,
        },
      ).catch((err: Error) => {
        throw new Error(`${err.message}; differences: ${last.slice(0, 5).join('; ')}`);
      });
      for (const region of REGIONS) {
        expect(await g.client(region).get('shared:counter')).toBe(expected);
        expect(await g.client(region).dbsize()).toBeGreaterThanOrEqual(COUNT * 200 + 20 + 2);
      }
    },
    90_000 * Math.max(1, COUNT / 5),
  );
});
