/**
 * The write side of an import: emptying what replace mode covers, then the second pass over the
 * source, each key RESTOREd or rebuilt with commands through one bounded pipeline, with every
 * reply accounted in order so a failure says exactly what was written.
 */
import { ReplyError, type Redis } from 'ioredis';
import { dumpPayloadFromRaw, parseRdb, type RdbKeyRecord, type RdbRecord } from '@georep/rdb';
import { CommandPipeline } from './command-pipeline.js';
import { ImportRejectedError, ImportUnreachableError } from './errors.js';
import { KeyGlob } from './glob.js';
import { covered, report, restorable, type Survey } from './import-plan.js';
import type { ImportRdbOptions, ImportRdbResult, SkippedKey } from './import-types.js';
import { printableKey } from './printable.js';
import { RespReplyError, type RespConnection } from './resp-connection.js';
import { ByteCounter, openSource } from './source.js';
import type { TargetInfo } from './target-info.js';
import { commandsForValue, type Command } from './value-commands.js';

const DEFAULT_WINDOW = 256;
/** Unacknowledged argument bytes at most: a few large RESTOREs must not pile up in memory. */
const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;

/** Reply tag: which key (if any) a command belongs to and what its reply means. */
interface Tag {
  kind: 'select' | 'function' | 'restore' | 'part' | 'last';
  /** Sequence number of the key, to tie a failed part to its key's last command. */
  seq: number;
  db: number;
  key: Buffer | undefined;
  type?: RdbKeyRecord['type'];
}

/** The write side of one import: flush, then the second pass through the pipeline. */
export class ImportRun {
  readonly #client: Redis;
  readonly #conn: RespConnection;
  readonly #target: TargetInfo;
  readonly #options: ImportRdbOptions;
  readonly #survey: Survey;
  readonly #glob: KeyGlob | undefined;
  readonly #pipeline: CommandPipeline<Tag>;
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
    this.#pipeline = new CommandPipeline<Tag>(conn, {
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
    let lastBytes = 0;
    try {
      for await (const rec of parseRdb(counter.count(openSource(this.#options.source, 1)))) {
        await this.#record(rec);
        if (this.#failure !== undefined) break;
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
      if (this.#failure === undefined) await this.#pipeline.drain();
    } catch (err) {
      // A source/parse error now means the bytes changed since the verify pass.
      if (this.#failure === undefined)
        this.#failure = err instanceof Error ? err : new Error(String(err));
    }
    if (this.#failure !== undefined) {
      await this.#pipeline.abandon();
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

  async #record(rec: RdbRecord): Promise<void> {
    if (rec.kind === 'function') {
      await this.#loadFunction(rec.code);
      return;
    }
    if (rec.kind !== 'key') return;
    this.#keysRead++;
    if (!covered(rec, this.#options, this.#glob)) {
      this.#skippedFiltered++;
      return;
    }
    const now = Date.now();
    if (rec.expireAtMs !== undefined && rec.expireAtMs <= now) {
      this.#skippedExpired++;
      return;
    }
    await this.#select(rec.db);
    const seq = ++this.#seq;
    const base = { seq, db: rec.db, key: rec.key, type: rec.type };
    if (restorable(rec, this.#target, this.#options, this.#survey.magic)) {
      await this.#pipeline.send(this.#restoreCommand(rec, now), { kind: 'restore', ...base });
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
    const plan = commandsForValue(rec.key, rec, this.#target, {
      deleteFirst: this.#replace,
      expireAtMs: rec.expireAtMs,
      now,
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
        ...base,
      });
      if (this.#failure !== undefined) return;
    }
  }

  #restoreCommand(rec: RdbKeyRecord, now: number): Command {
    const payload = dumpPayloadFromRaw(rec.raw, this.#target.rdbVersion);
    const abs = this.#target.restoreAbsTtl;
    let ttl = '0';
    if (rec.expireAtMs !== undefined)
      ttl = String(abs ? rec.expireAtMs : Math.max(1, rec.expireAtMs - now));
    const cmd: Command = ['RESTORE', rec.key, ttl, payload];
    if (this.#replace) cmd.push('REPLACE');
    if (abs && rec.expireAtMs !== undefined) cmd.push('ABSTTL');
    // Keep the eviction hints; the target ignores the one its maxmemory-policy does not use.
    if (abs && rec.idleSeconds !== undefined) cmd.push('IDLETIME', String(rec.idleSeconds));
    else if (abs && rec.lfuFreq !== undefined) cmd.push('FREQ', String(rec.lfuFreq));
    return cmd;
  }

  async #select(db: number): Promise<void> {
    if (db === this.#connDb) return;
    this.#connDb = db;
    await this.#pipeline.send(['SELECT', String(db)], {
      kind: 'select',
      seq: 0,
      db,
      key: undefined,
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
    await this.#pipeline.send(cmd, { kind: 'function', seq: 0, db: this.#connDb, key: undefined });
  }

  #onReply(tag: Tag, err: Error | null, _reply: unknown): void {
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

  #skipped(rec: RdbKeyRecord, reason: string): SkippedKey {
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
