import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { configPath, loadConfig } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { lookupAccount } from '../../exec/accounts.js';
import type { Job } from '../../job/job.js';
import { lsfJob, type LsfHostFacts } from '../../scheduler/lsf.js';

/**
 * What every LSF hook starts from: the config and the job as this host sees them. `root`: a
 * queue PRE_EXEC/POST_EXEC, whose environment is the job's, so JOBBOX_CONFIG would be the
 * user's choice: only --config or the default. Root hooks also place the job's containers in
 * cgroups (Job.containment), from what the kernel says of this host.
 */
export async function lsfContext(cli: string | undefined, env: NodeJS.ProcessEnv, root: boolean): Promise<{ config: Config; job: Job }> {
  const config = await loadConfig(configPath(cli, root ? {} : env));
  return { config, job: await lsfJob(env, hostname(), lookupAccount, root ? await hostFacts() : undefined) };
}

async function hostFacts(): Promise<LsfHostFacts> {
  return {
    procCgroup: await readFile('/proc/self/cgroup', 'utf8'),
    cpus: (nest) => readFile(nest?.controllers.includes('cpuset') ? `/sys/fs/cgroup/cpuset${nest.path}/cpuset.cpus` : '/sys/devices/system/cpu/online', 'utf8'),
  };
}
