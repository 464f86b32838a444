// The record of a job's last start attempt, for its owner: `jobbox status`. Pure: the setup
// times its steps on a Timeline and hands what it learned to startRecord; exec/jobdir.ts
// writes the file statusFile plans, and renderStatus turns a record into what the owner reads.
//
// Where it is kept, and why there: `<state_dir>/.status/<id>.<index>.json`. The job dir goes
// with the rollback of a failed start and with the teardown, and this must outlive both. The
// directory is root's, 0711: anyone may open a name they know, nobody but root may list or
// create one, so nobody can plant a name root would write through. The file is the owner's,
// 0400, so the owner (and root) read it and no other user does. Being the owner's, the owner
// may change it: it is read back as data (bounded, parsed strictly, printed escaped), and gc
// decides by its name and age alone.
import type { Attempt, JobFile, Owner } from '../job/job.js';
import { DIGEST } from '../config/ref.js';

/** A node's steps of a start, named as in the setup's log: they run in this order on each node, image and port side by side. */
export const PHASES = ['connect', 'image', 'port', 'start', 'sshd'] as const;
export type Phase = (typeof PHASES)[number];

export interface PhaseTime {
  /** When it began, in ms after the start began. */
  fromMs: number;
  /** How long it took; absent when it had not ended when the start did (another node's failure cut it short). */
  ms?: number;
  failed?: boolean;
}

export interface NodeStart {
  host: string;
  phases: Partial<Record<Phase, PhaseTime>>;
  /** This node's own error, where the start's error names the node. */
  error?: string;
}

export interface StartRecord {
  job: string;
  index: number;
  attempt: string;
  owner: string;
  uid: number;
  queue: string;
  /** The image the job asked for, as the config resolves it (the tag). */
  image: string;
  /** The digest every node was to run, and what pinned it. */
  digest?: string;
  pinnedBy?: PinnedBy;
  port?: number;
  outcome: 'started' | 'failed';
  /** When the start began, ISO 8601 UTC. */
  at: string;
  ms: number;
  nodes: NodeStart[];
  /** The failure's one line (`jobbox: <subject>: <problem>: <value>`) and the hook's exit code. */
  error?: string;
  exitCode?: number;
}

export type PinnedBy = 'earlier run' | 'submit' | 'registry' | 'first node';
const PINNED_BY: readonly PinnedBy[] = ['earlier run', 'submit', 'registry', 'first node'];

/**
 * When each node's steps began and ended: timestamps only, taken around calls the setup makes
 * anyway. A step that runs again (the port, when a node had it taken) keeps its first start.
 */
export class Timeline {
  readonly startedMs: number;
  private readonly nodes = new Map<string, Partial<Record<Phase, PhaseTime>>>();

  constructor(private readonly now: () => number = Date.now) {
    this.startedMs = now();
  }

  async time<R>(host: string, phase: Phase, step: () => Promise<R>): Promise<R> {
    const phases = this.nodes.get(host) ?? this.nodes.set(host, {}).get(host)!;
    const fromMs = phases[phase]?.fromMs ?? this.now() - this.startedMs;
    phases[phase] = { fromMs };
    try {
      const out = await step();
      phases[phase] = { fromMs, ms: this.now() - this.startedMs - fromMs };
      return out;
    } catch (err) {
      phases[phase] = { fromMs, ms: this.now() - this.startedMs - fromMs, failed: true };
      throw err;
    }
  }

  phases(host: string): Partial<Record<Phase, PhaseTime>> {
    return structuredClone(this.nodes.get(host) ?? {});
  }

  elapsedMs(): number {
    return this.now() - this.startedMs;
  }
}

/** What the setup learned on its way, filled in as it goes. */
export interface StartFacts {
  image: string;
  digest?: string;
  pinnedBy?: PinnedBy;
  port?: number;
}

export interface StartFailure {
  line: string;
  exitCode: number;
  /** Each failed node's own error, when the error says which node. */
  nodes?: { host: string; error: string }[];
}

export function startRecord(job: Attempt & { queue: string; owner: Pick<Owner, 'name' | 'uid'>; hosts: { name: string }[] }, timeline: Timeline, facts: StartFacts, failure?: StartFailure): StartRecord {
  const byHost = new Map((failure?.nodes ?? []).map((n) => [n.host, n.error]));
  return {
    job: job.id,
    index: job.index,
    attempt: job.attempt,
    owner: job.owner.name,
    uid: job.owner.uid,
    queue: job.queue,
    image: facts.image,
    ...(facts.digest !== undefined && { digest: facts.digest }),
    ...(facts.pinnedBy !== undefined && { pinnedBy: facts.pinnedBy }),
    ...(facts.port !== undefined && { port: facts.port }),
    outcome: failure ? 'failed' : 'started',
    at: new Date(timeline.startedMs).toISOString(),
    ms: timeline.elapsedMs(),
    nodes: job.hosts.map((h) => ({ host: h.name, phases: timeline.phases(h.name), ...(byHost.has(h.name) && { error: byHost.get(h.name)! }) })),
    ...(failure && { error: failure.line, exitCode: failure.exitCode }),
  };
}

/** `<state_dir>/.status`: a name that is no job key (gc and the job dir listing pass over it, as over `.images`). */
export function statusDir(stateDir: string): string {
  return `${stateDir}/.status`;
}

/** One file per job and array index: the newest attempt replaces the one before. */
export function statusPath(stateDir: string, job: { id: string; index: number }): string {
  return `${statusDir(stateDir)}/${job.id}.${job.index}.json`;
}

/** `<id>.<index>.json` → the job, for gc; undefined for any other name (a writer's temporary file). */
// What toISOString writes, and nothing else: the record is the owner's file, read by root too.
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

export function parseStatusName(name: string): { id: string; index: number } | undefined {
  const m = /^([1-9][0-9]{0,19})\.(0|[1-9][0-9]{0,9})\.json$/.exec(name);
  return m ? { id: m[1]!, index: Number(m[2]) } : undefined;
}

export const STATUS_MODE = 0o400;

export function statusFile(stateDir: string, record: StartRecord, owner: Pick<Owner, 'uid' | 'gid'>): JobFile {
  return { path: statusPath(stateDir, { id: record.job, index: record.index }), content: `${JSON.stringify(record, null, 2)}\n`, mode: STATUS_MODE, owner: { uid: owner.uid, gid: owner.gid } };
}

/** More than any record jobbox writes (a few KB for hundreds of nodes): the owner may have grown the file. */
export const STATUS_MAX_BYTES = 1 << 20;

/** A record's text → the record, or undefined when it is not one jobbox wrote (damage, or the owner's edits). */
export function parseStatus(text: string): StartRecord | undefined {
  let r: Partial<StartRecord>;
  try {
    r = JSON.parse(text) as Partial<StartRecord>;
  } catch {
    return undefined;
  }
  const str = (v: unknown): v is string => typeof v === 'string' && v.length <= 4096;
  const ms = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  const int = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
  if (typeof r !== 'object' || r === null) return undefined;
  if (!(str(r.job) && /^\d{1,20}$/.test(r.job) && int(r.index) && str(r.attempt) && str(r.owner) && int(r.uid) && str(r.queue) && str(r.image))) return undefined;
  if (!(r.outcome === 'started' || r.outcome === 'failed') || !str(r.at) || !ISO_TIME.test(r.at) || Number.isNaN(Date.parse(r.at)) || !ms(r.ms) || !Array.isArray(r.nodes)) return undefined;
  if (r.digest !== undefined && !(str(r.digest) && DIGEST.test(r.digest))) return undefined;
  if (r.pinnedBy !== undefined && !PINNED_BY.includes(r.pinnedBy)) return undefined;
  if (r.port !== undefined && !(int(r.port) && r.port <= 65535)) return undefined;
  if (r.error !== undefined && !str(r.error)) return undefined;
  if (r.exitCode !== undefined && !int(r.exitCode)) return undefined;
  const nodes: NodeStart[] = [];
  for (const n of r.nodes as Partial<NodeStart>[]) {
    if (typeof n !== 'object' || n === null || !str(n.host) || typeof n.phases !== 'object' || n.phases === null) return undefined;
    if (n.error !== undefined && !str(n.error)) return undefined;
    const phases: NodeStart['phases'] = {};
    for (const p of PHASES) {
      const t = (n.phases as Record<string, Partial<PhaseTime> | undefined>)[p];
      if (t === undefined) continue;
      if (typeof t !== 'object' || t === null || !ms(t.fromMs) || (t.ms !== undefined && !ms(t.ms)) || (t.failed !== undefined && t.failed !== true)) return undefined;
      phases[p] = { fromMs: t.fromMs, ...(t.ms !== undefined && { ms: t.ms }), ...(t.failed && { failed: true }) };
    }
    nodes.push({ host: n.host, phases, ...(n.error !== undefined && { error: n.error }) });
  }
  return {
    job: r.job, index: r.index, attempt: r.attempt, owner: r.owner, uid: r.uid, queue: r.queue, image: r.image,
    ...(r.digest !== undefined && { digest: r.digest }),
    ...(r.pinnedBy !== undefined && { pinnedBy: r.pinnedBy }),
    ...(r.port !== undefined && { port: r.port }),
    outcome: r.outcome, at: r.at, ms: r.ms, nodes,
    ...(r.error !== undefined && { error: r.error }),
    ...(r.exitCode !== undefined && { exitCode: r.exitCode }),
  };
}

/** `123` or `123[4]`, as LSF names an array element. */
export function jobLabel(job: { id: string; index: number }): string {
  return job.index > 0 ? `${job.id}[${job.index}]` : job.id;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const when = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;

/** What a hook's exit code made the scheduler do (errors.ts EXIT). */
function afterwards(exitCode: number | undefined): string {
  if (exitCode === 1) return 'exit 1: may heal, the job is requeued';
  if (exitCode === 99) return 'exit 99: will not heal, the job ends';
  return `exit ${exitCode ?? '?'}`;
}

function cell(t: PhaseTime | undefined): string {
  if (!t) return '-';
  if (t.ms === undefined) return 'cut short';
  return t.failed ? `failed ${seconds(t.ms)}` : seconds(t.ms);
}

/**
 * Control characters as `\uXXXX`, and nothing else changed: the error line was made printable
 * when it was raised, and escaping it again would double its backslashes; but the owner may
 * have edited the file, and root reads it too.
 */
function shown(v: string): string {
  return v.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The record as its owner reads it: a header line, each node's steps, the error line. */
export function renderStatus(r: StartRecord): string {
  const p = shown;
  const image = r.digest ? `${p(r.image)} = ${p(r.digest)}${r.pinnedBy ? ` (pinned by the ${r.pinnedBy})` : ''}` : p(r.image);
  const outcome = r.outcome === 'started' ? 'started' : `failed (${afterwards(r.exitCode)})`;
  const header = `job ${jobLabel({ id: r.job, index: r.index })}: ${outcome}; last start ${when(r.at)}, ${seconds(r.ms)}; owner ${p(r.owner)}, attempt ${p(r.attempt)}, queue ${p(r.queue)}, image ${image}, port ${r.port ?? '-'}`;
  const rows = [['node', ...PHASES], ...r.nodes.map((n) => [p(n.host), ...PHASES.map((ph) => cell(n.phases[ph]))])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const table = rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
  const errors = r.error ? [p(r.error)] : [];
  return [header, ...table, ...errors].join('\n') + '\n';
}

/** `jobbox status JOB`: `123`, `123[4]`; an --index too must agree. */
export function parseJobArg(arg: string, index: number | undefined): { id: string; index: number } | undefined {
  const m = /^([1-9][0-9]{0,19})(?:\[(0|[1-9][0-9]{0,9})\])?$/.exec(arg);
  if (!m) return undefined;
  const inArg = m[2] === undefined ? undefined : Number(m[2]);
  if (index !== undefined && (!Number.isInteger(index) || index < 0 || index > 9_999_999_999 || (inArg !== undefined && inArg !== index))) return undefined;
  return { id: m[1]!, index: inArg ?? index ?? 0 };
}
