/**
 * One-pass decoding of the values that are plain sequences of RDB strings: strings (type 0),
 * linked lists (1), hashtable sets (2) and hashtable hashes (4).
 *
 * The parser normally walks over a value to find where it ends, copies it as the record's `raw`,
 * then decodes that copy so that the strings of the value are views of `raw`. For these types the
 * walk can be skipped: the value is decoded straight from the read window, LZF and integer strings
 * are materialised on the way (they never were views of anything), and verbatim strings are only
 * located. Once the end is known, `raw` is copied and the verbatim strings become views of it.
 * The result is the same, string for string, as decoding the copy; errors are those the decoder
 * meets first, in the order a plain decoder meets them, which is also what the parser reports
 * when the walk fails.
 */
import { RdbType } from './constants.js';
import { viewOf } from './buffer-view.js';
import type { ViewSource } from './buffer-view.js';
import type { RdbCursor } from './cursor.js';
import type { HashEntry, RdbValue } from './types.js';

/** Values with more strings than this take the walk-then-decode path (bounded scratch space). */
const MAX_STRINGS = 1024;

/** Whether {@link StringSequence} decodes values of this type. */
export function isStringSequenceType(typeCode: number): boolean {
  return (
    typeCode === RdbType.STRING ||
    typeCode === RdbType.LIST ||
    typeCode === RdbType.SET ||
    typeCode === RdbType.HASH
  );
}

/**
 * Scratch space for decoding one string-sequence value at a time, reused from key to key (one per
 * parse). Not reentrant.
 */
export class StringSequence {
  /** Materialised strings (LZF, integers, empty), or undefined where a verbatim one is. */
  readonly #parts: (Buffer | undefined)[] = [];
  /** For verbatim strings: their start in the window, and their length. */
  readonly #at = new Float64Array(MAX_STRINGS);
  readonly #length = new Float64Array(MAX_STRINGS);
  #count = 0;

  /**
   * Decodes the strings of a value of type `typeCode` from `cur` (at the value's first byte).
   * Returns false, with the cursor untouched, when the value has more than {@link MAX_STRINGS}.
   * Throws what decoding the value throws.
   */
  read(cur: RdbCursor, typeCode: number): boolean {
    const start = cur.pos;
    let n = 1;
    if (typeCode !== RdbType.STRING) {
      n = cur.len();
      if (typeCode === RdbType.HASH) n *= 2;
      if (n > MAX_STRINGS) {
        cur.pos = start;
        return false;
      }
    }
    const parts = this.#parts;
    this.#count = 0;
    for (let i = 0; i < n; i++) {
      const s = cur.stringOrVerbatim();
      parts[i] = s;
      if (s === undefined) {
        this.#at[i] = cur.verbatimAt;
        this.#length[i] = cur.pos - cur.verbatimAt;
      }
    }
    this.#count = n;
    return true;
  }

  /**
   * The value read by {@link StringSequence.read}, its verbatim strings made views of `raw`
   * (given by its {@link ViewSource}): the type byte followed by the window's bytes from
   * `valueStart` (a window position).
   */
  toValue(typeCode: number, raw: ViewSource, valueStart: number): RdbValue {
    const n = this.#count;
    const parts = this.#parts;
    const source = raw;
    // raw[1] is the window byte at valueStart.
    const shift = 1 - valueStart;
    for (let i = 0; i < n; i++) {
      if (parts[i] === undefined) {
        const at = this.#at[i]! + shift;
        parts[i] = viewOf(source, at, at + this.#length[i]!);
      }
    }
    let value: RdbValue;
    switch (typeCode) {
      case RdbType.STRING:
        value = { type: 'string', value: parts[0]! };
        break;
      case RdbType.HASH: {
        const out: HashEntry[] = [];
        for (let i = 0; i < n; i += 2) out.push({ field: parts[i]!, value: parts[i + 1]! });
        value = { type: 'hash', value: out };
        break;
      }
      default: {
        const out = parts.slice(0, n) as Buffer[];
        value =
          typeCode === RdbType.LIST ? { type: 'list', value: out } : { type: 'set', value: out };
      }
    }
    // Let go of the strings: the scratch space must not keep this value alive.
    for (let i = 0; i < n; i++) parts[i] = undefined;
    this.#count = 0;
    return value;
  }
}
