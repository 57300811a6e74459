import { describe, expect, it } from 'vitest';
import type { ReplicationLink } from '@georep/core';
import { emptyLink } from '../src/apply-feed.js';
import { combineLinks, unpairedShards } from '../src/replication-status.js';

const link = (over: Partial<ReplicationLink>): ReplicationLink => ({
  ...emptyLink('us-east'),
  ...over,
});
const backlog = (messages: number, fullInSec: number | null, lost = false) => ({
  messages,
  bytes: messages * 100,
  oldestAgeMs: messages * 10,
  lost,
  growthBytesPerSec: fullInSec === null ? null : 50,
  fullInSec,
  streamLimitBytes: 1000,
});

describe('replication status over shards', () => {
  it('combine - counters add up, lag and age are the worst, the tag is the oldest', () => {
    const out = combineLinks(
      'us-east',
      [
        {
          shard: 's1',
          link: link({
            appliedOps: 5,
            appliedBatches: 2,
            lagMs: 10,
            appliedTag: '002.a',
            backlog: backlog(3, 600),
          }),
        },
        {
          shard: 's2',
          link: link({
            appliedOps: 7,
            appliedBatches: 1,
            lagMs: 40,
            appliedTag: '001.a',
            backlog: backlog(1, null, true),
            error: 'stalled',
          }),
        },
      ],
      null,
    );
    expect(out).toMatchObject({
      peer: 'us-east',
      appliedOps: 12,
      appliedBatches: 3,
      lagMs: 40,
      appliedTag: '001.a',
      error: 'shard s2: stalled',
      backlog: { messages: 4, bytes: 400, oldestAgeMs: 30, lost: true, fullInSec: 600 },
    });
    expect(out.unpairedShards).toBeUndefined();
  });

  it('combine - a shard that applied nothing holds the tag at null', () => {
    const out = combineLinks(
      'us-east',
      [
        { shard: 's1', link: link({ appliedTag: '002.a' }) },
        { shard: 's2', link: link({ appliedTag: null }) },
      ],
      'x',
    );
    expect(out.appliedTag).toBeNull();
    expect(out.unpairedShards).toBe('x');
  });

  it('unpaired - says which shard of which region has no counterpart', () => {
    expect(unpairedShards(['s1', 's2'], 'eu-west', ['s1', 's2'], 'ap-south')).toBe('');
    expect(unpairedShards(['s1', 's2'], 'eu-west', ['s1'], 'ap-south')).toBe(
      'shard s2 of eu-west has no counterpart in ap-south: not replicated between them; give both regions the same shard names',
    );
    expect(unpairedShards(['main'], 'eu-west', ['s1', 's2'], 'ap-south')).toBe(
      'shard main of eu-west has no counterpart in ap-south; shards s1, s2 of ap-south have no counterpart in eu-west: not replicated between them; give both regions the same shard names',
    );
  });
});
