import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/parse.js';
import type { Config } from '../../src/config/types.js';
import { dialect } from '../../src/plan/engine.js';
import { checksTable, factsArgv, judgeEngine, judgeFacts, judgeMemlock, largestMemlock, memlockArgv, parseFacts, sortChecks, type NodeFacts } from '../../src/plan/doctor.js';

const INI = `[jobbox]
registry = reg.example:5000
port_range = 30000-30199
port_dir = /var/lib/jobbox/ports
state_dir = /var/lib/jobbox/jobs
device_dir = /dev/infiniband

[queue normal]
default_image = deb12
memory = 2g/slot
memlock = 8192k

[queue big]
default_image = deb12
memory = 64g
memlock = unlimited

[image deb12]
ref = reg.example:5000/deb12:r1
`;
const config: Config = parseConfig(INI, 'jobbox.ini');

// As the script prints on a healthy node: 1.5 s after the epoch's 1796659000 s.
const HEALTHY = [
  'clock 1796659000500000000', 'dir 0 700 shared', 'dir 0 755 shared', 'ephemeral 32768\t60999', 'reserved ',
  'device rdma_cm', 'device uverbs0', 'sshd_config /etc/ssh/sshd_config', 'maxstartups 10:30:100', 'limits 20000 96367 32768', '',
].join('\n');
const MID = 1_796_659_000_500;
const judge = (f: Partial<NodeFacts>, mid = MID, rtt = 20, c = config) => judgeFacts(c, 'node1', { ...parseFacts(HEALTHY), ...f }, mid, rtt);
const gpuConfig: Config = parseConfig(`${INI}\n[queue gpu]\ndefault_image = deb12\ngpus = allocated\n`, 'jobbox.ini');
const status = (rows: ReturnType<typeof judge>) => Object.fromEntries(rows.map((r) => [r.check, r.status]));

describe('the node script', () => {
  it('passes every value as an argument, never in the script', () => {
    const argv = factsArgv(config, '.jobbox-doctor-abc');
    expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
    expect(argv.slice(3)).toEqual(['jobbox-doctor', '/var/lib/jobbox/ports', '/var/lib/jobbox/jobs', '.jobbox-doctor-abc', '/dev/infiniband', '22', '']);
    // gpu_dir only where a queue passes GPUs.
    expect(factsArgv(gpuConfig, 'm').at(-1)).toBe('/dev');
    expect(argv[2]).not.toContain('/var/lib/jobbox');
  });

  it('parses what a healthy node prints', () => {
    expect(parseFacts(HEALTHY)).toEqual({
      clockNs: 1796659000500000000n, dirs: [{ uid: 0, mode: 0o700, shared: true }, { uid: 0, mode: 0o755, shared: true }],
      ephemeral: [32768, 60999], reserved: [], devices: ['rdma_cm', 'uverbs0'], gpus: [], gres: [], sshdConfig: '/etc/ssh/sshd_config', maxStartups: 10,
      limits: { nofile: 20000, nproc: 96367, pidMax: 32768 },
    });
    expect(parseFacts('gpu nvidia0\ngpu nvidiactl\ngres 2 0 /dev/nvidia[1-2]\n')).toMatchObject({ gpus: ['nvidia0', 'nvidiactl'], gres: [{ count: 2, index: 0, file: '/dev/nvidia[1-2]' }] });
    expect(parseFacts('reserved 30000,30100-30199\ndir missing\n')).toMatchObject({ reserved: [[30000, 30000], [30100, 30199]], dirs: [undefined] });
  });
});

describe('judgeFacts', () => {
  it('gpus: with a GPU queue, the node\'s GPUs, and each of slurmd\'s GRES indices a GPU in gpu_dir', () => {
    const gpu = (f: Partial<NodeFacts>) => judge(f, MID, 20, gpuConfig).find((r) => r.check === 'gpus')!;
    expect(judge({}).find((r) => r.check === 'gpus')).toBeUndefined();
    expect(gpu({ gpus: ['nvidia0', 'nvidia1', 'nvidia2', 'nvidiactl'], gres: [{ count: 2, index: 0, file: '/dev/nvidia[1-2]' }] })).toMatchObject({ status: 'ok', detail: "nvidia0 nvidia1 nvidia2 in /dev; slurmd's GRES indices 0=nvidia1 1=nvidia2" });
    expect(gpu({ gpus: ['nvidia0'] })).toMatchObject({ status: 'ok', detail: 'nvidia0 in /dev' });
    expect(gpu({ gpus: ['nvidiactl'] })).toMatchObject({ status: 'warn', detail: 'no GPU (nvidia<N>) in /dev, though queue gpu passes GPUs: jobs here get none' });
    expect(gpu({ gpus: ['nvidia0'], gres: [{ count: 1, index: 3, file: '/dev/nvidia-caps/nvidia-cap21' }] })).toMatchObject({ status: 'fail', detail: expect.stringMatching(/^slurmd's GRES index 3 is \/dev\/nvidia-caps\/nvidia-cap21, not a GPU in \/dev/) });
    expect(gpu({ gpus: ['nvidia0'], gres: [{ count: 2, index: 0, file: '/opt/gpu/nvidia[0-1]' }] }).status).toBe('fail');
    expect(gpu({ gpus: ['nvidia0'], gres: [{ count: 3, index: 0, file: '/dev/nvidia[0-1]' }] })).toMatchObject({ status: 'fail', detail: 'slurmd -G: jobbox: slurmd -G: a record of 3 GPUs names 2 files: /dev/nvidia[0-1]' });
  });

  it('a healthy node passes everything', () => {
    expect(judge({}).every((r) => r.status === 'ok')).toBe(true);
    expect(judge({}).find((r) => r.check === 'clock')!.detail).toBe('0 ms ahead (±10 ms)');
  });

  it('the clock: fails beyond 2 s off this host, net of half the round trip', () => {
    expect(status(judge({}, MID - 2500, 20)).clock).toBe('fail');
    expect(status(judge({}, MID - 2500, 1200)).clock).toBe('ok'); // 2.5 s, but known only within 0.6 s
    expect(judge({}, MID + 3000)!.find((r) => r.check === 'clock')!.detail).toMatch(/^3000 ms behind \(±10 ms\): more than 2 s off this host/);
    expect(status(judge({ clockNs: undefined })).clock).toBe('fail');
  });

  it('the dirs: missing, not root\'s, too open, or not shared', () => {
    expect(status(judge({ dirs: [undefined, { uid: 0, mode: 0o755, shared: true }] })).port_dir).toBe('fail');
    expect(status(judge({ dirs: [{ uid: 0, mode: 0o755, shared: true }, { uid: 0, mode: 0o755, shared: true }] })).port_dir).toBe('fail'); // port_dir must be 0700
    expect(status(judge({ dirs: [{ uid: 0, mode: 0o700, shared: true }, { uid: 0, mode: 0o775, shared: true }] })).state_dir).toBe('fail');
    expect(status(judge({ dirs: [{ uid: 0, mode: 0o700, shared: true }, { uid: 1000, mode: 0o755, shared: true }] })).state_dir).toBe('fail');
    const local = judge({ dirs: [{ uid: 0, mode: 0o700, shared: false }, { uid: 0, mode: 0o755, shared: true }] }).find((r) => r.check === 'port_dir')!;
    expect(local).toMatchObject({ status: 'fail', detail: expect.stringContaining('it must be shared by every node') });
  });

  it('the ports: the range may meet the ephemeral one only where reserved', () => {
    expect(judge({ ephemeral: [30100, 60999] }).find((r) => r.check === 'ports')).toMatchObject({ status: 'fail', detail: expect.stringContaining('on 100 unreserved ports (30100…)') });
    expect(status(judge({ ephemeral: [30100, 60999], reserved: [[30000, 30199]] })).ports).toBe('ok');
    expect(status(judge({ ephemeral: [30100, 60999], reserved: [[30100, 30198]] })).ports).toBe('fail');
    expect(status(judge({ ephemeral: undefined })).ports).toBe('fail');
  });

  it('the devices: none where a queue passes some is a warning', () => {
    // The queues pass uverbs* rdma_cm by default.
    expect(judge({ devices: [] }).find((r) => r.check === 'devices')).toMatchObject({ status: 'warn', detail: expect.stringContaining('jobs here get none') });
    const none = parseConfig(INI.replace(/memlock = (\S+)/g, 'memlock = $1\ndevices ='), 'jobbox.ini');
    expect(judgeFacts(none, 'n', { ...parseFacts(HEALTHY), devices: [] }, MID, 20).find((r) => r.check === 'devices')).toMatchObject({ status: 'ok' });
  });

  it('sshd: MaxStartups below 10 fails, unreadable warns', () => {
    expect(status(judge({ maxStartups: 3 })).sshd).toBe('fail');
    expect(status(judge({ maxStartups: undefined })).sshd).toBe('warn');
  });
});

describe('the engine', () => {
  it('wants cgroupfs, and says what it found', () => {
    expect(judgeEngine('n', 0, '20.10.24+dfsg1 cgroupfs 1\n', '')).toEqual({ check: 'engine', node: 'n', status: 'ok', detail: 'server 20.10.24+dfsg1, cgroupfs cgroup driver, cgroup v1' });
    expect(judgeEngine('n', 0, '24.0.7 systemd 2\n', '').status).toBe('fail');
    // Podman's info: its version, cgroup manager, and `v1`.
    expect(judgeEngine('n', 0, '4.3.1 cgroupfs v1\n', '')).toMatchObject({ status: 'ok', detail: 'server 4.3.1, cgroupfs cgroup driver, cgroup v1' });
    expect(judgeEngine('n', 0, '4.3.1 systemd v2\n', '')).toMatchObject({ status: 'fail', detail: expect.stringContaining('cgroup_manager = "cgroupfs"') });
    expect(judgeEngine('n', 1, '', 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n')).toMatchObject({
      status: 'fail', detail: 'does not answer: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
    });
  });

  it('memlock: the most a queue passes, which the engine must set', () => {
    expect(largestMemlock(config)).toEqual({ bytes: 64 * 2 ** 30, queue: 'big' }); // unlimited up to its 64g memory
    const limits = { nofile: 20000, nproc: 96367, pidMax: 32768 };
    const docker = memlockArgv(dialect('docker'), limits, 'r@sha256:x', 8388608, 'jobbox-check-1');
    expect(docker).toEqual(expect.arrayContaining(['memlock=8388608:8388608', 'org.jobbox.check=memlock', 'jobbox-check-1', 'no-new-privileges']));
    expect(docker.filter((a) => a === '--ulimit')).toHaveLength(1);
    // Podman's check gets the limits a job's container gets there.
    expect(memlockArgv(dialect('podman'), limits, 'r@sha256:x', 8388608, 'c')).toEqual(expect.arrayContaining(['nofile=20000:20000', 'nproc=32768:32768']));
    expect(judgeMemlock('n', { bytes: 8388608, queue: 'normal' }, 0, '8192\n', '').status).toBe('ok');
    expect(judgeMemlock('n', { bytes: 8388608, queue: 'normal' }, 0, '64\n', '').status).toBe('fail');
    const refused = 'docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 8: operation not permitted: unknown\n';
    expect(judgeMemlock('n', { bytes: 2 ** 26, queue: 'big' }, 125, '', refused)).toMatchObject({ status: 'fail', detail: expect.stringMatching(/^the engine cannot set memlock 65536 KiB \(queue big\), which RDMA jobs get: docker: .*operation not permitted/) });
    expect(judgeMemlock('n', { bytes: 1, queue: 'q' }, 125, '', 'Unable to find image \'x\' locally\ndocker: Error response from daemon: No such image: x.\n').status).toBe('warn');
  });
});

describe('the report', () => {
  it('puts failures first and aligns the columns', () => {
    const rows = sortChecks([
      { check: 'sshd', node: 'node1', status: 'ok', detail: 'a' },
      { check: 'engine', node: 'node2', status: 'fail', detail: 'b' },
      { check: 'devices', node: 'node1', status: 'warn', detail: 'c\u001b]0;x\u0007' },
    ]);
    expect(checksTable(rows).split('\n')).toEqual([
      'CHECK    NODE   STATUS  DETAIL',
      'engine   node2  fail    b',
      'devices  node1  warn    c\\u001b]0;x\\u0007',
      'sshd     node1  ok      a',
    ]);
  });
});
