/**
 * Conformance against real RDB files written by Redis 2.x-7.4 and Valkey 9, with expectations
 * produced by another parser (HDT3213/rdb JSON files), never by this codec.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatStreamId, parseRdbFile } from '@georep/rdb';
import type { RdbKeyRecord, RdbRecord, StreamValue } from '@georep/rdb';
import { fixturesDir, haveFixtures, missingFixturesMessage } from './helpers/fixtures.js';

if (!haveFixtures) {
  if (process.env.CI !== undefined && process.env.CI !== '') {
    describe('fixtures', () => {
      it('fixtures - are present in CI', () => {
        throw new Error(`${missingFixturesMessage}; CI must provide them`);
      });
    });
  } else {
    console.warn(`${missingFixturesMessage}; skipping fixture conformance tests`);
  }
}

const hdtDir = path.join(fixturesDir, 'hdt3213');
const cases = haveFixtures
  ? readdirSync(hdtDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length))
      .filter((name) => readdirSync(hdtDir).includes(`${name}.rdb`))
  : [];

async function collect(file: string): Promise<RdbRecord[]> {
  const out: RdbRecord[] = [];
  for await (const r of parseRdbFile(file)) out.push(r);
  return out;
}

/** Shape of one expectation object in the JSON files (only the fields compared). */
interface Expected {
  db: number;
  key: string;
  type: string;
  expiration?: string;
  value?: string;
  values?: string[];
  members?: string[];
  entries?: unknown[];
  hash?: Record<string, string>;
  expire?: Record<string, number>;
  functionsLua?: string;
  groups?: unknown[];
  len?: number;
  lastId?: string;
  firstId?: string;
  maxDeletedId?: string;
  addedEntriesCount?: number;
}

const text = (b: Buffer): string => b.toString('utf8');

/** Stream value in the JSON's vocabulary, so whole structures compare in one assertion. */
function streamAsJson(s: StreamValue, expected: Expected): Record<string, unknown> {
  const out: Record<string, unknown> = {
    msgs: s.entries.map((e) => ({
      id: formatStreamId(e.id),
      fields: Object.fromEntries(e.fields.map(([f, v]) => [text(f), text(v)])),
      deleted: e.deleted,
    })),
    len: s.length,
    lastId: formatStreamId(s.lastId),
  };
  if (expected.firstId !== undefined && s.firstId !== undefined) {
    out.firstId = formatStreamId(s.firstId);
    out.maxDeletedId = formatStreamId(s.maxDeletedId!);
    out.addedEntriesCount = Number(s.entriesAdded);
  }
  if (expected.groups !== undefined) {
    out.groups = s.groups.map((g) => ({
      name: text(g.name),
      lastId: formatStreamId(g.lastId),
      pending: g.pending.map((p) => ({
        id: formatStreamId(p.id),
        deliveryTime: p.deliveryTime,
        deliveryCount: p.deliveryCount,
      })),
      consumers: g.consumers.map((c) => ({
        name: text(c.name),
        seenTime: c.seenTime,
        pending: c.pending.map(formatStreamId),
        // Streams older than type 21 store no active time; Redis (and the JSON) use seen time.
        activeTime: c.activeTime ?? c.seenTime,
      })),
      ...(g.entriesRead === undefined ? {} : { entriesRead: Number(g.entriesRead) }),
    }));
  }
  return out;
}

function expectedStream(e: Expected): Record<string, unknown> {
  const nodes = (e.entries ?? []) as Array<{ msgs: unknown[] }>;
  const out: Record<string, unknown> = {
    msgs: nodes.flatMap((n) => n.msgs),
    len: e.len,
    lastId: e.lastId,
  };
  if (e.firstId !== undefined) {
    out.firstId = e.firstId;
    out.maxDeletedId = e.maxDeletedId;
    out.addedEntriesCount = e.addedEntriesCount;
  }
  if (e.groups !== undefined) {
    out.groups = (e.groups as Array<Record<string, unknown>>).map((g) => ({
      ...g,
      pending: g.pending ?? [],
      consumers: ((g.consumers ?? []) as Array<Record<string, unknown>>).map((c) => ({
        ...c,
        pending: c.pending ?? [],
      })),
    }));
  }
  return out;
}

function checkKey(rec: RdbKeyRecord, e: Expected): void {
  expect(rec.db).toBe(e.db);
  expect(text(rec.key)).toBe(e.key);
  expect(rec.type).toBe(e.type);
  expect(rec.expireAtMs).toBe(e.expiration === undefined ? undefined : Date.parse(e.expiration));
  switch (rec.type) {
    case 'string':
      expect(text(rec.value)).toBe(e.value);
      break;
    case 'list':
      expect(rec.value.map(text)).toEqual(e.values);
      break;
    case 'set':
      expect(rec.value.map(text).sort()).toEqual([...(e.members ?? [])].sort());
      break;
    case 'zset':
      expect(rec.value.map((z) => ({ member: text(z.member), score: z.score }))).toEqual(e.entries);
      break;
    case 'hash': {
      expect(Object.fromEntries(rec.value.map((h) => [text(h.field), text(h.value)]))).toEqual(
        e.hash,
      );
      if (e.expire !== undefined) {
        const got = Object.fromEntries(rec.value.map((h) => [text(h.field), h.expireAtMs ?? 0]));
        expect(got).toEqual(e.expire);
      } else {
        expect(rec.value.every((h) => h.expireAtMs === undefined)).toBe(true);
      }
      break;
    }
    case 'stream':
      expect(streamAsJson(rec.value, e)).toEqual(expectedStream(e));
      break;
    case 'module':
      throw new Error('no module values in the JSON fixtures');
  }
}

describe.runIf(haveFixtures)('fixtures', () => {
  it('fixtures - every hdt3213 case with a JSON expectation is found', () => {
    expect(cases.length).toBeGreaterThanOrEqual(38);
  });

  it.each(cases)('fixtures - %s parses to its JSON expectation', async (name) => {
    const expected = JSON.parse(
      readFileSync(path.join(hdtDir, `${name}.json`), 'utf8'),
    ) as Expected[];
    const records = await collect(path.join(hdtDir, `${name}.rdb`));
    const keys = records.filter((r): r is RdbKeyRecord => r.kind === 'key');
    const expectedKeys = expected.filter((e) => e.type !== 'aux' && e.type !== 'functions');
    expect(keys.map((k) => text(k.key))).toEqual(expectedKeys.map((e) => e.key));
    keys.forEach((k, i) => checkKey(k, expectedKeys[i]!));

    for (const aux of expected.filter((e) => e.type === 'aux')) {
      const rec = records.find((r) => r.kind === 'aux' && r.name === aux.key);
      expect(rec?.kind === 'aux' ? text(rec.value) : undefined).toBe(aux.value);
    }
    const functions = expected.filter((e) => e.type === 'functions').map((e) => e.functionsLua);
    expect(records.flatMap((r) => (r.kind === 'function' ? [text(r.code)] : []))).toEqual(
      functions,
    );

    const eof = records.at(-1);
    expect(eof?.kind).toBe('eof');
    const header = records[0];
    if (header?.kind === 'header' && header.version >= 5 && eof?.kind === 'eof') {
      expect(['verified', 'disabled']).toContain(eof.checksum);
    }
  });

  it('fixtures - keys that already expired are still reported with their expiry', async () => {
    const records = await collect(path.join(hdtDir, 'expiration.rdb'));
    const keys = records.filter((r): r is RdbKeyRecord => r.kind === 'key');
    expect(keys.map((k) => [text(k.key), k.expireAtMs])).toEqual([
      ['noexpire', undefined],
      ['expired', 0x197def5c924],
    ]);
  });

  it('fixtures - rdbtools Redis 4.0 file with a module value parses fully', async () => {
    const records = await collect(path.join(fixturesDir, 'rdbtools/redis_40_with_module.rdb'));
    const keys = records.filter((r): r is RdbKeyRecord => r.kind === 'key');
    expect(keys.map((k) => [text(k.key), k.type])).toEqual([
      ['simplekey', 'string'],
      ['foo', 'module'],
    ]);
    const mod = keys[1]!;
    if (mod.type !== 'module') throw new Error('expected a module value');
    // The id spells the module type name; the body ends with the module EOF opcode.
    expect(mod.value.moduleName).toMatch(/^[A-Za-z0-9_-]{9}$/);
    expect(mod.value.body.at(-1)).toBe(0);
    expect(mod.raw[0]).toBe(7);
    // This file was saved with checksums off.
    expect(records.at(-1)).toMatchObject({ kind: 'eof', checksum: 'disabled' });
  });

  it('fixtures - rdbtools Redis 5.0 file with streams parses with verified checksum', async () => {
    const records = await collect(path.join(fixturesDir, 'rdbtools/redis_50_with_streams.rdb'));
    const keys = records.filter((r): r is RdbKeyRecord => r.kind === 'key');
    expect(keys).toHaveLength(14);
    const byType = keys.reduce<Record<string, number>>((acc, k) => {
      acc[k.type] = (acc[k.type] ?? 0) + 1;
      return acc;
    }, {});
    expect(byType).toEqual({ string: 3, list: 2, set: 4, zset: 2, hash: 2, stream: 1 });
    const stream = keys.find((k) => k.type === 'stream');
    if (stream?.type !== 'stream') throw new Error('expected a stream');
    expect(stream.value.entries.length).toBeGreaterThan(0);
    expect(stream.value.length).toBe(stream.value.entries.filter((e) => !e.deleted).length);
    expect(records.at(-1)).toMatchObject({ kind: 'eof', checksum: 'verified' });
  });

  it('fixtures - rdbtools Redis 6.0 file with module aux data parses with verified checksum', async () => {
    const records = await collect(path.join(fixturesDir, 'rdbtools/redis_60_with_module_aux.rdb'));
    const aux = records.filter((r) => r.kind === 'module-aux');
    expect(aux).toHaveLength(1);
    expect(aux[0]).toMatchObject({ kind: 'module-aux', when: 2 });
    expect(records.filter((r) => r.kind === 'key')).toHaveLength(0);
    expect(records.at(-1)).toMatchObject({ kind: 'eof', checksum: 'verified' });
  });
});
