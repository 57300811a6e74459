import { describe, expect, it } from 'vitest';
import type { NodeSample } from '@georep/core';
import { shardsOf } from '@georep/agent';

const node = (id: string, shard: string | undefined, role: 'primary' | 'replica', up = true) =>
  ({
    id,
    host: '127.0.0.1',
    port: Number(id.replace(/\D/g, '')) || 1,
    ...(shard === undefined ? {} : { shard }),
    role,
    up,
    sampledAt: 0,
  }) as NodeSample;

describe('shards', () => {
  it('shards - nodes group by shard, the default shard first, unnamed nodes in main', () => {
    const shards = shardsOf(
      [node('n1', 's2', 'primary'), node('n2', 's2', 'replica'), node('n3', undefined, 'primary')],
      {},
    );
    expect(shards.map((s) => [s.shard, s.primary?.id, s.replicas.map((r) => r.id)])).toEqual([
      ['main', 'n3', []],
      ['s2', 'n1', ['n2']],
    ]);
  });

  it('shards - the recorded primary wins over a returning node that still claims primary', () => {
    const [shard] = shardsOf([node('n1', 's', 'primary'), node('n2', 's', 'primary')], {
      s: 'n2',
    });
    expect(shard?.primary?.id).toBe('n2');
    expect(shard?.stalePrimaries.map((n) => n.id)).toEqual(['n1']);
  });

  it('shards - a down primary stays the primary until a replica is promoted', () => {
    const [shard] = shardsOf([node('n1', 's', 'primary', false), node('n2', 's', 'replica')], {});
    expect(shard?.primary?.id).toBe('n1');
    expect(shard?.primary?.up).toBe(false);
    expect(shard?.stalePrimaries).toEqual([]);
  });

  it('shards - a promoted node is the primary even before the record names it', () => {
    const [shard] = shardsOf([node('n1', 's', 'replica'), node('n2', 's', 'primary')], {
      s: 'n1',
    });
    // The record is older than the samples here: the only node claiming primary is believed.
    expect(shard?.primary?.id).toBe('n2');
  });
});
