/**
 * Crash-safe, verified file I/O shared by the stores: write to a hidden temporary file next to
 * the destination, check size and CRC64 while writing, fsync, then rename. A reader of the
 * destination therefore sees either nothing or a complete, verified file.
 */
import { randomBytes } from 'node:crypto';
import { link, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkDigest, RdbDigest, type RdbDigestResult } from './rdb-digest.js';
import type { SnapshotMeta } from './snapshot-meta.js';

/** A hidden temporary path in `file`'s directory (same filesystem, so the rename is atomic). */
export function tempPathFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.${randomBytes(4).toString('hex')}.partial`);
}

/** fsyncs a directory so a rename or unlink in it survives a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  } finally {
    await fh.close();
  }
}

/**
 * Streams `source` into `outFile` through a temporary file, verifying size and CRC64 against
 * `expected` (when given) before the rename. On any error the temporary file is removed and
 * nothing appears at `outFile`.
 *
 * With `noClobber`, an existing `outFile` is never replaced: the temporary file is hard-linked
 * into place (which fails atomically with `EEXIST`) instead of renamed.
 *
 * @returns what was measured.
 */
export async function writeVerifiedFile(
  name: string,
  source: AsyncIterable<Uint8Array>,
  outFile: string,
  expected?: Pick<SnapshotMeta, 'size' | 'crc' | 'rdbVersion'>,
  options: { noClobber?: boolean } = {},
): Promise<RdbDigestResult> {
  const tmp = tempPathFor(outFile);
  const fh = await open(tmp, 'wx', 0o600);
  let closed = false;
  try {
    const digest = new RdbDigest();
    for await (const chunk of source) {
      digest.update(chunk);
      await fh.write(chunk);
    }
    const got = digest.finish();
    checkDigest(name, got, expected);
    await fh.sync();
    await fh.close();
    closed = true;
    await commitFile(tmp, outFile, options.noClobber === true);
    return got;
  } catch (err) {
    if (!closed) await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Passes `source` through unchanged and checks size and CRC64 once it ends, so a streaming
 * reader (an import) learns about damage before it trusts the last record.
 */
export async function* verifiedStream(
  name: string,
  source: AsyncIterable<Uint8Array>,
  expected: Pick<SnapshotMeta, 'size' | 'crc' | 'rdbVersion'>,
): AsyncGenerator<Uint8Array, void, undefined> {
  const digest = new RdbDigest();
  for await (const chunk of source) {
    digest.update(chunk);
    yield chunk;
  }
  checkDigest(name, digest.finish(), expected);
}

/**
 * Moves a complete temporary file into place and fsyncs the directory. With `noClobber` the
 * move is a hard link plus unlink, so an existing destination makes it fail with `EEXIST`.
 */
export async function commitFile(tmp: string, dest: string, noClobber: boolean): Promise<void> {
  if (noClobber) {
    await link(tmp, dest);
    await rm(tmp, { force: true });
  } else {
    await rename(tmp, dest);
  }
  await syncDir(dirname(dest));
}

/** Writes a small text file atomically (temporary file, fsync, rename or link). */
export async function writeTextAtomic(
  dest: string,
  text: string,
  noClobber: boolean,
): Promise<void> {
  const tmp = tempPathFor(dest);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await commitFile(tmp, dest, noClobber);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
