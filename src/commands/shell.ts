// `jobbox shell` and `jobbox exec`: the job's owner, from within the job (an salloc shell, an
// srun step, a running LSF job), into one of its containers through the job's own sshd, as
// mpirun gets there. Nothing here is privileged: the job's key is the owner's to read.
import { userInfo } from 'node:os';
import { configPath, loadConfig } from '../config/load.js';
import { EXIT, JobboxError } from '../errors.js';
import { lookupAccount } from '../exec/accounts.js';
import type { Job } from '../job/job.js';
import { runInFirstContainer } from '../lifecycle/run.js';
import { jobPaths } from '../plan/job-files.js';
import { quote } from '../quote.js';
import { slurmJob } from '../scheduler/slurm.js';
import { lsfContext } from './lsf/context.js';

export interface IntoOptions {
  config: string | undefined;
  /** A node of the job; the first by default. */
  node: string | undefined;
}

/** How many of a job's nodes a refused --node names: a job may have thousands. */
const NODES_SHOWN = 5;

/**
 * The job this process belongs to: Slurm's SLURM_JOB_ID (salloc sets no SLURM_JOB_USER: it is
 * whoever runs this), else LSF's LSB_JOBID. `command` names the caller in its refusals.
 */
async function ownJob(command: 'shell' | 'exec', opts: IntoOptions, env: NodeJS.ProcessEnv): Promise<{ job: Job; stateDir: string; host: string }> {
  let job: Job;
  let stateDir: string;
  if (env.SLURM_JOB_ID) {
    stateDir = (await loadConfig(configPath(opts.config, env))).stateDir;
    job = await slurmJob({ ...env, SLURM_JOB_USER: env.SLURM_JOB_USER || userInfo().username }, 'batch', lookupAccount);
  } else if (env.LSB_JOBID) {
    const ctx = await lsfContext(opts.config, env, 'user');
    ({ job } = ctx);
    stateDir = ctx.config.stateDir;
  } else {
    // A shell needs the terminal that only `srun --pty` gives a step.
    const step = command === 'shell' ? 'an srun --pty step' : 'an srun step';
    throw new JobboxError(`jobbox ${command}`, `not inside a job: neither SLURM_JOB_ID nor LSB_JOBID is set (run it in an salloc shell, ${step} or an LSF job)`, '', EXIT.usage);
  }
  const host = opts.node ?? job.hosts[0]!.name;
  if (!job.hosts.some((h) => h.name === host)) {
    const names = job.hosts.slice(0, NODES_SHOWN).map((h) => h.name).join(' ');
    const more = job.hosts.length > NODES_SHOWN ? ` … ${job.hosts.length} in all` : '';
    throw new JobboxError('--node', `not a node of job ${job.id} (its nodes: ${names}${more})`, host, EXIT.usage);
  }
  return { job, stateDir, host };
}

/** A login shell on a terminal in the container (the first node's, or --node's). */
export async function shell(opts: IntoOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const { job, stateDir, host } = await ownJob('shell', opts, env);
  if (!process.stdin.isTTY) throw new JobboxError('jobbox shell', 'needs a terminal on its stdin (srun --pty, or an interactive salloc); for a command, use jobbox exec', '', EXIT.usage);
  return runInFirstContainer(job, jobPaths(stateDir, job), { command: 'exec "${SHELL:-/bin/sh}" -l' }, true, host);
}

/** One command in the container, its output and exit status as if it ran here. */
export async function exec(opts: IntoOptions, argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.length === 0) throw new JobboxError('jobbox exec', 'no command given after --', '', EXIT.usage);
  const { job, stateDir, host } = await ownJob('exec', opts, env);
  return runInFirstContainer(job, jobPaths(stateDir, job), { command: quote(argv) }, false, host);
}
