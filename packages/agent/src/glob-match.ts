/**
 * Glob patterns with Redis's stringmatch syntax: `*` `?` `[abc]` `[^a]` `[a-z]` `\x`, as
 * PSUBSCRIBE takes them. Matched by greedy backtracking to the last star, which is
 * O(pattern x subject) whatever the pattern, so a client cannot make matching exponential with
 * `*a*a*a*b`.
 */

type GlobToken = { star: true } | { star: false; test: (c: string) => boolean };

/**
 * Compiles `pattern` once into a matcher, so a pattern subscription costs one parse however many
 * channels are published. Matching is case-sensitive and covers the whole subject. Malformed
 * patterns are read the way Redis reads them (a class without `]` runs to the end; a trailing
 * `\` is a literal backslash), never rejected.
 *
 * @example
 * ```ts
 * const matches = compileGlob('+switch-*');
 * matches('+switch-master'); // true
 * matches('+sdown'); // false
 * ```
 */
export function compileGlob(pattern: string): (subject: string) => boolean {
  const tokens: GlobToken[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (tokens.at(-1)?.star !== true) tokens.push({ star: true });
    } else if (c === '?') {
      tokens.push({ star: false, test: () => true });
    } else if (c === '[') {
      const negate = pattern[i + 1] === '^';
      if (negate) i++;
      const ranges: [string, string][] = [];
      // As in Redis, a class without `]` runs to the end of the pattern.
      for (i++; i < pattern.length && pattern[i] !== ']'; i++) {
        const from = pattern[i]!;
        if (from === '\\' && i + 1 < pattern.length) {
          i++;
          ranges.push([pattern[i]!, pattern[i]!]);
        } else if (pattern[i + 1] === '-' && i + 2 < pattern.length) {
          const to = pattern[i + 2]!;
          ranges.push(from <= to ? [from, to] : [to, from]);
          i += 2;
        } else {
          ranges.push([from, from]);
        }
      }
      const inClass = (ch: string) => ranges.some(([lo, hi]) => ch >= lo && ch <= hi);
      tokens.push({ star: false, test: (ch) => inClass(ch) !== negate });
    } else {
      const literal = c === '\\' && i + 1 < pattern.length ? pattern[++i]! : c;
      tokens.push({ star: false, test: (ch) => ch === literal });
    }
  }
  return (subject) => {
    let t = 0;
    let s = 0;
    let starToken = -1;
    let starSubject = 0;
    while (s < subject.length) {
      const token = tokens[t];
      if (token !== undefined && !token.star && token.test(subject[s]!)) {
        t++;
        s++;
      } else if (token?.star === true) {
        starToken = t++;
        starSubject = s;
      } else if (starToken !== -1) {
        t = starToken + 1;
        s = ++starSubject;
      } else {
        return false;
      }
    }
    while (tokens[t]?.star === true) t++;
    return t === tokens.length;
  };
}
