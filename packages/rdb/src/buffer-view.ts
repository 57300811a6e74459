/**
 * How the parser makes the many small Buffers it hands out (keys, `raw`, decoded elements):
 * views of part of a parent buffer, and small fresh Buffers carved out of shared slabs.
 *
 * Why: decoding a snapshot of small keys makes about a dozen Buffers per key, and making them was
 * the largest single cost of the parse. `parent.subarray(a, b)` reads `parent.buffer` every time,
 * a call into the runtime that costs twice what the view itself does; `Buffer.from(arrayBuffer,
 * offset, length)` pays for argument checks instead. Node's `subarray` only needs `length`,
 * `buffer` and `byteOffset` from its receiver, so a {@link ViewSource} holds the three, read once
 * per parent, and views are made by calling `Buffer.prototype.subarray` on it. The result is an
 * ordinary Buffer, the same as `parent.subarray(a, b)` returns. Should a Node version implement
 * `subarray` differently (checked once, at load), views are made with `Buffer.from` instead.
 */

/** What `Buffer#subarray` reads from its receiver, read once from a parent Buffer. */
export interface ViewSource {
  readonly length: number;
  readonly buffer: ArrayBufferLike;
  readonly byteOffset: number;
}

/** The {@link ViewSource} of `parent`. */
export function viewSource(parent: Uint8Array): ViewSource {
  return { length: parent.length, buffer: parent.buffer, byteOffset: parent.byteOffset };
}

type Subarray = (this: ViewSource, start: number, end: number) => Buffer;
/** Node's `Buffer#subarray` (undefined if it is not Buffer's own: then views use `Buffer.from`). */
const subarray = Object.getOwnPropertyDescriptor(Buffer.prototype, 'subarray')?.value as Subarray;

/** Whether `subarray` accepts a {@link ViewSource} as its receiver and makes a plain Buffer. */
function subarrayTakesViewSource(): boolean {
  try {
    const parent = Buffer.from([0, 1, 2, 3, 4, 5, 6, 7]).subarray(1, 7);
    const view = subarray.call(viewSource(parent), 2, 5);
    return (
      Object.getPrototypeOf(view) === Buffer.prototype &&
      view.buffer === parent.buffer &&
      view.byteOffset === parent.byteOffset + 2 &&
      view.length === 3 &&
      view[0] === 3
    );
  } catch {
    return false;
  }
}

const VIEWS_FROM_SOURCE = subarrayTakesViewSource();

/**
 * `parent.subarray(start, end)`, where `source` is {@link viewSource}`(parent)`. Positions are
 * within bounds: callers check them (it clamps them as `subarray` does otherwise).
 */
export function viewOf(source: ViewSource, start: number, end: number): Buffer {
  if (VIEWS_FROM_SOURCE) return subarray.call(source, start, end);
  return Buffer.from(source.buffer, source.byteOffset + start, Math.max(0, end - start));
}

/** Size of a slab. As with Node's pool, a Buffer kept alive keeps its whole slab alive. */
const SLAB_BYTES = 64 * 1024;
/** Larger requests get memory of their own (as `Buffer.allocUnsafe` does above 4 KiB). */
const MAX_PIECE = 4 * 1024;

let slab: ViewSource = viewSource(Buffer.alloc(0));
let slabUsed = 0;

/**
 * The {@link ViewSource} of `n` fresh, uninitialised bytes: `viewOf(source, 0, n)` is a Buffer
 * over them, as {@link allocBytes} would return, and further views of it need no
 * {@link viewSource} (which reads `buffer`, the costly part).
 */
export function allocSource(n: number): ViewSource {
  if (n > MAX_PIECE) return viewSource(Buffer.allocUnsafe(n));
  if (n > slab.length - slabUsed) {
    slab = viewSource(Buffer.allocUnsafeSlow(SLAB_BYTES));
    slabUsed = 0;
  }
  const source: ViewSource = { length: n, buffer: slab.buffer, byteOffset: slabUsed };
  slabUsed += n;
  return source;
}

/**
 * `n` uninitialised bytes, as `Buffer.allocUnsafe(n)` gives them (the caller overwrites all of
 * them), from 64 KiB slabs rather than Node's 8 KiB pool, and without its argument checks. Slabs
 * are never reused, so the result belongs to the caller.
 */
export function allocBytes(n: number): Buffer {
  if (n > MAX_PIECE) return Buffer.allocUnsafe(n);
  if (n > slab.length - slabUsed) {
    slab = viewSource(Buffer.allocUnsafeSlow(SLAB_BYTES));
    slabUsed = 0;
  }
  const start = slabUsed;
  slabUsed += n;
  return viewOf(slab, start, slabUsed);
}
