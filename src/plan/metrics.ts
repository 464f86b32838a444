// jobbox's Prometheus metrics, in the text format node_exporter's textfile collector reads.
// Pure: the series as a map (`name{labels}` → value), what a start or a gc run adds to it, and
// the file's text. Every hook process is short-lived, so the counters live in the file itself:
// exec/metrics.ts reads it, applies one event, and writes it back under a lock.
import { PHASES, type StartRecord } from './status.js';

export type Series = Map<string, number>;

/** Upper bounds in seconds: a start is ~0.5 s on idle nodes, minutes with a cold pull. */
const START_BUCKETS = [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];
const PULL_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];

// Each family once, in this order, with its help text.
const FAMILIES: { name: string; type: 'counter' | 'gauge' | 'histogram'; help: string }[] = [
  { name: 'jobbox_starts_total', type: 'counter', help: 'Job starts (pre-exec, Prolog) made on this host, by outcome.' },
  { name: 'jobbox_start_failures_total', type: 'counter', help: 'Failed job starts by the step that failed first (connect, image, port, start, sshd), or setup when it failed before any node step.' },
  { name: 'jobbox_start_seconds', type: 'histogram', help: 'Wall time of the job starts that succeeded, from the setup to every node answering.' },
  { name: 'jobbox_pull_seconds', type: 'histogram', help: 'Time a node spent getting the job\'s image, where it had to (a pull, or a check of what it holds).' },
  { name: 'jobbox_containers', type: 'gauge', help: 'Containers of job attempts not yet torn down, from the hostfiles in state_dir (cluster-wide; set by gc).' },
  { name: 'jobbox_ports_in_use', type: 'gauge', help: 'Port claims in port_dir (cluster-wide; set by gc).' },
  { name: 'jobbox_ports_free', type: 'gauge', help: 'Ports of port_range with no claim (cluster-wide; set by gc).' },
  { name: 'jobbox_gc_runs_total', type: 'counter', help: 'Runs of jobbox gc on this host.' },
  { name: 'jobbox_gc_reclaimed_total', type: 'counter', help: 'Job attempts jobbox gc reclaimed (containers, claim and job dir).' },
  { name: 'jobbox_gc_failed_total', type: 'counter', help: 'Reclaims jobbox gc tried and could not finish.' },
  { name: 'jobbox_gc_last_run_timestamp_seconds', type: 'gauge', help: 'When jobbox gc last ran here (Unix time).' },
];

/** Our own file's sample lines, read back; anything else in it is dropped. */
export function parseMetrics(text: string): Series {
  const series: Series = new Map();
  const known = new Set(FAMILIES.flatMap((f) => (f.type === 'histogram' ? [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : [f.name])));
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[a-z_]+="[A-Za-z0-9.+_-]*"\})? (\S+)$/.exec(line);
    if (!m || !known.has(m[1]!)) continue;
    const value = Number(m[3] === '+Inf' ? Infinity : m[3]);
    if (Number.isFinite(value) && value >= 0) series.set(`${m[1]}${m[2] ?? ''}`, value);
  }
  return series;
}

const add = (s: Series, key: string, by = 1) => s.set(key, (s.get(key) ?? 0) + by);

function observe(s: Series, name: string, buckets: number[], seconds: number): void {
  // Every bucket from the first observation on, so a scrape always sees the whole histogram.
  for (const le of buckets) add(s, `${name}_bucket{le="${le}"}`, seconds <= le ? 1 : 0);
  add(s, `${name}_bucket{le="+Inf"}`);
  add(s, `${name}_sum`, seconds);
  add(s, `${name}_count`);
}

/** A start, from the record its owner gets (plan/status.ts). */
export function recordStart(s: Series, r: StartRecord): void {
  add(s, `jobbox_starts_total{outcome="${r.outcome}"}`);
  if (r.outcome === 'started') observe(s, 'jobbox_start_seconds', START_BUCKETS, r.ms / 1000);
  else {
    // The first step to fail, in the order a node runs them, over all nodes.
    const failed = PHASES.find((p) => r.nodes.some((n) => n.phases[p]?.failed)) ?? 'setup';
    add(s, `jobbox_start_failures_total{phase="${failed}"}`);
  }
  for (const n of r.nodes) {
    const image = n.phases.image;
    if (image?.ms !== undefined && !image.failed) observe(s, 'jobbox_pull_seconds', PULL_BUCKETS, image.ms / 1000);
  }
}

export interface GcFacts {
  reclaimed: number;
  failed: number;
  containers: number;
  portsInUse: number;
  portsFree: number;
  nowMs: number;
}

export function recordGc(s: Series, g: GcFacts): void {
  add(s, 'jobbox_gc_runs_total');
  add(s, 'jobbox_gc_reclaimed_total', g.reclaimed);
  add(s, 'jobbox_gc_failed_total', g.failed);
  s.set('jobbox_gc_last_run_timestamp_seconds', Math.floor(g.nowMs / 1000));
  s.set('jobbox_containers', g.containers);
  s.set('jobbox_ports_in_use', g.portsInUse);
  s.set('jobbox_ports_free', g.portsFree);
}

/** The file: each family that has samples, with HELP and TYPE, buckets in ascending order. */
export function renderMetrics(s: Series): string {
  const out: string[] = [];
  const le = (k: string) => {
    const m = /le="([^"]+)"/.exec(k);
    return m ? (m[1] === '+Inf' ? Infinity : Number(m[1])) : -1;
  };
  for (const f of FAMILIES) {
    const names = f.type === 'histogram' ? [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : [f.name];
    const keys = [...s.keys()].filter((k) => names.includes(k.replace(/\{.*$/, '')));
    if (keys.length === 0) continue;
    keys.sort((a, b) => names.indexOf(a.replace(/\{.*$/, '')) - names.indexOf(b.replace(/\{.*$/, '')) || le(a) - le(b) || a.localeCompare(b));
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const k of keys) out.push(`${k} ${s.get(k)}`);
  }
  return `${out.join('\n')}\n`;
}
