import { readFile } from 'node:fs/promises';
import { EXIT, JobboxError } from '../../errors.js';
import { quote } from '../../quote.js';
import { runInFirstContainer } from '../../lifecycle/run.js';
import { jobPaths } from '../../plan/job-files.js';
import { jobFileCommand } from '../../scheduler/lsf.js';
import { lsfContext } from './context.js';

// LSF's JOB_STARTER, run as the job owner on the first host: the run phase. The user's
// command runs in the first container through the job's own sshd, so it needs neither root
// nor the docker socket.
export async function starter(cli: string | undefined, command: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (command.length === 0) throw new JobboxError('starter', 'no command given', '', EXIT.usage);
  const { config, job } = await lsfContext(cli, env, 'user');
  // One argument is command text as the user typed it (LSF's "%USRCMD"); several are argv.
  const text = command.length === 1 ? command[0]! : quote(command);
  return runInFirstContainer(job, jobPaths(config.stateDir, job), { command: text }, process.stdin.isTTY === true);
}

/**
 * The same, with the command read from the job file (`JOB_STARTER = exec … starter --config F
 * --job-file #%USRCMD`): quotes, `$`, `;`, pipes and redirections reach the container as typed.
 */
export async function starterFromJobFile(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<number> {
  const file = env.LSB_JOBFILENAME;
  if (!file) throw new JobboxError('LSB_JOBFILENAME', 'is not set (not run by LSF as a JOB_STARTER?)', '', EXIT.usage);
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new JobboxError('LSB_JOBFILENAME', `cannot read the job file (${err.code ?? String(err)})`, file);
  });
  const command = jobFileCommand(text);
  const { config, job } = await lsfContext(cli, env, 'user');
  // `bsub -Is`/`-Ip` give the starter a terminal on its stdin; `-I` and batch jobs do not.
  return diesOfSignal(() => runInFirstContainer(job, jobPaths(config.stateDir, job), { command }, process.stdin.isTTY === true));
}

/**
 * `exec` in the starter line makes the starter the job's process: a bkill that stops it must
 * end the job "by signal", as it did when /bin/sh ran the starter and died of it. So once the
 * command inside has been stopped (the run phase delivers the signal there), the starter
 * raises the same signal on itself, its handlers gone.
 */
async function diesOfSignal(run: () => Promise<number>): Promise<number> {
  // The two the run phase forwards into the container (exec/openssh.ts).
  const signals = ['SIGTERM', 'SIGINT'] as const;
  let got: NodeJS.Signals | undefined;
  const note = (sig: NodeJS.Signals) => void (got ??= sig);
  for (const sig of signals) process.on(sig, note);
  try {
    const code = await run();
    if (got) {
      for (const sig of signals) process.removeAllListeners(sig);
      process.kill(process.pid, got);
    }
    return code;
  } finally {
    for (const sig of signals) process.off(sig, note);
  }
}
