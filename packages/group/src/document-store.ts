/**
 * Saving the group document in the agent's data directory. Writes are crash-safe (temporary file,
 * fsync, rename), so a crash leaves the previous or the new version, never half of one. A file
 * that cannot be loaded is moved aside (kept for inspection, never deleted) and the agent starts
 * from the shared genesis; its peers then send it everything else.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { makeLogger, type Logger } from '@georep/core';
import { DocumentLoadError, GroupDocument } from './group-document.js';

/** File name of the saved document inside the data directory. */
export const DOCUMENT_FILE = 'group.automerge';

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
  if (!existsSync(path))
    return { document: GroupDocument.create(group, founders), quarantined: null };
  try {
    return { document: GroupDocument.load(readFileSync(path), group), quarantined: null };
  } catch (err) {
    if (!(err instanceof DocumentLoadError) || err.code !== 'group.document-corrupt') throw err;
    const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(path, aside);
    log.error(
      { file: path, keptAs: aside, err: err.message },
      'the saved group document is corrupt; kept a copy and starting from genesis: peers will send the rest',
    );
    return { document: GroupDocument.create(group, founders), quarantined: aside };
  }
}

/** Writes `bytes` to `path` so that a crash leaves either the old or the new file. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    let written = 0;
    while (written < bytes.byteLength) written += writeSync(fd, bytes, written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * Saves the document after changes, at most once per `delayMs` (changes come in bursts: one
 * operation is several changes). `flush()` saves at once (on shutdown).
 */
export class DocumentSaver {
  readonly #document: GroupDocument;
  readonly #path: string;
  readonly #delayMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: () => void;

  constructor(
    document: GroupDocument,
    dir: string,
    options: { delayMs?: number; log?: Logger } = {},
  ) {
    this.#document = document;
    this.#path = join(dir, DOCUMENT_FILE);
    this.#delayMs = options.delayMs ?? 100;
    this.#log = options.log ?? makeLogger('group');
    this.#unsubscribe = document.onChange(() => this.#schedule());
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.flush();
    }, this.#delayMs);
  }

  /** Saves now. Errors are logged: the document stays in memory and peers keep a copy. */
  flush(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    try {
      writeFileAtomic(this.#path, this.#document.save());
    } catch (err) {
      this.#log.error(
        { file: this.#path, err: (err as Error).message },
        'could not save the group document',
      );
    }
  }

  /** Saves pending changes and stops listening. */
  close(): void {
    this.#unsubscribe();
    this.flush();
  }
}
