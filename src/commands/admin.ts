// What the admin commands (gc, ps, doctor, logs) share: they run as root on the admin host,
// and those that ask the scheduler find out which one it is.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT, JobboxError } from '../errors.js';
import type { Scheduler } from '../scheduler/answer.js';

/** Refuses anyone but root, with `why` root is needed. */
export function asRoot(command: string, why: string): void {
  if (process.getuid?.() !== 0) throw new JobboxError(command, `must run as root: ${why}; uid`, String(process.getuid?.()), EXIT.usage);
}

/** `--scheduler`, else the one whose client is on PATH (scontrol or bjobs); both or neither is an error. */
export async function whichScheduler(given: string | undefined, env: NodeJS.ProcessEnv, command: string): Promise<Scheduler> {
  if (given === 'lsf' || given === 'slurm') return given;
  if (given !== undefined) throw new JobboxError(`${command}: --scheduler`, 'must be "lsf" or "slurm"', given, EXIT.usage);
  const dirs = (env.PATH ?? '').split(':').filter((d) => d.startsWith('/'));
  const onPath = async (name: string) =>
    (await Promise.all(dirs.map((d) => access(join(d, name), constants.X_OK).then(() => true, () => false)))).some(Boolean);
  const [slurm, lsf] = await Promise.all([onPath('scontrol'), onPath('bjobs')]);
  if (slurm !== lsf) return slurm ? 'slurm' : 'lsf';
  throw new JobboxError(`${command}: --scheduler`, `cannot tell the scheduler from PATH (${slurm ? 'both scontrol and bjobs' : 'neither scontrol nor bjobs'} found): give "lsf" or "slurm"`, env.PATH ?? '', EXIT.usage);
}
