// The only code that runs LSF's client commands: today the orphan reaper's one question.
// bjobs lives in $LSF_BINDIR and reads LSF_ENVDIR, which an admin host gets from profile.lsf,
// so the reaper's environment is passed on whole.
import { execa } from 'execa';
import { BJOBS_FORMAT, bjobsName, clientRun, type ClientRun, type JobRef } from '../plan/gc.js';

// bjobs retries for as long as mbatchd does not answer ("LSF is down. Please wait..."):
// the timeout turns that into a failed query, and a failed query reclaims nothing.
const TIMEOUT_MS = 60_000;

/** One bjobs for all the jobs: `-a` keeps finished ones (DONE, EXIT) until LSF cleans them. */
export async function jobStates(refs: JobRef[], env: NodeJS.ProcessEnv): Promise<ClientRun> {
  // Names are decimal ids with an optional [index], never options: bjobs takes no `--`.
  const r = await execa('bjobs', ['-noheader', '-a', '-o', BJOBS_FORMAT, ...refs.map(bjobsName)], {
    reject: false, timeout: TIMEOUT_MS, env, extendEnv: false,
  });
  return clientRun(r, TIMEOUT_MS);
}
