import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/parse.js';
import type { Job } from '../../src/job/job.js';
import { quote } from '../../src/quote.js';
import { cgroupCleanupArgv, cpusetArgv, localDigest, mknodArgv, nodeSteps, parseImages, parseProbe, probeArgv, pullArgv, pulledDigest } from '../../src/plan/node.js';
import { repoOf, runRef } from '../../src/config/ref.js';
import { parseLimits } from '../../src/plan/engine.js';

const config = parseConfig(
  `
[jobbox]
pull_timeout = 120
device_dir = /dev/infiniband
[queue normal]
default_image = deb12
[image deb12]
ref = reg:5000/hpc/deb12:r1
`,
  'test.ini',
);
const image = config.images.get('deb12')!;
const job: Job = {
  id: '4711', index: 3, attempt: 'node1', queue: 'normal', cwd: '/home/a', image: 'deb12', env: {},
  owner: { name: 'a', uid: 2001, gid: 2001, gids: [], home: '/home/a', shell: '/bin/sh' },
  hosts: [{ name: 'node1', slots: 2 }, { name: 'node2', slots: 1 }],
};
const slurmPlain: Job = { ...job, index: 0, attempt: '0', hosts: [{ name: 'node1', slots: 2, cpus: '0-1' }, { name: 'node2', slots: 1, cpus: '1' }] };
const slurmJob: Job = { ...slurmPlain, containment: { scheduler: 'slurm', multipleSlurmd: true } };
const shown = (j: Job) => nodeSteps(config, j, image).map((s) => `# ${s.when}\n${s.argv[0] === 'perl' ? `perl -e <PROBE> ${quote(s.argv.slice(3))}` : quote(s.argv)}`).join('\n');

describe('nodeSteps', () => {
  it('is every command a node is sent besides docker run, as the dry run prints them', () => {
    expect(shown(job)).toMatchSnapshot();
  });

  it('adds, for a Slurm job, the engine check and the job\'s cgroups', () => {
    const slurm = shown(slurmJob);
    expect(slurm.endsWith(shown(slurmPlain))).toBe(true);
    expect(slurm.slice(0, slurm.length - shown(slurmPlain).length)).toMatchSnapshot();
  });

  it('waits for the pull lock no longer than pull_timeout, pulls no longer either, and lets the pull print its digest', () => {
    expect(pullArgv(config, image.ref)).toEqual(['flock', '-w', '120', '/run/jobbox/pull.lock', 'timeout', '-k', '5', '120', 'docker', 'pull', 'reg:5000/hpc/deb12:r1']);
  });
});

describe('the job\'s digest', () => {
  const D = `sha256:${'ab'.repeat(32)}`;
  it('is read from the pull\'s output', () => {
    expect(pulledDigest(`r1: Pulling from hpc/deb12\nDigest: ${D}\nStatus: Image is up to date for reg:5000/hpc/deb12:r1\nreg:5000/hpc/deb12:r1\n`)).toBe(D);
    expect(pulledDigest('reg:5000/hpc/deb12:r1\n')).toBeUndefined();
    expect(pulledDigest('Digest: sha256:short\n')).toBeUndefined();
  });

  it('is read from a copy\'s RepoDigests for its own repository only, and none when two', () => {
    const E = `sha256:${'cd'.repeat(32)}`;
    expect(localDigest(JSON.stringify([`reg:5000/hpc/deb12@${D}`, `other:5000/x@${E}`]), 'reg:5000/hpc/deb12')).toBe(D);
    expect(localDigest(JSON.stringify([`reg:5000/hpc/deb12@${D}`, `reg:5000/hpc/deb12@${E}`]), 'reg:5000/hpc/deb12')).toBeUndefined();
    expect(localDigest(JSON.stringify([`reg:5000/hpc/deb12x@${D}`]), 'reg:5000/hpc/deb12')).toBeUndefined();
    expect(localDigest('null', 'reg:5000/hpc/deb12')).toBeUndefined();
    expect(localDigest('not json', 'reg:5000/hpc/deb12')).toBeUndefined();
  });

  it('takes the engine\'s own pick of several (Podman: a multi-platform tag\'s list and its platform\'s manifest), only when it is one of them', () => {
    const E = `sha256:${'cd'.repeat(32)}`;
    const F = `sha256:${'ef'.repeat(32)}`;
    const both = JSON.stringify([`reg:5000/hpc/deb12@${D}`, `reg:5000/hpc/deb12@${E}`]);
    expect(localDigest(`${both} ${E}\n`, 'reg:5000/hpc/deb12')).toBe(E);
    expect(localDigest(`${both} ${F}\n`, 'reg:5000/hpc/deb12')).toBeUndefined();
    expect(localDigest(`${JSON.stringify([`reg:5000/hpc/deb12@${D}`])} ${F}\n`, 'reg:5000/hpc/deb12')).toBe(D);
    expect(localDigest(`null ${F}`, 'reg:5000/hpc/deb12')).toBeUndefined();
    expect(localDigest(`${both} ${E} x`, 'reg:5000/hpc/deb12')).toBeUndefined();
  });

  it('is listed per node from docker images, only where it carries a registry digest', () => {
    const E = `sha256:${'cd'.repeat(32)}`;
    const out = [`reg:5000/hpc/deb12 r1 ${D} ${E}`, `reg:5000/hpc/deb12 <none> ${D} ${E}`, `local/x latest <none> ${E}`, 'garbage'].join('\n');
    expect(parseImages(out)).toEqual([
      { repository: 'reg:5000/hpc/deb12', tag: 'r1', digest: D, id: E },
      { repository: 'reg:5000/hpc/deb12', tag: '<none>', digest: D, id: E },
    ]);
  });

  it('is what every node runs: the repository at the digest', () => {
    expect(runRef({ ref: 'reg:5000/hpc/deb12:r1', digest: D })).toBe(`reg:5000/hpc/deb12@${D}`);
    expect(runRef({ ref: 'reg:5000/hpc/deb12:r1' })).toBe('reg:5000/hpc/deb12:r1');
    expect(repoOf('localhost:5000/deb12')).toBe('localhost:5000/deb12');
    expect(repoOf(`reg:5000/a@${D}`)).toBe('reg:5000/a');
  });
});

// The probe runs on the nodes with perl: checked here against this host's own ports and a
// device dir made for it.
describe('probeArgv', () => {
  // What this host's kernel says is at /sys/fs/cgroup, as stat(1) names it (cgroup2fs: cgroup2).
  const CGROUP_FS = execFileSync('stat', ['-fc', '%T', '/sys/fs/cgroup'], { encoding: 'utf8' }).trim().replace(/^cgroup2fs$/, 'cgroup2');
  // This process's hard limits, which the probe (its child) inherits, as /proc says them.
  const hard = (name: string) => /^Max (?:open files|processes)\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(`Max ${name} `)) ?? '')?.[1];
  const LIMITS = `l ${hard('open files')} ${hard('processes')} ${readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()}`;
  const dir = mkdtempSync(join(tmpdir(), 'jobbox-probe-'));
  const normal = config.queues.get('normal')!;
  const probeIn = (deviceDir: string, stdin: string, queue = normal, gpuDir = '/dev') => {
    const argv = probeArgv({ ...config, deviceDir, gpuDir }, queue);
    return execFileSync(argv[0]!, argv.slice(1), { input: stdin, encoding: 'utf8' });
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('says free for a port nothing holds, taken for one a listener holds', async () => {
    const net = await import('node:net');
    const server = net.createServer().listen(0, '0.0.0.0');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    try {
      expect(parseProbe(probeIn(dir, `${port}\n`))).toEqual({ listening: true, cgroupFs: CGROUP_FS, limits: parseLimits(LIMITS.slice(2)), devices: [], gpuDevices: [], gpuNumbers: [], gpuMounts: [] });
    } finally {
      server.close();
    }
    await new Promise((r) => server.once('close', r));
    expect(probeIn(dir, `${port}\n`)).toBe(`free\n${CGROUP_FS}\n${LIMITS}\n`);
  });

  it('says taken for a port held on [::] alone (v6-only): sshd would listen on IPv4 only', async () => {
    const net = await import('node:net');
    const server = net.createServer().listen({ port: 0, host: '::', ipv6Only: true });
    await new Promise((r) => server.once('listening', r));
    try {
      expect(parseProbe(probeIn(dir, `${(server.address() as { port: number }).port}\n`)).listening).toBe(true);
    } finally {
      server.close();
    }
  });

  it('lists the character devices of device_dir, not its files, dirs or symlinks; none without the dir', () => {
    // A symlink to a device, and a plain file, in a dir of its own: neither is listed.
    symlinkSync('/dev/null', join(dir, 'uverbs0'));
    writeFileSync(join(dir, 'rdma_cm'), '');
    // Port 0: any port may bind it, so the answer is `free` whatever this host runs.
    expect(probeIn(dir, '0\n')).toBe(`free\n${CGROUP_FS}\n${LIMITS}\n`);
    expect(probeIn('/dev', '0\n').split('\n').slice(3, 5)).toEqual(expect.arrayContaining([expect.stringMatching(/^d \S+$/)]));
    const dev = parseProbe(probeIn('/dev', '0\n'));
    expect(dev.devices).toEqual(expect.arrayContaining(['null', 'zero']));
    // /dev/fd is a symlink, /dev/pts a dir.
    expect(dev.devices).not.toContain('fd');
    expect(dev.devices).not.toContain('pts');
    expect(probeIn(join(dir, 'none'), '0\n')).toBe(`free\n${CGROUP_FS}\n${LIMITS}\n`);
  });

  it('lists gpu_dir\'s nvidia… devices with their numbers, and for a GPU queue which gpu_mounts exist', () => {
    const gpus = join(dir, 'gpu');
    execFileSync('mkdir', ['-p', gpus]);
    // Character devices need root; /dev/null's numbers stand in for them where it is root (CI).
    const root = process.getuid?.() === 0;
    if (root) for (const name of ['nvidia0', 'nvidia1', 'nvidiactl']) execFileSync('mknod', [join(gpus, name), 'c', '1', '3']);
    writeFileSync(join(gpus, 'nvidia2'), '');
    writeFileSync(join(gpus, 'other'), '');
    const gpuQueue = { ...normal, gpus: 'allocated' as const, gpuMounts: [join(dir, 'rdma_cm'), join(dir, 'absent')] };
    const found = parseProbe(probeIn(join(dir, 'none'), '0\n', gpuQueue, gpus));
    expect(found.gpuDevices).toEqual(root ? ['nvidia0', 'nvidia1', 'nvidiactl'] : []);
    expect(found.gpuNumbers).toEqual(root ? ['1:3', '1:3', '1:3'] : []);
    expect(found.gpuMounts).toEqual([join(dir, 'rdma_cm')]);
    expect(found.devices).toEqual([]);
    const plain = parseProbe(probeIn(join(dir, 'none'), '0\n', normal, gpus));
    expect([plain.gpuDevices, plain.gpuMounts]).toEqual([found.gpuDevices, []]);
  });

  it('reads slurmd\'s GPU records from its lines', () => {
    expect(parseProbe('free\ntmpfs\ng nvidia0 195:0\ns 2 0 /dev/nvidia[0-1]\ns 1 2 /dev/nvidia3\n').gres).toEqual([
      { count: 2, index: 0, file: '/dev/nvidia[0-1]' }, { count: 1, index: 2, file: '/dev/nvidia3' },
    ]);
    expect(parseProbe('free\ntmpfs\n').gres).toBeUndefined();
    expect(probeArgv(config, { ...normal, gpus: 'allocated' }, true).slice(3, 6)).toEqual(['/dev/infiniband', '/dev', '1']);
    expect(probeArgv(config, normal, true)[5]).toBe('0');
  });

  it('refuses anything but a port number on its stdin', () => {
    expect(() => execFileSync('perl', probeArgv(config, config.queues.get('normal')!).slice(1), { input: '22; rm -rf /\n', stdio: 'pipe' })).toThrow(/port: 22; rm -rf/);
  });
});

// The cpuset script runs as root on the nodes against /sys/fs/cgroup/cpuset; here against a
// plain directory tree with the same files, which is what its mkdir, cat and echo see.
describe('cpusetArgv', () => {
  it('makes the levels top-down: slurmd\'s root and the owner\'s level with their parent\'s cores, the job\'s with its own, and leaves existing ones alone', async () => {
    const { mkdtempSync, readFileSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const top = mkdtempSync(join(tmpdir(), 'jobbox-cpuset-'));
    // A fresh node: slurmd makes its root at its first step, after the Prolog.
    const root = join(top, 'slurm_node2');
    writeFileSync(join(top, 'cpuset.cpus'), '0-3\n');
    writeFileSync(join(top, 'cpuset.mems'), '0\n');
    const run = (levels: string[], cpus: string) => {
      const argv = cpusetArgv(['slurm_node2', ...levels], 2, cpus);
      argv[4] = top; // the node's /sys/fs/cgroup/cpuset
      execFileSync(argv[0]!, argv.slice(1));
    };
    run(['uid_2001', 'job_7', 'step_extern', 'task_1'], '2-3');
    const read = (rel: string, file: string) => readFileSync(join(root, rel, file), 'utf8').trim();
    expect(readFileSync(join(root, 'cpuset.cpus'), 'utf8').trim()).toBe('0-3');
    expect(read('uid_2001', 'cpuset.cpus')).toBe('0-3');
    expect(['uid_2001/job_7', 'uid_2001/job_7/step_extern', 'uid_2001/job_7/step_extern/task_1'].map((d) => read(d, 'cpuset.cpus'))).toEqual(['2-3', '2-3', '2-3']);
    expect(read('uid_2001/job_7/step_extern/task_1', 'cpuset.mems')).toBe('0');
    // A second job of the same owner: uid_2001 stays as it was.
    writeFileSync(join(root, 'uid_2001', 'cpuset.cpus'), '0-3 (slurm\'s)\n');
    run(['uid_2001', 'job_8', 'step_extern', 'task_0'], '1');
    expect(read('uid_2001', 'cpuset.cpus')).toBe('0-3 (slurm\'s)');
    expect(read('uid_2001/job_8/step_extern/task_0', 'cpuset.cpus')).toBe('1');
  });
});

describe('mknodArgv', () => {
  it('gives mknod back on the job\'s own levels that exist, below slurmd\'s root and the owner\'s level', () => {
    const top = mkdtempSync(join(tmpdir(), 'jobbox-devices-'));
    try {
      // slurmstepd has made the job and its extern step, not yet the task.
      execFileSync('mkdir', ['-p', join(top, 'slurm_node2/uid_2001/job_7/step_extern')]);
      const argv = mknodArgv(['slurm_node2', 'uid_2001', 'job_7', 'step_extern', 'task_1'], 2, ['195:1']);
      argv[4] = top; // the node's /sys/fs/cgroup/devices
      execFileSync(argv[0]!, argv.slice(1));
      const allowed = (rel: string) => (existsSync(join(top, rel, 'devices.allow')) ? readFileSync(join(top, rel, 'devices.allow'), 'utf8') : undefined);
      expect(['slurm_node2', 'slurm_node2/uid_2001'].map(allowed)).toEqual([undefined, undefined]);
      expect(['slurm_node2/uid_2001/job_7', 'slurm_node2/uid_2001/job_7/step_extern'].map(allowed)).toEqual(['c 195:1 m\n', 'c 195:1 m\n']);
      expect(existsSync(join(top, 'slurm_node2/uid_2001/job_7/step_extern/task_1'))).toBe(false);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });
});

// Against a plain tree shaped like /sys/fs/cgroup: a dir per hierarchy, cpu and cpuacct as
// links to cpu,cpuacct. rmdir on a plain dir removes it only when empty, as on cgroupfs.
describe('cgroupCleanupArgv', () => {
  it('removes the dirs deepest first in every hierarchy but the kept ones, follows no link, and leaves a dir in use', async () => {
    const { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const top = mkdtempSync(join(tmpdir(), 'jobbox-cgroups-'));
    const nest = 'lsf/c1/job.7.0.1700000000';
    for (const h of ['memory', 'blkio', 'cpu,cpuacct', 'systemd']) mkdirSync(join(top, h, nest, 'ctr'), { recursive: true });
    symlinkSync('cpu,cpuacct', join(top, 'cpu'));
    mkdirSync(join(top, 'pids', 'jobbox', '7.0.node1', 'ctr'), { recursive: true });
    // In use: a file stands for the tasks rmdir would find there.
    mkdirSync(join(top, 'systemd', nest, 'busy'));
    writeFileSync(join(top, 'systemd', nest, 'busy', 'tasks'), '42\n');
    const run = (clear: { dirs: string[]; keep: string[] }) => {
      const argv = cgroupCleanupArgv(clear);
      argv[4] = top; // the node's /sys/fs/cgroup
      execFileSync(argv[0]!, argv.slice(1));
    };
    run({ dirs: [nest], keep: ['memory', 'cpu,cpuacct'] });
    expect(existsSync(join(top, 'memory', nest, 'ctr'))).toBe(true);
    expect(existsSync(join(top, 'cpu,cpuacct', nest, 'ctr'))).toBe(true);
    expect(existsSync(join(top, 'blkio', nest))).toBe(false);
    expect(existsSync(join(top, 'blkio', 'lsf/c1'))).toBe(true);
    expect(existsSync(join(top, 'systemd', nest, 'ctr'))).toBe(false);
    expect(existsSync(join(top, 'systemd', nest, 'busy'))).toBe(true);
    run({ dirs: ['jobbox/7.0.node1'], keep: [] });
    expect(existsSync(join(top, 'pids', 'jobbox', '7.0.node1'))).toBe(false);
    expect(existsSync(join(top, 'pids', 'jobbox'))).toBe(true);
    // Never a hierarchy's root, nor anything outside the level named: empty dirs stay.
    mkdirSync(join(top, 'pids', 'other', 'empty'), { recursive: true });
    run({ dirs: ['', '.', '..', 'jobbox/../other', '/other', 'other/./empty'], keep: [] });
    expect(existsSync(join(top, 'pids', 'other', 'empty'))).toBe(true);
    expect(existsSync(join(top, 'pids', 'jobbox'))).toBe(true);
  });
});

describe('repoOf with a tag and a digest', () => {
  it('drops both', () => {
    const D = `sha256:${'ab'.repeat(32)}`;
    expect(repoOf(`reg:5000/a/b:tag@${D}`)).toBe('reg:5000/a/b');
    expect(runRef({ ref: `reg:5000/a/b:tag@${D}`, digest: D })).toBe(`reg:5000/a/b@${D}`);
  });

  it('takes a pull\'s digest only when it printed exactly one', () => {
    const D = `sha256:${'ab'.repeat(32)}`;
    expect(pulledDigest(`Digest: ${D}\nDigest: ${D}\n`)).toBeUndefined();
  });
});
