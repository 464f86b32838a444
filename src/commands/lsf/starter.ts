import { EXIT, JobboxError } from '../../errors.js';
import { quote } from '../../quote.js';
import { runInFirstContainer } from '../../lifecycle/run.js';
import { jobPaths } from '../../plan/job-files.js';
import { lsfContext } from './context.js';

// LSF's JOB_STARTER, run as the job owner on the first host: the run phase. The user's
// command runs in the first container through the job's own sshd, so it needs neither root
// nor the docker socket.
export async function starter(cli: string | undefined, command: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (command.length === 0) throw new JobboxError('starter', 'no command given', '', EXIT.usage);
  const { config, job } = await lsfContext(cli, env, 'user');
  // One argument is command text as the user typed it (LSF's "%USRCMD"); several are argv.
  const text = command.length === 1 ? command[0]! : quote(command);
  return runInFirstContainer(job, jobPaths(config.stateDir, job), { command: text });
}
