// Slurm's submit phase is job_submit.lua, run by slurmctld: these print it, and the node
// Features that name images, from jobbox.ini, for the admin to install.
import { configPath, loadConfig } from '../../config/load.js';
import { imageFeatures, jobSubmitLua } from '../../scheduler/slurm-submit.js';
import { CLI } from './context.js';

export async function features(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  process.stdout.write(`${imageFeatures(await loadConfig(configPath(cli, env)))}\n`);
}

export async function submitLua(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const file = configPath(cli, env);
  process.stdout.write(jobSubmitLua(await loadConfig(file), CLI, file));
}
