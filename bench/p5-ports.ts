// P5: the port allocator under 1, 8 and 32 concurrent processes — allocations/s and p50/p99
// latency of allocatePort, against the floor of the same work on the same filesystem: a lock
// that is one O_EXCL create (lock.<port>), run by the same processes at the same concurrency.
// Target: p99 ≤ 20 ms at 32 processes, and no port ever held twice.
import { type ChildProcess, fork } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { build } from 'esbuild';
import { REPO } from '../test/integration/testbed.js';
import { quantile, type Row, ratioRow, stats } from './lib.js';
import type { Job, Result } from './p5-worker.js';
import type { Bench } from './run.js';

const PROCESSES = [1, 8, 32];
const REPS = 5;
// Per run, split over the processes: enough samples for a p99 (10 above it), ~1-2 s per run.
const ALLOCATIONS = 1000;
// The default port_range: its size sets the scan length and how many names each readdir sees.
const RANGE = { first: 30000, last: 30999 };
const P99_LIMIT_MS = 20;

interface Run { rate: number; p50: number; p99: number; duplicates: number; badReleases: number }

/** Sends a job and waits for its answer; a worker that dies fails the bench. */
function ask<T>(child: ChildProcess, job?: Job): Promise<T> {
  return new Promise((resolve, reject) => {
    const died = (code: number | null) => reject(new Error(`bench: P5 worker exited ${code}`));
    child.once('exit', died);
    child.once('message', (m) => {
      child.off('exit', died);
      resolve(m as T);
    });
    if (job) child.send(job);
  });
}

async function run(): Promise<Row[]> {
  // /tmp is the local filesystem here; a root-owned 0700 dir passes the allocator's port-dir check.
  const root = mkdtempSync('/tmp/jobbox-p5-');
  const workers: ChildProcess[] = [];
  try {
    const worker = join(root, 'p5-worker.mjs');
    await build({ entryPoints: [`${REPO}/bench/p5-worker.ts`], outfile: worker, bundle: true, platform: 'node', format: 'esm', logLevel: 'silent' });
    // One pool for every run, so process start-up and warm-up stay out of the timings.
    for (let i = 0; i < Math.max(...PROCESSES); i++) {
      workers.push(fork(worker, [join(root, `warm-${i}`), `${i}`], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    await Promise.all(workers.map((w) => ask<'ready'>(w)));

    const once = async (mode: Job['mode'], n: number): Promise<Run> => {
      const portDir = mkdtempSync(join(root, 'ports-'));
      const heldDir = mkdtempSync(join(root, 'held-'));
      // A site's port dir in steady state: every port file exists (the allocator makes them lazily).
      if (mode === 'allocator') for (let p = RANGE.first; p <= RANGE.last; p++) closeSync(openSync(join(portDir, `port.${p}`), 'wx', 0o644));
      const t0 = performance.now();
      const results = await Promise.all(
        workers.slice(0, n).map((w, i) => ask<Result>(w, { mode, portDir, heldDir, id: `${1000 + i}`, cycles: ALLOCATIONS / n, range: RANGE })),
      );
      const seconds = (performance.now() - t0) / 1000;
      // Removed with root at the end: deleting 1000 files now would tax the next run's timings.
      const latencies = results.flatMap((r) => r.latencies);
      const sum = (k: 'duplicates' | 'badReleases') => results.reduce((a, r) => a + r[k], 0);
      return { rate: latencies.length / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), duplicates: sum('duplicates'), badReleases: sum('badReleases') };
    };

    // Round-robin (rep by rep, floor then ours) so drift in the machine's load lands on every case.
    const runs: Record<string, Run[]> = {};
    for (let rep = 0; rep < REPS; rep++) {
      for (const n of PROCESSES) {
        for (const mode of ['floor', 'allocator'] as const) (runs[`${mode}/${n}`] ??= []).push(await once(mode, n));
      }
    }

    const rows: Row[] = [];
    for (const n of PROCESSES) {
      const ours = runs[`allocator/${n}`]!;
      const floor = runs[`floor/${n}`]!;
      const procs = `${n} proc${n > 1 ? 's' : ''}`;
      const row = (what: string, k: 'rate' | 'p50' | 'p99', unit: string) =>
        ratioRow('P5', `${what}, ${procs}`, stats(ours.map((r) => r[k])), `O_EXCL floor, ${procs}`, stats(floor.map((r) => r[k])), undefined, unit);
      rows.push(row('allocations/s', 'rate', '/s'), row('p50 latency', 'p50', 'ms'));
      const p99 = row('p99 latency', 'p99', 'ms');
      rows.push(n === 32 ? { ...p99, target: `≤ ${P99_LIMIT_MS} ms`, met: p99.stats.median <= P99_LIMIT_MS } : p99);
    }
    const all = PROCESSES.flatMap((n) => runs[`allocator/${n}`]!);
    const badReleases = all.reduce((a, r) => a + r.badReleases, 0);
    rows.push({
      bench: 'P5',
      case: 'ports held twice, all runs',
      unit: 'per run',
      stats: stats(all.map((r) => r.duplicates)),
      target: '0',
      met: all.every((r) => r.duplicates === 0) && badReleases === 0,
      note: `${all.length} runs, ${all.length * ALLOCATIONS} allocations over ${RANGE.last - RANGE.first + 1} ports${badReleases ? `; ${badReleases} releases did not free exactly the port taken` : ''}`,
    });
    return rows;
  } finally {
    // Wait for the workers to go, so none still writes under root while it is removed.
    await Promise.all(workers.map((w) => w.exitCode === null && w.signalCode === null && new Promise((r) => w.once('exit', r).kill())));
    rmSync(root, { recursive: true, force: true });
  }
}

const bench: Bench = { id: 'P5', title: 'port allocator', testbed: false, run };
export default bench;
