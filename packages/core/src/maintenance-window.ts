/**
 * When a region's maintenance window is open. The window is a daily start time in a time zone
 * and a length; daylight-saving changes are the time zone database's business (croner handles
 * them), so "02:30 Europe/Berlin" means 02:30 on the wall clock there, every day.
 */
import { Cron } from 'croner';

/** True when `Intl` knows the time zone (IANA names such as `Europe/Berlin`, and `UTC`). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** A daily window: `start` is `HH:MM` (or `HH:MM:SS`) on the wall clock of `timeZone`. */
export interface DailyWindow {
  start: string;
  durationMinutes: number;
  timeZone: string;
}

/** The window containing `now`, or the next one. Times are Unix ms. */
export interface WindowTimes {
  open: boolean;
  opensAt: number;
  closesAt: number;
}

/** Where `now` falls relative to `window`: inside one (open) or before the next. */
export function maintenanceWindowAt(window: DailyWindow, now = Date.now()): WindowTimes {
  const [hours, minutes, seconds = 0] = window.start.split(':').map(Number);
  const cron = new Cron(`${seconds} ${minutes} ${hours} * * *`, {
    timezone: window.timeZone,
    paused: true,
  });
  const lengthMs = window.durationMinutes * 60_000;
  // The first start after (now - length): if it is not after now, now is inside that window.
  const start = cron.nextRun(new Date(now - lengthMs));
  if (start === null) throw new Error(`no start time for the window ${window.start}`);
  const opensAt = start.getTime();
  return { open: opensAt <= now, opensAt, closesAt: opensAt + lengthMs };
}
