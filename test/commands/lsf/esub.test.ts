import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { esub } from '../../../src/commands/lsf/esub.js';
import { rootConfig } from '../../helpers/config-file.js';
import { fakeRegistry, type FakeRegistry } from '../../support/fake-registry.js';

// default_queue is short so that a job naming no queue is visibly judged by short's list.
const CONFIG = `[jobbox]
default_queue = short
[queue normal]
default_image = deb12
allowed_images = deb12 deb12-mpich
[queue short]
default_image = deb12-mpich
[image deb12]
ref = registry.example.org/deb12
[image deb12-mpich]
ref = registry.example.org/deb12-mpich
`;

// The config lives where loadConfig accepts it as root; the job's files may live anywhere.
let confDir: string;
let config: string;
let dir: string;
let parm: string;
let envfile: string;

beforeAll(async () => {
  ({ dir: confDir, file: config } = await rootConfig(CONFIG));
});
afterAll(() => rm(confDir, { recursive: true, force: true }));
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'jobbox-esub-'));
  parm = join(dir, 'parm');
  envfile = join(dir, 'envfile');
  return () => rm(dir, { recursive: true, force: true });
});

async function run(alias: string | undefined, parmText: string | undefined): Promise<void> {
  const env: Record<string, string> = { LSB_SUB_MODIFY_ENVFILE: envfile };
  if (parmText !== undefined) {
    await writeFile(parm, parmText);
    env.LSB_SUB_PARM_FILE = parm;
  }
  return esub({ alias, config }, env);
}
const written = () => readFile(envfile, 'utf8').catch(() => '(none)');

// What every job of a jobbox queue gets over the user's values: the loader reads these in
// LSF's /bin/sh -c of the root pre-exec before any hook runs (docs/security.md).
const BLANKS = 'LD_PRELOAD=\nLD_AUDIT=\nLD_LIBRARY_PATH=\nLD_DEBUG=\nLD_DEBUG_OUTPUT=\nLD_PROFILE=\nLD_PROFILE_OUTPUT=\nGLIBC_TUNABLES=\n';

describe('esub accepts', () => {
  it.each([
    ['per-alias esub, allowed alias', 'deb12', 'LSB_SUB_QUEUE="normal"\n', `JOBBOX_IMAGE=deb12\n${BLANKS}`],
    ['unquoted queue value', 'deb12', 'LSB_SUB_QUEUE=normal\n', `JOBBOX_IMAGE=deb12\n${BLANKS}`],
    ['no queue: the config default (short)', 'deb12-mpich', 'LSB_SUB_COMMAND_LINE="mpirun ./a.out"\n', `JOBBOX_IMAGE=deb12-mpich\n${BLANKS}`],
    ['master esub, one docker- word', undefined, 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker-deb12"\n', `JOBBOX_IMAGE=deb12\n${BLANKS}`],
    ['master esub, other applications beside', undefined, 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="gpu docker-deb12-mpich"\n', `JOBBOX_IMAGE=deb12-mpich\n${BLANKS}`],
    ['--alias wins over LSB_SUB_ADDITIONAL', 'deb12', 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker-nope docker-nada"\n', `JOBBOX_IMAGE=deb12\n${BLANKS}`],
    ['master esub, no docker- word, a jobbox queue: the blanks only', undefined, 'LSB_SUB_QUEUE="short"\nLSB_SUB_ADDITIONAL="gpu"\n', BLANKS],
    ['master esub, no -a at all, a jobbox queue: the blanks only', undefined, 'LSB_SUB_QUEUE="short"\n', BLANKS],
    ['master esub, no -a, a queue jobbox does not know: nothing', undefined, 'LSB_SUB_QUEUE="gpu"\n', '(none)'],
    ['no parm file (lsrun): nothing to do, even for a bad alias', 'nope', undefined, '(none)'],
  ])('%s', async (_name, alias, parmText, envLines) => {
    await expect(run(alias, parmText)).resolves.toBeUndefined();
    expect(await written()).toBe(envLines);
  });

  it('appends to what other esubs wrote', async () => {
    await writeFile(envfile, 'SITE_TAG=x\n');
    await run('deb12', 'LSB_SUB_QUEUE="normal"\n');
    expect(await written()).toBe(`SITE_TAG=x\nJOBBOX_IMAGE=deb12\n${BLANKS}`);
  });

  it('rejects no job that asks for no image when the config cannot be read, and writes nothing', async () => {
    await writeFile(parm, 'LSB_SUB_QUEUE="normal"\n');
    await expect(esub({ alias: undefined, config: join(confDir, 'missing.ini') }, { LSB_SUB_PARM_FILE: parm, LSB_SUB_MODIFY_ENVFILE: envfile })).resolves.toBeUndefined();
    expect(await written()).toBe('(none)');
  });
});

describe('esub rejects with LSB_SUB_ABORT_VALUE and writes nothing', () => {
  it.each([
    ['disallowed alias', 'deb12', 'LSB_SUB_QUEUE="short"\n', {}, 97, 'jobbox: image: not allowed in queue short (allowed: deb12-mpich); use -q normal, or -a docker-deb12-mpich: deb12'],
    ['disallowed in the default queue', 'deb12', '', {}, 97, 'jobbox: image: not allowed in queue short (allowed: deb12-mpich); use -q normal, or -a docker-deb12-mpich: deb12'],
    ['unknown alias', 'centos7', 'LSB_SUB_QUEUE="normal"\n', {}, 97, 'jobbox: image: no such image alias (allowed: deb12 deb12-mpich); use -a docker-deb12 or -a docker-deb12-mpich: centos7'],
    ['option-like alias', '-x', 'LSB_SUB_QUEUE="normal"\n', {}, 97, 'jobbox: image: must not start with "-": -x'],
    ['command substitution', '$(id)', 'LSB_SUB_QUEUE="normal"\n', {}, 97, 'jobbox: image: must not contain shell metacharacters: $(id)'],
    ['a queue jobbox does not know', 'deb12', 'LSB_SUB_QUEUE="gpu"\n', {}, 97, 'jobbox: queue: no such [queue] section in the config (defined: normal short); use -q normal: gpu'],
    ['master esub, disallowed alias', undefined, 'LSB_SUB_QUEUE="short"\nLSB_SUB_ADDITIONAL="docker-deb12"\n', {}, 97, 'jobbox: image: not allowed in queue short (allowed: deb12-mpich); use -q normal, or -a docker-deb12-mpich: deb12'],
    ['master esub, two docker- words', undefined, 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker-deb12 docker-deb12-mpich"\n', {}, 97, 'jobbox: bsub -a: names more than one docker application, give one image: docker-deb12 docker-deb12-mpich'],
    ['master esub, empty alias', undefined, 'LSB_SUB_ADDITIONAL="docker-"\n', {}, 97, 'jobbox: image: must not be empty: '],
    ['custom LSB_SUB_ABORT_VALUE', 'deb12', 'LSB_SUB_QUEUE="short"\n', { LSB_SUB_ABORT_VALUE: '55' }, 55, 'jobbox: image: not allowed in queue short (allowed: deb12-mpich); use -q normal, or -a docker-deb12-mpich: deb12'],
    ['nonsense LSB_SUB_ABORT_VALUE: 97', 'deb12', 'LSB_SUB_QUEUE="short"\n', { LSB_SUB_ABORT_VALUE: '9x' }, 97, 'jobbox: image: not allowed in queue short (allowed: deb12-mpich); use -q normal, or -a docker-deb12-mpich: deb12'],
    ['unreadable config', 'deb12', 'LSB_SUB_QUEUE="normal"\n', { JOBBOX_CONFIG: '/nonexistent.ini' }, 97, 'jobbox: config: cannot read the file (ENOENT): /nonexistent.ini'],
    ['no envfile to write to', 'deb12', 'LSB_SUB_QUEUE="normal"\n', { LSB_SUB_MODIFY_ENVFILE: '' }, 97, 'jobbox: LSB_SUB_MODIFY_ENVFILE: is not set (not run by bsub?): '],
  ])('%s', async (_name, alias, parmText, env, exitCode, message) => {
    await writeFile(envfile, 'SITE_TAG=x\n');
    const options = 'JOBBOX_CONFIG' in env ? { alias, config: undefined } : { alias, config };
    await writeFile(parm, parmText);
    const base = { LSB_SUB_PARM_FILE: parm, LSB_SUB_MODIFY_ENVFILE: envfile };
    await expect(esub(options, { ...base, ...env })).rejects.toThrow(expect.objectContaining({ message, exitCode }));
    expect(await written()).toBe('SITE_TAG=x\n');
  });

  it('rejects when the parm file named cannot be read', async () => {
    await expect(esub({ alias: 'deb12', config }, { LSB_SUB_PARM_FILE: join(dir, 'gone') })).rejects.toThrow(
      expect.objectContaining({ message: `jobbox: LSB_SUB_PARM_FILE: cannot read the file (ENOENT): ${dir}/gone`, exitCode: 97 }),
    );
  });
});

describe('esub pins at submit', () => {
  const D1 = `sha256:${'1'.repeat(64)}`;
  let reg: FakeRegistry;
  let pinConf: { dir: string; file: string };
  beforeAll(async () => {
    reg = await fakeRegistry();
    reg.manifests.set('hpc/deb12:r1', D1);
    reg.manifests.set('projects/x/app:1.2', D1);
    reg.manifests.set(`projects/x/app@${D1}`, D1);
    pinConf = await rootConfig(`[jobbox]
insecure_registries = ${reg.host}
[queue normal]
default_image = deb12
allowed_repos = ${reg.host}/projects/*
[queue pinned]
default_image = deb12
pin_at_submit = yes
[image deb12]
ref = ${reg.host}/hpc/deb12:r1
`);
  });
  afterAll(async () => {
    await reg.close();
    await rm(pinConf.dir, { recursive: true, force: true });
  });
  const pin = (alias: string | undefined, parmText: string) =>
    writeFile(parm, parmText).then(() => esub({ alias, config: pinConf.file }, { LSB_SUB_PARM_FILE: parm, LSB_SUB_MODIFY_ENVFILE: envfile }));

  it.each([
    ['a queue that pins: the alias asked for', 'deb12', 'LSB_SUB_QUEUE="pinned"\n', `JOBBOX_IMAGE=deb12@${D1}\n${BLANKS}`],
    ['a queue that pins: the default, asked for by no -a (master esub)', undefined, 'LSB_SUB_QUEUE="pinned"\n', `JOBBOX_IMAGE=deb12@${D1}\n${BLANKS}`],
    ['a queue that does not: the alias alone', 'deb12', 'LSB_SUB_QUEUE="normal"\n', `JOBBOX_IMAGE=deb12\n${BLANKS}`],
    ['a user image, always', undefined, `LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker(HOST/projects/x/app:1.2)"\n`, `JOBBOX_IMAGE=HOST/projects/x/app:1.2@${D1}\n${BLANKS}`],
    ['a user image with its digest, once the registry confirms it', undefined, `LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker(HOST/projects/x/app@${D1})"\n`, `JOBBOX_IMAGE=HOST/projects/x/app@${D1}\n${BLANKS}`],
  ])('%s', async (_case, alias, parmText, lines) => {
    await pin(alias, parmText.replaceAll('HOST', reg.host));
    expect(await written()).toBe(lines.replaceAll('HOST', reg.host));
  });

  it.each([
    ['a user image whose tag the registry lacks', `LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker(HOST/projects/x/app:9)"\n`, 'jobbox: registry HOST: has no such tag or repository: HOST/projects/x/app:9'],
    ['a user image outside allowed_repos, before any registry request', `LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker(HOST/hpc/deb12:r1)"\n`, 'jobbox: image: repository not allowed in queue normal (allowed: deb12; repositories: HOST/projects/*); use -a docker-deb12: HOST/hpc/deb12:r1'],
    ['a user image in a queue that allows none, naming the one that does', `LSB_SUB_QUEUE="pinned"\nLSB_SUB_ADDITIONAL="docker(HOST/projects/x/app:1.2)"\n`, 'jobbox: image: repository not allowed in queue pinned (allowed: deb12); use -q normal, or -a docker-deb12: HOST/projects/x/app:1.2'],
  ])('rejects %s', async (_case, parmText, message) => {
    const before = reg.seen.length;
    await expect(pin(undefined, parmText.replaceAll('HOST', reg.host))).rejects.toThrow(expect.objectContaining({ message: message.replaceAll('HOST', reg.host), exitCode: 97 }));
    expect(await written()).toBe('(none)');
    if (message.includes('not allowed')) expect(reg.seen.length).toBe(before);
  });
});
