// Where Docker and Podman differ, and only here (docs/podman.md): the rest of jobbox builds
// engine commands and reads their answers through a dialect, and never asks which engine it
// is. Root Podman takes Docker's run line as it is (--init, --env-file, --mount, --device,
// --cgroup-parent by absolute path on the cgroupfs manager), so what differs is what the two
// print, and the limits a container gets when nobody names them.
import { posix } from 'node:path';

export type EngineKind = 'docker' | 'podman';

/**
 * The config's `engine` is a CLI: one whose name starts with `podman` is Podman, any other speaks
 * Docker's. podman-docker's `docker` shim is Podman under Docker's name: name it `podman`.
 */
export function engineKind(cli: string): EngineKind {
  return posix.basename(cli).startsWith('podman') ? 'podman' : 'docker';
}

/** The hard limits of the node session that runs the engine, and the kernel's pid_max (the probe's `l` line). */
export interface NodeLimits {
  nofile: number | undefined;
  nproc: number | undefined;
  pidMax: number | undefined;
}

export interface Dialect {
  /** A Go-template expression for one label of a `ps` row. */
  label(name: string): string;
  /** A Go-template expression for a `ps` row's state, as inspect's .State.Status says it: `running`, `exited`… */
  state: string;
  /** `info`'s template: version, cgroup driver, cgroup version (`1` or `v1`). */
  info: string;
  /** The words of a `run --pull never`, or an `image inspect`, for an image the node lacks. */
  noImage: RegExp;
  /** `image inspect`'s template for the registry digests of a copy, then the engine's own pick among them if it has one. */
  repoDigests: string;
  /** The words of an image removal for a name already gone. */
  imageGone: RegExp;
  /** The engine could not be reached: nothing was made on the node. */
  unreachable: RegExp | undefined;
  /** Its refusal of an absolute --cgroup-parent on the systemd cgroup driver, before it makes anything. */
  systemdDriver: RegExp;
  /** A run's flags for the limits jobbox does not set itself (memlock it does). */
  limits(node: NodeLimits | undefined): string[];
  /** A container's own cgroup (v1): `<parent, else defaultParent>/<prefix><id>`. */
  cgroup: { defaultParent: string; prefix: string };
  /** A job container's run flags of this engine alone. */
  runFlags: string[];
  /** `rm --force` flags besides: the container goes at once, not after a stop timeout. */
  removeFlags: string[];
  /**
   * The inspect of an image's manifest annotations, for an engine that hands them to the OCI
   * runtime (undefined: one that ignores them).
   */
  annotationsArgv: ((ref: string) => string[]) | undefined;
}

// docker cannot reach dockerd. It says so plainly, or, for a run with --device, as the server
// OS it could not learn (its ping failed, so the OS is empty): `unknown server OS: ` (docker
// 28), `unknown server OS: .` (older).
const NO_DOCKERD = /Cannot connect to the Docker daemon|unknown server OS: ?\.?$/m;

/**
 * A daemon's answer, which may heal: docker relays it after the same usage hint as its own
 * usage errors. Podman has no daemon; its usage errors are its CLI's own.
 */
export const DAEMON_ANSWER = new RegExp(`Error response from daemon|${NO_DOCKERD.source}`, NO_DOCKERD.flags);

const DOCKER: Dialect = {
  label: (name) => `.Label "${name}"`,
  state: '.State',
  info: '{{.ServerVersion}} {{.CgroupDriver}} {{.CgroupVersion}}',
  noImage: /Error response from daemon: No such image: /,
  repoDigests: '{{json .RepoDigests}}',
  imageGone: /No such image/,
  unreachable: NO_DOCKERD,
  systemdDriver: /cgroup-parent for systemd cgroup should be a valid slice/,
  // A container inherits dockerd's own limits, which its unit sets.
  limits: () => [],
  cgroup: { defaultParent: '/docker', prefix: '' },
  runFlags: [],
  // docker rm --force kills at once.
  removeFlags: [],
  // dockerd keeps no manifest annotations on an image, and passes none to the runtime.
  annotationsArgv: undefined,
};

const PODMAN: Dialect = {
  // Podman's ps rows have a Labels map and no Label method, and their State is the human
  // "Up 2 minutes": the raw one is the listing's own field.
  label: (name) => `index .Labels "${name}"`,
  state: '.ListContainer.State',
  info: '{{.Version.Version}} {{.Host.CgroupManager}} {{.Host.CgroupsVersion}}',
  noImage: /: image not known/,
  // RepoDigests holds a multi-platform tag's list and its platform's manifest both; .Digest is
  // the one the pull resolved the tag to (measured: the registry's digest for the tag).
  repoDigests: '{{json .RepoDigests}} {{.Digest}}',
  imageGone: /image not known/,
  // No daemon: the CLI is the engine.
  unreachable: undefined,
  systemdDriver: /did not receive systemd slice as cgroup parent/,
  // Podman gives every container nofile and nproc 1048576 unless told otherwise, and any
  // --ulimit (jobbox's memlock) replaces containers.conf's default_ulimits. Above the caller's
  // hard limits that needs CAP_SYS_RESOURCE, which root lacks in some VMs and sandboxes (the
  // testbed's): runc then refuses the start. So a container gets what it would inherit, as
  // Docker's do from dockerd: the hard limits of the session that runs podman, nproc at most
  // pid_max, since podman lowers its own nproc to that (measured: 32768 here; a container
  // given 32769 is refused). An unlimited nofile is left to Podman's default.
  limits: (node) => {
    const known = [node?.nproc, node?.pidMax].filter((n) => n !== undefined);
    const nproc = known.length > 0 ? Math.min(...known) : undefined;
    return [
      ...(node?.nofile !== undefined ? ['--ulimit', `nofile=${node.nofile}:${node.nofile}`] : []),
      ...(nproc !== undefined ? ['--ulimit', `nproc=${nproc}:${nproc}`] : []),
    ];
  },
  // Measured with the cgroupfs manager: `/libpod_parent/libpod-<id>`, or `<parent>/libpod-<id>`.
  cgroup: { defaultParent: '/libpod_parent', prefix: 'libpod-' },
  // Podman puts the container's monitor (conmon) in `<cgroup parent>/conmon`, where it outlives
  // the removal for a moment: in the scheduler's own job cgroup that empty dir makes the
  // scheduler's rmdir fail (measured with the LSF harness). Docker's shim stays in the engine's
  // cgroup; no-conmon does the same for conmon, and the container alone is the job's.
  // The rest are Podman's defaults that Docker does not have: root's proxy variables copied into
  // the container, and an image's HEALTHCHECK run by root's systemd timers at the image's interval.
  runFlags: ['--cgroups=no-conmon', '--http-proxy=false', '--no-healthcheck'],
  // Podman's rm --force stops first, waiting the stop timeout (10 s) before it kills.
  removeFlags: ['--time', '0'],
  // Podman copies an image's manifest annotations into the container's OCI config, where crun
  // reads some as orders (run.oci.keep_original_groups keeps root's groups; others replace the
  // seccomp filter), and hooks may match them.
  annotationsArgv: (ref) => ['image', 'inspect', '--format', '{{json .Annotations}}', ref],
};

export function dialect(cli: string): Dialect {
  return engineKind(cli) === 'podman' ? PODMAN : DOCKER;
}

/**
 * Annotations an image may carry: the OCI's own descriptive keys, which no runtime acts on.
 * Any other key (crun's run.oci.*, a hook's) could change how root's runtime starts the job.
 */
export function strangeAnnotations(stdout: string): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  if (parsed === null) return [];
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  return Object.keys(parsed).filter((k) => !/^org\.opencontainers\.image\.[a-z.-]+$/.test(k)).sort();
}

/** The probe's `l <nofile> <nproc> <pid_max>` (numbers, `unlimited`, or `-` where unread). */
export function parseLimits(line: string | undefined): NodeLimits {
  const [nofile = '', nproc = '', pidMax = ''] = (line ?? '').split(' ');
  const n = (s: string) => (/^[1-9]\d{0,11}$/.test(s) ? Number(s) : undefined);
  return { nofile: n(nofile), nproc: n(nproc), pidMax: n(pidMax) };
}
