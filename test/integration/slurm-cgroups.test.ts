import { chown, readFile, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { expandHostlist } from '../../src/scheduler/slurm.js';
import { containerTop, ENGINE, INSTALL, jobLogFrom, onNode, slurmClient, testbedStatus, type TestbedStatus, waitFor } from '../support/testbed.js';

// The scheduler sees and controls what runs in jobbox containers: on the real Slurm testbed
// (proctrack/cgroup, task/cgroup with ConstrainCores and ConstrainRAMSpace, PrologFlags=Contain,
// slurmdbd on MariaDB), every container joins its job's extern step on its node.
const NODES = ['node1', 'node2', 'node3'];
const HOME = '/home/jbuser1';
const UID = 2001;
let tb: TestbedStatus;
let config: Config;
let jobLog: (id: string) => Promise<string[]>;

beforeAll(async () => {
  tb = await testbedStatus();
  expect(tb.slurm).toBe(true);
  config = await loadConfig(tb.config);
  jobLog = await jobLogFrom(config.logFile);
});

const { slurm, jobField } = slurmClient(() => tb.slurmConf);
const asUser = (argv: string[]) =>
  execa('runuser', ['-u', 'jbuser1', '--', 'env', `SLURM_CONF=${tb.slurmConf}`, ...argv], { cwd: HOME, reject: false });

async function submit(name: string, body: string, options: string[]): Promise<string> {
  const script = `${HOME}/${name}.sh`;
  await writeFile(script, `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  await chown(script, UID, UID);
  const r = await asUser(['sbatch', '--parsable', '-o', `${HOME}/${name}.out`, ...options, script]);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

const FINAL = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)$/;
const finished = (id: string, seconds = 120) => waitFor(`job ${id} to finish`, async () => FINAL.test(await jobField(id, 'JobState')), seconds);
const running = (id: string, file: string) => waitFor(`job ${id} to start its payload`, async () => (await readFile(file, 'utf8').catch(() => '')).includes('ready'), 90);

/** The host pids of every process of the job's container on a node. */
const containerPids = (node: string, id: string) => containerTop(node, `jobbox-${id}`);

/** The node's part of `scontrol show job -d`: its CPU_IDs. */
async function cpuIds(id: string): Promise<Map<string, string>> {
  const text = (await slurm(['scontrol', 'show', 'job', '-d', id])).stdout;
  const ids = new Map<string, string>();
  for (const m of text.matchAll(/^ {5}Nodes=(\S+) CPU_IDs=(\S+) /gm)) for (const node of expandHostlist(m[1]!)) ids.set(node, m[2]!);
  return ids;
}

describe('Slurm: a job\'s containers live in its cgroups', () => {
  it('puts every process of every container in the job\'s extern step on its node, bound to the job\'s cores there', async () => {
    const marker = `${HOME}/cg1.ready`;
    await writeFile(marker, '');
    await chown(marker, UID, UID);
    const id = await submit('cg1', [
      '#SBATCH -N3',
      // A payload process in every container, and the batch script's own.
      `mpirun -np 3 sleep 30 & sleep 3; echo ready > ${marker}; wait`,
    ].join('\n'), ['-C', 'docker-deb12']);
    try {
      await running(id, marker);
      const cores = await cpuIds(id);
      for (const [i, node] of NODES.entries()) {
        const task = `/slurm_${node}/uid_${UID}/job_${id}/step_extern/task_${i}/`;
        const pids = await containerPids(node, id);
        // sshd, docker-init, the session and its payload at least.
        expect(pids.length).toBeGreaterThanOrEqual(3);
        for (const pid of pids) {
          const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
          for (const controller of ['cpuset', 'memory', 'cpuacct']) {
            const line = lines.find((l) => l.split(':')[1] === controller);
            expect(line, `pid ${pid} on ${node}: ${controller}`).toContain(task);
          }
        }
        const inspect = await onNode(node, [ENGINE, 'inspect', '--format', '{{.HostConfig.CgroupParent}} {{.HostConfig.CpusetCpus}}', `jobbox-${id}`]);
        expect(inspect).toBe(`${task.slice(0, -1)} ${cores.get(node)}`);
        const cpuset = (await readFile(`/sys/fs/cgroup/cpuset${task}cpuset.cpus`, 'utf8')).trim();
        expect(cpuset).toBe(cores.get(node));
      }
      // The admin's dry run of the same job prints the same parents and cores, from its record.
      const dry = await execa('node', [`${INSTALL}/dist/cli.js`, 'slurm', 'prolog', '--dry-run', '--job', id, '--config', tb.config], { env: { SLURM_CONF: tb.slurmConf } });
      const parents = NODES.map((n, i) => `${n} /slurm_${n}/uid_${UID}/job_${id}/step_extern/task_${i}`);
      expect(dry.stdout).toContain(`# cgroup parent per node: ${parents.join(', ')}`);
      for (const node of NODES) expect(dry.stdout).toMatch(new RegExp(`--cgroup-parent /slurm_${node}/\\S+ --cpuset-cpus ${cores.get(node)} `));
    } finally {
      await slurm(['scancel', id]);
      await finished(id);
    }
  });

  it('is accounted by sacct: a CPU burner and 300 MB in the container on node2 count in the extern step', async () => {
    const id = await submit('cg2', [
      // perl's string repetition briefly needs twice what it keeps: room for 600 MB a node.
      '#SBATCH -N3 --mem=1G',
      // Over the job's own sshd into node2's container: 6 s of CPU, then 300 MB held for 4 s.
      'ssh node2 "timeout 6 sh -c \'while :; do :; done\'; perl -e \'\\$x = \\"a\\" x (300 * 1024 * 1024); sleep 4\'"',
    ].join('\n'), ['-C', 'docker-deb12']);
    await finished(id);
    expect(await jobField(id, 'JobState')).toBe('COMPLETED');
    const line = async () => (await slurm(['sacct', '-n', '-P', '-j', `${id}.extern`, '-o', 'TotalCPU,MaxRSS,MaxRSSNode'])).stdout.trim();
    // slurmdbd records the step when it ends; the Epilog may still be running.
    await waitFor('sacct to list the extern step', async () => (await line()) !== '', 30);
    const [total, maxRss, node] = (await line()).split('|');
    expect(seconds(total!)).toBeGreaterThanOrEqual(5);
    expect(kib(maxRss!)).toBeGreaterThanOrEqual(300 * 1024);
    expect(node).toBe('node2');
    // The Epilog read the same from the containers' own cgroups, into the job log.
    const usage = async () => (await jobLog(id))
      .map((l) => (l.includes('"usage"') ? (JSON.parse(l) as { usage: Record<string, { cpuSeconds: number; peakBytes: number }> }).usage : undefined))
      .find(Boolean);
    await waitFor('the Epilog\'s usage line', async () => (await usage()) !== undefined, 30);
    const node2 = (await usage())!.node2!;
    expect(node2.cpuSeconds).toBeGreaterThanOrEqual(5);
    expect(node2.peakBytes).toBeGreaterThanOrEqual(300 * 1024 * 1024);
  });

  it('is stopped by the job\'s own memory limit: 512 MB under --mem=256M ends OUT_OF_MEMORY', async () => {
    const id = await submit('cg3', 'perl -e \'$x = "a" x (512 * 1024 * 1024); sleep 5\'; rc=$?; echo "perl exit $rc"; exit $rc', ['-N1', '--mem=256M', '-C', 'docker-deb12']);
    await finished(id);
    const state = await jobField(id, 'JobState');
    const out = await readFile(`${HOME}/cg3.out`, 'utf8');
    // The kill is the job's limit (its memory cgroup), not the container's own (2 GiB a slot here).
    expect(state === 'OUT_OF_MEMORY' || (state === 'FAILED' && /perl exit 137/.test(out)), `${state}: ${out}`).toBe(true);
  });

  it('leaves no payload process on any node within 10 s of scancel', async () => {
    const marker = `${HOME}/cg4.ready`;
    await writeFile(marker, '');
    await chown(marker, UID, UID);
    const id = await submit('cg4', `#SBATCH -N3\nmpirun -np 3 sleep 300 & sleep 3; echo ready > ${marker}; wait`, ['-C', 'docker-deb12']);
    await running(id, marker);
    const before = await Promise.all(NODES.map((n) => containerPids(n, id)));
    expect(before.every((p) => p.length > 0)).toBe(true);
    await slurm(['scancel', id]);
    const started = Date.now();
    const alive = async () => (await Promise.all(before.flat().map((pid) => readFile(`/proc/${pid}/stat`).then(() => pid, () => undefined)))).filter(Boolean);
    await waitFor('every payload process to be gone', async () => (await alive()).length === 0, 10);
    expect(Date.now() - started).toBeLessThan(10_000);
    await finished(id);
  });
});

/** sacct's `[DD-[HH:]]MM:SS[.mmm]` → seconds. */
function seconds(text: string): number {
  const [days, rest] = text.includes('-') ? [Number(text.split('-')[0]), text.split('-')[1]!] : [0, text];
  return days * 86400 + rest.split(':').reduce((s, part) => s * 60 + Number(part), 0);
}

/** sacct's `123456K` / `300M` → KiB. */
function kib(text: string): number {
  const m = /^([\d.]+)([KMG]?)$/.exec(text);
  if (!m) return 0;
  return Number(m[1]) * ({ '': 1 / 1024, K: 1, M: 1024, G: 1024 * 1024 } as Record<string, number>)[m[2]!]!;
}
