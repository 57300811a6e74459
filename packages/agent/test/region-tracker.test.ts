import { describe, expect, it } from 'vitest';
import type { Heartbeat } from '@georep/core';
import { RegionTracker, decodeHeartbeat } from '@georep/agent';

function beat(
  region: string,
  seq: number,
  view: Record<string, 'up' | 'suspect'>,
  agentId = `${region}/h/1`,
): Heartbeat {
  return {
    v: 1,
    group: 'g',
    region,
    agent: { id: agentId, version: '0.1.0', startedAt: 0 },
    seq,
    sentAt: 0,
    intervalMs: 1000,
    downAfterMs: 5000,
    nodes: [
      { id: `${region}-1`, host: '127.0.0.1', port: 1, up: true, role: 'primary', sampledAt: 0 },
    ],
    view,
  };
}

function setup() {
  let now = 0;
  const tracker = new RegionTracker({
    group: 'g',
    self: 'a',
    expected: ['a', 'b', 'c'],
    downAfterMs: 5000,
    now: () => now,
  });
  return { tracker, advance: (ms: number) => (now += ms) };
}

describe('region tracker', () => {
  it('region tracker - a region never heard from is suspect, and up once its heartbeat arrives', () => {
    const { tracker } = setup();
    expect(tracker.localView()).toEqual({ a: 'up', b: 'suspect', c: 'suspect' });
    tracker.observe(beat('b', 1, { a: 'up', b: 'up', c: 'suspect' }));
    expect(tracker.localView().b).toBe('up');
  });

  it('region tracker - silence longer than downAfterMs makes a region suspect, then down when a majority of live agents agree', () => {
    const { tracker, advance } = setup();
    tracker.observe(beat('b', 1, { a: 'up', b: 'up', c: 'up' }));
    tracker.observe(beat('c', 1, { a: 'up', b: 'up', c: 'up' }));
    advance(4000);
    tracker.observe(beat('b', 2, { a: 'up', b: 'up', c: 'up' }));
    advance(1500); // c silent for 5.5 s, b heard 1.5 s ago
    // a suspects c, b still says up: 1 of 2 live agents is not a majority.
    let c = tracker.states().get('c')!;
    expect(c.state).toBe('suspect');
    expect(c.seenSuspectBy).toEqual(['a']);
    expect(c.seenUpBy).toEqual(['b']);
    tracker.observe(beat('b', 3, { a: 'up', b: 'up', c: 'suspect' }));
    c = tracker.states().get('c')!;
    expect(c.state).toBe('down');
    expect(c.seenSuspectBy).toEqual(['a', 'b']);
    // c comes back
    tracker.observe(beat('c', 1, { a: 'up', b: 'up', c: 'up' }, 'c/h/2'));
    expect(tracker.states().get('c')!.state).toBe('up');
  });

  it('region tracker - a report hides stale nodes of a region that is not up', () => {
    const { tracker, advance } = setup();
    tracker.observe(beat('b', 1, { a: 'up', b: 'up' }));
    advance(6000);
    const b = tracker.report('a').regions.find((r) => r.name === 'b')!;
    expect(b.state).not.toBe('up');
    expect(b.primary).toBeNull();
    expect(b.nodes.every((n) => !n.up)).toBe(true);
    expect(b.nodes[0]!.error).toMatch(/last heartbeat 6s ago/);
    expect(b.heartbeatAgeMs).toBe(6000);
  });

  it('region tracker - reordered heartbeats of one agent run are ignored, a restarted agent is accepted', () => {
    const { tracker, advance } = setup();
    tracker.observe(beat('b', 5, { a: 'up', b: 'up' }));
    advance(4000);
    tracker.observe(beat('b', 4, { a: 'up', b: 'up' }));
    advance(2000);
    expect(tracker.localView().b).toBe('suspect');
    tracker.observe(beat('b', 1, { a: 'up', b: 'up' }, 'b/h/999'));
    expect(tracker.localView().b).toBe('up');
  });
});

describe('heartbeat decoding', () => {
  const enc = (v: unknown) =>
    new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

  it('heartbeat - garbage, other groups and missing fields are rejected with a reason', () => {
    expect(decodeHeartbeat(enc('not json{'), 'g')).toEqual({ rejected: 'not JSON' });
    expect(decodeHeartbeat(enc([1, 2]), 'g')).toEqual({ rejected: 'not an object' });
    expect(decodeHeartbeat(enc({ ...beat('b', 1, {}), v: 2 }), 'g')).toEqual({
      rejected: 'unsupported heartbeat version 2',
    });
    expect(decodeHeartbeat(enc(beat('b', 1, {})), 'other')).toEqual({
      rejected: 'heartbeat of group g',
    });
    expect(decodeHeartbeat(enc({ ...beat('b', 1, {}), nodes: [{ id: 1 }] }), 'g')).toEqual({
      rejected: 'missing or mistyped fields',
    });
    expect(decodeHeartbeat(enc({ ...beat('b', 1, {}), view: { a: 'down' } }), 'g')).toEqual({
      rejected: 'missing or mistyped fields',
    });
  });

  it('heartbeat - a valid heartbeat decodes unchanged', () => {
    const hb = beat('b', 1, { a: 'up' });
    expect(decodeHeartbeat(enc(hb), 'g')).toEqual(hb);
  });
});
