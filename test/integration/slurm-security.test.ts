import { chown, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { SCRIPT_MARKER, wrapperScript } from '../../src/scheduler/slurm-submit.js';
import { INSTALL, jobLogFrom, slurmClient, testbed, testbedStatus, waitFor, type TestbedStatus } from '../support/testbed.js';

// Issue 11, items 8 and 9: what Slurm prints or is told about a job is read exactly, and
// job_submit.lua cannot be walked around. Every case is a user's attempt on the real Slurm
// 22.05 cluster (partition "other" is not a jobbox queue), or a root hook run by hand on a node.
const HOME = '/home/jbuser1';
const CLI = `${INSTALL}/dist/cli.js`;
const WRAPPED = `${wrapperScript(CLI)}${SCRIPT_MARKER}\n`;
let tb: TestbedStatus;
let config: Config;
const { slurm, jobField } = slurmClient(() => tb.slurmConf);
const lua = () => `${tb.dir}/etc/job_submit.lua`;

/**
 * slurmctld reloads job_submit.lua when the file's mtime is past the one it loaded, in whole
 * seconds: each version gets one 2 s past both that and now.
 */
async function installLua(text: string): Promise<void> {
  const seconds = Math.max(Date.now() / 1000, (await stat(lua())).mtimeMs / 1000) + 2;
  await writeFile(lua(), text);
  await utimes(lua(), seconds, seconds);
}
/** This checkout's filter, as `testbed.sh up` installs it. */
async function installOurLua(): Promise<void> {
  await installLua((await execa('node', [CLI, 'slurm', 'job-submit-lua', '--config', tb.config])).stdout);
}

beforeAll(async () => {
  tb = await testbedStatus();
  expect(tb.slurm).toBe(true);
  config = await loadConfig(tb.config);
  jobboxLog = await jobLogFrom(config.logFile);
  await installOurLua();
});

function asUser(argv: string[]) {
  return execa('runuser', ['-u', 'jbuser1', '--', 'env', `SLURM_CONF=${tb.slurmConf}`, ...argv], { cwd: HOME, reject: false });
}

async function script(name: string, body: string): Promise<string> {
  const path = `${HOME}/${name}.sh`;
  await writeFile(path, body, { mode: 0o755 });
  await chown(path, 2001, 2001);
  return path;
}

/** sbatch as the user; resolves to the job id. */
async function submit(name: string, body: string, options: string[]): Promise<string> {
  const r = await asUser(['sbatch', '--parsable', '-o', `${HOME}/${name}.out`, ...options, await script(name, body)]);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

const ENDED = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL)$/;
const finished = (id: string) => waitFor(`job ${id} to end`, async () => ENDED.test(await jobField(id, 'JobState')));
const output = (name: string) => readFile(`${HOME}/${name}.out`, 'utf8');
const drained = async () => (await slurm(['sinfo', '-h', '-N', '-o', '%N %T'])).stdout.split('\n').filter((l) => /drain/.test(l));
let jobboxLog: (id: string) => Promise<string[]>;
/** The script slurmctld keeps for the job, to the last byte. */
const batchScript = async (id: string) =>
  (await execa('scontrol', ['write', 'batch_script', id, '-'], { env: { SLURM_CONF: tb.slurmConf }, stripFinalNewline: false })).stdout;

describe('slots come from the per-node lines of the job record, not from text the user set', () => {
  it('-N2 -n3 with Nodes=… CPU_IDs=0-63 in --comment and -J: the hostfile has the real 2+1', async () => {
    const id = await submit('sec1', '#!/bin/sh\ncat "$JOBBOX_HOSTFILE"\n', [
      '-N2', '-n3', '-w', 'node1,node2', '--comment', 'Nodes=node1 CPU_IDs=0-63', '-J', 'Nodes=node2 CPU_IDs=0-63',
    ]);
    await finished(id);
    expect(await jobField(id, 'JobState')).toBe('COMPLETED');
    expect(await output('sec1')).toBe('node1 slots=2\nnode2 slots=1\n');
  });

  it('a name that forges a whole per-node line: the Prolog cancels the job, no node drains', async () => {
    const id = await submit('sec2', '#!/bin/sh\necho ran\n', ['-N2', '-n3', '-w', 'node1,node2', '-J', 'x\n     Nodes=node2 CPU_IDs=0-63 Mem=0 GRES=']);
    await finished(id);
    expect(await jobField(id, 'JobState')).toBe('CANCELLED');
    expect(await output('sec2').catch(() => 'no output')).toBe('no output');
    expect((await jobboxLog(id)).join('\n')).toContain(`"err":"jobbox: scontrol show job: lists CPUs on a node twice for job ${id}: node2","msg":"prolog failed; cancelling the job"`);
    expect(await drained()).toEqual([]);
  });
});

describe('job_submit.lua: -p with several partitions', () => {
  it.each([
    [['-p', 'normal,other'], 'jobbox: partition: a jobbox partition cannot be listed with others (other is not one); use -p normal: normal,other'],
    [['-p', 'other,short'], 'jobbox: partition: a jobbox partition cannot be listed with others (other is not one); use -p short: other,short'],
    [['-p', 'normal,short'], 'jobbox: image: not allowed in partition short (allowed: deb12-mpich); use -p normal or -p gpu: deb12'],
    [['-p', 'normal,short', '-C', 'docker-deb12'], 'jobbox: image: not allowed in partition short (allowed: deb12-mpich); use -p normal or -p gpu: deb12'],
  ])('sbatch %j is refused', async (options, message) => {
    const r = await asUser(['sbatch', '--hold', ...options, await script('sec3', '#!/bin/sh\nid\n')]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(`sbatch: error: ${message}`);
  });

  it('-p normal,short -C docker-deb12-mpich: an image both allow, so the job runs in a container', async () => {
    const id = await submit('sec4', '#!/bin/sh\necho "pid1=$(cat /proc/1/comm)"\n', ['-p', 'normal,short', '-C', 'docker-deb12-mpich']);
    await finished(id);
    expect(await output('sec4')).toBe('pid1=docker-init\n');
  });
});

describe('job_submit.lua: a script with the marker line of its own', () => {
  it('is wrapped all the same and runs in the container, not on the node', async () => {
    const body = `#!/bin/sh\necho "pid1=$(cat /proc/1/comm)"\n${SCRIPT_MARKER}\n`;
    const id = await submit('sec5', body, []);
    expect(await batchScript(id)).toBe(`${WRAPPED}${body}`);
    await finished(id);
    expect(await output('sec5')).toBe('pid1=docker-init\n');
  });

  it('a script submitted already wrapped is not wrapped twice', async () => {
    const body = `${WRAPPED}#!/bin/sh\nid -u\n`;
    const id = await submit('sec6', body, ['--hold']);
    try {
      expect(await batchScript(id)).toBe(body);
    } finally {
      await slurm(['scancel', id]);
    }
  });
});

describe('job_submit.lua: scontrol update partition=', () => {
  it.each([
    ['into a jobbox partition (the script was never wrapped)', 'other', 'normal'],
    ['out of one', 'normal', 'other'],
    ['between two', 'normal', 'short'],
  ])('%s is refused, for the user and for root', async (_name, from, to) => {
    // Job ids start again at 1 with every fresh testbed while slurmctld's log is kept: only
    // what it logs from here on is this job's.
    const logFile = `${tb.dir}/log/slurmctld.log`;
    const logStart = (await readFile(logFile)).length;
    const id = await submit('sec7', '#!/bin/sh\nid\n', ['--hold', '-p', from, ...(to === 'short' ? ['-C', 'docker-deb12-mpich'] : [])]);
    try {
      const user = await asUser(['scontrol', 'update', `jobid=${id}`, `partition=${to}`]);
      expect(user.exitCode).not.toBe(0);
      // 22.05 gives a job_modify's message to slurmctld's log only; the user sees the code.
      expect(user.stderr).toContain(`Access/permission denied for job ${id}`);
      expect((await slurm(['scontrol', 'update', `jobid=${id}`, `partition=${to}`])).exitCode).not.toBe(0);
      expect(await jobField(id, 'Partition')).toBe(from);
      const logged = (await readFile(logFile)).subarray(logStart).toString('utf8').split('\n');
      expect(logged.filter((l) => l.endsWith(`lua: jobbox: partition: job ${id} cannot move into or out of a jobbox partition (it is in ${from}): ${to}`))).toHaveLength(2);
    } finally {
      await slurm(['scancel', id]);
    }
  });
});

describe('the Prolog refuses a batch script that would run outside the container', () => {
  it('a job that reached partition normal unwrapped (job_submit.lua bypassed) is cancelled before it runs', async () => {
    await rm(`${HOME}/sec8.ran`, { force: true });
    // What a site without job_submit.lua, or a hole in it, would let through.
    await installLua('function slurm_job_submit() return slurm.SUCCESS end\nfunction slurm_job_modify() return slurm.SUCCESS end\nreturn slurm.SUCCESS\n');
    let id: string;
    try {
      id = await submit('sec8', `#!/bin/sh\ntouch ${HOME}/sec8.ran\n`, ['--hold', '-p', 'normal', '-C', 'docker-deb12']);
    } finally {
      await installOurLua();
    }
    try {
      expect(await batchScript(id)).toBe(`#!/bin/sh\ntouch ${HOME}/sec8.ran\n`);
      // Our filter is back before the job may start.
      expect((await asUser(['sbatch', '--hold', '-p', 'normal,other', `${HOME}/sec8.sh`])).exitCode).not.toBe(0);
      await slurm(['scontrol', 'release', id]);
      await finished(id);
    } finally {
      await slurm(['scancel', id]);
    }
    expect(await jobField(id, 'JobState')).toBe('CANCELLED');
    expect(await stat(`${HOME}/sec8.ran`).catch(() => 'never ran')).toBe('never ran');
    expect((await jobboxLog(id)).join('\n')).toContain(
      `"err":"jobbox: batch script: does not start with the wrapper of job_submit.lua (${CLI}), so it would run outside the container: ${id}","msg":"prolog failed; cancelling the job"`,
    );
    expect(await drained()).toEqual([]);
  });
});

// The Prolog as slurmd runs it (the hook launcher, as root, in the node's namespaces), with the
// environment slurmd would give it for a held job of ours, so nothing else on the cluster moves.
async function prologByHand(node: string, env: Record<string, string>, args: string[] = []) {
  const vars = Object.entries({ SLURM_CONF: tb.slurmConf, SLURMD_NODENAME: node, SLURM_JOB_USER: 'jbuser1', SLURM_JOB_UID: '2001', ...env });
  return testbed(['exec', node, '--', 'env', '-i', ...vars.map(([k, v]) => `${k}=${v}`), `${INSTALL}/hooks/slurm/prolog`, ...args], { reject: false });
}

describe('a Prolog that cannot load its config', () => {
  const broken = ['--config', '/nonexistent/jobbox.ini'];
  const configError = 'jobbox: config: cannot read the file (ENOENT): /nonexistent/jobbox.ini';

  it('cancels a jobbox job from its batch host only, and exits 0', async () => {
    const id = await submit('sec9', '#!/bin/sh\nid\n', ['--hold', '-N2']);
    const env = { SLURM_JOB_ID: id, SLURM_JOB_PARTITION: 'normal', SLURM_NODELIST: 'node[1-2]', SLURM_JOB_CONSTRAINTS: await jobField(id, 'Features') };
    try {
      const other = await prologByHand('node2', env, broken);
      expect({ code: other.exitCode, stderr: String(other.stderr).trim() }).toEqual({ code: 0, stderr: configError });
      expect(await jobField(id, 'JobState')).toBe('PENDING');
      const batchHost = await prologByHand('node1', env, broken);
      expect({ code: batchHost.exitCode, stderr: String(batchHost.stderr).trim() }).toEqual({ code: 0, stderr: configError });
      await waitFor('the cancel', async () => (await jobField(id, 'JobState')) === 'CANCELLED', 30);
    } finally {
      await slurm(['scancel', id]);
    }
  });

  it('leaves a job of another partition alone, and exits 0', async () => {
    const id = await submit('sec10', '#!/bin/sh\nid\n', ['--hold', '-p', 'other']);
    try {
      const env = { SLURM_JOB_ID: id, SLURM_JOB_PARTITION: 'other', SLURM_NODELIST: 'node1' };
      const r = await prologByHand('node1', env, broken);
      expect({ code: r.exitCode, stderr: String(r.stderr).trim() }).toEqual({ code: 0, stderr: configError });
      expect(await jobField(id, 'JobState')).toBe('PENDING');
    } finally {
      await slurm(['scancel', id]);
    }
  });

  it('JOBBOX_CONFIG in its environment is not read: /etc/jobbox/jobbox.ini is', async () => {
    const r = await prologByHand('node1', { SLURM_JOB_ID: '1', SLURM_JOB_PARTITION: 'other', SLURM_NODELIST: 'node1', JOBBOX_CONFIG: '/nonexistent/jobbox.ini' });
    expect({ code: r.exitCode, stderr: String(r.stderr) }).toEqual({ code: 0, stderr: '' });
  });
});

afterAll(async () => {
  for (let n = 1; n <= 10; n++) {
    for (const ext of ['sh', 'out', 'ran']) await rm(`${HOME}/sec${n}.${ext}`, { force: true });
  }
});
