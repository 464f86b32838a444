import { hostname } from 'node:os';
import { configPath, loadConfig } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { lookupAccount } from '../../exec/accounts.js';
import type { Job } from '../../job/job.js';
import { lsfJob } from '../../scheduler/lsf.js';

/**
 * What every LSF hook starts from: the config and the job as this host sees them. `root`: a
 * queue PRE_EXEC/POST_EXEC, whose environment is the job's, so JOBBOX_CONFIG would be the
 * user's choice: only --config or the default.
 */
export async function lsfContext(cli: string | undefined, env: NodeJS.ProcessEnv, root: boolean): Promise<{ config: Config; job: Job }> {
  const config = await loadConfig(configPath(cli, root ? {} : env));
  return { config, job: await lsfJob(env, hostname(), lookupAccount) };
}
