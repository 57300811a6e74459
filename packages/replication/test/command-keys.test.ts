import { describe, expect, it } from 'vitest';
import { commandKeys, knownWriteCommands } from '@georep/replication';

const keysOf = (...argv: string[]) => commandKeys(argv.map((a) => Buffer.from(a))).keys.map(String);
const of = (...argv: string[]) => commandKeys(argv.map((a) => Buffer.from(a)));

describe('command keys', () => {
  it('keys - single-key commands of every family, any case', () => {
    for (const cmd of [
      'SET',
      'set',
      'SetEx',
      'incrbyfloat',
      'hset',
      'sadd',
      'zadd',
      'lpush',
      'xadd',
      'pexpireat',
      'persist',
      'restore',
      'getdel',
      'getex',
      'setrange',
      'append',
      'pfadd',
      'geoadd',
      'xtrim',
      'xack',
      'xclaim',
      'xautoclaim',
    ]) {
      expect(keysOf(cmd, 'k', 'x', 'y')).toEqual(['k']);
    }
  });

  it('keys - multi-key and destination commands', () => {
    expect(keysOf('MSET', 'a', '1', 'b', '2')).toEqual(['a', 'b']);
    expect(keysOf('DEL', 'a', 'b', 'c')).toEqual(['a', 'b', 'c']);
    expect(keysOf('UNLINK', 'a')).toEqual(['a']);
    expect(keysOf('RENAME', 'a', 'b')).toEqual(['a', 'b']);
    expect(keysOf('LMOVE', 'a', 'b', 'LEFT', 'RIGHT')).toEqual(['a', 'b']);
    expect(keysOf('BLMOVE', 'a', 'b', 'LEFT', 'RIGHT', '0')).toEqual(['a', 'b']);
    expect(keysOf('RPOPLPUSH', 'a', 'b')).toEqual(['a', 'b']);
    expect(keysOf('SMOVE', 'a', 'b', 'm')).toEqual(['a', 'b']);
    expect(keysOf('ZUNIONSTORE', 'd', '2', 'a', 'b')).toEqual(['d']);
    expect(keysOf('SINTERSTORE', 'd', 'a', 'b')).toEqual(['d']);
    expect(keysOf('BITOP', 'AND', 'd', 'a', 'b')).toEqual(['d']);
    expect(keysOf('PFMERGE', 'd', 'a', 'b')).toEqual(['d']);
    expect(keysOf('BLPOP', 'a', 'b', '0')).toEqual(['a', 'b']);
    expect(keysOf('LMPOP', '2', 'a', 'b', 'LEFT')).toEqual(['a', 'b']);
    expect(keysOf('BZMPOP', '0', '1', 'z', 'MIN')).toEqual(['z']);
    expect(keysOf('SORT', 'src', 'BY', 'x', 'STORE', 'dst')).toEqual(['dst']);
    expect(keysOf('SORT', 'src')).toEqual([]);
    expect(keysOf('XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', 's1', 's2', '>', '>')).toEqual([
      's1',
      's2',
    ]);
    expect(keysOf('COPY', 'a', 'b')).toEqual(['b']);
    expect(of('COPY', 'a', 'b', 'DB', '3')).toMatchObject({ keys: [], otherDb: { db: 3 } });
  });

  it('keys - container commands, databases, transactions, scripts', () => {
    expect(of('XGROUP', 'CREATE', 's', 'g', '$')).toMatchObject({ command: 'xgroup|create' });
    expect(keysOf('XGROUP', 'SETID', 's', 'g', '0')).toEqual(['s']);
    expect(of('FUNCTION', 'LOAD', 'code')).toMatchObject({ keys: [], nonKey: 'functions' });
    expect(of('FLUSHALL')).toMatchObject({ flush: 'all' });
    expect(of('FLUSHDB', 'ASYNC')).toMatchObject({ flush: 'db' });
    expect(of('SELECT', '7')).toMatchObject({ selectDb: 7 });
    expect(of('SWAPDB', '1', '2')).toMatchObject({ swapDb: [1, 2] });
    expect(of('MULTI').transaction).toBe('begin');
    expect(of('EXEC').transaction).toBe('commit');
    expect(of('EVAL', 'return 1', '2', 'a', 'b', 'arg')).toMatchObject({ script: true });
    expect(keysOf('FCALL', 'fn', '1', 'a', 'arg')).toEqual(['a']);
    expect(of('PUBLISH', 'ch', 'm')).toMatchObject({ keys: [], nonKey: 'pubsub' });
  });

  it('keys - unknown or malformed commands never throw', () => {
    expect(of('MODULE.WRITE', 'k')).toEqual({ command: 'module.write', keys: [], unknown: true });
    expect(of('XGROUP', 'NEWTHING', 's')).toMatchObject({ unknown: true });
    expect(commandKeys([])).toMatchObject({ unknown: true });
    expect(keysOf('SET')).toEqual([]);
    expect(keysOf('LMPOP', 'notanumber', 'a')).toEqual([]);
    expect(keysOf('LMPOP', '5', 'a')).toEqual(['a']);
    expect(knownWriteCommands()).toContain('xgroup|create');
    expect(knownWriteCommands().length).toBeGreaterThan(100);
  });
});
