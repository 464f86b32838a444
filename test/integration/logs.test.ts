import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lsfJobEnv } from '../harness/lsf/harness.js';
import { ALLOC, hook, spec } from '../support/lsf-fixture.js';
import { INSTALL, onNode, testbed, testbedStatus } from '../support/testbed.js';

// `jobbox logs` on the real testbed, through the installed CLI, as root on node1: the lines of
// real LSF jobs started and ended by the installed hooks, found in the log and in a rotation
// that logrotate would have compressed. The testbed's nodes share one file system, so every
// node reads the same log file: the merge must print each line once.
let area: string;
let config: string;
const line = (script: string) => `${INSTALL}/hooks/lsf/${script} --config ${config}`;
const env = (jobId: number) => lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' });

async function logs(args: string[], as: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await testbed(['exec', 'node1', '--', ...as, `${INSTALL}/dist/cli.js`, 'logs', '--config', config, ...args], { reject: false });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

beforeAll(async () => {
  const tb = await testbedStatus();
  area = await mkdtemp('/var/lib/jobbox-testbed/shared/logs-test-');
  await chmod(area, 0o755);
  await mkdir(`${area}/log`, { mode: 0o700 });
  config = `${area}/jobbox.ini`;
  await writeFile(config, (await readFile(tb.config, 'utf8')).replace(/^log_file = .*$/m, `log_file = ${area}/log/jobbox.log`), { mode: 0o644 });
});

afterAll(async () => {
  await hook(line('post-exec'), env(64_002));
  await rm(area, { recursive: true, force: true });
});

describe('jobbox logs', () => {
  it('finds a finished job\'s lines in a compressed rotation, and a running job\'s from its nodes, each line once, in time order', async () => {
    expect(await hook(line('pre-exec'), env(64_001))).toEqual({ code: 0, stderr: '' });
    expect(await hook(line('post-exec'), env(64_001))).toEqual({ code: 0, stderr: '' });
    // As logrotate leaves it after two rotations (rename, then compress on the next).
    await onNode('node1', ['sh', '-c', 'mv "$1" "$1.1" && gzip "$1.1"', 'sh', `${area}/log/jobbox.log`]);
    expect(await hook(line('pre-exec'), env(64_002))).toEqual({ code: 0, stderr: '' });

    const done = await logs(['64001', '--nodes', 'node2']);
    expect({ code: done.code, stderr: done.stderr }).toEqual({ code: 0, stderr: '' });
    const msgs = done.stdout.trimEnd().split('\n').map((l) => / attempt node1: ([^{]*?)(?: \{|$)/.exec(l)?.[1]);
    expect(msgs).toContain('user variables kept out of the container');
    expect(msgs).toContain('job started on every node');
    expect(msgs.at(-1)).toBe('job torn down on every node');
    expect(done.stdout).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC node1 (DEBUG|INFO ) attempt node1: /);

    // Running: the nodes come from its hostfile; all three hold the same file, each line is shown once.
    const running = await logs(['64002', '--json']);
    expect(running.code).toBe(0);
    const lines = running.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { job: string; time: number; msg: string });
    expect(lines.every((l) => l.job === '64002')).toBe(true);
    expect(lines.map((l) => l.msg).filter((m) => m === 'job started on every node')).toHaveLength(1);
    expect(lines.map((l) => l.time)).toEqual([...lines.map((l) => l.time)].sort((a, b) => a - b));
  });

  it('says so, with exit 1, when no line names the job; refuses another user', async () => {
    const none = await logs(['64999']);
    expect(none).toEqual({ code: 1, stdout: '', stderr: `jobbox: logs: no line of job 64999 in ${area}/log/jobbox.log on node1 (once the job is gone, name its first host with --nodes: jobbox status shows it)` });
    const user = await logs(['64001'], ['setpriv', '--reuid=2001', '--regid=2001', '--clear-groups']);
    expect({ code: user.code, stderr: user.stderr }).toEqual({ code: 2, stderr: 'jobbox: logs: must run as root: the log is root\'s alone (0600); uid: 2001' });
  });
});
