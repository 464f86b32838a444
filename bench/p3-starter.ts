// P3: the job starter, `hooks/lsf/starter -- true` (jobbox lsf starter) as the owner on the first host, against
// `ssh -F <job ssh_config> node1 true`, the same session without jobbox. Target: ≤ 1.5×.
import { REPO, onNode } from '../test/support/testbed.js';
import { lsfFixture } from '../test/support/lsf-fixture.js';
import { interleave, ratioRow, type Row } from './lib.js';
import type { Bench } from './run.js';
import { expectClean, jobEnv, mustHook, nodes } from './testbed-jobs.js';

const REPS = 10;
const LIMIT = 1.5;

async function run(): Promise<Row[]> {
  const b = await lsfFixture();
  const hosts = nodes(4);
  const jobId = 83_000;
  const env = jobEnv(jobId, hosts);
  await mustHook(b.hooks.preExec, env);
  try {
    // As LSF starts the starter: the owner, the job's environment, the starter line.
    const asOwner = ['runuser', '-u', env.LSB_JOB_EXECUSER!, '--', 'env', '-i', '-C', env.HOME!, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
    const sshConfig = `${b.config.stateDir}/${jobId}.0.node1/ssh_config`;
    // The starter with the command as argv (`-- true`): the job-file form reads LSF's job file.
    const starter = [`${REPO}/hooks/lsf/starter`, '--config', b.configPath, '--', 'true'];
    const s = await interleave(REPS, {
      jobbox: { run: () => onNode('node1', [...asOwner, ...starter]) },
      ssh: { run: () => onNode('node1', [...asOwner, 'ssh', '-F', sshConfig, 'node1', 'true']) },
    });
    return [ratioRow('P3', 'jobbox lsf starter -- true', s.jobbox!, 'ssh -F <job ssh_config> node1 true', s.ssh!, LIMIT)];
  } finally {
    await mustHook(b.hooks.postExec, env);
    await expectClean(4, jobId, jobId);
  }
}

export default { id: 'P3', title: 'job starter vs plain ssh', testbed: true, run } satisfies Bench;
