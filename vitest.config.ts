import { defineConfig } from 'vitest/config';

// Three projects:
// - unit: mirrors src/, may fake, needs no root and no testbed (CI runs it as an unprivileged
//   user, test/unit-as-user.sh). The effect layer runs here against the simulated cluster in
//   test/support/sim-cluster.ts.
// - root: the same files, only the cases named `as root: …` (the ownership checks jobbox makes
//   only as root). They are skipped in a unit run as a normal user and run here, so CI never
//   skips a security case; test/helpers/require-root.ts fails the project when not root.
// - testbed: the real dockerd, sshd, registry and Slurm that test/testbed brings up, one file
//   per feature, in series because they share the nodes.
const UNIT = { include: ['test/**/*.test.ts'], exclude: ['test/integration/**'] };

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', ...UNIT } },
      { test: { name: 'root', ...UNIT, testNamePattern: /as root: /, setupFiles: ['test/helpers/require-root.ts'] } },
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
