// The run phase: the user's work in the job's first container, as the job owner, through the
// job's own sshd. The body of the LSF job starter and of the wrapped Slurm batch script.
import { randomBytes } from 'node:crypto';
import { EXIT, JobboxError, printable } from '../errors.js';
import { readJobFile } from '../exec/jobdir.js';
import { sshInteractive, sshQuiet } from '../exec/openssh.js';
import { say } from '../log.js';
import { quote } from '../quote.js';
import type { Job } from '../job/job.js';
import { containerEnv, shellExports } from '../plan/env.js';
import type { JobPaths } from '../plan/job-files.js';
import { jobLabel } from '../plan/status.js';
import { X11_SESSION, x11Handoff } from '../plan/x11.js';

const END_OF_ENV = '# jobbox: end of the environment';

export type Work =
  /** Shell text, run with `sh -c` exactly as the user wrote it. */
  | { command: string }
  /** A whole script with its own #! line, sent over the session and run with `args`. */
  | { script: string; args: string[] };

/**
 * `terminal`: the user is at a terminal (LSF's `bsub -Is`, `jobbox shell`): the command runs on a
 * pseudo-terminal in the container. `host`: another node's container than the first's (`jobbox exec --node`).
 */
export async function runInFirstContainer(job: Job, paths: JobPaths, work: Work, terminal = false, host = job.hosts[0]!.name): Promise<number> {
  if (process.getuid?.() !== job.owner.uid) {
    throw new JobboxError('run', `must run as the job owner ${job.owner.name}, not uid`, String(process.getuid?.()));
  }
  const cwd = (await readJobFile(paths.cwd))?.trim();
  if (!cwd) throw new JobboxError('run', `no running job container (pre-exec or Prolog did not finish; see jobbox status ${jobLabel(job)})`, paths.dir, EXIT.transient);
  // sshd makes the session a process-group leader; its pid lets a second session signal the
  // whole group, since signals cannot travel over ssh to a non-root sshd.
  const pgid = `/tmp/.jobbox-${randomBytes(8).toString('hex')}.pgid`;
  // DISPLAY and XAUTHORITY travel in the client's environment (SendEnv), never on its command line.
  const x11 = x11Handoff(job.env);
  for (const name of x11.refused) say(`${name}: not passed to the container (a newline or NUL in it, or longer than 64 KiB): ${printable(job.env[name]!)}`);
  // The batch step alone knows the job's variables: they come first in the session's input,
  // read a line at a time (sh's read takes no byte past the newline), then the script.
  const input = 'script' in work ? `${shellExports(containerEnv(job.env).env)}${END_OF_ENV}\n${work.script}` : undefined;
  const steps = [quote(['cd', '--', cwd]), `echo $$ > ${quote([pgid])}`];
  if ('command' in work) {
    // The job's variables, as the setup saw them, from the owner-only file it wrote; then the
    // X11 variables of the environment we run in, which the setup may not have seen (plan/x11.ts).
    steps.push(`. ${quote([paths.userEnv])}`, X11_SESSION, `exec ${quote(['/bin/sh', '-c', work.command])}`);
  } else {
    steps.push(
      `while IFS= read -r l && [ "$l" != ${quote([END_OF_ENV])} ]; do eval "$l"; done`,
      X11_SESSION,
      's=$(mktemp)', 'cat > "$s"', 'chmod 700 "$s"', `exec "$s" ${quote(work.args)}`,
    );
  }
  const deliver = (sig: NodeJS.Signals) =>
    sshQuiet(paths.sshConfig, host, `${quote(['kill', '-s', sig.replace(/^SIG/, ''), '--'])} -"$(cat ${quote([pgid])})"`);
  return sshInteractive(paths.sshConfig, host, steps.join(' && '), deliver, input, terminal && input === undefined, x11.send);
}
