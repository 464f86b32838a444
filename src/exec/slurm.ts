// The only code that runs Slurm's client commands, with the argv scheduler/slurm.ts builds.
// slurmd gives the Prolog no PATH, and the clients must read SLURM_CONF (never DNS), which
// slurmd passes on to its scripts: useSlurmConf.
import { execa } from 'execa';
import { CLIENT_TIMEOUT_MS, SYSTEM_PATH } from '../config/defaults.js';
import { EXIT, JobboxError } from '../errors.js';
import { fromExeca, type Result } from '../result.js';
import { batchScriptArgv, cancelArgv, requeueArgv, showJobArgv } from '../scheduler/slurm.js';

// A hook's own environment: the launcher gives node nothing of the job's, so the clients get
// this and nothing else.
const hookEnv: Record<string, string> = { PATH: SYSTEM_PATH };

/** The SLURM_CONF slurmd gave a Prolog or Epilog (SlurmHook.conf), for every client it runs. */
export function useSlurmConf(conf: string | undefined): void {
  if (conf) hookEnv.SLURM_CONF = conf;
}

function run(argv: string[], stripFinalNewline = true): Promise<Result> {
  return execa(argv[0]!, argv.slice(1), { reject: false, timeout: CLIENT_TIMEOUT_MS, env: hookEnv, extendEnv: false, stripFinalNewline })
    .then((r) => fromExeca(r, CLIENT_TIMEOUT_MS));
}

export async function requeueJob(id: string): Promise<boolean> {
  return (await run(requeueArgv(id))).code === 0;
}

export async function cancelJob(id: string): Promise<boolean> {
  return (await run(cancelArgv(id))).code === 0;
}

export async function showJob(id: string): Promise<string> {
  const r = await run(showJobArgv(id));
  if (r.code !== 0) throw new JobboxError('scontrol show job', r.stderr.trim() || r.error || 'failed', id, EXIT.transient);
  return r.stdout;
}

export async function batchScript(id: string): Promise<string> {
  const r = await run(batchScriptArgv(id), false);
  // 22.05 exits 0 even when it prints nothing ("job script retrieval failed: …"), and a batch
  // job always has a script: an empty one is a failure to ask.
  if (r.code !== 0 || r.stdout === '') {
    throw new JobboxError('scontrol write batch_script', r.stderr.trim() || r.error || 'printed nothing', id, EXIT.transient);
  }
  return r.stdout;
}

/**
 * squeue argv for the orphan reaper, on an admin host. `env`: the reaper's own (SLURM_CONF,
 * PATH), kept whole, as the Slurm clients may need more of it.
 */
export async function runSqueue(argv: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: CLIENT_TIMEOUT_MS, env: { ...env, PATH: env.PATH || SYSTEM_PATH }, extendEnv: false });
  return fromExeca(r, CLIENT_TIMEOUT_MS);
}
