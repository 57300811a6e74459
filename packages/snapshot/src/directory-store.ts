/**
 * A snapshot store in a local (or mounted) directory: `<dir>/<name>.rdb` plus `<name>.json`.
 *
 * Crash safety: both files are written to hidden temporary files, fsynced and hard-linked into
 * place (never overwriting). The `.json` is written last and deleted first, so it is the commit
 * marker: a snapshot exists exactly when its `.json` does, and an `.rdb` without one is the
 * leftover of an interrupted put (reported as `snapshot.exists` until deleted).
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SnapshotExistsError, SnapshotNotFoundError, SnapshotStoreError } from './errors.js';
import {
  assertSnapshotName,
  compareNewestFirst,
  parseSnapshotMeta,
  type SnapshotMeta,
} from './snapshot-meta.js';
import type { SnapshotStore } from './store.js';
import { syncDir, verifiedStream, writeTextAtomic, writeVerifiedFile } from './verified-io.js';

/** Read size: big enough that a parser consuming the stream refills rarely. */
const READ_CHUNK = 1024 * 1024;

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/** Snapshots as files in one directory. Create with {@link DirectorySnapshotStore.open}. */
export class DirectorySnapshotStore implements SnapshotStore {
  readonly kind = 'directory' as const;
  /** Absolute path of the directory. */
  readonly location: string;

  private constructor(dir: string) {
    this.location = dir;
  }

  /** Opens (creating if missing) the store at `dir`. */
  static async open(dir: string): Promise<DirectorySnapshotStore> {
    const abs = resolve(dir);
    try {
      await mkdir(abs, { recursive: true });
    } catch (err) {
      throw new SnapshotStoreError(`cannot create snapshot directory ${abs}`, { cause: err });
    }
    return new DirectorySnapshotStore(abs);
  }

  #rdbPath(name: string): string {
    return join(this.location, `${name}.rdb`);
  }

  #metaPath(name: string): string {
    return join(this.location, `${name}.json`);
  }

  async put(meta: SnapshotMeta, file: string): Promise<SnapshotMeta> {
    const name = assertSnapshotName(meta.name);
    if ((await this.head(name)) !== null) throw new SnapshotExistsError(name, this.location);
    let got;
    try {
      got = await writeVerifiedFile(
        name,
        createReadStream(file, { highWaterMark: READ_CHUNK }),
        this.#rdbPath(name),
        meta,
        { noClobber: true },
      );
    } catch (err) {
      if (isErrno(err, 'EEXIST')) {
        throw new SnapshotExistsError(name, this.location, {
          cause: err,
          hint: `${name}.rdb exists without metadata (an interrupted or concurrent put); delete the snapshot to clear it.`,
        });
      }
      throw err;
    }
    const stored: SnapshotMeta = { ...meta, size: got.size, crc: got.storedCrc };
    try {
      await writeTextAtomic(this.#metaPath(name), `${JSON.stringify(stored, null, 2)}\n`, true);
    } catch (err) {
      // Without its commit marker the .rdb is garbage; remove it so the name is free again.
      await rm(this.#rdbPath(name), { force: true });
      if (isErrno(err, 'EEXIST')) throw new SnapshotExistsError(name, this.location);
      throw new SnapshotStoreError(`cannot write metadata of ${name}`, { cause: err });
    }
    return stored;
  }

  async download(name: string, outFile: string): Promise<SnapshotMeta> {
    const meta = await this.#require(name);
    await writeVerifiedFile(name, this.#open(name), outFile, meta);
    return meta;
  }

  read(name: string): AsyncIterable<Uint8Array> {
    return { [Symbol.asyncIterator]: () => this.#stream(name) };
  }

  async *#stream(name: string): AsyncGenerator<Uint8Array, void, undefined> {
    const meta = await this.#require(name);
    yield* verifiedStream(name, this.#open(name), meta);
  }

  async head(name: string): Promise<SnapshotMeta | null> {
    assertSnapshotName(name);
    let text: string;
    try {
      text = await readFile(this.#metaPath(name), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw new SnapshotStoreError(`cannot read metadata of ${name}`, { cause: err });
    }
    const meta = parseSnapshotMeta(text);
    // A metadata file for another name (copied by hand) is not this snapshot.
    return meta !== undefined && meta.name === name ? meta : null;
  }

  async list(): Promise<SnapshotMeta[]> {
    const entries = await readdir(this.location);
    const metas: SnapshotMeta[] = [];
    for (const entry of entries) {
      if (!entry.endsWith('.json') || entry.startsWith('.')) continue;
      const name = entry.slice(0, -'.json'.length);
      try {
        const meta = await this.head(name);
        if (meta !== null) metas.push(meta);
      } catch {
        // Not a snapshot name, or unreadable: a listing skips it rather than failing whole.
      }
    }
    return metas.sort(compareNewestFirst);
  }

  async delete(name: string): Promise<boolean> {
    assertSnapshotName(name);
    const existed = await Promise.all([exists(this.#metaPath(name)), exists(this.#rdbPath(name))]);
    // Metadata first: once it is gone the snapshot no longer exists, whatever happens next.
    await rm(this.#metaPath(name), { force: true });
    await rm(this.#rdbPath(name), { force: true });
    await syncDir(this.location);
    return existed[0] || existed[1];
  }

  async #require(name: string): Promise<SnapshotMeta> {
    const meta = await this.head(name);
    if (meta === null) throw new SnapshotNotFoundError(name, this.location);
    return meta;
  }

  #open(name: string): AsyncIterable<Uint8Array> {
    return createReadStream(this.#rdbPath(name), { highWaterMark: READ_CHUNK });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
