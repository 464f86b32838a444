// P6: fan-out at scale, simulated. jobbox's real setupJob (pre-exec) and teardownJob (post-exec)
// start and remove a job on N = 16, 128 and 1024 simulated nodes: ssh2 servers in one separate
// process, one per loopback address, answering the commands pre-exec sends
// (test/support/sim-cluster.ts, run by bench/p6-sim.ts), with every byte
// they send held back 20 ms. The baseline is the same job on ONE node, measured in the same run:
// one node's sequential round trips, the latency floor of a start. Target: 1024 nodes started
// in ≤ 3 s with the default fanout (256), peak RSS of the jobbox side ≤ 300 MB.
//
// P6_CASES=1024/64,1024/1024 runs only those N/fanout cases (the N=1 baseline always runs;
// 1024/1024 runs only when named);
// P6_PROF=<dir> writes --cpu-prof profiles of the jobbox side and the sim there.
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ed25519KeyPair } from '../src/lifecycle/keys.js';
import { REPO } from '../test/support/testbed.js';
import { type Row, ratioRow, type Stats, stats } from './lib.js';
import { nodeIp, type SimReady, type SimStart, type SimStats, type WorkerJob, type WorkerResult } from './p6-shared.js';
import type { Bench } from './run.js';

const LATENCY_MS = 20;
const ADMIN_PORT = 2222;
const DEFAULT_FANOUT = 256;
const TIME_LIMIT_MS = 3000;
const RSS_LIMIT_MB = 300;
const REPS = 5;

interface Case {
  nodes: number;
  fanout: number;
  reps: number;
  /** Run only when P6_CASES names it (keeps the default run under ~3 minutes). */
  extra?: boolean;
}

// The curve at the default fanout, then the narrower fanout jobbox had before, at 1024.
const CASES: Case[] = [
  { nodes: 1, fanout: DEFAULT_FANOUT, reps: 7 },
  { nodes: 16, fanout: DEFAULT_FANOUT, reps: REPS },
  { nodes: 128, fanout: DEFAULT_FANOUT, reps: REPS },
  { nodes: 1024, fanout: DEFAULT_FANOUT, reps: REPS },
  // The default before bench P6: 16 waves of round trips at 1024 nodes.
  { nodes: 1024, fanout: 64, reps: REPS },
  { nodes: 1024, fanout: 1024, reps: REPS, extra: true },
];

/** Waits for the child's next message; a child that dies fails the bench. */
function next<T>(child: ChildProcess, send?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const died = (code: number | null, signal: string | null) => reject(new Error(`bench: P6 child ${child.pid} exited ${code ?? signal}`));
    child.once('exit', died);
    child.once('message', (m) => {
      child.off('exit', died);
      resolve(m as T);
    });
    if (send) child.send(send);
  });
}

/** Ends a child by its pid: at once, or after `graceMs` if it is on its way out by itself. */
function stop(child: ChildProcess | undefined, graceMs = 0): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill(), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function configText(root: string, fanout: number): string {
  return `[jobbox]
registry = registry.sim.example:5000
port_range = 31500-31999
port_dir = ${root}/ports
state_dir = ${root}/jobs
log_file = ${root}/jobbox.log
log_level = info
ssh_user = root
ssh_key = ${root}/admin_key
ssh_known_hosts = ${root}/known_hosts
ssh_port = ${ADMIN_PORT}
fanout = ${fanout}

[image deb12]
ref = hpc/deb12:r1

[queue normal]
default_image = deb12
mounts = /home
memory = 2g/slot
`;
}

/** "kind first–last" per command kind, in the order they happen: where the time of a start goes. */
function timeline(s: SimStats): string {
  const order = ['connect admin', 'mkdir', 'pull', 'find', 'bind', 'ps name', 'image inspect', 'accounts', 'run', 'connect job'];
  return order
    .filter((k) => s.commands[k])
    .map((k) => {
      const [count, first, last] = s.commands[k]!;
      return `${k} ×${count} ${first.toFixed(0)}–${last.toFixed(0)}`;
    })
    .join(', ');
}

function limitRow(bench: string, name: string, ours: Stats, baseName: string, base: Stats, limit: number, unit: string, worst?: number): Row {
  const row = ratioRow(bench, name, ours, baseName, base, undefined, unit);
  return { ...row, target: `≤ ${limit} ${unit}`, met: (worst ?? ours.median) <= limit };
}

async function run(): Promise<Row[]> {
  const only = process.env.P6_CASES?.split(',').map((c) => c.trim());
  const cases = CASES.filter((c) => c.nodes === 1 || (only ? only.includes(`${c.nodes}/${c.fanout}`) : !c.extra));
  const prof = process.env.P6_PROF;
  const loadAtStart = loadavg()[0]!.toFixed(1);
  const root = mkdtempSync('/tmp/jobbox-p6-');
  const out = `${REPO}/dist/bench/p6`;
  let sim: ChildProcess | undefined;
  let worker: ChildProcess | undefined;
  try {
    // Two more entry points, bundled with their imports from src/ (packages stay in node_modules).
    mkdirSync(out, { recursive: true });
    await build({
      entryPoints: { 'p6-sim': `${REPO}/bench/p6-sim.ts`, 'p6-worker': `${REPO}/bench/p6-worker.ts` },
      outdir: out, outExtension: { '.js': '.mjs' }, bundle: true, platform: 'node', format: 'esm', packages: 'external', logLevel: 'warning',
    });

    // One admin key for jobbox, one host key for every simulated node, pinned per node and port.
    const [admin, host] = await Promise.all([ed25519KeyPair('jobbox-admin'), ed25519KeyPair('sim-node')]);
    writeFileSync(join(root, 'admin_key'), admin.private, { mode: 0o600 });
    writeFileSync(join(root, 'admin_key.pub'), admin.public);
    writeFileSync(join(root, 'host_key'), host.private, { mode: 0o600 });
    const maxNodes = Math.max(...cases.map((c) => c.nodes));
    const blob = host.public.split(/\s+/).slice(0, 2).join(' ');
    writeFileSync(join(root, 'known_hosts'), Array.from({ length: maxNodes }, (_, i) => `[${nodeIp(i)}]:${ADMIN_PORT} ${blob}\n`).join(''));

    const profArgs = (what: string) => (prof ? ['--cpu-prof', '--cpu-prof-dir', prof, '--cpu-prof-name', `${what}-${Date.now()}.cpuprofile`] : []);
    sim = fork(join(out, 'p6-sim.mjs'), [], { execArgv: profArgs('sim'), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const start: SimStart = { nodes: maxNodes, adminPort: ADMIN_PORT, hostKeyFile: join(root, 'host_key'), adminPubFile: join(root, 'admin_key.pub'), latencyMs: LATENCY_MS };
    const ready = await next<SimReady>(sim, start);
    console.error(`  p6: ${ready.listening} simulated nodes up (pid ${sim.pid}), ${LATENCY_MS} ms injected latency`);

    const results: { c: Case; r: WorkerResult; phases: SimStats; simCpu: number }[] = [];
    let firstId = 1000;
    for (const c of cases) {
      // A fresh process per case: its peak RSS is this case's alone.
      worker = fork(join(out, 'p6-worker.mjs'), [], { execArgv: profArgs(`jobbox-${c.nodes}-${c.fanout}`), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const file = join(root, `jobbox-${c.fanout}.ini`);
      const text = configText(root, c.fanout);
      writeFileSync(file, text);
      const job: WorkerJob = { configText: text, configFile: file, nodes: c.nodes, reps: c.reps, warmupNodes: Math.min(c.nodes, 16), firstId };
      firstId += c.reps + 1;
      const simBefore = await next<SimStats>(sim, { stats: [0, 0] });
      const r = await next<WorkerResult>(worker, job);
      // It exits once its answer is sent (and writes its CPU profile then, under P6_PROF).
      await stop(worker, 10_000);
      const phases = await next<SimStats>(sim, { stats: r.lastSetup });
      // The sim's CPU per start + removal, the warm-up's share included: what the nodes' sshd cost here.
      const simCpu = (phases.cpuMs - simBefore.cpuMs) / Math.max(1, r.setup.length);
      results.push({ c, r, phases, simCpu });
      const med = (xs: number[]) => (xs.length ? stats(xs).median.toFixed(0) : '-');
      console.error(`  p6: N=${c.nodes} fanout=${c.fanout}: setup ${med(r.setup)} ms (CPU ${med(r.setupCpu)} ms; sim ${simCpu.toFixed(0)} ms per setup+teardown), teardown ${med(r.teardown)} ms, maxRSS ${r.maxRssMb.toFixed(0)} MB` +
        `${r.error ? `; FAILED after ${r.setup.length} runs: ${r.error.slice(0, 300)}` : ''}; last start: ${timeline(phases)}`);
    }

    const base = results.find((x) => x.c.nodes === 1)!;
    if (base.r.error || base.r.setup.length === 0) throw new Error(`bench: P6 baseline failed: ${base.r.error}`);
    const baseSetup = stats(base.r.setup);
    const baseTeardown = stats(base.r.teardown);
    const baseRss = stats(base.r.repRssMb);
    const cpu = (r: WorkerResult, n: number, simCpu: number) => {
      const m = stats(r.setupCpu).median;
      return `jobbox-side CPU ${m.toFixed(0)} ms per start (${(m / n).toFixed(2)} ms/node), sim CPU ≈ ${simCpu.toFixed(0)} ms per start + removal`;
    };
    const failed = (r: WorkerResult) => (r.error ? `FAILED after ${r.setup.length} of the runs: ${r.error.slice(0, 400)}; ` : '');
    const [l1, l5] = loadavg();
    const B = 'P6';
    const rows: Row[] = [
      {
        bench: B, case: 'setup N=1 (baseline)', unit: 'ms', stats: baseSetup,
        note: `baseline = setupJob on ONE simulated node: the latency floor of one node's sequential round trips ` +
          `(admin ssh connect, pull ∥ probe, image accounts, docker run, job-sshd barrier connect) at ${LATENCY_MS} ms per reply; ` +
          `ratios of N nodes are median/median; if only the fanout mattered, N nodes would take ceil(N/fanout)× this. ` +
          `${cpu(base.r, 1, base.simCpu)}. Last start (ms from its start): ${timeline(base.phases)}. Load average at the start of P6: ${loadAtStart}, at the end ${l1!.toFixed(1)} (5 min ${l5!.toFixed(1)}) on ${cpus().length} CPUs`,
      },
    ];
    const others = results.filter((x) => x.c.nodes !== 1);
    for (const { c, r, phases, simCpu } of others) {
      const name = `setup N=${c.nodes} fanout=${c.fanout}`;
      const waves = Math.ceil(c.nodes / c.fanout);
      const note = `${failed(r)}ceil(N/fanout) = ${waves} waves × baseline = ${(waves * baseSetup.median).toFixed(0)} ms; ${r.setupCpu.length ? cpu(r, c.nodes, simCpu) : ''}; last start (ms from its start): ${timeline(phases)}`;
      if (r.setup.length === 0) {
        rows.push({ bench: B, case: name, unit: 'ms', stats: { median: NaN, min: NaN, max: NaN, n: 0 }, ...(c.nodes === 1024 && c.fanout === DEFAULT_FANOUT ? { target: `≤ ${TIME_LIMIT_MS} ms`, met: false } : {}), note });
        continue;
      }
      const s = stats(r.setup);
      rows.push(c.nodes === 1024 && c.fanout === DEFAULT_FANOUT
        ? { ...limitRow(B, name, s, 'setup N=1', baseSetup, TIME_LIMIT_MS, 'ms', r.error ? Infinity : undefined), note }
        : { ...ratioRow(B, name, s, 'setup N=1', baseSetup), note });
    }
    rows.push({ bench: B, case: 'teardown N=1 (baseline)', unit: 'ms', stats: baseTeardown, note: 'teardownJob (post-exec) on one node: admin connect, docker ps, docker rm' });
    for (const { c, r } of others) {
      if (r.teardown.length === 0) continue;
      rows.push(ratioRow(B, `teardown N=${c.nodes} fanout=${c.fanout}`, stats(r.teardown), 'teardown N=1', baseTeardown));
    }
    rows.push({
      bench: B, case: 'peak RSS N=1 (baseline)', unit: 'MB', stats: baseRss,
      note: `jobbox-side process only (the sim runs in its own process); per repetition (setup + teardown), the highest RSS sampled every 50 ms; process maxRSS ${base.r.maxRssMb.toFixed(0)} MB, idle after warm-up ${base.r.idleRssMb.toFixed(0)} MB`,
    });
    for (const { c, r } of others) {
      if (r.repRssMb.length === 0) continue;
      const name = `peak RSS N=${c.nodes} fanout=${c.fanout}`;
      const s = stats(r.repRssMb);
      const note = `process maxRSS (kernel peak, warm-up included) ${r.maxRssMb.toFixed(0)} MB${c.nodes === 1024 ? '; met is judged on it' : ''}`;
      rows.push(c.nodes === 1024 && c.fanout === DEFAULT_FANOUT
        ? { ...limitRow(B, name, s, 'peak RSS N=1', baseRss, RSS_LIMIT_MB, 'MB', r.maxRssMb), note }
        : { ...ratioRow(B, name, s, 'peak RSS N=1', baseRss, undefined, 'MB'), note });
    }
    return rows;
  } finally {
    await stop(worker);
    await stop(sim);
    rmSync(root, { recursive: true, force: true });
  }
}

const bench: Bench = { id: 'p6', title: 'fan-out at scale: setupJob/teardownJob on 16, 128, 1024 simulated ssh2 nodes, 20 ms latency', testbed: false, run };
export default bench;
