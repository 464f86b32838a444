// Every default in one place. The first three blocks are jobbox.ini's keys, which
// etc/jobbox.ini.example documents (a test holds the two together); the rest are fixed
// values an admin does not set, each with the reason for its size.

/** The container engine's CLI, docker or a docker-compatible one (config `engine`, `image import --engine`). */
export const ENGINE = 'docker';

/** The config a command reads without --config (and, outside the root hooks, without JOBBOX_CONFIG). */
export const DEFAULT_CONFIG = '/etc/jobbox/jobbox.ini';

export const GLOBAL_DEFAULTS = {
  engine: ENGINE,
  registry: '',
  // Below Linux's ephemeral range (32768-60999): an outgoing connection must never hold a job's port.
  port_range: '30000-30999',
  port_dir: '/var/lib/jobbox/ports',
  state_dir: '/var/lib/jobbox/jobs',
  log_file: '/var/log/jobbox/jobbox.log',
  log_level: 'info',
  ssh_user: 'root',
  ssh_key: '/etc/jobbox/ssh/id_ed25519',
  ssh_known_hosts: '/etc/jobbox/ssh/known_hosts',
  ssh_port: '22',
  connect_timeout: '10',
  start_timeout: '60',
  pull_timeout: '600',
  pull_policy: 'missing',
  insecure_registries: '',
  fanout: '256',
  device_dir: '/dev/infiniband',
  gpu_dir: '/dev',
  default_queue: 'normal',
  bpost: '',
  bjobs: '',
  metrics_dir: '',
};
// allowed_images defaults to default_image, filled in parseQueue.
export const QUEUE_DEFAULTS = {
  default_image: '',
  allowed_images: '',
  allowed_repos: '',
  pin_at_submit: 'no',
  mounts: '',
  devices: 'uverbs* rdma_cm',
  gpus: 'none',
  // The driver's control devices a CUDA program opens besides its GPUs, where the node has them;
  // nvidia-uvm-tools (profiling) and nvidia-modeset (displays) only where a queue names them.
  gpu_devices: 'nvidiactl nvidia-uvm',
  gpu_mounts: '',
  cpus: 'slots',
  // A container runs under dockerd, outside the scheduler's own memory limit: without a limit
  // here one job could take the node's RAM. 2 GiB per slot is the low end of HPC nodes.
  memory: '2g/slot',
  shm_size: '64m',
  memlock: 'unlimited',
  // Threads count too: far above a full node of MPI ranks with their runtime threads (128 × 4),
  // and an eighth of the smallest kernel.pid_max (32768; systemd sets 4194304).
  pids_limit: '4096',
};
export const IMAGE_DEFAULTS = { ref: '', mounts: '' };

/** The one PATH jobbox's own children get: a root hook's environment is the job's, and the user's PATH must not pick our getent or scontrol. */
export const SYSTEM_PATH = '/usr/bin:/bin:/usr/sbin:/sbin';

/** getent, id and the Slurm clients: slurmctld or an LDAP server that does not answer in this long is down for this job. */
export const CLIENT_TIMEOUT_MS = 30_000;

/** bjobs retries for as long as mbatchd does not answer ("LSF is down. Please wait..."): this turns that into a failed query, and a failed query reclaims nothing. */
export const BJOBS_TIMEOUT_MS = 60_000;

/** How long past pull_timeout a pull may take before the ssh session gives up on it: flock waits pull_timeout for the lock, then docker pull still has to answer. */
export const PULL_SLACK_MS = 5000;

/** gc's queries about single jobs missing from squeue's listing, at once: slurmctld serves every client on the cluster. */
export const SLURM_QUERIES = 8;

/** Connects to a node's sshd, for sshd's MaxStartups dropping connections when many jobs start at once (lifecycle/sessions.ts). */
export const CONNECT_TRIES = 4;
/** The pause before the next try: at least this, plus up to CONNECT_JITTER_MS times the tries so far, at random, so that the jobs that were dropped together do not come back together. */
export const CONNECT_PAUSE_MS = 50;
export const CONNECT_JITTER_MS = 350;

/**
 * Pulls on a node are serialized with flock on this file. Any user who can open a file can
 * flock it, and so hold every setup on the node for pull_timeout: it lives in a directory
 * only root can enter.
 */
export const PULL_LOCK_DIR = '/run/jobbox';
export const PULL_LOCK = `${PULL_LOCK_DIR}/pull.lock`;

/**
 * How often a setup tries the job's sshd: it listens a few ms after `docker run` returns, so the
 * first retries come soon (a refused connect costs a local RST), then every BARRIER_RETRY_MS.
 */
export const BARRIER_FIRST_RETRY_MS = 5;
export const BARRIER_RETRY_MS = 20;
/** How often, from then on, a setup asks whether the container still runs (a healthy sshd answers within ms). */
export const BARRIER_CHECK_MS = 1000;

/** `jobbox gc --grace`: seconds a claim and job dir must be unchanged before gc reclaims them (an answer from the scheduler that the job is over is needed too). */
export const GC_GRACE_S = 600;

/**
 * How long a port file with a name no claim explains must stay unchanged (ctime) before it is
 * replaced. Every link, claim or touch changes the ctime, so an allocator between its link and
 * its verify is never disturbed; and it covers NFS serving a directory listing from cache
 * (acdirmax, 60 s by default), so a claim too new to be listed is also too new to be judged.
 */
export const STALE_LINK_GRACE_MS = 60_000;

/** More nodes than any cluster has: a bound on what a hostlist or a count list may expand to. */
export const MAX_HOSTS = 100_000;

/**
 * How long `jobbox gc` keeps a job's start record (plan/status.ts) after it was last written,
 * once the scheduler says the job is over: long enough for a user to look after a weekend, and
 * a record is a few KB. Younger records are kept without asking the scheduler.
 */
export const STATUS_KEEP_S = 7 * 24 * 3600;

/** bpost, best effort from a pre-exec that is failing anyway: mbatchd answers in well under a second, and a down one must not hold the job's requeue. */
export const BPOST_TIMEOUT_MS = 10_000;

/**
 * Starts a Slurm job may fail for causes that may heal (a registry down, a node's engine) before
 * the Prolog cancels it rather than requeue it again: a cause that outlasts this many requeues
 * is not healing, and each requeue costs every node of the allocation a start. LSF's own bound
 * is the site's LOCAL_MAX_PREEXEC_RETRY (unlimited by default; docs/lsf.md asks for 5).
 */
export const MAX_REQUEUES = 5;
