import { configPath, loadConfig } from '../config/load.js';

// Admins run this after editing the config: the same strict parse and ownership check every
// hook does, so a broken config is found before a job is requeued over it.
export async function configCheck(cli: string | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const path = configPath(cli, env);
  const config = await loadConfig(path);
  process.stdout.write(`${JSON.stringify(config, (_k, v: unknown) => (v instanceof Map ? Object.fromEntries(v) : v), 2)}\n`);
  process.stderr.write(`jobbox: config: ok: ${path}\n`);
}
