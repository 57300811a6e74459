/**
 * A bounded pipeline of commands to one Redis connection, with replies handled strictly in send
 * order.
 *
 * Commands are encoded as they are queued and written in batches (one socket write each); at
 * most `window` commands, or `maxBytes` of encoded commands, are unacknowledged at any time, so
 * memory stays bounded and a failure is noticed within one window. Every command carries a tag;
 * the caller's `onReply` sees each tag with its reply or error in order, which is what makes
 * "keys written up to here" exact after a failure.
 */
import type { RespConnection, RespReplyHandler, RespValue } from './resp-connection.js';
import { encodeCommand } from './resp-connection.js';
import type { Command } from './value-commands.js';

/**
 * Handles the reply of one command; runs in send order. It must not throw: it records a failure
 * for the caller to check, and keeps accounting for the replies that follow.
 */
export type ReplyHandler<Tag> = (tag: Tag, err: Error | null, reply: RespValue) => void;

/** Options of {@link CommandPipeline}. */
export interface CommandPipelineOptions<Tag> {
  /** Most unacknowledged commands. */
  window: number;
  /** Most unacknowledged encoded bytes (a few huge RESTOREs must not stack up). */
  maxBytes: number;
  onReply: ReplyHandler<Tag>;
}

/** See the module comment. */
export class CommandPipeline<Tag> {
  readonly #conn: RespConnection;
  readonly #window: number;
  readonly #maxBytes: number;
  readonly #batchSize: number;
  readonly #onReply: ReplyHandler<Tag>;
  #bufs: Buffer[] = [];
  #handlers: RespReplyHandler[] = [];
  #batchBytes = 0;
  #inflight = 0;
  #inflightBytes = 0;
  #wake: (() => void) | undefined;

  constructor(conn: RespConnection, options: CommandPipelineOptions<Tag>) {
    this.#conn = conn;
    this.#window = Math.max(1, options.window);
    this.#maxBytes = Math.max(1, options.maxBytes);
    // A few batches per window so the server works on one while the next is in the socket.
    this.#batchSize = Math.max(1, Math.ceil(this.#window / 4));
    this.#onReply = options.onReply;
  }

  /** Queues `cmd`; resolves once it has been accepted into the window (maybe after waiting). */
  async send(cmd: Command, tag: Tag): Promise<void> {
    const encoded = encodeCommand(cmd);
    const size = encoded.length;
    this.#bufs.push(encoded);
    this.#batchBytes += size;
    this.#handlers.push((err, value) => {
      this.#inflight--;
      this.#inflightBytes -= size;
      this.#onReply(tag, err, value);
      const wake = this.#wake;
      this.#wake = undefined;
      wake?.();
    });
    if (this.#bufs.length >= this.#batchSize || this.#batchBytes >= this.#maxBytes / 4) {
      await this.flush();
    }
  }

  /**
   * Writes the commands queued so far, then waits until the window has room again: afterwards
   * fewer than `window` commands are unacknowledged, so `window: 1` means one at a time.
   */
  async flush(): Promise<void> {
    if (this.#bufs.length > 0) {
      const bufs = this.#bufs;
      const handlers = this.#handlers;
      this.#inflight += handlers.length;
      this.#inflightBytes += this.#batchBytes;
      this.#bufs = [];
      this.#handlers = [];
      this.#batchBytes = 0;
      this.#conn.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs), handlers);
    }
    while (this.#inflight >= this.#window || this.#inflightBytes >= this.#maxBytes) {
      await this.#nextReply();
    }
  }

  /** Writes everything and waits for every reply. */
  async drain(): Promise<void> {
    await this.flush();
    while (this.#inflight > 0) await this.#nextReply();
  }

  /**
   * After a failure: waits for the replies of what was already written (so they are accounted
   * for) and drops what was only queued.
   */
  async abandon(): Promise<void> {
    this.#bufs = [];
    this.#handlers = [];
    this.#batchBytes = 0;
    while (this.#inflight > 0) await this.#nextReply();
  }

  /** Resolves at the next reply (or connection failure, which answers every pending command). */
  #nextReply(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }
}
