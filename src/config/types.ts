// The validated configuration. Everything here has passed parseConfig's checks, so code
// below the commands can use it without checking again.

export interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** How much memory a job's container may use on one node. */
export type MemoryPolicy =
  | { kind: 'none' }
  | { kind: 'total'; bytes: number }
  | { kind: 'perSlot'; bytes: number };

export interface Image {
  alias: string;
  /** Always qualified with a registry, so nothing is ever pulled from an implied public hub. */
  ref: string;
  /**
   * The manifest digest (`sha256:…`) a job's setup pinned `ref` to: every node then runs
   * exactly that (config/ref.ts runRef). Unset in the config and in a dry run.
   */
  digest?: string;
  mounts: Mount[];
  env: Record<string, string>;
  /** A user's own reference from a queue's allowed_repos, not an [image] section: always pinned at submit. */
  user?: boolean;
}

export interface Queue {
  name: string;
  defaultImage: string;
  /** Image aliases, each with an [image] section; includes defaultImage. */
  allowedImages: string[];
  /**
   * Repositories users may name images of themselves (config/ref.ts repoAllowed): exact ones,
   * or `reg/path/*` for every one below. Such an image is always pinned at submit.
   */
  allowedRepos: string[];
  /** The submit (esub, job_submit.lua) pins an alias's tag to its digest then, as Shifter does; else the start does. */
  pinAtSubmit: boolean;
  mounts: Mount[];
  /** Globs of device names under Config.deviceDir: only uverbs* and rdma_cm. */
  devices: string[];
  /** `allocated`: each node's container gets the GPUs the scheduler gave the job there (docs/gpus.md); `none`: no GPU ever. */
  gpus: 'none' | 'allocated';
  /** Globs of the control devices under Config.gpuDir a GPU job's containers get too (nvidiactl, …); never a GPU itself. */
  gpuDevices: string[];
  /** The node's driver files (libcuda, nvidia-smi), mounted read-only at the same path into a GPU job's containers, where they exist. */
  gpuMounts: string[];
  cpus: 'slots' | 'none';
  memory: MemoryPolicy;
  shmSizeBytes: number;
  /**
   * RDMA pins memory. Never above the container's memory limit: 'unlimited' means up to it, a
   * byte count at most it. parseConfig refuses 'unlimited' when memory is none.
   */
  memlock: 'unlimited' | number;
  /** docker --pids-limit: tasks (processes and threads) one container may hold; never unlimited. */
  pidsLimit: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  engine: string;
  /** host[:port], or '' when every image ref names its own registry. */
  registry: string;
  portRange: { first: number; last: number };
  portDir: string;
  stateDir: string;
  logFile: string;
  logLevel: LogLevel;
  sshUser: string;
  sshKey: string;
  sshKnownHosts: string;
  sshPort: number;
  connectTimeoutMs: number;
  startTimeoutMs: number;
  pullTimeoutMs: number;
  /** `missing`: a node that holds the job's digest does not ask the registry; `always`: every node pulls it. */
  pullPolicy: 'missing' | 'always';
  /** Registries jobbox's own registry client speaks plain HTTP to (as dockerd's insecure-registries); the others HTTPS. */
  insecureRegistries: string[];
  fanout: number;
  deviceDir: string;
  /** Where a node's GPUs (nvidia0, …) and their control devices are. */
  gpuDir: string;
  defaultQueue: string;
  /** LSF's bpost, by absolute path: the pre-exec posts a failed start's line to the job for `bjobs -l` (commands/lsf/pre-exec.ts); '' = off. */
  bpost: string;
  /** LSF's bjobs, by absolute path: the pre-exec asks it which GPUs a GPU queue's job got on each host (commands/lsf/pre-exec.ts); '' = none, and such a queue's jobs are refused on LSF. */
  bjobs: string;
  /** node_exporter's textfile directory: jobbox.prom there (exec/metrics.ts); '' = off. */
  metricsDir: string;
  /** Maps, not plain objects: lookups by user-supplied names must not reach Object.prototype. */
  queues: Map<string, Queue>;
  images: Map<string, Image>;
}
