import { testbed, testbedStatus } from '../support/testbed.js';

// The suites need the real cluster. Reuse one that is up (a developer's), else bring one
// up and take it down again afterwards, so CI leaves nothing running. Either way the suites
// run jobbox as installed from the package of the tree as it is (testbed.sh install).
let started = false;

export async function setup(): Promise<void> {
  const status = await testbedStatus();
  if (status.up && status.slurm) {
    await testbed(['install'], { stdio: 'inherit' });
    return;
  }
  await testbed(['up', '--slurm'], { stdio: 'inherit' });
  started = true;
}

export async function teardown(): Promise<void> {
  if (started) await testbed(['down'], { stdio: 'inherit' });
}
