import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusPath } from '../../src/plan/status.js';
import { submitLsf, type LsfQueueHooks } from '../harness/lsf/harness.js';
import { claims, containers, jobDirs, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { INSTALL, onNode, testbed } from '../support/testbed.js';

// "Why did my job fail?": the start record a pre-exec keeps for the job's owner, read back with
// `jobbox status` as the owner, as another user and as root, on the real testbed through the
// LSF contract harness (not LSF: test/harness/lsf/README.md). The suite's config names a
// `bpost` that is a recording stand-in written here, not LSF's: it shows what the pre-exec
// runs, as whom and with which environment, not what LSF then shows (docs/status.md).
let fx: LsfFixture;
let area: string;
let suiteConfig: string;
let hooks: LsfQueueHooks;
const jobs: number[] = [];

beforeAll(async () => {
  fx = await lsfFixture();
  // Root's, below the testbed's shared dir, as a config and a site's bpost must be.
  area = await mkdtemp(join(dirname(fx.config.stateDir), 'status-test-'));
  await chmod(area, 0o755);
  const bpost = join(area, 'bpost');
  await writeFile(bpost, '#!/bin/sh\n# A stand-in for LSF\'s bpost: records its argv (a tab after each word) and its environment.\n{ for a in "$@"; do printf \'%s\\t\' "$a"; done; printf \'\\n\'; } >> "$0.calls"\nenv > "$0.env"\n', { mode: 0o755 });
  suiteConfig = join(area, 'jobbox.ini');
  const base = await readFile(fx.configPath, 'utf8');
  await writeFile(suiteConfig, base.replace(/^\[jobbox\]\n/m, `[jobbox]\nbpost = ${bpost}\n`), { mode: 0o644 });
  hooks = {
    preExec: `${INSTALL}/hooks/lsf/pre-exec --config ${suiteConfig}`,
    postExec: `${INSTALL}/hooks/lsf/post-exec --config ${suiteConfig}`,
    jobStarter: `${INSTALL}/hooks/lsf/starter --config ${suiteConfig} "%USRCMD"`,
  };
});

afterAll(async () => {
  for (const id of jobs) await rm(statusPath(fx.config.stateDir, { id: String(id), index: 0 }), { force: true });
  if (area) await rm(area, { recursive: true, force: true });
});

/** `jobbox status ARGS…` on node1, as `user` (root: no runuser). */
async function status(user: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const as = user === 'root' ? [] : ['runuser', '-u', user, '--'];
  const r = await testbed(['exec', 'node1', '--', ...as, '/usr/bin/node', `${INSTALL}/dist/cli.js`, 'status', ...args, '--config', suiteConfig], { reject: false, stripFinalNewline: false });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The stand-in bpost's calls so far, each its argv. */
async function bpostCalls(): Promise<string[][]> {
  const text = await readFile(join(area, 'bpost.calls'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => l.split('\t').slice(0, -1));
}

describe('jobbox status: why did my job fail?', () => {
  it('a start that failed on node3 (no copy, registry down), then one that worked: the owner and root see each, another user sees nothing', async () => {
    const ref = fx.config.images.get('deb12')!.ref;
    // node1 and node2 hold the tag's current build, node3 none.
    for (const node of ['node1', 'node2']) await onNode(node, ['docker', 'pull', '-q', ref]);
    // Every copy of the repository on node3, by id: a tag alone may not be the last name of its image.
    await onNode('node3', ['sh', '-c', 'ids=$(docker images -q "$1" | sort -u); [ -z "$ids" ] || docker rmi -f $ids', 'sh', ref.slice(0, ref.lastIndexOf(':'))]);
    await testbed(['registry', 'stop']);
    let failed;
    try {
      // The user's own LSF_ENVDIR must not reach root's bpost.
      failed = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'true', maxRequeues: 0, env: { LSF_ENVDIR: '/home/jbuser1/lsf' } }));
    } finally {
      await testbed(['registry', 'start']);
    }
    const id = failed.jobId;
    jobs.push(id);
    expect(failed.preExec.map((p) => p.code)).toEqual([1]);
    const line = failed.preExec[0]!.stderr.trimEnd();
    expect(line).toMatch(/^jobbox: nodes: failed on 1 of 3: node3: pull: the pull of the job's digest failed /);
    // The rollback took the job dir; the record stays.
    expect(await containers(id)).toEqual([]);
    expect(await claims(fx.config, id)).toEqual([]);
    expect(await jobDirs(fx.config, id)).toEqual([]);

    const mine = await status('jbuser1', [String(id)]);
    expect(mine).toMatchObject({ code: 0, stderr: '' });
    const lines = mine.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^job ${id}: failed \\(exit 1: may heal, the job is requeued\\); last start \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC, [\\d.]+ s; owner jbuser1, attempt node1, queue normal, image ${ref.replaceAll('.', '\\.')} = sha256:[0-9a-f]{64} \\(pinned by the first node\\), port \\d+$`));
    expect(lines[1]).toMatch(/^node +connect +image +port +start +sshd$/);
    // Columns: connect, image, port, start, sshd. node1 pinned the digest (its image step) and
    // started; node2 held the digest (no image step) and started; node3's run found no such
    // image and its pull failed, within its start. The rollback then removed the two containers.
    expect(lines[2]).toMatch(/^node1( +[\d.]+ s){5}$/);
    expect(lines[3]).toMatch(/^node2 +[\d.]+ s +- +[\d.]+ s +[\d.]+ s +[\d.]+ s$/);
    expect(lines[4]).toMatch(/^node3 +[\d.]+ s +failed [\d.]+ s +[\d.]+ s +failed [\d.]+ s +-$/);
    expect(lines.slice(5)).toEqual([line]);

    const json = JSON.parse((await status('jbuser1', [String(id), '--json'])).stdout) as { outcome: string; nodes: { host: string; error?: string }[] };
    expect(json.outcome).toBe('failed');
    expect(json.nodes.map((n) => [n.host, n.error?.slice(0, 48)])).toEqual([['node1', undefined], ['node2', undefined], ['node3', "node3: pull: the pull of the job's digest failed"]]);

    // Another user: one line, exit 1, the same as for a job that never was.
    const refusal = (n: string) => ({ code: 1, stdout: '', stderr: `jobbox: status: job ${n}: not yours, or no start recorded: ${n}\n` });
    expect(await status('jbuser2', [String(id)])).toEqual(refusal(String(id)));
    expect(await status('jbuser2', [String(id), '--json'])).toEqual(refusal(String(id)));
    expect(await status('jbuser1', ['999999999'])).toEqual(refusal('999999999'));
    expect(await status('jbuser2', ['999999999'])).toEqual(refusal('999999999'));
    expect(await status('root', [String(id)])).toEqual(mine);

    // The pre-exec posted the line to the job (the stand-in): as one argv word, with PATH alone.
    expect(await bpostCalls()).toEqual([['-i', '0', '-d', `${line} (jobbox status ${id})`, String(id)]]);
    expect((await readFile(join(area, 'bpost.env'), 'utf8')).split('\n').filter((l) => /^(LSF_ENVDIR|PATH)=/.test(l)).sort()).toEqual(['PATH=/usr/bin:/bin:/usr/sbin:/sbin']);

    // LSF requeues; the registry is back; the job starts, runs and ends.
    const again = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'true', jobId: id }));
    expect(again.state).toBe('DONE');
    expect(await jobDirs(fx.config, id)).toEqual([]);
    const done = await status('jbuser1', [String(id)]);
    expect(done.code).toBe(0);
    const rows = done.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(new RegExp(`^job ${id}: started; last start .*; owner jbuser1, attempt node1, queue normal, image .* = sha256:[0-9a-f]{64} \\(pinned by the registry\\), port \\d+$`));
    // Only node3 did anything for the image: its run found none, and it pulled the digest.
    expect(rows.slice(2)).toEqual([
      expect.stringMatching(/^node1 +[\d.]+ s +- +[\d.]+ s +[\d.]+ s +[\d.]+ s$/),
      expect.stringMatching(/^node2 +[\d.]+ s +- +[\d.]+ s +[\d.]+ s +[\d.]+ s$/),
      expect.stringMatching(/^node3( +[\d.]+ s){5}$/),
    ]);
    expect(await status('jbuser2', [String(id)])).toEqual(refusal(String(id)));
    // The start that worked replaced the failure's message, so bjobs -l no longer says it failed.
    const calls = await bpostCalls();
    expect(calls).toHaveLength(2);
    expect(calls[1]![3]).toMatch(new RegExp(`^jobbox: job ${id}: started on 3 nodes, port \\d+, image .*@sha256:[0-9a-f]{64} \\(jobbox status ${id}\\)$`));
  });

  it('a job that started the first time posts nothing', async () => {
    const before = (await bpostCalls()).length;
    const run = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'true' }));
    jobs.push(run.jobId);
    expect(run.state).toBe('DONE');
    expect((await status('jbuser1', [String(run.jobId)])).stdout).toMatch(new RegExp(`^job ${run.jobId}: started;`));
    expect((await bpostCalls()).length).toBe(before);
  });
});
