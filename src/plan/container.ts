// The docker command lines of a job, as argv arrays. Pure: the same plan is printed by
// --dry-run, logged, and sent to each node through the ssh executor's one quoting function.
// Nothing a user controls becomes a docker flag: the image is a ref from the root-owned
// config, mounts and devices come from the config and the node, the rest is the account.
import { posix } from 'node:path';
import { runRef } from '../config/ref.js';
import type { Config, Image, Mount, Queue } from '../config/types.js';
import type { Attempt, Host, Job, LsfNest } from '../job/job.js';
import { gresFiles, slurmExternTask, slurmJobCgroup } from '../scheduler/slurm.js';
import { EXIT, JobboxError } from '../errors.js';
import { dialect, type Dialect, type NodeLimits } from './engine.js';
import { gpuEnv, jobKey, mpiEnv, setEnvLine, type JobPaths } from './job-files.js';

const LABEL = 'org.jobbox';

export function containerName(job: Pick<Job, 'id' | 'index'>): string {
  return job.index > 0 ? `jobbox-${job.id}-${job.index}` : `jobbox-${job.id}`;
}

/** Label filters that select exactly this job attempt's containers, never another attempt's. */
export function attemptFilters(job: Attempt): string[] {
  return [
    '--filter', `label=${LABEL}.job=${job.id}`,
    '--filter', `label=${LABEL}.index=${job.index}`,
    '--filter', `label=${LABEL}.attempt=${job.attempt}`,
  ];
}

/** Device names on a node that the queue's globs admit; umad/issm never match (config refuses such globs). */
export function matchDevices(available: string[], globs: string[]): string[] {
  const patterns = globs.map((g) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`));
  return available.filter((name) => patterns.some((p) => p.test(name))).sort();
}

// A node whose engine runs NVIDIA's container runtime (daemon.json default-runtime nvidia, as
// NVIDIA's toolkit sets it up) gives a container the GPUs its environment names, and CUDA images
// say NVIDIA_VISIBLE_DEVICES=all: every GPU of the node, whatever the scheduler gave. `void` is
// that runtime's "no GPU, no driver files"; --env wins over the image's ENV. jobbox passes the
// allocated GPUs itself.
const NO_NVIDIA_RUNTIME = ['--env', 'NVIDIA_VISIBLE_DEVICES=void'];

/** The GPUs a node's container gets: the scheduler's allocation there, for a queue that passes GPUs. */
export function hostGpus(queue: Queue, host: Host): number[] {
  return queue.gpus === 'allocated' ? host.gpus ?? [] : [];
}

/**
 * A Slurm node's GPUs by device: each GRES index becomes the nvidia<minor> slurmd names for it
 * (`slurmd -G`, through the probe), so a gres.conf that lists a subset or another order, or
 * AutoDetect's order, still gives the job its own GPUs. A file that is no GPU in gpu_dir (a MIG
 * slice) cannot be passed whole, and is refused. Without records (slurmd could not read its
 * config), index n is taken as nvidia<n> (docs/gpus.md).
 */
export function gresDevices(config: Config, host: string, gpus: number[], records: Parameters<typeof gresFiles>[0] | undefined): number[] {
  if (!records) return gpus;
  const files = gresFiles(records);
  return gpus.map((index) => {
    const file = files.get(index);
    const m = file?.startsWith(`${config.gpuDir}/`) ? /^nvidia(\d+)$/.exec(file.slice(config.gpuDir.length + 1)) : null;
    if (!m) throw new JobboxError(`${host}: gpu`, `GRES index ${index} is not a GPU in ${config.gpuDir} (MIG slices are not passed)`, file ?? 'no file in slurmd -G', EXIT.permanent);
    return Number(m[1]);
  }).sort((a, b) => a - b);
}

/** GPUs allocated on the node that its gpu_dir lacks (gpuDevices: what the probe found there). */
export function missingGpus(queue: Queue, host: Host, gpuDevices: string[]): string[] {
  return hostGpus(queue, host).map((n) => `nvidia${n}`).filter((name) => !gpuDevices.includes(name));
}

/**
 * A GPU job's devices and files on one node: each allocated GPU under its own name (the driver
 * opens /dev/nvidia<minor>), the control devices the queue names where the node has them, and
 * the node's driver files that exist there, read-only. The container's own CUDA_VISIBLE_DEVICES
 * counts from 0 (gpuEnv).
 */
function gpuFlags(config: Config, queue: Queue, gpus: number[], facts: NodeFacts): string[] {
  if (gpus.length === 0) return [];
  const control = matchDevices((facts.gpuDevices ?? []).filter((d) => !/^nvidia\d+$/.test(d)), queue.gpuDevices);
  return [
    ...[...gpus.map((n) => `nvidia${n}`), ...control].flatMap((d) => ['--device', `${config.gpuDir}/${d}:/dev/${d}`]),
    ...(facts.gpuMounts ?? []).filter((p) => queue.gpuMounts.includes(p)).flatMap((p) => mountFlag(p, p, true)),
    ...Object.entries(gpuEnv(gpus.length)).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
  ];
}

export function memoryLimit(queue: Queue, slots: number): number | undefined {
  switch (queue.memory.kind) {
    case 'none': return undefined;
    case 'total': return queue.memory.bytes;
    case 'perSlot': return queue.memory.bytes * slots;
  }
}

/** The working directory inside: the job's cwd when a mount makes it visible, else $HOME. */
export function containerCwd(job: Job, mounts: Mount[]): string {
  // The cwd is the user's text: only a normalized absolute path can be judged by prefix.
  const dir = job.cwd;
  const normal = dir.startsWith('/') && posix.normalize(dir) === dir;
  const visible = mounts.some((m) => m.source === m.target && (dir === m.target || dir.startsWith(`${m.target}/`)));
  return normal && visible ? dir : job.owner.home;
}

export interface NodeFacts {
  /** Device names found under the config's device_dir on this node. */
  devices: string[];
  /** The nvidia… device names under the config's gpu_dir on this node. */
  gpuDevices?: string[];
  /** For a GPU queue: which of its gpu_mounts exist on this node. */
  gpuMounts?: string[];
  /** The hard limits of the session that runs the engine there. */
  limits?: NodeLimits;
}

export function jobMounts(queue: Queue, image: Image): Mount[] {
  return [...queue.mounts, ...image.mounts];
}

function mountFlag(source: string, target: string, readOnly: boolean): string[] {
  return ['--mount', `type=bind,source=${source},target=${target}${readOnly ? ',readonly' : ''}`];
}

export function runArgv(
  config: Config,
  job: Job,
  host: Host,
  image: Image,
  paths: JobPaths,
  facts: NodeFacts,
  /** The attempt's nonce (AttemptRecord): a re-run adopts only containers that carry it. */
  nonce: string,
): string[] {
  const queue = config.queues.get(job.queue)!;
  const memory = memoryLimit(queue, host.slots);
  const gpus = hostGpus(queue, host);
  // Pinned pages count against the memory limit anyway, so the ulimit never promises more;
  // parseConfig refuses an unlimited memlock without a memory limit, so this is finite.
  const memlock = Math.min(queue.memlock === 'unlimited' ? Infinity : queue.memlock, memory ?? Infinity);
  return [
    'run', '--detach', '--init',
    '--name', containerName(job),
    '--label', `${LABEL}.job=${job.id}`,
    '--label', `${LABEL}.index=${job.index}`,
    '--label', `${LABEL}.attempt=${job.attempt}`,
    '--label', `${LABEL}.nonce=${nonce}`,
    '--label', `${LABEL}.owner=${job.owner.name}`,
    '--net=host',
    '--user', `${job.owner.uid}:${job.owner.gid}`,
    ...job.owner.gids.flatMap((g) => ['--group-add', String(g)]),
    '--workdir', job.owner.home,
    '--env-file', paths.envFile,
    ...mountFlag(paths.dir, paths.dir, true),
    ...mountFlag(paths.passwd, '/etc/passwd', true),
    ...mountFlag(paths.group, '/etc/group', true),
    ...mountFlag(paths.sshConfig, '/etc/ssh/ssh_config', true),
    ...jobMounts(queue, image).flatMap((m) => mountFlag(m.source, m.target, m.readOnly)),
    ...matchDevices(facts.devices, queue.devices).flatMap((d) => ['--device', `${config.deviceDir}/${d}:/dev/infiniband/${d}`]),
    ...gpuFlags(config, queue, gpus, facts),
    ...(queue.cpus === 'slots' ? ['--cpus', String(host.slots)] : []),
    ...jobCgroup(job, host),
    ...(memory !== undefined ? ['--memory', String(memory)] : []),
    '--ulimit', `memlock=${memlock}:${memlock}`,
    ...dialect(config.engine).limits(facts.limits),
    ...dialect(config.engine).runFlags,
    '--pids-limit', String(queue.pidsLimit),
    '--shm-size', String(queue.shmSizeBytes),
    '--cap-drop', 'ALL',
    '--security-opt', 'no-new-privileges',
    ...NO_NVIDIA_RUNTIME,
    // Pulls go through the node's pull lock, bounded (lifecycle/node.ts pullImage), never
    // through a run: a node without the digest says so, and the setup pulls it then.
    '--pull', 'never',
    // The image's own ENTRYPOINT would get sshd's words as its arguments: a user's image could
    // run anything in sshd's place.
    '--entrypoint', '/usr/sbin/sshd',
    runRef(image),
    '-D', '-e', '-f', paths.sshdConfig,
    // The sessions' variables, with this node's GPUs: sshd takes the first SetEnv it reads, and
    // reads its command line before the job's sshd_config, whose SetEnv then counts for nothing.
    ...(gpus.length > 0 ? ['-o', `SetEnv=${setEnvLine({ ...mpiEnv(paths), ...gpuEnv(gpus.length) })}`] : []),
  ];
}

/** Where jobbox makes a job's own cgroup on a node when the scheduler has none there: `/jobbox/<job key>`. */
export const JOBBOX_CGROUP = 'jobbox';

/**
 * The cgroup the job's container on its `index`-th host is made under, by absolute path, as
 * the cgroupfs driver takes it (the same path in every v1 hierarchy). A Slurm job's joins its
 * extern step on the node (the only cgroup sacct counts that no step made); an LSF job's goes
 * under LSF's job cgroup on the first host when the hooks run in one, else under jobbox's own.
 * The scheduler's limits on the parent hold through the hierarchy.
 */
export function cgroupParent(job: Job, index: number): string | undefined {
  const c = job.containment;
  if (!c) return undefined;
  if (c.scheduler === 'slurm') return `/${slurmExternTask(job, c.multipleSlurmd, index).join('/')}`;
  return index === 0 && c.nest ? c.nest.path : `/${JOBBOX_CGROUP}/${jobKey(job)}`;
}

/** Cgroup dirs relative to each hierarchy's root, cleared in every hierarchy but `keep`'s. */
export interface CgroupClear {
  dirs: string[];
  keep: string[];
}

/**
 * What a teardown clears of the job's cgroups on a node once its containers are gone
 * (plan/node.ts cgroupCleanupArgv): runc removes a container's own cgroup but leaves the
 * parents it made in hierarchies the scheduler does not manage (blkio, pids, name=systemd…),
 * where the scheduler's own rmdir of the job then fails. `keep`: hierarchies whose dirs are
 * the scheduler's to remove (LSF's, on its first host); Slurm's are cleared everywhere, as
 * slurmstepd has gone by the Epilog.
 */
export function cgroupClear(job: Job, host: string): CgroupClear | undefined {
  const c = job.containment;
  if (!c) return undefined;
  if (c.scheduler === 'slurm') return slurmClear(job, host);
  return lsfClear(job, host === job.hosts[0]?.name ? c.nest : undefined);
}

/** An LSF job's cgroups on a host: below LSF's own (`nest`, first host only), else jobbox's. */
export function lsfClear(job: Attempt, nest: LsfNest | undefined): CgroupClear {
  return nest ? { dirs: [nest.path.slice(1)], keep: nest.controllers } : { dirs: [`${JOBBOX_CGROUP}/${jobKey(job)}`], keep: [] };
}

/** A Slurm job's cgroups below either root slurmd may use (`slurm`, `slurm_<node>`). */
export function slurmClear(job: Pick<Job, 'id' | 'owner'>, host: string): CgroupClear {
  const own = slurmJobCgroup(job);
  return { dirs: [`slurm/${own}`, `slurm_${host}/${own}`], keep: [] };
}

function jobCgroup(job: Job, host: Host): string[] {
  const index = job.hosts.findIndex((h) => h.name === host.name);
  const parent = cgroupParent(job, index);
  if (!parent) return [];
  // Slurm always gives a node's cores (CPU_IDs); LSF a binding only where it binds.
  const cpus = job.containment?.scheduler === 'slurm' ? (host.cpus ?? '<cpus>') : host.cpus;
  return ['--cgroup-parent', parent, ...(cpus ? ['--cpuset-cpus', cpus] : [])];
}

/** Lists this attempt's containers on a node, with their state. */
export function psArgv(job: Attempt): string[] {
  return ['ps', '--all', '--quiet', ...attemptFilters(job)];
}

/** Any container holding the job's name: a leftover of another attempt blocks the name. */
export function nameArgv(d: Dialect, job: Attempt): string[] {
  // Docker matches the name with and without its leading slash, Podman's has none.
  return ['ps', '--all', '--filter', `name=^${containerName(job)}$`, '--format', `{{.ID}} {{${d.state}}} {{${d.label(`${LABEL}.attempt`)}}} {{${d.label(`${LABEL}.nonce`)}}}`];
}

/** Prints `true false`: whether the job's container on a node still runs (its sshd with it), and whether the kernel killed it for memory. */
export function runningArgv(job: Attempt): string[] {
  return ['inspect', '--format', '{{.State.Running}} {{.State.OOMKilled}}', containerName(job)];
}

export function removeArgv(d: Dialect, ids: string[]): string[] {
  return ['rm', '--force', ...d.removeFlags, '--volumes', ...ids];
}

/** The section of imageAccountsArgv's output that holds what the image's sshd says it is. */
export const SSHD_VERSION = '/usr/sbin/sshd -V';

/**
 * Reads the image's own account files and its sshd's release, in a container with no network,
 * no privileges and small limits: one throwaway container for both, which is also the check that
 * the image has what jobbox needs, a POSIX /bin/sh (its ENTRYPOINT cannot stand in) and an
 * OpenSSH sshd. A fixed script (nothing is put into it) adds the sshd's words after head's
 * files, in head's own format. A missing account file still fails the run; sshd -V may not (a
 * release without -V prints it in its usage). `name`: the setup removes it by name if the run
 * does not end well, since a client that gives up leaves the container running.
 */
export function imageAccountsArgv(image: Image, name: string): string[] {
  return [
    'run', '--rm', '--name', name, '--label', `${LABEL}.check=image`,
    '--net=none', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--user', '65534:65534',
    // The image may be a user's: whatever its /bin/sh does, it does in a small box, for a short while.
    '--pids-limit', '64', '--memory', '256m', '--cpus', '1', '--workdir', '/',
    ...NO_NVIDIA_RUNTIME,
    '--pull', 'never', '--entrypoint', '/bin/sh', runRef(image), '-c',
    `head -n 1000000 /etc/passwd /etc/group || exit; echo; echo "==> ${SSHD_VERSION} <=="; ${SSHD_VERSION} 2>&1; exit 0`,
  ];
}

/** `head` output for several files → the text of each, keyed by path; a header seen twice keeps the last. */
export function splitHeadOutput(text: string): Map<string, string> {
  const files = new Map<string, string>();
  let current: string | undefined;
  for (const line of text.split('\n')) {
    const header = /^==> (.+) <==$/.exec(line);
    if (header?.[1]) {
      current = header[1];
      files.set(current, '');
    } else if (current !== undefined) {
      files.set(current, `${files.get(current)}${line}\n`);
    }
  }
  return files;
}
