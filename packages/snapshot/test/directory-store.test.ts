import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DirectorySnapshotStore } from '@georep/snapshot';
import { tempDir } from '@georep/testkit';
import { runSnapshotStoreConformance, smallSnapshot } from './store-conformance.js';

runSnapshotStoreConformance('directory store', async () => {
  const dir = tempDir('dir-store');
  const store = await DirectorySnapshotStore.open(dir);
  return {
    store,
    corrupt: async (name) => {
      const file = join(dir, `${name}.rdb`);
      const bytes = readFileSync(file);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = bytes[at]! ^ 0x55;
      writeFileSync(file, bytes);
    },
  };
});

describe('directory store', () => {
  it('directory - files are <name>.rdb and <name>.json; an orphan .rdb is not listed', async () => {
    const dir = tempDir('dir-layout');
    const store = await DirectorySnapshotStore.open(dir);
    const s = smallSnapshot('eu-20261123T181500Z');
    await store.put(s.meta, s.file);
    expect(readFileSync(join(dir, 'eu-20261123T181500Z.rdb')).equals(s.bytes)).toBe(true);
    const meta = JSON.parse(readFileSync(join(dir, 'eu-20261123T181500Z.json'), 'utf8'));
    expect(meta.size).toBe(s.bytes.length);
    writeFileSync(join(dir, 'orphan.rdb'), s.bytes);
    expect((await store.list()).map((m) => m.name)).toEqual(['eu-20261123T181500Z']);
    expect(store.location).toBe(dir);
    expect(store.kind).toBe('directory');
  });
});
