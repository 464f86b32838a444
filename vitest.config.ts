import { defineConfig } from 'vitest/config';

// Two projects: unit tests mirror src/ and may fake; testbed suites run against the real
// dockerd, sshd and registry that test/testbed brings up, one file per feature, in series
// because they share the nodes.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/integration/**'],
        },
      },
      {
        test: {
          name: 'testbed',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
