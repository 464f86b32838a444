// Setting a job up: the body of LSF's pre-exec and of the Slurm Prolog on the batch host.
// Every node is handled in parallel over ssh2; setupJob returns only when every container's
// sshd accepts the job key with the pinned host key, and on any failure it rolls back what it
// started on every node, so nothing is left for a requeue to trip over. Its phases:
//   adopt or reclaim the job dir → connect ∥ pin → port (∥ keys, image accounts) → plan →
//   write files → start (a node without the digest pulls it) ∥ barrier, node by node; on
//   failure, teardown of the touched nodes.
// Each node's steps are timed, and the attempt's outcome is kept for the owner (plan/status.ts).
import { randomBytes } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { resolveImage } from '../config/image.js';
import { runRef } from '../config/ref.js';
import type { Config, Image } from '../config/types.js';
import { lookupGroupNames } from '../exec/accounts.js';
import { registryDigest } from '../exec/registry.js';
import { makeJobDir, makeStatusDir, readJobFile, writeJobFile } from '../exec/jobdir.js';
import { updateMetrics } from '../exec/metrics.js';
import { formatError, JobboxError } from '../errors.js';
import type { Session } from '../exec/ssh.js';
import type { Job } from '../job/job.js';
import { allocatePort } from '../ports/allocator.js';
import { cgroupClear, gresDevices } from '../plan/container.js';
import { planJob } from '../plan/job.js';
import { recordStart } from '../plan/metrics.js';
import { jobKey, jobPaths, parseAttemptRecord, type AttemptRecord, type JobPaths } from '../plan/job-files.js';
import type { Probe } from '../plan/node.js';
import { startRecord, statusDir, statusFile, Timeline, type PinnedBy, type StartFacts, type StartRecord } from '../plan/status.js';
import { jobKeys } from './keys.js';
import { awaitSshd, checkCgroupV1, checkGpus, DEVICES_DENIED_PROBLEM, ensureImage, imageAccounts, joinSlurmCgroups, nameHolder, pinImage, probe, pullImage, startContainer, type Holder } from './node.js';
import { adminSessions, NodesError, onEvery } from './sessions.js';
import { teardownJob } from './teardown.js';

export interface SetupResult {
  port: number;
  paths: JobPaths;
  /** The image, pinned to the digest every node runs. */
  image: Image;
}

export async function setupJob(config: Config, job: Job, log: Logger): Promise<SetupResult> {
  const timeline = new Timeline();
  const facts: StartFacts = { image: job.image ?? "the queue's default" };
  try {
    const result = await startJob(config, job, log, timeline, facts);
    await keepRecord(config, job, startRecord(job, timeline, facts), log);
    return result;
  } catch (err) {
    const { line, exitCode } = formatError(err);
    const nodes = err instanceof NodesError ? err.nodes : undefined;
    await keepRecord(config, job, startRecord(job, timeline, facts, { line, exitCode, ...(nodes && { nodes }) }), log);
    throw err;
  }
}

/**
 * The owner's copy of how the attempt went, and its count in the metrics. Best effort: the start's outcome is the scheduler's
 * business, and a record that cannot be written is only logged.
 */
async function keepRecord(config: Config, job: Job, record: StartRecord, log: Logger): Promise<void> {
  await Promise.all([
    (async () => {
      await makeStatusDir(statusDir(config.stateDir));
      await writeJobFile(statusFile(config.stateDir, record, job.owner));
    })().catch((err: unknown) => log.warn({ err: formatError(err).line }, 'could not keep the start record for jobbox status')),
    // The same record, counted for Prometheus (metrics_dir).
    updateMetrics(config.metricsDir, (s) => recordStart(s, record)).catch((err: unknown) => log.warn({ err: formatError(err).line }, 'could not update the metrics')),
  ]);
}

async function startJob(config: Config, job: Job, log: Logger, timeline: Timeline, facts: StartFacts): Promise<SetupResult> {
  const image = resolveImage(config, job.queue, job.image);
  const queue = config.queues.get(job.queue)!;
  facts.image = image.ref;
  const hosts = job.hosts.map((h) => h.name);
  const paths = jobPaths(config.stateDir, job);
  const started = Date.now();
  // Phase times in the debug log: where a slow setup went.
  const phase = (name: string) => log.debug({ phase: name, ms: Date.now() - started }, 'setup phase done');
  const adopted = await adoptOrReclaim(config, job, image, paths, log);
  const nonce = adopted?.nonce ?? randomBytes(8).toString('hex');
  let sessions = new Map<string, Session>();
  // Nodes that may hold a container of this attempt: the rollback must reach exactly these. An
  // adopted attempt's earlier run may have left one on any node.
  const touched = new Set<string>(adopted ? hosts : []);
  const known = adopted?.digest ?? image.digest;
  const asked = known ? Promise.resolve(undefined) : tagDigest(config, image, log);
  try {
    // The first port is probed on each node as soon as its session is up, while the others
    // still connect.
    const firstPort = await allocatePort(config.portDir, config.portRange, jobKey(job), new Set());
    const early = new Map<string, Promise<Probe>>();
    const portTime = <R>(s: Session, step: () => Promise<R>) => timeline.time(s.host, 'port', step);
    sessions = await adminSessions(config, hosts, (h, step) => timeline.time(h, 'connect', step), (s) => {
      const probed = portTime(s, () => probe(s, config, job, firstPort));
      probed.catch(() => {});
      early.set(s.host, probed);
    });
    phase('connect');
    const each = <R>(fn: (s: Session, i: number) => Promise<R>) => onEvery(sessions, hosts, config.fanout, fn);
    const imageOn = <R>(s: Session, step: () => Promise<R>) => timeline.time(s.host, 'image', step);

    // The image is pinned to one digest: the one it was pinned to at submit, the one a re-run's
    // containers run, else the tag's, asked of the registry while the nodes were connected (one
    // manifest request), else the one the first node's pull prints. A node that holds that
    // digest is asked nothing about it before its docker run (`--pull never`); one that lacks it
    // pulls it when its run says so (pull_policy always: every node pulls it first). Meanwhile
    // the port is chosen and checked on every node, the keys are made, and the image's accounts
    // read: from the cache kept per digest, else in a throwaway container on the first node.
    const first = sessions.get(hosts[0]!)!;
    const pinned = (async () => {
      const digest = known ?? (await asked);
      return digest ? { image: { ...image, digest }, onFirst: false } : { image: await imageOn(first, () => pinImage(first, config, image, log)), onFirst: true };
    })();
    const pinnedBy = (onFirst: boolean): PinnedBy => (adopted?.digest ? 'earlier run' : image.digest ? 'submit' : onFirst ? 'first node' : 'registry');
    // Kept as soon as it is known: a node that then fails its pull still shows what it was to run.
    pinned.then((p) => Object.assign(facts, { ...(p.image.digest && { digest: p.image.digest }), pinnedBy: pinnedBy(p.onFirst) }), () => {});
    const atSubmit = !adopted?.digest && image.digest !== undefined;
    let firstHolds: Promise<void> | undefined;
    const firstReady = () => (firstHolds ??= pinned.then((p) => (p.onFirst ? undefined : imageOn(first, () => ensureImage(first, config, p.image, atSubmit)))));
    const pulls = config.pullPolicy === 'always' ? pinned.then((p) => each((s, i) => (i === 0 ? firstReady() : imageOn(s, () => pullImage(s, config, p.image, atSubmit))))) : Promise.resolve([]);
    pulls.catch(() => {});
    const prepared = Promise.all([
      jobKeys(paths),
      pinned.then((p) => imageAccounts(first, config, p.image, log, firstReady)),
      lookupGroupNames([job.owner.gid, ...job.owner.gids]),
    ]);
    prepared.catch(() => {});
    // The job files need no node's facts: they are written while the nodes check the port, for
    // the first port claimed. Where a node has it taken (rare), they are written again for the next.
    const writeFiles = async (port: number) => {
      const [[keys, accounts, groupNames], { image: run }] = await Promise.all([prepared, pinned]);
      const { files } = planJob({ config, job, image: run, port, paths, keys, groupNames, accounts, nonce, facts: new Map() });
      await makeJobDir(paths.dir);
      await Promise.all(files.map(writeJobFile));
    };
    const written = writeFiles(firstPort);
    written.catch(() => {});
    const firstClaim = { port: firstPort, probes: each((s) => early.get(s.host)!) };
    const { port, probes, holders } = await choosePort(config, job, nonce, hosts, (fn) => each((s, i) => portTime(s, () => fn(s, i))), log, firstClaim);
    facts.port = port;
    if (job.containment) hosts.forEach((h, i) => checkCgroupV1(h, probes[i]!));
    // Slurm's GPU indices become device numbers by what slurmd says on each node.
    const placed: Job = { ...job, hosts: job.hosts.map((h, i) => (h.gpus ? { ...h, gpus: gresDevices(config, h.name, h.gpus, probes[i]!.gres) } : h)) };
    placed.hosts.forEach((h, i) => checkGpus(config, queue, h, probes[i]!));
    phase('port');
    const [keys, accounts, groupNames] = await prepared;
    await pulls;
    phase('image');
    const { image: run, onFirst } = await pinned;
    log.info({ image: image.ref, digest: run.digest, pinned: pinnedBy(onFirst) }, 'image pinned');

    const plan = planJob({
      config, job: placed, image: run, port, paths, keys, groupNames, accounts, nonce,
      facts: new Map(hosts.map((h, i) => [h, probes[i]!])),
    });
    if (plan.dropped.length > 0) log.info({ dropped: plan.dropped }, 'user variables kept out of the container');
    await written;
    if (port !== firstPort) await writeFiles(port);
    phase('files');

    // Each node waits for its own sshd as soon as its container runs, not for the slowest run.
    await each(async (s, i) => {
      touched.add(s.host);
      await timeline.time(s.host, 'start', async () => {
        const pull = () => imageOn(s, () => pullImage(s, config, run, atSubmit));
        // An engine down at the run made nothing, unless an earlier run of this attempt did, or
        // the Prolog made the job's cpusets there (the rollback clears them).
        const untouched = () => !adopted && job.containment?.scheduler !== 'slurm' && touched.delete(s.host);
        const start = () => startContainer(s, config, job, run, plan.runs[i]!.argv, nonce, holders[i], pull, untouched);
        const containment = job.containment;
        if (containment?.scheduler !== 'slurm') return start();
        const join = () => joinSlurmCgroups(s, config, job, containment.multipleSlurmd, i, probes[i]!);
        await join();
        // slurmstepd denies the job the node's other GPUs when it makes the job's cgroups, which
        // may be after the join: then mknod is given back again, and the run tried once more.
        await start().catch(async (err: unknown) => {
          if (!(err instanceof JobboxError && err.problem.includes(DEVICES_DENIED_PROBLEM))) throw err;
          await join();
          await start();
        });
      });
      await timeline.time(s.host, 'sshd', () => awaitSshd(s, config, job, port, keys));
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
 * The digest the image's tag names in its registry now, by jobbox's own registry client, or
 * undefined: a registry it cannot ask (one that wants credentials, or a certificate node does
 * not trust) or that does not answer leaves the pin to the first node's pull, whose own
 * fallbacks then hold. Never fails the setup.
 */
async function tagDigest(config: Config, image: Image, log: Logger): Promise<string | undefined> {
  try {
    return await registryDigest(config, image.ref);
  } catch (err) {
    log.debug({ image: image.ref, err: err instanceof Error ? err.message : String(err) }, 'the registry did not name the digest; the first node\'s pull pins it');
    return undefined;
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
 * A port free on every node: claimed in port_dir, then checked with a bind test on each node
 * (`first`: the first claim, its probes already under way). A port taken on a node is skipped
 * for another, unless what holds it is this attempt's own sshd (a re-run of the same setup).
 * Also returns each node's facts, and who holds the job's container name where that was asked.
 */
async function choosePort(
  config: Config, job: Job, nonce: string, hosts: string[],
  each: <R>(fn: (s: Session, i: number) => Promise<R>) => Promise<R[]>, log: Logger,
  first: { port: number; probes: Promise<Probe[]> },
): Promise<{ port: number; probes: Probe[]; holders: (Holder | undefined)[] }> {
  const busy = new Set<number>();
  let { port, probes: probing } = first;
  for (;;) {
    const probes = await probing;
    const holders = await each((s, i) => (probes[i]!.listening ? nameHolder(s, config, job, nonce) : Promise.resolve(undefined)));
    const taken = hosts.filter((_, i) => probes[i]!.listening && !holders[i]!.running);
    if (taken.length === 0) return { port, probes, holders };
    busy.add(port);
    log.warn({ port, nodes: taken }, 'port in use on a node; taking another');
    port = await allocatePort(config.portDir, config.portRange, jobKey(job), busy);
    const next = port;
    probing = each((s) => probe(s, config, job, next));
  }
}
