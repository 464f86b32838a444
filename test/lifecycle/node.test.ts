import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/parse.js';
import { runRef } from '../../src/config/ref.js';
import { EXIT, JobboxError } from '../../src/errors.js';
import type { Session } from '../../src/exec/ssh.js';
import type { Job } from '../../src/job/job.js';
import { checkCgroupV1, commandFailed, startContainer } from '../../src/lifecycle/node.js';
import type { Result } from '../../src/result.js';

// A failed node command becomes one error line naming what it was about, with the exit code
// LSF needs: docker's own usage errors would fail the same way on every requeue.
describe('commandFailed', () => {
  const RUN = ['docker', 'run', '--detach', '--name', 'jobbox-7', 'reg:5000/deb12:r1', '/usr/sbin/sshd', '-f', '/jobs/7/sshd_config'];
  it.each<[string, number, string, number]>([
    ['a docker usage error is permanent', 125, "unknown flag: --bogus\nSee 'docker run --help'.\n", 99],
    ['a bad argument value is permanent', 125, "invalid argument \"x\" for \"--memory\" flag: invalid size: 'x'\nSee 'docker run --help'.\n", 99],
    // What docker 28 prints (the testbed's): the hint is "Run …", and it follows the daemon's answers too.
    ['a usage error, docker 23 and later', 125, "unknown flag: --bogus\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker run --help' for more information\n", 99],
    ['the daemon\'s own 125 may heal', 125, 'docker: Error response from daemon: Conflict. The container name "/jobbox-7" is already in use.\n', 1],
    ['a name conflict, docker 28: may heal', 125, 'docker: Error response from daemon: Conflict. The container name "/jobbox-7" is already in use by container "8cad1f58e979". You have to remove (or rename) that container to be able to reuse that name.\n\nRun \'docker run --help\' for more information\n', 1],
    ['a missing bind source, docker 28: may heal (a file system not mounted yet)', 125, 'docker: Error response from daemon: invalid mount config for type "bind": bind source path does not exist: /scratch\n\nRun \'docker run --help\' for more information\n', 1],
    ['a daemon that does not answer may heal', 1, 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n', 1],
    ['a daemon that does not answer a run with --device: docker cannot learn its OS, may heal', 125, "docker: unknown server OS: \n\nRun 'docker run --help' for more information\n", 1],
    ['the same, docker 27 and older: may heal', 125, "docker: unknown server OS: .\nSee 'docker run --help'.\n", 1],
  ])('%s', (_case, code, stderr, exitCode) => {
    const err = commandFailed('node2', RUN, { code, stdout: '', stderr }, 'reg:5000/deb12:r1');
    expect(err.exitCode).toBe(exitCode);
    expect(err.message).toBe(`jobbox: node2: docker run: exit ${code}: ${JSON.stringify(stderr.split('\n')[0]!.trim()).slice(1, -1)}: reg:5000/deb12:r1`);
  });

  it('says first that the job\'s cgroups deny a device rule, before runc\'s long line is cut, and that is permanent', () => {
    // What runc said on the testbed below a Slurm job denied the node's other GPUs (slurm-gpus.test.ts).
    const stderr = 'docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: error setting cgroup config for procHooks process: failed to write "c *:* m": write /sys/fs/cgroup/devices/slurm_node2/uid_2001/job_18/step_extern/task_9/fe76/devices.allow: operation not permitted: unknown\n';
    const err = commandFailed('node2', RUN, { code: 125, stdout: '', stderr }, 'reg:5000/deb12:r1');
    expect(err.exitCode).toBe(EXIT.permanent);
    expect(err.message).toMatch(/^jobbox: node2: docker run: exit 125: the job's cgroups deny a device rule of the container \(docker: Error response from daemon: /);
  });
});

describe('startContainer', () => {
  const config = parseConfig('[queue normal]\ndefault_image = deb12\n[image deb12]\nref = reg:5000/deb12:r1\n', 'test.ini');
  const image = { ...config.images.get('deb12')!, digest: `sha256:${'a'.repeat(64)}` };
  const job: Job = {
    id: '7', index: 0, attempt: 'node1', queue: 'normal', cwd: '/home/a', image: 'deb12', env: {},
    owner: { name: 'a', uid: 2001, gid: 2001, gids: [], home: '/home/a', shell: '/bin/sh' },
    hosts: [{ name: 'node2', slots: 1 }], containment: { scheduler: 'lsf' },
  };
  /** A node whose engine answers each command in turn with the next of `replies`; `sent` records the commands. */
  const node = (replies: Result[]) => {
    const sent: string[][] = [];
    const session = { host: 'node2', run: async (argv: string[]) => (sent.push(argv), replies.shift() ?? { code: 0, stdout: '', stderr: '' }) };
    return { session: session as unknown as Session, sent };
  };
  const RUN = ['run', '--detach', '--pull', 'never', runRef(image)];

  it('a node without the digest pulls it when its run says so, and runs again', async () => {
    const { session, sent } = node([{ code: 125, stdout: '', stderr: `docker: Error response from daemon: No such image: ${runRef(image)}\nSee 'docker run --help'.\n` }]);
    let pulled = 0;
    await startContainer(session, config, job, image, RUN, 'n', undefined, async () => void pulled++, () => {});
    expect([pulled, sent.map((a) => a[1])]).toEqual([1, ['run', 'run']]);
  });

  it('an engine that words a missing image otherwise: asked plainly whether the node holds it, then pulled, and run once more', async () => {
    const { session, sent } = node([{ code: 125, stdout: '', stderr: 'Error: reg:5000/deb12: image not known\n' }, { code: 0, stdout: '', stderr: '' }, { code: 1, stdout: '', stderr: 'no such image\n' }]);
    let pulled = 0;
    const { containment: _lsf, ...plain } = job;
    await startContainer(session, config, plain, image, RUN, 'n', undefined, async () => void pulled++, () => {});
    // run, who holds the name (nobody), does it hold the image (no), then the run again after the pull.
    expect([pulled, sent.map((a) => a.slice(1, 3).join(' '))]).toEqual([1, ['run --detach', 'ps --all', 'image inspect', 'run --detach']]);
  });

  it('an engine on the systemd driver refuses the job\'s cgroup parent: permanent, and nothing else is asked', async () => {
    const said = 'docker: Error response from daemon: cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice".';
    const { session, sent } = node([{ code: 125, stdout: '', stderr: `${said}\nSee 'docker run --help'.\n` }]);
    const err = await startContainer(session, config, job, image, RUN, 'n', undefined, async () => {}, () => {}).then(() => undefined, (e: unknown) => e as JobboxError);
    expect([err?.message, err?.exitCode, sent.length]).toEqual([
      `jobbox: node2: docker run: a job's containers join its cgroups, which needs the engine's cgroupfs driver (it uses systemd): ${said.replaceAll('"', '\\"')}`,
      99,
      1,
    ]);
  });
});

describe('startContainer, the engine down', () => {
  const config = parseConfig('[queue normal]\ndefault_image = deb12\n[image deb12]\nref = reg:5000/deb12:r1\n', 'test.ini');
  const image = { ...config.images.get('deb12')!, digest: `sha256:${'a'.repeat(64)}` };
  const job = { id: '7', index: 0, attempt: 'node1', queue: 'normal', cwd: '/', image: 'deb12', env: {}, owner: { name: 'a', uid: 1, gid: 1, gids: [], home: '/', shell: '/bin/sh' }, hosts: [{ name: 'node2', slots: 1 }] } as Job;
  const down = { code: 125, stdout: '', stderr: "docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\nSee 'docker run --help'.\n" };

  it('says the node is untouched when its first command could not reach the engine, and fails transient', async () => {
    let untouched = 0;
    const session = { host: 'node2', run: async () => down } as unknown as Session;
    const err = await startContainer(session, config, job, image, ['run'], 'n', undefined, async () => {}, () => void untouched++).then(() => undefined, (e: unknown) => e as JobboxError);
    expect([untouched, err?.exitCode]).toEqual([1, 1]);
  });

  it('also when docker, for a run with --device, could not learn the engine\'s OS (its ping failed)', async () => {
    let untouched = 0;
    const session = { host: 'node2', run: async () => ({ code: 125, stdout: '', stderr: "docker: unknown server OS: \n\nRun 'docker run --help' for more information\n" }) } as unknown as Session;
    const err = await startContainer(session, config, job, image, ['run'], 'n', undefined, async () => {}, () => void untouched++).then(() => undefined, (e: unknown) => e as JobboxError);
    expect([untouched, err?.exitCode]).toEqual([1, 1]);
  });

  it('not when a stale holder was removed first: that command reached the engine', async () => {
    let untouched = 0;
    const replies = [{ code: 0, stdout: '', stderr: '' }, down];
    const session = { host: 'node2', run: async () => replies.shift()! } as unknown as Session;
    await startContainer(session, config, job, image, ['run'], 'n', { running: undefined, stale: ['abc'] }, async () => {}, () => void untouched++).catch(() => undefined);
    expect(untouched).toBe(0);
  });
});

describe('checkCgroupV1', () => {
  const probe = (cgroupFs: string) => ({ listening: false, devices: [], gpuNumbers: [], cgroupFs });
  it('takes the v1 tree, and refuses cgroup2 or none with one permanent line', () => {
    expect(() => checkCgroupV1('node3', probe('tmpfs'))).not.toThrow();
    for (const fs of ['cgroup2', '-']) {
      expect(() => checkCgroupV1('node3', probe(fs))).toThrow(new JobboxError('node3: cgroups', "a job's containers join its cgroups, which needs cgroup v1 (the filesystem at /sys/fs/cgroup)", fs, EXIT.permanent));
    }
  });
});
