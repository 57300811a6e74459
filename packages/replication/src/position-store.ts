/**
 * Where capture has got to in a primary's replication stream, and where that is kept between runs.
 *
 * A position is what a Redis replica itself keeps to resume with `PSYNC` (the `repl-id`,
 * `repl-offset` and `repl-stream-db` AUX fields it writes into its RDB): the replication id of the
 * history, the offset of the last byte processed, and the database the stream had selected there,
 * because a partial resync continues mid-stream without repeating the SELECT.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { GeorepError } from '@georep/core';

/** A point in a replication history. */
export interface Position {
  /** 40-hex replication id of the history the offset belongs to. */
  replid: string;
  /** Replication offset of the last byte processed; `PSYNC` asks for `offset + 1`. */
  offset: number;
  /** Database selected in the stream at `offset`. */
  db: number;
}

/**
 * Keeps a {@link Position} between runs. Calls are synchronous and cheap: capture saves at a
 * bounded rate (see `CaptureOptions.saveIntervalMs`) and at stop.
 */
export interface PositionStore {
  /** The saved position, or `null` when nothing was saved yet (capture then full-syncs). */
  load(): Position | null;
  /** Replaces the saved position. Must leave the previous one intact if it fails. */
  save(position: Position): void;
}

/** The position file is unreadable or does not hold a position. */
export class PositionFileError extends GeorepError {
  override name = 'PositionFileError';
  readonly path: string;
  constructor(path: string, problem: string, options: { cause?: unknown } = {}) {
    super('capture.bad-position-file', `capture position file ${path}: ${problem}`, {
      hint: 'fix or delete the file; without it capture starts over with a full sync',
      details: { path },
      ...options,
    });
    this.path = path;
  }
}

/** Keeps the position in memory only: for tests and for embedding into another store. */
export class MemoryPositionStore implements PositionStore {
  #position: Position | null;
  /** How many times {@link save} was called. */
  saves = 0;

  constructor(initial: Position | null = null) {
    this.#position = initial === null ? null : { ...initial };
  }

  load(): Position | null {
    return this.#position === null ? null : { ...this.#position };
  }

  save(position: Position): void {
    this.#position = { ...position };
    this.saves++;
  }
}

/**
 * Keeps the position in a small JSON file. Each save writes a temporary file in the same
 * directory and renames it over the target, so a crash leaves the old or the new position, never
 * a torn one. No fsync: losing the last few saves on a power cut only replays a little of the
 * stream (capture is at-least-once), while an fsync per save would cost far more than capture.
 */
export class FilePositionStore implements PositionStore {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /**
   * @throws PositionFileError (`capture.bad-position-file`) when the file exists but is not a
   *   position.
   */
  load(): Position | null {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new PositionFileError(this.path, 'cannot be read', { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new PositionFileError(this.path, 'is not JSON', { cause: err });
    }
    if (!isPosition(parsed)) {
      throw new PositionFileError(this.path, 'does not hold {replid, offset, db}');
    }
    return { replid: parsed.replid, offset: parsed.offset, db: parsed.db };
  }

  save(position: Position): void {
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, `.${basename(this.path)}.${randomBytes(4).toString('hex')}.tmp`);
    const body = { ...position, savedAt: new Date().toISOString() };
    try {
      writeFileSync(tmp, `${JSON.stringify(body)}\n`, { mode: 0o600 });
      renameSync(tmp, this.path);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }
}

/** True when `value` is a well-formed {@link Position}. */
export function isPosition(value: unknown): value is Position {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.replid === 'string' &&
    /^[0-9a-zA-Z]{40}$/.test(v.replid) &&
    Number.isSafeInteger(v.offset) &&
    (v.offset as number) >= 0 &&
    Number.isSafeInteger(v.db) &&
    (v.db as number) >= 0
  );
}
