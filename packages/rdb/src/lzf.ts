/**
 * LZF, the byte-oriented LZ77 variant Redis uses for compressed RDB strings.
 *
 * The stream is a sequence of control bytes:
 * - `c < 32`: a literal run, the next `c + 1` bytes are copied as they are;
 * - otherwise a back-reference: length `(c >> 5) + 2` (when `c >> 5 == 7` one more byte is added
 *   to the length), distance `((c & 0x1f) << 8) + next byte + 1` back from the output position.
 *   The source and destination may overlap, which is how runs of one byte are encoded.
 *
 * The decompressor validates every step, so garbage input ends in an {@link RdbCorruptError}
 * instead of an out-of-bounds read or a wrong-sized result.
 */
import { RdbCorruptError } from './errors.js';
import { allocBytes } from './buffer-view.js';

/** Longest literal run one control byte can announce. */
const MAX_LITERAL = 32;
/** Longest back-reference: 7 + 255 extra, plus the implicit 2. */
const MAX_MATCH = 264;
/** Farthest a back-reference can reach (13 bits of distance, plus one). */
const MAX_DISTANCE = 8192;
const HASH_BITS = 14;
/**
 * From this length on a back-reference is copied natively (`copyWithin`/`fill`), not bytewise:
 * a native copy costs about as much as a dozen bytes copied in a loop, whatever its length.
 */
const NATIVE_COPY = 12;
/**
 * `Uint8Array`'s own methods, called on the output Buffer: `Buffer` inherits them, but calling
 * them through the prototype that defines them keeps the call site monomorphic and cheaper.
 */
// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called with `.call`
const { copyWithin, fill } = Uint8Array.prototype;

/**
 * Decompresses an LZF block whose decompressed size is known (RDB stores it next to the data).
 *
 * @param input - the compressed bytes.
 * @param expectedLength - the decompressed length announced by the RDB string header.
 * @param offset - byte offset of `input` in the file, used in error offsets.
 * @throws RdbCorruptError when the block is malformed or does not produce exactly
 *   `expectedLength` bytes.
 */
export function lzfDecompress(input: Uint8Array, expectedLength: number, offset = 0): Buffer {
  return lzfDecompressRange(input, 0, input.length, expectedLength, offset);
}

/**
 * {@link lzfDecompress} of `input[start..end)`, without making a view of it first. Error offsets
 * are `offset` plus the position relative to `start`.
 */
export function lzfDecompressRange(
  input: Uint8Array,
  start: number,
  end: number,
  expectedLength: number,
  offset = 0,
): Buffer {
  const out = allocBytes(expectedLength);
  const base = offset - start;
  let ip = start;
  let op = 0;
  while (ip < end) {
    const ctrl = input[ip++]!;
    if (ctrl < 32) {
      const len = ctrl + 1;
      if (ip + len > end) throw corrupt('literal run past the end of the input', base + ip);
      if (op + len > expectedLength) throw corrupt('output longer than announced', base + ip);
      // Runs are at most 32 bytes: a loop is cheaper than creating a subarray to copy from.
      for (let k = 0; k < len; k++) out[op++] = input[ip++]!;
      continue;
    }
    let len = ctrl >> 5;
    if (len === 7) {
      if (ip >= end) throw corrupt('back-reference length past the end', base + ip);
      len += input[ip++]!;
    }
    if (ip >= end) throw corrupt('back-reference distance past the end', base + ip);
    const distance = ((ctrl & 0x1f) << 8) + input[ip++]! + 1;
    const ref = op - distance;
    len += 2;
    if (ref < 0) throw corrupt('back-reference before the start of the output', base + ip);
    if (op + len > expectedLength) throw corrupt('output longer than announced', base + ip);
    if (len < NATIVE_COPY) {
      // Byte by byte on purpose: when the source overlaps the destination, bytes written earlier
      // in this copy must be read again (that is how LZF encodes long runs).
      for (let k = 0; k < len; k++) out[op + k] = out[ref + k]!;
    } else if (distance >= len) {
      copyWithin.call(out, op, ref, ref + len);
    } else if (distance === 1) {
      // `Uint8Array#fill`: without the argument checks of `Buffer#fill`, which cost more here.
      fill.call(out, out[ref]!, op, op + len);
    } else {
      // Overlapping: from `ref` on, the output repeats with period `distance`. Copying from `ref`
      // as much as is already written (a whole number of periods, which doubles every step)
      // never reads a byte this copy has yet to write.
      let done = 0;
      while (done < len) {
        const n = Math.min(len - done, distance + done);
        if (n < NATIVE_COPY) {
          for (let k = 0; k < n; k++) out[op + done + k] = out[ref + k]!;
        } else {
          copyWithin.call(out, op + done, ref, ref + n);
        }
        done += n;
      }
    }
    op += len;
  }
  if (op !== expectedLength) {
    throw corrupt(`decompressed ${op} bytes, header announced ${expectedLength}`, base + ip);
  }
  return out;
}

/**
 * Compresses `input` into an LZF block readable by Redis (and by {@link lzfDecompress}).
 *
 * A simple greedy compressor with a 3-byte hash: it does not aim for liblzf's ratio, only for a
 * valid stream. The result can be larger than the input for incompressible data; callers (the
 * RDB writer) keep the plain form in that case, as Redis does.
 */
export function lzfCompress(input: Uint8Array): Buffer {
  const inLen = input.length;
  // Worst case: one control byte per 32 literals.
  const out = Buffer.allocUnsafe(inLen + Math.ceil(inLen / MAX_LITERAL) + 1);
  // Small inputs get a small table: clearing 16K entries would cost more than compressing.
  const bits = Math.min(HASH_BITS, Math.max(8, Math.ceil(Math.log2(inLen + 1))));
  const table = new Int32Array(1 << bits).fill(-1);
  let op = 0;
  let litStart = -1; // position of the open literal run's control byte, -1 when none
  let litLen = 0;
  let ip = 0;

  const closeLiteral = (): void => {
    if (litStart >= 0) out[litStart] = litLen - 1;
    litStart = -1;
    litLen = 0;
  };
  const pushLiteral = (byte: number): void => {
    if (litStart < 0) {
      litStart = op++;
    }
    out[op++] = byte;
    litLen++;
    if (litLen === MAX_LITERAL) closeLiteral();
  };

  while (ip + 2 < inLen) {
    const h =
      Math.imul((input[ip]! << 16) | (input[ip + 1]! << 8) | input[ip + 2]!, 0x9e3779b1) >>>
      (32 - bits);
    const ref = table[h]!;
    table[h] = ip;
    const distance = ip - ref - 1;
    if (
      ref >= 0 &&
      distance < MAX_DISTANCE &&
      input[ref] === input[ip] &&
      input[ref + 1] === input[ip + 1] &&
      input[ref + 2] === input[ip + 2]
    ) {
      const maxLen = Math.min(MAX_MATCH, inLen - ip);
      let len = 3;
      while (len < maxLen && input[ref + len] === input[ip + len]) len++;
      closeLiteral();
      const encLen = len - 2;
      if (encLen < 7) {
        out[op++] = (encLen << 5) | (distance >> 8);
      } else {
        out[op++] = (7 << 5) | (distance >> 8);
        out[op++] = encLen - 7;
      }
      out[op++] = distance & 0xff;
      ip += len;
    } else {
      pushLiteral(input[ip]!);
      ip++;
    }
  }
  while (ip < inLen) pushLiteral(input[ip++]!);
  closeLiteral();
  return out.subarray(0, op);
}

function corrupt(what: string, offset: number): RdbCorruptError {
  return new RdbCorruptError(`LZF: ${what}`, { offset });
}
