import { describe, expect, it } from 'vitest';
import { maintenanceWindowAt } from '@georep/core';

const at = (iso: string) => Date.parse(iso);

describe('maintenance window', () => {
  const berlin = { start: '02:30', durationMinutes: 60, timeZone: 'Europe/Berlin' };

  it('maintenance window - inside the window it is open and says when it closes', () => {
    // 02:45 in Berlin (winter, UTC+1) is 01:45 UTC.
    const w = maintenanceWindowAt(berlin, at('2026-11-25T01:45:00Z'));
    expect(w.open).toBe(true);
    expect(new Date(w.opensAt).toISOString()).toBe('2026-11-25T01:30:00.000Z');
    expect(new Date(w.closesAt).toISOString()).toBe('2026-11-25T02:30:00.000Z');
  });

  it('maintenance window - before and after it, the next opening is given', () => {
    const before = maintenanceWindowAt(berlin, at('2026-11-25T01:29:59Z'));
    expect(before.open).toBe(false);
    expect(new Date(before.opensAt).toISOString()).toBe('2026-11-25T01:30:00.000Z');
    const after = maintenanceWindowAt(berlin, at('2026-11-25T02:30:00Z'));
    expect(after.open).toBe(false);
    expect(new Date(after.opensAt).toISOString()).toBe('2026-11-26T01:30:00.000Z');
  });

  it('maintenance window - the wall clock of the zone is followed across daylight saving', () => {
    // Summer: Berlin is UTC+2, so 02:30 local is 00:30 UTC.
    const w = maintenanceWindowAt(berlin, at('2026-07-01T00:40:00Z'));
    expect(w.open).toBe(true);
    expect(new Date(w.opensAt).toISOString()).toBe('2026-07-01T00:30:00.000Z');
  });

  it('maintenance window - a window across midnight and a start with seconds', () => {
    const late = { start: '23:30:15', durationMinutes: 90, timeZone: 'UTC' };
    const w = maintenanceWindowAt(late, at('2026-11-26T00:10:00Z'));
    expect(w.open).toBe(true);
    expect(new Date(w.opensAt).toISOString()).toBe('2026-11-25T23:30:15.000Z');
  });
});
