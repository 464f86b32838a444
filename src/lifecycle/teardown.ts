// Ending a job: the body of LSF's post-exec (and of the rollback of a failed start). It is
// idempotent and best-effort: "already gone" is success, every node is tried, and it only
// touches this attempt's containers, directory and port claim, so a late post-exec of an
// earlier attempt cannot harm the job's new run.
import { readdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { removeJobDir } from '../exec/jobdir.js';
import type { Job } from '../job/job.js';
import { listClaims, releasePort } from '../ports/allocator.js';
import { psArgv, removeArgv } from '../plan/container.js';
import { jobKey, jobPaths } from '../plan/job-files.js';
import { adminSessions, failures } from './nodes.js';
import { fanOut, type Session } from '../exec/ssh.js';
import { EXIT, JobboxError, printable } from '../errors.js';

async function removeContainers(s: Session, config: Config, job: Job): Promise<number> {
  const listed = await s.run([config.engine, ...psArgv(job)], config.connectTimeoutMs);
  if (listed.code !== 0) throw new JobboxError(`${s.host}: docker ps`, printable(listed.stderr.trim()), job.id, EXIT.transient);
  const ids = listed.stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return 0;
  const removed = await s.run([config.engine, ...removeArgv(ids)], config.startTimeoutMs);
  // A container that vanished between ps and rm is gone, which is what we want.
  if (removed.code !== 0 && !/No such container/i.test(removed.stderr)) {
    throw new JobboxError(`${s.host}: docker rm`, printable(removed.stderr.trim()), ids.join(' '), EXIT.transient);
  }
  return ids.length;
}

/** `hosts`: where containers may exist; a failed start passes only the nodes it ran docker on. */
export async function teardownJob(config: Config, job: Job, log: Logger, hosts = job.hosts.map((h) => h.name)): Promise<void> {
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
    const results = await fanOut(hosts, config.fanout, (h) => removeContainers(sessions.get(h)!, config, job));
    const failed = failures(hosts, results);
    if (failed) throw failed;
    const removed = results.reduce((n, r) => n + (r.status === 'fulfilled' ? r.value : 0), 0);
    await removeJobDir(jobPaths(config.stateDir, job).dir);
    const ports = await releasePort(config.portDir, jobKey(job));
    log.info({ removed, ports }, 'job torn down on every node');
  } finally {
    for (const s of sessions.values()) s.close();
  }
}

/** Attempts of this job (same id and index) that left a claim or a job dir, this one included. */
export async function attemptsOf(config: Config, job: Job): Promise<string[]> {
  const prefix = `${job.id}.${job.index}.`;
  const dirs = await readdir(config.stateDir).catch(() => [] as string[]);
  const claimed = (await listClaims(config.portDir)).map((c) => c.claim);
  const found = [...dirs, ...claimed].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  return [...new Set([job.attempt, ...found])];
}
