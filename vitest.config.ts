import { defineConfig } from 'vitest/config';

/**
 * One root config with a project per package plus the cross-package suites in test/.
 * Tests import the built packages (npm test builds first), exactly as users consume them.
 */
const pkg = (name: string) => ({
  extends: true as const,
  test: { name, include: [`packages/${name}/test/**/*.test.ts`] },
});

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: real servers per file, files in parallel up to the core count.
    maxWorkers: 2,
    dangerouslyIgnoreUnhandledErrors: false,
    projects: [
      pkg('core'),
      pkg('rdb'),
      pkg('testkit'),
      pkg('redis'),
      pkg('group'),
      pkg('snapshot'),
      pkg('replication'),
      pkg('agent'),
      pkg('cli'),
      { extends: true, test: { name: 'e2e', include: ['test/**/*.test.ts'] } },
    ],
  },
});
