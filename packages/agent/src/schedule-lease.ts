/**
 * Leases that make a schedule's slot run at most once per region, whatever the number of agents of
 * the region and however often they restart. They live in a JetStream KV bucket of the region,
 * `georep_sched_<group>_<region>`, placed in the region's cluster: a region's schedules then depend
 * on its own JetStream only, never on another region being up.
 *
 * Two kinds of key per schedule and region:
 * - `cursor.<schedule>.<region>`: the newest slot that is settled (run, being run, or declared
 *   missed). Moved forward only with a revision check (compare-and-set), so of two agents that
 *   read the same cursor exactly one moves it; that one runs the new slot and reports the slots
 *   it skipped as missed, exactly once.
 * - `slot.<schedule>.<region>.<slot ms>`: the lease of one slot, taken with `kv.create`, which
 *   fails when the key exists. It is the last check before an export starts, and says who ran it.
 *   Old slot keys are purged (the newest few are kept): the cursor already settles them.
 */
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConflictError, UnreachableError } from '@georep/core';

/** JetStream's error code for a new stream whose subjects an existing stream has. */
const SUBJECTS_OVERLAP = 10065;

/** Slot keys kept per schedule and region when old ones are purged (for inspection). */
const SLOT_KEYS_KEPT = 8;

/** The bucket name of a region's schedule leases. */
export function scheduleLeaseBucket(group: string, region: string): string {
  return `georep_sched_${group}_${region}`.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** A cursor as read: the settled slot and the revision to compare against when moving it. */
export interface LeaseCursor {
  slot: number;
  revision: number;
}

/** Who holds a lease, stored as the key's value (JSON). */
export interface LeaseHolder {
  agent: string;
  operationId?: string | null;
}

const isWrongSequence = (err: unknown): boolean =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
    err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

/** See the module comment. */
export class ScheduleLeases {
  readonly bucket: string;
  readonly #nc: NatsConnection;
  readonly #region: string;
  #kv: Promise<KV> | null = null;

  constructor(nc: NatsConnection, options: { group: string; region: string }) {
    this.#nc = nc;
    this.#region = options.region;
    this.bucket = scheduleLeaseBucket(options.group, options.region);
  }

  /** Opens (creating when missing) the bucket; a failed open is retried by the next call. */
  #open(): Promise<KV> {
    if (this.#kv === null) {
      const create = () =>
        new Kvm(jetstream(this.#nc)).create(this.bucket, {
          description: 'georep snapshot schedule leases',
          history: 1,
          replicas: 1,
          placement: { cluster: this.#region, tags: [] },
        });
      // Two agents creating the bucket at the same moment: the slower one is refused ("subjects
      // overlap with an existing stream") while the other's stream is being made; once it
      // exists, creating it again opens it.
      const opening = create().catch(async (err: unknown) => {
        if (!(err instanceof JetStreamApiError) || err.code !== SUBJECTS_OVERLAP) throw err;
        await new Promise((r) => setTimeout(r, 100));
        return create();
      });
      this.#kv = opening;
      opening.catch(() => {
        if (this.#kv === opening) this.#kv = null;
      });
    }
    return this.#kv;
  }

  #key(kind: 'cursor' | 'slot', schedule: string, slot?: number): string {
    return slot === undefined
      ? `${kind}.${schedule}.${this.#region}`
      : `${kind}.${schedule}.${this.#region}.${slot}`;
  }

  /** The cursor of a schedule in this region, or null before its first slot. */
  async cursor(schedule: string): Promise<LeaseCursor | null> {
    const kv = await this.#call(() => this.#open());
    const entry = await this.#call(() => kv.get(this.#key('cursor', schedule)));
    if (entry === null || entry.operation !== 'PUT') return null;
    const value = entry.json<{ slot?: unknown }>();
    return typeof value.slot === 'number' ? { slot: value.slot, revision: entry.revision } : null;
  }

  /**
   * Moves the cursor from `current` (as read) to `slot`. False when another agent moved it
   * meanwhile: read it again before deciding anything.
   */
  async advanceCursor(
    schedule: string,
    current: LeaseCursor | null,
    slot: number,
    holder: LeaseHolder,
  ): Promise<boolean> {
    const kv = await this.#call(() => this.#open());
    const value = JSON.stringify({ slot, at: Date.now(), ...holder });
    try {
      if (current === null) await kv.create(this.#key('cursor', schedule), value);
      else await kv.update(this.#key('cursor', schedule), value, current.revision);
      return true;
    } catch (err) {
      if (isWrongSequence(err)) return false;
      throw unreachable(this.bucket, err);
    }
  }

  /** Takes the lease of one slot; false when it is taken (another agent, or an earlier run). */
  async claimSlot(schedule: string, slot: number, holder: LeaseHolder): Promise<boolean> {
    return this.claim(this.#key('slot', schedule, slot), holder);
  }

  /**
   * Takes a one-time lease on `key` in the region's bucket: true for exactly one caller, ever
   * (until the key is purged). Automatic failover uses it so that two agents of a region never
   * both act on one dead primary. Characters a KV key cannot hold become `_`.
   */
  async claim(key: string, holder: LeaseHolder): Promise<boolean> {
    const kv = await this.#call(() => this.#open());
    try {
      await kv.create(leaseKey(key), JSON.stringify({ ...holder, at: Date.now() }));
      return true;
    } catch (err) {
      if (isWrongSequence(err)) return false;
      throw unreachable(this.bucket, err);
    }
  }

  /** Gives a lease of {@link claim} back (the work it guarded failed and may be tried again). */
  async release(key: string): Promise<void> {
    const kv = await this.#call(() => this.#open());
    await this.#call(() => kv.delete(leaseKey(key)));
  }

  /** Purges the slot keys of a schedule in this region but the newest few. Best effort. */
  async pruneSlots(schedule: string): Promise<void> {
    const jsm = await jetstreamManager(this.#nc);
    await jsm.streams.purge(`KV_${this.bucket}`, {
      filter: `$KV.${this.bucket}.${this.#key('slot', schedule)}.>`,
      keep: SLOT_KEYS_KEPT,
    });
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw err instanceof ConflictError || err instanceof UnreachableError
        ? err
        : unreachable(this.bucket, err);
    }
  }
}

/** A lease name as a KV key: characters a key cannot hold become `_`. */
const leaseKey = (key: string): string => key.replace(/[^-/_=.a-zA-Z0-9]/g, '_');

function unreachable(bucket: string, err: unknown): UnreachableError {
  return new UnreachableError(
    'schedule.lease-unavailable',
    `the schedule lease bucket ${bucket} cannot be used: ${(err as Error).message}`,
    {
      cause: err,
      hint: 'check that JetStream of this region is up (georep status, nats-server logs); slots are retried until their grace period ends',
    },
  );
}
