// The only code that runs Slurm's client commands. slurmd gives the Prolog no PATH, and the
// clients must read SLURM_CONF (never DNS), which slurmd passes on to its scripts.
import { execa } from 'execa';
import { EXIT, JobboxError } from '../errors.js';

const RUN = { reject: false, timeout: 30_000, env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin' } } as const;

/** Puts the job back in the queue as a new attempt, without draining the node. */
export async function requeueJob(id: string): Promise<boolean> {
  return (await execa('scontrol', ['requeue', '--', id], RUN)).exitCode === 0;
}

export async function cancelJob(id: string): Promise<boolean> {
  return (await execa('scancel', ['--', id], RUN)).exitCode === 0;
}

/** The job record as one line of `key=value` words, for parseJobCpus. */
export async function showJob(id: string): Promise<string> {
  const r = await execa('scontrol', ['show', 'job', '--details', '--oneliner', '--', id], RUN);
  if (r.exitCode !== 0) throw new JobboxError('scontrol show job', r.stderr.trim() || 'failed', id, EXIT.transient);
  return r.stdout;
}
