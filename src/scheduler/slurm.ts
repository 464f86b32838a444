// Everything jobbox knows about Slurm, pure: the job environment of the Prolog, Epilog and
// batch step → Job, hostlists, `scontrol show job` records, the clients' argv, the orphan
// reaper's squeue answer, and what a failed Prolog does to its job. The only code that reads
// SLURM_* variables. What runs the clients is exec/slurm.ts; job_submit.lua is slurm-submit.ts.
import { MAX_HOSTS, MAX_REQUEUES } from '../config/defaults.js';
import { EXIT, JobboxError } from '../errors.js';
import type { SubmitSyntax } from '../config/image.js';
import { QUEUE_NAME } from '../config/parse.js';
import { HOST_NAME, type AccountLookup, type Host, type Job } from '../job/job.js';
import { describeFailure, type Result } from '../result.js';
import type { Answer, Verdict } from './answer.js';

/** Which variables a context has: Prolog/Epilog (run by slurmd as root), or the batch step (the job's own environment). */
export type SlurmContext = 'prolog' | 'batch';

// Set by slurmd/slurmstepd or by the submit commands; everything else in the batch step is the user's.
const SCHEDULER_VAR = /^(SLURM_|SLURMD_|SBATCH_|SRUN_)/;

export async function slurmJob(
  env: Record<string, string | undefined>,
  context: SlurmContext,
  lookup: AccountLookup,
  cpusPerNode?: number[],
): Promise<Job> {
  const id = required(env, 'SLURM_JOB_ID');
  if (!/^\d{1,20}$/.test(id)) throw new JobboxError('SLURM_JOB_ID', 'must be a decimal job id', id);
  // slurmd names the counter differently in the Prolog and in the job's own environment.
  const restartVar = context === 'prolog' ? 'SLURM_JOB_RESTART_COUNT' : 'SLURM_RESTART_COUNT';
  const restarts = env[restartVar] || '0';
  if (!/^\d{1,10}$/.test(restarts)) throw new JobboxError(restartVar, 'must be a decimal restart count', restarts);
  const queue = required(env, 'SLURM_JOB_PARTITION');
  if (!QUEUE_NAME.test(queue)) throw new JobboxError('SLURM_JOB_PARTITION', `must match ${QUEUE_NAME.source}`, queue);

  const hosts = jobHosts(env, context, cpusPerNode);
  // slurmd builds the Prolog environment from the job record, and slurmstepd sets these in the
  // batch step over anything the user submitted with, so both name the job's real owner.
  const ownerName = required(env, 'SLURM_JOB_USER');
  const owner = await lookup(ownerName);
  if (owner.uid === 0) throw new JobboxError('SLURM_JOB_USER', 'jobs owned by uid 0 are refused', ownerName);
  const uid = context === 'prolog' ? required(env, 'SLURM_JOB_UID') : env.SLURM_JOB_UID;
  if (uid !== undefined && uid !== '') {
    if (!/^\d{1,10}$/.test(uid)) throw new JobboxError('SLURM_JOB_UID', 'must be a decimal uid', uid);
    if (Number(uid) !== owner.uid) {
      throw new JobboxError('SLURM_JOB_UID', `disagrees with SLURM_JOB_USER "${ownerName}" (uid ${owner.uid} in the account database)`, uid);
    }
  }

  const cwd = context === 'prolog' ? env.SLURM_JOB_WORK_DIR : env.SLURM_SUBMIT_DIR;
  return {
    id,
    // Every array task has a SLURM_JOB_ID of its own, and the 22.05 Prolog does not see
    // SLURM_ARRAY_TASK_ID while the batch step does: the index would name two different job dirs.
    index: 0,
    attempt: String(Number(restarts)),
    queue,
    owner,
    cwd: cwd || owner.home,
    hosts,
    // Only the Prolog starts containers; the batch step needs no image.
    image: context === 'prolog' ? jobImage(env) : undefined,
    env:
      context === 'prolog'
        ? {}
        : Object.fromEntries(
            Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && !SCHEDULER_VAR.test(e[0])),
          ),
  };
}

// Slurm lists the allocation in node order, and its first node runs the batch script: keep it.
function jobHosts(env: Record<string, string | undefined>, context: SlurmContext, cpusPerNode: number[] | undefined): Host[] {
  // 22.05 sets only SLURM_NODELIST in the Prolog; later versions add SLURM_JOB_NODELIST.
  const listVar = context === 'batch' || env.SLURM_JOB_NODELIST ? 'SLURM_JOB_NODELIST' : 'SLURM_NODELIST';
  const names = expandHostlist(required(env, listVar), listVar);
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw new JobboxError(listVar, 'names a host twice', name);
    seen.add(name);
  }

  let counts: number[];
  let countsFrom: string;
  if (cpusPerNode) {
    counts = cpusPerNode;
    countsFrom = 'cpus per node';
    const bad = counts.find((n) => !Number.isInteger(n) || n < 1);
    if (bad !== undefined) throw new JobboxError(countsFrom, 'slot counts must be positive integers', String(bad));
  } else if (env.SLURM_JOB_CPUS_PER_NODE) {
    counts = expandCounts(env.SLURM_JOB_CPUS_PER_NODE);
    countsFrom = 'SLURM_JOB_CPUS_PER_NODE';
  } else {
    counts = names.map(() => 1);
    countsFrom = listVar;
  }
  if (counts.length !== names.length) {
    throw new JobboxError(countsFrom, `must have one count per host of ${listVar} (${names.length}), not ${counts.length}`, counts.join(','));
  }
  return names.map((name, i) => ({ name, slots: counts[i] ?? 1 }));
}

/**
 * A Slurm hostlist expression → host names, in Slurm's order: `n[01-04,07],gpu3` →
 * n01 n02 n03 n04 n07 gpu3. Zero-padding follows the lower bound (`n[009-011]`), and several
 * bracket groups in one name multiply out, the first varying slowest (`r[1-2]n[1-2]` →
 * r1n1 r1n2 r2n1 r2n2). Duplicates are kept: this only expands.
 */
export function expandHostlist(text: string, subject = 'SLURM_NODELIST'): string[] {
  if (text === '') throw new JobboxError(subject, 'must list at least one host', text);
  const patterns = splitNames(text, subject).map((pattern) => {
    if (pattern === '') throw new JobboxError(subject, 'has an empty host name', text);
    return parsePattern(pattern, subject);
  });
  // Counted before anything is built, so `n[0-999999999]` fails instead of filling memory.
  const total = patterns.reduce((sum, parts) => sum + parts.reduce((n, part) => n * partSize(part), 1), 0);
  if (total > MAX_HOSTS) throw new JobboxError(subject, `expands to more than ${MAX_HOSTS} hosts`, text);

  const names: string[] = [];
  for (const parts of patterns) {
    let expanded = [''];
    for (const part of parts) {
      const pieces = typeof part === 'string' ? [part] : part.flatMap(rangeNumbers);
      expanded = expanded.flatMap((prefix) => pieces.map((piece) => prefix + piece));
    }
    for (const name of expanded) {
      if (!HOST_NAME.test(name)) throw new JobboxError(subject, `host names must match ${HOST_NAME.source}`, name);
      names.push(name);
    }
  }
  return names;
}

interface Range {
  lo: number;
  hi: number;
  /** Digits of the lower bound as written: `009` pads to 3. */
  width: number;
}

// Commas separate names only outside brackets; inside they separate ranges.
function splitNames(text: string, subject: string): string[] {
  const names: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '[') depth += 1;
    else if (c === ']') depth -= 1;
    else if (c === ',' && depth === 0) {
      names.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) throw new JobboxError(subject, 'has unbalanced or nested brackets', text);
  }
  if (depth !== 0) throw new JobboxError(subject, 'has unbalanced or nested brackets', text);
  names.push(text.slice(start));
  return names;
}

/** `r[1-2]n3` → ['r', [1-2], 'n3']: literal text and bracket groups, in order. */
function parsePattern(pattern: string, subject: string): (string | Range[])[] {
  return pattern.split(/\[([^\]]*)\]/).map((piece, i) => (i % 2 === 0 ? piece : parseRanges(piece, subject)));
}

function parseRanges(body: string, subject: string): Range[] {
  return body.split(',').map((range) => {
    const m = /^(\d{1,9})(?:-(\d{1,9}))?$/.exec(range);
    if (!m?.[1]) throw new JobboxError(subject, 'bracket ranges must be N or N-M with decimal N and M', range);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new JobboxError(subject, 'bracket ranges must not run backwards', range);
    return { lo, hi, width: m[1].length };
  });
}

function partSize(part: string | Range[]): number {
  return typeof part === 'string' ? 1 : part.reduce((n, r) => n + r.hi - r.lo + 1, 0);
}

function rangeNumbers({ lo, hi, width }: Range): string[] {
  return Array.from({ length: hi - lo + 1 }, (_, k) => String(lo + k).padStart(width, '0'));
}

/** SLURM_JOB_CPUS_PER_NODE's compressed form → one count per node: `2(x3),1` → [2, 2, 2, 1]. */
export function expandCounts(text: string): number[] {
  const subject = 'SLURM_JOB_CPUS_PER_NODE';
  if (text === '') throw new JobboxError(subject, 'must list at least one count', text);
  const entries = text.split(',').map((entry) => {
    const m = /^([1-9]\d{0,5})(?:\(x([1-9]\d{0,5})\))?$/.exec(entry);
    if (!m?.[1]) throw new JobboxError(subject, 'entries must be N or N(xM) with positive integers N and M', entry);
    return { count: Number(m[1]), times: Number(m[2] ?? '1') };
  });
  if (entries.reduce((n, e) => n + e.times, 0) > MAX_HOSTS) throw new JobboxError(subject, `covers more than ${MAX_HOSTS} hosts`, text);
  return entries.flatMap(({ count, times }) => Array.from({ length: times }, () => count));
}

/**
 * `-C/--constraint` text (SLURM_JOB_CONSTRAINTS, e.g. `docker-deb12&bigmem` or `[docker-deb12*2|gpu]`)
 * → the image alias of its one `docker-<alias>` feature, or undefined. Words are split at the
 * constraint operators, so `*2` counts fall away. Advisory, like LSF's `bsub -a`: the alias is
 * resolved again through the root-owned config.
 */
export function constraintAlias(constraints: string | undefined): string | undefined {
  const aliases = new Set(imageWords(constraints).map((w) => w.slice('docker-'.length)));
  if (aliases.size > 1) throw new JobboxError('constraint', 'names more than one image', constraints ?? '');
  return [...aliases][0];
}

/**
 * The image of a job, as job_submit.lua left it: a `jobbox-image=<name>[@sha256:…]` word of the
 * comment (a user's own image, or any image pinned at submit), else the constraint's alias.
 * Both are the user's text, judged again by resolveImage; where both are there they must agree.
 */
export function jobImage(env: Record<string, string | undefined>): string | undefined {
  const alias = constraintAlias(env.SLURM_JOB_CONSTRAINTS);
  const named = commentImage(env.SLURM_JOB_COMMENT);
  if (named !== undefined && alias !== undefined && named.split('@')[0] !== alias) {
    throw new JobboxError('comment', `names another image than the constraint docker-${alias}`, named);
  }
  return named ?? alias;
}

/** `--comment` text → its one `jobbox-image=<name>` word, or undefined. */
export function commentImage(comment: string | undefined): string | undefined {
  // Split as job_submit.lua's %S+ does (ASCII white space): a no-break space is no separator there.
  const words = (comment ?? '').split(/[ \t\n\v\f\r]+/).filter((w) => w.startsWith(COMMENT_IMAGE));
  if (words.length > 1) throw new JobboxError('comment', `names more than one ${COMMENT_IMAGE} image`, comment ?? '');
  return words[0]?.slice(COMMENT_IMAGE.length);
}

/** The comment word that names a job's image on Slurm, as `-a "docker(<ref>)"` does on LSF. */
export const COMMENT_IMAGE = 'jobbox-image=';

/** sbatch's words for a partition and an alias, in the next step a refusal at submit names. */
export const SLURM_SUBMIT: SubmitSyntax = { queue: (name) => `-p ${name}`, alias: (alias) => `-C docker-${alias}` };

function imageWords(constraints: string | undefined): string[] {
  return (constraints ?? '').split(/[&|,[\]()*\s]+/).filter((w) => w.startsWith('docker-'));
}

/** See SlurmHook.jobboxJobHere. */
function jobboxJobOnBatchHost(env: Record<string, string | undefined>): boolean {
  if (imageWords(env.SLURM_JOB_CONSTRAINTS).length === 0 && !(env.SLURM_JOB_COMMENT ?? '').includes(COMMENT_IMAGE)) return false;
  try {
    return expandHostlist(env.SLURM_JOB_NODELIST || env.SLURM_NODELIST || '')[0] === env.SLURMD_NODENAME;
  } catch {
    return false;
  }
}

function required(env: Record<string, string | undefined>, name: string): string {
  const value = env[name];
  if (!value) throw new JobboxError(name, 'is not set (not running under Slurm?)', '');
  return value;
}

// `scontrol show job --details <id>`, as slurmctld prints it for the Prolog. Every field a user
// sets (name, comment, paths, network, …) is printed raw and may hold newlines, so it can forge
// whole lines anywhere in the record. Slurm's own lines are believed only where a forgery cannot
// pass: the first line (the output starts with it), a line printed once when it occurs once,
// and the per-node lines when together they name each node of the allocation exactly once (a
// forged one would name a node twice, or one outside the allocation).
const SHOW_JOB = 'scontrol show job';

export interface JobRecord {
  /** The job runs a batch script (BatchFlag counts launch attempts: any non-zero value). */
  batch: boolean;
  /** Allocated CPUs, one count per node of the allocation, in its order. */
  cpus: number[];
  /** Which CPUs, as Slurm's CPU_IDs list (`0-1,4`), one per node in the same order. */
  cpuIds: string[];
  /** Each node's GRES field as printed (`gpu:2(IDX:0-1)`, '' for none), read by gresGpus only for a queue that passes GPUs. Same order. */
  gres: string[];
}

/**
 * The array task name (`<array id>_<task id>`) of job `id`, from its first record's first line,
 * or undefined for a job outside any array. The array's first task shares its id with the
 * array, and asked by that id slurmctld prints every task: by its task name, only its own.
 */
export function arrayTaskName(text: string, id: string): string | undefined {
  const m = firstLine(text, id);
  return m[2] === undefined ? undefined : `${m[2]}_${m[3]}`;
}

/** One job's record → whether it is a batch job, and its CPUs on each node of `hosts`. */
export function parseJobRecord(text: string, id: string, hosts: string[]): JobRecord {
  firstLine(text, id);
  const flags = [...text.matchAll(/^ {3}Requeue=\d+ Restarts=\d+ BatchFlag=(\d+) /gm)];
  if (flags.length !== 1) throw new JobboxError(SHOW_JOB, `must have one BatchFlag line, not ${flags.length}`, id);

  const allocated = new Set(hosts);
  const cpus = new Map<string, number>();
  const ids = new Map<string, string>();
  const gres = new Map<string, string>();
  for (const m of text.matchAll(/^ {5}Nodes=(\S+) CPU_IDs=(\S+) Mem=\d+ GRES=(.*)$/gm)) {
    const count = cpuCount(m[2]!);
    for (const host of expandHostlist(m[1]!, SHOW_JOB)) {
      if (!allocated.has(host)) throw new JobboxError(SHOW_JOB, `lists CPUs on a node outside job ${id}'s allocation`, host);
      if (cpus.has(host)) throw new JobboxError(SHOW_JOB, `lists CPUs on a node twice for job ${id}`, host);
      cpus.set(host, count);
      ids.set(host, m[2]!);
      gres.set(host, m[3]!);
    }
  }
  return {
    batch: flags[0]![1] !== '0',
    cpus: hosts.map((host) => {
      const count = cpus.get(host);
      if (count === undefined) throw new JobboxError(SHOW_JOB, `lists no CPUs for job ${id} on a node of its allocation`, host);
      return count;
    }),
    cpuIds: hosts.map((host) => ids.get(host)!),
    gres: hosts.map((host) => gres.get(host)!),
  };
}

/**
 * A per-node GRES field (22.05: `gpu:2(IDX:0-1)`, typed `gpu:a100:1(IDX:3)`, others beside it
 * after commas; empty for none) → the GPU indices, ascending. A gpu entry in another shape is
 * refused rather than read as none: the job asked for GPUs.
 */
export function gresGpus(gres: string): number[] {
  const entries = gres.split(/,(?=[A-Za-z])/).filter((e) => /^gpu(?:[:(]|$)/.test(e));
  const indices = new Set<number>();
  for (const entry of entries) {
    const m = /^gpu(?::[A-Za-z0-9_.-]+)?:(\d{1,4})\(IDX:(\d{1,4}(?:-\d{1,4})?(?:,\d{1,4}(?:-\d{1,4})?)*)\)$/.exec(entry);
    if (!m) throw new JobboxError(SHOW_JOB, 'unreadable GPUs in GRES', entry);
    const mine = expandIndices(m[2]!);
    if (mine.length !== Number(m[1])) throw new JobboxError(SHOW_JOB, `GRES counts ${m[1]} GPUs but lists ${mine.length}`, entry);
    for (const i of mine) indices.add(i);
  }
  return [...indices].sort((a, b) => a - b);
}

/**
 * slurmd's GPU records on a node (`slurmd -G`: `Count=2 Index=0 … File=/dev/nvidia[0-1]`) → the
 * file of each GRES index. A record of `count` GPUs from `index` names its files as one
 * expression with at most one bracket of numbers and ranges, in index order; with AutoDetect,
 * one record a GPU.
 */
export function gresFiles(records: { count: number; index: number; file: string }[]): Map<number, string> {
  const files = new Map<number, string>();
  for (const { count, index, file } of records) {
    const m = /^([^[\]]*)\[([\d,-]+)\]([^[\]]*)$/.exec(file);
    const names = m ? expandIndices(m[2]!).map((n) => `${m[1]}${n}${m[3]}`) : [file];
    if (names.length !== count) throw new JobboxError('slurmd -G', `a record of ${count} GPUs names ${names.length} files`, file, EXIT.permanent);
    names.forEach((name, i) => files.set(index + i, name));
  }
  return files;
}

/** `0-1,4` → [0, 1, 4]; a range that runs backwards is unreadable. */
function expandIndices(list: string): number[] {
  return ranges(list, 'GRES index list').flatMap(([lo, hi]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i));
}

/** `0-3,6` (Slurm's CPU_IDs and IDX lists) → [[0, 3], [6, 6]]; a range that runs backwards is an unreadable `what`. */
function ranges(list: string, what: string): [number, number][] {
  return list.split(',').map((range) => {
    const [lo, hi = lo] = range.split('-').map(Number);
    if (hi! < lo!) throw new JobboxError(SHOW_JOB, `unreadable ${what}`, list);
    return [lo!, hi!];
  });
}

/**
 * `scontrol show job -d` → the environment slurmd gives the job's Prolog on its batch host
 * (22.05 names), for `jobbox slurm prolog --dry-run --job`: the plan printed is the one the
 * Prolog would make. Each field comes from the one line of its layout; a job name, comment or
 * work dir that forges such a line makes two, and is refused.
 */
export function prologEnvOf(text: string, id: string): Record<string, string> {
  firstLine(text, id);
  const one = (what: string, re: RegExp): string[] => {
    const all = [...text.matchAll(re)];
    if (all.length !== 1) throw new JobboxError(SHOW_JOB, `must have one ${what} line, not ${all.length}`, id);
    return [...all[0]!];
  };
  const [, user = '', uid = ''] = one('UserId', /^ {3}UserId=([^\s(]+)\((\d+)\) /gm);
  const nodes = one('NodeList', /^ {3}NodeList=(\S*)$/gm)[1]!;
  if (nodes === '' || nodes === '(null)') throw new JobboxError(`job ${id}`, 'has no nodes: it is pending, or was requeued', 'NodeList');
  const features = one('Features', /^ {3}Features=(\S+) /gm)[1]!;
  const comments = [...text.matchAll(/^ {3}Comment=(.*)$/gm)];
  if (comments.length > 1) throw new JobboxError(SHOW_JOB, `must have at most one Comment line, not ${comments.length}`, id);
  return {
    ...(comments[0] && { SLURM_JOB_COMMENT: comments[0][1]! }),
    SLURM_JOB_ID: id,
    SLURM_JOB_USER: user,
    SLURM_JOB_UID: uid,
    SLURM_JOB_PARTITION: one('Partition', /^ {3}Partition=(\S+) /gm)[1]!,
    SLURM_NODELIST: nodes,
    SLURM_JOB_CONSTRAINTS: features === '(null)' ? '' : features,
    SLURM_JOB_WORK_DIR: one('WorkDir', /^ {3}WorkDir=(.*)$/gm)[1]!,
    SLURM_JOB_RESTART_COUNT: one('Restarts', /^ {3}Requeue=\d+ Restarts=(\d+) /gm)[1]!,
    SLURMD_NODENAME: expandHostlist(nodes, SHOW_JOB)[0]!,
  };
}

function firstLine(text: string, id: string): RegExpExecArray {
  const line = text.split('\n', 1)[0]!;
  const m = /^JobId=(\d+) (?:ArrayJobId=(\d+) ArrayTaskId=(\d+) )?/.exec(line);
  if (m?.[1] !== id) throw new JobboxError(SHOW_JOB, `does not start with the record of job ${id}`, line);
  return m;
}

/** `CPU_IDs=0-3,6` → 5. */
function cpuCount(ids: string): number {
  if (!/^\d{1,6}(?:-\d{1,6})?(?:,\d{1,6}(?:-\d{1,6})?)*$/.test(ids)) throw new JobboxError(SHOW_JOB, 'unreadable CPU_IDs', ids);
  return ranges(ids, 'CPU_IDs').reduce((n, [lo, hi]) => n + hi - lo + 1, 0);
}

// ---- The Prolog and the Epilog ----

/** What a Prolog or Epilog is told by slurmd, before it knows whether the job is jobbox's. */
export interface SlurmHook {
  /** SLURM_JOB_ID when it is a decimal job id: the one job the hook may requeue or cancel. */
  id: string | undefined;
  /** slurmd's SLURM_CONF: the Slurm clients a hook runs must read it (never DNS). */
  conf: string | undefined;
  /**
   * For a Prolog that cannot load jobbox's config, so knows no partitions: whether this is a
   * jobbox job (job_submit.lua gives every one a `docker-<alias>` constraint or a `jobbox-image=` comment) and this node its
   * batch host, the one node that acts for it. Any other job is not jobbox's to cancel.
   */
  jobboxJobHere: boolean;
  /** SLURM_JOB_RESTART_COUNT, slurmd's: how often the job was requeued before this start (0 when unreadable). */
  restarts: number;
}

export function slurmHook(env: Record<string, string | undefined>): SlurmHook {
  const id = env.SLURM_JOB_ID ?? '';
  const restarts = env.SLURM_JOB_RESTART_COUNT ?? '';
  return {
    id: /^\d{1,20}$/.test(id) ? id : undefined,
    restarts: /^\d{1,9}$/.test(restarts) ? Number(restarts) : 0,
    conf: env.SLURM_CONF?.startsWith('/') ? env.SLURM_CONF : undefined,
    jobboxJobHere: jobboxJobOnBatchHost(env),
  };
}

/**
 * The job, when this node acts for it: the batch host (the first node) of a job in a partition
 * jobbox manages does the whole job for all nodes, exactly as LSF's pre-exec does. Other nodes,
 * and partitions jobbox does not manage, have nothing to do: undefined. `record`: the job's
 * record (the Prolog asks for it), which gives each node its CPU count (the 22.05 Prolog has no
 * SLURM_JOB_CPUS_PER_NODE) and its cores, and makes the job's containers join its cgroups;
 * `multiple`: slurmd's MULTIPLE_SLURMD (see slurmCgroupRoot).
 */
export async function slurmHookJob(
  env: Record<string, string | undefined>,
  managed: (partition: string) => boolean,
  lookup: AccountLookup,
  record?: JobRecord,
  multiple = false,
  /** The job's queue passes GPUs: each node's are read from the record's GRES. */
  gpus = false,
): Promise<{ job: Job; node: string } | undefined> {
  if (!managed(env.SLURM_JOB_PARTITION ?? '')) return undefined;
  const job = await slurmJob(env, 'prolog', lookup, record?.cpus);
  const node = env.SLURMD_NODENAME ?? '';
  if (job.hosts[0]?.name !== node) return undefined;
  if (!record) return { job, node };
  const hosts = job.hosts.map((h, i) => {
    const given = gpus ? gresGpus(record.gres[i]!) : [];
    return { ...h, cpus: record.cpuIds[i]!, ...(given.length > 0 && { gpus: given }) };
  });
  return { job: { ...job, hosts, containment: { scheduler: 'slurm', multipleSlurmd: multiple } }, node };
}

/**
 * A Prolog that exits non-zero drains the node, so jobbox's always exits 0 and acts on the job
 * instead: a start that may heal requeues it (it comes back as a new attempt), one that cannot
 * is cancelled, as LSF's exit 99 would end it; so is one that failed MAX_REQUEUES times already.
 */
export function prologOutcome(exitCode: number, restarts: number): 'requeue' | 'cancel' {
  return exitCode === EXIT.permanent || restarts >= MAX_REQUEUES ? 'cancel' : 'requeue';
}

// ---- The clients' argv (exec/slurm.ts runs them) ----

/** Puts the job back in the queue as a new attempt, without draining the node. */
export const requeueArgv = (id: string): string[] => ['scontrol', 'requeue', '--', id];
export const cancelArgv = (id: string): string[] => ['scancel', '--', id];
/** `id`'s record with per-node detail, one field group a line, for parseJobRecord. */
export const showJobArgv = (id: string): string[] => ['scontrol', 'show', 'job', '--details', '--', id];
/** The batch script slurmctld holds for job `id`, byte for byte, on stdout. */
export const batchScriptArgv = (id: string): string[] => ['scontrol', 'write', 'batch_script', '--', id, '-'];

// ---- The orphan reaper's question: squeue ----

/**
 * squeue fields, `|`-terminated: none of them is text a user chooses. (`scontrol show job -o`
 * puts JobName first, and a job named `x JobState=COMPLETED` would read as finished.)
 */
export const SQUEUE_FORMAT = 'JobID:|,ArrayTaskID:|,State:|,RestartCnt:|';

/**
 * `squeue --noheader --Format=SQUEUE_FORMAT` → answers by Slurm job id. Every array task has
 * its own job id (the id the Prolog sees as SLURM_JOB_ID), so the id alone names it; a
 * pending array's meta record (`ArrayTaskID` 3-10) reads as that id's PENDING. Lines it
 * cannot read are skipped.
 */
export function parseSqueue(text: string): Map<string, Answer> {
  const answers = new Map<string, Answer>();
  for (const line of text.split('\n')) {
    const m = /^(\d+)\|[^|]*\|([A-Z_]+)\|(\d+)\|\s*$/.exec(line.trim());
    if (m) answers.set(m[1]!, { kind: 'record', state: m[2]!, restarts: Number(m[3]) });
  }
  return answers;
}

/** slurmctld's own words for a job id it does not hold (finished longer ago than MinJobAge, or never). */
export const SLURM_INVALID_ID = /\bInvalid job id specified\b/;

/** The bulk listing (every job slurmctld holds, by job id) and, for a job missing from it, the query about it alone. */
export function slurmAnswer(id: string, listing: ReadonlyMap<string, Answer>, single: Result | undefined): Answer {
  const listed = listing.get(id);
  if (listed) return listed;
  if (!single) return { kind: 'failed', reason: 'not in squeue --states=all and not asked alone' };
  if (single.code === 0) return parseSqueue(single.stdout).get(id) ?? { kind: 'failed', reason: `squeue --jobs=${id}: no record of it` };
  if (single.code !== undefined && SLURM_INVALID_ID.test(single.stderr)) return { kind: 'unknown' };
  return { kind: 'failed', reason: describeFailure(`squeue --jobs=${id}`, single) };
}

/**
 * Every job slurmctld still holds, finished ones included until MinJobAge purges them; with
 * `id`, that job alone (for a job missing from the listing, slurmctld then says "Invalid job id
 * specified").
 */
export function squeueArgv(id?: string): string[] {
  return ['squeue', '--noheader', '--states=all', `--Format=${SQUEUE_FORMAT}`, ...(id === undefined ? [] : [`--jobs=${id}`])];
}

// Final states: the job, and with it every attempt, is over. COMPLETING is not among them:
// the Epilog of the last attempt may still be tearing down.
const SLURM_OVER = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'BOOT_FAIL', 'DEADLINE', 'PREEMPTED']);

/** Whether attempt `attempt` (the restart count its Prolog saw) of a job in `state` is over. */
export function slurmRecordOver(state: string, restarts: number | undefined, attempt: string): Verdict {
  if (state === 'COMPLETING') return { over: false, why: 'job is COMPLETING (its Epilog may still run)' };
  if (SLURM_OVER.has(state)) return { over: true, why: `job is ${state}` };
  // A higher restart count is a later attempt.
  if (/^\d+$/.test(attempt) && restarts !== undefined) {
    if (restarts > Number(attempt)) return { over: true, why: `job was requeued (restart ${restarts}, now ${state}): attempt ${attempt} is over` };
    if (restarts < Number(attempt)) return { over: false, why: `job is ${state} at restart ${restarts}, before attempt ${attempt}` };
  }
  return { over: false, why: `job is ${state}` };
}

// ---- The job's cgroups on a node (cgroup v1, as slurmd's task/cgroup and proctrack/cgroup make them) ----

/**
 * Where slurmd keeps its jobs' cgroups in each controller of a node: `slurm`, or
 * `slurm_<node>` when slurmd is built with multiple-slurmd support (Debian's is), which
 * `scontrol show config` says as `MULTIPLE_SLURMD = Yes`. slurmd makes it at its first job
 * step, so a fresh node may not have it yet when the Prolog runs.
 */
export function slurmCgroupRoot(node: string, multipleSlurmd: boolean): string {
  return multipleSlurmd ? `slurm_${node}` : 'slurm';
}

/** `scontrol show config` → whether slurmd keeps one cgroup root per node name. */
export function multipleSlurmd(config: string): boolean {
  return /^MULTIPLE_SLURMD\s*=\s*Yes\s*$/m.test(config);
}

export const showConfigArgv = (): string[] => ['scontrol', 'show', 'config'];

/**
 * The job's extern step's task cgroup on the node with index `nodeIndex` in the job's node
 * list, level by level from slurmd's root: the only place sacct counts what no step started.
 */
export function slurmExternTask(job: Pick<Job, 'id' | 'owner' | 'hosts'>, multiple: boolean, nodeIndex: number): string[] {
  const node = job.hosts[nodeIndex]?.name ?? '<node>';
  return [slurmCgroupRoot(node, multiple), `uid_${job.owner.uid}`, `job_${job.id}`, 'step_extern', `task_${nodeIndex}`];
}

/** The job's own cgroup below the root, `uid_U/job_J`: what a teardown clears. */
export function slurmJobCgroup(job: Pick<Job, 'id' | 'owner'>): string {
  return `uid_${job.owner.uid}/job_${job.id}`;
}
