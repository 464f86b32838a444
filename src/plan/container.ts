// The docker command lines of a job, as argv arrays. Pure: the same plan is printed by
// --dry-run, logged, and sent to each node through the ssh executor's one quoting function.
// Nothing a user controls becomes a docker flag: the image is a ref from the root-owned
// config, mounts and devices come from the config and the node, the rest is the account.
import { posix } from 'node:path';
import type { Config, Image, Mount, Queue } from '../config/types.js';
import type { Host, Job } from '../job/job.js';
import type { JobPaths } from './job-files.js';

const LABEL = 'org.jobbox';

export function containerName(job: Pick<Job, 'id' | 'index'>): string {
  return job.index > 0 ? `jobbox-${job.id}-${job.index}` : `jobbox-${job.id}`;
}

/** Label filters that select exactly this job attempt's containers, never another attempt's. */
export function attemptFilters(job: Pick<Job, 'id' | 'index' | 'attempt'>): string[] {
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
): string[] {
  const queue = config.queues.get(job.queue)!;
  const memory = memoryLimit(queue, host.slots);
  return [
    'run', '--detach', '--init',
    '--name', containerName(job),
    '--label', `${LABEL}.job=${job.id}`,
    '--label', `${LABEL}.index=${job.index}`,
    '--label', `${LABEL}.attempt=${job.attempt}`,
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
    ...(queue.cpus === 'slots' ? ['--cpus', String(host.slots)] : []),
    ...(memory !== undefined ? ['--memory', String(memory)] : []),
    '--ulimit', queue.memlock === 'unlimited' ? 'memlock=-1:-1' : `memlock=${queue.memlock}:${queue.memlock}`,
    '--shm-size', String(queue.shmSizeBytes),
    '--cap-drop', 'ALL',
    '--security-opt', 'no-new-privileges',
    image.ref,
    '/usr/sbin/sshd', '-D', '-e', '-f', paths.sshdConfig,
  ];
}

/** Lists this attempt's containers on a node, with their state. */
export function psArgv(job: Job): string[] {
  return ['ps', '--all', '--quiet', ...attemptFilters(job)];
}

/** Any container holding the job's name: a leftover of another attempt blocks the name. */
export function nameArgv(job: Job): string[] {
  return ['ps', '--all', '--filter', `name=^/${containerName(job)}$`, '--format', `{{.ID}} {{.State}} {{.Label "${LABEL}.attempt"}}`];
}

export function removeArgv(ids: string[]): string[] {
  return ['rm', '--force', '--volumes', ...ids];
}

/** Reads the image's own account files, in a container with no network and no privileges. */
export function imageAccountsArgv(image: Image): string[] {
  return [
    'run', '--rm', '--net=none', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--user', '65534:65534',
    image.ref, 'head', '-n', '1000000', '/etc/passwd', '/etc/group',
  ];
}

/** `head` output for several files → the text of each, keyed by path. */
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
