// What the orphan reaper may reclaim, decided from facts alone. Pure: (port claims, job dirs,
// the scheduler's answers, now, grace) → one action per job attempt with its reason, so the
// decision is a table test and `jobbox gc --dry-run` prints exactly what a run would do.
// The rule (CONTRACTS.md): reclaim only when the scheduler POSITIVELY says the attempt is over
// (a final state, "no such job", or a restart count past the attempt) and nothing of it has
// changed for the grace period. A query that fails, times out or says something unexpected
// is never read as "gone".
import { HOST_NAME } from '../job/lsf.js';
import { jobKey } from './job-files.js';

export type Scheduler = 'lsf' | 'slurm';

/** One claim as listClaims returns it: `claim.<jobid>.<index>.<attempt>.<port>`. */
export interface ClaimFact {
  claim: string;
  port: number;
  /** When it was claimed (a re-run pre-exec stamps it again). */
  mtimeMs: number;
}

/** One directory under state_dir. */
export interface DirFact {
  name: string;
  mtimeMs: number;
  isDirectory: boolean;
  /** The Open MPI hostfile's text; undefined when it is absent or unreadable. */
  hostfile: string | undefined;
}

/** A job as the scheduler names it: LSF `id` or `id[index]`, Slurm's per-task job id. */
export interface JobRef {
  id: string;
  index: number;
}

export const refKey = (ref: JobRef): string => `${ref.id}.${ref.index}`;

/** What the scheduler said about one job. */
export type Answer =
  /** It has a record: LSF `stat`, Slurm job state and restart count. */
  | { kind: 'record'; state: string; restarts?: number }
  /** It says, in so many words, that it has no such job (purged, cleaned, never known). */
  | { kind: 'unknown' }
  /** No answer we can trust: the query failed, timed out, or the job is missing from it. */
  | { kind: 'failed'; reason: string };

export interface GcInput {
  scheduler: Scheduler;
  claims: ClaimFact[];
  dirs: DirFact[];
  /** By refKey. */
  answers: ReadonlyMap<string, Answer>;
  nowMs: number;
  graceMs: number;
  /** `--nodes`: where to look for containers of an attempt whose job dir has no hostfile. */
  sweepNodes: string[];
}

export interface GcAction {
  /** `<jobid>.<index>.<attempt>`: the claim's and the job dir's name. */
  key: string;
  job: { id: string; index: number; attempt: string } | undefined;
  reclaim: boolean;
  /** Why it is over (reclaim), or why it is kept. */
  reason: string;
  ports: number[];
  dir: boolean;
  /** Nodes whose containers of this attempt are removed. */
  nodes: string[];
  /** Newest mtime of its claims and dir: a change after this means someone is using it. */
  sinceMs: number;
  /** Kept because the scheduler could not be asked: a failure for the exit code. */
  unanswered: boolean;
}

// Canonical numbers only, so that jobKey(parsed) gives back exactly the name on disk.
const KEY = /^([1-9][0-9]{0,19})\.(0|[1-9][0-9]{0,9})\.([A-Za-z0-9][A-Za-z0-9._-]{0,253})$/;

export function parseKey(key: string): GcAction['job'] {
  const m = KEY.exec(key);
  if (!m) return undefined;
  const job = { id: m[1]!, index: Number(m[2]), attempt: m[3]! };
  return jobKey(job) === key ? job : undefined;
}

// Final states: the job, and with it every attempt, is over. COMPLETING is not among them:
// the Epilog of the last attempt may still be tearing down.
const SLURM_OVER = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'BOOT_FAIL', 'DEADLINE', 'PREEMPTED']);
const LSF_OVER = new Set(['DONE', 'EXIT']);

const NAME = { lsf: 'LSF', slurm: 'Slurm' } as const;

/** Every job to ask the scheduler about, once each. */
export function jobsToAsk(claims: ClaimFact[], dirs: DirFact[]): JobRef[] {
  const refs = new Map<string, JobRef>();
  for (const key of [...claims.map((c) => c.claim), ...dirs.filter((d) => d.isDirectory).map((d) => d.name)]) {
    const job = parseKey(key);
    if (job) refs.set(refKey(job), { id: job.id, index: job.index });
  }
  return [...refs.values()];
}

/** Is this attempt over? `over: undefined` when the answer cannot say. */
export function attemptOver(scheduler: Scheduler, answer: Answer | undefined, attempt: string): { over: boolean | undefined; why: string } {
  const who = NAME[scheduler];
  if (!answer) return { over: undefined, why: `${who} gave no answer for it` };
  if (answer.kind === 'failed') return { over: undefined, why: `${who} could not be asked (${answer.reason}); nothing done` };
  if (answer.kind === 'unknown') return { over: true, why: `${who} does not know the job (finished and purged)` };
  const { state, restarts } = answer;
  if (scheduler === 'lsf') return LSF_OVER.has(state) ? { over: true, why: `job is ${state}` } : { over: false, why: `job is ${state}` };
  if (state === 'COMPLETING') return { over: false, why: 'job is COMPLETING (its Epilog may still run)' };
  if (SLURM_OVER.has(state)) return { over: true, why: `job is ${state}` };
  // Slurm's attempt is the restart count the Prolog saw: a higher count is a later attempt.
  if (/^\d+$/.test(attempt) && restarts !== undefined) {
    if (restarts > Number(attempt)) return { over: true, why: `job was requeued (restart ${restarts}, now ${state}): attempt ${attempt} is over` };
    if (restarts < Number(attempt)) return { over: false, why: `job is ${state} at restart ${restarts}, before attempt ${attempt}` };
  }
  return { over: false, why: `job is ${state}` };
}

/** Host names from the job's Open MPI hostfile (`node1 slots=2` lines); undefined if it names a bad one. */
export function hostfileHosts(text: string): string[] | undefined {
  const hosts = text.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((h) => h !== '' && !h.startsWith('#'));
  return hosts.every((h) => HOST_NAME.test(h)) ? [...new Set(hosts)] : undefined;
}

export function planGc(input: GcInput): GcAction[] {
  const entries = new Map<string, { claims: ClaimFact[]; dir?: DirFact }>();
  const entry = (key: string) => entries.get(key) ?? entries.set(key, { claims: [] }).get(key)!;
  for (const c of input.claims) entry(c.claim).claims.push(c);
  for (const d of input.dirs) entry(d.name).dir = d;

  const actions = [...entries].map(([key, { claims, dir }]): GcAction => {
    const job = parseKey(key);
    const ports = claims.map((c) => c.port).sort((a, b) => a - b);
    const sinceMs = Math.max(...claims.map((c) => c.mtimeMs), dir?.mtimeMs ?? -Infinity);
    const base = { key, job, ports, dir: dir !== undefined, nodes: [], sinceMs, unanswered: false };
    const keep = (reason: string, unanswered = false): GcAction => ({ ...base, reclaim: false, reason, unanswered });

    if (!job) return keep('not a <jobid>.<index>.<attempt> name');
    if (dir && !dir.isDirectory) return keep('in state_dir but not a directory');
    const { over, why } = attemptOver(input.scheduler, input.answers.get(refKey(job)), job.attempt);
    if (over !== true) return keep(why, over === undefined);
    const ageMs = input.nowMs - sinceMs;
    if (ageMs < input.graceMs) {
      return keep(`${why}, but changed ${Math.max(0, Math.floor(ageMs / 1000))} s ago (grace ${Math.round(input.graceMs / 1000)} s)`);
    }
    // Where its containers can be: the hostfile setup writes before it starts any container
    // and teardown removes only after every container is gone; else the nodes the admin names.
    const listed = dir?.hostfile !== undefined ? hostfileHosts(dir.hostfile) : undefined;
    if (dir?.hostfile !== undefined && listed === undefined) return keep(`${why}, but its hostfile names a bad host`);
    const nodes = listed && listed.length > 0 ? listed : input.sweepNodes;
    if (nodes.length === 0) return keep(`${why}, but it has no hostfile to find its nodes by: run gc with --nodes`);
    return { ...base, nodes, reclaim: true, reason: why };
  });
  return actions.sort(byJob);
}

function byJob(a: GcAction, b: GcAction): number {
  if (a.job && b.job) {
    const id = BigInt(a.job.id) - BigInt(b.job.id);
    if (id !== 0n) return id < 0n ? -1 : 1;
    if (a.job.index !== b.job.index) return a.job.index - b.job.index;
  }
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** `port 30012, job dir, containers on node1 node2`: what a reclaim removes. */
export function describeAction(a: GcAction): string {
  const parts = [
    ...(a.ports.length > 0 ? [`${a.ports.length > 1 ? 'ports' : 'port'} ${a.ports.join(' ')}`] : []),
    ...(a.dir ? ['job dir'] : []),
    ...(a.nodes.length > 0 ? [`containers on ${a.nodes.join(' ')}`] : []),
  ];
  return parts.join(', ');
}

// ---- The scheduler's side: the queries' argv and their output, parsed strictly ----

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

/** What a client command did: its exit code and output, or why it did not run to an exit code. */
export interface ClientRun {
  code: number | undefined;
  stdout: string;
  stderr: string;
  /** Not found on PATH, timed out, killed. */
  error?: string;
}

/** The parts of an execa result (reject: false) the reaper reads. */
export interface ExecResult {
  exitCode?: number | undefined;
  stdout?: unknown;
  stderr?: unknown;
  timedOut?: boolean | undefined;
  code?: string | undefined;
  shortMessage?: string | undefined;
}

/** An execa result → a ClientRun: its exit code, or why there is none. */
export function clientRun(r: ExecResult, timeoutMs: number): ClientRun {
  const out = { code: r.exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if (r.timedOut) return { ...out, code: undefined, error: `timed out after ${timeoutMs / 1000} s` };
  if (r.code === 'ENOENT') return { ...out, code: undefined, error: 'not found on PATH' };
  if (r.exitCode === undefined) return { ...out, error: r.shortMessage ?? 'did not exit' };
  return out;
}

/** `squeue: exit 1: slurm_load_jobs error: …`: the command and its first line of complaint. */
export function runFailure(command: string, run: ClientRun): string {
  const said = run.stderr.split('\n').map((l) => l.trim()).find(Boolean);
  if (run.error) return `${command}: ${run.error}`;
  return `${command}: exit ${run.code}${said ? `: ${said}` : ''}`;
}

/** The bulk listing (every job slurmctld holds, by job id) and, for a job missing from it, the query about it alone. */
export function slurmAnswer(id: string, listing: ReadonlyMap<string, Answer>, single: ClientRun | undefined): Answer {
  const listed = listing.get(id);
  if (listed) return listed;
  if (!single) return { kind: 'failed', reason: 'not in squeue --states=all and not asked alone' };
  if (single.code === 0) return parseSqueue(single.stdout).get(id) ?? { kind: 'failed', reason: `squeue --jobs=${id}: no record of it` };
  if (single.code !== undefined && SLURM_INVALID_ID.test(single.stderr)) return { kind: 'unknown' };
  return { kind: 'failed', reason: runFailure(`squeue --jobs=${id}`, single) };
}

/** LSF's `-o` fields: the job id, the array index (0 for a plain job) and the status. */
export const BJOBS_FORMAT = 'jobid jobindex stat';

/** How bjobs names a job on its command line: `123`, or `123[4]` for an array element. */
export const bjobsName = (ref: JobRef): string => (ref.index > 0 ? `${ref.id}[${ref.index}]` : ref.id);

/**
 * `bjobs -noheader -a -o BJOBS_FORMAT <names>` → an answer for every ref. A job is unknown
 * only when bjobs says `Job <name> is not found`; any stderr line we do not recognize, or no
 * exit code, fails the whole query.
 */
export function parseBjobs(refs: JobRef[], run: ClientRun): Map<string, Answer> {
  const answers = new Map<string, Answer>();
  const failAll = (reason: string) => new Map(refs.map((r): [string, Answer] => [refKey(r), { kind: 'failed', reason }]));
  if (run.error || run.code === undefined) return failAll(runFailure('bjobs', run));
  const notFound = new Set<string>();
  for (const line of run.stderr.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const m = /^Job <(\d+)(?:\[(\d+)\])?> is not found\.?$/.exec(line);
    if (!m) return failAll(runFailure('bjobs', { ...run, stderr: line }));
    notFound.add(refKey({ id: m[1]!, index: Number(m[2] ?? 0) }));
  }
  for (const line of run.stdout.split('\n')) {
    // LSB_BJOBS_DISPLAY_ENH=Y prints the id as `123[4]`.
    const m = /^(\d+)(?:\[\d+\])?\s+(\d+)\s+([A-Z]+)\s*$/.exec(line.trim());
    if (m) answers.set(refKey({ id: m[1]!, index: Number(m[2]) }), { kind: 'record', state: m[3]! });
  }
  return new Map(
    refs.map((r): [string, Answer] => {
      const key = refKey(r);
      const found = answers.get(key);
      if (found) return [key, found];
      if (notFound.has(key)) return [key, { kind: 'unknown' }];
      return [key, { kind: 'failed', reason: run.code === 0 ? 'bjobs: no line for the job' : runFailure('bjobs', run) }];
    }),
  );
}
