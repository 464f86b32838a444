import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Check } from '../../src/plan/doctor.js';
import { INSTALL, onNode, testbed, testbedStatus } from '../support/testbed.js';

// `jobbox doctor` on the real testbed, through the installed CLI, as root on node1 (the admin
// host), against node1..3: every check passes as the testbed is, and each fails on a fixture
// made for real on the nodes: a dockerd stopped, the registry stopped, a dir that is not
// shared or is open to others, a port range inside the kernel's ephemeral one (then reserved
// on one node), a memlock above the one this machine's dockerd may set, an sshd_config with a
// low MaxStartups, an image without sshd, a device_dir with no device, a gpu_dir without the
// GPUs slurmd's gres.conf names. The clock is the one
// check without a testbed fixture: the nodes share the host's clock (test/plan/doctor.test.ts
// covers the judgement).
const NODES = 'node[1-3]';
let area: string;
let base: string;
let registry: string;

beforeAll(async () => {
  const tb = await testbedStatus();
  base = await readFile(tb.config, 'utf8');
  registry = /^registry = (\S+)$/m.exec(base)![1]!;
  area = await mkdtemp('/var/lib/jobbox-testbed/shared/doctor-test-');
  await chmod(area, 0o755);
});
afterAll(async () => rm(area, { recursive: true, force: true }));

/** A config: the testbed's with `edit` applied, under the shared area. */
async function configWith(name: string, edit: (text: string) => string): Promise<string> {
  const file = `${area}/${name}.ini`;
  await writeFile(file, edit(base), { mode: 0o644 });
  return file;
}

async function doctor(config: string, nodes = NODES): Promise<{ code: number; checks: Check[]; stderr: string }> {
  const r = await testbed(['exec', 'node1', '--', `${INSTALL}/dist/cli.js`, 'doctor', '--config', config, '--nodes', nodes, '--json'], { reject: false });
  return { code: r.exitCode ?? -1, checks: r.stdout ? (JSON.parse(String(r.stdout)) as { checks: Check[] }).checks : [], stderr: String(r.stderr) };
}
const failing = (checks: Check[]) => checks.filter((c) => c.status !== 'ok').map((c) => `${c.check} ${c.node} ${c.status}`);
const row = (checks: Check[], check: string, node: string) => checks.find((c) => c.check === check && c.node === node)!;

describe('jobbox doctor', () => {
  it('passes every check on the testbed as it is, and says what it found', async () => {
    const r = await doctor((await testbedStatus()).config);
    expect({ code: r.code, stderr: r.stderr, failing: failing(r.checks) }).toEqual({ code: 0, stderr: '', failing: [] });
    const checks = new Set(r.checks.map((c) => c.check));
    expect([...checks].sort()).toEqual(['clock', 'devices', 'engine', 'gpus', 'image', 'memlock', 'port_dir', 'ports', 'registry', 'sshd', 'state_dir']);
    // Three GPUs a node, two of them Slurm's (the testbed's gres.conf: File=…/nvidia[1-2]).
    expect(row(r.checks, 'gpus', 'node2').detail).toBe("nvidia0 nvidia1 nvidia2 in /var/lib/jobbox-testbed/gpu; slurmd's GRES indices 0=nvidia1 1=nvidia2");
    expect(row(r.checks, 'engine', 'node2').detail).toMatch(/^server \S+, cgroupfs cgroup driver, cgroup v[12]$/);
    expect(row(r.checks, 'image', 'node1').detail).toMatch(/^deb12: OpenSSH \d+\.\d+ and \/bin\/sh$/);
    expect(row(r.checks, 'sshd', 'node3').detail).toBe('MaxStartups 10 (/var/lib/jobbox-testbed/nodes/node3/sshd_config)');
  });

  it('engine: a node whose dockerd is stopped fails, and only that node', async () => {
    await testbed(['dockerd', 'node3', 'stop']);
    try {
      const r = await doctor((await testbedStatus()).config);
      expect(r.code).toBe(1);
      expect(failing(r.checks)).toEqual(['engine node3 fail']);
      expect(row(r.checks, 'engine', 'node3').detail).toMatch(/^does not answer: .*docker daemon/i);
    } finally {
      await testbed(['dockerd', 'node3', 'start']);
    }
  });

  it('registry: stopped, every image fails to resolve, and the checks that need an image say so', async () => {
    await testbed(['registry', 'stop']);
    try {
      const r = await doctor((await testbedStatus()).config, 'node1');
      expect(r.code).toBe(1);
      expect(failing(r.checks)).toEqual(['registry - fail', 'registry - fail']);
      expect(row(r.checks, 'registry', '-').detail).toMatch(/^deb12: .*10\.78\.0\.1:5000/);
    } finally {
      await testbed(['registry', 'start']);
    }
  });

  it('port_dir and state_dir: a node-local state_dir is not shared; one others may write fails everywhere, and so does the image check that caches in it', async () => {
    // /run is each node's own: node1 makes the dir, node2 and node3 have none.
    await onNode('node1', ['install', '-d', '-m', '0755', '/run/jobbox-doctor-test']);
    try {
      const local = await doctor(await configWith('local', (t) => t.replace(/^state_dir = .*$/m, 'state_dir = /run/jobbox-doctor-test')));
      expect(failing(local.checks)).toEqual(['state_dir node2 fail', 'state_dir node3 fail']);
      expect(row(local.checks, 'state_dir', 'node2').detail).toBe('/run/jobbox-doctor-test: missing, or not a directory');
    } finally {
      await onNode('node1', ['rm', '-rf', '/run/jobbox-doctor-test']);
    }
    await mkdir(`${area}/open`, { mode: 0o777 });
    await chmod(`${area}/open`, 0o777);
    const open = await doctor(await configWith('open', (t) => t.replace(/^state_dir = .*$/m, `state_dir = ${area}/open`)));
    expect(open.code).toBe(1);
    // The image check, which keeps its cache in state_dir, meets the start's own refusal of it.
    expect(failing(open.checks)).toEqual(['image node1 fail', 'image node1 fail', 'state_dir node1 fail', 'state_dir node2 fail', 'state_dir node3 fail']);
    expect(row(open.checks, 'image', 'node1').detail).toBe(`deb12: state_dir: must be owned by root and not writable by group or others: ${area}/open`);
    expect(row(open.checks, 'state_dir', 'node1').detail).toBe(`${area}/open: owner uid 0, mode 0777: must be root's, not writable by group or others`);
  });

  it('ports: a range inside the ephemeral ports fails, except on the node that reserves it', async () => {
    const config = await configWith('ports', (t) => t.replace(/^port_range = .*$/m, 'port_range = 40000-40099'));
    await onNode('node2', ['sysctl', '-qw', 'net.ipv4.ip_local_reserved_ports=40000-40099']);
    try {
      const r = await doctor(config);
      expect(failing(r.checks)).toEqual(['ports node1 fail', 'ports node3 fail']);
      expect(row(r.checks, 'ports', 'node1').detail).toMatch(/^port_range 40000-40099 meets the ephemeral range \d+-\d+ on 100 unreserved ports \(40000…\)/);
      expect(row(r.checks, 'ports', 'node2').detail).toMatch(/\(reserved\)$/);
    } finally {
      await onNode('node2', ['sysctl', '-qw', 'net.ipv4.ip_local_reserved_ports=']);
    }
  });

  it('memlock: a queue that passes more than dockerd may set fails on every node', async () => {
    // This machine's hard memlock limit (8192 KiB, TESTBED.md), which its dockerd cannot raise:
    // it has no CAP_SYS_RESOURCE. A queue's memlock above it is refused by runc, for real.
    const hard = (await onNode('node1', ['sh', '-c', 'ulimit -Hl'])).trim();
    expect(Number(hard)).toBeLessThan(65536);
    const config = await configWith('memlock', (t) => t.replace(/^memlock = .*$/gm, 'memlock = 64m'));
    const r = await doctor(config);
    expect(failing(r.checks)).toEqual(['memlock node1 fail', 'memlock node2 fail', 'memlock node3 fail']);
    expect(row(r.checks, 'memlock', 'node2').detail).toMatch(/^the engine cannot set memlock 65536 KiB \(queue \w+\), which RDMA jobs get: .*operation not permitted/);
  });

  it('sshd: MaxStartups below 10 in the config the node\'s sshd was started with fails', async () => {
    const file = '/var/lib/jobbox-testbed/nodes/node3/sshd_config';
    const before = await readFile(file, 'utf8');
    // sshd -T reads the file as the running sshd did at its start; the daemon itself is untouched.
    await writeFile(file, `MaxStartups 3:30:10\n${before}`);
    try {
      const r = await doctor((await testbedStatus()).config);
      expect(failing(r.checks)).toEqual(['sshd node3 fail']);
      expect(row(r.checks, 'sshd', 'node3').detail).toBe(`MaxStartups 3 in ${file}: below 10, sshd drops logins when several jobs start or end here at once`);
    } finally {
      await writeFile(file, before);
    }
  });

  it('image: one without sshd fails with the start\'s own words; a device_dir with no device warns', async () => {
    const ref = `${registry}/projects/jobbox-doctor-nosshd:t1`;
    await onNode('node1', ['docker', 'pull', '-q', `${registry}/deb12:r1`]);
    await onNode('node1', ['docker', 'run', '--name', 'jobbox-doctor-cut', `${registry}/deb12:r1`, 'rm', '/usr/sbin/sshd']);
    await onNode('node1', ['docker', 'commit', 'jobbox-doctor-cut', ref]);
    await onNode('node1', ['docker', 'rm', 'jobbox-doctor-cut']);
    await onNode('node1', ['docker', 'push', '-q', ref]);
    await onNode('node1', ['docker', 'rmi', ref]);
    await mkdir(`${area}/no-devices`, { mode: 0o755 });
    const config = await configWith('image', (t) => `${t.replace(/^device_dir = .*$/m, `device_dir = ${area}/no-devices`)}\n[image nosshd]\nref = ${ref}\n`);
    const r = await doctor(config, 'node1');
    expect(r.code).toBe(1);
    expect(failing(r.checks)).toEqual(['image node1 fail', 'devices node1 warn']);
    expect(row(r.checks, 'image', 'node1').detail).toBe(`nosshd: image nosshd: needs OpenSSH 7.8 or later as /usr/sbin/sshd (SetEnv hands every session the hostfiles): /bin/sh: 1: /usr/sbin/sshd: not found`);
    await onNode('node1', ['sh', '-c', 'docker rmi "$1" >/dev/null 2>&1; true', 'sh', ref]);
  });

  it('gpus: a gpu_dir that does not hold gres.conf\'s files fails on every node, before a GPU job would', async () => {
    await mkdir(`${area}/no-gpus`, { mode: 0o755 });
    const r = await doctor(await configWith('gpus', (t) => t.replace(/^gpu_dir = .*$/m, `gpu_dir = ${area}/no-gpus`)));
    expect(r.code).toBe(1);
    expect(failing(r.checks)).toEqual(['gpus node1 fail', 'gpus node2 fail', 'gpus node3 fail']);
    expect(row(r.checks, 'gpus', 'node3').detail).toBe(`slurmd's GRES index 0 is /var/lib/jobbox-testbed/gpu/nvidia1, not a GPU in ${area}/no-gpus: a job given it would not start (MIG slices are not passed; gpu_dir must hold gres.conf's files)`);
  });

  it('refuses another user than root with one line', async () => {
    const r = await testbed(['exec', 'node1', '--', 'setpriv', '--reuid=2001', '--regid=2001', '--clear-groups', `${INSTALL}/dist/cli.js`, 'doctor'], { reject: false });
    expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 2, stderr: 'jobbox: doctor: must run as root: it uses the admin ssh key and checks root-owned dirs; uid: 2001' });
  });
});
