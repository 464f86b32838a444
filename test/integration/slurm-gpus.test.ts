import { chown, readFile, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gresGpus, parseJobRecord } from '../../src/scheduler/slurm.js';
import { onNode, slurmClient, testbedStatus, waitFor, type TestbedStatus } from '../support/testbed.js';

// GPUs by Slurm's allocation on the real Slurm testbed: each node has three NVIDIA device nodes
// (major 195, no driver behind them), gres.conf names two of them, and ConstrainDevices=yes. The
// queue passes `gpus = allocated`. What a container gets is read from inside it, over the
// job's own sshd, as the job's processes see it.
const HOME = '/home/jbuser1';
const UID = 2001;
let tb: TestbedStatus;

beforeAll(async () => {
  tb = await testbedStatus();
  expect(tb.slurm).toBe(true);
});

const { slurm, jobField } = slurmClient(() => tb.slurmConf);
const asUser = (argv: string[], env: Record<string, string> = {}) =>
  execa('runuser', ['-u', 'jbuser1', '--', 'env', `SLURM_CONF=${tb.slurmConf}`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv], { cwd: HOME, reject: false });

async function submit(name: string, body: string, options: string[], env: Record<string, string> = {}): Promise<string> {
  const script = `${HOME}/${name}.sh`;
  await rm(`${HOME}/${name}.out`, { force: true });
  await writeFile(script, `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  await chown(script, UID, UID);
  const r = await asUser(['sbatch', '--parsable', '-o', `${HOME}/${name}.out`, ...options, script], env);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

const FINAL = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)$/;
const finished = (id: string) => waitFor(`job ${id} to finish`, async () => FINAL.test(await jobField(id, 'JobState')), 120);

// Run in the first container: every node's view of its GPUs, through the job's sshd, one line each:
// `<node> devices=<nvidia… in /dev> cuda=<CUDA_VISIBLE_DEVICES or unset> driver=<the mounted driver dir's README, or absent>`.
const REPORT = [
  'for h in $(cut -d" " -f1 "$JOBBOX_HOSTFILE"); do',
  '  ssh "$h" \'echo "$(hostname) devices=$(cd /dev && ls -d nvidia* 2>/dev/null | tr "\\n" , ) cuda=${CUDA_VISIBLE_DEVICES-unset} driver=$(cat /var/lib/jobbox-testbed/driver/README 2>/dev/null | wc -l) smi=$(test -e /usr/bin/nvidia-smi && echo yes || echo no)"\'',
  'done',
  'echo "batch cuda=${CUDA_VISIBLE_DEVICES-unset}"',
  // Running still, so that Slurm still shows its allocation (a finished job's record has none).
  'sleep 300',
].join('\n');

/**
 * Submits the report as job `name`, waits for it, and returns it by node (and the batch
 * script's own line), with Slurm's word on the job's GPUs on each of `hosts`; then ends the job.
 */
async function run(name: string, options: string[], hosts: string[], env: Record<string, string> = {}) {
  const id = await submit(name, REPORT, [...options, '-p', 'gpu', '-C', 'docker-deb12'], env);
  const out = () => readFile(`${HOME}/${name}.out`, 'utf8').catch(() => '');
  try {
    await waitFor(`job ${id}'s report`, async () => (await out()).includes('batch cuda='), 120);
    const gpus = await allocated(id, hosts);
    const lines = (await out()).trim().split('\n');
    return { gpus, seen: new Map(lines.map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)])) };
  } finally {
    await slurm(['scancel', id]);
    await finished(id);
  }
}

/** Slurm's own word on which GPUs the job got on each node. */
async function allocated(id: string, hosts: string[]): Promise<Map<string, number[]>> {
  const record = parseJobRecord((await slurm(['scontrol', 'show', 'job', '--details', id])).stdout, id, hosts);
  return new Map(hosts.map((h, i) => [h, gresGpus(record.gres[i]!)]));
}

// The testbed's gres.conf gives Slurm two of each node's three GPUs: GRES index 0 is nvidia1,
// 1 is nvidia2; nvidia0 is no job's.
const device = (index: number) => index + 1;
const devices = (indices: number[]) => `devices=${[...indices.map((i) => `nvidia${device(i)}`), 'nvidia-uvm', 'nvidiactl'].sort().join(',')},`;

describe('Slurm: each node\'s container gets the GPUs Slurm gave the job there, and no other', () => {
  // GPU 0 of node2 held by a job outside jobbox: the next job gets node2's GPU 1.
  let holder: string;
  beforeAll(async () => {
    const r = await asUser(['sbatch', '--parsable', '-p', 'other', '-w', 'node2', '--gres=gpu:1', '-o', '/dev/null', '--wrap', 'sleep 300']);
    holder = r.stdout.trim();
    await waitFor('the holder job to run', async () => (await jobField(holder, 'JobState')) === 'RUNNING', 60);
  });
  afterAll(async () => {
    await slurm(['scancel', holder]);
  });

  it('--gres=gpu:1 on two nodes: one /dev/nvidiaN each, the one Slurm allocated there, and CUDA_VISIBLE_DEVICES=0', async () => {
    // The user's own CUDA_VISIBLE_DEVICES names the host's numbers: it stays out.
    const { gpus: given, seen } = await run('gpu1', ['-N2', '-w', 'node1,node2', '--gres=gpu:1'], ['node1', 'node2'], { CUDA_VISIBLE_DEVICES: '1' });
    expect(given).toEqual(new Map([['node1', [0]], ['node2', [1]]]));
    for (const [node, gpus] of given) expect(seen.get(node)).toBe(`${devices(gpus)} cuda=0 driver=1 smi=no`);
    expect(seen.get('batch')).toBe('cuda=0');
  });

  it('--gres=gpu:2: both GPUs of the node, numbered 0,1', async () => {
    const { gpus, seen } = await run('gpu2', ['-N1', '-w', 'node3', '--gres=gpu:2'], ['node3']);
    expect(gpus).toEqual(new Map([['node3', [0, 1]]]));
    expect(seen.get('node3')).toBe(`${devices([0, 1])} cuda=0,1 driver=1 smi=no`);
  });

  it('no GPUs asked: no NVIDIA device, no driver files, no CUDA_VISIBLE_DEVICES', async () => {
    // Slurm denies this job every GPU of the node: its container still starts (lifecycle/node.ts joinSlurmCgroups).
    const { gpus, seen } = await run('gpu0', ['-N1', '-w', 'node3'], ['node3'], { CUDA_VISIBLE_DEVICES: '0,1' });
    expect(gpus).toEqual(new Map([['node3', []]]));
    expect(seen.get('node3')).toBe('devices= cuda=unset driver=0 smi=no');
  });

  it('the device cgroup refuses the node\'s other GPU: EPERM where the allocated one gives ENXIO (no driver)', async () => {
    const marker = `${HOME}/gpu3.ready`;
    await writeFile(marker, '');
    await chown(marker, UID, UID);
    const id = await submit('gpu3', `echo ready > ${marker}; sleep 60`, ['-N1', '-w', 'node2', '--gres=gpu:1', '-p', 'gpu', '-C', 'docker-deb12']);
    try {
      await waitFor(`job ${id} to run`, async () => (await readFile(marker, 'utf8')).includes('ready'), 90);
      expect(await allocated(id, ['node2'])).toEqual(new Map([['node2', [1]]]));
      // Root on the node makes the device node, then moves into the container's device cgroup:
      // the cgroup alone says whether it may open it.
      const pid = await onNode('node2', ['docker', 'inspect', '-f', '{{.State.Pid}}', `jobbox-${id}`]);
      const cgroup = /^\d+:devices:(\S+)$/m.exec(await onNode('node2', ['cat', `/proc/${pid}/cgroup`]))![1]!;
      const probe = (minor: number) => onNode('node2', ['sh', '-c',
        'd=$(mktemp -d) && mknod "$d/gpu" c 195 "$2" && echo $$ > "/sys/fs/cgroup/devices$1/cgroup.procs" && head -c1 "$d/gpu" 2>&1; rm -r "$d"; true',
        'sh', cgroup, String(minor)]);
      expect(await probe(device(0))).toMatch(/Operation not permitted/);
      expect(await probe(device(1))).toMatch(/No such device or address/);
    } finally {
      await slurm(['scancel', id]);
      await finished(id);
    }
  });
});
