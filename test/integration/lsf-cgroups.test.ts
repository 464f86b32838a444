import { chown, readFile, writeFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import { lsfJobEnv, submitLsf, type LsfQueueHooks } from '../harness/lsf/harness.js';
import { ALLOC, NODES, containers, hook, lsfFixture, spec } from '../support/lsf-fixture.js';
import * as fixture from '../support/lsf-fixture.js';
import { containerTop, ENGINE, onNode, waitFor } from '../support/testbed.js';

// The scheduler sees and controls what runs in jobbox containers, under LSF: through the
// harness (not LSF: test/harness/lsf/README.md), which plays LSF's job cgroup on the first
// host as IBM documents it, on the real testbed's dockerds and cgroup v1 tree.
let config: Config;
let hooks: LsfQueueHooks;

// User scripts in the shared home: the starter line's quoting ("%USRCMD") would take the
// commands' own quotes apart (issue 15).
const SCRIPTS = {
  // Every rank burns a CPU for 3 s, then sleeps while the nodes are looked at.
  'jobbox-burn.sh': "timeout 3 sh -c 'while :; do :; done'; sleep 12",
  'jobbox-oom.sh': 'perl -e \'$x = "a" x (512 * 1024 * 1024); sleep 2\'; echo "perl exit $?"',
};

beforeAll(async () => {
  ({ config, hooks } = await lsfFixture());
  for (const [name, body] of Object.entries(SCRIPTS)) {
    await writeFile(`/home/jbuser1/${name}`, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    await chown(`/home/jbuser1/${name}`, 2001, 2001);
  }
});

/** The host pids of every process of the job's container on a node. */
const containerPids = (node: string, jobId: number) => containerTop(node, `jobbox-${jobId}`);

/** A controller's path of a process, from /proc/<pid>/cgroup (the host's view: nodes share its kernel). */
async function cgroupOf(pid: string, controller: string): Promise<string> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  return lines.find((l) => l.split(':')[1]?.split(',').includes(controller))?.split(':')[2] ?? '';
}

/** A file of the container's own cgroup in one hierarchy. */
async function containerCgroupFile(node: string, jobId: number, hierarchy: string, file: string): Promise<string> {
  const pid = (await onNode(node, [ENGINE, 'inspect', '--format', '{{.State.Pid}}', `jobbox-${jobId}`])).trim();
  return (await readFile(`/sys/fs/cgroup/${hierarchy}${await cgroupOf(pid, hierarchy)}/${file}`, 'utf8')).trim();
}

/** Dirs left anywhere under /sys/fs/cgroup at `rel`, in any hierarchy. */
async function leftAt(rel: string): Promise<string[]> {
  const out = await onNode('node1', ['sh', '-c', 'for d in /sys/fs/cgroup/*/"$1"; do [ -d "$d" ] && echo "$d"; done; exit 0', 'sh', rel]);
  return out.split('\n').filter(Boolean);
}

describe('LSF: a job\'s containers live in per-job cgroups on every node', () => {
  it('nests the first host\'s in LSF\'s job cgroup, bound to LSB_BIND_CPU_LIST; jobbox\'s own elsewhere; counts each node; leaves nothing', async () => {
    const jobId = 60_000 + Math.floor(Math.random() * 9_000);
    const job = submitLsf(hooks, spec({
      jobId, app: 'docker-deb12', cgroup: { memoryBytes: 600 * 1024 ** 2, cpus: '1' },
      command: 'mpirun -np 5 ./jobbox-burn.sh',
    }));
    const done = job.then(() => true, () => true);
    await waitFor(`job ${jobId}'s sleeps on every node`, async () => {
      if (await Promise.race([done, Promise.resolve(false)])) return true;
      const tops = await Promise.all(NODES.map((n) => containerTop(n, `jobbox-${jobId}`, true).then((l) => l.join('\n'), () => '')));
      return tops.every((t) => t.includes('sleep 12'));
    }, 90);
    expect(await Promise.race([done, Promise.resolve(false)]), 'the job ended before its containers were looked at').toBe(false);
    const key = `${jobId}.0.node1`;
    const nest = await lsfPath(jobId);
    expect(nest).toMatch(new RegExp(`^/lsf/testbed/job\\.${jobId}\\.0\\.\\d+$`));
    for (const node of NODES) {
      const parent = node === 'node1' ? nest! : `/jobbox/${key}`;
      const pids = await containerPids(node, jobId);
      // docker-init, sshd, and the rank's shell and sleep at least.
      expect(pids.length, node).toBeGreaterThanOrEqual(4);
      for (const pid of pids) {
        for (const controller of ['memory', 'cpuacct', 'cpuset', 'freezer', 'pids']) {
          expect(await cgroupOf(pid, controller), `pid ${pid} on ${node}: ${controller}`).toMatch(new RegExp(`^${parent.replaceAll('.', '\\.')}/(?:libpod-)?[0-9a-f]{64}$`));
        }
      }
    }
    expect(await containerCgroupFile('node1', jobId, 'cpuset', 'cpuset.cpus')).toBe('1');
    const online = (await readFile('/sys/devices/system/cpu/online', 'utf8')).trim();
    expect(await containerCgroupFile('node2', jobId, 'cpuset', 'cpuset.cpus')).toBe(online);
    // The queue's policy (normal: 1g/slot) on every container; LSF's limit above node1's.
    expect(await containerCgroupFile('node2', jobId, 'memory', 'memory.limit_in_bytes')).toBe(String(2 * 1024 ** 3));
    expect((await readFile(`/sys/fs/cgroup/memory${nest}/memory.limit_in_bytes`, 'utf8')).trim()).toBe(String(600 * 1024 ** 2));

    const run = await job;
    expect(run.state).toBe('DONE');
    // LSF's own rmdir of its job cgroup worked: jobbox left nothing in it.
    expect(run.cgroup).toEqual({ path: nest, notRemoved: [] });
    const usage = /jobbox: job \d+: cpu [\d.]+ s, .* in all \((.*)\)/.exec(run.postExec!.stderr);
    expect(usage, run.postExec!.stderr).not.toBeNull();
    const node2 = /node2: ([\d.]+) s/.exec(usage![1]!);
    expect(Number(node2?.[1]), usage![1]).toBeGreaterThanOrEqual(1);
    expect(await containers(jobId)).toEqual([]);
    for (const node of NODES) {
      expect(await onNode(node, ['sh', '-c', 'for d in /sys/fs/cgroup/*/jobbox/"$1" /sys/fs/cgroup/*/lsf/testbed/job."$2".*; do [ -d "$d" ] && echo "$d"; done; exit 0', 'sh', key, String(jobId)]), node).toBe('');
    }
  });

  it('stops the first host\'s payload at LSF\'s memory limit: 512 MB under 256 MB is OOM-killed, and the job still ends clean', async () => {
    const run = await submitLsf(hooks, spec({
      app: 'docker-deb12', cgroup: { memoryBytes: 256 * 1024 ** 2 },
      command: './jobbox-oom.sh',
    }));
    expect(run.starter?.stdout, JSON.stringify(run, null, 1)).toContain('perl exit 137');
    expect(run.cgroup?.notRemoved).toEqual([]);
    expect(await containers(run.jobId)).toEqual([]);
    expect(await leftAt(`jobbox/${run.jobId}.0.node1`)).toEqual([]);
  });

  it('a post-exec that LSF runs outside its job cgroup clears what the setup made in it, and leaves LSF\'s own hierarchies to LSF', async () => {
    const run = await submitLsf(hooks, spec({ app: 'docker-deb12', cgroup: { memoryBytes: 600 * 1024 ** 2 }, skipPostExec: true }));
    expect(run.state).toBe('DONE');
    // LSF's rmdir at the job's end failed: the first host's container is still in it.
    expect(run.cgroup?.notRemoved).toContain('memory');
    const env = { ...lsfJobEnv(spec({}), run.jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' }), LSB_JOBEXIT_STAT: '0' };
    expect(await hook(hooks.postExec, env)).toEqual({ code: 0, stderr: '' });
    expect(await containers(run.jobId)).toEqual([]);
    const left = await leftAt(run.cgroup!.path.slice(1));
    // LSF's own hierarchies keep its (now empty) job cgroup for LSF to remove; no other has one.
    expect(left.map((d) => d.split('/')[4]).sort()).toEqual(['cpuacct', 'cpuset', 'freezer', 'memory']);
    for (const d of left) await onNode('node1', ['rmdir', d]);
  });

  it('refuses for good a CPU list the user exported naming CPUs the node lacks, and starts nothing', async () => {
    const run = await submitLsf(hooks, spec({ app: 'docker-deb12', env: { LSB_BIND_CPU_LIST: '0-511' } }));
    expect(run.state).toBe('EXIT');
    expect(run.preExec).toHaveLength(1);
    expect(run.preExec[0]!.code).toBe(99);
    expect(run.preExec[0]!.stderr).toMatch(/^jobbox: LSB_BIND_CPU_LIST: names CPUs outside those the job may use on node1 \([\d,-]+\): 0-511\n$/);
    expect(await containers(run.jobId)).toEqual([]);
    expect(await fixture.claims(config, run.jobId)).toEqual([]);
  });
});

/** LSF's job cgroup of a running job on node1, as the harness made it. */
async function lsfPath(jobId: number): Promise<string | undefined> {
  const dirs = await onNode('node1', ['sh', '-c', 'ls -d /sys/fs/cgroup/memory/lsf/testbed/job."$1".*', 'sh', String(jobId)]);
  return dirs.split('\n')[0]?.slice('/sys/fs/cgroup/memory'.length);
}
