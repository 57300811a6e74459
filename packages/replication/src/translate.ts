/**
 * Translate: captured write commands → replication instructions, one per key and rule.
 *
 * The replication stream carries effects (see README), so the rules need only the commands
 * that a Redis 7 stream contains. Commands with a specific merge rule (counters, expiries,
 * hash/set/zset elements, flushes) become those instructions. Every other command that writes
 * keys becomes a `value` instruction for each key: record.lua then ships the key's whole value,
 * or a tombstone when it no longer exists, so nothing is ever lost.
 *
 * Two kinds of writes are not translated:
 * - writes to georep's own keys (`__georep:` prefix): metadata, the outbox, markers;
 * - transactions whose first command writes the apply marker: those are remote writes that
 *   apply.lua made, and shipping them again would echo them.
 */
import { commandKeys } from './command-keys.js';
import {
  APPLY_MARKER_KEY,
  GEOREP_KEY_PREFIX,
  type ElementType,
  type Instruction,
  type Tag,
} from './ops.js';

const PREFIX = Buffer.from(GEOREP_KEY_PREFIX);
const MARKER = Buffer.from(APPLY_MARKER_KEY);

/** What a command could not be replicated for: logged and counted by the caller. */
export interface TranslateWarning {
  command: string;
  reason: 'swapdb' | 'unknown-command' | 'no-keys';
}

/** Result of feeding one command. */
export interface Translated {
  instructions: Instruction[];
  warning?: TranslateWarning;
}

/** True when `key` is one of georep's own keys. */
export function isGeorepKey(key: Uint8Array): boolean {
  return key.length >= PREFIX.length && PREFIX.equals(key.subarray(0, PREFIX.length));
}

/** Instructions about one key (all but flush). */
type KeyInstruction = Exclude<Instruction, { kind: 'flush' }>;

const ZADD_FLAGS = new Set(['nx', 'xx', 'gt', 'lt', 'ch', 'incr']);

/**
 * Turns the commands of one capture stream into instructions. Stateful: it follows MULTI/EXEC
 * to skip apply transactions. Feed commands in stream order; `tick` gives each instruction its
 * tag.
 */
export class Translator {
  readonly #tick: () => Tag;
  /** Inside MULTI and before its first command. */
  #txStart = false;
  /** Inside an apply transaction: drop until EXEC. */
  #skipping = false;

  constructor(tick: () => Tag) {
    this.#tick = tick;
  }

  /**
   * Forgets the transaction state: after a full resync the stream starts over, and a MULTI that
   * was cut off with the old link must not make the new stream's commands skipped.
   */
  reset(): void {
    this.#txStart = false;
    this.#skipping = false;
  }

  /** Translates one command of db `db`. */
  feed(db: number, argv: readonly Buffer[]): Translated {
    // Inside an apply transaction only its end matters: the receiving region's capture reads
    // every effect of every apply, so this is the common case there and skips the key lookup.
    if (this.#skipping && !endsTransaction(argv[0])) return { instructions: [] };
    // record.lua's own writes (metadata, outbox) follow every recorded batch in the stream, one
    // per operation: known single-key commands on a georep key need no key lookup. The first
    // command of a transaction still takes the full path (it may be the apply marker).
    if (!this.#txStart && isOwnSingleKeyWrite(argv)) return { instructions: [] };
    const writes = commandKeys(argv);
    if (writes.transaction === 'begin') {
      this.#txStart = true;
      this.#skipping = false;
      return { instructions: [] };
    }
    if (writes.transaction !== undefined) {
      this.#txStart = false;
      this.#skipping = false;
      return { instructions: [] };
    }
    if (this.#txStart) {
      this.#txStart = false;
      if (writes.command === 'set' && argv[1] !== undefined && MARKER.equals(argv[1])) {
        this.#skipping = true;
      }
    }
    if (this.#skipping) return { instructions: [] };
    if (writes.flush !== undefined) {
      return {
        instructions: [{ kind: 'flush', db: writes.flush === 'all' ? -1 : db, tag: this.#tick() }],
      };
    }
    if (writes.swapDb !== undefined) {
      return { instructions: [], warning: { command: writes.command, reason: 'swapdb' } };
    }
    if (writes.unknown === true) {
      return { instructions: [], warning: { command: writes.command, reason: 'unknown-command' } };
    }
    const instructions: Instruction[] = [];
    const specific = this.#specific(db, writes.command, argv);
    if (specific !== undefined) {
      if (!isGeorepKey(specific.key)) instructions.push(specific);
    } else {
      for (const key of writes.keys) {
        if (!isGeorepKey(key)) instructions.push({ kind: 'value', db, key, tag: this.#tick() });
      }
    }
    if (writes.otherDb !== undefined) {
      for (const key of writes.otherDb.keys) {
        if (!isGeorepKey(key)) {
          instructions.push({ kind: 'value', db: writes.otherDb.db, key, tag: this.#tick() });
        }
      }
    }
    if (
      instructions.length === 0 &&
      writes.keys.length === 0 &&
      writes.nonKey === undefined &&
      writes.otherDb === undefined
    ) {
      return { instructions, warning: { command: writes.command, reason: 'no-keys' } };
    }
    return { instructions };
  }

  /** The instruction of a command with a specific rule, or undefined for whole-value shipping. */
  #specific(db: number, command: string, argv: readonly Buffer[]): KeyInstruction | undefined {
    const key = argv[1];
    if (key === undefined) return undefined;
    switch (command) {
      case 'incr':
        return this.#counter(db, key, '1');
      case 'decr':
        return this.#counter(db, key, '-1');
      case 'incrby':
        return integerArg(argv[2], (n) => this.#counter(db, key, n.toString()));
      case 'decrby':
        return integerArg(argv[2], (n) => this.#counter(db, key, (-n).toString()));
      case 'pexpireat':
      case 'expireat':
      case 'expire':
      case 'pexpire':
      case 'persist':
        return { kind: 'expire', db, key, tag: this.#tick() };
      case 'hset':
      case 'hmset':
        return this.#elements(db, key, 'hash', pick(argv, 2, 2), []);
      case 'hsetnx':
      case 'hincrby':
      case 'hincrbyfloat':
        return this.#elements(db, key, 'hash', pick(argv, 2, 99, 1), []);
      case 'hdel':
        return this.#elements(db, key, 'hash', [], pick(argv, 2, 1));
      case 'sadd':
        return this.#elements(db, key, 'set', pick(argv, 2, 1), []);
      case 'srem':
        return this.#elements(db, key, 'set', [], pick(argv, 2, 1));
      case 'zadd': {
        let i = 2;
        while (i < argv.length && ZADD_FLAGS.has(argv[i]!.toString('latin1').toLowerCase())) i++;
        return this.#elements(db, key, 'zset', pick(argv, i + 1, 2), []);
      }
      case 'zincrby':
        return this.#elements(db, key, 'zset', pick(argv, 3, 99, 1), []);
      case 'zrem':
        return this.#elements(db, key, 'zset', [], pick(argv, 2, 1));
      default:
        return undefined;
    }
  }

  #counter(db: number, key: Buffer, delta: string): KeyInstruction {
    return { kind: 'counter', db, key, tag: this.#tick(), delta };
  }

  #elements(
    db: number,
    key: Buffer,
    type: ElementType,
    add: Buffer[],
    rem: Buffer[],
  ): KeyInstruction {
    return { kind: 'elements', db, key, tag: this.#tick(), type, add, rem };
  }
}

const EXEC = Buffer.from('exec');
const DISCARD = Buffer.from('discard');
const MULTI = Buffer.from('multi');

/** True for EXEC, DISCARD and MULTI, in any case: the commands that end a skipped transaction. */
function endsTransaction(name: Buffer | undefined): boolean {
  if (name === undefined) return true;
  const word =
    name.length === 4 ? EXEC : name.length === 7 ? DISCARD : name.length === 5 ? MULTI : null;
  if (word === null) return false;
  for (let i = 0; i < word.length; i++) if ((name[i]! | 0x20) !== word[i]) return false;
  return true;
}

const HSET = Buffer.from('hset');
const HDEL = Buffer.from('hdel');
const SET = Buffer.from('set');

/** HSET, HDEL or SET (any case; each writes one key, its first argument) of a georep key. */
function isOwnSingleKeyWrite(argv: readonly Buffer[]): boolean {
  const name = argv[0];
  const key = argv[1];
  if (name === undefined || key === undefined || !isGeorepKey(key)) return false;
  const word =
    name.length === 4 ? ((name[1]! | 0x20) === 0x73 ? HSET : HDEL) : name.length === 3 ? SET : null;
  if (word === null) return false;
  for (let i = 0; i < word.length; i++) if ((name[i]! | 0x20) !== word[i]) return false;
  return true;
}

/** Arguments from `from`, every `step`, at most `max`. */
function pick(argv: readonly Buffer[], from: number, step: number, max = Infinity): Buffer[] {
  const out: Buffer[] = [];
  for (let i = from; i < argv.length && out.length < max; i += step) out.push(argv[i]!);
  return out;
}

/** Parses a 64-bit integer argument; undefined (whole-value fallback) when it is not one. */
function integerArg(
  arg: Buffer | undefined,
  make: (n: bigint) => KeyInstruction,
): KeyInstruction | undefined {
  if (arg === undefined) return undefined;
  const text = arg.toString('latin1');
  if (!/^-?\d{1,20}$/.test(text)) return undefined;
  return make(BigInt(text));
}
