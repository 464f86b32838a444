import { testbed, testbedStatus } from '../support/testbed.js';

// The suites need the real cluster. Reuse one that is up (a developer's), else bring one
// up and take it down again afterwards, so CI leaves nothing running.
let started = false;

export async function setup(): Promise<void> {
  const status = await testbedStatus();
  if (status.up && status.slurm) return;
  await testbed(['up', '--slurm'], { stdio: 'inherit' });
  started = true;
}

export async function teardown(): Promise<void> {
  if (started) await testbed(['down'], { stdio: 'inherit' });
}
