import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { configPath, loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { EXIT, JobboxError, formatError } from '../errors.js';
import { lookupAccount } from '../exec/accounts.js';
import { batchScript, cancelJob, requeueJob, showJob } from '../exec/slurm.js';
import type { Job } from '../job/job.js';
import { arrayTaskName, jobboxJobOnBatchHost, parseJobRecord, slurmJob, type JobRecord } from '../job/slurm.js';
import { runInFirstContainer } from '../lifecycle/run.js';
import { setupJob } from '../lifecycle/setup.js';
import { attemptsOf, teardownJob } from '../lifecycle/teardown.js';
import { jobLog, openLog } from '../log.js';
import { jobPaths } from '../plan/job-files.js';
import { imageFeatures, jobSubmitLua, submittedScript } from '../plan/slurm-submit.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

export async function features(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  process.stdout.write(`${imageFeatures(await loadConfig(configPath(cli, env)))}\n`);
}

export async function submitLua(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  process.stdout.write(jobSubmitLua(await loadConfig(configPath(cli, env)), CLI));
}

/**
 * The Prolog's and Epilog's config: --config, else /etc/jobbox/jobbox.ini. JOBBOX_CONFIG is not
 * read: these run as root, and their environment is not the admin's shell.
 */
function hookConfig(cli: string | undefined): Promise<Config> {
  return loadConfig(configPath(cli, {}));
}

/**
 * The Prolog and Epilog run on every node. The batch host (the first node) does the whole
 * job for all nodes, in parallel over ssh2, exactly as LSF's pre-exec does: one port, one set
 * of keys, one start barrier. Other nodes, and partitions jobbox does not manage, have nothing
 * to do: undefined.
 */
async function onBatchHost(config: Config, env: NodeJS.ProcessEnv, hook: string): Promise<{ job: Job; log: Logger } | undefined> {
  if (!config.queues.has(env.SLURM_JOB_PARTITION ?? '')) return undefined;
  const job = await slurmJob(env, 'prolog', lookupAccount);
  if (job.hosts[0]?.name !== env.SLURMD_NODENAME) return undefined;
  const log = jobLog(await openLog(config.logFile, config.logLevel), job, env.SLURMD_NODENAME ?? '');
  log.info({ hook }, `slurm ${hook}`);
  return { job, log };
}

/**
 * A Prolog that exits non-zero drains the node, so this one always exits 0. A start that may
 * heal requeues the job (it comes back as a new attempt); one that cannot is cancelled, as
 * LSF's exit 99 would. job_submit.lua checked the user's choices at submit; what a user can
 * still put in the job's record (a name or comment forging scontrol's lines) gets the job
 * cancelled, and no node drained.
 */
export async function prolog(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const id = env.SLURM_JOB_ID ?? '';
  let config: Config;
  try {
    config = await hookConfig(cli);
  } catch (err) {
    // Without its config jobbox knows no partitions. Cancelling every job would stop the whole
    // cluster; a job of jobbox's cannot start without it, so only those are cancelled.
    process.stderr.write(`${formatError(err).line}\n`);
    if (/^\d+$/.test(id) && jobboxJobOnBatchHost(env)) await cancelJob(id);
    return;
  }
  let log: Logger | undefined;
  try {
    const ours = await onBatchHost(config, env, 'prolog');
    if (!ours) return;
    log = ours.log;
    const { job } = ours;
    const record = await jobRecord(job);
    // How such a job gets here: job_submit.lua not installed, or once bypassed.
    if (record.batch && submittedScript(await batchScript(job.id), CLI) === undefined) {
      throw new JobboxError('batch script', `does not start with the wrapper of job_submit.lua (${CLI}), so it would run outside the container`, job.id);
    }
    // Slots decide the hostfile; the 22.05 Prolog has no SLURM_JOB_CPUS_PER_NODE, the record does.
    const sized = env.SLURM_JOB_CPUS_PER_NODE ? job : await slurmJob(env, 'prolog', lookupAccount, record.cpus);
    await setupJob(config, sized, log);
  } catch (err) {
    const { line, exitCode } = formatError(err);
    process.stderr.write(`${line}\n`);
    if (!/^\d+$/.test(id)) return;
    const permanent = exitCode === EXIT.permanent;
    // slurmd logs nothing of a Prolog that exits 0: ours is where an admin learns why a job went.
    log?.error({ err: line }, permanent ? 'prolog failed; cancelling the job' : 'prolog failed; requeueing the job');
    if (permanent) await cancelJob(id);
    else await requeueJob(id);
  }
}

/** The job's record, asked for so that slurmctld prints this job's record alone (see arrayTaskName). */
async function jobRecord(job: Job): Promise<JobRecord> {
  const first = await showJob(job.id);
  const task = arrayTaskName(first, job.id);
  return parseJobRecord(task ? await showJob(task) : first, job.id, job.hosts.map((h) => h.name));
}

/** Best effort, never failing (a failing Epilog drains the node); what is left is `jobbox gc`'s. */
export async function epilog(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    const config = await hookConfig(cli);
    const ours = await onBatchHost(config, env, 'epilog');
    if (!ours) return;
    const { job, log } = ours;
    // After a requeue the Epilog already sees the new restart count, while what is still on
    // the nodes belongs to the attempt that ran: every attempt up to this count is over.
    for (const attempt of await attemptsOf(config, job)) {
      if (Number(attempt) <= Number(job.attempt)) await teardownJob(config, { ...job, attempt }, log);
    }
  } catch (err) {
    process.stderr.write(`${formatError(err).line}\n`);
  }
}

/** The wrapped batch script: the submitted script, kept after the marker, runs in the first container. */
export async function start(cli: string | undefined, script: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const text = await readFile(script, 'utf8').catch(() => {
    throw new JobboxError('slurm start', 'cannot read the batch script', script, EXIT.usage);
  });
  const submitted = submittedScript(text, CLI);
  if (submitted === undefined) throw new JobboxError('slurm start', 'not a script wrapped by job_submit.lua', script, EXIT.usage);
  const config = await loadConfig(configPath(cli, env));
  const job = await slurmJob(env, 'batch', lookupAccount);
  return runInFirstContainer(job, jobPaths(config.stateDir, job), { script: submitted, args });
}
