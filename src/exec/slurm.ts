// The only code that runs Slurm's client commands. slurmd gives the Prolog no PATH, and the
// clients must read SLURM_CONF (never DNS), which slurmd passes on to its scripts.
import { execa } from 'execa';
import { EXIT, JobboxError } from '../errors.js';
import { SQUEUE_FORMAT, clientRun, type ClientRun } from '../plan/gc.js';

const RUN = { reject: false, timeout: 30_000, env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin' } } as const;

/** Puts the job back in the queue as a new attempt, without draining the node. */
export async function requeueJob(id: string): Promise<boolean> {
  return (await execa('scontrol', ['requeue', '--', id], RUN)).exitCode === 0;
}

export async function cancelJob(id: string): Promise<boolean> {
  return (await execa('scancel', ['--', id], RUN)).exitCode === 0;
}

/** `id`'s record with per-node detail, one field group a line, for parseJobRecord. */
export async function showJob(id: string): Promise<string> {
  const r = await execa('scontrol', ['show', 'job', '--details', '--', id], RUN);
  if (r.exitCode !== 0) throw new JobboxError('scontrol show job', r.stderr.trim() || 'failed', id, EXIT.transient);
  return r.stdout;
}

/** The batch script slurmctld holds for job `id`, byte for byte. */
export async function batchScript(id: string): Promise<string> {
  const r = await execa('scontrol', ['write', 'batch_script', '--', id, '-'], { ...RUN, stripFinalNewline: false });
  // 22.05 exits 0 even when it prints nothing ("job script retrieval failed: …"), and a batch
  // job always has a script: an empty one is a failure to ask.
  if (r.exitCode !== 0 || r.stdout === '') {
    throw new JobboxError('scontrol write batch_script', r.stderr.trim() || 'printed nothing', id, EXIT.transient);
  }
  return r.stdout;
}

// ---- The orphan reaper's questions (jobbox gc, as root on an admin host) ----

/** `env`: the reaper's own (SLURM_CONF, PATH); kept whole, as the Slurm clients may need more of it. */
function clientOptions(env: NodeJS.ProcessEnv) {
  return { reject: false, timeout: RUN.timeout, env: { ...env, PATH: env.PATH || RUN.env.PATH }, extendEnv: false } as const;
}

async function squeue(args: string[], env: NodeJS.ProcessEnv): Promise<ClientRun> {
  const r = await execa('squeue', ['--noheader', '--states=all', `--Format=${SQUEUE_FORMAT}`, ...args], clientOptions(env));
  return clientRun(r, RUN.timeout);
}

/** Every job slurmctld still holds, finished ones included until MinJobAge purges them. */
export function listJobStates(env: NodeJS.ProcessEnv): Promise<ClientRun> {
  return squeue([], env);
}

/** One job alone: for a job missing from the listing, slurmctld then says "Invalid job id specified". */
export function jobState(id: string, env: NodeJS.ProcessEnv): Promise<ClientRun> {
  return squeue([`--jobs=${id}`], env);
}
