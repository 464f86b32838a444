import { chown, writeFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoOf } from '../../src/config/ref.js';
import type { Config } from '../../src/config/types.js';
import { lsfJobEnv, submitLsf, type LsfQueueHooks } from '../harness/lsf/harness.js';
import { ALLOC, NODES, containers, hook, lsfFixture, spec } from '../support/lsf-fixture.js';
import * as fixture from '../support/lsf-fixture.js';
import { dropImage, ENGINE, onNode, testbed } from '../support/testbed.js';

// The LSF core path end to end on the real testbed: real esub, pre-exec, job starter and
// post-exec through hooks/lsf, real dockerd per node, real sshd and MPI in the containers.
let config: Config;
let hooks: LsfQueueHooks;

const SCRIPTS = {
  'jobbox-rank.sh': 'echo rank $(hostname) $(id -u) $(id -g) $(id -G)',
  'jobbox-devices.sh': 'echo $(hostname) $(ls /dev/infiniband)',
};

beforeAll(async () => {
  ({ config, hooks } = await lsfFixture());
  // User scripts in the shared home, as users write them: the starter line's own quoting
  // ("%USRCMD") would expand $(…) on the host before the container is reached.
  for (const [name, body] of Object.entries(SCRIPTS)) {
    await writeFile(`/home/jbuser1/${name}`, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    await chown(`/home/jbuser1/${name}`, 2001, 2001);
  }
});

const claims = (jobId: number) => fixture.claims(config, jobId);
const jobDirs = (jobId: number) => fixture.jobDirs(config, jobId);

describe('LSF: bsub -a docker-deb12 -n 5 mpirun across three nodes', () => {
  it('runs every rank in a container as the owner, on every node, then leaves nothing', async () => {
    const run = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'mpirun -np 5 ./jobbox-rank.sh' }));
    expect(run.preExec.map((p) => p.code)).toEqual([0]);
    expect(run.starter?.stderr).toBe('');
    expect(run.starter?.code).toBe(0);
    const ranks = run.starter!.stdout.split('\n').filter((l) => l.startsWith('rank ')).sort();
    expect(ranks).toEqual([
      'rank node1 2001 2001 2001 3001 3002',
      'rank node1 2001 2001 2001 3001 3002',
      'rank node2 2001 2001 2001 3001 3002',
      'rank node2 2001 2001 2001 3001 3002',
      'rank node3 2001 2001 2001 3001 3002',
    ]);
    expect(run.postExec?.code).toBe(0);
    // What the containers used, read from their cgroups before they went: one line per job.
    expect(run.postExec?.stderr).toMatch(new RegExp(`^jobbox: job ${run.jobId}: cpu [\\d.]+ s, peak memory [\\d.]+ [MG]B in all \\(node1: [\\d.]+ s, [\\d.]+ [MG]B; node2: [\\d.]+ s, [\\d.]+ [MG]B; node3: [\\d.]+ s, [\\d.]+ [MG]B\\)\n$`));
    expect(run.state).toBe('DONE');
    expect(await containers(run.jobId)).toEqual([]);
    expect(await claims(run.jobId)).toEqual([]);
    expect(await jobDirs(run.jobId)).toEqual([]);
  });

  it('returns the user command exit code and streams stdout and stderr apart', async () => {
    const run = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'echo out; echo err >&2; exit 7' }));
    expect(run.starter).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
    expect(run.state).toBe('EXIT');
    expect(await containers(run.jobId)).toEqual([]);
  });
});

describe('LSF: the queue default image and the submit-time allow-list', () => {
  it('uses the queue default (normal: deb12) when no -a is given', async () => {
    const run = await submitLsf(hooks, spec({ command: 'cat /etc/debian_version; mpirun --version | head -1', skipPostExec: true }));
    expect(run.starter?.code).toBe(0);
    expect(run.starter?.stdout).toContain('Open MPI');
    // The repository of the job's image (containers() shows it without the digest).
    expect((await containers(run.jobId)).map((c) => c.split(' ')[2])).toEqual(NODES.map(() => repoOf(config.images.get('deb12')!.ref)));
    const env = lsfJobEnv(spec({}), run.jobId, ALLOC, {});
    expect((await hook(hooks.postExec, env)).code).toBe(0);
    expect(await containers(run.jobId)).toEqual([]);
  });

  it('rejects -a docker-deb12 on queue short with 97 at submit, and starts nothing', async () => {
    const run = await submitLsf(hooks, spec({ queue: 'short', app: 'docker-deb12', command: 'hostname' }));
    expect(run.state).toBe('REJECTED');
    expect(run.esub).toMatchObject({ code: 97, stderr: 'jobbox: image: not allowed in queue short (allowed: deb12-mpich); use -q normal or -q gpu, or -a docker-deb12-mpich: deb12\n' });
    expect(run.preExec).toEqual([]);
    expect(await containers(run.jobId)).toEqual([]);
    expect(await claims(run.jobId)).toEqual([]);
  });

  it('re-checks the image in pre-exec: an alias forged past the esub exits 99 with nothing started', async () => {
    const run = await submitLsf(hooks, spec({ queue: 'short', env: { JOBBOX_IMAGE: 'deb12' }, command: 'hostname' }));
    expect(run.preExec).toHaveLength(1);
    expect(run.preExec[0]).toMatchObject({ code: 99, stderr: 'jobbox: image: not allowed in queue short (allowed: deb12-mpich): deb12\n' });
    expect(run.state).toBe('EXIT');
    expect(await containers(run.jobId)).toEqual([]);
    expect(await claims(run.jobId)).toEqual([]);
  });
});

describe('LSF: MPICH', () => {
  it('-a docker-deb12-mpich: mpiexec spans the nodes', async () => {
    const run = await submitLsf(hooks, spec({ queue: 'short', app: 'docker-deb12-mpich', command: 'mpiexec -n 5 hostname' }));
    expect(run.starter?.stderr).toBe('');
    expect(run.starter?.stdout.split('\n').filter(Boolean).sort()).toEqual(['node1', 'node1', 'node2', 'node2', 'node3']);
    expect(run.state).toBe('DONE');
    expect(await containers(run.jobId)).toEqual([]);
  });
});

describe('LSF: InfiniBand devices', () => {
  it('shows each node its own uverbs and rdma_cm devices, never umad or issm', async () => {
    const run = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'mpirun -np 5 ./jobbox-devices.sh' }));
    expect(run.starter?.code).toBe(0);
    const seen = new Set(run.starter!.stdout.split('\n').filter(Boolean).map((l) => l.trim()));
    expect([...seen].sort()).toEqual(['node1 rdma_cm uverbs0 uverbs1', 'node2 rdma_cm uverbs0', 'node3 rdma_cm uverbs0']);
  });
});

describe('LSF: post-exec', () => {
  it('frees the port, the containers and the job dir, and a second post-exec exits 0', async () => {
    const run = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'true', skipPostExec: true }));
    expect(await containers(run.jobId)).toHaveLength(3);
    expect(await claims(run.jobId)).toHaveLength(1);
    expect(await jobDirs(run.jobId)).toHaveLength(1);
    const env = { ...lsfJobEnv(spec({}), run.jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' }), LSB_JOBEXIT_STAT: '0' };
    expect(await hook(hooks.postExec, env)).toEqual({ code: 0, stderr: '' });
    expect(await containers(run.jobId)).toEqual([]);
    expect(await claims(run.jobId)).toEqual([]);
    expect(await jobDirs(run.jobId)).toEqual([]);
    expect(await hook(hooks.postExec, env)).toEqual({ code: 0, stderr: '' });
  });
});

describe('LSF: a requeued pre-exec for the same attempt', () => {
  it('reuses the port and the containers instead of starting duplicates', async () => {
    const run = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'true', skipStarter: true, skipPostExec: true }));
    // By container id: a container started again under the same name would not be the same.
    const ids = () => Promise.all(NODES.map((n) => onNode(n, [ENGINE, 'ps', '--all', '--quiet', '--no-trunc', '--filter', `label=org.jobbox.job=${run.jobId}`])));
    const before = { claims: await claims(run.jobId), containers: await containers(run.jobId), ids: await ids() };
    const env = lsfJobEnv(spec({}), run.jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' });
    expect((await hook(hooks.preExec, env)).code).toBe(0);
    expect(await claims(run.jobId)).toEqual(before.claims);
    expect(await containers(run.jobId)).toEqual(before.containers);
    expect(await ids()).toEqual(before.ids);
    expect(before.containers).toHaveLength(3);
    expect(before.ids.every((id) => /^[0-9a-f]{64}$/.test(id))).toBe(true);
    expect((await hook(hooks.postExec, env)).code).toBe(0);
    expect(await containers(run.jobId)).toEqual([]);
  });
});

describe('LSF: bkill', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s to the job starter stops the command inside the container', async (signal) => {
    let inside = '';
    const run = await submitLsf(hooks, spec({
      app: 'docker-deb12',
      command: 'echo started; sleep 300; echo not-reached',
      starterSignal: { signal, whenStdoutContains: 'started' },
      beforePostExec: async (jobId) => {
        inside = await onNode('node1', [ENGINE, 'exec', `jobbox-${jobId}`, 'ps', '-eo', 'args']);
      },
    }));
    expect(run.starter?.stdout).toBe('started\n');
    // LSF's own `sh -c` around the starter line dies of the signal too: that is the job's status.
    expect(run.starter?.signal).toBe(signal);
    expect(inside).toContain('sshd');
    expect(inside).not.toContain('sleep 300');
    expect(run.postExec?.code).toBe(0);
    expect(await containers(run.jobId)).toEqual([]);
  });

  it('SIGKILL to the job starter: its ssh client dies with it, and post-exec stops the command', async () => {
    let clients = '';
    let inside = '';
    const run = await submitLsf(hooks, spec({
      app: 'docker-deb12',
      command: 'echo started; sleep 300; echo not-reached',
      starterSignal: { signal: 'SIGKILL', whenStdoutContains: 'started' },
      beforePostExec: async (jobId) => {
        // Nothing can be delivered for a SIGKILL: the command runs on until the post-exec.
        inside = await onNode('node1', [ENGINE, 'exec', `jobbox-${jobId}`, 'ps', '-eo', 'args']);
        clients = (await onNode('node1', ['ps', '-eo', 'args'])).split('\n').filter((l) => /^ssh -F /.test(l) && l.includes(`/${jobId}.`)).join('\n');
      },
    }));
    expect(run.starter).toMatchObject({ signal: 'SIGKILL', stdout: 'started\n' });
    expect(inside).toContain('sleep 300');
    expect(clients).toBe('');
    expect(run.postExec?.code).toBe(0);
    expect(await containers(run.jobId)).toEqual([]);
    expect(await claims(run.jobId)).toEqual([]);
    expect(await jobDirs(run.jobId)).toEqual([]);
  });
});

describe('LSF: the registry goes away', () => {
  it('every node warm: the job runs the first node\'s digest everywhere, with no warning', async () => {
    const ref = config.images.get('deb12')!.ref;
    await Promise.all(NODES.map((n) => onNode(n, [ENGINE, 'pull', '-q', ref])));
    const digest = (await onNode('node1', [ENGINE, 'image', 'inspect', '--format', '{{index .RepoDigests 0}}', ref])).trim();
    await testbed(['registry', 'stop']);
    try {
      const run = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'mpirun -np 5 hostname' }));
      expect(run.preExec.map((p) => p.code)).toEqual([0]);
      expect(run.preExec[0]!.stderr).toMatch(new RegExp(`^jobbox: job \\d+: started on 3 nodes, port \\d+, image ${digest.replaceAll('.', '\\.')}\n$`));
      expect(run.state).toBe('DONE');
      expect(await containers(run.jobId)).toEqual([]);
    } finally {
      await testbed(['registry', 'start']);
    }
  });

  it('a node without a copy makes pre-exec exit 1 (requeue) with every node rolled back; once it is back the job runs', async () => {
    const ref = config.images.get('deb12')!.ref;
    await dropImage('node3', ref);
    await testbed(['registry', 'stop']);
    let failed;
    try {
      failed = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'true', maxRequeues: 0 }));
    } finally {
      await testbed(['registry', 'start']);
    }
    expect(failed.preExec).toHaveLength(1);
    expect(failed.preExec[0]!.code).toBe(1);
    expect(failed.preExec[0]!.stderr).toContain(`node3: pull: the pull of the job's digest failed`);
    expect(await containers(failed.jobId)).toEqual([]);
    expect(await claims(failed.jobId)).toEqual([]);
    expect(await jobDirs(failed.jobId)).toEqual([]);
    const again = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'true', jobId: failed.jobId }));
    expect(again.state).toBe('DONE');
  });
});
