// P2, CLI cold start: `jobbox --version` and `jobbox lsf pre-exec --dry-run` (a 3-host LSF job)
// as real processes against `node -e 0`, and which files of the bundle each command loads.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../test/support/testbed.js';
import { interleave, ratioRow, type Row } from './lib.js';
import type { Bench } from './run.js';

const REPS = 20;
const VERSION_LIMIT = 1.5;
const CLI = join(REPO, 'dist/cli.js');

interface Proc {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function node(args: string[], env: NodeJS.ProcessEnv): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs and fails loudly unless the process exits 0 and its output passes `check`. */
async function ok(what: string, args: string[], env: NodeJS.ProcessEnv, check?: (stdout: string) => string | undefined): Promise<Proc> {
  const p = await node(args, env);
  const problem = p.code !== 0 ? `exit ${p.code ?? p.signal}` : check?.(p.stdout);
  if (problem) throw new Error(`bench P2: ${what}: ${problem}\n--- stdout\n${p.stdout}--- stderr\n${p.stderr}`);
  return p;
}

/** The job owner: jbuser1 (the testbed's user) if it exists, else a uid >= 1000 account, else nobody. */
async function jobOwner(): Promise<string> {
  const p = await new Promise<string>((resolve, reject) => {
    const c = spawn('getent', ['passwd'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.once('error', reject).once('close', () => resolve(out));
  });
  const users = p.split('\n').map((l) => l.split(':')).filter((f) => f.length >= 7);
  const named = (n: string) => users.find((f) => f[0] === n)?.[0];
  const regular = users.find((f) => Number(f[2]) >= 1000 && Number(f[2]) < 65534 && /^[a-z_][a-z0-9_-]*$/.test(f[0]!))?.[0];
  const owner = named('jbuser1') ?? regular ?? named('nobody');
  if (!owner) throw new Error('bench P2: no non-root account to own the job');
  return owner;
}

/**
 * A config loadConfig accepts as root: under /run (root-owned 0755 up to /; /tmp is
 * world-writable and refused by design), file 0644. The state lives beside it.
 */
async function fixture(dir: string): Promise<string> {
  for (const d of ['ports', 'jobs', 'ssh', 'ib']) await mkdir(join(dir, d), { mode: 0o755 });
  for (const f of ['ssh/id_ed25519', 'ssh/known_hosts']) await writeFile(join(dir, f), '', { mode: 0o600 });
  for (const f of ['ib/uverbs0', 'ib/uverbs1', 'ib/rdma_cm']) await writeFile(join(dir, f), '');
  const file = join(dir, 'jobbox.ini');
  const ini = `[jobbox]
registry = registry.example.org:5000
port_range = 30000-30199
port_dir = ${dir}/ports
state_dir = ${dir}/jobs
log_file = ${dir}/jobbox.log
ssh_key = ${dir}/ssh/id_ed25519
ssh_known_hosts = ${dir}/ssh/known_hosts
device_dir = ${dir}/ib

[queue normal]
default_image = deb12
allowed_images = deb12 deb12-mpich
mounts = /home
memory = 1g/slot
shm_size = 256m
memlock = 8m

[image deb12]
ref = hpc/deb12:r1
env.OMPI_MCA_btl = ^openib

[image deb12-mpich]
ref = hpc/deb12-mpich:r1
`;
  await writeFile(file, ini, { mode: 0o644 });
  return file;
}

/** What sbatchd hands PRE_EXEC for `bsub -q normal -a docker-deb12 -n 5` on this host + 2. */
function lsfEnv(owner: string): NodeJS.ProcessEnv {
  const me = hostname();
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: `/home/${owner}`,
    USER: owner,
    LOGNAME: owner,
    LANG: 'C.UTF-8',
    SHELL: '/bin/bash',
    LSB_JOBID: '4242',
    LSB_JOBINDEX: '0',
    LSB_JOBNAME: 'mpi-job',
    LSB_QUEUE: 'normal',
    LSB_HOSTS: `${me} ${me} node2 node2 node3`,
    LSB_MCPU_HOSTS: `${me} 2 node2 2 node3 1 `,
    LSB_JOB_EXECUSER: owner,
    LSB_SUB_HOST: 'login1',
    LSB_EXIT_PRE_ABORT: '99',
    LSB_JOBEXIT_STAT: '0',
    LSF_BINDIR: '/opt/lsf/10.1/linux3.10-glibc2.17-x86_64/bin',
    LSF_ENVDIR: '/opt/lsf/conf',
    LS_SUBCWD: `/home/${owner}`,
    JOBBOX_IMAGE: 'deb12',
    OMP_NUM_THREADS: '1',
  };
}

/**
 * Which packages a run loads: a module.register load hook appends every URL to a file. Only
 * modules reached through the ESM loader are seen (a CommonJS package's own require()s are
 * not, on Node 20), which is enough to name the packages. One untimed run per command.
 */
async function filesLoaded(dir: string, args: string[], env: NodeJS.ProcessEnv): Promise<string[]> {
  const out = join(dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  await writeFile(out, '');
  await ok(`traced ${args.join(' ')}`, ['--import', join(dir, 'trace-register.mjs'), ...args], { ...env, P2_TRACE_OUT: out });
  const urls = (await readFile(out, 'utf8')).split('\n').filter((u) => u.startsWith('file:'));
  return urls.map((u) => u.slice(u.lastIndexOf('/') + 1).replace(/-[A-Z0-9]{8}\.js$/, '')).sort();
}

async function writeTracer(dir: string): Promise<void> {
  await writeFile(
    join(dir, 'trace-register.mjs'),
    `import { register } from 'node:module';\nregister('./trace-hooks.mjs', import.meta.url, { data: { out: process.env.P2_TRACE_OUT } });\n`,
  );
  await writeFile(
    join(dir, 'trace-hooks.mjs'),
    `import { appendFileSync } from 'node:fs';\nlet out;\nexport function initialize(d) { out = d.out; }\n` +
      `export async function load(url, context, next) { appendFileSync(out, url + '\\n'); return next(url, context); }\n`,
  );
}

async function run(): Promise<Row[]> {
  const { version } = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
  const dir = await mkdtemp('/run/jobbox-bench-p2-');
  try {
    const config = await fixture(dir);
    await writeTracer(dir);
    const owner = await jobOwner();
    // Every case gets a small, fixed environment, never ours: a variable such as
    // NODE_EXTRA_CA_CERTS (set on some build hosts) adds ~30 ms to every node start and would
    // drown the difference being measured.
    const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' };
    const job = lsfEnv(owner);

    const versionArgs = [CLI, '--version'];
    const dryArgs = [CLI, 'lsf', 'pre-exec', '--config', config, '--dry-run'];
    const checkVersion = (out: string) => (out === `${version}\n` ? undefined : `expected "${version}", got ${JSON.stringify(out)}`);
    const checkDry = (out: string) => {
      const runs = out.split('\n').filter((l) => l.startsWith('docker run --detach ')).length;
      if (!out.startsWith('# job 4242[0]')) return 'no "# job 4242[0]" header';
      if (runs !== 3) return `expected 3 docker run lines, got ${runs}`;
      return undefined;
    };

    // Once untimed: fails loudly before any timing if the dry run does not work.
    await ok('jobbox --version', versionArgs, base, checkVersion);
    await ok('jobbox lsf pre-exec --dry-run', dryArgs, job, checkDry);

    const cases: Record<string, { run: () => Promise<unknown> }> = {
      'node -e 0': { run: () => ok('node -e 0', ['-e', '0'], base) },
      'node --input-type=module -e 0': { run: () => ok('esm empty', ['--input-type=module', '-e', '0'], base) },
      'jobbox --version': { run: () => ok('jobbox --version', versionArgs, base, checkVersion) },
      'jobbox lsf pre-exec --dry-run (3 hosts)': { run: () => ok('jobbox lsf pre-exec --dry-run', dryArgs, job, checkDry) },
    };
    const s = await interleave(REPS, cases);
    const baseline = s['node -e 0']!;
    const esm = s['node --input-type=module -e 0']!;

    const [tv, td] = await Promise.all([filesLoaded(dir, versionArgs, base), filesLoaded(dir, dryArgs, job)]);
    // The bundle's files by name without the hash (pre-exec-WIWMCALN.js → pre-exec): what a command
    // loads of dist/, which lazy loading keeps to what it runs.
    const loads = (files: string[]) => `loads ${files.length} files of dist/: ${files.join(' ')}`;

    const rows: Row[] = [
      { bench: 'P2', case: 'node -e 0', unit: 'ms', stats: baseline, note: 'the baseline of every row' },
      {
        ...ratioRow('P2', 'jobbox --version', s['jobbox --version']!, 'node -e 0', baseline, VERSION_LIMIT),
        note: loads(tv),
      },
      {
        ...ratioRow('P2', 'jobbox lsf pre-exec --dry-run (3 hosts)', s['jobbox lsf pre-exec --dry-run (3 hosts)']!, 'node -e 0', baseline),
        note: `${loads(td)}; owner ${owner}`,
      },
      {
        ...ratioRow('P2', 'node --input-type=module -e 0', esm, 'node -e 0', baseline),
        note: 'an ESM entry with nothing imported',
      },
    ];
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const bench: Bench = { id: 'P2', title: 'CLI cold start', testbed: false, run };
export default bench;
