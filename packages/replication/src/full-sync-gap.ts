/**
 * Deletes a full sync would otherwise miss. Capture falls back to a full sync when the primary no
 * longer has its position (a restart without the position file, a backlog that overflowed, a
 * resync). The snapshot then stands for the dataset, and every key in it is recorded as a write;
 * but a key deleted (or expired) in the gap is simply absent, and its peers would keep it for
 * good. Its metadata is still in the snapshot, though: a key whose metadata says it is live
 * (no tombstone) while the key itself is missing was deleted in the gap, and gets a delete.
 * Keys whose metadata is a tombstone (`x` = 1) are left alone: a new delete of those would wipe a
 * peer's later write that this region has not applied yet.
 */
import { dumpPayloadFromRaw, parseDumpPayload, type RdbRawKeyRecord } from '@georep/rdb';
import { META_PREFIX } from './ops.js';

const META = Buffer.from(META_PREFIX, 'latin1');
/** Any RDB version that has every hash encoding: only decoding the payload needs one. */
const DECODE_VERSION = 10;

/** Collects one snapshot's keys and live metadata; {@link missing} gives the gap's deletes. */
export class FullSyncGap {
  /** `db:key` (latin1) of every data key. */
  readonly #data = new Set<string>();
  /** `db:key` → the data key of every metadata hash without a tombstone. */
  readonly #live = new Map<string, { db: number; key: Buffer }>();

  /** Takes the snapshot's keys, data and georep's alike, in any order. */
  add(records: RdbRawKeyRecord[]): void {
    for (const r of records) {
      if (r.key.length > META.length && META.equals(r.key.subarray(0, META.length))) {
        if (!isTombstone(r)) {
          const key = Buffer.from(r.key.subarray(META.length));
          this.#live.set(id(r.db, key), { db: r.db, key });
        }
      } else {
        this.#data.add(id(r.db, r.key));
      }
    }
  }

  /** Keys whose metadata is live but which are not in the snapshot: deleted in the gap. */
  missing(): Array<{ db: number; key: Buffer }> {
    const out: Array<{ db: number; key: Buffer }> = [];
    for (const [k, v] of this.#live) if (!this.#data.has(k)) out.push(v);
    return out;
  }
}

const id = (db: number, key: Buffer): string => `${db}:${key.toString('latin1')}`;

/**
 * True when a metadata hash says its key is deleted (`x` = 1). Anything that does not decode as a
 * hash counts as no tombstone: the key then gets a delete, which is what a live key that vanished
 * needs, and a redundant delete of a missing key changes no data.
 */
function isTombstone(r: RdbRawKeyRecord): boolean {
  try {
    const parsed = parseDumpPayload(dumpPayloadFromRaw(r.raw, DECODE_VERSION), {
      skipChecksum: true,
    });
    if (parsed.type !== 'hash') return false;
    return parsed.value.some(
      (e) => e.field.toString('latin1') === 'x' && e.value.toString() === '1',
    );
  } catch {
    return false;
  }
}
