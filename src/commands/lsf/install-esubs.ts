// Puts jobbox's esubs into LSF_SERVERDIR: one `esub.docker-<alias>` link per configured alias
// (LSF 10's mesub runs `esub.<app>` for `bsub -a <app>`), `esub.docker` for `bsub -a
// "docker(<ref>)"`, and with --master the master `esub` openlava needs, since it runs no other. Links, not copies, so an upgrade of jobbox needs no
// re-install; re-run after changing the aliases in the config.
import { lstat, readdir, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { configPath, loadConfig } from '../../config/load.js';
import { EXIT, JobboxError } from '../../errors.js';
import { installed } from '../../install.js';
import { say } from '../../log.js';

export interface InstallEsubsOptions {
  dir: string;
  master: boolean;
  config: string | undefined;
}

// The `docker-` application names are jobbox's: every esub.docker-* entry in the directory is ours to manage.
const PREFIX = 'esub.docker-';
const SHIM = installed('hooks/lsf/esub.docker');
const MASTER_SHIM = installed('hooks/lsf/esub');

export async function lsfInstallEsubs(opts: InstallEsubsOptions, env: Record<string, string | undefined>): Promise<void> {
  const dir = opts.dir;
  if (!dir.startsWith('/') || !(await stat(dir).catch(() => undefined))?.isDirectory()) {
    throw new JobboxError('lsf install-esubs', 'LSF_SERVERDIR must be an absolute path to a directory', dir, EXIT.usage);
  }
  for (const shim of opts.master ? [SHIM, MASTER_SHIM] : [SHIM]) {
    if (!(await stat(shim).catch(() => undefined))?.isFile()) throw new JobboxError('lsf install-esubs', 'jobbox installation has no shim', shim);
  }
  const config = await loadConfig(configPath(opts.config, env));
  const wanted = new Set([...config.images.keys()].map((alias) => PREFIX + alias));
  const byArgument = join(dir, 'esub.docker');

  // Checked before anything changes, so a refusal leaves the directory as it was.
  const master = join(dir, 'esub');
  const masterState = opts.master ? await linkState(master, MASTER_SHIM) : undefined;
  if (masterState === 'foreign') {
    throw new JobboxError(
      'lsf install-esubs',
      `refusing to replace a master esub jobbox did not install; merge it by hand (jobbox's is ${MASTER_SHIM})`,
      master,
    );
  }

  for (const name of (await readdir(dir)).filter((n) => n.startsWith(PREFIX) && !wanted.has(n)).sort()) {
    await rm(join(dir, name), { force: true });
    say(`lsf install-esubs: removed ${join(dir, name)}`);
  }
  for (const name of [...wanted].sort()) await place(join(dir, name), SHIM, await linkState(join(dir, name), SHIM));
  const argumentState = await linkState(byArgument, SHIM);
  if (argumentState === 'foreign') say(`lsf install-esubs: left ${byArgument} alone: jobbox did not install it, so bsub -a "docker(<ref>)" runs that`);
  else await place(byArgument, SHIM, argumentState);
  if (masterState) await place(master, MASTER_SHIM, masterState);
}

type LinkState = 'ours' | 'absent' | 'foreign';

async function linkState(path: string, target: string): Promise<LinkState> {
  const info = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!info) return 'absent';
  return info.isSymbolicLink() && (await readlink(path)) === target ? 'ours' : 'foreign';
}

// A new link is made beside the old entry and renamed over it, so LSF never finds the name
// missing while a submit runs.
async function place(path: string, target: string, state: LinkState): Promise<void> {
  if (state === 'ours') {
    say(`lsf install-esubs: kept ${path} -> ${target}`);
    return;
  }
  const tmp = join(dirname(path), `.jobbox-tmp-${process.pid}`);
  await rm(tmp, { force: true });
  await symlink(target, tmp);
  await rename(tmp, path);
  say(`lsf install-esubs: ${state === 'absent' ? 'created' : 'replaced'} ${path} -> ${target}`);
}
