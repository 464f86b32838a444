import type { TestProject } from 'vitest/node';
import { testbed, testbedStatus } from '../support/testbed.js';

// The suites need the real cluster. Reuse one that is up (a developer's), else bring one
// up and take it down again afterwards, so CI leaves nothing running. Either way the suites
// run jobbox as installed from the package of the tree as it is (testbed.sh install), on the
// project's engine: the podman project's hooks use Podman (its suites see JOBBOX_TEST_ENGINE,
// vitest.config.ts), every other's docker.
let started = false;

export async function setup(project: TestProject): Promise<void> {
  const status = await testbedStatus();
  if (status.up && status.slurm) {
    await testbed(['install'], { stdio: 'inherit' });
  } else {
    await testbed(['up', '--slurm'], { stdio: 'inherit' });
    started = true;
  }
  await testbed(['engine', project.name === 'podman' ? 'podman' : 'docker'], { stdio: 'inherit' });
}

export async function teardown(): Promise<void> {
  if (started) await testbed(['down'], { stdio: 'inherit' });
  else await testbed(['engine', 'docker'], { stdio: 'inherit' });
}
