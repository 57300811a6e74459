import { describe, expect, it } from 'vitest';
import {
  ClockDriftError,
  HybridLogicalClock,
  compareHlc,
  decodeHlc,
  encodeHlc,
  type HlcTimestamp,
} from '@georep/core';

describe('hlc', () => {
  it('hlc - ticks are strictly increasing even when the physical clock stalls or goes back', () => {
    let now = 1000;
    const clock = new HybridLogicalClock('eu-west', { now: () => now });
    const a = clock.tick();
    const b = clock.tick();
    now = 900; // NTP stepped the clock back
    const c = clock.tick();
    now = 2000;
    const d = clock.tick();
    expect([compareHlc(a, b), compareHlc(b, c), compareHlc(c, d)]).toEqual([-1, -1, -1]);
    expect(d).toEqual({ ms: 2000, counter: 0, region: 'eu-west' });
  });

  it('hlc - receiving a timestamp from the future moves the clock past it', () => {
    const clock = new HybridLogicalClock('eu-west', { now: () => 1000 });
    const remote: HlcTimestamp = { ms: 1500, counter: 7, region: 'us-east' };
    const after = clock.receive(remote);
    expect(compareHlc(remote, after)).toBe(-1);
    expect(compareHlc(after, clock.tick())).toBe(-1);
  });

  it('hlc - a remote clock ahead by more than maxDriftMs is refused and leaves the clock alone', () => {
    const clock = new HybridLogicalClock('eu-west', { now: () => 1000, maxDriftMs: 100 });
    const before = clock.tick();
    expect(() => clock.receive({ ms: 5000, counter: 0, region: 'us-east' })).toThrow(
      ClockDriftError,
    );
    expect(clock.tick().ms).toBe(before.ms);
  });

  it('hlc - the string encoding sorts in HLC order and decodes back', () => {
    const stamps: HlcTimestamp[] = [
      { ms: 2, counter: 0, region: 'b' },
      { ms: 1, counter: 10, region: 'a' },
      { ms: 1, counter: 9, region: 'z' },
      { ms: 1, counter: 9, region: 'b' },
      { ms: 1_700_000_000_000, counter: 0, region: 'a' },
    ];
    const byEncoding = [...stamps].sort((x, y) => (encodeHlc(x) < encodeHlc(y) ? -1 : 1));
    const byCompare = [...stamps].sort(compareHlc);
    expect(byEncoding).toEqual(byCompare);
    for (const s of stamps) expect(decodeHlc(encodeHlc(s))).toEqual(s);
    expect(() => decodeHlc('garbage')).toThrow(/malformed/);
  });
});
