import { hostname } from 'node:os';
import { readJobFile } from '../../exec/jobdir.js';
import type { Job } from '../../job/job.js';
import { cgroupClear } from '../../plan/container.js';
import { jobPaths, parseAttemptRecord } from '../../plan/job-files.js';
import { teardownJob, usageLine } from '../../lifecycle/teardown.js';
import { jobLog, openLog } from '../../log.js';
import { lsfJobEnd } from '../../scheduler/lsf.js';
import { lsfContext } from './context.js';

// LSF's queue-level POST_EXEC, as root on the first host, after the job ended however it
// ended: the teardown phase. Idempotent; it frees only this attempt's claim (the attempt is
// this host).
export async function postExec(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const { config, job: here } = await lsfContext(cli, env, 'teardown');
  const log = jobLog(await openLog(config.logFile, config.logLevel), here, hostname());
  log.info(lsfJobEnd(env), 'post-exec');
  // Where the setup put the first host's container, whatever cgroup LSF runs this hook in.
  const record = parseAttemptRecord(await readJobFile(jobPaths(config.stateDir, here).attempt).catch(() => undefined));
  const job: Job = record ? { ...here, containment: { scheduler: 'lsf', ...(record.nest && { nest: record.nest }) } } : here;
  const line = usageLine(job.id, await teardownJob(config, job, job.hosts.map((h) => h.name), log, (host) => cgroupClear(job, host)));
  if (line) process.stderr.write(`${line}\n`);
}
