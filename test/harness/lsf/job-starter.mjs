// Plays sbatchd starting a job: /bin/sh runs the job file (which holds the JOB_STARTER line
// with the user's command pasted in) in a session and process group of its own, which is what
// bkill signals. This wrapper stays outside that group, so it survives the signal and records
// how the job ended.
// Usage (as the job user, in the job's environment): node job-starter.mjs PIDFILE STATUSFILE JOBFILE
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const [pidFile, statusFile, jobFile] = process.argv.slice(2);
// bsub -Is and -Ip give the job a terminal; other jobs read nothing.
const child = spawn('/bin/sh', [jobFile], { detached: true, stdio: [process.stdin.isTTY ? 'inherit' : 'ignore', 'inherit', 'inherit'] });
writeFileSync(pidFile, `${child.pid}\n`);
// LSF's res gives a -Is job the pty as its controlling terminal, so the kernel tells the job of
// a new terminal size. Detached here, the job would not hear of it: the wrapper, which the
// kernel does tell, passes it on to the job's group.
if (process.stdin.isTTY) process.on('SIGWINCH', () => process.kill(-child.pid, 'SIGWINCH'));
child.on('exit', (code, signal) => {
  writeFileSync(statusFile, JSON.stringify({ code, signal }));
  process.exitCode = code ?? 128;
});
