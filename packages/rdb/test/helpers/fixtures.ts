/**
 * Locates the shared RDB fixtures (`<repo>/../shared/fixtures/rdb`). Missing fixtures fail the
 * run in CI (a silently skipped conformance suite is worse than a red build) and skip locally.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: this file is packages/rdb/test/helpers/fixtures.ts. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

/** Root of the shared RDB fixtures. */
export const fixturesDir = path.resolve(repoRoot, '../shared/fixtures/rdb');

/** Whether the fixtures are present. */
export const haveFixtures = existsSync(path.join(fixturesDir, 'hdt3213'));

/** Message used both for the CI failure and the local skip. */
export const missingFixturesMessage = `RDB fixtures not found at ${fixturesDir}`;
