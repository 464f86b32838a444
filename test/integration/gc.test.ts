import { chmod, chown, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { lookupAccount } from '../../src/exec/accounts.js';
import type { Job } from '../../src/job/job.js';
import { jobKey } from '../../src/plan/job-files.js';
import { BJOBS_BIN, writeBjobsState } from '../harness/lsf/harness.js';
import * as fixture from '../support/lsf-fixture.js';
import { ENGINE, INSTALL, onNode, REPO, slurmClient, testbed, testbedStatus, type TestbedStatus, waitFor } from '../support/testbed.js';

// `jobbox gc` on the real testbed: real dockerd, sshd and Slurm 22.05; for LSF, the bjobs
// stand-in of test/harness/lsf/bin (there is no LSF here).
//
// How an orphan is made, honestly: what a crashed Epilog or post-exec leaves behind is a port
// claim, a job dir and labelled containers of an attempt whose job is over. The tests make
// exactly that with the real start path (setupJob, the body of the Prolog and of pre-exec) for
// a job id whose state Slurm (or the stand-in) then reports, so the orphan is real on every
// node and gc's only shortcut is being told the job's id.
//
// gc reclaims everything in port_dir and state_dir that the scheduler says is over, so it runs
// here against a private port_dir, state_dir and port range (a config derived from the
// testbed's), never against the dirs other suites' jobs are using. node1 plays the admin host:
// it sees the shared dirs and resolves the node names, as a site's admin host does.
const NODES = ['node1', 'node2', 'node3'];
const ADMIN = 'node1';
// The Slurm tests' jobs run on node1 (-w node1); their planted orphans on these.
const OTHERS = ['node2', 'node3'];
const HOME = '/home/jbuser1';
const CLI = `${INSTALL}/dist/cli.js`;
const PATH = '/usr/bin:/bin:/usr/sbin:/sbin';

let tb: TestbedStatus;
let area: string;
let configFile: string;
let config: Config;
let unreachableConf: string;
let adminScript: string;
const planted: Job[] = [];
const submitted: string[] = [];

beforeAll(async () => {
  tb = await testbedStatus();
  expect(tb.slurm).toBe(true);
  // Under the shared dir, so every node sees it at the same path; 0755 so that the owner's
  // sshd in a container can read its job dir (and loadConfig accepts the config in it).
  area = await mkdtemp('/var/lib/jobbox-testbed/shared/gc-test-');
  await chmod(area, 0o755);
  const text = (await readFile(tb.config, 'utf8'))
    .replace(/^port_range = .*$/m, 'port_range = 30500-30599')
    .replace(/^port_dir = .*$/m, `port_dir = ${area}/ports`)
    .replace(/^state_dir = .*$/m, `state_dir = ${area}/jobs`);
  configFile = `${area}/jobbox.ini`;
  await writeFile(configFile, text, { mode: 0o644 });
  config = await loadConfig(configFile);
  // setupJob and teardownJob, bundled from src/ for a node process of the admin host's own.
  adminScript = `${area}/admin-job.mjs`;
  await execa('node', [`${REPO}/packaging/bundle.mjs`, `${REPO}/test/support/admin-job.ts`, adminScript]);
  // A Slurm client config naming a controller on loopback port 1: nothing answers there.
  unreachableConf = `${area}/slurm-unreachable.conf`;
  await writeFile(unreachableConf, [
    'ClusterName=jobbox', 'SlurmctldHost=nowhere(127.0.0.1)', 'SlurmctldPort=1', 'AuthType=auth/munge',
    'NodeName=node1 CPUs=1', 'PartitionName=normal Nodes=node1', '',
  ].join('\n'));
});

// Each test leaves nothing: its planted attempts (private dirs, every node), and its Slurm
// jobs with whatever their hooks left in the testbed's own dirs. A requeue leaves attempt 0's
// claim, dir and container there today, because the Epilog after `scontrol requeue` already
// sees the next restart count: exactly the orphan gc exists for.
afterEach(async () => {
  for (const id of submitted.splice(0)) {
    await slurm(['scancel', id]);
    await waitFor(`job ${id} to end`, async () => !/^(PENDING|RUNNING|COMPLETING|CONFIGURING|REQUEUED)/.test(await jobField(id, 'JobState')), 180);
    for (const attempt of ['0', '1']) await onAdmin('teardown', orphan(id, attempt, NODES), tb.config);
  }
  for (const job of planted.splice(0)) await onAdmin('teardown', { ...job, hosts: NODES.map((name) => ({ name, slots: 1 })) });
});

afterAll(async () => {
  await rm(area, { recursive: true, force: true });
  for (const n of ['gc1', 'gc2']) {
    await rm(`${HOME}/${n}.sh`, { force: true });
    await rm(`${HOME}/${n}.out`, { force: true });
  }
});

/** A job as far as teardown needs it: id, index, attempt and nodes. */
function orphan(id: string, attempt: string, hosts: string[], index = 0): Job {
  return {
    id, index, attempt, queue: 'normal', cwd: HOME, image: 'deb12', env: {},
    owner: { name: 'jbuser1', uid: 2001, gid: 2001, gids: [], home: HOME, shell: '/bin/bash' },
    hosts: hosts.map((name) => ({ name, slots: 1 })),
  };
}

/** Runs setupJob or teardownJob for `job` on the admin host; prints setupJob's result. */
async function onAdmin(what: 'setup' | 'teardown', job: Job, configPath = configFile): Promise<string> {
  return onNode(ADMIN, ['/usr/bin/node', adminScript, what, configPath, JSON.stringify(job)]);
}

/** Starts an attempt for real on `hosts` (containers, claim, job dir), as a Prolog or pre-exec would. */
async function plant(id: string, attempt: string, hosts: string[], index = 0): Promise<{ key: string; port: number }> {
  const job: Job = { ...orphan(id, attempt, hosts, index), owner: await lookupAccount('jbuser1') };
  planted.push(job);
  const { port } = JSON.parse(await onAdmin('setup', job)) as { port: number };
  return { key: jobKey(job), port };
}

/**
 * What is left of one attempt: its containers (by label, on `nodes`), claims and job dir. An
 * orphan planted for a live Slurm job shares its labels, so those tests look only at the
 * nodes the job does not run on.
 */
async function left(key: string, nodes = NODES): Promise<{ containers: string[]; claims: string[]; dir: boolean }> {
  const [id, index, attempt] = [key.split('.')[0]!, key.split('.')[1]!, key.split('.').slice(2).join('.')];
  const filters = ['--filter', `label=org.jobbox.job=${id}`, '--filter', `label=org.jobbox.index=${index}`, '--filter', `label=org.jobbox.attempt=${attempt}`];
  const containers: string[] = [];
  for (const n of nodes) if (await onNode(n, [ENGINE, 'ps', '-aq', ...filters])) containers.push(n);
  const claims = await fixture.claims(config, key);
  const dir = await stat(`${config.stateDir}/${key}`).then(() => true, () => false);
  return { containers, claims, dir };
}
const whole = (nodes: string[], port: number, key: string) => ({ containers: nodes, claims: [`claim.${key}.${port}`], dir: true });
const nothing = { containers: [], claims: [], dir: false };

/** `jobbox gc` as the timer runs it: root on the admin host, the real CLI, a clean environment. */
async function gc(args: string[], env: Record<string, string> = {}) {
  const vars = Object.entries({ PATH, SLURM_CONF: tb.slurmConf, ...env }).map(([k, v]) => `${k}=${v}`);
  const r = await testbed(['exec', ADMIN, '--', 'env', '-i', ...vars, '/usr/bin/node', CLI, 'gc', '--config', configFile, ...args], { reject: false });
  return { code: r.exitCode, lines: String(r.stdout).split('\n').filter(Boolean), stderr: String(r.stderr) };
}
const lineFor = (lines: string[], key: string) => lines.filter((l) => [' ', ':', ','].some((end) => l.includes(` ${key}${end}`)));

// ---- Slurm ----

const { slurm, jobField } = slurmClient(() => tb.slurmConf);

async function submit(name: string, body: string, options: string[]): Promise<string> {
  const script = `${HOME}/${name}.sh`;
  await writeFile(script, `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  await chown(script, 2001, 2001);
  const r = await execa('runuser', ['-u', 'jbuser1', '--', 'env', `SLURM_CONF=${tb.slurmConf}`, 'sbatch', '--parsable', '-o', `${HOME}/${name}.out`, ...options, script], { cwd: HOME, reject: false });
  expect(r.stderr).toBe('');
  submitted.push(r.stdout.trim());
  return r.stdout.trim();
}

const started = (name: string) => waitFor(`${name} to start`, async () => (await readFile(`${HOME}/${name}.out`, 'utf8').catch(() => '')).includes('started'), 180);

describe('jobbox gc on Slurm', () => {
  it('keeps a running job\'s attempt; once it ended: keeps it within the grace and when slurmctld cannot be asked, then reclaims it', async () => {
    const id = await submit('gc1', 'echo started\nsleep 300', ['-N1', '-w', 'node1', '-C', 'docker-deb12']);
    await started('gc1');
    // The job runs on node1; its orphan-to-be lives on node2 and node3.
    const { key, port } = await plant(id, '0', ['node2', 'node3']);
    expect(await left(key, OTHERS)).toEqual(whole(['node2', 'node3'], port, key));

    let r = await gc(['--grace', '0']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(lineFor(r.lines, key)).toEqual([`jobbox: gc: keep ${key}: job is RUNNING`]);
    expect(await left(key, OTHERS)).toEqual(whole(['node2', 'node3'], port, key));

    expect((await slurm(['scancel', id])).exitCode).toBe(0);
    await waitFor('CANCELLED', async () => (await jobField(id, 'JobState')) === 'CANCELLED', 180);

    r = await gc([]);
    expect(r.code).toBe(0);
    expect(lineFor(r.lines, key)).toEqual([expect.stringMatching(new RegExp(`^jobbox: gc: keep ${key}: job is CANCELLED, but changed \\d+ s ago \\(grace 600 s\\)$`))]);
    expect(await left(key, OTHERS)).toEqual(whole(['node2', 'node3'], port, key));

    // slurmctld unreachable: no answer is not "gone". Nothing is touched and the run fails.
    r = await gc(['--grace', '0'], { SLURM_CONF: unreachableConf });
    expect(r.code).toBe(1);
    expect(lineFor(r.lines, key)).toEqual([
      `jobbox: gc: keep ${key}: Slurm could not be asked (squeue: exit 1: slurm_load_jobs error: Unable to contact slurm controller (connect failure)); nothing done`,
    ]);
    expect(await left(key, OTHERS)).toEqual(whole(['node2', 'node3'], port, key));

    r = await gc(['--grace', '0', '--dry-run']);
    expect(r.code).toBe(0);
    expect(lineFor(r.lines, key)).toEqual([`jobbox: gc: would reclaim ${key} (port ${port}, job dir, containers on node2 node3): job is CANCELLED`]);
    expect(r.lines.at(-1)).toBe('jobbox: gc: dry run: would reclaim 1, keep 0; nothing changed');
    expect(await left(key, OTHERS)).toEqual(whole(['node2', 'node3'], port, key));

    r = await gc(['--grace', '0']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.lines).toEqual([
      `jobbox: gc: reclaimed ${key} (port ${port}, job dir, containers on node2 node3): job is CANCELLED`,
      'jobbox: gc: reclaimed 1, kept 0, failed 0',
    ]);
    expect(await left(key, OTHERS)).toEqual(nothing);

    // Idempotent: nothing left to do.
    r = await gc(['--grace', '0']);
    expect(r).toMatchObject({ code: 0, lines: ['jobbox: gc: reclaimed 0, kept 0, failed 0'] });
  });

  it('reclaims an attempt the job was requeued past, and keeps the current one until the job ends', async () => {
    const id = await submit('gc2', 'echo started\nsleep 300', ['-N1', '-w', 'node1', '-C', 'docker-deb12']);
    await started('gc2');
    // Requeued and held: Restarts=1, and it does not start again by itself.
    expect((await slurm(['scontrol', 'requeuehold', id])).exitCode).toBe(0);
    await waitFor('the requeue', async () => (await jobField(id, 'Restarts')) === '1' && (await jobField(id, 'JobState')) !== 'COMPLETING', 180);
    const state = await jobField(id, 'JobState');
    const old = await plant(id, '0', ['node2']);
    const current = await plant(id, '1', ['node3']);

    let r = await gc(['--grace', '0']);
    expect(r.code).toBe(0);
    expect(lineFor(r.lines, old.key)).toEqual([
      `jobbox: gc: reclaimed ${old.key} (port ${old.port}, job dir, containers on node2): job was requeued (restart 1, now ${state}): attempt 0 is over`,
    ]);
    expect(lineFor(r.lines, current.key)).toEqual([`jobbox: gc: keep ${current.key}: job is ${state}`]);
    expect(await left(old.key, OTHERS)).toEqual(nothing);
    expect(await left(current.key, OTHERS)).toEqual(whole(['node3'], current.port, current.key));

    expect((await slurm(['scancel', id])).exitCode).toBe(0);
    await waitFor('CANCELLED', async () => (await jobField(id, 'JobState')) === 'CANCELLED', 180);
    r = await gc(['--grace', '0']);
    expect(lineFor(r.lines, current.key)).toEqual([
      `jobbox: gc: reclaimed ${current.key} (port ${current.port}, job dir, containers on node3): job is CANCELLED`,
    ]);
    expect(await left(current.key, OTHERS)).toEqual(nothing);
  });

  it('reclaims a job slurmctld no longer knows ("Invalid job id specified"), and sweeps --nodes when the job dir is gone', async () => {
    // Ids far above the testbed's: slurmctld answers for them exactly as for a purged job.
    const base = 60_000_000 + Math.floor(Math.random() * 1_000_000);
    const purged = await plant(String(base), '0', ['node2', 'node3']);
    const noDir = await plant(String(base + 1), '0', ['node1', 'node3']);
    // A teardown that died after the job dir but before the claim, with a container still up.
    await rm(`${config.stateDir}/${noDir.key}`, { recursive: true });

    let r = await gc(['--grace', '0']);
    expect(r.code).toBe(0);
    expect(lineFor(r.lines, purged.key)).toEqual([
      `jobbox: gc: reclaimed ${purged.key} (port ${purged.port}, job dir, containers on node2 node3): Slurm does not know the job (finished and purged)`,
    ]);
    expect(lineFor(r.lines, noDir.key)).toEqual([
      `jobbox: gc: keep ${noDir.key}: Slurm does not know the job (finished and purged), but it has no hostfile to find its nodes by: run gc with --nodes`,
    ]);
    expect(await left(purged.key)).toEqual(nothing);
    expect(await left(noDir.key)).toEqual({ containers: ['node1', 'node3'], claims: [`claim.${noDir.key}.${noDir.port}`], dir: false });

    // A node it cannot reach (node9 has no host key): nothing of the attempt is removed, and gc fails.
    r = await gc(['--grace', '0', '--nodes', 'node[1-3],node9']);
    expect(r.code).toBe(1);
    expect(lineFor(r.lines, noDir.key)).toEqual([
      `jobbox: gc: could not reclaim ${noDir.key}, kept for the next run: nodes: failed on 1 of 4: ssh node9: no host key in ssh_known_hosts: ${config.sshKnownHosts}`,
    ]);
    expect(await left(noDir.key)).toEqual({ containers: ['node1', 'node3'], claims: [`claim.${noDir.key}.${noDir.port}`], dir: false });

    r = await gc(['--grace', '0', '--nodes', 'node[1-3]']);
    expect(lineFor(r.lines, noDir.key)).toEqual([
      `jobbox: gc: reclaimed ${noDir.key} (port ${noDir.port}, containers on node1 node2 node3): Slurm does not know the job (finished and purged)`,
    ]);
    expect(await left(noDir.key)).toEqual(nothing);
  });
});

// ---- LSF, through the bjobs stand-in ----

describe('jobbox gc on LSF (bjobs stand-in, test/harness/lsf/bin)', () => {
  it('does nothing when bjobs fails or is absent; reclaims DONE and "not found", keeps RUN', async () => {
    const base = 5_000_000 + Math.floor(Math.random() * 1_000_000);
    const done = await plant(String(base), 'node2', ['node2']);
    // An array element: bjobs is asked for `<id>[3]`.
    const run = await plant(String(base + 1), 'node3', ['node3'], 3);
    const stateFile = `${area}/bjobs.state`;
    const withBjobs = { PATH: `${BJOBS_BIN}:${PATH}`, JOBBOX_BJOBS_STATE: stateFile };
    const untouched = async () => {
      expect(await left(done.key)).toEqual(whole(['node2'], done.port, done.key));
      expect(await left(run.key)).toEqual(whole(['node3'], run.port, run.key));
    };

    await writeBjobsState(stateFile, 'down');
    let r = await gc(['--scheduler', 'lsf', '--grace', '0'], withBjobs);
    expect(r.code).toBe(1);
    for (const k of [done.key, run.key]) {
      expect(lineFor(r.lines, k)).toEqual([`jobbox: gc: keep ${k}: LSF could not be asked (bjobs: exit 255: LSF is down. Please wait...); nothing done`]);
    }
    await untouched();

    r = await gc(['--scheduler', 'lsf', '--grace', '0']);
    expect(r.code).toBe(1);
    for (const k of [done.key, run.key]) {
      expect(lineFor(r.lines, k)).toEqual([`jobbox: gc: keep ${k}: LSF could not be asked (bjobs: not found on PATH); nothing done`]);
    }
    await untouched();

    await writeBjobsState(stateFile, [{ id: base, stat: 'DONE' }, { id: base + 1, index: 3, stat: 'RUN' }]);
    r = await gc(['--scheduler', 'lsf', '--grace', '0'], withBjobs);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.lines).toEqual([
      `jobbox: gc: reclaimed ${done.key} (port ${done.port}, job dir, containers on node2): job is DONE`,
      `jobbox: gc: keep ${run.key}: job is RUN`,
      'jobbox: gc: reclaimed 1, kept 1, failed 0',
    ]);
    expect(await left(done.key)).toEqual(nothing);
    expect(await left(run.key)).toEqual(whole(['node3'], run.port, run.key));

    // LSF cleaned the finished job from mbatchd: "Job <id[3]> is not found".
    await writeBjobsState(stateFile, []);
    r = await gc(['--scheduler', 'lsf', '--grace', '0'], withBjobs);
    expect(r.lines).toEqual([
      `jobbox: gc: reclaimed ${run.key} (port ${run.port}, job dir, containers on node3): LSF does not know the job (finished and purged)`,
      'jobbox: gc: reclaimed 1, kept 0, failed 0',
    ]);
    expect(await left(run.key)).toEqual(nothing);
  });
});
