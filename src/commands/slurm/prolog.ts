// The Slurm Prolog, as root on every node of the job (PrologFlags=Alloc): the setup phase,
// done by the batch host for all nodes. It always exits 0, since a Prolog that fails drains
// the node: what went wrong requeues or cancels the job instead (prologOutcome).
import type { Logger } from 'pino';
import type { Config } from '../../config/types.js';
import { JobboxError, formatError } from '../../errors.js';
import { lookupAccount } from '../../exec/accounts.js';
import { batchScript, cancelJob, requeueJob, showJob, useSlurmConf } from '../../exec/slurm.js';
import type { Job } from '../../job/job.js';
import { setupJob } from '../../lifecycle/setup.js';
import { submittedScript } from '../../scheduler/slurm-submit.js';
import { arrayTaskName, parseJobRecord, prologOutcome, slurmHook, slurmHookJob, type JobRecord } from '../../scheduler/slurm.js';
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
    if (hook.id && hook.jobboxJobHere) await cancelJob(hook.id);
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
    const sized = ours.cpusGiven ? job : (await slurmHookJob(env, () => true, lookupAccount, record.cpus))!.job;
    await setupJob(config, sized, log);
  } catch (err) {
    const { line, exitCode } = formatError(err);
    process.stderr.write(`${line}\n`);
    if (!hook.id) return;
    const outcome = prologOutcome(exitCode);
    // slurmd logs nothing of a Prolog that exits 0: ours is where an admin learns why a job went.
    log?.error({ err: line }, outcome === 'cancel' ? 'prolog failed; cancelling the job' : 'prolog failed; requeueing the job');
    if (outcome === 'cancel') await cancelJob(hook.id);
    else await requeueJob(hook.id);
  }
}

/** The job's record, asked for so that slurmctld prints this job's record alone (see arrayTaskName). */
async function jobRecord(job: Job): Promise<JobRecord> {
  const first = await showJob(job.id);
  const task = arrayTaskName(first, job.id);
  return parseJobRecord(task ? await showJob(task) : first, job.id, job.hosts.map((h) => h.name));
}
