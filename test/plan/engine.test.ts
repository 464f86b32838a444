import { describe, expect, it } from 'vitest';
import { dialect, engineKind, parseLimits, strangeAnnotations } from '../../src/plan/engine.js';

describe('engineKind', () => {
  it('is Podman for a CLI named podman…, by name or path, and Docker for any other', () => {
    expect(engineKind('podman')).toBe('podman');
    expect(engineKind('/usr/bin/podman')).toBe('podman');
    expect(engineKind('/opt/podman-4.9/bin/podman')).toBe('podman');
    expect(engineKind('docker')).toBe('docker');
    expect(engineKind('/usr/local/bin/nerdctl')).toBe('docker');
    // A directory named podman does not make its docker Podman.
    expect(engineKind('/opt/podman/docker')).toBe('docker');
  });
});

describe('parseLimits', () => {
  it('reads the probe\'s numbers; unlimited, `-` and junk are unknown', () => {
    expect(parseLimits('20000 96367 32768')).toEqual({ nofile: 20000, nproc: 96367, pidMax: 32768 });
    expect(parseLimits('unlimited unlimited 4194304')).toEqual({ nofile: undefined, nproc: undefined, pidMax: 4194304 });
    expect(parseLimits('- - -')).toEqual({ nofile: undefined, nproc: undefined, pidMax: undefined });
    expect(parseLimits('0 1e9 0x10')).toEqual({ nofile: undefined, nproc: undefined, pidMax: undefined });
    expect(parseLimits(undefined)).toEqual({ nofile: undefined, nproc: undefined, pidMax: undefined });
  });
});

describe('limits', () => {
  it('Docker: none, a container inherits dockerd\'s', () => {
    expect(dialect('docker').limits({ nofile: 20000, nproc: 96367, pidMax: 32768 })).toEqual([]);
  });

  it('Podman: the session\'s hard limits, nproc at most pid_max; an unknown one is left to Podman', () => {
    const podman = dialect('podman');
    expect(podman.limits({ nofile: 20000, nproc: 96367, pidMax: 32768 })).toEqual(['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768']);
    expect(podman.limits({ nofile: 1048576, nproc: 127000, pidMax: 4194304 })).toEqual(['--ulimit', 'nofile=1048576:1048576', '--ulimit', 'nproc=127000:127000']);
    expect(podman.limits({ nofile: undefined, nproc: 5000, pidMax: undefined })).toEqual(['--ulimit', 'nproc=5000:5000']);
    // An unlimited nproc is still no more than pid_max.
    expect(podman.limits({ nofile: undefined, nproc: undefined, pidMax: 32768 })).toEqual(['--ulimit', 'nproc=32768:32768']);
    expect(podman.limits(undefined)).toEqual([]);
  });
});

describe('strangeAnnotations', () => {
  it('takes the OCI\'s descriptive keys, and names every other', () => {
    expect(strangeAnnotations('null')).toEqual([]);
    expect(strangeAnnotations('{}')).toEqual([]);
    expect(strangeAnnotations('{"org.opencontainers.image.title":"x","org.opencontainers.image.base.digest":"sha256:1"}')).toEqual([]);
    expect(strangeAnnotations('{"run.oci.keep_original_groups":"1","org.opencontainers.image.title":"x","io.kubernetes.cri-o.Devices":"/dev/sda"}'))
      .toEqual(['io.kubernetes.cri-o.Devices', 'run.oci.keep_original_groups']);
    // Not the OCI's namespace, only a prefix of it.
    expect(strangeAnnotations('{"org.opencontainers.image":"x","org.opencontainers.imagefoo":"y"}')).toEqual(['org.opencontainers.image', 'org.opencontainers.imagefoo']);
  });

  it('cannot read anything but a JSON object', () => {
    expect(strangeAnnotations('')).toBeUndefined();
    expect(strangeAnnotations('[]')).toBeUndefined();
    expect(strangeAnnotations('"x"')).toBeUndefined();
    expect(strangeAnnotations('map[a:b]')).toBeUndefined();
  });
});

describe('what only Podman needs', () => {
  it('asks an image\'s annotations, removes at once, names its cgroups libpod-<id>', () => {
    expect(dialect('docker').annotationsArgv).toBeUndefined();
    expect(dialect('podman').annotationsArgv!('r@sha256:1')).toEqual(['image', 'inspect', '--format', '{{json .Annotations}}', 'r@sha256:1']);
    expect(dialect('docker').cgroup).toEqual({ defaultParent: '/docker', prefix: '' });
    expect(dialect('podman').cgroup).toEqual({ defaultParent: '/libpod_parent', prefix: 'libpod-' });
  });
});

describe('the words each engine says', () => {
  it('an image the node lacks', () => {
    expect(dialect('docker').noImage.test('docker: Error response from daemon: No such image: r/deb12:r1.')).toBe(true);
    expect(dialect('podman').noImage.test('Error: 10.78.0.1:5000/deb12-mpich:r1: image not known')).toBe(true);
    expect(dialect('podman').noImage.test('Error: runc: runc create failed')).toBe(false);
  });

  it('an engine out of reach: only a daemon can be', () => {
    expect(dialect('docker').unreachable?.test('docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock.')).toBe(true);
    expect(dialect('podman').unreachable).toBeUndefined();
  });

  it('a cgroup parent the systemd driver refuses', () => {
    expect(dialect('docker').systemdDriver.test('docker: Error response from daemon: cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice".')).toBe(true);
    expect(dialect('podman').systemdDriver.test('Error: did not receive systemd slice as cgroup parent when using systemd to manage cgroups: invalid argument')).toBe(true);
  });
});
