/**
 * Splitting of group-document sync messages that exceed NATS `max_payload` (a peer that is far
 * behind, e.g. one that lost its document, gets everything in one Automerge message). Each chunk
 * carries `<message id>/<index>/<count>` in a header; the receiver reassembles per sender, keeps
 * at most a few messages in progress, and drops incomplete ones after a timeout (the sync
 * protocol then simply sends again).
 */

/** Header carrying `<message id>/<index>/<count>` on chunked sync messages. */
export const CHUNK_HEADER = 'Georep-Chunk';

/** Splits `message` into pieces of at most `max` bytes (views, no copies). */
export function splitMessage(message: Uint8Array, max: number): Uint8Array[] {
  if (max <= 0) throw new Error('chunk size must be positive');
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < message.byteLength; at += max)
    pieces.push(message.subarray(at, Math.min(at + max, message.byteLength)));
  return pieces.length === 0 ? [message] : pieces;
}

/** Parses a chunk header; null when malformed. */
export function parseChunkHeader(
  value: string,
): { id: string; index: number; count: number } | null {
  const m = /^([A-Za-z0-9]{1,32})\/(\d{1,6})\/(\d{1,6})$/.exec(value);
  if (m === null) return null;
  const index = Number(m[2]);
  const count = Number(m[3]);
  if (count < 1 || index >= count) return null;
  return { id: m[1] ?? '', index, count };
}

interface Partial {
  pieces: (Uint8Array | undefined)[];
  received: number;
  bytes: number;
  startedAt: number;
}

/** Reassembles chunked messages of every sender. */
export class ChunkReassembler {
  readonly #partials = new Map<string, Partial>();
  readonly #maxBytes: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;

  constructor(options: { maxBytes?: number; timeoutMs?: number; now?: () => number } = {}) {
    this.#maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  /** Adds one chunk; returns the whole message once its last chunk arrived, else null. */
  add(from: string, header: string, data: Uint8Array): Uint8Array | null {
    const parsed = parseChunkHeader(header);
    if (parsed === null) return null;
    const now = this.#now();
    for (const [key, p] of this.#partials)
      if (now - p.startedAt > this.#timeoutMs) this.#partials.delete(key);
    const key = `${from}/${parsed.id}`;
    let partial = this.#partials.get(key);
    if (partial === undefined) {
      // One message in progress per sender: a new id means the old one will never complete.
      for (const k of this.#partials.keys()) if (k.startsWith(`${from}/`)) this.#partials.delete(k);
      partial = {
        pieces: new Array<Uint8Array | undefined>(parsed.count),
        received: 0,
        bytes: 0,
        startedAt: now,
      };
      this.#partials.set(key, partial);
    }
    if (partial.pieces.length !== parsed.count || partial.pieces[parsed.index] !== undefined)
      return null;
    partial.pieces[parsed.index] = data.slice();
    partial.received += 1;
    partial.bytes += data.byteLength;
    if (partial.bytes > this.#maxBytes) {
      this.#partials.delete(key);
      return null;
    }
    if (partial.received < parsed.count) return null;
    this.#partials.delete(key);
    const whole = new Uint8Array(partial.bytes);
    let at = 0;
    for (const piece of partial.pieces) {
      if (piece === undefined) return null;
      whole.set(piece, at);
      at += piece.byteLength;
    }
    return whole;
  }
}
