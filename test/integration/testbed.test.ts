import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { onNode, testbedStatus, type TestbedStatus } from '../support/testbed.js';

// The proving ground itself: these checks fail if a node is not a real, separate host.
let tb: TestbedStatus;
let config: Config;
const image = () => config.images.get('deb12')!.ref;
const label = 'org.jobbox.test=testbed-suite';

beforeAll(async () => {
  tb = await testbedStatus();
  config = await loadConfig(tb.config);
});

afterAll(async () => {
  for (const node of tb.nodes) {
    const ids = await onNode(node.name, ['docker', 'ps', '-aq', '--filter', `label=${label}`]);
    if (ids) await onNode(node.name, ['docker', 'rm', '-f', ...ids.split('\n')]);
  }
});

describe('testbed nodes', () => {
  it('are up with their own hostname, IP, dockerd and sshd', async () => {
    expect(tb.up).toBe(true);
    expect(tb.registryUp).toBe(true);
    expect(tb.nodes.length).toBeGreaterThanOrEqual(3);
    expect(new Set(tb.nodes.map((n) => n.ip)).size).toBe(tb.nodes.length);
    for (const node of tb.nodes) {
      expect(await onNode(node.name, ['hostname'])).toBe(node.name);
      expect(await onNode(node.name, ['ip', '-4', '-o', 'addr', 'show', 'eth0'])).toContain(`${node.ip}/24`);
      expect(node.dockerd && node.sshd).toBe(true);
    }
  });

  it('each pull the image from the registry and run it with --net=host', async () => {
    await Promise.all(
      tb.nodes.map(async (node) => {
        await onNode(node.name, ['docker', 'rmi', '-f', image()]);
        await onNode(node.name, ['docker', 'pull', '-q', image()]);
        const digests = await onNode(node.name, ['docker', 'image', 'inspect', '-f', '{{json .RepoDigests}}', image()]);
        expect(digests).toContain(`${tb.registry}/deb12@sha256:`);
        const seen = await onNode(node.name, [
          'docker', 'run', '--rm', '--net=host', '--label', label, image(),
          'sh', '-c', 'hostname; ip -4 -o addr show eth0',
        ]);
        expect(seen).toContain(node.name);
        expect(seen).toContain(`${node.ip}/24`);
      }),
    );
  });

  it('carry the source label that jobbox image import put on the image', async () => {
    const labels = await onNode('node1', ['docker', 'image', 'inspect', '-f', '{{json .Config.Labels}}', image()]);
    expect(JSON.parse(labels)).toMatchObject({ 'org.jobbox.source': expect.stringMatching(/chroot\/deb12$/) });
  });

  it('let a container on node1 reach an sshd in a container on node3 over the bridge', async () => {
    const port = '41999';
    await onNode('node3', [
      'docker', 'run', '-d', '--net=host', '--name', 'tb-sshd', '--label', label, image(),
      'sh', '-c', `ssh-keygen -A >/dev/null && mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -p ${port}`,
    ]);
    const banner = await onNode('node1', [
      'docker', 'run', '--rm', '--net=host', '--label', label, image(),
      'bash', '-c', `for i in $(seq 50); do exec 3<>/dev/tcp/node3/${port} && break; sleep 0.1; done; head -c 7 <&3`,
    ]);
    expect(banner).toBe('SSH-2.0');
  });

  it('each list only their own containers', async () => {
    await onNode('node2', ['docker', 'run', '-d', '--name', 'tb-only-node2', '--label', label, image(), 'sleep', '300']);
    expect(await onNode('node2', ['docker', 'ps', '--format', '{{.Names}}'])).toContain('tb-only-node2');
    for (const other of ['node1', 'node3']) {
      expect(await onNode(other, ['docker', 'ps', '-a', '--format', '{{.Names}}'])).not.toContain('tb-only-node2');
    }
  });

  it('reach each other as root with the admin key from the jobbox config', async () => {
    for (const target of tb.nodes) {
      const out = await onNode('node1', [
        'ssh', '-i', config.sshKey, '-o', `UserKnownHostsFile=${config.sshKnownHosts}`,
        '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', `root@${target.name}`, 'hostname; id -u',
      ]);
      expect(out).toBe(`${target.name}\n0`);
    }
  });

  it('have their own InfiniBand character devices at the configured device dir', async () => {
    const list = async (node: string) =>
      (await onNode(node, ['find', config.deviceDir, '-type', 'c', '-printf', '%f\\n'])).split('\n').sort();
    expect(await list('node1')).toEqual(['issm0', 'rdma_cm', 'umad0', 'uverbs0', 'uverbs1']);
    expect(await list('node2')).toEqual(['issm0', 'rdma_cm', 'umad0', 'uverbs0']);
  });
});

describe('testbed site', () => {
  it('has test users, one with two supplementary groups, and a /home shared by all nodes', async () => {
    expect(await onNode('node2', ['id', '-nG', 'jbuser1'])).toBe('jbuser1 jbproj1 jbproj2');
    expect(await onNode('node3', ['id', '-u', 'jbuser2'])).toBe('2002');
    await onNode('node1', ['sh', '-c', 'echo shared > /home/jbuser2/.testbed-probe']);
    expect(await onNode('node3', ['cat', '/home/jbuser2/.testbed-probe'])).toBe('shared');
    await onNode('node3', ['rm', '-f', '/home/jbuser2/.testbed-probe']);
  });

  it('has a config with the aliases and queues the suites rely on', () => {
    expect([...config.images.keys()].sort()).toEqual(['deb12', 'deb12-mpich']);
    expect(config.queues.get('normal')).toMatchObject({ defaultImage: 'deb12', allowedImages: ['deb12', 'deb12-mpich'] });
    expect(config.queues.get('short')).toMatchObject({ defaultImage: 'deb12-mpich', allowedImages: ['deb12-mpich'] });
  });
});
