// Tearing a job down: the body of LSF's post-exec, the Slurm Epilog, gc's reclaim, and the
// rollback of a failed setup. It is idempotent and best-effort: "already gone" is success,
// every node is tried, and it touches only this attempt's containers, directory and port
// claim, so a late post-exec of an earlier attempt cannot harm the job's new run.
import { readdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { removeJobDir } from '../exec/jobdir.js';
import type { Session } from '../exec/ssh.js';
import type { Attempt } from '../job/job.js';
import { listClaims, releasePort } from '../ports/allocator.js';
import { jobKey, jobPaths } from '../plan/job-files.js';
import type { CgroupClear } from '../plan/container.js';
import { clearCgroups, containerUsage, removeContainers, type Usage } from './node.js';
import { adminSessions, onEvery } from './sessions.js';

/**
 * Returns what each node's container used, where it could be read. `hosts`: where containers of the attempt may exist; a failed setup passes only the nodes it
 * ran docker on. `clear`: what is left of the job's cgroups on a node (plan/container.ts
 * cgroupClear), cleared after its containers.
 */
export async function teardownJob(
  config: Config, attempt: Attempt, hosts: string[], log: Logger, clear?: (host: string) => CgroupClear | undefined,
): Promise<Map<string, Usage>> {
  // Unreachable nodes keep the port claim and job dir, so `jobbox gc` can finish later
  // instead of handing the port to a new job while a container still listens on it.
  let sessions = new Map<string, Session>();
  try {
    if (hosts.length > 0) sessions = await adminSessions(config, hosts);
  } catch (err) {
    log.error({ err: String(err) }, 'teardown: nodes unreachable; keeping the claim for gc');
    throw err;
  }
  try {
    const results = await onEvery(sessions, hosts, config.fanout, async (s) => {
      const usage = await containerUsage(s, config, attempt).catch(() => undefined);
      try {
        return { removed: await removeContainers(s, config, attempt), usage };
      } finally {
        // Also after a failed removal: a dir still in use stays, and a requeue that lands here
        // with other cores must not find this attempt's cpusets.
        const dirs = clear?.(s.host);
        if (dirs) await clearCgroups(s, config, dirs);
      }
    });
    await removeJobDir(jobPaths(config.stateDir, attempt).dir);
    const ports = await releasePort(config.portDir, jobKey(attempt));
    const usage = new Map(hosts.flatMap((h, i) => (results[i]!.usage ? [[h, results[i]!.usage!] as const] : [])));
    log.info({ removed: results.reduce((n, r) => n + r.removed, 0), ports, usage: Object.fromEntries(usage) }, 'job torn down on every node');
    return usage;
  } finally {
    for (const s of sessions.values()) s.close();
  }
}

/** Attempts of this job (same id and index) that left a claim or a job dir, this one included. */
export async function attemptsOf(config: Config, attempt: Attempt): Promise<string[]> {
  const prefix = `${attempt.id}.${attempt.index}.`;
  const dirs = await readdir(config.stateDir).catch(() => [] as string[]);
  const claimed = (await listClaims(config.portDir)).map((c) => c.claim);
  const found = [...dirs, ...claimed].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  return [...new Set([attempt.attempt, ...found])];
}

/**
 * `jobbox: job 123: cpu 812 s, peak memory 3.1 GB in all (node1: 400 s, 1.6 GB; node2: …)`:
 * what the job's containers used, for the post-exec and the Epilog to print. undefined when
 * nothing could be read.
 */
export function usageLine(jobId: string, usage: Map<string, Usage>): string | undefined {
  if (usage.size === 0) return undefined;
  const gb = (bytes: number) => (bytes < 1024 ** 3 ? `${Math.round(bytes / 1024 ** 2)} MB` : `${(bytes / 1024 ** 3).toFixed(1)} GB`);
  const s = (seconds: number) => `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const all = [...usage.values()];
  const nodes = [...usage].map(([host, u]) => `${host}: ${s(u.cpuSeconds)}, ${gb(u.peakBytes)}`).join('; ');
  return `jobbox: job ${jobId}: cpu ${s(all.reduce((n, u) => n + u.cpuSeconds, 0))}, peak memory ${gb(all.reduce((n, u) => n + u.peakBytes, 0))} in all (${nodes})`;
}
