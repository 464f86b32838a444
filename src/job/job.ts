// The one model of a job that every command below the scheduler adapters works on.
// The adapters, src/scheduler/lsf.ts and slurm.ts, are the only code that reads scheduler
// variables.

/** A host name as both schedulers print them, and as jobbox writes them into hostfiles. */
export const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$/;

export interface Owner {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups, without the primary gid, in the account database's order. */
  gids: number[];
  home: string;
  shell: string;
}

export interface Host {
  name: string;
  slots: number;
  /** The cores the scheduler bound the job to on this host (`0-1,4`), when it says. */
  cpus?: string;
  /**
   * The GPUs the scheduler gave the job on this host, by the host's own index (Slurm's GRES
   * IDX, LSF's GPU_ID), ascending; index n is gpu_dir/nvidia<n> (docs/gpus.md). Unset: none.
   */
  gpus?: number[];
}

export interface Job {
  /** Decimal job id, as the scheduler prints it. */
  id: string;
  /** Array index; 0 for a job that is not an array element. */
  index: number;
  /**
   * What distinguishes two runs of the same job id, for port claims and container labels.
   * LSF has no attempt counter, so it is the first execution host (a requeued job that
   * lands elsewhere is a new attempt); Slurm gives SLURM_JOB_RESTART_COUNT.
   */
  attempt: string;
  queue: string;
  owner: Owner;
  /** Submission working directory; the user may name anything here, it is only used as the user. */
  cwd: string;
  /** Deduplicated, first execution host first. */
  hosts: Host[];
  /** Image alias the user asked for (advisory: always re-resolved through the root-owned config). */
  image: string | undefined;
  /** The user's own environment: everything the scheduler did not set. Unfiltered here. */
  env: Record<string, string>;
  /** Where the containers go in each node's cgroup tree (docs/cgroups.md); undefined: the engine's own. */
  containment?: Containment;
}

/**
 * Slurm: each container joins the job's extern step on its node, on the job's cores there,
 * with how slurmd names its cgroup root. LSF: each container goes under jobbox's own per-job
 * cgroup, except on the first host when the root hook runs inside LSF's job cgroup there
 * (`nest`): that host's container nests in it, so LSF counts, limits and kills it.
 */
export type Containment =
  | { scheduler: 'slurm'; multipleSlurmd: boolean }
  | { scheduler: 'lsf'; nest?: LsfNest };

export interface LsfNest {
  /** LSF's job cgroup, absolute, as the hook's /proc/self/cgroup names it. */
  path: string;
  /** The controllers (hierarchy names as /sys/fs/cgroup has them) where LSF made it: a teardown leaves those to LSF. */
  controllers: string[];
}

/** One run of a job: what its containers, job dir and port claim are named after. */
export type Attempt = Pick<Job, 'id' | 'index' | 'attempt'>;

/** One file of a job's directory, as the setup plans it and exec/jobdir.ts writes it. */
export interface JobFile {
  path: string;
  content: string;
  mode: number;
  /** Files the owner's processes must read as themselves (private keys) are chowned to the owner. */
  owner?: { uid: number; gid: number };
}

/** Looks an account up in the OS account database (NSS), the only identity source jobbox trusts. */
export type AccountLookup = (name: string) => Promise<Owner>;
