import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submitLsf } from '../harness/lsf/harness.js';
import { containers, jobDirs, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { onNode } from '../support/testbed.js';

// GPUs by LSF's allocation, through the LSF harness (LSF's contract, not LSF: CONTRACTS.md in
// docs/contracts.md) on the testbed's real nodes and engines: each node has two NVIDIA device
// nodes (major 195, no driver behind them). The pre-exec asks mbatchd which GPUs the job got on
// each host (`bjobs -o gpu_alloc -json`); here the harness's bjobs stand-in answers as
// `bsub -gpu` would have left it (spec.gpus). The job's own environment says nothing it trusts.
const HOME = '/home/jbuser1';
const SCRIPT = '.jobbox-gpu-report.sh';
let fx: LsfFixture;

// In the first container, as the job: every host's view of its GPUs through the job's sshd.
const REPORT = [
  '#!/bin/sh',
  'for h in $(cut -d" " -f1 "$JOBBOX_HOSTFILE"); do',
  '  ssh "$h" \'echo "$(hostname) devices=$(cd /dev && ls -d nvidia* 2>/dev/null | tr "\\n" , ) cuda=${CUDA_VISIBLE_DEVICES-unset} driver=$(cat /var/lib/jobbox-testbed/driver/README 2>/dev/null | wc -l)"\'',
  'done',
  'echo "job cuda=${CUDA_VISIBLE_DEVICES-unset}"',
].join('\n');

beforeAll(async () => {
  fx = await lsfFixture();
  await writeFile(`${HOME}/${SCRIPT}`, `${REPORT}\n`, { mode: 0o755 });
  await chown(`${HOME}/${SCRIPT}`, 2001, 2001);
});
afterAll(() => rm(`${HOME}/${SCRIPT}`, { force: true }));

const devices = (gpus: number[]) => `devices=${[...gpus.map((n) => `nvidia${n}`), 'nvidia-uvm', 'nvidiactl'].sort().join(',')},`;
const byHost = (stdout: string) => new Map(stdout.trim().split('\n').map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)]));
const gpuJob = (over: Parameters<typeof spec>[0]) => spec({ queue: 'gpu', app: 'docker-deb12', command: `./${SCRIPT}`, ...over });

describe('LSF: each host\'s container gets the GPUs mbatchd gave the job there, and no other', () => {
  it('-gpu num=1 on two hosts: one /dev/nvidiaN each, the one LSF allocated there, and CUDA_VISIBLE_DEVICES=0', async () => {
    // The user's CUDA_VISIBLE_DEVICES (host numbers, or a lie) stays out; so does LSF's own.
    const run = await submitLsf(fx.hooks, gpuJob({
      hosts: [{ name: 'node1', slots: 1 }, { name: 'node2', slots: 1 }],
      gpus: { node1: [0], node2: [1] },
      env: { CUDA_VISIBLE_DEVICES: '0,1' },
    }));
    expect(run.preExec.map((p) => p.code)).toEqual([0]);
    expect(run.starter?.code).toBe(0);
    const seen = byHost(run.starter!.stdout);
    expect(seen.get('node1')).toBe(`${devices([0])} cuda=0 driver=1`);
    expect(seen.get('node2')).toBe(`${devices([1])} cuda=0 driver=1`);
    expect(seen.get('job')).toBe('cuda=0');
    expect(run.state).toBe('DONE');
    expect(await containers(run.jobId)).toEqual([]);
  });

  it('-gpu num=2: both GPUs of the host, numbered 0,1', async () => {
    const run = await submitLsf(fx.hooks, gpuJob({ hosts: [{ name: 'node3', slots: 1 }], gpus: { node3: [1, 0, 1] } }));
    expect(byHost(run.starter!.stdout).get('node3')).toBe(`${devices([0, 1])} cuda=0,1 driver=1`);
  });

  it('no -gpu: no NVIDIA device, no driver files, no CUDA_VISIBLE_DEVICES', async () => {
    const run = await submitLsf(fx.hooks, gpuJob({ hosts: [{ name: 'node3', slots: 1 }], gpus: {}, env: { CUDA_VISIBLE_DEVICES: '0' } }));
    expect(byHost(run.starter!.stdout).get('node3')).toBe('devices= cuda=unset driver=0');
  });

  it('the container\'s device cgroup refuses the host\'s other GPU: EPERM where the allocated one gives ENXIO (no driver)', async () => {
    const opened: string[] = [];
    const run = await submitLsf(fx.hooks, gpuJob({
      hosts: [{ name: 'node2', slots: 1 }],
      gpus: { node2: [1] },
      command: 'true',
      beforePostExec: async (id) => {
        const pid = await onNode('node2', ['docker', 'inspect', '-f', '{{.State.Pid}}', `jobbox-${id}`]);
        const cgroup = /^\d+:devices:(\S+)$/m.exec(await onNode('node2', ['cat', `/proc/${pid}/cgroup`]))![1]!;
        for (const minor of [0, 1]) {
          opened.push(await onNode('node2', ['sh', '-c',
            'd=$(mktemp -d) && mknod "$d/gpu" c 195 "$2" && echo $$ > "/sys/fs/cgroup/devices$1/cgroup.procs" && head -c1 "$d/gpu" 2>&1; rm -r "$d"; true',
            'sh', cgroup, String(minor)]));
        }
      },
    }));
    expect(run.state).toBe('DONE');
    expect(opened[0]).toMatch(/Operation not permitted/);
    expect(opened[1]).toMatch(/No such device or address/);
  });

  it('a config whose bjobs is not there: exit 99 with one line, never a requeue', async () => {
    const area = await mkdtemp('/var/lib/jobbox-testbed/shared/lsf-gpus-');
    try {
      await chmod(area, 0o755);
      const config = `${area}/jobbox.ini`;
      await writeFile(config, (await readFile(fx.configPath, 'utf8')).replace(/^bjobs = .*$/m, 'bjobs = /opt/lsf/bin/bjobs'), { mode: 0o644 });
      const hooks = { ...fx.hooks, preExec: fx.hooks.preExec.replace(fx.configPath, config) };
      const run = await submitLsf(hooks, gpuJob({ hosts: [{ name: 'node1', slots: 1 }], gpus: { node1: [0] } }));
      expect(run.preExec.map((p) => p.code)).toEqual([99]);
      expect(run.preExec[0]!.stderr).toBe(`jobbox: job ${run.jobId}: GPUs: bjobs: not found on PATH: /opt/lsf/bin/bjobs\n`);
      expect(await containers(run.jobId)).toEqual([]);
    } finally {
      await rm(area, { recursive: true, force: true });
    }
  });

  it('mbatchd not answering bjobs: the pre-exec exits 1 (LSF requeues) and leaves nothing', async () => {
    const run = await submitLsf(fx.hooks, gpuJob({ hosts: [{ name: 'node1', slots: 1 }], gpus: 'down', maxRequeues: 0 }));
    expect(run.preExec.map((p) => p.code)).toEqual([1]);
    expect(run.preExec[0]!.stderr).toMatch(new RegExp(`^jobbox: job ${run.jobId}: GPUs: bjobs: exit 255: LSF is down\\. Please wait\\.\\.\\.: /var/lib/jobbox-testbed/bin/bjobs$`, 'm'));
    expect(await containers(run.jobId)).toEqual([]);
    expect(await jobDirs(fx.config, run.jobId)).toEqual([]);
  });
});
