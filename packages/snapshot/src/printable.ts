/**
 * Key names for people: Redis keys are arbitrary bytes, so they are shown the way redis-cli
 * shows them (`sdscatrepr`): printable ASCII as is, `\n`, `\r`, `\t`, `\"`, `\\` escaped, every
 * other byte as `\xHH`. The result is unambiguous and safe to print or put in JSON.
 */
const ESCAPES: Record<number, string> = {
  0x5c: '\\\\',
  0x22: '\\"',
  0x0a: '\\n',
  0x0d: '\\r',
  0x09: '\\t',
  0x07: '\\a',
  0x08: '\\b',
};

/** The escaped, printable form of `key`. */
export function printableKey(key: Uint8Array): string {
  let out = '';
  for (const b of key) {
    const esc = ESCAPES[b];
    if (esc !== undefined) out += esc;
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}
