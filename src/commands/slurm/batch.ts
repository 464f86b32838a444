// The batch step, as the job owner on the batch host: the run phase. job_submit.lua wrapped the
// submitted script; the wrapper runs this, which runs the script, kept after the marker, in
// the job's first container.
import { readFile } from 'node:fs/promises';
import { configPath, loadConfig } from '../../config/load.js';
import { EXIT, JobboxError } from '../../errors.js';
import { lookupAccount } from '../../exec/accounts.js';
import { runInFirstContainer } from '../../lifecycle/run.js';
import { jobPaths } from '../../plan/job-files.js';
import { submittedScript } from '../../scheduler/slurm-submit.js';
import { slurmJob } from '../../scheduler/slurm.js';
import { CLI } from './context.js';

export async function batch(cli: string | undefined, script: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const text = await readFile(script, 'utf8').catch(() => {
    throw new JobboxError('slurm batch', 'cannot read the batch script', script, EXIT.usage);
  });
  const submitted = submittedScript(text, CLI);
  if (submitted === undefined) throw new JobboxError('slurm batch', 'not a script wrapped by job_submit.lua', script, EXIT.usage);
  const config = await loadConfig(configPath(cli, env));
  const job = await slurmJob(env, 'batch', lookupAccount);
  return runInFirstContainer(job, jobPaths(config.stateDir, job), { script: submitted, args });
}
