// The only code that runs LSF's client commands: the orphan reaper's one question, and the
// pre-exec's bpost and GPU question.
// bjobs lives in $LSF_BINDIR and reads LSF_ENVDIR, which an admin host gets from profile.lsf,
// so the reaper's environment is passed on whole.
import { execa } from 'execa';
import { BJOBS_TIMEOUT_MS, SYSTEM_PATH } from '../config/defaults.js';
import { fromExeca, type Result } from '../result.js';

/** Runs bjobs argv (scheduler/lsf.ts bjobsArgv); a failure is a result, never an exception. */
export async function runBjobs(argv: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: BJOBS_TIMEOUT_MS, env, extendEnv: false });
  return fromExeca(r, BJOBS_TIMEOUT_MS);
}

/**
 * Runs bpost or bjobs for a root hook (scheduler/lsf.ts bpostArgv, gpuAllocArgv), by the path
 * the config names. The hook's environment is the job's, the user's choice: the client gets
 * PATH alone, so it reads /etc/lsf.conf (or what a site's wrapper at the configured path sets),
 * never an LSF_ENVDIR the user exported.
 */
export async function runHookClient(argv: string[], timeoutMs: number): Promise<Result> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: timeoutMs, env: { PATH: SYSTEM_PATH }, extendEnv: false, stdin: 'ignore' });
  return fromExeca(r, timeoutMs);
}
