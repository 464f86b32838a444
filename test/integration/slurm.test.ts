import { chown, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import * as fixture from '../support/lsf-fixture.js';
import { dropImage, ENGINE, INIT, onNode, slurmClient, testbed, testbedStatus, type TestbedStatus, waitFor } from '../support/testbed.js';

// jobbox on a real Slurm 22.05 cluster: slurmctld on the host, a slurmd in every node's
// namespaces, the Prolog/Epilog and job_submit.lua from hooks/slurm and `jobbox slurm`.
const NODES = ['node1', 'node2', 'node3'];
const HOME = '/home/jbuser1';
let tb: TestbedStatus;
let config: Config;

beforeAll(async () => {
  tb = await testbedStatus();
  expect(tb.slurm).toBe(true);
  config = await loadConfig(tb.config);
});

/** A client command as the user, from their home; SLURM_CONF always (never DNS). */
function asUser(argv: string[]) {
  return execa('runuser', ['-u', 'jbuser1', '--', 'env', `SLURM_CONF=${tb.slurmConf}`, ...argv], { cwd: HOME, reject: false });
}
const { slurm, jobField } = slurmClient(() => tb.slurmConf);

async function submit(name: string, body: string, options: string[] = []): Promise<string> {
  const script = `${HOME}/${name}.sh`;
  await writeFile(script, `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  await chown(script, 2001, 2001);
  const r = await asUser(['sbatch', '--parsable', '-o', `${HOME}/${name}.out`, ...options, script]);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}


const finished = (id: string, seconds = 120) =>
  waitFor(`job ${id} to finish`, async () => /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL)$/.test(await jobField(id, 'JobState')), seconds);
const states = async () => (await slurm(['sinfo', '-h', '-N', '-p', 'normal', '-o', '%N %T'])).stdout.trim().split('\n').sort();

async function leftovers(id: string): Promise<{ containers: string[]; claims: string[]; dirs: string[] }> {
  const containers = (await Promise.all(NODES.map((n) => onNode(n, [ENGINE, 'ps', '-aq', '--filter', `label=org.jobbox.job=${id}`])))).filter(Boolean);
  const claims = await fixture.claims(config, id);
  const dirs = (await readdir(config.stateDir)).filter((f) => f.startsWith(`${id}.`));
  return { containers, claims, dirs };
}
const nothingLeft = { containers: [], claims: [], dirs: [] };

describe('Slurm: sbatch -N3 -C docker-deb12', () => {
  it('runs the unchanged batch script in a container, and mpirun spans three nodes as the user', async () => {
    const id = await submit('s1', [
      '#SBATCH -N3',
      'echo "batch: $(hostname) pid1=$(cat /proc/1/comm) hostfile=$JOBBOX_HOSTFILE"',
      'mpirun -np 3 sh -c \'echo rank $(hostname) $(id -u) $(id -g) $(id -G)\'',
    ].join('\n'), ['-C', 'docker-deb12']);
    await finished(id);
    const out = await readFile(`${HOME}/s1.out`, 'utf8');
    expect(await jobField(id, 'JobState')).toBe('COMPLETED');
    // PID 1 of a container is the engine's init; on a node it would be the machine's init.
    expect(out).toContain(`batch: node1 pid1=${INIT} hostfile=${config.stateDir}/${id}.0.0/hostfile`);
    expect(out.split('\n').filter((l) => l.startsWith('rank ')).sort()).toEqual([
      'rank node1 2001 2001 2001 3001 3002',
      'rank node2 2001 2001 2001 3001 3002',
      'rank node3 2001 2001 2001 3001 3002',
    ]);
    await waitFor('the Epilog', async () => JSON.stringify(await leftovers(id)) === JSON.stringify(nothingLeft));
  });
});

describe('Slurm: slots', () => {
  it('writes the allocated CPUs per node into the hostfile (-N2 -n3 → 2+1), and mpirun fills them', async () => {
    const id = await submit('s7', '#SBATCH -N2 -n3\ncat $JOBBOX_HOSTFILE\nmpirun -np 3 hostname | sort', []);
    await finished(id);
    expect(await readFile(`${HOME}/s7.out`, 'utf8')).toBe('node1 slots=2\nnode2 slots=1\nnode1\nnode1\nnode2\n');
  });
});

describe('Slurm: job arrays', () => {
  it('runs every array task in containers of its own', async () => {
    const base = await submit('s9', '#SBATCH -N2\nmpirun -np 2 hostname | sort', ['--array=1-2', '-o', `${HOME}/s9-%a.out`]);
    await finished(`${base}_1`);
    await finished(`${base}_2`);
    for (const task of [1, 2]) expect(await readFile(`${HOME}/s9-${task}.out`, 'utf8')).toBe('node1\nnode2\n');
  });
});

describe('Slurm: the partition default image', () => {
  it('gives a job without -C the partition default (normal: deb12, Open MPI)', async () => {
    const id = await submit('s2', '#SBATCH -N2\nmpirun --version | head -1', []);
    await finished(id);
    expect(await jobField(id, 'Features')).toBe('docker-deb12');
    expect(await readFile(`${HOME}/s2.out`, 'utf8')).toContain('Open MPI');
  });

  it('runs MPICH on partition short across the nodes', async () => {
    const id = await submit('s3', '#SBATCH -N3\nmpiexec -n 3 hostname', ['-p', 'short']);
    await finished(id);
    expect(await jobField(id, 'Features')).toBe('docker-deb12-mpich');
    expect((await readFile(`${HOME}/s3.out`, 'utf8')).trim().split('\n').sort()).toEqual(NODES);
  });
});

describe('Slurm: the allow-list at submit', () => {
  it.each([
    [['-p', 'short', '-C', 'docker-deb12'], 'jobbox: image: not allowed in partition short (allowed: deb12-mpich); use -p normal or -p gpu, or -C docker-deb12-mpich: deb12'],
    [['-C', 'docker-centos7'], 'jobbox: image: not allowed in partition normal (allowed: deb12 deb12-mpich); use -C docker-deb12 or -C docker-deb12-mpich: centos7'],
    [['-C', 'docker-deb12|docker-deb12-mpich'], 'jobbox: constraint: names more than one image: docker-deb12|docker-deb12-mpich'],
  ])('sbatch %j is refused with a clear message and no node leaves idle', async (options, message) => {
    await writeFile(`${HOME}/s4.sh`, '#!/bin/sh\nhostname\n', { mode: 0o755 });
    const r = await asUser(['sbatch', ...options, `${HOME}/s4.sh`]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(message);
    expect(await states()).toEqual(NODES.map((n) => `${n} idle`));
  });
});

describe('Slurm: scancel', () => {
  it('of a running job leaves no container, claim or job dir on any node', async () => {
    const id = await submit('s5', '#SBATCH -N3\necho started\nsleep 600', ['-C', 'docker-deb12']);
    await waitFor('the job to start', async () => (await readFile(`${HOME}/s5.out`, 'utf8').catch(() => '')).includes('started'));
    expect((await leftovers(id)).containers).toHaveLength(3);
    expect((await slurm(['scancel', id])).exitCode).toBe(0);
    await waitFor('the Epilog after scancel', async () => JSON.stringify(await leftovers(id)) === JSON.stringify(nothingLeft));
    await waitFor('CANCELLED', async () => (await jobField(id, 'JobState')) === 'CANCELLED');
    await waitFor('idle nodes', async () => JSON.stringify(await states()) === JSON.stringify(NODES.map((n) => `${n} idle`)));
  });
});

describe('Slurm: scontrol requeue of a running job', () => {
  it('leaves nothing of the first attempt: the Epilog sees the new restart count and still tears the old one down', async () => {
    // The first run leaves a mark and waits; the run after the requeue finds it and ends.
    await rm(`${HOME}/s8.mark`, { force: true });
    const id = await submit('s8', `#SBATCH -N2\necho run\n[ -e ${HOME}/s8.mark ] || { touch ${HOME}/s8.mark; sleep 600; }`, ['-C', 'docker-deb12']);
    await waitFor('the first run', async () => (await readFile(`${HOME}/s8.out`, 'utf8').catch(() => '')).includes('run'));
    expect((await leftovers(id)).claims).toEqual([expect.stringMatching(new RegExp(`^claim\\.${id}\\.0\\.0\\.`))]);
    expect((await slurm(['scontrol', 'requeue', id])).exitCode).toBe(0);
    await waitFor('the first attempt torn down', async () => (await leftovers(id)).claims.length === 0 && (await leftovers(id)).containers.length === 0);
    await finished(id, 400);
    expect(await jobField(id, 'JobState')).toBe('COMPLETED');
    await waitFor('the Epilog', async () => JSON.stringify(await leftovers(id)) === JSON.stringify(nothingLeft));
  }, 600_000);
});

describe('Slurm: a transient fault', () => {
  it('registry down and no local copy: the job is requeued, no node drains, and it runs once the registry is back', async () => {
    const ref = config.images.get('deb12-mpich')!.ref;
    await Promise.all(NODES.map((n) => dropImage(n, ref)));
    await testbed(['registry', 'stop']);
    try {
      const id = await submit('s6', '#SBATCH -N2\nmpiexec -n 2 hostname', ['-p', 'short']);
      await waitFor('a requeue', async () => Number(await jobField(id, 'Restarts')) >= 1);
      // The Prolog exited 0 and asked for a requeue: the nodes are not drained.
      expect((await states()).some((s) => /drain/.test(s))).toBe(false);
      expect(await jobField(id, 'JobState')).toMatch(/^(PENDING|CONFIGURING|COMPLETING|REQUEUED)$/);
      await testbed(['registry', 'start']);
      // Slurm holds a requeued job back (BeginTime) for a while before it starts it again.
      await finished(id, 400);
      expect(await jobField(id, 'JobState')).toBe('COMPLETED');
      expect((await readFile(`${HOME}/s6.out`, 'utf8')).trim().split('\n').sort()).toEqual(['node1', 'node2']);
      await waitFor('the Epilog', async () => JSON.stringify(await leftovers(id)) === JSON.stringify(nothingLeft));
    } finally {
      await testbed(['registry', 'start']);
    }
  }, 600_000);
});

afterAll(async () => {
  for (const n of ['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9', 's9-1', 's9-2']) {
    await rm(`${HOME}/${n}.sh`, { force: true });
    await rm(`${HOME}/${n}.out`, { force: true });
    await rm(`${HOME}/${n}.mark`, { force: true });
  }
});
