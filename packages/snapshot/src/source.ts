/**
 * RDB byte sources for import and inspection. An import reads its source twice (a verify pass,
 * then the write pass), so a source is either re-iterable or a factory returning a fresh stream.
 */
import { createReadStream } from 'node:fs';
import { ImportUsageError } from './errors.js';

/** An RDB byte stream, or a factory of fresh streams over the same bytes. */
export type RdbSource = AsyncIterable<Uint8Array> | (() => AsyncIterable<Uint8Array>);

/** Read size for files: large reads keep the parser's refills few. */
const FILE_CHUNK = 1024 * 1024;

/**
 * A re-iterable source over a local file: each iteration opens the file again. Pass this (or
 * `store.read(name)`, which is re-iterable too) where a source is read more than once.
 */
export function fileSource(path: string): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () =>
      createReadStream(path, { highWaterMark: FILE_CHUNK })[Symbol.asyncIterator](),
  };
}

/**
 * Opens one pass over `source`. A Node stream or a generator cannot be read twice; callers that
 * need two passes must give a factory or a re-iterable object, and are told so.
 */
export function openSource(source: RdbSource, pass: number): AsyncIterable<Uint8Array> {
  if (typeof source === 'function') return source();
  if (pass > 0 && isSingleUse(source)) {
    throw new ImportUsageError('the RDB source can be read only once, but import reads it twice', {
      hint: 'Pass a factory (() => fs.createReadStream(file)), fileSource(file) or store.read(name).',
    });
  }
  return source;
}

/**
 * Async generators (they are their own iterator) and Node streams (consumed as they are read)
 * can be iterated once. Checked by shape, without starting an iteration.
 */
function isSingleUse(source: AsyncIterable<Uint8Array>): boolean {
  const s = source as unknown as Record<string, unknown>;
  return (
    typeof s.next === 'function' || (typeof s.pipe === 'function' && typeof s.on === 'function')
  );
}

/** Counts bytes flowing through, for progress and the result's `bytes`. */
export class ByteCounter {
  bytes = 0;

  /** Wraps `source`; every chunk is counted as it is consumed. */
  async *count(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
    for await (const chunk of source) {
      this.bytes += chunk.length;
      yield chunk;
    }
  }
}
