// The only code that runs Slurm's client commands. slurmd gives the Prolog no PATH, and the
// clients must read SLURM_CONF (never DNS), which slurmd passes on to its scripts.
import { execa } from 'execa';

const RUN = { reject: false, timeout: 30_000, env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin' } } as const;

/** Puts the job back in the queue as a new attempt, without draining the node. */
export async function requeueJob(id: string): Promise<boolean> {
  return (await execa('scontrol', ['requeue', '--', id], RUN)).exitCode === 0;
}

export async function cancelJob(id: string): Promise<boolean> {
  return (await execa('scancel', ['--', id], RUN)).exitCode === 0;
}
