import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { runRef } from '../../config/ref.js';
import type { Config } from '../../config/types.js';
import { BJOBS_TIMEOUT_MS, BPOST_TIMEOUT_MS } from '../../config/defaults.js';
import { EXIT, formatError, JobboxError, printable } from '../../errors.js';
import { readStatusFile } from '../../exec/jobdir.js';
import type { Job } from '../../job/job.js';
import { jobLog, openLog } from '../../log.js';
import { describeFailure } from '../../result.js';
import { parseStatus, STATUS_MAX_BYTES, statusPath } from '../../plan/status.js';
import { bpostArgv, gpuAllocArgv, parseGpuAlloc } from '../../scheduler/lsf.js';
import { printPlan } from '../plan.js';
import { lsfContext } from './context.js';

// LSF's queue-level PRE_EXEC, as root on the first execution host: the setup phase. Exit 0
// only when every node's container answers; 99 for what will never work; 1 (requeue) for
// what may heal.
export async function preExec(cli: string | undefined, dryRun: boolean, env: NodeJS.ProcessEnv): Promise<void> {
  // Loaded only for a real run (setup pulls in ssh2, which --dry-run never uses), and while
  // the owner lookups run: module loading is on every job's start. pino too, which openLog
  // would otherwise load only after the lookups (bench P1).
  const setup = dryRun ? undefined : Promise.all([import('../../lifecycle/setup.js'), import('pino')]);
  setup?.catch(() => {});
  const { config, job } = await lsfContext(cli, env, 'setup');
  if (!setup) {
    await printPlan(config, await withGpus(config, job));
    return;
  }
  const [{ setupJob }] = await setup;
  const log = jobLog(await openLog(config.logFile, config.logLevel), job, hostname());
  // Whether the owner was last told of a failure, which a start now replaces.
  const failedBefore = config.bpost !== '' && (await lastOutcome(config, job)) === 'failed';
  let line: string;
  try {
    const { port, image } = await setupJob(config, await withGpus(config, job), log);
    line = `jobbox: job ${job.id}: started on ${job.hosts.length} nodes, port ${port}, image ${runRef(image)}`;
  } catch (err) {
    await post(config, job, formatError(err).line, log);
    throw err;
  }
  if (failedBefore) await post(config, job, line, log);
  process.stderr.write(`${line}\n`);
}

/**
 * The job with the GPUs LSF gave it on each host, for a queue that passes them: mbatchd's word,
 * by bjobs (scheduler/lsf.ts gpuAllocArgv). A bjobs that does not answer may heal (1); a queue
 * that passes GPUs without bjobs configured will not (99).
 */
async function withGpus(config: Config, job: Job): Promise<Job> {
  if (config.queues.get(job.queue)?.gpus !== 'allocated') return job;
  if (config.bjobs === '') {
    throw new JobboxError('config [jobbox] bjobs', 'must name LSF\'s bjobs for a queue that passes GPUs (gpus = allocated): only mbatchd says which a job got', `queue ${job.queue}`, EXIT.permanent);
  }
  // Loaded only here: exec/lsf.ts brings execa.
  const { runHookClient } = await import('../../exec/lsf.js');
  const r = await runHookClient(gpuAllocArgv(config.bjobs, job), BJOBS_TIMEOUT_MS);
  // A bjobs that is not there, or not runnable, is the config's mistake: no requeue mends it.
  const unrunnable = r.code === undefined && (r.error === 'not found on PATH' || /\bEACCES\b/.test(r.error ?? ''));
  if (r.code !== 0) throw new JobboxError(`job ${job.id}: GPUs`, printable(describeFailure('bjobs', r)), config.bjobs, unrunnable ? EXIT.permanent : EXIT.transient);
  const gpus = parseGpuAlloc(r.stdout, job.hosts.map((h) => h.name));
  return { ...job, hosts: job.hosts.map((h) => (gpus.get(h.name)?.length ? { ...h, gpus: gpus.get(h.name)! } : h)) };
}

async function lastOutcome(config: Config, job: Job): Promise<string | undefined> {
  const file = await readStatusFile(statusPath(config.stateDir, job), STATUS_MAX_BYTES).catch(() => undefined);
  return file ? parseStatus(file.text)?.outcome : undefined;
}

/**
 * The line, as the job's message 0 (`bjobs -l`), when the config names bpost: LSF sends a
 * pre-exec's output to /dev/null, so a job that pends again or EXITs would not say why.
 * Best effort: the hook's exit code is what LSF acts on, and a bpost that fails is only logged.
 */
async function post(config: Config, job: Job, line: string, log: Logger): Promise<void> {
  if (config.bpost === '') return;
  // Loaded only here: exec/lsf.ts brings execa, whose import would cost every job's start.
  const { runHookClient } = await import('../../exec/lsf.js');
  const r = await runHookClient(bpostArgv(config.bpost, job, line), BPOST_TIMEOUT_MS).catch((err: unknown) => ({ code: undefined, stdout: '', stderr: '', error: String(err) }));
  if (r.code !== 0) log.warn({ err: describeFailure('bpost', r) }, 'could not post the start\'s outcome to the job');
}
