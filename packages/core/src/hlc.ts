/**
 * Hybrid logical clock (Kulkarni et al.): timestamps that follow physical time, never go
 * backwards, and order causally related events across regions. Ties between regions break on
 * the region name, so every tag is unique and the order is total.
 */
import { GeorepError } from './errors.js';

/** One HLC timestamp: physical milliseconds, a logical counter, and the region that made it. */
export interface HlcTimestamp {
  readonly ms: number;
  readonly counter: number;
  readonly region: string;
}

/** Raised when a remote timestamp is further in the future than the allowed drift. */
export class ClockDriftError extends GeorepError {
  override name = 'ClockDriftError';
  constructor(
    readonly remote: HlcTimestamp,
    readonly localMs: number,
    readonly maxDriftMs: number,
  ) {
    super(
      'hlc.clock-drift',
      `timestamp from region ${remote.region} is ${remote.ms - localMs} ms ahead of this clock`,
      {
        hint: 'synchronise the clocks of the hosts (NTP/chrony); georep tolerates at most maxDriftMs of skew',
        details: { remote, localMs, maxDriftMs },
      },
    );
  }
}

/** Total order: by ms, then counter, then region name. Negative when `a` is earlier. */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  if (a.region === b.region) return 0;
  return a.region < b.region ? -1 : 1;
}

const MS_DIGITS = 15;
const COUNTER_DIGITS = 6;

/** Encodes a timestamp as a string whose lexicographic order is the HLC order. */
export function encodeHlc(t: HlcTimestamp): string {
  return `${String(t.ms).padStart(MS_DIGITS, '0')}.${String(t.counter).padStart(COUNTER_DIGITS, '0')}.${t.region}`;
}

/** Inverse of {@link encodeHlc}; throws `hlc.malformed` on anything else. */
export function decodeHlc(s: string): HlcTimestamp {
  const m = /^(\d{15})\.(\d{6})\.([a-z0-9-]+)$/.exec(s);
  if (m === null) throw new GeorepError('hlc.malformed', `malformed HLC timestamp "${s}"`);
  return { ms: Number(m[1]), counter: Number(m[2]), region: m[3] ?? '' };
}

/** Options of {@link HybridLogicalClock}. */
export interface HlcOptions {
  /** Physical clock, injectable for tests. */
  now?: () => number;
  /** Largest accepted lead of a remote timestamp over the local physical clock. */
  maxDriftMs?: number;
}

/** The clock of one region. Not shared between regions; each agent owns one. */
export class HybridLogicalClock {
  readonly region: string;
  #ms = 0;
  #counter = 0;
  readonly #now: () => number;
  readonly #maxDriftMs: number;

  constructor(region: string, options: HlcOptions = {}) {
    this.region = region;
    this.#now = options.now ?? Date.now;
    this.#maxDriftMs = options.maxDriftMs ?? 60_000;
  }

  /** A new timestamp for a local event, strictly after every timestamp seen so far. */
  tick(): HlcTimestamp {
    const physical = this.#now();
    if (physical > this.#ms) {
      this.#ms = physical;
      this.#counter = 0;
    } else {
      this.#counter += 1;
    }
    return { ms: this.#ms, counter: this.#counter, region: this.region };
  }

  /**
   * Advances the clock past a timestamp received from another region and returns a new local
   * timestamp after both. Throws {@link ClockDriftError} (and leaves the clock unchanged) when the
   * remote clock is ahead by more than `maxDriftMs`.
   */
  receive(remote: HlcTimestamp): HlcTimestamp {
    const physical = this.#now();
    if (remote.ms - physical > this.#maxDriftMs) {
      throw new ClockDriftError(remote, physical, this.#maxDriftMs);
    }
    const ms = Math.max(this.#ms, remote.ms, physical);
    if (ms === this.#ms && ms === remote.ms) {
      this.#counter = Math.max(this.#counter, remote.counter) + 1;
    } else if (ms === this.#ms) {
      this.#counter += 1;
    } else if (ms === remote.ms) {
      this.#counter = remote.counter + 1;
    } else {
      this.#counter = 0;
    }
    this.#ms = ms;
    return { ms: this.#ms, counter: this.#counter, region: this.region };
  }
}
