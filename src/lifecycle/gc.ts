// The orphan reaper: what a post-exec or Epilog could not finish (a node was down, the hook
// was killed) is finished here, from one admin host that sees port_dir and state_dir. It
// gathers the facts, asks the scheduler once, lets planGc decide, and reclaims with the same
// teardown the hooks use, so only an attempt whose containers are all gone loses its claim.
import { lstat, readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SLURM_QUERIES, STATUS_KEEP_S } from '../config/defaults.js';
import type { Config } from '../config/types.js';
import { formatError } from '../errors.js';
import { readJobFile, removeStatusFile } from '../exec/jobdir.js';
import { runBjobs } from '../exec/lsf.js';
import { updateMetrics } from '../exec/metrics.js';
import { fanOut } from '../exec/ssh.js';
import { runSqueue } from '../exec/slurm.js';
import { jobLog } from '../log.js';
import { claimPath, listClaims } from '../ports/allocator.js';
import { describeAction, hostfileHosts, jobsToAsk, planGc, planStatusGc, statusToAsk, type DirFact, type GcAction, type StatusFact } from '../plan/gc.js';
import { lsfClear } from '../plan/container.js';
import { recordGc } from '../plan/metrics.js';
import { imageCacheDir, jobPaths, parseAttemptRecord } from '../plan/job-files.js';
import { statusDir } from '../plan/status.js';
import { describeFailure } from '../result.js';
import { refKey, type Answer, type JobRef, type Scheduler } from '../scheduler/answer.js';
import { bjobsArgv, parseBjobs } from '../scheduler/lsf.js';
import { parseSqueue, slurmAnswer, squeueArgv } from '../scheduler/slurm.js';
import { teardownJob } from './teardown.js';

export interface GcOptions {
  scheduler: Scheduler;
  dryRun: boolean;
  graceMs: number;
  sweepNodes: string[];
}

/** Job directories under state_dir, with their hostfile (never through a symlink). */
export async function jobDirs(stateDir: string): Promise<DirFact[]> {
  const names = await readdir(stateDir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [] as string[];
    throw err;
  });
  const dirs: DirFact[] = [];
  for (const name of names) {
    if (join(stateDir, name) === imageCacheDir(stateDir) || join(stateDir, name) === statusDir(stateDir)) continue;
    const st = await lstat(join(stateDir, name)).catch(() => undefined);
    if (!st) continue; // removed meanwhile
    const hostfile = st.isDirectory() ? await readJobFile(join(stateDir, name, 'hostfile')).catch(() => undefined) : undefined;
    dirs.push({ name, mtimeMs: st.mtimeMs, isDirectory: st.isDirectory(), hostfile });
  }
  return dirs;
}

/** The start records under state_dir/.status, regular files only. */
async function statusFiles(stateDir: string): Promise<StatusFact[]> {
  const dir = statusDir(stateDir);
  const names = await readdir(dir).catch(() => [] as string[]);
  const files: StatusFact[] = [];
  for (const name of names) {
    const st = await lstat(join(dir, name)).catch(() => undefined);
    if (st?.isFile()) files.push({ name, mtimeMs: st.mtimeMs, size: st.size, mode: st.mode });
  }
  return files;
}

/** One answer per job (by refKey). Slurm: one listing, then one query per job missing from it. */
export async function ask(scheduler: Scheduler, refs: JobRef[], env: NodeJS.ProcessEnv, fanout: number): Promise<Map<string, Answer>> {
  if (refs.length === 0) return new Map();
  if (scheduler === 'lsf') return parseBjobs(refs, await runBjobs(bjobsArgv(refs), env));
  const listed = await runSqueue(squeueArgv(), env);
  if (listed.code !== 0) {
    const reason = describeFailure('squeue', listed);
    return new Map(refs.map((r): [string, Answer] => [refKey(r), { kind: 'failed', reason }]));
  }
  const listing = parseSqueue(listed.stdout);
  const missing = [...new Set(refs.map((r) => r.id).filter((id) => !listing.has(id)))];
  const singles = await fanOut(missing, Math.min(fanout, SLURM_QUERIES), (id) => runSqueue(squeueArgv(id), env));
  const single = new Map(missing.map((id, i) => {
    const s = singles[i]!;
    return [id, s.status === 'fulfilled' ? s.value : { code: undefined, stdout: '', stderr: '', error: String(s.reason) }];
  }));
  return new Map(refs.map((r): [string, Answer] => [refKey(r), slurmAnswer(r.id, listing, single.get(r.id))]));
}

/** Newest mtime of what the action would remove, read again right before removing it. */
async function touchedSince(config: Config, a: GcAction): Promise<boolean> {
  const paths = [...a.ports.map((p) => claimPath(config.portDir, a.key, p)), ...(a.dir ? [join(config.stateDir, a.key)] : [])];
  const times = await Promise.all(paths.map((p) => lstat(p).then((s) => s.mtimeMs, () => -Infinity)));
  return times.some((t) => t > a.sinceMs);
}

/** Returns the exit code: 1 when the scheduler could not be asked about a job or a reclaim failed, else 0. */
export async function reapOrphans(config: Config, options: GcOptions, env: NodeJS.ProcessEnv, log: Logger, say: (line: string) => void): Promise<number> {
  const [claims, dirs, records] = await Promise.all([listClaims(config.portDir), jobDirs(config.stateDir), statusFiles(config.stateDir)]);
  const nowMs = Date.now();
  const keepMs = Math.max(STATUS_KEEP_S * 1000, options.graceMs);
  const refs = new Map([...jobsToAsk(claims, dirs), ...statusToAsk(records, nowMs, keepMs)].map((r) => [refKey(r), r]));
  const answers = await ask(options.scheduler, [...refs.values()], env, config.fanout);
  const actions = planGc({
    scheduler: options.scheduler, claims, dirs, answers, nowMs, graceMs: options.graceMs, sweepNodes: options.sweepNodes,
  });

  const count = { reclaimed: 0, kept: 0, failed: 0, unanswered: 0 };
  const keep = (key: string, reason: string) => {
    count.kept += 1;
    say(`jobbox: gc: keep ${key}: ${reason}`);
  };
  for (const a of actions) {
    if (!a.reclaim || !a.job) {
      if (a.unanswered) count.unanswered += 1;
      keep(a.key, a.reason);
    } else if (options.dryRun) {
      count.reclaimed += 1;
      say(`jobbox: gc: would reclaim ${a.key} (${describeAction(a)}): ${a.reason}`);
    } else if (await touchedSince(config, a)) {
      // A re-run setup of the same attempt stamps its claim: it is in use again.
      keep(a.key, 'changed while gc ran');
    } else {
      const jlog = jobLog(log, a.job, hostname());
      try {
        jlog.info({ reason: a.reason, nodes: a.nodes, ports: a.ports }, 'gc: reclaiming');
        // What an LSF job's setup made (its attempt is its first host); a Slurm job's cgroups are
        // the Epilog's to clear, and its attempt (a restart count) names no host.
        const record = parseAttemptRecord(await readJobFile(jobPaths(config.stateDir, a.job).attempt).catch(() => undefined));
        const job = a.job;
        await teardownJob(config, job, a.nodes, jlog, (host) => lsfClear(job, host === job.attempt ? record?.nest : undefined));
        count.reclaimed += 1;
        say(`jobbox: gc: reclaimed ${a.key} (${describeAction(a)}): ${a.reason}`);
      } catch (err) {
        count.failed += 1;
        const why = formatError(err).line.replace(/^jobbox: /, '');
        jlog.error({ err: why }, 'gc: reclaim failed; claim and job dir kept');
        say(`jobbox: gc: could not reclaim ${a.key}, kept for the next run: ${why}`);
      }
    }
  }
  // Start records: a line for each that goes; the many still kept for their owners are counted in the log.
  const status = { removed: 0, kept: 0, failed: 0 };
  for (const r of planStatusGc(options.scheduler, records, answers, nowMs, keepMs)) {
    if (!r.remove) {
      status.kept += 1;
      continue;
    }
    if (options.dryRun) {
      say(`jobbox: gc: would remove the start record ${r.name}: ${r.reason}`);
      continue;
    }
    try {
      await removeStatusFile(statusDir(config.stateDir), r.name);
      status.removed += 1;
      say(`jobbox: gc: removed the start record ${r.name}: ${r.reason}`);
    } catch (err) {
      status.failed += 1;
      say(`jobbox: gc: could not remove the start record ${r.name}: ${formatError(err).line.replace(/^jobbox: /, '')}`);
    }
  }
  log.info({ dryRun: options.dryRun, ...status }, 'gc: start records');
  say(options.dryRun
    ? `jobbox: gc: dry run: would reclaim ${count.reclaimed}, keep ${count.kept}; nothing changed`
    : `jobbox: gc: reclaimed ${count.reclaimed}, kept ${count.kept}, failed ${count.failed}`);
  log.info({ dryRun: options.dryRun, ...count }, 'gc done');
  if (!options.dryRun && config.metricsDir !== '') {
    // The cluster-wide gauges come from here, the one host that looks at every claim and job
    // dir: read again, as the reclaims left them.
    const [claimsNow, dirsNow] = await Promise.all([listClaims(config.portDir), jobDirs(config.stateDir)]);
    const inUse = new Set(claimsNow.map((c) => c.port)).size;
    const containers = dirsNow.reduce((n, d) => n + (d.hostfile === undefined ? 0 : hostfileHosts(d.hostfile)?.length ?? 0), 0);
    const gcFacts = { reclaimed: count.reclaimed, failed: count.failed, containers, portsInUse: inUse, portsFree: config.portRange.last - config.portRange.first + 1 - inUse, nowMs: Date.now() };
    await updateMetrics(config.metricsDir, (s) => recordGc(s, gcFacts)).catch((err: unknown) => log.warn({ err: formatError(err).line }, 'could not update the metrics'));
  }
  return count.failed > 0 || count.unanswered > 0 || status.failed > 0 ? 1 : 0;
}
