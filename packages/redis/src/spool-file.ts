/**
 * A file that one side appends to at full speed while the other reads it back at its own pace.
 *
 * A full sync must be drained as fast as the network allows: a replica that stops reading stalls
 * the primary's fork child (growing copy-on-write memory) and is dropped after `repl-timeout`.
 * Verifying an RDB (parsing every record) is much slower than receiving it, so the receiver
 * appends to this file without ever waiting for the reader, and the verifier follows behind,
 * reading what is already on disk. When the export succeeds the same file is renamed into place,
 * so the snapshot is written to disk exactly once.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ExportWriteError } from './export-errors.js';

/** Read size of {@link SpoolFile.read}; large reads keep the parser's refills few. */
const READ_CHUNK = 1024 * 1024;

/**
 * A temporary path next to `out`: the same directory keeps the final rename on one filesystem
 * (so it is atomic), and the hidden `.partial` name makes a crashed export's leftover obvious.
 */
export function partialPathFor(out: string): string {
  return join(dirname(out), `.${basename(out)}.${randomBytes(4).toString('hex')}.partial`);
}

/**
 * An append-only file with a follower reader. {@link append} never blocks: chunks are queued in
 * memory and written in order by one writer loop, so only a disk slower than the network makes
 * memory grow. Create it with {@link SpoolFile.create}, then either {@link commit} (rename to the
 * final path) or {@link discard} (delete).
 */
export class SpoolFile {
  /** Path of the spool file itself. */
  readonly path: string;
  readonly #fh: FileHandle;
  #queue: Buffer[] = [];
  #writing = false;
  #appended = 0;
  #written = 0;
  #finished = false;
  #error: Error | undefined;
  #closed = false;
  #waiters: Array<() => void> = [];

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  /**
   * Creates `path` exclusively (it must not exist), for reading and writing.
   *
   * @throws ExportWriteError when the file cannot be created.
   */
  static async create(path: string): Promise<SpoolFile> {
    try {
      return new SpoolFile(path, await open(path, 'wx+', 0o600));
    } catch (err) {
      throw new ExportWriteError(path, { cause: err });
    }
  }

  /** Bytes handed to {@link append} so far. */
  get bytesAppended(): number {
    return this.#appended;
  }

  /** Bytes already written to the file. */
  get bytesWritten(): number {
    return this.#written;
  }

  /** Queues `chunk` for writing; returns at once. Ignored after {@link fail}. */
  append(chunk: Buffer): void {
    if (this.#finished || this.#error !== undefined || chunk.length === 0) return;
    this.#queue.push(chunk);
    this.#appended += chunk.length;
    if (!this.#writing) void this.#drain();
  }

  /** No more appends: readers end once everything queued is written. */
  finish(): void {
    this.#finished = true;
    this.#notify();
  }

  /** Aborts: readers and {@link flushed} reject with `err`; the first failure wins. */
  fail(err: Error): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    this.#queue = [];
    this.#notify();
  }

  /** Resolves once {@link finish} was called and every byte is written; rejects on failure. */
  async flushed(): Promise<number> {
    for (;;) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#finished && this.#written === this.#appended) return this.#written;
      await this.#changed();
    }
  }

  /**
   * Reads the file from the start, following the writer: yields what is on disk, waits for more,
   * ends after {@link finish} once all is read, and throws the {@link fail} error.
   */
  async *read(): AsyncGenerator<Buffer, void, undefined> {
    let pos = 0;
    for (;;) {
      if (this.#error !== undefined) throw this.#error;
      if (pos < this.#written) {
        const size = Math.min(READ_CHUNK, this.#written - pos);
        const buf = Buffer.allocUnsafe(size);
        const { bytesRead } = await this.#fh.read(buf, 0, size, pos);
        if (bytesRead === 0) throw new ExportWriteError(this.path, { details: { pos } });
        pos += bytesRead;
        yield bytesRead === size ? buf : buf.subarray(0, bytesRead);
        continue;
      }
      if (this.#finished && this.#written === this.#appended) return;
      await this.#changed();
    }
  }

  /** Flushes to stable storage and renames the file to `target`, replacing it atomically. */
  async commit(target: string): Promise<void> {
    await this.flushed();
    try {
      await this.#fh.sync();
      await this.#close();
      await rename(this.path, target);
    } catch (err) {
      throw new ExportWriteError(target, { cause: err });
    }
    await syncDirectory(dirname(target));
  }

  /** Closes and deletes the spool file. Never throws: it runs on error paths. */
  async discard(): Promise<void> {
    if (this.#error === undefined) this.fail(new Error('spool discarded'));
    // Let an in-flight write settle so the unlink is not followed by a late write to the fd.
    while (this.#writing) await this.#changed();
    await this.#close().catch(() => undefined);
    await rm(this.path, { force: true }).catch(() => undefined);
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && this.#error === undefined) {
        const batch = this.#queue;
        this.#queue = [];
        await this.#writeAll(batch);
        this.#notify();
      }
    } catch (err) {
      this.fail(new ExportWriteError(this.path, { cause: err }));
    } finally {
      this.#writing = false;
      this.#notify();
    }
  }

  async #writeAll(batch: Buffer[]): Promise<void> {
    let total = 0;
    for (const b of batch) total += b.length;
    const { bytesWritten } = await this.#fh.writev(batch, this.#written);
    let done = bytesWritten;
    // writev on a regular file writes everything in practice; finish a short write by hand.
    if (done < total) {
      const rest = Buffer.concat(batch).subarray(done);
      let off = 0;
      while (off < rest.length) {
        const r = await this.#fh.write(rest, off, rest.length - off, this.#written + done);
        off += r.bytesWritten;
        done += r.bytesWritten;
      }
    }
    this.#written += total;
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/** fsyncs a directory so a rename survives a crash; best effort (not every FS allows it). */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself already happened.
  }
}
