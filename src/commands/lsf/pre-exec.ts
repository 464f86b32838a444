import { hostname } from 'node:os';
import { runRef } from '../../config/ref.js';
import { jobLog, openLog } from '../../log.js';
import { printPlan } from '../plan.js';
import { lsfContext } from './context.js';

// LSF's queue-level PRE_EXEC, as root on the first execution host: the setup phase. Exit 0
// only when every node's container answers; 99 for what will never work; 1 (requeue) for
// what may heal.
export async function preExec(cli: string | undefined, dryRun: boolean, env: NodeJS.ProcessEnv): Promise<void> {
  // Loaded only for a real run (setup pulls in ssh2, which --dry-run never uses), and while
  // the owner lookups run: module loading is on every job's start.
  const setup = dryRun ? undefined : import('../../lifecycle/setup.js');
  setup?.catch(() => {});
  const { config, job } = await lsfContext(cli, env, 'setup');
  if (!setup) {
    await printPlan(config, job);
    return;
  }
  const { setupJob } = await setup;
  const log = jobLog(await openLog(config.logFile, config.logLevel), job, hostname());
  const { port, image } = await setupJob(config, job, log);
  process.stderr.write(`jobbox: job ${job.id}: started on ${job.hosts.length} nodes, port ${port}, image ${runRef(image)}\n`);
}
