// Plays sbatchd starting a job: the JOB_STARTER line runs through /bin/sh -c in a session
// and process group of its own, which is what bkill signals. This wrapper stays outside that
// group, so it survives the signal and records how the starter ended.
// Usage (as the job user, in the job's environment): node job-starter.mjs PIDFILE STATUSFILE LINE
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const [pidFile, statusFile, line] = process.argv.slice(2);
const child = spawn('/bin/sh', ['-c', line], { detached: true, stdio: ['ignore', 'inherit', 'inherit'] });
writeFileSync(pidFile, `${child.pid}\n`);
child.on('exit', (code, signal) => {
  writeFileSync(statusFile, JSON.stringify({ code, signal }));
  process.exitCode = code ?? 128;
});
