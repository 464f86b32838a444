// The Slurm Epilog, as root on every node: the teardown phase, done by the batch host for all
// nodes. Best effort, never failing (a failing Epilog drains the node); what is left is
// `jobbox gc`'s.
import { formatError } from '../../errors.js';
import { useSlurmConf } from '../../exec/slurm.js';
import { attemptsOf, teardownJob, usageLine } from '../../lifecycle/teardown.js';
import { slurmClear } from '../../plan/container.js';
import { slurmHook } from '../../scheduler/slurm.js';
import { hookConfig, onBatchHost } from './context.js';

export async function epilog(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    useSlurmConf(slurmHook(env).conf);
    const config = await hookConfig(cli);
    const ours = await onBatchHost(config, env, 'epilog');
    if (!ours) return;
    const { job, log } = ours;
    const hosts = job.hosts.map((h) => h.name);
    // After a requeue the Epilog already sees the new restart count, while what is still on
    // the nodes belongs to the attempt that ran: every attempt up to this count is over.
    for (const attempt of await attemptsOf(config, job)) {
      if (Number(attempt) > Number(job.attempt)) continue;
      const line = usageLine(job.id, await teardownJob(config, { ...job, attempt }, hosts, log, (host) => slurmClear(job, host)));
      // slurmd discards an Epilog's output: the job log has the same figures.
      if (line) process.stderr.write(`${line}\n`);
    }
  } catch (err) {
    process.stderr.write(`${formatError(err).line}\n`);
  }
}
