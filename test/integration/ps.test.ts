import { mkdtemp, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PsRow } from '../../src/plan/ps.js';
import { BJOBS_BIN, lsfJobEnv, writeBjobsState } from '../harness/lsf/harness.js';
import { ALLOC, hook, lsfFixture, spec } from '../support/lsf-fixture.js';
import { ENGINE, INSTALL, onNode, testbed } from '../support/testbed.js';

// `jobbox ps` on the real testbed, through the installed CLI, as root on node1 (the admin host):
// a live LSF job started by the real pre-exec, and an orphan container that has lost its claim
// and job dir (as a node that was down during the post-exec keeps one). LSF's answers come
// from the bjobs stand-in (test/harness/lsf/bin): there is no LSF here.
const JOB = 62_001;
const ORPHAN = 'jobbox-62999';
let configPath: string;
let hooks: { preExec: string; postExec: string };
let stateFile: string;
let area: string;
const env = () => lsfJobEnv(spec({}), JOB, ALLOC, { JOBBOX_IMAGE: 'deb12' });

beforeAll(async () => {
  ({ configPath, hooks } = await lsfFixture());
  area = await mkdtemp('/var/lib/jobbox-testbed/shared/ps-test-');
  stateFile = `${area}/bjobs.state`;
  await writeBjobsState(stateFile, [{ id: JOB, stat: 'RUN' }]);
  expect(await hook(hooks.preExec, env())).toEqual({ code: 0, stderr: '' });
  // The orphan: the job's own image by digest, its labels, and nothing else of it anywhere.
  const image = await onNode('node2', [ENGINE, 'inspect', '--format', '{{.Config.Image}}', `jobbox-${JOB}`]);
  await onNode('node2', [ENGINE, 'run', '--detach', '--name', ORPHAN, '--label', 'org.jobbox.job=62999', '--label', 'org.jobbox.index=0',
    '--label', 'org.jobbox.attempt=node1', '--label', 'org.jobbox.owner=jbuser1', '--entrypoint', 'sleep', image, '600']);
});

afterAll(async () => {
  await hook(hooks.postExec, env());
  await onNode('node2', [ENGINE, 'rm', '-f', ORPHAN]).catch(() => '');
  await rm(area, { recursive: true, force: true });
});

async function ps(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const vars = [`PATH=${BJOBS_BIN}:/usr/bin:/bin:/usr/sbin:/sbin`, `JOBBOX_BJOBS_STATE=${stateFile}`];
  const r = await testbed(['exec', 'node1', '--', 'env', '-i', ...vars, `${INSTALL}/dist/cli.js`, 'ps', '--config', configPath, '--scheduler', 'lsf', ...args], { reject: false });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
const rowsOf = (stdout: string) => (JSON.parse(stdout) as { containers: PsRow[] }).containers;
const view = (rows: PsRow[]) => rows.map((r) => [r.node, r.name, r.key, r.owner, r.state, r.flags, r.gc]);

describe('jobbox ps', () => {
  it('lists the job\'s containers on every node and the orphan, with what is amiss and what gc would do', async () => {
    const r = await ps(['--nodes', 'node[1-3]', '--json']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const rows = rowsOf(r.stdout);
    const key = `${JOB}.0.node1`;
    expect(view(rows)).toEqual([
      ...['node1', 'node2', 'node3'].map((n) => [n, `jobbox-${JOB}`, key, 'jbuser1', 'running', [], 'keep: job is RUN']),
      ['node2', ORPHAN, '62999.0.node1', 'jbuser1', 'running', ['no job dir', 'no port claim', 'job over'],
        `nothing: gc finds attempts by their claim or job dir, and this one has neither; ${ENGINE} rm -f ${ORPHAN} on node2`],
    ]);
    // Every container runs the job's one digest, and is seconds old.
    expect(new Set(rows.map((x) => x.image)).size).toBe(1);
    expect(rows[0]!.image).toMatch(/@sha256:[0-9a-f]{64}$/);
    for (const x of rows) expect(x.ageS).toBeLessThan(600);
  });

  it('prints a table, and finds the nodes from the job dirs without --nodes', async () => {
    const r = await ps([]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NODE +CONTAINER +ATTEMPT +OWNER +STATE +AGE +IMAGE +FLAGS +GC$/);
    expect(lines.filter((l) => l.includes(`jobbox-${JOB} `))).toHaveLength(3);
    expect(lines.find((l) => l.includes(ORPHAN))).toMatch(/^node2 +jobbox-62999 +62999\.0\.node1 +jbuser1 +running +\d+s +\S+@sha256:[0-9a-f]{12} +no job dir,no port claim,job over +nothing: /);
  });

  it('once LSF says the job is over: flags it, and says gc keeps it until the grace has passed', async () => {
    await writeBjobsState(stateFile, [{ id: JOB, stat: 'DONE' }]);
    const rows = rowsOf((await ps(['--nodes', 'node[1-3]', '--json'])).stdout).filter((x) => x.name === `jobbox-${JOB}`);
    expect(rows).toHaveLength(3);
    for (const x of rows) {
      expect(x.flags).toEqual(['job over']);
      expect(x.gc).toMatch(/^keep: job is DONE, but changed \d+ s ago \(grace 600 s\)$/);
    }
    await writeBjobsState(stateFile, [{ id: JOB, stat: 'RUN' }]);
  });

  it('exits 1 with the node it could not list, and still lists the others', async () => {
    const r = await ps(['--nodes', 'node[1-3],nosuchnode', '--json']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { unreachable: { node: string; error: string }[]; containers: PsRow[] };
    expect(out.unreachable.map((u) => u.node)).toEqual(['nosuchnode']);
    expect(out.containers.filter((x) => x.name === `jobbox-${JOB}`)).toHaveLength(3);
  });

  it('refuses another user than root with one line', async () => {
    const r = await testbed(['exec', 'node1', '--', 'setpriv', '--reuid=2001', '--regid=2001', '--clear-groups', `${INSTALL}/dist/cli.js`, 'ps', '--config', configPath, '--scheduler', 'lsf'], { reject: false });
    expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 2, stderr: 'jobbox: ps: must run as root: it reads port_dir and uses the admin ssh key; uid: 2001' });
  });
});

