import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { configPath, loadConfig } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { lookupAccount } from '../../exec/accounts.js';
import { JOBBOX_CGROUP } from '../../plan/container.js';
import type { Job, LsfNest } from '../../job/job.js';
import { lsfJob, type LsfHostFacts } from '../../scheduler/lsf.js';

/**
 * What every LSF hook starts from: the config and the job as this host sees them. `hook`: the
 * queue's root PRE_EXEC (setup) and POST_EXEC (teardown) run with the job's environment, so
 * JOBBOX_CONFIG would be the user's choice: only --config or the default. They also place the
 * job's containers in cgroups (Job.containment), from what the kernel says of this host; the
 * setup binds the first host's to LSB_BIND_CPU_LIST.
 */
export async function lsfContext(cli: string | undefined, env: NodeJS.ProcessEnv, hook: 'setup' | 'teardown' | 'user'): Promise<{ config: Config; job: Job }> {
  const config = await loadConfig(configPath(cli, hook === 'user' ? env : {}));
  return { config, job: await lsfJob(env, hostname(), lookupAccount, hook === 'user' ? undefined : await hostFacts(hook === 'setup')) };
}

async function hostFacts(binding: boolean): Promise<LsfHostFacts> {
  // The CPUs the first host's container can get: those of the nearest cpuset above its parent
  // (LSF's job cgroup, else jobbox's own), as runc fills a new cpuset from its parent's.
  const cpus = async (nest: LsfNest | undefined) => {
    for (let dir = nest?.path ?? `/${JOBBOX_CGROUP}`; ; dir = dir.slice(0, dir.lastIndexOf('/'))) {
      const text = await readFile(`/sys/fs/cgroup/cpuset${dir}/cpuset.cpus`, 'utf8').catch(() => '');
      if (text.trim()) return text;
      // No v1 cpuset hierarchy here.
      if (dir === '') return readFile('/sys/devices/system/cpu/online', 'utf8');
    }
  };
  return { procCgroup: await readFile('/proc/self/cgroup', 'utf8'), ...(binding && { cpus }) };
}
