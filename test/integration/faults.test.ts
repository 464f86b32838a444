import { link, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import { lsfJobEnv, submitLsf, type LsfQueueHooks } from '../harness/lsf/harness.js';
import { ALLOC, containers, hook, lsfFixture, spec } from '../support/lsf-fixture.js';
import * as fixture from '../support/lsf-fixture.js';
import { onNode, testbed, waitFor } from '../support/testbed.js';

// The fault catalogue on the real testbed. After each fault: nothing leaked (containers,
// claims, job dirs) and the scheduler-facing result is the right one (LSF exit codes).
let config: Config;
let hooks: LsfQueueHooks;
beforeAll(async () => ({ config, hooks } = await lsfFixture()));

const claims = (jobId: number) => fixture.claims(config, jobId);
const jobDirs = (jobId: number) => fixture.jobDirs(config, jobId);
async function expectNothingLeft(jobId: number): Promise<void> {
  expect({ containers: await containers(jobId), claims: await claims(jobId), dirs: await jobDirs(jobId) }).toEqual({ containers: [], claims: [], dirs: [] });
}
/** Another job's claim on every port in range but `free`, as its pre-execs would make them; returns the undo. */
async function holdPortsBut(free: number[]): Promise<() => Promise<void>> {
  const made: string[] = [];
  await mkdir(`${config.portDir}/claims`, { recursive: true, mode: 0o755 });
  for (let p = config.portRange.first; p <= config.portRange.last; p++) {
    if (free.includes(p)) continue;
    const file = `${config.portDir}/port.${p}`;
    await writeFile(file, '', { flag: 'a', mode: 0o644 });
    const other = `${config.portDir}/claims/claim.69999.0.node9.${p}`;
    await link(file, other).catch(() => undefined);
    made.push(other);
  }
  return async () => void (await Promise.all(made.map((f) => rm(f, { force: true }))));
}
const envOf = (jobId: number, hosts = ALLOC) => lsfJobEnv(spec({}), jobId, hosts, { JOBBOX_IMAGE: 'deb12' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('faults', () => {
  it('1. SIGKILL of pre-exec in the middle of the fan-out, then post-exec: nothing left', async () => {
    const jobId = 70001;
    const vars = Object.entries({ ...envOf(jobId), PATH: '/bin:/usr/bin:/sbin:/usr/sbin' }).map(([k, v]) => `${k}=${v}`);
    // node3 drops every connect to the job port range, so pre-exec is held in the fan-out, at
    // node3's sshd barrier, with a container on every node: without it, a fast pre-exec may be
    // done before the kill lands.
    const drop = ['INPUT', '-p', 'tcp', '--dport', `${config.portRange.first}:${config.portRange.last}`, '-j', 'DROP'];
    await onNode('node3', ['iptables', '-I', ...drop]);
    const pidFile = `/tmp/jobbox-fault1-${process.pid}.pid`;
    try {
      // Pre-exec in its own session, its pid recorded, so its whole process group can be killed
      // as LSF's JOB_PREPROC_TIMEOUT does.
      const run = testbed(['exec', 'node1', '--', 'env', '-i', ...vars, 'setsid', '/bin/sh', '-c', `echo $$ > ${pidFile}; exec ${hooks.preExec} </dev/null`], { reject: false });
      await waitFor('a container of the job on every node', async () => (await containers(jobId)).length === 3, 60);
      await onNode('node1', ['kill', '-s', 'KILL', '--', `-${(await readFile(pidFile, 'utf8')).trim()}`]);
      expect((await run).exitCode).not.toBe(0);
    } finally {
      await onNode('node3', ['iptables', '-D', ...drop]);
      await rm(pidFile, { force: true });
    }
    const post = await hook(hooks.postExec, envOf(jobId));
    expect(post.code).toBe(0);
    await expectNothingLeft(jobId);
  });

  it('2. one node unreachable during pre-exec: every node rolled back, exit 1 (requeue)', async () => {
    await testbed(['link', 'node3', 'down']);
    let pre;
    try {
      pre = await hook(hooks.preExec, envOf(70002));
    } finally {
      await testbed(['link', 'node3', 'up']);
    }
    expect(pre.code).toBe(1);
    expect(pre.stderr).toMatch(/^jobbox: nodes: failed on 1 of 3: ssh node3:22: /);
    await expectNothingLeft(70002);
  });

  it('3. dockerd stopped on one node: rolled back, exit 1; runs once dockerd is back', async () => {
    await testbed(['dockerd', 'node2', 'stop']);
    let failed;
    try {
      failed = await submitLsf(hooks, spec({ app: 'docker-deb12', jobId: 70003, maxRequeues: 0 }));
    } finally {
      await testbed(['dockerd', 'node2', 'start']);
    }
    expect(failed.preExec[0]).toMatchObject({ code: 1 });
    expect(failed.preExec[0]!.stderr).toContain('node2: ');
    await expectNothingLeft(70003);
    expect((await submitLsf(hooks, spec({ app: 'docker-deb12', jobId: 70003 }))).state).toBe('DONE');
    await expectNothingLeft(70003);
  });

  it('5. port space exhausted: a clear error, exit 1 (requeue), nothing taken', async () => {
    const undo = await holdPortsBut([]);
    try {
      const pre = await hook(hooks.preExec, envOf(70005));
      expect(pre).toEqual({ code: 1, stderr: `jobbox: ports: no free port in ${config.portRange.first}-${config.portRange.last}: ${config.portDir}` });
      await expectNothingLeft(70005);
    } finally {
      await undo();
    }
  });

  it('12. the job port is taken on one node by another program: pre-exec takes another; with none left, exit 1 and nothing taken', async () => {
    const [taken, free] = [config.portRange.first, config.portRange.first + 1];
    const undo = await holdPortsBut([taken, free]);
    // Not a job's sshd: jobbox must see the port as busy on node2 and pass it by.
    const pid = await onNode('node2', ['sh', '-c', `node -e 'require("net").createServer().listen(${taken})' >/dev/null 2>&1 & echo $!`]);
    try {
      await waitFor('the listener on node2', async () => (await onNode('node2', ['ss', '-Htln', `sport = :${taken}`])) !== '', 10);
      // The allocator may try either port first; the job must end up on the free one.
      expect(await hook(hooks.preExec, envOf(70012))).toEqual({ code: 0, stderr: '' });
      expect(await claims(70012)).toEqual([`claim.70012.0.node1.${free}`]);
      expect(await containers(70012)).toHaveLength(3);
      expect((await hook(hooks.postExec, envOf(70012))).code).toBe(0);
      await expectNothingLeft(70012);

      // Only the busy port left.
      const undoFree = await holdPortsBut([taken]);
      try {
        expect(await hook(hooks.preExec, envOf(70013))).toEqual({ code: 1, stderr: `jobbox: ports: no free port in ${config.portRange.first}-${config.portRange.last}: ${config.portDir}` });
        await expectNothingLeft(70013);
      } finally {
        await undoFree();
      }
    } finally {
      await onNode('node2', ['kill', pid.trim()]);
      await undo();
    }
  });

  it('13. a leftover of another attempt holds the job name on a node, listening nowhere: it is replaced', async () => {
    const jobId = 70014;
    const ref = config.images.get('deb12')!.ref;
    const planted = (await onNode('node2', ['docker', 'create', '--name', `jobbox-${jobId}`, '--label', `org.jobbox.job=${jobId}`, '--label', 'org.jobbox.attempt=node9', ref, 'true'])).trim();
    try {
      expect(await hook(hooks.preExec, envOf(jobId))).toEqual({ code: 0, stderr: '' });
      const holder = await onNode('node2', ['docker', 'ps', '--all', '--no-trunc', '--filter', `name=^/jobbox-${jobId}$`, '--format', '{{.ID}} {{.State}} {{.Label "org.jobbox.attempt"}}']);
      const [id, state, attempt] = holder.split(' ');
      expect({ replaced: id !== planted, state, attempt }).toEqual({ replaced: true, state: 'running', attempt: 'node1' });
      expect((await hook(hooks.postExec, envOf(jobId))).code).toBe(0);
      await expectNothingLeft(jobId);
    } finally {
      await onNode('node2', ['docker', 'rm', '--force', planted]).catch(() => '');
    }
  });

  it('10. a storm of 20 jobs starting and ending at once on 3 nodes: every job runs, no port held twice, nothing left', { timeout: 900_000 }, async () => {
    const ids = Array.from({ length: 20 }, (_, i) => 71001 + i);
    // An observer independent of the allocator: every job dir names its port in its
    // sshd_config, written after the claim and removed before the release, so two dirs
    // with one port at the same moment would be two jobs on one port.
    let stop = false;
    let samples = 0;
    const duplicates: string[] = [];
    const observer = (async () => {
      while (!stop) {
        const dirs = (await readdir(config.stateDir).catch(() => [] as string[])).filter((d) => /^710\d\d\./.test(d));
        const ports = await Promise.all(dirs.map((d) => readFile(`${config.stateDir}/${d}/sshd_config`, 'utf8').then((t) => /^Port (\d+)$/m.exec(t)?.[1], () => undefined)));
        const seen = new Map<string, string>();
        ports.forEach((p, i) => {
          if (p === undefined) return;
          if (seen.has(p)) duplicates.push(`${p}: ${seen.get(p)} ${dirs[i]}`);
          seen.set(p, dirs[i]!);
        });
        samples += 1;
        await sleep(25);
      }
    })();
    const runs = await Promise.all(ids.map((jobId) => submitLsf(hooks, spec({ app: 'docker-deb12', jobId, command: 'mpirun -np 5 hostname | sort | uniq -c' }))));
    stop = true;
    await observer;
    expect(samples).toBeGreaterThan(20);
    expect(duplicates).toEqual([]);
    for (const run of runs) {
      expect({ job: run.jobId, state: run.state, out: run.starter?.stdout.replace(/ +/g, ' ').trim() }).toEqual({ job: run.jobId, state: 'DONE', out: '2 node1\n 2 node2\n 1 node3' });
    }
    // Requeues are allowed (a loaded node may answer late); every one of them rolled back.
    for (const jobId of ids) await expectNothingLeft(jobId);
  });

  it('11. a node rebooted mid-job: the job fails instead of hanging, post-exec leaves nothing, the node runs the next job', { timeout: 600_000 }, async () => {
    const jobId = 70011;
    let rebooted: Promise<unknown> | undefined;
    // LSF runs the post-exec once it has the job's status; here the node is back by then (a
    // post-exec that finds a node down keeps the claim for `jobbox gc`: fault 2, gc suite).
    const run = submitLsf(hooks, spec({ app: 'docker-deb12', jobId, command: 'mpirun -np 5 sleep 300', beforePostExec: async () => void (await rebooted) }));
    await waitFor('sleep 300 on node3', async () => (await onNode('node3', ['docker', 'top', `jobbox-${jobId}`]).catch(() => '')).includes('sleep 300'), 120);
    rebooted = testbed(['reboot', 'node3']);
    await rebooted;
    // mpirun's session to node3 finds the node gone at its next keepalive (ssh_config), long
    // before the 300 s command would have ended.
    const ended = await run;
    expect(ended.state).toBe('EXIT');
    expect(ended.starter?.code).not.toBe(0);
    expect(ended.postExec?.code).toBe(0);
    // The container node3's dockerd stopped at the reboot is removed too.
    await expectNothingLeft(jobId);
    const next = await submitLsf(hooks, spec({ app: 'docker-deb12', jobId: 70012, command: 'mpirun -np 5 hostname | sort | uniq -c' }));
    expect({ state: next.state, out: next.starter?.stdout.replace(/ +/g, ' ').trim() }).toEqual({ state: 'DONE', out: '2 node1\n 2 node2\n 1 node3' });
    await expectNothingLeft(70012);
  });

  it('14. a job container stops before its sshd answers (its port was taken after the bind test): pre-exec fails at once, not at start_timeout, and leaves nothing', async () => {
    const jobId = 70014;
    // Held at node3's barrier as in fault 1, then node3's container goes, as it would when
    // sshd cannot bind a port someone took after the bind test.
    const drop = ['INPUT', '-p', 'tcp', '--dport', `${config.portRange.first}:${config.portRange.last}`, '-j', 'DROP'];
    await onNode('node3', ['iptables', '-I', ...drop]);
    let pre;
    try {
      const run = hook(hooks.preExec, envOf(jobId));
      await waitFor('a container of the job on every node', async () => (await containers(jobId)).length === 3, 60);
      await onNode('node3', ['docker', 'kill', `jobbox-${jobId}`]);
      pre = await run;
    } finally {
      await onNode('node3', ['iptables', '-D', ...drop]);
    }
    // This line, not the barrier's "not answering after 120 s": the stop was seen as it happened.
    expect(pre).toEqual({ code: 1, stderr: expect.stringMatching(/ node3: job sshd: its container stopped before sshd answered( \(container: [^\n]*\))?: \d+$/) });
    await expectNothingLeft(jobId);
  });

  it('7. a stale post-exec of an earlier attempt frees nothing of the new attempt', async () => {
    const jobId = 70007;
    // Attempt 1 on node1 was requeued; attempt 2 runs with node2 as the first host.
    const first = await hook(hooks.preExec, envOf(jobId));
    expect(first.code).toBe(0);
    const again = [{ name: 'node2', slots: 2 }, { name: 'node3', slots: 1 }, { name: 'node1', slots: 1 }];
    expect((await hook(hooks.preExec, envOf(jobId, again), 'node2')).code).toBe(0);
    const live = { containers: await containers(jobId), claims: await claims(jobId) };
    expect(live.claims.filter((c) => c.includes('.node2.'))).toHaveLength(1);
    // The late post-exec of attempt 1 on node1.
    expect((await hook(hooks.postExec, envOf(jobId))).code).toBe(0);
    expect(await claims(jobId)).toEqual(live.claims.filter((c) => c.includes('.node2.')));
    expect((await containers(jobId)).sort()).toEqual(live.containers.sort());
    expect(await jobDirs(jobId)).toEqual([`${jobId}.0.node2`]);
    expect((await hook(hooks.postExec, envOf(jobId, again), 'node2')).code).toBe(0);
    await expectNothingLeft(jobId);
  });
});
