// The esub: runs at submit time, as the user, on the submission host. It turns
// `bsub -a docker-<alias>` or `bsub -a "docker(<ref>)"` into JOBBOX_IMAGE in the job's
// environment, or rejects the job there and then with the reason, instead of letting it fail at
// pre-exec much later. A user's own image, and any image of a queue with pin_at_submit, is
// pinned here to the digest its tag names now (`JOBBOX_IMAGE=<name>@sha256:…`), so the job runs
// that even if the tag moves while it pends. It runs as the user, so what it writes is
// advisory: the root pre-exec judges the image again through the root-owned config.
import { appendFile, readFile } from 'node:fs/promises';
import { configPath, loadConfig } from '../../config/load.js';
import { JobboxError, type ExitCode } from '../../errors.js';
import { submitRequest } from '../../lifecycle/submit.js';
import { esubFiles, esubRequest, LSF_SUBMIT } from '../../scheduler/lsf.js';

export interface EsubOptions {
  /** Set by the per-alias esub (`esub.docker-<alias>`, run by LSF 10's mesub); unset for the master esub. */
  alias: string | undefined;
  config: string | undefined;
}

type Env = Record<string, string | undefined>;

// LSF starts the root PRE_EXEC and POST_EXEC as `/bin/sh -c` with the job's environment, and
// the dynamic loader reads these in that shell before any line of jobbox runs
// (docs/security.md). Blank values, which the esub's envfile puts over the user's, make the
// loader ignore them; the containers never get LD_* anyway. Advisory like all an esub does: a
// job submitted without this esub keeps its values.
const LOADER_VARS = ['LD_PRELOAD', 'LD_AUDIT', 'LD_LIBRARY_PATH', 'LD_DEBUG', 'LD_DEBUG_OUTPUT', 'LD_PROFILE', 'LD_PROFILE_OUTPUT', 'GLIBC_TUNABLES'];

export async function esub(opts: EsubOptions, env: Env): Promise<void> {
  const files = esubFiles(env);
  // lsrun and lsgrun run the esub too, with no parameter file: there is no job to check.
  if (!files.parmFile) return;
  try {
    const { queue, alias } = esubRequest(await readText(files.parmFile), opts.alias);
    // The master esub (the only one openlava runs) runs for every job: one that asks for no
    // image gets the queue's default at pre-exec, pinned here if the queue pins at submit.
    if (alias === undefined && !(await pinsDefault(opts, env, queue))) return await blankLoaderVars(opts, env, files.envFile, queue);
    const config = await loadConfig(configPath(opts.config, env));
    const request = await submitRequest(config, [queue ?? config.defaultQueue], alias, LSF_SUBMIT);
    await appendEnv(files.envFile, [`JOBBOX_IMAGE=${request}`, ...LOADER_VARS.map((v) => `${v}=`)]);
  } catch (err) {
    throw rejection(err, files.rejectCode);
  }
}

async function pinsDefault(opts: EsubOptions, env: Env, queue: string | undefined): Promise<boolean> {
  const config = await loadConfig(configPath(opts.config, env)).catch(() => undefined);
  return config?.queues.get(queue || config.defaultQueue)?.pinAtSubmit === true;
}

/**
 * A job that asks for no image still runs jobbox's pre-exec when its queue is one of jobbox's:
 * it gets the blanks too. Nothing else is judged here, and a config that cannot be read
 * rejects nothing, since the job did not ask jobbox for anything.
 */
async function blankLoaderVars(opts: EsubOptions, env: Env, envFile: string | undefined, queue: string | undefined): Promise<void> {
  const config = await loadConfig(configPath(opts.config, env)).catch(() => undefined);
  if (config?.queues.has(queue || config.defaultQueue)) await appendEnv(envFile, LOADER_VARS.map((v) => `${v}=`));
}

/** Appended, not replaced: other esubs of the site write to the same file. */
async function appendEnv(envfile: string | undefined, lines: string[]): Promise<void> {
  if (!envfile) throw new JobboxError('LSB_SUB_MODIFY_ENVFILE', 'is not set (not run by bsub?)', '');
  await appendFile(envfile, `${lines.join('\n')}\n`).catch((err: unknown) => {
    throw new JobboxError('LSB_SUB_MODIFY_ENVFILE', `cannot append (${(err as NodeJS.ErrnoException).code ?? String(err)})`, envfile);
  });
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new JobboxError('LSB_SUB_PARM_FILE', `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`, path);
  }
}

// Any failure past this point rejects the submit, a broken config included: a job that
// asked for an image must not silently run in the default one. bsub takes the esub's
// rejection only from the code LSF names (EsubFiles.rejectCode).
function rejection(err: unknown, code: ExitCode): JobboxError {
  const cause = err instanceof JobboxError ? err : new JobboxError('esub', 'unexpected failure', err instanceof Error ? err.message : String(err));
  return new JobboxError(cause.subject, cause.problem, cause.value, code);
}
