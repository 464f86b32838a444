import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lsfInstallEsubs } from '../../../src/commands/lsf/install-esubs.js';
import { rootConfig } from '../../helpers/config-file.js';

const SHIM = fileURLToPath(new URL('../../../hooks/lsf/esub.docker', import.meta.url));
const MASTER = fileURLToPath(new URL('../../../hooks/lsf/esub', import.meta.url));
const CONFIG = `[queue normal]
default_image = deb12
allowed_images = deb12 deb12-mpich
[image deb12]
ref = registry.example.org/deb12
[image deb12-mpich]
ref = registry.example.org/deb12-mpich
`;

let confDir: string;
let config: string;
let dir: string;
let said: string[];

beforeAll(async () => {
  ({ dir: confDir, file: config } = await rootConfig(CONFIG));
});
afterAll(() => rm(confDir, { recursive: true, force: true }));
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'jobbox-serverdir-'));
  said = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    said.push(String(chunk).replaceAll(dir, 'DIR'));
    return true;
  });
  return async () => {
    spy.mockRestore();
    await rm(dir, { recursive: true, force: true });
  };
});

const install = (master = false) => lsfInstallEsubs({ dir, master, config }, {});
const entries = async () =>
  Object.fromEntries(
    await Promise.all(
      (await readdir(dir)).sort().map(async (n) => [n, (await lstat(join(dir, n))).isSymbolicLink() ? `-> ${await readlink(join(dir, n))}` : await readFile(join(dir, n), 'utf8')]),
    ),
  );

describe('lsf install-esubs', () => {
  it('links one esub.docker-<alias> per alias to the shim, and keeps them on a re-run', async () => {
    await install();
    const linked = { 'esub.docker': `-> ${SHIM}`, 'esub.docker-deb12': `-> ${SHIM}`, 'esub.docker-deb12-mpich': `-> ${SHIM}` };
    expect(await entries()).toEqual(linked);
    expect(said).toEqual([
      `jobbox: lsf install-esubs: created DIR/esub.docker-deb12 -> ${SHIM}\n`,
      `jobbox: lsf install-esubs: created DIR/esub.docker-deb12-mpich -> ${SHIM}\n`,
      `jobbox: lsf install-esubs: created DIR/esub.docker -> ${SHIM}\n`,
    ]);
    said.length = 0;
    await install();
    expect(await entries()).toEqual(linked);
    expect(said).toEqual([
      `jobbox: lsf install-esubs: kept DIR/esub.docker-deb12 -> ${SHIM}\n`,
      `jobbox: lsf install-esubs: kept DIR/esub.docker-deb12-mpich -> ${SHIM}\n`,
      `jobbox: lsf install-esubs: kept DIR/esub.docker -> ${SHIM}\n`,
    ]);
  });

  it('leaves an esub.docker it did not install alone, and says so', async () => {
    await writeFile(join(dir, 'esub.docker'), 'site esub\n');
    await install();
    expect((await entries())['esub.docker']).toBe('site esub\n');
    expect(said.at(-1)).toBe('jobbox: lsf install-esubs: left DIR/esub.docker alone: jobbox did not install it, so bsub -a "docker(<ref>)" runs that\n');
  });

  it('removes stale esub.docker-* entries, replaces wrong ones, and leaves everything else alone', async () => {
    await symlink(SHIM, join(dir, 'esub.docker-centos7'));
    await writeFile(join(dir, 'esub.docker-old'), 'old copy\n');
    await symlink('/bin/true', join(dir, 'esub.docker-deb12'));
    for (const foreign of ['esub', 'esub.gpu', 'esub.dockerx', 'elim.docker-deb12', 'mesub']) await writeFile(join(dir, foreign), `${foreign}\n`);
    await install();
    expect(await entries()).toEqual({
      'elim.docker-deb12': 'elim.docker-deb12\n',
      esub: 'esub\n',
      'esub.docker': `-> ${SHIM}`,
      'esub.docker-deb12': `-> ${SHIM}`,
      'esub.docker-deb12-mpich': `-> ${SHIM}`,
      'esub.dockerx': 'esub.dockerx\n',
      'esub.gpu': 'esub.gpu\n',
      mesub: 'mesub\n',
    });
    expect(said).toEqual([
      'jobbox: lsf install-esubs: removed DIR/esub.docker-centos7\n',
      'jobbox: lsf install-esubs: removed DIR/esub.docker-old\n',
      `jobbox: lsf install-esubs: replaced DIR/esub.docker-deb12 -> ${SHIM}\n`,
      `jobbox: lsf install-esubs: created DIR/esub.docker-deb12-mpich -> ${SHIM}\n`,
      `jobbox: lsf install-esubs: created DIR/esub.docker -> ${SHIM}\n`,
    ]);
  });

  it('--master links the master esub too, and keeps it on a re-run', async () => {
    await install(true);
    expect((await entries()).esub).toBe(`-> ${MASTER}`);
    expect(said.at(-1)).toBe(`jobbox: lsf install-esubs: created DIR/esub -> ${MASTER}\n`);
    await install(true);
    expect(said.at(-1)).toBe(`jobbox: lsf install-esubs: kept DIR/esub -> ${MASTER}\n`);
  });

  it.each([
    ['a site master esub', async (path: string) => writeFile(path, '#!/bin/sh\nexit 0\n')],
    ['a link to something else', async (path: string) => symlink('/opt/site/esub', path)],
  ])('--master refuses to replace %s, and changes nothing', async (_name, make) => {
    await make(join(dir, 'esub'));
    await symlink(SHIM, join(dir, 'esub.docker-stale'));
    const before = await entries();
    await expect(install(true)).rejects.toThrow(
      expect.objectContaining({
        message: `jobbox: lsf install-esubs: refusing to replace a master esub jobbox did not install; merge it by hand (jobbox's is ${MASTER}): ${dir}/esub`,
        exitCode: 99,
      }),
    );
    expect(await entries()).toEqual(before);
  });

  it.each(['relative/dir', '/nonexistent/serverdir'])('refuses %s as LSF_SERVERDIR', async (bad) => {
    await expect(lsfInstallEsubs({ dir: bad, master: false, config }, {})).rejects.toThrow(
      expect.objectContaining({ message: `jobbox: lsf install-esubs: LSF_SERVERDIR must be an absolute path to a directory: ${bad}`, exitCode: 2 }),
    );
  });
});
