// `jobbox ps`: every jobbox container on the cluster, as each node's engine lists it, beside
// what the shared dirs and the scheduler say of its attempt, and what a plain `jobbox gc` would
// do with it (planGc's decision, plan/gc.ts). Pure: listings and facts in, rows out.
import { noControls } from '../errors.js';
import type { Dialect } from './engine.js';
import { parseKey, type GcAction } from './gc.js';

const LABEL = 'org.jobbox';
// Each field as a JSON string: an image's own labels may hold tabs and newlines (a throwaway
// image check inherits them), and must not break a line into rows of their own.
const fields = (d: Dialect) => ['.Names', ...['job', 'index', 'attempt', 'owner', 'check'].map((l) => `(${d.label(`${LABEL}.${l}`)})`), '.Image', d.state, '.CreatedAt'].map((f) => `{{json ${f}}}`);
// What docker names a container and jobbox an owner; anything else is shown as it is not.
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const OWNER = /^[a-z_][a-z0-9_.-]{0,31}\$?$/;

/** Every container of a job attempt on one engine, running or not (an image check has no job label). */
export function clusterPsArgv(d: Dialect): string[] {
  return ['ps', '--all', '--no-trunc', '--filter', `label=${LABEL}.job`, '--format', fields(d).join('\t')];
}

export interface ContainerFact {
  node: string;
  name: string;
  /** `<jobid>.<index>.<attempt>`, or undefined when its labels do not make one. */
  key: string | undefined;
  owner: string;
  image: string;
  state: string;
  createdMs: number | undefined;
}

/** `docker ps` prints CreatedAt as `2026-12-07 16:02:11 +0000 UTC`, Podman with nanoseconds after the seconds. */
function parseCreated(text: string): number | undefined {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.\d+)? ([+-]\d\d)(\d\d)\b/.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}T${m[2]}${m[3]}:${m[4]}`);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Each container's line; a throwaway check (its `check` label, and the name jobbox gives it) is
 * not a job's. The name too: a container gets its image's labels, and an image could carry a
 * `check` label to hide its job's containers from this listing.
 */
export function parseClusterPs(node: string, stdout: string): ContainerFact[] {
  return stdout.split('\n').filter((l) => l.trim() !== '').flatMap((line) => {
    let fields: unknown[];
    try {
      fields = JSON.parse(`[${line.split('\t').join(',')}]`) as unknown[];
    } catch {
      return [{ node, name: '?', key: undefined, owner: '', image: '', state: '', createdMs: undefined }];
    }
    const [name, id, index, attempt, owner, check, image, state, created] = fields.map((f) => (typeof f === 'string' ? f : ''));
    if (check && name!.startsWith('jobbox-check-')) return [];
    const key = `${id}.${index}.${attempt}`;
    const sane = NAME.test(name!) && OWNER.test(owner!) && parseKey(key) !== undefined;
    return [{ node, name: name!, key: sane ? key : undefined, owner: owner!, image: image!, state: state!, createdMs: parseCreated(created!) }];
  });
}

export interface PsRow extends ContainerFact {
  ageS: number | undefined;
  /** What is wrong around it: `no job dir`, `no port claim`, `job over`, `bad labels`. */
  flags: string[];
  /** What `jobbox gc` would do: `reclaim: …`, `keep: …` or `nothing: …` (with what to do instead). */
  gc: string;
}

export interface PsFacts {
  /** Attempt keys with a port claim, and with a job dir. */
  claimed: ReadonlySet<string>;
  dirs: ReadonlySet<string>;
  /** planGc's actions for those attempts (by key), with no --nodes sweep: what a plain run does. */
  actions: ReadonlyMap<string, GcAction>;
  /** The scheduler's verdict on each container's attempt: true over, false not, undefined unknown. */
  over: (key: string) => boolean | undefined;
  nowMs: number;
  /** The engine's CLI, for the removal by hand it suggests. */
  engine: string;
}

export function planPs(containers: ContainerFact[], facts: PsFacts): PsRow[] {
  const rows = containers.map((c): PsRow => {
    const ageS = c.createdMs === undefined ? undefined : Math.max(0, Math.floor((facts.nowMs - c.createdMs) / 1000));
    const removeByHand = `${facts.engine} rm -f ${c.name} on ${c.node}`;
    if (c.key === undefined) return { ...c, ageS, flags: ['bad labels'], gc: `nothing: its labels name no attempt; ${removeByHand}` };
    const flags = [
      ...(facts.dirs.has(c.key) ? [] : ['no job dir']),
      ...(facts.claimed.has(c.key) ? [] : ['no port claim']),
      ...(facts.over(c.key) === true ? ['job over'] : []),
    ];
    const action = facts.actions.get(c.key);
    let gc: string;
    if (!action) gc = `nothing: gc finds attempts by their claim or job dir, and this one has neither; ${removeByHand}`;
    else if (!action.reclaim) gc = `keep: ${action.reason}`;
    else if (action.nodes.includes(c.node)) gc = `reclaim: ${action.reason}`;
    else gc = `nothing: the attempt's hostfile does not name ${c.node}; ${removeByHand}`;
    return { ...c, ageS, flags, gc };
  });
  return rows.sort((a, b) => (a.key ?? '').localeCompare(b.key ?? '') || a.node.localeCompare(b.node) || a.name.localeCompare(b.name));
}

/** `3d4h`, `2h5m`, `4m10s`, `9s`. */
export function formatAge(s: number | undefined): string {
  if (s === undefined) return '?';
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}

/** A digest ref shortened for the table: `repo@sha256:` and 12 hex digits. */
export function shortImage(image: string): string {
  return image.replace(/@sha256:([0-9a-f]{12})[0-9a-f]{52}$/, '@sha256:$1');
}

/** The table `jobbox ps` prints, columns padded; the gc column last, as it is the longest. */
export function psTable(rows: PsRow[]): string {
  const header = ['NODE', 'CONTAINER', 'ATTEMPT', 'OWNER', 'STATE', 'AGE', 'IMAGE', 'FLAGS', 'GC'];
  // Names, owners and images come from the engine, and a container's from its image: no control character reaches the terminal.
  const cells = rows.map((r) => [r.node, r.name, r.key ?? '?', r.owner || '?', r.state, formatAge(r.ageS), shortImage(r.image), r.flags.join(',') || '-', r.gc].map(noControls));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  return [line(header), ...cells.map(line)].join('\n');
}
