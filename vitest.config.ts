import { defineConfig } from 'vitest/config';

// Four projects:
// - unit: mirrors src/, may fake, needs no root and no testbed (CI runs it as an unprivileged
//   user, test/unit-as-user.sh). The effect layer runs here against the simulated cluster in
//   test/support/sim-cluster.ts.
// - root: `*.root.test.ts`, beside the unit tests they belong with: the ownership checks jobbox
//   makes only as root. test/helpers/require-root.ts fails the project when not root, so CI
//   never skips a security case.
// - testbed: the real dockerd, sshd, registry and Slurm that test/testbed brings up, one file
//   per feature, in series because they share the nodes.
// - podman: a named subset of the testbed suites, with the hooks on Podman.

// The suites CI also runs on Podman (docs/podman.md says why these).
const PODMAN_SUITES = ['lsf-jobs', 'lsf-cgroups', 'slurm', 'slurm-cgroups', 'gc', 'ps', 'image-annotations'];

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/integration/**', 'test/**/*.root.test.ts'] } },
      { test: { name: 'root', include: ['test/**/*.root.test.ts'], setupFiles: ['test/helpers/require-root.ts'] } },
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
      // The same testbed with every hook on Podman: the LSF and Slurm job paths, cgroups, gc
      // and ps. The suites ask the nodes' Podman what it holds (test/support/testbed.ts ENGINE).
      {
        test: {
          name: 'podman',
          env: { JOBBOX_TEST_ENGINE: 'podman' },
          include: PODMAN_SUITES.map((s) => `test/integration/${s}.test.ts`),
          globalSetup: ['test/integration/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
