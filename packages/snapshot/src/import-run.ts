/**
 * The write side of an import: emptying what replace mode covers, then the second pass over the
 * source, each key RESTOREd or rebuilt with commands through one bounded pipeline, with every
 * reply accounted in order so a failure says exactly what was written.
 */
import { ReplyError, type Redis } from 'ioredis';
import { parseRdbBatches, type RdbRawKeyRecord, type RdbValueType } from '@georep/rdb';
import { CommandPipeline, type Tag } from './command-pipeline.js';
import { writeDumpFooter } from './dump-footer.js';
import { ImportRejectedError, ImportUnreachableError } from './errors.js';
import { KeyGlob } from './glob.js';
import { covered, decodeRecord, report, restorable, type Survey } from './import-plan.js';
import type { ImportRdbOptions, ImportRdbResult, SkippedKey } from './import-types.js';
import { printableKey } from './printable.js';
import { RespReplyError, type RespConnection } from './resp-connection.js';
import { bulkSize, bulkToken, decimalDigits } from './resp-writer.js';
import { ByteCounter, openSource } from './source.js';
import type { TargetInfo } from './target-info.js';
import { commandsForValue, type Command } from './value-commands.js';

/**
 * Commands in flight by default: deep enough that the server always has a full read buffer
 * waiting (a GC pause or a slow chunk read on this side does not leave it idle), while the
 * byte cap below still bounds memory.
 */
const DEFAULT_WINDOW = 4096;
/** Unacknowledged argument bytes at most: a few large RESTOREs must not pile up in memory. */
const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;

/** DUMP footer: 2-byte RDB version + 8-byte CRC64. */
const FOOTER = 10;
const RESTORE = bulkToken('RESTORE');
const REPLACE = bulkToken('REPLACE');
const ABSTTL = bulkToken('ABSTTL');
const IDLETIME = bulkToken('IDLETIME');
const FREQ = bulkToken('FREQ');

/** The write side of one import: flush, then the second pass through the pipeline. */
export class ImportRun {
  readonly #client: Redis;
  readonly #conn: RespConnection;
  readonly #target: TargetInfo;
  readonly #options: ImportRdbOptions;
  readonly #survey: Survey;
  readonly #glob: KeyGlob | undefined;
  readonly #pipeline: CommandPipeline;
  /** Reused to queue RESTOREs (the pipeline copies its fields). */
  readonly #tag: Tag = { kind: 'restore', seq: 0, db: 0, key: undefined, type: undefined };
  readonly #replace: boolean;
  /** Database selected on the write connection (-1: none sent yet). */
  #connDb = -1;
  #seq = 0;
  #badSeq = -1;
  #failure: Error | undefined;
  #keysRead = 0;
  #restored = 0;
  #viaCommands = 0;
  #skippedExpired = 0;
  #skippedExisting = 0;
  #skippedFiltered = 0;
  readonly #unsupported: SkippedKey[] = [];
  readonly #lossy: SkippedKey[] = [];
  readonly #functions = { loaded: 0, skipped: 0 };
  readonly #perDb = new Map<number, number>();
  #flushed: number[] = [];
  #lastKey: Buffer | undefined;
  #lastDb: number | undefined;

  constructor(
    client: Redis,
    conn: RespConnection,
    target: TargetInfo,
    options: ImportRdbOptions,
    survey: Survey,
  ) {
    this.#client = client;
    this.#conn = conn;
    this.#target = target;
    this.#options = options;
    this.#survey = survey;
    this.#glob = options.match === undefined ? undefined : new KeyGlob(options.match);
    // Overwrite on the target in replace mode (other writers may race the flush) and for
    // merge/replace; only merge/skip lets an existing key win.
    this.#replace = options.mode === 'replace' || options.onConflict === 'replace';
    this.#pipeline = new CommandPipeline(conn, {
      window: options.pipeline ?? DEFAULT_WINDOW,
      maxBytes: MAX_INFLIGHT_BYTES,
      onReply: (tag, err, reply) => this.#onReply(tag, err, reply),
    });
  }

  get #keysWritten(): number {
    return this.#restored + this.#viaCommands;
  }

  /**
   * Replace mode: empties what the import covers. Without `match`, FLUSHDB (ASYNC: the keys are
   * gone at once, memory is freed in the background) of each database that has keys in the file,
   * or only `target.db`. With `match`, only the target's keys matching the pattern, via SCAN
   * MATCH + UNLINK, in those databases.
   */
  async prepare(): Promise<void> {
    if (this.#options.mode !== 'replace') return;
    const dbs =
      this.#options.target.db !== undefined
        ? [this.#options.target.db]
        : [...this.#survey.dbs].sort((a, b) => a - b);
    report(this.#options, 'flush', 0, this.#survey.bytes, 0, 0);
    try {
      for (const db of dbs) {
        await this.#client.select(db);
        if (this.#glob === undefined) {
          if (this.#target.asyncFlush) await this.#client.flushdb('ASYNC');
          else await this.#client.flushdb();
        } else {
          await this.#unlinkMatching(this.#glob.pattern);
        }
      }
    } catch (err) {
      throw this.#wrap(err, undefined);
    }
    if (this.#glob === undefined) this.#flushed = dbs;
  }

  async #unlinkMatching(pattern: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.#client.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next.toString();
      if (keys.length > 0) await this.#client.unlink(...keys);
    } while (cursor !== '0');
  }

  async writePass(): Promise<void> {
    const counter = new ByteCounter();
    const pipeline = this.#pipeline;
    let lastBytes = 0;
    try {
      const source = counter.count(openSource(this.#options.source, 1));
      read: for await (const batch of parseRdbBatches(source, { decodeValues: false })) {
        for (const rec of batch) {
          if (rec.kind === 'key') {
            this.#keysRead++;
            if (this.#admit(rec)) {
              // The common case costs no promise: RESTORE into the output buffer, and wait only
              // when the window is full.
              if (rec.db === this.#connDb && this.#restorable(rec)) {
                if (this.#queueRestore(rec, ++this.#seq)) await pipeline.room();
              } else {
                await this.#writeKey(rec);
              }
            }
          } else if (rec.kind === 'function') {
            await this.#loadFunction(rec.code);
          }
          if (this.#failure !== undefined) break read;
          // Per chunk read, and every 100 keys so small files with big values report too.
          if (counter.bytes !== lastBytes || (rec.kind === 'key' && this.#keysRead % 100 === 0)) {
            lastBytes = counter.bytes;
            report(
              this.#options,
              'import',
              counter.bytes,
              this.#survey.bytes,
              this.#keysRead,
              this.#keysWritten,
            );
          }
        }
      }
      if (this.#failure === undefined) await pipeline.drain();
    } catch (err) {
      // A source/parse error now means the bytes changed since the verify pass.
      if (this.#failure === undefined)
        this.#failure = err instanceof Error ? err : new Error(String(err));
    }
    if (this.#failure !== undefined) {
      await pipeline.abandon();
      throw this.#failure;
    }
    report(
      this.#options,
      'import',
      counter.bytes,
      this.#survey.bytes,
      this.#keysRead,
      this.#keysWritten,
    );
  }

  /**
   * Applies the filters to a key: false when it is not written (outside `target.db` or `match`,
   * or expired), counted as such.
   */
  #admit(rec: RdbRawKeyRecord): boolean {
    if (!covered(rec, this.#options, this.#glob)) {
      this.#skippedFiltered++;
      return false;
    }
    if (rec.expireAtMs !== undefined && rec.expireAtMs <= Date.now()) {
      this.#skippedExpired++;
      return false;
    }
    return true;
  }

  #restorable(rec: RdbRawKeyRecord): boolean {
    return restorable(rec, this.#target, this.#options, this.#survey.magic);
  }

  /** A key the filters let through, in the general case (database change, plain commands). */
  async #writeKey(rec: RdbRawKeyRecord): Promise<void> {
    await this.#select(rec.db);
    const seq = ++this.#seq;
    if (this.#restorable(rec)) {
      if (this.#queueRestore(rec, seq)) await this.#pipeline.room();
      return;
    }
    if (!this.#replace) {
      // merge/skip: a plain-command key cannot detect "already exists" atomically; ask first.
      // The pipeline is flushed so the check runs after (and in the db of) what precedes it.
      await this.#pipeline.flush();
      const exists = await this.#conn
        .call(['EXISTS', rec.key])
        .catch((e: unknown) => this.#fail(e, rec));
      if (exists === 1) {
        this.#skippedExisting++;
        return;
      }
      if (this.#failure !== undefined) return;
    }
    // Only now is the value decoded: the fallback is the one path that needs it.
    const plan = commandsForValue(rec.key, decodeRecord(rec, this.#survey.magic), this.#target, {
      deleteFirst: this.#replace,
      expireAtMs: rec.expireAtMs,
      now: Date.now(),
    });
    if (plan.unsupported !== undefined) {
      this.#unsupported.push(this.#skipped(rec, plan.unsupported));
      return;
    }
    if (plan.lossy !== undefined) this.#lossy.push(this.#skipped(rec, plan.lossy));
    const cmds = plan.commands;
    for (let i = 0; i < cmds.length; i++) {
      await this.#pipeline.send(cmds[i]!, {
        kind: i === cmds.length - 1 ? 'last' : 'part',
        seq,
        db: rec.db,
        key: rec.key,
        type: rec.type,
      });
      if (this.#failure !== undefined) return;
    }
  }

  /**
   * Queues `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s | FREQ f]`, encoded straight
   * into the pipeline's output: the payload is `raw`, the target's version and the CRC64 of both,
   * written in place (no payload buffer, no argument array). Returns whether the window is full.
   */
  #queueRestore(rec: RdbRawKeyRecord, seq: number): boolean {
    const { key, raw } = rec;
    const exp = rec.expireAtMs;
    const abs = this.#target.restoreAbsTtl;
    const ttl = exp === undefined ? 0 : abs ? exp : Math.max(1, exp - Date.now());
    let argc = 4;
    let size = RESTORE.length + bulkSize(key.length) + bulkSize(decimalDigits(ttl));
    const payload = raw.length + FOOTER;
    size += bulkSize(payload);
    if (this.#replace) {
      argc++;
      size += REPLACE.length;
    }
    const absTtl = abs && exp !== undefined;
    if (absTtl) {
      argc++;
      size += ABSTTL.length;
    }
    // Keep the eviction hints; the target ignores the one its maxmemory-policy does not use.
    const idle = abs ? rec.idleSeconds : undefined;
    const freq = abs && idle === undefined ? rec.lfuFreq : undefined;
    if (idle !== undefined) {
      argc += 2;
      size += IDLETIME.length + bulkSize(decimalDigits(idle));
    } else if (freq !== undefined) {
      argc += 2;
      size += FREQ.length + bulkSize(decimalDigits(freq));
    }
    size += 1 + decimalDigits(argc) + 2;
    const out = this.#pipeline.out;
    out.reserve(size);
    out.arrayHeader(argc);
    out.bytes(RESTORE);
    out.bulk(key);
    out.bulkDecimal(ttl);
    out.bulkHeader(payload);
    const start = out.pos;
    out.bytes(raw);
    out.pos = writeDumpFooter(out.buf, start, out.pos, this.#target.rdbVersion);
    out.crlf();
    if (this.#replace) out.bytes(REPLACE);
    if (absTtl) out.bytes(ABSTTL);
    if (idle !== undefined) {
      out.bytes(IDLETIME);
      out.bulkDecimal(idle);
    } else if (freq !== undefined) {
      out.bytes(FREQ);
      out.bulkDecimal(freq);
    }
    const tag = this.#tag;
    tag.seq = seq;
    tag.db = rec.db;
    tag.key = key;
    tag.type = rec.type;
    return this.#pipeline.commit(tag, size);
  }

  async #select(db: number): Promise<void> {
    if (db === this.#connDb) return;
    this.#connDb = db;
    await this.#pipeline.send(['SELECT', String(db)], {
      kind: 'select',
      seq: 0,
      db,
      key: undefined,
      type: undefined,
    });
  }

  async #loadFunction(code: Buffer): Promise<void> {
    if (this.#options.functions === false) return;
    if (!this.#target.functions) {
      this.#functions.skipped++;
      return;
    }
    const cmd: Command = this.#replace
      ? ['FUNCTION', 'LOAD', 'REPLACE', code]
      : ['FUNCTION', 'LOAD', code];
    await this.#pipeline.send(cmd, {
      kind: 'function',
      seq: 0,
      db: this.#connDb,
      key: undefined,
      type: undefined,
    });
  }

  #onReply(tag: Readonly<Tag>, err: Error | null, _reply: unknown): void {
    if (err === null) {
      if (tag.kind === 'function') this.#functions.loaded++;
      if ((tag.kind === 'restore' || tag.kind === 'last') && tag.seq !== this.#badSeq) {
        if (tag.kind === 'restore') this.#restored++;
        else this.#viaCommands++;
        this.#perDb.set(tag.db, (this.#perDb.get(tag.db) ?? 0) + 1);
        this.#lastKey = tag.key;
        this.#lastDb = tag.db;
      }
      return;
    }
    const msg = err.message;
    if (err instanceof RespReplyError) {
      if (tag.kind === 'restore' && !this.#replace && msg.startsWith('BUSYKEY')) {
        this.#skippedExisting++;
        return;
      }
      if (tag.kind === 'function' && !this.#replace && /already exists/i.test(msg)) {
        this.#functions.skipped++;
        return;
      }
      if (tag.kind === 'restore' && tag.type === 'module' && tag.key !== undefined) {
        this.#unsupported.push({
          db: tag.db,
          key: printableKey(tag.key),
          type: 'module',
          reason: `target refused the module value: ${msg}`,
        });
        return;
      }
    }
    this.#badSeq = tag.seq;
    this.#fail(err, tag.key === undefined ? undefined : { key: tag.key, db: tag.db });
  }

  /** Records the first failure (later ones are consequences) and returns undefined. */
  #fail(err: unknown, at: { key: Buffer; db: number } | undefined): undefined {
    if (this.#failure === undefined) this.#failure = this.#wrap(err, at);
    return undefined;
  }

  #wrap(err: unknown, at: { key: Buffer; db: number } | undefined): Error {
    const progress = {
      keysWritten: this.#keysWritten,
      lastKey: this.#lastKey === undefined ? undefined : printableKey(this.#lastKey),
      lastDb: this.#lastDb,
    };
    const msg = err instanceof Error ? err.message : String(err);
    if (err instanceof RespReplyError || err instanceof ReplyError) {
      return new ImportRejectedError(
        at === undefined ? '' : printableKey(at.key),
        at?.db ?? this.#connDb,
        msg,
        progress,
        { cause: err },
      );
    }
    return new ImportUnreachableError(
      `lost the connection to the target after ${progress.keysWritten} keys: ${msg}`,
      progress,
      { cause: err },
    );
  }

  #skipped(rec: { db: number; key: Buffer; type: RdbValueType }, reason: string): SkippedKey {
    return { db: rec.db, key: printableKey(rec.key), type: rec.type, reason };
  }

  result(): Omit<ImportRdbResult, 'durationMs' | 'verifyMs'> {
    const keysPerDb: Record<string, number> = {};
    for (const [db, n] of [...this.#perDb].sort((a, b) => a[0] - b[0])) keysPerDb[String(db)] = n;
    return {
      keysRead: this.#keysRead,
      keysWritten: this.#keysWritten,
      restored: this.#restored,
      viaCommands: this.#viaCommands,
      skippedExpired: this.#skippedExpired,
      skippedExisting: this.#skippedExisting,
      skippedFiltered: this.#skippedFiltered,
      skippedUnsupported: this.#unsupported,
      lossy: this.#lossy,
      functions: this.#functions,
      dbs: [...this.#perDb.keys()].sort((a, b) => a - b),
      keysPerDb,
      flushed: this.#flushed,
      bytes: this.#survey.bytes,
      sourceRdbVersion: this.#survey.version,
      target: {
        fork: this.#target.fork,
        version: this.#target.version,
        rdbVersion: this.#target.rdbVersion,
      },
    };
  }
}
