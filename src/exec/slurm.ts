// The only code that runs Slurm's client commands, with argv scheduler/slurm.ts builds. slurmd
// gives the Prolog no PATH, and the clients must read SLURM_CONF (never DNS), which slurmd
// passes on to its scripts: useSlurmConf.
import { execa } from 'execa';
import { CLIENT_TIMEOUT_MS, SYSTEM_PATH } from '../config/defaults.js';
import { fromExeca, type Result } from '../result.js';

// What the clients of a hook get: the launcher gives node nothing of the job's environment,
// and the clients need nothing else.
const clientEnv: Record<string, string> = { PATH: SYSTEM_PATH };

/** The SLURM_CONF slurmd gave a Prolog or Epilog (SlurmHook.conf), for every client it runs. */
export function useSlurmConf(conf: string | undefined): void {
  if (conf) clientEnv.SLURM_CONF = conf;
}

/** Runs a client for a hook; a failure is a result, never an exception. `keepNewline`: output byte for byte. */
export async function runClient(argv: string[], keepNewline = false): Promise<Result> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: CLIENT_TIMEOUT_MS, env: clientEnv, extendEnv: false, stripFinalNewline: !keepNewline });
  return fromExeca(r, CLIENT_TIMEOUT_MS);
}

/**
 * squeue for the orphan reaper, on an admin host. `env`: the reaper's own (SLURM_CONF, PATH),
 * kept whole, as the Slurm clients may need more of it.
 */
export async function runSqueue(argv: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: CLIENT_TIMEOUT_MS, env: { ...env, PATH: env.PATH || SYSTEM_PATH }, extendEnv: false });
  return fromExeca(r, CLIENT_TIMEOUT_MS);
}
