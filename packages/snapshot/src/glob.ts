/**
 * Redis-style glob matching on key bytes, the same dialect as `KEYS`/`SCAN MATCH` (`stringmatchlen`
 * in Redis's util.c): `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\` escapes. Keys are binary, so the
 * match works on bytes, never on decoded strings.
 */

const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const CARET = 0x5e;
const DASH = 0x2d;
const BACKSLASH = 0x5c;

/** A compiled glob; {@link matches} tests one key. */
export class KeyGlob {
  /** The pattern as given. */
  readonly pattern: string;
  readonly #p: Buffer;

  constructor(pattern: string) {
    this.pattern = pattern;
    this.#p = Buffer.from(pattern, 'utf8');
  }

  /** Whether `key` matches the pattern as Redis would match it. */
  matches(key: Uint8Array): boolean {
    return match(this.#p, 0, key, 0, 0);
  }
}

/** Recursion depth cap (Redis uses the same idea against pathological patterns). */
const MAX_NESTING = 1000;

function match(p: Uint8Array, pi: number, s: Uint8Array, si: number, nesting: number): boolean {
  if (nesting > MAX_NESTING) return false;
  while (pi < p.length && si < s.length) {
    const c = p[pi]!;
    if (c === STAR) {
      while (pi + 1 < p.length && p[pi + 1] === STAR) pi++;
      if (pi + 1 === p.length) return true;
      for (let k = si; k < s.length; k++) {
        if (match(p, pi + 1, s, k, nesting + 1)) return true;
      }
      return false;
    }
    if (c === QUESTION) {
      pi++;
      si++;
      continue;
    }
    if (c === OPEN) {
      const r = matchClass(p, pi + 1, s[si]!);
      if (!r.matched) return false;
      pi = r.next;
      si++;
      continue;
    }
    if (c === BACKSLASH && pi + 1 < p.length) pi++;
    if (p[pi] !== s[si]) return false;
    pi++;
    si++;
  }
  // The key is consumed: only `*` may remain in the pattern.
  while (pi < p.length && p[pi] === STAR) pi++;
  return pi === p.length && si === s.length;
}

/** Matches one byte against a `[...]` class starting after `[`; returns where the class ends. */
function matchClass(p: Uint8Array, start: number, ch: number): { matched: boolean; next: number } {
  let i = start;
  const negate = p[i] === CARET;
  if (negate) i++;
  let matched = false;
  for (;;) {
    if (i >= p.length) {
      // Unterminated class: Redis treats the end of the pattern as its end.
      break;
    }
    const c = p[i]!;
    if (c === BACKSLASH && i + 1 < p.length) {
      if (p[i + 1] === ch) matched = true;
      i += 2;
      continue;
    }
    if (c === CLOSE) {
      i++;
      break;
    }
    if (i + 2 < p.length && p[i + 1] === DASH && p[i + 2] !== CLOSE) {
      let lo = c;
      let hi = p[i + 2]!;
      if (lo > hi) [lo, hi] = [hi, lo];
      if (ch >= lo && ch <= hi) matched = true;
      i += 3;
      continue;
    }
    if (c === ch) matched = true;
    i++;
  }
  return { matched: negate ? !matched : matched, next: i };
}
