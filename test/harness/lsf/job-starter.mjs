// Plays sbatchd starting a job: /bin/sh runs the job file (which holds the JOB_STARTER line
// with the user's command pasted in) in a session and process group of its own, which is what
// bkill signals. This wrapper stays outside that group, so it survives the signal and records
// how the job ended.
// Usage (as the job user, in the job's environment): node job-starter.mjs PIDFILE STATUSFILE JOBFILE
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const [pidFile, statusFile, jobFile] = process.argv.slice(2);
const child = spawn('/bin/sh', [jobFile], { detached: true, stdio: ['ignore', 'inherit', 'inherit'] });
writeFileSync(pidFile, `${child.pid}\n`);
child.on('exit', (code, signal) => {
  writeFileSync(statusFile, JSON.stringify({ code, signal }));
  process.exitCode = code ?? 128;
});
