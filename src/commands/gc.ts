import { configPath, loadConfig } from '../config/load.js';
import { EXIT, JobboxError } from '../errors.js';
import { expandHostlist } from '../scheduler/slurm.js';
import { reapOrphans } from '../lifecycle/gc.js';
import { openLog } from '../log.js';
import { whichScheduler } from './admin.js';

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
  const scheduler = await whichScheduler(args.scheduler, env, 'gc');
  const config = await loadConfig(configPath(args.config, env));
  const log = await openLog(config.logFile, config.logLevel);
  return reapOrphans(config, { scheduler, dryRun: args.dryRun, graceMs: args.grace * 1000, sweepNodes }, env, log.child({ gc: true }), (line) =>
    process.stdout.write(`${line}\n`),
  );
}
