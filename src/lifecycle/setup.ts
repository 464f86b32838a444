// Starting a job: the body of LSF's pre-exec (and of Slurm's start later). Every node is
// handled in parallel over ssh2; the function returns only when every container's sshd
// accepts the job key with the pinned host key, and on any failure it rolls back what it
// started on every node, so nothing is leaked for a requeue to trip over.
import type { Logger } from 'pino';
import ssh2 from 'ssh2';
import { resolveImage } from '../config/image.js';
import type { Config, Image } from '../config/types.js';
import { EXIT, JobboxError, printable } from '../errors.js';
import { lookupGroupNames } from '../exec/accounts.js';
import { makeJobDir, readJobFile, writeJobFile } from '../exec/jobdir.js';
import { type Result, Session, fanOut } from '../exec/ssh.js';
import type { Job } from '../job/job.js';
import { allocatePort } from '../ports/allocator.js';
import { containerName, imageAccountsArgv, nameArgv, removeArgv, splitHeadOutput, type NodeFacts } from '../plan/container.js';
import { imageCacheDir, jobKey, jobPaths, type JobPaths } from '../plan/job-files.js';
import { planJob, type Keys } from './plan.js';
import { adminSessions, failures } from './nodes.js';
import { teardownJob } from './teardown.js';

const PULL_LOCK = '/run/jobbox-pull.lock';

interface Probe extends NodeFacts {
  /** Something on the node holds the job's port. */
  listening: boolean;
}

/** Who holds the job's container name on a node. */
interface Holder {
  /** This attempt's container, already running from an earlier run of the same pre-exec. */
  running: string | undefined;
  /** Containers holding the job's name that must go first. */
  stale: string[];
}

/** The line that says what went wrong: docker puts usage hints after it. */
export function firstLine(stderr: string): string {
  return stderr.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
}

async function must(session: Session, argv: string[], timeoutMs: number): Promise<string> {
  const r = await session.run(argv, timeoutMs);
  if (r.code !== 0) throw commandFailed(session.host, argv, r);
  return r.stdout;
}

function commandFailed(host: string, argv: string[], r: Result): JobboxError {
  return new JobboxError(`${host}: ${argv.slice(0, 2).join(' ')}`, `exit ${r.code}: ${printable(firstLine(r.stderr))}`, argv.at(-1) ?? '', EXIT.transient);
}

async function probe(session: Session, config: Config, port: number): Promise<Probe> {
  // Not the connect timeout: a dockerd busy extracting a pull answers slowly, and that is no fault.
  const t = config.startTimeoutMs;
  const [devices, listening] = await Promise.all([
    session.run(['find', config.deviceDir, '-maxdepth', '1', '-type', 'c', '-printf', '%f\\n'], t),
    // Any socket on the port, not only listeners: a connection's local port blocks sshd's bind too.
    must(session, ['ss', '-Htan', `sport = :${port}`], t),
  ]);
  return { devices: devices.code === 0 ? devices.stdout.split('\n').filter(Boolean) : [], listening: listening.trim() !== '' };
}

/**
 * Asked only when it matters (the port is taken, or `docker run` failed): a container engine
 * call costs more than the rest of a probe, and a fresh job's name is free.
 */
async function nameHolder(session: Session, config: Config, job: Job): Promise<Holder> {
  const named = await must(session, [config.engine, ...nameArgv(job)], config.startTimeoutMs);
  const [id, state, attempt] = named.trim().split(/\s+/);
  const ours = id !== undefined && attempt === job.attempt && state === 'running';
  return { running: ours ? id : undefined, stale: id && !ours ? [id] : [] };
}

/**
 * Starts the node's container, unless this attempt's already runs; a leftover holding the name
 * goes first. `known`: the holder, when the port check asked.
 */
async function startContainer(session: Session, config: Config, job: Job, argv: string[], known: Holder | undefined): Promise<void> {
  const t = config.startTimeoutMs;
  if (known?.running) return;
  if (known?.stale.length) await must(session, [config.engine, ...removeArgv(known.stale)], t);
  const run = await session.run([config.engine, ...argv], t);
  if (run.code === 0) return;
  // Where the port was free the name was not looked at: it may be held by a re-run whose sshd
  // is still starting, or by an earlier attempt's leftover that never listened. Without such a
  // holder, the failure is the run's own.
  const late = known ? undefined : await nameHolder(session, config, job);
  if (late?.running) return;
  if (!late?.stale.length) throw commandFailed(session.host, [config.engine, ...argv], run);
  await must(session, [config.engine, ...removeArgv(late.stale)], t);
  await must(session, [config.engine, ...argv], t);
}

/** Pulls are serialized per node (flock), and a registry failure falls back to the node's copy. */
async function pull(session: Session, config: Config, image: Image, log: Logger): Promise<void> {
  const pulled = await session.run(
    ['flock', '-w', String(config.pullTimeoutMs / 1000), PULL_LOCK, config.engine, 'pull', '--quiet', image.ref],
    config.pullTimeoutMs + 5000,
  );
  if (pulled.code === 0) return;
  const local = await session.run([config.engine, 'image', 'inspect', '--format', '{{.Id}}', image.ref], config.connectTimeoutMs);
  const reason = firstLine(pulled.stderr);
  if (local.code !== 0) {
    throw new JobboxError(`${session.host}: pull`, `registry failed and no local copy (${printable(reason)})`, image.ref, EXIT.transient);
  }
  log.warn({ node: session.host, image: image.ref, reason }, 'pull failed; using the local copy');
  process.stderr.write(`jobbox: ${session.host}: pull failed, using the local copy: ${image.ref}\n`);
}

async function jobKeys(paths: JobPaths): Promise<Keys> {
  // A re-run of the same attempt keeps its keys: its containers may already serve them.
  const [userKey, userKeyPub, hostKey, hostKeyPub] = await Promise.all(
    [paths.userKey, paths.userKeyPub, paths.hostKey, paths.hostKeyPub].map(readJobFile),
  );
  if (userKey && userKeyPub && hostKey && hostKeyPub) return { userKey, userKeyPub, hostKey, hostKeyPub };
  const user = ed25519KeyPair('jobbox-user');
  const host = ed25519KeyPair('jobbox-host');
  return { userKey: user.private, userKeyPub: user.public, hostKey: host.private, hostKeyPub: host.public };
}

/**
 * A new ed25519 key pair in OpenSSH format. ssh2's generator strips leading zero bytes off the
 * public key, so one key in 256 comes out 31 bytes long, which neither ssh2 nor OpenSSH can
 * load (mscdex/ssh2#1513): such a job's sshd has no host key and the barrier never passes.
 * Draw again until both halves parse.
 */
export function ed25519KeyPair(comment: string): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
  }
}

/**
 * The image's /etc/passwd and /etc/group, which the job's own are merged into. Reading them
 * takes a throwaway container, so the text is kept per image id (immutable: a new image is a
 * new id) in a root-owned directory next to the job dirs.
 */
async function imageAccounts(first: Session, config: Config, image: Image): Promise<Map<string, string>> {
  const id = (await must(first, [config.engine, 'image', 'inspect', '--format', '{{.Id}}', image.ref], config.startTimeoutMs)).trim();
  const cached = /^sha256:[0-9a-f]{64}$/.test(id) ? `${imageCacheDir(config.stateDir)}/${id.slice('sha256:'.length)}` : undefined;
  if (cached) {
    await makeJobDir(imageCacheDir(config.stateDir));
    const text = await readJobFile(cached);
    if (text !== undefined) return splitHeadOutput(text);
  }
  const text = await must(first, [config.engine, ...imageAccountsArgv(image)], config.startTimeoutMs);
  if (cached) await writeJobFile({ path: cached, content: text, mode: 0o644 });
  return splitHeadOutput(text);
}

/** Waits until the node's job sshd logs the owner in with the job key and shows the pinned host key. */
async function barrier(host: string, port: number, job: Job, keys: Keys, config: Config): Promise<void> {
  const deadline = Date.now() + config.startTimeoutMs;
  const hostKeys = [keys.hostKeyPub.split(/\s+/)[1]!];
  for (;;) {
    try {
      const s = await Session.connect({ host, port, username: job.owner.name, privateKey: keys.userKey, hostKeys, timeoutMs: config.connectTimeoutMs });
      s.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new JobboxError(`${host}: job sshd`, `not answering after ${config.startTimeoutMs / 1000} s`, String(port), EXIT.transient);
      }
      // sshd listens a few ms after docker run returns: a refused connect costs little, so retry soon.
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export interface SetupResult {
  port: number;
  paths: JobPaths;
}

export async function setupJob(config: Config, job: Job, log: Logger): Promise<SetupResult> {
  const image = resolveImage(config, job.queue, job.image);
  const hosts = job.hosts.map((h) => h.name);
  const paths = jobPaths(config.stateDir, job);
  const started = Date.now();
  // Phase times in the debug log: where a slow start went (bench P1 reads the same).
  const phase = (name: string) => log.debug({ phase: name, ms: Date.now() - started }, 'start phase done');
  let sessions = new Map<string, Session>();
  // Nodes that may hold a container of this attempt: the rollback must reach exactly these.
  const touched = new Set<string>();
  try {
    sessions = await adminSessions(config, hosts);
    phase('connect');
    const first = sessions.get(hosts[0]!)!;
    const each = <R>(fn: (s: Session, host: string, i: number) => Promise<R>) =>
      fanOut(hosts, config.fanout, (h, i) => fn(sessions.get(h)!, h, i)).then((results) => {
        const failed = failures(hosts, results);
        if (failed) throw failed;
        return results.map((r) => (r as PromiseFulfilledResult<R>).value);
      });

    // Pull everywhere while the port is chosen and checked on every node; meanwhile the keys
    // are made, and the image's accounts read as soon as the first node has the image.
    const pulls = each((s) => pull(s, config, image, log));
    const prepared = Promise.all([
      jobKeys(paths),
      pulls.then(() => imageAccounts(first, config, image)),
      lookupGroupNames([job.owner.gid, ...job.owner.gids]),
    ]);
    prepared.catch(() => {});
    const busy = new Set<number>();
    let port: number;
    let probes: Probe[];
    // Per node, who holds the job's name, where it was asked (the port was taken there).
    let holders: (Holder | undefined)[];
    for (;;) {
      port = await allocatePort(config.portDir, config.portRange, jobKey(job), busy);
      const p = port;
      probes = await each((s) => probe(s, config, p));
      // A taken port may be this attempt's own sshd (a re-run of this pre-exec).
      holders = await each((s, _host, i) => (probes[i]!.listening ? nameHolder(s, config, job) : Promise.resolve(undefined)));
      const taken = hosts.filter((_, i) => probes[i]!.listening && !holders[i]!.running);
      if (taken.length === 0) break;
      busy.add(port);
      log.warn({ port, nodes: taken }, 'port in use on a node; taking another');
    }
    phase('port');
    const [keys, accounts, groupNames] = await prepared;
    phase('pull');
    const plan = planJob({
      config, job, image, port, paths, keys, groupNames,
      accounts: { passwd: accounts.get('/etc/passwd') ?? '', group: accounts.get('/etc/group') ?? '' },
      facts: new Map(hosts.map((h, i) => [h, probes[i]!])),
    });
    phase('plan');
    if (plan.dropped.length > 0) log.info({ dropped: plan.dropped }, 'user variables kept out of the container');
    await makeJobDir(paths.dir);
    await Promise.all(plan.files.map(writeJobFile));

    // Each node waits for its own sshd as soon as its container runs, not for the slowest run.
    await each(async (s, host, i) => {
      touched.add(host);
      await startContainer(s, config, job, plan.runs[i]!.argv, holders[i]);
      await barrier(host, port, job, keys, config).catch(async (err: unknown) => {
        // The container's own last words say why its sshd never answered.
        const logs = await s.run([config.engine, 'logs', '--tail', '3', containerName(job)], config.connectTimeoutMs);
        const last = `${logs.stdout}\n${logs.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean).at(-1);
        throw last && err instanceof JobboxError ? new JobboxError(err.subject, `${err.problem} (container: ${printable(last)})`, err.value, err.exitCode) : err;
      });
    });
    log.info({ port, image: image.ref, hosts, ms: Date.now() - started }, 'job started on every node');
    return { port, paths };
  } catch (err) {
    log.error({ err: err instanceof Error ? err.message : String(err) }, 'start failed; rolling back');
    for (const s of sessions.values()) s.close();
    sessions.clear();
    await teardownJob(config, job, log, [...touched]).catch((e: unknown) => log.error({ err: String(e) }, 'rollback incomplete'));
    throw err;
  } finally {
    for (const s of sessions.values()) s.close();
  }
}
