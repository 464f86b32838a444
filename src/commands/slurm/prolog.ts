// The Slurm Prolog, as root on every node of the job (PrologFlags=Alloc): the setup phase,
// done by the batch host for all nodes. It always exits 0, since a Prolog that fails drains
// the node: what went wrong requeues or cancels the job instead (prologOutcome).
import type { Logger } from 'pino';
import type { Config } from '../../config/types.js';
import { EXIT, JobboxError, formatError, printable } from '../../errors.js';
import { lookupAccount } from '../../exec/accounts.js';
import { runClient, useSlurmConf } from '../../exec/slurm.js';
import type { Job } from '../../job/job.js';
import { firstLine } from '../../lifecycle/node.js';
import { setupJob } from '../../lifecycle/setup.js';
import { submittedScript } from '../../scheduler/slurm-submit.js';
import {
  arrayTaskName, batchScriptArgv, cancelArgv, expandHostlist, multipleSlurmd, parseJobRecord, prologEnvOf, prologOutcome, requeueArgv, showConfigArgv, showJobArgv,
  slurmHook, slurmHookJob, type JobRecord,
} from '../../scheduler/slurm.js';
import { configPath, loadConfig } from '../../config/load.js';
import { printPlan } from '../plan.js';
import { CLI, hookConfig, onBatchHost } from './context.js';

/**
 * job_submit.lua checked the user's choices at submit; what a user can still put in the job's
 * record (a name or comment forging scontrol's lines) gets the job cancelled, and no node drained.
 */
export async function prolog(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const hook = slurmHook(env);
  useSlurmConf(hook.conf);
  let config: Config;
  try {
    config = await hookConfig(cli);
  } catch (err) {
    // Without its config jobbox knows no partitions. Cancelling every job would stop the whole
    // cluster; a job of jobbox's cannot start without it, so only those are cancelled.
    process.stderr.write(`${formatError(err).line}\n`);
    if (hook.id && hook.jobboxJobHere) await runClient(cancelArgv(hook.id));
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
    // The record gives each node its slots (the 22.05 Prolog has no SLURM_JOB_CPUS_PER_NODE)
    // and its cores, and puts the containers in the job's cgroups.
    const slurmConfig = await runClient(showConfigArgv());
    if (slurmConfig.code !== 0) throw new JobboxError('scontrol show config', printable(firstLine(slurmConfig.stderr)) || slurmConfig.error || 'failed', job.id, EXIT.transient);
    const multiple = multipleSlurmd(slurmConfig.stdout);
    const gpus = config.queues.get(job.queue)?.gpus === 'allocated';
    await setupJob(config, (await slurmHookJob(env, () => true, lookupAccount, record, multiple, gpus))!.job, log);
  } catch (err) {
    const { line, exitCode } = formatError(err);
    process.stderr.write(`${line}\n`);
    if (!hook.id) return;
    const outcome = prologOutcome(exitCode, hook.restarts);
    // slurmd logs nothing of a Prolog that exits 0: ours is where an admin learns why a job went.
    const why = exitCode === EXIT.permanent ? '' : outcome === 'cancel' ? ` (requeued ${hook.restarts} times already)` : '';
    log?.error({ err: line }, outcome === 'cancel' ? `prolog failed; cancelling the job${why}` : 'prolog failed; requeueing the job');
    await runClient(outcome === 'cancel' ? cancelArgv(hook.id) : requeueArgv(hook.id));
  }
}

/**
 * `jobbox slurm prolog --dry-run --job ID`: what the Prolog would do for a job slurmctld knows
 * (pending jobs have no nodes yet), printed from its record and run nowhere. SLURM_CONF is the
 * admin's own here.
 */
export async function prologDryRun(cli: string | undefined, id: string, env: NodeJS.ProcessEnv): Promise<void> {
  if (!/^\d{1,20}$/.test(id)) throw new JobboxError('--job', 'must be a decimal job id', id);
  useSlurmConf(env.SLURM_CONF);
  const config = await loadConfig(configPath(cli, env));
  const first = await showJob(id);
  const task = arrayTaskName(first, id);
  const text = task ? await showJob(task) : first;
  const prologEnv = prologEnvOf(text, id);
  const hosts = expandHostlist(prologEnv.SLURM_NODELIST!, 'NodeList');
  const slurmConfig = await runClient(showConfigArgv());
  if (slurmConfig.code !== 0) throw new JobboxError('scontrol show config', printable(firstLine(slurmConfig.stderr)) || slurmConfig.error || 'failed', id);
  const managed = (partition: string) => config.queues.has(partition);
  const gpus = config.queues.get(prologEnv.SLURM_JOB_PARTITION!)?.gpus === 'allocated';
  const ours = await slurmHookJob(prologEnv, managed, lookupAccount, parseJobRecord(text, id, hosts), multipleSlurmd(slurmConfig.stdout), gpus);
  if (!ours) throw new JobboxError(`job ${id}`, 'is not in a partition jobbox manages', prologEnv.SLURM_JOB_PARTITION!);
  await printPlan(config, ours.job);
}

/** The job's record, asked for so that slurmctld prints this job's record alone (see arrayTaskName). */
async function jobRecord(job: Job): Promise<JobRecord> {
  const first = await showJob(job.id);
  const task = arrayTaskName(first, job.id);
  return parseJobRecord(task ? await showJob(task) : first, job.id, job.hosts.map((h) => h.name));
}

async function showJob(id: string): Promise<string> {
  const r = await runClient(showJobArgv(id));
  if (r.code !== 0) throw new JobboxError('scontrol show job', r.stderr.trim() || r.error || 'failed', id, EXIT.transient);
  return r.stdout;
}

/** The batch script slurmctld holds for the job, byte for byte. */
async function batchScript(id: string): Promise<string> {
  const r = await runClient(batchScriptArgv(id), true);
  // 22.05 exits 0 even when it prints nothing ("job script retrieval failed: …"), and a batch
  // job always has a script: an empty one is a failure to ask.
  if (r.code !== 0 || r.stdout === '') {
    throw new JobboxError('scontrol write batch_script', r.stderr.trim() || r.error || 'printed nothing', id, EXIT.transient);
  }
  return r.stdout;
}
