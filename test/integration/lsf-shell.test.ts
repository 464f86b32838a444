import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lsfJobEnv } from '../harness/lsf/harness.js';
import { containers, hook, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { INSTALL, testbed } from '../support/testbed.js';

// `jobbox exec` and `jobbox shell` from within an LSF job: as the job's owner on its first host,
// with the environment LSF gives the job's processes (LSB_JOBID, LSB_HOSTS, …, as the contract
// harness builds it), while the job's containers run: after its pre-exec, before its post-exec.
const CLI = `${INSTALL}/dist/cli.js`;
const JOB = 77001;
let fx: LsfFixture;
let env: Record<string, string>;

beforeAll(async () => {
  fx = await lsfFixture();
  env = lsfJobEnv(spec({}), JOB, [{ name: 'node1', slots: 1 }, { name: 'node2', slots: 1 }], { JOBBOX_IMAGE: 'deb12' });
  expect(await hook(fx.hooks.preExec, env)).toEqual({ code: 0, stderr: '' });
});

afterAll(async () => {
  if (fx) expect((await hook(fx.hooks.postExec, env)).code).toBe(0);
  expect(await containers(JOB)).toEqual([]);
});

/** A command line as jbuser1 on node1, in the job's environment alone; its exit status, stdout and stderr (final newline off). */
async function asOwner(line: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const r = await testbed(['exec', 'node1', '--', 'runuser', '-u', 'jbuser1', '--', 'env', '-i', ...vars, 'sh', '-c', line], { reject: false });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('jobbox exec and jobbox shell from within an LSF job', () => {
  it('exec runs a command in the first container, or in --node\'s, with its exit status; a node not in the job is refused', async () => {
    expect(await asOwner(`/usr/bin/node ${CLI} exec --config ${fx.configPath} -- cat /proc/1/comm`)).toEqual({ code: 0, stdout: 'docker-init', stderr: '' });
    const other = await asOwner(`/usr/bin/node ${CLI} exec --config ${fx.configPath} --node node2 -- sh -c 'echo "on $(hostname) in $(cat /proc/1/comm)"; exit 4'`);
    expect([other.code, other.stdout]).toEqual([4, 'on node2 in docker-init']);
    expect(await asOwner(`/usr/bin/node ${CLI} exec --config ${fx.configPath} --node node3 -- true`)).toEqual({
      code: 2,
      stdout: '',
      stderr: `jobbox: --node: not a node of job ${JOB} (its nodes: node1 node2): node3`,
    });
  });

  it('shell opens a login shell on a terminal in the first container', async () => {
    // script(1) gives the shell its terminal; the shell reads its commands from it.
    const r = await asOwner(`printf 'tty; cat /proc/1/comm; exit 3\\n' | script -qec '/usr/bin/node ${CLI} shell --config ${fx.configPath}' /dev/null`);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r?\n/);
    expect(r.stdout).toMatch(/docker-init\r?\n/);
  });

  it('another user, with the job\'s environment, gets nothing', async () => {
    const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const r = await testbed(['exec', 'node1', '--', 'runuser', '-u', 'jbuser2', '--', 'env', '-i', ...vars, '/usr/bin/node', CLI, 'exec', '--config', fx.configPath, '--', 'true'], { reject: false });
    // The job names its owner (LSB_JOB_EXECUSER); the job's key is the owner's alone.
    expect([r.exitCode, String(r.stdout), String(r.stderr)]).toEqual([99, '', expect.stringMatching(/^jobbox: run: must run as the job owner jbuser1, not uid: \d+$/)]);
  });
});
