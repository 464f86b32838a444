// `jobbox image resolve <image> --queue Q…`: the submit's judgement of an image request, for a
// submit filter that is not jobbox's own process (Slurm's job_submit.lua). One line on stdout,
// the request the job carries; any refusal is jobbox's one error line and its exit code, with
// the next step in sbatch's options, since sbatch is where the Lua shows it.
import { configPath, loadConfig } from '../config/load.js';
import { submitRequest } from '../lifecycle/submit.js';
import { SLURM_SUBMIT } from '../scheduler/slurm.js';

export async function imageResolve(image: string, queues: string[], cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const config = await loadConfig(configPath(cli, env));
  process.stdout.write(`${await submitRequest(config, queues, image, SLURM_SUBMIT)}\n`);
}
