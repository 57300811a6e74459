import { describe, expect, it } from 'vitest';
import { GroupDocument, regionShards, setRegionShards } from '@georep/group';

describe('region shards in the group document', () => {
  it('shards - absent means the default shard; only a change is written', () => {
    const doc = GroupDocument.create('orders', ['eu-west', 'us-east']);
    expect(regionShards(doc, 'eu-west')).toEqual(['main']);
    const heads = doc.heads();
    setRegionShards(doc, 'eu-west', ['main']);
    expect(doc.heads()).toEqual(heads);

    setRegionShards(doc, 'eu-west', ['s2', 's1', 's2']);
    expect(regionShards(doc, 'eu-west')).toEqual(['s1', 's2']);
    const after = doc.heads();
    setRegionShards(doc, 'eu-west', ['s1', 's2']);
    expect(doc.heads()).toEqual(after);
    expect(regionShards(doc, 'us-east')).toEqual(['main']);

    setRegionShards(doc, 'eu-west', ['main']);
    expect(regionShards(doc, 'eu-west')).toEqual(['main']);
    setRegionShards(doc, 'nowhere', ['s1']);
    expect(regionShards(doc, 'nowhere')).toEqual(['main']);
  });
});
