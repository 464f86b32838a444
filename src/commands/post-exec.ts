import { hostname } from 'node:os';
import { configPath, loadConfig } from '../config/load.js';
import { lookupAccount } from '../exec/accounts.js';
import { lsfJob } from '../job/lsf.js';
import { teardownJob } from '../lifecycle/teardown.js';
import { jobLog, openLog } from '../log.js';

// LSF's queue-level POST_EXEC, as root on the first host, after the job ended however it
// ended. Idempotent; it frees only this attempt's claim (the attempt is this host).
export async function postExec(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const config = await loadConfig(configPath(cli, env));
  const job = await lsfJob(env, hostname(), lookupAccount);
  const log = jobLog(await openLog(config.logFile, config.logLevel), job, hostname());
  log.info({ exitStatus: env.LSB_JOBEXIT_STAT, requeued: env.LSB_JOBPEND !== undefined }, 'post-exec');
  await teardownJob(config, job, log);
}
