/**
 * Saving the group document in the agent's data directory. The document keeps its history, so it
 * only grows: saving it whole after every change costs more as it ages. Changes are therefore
 * appended to `group.automerge.changes` (fsynced), and the whole document is written again
 * (compacted) only when that log passes a size, at start, and at shutdown.
 *
 * Full writes are crash-safe (temporary file, fsync, rename, fsync of the directory), so a crash
 * leaves the previous or the new version, never half of one. A file that cannot be loaded is moved
 * aside (kept for inspection, never deleted): the agent starts from the shared genesis, or without
 * the unreadable change log, and its peers send it what it lacks.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { makeLogger, type Logger } from '@georep/core';
import { DocumentLoadError, GroupDocument } from './group-document.js';

/** File name of the saved document inside the data directory. */
export const DOCUMENT_FILE = 'group.automerge';
/** File name of the changes appended since the document was last written whole. */
export const CHANGES_FILE = 'group.automerge.changes';
/** The change log is folded into a full save once it is this large. */
const DEFAULT_COMPACT_BYTES = 4 * 1024 * 1024;

/** Outcome of {@link openDocument}. */
export interface OpenedDocument {
  document: GroupDocument;
  /** Where a corrupt file was moved to, when that happened. */
  quarantined: string | null;
}

/** Loads the saved document of `group` from `dir`, or starts from genesis. */
export function openDocument(
  dir: string,
  group: string,
  founders: readonly string[],
  log: Logger = makeLogger('group'),
): OpenedDocument {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, DOCUMENT_FILE);
  const opened = openFull(path, group, founders, log);
  const changes = join(dir, CHANGES_FILE);
  if (existsSync(changes)) {
    try {
      opened.document.applySaved(readFileSync(changes));
    } catch (err) {
      // Automerge skips a torn last chunk (a crash while appending) by itself; this is for
      // anything else. What the log held is on the peers.
      const aside = keepAside(changes);
      log.error(
        { file: changes, keptAs: aside, err: (err as Error).message },
        'the group document change log is unreadable; kept a copy and loaded the document without it: peers will send the rest',
      );
    }
  }
  return opened;
}

function openFull(
  path: string,
  group: string,
  founders: readonly string[],
  log: Logger,
): OpenedDocument {
  if (!existsSync(path))
    return { document: GroupDocument.create(group, founders), quarantined: null };
  try {
    return { document: GroupDocument.load(readFileSync(path), group), quarantined: null };
  } catch (err) {
    if (!(err instanceof DocumentLoadError) || err.code !== 'group.document-corrupt') throw err;
    const aside = keepAside(path);
    log.error(
      { file: path, keptAs: aside, err: err.message },
      'the saved group document is corrupt; kept a copy and starting from genesis: peers will send the rest',
    );
    return { document: GroupDocument.create(group, founders), quarantined: aside };
  }
}

/** Renames a file that cannot be used to `<name>.corrupt-<time>` and returns the new path. */
function keepAside(path: string): string {
  const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(path, aside);
  return aside;
}

/** Writes (`w`) or appends (`a`) all of `bytes` to `path` and fsyncs the file. */
function writeDurably(path: string, flags: 'w' | 'a', bytes: Uint8Array): void {
  const fd = openSync(path, flags);
  try {
    let written = 0;
    while (written < bytes.byteLength) written += writeSync(fd, bytes, written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync of a directory, so that a rename or unlink in it survives a power loss. */
function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `bytes` to `path` so that a crash leaves either the old or the new file. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeDurably(tmp, 'w', bytes);
  renameSync(tmp, path);
  syncDirectory(dirname(path));
}

/**
 * Saves the document after changes, at most once per `delayMs` (changes come in bursts: one
 * operation is several changes): the new changes are appended to the change log, and the whole
 * document is written once the log passes `compactBytes`. It is written whole at once when the
 * saver starts (folding a log left by the previous run) and on `close()`.
 */
export class DocumentSaver {
  readonly #document: GroupDocument;
  readonly #path: string;
  readonly #changesPath: string;
  readonly #delayMs: number;
  readonly #compactBytes: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: () => void;
  /** Heads of the document as last saved (whole or appended). */
  #savedHeads: string[] = [];
  #logBytes = 0;

  constructor(
    document: GroupDocument,
    dir: string,
    options: { delayMs?: number; compactBytes?: number; log?: Logger } = {},
  ) {
    this.#document = document;
    this.#path = join(dir, DOCUMENT_FILE);
    this.#changesPath = join(dir, CHANGES_FILE);
    this.#delayMs = options.delayMs ?? 100;
    this.#compactBytes = options.compactBytes ?? DEFAULT_COMPACT_BYTES;
    this.#log = options.log ?? makeLogger('group');
    this.#unsubscribe = document.onChange(() => this.#schedule());
    if (existsSync(this.#changesPath)) this.compact();
    else this.#savedHeads = document.heads();
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.flush();
    }, this.#delayMs);
  }

  /**
   * Saves what changed now: appended to the change log, or the whole document when the log is
   * large. Errors are logged: the document stays in memory and peers keep a copy.
   */
  flush(): void {
    this.#cancelTimer();
    if (this.#logBytes >= this.#compactBytes || !existsSync(this.#path)) {
      this.compact();
      return;
    }
    try {
      const heads = this.#document.heads();
      if (heads.join() === this.#savedHeads.join()) return;
      const chunk = this.#document.saveSince(this.#savedHeads);
      writeDurably(this.#changesPath, 'a', chunk);
      this.#logBytes += chunk.byteLength;
      this.#savedHeads = heads;
    } catch (err) {
      this.#log.error(
        { file: this.#changesPath, err: (err as Error).message },
        'could not append to the group document change log',
      );
    }
  }

  /** Writes the whole document and removes the change log it now contains. */
  compact(): void {
    this.#cancelTimer();
    try {
      const heads = this.#document.heads();
      writeFileAtomic(this.#path, this.#document.save());
      // The full file holds every change of the log: a crash before the unlink only makes the
      // next start load some changes twice, which Automerge ignores.
      if (existsSync(this.#changesPath)) {
        unlinkSync(this.#changesPath);
        syncDirectory(dirname(this.#changesPath));
      }
      this.#savedHeads = heads;
      this.#logBytes = 0;
    } catch (err) {
      this.#log.error(
        { file: this.#path, err: (err as Error).message },
        'could not save the group document',
      );
    }
  }

  #cancelTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  /** Saves everything whole and stops listening. */
  close(): void {
    this.#unsubscribe();
    this.compact();
  }
}
