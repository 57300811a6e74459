/**
 * A bounded pipeline of commands to one Redis connection, with replies handled strictly in send
 * order.
 *
 * Commands are encoded straight into large output chunks ({@link RespChunkWriter}) as they are
 * queued and written in batches (one socket write each); at most `window` commands, or
 * `maxBytes` of encoded commands, are unacknowledged at any time, so memory stays bounded and a
 * failure is noticed within one window. Every command carries a tag; the caller's `onReply` sees
 * each tag with its reply or error in order, which is what makes "keys written up to here" exact
 * after a failure.
 *
 * Nothing is allocated per command: tags are kept in a ring of parallel arrays, and the queueing
 * calls are synchronous. They return whether the window is full, and only then does the caller
 * await {@link CommandPipeline.room}.
 */
import type { RdbValueType } from '@georep/rdb';
import type { RespConnection, RespValue } from './resp-connection.js';
import { CHUNK_BYTES, RespChunkWriter } from './resp-writer.js';
import type { Command } from './value-commands.js';

/** What a reply means to the import: which key (if any) a command belongs to. */
export interface Tag {
  kind: 'select' | 'function' | 'restore' | 'part' | 'last';
  /** Sequence number of the key, to tie a failed part to its key's last command. */
  seq: number;
  db: number;
  key: Buffer | undefined;
  type: RdbValueType | undefined;
}

/**
 * Handles the reply of one command; runs in send order. It must not throw: it records a failure
 * for the caller to check, and keeps accounting for the replies that follow. `tag` is reused for
 * the next reply: keep its fields, not the object.
 */
export type ReplyHandler = (tag: Readonly<Tag>, err: Error | null, reply: RespValue) => void;

/** Options of {@link CommandPipeline}. */
export interface CommandPipelineOptions {
  /** Most unacknowledged commands. */
  window: number;
  /** Most unacknowledged encoded bytes (a few huge RESTOREs must not stack up). */
  maxBytes: number;
  onReply: ReplyHandler;
}

/** See the module comment. */
export class CommandPipeline {
  readonly #conn: RespConnection;
  readonly #window: number;
  readonly #maxBytes: number;
  readonly #batchSize: number;
  readonly #batchBytes: number;
  readonly #onReply: ReplyHandler;
  /** Where commands are encoded; callers may encode into it directly, then {@link commit}. */
  readonly out = new RespChunkWriter();
  // The ring of tags: written (in flight) commands first, then queued ones.
  #kinds: Array<Tag['kind']> = [];
  #seqs = new Float64Array(0);
  #dbs = new Float64Array(0);
  #sizes = new Float64Array(0);
  #keys: Array<Buffer | undefined> = [];
  #types: Array<RdbValueType | undefined> = [];
  #mask = -1;
  #head = 0;
  #count = 0;
  /** Queued (encoded, not written) commands: the last ones of the ring. */
  #queued = 0;
  #inflight = 0;
  #inflightBytes = 0;
  readonly #tag: Tag = { kind: 'select', seq: 0, db: 0, key: undefined, type: undefined };
  readonly #handleReply = (err: Error | null, value: RespValue): void => this.#reply(err, value);
  #wake: (() => void) | undefined;

  constructor(conn: RespConnection, options: CommandPipelineOptions) {
    this.#conn = conn;
    this.#window = Math.max(1, options.window);
    this.#maxBytes = Math.max(1, options.maxBytes);
    // A few batches per window so the server works on one while the next is in the socket.
    this.#batchSize = Math.max(1, Math.ceil(this.#window / 4));
    this.#batchBytes = Math.max(1, Math.min(CHUNK_BYTES, Math.floor(this.#maxBytes / 4)));
    this.#onReply = options.onReply;
    this.#grow(1024);
  }

  /** True while the caller must await {@link room} before queueing more. */
  get full(): boolean {
    return this.#inflight >= this.#window || this.#inflightBytes >= this.#maxBytes;
  }

  /**
   * Queues `cmd` and returns {@link full}: when true, await {@link room} before queueing more.
   */
  queue(cmd: Command, tag: Readonly<Tag>): boolean {
    const from = this.out.pendingBytes;
    this.out.command(cmd);
    return this.commit(tag, this.out.pendingBytes - from);
  }

  /**
   * Registers the command just encoded into {@link out} (`size` bytes) under `tag`, writes the
   * batch when it is big enough, and returns {@link full}.
   */
  commit(tag: Readonly<Tag>, size: number): boolean {
    if (this.#count > this.#mask) this.#grow((this.#mask + 1) * 2);
    const i = (this.#head + this.#count) & this.#mask;
    this.#kinds[i] = tag.kind;
    this.#seqs[i] = tag.seq;
    this.#dbs[i] = tag.db;
    this.#keys[i] = tag.key;
    this.#types[i] = tag.type;
    this.#sizes[i] = size;
    this.#count++;
    this.#queued++;
    if (this.#queued >= this.#batchSize || this.out.pendingBytes >= this.#batchBytes) {
      this.#writeQueued();
    }
    return this.#inflight >= this.#window || this.#inflightBytes >= this.#maxBytes;
  }

  /** Queues `cmd` and waits for room in the window when it is full. */
  async send(cmd: Command, tag: Readonly<Tag>): Promise<void> {
    if (this.queue(cmd, tag)) await this.room();
  }

  /** Resolves once the window has room again (at once when it has). */
  async room(): Promise<void> {
    while (this.#inflight >= this.#window || this.#inflightBytes >= this.#maxBytes) {
      await this.#nextReply();
    }
  }

  /**
   * Writes the commands queued so far, then waits until the window has room again: afterwards
   * fewer than `window` commands are unacknowledged, so `window: 1` means one at a time.
   */
  async flush(): Promise<void> {
    this.#writeQueued();
    await this.room();
  }

  /** Writes everything and waits for every reply. */
  async drain(): Promise<void> {
    this.#writeQueued();
    while (this.#inflight > 0) await this.#nextReply();
  }

  /**
   * After a failure: waits for the replies of what was already written (so they are accounted
   * for) and drops what was only queued.
   */
  async abandon(): Promise<void> {
    for (let n = 0; n < this.#queued; n++) {
      this.#keys[(this.#head + this.#inflight + n) & this.#mask] = undefined;
    }
    this.#count -= this.#queued;
    this.#queued = 0;
    this.out.discard();
    while (this.#inflight > 0) await this.#nextReply();
  }

  #writeQueued(): void {
    const n = this.#queued;
    if (n === 0) return;
    let bytes = 0;
    const from = this.#head + this.#inflight;
    for (let k = 0; k < n; k++) bytes += this.#sizes[(from + k) & this.#mask]!;
    this.#queued = 0;
    this.#inflight += n;
    this.#inflightBytes += bytes;
    // May answer at once (with errors) when the connection is already closed.
    this.#conn.write(this.out.take(), n, this.#handleReply);
  }

  #reply(err: Error | null, value: RespValue): void {
    const i = this.#head;
    this.#head = (i + 1) & this.#mask;
    this.#count--;
    this.#inflight--;
    this.#inflightBytes -= this.#sizes[i]!;
    const tag = this.#tag;
    tag.kind = this.#kinds[i]!;
    tag.seq = this.#seqs[i]!;
    tag.db = this.#dbs[i]!;
    tag.key = this.#keys[i];
    tag.type = this.#types[i];
    this.#keys[i] = undefined;
    this.#onReply(tag, err, value);
    // Wake a waiter only once there is room: a burst of replies resumes it once.
    const wake = this.#wake;
    if (wake !== undefined && !this.full) {
      this.#wake = undefined;
      wake();
    }
  }

  /** Doubles (or sets up) the ring, keeping its entries in order from index 0. */
  #grow(capacity: number): void {
    const kinds = new Array<Tag['kind']>(capacity);
    const seqs = new Float64Array(capacity);
    const dbs = new Float64Array(capacity);
    const sizes = new Float64Array(capacity);
    const keys = new Array<Buffer | undefined>(capacity);
    const types = new Array<RdbValueType | undefined>(capacity);
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#head + k) & this.#mask;
      kinds[k] = this.#kinds[i]!;
      seqs[k] = this.#seqs[i]!;
      dbs[k] = this.#dbs[i]!;
      sizes[k] = this.#sizes[i]!;
      keys[k] = this.#keys[i];
      types[k] = this.#types[i];
    }
    this.#kinds = kinds;
    this.#seqs = seqs;
    this.#dbs = dbs;
    this.#sizes = sizes;
    this.#keys = keys;
    this.#types = types;
    this.#mask = capacity - 1;
    this.#head = 0;
  }

  /** Resolves at the next reply (or connection failure, which answers every pending command). */
  #nextReply(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }
}
