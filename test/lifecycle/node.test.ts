import { describe, expect, it } from 'vitest';
import { commandFailed } from '../../src/lifecycle/node.js';

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
    ['a daemon that does not answer docker run, docker 28: may heal', 125, "docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n\nRun 'docker run --help' for more information\n", 1],
  ])('%s', (_case, code, stderr, exitCode) => {
    const err = commandFailed('node2', RUN, { code, stdout: '', stderr }, 'reg:5000/deb12:r1');
    expect(err.exitCode).toBe(exitCode);
    expect(err.message).toBe(`jobbox: node2: docker run: exit ${code}: ${JSON.stringify(stderr.split('\n')[0]).slice(1, -1)}: reg:5000/deb12:r1`);
  });
});
