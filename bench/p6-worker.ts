// P6's jobbox side: one fresh process per case, so its peak RSS is that case's. It runs the
// real setupJob (the body of pre-exec) and teardownJob (post-exec) against the simulated nodes.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { parseConfig } from '../src/config/parse.js';
import { lookupAccount } from '../src/exec/accounts.js';
import type { Job, Owner } from '../src/job/job.js';
import { setupJob } from '../src/lifecycle/setup.js';
import { teardownJob } from '../src/lifecycle/teardown.js';
import { openLog } from '../src/log.js';
import { nodeIp, type WorkerJob, type WorkerResult } from './p6-shared.js';

const MB = 1024 * 1024;

function makeJob(id: number, nodes: number, owner: Owner): Job {
  const hosts = Array.from({ length: nodes }, (_, i) => ({ name: nodeIp(i), slots: 2 }));
  return {
    id: String(id),
    index: 0,
    attempt: hosts[0]!.name,
    queue: 'normal',
    owner,
    cwd: owner.home,
    hosts,
    image: 'deb12',
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', OMP_NUM_THREADS: '2', LD_PRELOAD: '/tmp/x.so' },
  };
}

const hostsOf = (job: Job) => job.hosts.map((h) => h.name);

async function owner(): Promise<Owner> {
  // A real account through NSS, as pre-exec would see it; nobody if the testbed users are absent.
  return lookupAccount('jbuser1').catch(() => lookupAccount('nobody'));
}

async function run(w: WorkerJob): Promise<WorkerResult> {
  const config = parseConfig(w.configText, w.configFile);
  const log: Logger = await openLog(config.logFile, config.logLevel);
  const who = await owner();

  let id = w.firstId;
  // Warm-up, untimed: module loading and the JIT would otherwise land in the first sample.
  if (w.warmupNodes > 0) {
    const job = makeJob(id++, w.warmupNodes, who);
    await setupJob(config, job, log);
    await teardownJob(config, job, hostsOf(job), log);
  }
  global.gc?.();
  const idleRssMb = process.memoryUsage.rss() / MB;

  let sampled = 0;
  const sampler = setInterval(() => (sampled = Math.max(sampled, process.memoryUsage.rss())), 50);
  const setup: number[] = [];
  const teardown: number[] = [];
  const repRssMb: number[] = [];
  const setupCpu: number[] = [];
  let lastSetup: [number, number] = [0, 0];
  let error: string | undefined;
  try {
    for (let r = 0; r < w.reps; r++) {
      sampled = 0;
      const job = makeJob(id++, w.nodes, who);
      const wall0 = Date.now();
      const cpu0 = process.cpuUsage();
      let t0 = performance.now();
      await setupJob(config, job, log);
      setup.push(performance.now() - t0);
      const cpu = process.cpuUsage(cpu0);
      setupCpu.push((cpu.user + cpu.system) / 1000);
      lastSetup = [wall0, Date.now()];
      t0 = performance.now();
      await teardownJob(config, job, hostsOf(job), log);
      teardown.push(performance.now() - t0);
      repRssMb.push(Math.max(sampled, process.memoryUsage.rss()) / MB);
    }
  } catch (err) {
    // What completed still counts; the bench reports the failure next to it.
    error = err instanceof Error ? err.message : String(err);
  } finally {
    clearInterval(sampler);
  }
  return {
    setup,
    teardown,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    repRssMb,
    setupCpu,
    idleRssMb,
    lastSetup,
    ...(error === undefined ? {} : { error }),
  };
}

process.once('message', (w: WorkerJob) => {
  run(w).then(
    (result) => process.send!(result, () => process.exit(0)),
    (err: unknown) => {
      process.stderr.write(`p6 worker: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
});
