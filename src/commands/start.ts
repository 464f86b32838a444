import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { resolveImage } from '../config/image.js';
import { configPath, loadConfig } from '../config/load.js';
import { EXIT, JobboxError } from '../errors.js';
import { lookupAccount } from '../exec/accounts.js';
import { sshInteractive, sshQuiet } from '../exec/openssh.js';
import { quote } from '../exec/ssh.js';
import { lsfJob } from '../job/lsf.js';
import { containerCwd, jobMounts } from '../plan/container.js';
import { containerEnv } from '../plan/env.js';
import { jobPaths } from '../plan/job-files.js';

// LSF's JOB_STARTER, run as the job owner on the first host: the user's command runs in the
// first container through the job's own sshd, so it needs neither root nor the docker socket.
export async function start(cli: string | undefined, command: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (command.length === 0) throw new JobboxError('start', 'no command given', '', EXIT.usage);
  const config = await loadConfig(configPath(cli, env));
  const job = await lsfJob(env, hostname(), lookupAccount);
  if (process.getuid?.() !== job.owner.uid) {
    throw new JobboxError('start', `must run as the job owner ${job.owner.name}, not uid`, String(process.getuid?.()));
  }
  const queue = config.queues.get(job.queue);
  if (!queue) throw new JobboxError('queue', 'no such [queue] section in the config', job.queue);
  const image = resolveImage(config, job.queue, job.image);
  const paths = jobPaths(config.stateDir, job);
  const host = job.hosts[0]!.name;
  // One argument is command text as the user typed it (LSF's "%USRCMD"); several are argv.
  const text = command.length === 1 ? command[0]! : quote(command);
  const vars = Object.entries(containerEnv(job.env).env).map(([k, v]) => `${k}=${v}`);
  // sshd makes the session a process-group leader; its pid lets a second session signal the
  // whole group, since signals cannot travel over ssh to a non-root sshd.
  const pgid = `/tmp/.jobbox-${randomBytes(8).toString('hex')}.pgid`;
  const remote = [
    quote(['cd', '--', containerCwd(job, jobMounts(queue, image))]),
    `echo $$ > ${quote([pgid])}`,
    `exec ${quote(['env', '--', ...vars, '/bin/sh', '-c', text])}`,
  ].join(' && ');
  const deliver = (sig: NodeJS.Signals) =>
    sshQuiet(paths.sshConfig, host, `kill -s ${sig.replace(/^SIG/, '')} -- -"$(cat ${quote([pgid])})"`);
  return sshInteractive(paths.sshConfig, host, remote, deliver);
}
