import { describe, expect, it } from 'vitest';
import { GroupDocument, resyncOf, setResync, setResyncLoad } from '@georep/group';

describe('the native loads of a resync in the group document', () => {
  it('resync loads - another copy of the document sees a load until it is over', () => {
    const doc = GroupDocument.create('orders', ['eu-west', 'ap-south']);
    const load = {
      node: { host: '10.0.0.5', port: 6379 },
      master: { host: '10.0.0.9', port: 41000 },
    };
    // Without a resync there is nothing to record it in.
    setResyncLoad(doc, 'ap-south', 'main', load);
    expect(resyncOf(doc, 'ap-south')).toBeNull();

    setResync(doc, 'ap-south', {
      from: 'eu-west',
      operationId: 'op-1',
      previous: 'force-unlinked',
    });
    expect(resyncOf(doc, 'ap-south')?.loads).toBeUndefined();
    setResyncLoad(doc, 'ap-south', 'main', load);
    setResyncLoad(doc, 'ap-south', 's2', { ...load, node: { host: '10.0.0.6', port: 6380 } });

    // What an agent taking over reads: its own copy, loaded from the other's saved changes.
    const other = GroupDocument.load(doc.save(), 'orders');
    expect(resyncOf(other, 'ap-south')).toEqual({
      from: 'eu-west',
      operationId: 'op-1',
      previous: 'force-unlinked',
      loads: { main: load, s2: { ...load, node: { host: '10.0.0.6', port: 6380 } } },
    });

    setResyncLoad(other, 'ap-south', 'main', null);
    expect(Object.keys(resyncOf(other, 'ap-south')?.loads ?? {})).toEqual(['s2']);
    // Clearing a load that is not there writes nothing.
    const heads = other.heads();
    setResyncLoad(other, 'ap-south', 'main', null);
    expect(other.heads()).toEqual(heads);

    // The end of the resync takes its loads with it.
    setResync(other, 'ap-south', null);
    expect(resyncOf(other, 'ap-south')).toBeNull();
  });
});
