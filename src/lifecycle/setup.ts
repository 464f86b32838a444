// Setting a job up: the body of LSF's pre-exec and of the Slurm Prolog on the batch host.
// Every node is handled in parallel over ssh2; setupJob returns only when every container's
// sshd accepts the job key with the pinned host key, and on any failure it rolls back what it
// started on every node, so nothing is left for a requeue to trip over. Its phases:
//   adopt or reclaim the job dir → connect → pull ∥ port (∥ keys, image accounts) → plan →
//   write files → start ∥ barrier, node by node; on failure, teardown of the touched nodes.
import { randomBytes } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { resolveImage } from '../config/image.js';
import { runRef } from '../config/ref.js';
import type { Config, Image } from '../config/types.js';
import { lookupGroupNames } from '../exec/accounts.js';
import { makeJobDir, readJobFile, writeJobFile } from '../exec/jobdir.js';
import type { Session } from '../exec/ssh.js';
import type { Job } from '../job/job.js';
import { allocatePort } from '../ports/allocator.js';
import { cgroupClear } from '../plan/container.js';
import { planJob } from '../plan/job.js';
import { jobKey, jobPaths, parseAttemptRecord, type AttemptRecord, type JobPaths } from '../plan/job-files.js';
import { jobKeys } from './keys.js';
import { awaitSshd, checkEngineCgroups, ensureImage, imageAccounts, joinSlurmCgroups, nameHolder, pinImage, probe, startContainer, type Holder, type Probe } from './node.js';
import { adminSessions, onEvery } from './sessions.js';
import { teardownJob } from './teardown.js';

export interface SetupResult {
  port: number;
  paths: JobPaths;
  /** The image, pinned to the digest every node runs. */
  image: Image;
}

export async function setupJob(config: Config, job: Job, log: Logger): Promise<SetupResult> {
  const image = resolveImage(config, job.queue, job.image);
  const hosts = job.hosts.map((h) => h.name);
  const paths = jobPaths(config.stateDir, job);
  const started = Date.now();
  // Phase times in the debug log: where a slow setup went.
  const phase = (name: string) => log.debug({ phase: name, ms: Date.now() - started }, 'setup phase done');
  const adopted = await adoptOrReclaim(config, job, image, paths, log);
  const nonce = adopted?.nonce ?? randomBytes(8).toString('hex');
  let sessions = new Map<string, Session>();
  // Nodes that may hold a container of this attempt: the rollback must reach exactly these.
  const touched = new Set<string>();
  try {
    sessions = await adminSessions(config, hosts);
    phase('connect');
    const each = <R>(fn: (s: Session, i: number) => Promise<R>) => onEvery(sessions, hosts, config.fanout, fn);

    // The first node pins the image to one digest, and every other node makes sure it holds
    // that digest, while the port is chosen and checked on every node; meanwhile the keys are
    // made, and the image's accounts read as soon as the first node has the image.
    // A re-run of the attempt keeps the digest its running containers have, and a job pinned
    // at submit the digest it was pinned to: every node then checks it holds that one.
    const first = sessions.get(hosts[0]!)!;
    const known = adopted?.digest ?? image.digest;
    const pinned = known ? Promise.resolve({ ...image, digest: known }) : pinImage(first, config, image, log);
    const pulls = pinned.then((p) => each((s, i) => (i === 0 && !known ? Promise.resolve() : ensureImage(s, config, p, !adopted?.digest && image.digest !== undefined))));
    pulls.catch(() => {});
    const engines = job.containment ? each((s) => checkEngineCgroups(s, config)) : Promise.resolve([]);
    engines.catch(() => {});
    const prepared = Promise.all([
      jobKeys(paths),
      // With the digest known, the first node may have to fetch it first, like the others.
      (known ? pulls.then(() => pinned) : pinned).then((p) => imageAccounts(first, config, p, log)),
      lookupGroupNames([job.owner.gid, ...job.owner.gids]),
    ]);
    prepared.catch(() => {});
    const { port, probes, holders } = await choosePort(config, job, nonce, hosts, each, log);
    phase('port');
    const [keys, accounts, groupNames] = await prepared;
    await Promise.all([pulls, engines]);
    phase('pull');
    const run = await pinned;
    log.info({ image: image.ref, digest: run.digest, pinned: adopted?.digest ? 'earlier run' : image.digest ? 'submit' : 'start' }, 'image pinned');

    const plan = planJob({
      config, job, image: run, port, paths, keys, groupNames, accounts, nonce,
      facts: new Map(hosts.map((h, i) => [h, probes[i]!])),
    });
    if (plan.dropped.length > 0) log.info({ dropped: plan.dropped }, 'user variables kept out of the container');
    await makeJobDir(paths.dir);
    await Promise.all(plan.files.map(writeJobFile));
    phase('files');

    // Each node waits for its own sshd as soon as its container runs, not for the slowest run.
    await each(async (s, i) => {
      touched.add(s.host);
      if (job.containment?.scheduler === 'slurm') await joinSlurmCgroups(s, config, job, job.containment.multipleSlurmd, i);
      await startContainer(s, config, job, run, plan.runs[i]!.argv, nonce, holders[i]);
      await awaitSshd(s, config, job, port, keys);
    });
    log.info({ port, image: runRef(run), hosts, ms: Date.now() - started }, 'job started on every node');
    return { port, paths, image: run };
  } catch (err) {
    log.error({ err: err instanceof Error ? err.message : String(err) }, 'setup failed; rolling back');
    for (const s of sessions.values()) s.close();
    sessions.clear();
    await teardownJob(config, job, [...touched], log, (host) => cgroupClear(job, host)).catch((e: unknown) => log.error({ err: String(e) }, 'rollback incomplete'));
    throw err;
  } finally {
    for (const s of sessions.values()) s.close();
  }
}

/**
 * This owner's earlier run of the same attempt with the same image is adopted: its keys, port
 * and containers are used again. A dir with this job key that is anything else is the leftover
 * of another job whose id came back (ids wrap; a teardown missed a node): it is reclaimed
 * whole, and nothing of it is adopted.
 */
async function adoptOrReclaim(config: Config, job: Job, image: Image, paths: JobPaths, log: Logger): Promise<AttemptRecord | undefined> {
  const record = parseAttemptRecord(await readJobFile(paths.attempt).catch(() => undefined));
  if (record?.uid === job.owner.uid && record.image === image.ref) return record;
  if (record || (await lstat(paths.dir).catch(() => undefined))) {
    log.warn({ leftover: record ?? 'no owner record' }, 'the job dir is a leftover of another job with this key; reclaiming it');
    await teardownJob(config, job, job.hosts.map((h) => h.name), log, (host) => cgroupClear(job, host));
  }
  return undefined;
}

/**
 * A port free on every node: claimed in port_dir, then checked with a bind test on each node.
 * A port taken on a node is skipped for another, unless what holds it is this attempt's own
 * sshd (a re-run of the same setup). Also returns each node's facts, and who holds the job's
 * container name where that was asked.
 */
async function choosePort(
  config: Config, job: Job, nonce: string, hosts: string[],
  each: <R>(fn: (s: Session, i: number) => Promise<R>) => Promise<R[]>, log: Logger,
): Promise<{ port: number; probes: Probe[]; holders: (Holder | undefined)[] }> {
  const busy = new Set<number>();
  for (;;) {
    const port = await allocatePort(config.portDir, config.portRange, jobKey(job), busy);
    const probes = await each((s) => probe(s, config, port));
    const holders = await each((s, i) => (probes[i]!.listening ? nameHolder(s, config, job, nonce) : Promise.resolve(undefined)));
    const taken = hosts.filter((_, i) => probes[i]!.listening && !holders[i]!.running);
    if (taken.length === 0) return { port, probes, holders };
    busy.add(port);
    log.warn({ port, nodes: taken }, 'port in use on a node; taking another');
  }
}
