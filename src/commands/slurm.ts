import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { configPath, loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { EXIT, JobboxError, formatError } from '../errors.js';
import { lookupAccount } from '../exec/accounts.js';
import { cancelJob, requeueJob, showJob } from '../exec/slurm.js';
import type { Job } from '../job/job.js';
import { parseJobCpus, slurmJob } from '../job/slurm.js';
import { runInFirstContainer } from '../lifecycle/run.js';
import { setupJob } from '../lifecycle/setup.js';
import { attemptsOf, teardownJob } from '../lifecycle/teardown.js';
import { jobLog, openLog } from '../log.js';
import { jobPaths } from '../plan/job-files.js';
import { SCRIPT_MARKER, imageFeatures, jobSubmitLua } from '../plan/slurm-submit.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

export async function features(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  process.stdout.write(`${imageFeatures(await loadConfig(configPath(cli, env)))}\n`);
}

export async function submitLua(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  process.stdout.write(jobSubmitLua(await loadConfig(configPath(cli, env)), CLI));
}

/**
 * The Prolog and Epilog run on every node. The batch host (the first node) does the whole
 * job for all nodes, in parallel over ssh2, exactly as LSF's pre-exec does: one port, one set
 * of keys, one start barrier. Other nodes, and partitions jobbox does not manage, have nothing
 * to do: undefined.
 */
async function onBatchHost(cli: string | undefined, env: NodeJS.ProcessEnv, hook: string): Promise<{ config: Config; job: Job; log: Logger } | undefined> {
  const config = await loadConfig(configPath(cli, env));
  if (!config.queues.has(env.SLURM_JOB_PARTITION ?? '')) return undefined;
  const job = await slurmJob(env, 'prolog', lookupAccount);
  if (job.hosts[0]?.name !== env.SLURMD_NODENAME) return undefined;
  const log = jobLog(await openLog(config.logFile, config.logLevel), job, env.SLURMD_NODENAME ?? '');
  log.info({ hook }, `slurm ${hook}`);
  return { config, job, log };
}

/**
 * A Prolog that exits non-zero drains the node, so this one always exits 0. A start that may
 * heal requeues the job (it comes back as a new attempt); one that cannot is cancelled, as
 * LSF's exit 99 would. User input cannot get here: job_submit.lua checked it at submit.
 */
export async function prolog(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    const ours = await onBatchHost(cli, env, 'prolog');
    if (!ours) return;
    const { config, job, log } = ours;
    // Slots decide the hostfile; the 22.05 Prolog has no SLURM_JOB_CPUS_PER_NODE, scontrol does.
    const cpus = env.SLURM_JOB_CPUS_PER_NODE ? undefined : parseJobCpus(await showJob(job.id));
    const sized = cpus ? await slurmJob(env, 'prolog', lookupAccount, job.hosts.map((h) => cpus.get(h.name) ?? 1)) : job;
    await setupJob(config, sized, log);
  } catch (err) {
    const { line, exitCode } = formatError(err);
    process.stderr.write(`${line}\n`);
    const id = env.SLURM_JOB_ID ?? '';
    if (!/^\d+$/.test(id)) return;
    if (exitCode === EXIT.permanent) await cancelJob(id);
    else await requeueJob(id);
  }
}

/** Best effort, never failing (a failing Epilog drains the node); what is left is `jobbox gc`'s. */
export async function epilog(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    const ours = await onBatchHost(cli, env, 'epilog');
    if (!ours) return;
    const { config, job, log } = ours;
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
  const at = text.indexOf(`\n${SCRIPT_MARKER}\n`);
  if (at < 0) throw new JobboxError('slurm start', 'not a script wrapped by job_submit.lua (no marker)', script, EXIT.usage);
  const config = await loadConfig(configPath(cli, env));
  const job = await slurmJob(env, 'batch', lookupAccount);
  return runInFirstContainer(job, jobPaths(config.stateDir, job), {
    script: text.slice(at + SCRIPT_MARKER.length + 2),
    args,
  });
}
