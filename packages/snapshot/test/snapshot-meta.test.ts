import { describe, expect, it } from 'vitest';
import { GeorepError } from '@georep/core';
import {
  KeyGlob,
  assertSnapshotName,
  compareNewestFirst,
  isValidSnapshotName,
  snapshotMetaFromExport,
  snapshotNameOf,
} from '@georep/snapshot';

describe('snapshot meta', () => {
  it('meta - names are <region>-<UTC basic ISO time> and validated', () => {
    expect(snapshotNameOf('eu-west', new Date('2026-11-23T18:15:00.123Z'))).toBe(
      'eu-west-20261123T181500Z',
    );
    expect(isValidSnapshotName('a.b_c-1')).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', 'a b', 'é', 'x'.repeat(129)]) {
      expect(isValidSnapshotName(bad), bad).toBe(false);
    }
    const err = (() => {
      try {
        assertSnapshotName('../x');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(GeorepError);
    expect((err as GeorepError).code).toBe('snapshot.invalid-name');
  });

  it('meta - export results map to metadata; listings sort newest first', () => {
    const meta = snapshotMetaFromExport(
      {
        pointInTime: true,
        source: 'psync',
        out: '/tmp/x.rdb',
        bytes: 1234,
        rdbVersion: 10,
        redisVersion: '7.0.15',
        crc: 'ABCDEF0123456789',
        replid: 'r'.repeat(40),
        offset: 42,
        keysPerDb: { 0: 3, 5: 1 },
        framing: 'eof-marker',
        checksum: 'verified',
        verify: 'records',
        rdbOnly: true,
        aux: {},
        transferMs: 1,
        durationMs: 2,
      },
      { group: 'g', region: 'eu', node: 'n1', createdAt: Date.UTC(2026, 10, 23, 18, 15) },
    );
    expect(meta).toMatchObject({
      name: 'eu-20261123T181500Z',
      size: 1234,
      crc: 'abcdef0123456789',
      keys: 4,
      keysPerDb: { '0': 3, '5': 1 },
      offset: 42,
      pointInTime: true,
      source: 'psync',
    });
    const a = { ...meta, name: 'a', createdAt: 1 };
    const b = { ...meta, name: 'b', createdAt: 2 };
    const c = { ...meta, name: 'c', createdAt: 2 };
    expect([a, b, c].sort(compareNewestFirst).map((m) => m.name)).toEqual(['c', 'b', 'a']);
  });

  it('glob - matches like Redis KEYS: *, ?, classes, ranges, negation, escapes', () => {
    const m = (p: string, k: string | Buffer) =>
      new KeyGlob(p).matches(Buffer.isBuffer(k) ? k : Buffer.from(k));
    expect(m('*', '')).toBe(true);
    expect(m('user:*', 'user:42')).toBe(true);
    expect(m('user:*', 'users')).toBe(false);
    expect(m('h?llo', 'hello')).toBe(true);
    expect(m('h?llo', 'hllo')).toBe(false);
    expect(m('h[ae]llo', 'hallo')).toBe(true);
    expect(m('h[ae]llo', 'hillo')).toBe(false);
    expect(m('h[^e]llo', 'hallo')).toBe(true);
    expect(m('h[^e]llo', 'hello')).toBe(false);
    expect(m('k[0-4]', 'k3')).toBe(true);
    expect(m('k[0-4]', 'k7')).toBe(false);
    expect(m('a\\*b', 'a*b')).toBe(true);
    expect(m('a\\*b', 'axb')).toBe(false);
    expect(m('*:*:end', 'a:b:c:end')).toBe(true);
    expect(m('bin*', Buffer.from([0x62, 0x69, 0x6e, 0xff, 0x00]))).toBe(true);
  });
});
