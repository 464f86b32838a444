// Reads jobbox.ini. Run as root, the config decides which images, mounts and devices users
// get, so whoever can write it or rename any directory above it is root: refuse it then.
import { constants, type Stats } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { EXIT, JobboxError } from '../errors.js';
import { DEFAULT_CONFIG } from './defaults.js';
import { parseConfig, type Config } from './parse.js';


/**
 * --config > JOBBOX_CONFIG > /etc/jobbox/jobbox.ini. In a root hook the environment is the
 * job's, so JOBBOX_CONFIG is the user's choice: only the ownership check in loadConfig keeps
 * that safe, and root hooks should pass --config.
 */
export function configPath(cliValue: string | undefined, env: Record<string, string | undefined>): string {
  if (cliValue === '') throw new JobboxError('--config', 'must name a file', cliValue, EXIT.usage);
  return cliValue ?? (env.JOBBOX_CONFIG || DEFAULT_CONFIG);
}

export async function loadConfig(path: string): Promise<Config> {
  const asRoot = process.getuid?.() === 0;
  let real: string;
  try {
    real = await realpath(resolve(path));
  } catch (err) {
    throw unreadable(err, path);
  }
  // Checked on the resolved path and on the open descriptor, so a symlink or a swap between
  // check and read cannot substitute another file.
  // O_NONBLOCK: a FIFO planted as the config must fail the type check below, not hang the hook.
  const file = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: unknown) => {
    throw unreadable(err, path);
  });
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new JobboxError('config', 'not a regular file', real);
    if (asRoot) {
      safe(info, 'file', real);
      for (let dir = dirname(real); ; dir = dirname(dir)) {
        safe(await stat(dir), 'parent directory', dir);
        if (dir === '/') break;
      }
    }
    return parseConfig(await file.readFile('utf8'), real);
  } finally {
    await file.close();
  }
}

// No exception for sticky world-writable directories such as /tmp: a config has no business there.
function safe(info: Stats, what: string, path: string): void {
  if (info.uid !== 0) throw new JobboxError('config', `${what} is not owned by root (uid ${info.uid})`, path);
  if ((info.mode & 0o022) !== 0) {
    throw new JobboxError('config', `${what} is writable by group or others (mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')})`, path);
  }
}

function unreadable(err: unknown, path: string): JobboxError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? String(err);
  return new JobboxError('config', `cannot read the file (${code})`, path);
}
