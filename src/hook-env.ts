// The environment a root hook works on. A scheduler's root hook line runs dist/jobbox-hook
// (src/launcher/jobbox-hook.c), which gives node an environment of its own and the job's, as
// the user chose it, on a file descriptor: the job's variables are data here, read by the
// scheduler adapters, and never the environment of jobbox itself or of what it runs.
import { closeSync, readFileSync } from 'node:fs';
import { JobboxError } from './errors.js';

/** Set by the launcher, in the environment it gives node. */
const FD_VAR = 'JOBBOX_JOB_ENV_FD';

/** NUL-terminated `NAME=value` strings, as the launcher saved them → variables. */
export function parseSavedEnv(data: Buffer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of data.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    // The first of two same names wins, as getenv() would return it.
    if (eq > 0 && !Object.hasOwn(env, entry.slice(0, eq))) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** The environment the launcher saved, or undefined when node was not started by it. */
export function savedEnv(): NodeJS.ProcessEnv | undefined {
  const fd = process.env[FD_VAR];
  if (fd === undefined) return undefined;
  if (!/^\d+$/.test(fd)) throw new JobboxError(FD_VAR, 'must be a file descriptor number', fd);
  const data = readFileSync(Number(fd));
  closeSync(Number(fd));
  return parseSavedEnv(data);
}

/**
 * The job's environment for a scheduler's root hook. As root, only through the launcher: a
 * hook line that starts node itself has already let NODE_OPTIONS and the loader variables
 * choose what runs.
 */
export function hookEnv(hook: string): NodeJS.ProcessEnv {
  const env = savedEnv();
  if (env) return env;
  if (process.getuid?.() === 0) {
    throw new JobboxError(hook, 'as root, runs only through the hook launcher (hooks/lsf/*, hooks/slurm/*)', process.argv[1] ?? '');
  }
  return process.env;
}
