// The bad-input catalogue: every input a user, a scheduler variable or a planted file can get
// wrong, fed through the code path that really reads it (the esub, the pre-exec, the Slurm
// adapter, the job-dir writer, the port allocator). Each case must end in one line shaped
// `jobbox: <subject>: <problem>: <value>` with the exit code its caller needs, and must leave
// the port dir, the state dir and the esub's envfile exactly as they were.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { esub } from '../../src/commands/lsf/esub.js';
import { resolveImage } from '../../src/config/image.js';
import { lookupAccount } from '../../src/exec/accounts.js';
import { lsfJob } from '../../src/scheduler/lsf.js';
import { planJob } from '../../src/plan/job.js';
import { jobPaths } from '../../src/plan/job-files.js';
import { describe, expect, it } from 'vitest';
import { ALLOWED, CANARY, CONF, CONTROL, HOST_RULE, LSF, META, NO_ALIAS, PARM, ROOT, config, esubWith, lsf, me, preExecJob, preExecWith, prologWith, refused, type Env } from './catalogue.js';

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

const USER_REF = 'not a qualified image reference (registry[:port]/path[:tag][@sha256:…], lowercase)';
// The next step the esub names after the problem (config/image.ts); the pre-exec names none.
const NORMAL_IMAGES = '; use -a docker-deb12 or -a docker-deb12-mpich';
const TO_NORMAL = '; use -q normal, or -a docker-deb12-mpich';

// [case, requested alias, queue, problem, value as printed, the esub's next step]
const IMAGES: [string, string, string, string, string, string?][] = [
  ['empty', '', 'normal', 'must not be empty', ''],
  ['leading "-"', '-x', 'normal', 'must not start with "-"', '-x'],
  ['--privileged', '--privileged', 'normal', 'must not start with "-"', '--privileged'],
  ['a space', 'deb12 x', 'normal', CONTROL, 'deb12 x'],
  ['a tab', 'deb12\tx', 'normal', CONTROL, 'deb12\\tx'],
  ['a newline', 'deb12\nJOBBOX_IMAGE=x', 'normal', CONTROL, 'deb12\\nJOBBOX_IMAGE=x'],
  ['a NUL', 'deb12\0', 'normal', CONTROL, 'deb12\\u0000'],
  ['an escape sequence', 'deb12\x1b[2J', 'normal', CONTROL, 'deb12\\u001b[2J'],
  ['a DEL', 'deb12\x7f', 'normal', CONTROL, 'deb12\\u007f'],
  ['a C1 CSI (U+009B)', 'deb12\u009b2J', 'normal', NO_ALIAS, 'deb12\\u009b2J', NORMAL_IMAGES],
  ['$(…)', '$(id)', 'normal', META, '$(id)'],
  ['backticks', '`id`', 'normal', META, '`id`'],
  ['";"', 'deb12;id', 'normal', META, 'deb12;id'],
  ['"|"', 'deb12|id', 'normal', META, 'deb12|id'],
  ['"&"', 'deb12&id', 'normal', META, 'deb12&id'],
  ['">"', 'deb12>x', 'normal', META, 'deb12>x'],
  ['a quote', "deb12'", 'normal', META, "deb12'"],
  ['4 KB long', 'a'.repeat(4096), 'normal', 'longer than 330 characters', `${'a'.repeat(200)}… (4096 chars)`],
  ['an alias of 65 characters', 'a'.repeat(65), 'normal', 'an alias is at most 64 characters', 'a'.repeat(65)],
  ['an unqualified public name', 'centos:7', 'normal', NO_ALIAS, 'centos:7', NORMAL_IMAGES],
  ['an [image] ref outside allowed_repos', '10.78.0.1:5000/deb12:r1', 'normal', `repository not allowed in queue normal (${ALLOWED})`, '10.78.0.1:5000/deb12:r1', NORMAL_IMAGES],
  ['a user ref in a queue without allowed_repos', '10.78.0.1:5000/projects/x:1', 'short', 'repository not allowed in queue short (allowed: deb12-mpich)', '10.78.0.1:5000/projects/x:1', TO_NORMAL],
  ['a user ref on a public hub', 'library/centos:7', 'normal', USER_REF, 'library/centos:7'],
  ['a user ref with another registry in its path', '10.78.0.1:5000/projects/../../evil.example.org/x:1', 'normal', USER_REF, '10.78.0.1:5000/projects/../../evil.example.org/x:1'],
  ['a user ref that only starts like an allowed one', '10.78.0.1:5000/projectsx/app:1', 'normal', `repository not allowed in queue normal (${ALLOWED})`, '10.78.0.1:5000/projectsx/app:1', NORMAL_IMAGES],
  ['a user ref on another port', '10.78.0.1:5001/projects/app:1', 'normal', `repository not allowed in queue normal (${ALLOWED})`, '10.78.0.1:5001/projects/app:1', NORMAL_IMAGES],
  ['a user ref in capitals', '10.78.0.1:5000/projects/App:1', 'normal', USER_REF, '10.78.0.1:5000/projects/App:1'],
  ['a user ref with a short digest', '10.78.0.1:5000/projects/app@sha256:abc', 'normal', USER_REF, '10.78.0.1:5000/projects/app@sha256:abc'],
  ['an alias with a bad digest', 'deb12@sha256:xyz', 'normal', 'a digest after "@" must be sha256: and 64 hex digits', 'deb12@sha256:xyz'],
  ['an alias with two digests', `deb12@sha256:${'a'.repeat(64)}@sha256:${'a'.repeat(64)}`, 'normal', 'a digest after "@" must be sha256: and 64 hex digits', `deb12@sha256:${'a'.repeat(64)}@sha256:${'a'.repeat(64)}`],
  ['a path', '../deb12', 'normal', USER_REF, '../deb12'],
  ['another case', 'DEB12', 'normal', NO_ALIAS, 'DEB12', NORMAL_IMAGES],
  ['a homoglyph (Cyrillic е)', 'd\u0435b12', 'normal', NO_ALIAS, 'd\u0435b12', NORMAL_IMAGES],
  ['__proto__', '__proto__', 'normal', NO_ALIAS, '__proto__', NORMAL_IMAGES],
  ['an alias the queue does not allow', 'deb12', 'short', 'not allowed in queue short (allowed: deb12-mpich)', 'deb12', TO_NORMAL],
  ['an alias the queue does not allow, with a digest', `deb12@sha256:${'a'.repeat(64)}`, 'short', 'not allowed in queue short (allowed: deb12-mpich)', `deb12@sha256:${'a'.repeat(64)}`, TO_NORMAL],
];

describe('image requests at submit: the esub exits 97 and leaves the envfile empty', () => {
  it.each(IMAGES)('%s', (_case, alias, queue, problem, shown, hint = '') =>
    refused(esubWith(alias, `LSB_SUB_QUEUE="${queue}"\n`), `jobbox: image: ${problem}${hint}: ${shown}`, 97));

  it.each<[string, string, string]>([
    ['master esub: docker--privileged', 'LSB_SUB_ADDITIONAL="docker--privileged"\n', 'jobbox: image: must not start with "-": -privileged'],
    ['master esub: docker-$(id)', 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker-$(id)"\n', `jobbox: image: ${META}: $(id)`],
    ['master esub: docker-centos:7', 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker-centos:7"\n', `jobbox: image: ${NO_ALIAS}${NORMAL_IMAGES}: centos:7`],
    ['master esub: two images', 'LSB_SUB_ADDITIONAL="docker-deb12 docker-deb12-mpich"\n', 'jobbox: bsub -a: names more than one docker application, give one image: docker-deb12 docker-deb12-mpich'],
    ['master esub: an alias and a ref', 'LSB_SUB_ADDITIONAL="docker-deb12 docker(10.78.0.1:5000/projects/x:1)"\n', 'jobbox: bsub -a: names more than one docker application, give one image: docker-deb12 docker(10.78.0.1:5000/projects/x:1)'],
    ['master esub: docker() with two arguments', 'LSB_SUB_ADDITIONAL="docker(a,b)"\n', 'jobbox: bsub -a: docker takes one argument, the image: docker(reg:5000/path/app:tag): docker(a,b)'],
    ['master esub: docker() empty', 'LSB_SUB_ADDITIONAL="docker()"\n', 'jobbox: bsub -a: docker takes one argument, the image: docker(reg:5000/path/app:tag): docker()'],
    ['master esub: docker(centos:7)', 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker(centos:7)"\n', `jobbox: image: ${NO_ALIAS}${NORMAL_IMAGES}: centos:7`],
    ['master esub: docker(ref) outside allowed_repos', 'LSB_SUB_QUEUE="normal"\nLSB_SUB_ADDITIONAL="docker(10.78.0.1:5000/other/x:1)"\n', `jobbox: image: repository not allowed in queue normal (${ALLOWED})${NORMAL_IMAGES}: 10.78.0.1:5000/other/x:1`],
    ['master esub: an unknown queue', 'LSB_SUB_QUEUE="../x"\nLSB_SUB_ADDITIONAL="docker-deb12"\n', 'jobbox: queue: no such [queue] section in the config (defined: normal short); use -q normal: ../x'],
  ])('%s', (_case, parm, message) => refused(esubWith(undefined, parm), message, 97));
});

describe('image requests at pre-exec (a forged JOBBOX_IMAGE): exit 99, nothing claimed or written', () => {
  // An empty JOBBOX_IMAGE is no request at all: the queue default applies (docs/lsf.md, esub).
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
const GLOBAL_KEYS = 'engine registry port_range port_dir state_dir log_file log_level ssh_user ssh_key ssh_known_hosts ssh_port connect_timeout start_timeout pull_timeout pull_policy insecure_registries fanout device_dir gpu_dir default_queue bpost bjobs metrics_dir';
const RANGE = 'must be first-last with 1024 <= first <= last <= 65535';
const PATH_RULE = 'must be an absolute path without "..", whitespace or control characters';
let configs = 0;

describe('config: strict parsing refuses the pre-exec (99)', () => {
  it.each<[string, string, string]>([
    ['unknown key in [jobbox]', `[jobbox]\nprivileged = true\n${MIN}`, `jobbox: config [jobbox]: unknown key (allowed: ${GLOBAL_KEYS}): privileged`],
    ['unknown key in [queue]', `${MIN}[queue short]\ndefault_image = deb12\ncap_add = SYS_ADMIN\n`, 'jobbox: config [queue short]: unknown key (allowed: default_image allowed_images allowed_repos pin_at_submit mounts devices gpus gpu_devices gpu_mounts cpus memory shm_size memlock pids_limit): cap_add'],
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
    ['an unknown pull policy', `[jobbox]\npull_policy = never\n${MIN}`, 'jobbox: config [jobbox] pull_policy: must be missing or always: never'],
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
