// What the Slurm Prolog and Epilog start from: the config, and the job when this node acts for it.
import type { Logger } from 'pino';
import { configPath, loadConfig } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { lookupAccount } from '../../exec/accounts.js';
import { installed } from '../../install.js';
import type { Job } from '../../job/job.js';
import { jobLog, openLog } from '../../log.js';
import { slurmHookJob } from '../../scheduler/slurm.js';

/** The installed CLI, which job_submit.lua's wrapper runs and the Prolog checks for. */
export const CLI = installed('dist/cli.js');

/**
 * The Prolog's and Epilog's config: --config, else /etc/jobbox/jobbox.ini. JOBBOX_CONFIG is not
 * read: these run as root, and their environment is not the admin's shell.
 */
export function hookConfig(cli: string | undefined): Promise<Config> {
  return loadConfig(configPath(cli, {}));
}

/**
 * The Prolog and Epilog run on every node; the batch host of a job in a jobbox partition does
 * the whole job for all its nodes (scheduler/slurm.ts slurmHookJob). undefined elsewhere.
 */
export async function onBatchHost(config: Config, env: NodeJS.ProcessEnv, hook: string): Promise<{ job: Job; log: Logger } | undefined> {
  const ours = await slurmHookJob(env, (partition) => config.queues.has(partition), lookupAccount);
  if (!ours) return undefined;
  const log = jobLog(await openLog(config.logFile, config.logLevel), ours.job, ours.node);
  log.info({ hook }, `slurm ${hook}`);
  return { job: ours.job, log };
}
