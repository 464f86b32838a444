import { describe, expect, it } from 'vitest';
import { commandFailed } from '../../src/lifecycle/node.js';

// A failed node command becomes one error line naming what it was about, with the exit code
// LSF needs: docker's own usage errors would fail the same way on every requeue.
describe('commandFailed', () => {
  const RUN = ['docker', 'run', '--detach', '--name', 'jobbox-7', 'reg:5000/deb12:r1', '/usr/sbin/sshd', '-f', '/jobs/7/sshd_config'];
  it.each<[string, number, string, number]>([
    ['a docker usage error is permanent', 125, "unknown flag: --bogus\nSee 'docker run --help'.\n", 99],
    ['a bad argument value is permanent', 125, "invalid argument \"x\" for \"--memory\" flag: invalid size: 'x'\nSee 'docker run --help'.\n", 99],
    ['the daemon\'s own 125 may heal', 125, 'docker: Error response from daemon: Conflict. The container name "/jobbox-7" is already in use.\n', 1],
    ['a daemon that does not answer may heal', 1, 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n', 1],
  ])('%s', (_case, code, stderr, exitCode) => {
    const err = commandFailed('node2', RUN, { code, stdout: '', stderr }, 'reg:5000/deb12:r1');
    expect(err.exitCode).toBe(exitCode);
    expect(err.message).toBe(`jobbox: node2: docker run: exit ${code}: ${JSON.stringify(stderr.split('\n')[0]).slice(1, -1)}: reg:5000/deb12:r1`);
  });
});
