/** Helpers for stream entry IDs. */
import type { StreamId } from './types.js';

/** Formats a stream ID the way Redis prints it: `<ms>-<seq>`. */
export function formatStreamId(id: StreamId): string {
  return `${id.ms}-${id.seq}`;
}
