// What the orphan reaper may reclaim, decided from facts alone. Pure: (port claims, job dirs,
// the scheduler's answers, now, grace) → one action per job attempt with its reason, so the
// decision is a table test and `jobbox gc --dry-run` prints exactly what a run would do.
// The rule (docs/contracts.md): reclaim only when the scheduler POSITIVELY says the attempt is over
// (a final state, "no such job", or a restart count past the attempt) and nothing of it has
// changed for the grace period. A query that fails, times out or says something unexpected
// is never read as "gone".
import { HOST_NAME } from '../job/job.js';
import { lsfRecordOver } from '../scheduler/lsf.js';
import { refKey, type Answer, type JobRef, type Scheduler, type Verdict } from '../scheduler/answer.js';
import { slurmRecordOver } from '../scheduler/slurm.js';
import { jobKey } from './job-files.js';
import { parseStatusName, STATUS_MAX_BYTES } from './status.js';

/** One claim as listClaims returns it: `claim.<jobid>.<index>.<attempt>.<port>`. */
export interface ClaimFact {
  claim: string;
  port: number;
  /** When it was claimed (a re-run setup stamps it again). */
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
export function attemptOver(scheduler: Scheduler, answer: Answer | undefined, attempt: string): Verdict {
  const who = NAME[scheduler];
  if (!answer) return { over: undefined, why: `${who} gave no answer for it` };
  if (answer.kind === 'failed') return { over: undefined, why: `${who} could not be asked (${answer.reason}); nothing done` };
  if (answer.kind === 'unknown') return { over: true, why: `${who} does not know the job (finished and purged)` };
  return scheduler === 'lsf' ? lsfRecordOver(answer.state) : slurmRecordOver(answer.state, answer.restarts, attempt);
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

// ---- Start records (plan/status.ts): one per job, kept for its owner after the job ----

/** One file under `<state_dir>/.status`. */
export interface StatusFact {
  name: string;
  mtimeMs: number;
  /** Bytes, and the permission bits: the file is the owner's, who may have grown or reopened it. */
  size: number;
  mode: number;
}

export interface StatusAction {
  name: string;
  job: JobRef | undefined;
  remove: boolean;
  reason: string;
  /** Kept because the scheduler could not be asked. */
  unanswered: boolean;
}

/** Records old enough to go if their job is over: only these cost a question to the scheduler. */
export function statusToAsk(files: StatusFact[], nowMs: number, keepMs: number): JobRef[] {
  return files.filter((f) => nowMs - f.mtimeMs >= keepMs).flatMap((f) => {
    const job = parseStatusName(f.name);
    return job ? [job] : [];
  });
}

/**
 * A record goes when it has not been written for `keepMs` and the scheduler says its job (any
 * attempt) is over, by the same positive answers as an attempt: a newer one is the owner's to read.
 */
export function planStatusGc(scheduler: Scheduler, files: StatusFact[], answers: ReadonlyMap<string, Answer>, nowMs: number, keepMs: number): StatusAction[] {
  return files.map((f): StatusAction => {
    const job = parseStatusName(f.name);
    const keep = (reason: string, unanswered = false): StatusAction => ({ name: f.name, job, remove: false, reason, unanswered });
    if (!job) return keep('not a <jobid>.<index>.json name');
    // Its owner can write to it (it is theirs): one grown past any record, reopened for writing, or
    // dated ahead to outlive the grace goes at once, so no one can fill or squat state_dir with it.
    if (f.size > STATUS_MAX_BYTES || (f.mode & 0o777) !== 0o400 || f.mtimeMs > nowMs + 60_000) {
      return { name: f.name, job, remove: true, reason: 'tampered with by its owner (too big, writable, or dated ahead)', unanswered: false };
    }
    const days = (ms: number) => `${Math.floor(ms / 86_400_000)} d`;
    if (nowMs - f.mtimeMs < keepMs) return keep(`written ${days(nowMs - f.mtimeMs)} ago (kept ${days(keepMs)})`);
    // No attempt to compare: only a final state, or no such job, ends a record.
    const { over, why } = attemptOver(scheduler, answers.get(refKey(job)), 'any');
    if (over !== true) return keep(why, over === undefined);
    return { name: f.name, job, remove: true, reason: why, unanswered: false };
  });
}
