// The only code that runs LSF's client commands: today the orphan reaper's one question.
// bjobs lives in $LSF_BINDIR and reads LSF_ENVDIR, which an admin host gets from profile.lsf,
// so the reaper's environment is passed on whole.
import { execa } from 'execa';
import { BJOBS_TIMEOUT_MS } from '../config/defaults.js';
import { fromExeca, type Result } from '../result.js';

/** Runs bjobs argv (scheduler/lsf.ts bjobsArgv); a failure is a result, never an exception. */
export async function runBjobs(argv: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: BJOBS_TIMEOUT_MS, env, extendEnv: false });
  return fromExeca(r, BJOBS_TIMEOUT_MS);
}
