import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { configPath, loadConfig } from '../config/load.js';
import { EXIT, JobboxError } from '../errors.js';
import { expandHostlist } from '../scheduler/slurm.js';
import { reapOrphans } from '../lifecycle/gc.js';
import { openLog } from '../log.js';
import type { Scheduler } from '../scheduler/answer.js';

export interface GcArgs {
  config: string | undefined;
  dryRun: boolean;
  grace: number;
  scheduler: string | undefined;
  /** A hostlist (`node[1-3],gpu1`) swept for attempts whose job dir has no hostfile. */
  nodes: string | undefined;
}

// The orphan reaper, as root on an admin host that sees port_dir and state_dir (a systemd
// timer, etc/jobbox-gc.timer). Prints one line per job attempt; returns the exit code.
export async function gc(args: GcArgs, env: NodeJS.ProcessEnv): Promise<number> {
  if (!Number.isFinite(args.grace) || args.grace < 0) {
    throw new JobboxError('gc: --grace', 'must be a number of seconds >= 0', String(args.grace), EXIT.usage);
  }
  const sweepNodes = args.nodes ? [...new Set(expandHostlist(args.nodes, '--nodes'))] : [];
  const scheduler = await whichScheduler(args.scheduler, env);
  const config = await loadConfig(configPath(args.config, env));
  const log = await openLog(config.logFile, config.logLevel);
  return reapOrphans(config, { scheduler, dryRun: args.dryRun, graceMs: args.grace * 1000, sweepNodes }, env, log.child({ gc: true }), (line) =>
    process.stdout.write(`${line}\n`),
  );
}

/** `--scheduler`, else the one whose client is on PATH (scontrol or bjobs); both or neither is an error. */
export async function whichScheduler(given: string | undefined, env: NodeJS.ProcessEnv, command = 'gc'): Promise<Scheduler> {
  if (given === 'lsf' || given === 'slurm') return given;
  if (given !== undefined) throw new JobboxError(`${command}: --scheduler`, 'must be "lsf" or "slurm"', given, EXIT.usage);
  const dirs = (env.PATH ?? '').split(':').filter((d) => d.startsWith('/'));
  const onPath = async (name: string) =>
    (await Promise.all(dirs.map((d) => access(join(d, name), constants.X_OK).then(() => true, () => false)))).some(Boolean);
  const [slurm, lsf] = await Promise.all([onPath('scontrol'), onPath('bjobs')]);
  if (slurm !== lsf) return slurm ? 'slurm' : 'lsf';
  throw new JobboxError(`${command}: --scheduler`, `cannot tell the scheduler from PATH (${slurm ? 'both scontrol and bjobs' : 'neither scontrol nor bjobs'} found): give "lsf" or "slurm"`, env.PATH ?? '', EXIT.usage);
}
