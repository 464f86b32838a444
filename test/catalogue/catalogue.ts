// What both halves of the bad-input catalogue share (bad-input.test.ts, and the cases only
// root can check, bad-input.root.test.ts): the sandbox a case may not change, the routes that
// feed a bad input through the code that reads it, and the check that it was refused.
import { createHash } from 'node:crypto';
import { chmodSync, constants, linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { lstat, mkdtemp, open, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_PARENT } from '../helpers/config-file.js';
import { afterAll, beforeAll, expect } from 'vitest';
import { esub } from '../../src/commands/lsf/esub.js';
import { preExec } from '../../src/commands/lsf/pre-exec.js';
import { resolveImage } from '../../src/config/image.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { JobboxError, formatError } from '../../src/errors.js';
import { lookupAccount } from '../../src/exec/accounts.js';
import { slurmJob } from '../../src/scheduler/slurm.js';

export type Env = Record<string, string | undefined>;
export type Act = () => Promise<unknown>;

export const asRoot = process.getuid?.() === 0;
export const me = hostname();
export const HOST_RULE = '^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$';
export const ALLOWED = 'allowed: deb12 deb12-mpich; repositories: 10.78.0.1:5000/projects/*';
export const NO_ALIAS = `no such image alias (${ALLOWED})`;
export const CONTROL = 'must not contain whitespace or control characters';
export const META = 'must not contain shell metacharacters';
export const SHAPE = /^jobbox: [^\n]+?: [^\n]+: [^\n]*$/;
// C0, DEL, C1 and the Unicode line separators: none may reach a terminal or a log line raw.
export const RAW_CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
// A file root must never write through to; created here, removed in afterAll. Only the root
// cases plant links to it; a normal user may not write in /etc.
export const VICTIM = `${asRoot ? '/etc' : tmpdir()}/jobbox-catalogue-victim-${process.pid}`;

// Everything lives under one directory, root-owned in /run as root: loadConfig refuses /tmp by design.
export let ROOT = '';
export let CONF = '';
export let SANDBOX = '';
export let PORTS = '';
export let JOBS = '';
export let ENVFILE = '';
export let PARM = '';
export let config: Config;
export const cleanups: string[] = [];

export const configText = (root: string) => `[jobbox]
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
allowed_repos = 10.78.0.1:5000/projects/*
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
  // The start records' dir, as the first job made it: a refused start then only writes its record.
  mkdirSync(join(JOBS, '.status'), { mode: 0o711 });
  chmodSync(join(JOBS, '.status'), 0o711);
  writeFileSync(ENVFILE, '');
  writeFileSync(VICTIM, 'victim: root must never write here\n', { mode: 0o644 });
  config = await loadConfig(CONF);
});
afterAll(async () => {
  await rm(VICTIM, { force: true });
  for (const dir of [ROOT, ...cleanups]) if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every entry under the paths, never followed: type, mode, owner, links, size, times, content. `skip`: a subtree left out. */
export async function snapshot(paths: string[], skip?: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(path: string): Promise<void> {
    if (path === skip) return;
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
export async function refused(act: Act, message: string | RegExp, exitCode: number, watch: string[] = [SANDBOX, VICTIM]): Promise<void> {
  // A refused start leaves one thing on purpose: its record for the owner (plan/status.ts),
  // which must say exactly the refusal.
  const records = join(JOBS, '.status');
  const before = await snapshot(watch, records);
  const recordsBefore = await snapshot([records]);
  const err = await act().then(() => 'the input was accepted', (e: unknown) => e);
  expect(err, `not a JobboxError: ${formatError(err).line} (exit ${formatError(err).exitCode})`).toBeInstanceOf(JobboxError);
  const { line, exitCode: code } = formatError(err);
  if (typeof message === 'string') expect(line).toBe(message);
  else expect(line).toMatch(message);
  expect(line).toMatch(SHAPE);
  expect(line, 'raw control characters in the error line').not.toMatch(RAW_CONTROL);
  expect(code).toBe(exitCode);
  expect(await snapshot(watch, records), 'something changed although the input was refused').toEqual(before);
  for (const entry of await snapshot([records])) {
    const path = entry.split(' ')[0]!;
    if (recordsBefore.includes(entry) || !path.endsWith('.json')) continue;
    expect(JSON.parse(readFileSync(path, 'utf8')), 'the start record of a refused start').toMatchObject({ outcome: 'failed', error: line, exitCode });
  }
  if (watch.includes(SANDBOX)) expect(readFileSync(ENVFILE, 'utf8')).toBe('');
}

// ---- the routes ----

export const LSF: Env = {
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
export const CANARY = { JOBBOX_IMAGE: 'canary-if-accepted' };
export const lsf = (vars: Env): Env => ({ ...LSF, ...vars });
/** The real pre-exec (not a dry run): config, LSF adapter, real account lookup, image resolution. */
export const preExecWith = (vars: Env, cli: string | undefined): Act => () => preExec(cli, false, lsf(vars) as NodeJS.ProcessEnv);
export const preExecJob = (vars: Env): Act => preExecWith({ ...CANARY, ...vars }, CONF);

/** The per-alias esub (`esub.docker-<alias>`, LSF 10's mesub), or the master esub when alias is undefined. */
export function esubWith(alias: string | undefined, parm: string): Act {
  return async () => {
    await writeFile(PARM, parm);
    return esub({ alias, config: CONF }, { LSB_SUB_PARM_FILE: PARM, LSB_SUB_MODIFY_ENVFILE: ENVFILE });
  };
}

export const SLURM: Env = {
  SLURM_JOB_ID: '77',
  SLURM_JOB_PARTITION: 'normal',
  SLURM_NODELIST: 'node1',
  SLURM_JOB_USER: 'nobody',
  SLURM_JOB_UID: '65534',
  SLURM_JOB_CONSTRAINTS: 'docker-deb12',
};
/** The Prolog's view of the job, then the image through the root-owned config (the Prolog itself would scancel). */
export const prologWith = (vars: Env): Act => async () => {
  const job = await slurmJob({ ...SLURM, ...vars }, 'prolog', lookupAccount);
  return resolveImage(config, job.queue, job.image);
};

export function withDeadline(act: Act, dir: string, ms = 3000): Act {
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