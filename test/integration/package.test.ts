import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import { lsfJobEnv } from '../harness/lsf/harness.js';
import { ALLOC, containers, hook, lsfFixture, spec } from '../support/lsf-fixture.js';
import * as fixture from '../support/lsf-fixture.js';
import { INSTALL, REPO } from '../support/testbed.js';

// The Debian package (packaging/deb.sh) as a site gets it. global-setup.ts has installed the
// tree's package on the host, whose /usr the nodes share; every other suite runs those files.
let version: string;
let deb: string;
let config: Config;
let hooks: { preExec: string; postExec: string };

beforeAll(async () => {
  ({ version } = JSON.parse(await readFile(`${REPO}/package.json`, 'utf8')) as { version: string });
  deb = `${REPO}/dist/jobbox_${version}_amd64.deb`;
  ({ config, hooks } = await lsfFixture());
});

describe('the package', () => {
  it('is lintian-clean: no error or warning (one override: the static hook launcher, on purpose)', async () => {
    const r = await execa('lintian', ['--fail-on', 'error,warning', '--tag-display-limit', '0', deb], { reject: false });
    expect(r.stdout.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
    expect(r.exitCode).toBe(0);
  });

  it('is installed as built (dpkg --verify), with every file the scheduler lines, the unit and the docs name', async () => {
    expect((await execa('dpkg', ['--verify', 'jobbox'], { reject: false })).stdout).toBe('');
    expect((await execa('dpkg-query', ['-W', '-f', '${Version} ${Status}', 'jobbox'])).stdout).toBe(`${version} install ok installed`);
    const paths = [
      'hooks/lsf/pre-exec', 'hooks/lsf/post-exec', 'hooks/lsf/starter', 'hooks/lsf/esub', 'hooks/lsf/esub.docker',
      'hooks/slurm/prolog', 'hooks/slurm/epilog', 'hooks/gc', 'dist/cli.js', 'dist/jobbox-hook',
    ].map((p) => `${INSTALL}/${p}`);
    paths.push('/usr/bin/jobbox', '/etc/jobbox/jobbox.ini', '/etc/logrotate.d/jobbox', '/usr/share/man/man1/jobbox.1.gz',
      '/lib/systemd/system/jobbox-gc.service', '/lib/systemd/system/jobbox-gc.timer', '/usr/share/doc/jobbox/copyright');
    const missing = (await execa('sh', ['-c', 'for p; do [ -e "$p" ] || echo "$p"; done', 'sh', ...paths])).stdout;
    expect(missing).toBe('');
    const unit = await readFile('/lib/systemd/system/jobbox-gc.service', 'utf8');
    expect(unit).toMatch(new RegExp(`^ExecStart=${INSTALL}/hooks/gc --config /etc/jobbox/jobbox.ini$`, 'm'));
    // No node_modules: the bundle is the whole runtime, and it runs as /usr/bin/jobbox.
    expect((await execa('dpkg', ['-L', 'jobbox'])).stdout).not.toContain('node_modules');
    expect((await execa('/usr/bin/jobbox', ['--version'])).stdout).toBe(version);
    // The man page is every command's --help: the deepest one too.
    const man = (await execa('sh', ['-c', 'zcat /usr/share/man/man1/jobbox.1.gz | MANWIDTH=120 man -l - 2>/dev/null'])).stdout;
    expect(man).toContain('jobbox lsf install-esubs');
    expect(man).toContain('jobbox image gc');
  });

  it('carries a launcher that allows no sticky directory above it, as the checkout\'s may (src/launcher/build.sh)', async () => {
    const dir = await mkdtemp('/tmp/jobbox-deb-');
    try {
      await execa('dpkg-deb', ['-x', deb, dir]);
      const r = await execa(`${dir}${INSTALL}/hooks/gc`, ['--help'], { reject: false });
      expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 99, stderr: 'jobbox: hook launcher: not owned by root or writable by group or others: /tmp' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('an upgrade', () => {
  let older: string;
  let olderDeb: string;
  let conffile: string;

  beforeAll(async () => {
    older = `${version}~old1`;
    olderDeb = `${REPO}/dist/jobbox_${older}_amd64.deb`;
    conffile = await readFile('/etc/jobbox/jobbox.ini', 'utf8');
    await execa('bash', [`${REPO}/packaging/deb.sh`, '--version', older]);
  });

  afterAll(async () => {
    // Whatever happened, the host ends with the tree's package and the conffile as it was.
    await execa('dpkg', ['-i', '--force-confold', deb], { env: { DEBIAN_FRONTEND: 'noninteractive' } });
    await writeFile('/etc/jobbox/jobbox.ini', conffile);
    await rm(olderDeb, { force: true });
  });

  it('keeps a running job: the post-exec of the new version tears down what the old one started, and keeps the admin\'s config', async () => {
    await execa('dpkg', ['-i', olderDeb], { env: { DEBIAN_FRONTEND: 'noninteractive' } });
    expect((await execa('/usr/bin/jobbox', ['--version'])).stdout).toBe(version); // the same tree, only the package's version differs
    expect((await execa('dpkg-query', ['-W', '-f', '${Version}', 'jobbox'])).stdout).toBe(older);
    await writeFile('/etc/jobbox/jobbox.ini', `${conffile}; edited by the site\n`);

    const jobId = 61_001;
    const env = lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' });
    expect(await hook(hooks.preExec, env)).toEqual({ code: 0, stderr: '' });
    expect((await containers(jobId)).length).toBe(3);

    await execa('dpkg', ['-i', '--force-confold', deb], { env: { DEBIAN_FRONTEND: 'noninteractive' } });
    expect((await execa('dpkg-query', ['-W', '-f', '${Version}', 'jobbox'])).stdout).toBe(version);
    expect(await readFile('/etc/jobbox/jobbox.ini', 'utf8')).toBe(`${conffile}; edited by the site\n`);

    expect(await hook(hooks.postExec, env)).toEqual({ code: 0, stderr: '' });
    expect(await containers(jobId)).toEqual([]);
    expect(await fixture.claims(config, jobId)).toEqual([]);
    expect(await fixture.jobDirs(config, jobId)).toEqual([]);
  });
});
