/** Where the shared test fixtures live: `<repo>/../shared/fixtures` (beside the clone, as in CI). */
import { fileURLToPath } from 'node:url';

/** The RDB fixtures folder; the caller decides what a missing folder means (fail in CI, skip locally). */
export function sharedRdbFixturesDir(): string {
  // This file is packages/testkit/dist/fixtures.js: four levels up is the folder holding the clone.
  return fileURLToPath(new URL('../../../../shared/fixtures/rdb', import.meta.url));
}
