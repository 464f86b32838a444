// The bad-input catalogue: every input a user, a scheduler variable or a planted file can get
// wrong, fed through the code path that really reads it (the esub, the pre-exec, the Slurm
// adapter, the job-dir writer, the port allocator). Each case must end in one line shaped
// `jobbox: <subject>: <problem>: <value>` with the exit code its caller needs, and must leave
// the port dir, the state dir and the esub's envfile exactly as they were.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { chmod, chown, lstat, mkdtemp, open, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_PARENT } from '../helpers/config-file.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { esub } from '../../src/commands/lsf/esub.js';
import { preExec } from '../../src/commands/lsf/pre-exec.js';
import { resolveImage } from '../../src/config/image.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { JobboxError, formatError } from '../../src/errors.js';
import { lookupAccount } from '../../src/exec/accounts.js';
import { makeJobDir, removeJobDir, writeJobFile } from '../../src/exec/jobdir.js';
import { lsfJob } from '../../src/scheduler/lsf.js';
import { slurmJob } from '../../src/scheduler/slurm.js';
import { planJob } from '../../src/plan/job.js';
import { allocatePort, claimedPort, releasePort } from '../../src/ports/allocator.js';
import { jobPaths } from '../../src/plan/job-files.js';

type Env = Record<string, string | undefined>;
type Act = () => Promise<unknown>;

const asRoot = process.getuid?.() === 0;
const me = hostname();
const HOST_RULE = '^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$';
const ALLOWED = 'allowed: deb12 deb12-mpich';
const NO_ALIAS = `no such image alias, only aliases are accepted (${ALLOWED})`;
const CONTROL = 'must not contain whitespace or control characters';
const META = 'must not contain shell metacharacters';
const SHAPE = /^jobbox: [^\n]+?: [^\n]+: [^\n]*$/;
// C0, DEL, C1 and the Unicode line separators: none may reach a terminal or a log line raw.
const RAW_CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
// A file root must never write through to; created here, removed in afterAll. Only the root
// cases plant links to it; a normal user may not write in /etc.
const VICTIM = `${asRoot ? '/etc' : tmpdir()}/jobbox-catalogue-victim-${process.pid}`;

// Everything lives under one directory, root-owned in /run as root: loadConfig refuses /tmp by design.
let ROOT = '';
let CONF = '';
let SANDBOX = '';
let PORTS = '';
let JOBS = '';
let ENVFILE = '';
let PARM = '';
let config: Config;
const cleanups: string[] = [];

const configText = (root: string) => `[jobbox]
port_range = 30000-30009
port_dir = ${root}/sandbox/ports
state_dir = ${root}/sandbox/jobs
log_file = ${root}/log/jobbox.log
ssh_key = ${root}/no-such-key
connect_timeout = 1
start_timeout = 1
[queue normal]
default_image = deb12
allowed_images = deb12 deb12-mpich
[queue short]
default_image = deb12-mpich
[image deb12]
ref = 10.78.0.1:5000/deb12:r1
[image deb12-mpich]
ref = 10.78.0.1:5000/deb12-mpich:r1
`;

beforeAll(async () => {
  ROOT = await mkdtemp(join(TEST_PARENT, 'jobbox-catalogue-'));
  CONF = join(ROOT, 'jobbox.ini');
  await writeFile(CONF, configText(ROOT), { mode: 0o644 });
  SANDBOX = join(ROOT, 'sandbox');
  PORTS = join(SANDBOX, 'ports');
  JOBS = join(SANDBOX, 'jobs');
  ENVFILE = join(SANDBOX, 'envfile');
  PARM = join(ROOT, 'parm');
  // Another job's claim and job dir, so "unchanged" has something to compare.
  mkdirSync(PORTS, { recursive: true, mode: 0o755 });
  mkdirSync(join(JOBS, '1.0.other'), { recursive: true, mode: 0o755 });
  writeFileSync(join(PORTS, 'port.30000'), '');
  mkdirSync(join(PORTS, 'claims'), { mode: 0o755 });
  linkSync(join(PORTS, 'port.30000'), join(PORTS, 'claims', 'claim.1.0.other.30000'));
  writeFileSync(join(JOBS, '1.0.other', 'hostfile'), 'other slots=1\n');
  writeFileSync(ENVFILE, '');
  writeFileSync(VICTIM, 'victim: root must never write here\n', { mode: 0o644 });
  config = await loadConfig(CONF);
});
afterAll(async () => {
  await rm(VICTIM, { force: true });
  for (const dir of [ROOT, ...cleanups]) if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every entry under the paths, never followed: type, mode, owner, links, size, times, content. */
async function snapshot(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  async function walk(path: string): Promise<void> {
    const st = await lstat(path).catch(() => undefined);
    if (!st) {
      out.push(`${path} absent`);
      return;
    }
    let what = '';
    if (st.isSymbolicLink()) what = `-> ${await readlink(path)}`;
    else if (st.isFile()) what = createHash('sha256').update(await readFile(path)).digest('hex');
    out.push(`${path} ${st.mode.toString(8)} ${st.uid}:${st.gid} n${st.nlink} ${st.size} m${st.mtimeMs} c${st.ctimeMs} ${what}`);
    if (st.isDirectory()) for (const name of (await readdir(path)).sort()) await walk(join(path, name));
  }
  for (const path of paths) await walk(path);
  return out;
}

/** The act must fail with exactly this line and code, and change nothing it was watched on. */
async function refused(act: Act, message: string | RegExp, exitCode: number, watch: string[] = [SANDBOX, VICTIM]): Promise<void> {
  const before = await snapshot(watch);
  const err = await act().then(() => 'the input was accepted', (e: unknown) => e);
  expect(err, `not a JobboxError: ${formatError(err).line} (exit ${formatError(err).exitCode})`).toBeInstanceOf(JobboxError);
  const { line, exitCode: code } = formatError(err);
  if (typeof message === 'string') expect(line).toBe(message);
  else expect(line).toMatch(message);
  expect(line).toMatch(SHAPE);
  expect(line, 'raw control characters in the error line').not.toMatch(RAW_CONTROL);
  expect(code).toBe(exitCode);
  expect(await snapshot(watch), 'something changed although the input was refused').toEqual(before);
  if (watch.includes(SANDBOX)) expect(readFileSync(ENVFILE, 'utf8')).toBe('');
}

// ---- the routes ----

const LSF: Env = {
  LSB_JOBID: '4242',
  LSB_QUEUE: 'normal',
  LSB_HOSTS: `${me} ${me}`,
  LSB_MCPU_HOSTS: `${me} 2 `,
  LSB_JOB_EXECUSER: 'nobody',
  JOBBOX_IMAGE: 'deb12',
  OMP_NUM_THREADS: '4',
};
// Job-data cases ask for an image no config has: should a bad job variable slip through the
// adapter, resolveImage stops the pre-exec with a message naming this canary, before anything starts.
const CANARY = { JOBBOX_IMAGE: 'canary-if-accepted' };
const lsf = (vars: Env): Env => ({ ...LSF, ...vars });
/** The real pre-exec (not a dry run): config, LSF adapter, real account lookup, image resolution. */
const preExecWith = (vars: Env, cli: string | undefined): Act => () => preExec(cli, false, lsf(vars) as NodeJS.ProcessEnv);
const preExecJob = (vars: Env): Act => preExecWith({ ...CANARY, ...vars }, CONF);

/** The per-alias esub (`esub.docker-<alias>`, LSF 10's mesub), or the master esub when alias is undefined. */
function esubWith(alias: string | undefined, parm: string): Act {
  return async () => {
    await writeFile(PARM, parm);
    return esub({ alias, config: CONF }, { LSB_SUB_PARM_FILE: PARM, LSB_SUB_MODIFY_ENVFILE: ENVFILE });
  };
}

const SLURM: Env = {
  SLURM_JOB_ID: '77',
  SLURM_JOB_PARTITION: 'normal',
  SLURM_NODELIST: 'node1',
  SLURM_JOB_USER: 'nobody',
  SLURM_JOB_UID: '65534',
  SLURM_JOB_CONSTRAINTS: 'docker-deb12',
};
/** The Prolog's view of the job, then the image through the root-owned config (the Prolog itself would scancel). */
const prologWith = (vars: Env): Act => async () => {
  const job = await slurmJob({ ...SLURM, ...vars }, 'prolog', lookupAccount);
  return resolveImage(config, job.queue, job.image);
};

describe('controls: the baselines the cases spoil are accepted', () => {
  it('esub writes the alias for a good request', async () => {
    const envfile = join(ROOT, 'control-envfile');
    await writeFile(PARM, 'LSB_SUB_QUEUE="normal"\n');
    await esub({ alias: 'deb12', config: CONF }, { LSB_SUB_PARM_FILE: PARM, LSB_SUB_MODIFY_ENVFILE: envfile });
    expect(await readFile(envfile, 'utf8')).toMatch(/^JOBBOX_IMAGE=deb12\nLD_PRELOAD=\n/);
  });

  it('the LSF job resolves to the image (the pre-exec up to its first action)', async () => {
    const job = await lsfJob(LSF, me, lookupAccount);
    expect(job.hosts).toEqual([{ name: me, slots: 2 }]);
    expect(resolveImage(config, job.queue, job.image).ref).toBe('10.78.0.1:5000/deb12:r1');
  });

  it('the Slurm job resolves to the image', async () => {
    await expect(prologWith({})()).resolves.toMatchObject({ alias: 'deb12' });
  });
});

// ---- image requests: at submit (esub, 97) and again at pre-exec (99) ----

// [case, requested alias, queue, problem, value as printed]
const IMAGES: [string, string, string, string, string][] = [
  ['empty', '', 'normal', 'must not be empty', ''],
  ['leading "-"', '-x', 'normal', 'must not start with "-"', '-x'],
  ['--privileged', '--privileged', 'normal', 'must not start with "-"', '--privileged'],
  ['a space', 'deb12 x', 'normal', CONTROL, 'deb12 x'],
  ['a tab', 'deb12\tx', 'normal', CONTROL, 'deb12\\tx'],
  ['a newline', 'deb12\nJOBBOX_IMAGE=x', 'normal', CONTROL, 'deb12\\nJOBBOX_IMAGE=x'],
  ['a NUL', 'deb12\0', 'normal', CONTROL, 'deb12\\u0000'],
  ['an escape sequence', 'deb12\x1b[2J', 'normal', CONTROL, 'deb12\\u001b[2J'],
  ['a DEL', 'deb12\x7f', 'normal', CONTROL, 'deb12\\u007f'],
  ['a C1 CSI (U+009B)', 'deb12\u009b2J', 'normal', NO_ALIAS, 'deb12\\u009b2J'],
  ['$(…)', '$(id)', 'normal', META, '$(id)'],
  ['backticks', '`id`', 'normal', META, '`id`'],
  ['";"', 'deb12;id', 'normal', META, 'deb12;id'],
  ['"|"', 'deb12|id', 'normal', META, 'deb12|id'],
  ['"&"', 'deb12&id', 'normal', META, 'deb12&id'],
  ['">"', 'deb12>x', 'normal', META, 'deb12>x'],
  ['a quote', "deb12'", 'normal', META, "deb12'"],
  ['4 KB long', 'a'.repeat(4096), 'normal', 'longer than 64 characters', `${'a'.repeat(200)}… (4096 chars)`],
  ['an unqualified public name', 'centos:7', 'normal', NO_ALIAS, 'centos:7'],
  ['a full ref from the allow-list given as the alias', '10.78.0.1:5000/deb12:r1', 'normal', NO_ALIAS, '10.78.0.1:5000/deb12:r1'],
  ['a path', '../deb12', 'normal', NO_ALIAS, '../deb12'],
  ['another case', 'DEB12', 'normal', NO_ALIAS, 'DEB12'],
  ['a homoglyph (Cyrillic е)', 'd\u0435b12', 'normal', NO_ALIAS, 'd\u0435b12'],
  ['__proto__', '__proto__', 'normal', NO_ALIAS, '__proto__'],
  ['an alias the queue does not allow', 'deb12', 'short', 'not allowed in queue short (allowed: deb12-mpich)', 'deb12'],
];

describe('image requests at submit: the esub exits 97 and leaves the envfile empty', () => {
  it.each(IMAGES)('%s', (_case, alias, queue, problem, shown) =>
    refused(esubWith(alias, `LSB_SUB_QUEUE="${queue}"\n`), `jobbox: image: ${problem}: ${shown}`, 97));

  it.each<[string, string, string]>([
    ['master esub: docker--privileged', 'LSB_SUB_ADDITIONAL="docker--privileged"\n', 'jobbox: image: must not start with "-": -privileged'],
    ['master esub: docker-$(id)', 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker-$(id)"\n', `jobbox: image: ${META}: $(id)`],
    ['master esub: docker-centos:7', 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker-centos:7"\n', `jobbox: image: ${NO_ALIAS}: centos:7`],
    ['master esub: two images', 'LSB_SUB_ADDITIONAL="docker-deb12 docker-deb12-mpich"\n', 'jobbox: bsub -a: names more than one docker- application, give one image: docker-deb12 docker-deb12-mpich'],
    ['master esub: an unknown queue', 'LSB_SUB_QUEUE="../x"\nLSB_SUB_ADDITIONAL="docker-deb12"\n', 'jobbox: queue: no such [queue] section in the config (defined: normal short): ../x'],
  ])('%s', (_case, parm, message) => refused(esubWith(undefined, parm), message, 97));
});

describe('image requests at pre-exec (a forged JOBBOX_IMAGE): exit 99, nothing claimed or written', () => {
  // An empty JOBBOX_IMAGE is no request at all: the queue default applies (README, esub).
  it.each(IMAGES.filter(([, alias]) => alias !== ''))('%s', (_case, alias, queue, problem, shown) =>
    refused(preExecWith({ JOBBOX_IMAGE: alias, LSB_QUEUE: queue }, CONF), `jobbox: image: ${problem}: ${shown}`, 99));

  it.each<[string, Env, string]>([
    ['Slurm constraint docker-centos:7', { SLURM_JOB_CONSTRAINTS: 'docker-centos:7' }, `jobbox: image: ${NO_ALIAS}: centos:7`],
    ['Slurm constraint docker--privileged', { SLURM_JOB_CONSTRAINTS: 'docker--privileged' }, 'jobbox: image: must not start with "-": -privileged'],
    ['Slurm constraint with two images', { SLURM_JOB_CONSTRAINTS: 'docker-deb12&docker-deb12-mpich' }, 'jobbox: constraint: names more than one image: docker-deb12&docker-deb12-mpich'],
    ['Slurm alias the partition does not allow', { SLURM_JOB_PARTITION: 'short' }, 'jobbox: image: not allowed in queue short (allowed: deb12-mpich): deb12'],
  ])('%s', (_case, vars, message) => refused(prologWith(vars), message, 99));
});

// ---- host lists ----

describe('host lists: refused before anything starts (99)', () => {
  it.each<[string, Env, string]>([
    ['LSB_MCPU_HOSTS odd word count', { LSB_MCPU_HOSTS: `${me} 2 ${me}` }, `jobbox: LSB_MCPU_HOSTS: must be pairs of "host count": ${me} 2 ${me}`],
    ['LSB_MCPU_HOSTS zero count', { LSB_MCPU_HOSTS: `${me} 0`, LSB_HOSTS: undefined }, 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: 0'],
    ['LSB_MCPU_HOSTS negative count', { LSB_MCPU_HOSTS: `${me} -2`, LSB_HOSTS: undefined }, 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: -2'],
    ['LSB_MCPU_HOSTS non-numeric count', { LSB_MCPU_HOSTS: `${me} two` }, 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: two'],
    ['LSB_MCPU_HOSTS count 1e3', { LSB_MCPU_HOSTS: `${me} 1e3` }, 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: 1e3'],
    ['LSB_MCPU_HOSTS count 2.5', { LSB_MCPU_HOSTS: `${me} 2.5` }, 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: 2.5'],
    ['LSB_MCPU_HOSTS count 0x10', { LSB_MCPU_HOSTS: `${me} 0x10` }, 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: 0x10'],
    ['LSB_MCPU_HOSTS huge count', { LSB_MCPU_HOSTS: `${me} 99999999` }, 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: 99999999'],
    ['no host list at all', { LSB_MCPU_HOSTS: ' ', LSB_HOSTS: '' }, 'jobbox: LSB_MCPU_HOSTS: is not set, nor is LSB_HOSTS: '],
    ['this host not in the job', { LSB_HOSTS: 'h1 h2', LSB_MCPU_HOSTS: 'h2 1 h1 1' }, `jobbox: job hosts: do not include this host (h1 h2): ${me}`],
    ['LSB_HOSTS disagrees with LSB_MCPU_HOSTS', { LSB_HOSTS: me }, `jobbox: LSB_HOSTS: disagrees with LSB_MCPU_HOSTS "${me} 2": ${me}`],
    ['LSB_HOSTS -oProxyCommand=x', { LSB_HOSTS: `${me} -oProxyCommand=x` }, `jobbox: LSB_HOSTS: host names must match ${HOST_RULE}: -oProxyCommand=x`],
    ['LSB_HOSTS a;b', { LSB_HOSTS: `${me} a;b` }, `jobbox: LSB_HOSTS: host names must match ${HOST_RULE}: a;b`],
    ['LSB_HOSTS $(id)', { LSB_HOSTS: `${me} $(id)` }, `jobbox: LSB_HOSTS: host names must match ${HOST_RULE}: $(id)`],
    ['LSB_HOSTS backticks', { LSB_HOSTS: `${me} a\`id\`` }, `jobbox: LSB_HOSTS: host names must match ${HOST_RULE}: a\`id\``],
    ['LSB_HOSTS user@host', { LSB_HOSTS: `${me} root@h1` }, `jobbox: LSB_HOSTS: host names must match ${HOST_RULE}: root@h1`],
    ['LSB_HOSTS host:port', { LSB_HOSTS: `${me} h1:22` }, `jobbox: LSB_HOSTS: host names must match ${HOST_RULE}: h1:22`],
    ['LSB_MCPU_HOSTS -oProxyCommand=x', { LSB_MCPU_HOSTS: `${me} 1 -oProxyCommand=x 1` }, `jobbox: LSB_MCPU_HOSTS: host names must match ${HOST_RULE}: -oProxyCommand=x`],
    ['LSB_MCPU_HOSTS a;b', { LSB_MCPU_HOSTS: `${me} 1 a;b 1` }, `jobbox: LSB_MCPU_HOSTS: host names must match ${HOST_RULE}: a;b`],
    ['LSB_MCPU_HOSTS $(id)', { LSB_MCPU_HOSTS: `${me} 1 $(id) 1` }, `jobbox: LSB_MCPU_HOSTS: host names must match ${HOST_RULE}: $(id)`],
    ['a 255-character host name', { LSB_HOSTS: `${me} ${'h'.repeat(255)}`, LSB_MCPU_HOSTS: undefined }, `jobbox: LSB_HOSTS: host names must match ${HOST_RULE}: ${'h'.repeat(200)}… (255 chars)`],
    ['two hosts with this short name', { LSB_HOSTS: `${me}.a ${me}.b`, LSB_MCPU_HOSTS: undefined }, `jobbox: job hosts: include several hosts with this short name: ${me}`],
  ])('LSF: %s', (_case, vars, message) => refused(preExecJob(vars), message, 99));

  it.each<[string, Env, string]>([
    ['n[5-2] runs backwards', { SLURM_NODELIST: 'n[5-2]' }, 'jobbox: SLURM_NODELIST: bracket ranges must not run backwards: 5-2'],
    ['n[1- is unterminated', { SLURM_NODELIST: 'n[1-' }, 'jobbox: SLURM_NODELIST: has unbalanced or nested brackets: n[1-'],
    ['n[a-b] is not decimal', { SLURM_NODELIST: 'n[a-b]' }, 'jobbox: SLURM_NODELIST: bracket ranges must be N or N-M with decimal N and M: a-b'],
    ['n[] is empty', { SLURM_NODELIST: 'n[]' }, 'jobbox: SLURM_NODELIST: bracket ranges must be N or N-M with decimal N and M: '],
    ['n[1-2]] closes twice', { SLURM_NODELIST: 'n[1-2]]' }, 'jobbox: SLURM_NODELIST: has unbalanced or nested brackets: n[1-2]]'],
    ['n[[1]] nests', { SLURM_NODELIST: 'n[[1]]' }, 'jobbox: SLURM_NODELIST: has unbalanced or nested brackets: n[[1]]'],
    ['n1,,n2 has an empty name', { SLURM_NODELIST: 'n1,,n2' }, 'jobbox: SLURM_NODELIST: has an empty host name: n1,,n2'],
    ['n[1-3],n2 repeats a host', { SLURM_NODELIST: 'n[1-3],n2' }, 'jobbox: SLURM_NODELIST: names a host twice: n2'],
    ['n[0-999999999] is huge', { SLURM_NODELIST: 'n[0-999999999]' }, 'jobbox: SLURM_NODELIST: expands to more than 100000 hosts: n[0-999999999]'],
    ['-oProxyCommand=x', { SLURM_NODELIST: '-oProxyCommand=x' }, `jobbox: SLURM_NODELIST: host names must match ${HOST_RULE}: -oProxyCommand=x`],
    ['a;b', { SLURM_NODELIST: 'a;b' }, `jobbox: SLURM_NODELIST: host names must match ${HOST_RULE}: a;b`],
    ['$(id)', { SLURM_NODELIST: '$(id)' }, `jobbox: SLURM_NODELIST: host names must match ${HOST_RULE}: $(id)`],
    ['"a b"', { SLURM_NODELIST: 'a b' }, `jobbox: SLURM_NODELIST: host names must match ${HOST_RULE}: a b`],
    ['a metacharacter after a range', { SLURM_NODELIST: 'n[1-2]x;y' }, `jobbox: SLURM_NODELIST: host names must match ${HOST_RULE}: n1x;y`],
    ['SLURM_JOB_NODELIST wins and is checked', { SLURM_JOB_NODELIST: 'a;b' }, `jobbox: SLURM_JOB_NODELIST: host names must match ${HOST_RULE}: a;b`],
    ['cpus per node 0', { SLURM_JOB_CPUS_PER_NODE: '0' }, 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: 0'],
    ['cpus per node 2(x0)', { SLURM_JOB_CPUS_PER_NODE: '2(x0)' }, 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: 2(x0)'],
    ['cpus per node -1', { SLURM_JOB_CPUS_PER_NODE: '-1' }, 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: -1'],
    ['more counts than hosts', { SLURM_JOB_CPUS_PER_NODE: '2,2' }, 'jobbox: SLURM_JOB_CPUS_PER_NODE: must have one count per host of SLURM_NODELIST (1), not 2: 2,2'],
  ])('Slurm: %s', (_case, vars, message) => refused(prologWith(vars), message, 99));
});

// ---- ids ----

describe('ids that are not decimal numbers (99)', () => {
  it.each<[string, Env, string]>([
    ['LSB_JOBID 12a', { LSB_JOBID: '12a' }, 'jobbox: LSB_JOBID: must be a decimal job id: 12a'],
    ['LSB_JOBID -1', { LSB_JOBID: '-1' }, 'jobbox: LSB_JOBID: must be a decimal job id: -1'],
    ['LSB_JOBID 1e3', { LSB_JOBID: '1e3' }, 'jobbox: LSB_JOBID: must be a decimal job id: 1e3'],
    ['LSB_JOBID empty', { LSB_JOBID: '' }, 'jobbox: LSB_JOBID: is not set (not running under LSF?): '],
    ['LSB_JOBID with a newline', { LSB_JOBID: '7\n' }, 'jobbox: LSB_JOBID: must be a decimal job id: 7\\n'],
    ['LSB_JOBID with a space', { LSB_JOBID: ' 7' }, 'jobbox: LSB_JOBID: must be a decimal job id:  7'],
    ['LSB_JOBID 21 digits', { LSB_JOBID: '1'.repeat(21) }, `jobbox: LSB_JOBID: must be a decimal job id: ${'1'.repeat(21)}`],
    ['LSB_JOBINDEX 12a', { LSB_JOBINDEX: '12a' }, 'jobbox: LSB_JOBINDEX: must be a decimal array index: 12a'],
    ['LSB_JOBINDEX -1', { LSB_JOBINDEX: '-1' }, 'jobbox: LSB_JOBINDEX: must be a decimal array index: -1'],
    ['LSB_JOBINDEX 1e3', { LSB_JOBINDEX: '1e3' }, 'jobbox: LSB_JOBINDEX: must be a decimal array index: 1e3'],
    ['LSB_JOBINDEX 1;id', { LSB_JOBINDEX: '1;id' }, 'jobbox: LSB_JOBINDEX: must be a decimal array index: 1;id'],
    ['LSB_QUEUE ../x', { LSB_QUEUE: '../x' }, 'jobbox: LSB_QUEUE: must match ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$: ../x'],
    ['LSB_QUEUE unknown to the config', { LSB_QUEUE: 'gpu' }, 'jobbox: queue: no such [queue] section in the config (defined: normal short): gpu'],
  ])('LSF: %s', (_case, vars, message) => refused(preExecJob(vars), message, 99));

  it.each<[string, Env, string]>([
    ['SLURM_JOB_ID 12a', { SLURM_JOB_ID: '12a' }, 'jobbox: SLURM_JOB_ID: must be a decimal job id: 12a'],
    ['SLURM_JOB_ID -1', { SLURM_JOB_ID: '-1' }, 'jobbox: SLURM_JOB_ID: must be a decimal job id: -1'],
    ['SLURM_JOB_ID 1e3', { SLURM_JOB_ID: '1e3' }, 'jobbox: SLURM_JOB_ID: must be a decimal job id: 1e3'],
    ['SLURM_JOB_ID empty', { SLURM_JOB_ID: '' }, 'jobbox: SLURM_JOB_ID: is not set (not running under Slurm?): '],
    ['SLURM_JOB_RESTART_COUNT 12a', { SLURM_JOB_RESTART_COUNT: '12a' }, 'jobbox: SLURM_JOB_RESTART_COUNT: must be a decimal restart count: 12a'],
    ['SLURM_JOB_RESTART_COUNT -1', { SLURM_JOB_RESTART_COUNT: '-1' }, 'jobbox: SLURM_JOB_RESTART_COUNT: must be a decimal restart count: -1'],
    ['SLURM_JOB_RESTART_COUNT 1e3', { SLURM_JOB_RESTART_COUNT: '1e3' }, 'jobbox: SLURM_JOB_RESTART_COUNT: must be a decimal restart count: 1e3'],
    ['SLURM_JOB_PARTITION ../x', { SLURM_JOB_PARTITION: '../x' }, 'jobbox: SLURM_JOB_PARTITION: must match ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$: ../x'],
  ])('Slurm: %s', (_case, vars, message) => refused(prologWith(vars), message, 99));
});

// ---- users ----

describe('job owners (real account lookup; 99)', () => {
  it.each<[string, Env, string]>([
    ['no passwd entry', { LSB_JOB_EXECUSER: 'nosuchuser' }, 'jobbox: user: no such account in the account database: nosuchuser'],
    ['uid 0', { LSB_JOB_EXECUSER: 'root' }, 'jobbox: LSB_JOB_EXECUSER: jobs owned by uid 0 are refused: root'],
    ['an ssh option as the name', { LSB_JOB_EXECUSER: '-oProxyCommand=x' }, 'jobbox: user: not a valid account name (^[a-z_][a-z0-9_.-]{0,31}\\$?$): -oProxyCommand=x'],
    ['a name with a newline', { LSB_JOB_EXECUSER: 'nobody\nroot' }, 'jobbox: user: not a valid account name (^[a-z_][a-z0-9_.-]{0,31}\\$?$): nobody\\nroot'],
    ['no LSB_JOB_EXECUSER, USER=root', { LSB_JOB_EXECUSER: undefined, USER: 'root' }, 'jobbox: LSB_JOB_EXECUSER: is not set (not running under LSF?): '],
  ])('LSF: %s', (_case, vars, message) => refused(preExecJob(vars), message, 99));

  it.each<[string, Env, string]>([
    ['no passwd entry', { SLURM_JOB_USER: 'nosuchuser' }, 'jobbox: user: no such account in the account database: nosuchuser'],
    ['uid 0', { SLURM_JOB_USER: 'root', SLURM_JOB_UID: '0' }, 'jobbox: SLURM_JOB_USER: jobs owned by uid 0 are refused: root'],
    ['SLURM_JOB_UID disagrees', { SLURM_JOB_UID: '0' }, 'jobbox: SLURM_JOB_UID: disagrees with SLURM_JOB_USER "nobody" (uid 65534 in the account database): 0'],
    ['SLURM_JOB_UID 12a', { SLURM_JOB_UID: '12a' }, 'jobbox: SLURM_JOB_UID: must be a decimal uid: 12a'],
    ['SLURM_JOB_UID missing in the Prolog', { SLURM_JOB_UID: undefined }, 'jobbox: SLURM_JOB_UID: is not set (not running under Slurm?): '],
  ])('Slurm: %s', (_case, vars, message) => refused(prologWith(vars), message, 99));
});

// ---- environment: what never reaches the container's env file ----

describe('environment: denied or unsafe user variables are dropped from the env file', () => {
  // Every bad value carries EVIL, so the env file is checked for any trace of it.
  it.each<[string, string, string | undefined]>([
    ['LD_PRELOAD', '/home/u/EVIL.so', undefined],
    ['LD_LIBRARY_PATH', '/home/u/EVIL', undefined],
    ['BASH_ENV', '/home/u/EVIL.rc', undefined],
    ['ENV', '/home/u/EVIL.rc', undefined],
    ['DOCKER_HOST', 'tcp://EVIL:2375', undefined],
    ['SSH_AUTH_SOCK', '/tmp/EVIL.sock', undefined],
    ['NODE_OPTIONS', '--require /home/u/EVIL.js', undefined],
    ['IFS', 'EVIL', undefined],
    ['PATH', '/home/u/EVIL:/usr/bin', undefined],
    ['PYTHONPATH', '/home/u/EVIL', undefined],
    ['BASH_FUNC_ls%%', '() { EVIL; }', undefined],
    ['__proto__', 'EVIL', undefined],
    ['VALUE_WITH_NEWLINE', 'ok\nLD_PRELOAD=/home/u/EVIL.so', undefined],
    ['VALUE_WITH_CR', 'ok\rEVIL', undefined],
    ['VALUE_WITH_NUL', 'ok\0EVIL', undefined],
    ['VALUE_OF_70000_CHARS', `EVIL${'x'.repeat(70_000)}`, undefined],
    ['NAME\nLD_PRELOAD', '/home/u/EVIL.so', undefined],
    ['A=B', 'EVIL', undefined],
    ['HOME', '/EVIL/home', 'HOME=/nonexistent'],
    ['USER', 'EVILroot', 'USER=nobody'],
    ['JOBBOX_HOSTFILE', '/home/u/EVIL.hosts', `JOBBOX_HOSTFILE={jobs}/4242.0.${me}/hostfile`],
  ])('%j', async (name, value, kept) => {
    const job = await lsfJob(lsf({ [name]: value }), me, lookupAccount);
    const image = resolveImage(config, job.queue, job.image);
    const paths = jobPaths(config.stateDir, job);
    const plan = planJob({
      config, job, image, port: 30001, paths,
      keys: { userKey: 'k', userKeyPub: 'ssh-ed25519 AAAA u', hostKey: 'k', hostKeyPub: 'ssh-ed25519 AAAA h' },
      accounts: { passwd: '', group: '' },
      groupNames: new Map(),
      facts: new Map(),
      nonce: '0123456789abcdef',
    });
    const content = plan.files.find((f) => f.path === paths.envFile)!.content;
    const exports = plan.files.find((f) => f.path === paths.userEnv)!.content;
    const lines = content.split('\n').filter(Boolean);
    expect(plan.dropped).toContain(name);
    expect(content).not.toContain('EVIL');
    expect(exports).not.toContain('EVIL');
    // The user's variables reach the starter's session only, never the container's own processes.
    expect(exports, 'a control variable must pass').toBe('export OMP_NUM_THREADS=4\n');
    expect(content).not.toContain('OMP_NUM_THREADS');
    for (const line of lines) expect(line).toMatch(/^[A-Za-z_][A-Za-z0-9_]*=[^\r\0]*$/);
    const keys = lines.map((l) => l.slice(0, l.indexOf('=')));
    expect(keys.filter((k) => /^(LD_|DOCKER_|SSH_|BASH_FUNC_)|^(BASH_ENV|ENV|IFS|NODE_OPTIONS|PATH)$/.test(k))).toEqual([]);
    if (kept === undefined) expect(keys).not.toContain(name);
    else expect(lines.filter((l) => l.startsWith(`${name}=`))).toEqual([kept.replace('{jobs}', config.stateDir)]);
  });
});

// ---- config ----

const MIN = '[queue normal]\ndefault_image = deb12\n[image deb12]\nref = 10.78.0.1:5000/deb12:r1\n';
const GLOBAL_KEYS = 'engine registry port_range port_dir state_dir log_file log_level ssh_user ssh_key ssh_known_hosts ssh_port connect_timeout start_timeout pull_timeout fanout device_dir default_queue';
const RANGE = 'must be first-last with 1024 <= first <= last <= 65535';
const PATH_RULE = 'must be an absolute path without "..", whitespace or control characters';
let configs = 0;

describe('config: strict parsing refuses the pre-exec (99)', () => {
  it.each<[string, string, string]>([
    ['unknown key in [jobbox]', `[jobbox]\nprivileged = true\n${MIN}`, `jobbox: config [jobbox]: unknown key (allowed: ${GLOBAL_KEYS}): privileged`],
    ['unknown key in [queue]', `${MIN}[queue short]\ndefault_image = deb12\ncap_add = SYS_ADMIN\n`, 'jobbox: config [queue short]: unknown key (allowed: default_image allowed_images mounts devices cpus memory shm_size memlock pids_limit): cap_add'],
    ['unknown key in [image]', `${MIN}[image x]\nref = 10.78.0.1:5000/x\nentrypoint = /bin/sh\n`, 'jobbox: config [image x]: unknown key (allowed: ref mounts env.NAME): entrypoint'],
    ['unknown section', `${MIN}[docker]\nprivileged = true\n`, 'jobbox: config {file}:5: section must be [jobbox], [queue NAME] (NAME ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$) or [image ALIAS] (ALIAS ^[a-z0-9][a-z0-9_-]{0,63}$): [docker]'],
    ['a key twice', `[jobbox]\nfanout = 4\nfanout = 8\n${MIN}`, 'jobbox: config {file}:3: key fanout appears twice in [jobbox]: fanout = 8'],
    ['a bare word line', `[jobbox]\nprivileged\n${MIN}`, 'jobbox: config {file}:2: line is neither "[section]" nor "key = value" (a section header must start the line): privileged'],
    ['empty port range', `[jobbox]\nport_range =\n${MIN}`, `jobbox: config [jobbox] port_range: ${RANGE}: `],
    ['inverted port range', `[jobbox]\nport_range = 31000-30000\n${MIN}`, `jobbox: config [jobbox] port_range: ${RANGE}: 31000-30000`],
    ['port range below 1024', `[jobbox]\nport_range = 80-90\n${MIN}`, `jobbox: config [jobbox] port_range: ${RANGE}: 80-90`],
    ['port range above 65535', `[jobbox]\nport_range = 30000-70000\n${MIN}`, `jobbox: config [jobbox] port_range: ${RANGE}: 30000-70000`],
    ['port range of one number', `[jobbox]\nport_range = 30000\n${MIN}`, `jobbox: config [jobbox] port_range: ${RANGE}: 30000`],
    ['log level', `[jobbox]\nlog_level = loud\n${MIN}`, 'jobbox: config [jobbox] log_level: must be one of fatal error warn info debug trace silent: loud'],
    ['fanout 0', `[jobbox]\nfanout = 0\n${MIN}`, 'jobbox: config [jobbox] fanout: must be an integer from 1 to 4096: 0'],
    ['ssh_port 70000', `[jobbox]\nssh_port = 70000\n${MIN}`, 'jobbox: config [jobbox] ssh_port: must be an integer from 1 to 65535: 70000'],
    ['negative timeout', `[jobbox]\nconnect_timeout = -1\n${MIN}`, 'jobbox: config [jobbox] connect_timeout: must be a positive number of seconds: -1'],
    ['engine with a flag', `[jobbox]\nengine = docker --privileged\n${MIN}`, 'jobbox: config [jobbox] engine: must be a command name or an absolute path of [A-Za-z0-9._/-]: docker --privileged'],
    ['relative state_dir', `[jobbox]\nstate_dir = jobs\n${MIN}`, `jobbox: config [jobbox] state_dir: ${PATH_RULE}: jobs`],
    ['port_dir with ..', `[jobbox]\nport_dir = /var/lib/../../tmp\n${MIN}`, `jobbox: config [jobbox] port_dir: ${PATH_RULE}: /var/lib/../../tmp`],
    ['a bare-word registry (the public hub)', `[jobbox]\nregistry = library\n${MIN}`, 'jobbox: config [jobbox] registry: must be empty or a registry host[:port] (lowercase; with a "." or a port, or "localhost"): library'],
    ['default_queue without a section', `[jobbox]\ndefault_queue = gpu\n${MIN}`, 'jobbox: config [jobbox] default_queue: must name a [queue] section (defined: normal): gpu'],
    ['memory', `[queue normal]\ndefault_image = deb12\nmemory = lots\n[image deb12]\nref = 10.78.0.1:5000/deb12:r1\n`, 'jobbox: config [queue normal] memory: must be "none", <size> or <size>/slot (size: digits with an optional k, m, g or t): lots'],
    ['no memory limit and memlock unlimited (all RAM lockable)', `[queue normal]\ndefault_image = deb12\nmemory = none\n[image deb12]\nref = 10.78.0.1:5000/deb12:r1\n`, 'jobbox: config [queue normal] memlock: must be a size when memory = none (unlimited means up to the memory limit): unlimited'],
    ['pids_limit unlimited (a fork bomb takes the node)', `[queue normal]\ndefault_image = deb12\npids_limit = unlimited\n[image deb12]\nref = 10.78.0.1:5000/deb12:r1\n`, 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: unlimited'],
    ['pids_limit -1 (docker\'s unlimited)', `[queue normal]\ndefault_image = deb12\npids_limit = -1\n[image deb12]\nref = 10.78.0.1:5000/deb12:r1\n`, 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: -1'],
    ['umad device', `[queue normal]\ndefault_image = deb12\ndevices = umad0\n[image deb12]\nref = 10.78.0.1:5000/deb12:r1\n`, 'jobbox: config [queue normal] devices: each must be "rdma_cm" or a glob of [A-Za-z0-9_*?-] starting with "uverbs": umad0'],
    ['mount with ..', `[queue normal]\ndefault_image = deb12\nmounts = /home:/root/../etc\n[image deb12]\nref = 10.78.0.1:5000/deb12:r1\n`, 'jobbox: config [queue normal] mounts: each must be src[:dst][:ro|:rw] with absolute normalized paths without "..", ",", ":", whitespace or control characters: /home:/root/../etc'],
    ['allowed image without a section', `[queue normal]\ndefault_image = deb12\nallowed_images = deb12 centos7\n[image deb12]\nref = 10.78.0.1:5000/deb12:r1\n`, 'jobbox: config [queue normal] allowed_images: each must name an [image] section (defined: deb12): centos7'],
    ['unqualified image ref', '[queue normal]\ndefault_image = deb12\n[image deb12]\nref = centos:7\n', 'jobbox: config [image deb12] ref: image ref is not qualified with a registry: centos:7'],
    ['image ref with a flag', '[queue normal]\ndefault_image = deb12\n[image deb12]\nref = --privileged\n', 'jobbox: config [image deb12] ref: not a valid image reference (lowercase [a-z0-9._:/@-], at most 255): --privileged'],
  ])('%s', async (_case, text, message) => {
    const file = join(ROOT, `bad-${++configs}.ini`);
    await writeFile(file, text, { mode: 0o644 });
    await refused(preExecWith(CANARY, file), message.replace('{file}', file), 99);
  });
});

/** Unblocks a pre-exec stuck opening a FIFO, and fails the case instead of hanging the suite. */
function withDeadline(act: Act, dir: string, ms = 3000): Act {
  return () => new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // Fail first: once unblocked, the pre-exec may well go on to the right refusal.
      reject(new Error(`hung for ${ms} ms opening the config`));
      void (async () => {
        for (const name of await readdir(dir)) {
          const path = join(dir, name);
          if ((await lstat(path)).isFIFO()) await open(path, constants.O_WRONLY | constants.O_NONBLOCK).then((fh) => fh.close(), () => {});
        }
      })();
    }, ms);
    act().then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

describe.skipIf(!asRoot)('as root: config: a file others could write or swap refuses the pre-exec', () => {
  // [case, prepare(dir, file) → the path the pre-exec is given (or undefined: JOBBOX_CONFIG), message, exit]
  it.each<[string, (dir: string, file: string) => Promise<{ cli?: string; env?: Env }>, string, number]>([
    ['group-writable', async (_d, f) => (await chmod(f, 0o664), { cli: f }), 'jobbox: config: file is writable by group or others (mode 0664): {file}', 99],
    ['world-writable', async (_d, f) => (await chmod(f, 0o646), { cli: f }), 'jobbox: config: file is writable by group or others (mode 0646): {file}', 99],
    ['not root-owned', async (_d, f) => (await chown(f, 65534, 65534), { cli: f }), 'jobbox: config: file is not owned by root (uid 65534): {file}', 99],
    ['in a group-writable directory', async (d, f) => (await chmod(d, 0o775), { cli: f }), 'jobbox: config: parent directory is writable by group or others (mode 0775): {dir}', 99],
    ['in a directory owned by a user', async (d, f) => (await chown(d, 65534, 65534), { cli: f }), 'jobbox: config: parent directory is not owned by root (uid 65534): {dir}', 99],
    ['a symlink into /tmp', async (d) => ({ cli: await tmpConfig(d, 0) }), 'jobbox: config: parent directory is writable by group or others (mode 1777): /tmp', 99],
    // A root hook's environment is the job's: JOBBOX_CONFIG is never read, whatever it names.
    ['JOBBOX_CONFIG naming a user\'s file (ignored)', async (d) => ({ env: { JOBBOX_CONFIG: await tmpConfig(d, 65534) } }), 'jobbox: config: cannot read the file (ENOENT): /etc/jobbox/jobbox.ini', 99],
    ['a directory', async (d) => ({ cli: d }), 'jobbox: config: not a regular file: {dir}', 99],
    ['a FIFO', async (d) => (execFileSync('mkfifo', ['-m', '0644', '--', join(d, 'fifo.ini')]), { cli: join(d, 'fifo.ini') }), 'jobbox: config: not a regular file: {dir}/fifo.ini', 99],
    ['JOBBOX_CONFIG naming a FIFO (ignored)', async (d) => (execFileSync('mkfifo', ['-m', '0644', '--', join(d, 'fifo.ini')]), { env: { JOBBOX_CONFIG: join(d, 'fifo.ini') } }), 'jobbox: config: cannot read the file (ENOENT): /etc/jobbox/jobbox.ini', 99],
    ['missing', async (d) => ({ cli: join(d, 'missing.ini') }), 'jobbox: config: cannot read the file (ENOENT): {dir}/missing.ini', 99],
    ['--config ""', async () => ({ cli: '' }), 'jobbox: --config: must name a file: ', 2],
  ])('%s', async (_case, prepare, message, exitCode) => {
    const dir = await mkdtemp(join(ROOT, 'cfg-'));
    const file = join(dir, 'jobbox.ini');
    await writeFile(file, configText(ROOT), { mode: 0o644 });
    const { cli, env = {} } = await prepare(dir, file);
    const expected = message.replace('{file}', file).replace('{dir}', dir);
    await refused(withDeadline(preExecWith({ ...CANARY, ...env }, cli), dir), expected, exitCode);
  });
});

/** A valid config in a fresh /tmp dir (as a user would place one), linked from dir as link.ini. */
async function tmpConfig(dir: string, uid: number): Promise<string> {
  const tmp = mkdtempSync(join(tmpdir(), 'jobbox-catalogue-'));
  cleanups.push(tmp);
  const file = join(tmp, 'jobbox.ini');
  writeFileSync(file, configText(ROOT), { mode: 0o644 });
  chownSync(file, uid, uid);
  await symlink(file, join(dir, 'link.ini'));
  return uid === 0 ? join(dir, 'link.ini') : file;
}

// ---- planted files ----

const RANGE4 = { first: 30000, last: 30003 };
const CLAIM = '5.0.h';

describe.skipIf(!asRoot)('as root: planted files where jobbox writes: refused, the target untouched', () => {
  // [case, plant(d), act(d), message with {d}, exit]: d is a fresh root-owned dir; d and VICTIM are watched.
  it.each<[string, (d: string) => void, (d: string) => Promise<unknown>, string, number]>([
    ['job dir is a symlink to another dir', (d) => (plantOther(d), mkdirSync(join(d, 'jobs')), symlinkSync(join(d, 'other'), join(d, 'jobs', '1.0.h'))), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: is not a directory (a symlink or file was planted?): {d}/jobs/1.0.h', 99],
    ['job dir is a symlink to a victim file', (d) => (mkdirSync(join(d, 'jobs')), symlinkSync(VICTIM, join(d, 'jobs', '1.0.h'))), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: is not a directory (a symlink or file was planted?): {d}/jobs/1.0.h', 99],
    ['job dir is a regular file', (d) => (mkdirSync(join(d, 'jobs')), writeFileSync(join(d, 'jobs', '1.0.h'), 'x')), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: is not a directory (a symlink or file was planted?): {d}/jobs/1.0.h', 99],
    ['job dir pre-made by a user', (d) => (mkdirSync(join(d, 'jobs', '1.0.h'), { recursive: true }), chownSync(join(d, 'jobs', '1.0.h'), 65534, 65534)), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: must be owned by root and not writable by group or others: {d}/jobs/1.0.h', 99],
    ['job dir world-writable', (d) => (mkdirSync(join(d, 'jobs', '1.0.h'), { recursive: true }), chmodSync(join(d, 'jobs', '1.0.h'), 0o777)), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: must be owned by root and not writable by group or others: {d}/jobs/1.0.h', 99],
    ['state_dir is a symlink to another dir', (d) => (plantOther(d), symlinkSync(join(d, 'other'), join(d, 'jobs'))), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: is not a directory (a symlink or file was planted?): {d}/jobs', 99],
    ['state_dir is a dangling symlink', (d) => symlinkSync(join(d, 'nowhere'), join(d, 'jobs')), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: is not a directory (a symlink or file was planted?): {d}/jobs', 99],
    ['state_dir is a regular file', (d) => writeFileSync(join(d, 'jobs'), 'x'), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: is not a directory (a symlink or file was planted?): {d}/jobs', 99],
    ['state_dir group-writable', (d) => (mkdirSync(join(d, 'jobs')), chmodSync(join(d, 'jobs'), 0o775)), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: must be owned by root and not writable by group or others: {d}/jobs', 99],
    ['port dir is a symlink to another dir', (d) => (plantOther(d), symlinkSync(join(d, 'other'), join(d, 'ports'))), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports', 99],
    ['port dir is a symlink, at release', (d) => (plantOther(d), symlinkSync(join(d, 'other'), join(d, 'ports'))), (d) => releasePort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports', 99],
    ['port dir is a symlink, at lookup', (d) => (plantOther(d), symlinkSync(join(d, 'other'), join(d, 'ports'))), (d) => claimedPort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports', 99],
    ['port dir is a file', (d) => writeFileSync(join(d, 'ports'), 'x'), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports', 99],
    ['port dir owned by a user', (d) => (mkdirSync(join(d, 'ports'), { mode: 0o700 }), chownSync(join(d, 'ports'), 65534, 65534)), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports', 99],
    ['port dir world-writable', (d) => (mkdirSync(join(d, 'ports')), chmodSync(join(d, 'ports'), 0o1777)), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports', 99],
    // Entering it is enough to give a port file a name of one's own where hard links are not protected.
    ['port dir open to others (0755)', (d) => mkdirSync(join(d, 'ports'), { mode: 0o755 }), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports', 99],
    ['port dir open to others, at release', (d) => mkdirSync(join(d, 'ports'), { mode: 0o755 }), (d) => releasePort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports', 99],
    ['claims dir is a symlink to another dir', (d) => (plantOther(d), mkdirSync(join(d, 'ports'), { mode: 0o700 }), symlinkSync(join(d, 'other'), join(d, 'ports', 'claims'))), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports/claims', 99],
    ['claims dir is a symlink, at release', (d) => (plantOther(d), mkdirSync(join(d, 'ports'), { mode: 0o700 }), symlinkSync(join(d, 'other'), join(d, 'ports', 'claims'))), (d) => releasePort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports/claims', 99],
    ['claims dir is a symlink, at lookup', (d) => (plantOther(d), mkdirSync(join(d, 'ports'), { mode: 0o700 }), symlinkSync(join(d, 'other'), join(d, 'ports', 'claims'))), (d) => claimedPort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports/claims', 99],
    ['claims dir owned by a user', (d) => (mkdirSync(join(d, 'ports', 'claims'), { recursive: true, mode: 0o700 }), chownSync(join(d, 'ports', 'claims'), 65534, 65534)), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports/claims', 99],
    ['claims dir world-writable', (d) => (mkdirSync(join(d, 'ports', 'claims'), { recursive: true, mode: 0o700 }), chmodSync(join(d, 'ports', 'claims'), 0o1777)), (d) => releasePort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports/claims', 99],
    ['claims dir open to others (0755)', (d) => (mkdirSync(join(d, 'ports', 'claims'), { recursive: true, mode: 0o700 }), chmodSync(join(d, 'ports', 'claims'), 0o755)), (d) => claimedPort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports/claims', 99],
    ['every port file is garbage', (d) => plantGarbage(d), (d) => allocatePort(join(d, 'ports'), { first: 30001, last: 30003 }, CLAIM), 'jobbox: ports: no free port in 30001-30003 (3 port files are not regular files): {d}/ports', 1],
    ['an inverted range', (d) => mkdirSync(join(d, 'ports')), (d) => allocatePort(join(d, 'ports'), { first: 30005, last: 30000 }, CLAIM), 'jobbox: ports: range must be whole numbers with 1 <= first <= last <= 65535: 30005-30000', 99],
    ['a claim name with a path', (d) => mkdirSync(join(d, 'ports')), (d) => allocatePort(join(d, 'ports'), RANGE4, '../x'), 'jobbox: port claim: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$: ../x', 99],
    // Teardown and gc delete recursively as root: the state dir is checked again right before.
    ['state_dir swapped for a symlink before a job dir is removed', (d) => (plantOther(d), mkdirSync(join(d, 'other', '1.0.h')), writeFileSync(join(d, 'other', '1.0.h', 'keep'), 'keep\n'), symlinkSync(join(d, 'other'), join(d, 'jobs'))), (d) => removeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: is not a directory (a symlink or file was planted?): {d}/jobs', 99],
    ['state_dir owned by a user before a job dir is removed', (d) => (mkdirSync(join(d, 'jobs', '1.0.h'), { recursive: true }), chownSync(join(d, 'jobs'), 65534, 65534)), (d) => removeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: must be owned by root and not writable by group or others: {d}/jobs', 99],
  ])('%s', async (_case, plant, act, message, exitCode) => {
    const d = mkdtempSync(join(ROOT, 'plant-'));
    plant(d);
    await refused(() => act(d), message.replace('{d}', d), exitCode, [d, VICTIM]);
  });
});

describe.skipIf(!asRoot)('as root: planted files where jobbox writes: the write goes on safely, the victim untouched', () => {
  const job = (d: string) => join(d, 'jobs', '1.0.h');
  // [case, plant(d), act(d), check(d)]; d (minus what the act is meant to change) and VICTIM are compared before and after.
  it.each<[string, (d: string) => void, (d: string) => Promise<unknown>, string[], (d: string, result: unknown) => void]>([
    ['a job file is a symlink to a victim in /etc', (d) => (mkdirSync(job(d), { recursive: true }), symlinkSync(VICTIM, join(job(d), 'env'))), (d) => writeJobFile({ path: join(job(d), 'env'), content: 'A=1\n', mode: 0o644 }), ['jobs/1.0.h', 'jobs/1.0.h/env'], (d) => expectFile(join(job(d), 'env'), 'A=1\n')],
    ['a job file is a hard link to a victim', (d) => (mkdirSync(job(d), { recursive: true }), writeFileSync(join(d, 'victim'), 'v\n'), linkSync(join(d, 'victim'), join(job(d), 'userkey'))), (d) => writeJobFile({ path: join(job(d), 'userkey'), content: 'KEY\n', mode: 0o600, owner: { uid: 65534, gid: 65534 } }), ['jobs/1.0.h', 'jobs/1.0.h/userkey', 'victim'], (d) => (expectFile(join(job(d), 'userkey'), 'KEY\n'), expect(readFileSync(join(d, 'victim'), 'utf8')).toBe('v\n'))],
    ['a job file is a symlink to another dir', (d) => (plantOther(d), mkdirSync(job(d), { recursive: true }), symlinkSync(join(d, 'other'), join(job(d), 'hostfile'))), (d) => writeJobFile({ path: join(job(d), 'hostfile'), content: 'h slots=1\n', mode: 0o644 }), ['jobs/1.0.h', 'jobs/1.0.h/hostfile'], (d) => expectFile(join(job(d), 'hostfile'), 'h slots=1\n')],
    ['a job file is a FIFO', (d) => (mkdirSync(job(d), { recursive: true }), execFileSync('mkfifo', ['--', join(job(d), 'cwd')])), (d) => writeJobFile({ path: join(job(d), 'cwd'), content: '/home/u\n', mode: 0o644 }), ['jobs/1.0.h', 'jobs/1.0.h/cwd'], (d) => expectFile(join(job(d), 'cwd'), '/home/u\n')],
    ['the job dir is a symlink at removal', (d) => (plantOther(d), mkdirSync(join(d, 'jobs')), symlinkSync(join(d, 'other'), job(d))), (d) => removeJobDir(job(d)), ['jobs', 'jobs/1.0.h'], (d) => expect(sortedDir(join(d, 'jobs'))).toEqual([])],
    ['port-dir garbage: port.abc, claim.x, a dir, a symlink to a victim, a FIFO', (d) => plantGarbage(d), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), ['ports', 'ports/port.30000', 'ports/claims', `ports/claims/claim.${CLAIM}.30000`], (_d, port) => expect(port).toBe(30000)],
    ['our own claim name is a symlink to a victim', (d) => (plantGarbage(d), symlinkSync(VICTIM, join(d, 'ports', 'claims', `claim.${CLAIM}.30001`))), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), ['ports', 'ports/port.30000', 'ports/claims', `ports/claims/claim.${CLAIM}.30000`, `ports/claims/claim.${CLAIM}.30001`], (d, port) => (expect(port).toBe(30000), expect(sortedDir(join(d, 'ports', 'claims')).filter((n) => n.startsWith(`claim.${CLAIM}.`))).toEqual([`claim.${CLAIM}.30000`]))],
    ['our own claim name is a symlink to a victim, at release', (d) => (mkdirSync(join(d, 'ports', 'claims'), { recursive: true, mode: 0o700 }), symlinkSync(VICTIM, join(d, 'ports', 'claims', `claim.${CLAIM}.30001`))), (d) => releasePort(join(d, 'ports'), CLAIM), ['ports/claims', `ports/claims/claim.${CLAIM}.30001`], (d) => expect(sortedDir(join(d, 'ports', 'claims'))).toEqual([])],
  ])('%s', async (_case, plant, act, changes, check) => {
    const d = mkdtempSync(join(ROOT, 'plant-'));
    plant(d);
    const changed = new Set([d, ...changes.map((c) => join(d, c))]);
    const watched = async () => (await snapshot([d, VICTIM])).filter((l) => !changed.has(l.slice(0, l.indexOf(' '))));
    const before = await watched();
    const result = await act(d);
    check(d, result);
    expect(await watched()).toEqual(before);
    expect(readFileSync(VICTIM, 'utf8')).toBe('victim: root must never write here\n');
  });
});

function plantOther(d: string): void {
  mkdirSync(join(d, 'other'));
  writeFileSync(join(d, 'other', 'keep'), 'keep\n');
}

/** port.abc, claim.x (in the port dir and in claims/), a directory port.30001, a symlink port.30002 → VICTIM, a FIFO port.30003. */
function plantGarbage(d: string): void {
  const ports = join(d, 'ports');
  mkdirSync(join(ports, 'claims'), { recursive: true, mode: 0o700 });
  writeFileSync(join(ports, 'port.abc'), 'garbage\n');
  writeFileSync(join(ports, 'claim.x'), 'garbage\n');
  writeFileSync(join(ports, 'claims', 'claim.x'), 'garbage\n');
  mkdirSync(join(ports, 'port.30001'));
  symlinkSync(VICTIM, join(ports, 'port.30002'));
  execFileSync('mkfifo', ['--', join(ports, 'port.30003')]);
}

function expectFile(path: string, content: string): void {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    expect(readFileSync(fd, 'utf8')).toBe(content);
  } finally {
    closeSync(fd);
  }
}

function sortedDir(dir: string): string[] {
  return readdirSync(dir).sort();
}
