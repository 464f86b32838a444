// Starting a job: the body of LSF's pre-exec (and of Slurm's start later). Every node is
// handled in parallel over ssh2; the function returns only when every container's sshd
// accepts the job key with the pinned host key, and on any failure it rolls back what it
// started on every node, so nothing is leaked for a requeue to trip over.
import { randomBytes } from 'node:crypto';
import { lstat } from 'node:fs/promises';
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
import { containerName, imageAccountsArgv, nameArgv, removeArgv, runningArgv, splitHeadOutput, SSHD_VERSION, type NodeFacts } from '../plan/container.js';
import { imageCacheDir, jobKey, jobPaths, OPENSSH_MIN, openSshAtLeast, parseAttemptRecord, parseOpenSsh, sshdLacks, type JobPaths } from '../plan/job-files.js';
import { planJob, type ImageAccounts, type Keys } from './plan.js';
import { adminSessions, failures } from './nodes.js';
import { teardownJob } from './teardown.js';

// Any user who can open a file can flock it, and so hold every start on the node for
// pull_timeout: the lock lives in a directory only root can enter (pull() makes it).
const PULL_LOCK_DIR = '/run/jobbox';
const PULL_LOCK = `${PULL_LOCK_DIR}/pull.lock`;

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

/** `value`: what the command was about (an image, a port, container ids), for the error line. */
async function must(session: Session, argv: string[], timeoutMs: number, value: string, input?: string): Promise<string> {
  const r = await session.run(argv, timeoutMs, input);
  if (r.code !== 0) throw commandFailed(session.host, argv, r, value);
  return r.stdout;
}

// docker's own usage errors (exit 125 with "See 'docker run --help'.") come from argv jobbox
// built: a requeue would build the same argv again, so they are permanent. Its other 125s are
// the daemon's answer (a name conflict, a daemon restarting) and may heal.
const DOCKER_USAGE = /See '[^']*--help'/;

export function commandFailed(host: string, argv: string[], r: Result, value: string): JobboxError {
  const permanent = r.code === 125 && DOCKER_USAGE.test(r.stderr);
  return new JobboxError(`${host}: ${argv.slice(0, 2).join(' ')}`, `exit ${r.code}: ${printable(firstLine(r.stderr))}`, value, permanent ? EXIT.permanent : EXIT.transient);
}

// Whether sshd could listen on the port: bind 0.0.0.0 and [::] (v6-only) with SO_REUSEADDR,
// as sshd does. Any socket holding the port without SO_REUSEADDR blocks sshd, listening or not,
// and one bound but never listened on shows in no `ss` listing; a TIME_WAIT left by an earlier
// job blocks nothing. Held on [::] alone still counts: sshd would start on IPv4 only, and the
// holder could listen there. No IPv6 on the node is fine, as it is for sshd. Nodes need perl
// (Debian's perl-base is Essential).
const BIND_TEST = `use Socket qw(PF_INET PF_INET6 SOCK_STREAM SOL_SOCKET SO_REUSEADDR IPPROTO_IPV6 IPV6_V6ONLY INADDR_ANY IN6ADDR_ANY pack_sockaddr_in pack_sockaddr_in6);
use Errno qw(EADDRINUSE EAFNOSUPPORT EADDRNOTAVAIL);
sub taken {
  my ($family, $addr) = @_;
  my $v6 = $family == PF_INET6;
  my $s;
  if (!socket($s, $family, SOCK_STREAM, 0)) {
    return 0 if $v6 && $! == EAFNOSUPPORT;
    die "socket: $!\\n";
  }
  setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or die "SO_REUSEADDR: $!\\n";
  if ($v6) { setsockopt($s, IPPROTO_IPV6, IPV6_V6ONLY, 1) or die "IPV6_V6ONLY: $!\\n" }
  return 0 if bind($s, $addr);
  return 1 if $! == EADDRINUSE;
  return 0 if $v6 && $! == EADDRNOTAVAIL;
  die "bind: $!\\n";
}
my $line = <STDIN>;
# A copy: pack_sockaddr_in given $1 itself packs port 0.
my ($port) = $line =~ /^(\\d+)$/ or die "port: $line\\n";
print taken(PF_INET, pack_sockaddr_in($port, INADDR_ANY)) || taken(PF_INET6, pack_sockaddr_in6($port, IN6ADDR_ANY)) ? "taken\\n" : "free\\n";
`;

async function probe(session: Session, config: Config, port: number): Promise<Probe> {
  // Not the connect timeout: a dockerd busy extracting a pull answers slowly, and that is no fault.
  const t = config.startTimeoutMs;
  const [devices, bound] = await Promise.all([
    session.run(['find', config.deviceDir, '-maxdepth', '1', '-type', 'c', '-printf', '%f\\n'], t),
    // The port on stdin: in argv, any user of the node could read it in /proc and bind it
    // before the job's sshd does.
    must(session, ['perl', '-e', BIND_TEST], t, String(port), `${port}\n`),
  ]);
  return { devices: devices.code === 0 ? devices.stdout.split('\n').filter(Boolean) : [], listening: bound.trim() !== 'free' };
}

/**
 * Asked only when it matters (the port is taken, or `docker run` failed): a container engine
 * call costs more than the rest of a probe, and a fresh job's name is free.
 */
async function nameHolder(session: Session, config: Config, job: Job, nonce: string): Promise<Holder> {
  const named = await must(session, [config.engine, ...nameArgv(job)], config.startTimeoutMs, containerName(job));
  const [id, state, attempt, label] = named.trim().split(/\s+/);
  const ours = id !== undefined && attempt === job.attempt && label === nonce && state === 'running';
  return { running: ours ? id : undefined, stale: id && !ours ? [id] : [] };
}

/**
 * Starts the node's container, unless this attempt's already runs; a leftover holding the name
 * goes first. `known`: the holder, when the port check asked.
 */
async function startContainer(session: Session, config: Config, job: Job, image: Image, argv: string[], nonce: string, known: Holder | undefined): Promise<void> {
  const t = config.startTimeoutMs;
  if (known?.running) return;
  if (known?.stale.length) await must(session, [config.engine, ...removeArgv(known.stale)], t, known.stale.join(' '));
  const run = await session.run([config.engine, ...argv], t);
  if (run.code === 0) return;
  // Where the port was free the name was not looked at: it may be held by a re-run whose sshd
  // is still starting, or by an earlier attempt's leftover that never listened. Without such a
  // holder, the failure is the run's own.
  const late = known ? undefined : await nameHolder(session, config, job, nonce);
  if (late?.running) return;
  if (!late?.stale.length) throw commandFailed(session.host, [config.engine, ...argv], run, image.ref);
  await must(session, [config.engine, ...removeArgv(late.stale)], t, late.stale.join(' '));
  await must(session, [config.engine, ...argv], t, image.ref);
}

/** Pulls are serialized per node (flock), and a registry failure falls back to the node's copy. */
async function pull(session: Session, config: Config, image: Image, log: Logger): Promise<void> {
  // install -d also closes a directory left more open (by hand, or by an older jobbox).
  await must(session, ['install', '-d', '-m', '0700', PULL_LOCK_DIR], config.connectTimeoutMs, PULL_LOCK_DIR);
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
 * The image's /etc/passwd and /etc/group, which the job's own are merged into, and the release
 * of its sshd, which the sshd_config must fit. Reading them takes a throwaway container, so the
 * output is kept per image id (immutable: a new image is a new id) in a root-owned directory
 * next to the job dirs. An image whose sshd can never serve a job is refused here, at once,
 * rather than by a barrier timeout and a requeue that would never heal.
 */
async function imageAccounts(first: Session, config: Config, image: Image, log: Logger): Promise<ImageAccounts> {
  const id = (await must(first, [config.engine, 'image', 'inspect', '--format', '{{.Id}}', image.ref], config.startTimeoutMs, image.ref)).trim();
  // Named for what it holds: the files of older jobbox releases have no sshd section.
  const cached = /^sha256:[0-9a-f]{64}$/.test(id) ? `${imageCacheDir(config.stateDir)}/${id.slice('sha256:'.length)}.accounts-sshd` : undefined;
  let text: string | undefined;
  if (cached) {
    await makeJobDir(imageCacheDir(config.stateDir));
    text = await readJobFile(cached);
  }
  if (text === undefined) {
    text = await must(first, [config.engine, ...imageAccountsArgv(image)], config.startTimeoutMs, image.ref);
    if (cached) await writeJobFile({ path: cached, content: text, mode: 0o644 });
  }
  const files = splitHeadOutput(text);
  const said = files.get(SSHD_VERSION) ?? '';
  const sshd = parseOpenSsh(said);
  if (!sshd || !openSshAtLeast(sshd, OPENSSH_MIN)) {
    const min = `${OPENSSH_MIN.major}.${OPENSSH_MIN.minor}`;
    const found = sshd ? `OpenSSH ${sshd.major}.${sshd.minor}` : firstLine(said) || '(no answer to sshd -V)';
    throw new JobboxError(`image ${image.alias}`, `needs OpenSSH ${min} or later as /usr/sbin/sshd (SetEnv hands every session the hostfiles)`, found, EXIT.permanent);
  }
  const lacks = sshdLacks(sshd);
  if (lacks.length > 0) log.warn({ image: image.ref, openssh: `${sshd.major}.${sshd.minor}`, lacks }, "the image's sshd is too old for these sshd_config lines; left out");
  return { passwd: files.get('/etc/passwd') ?? '', group: files.get('/etc/group') ?? '', sshd };
}

/** Waits until the node's job sshd logs the owner in with the job key and shows the pinned host key. */
async function barrier(host: string, port: number, job: Job, keys: Keys, config: Config, running: () => Promise<boolean>): Promise<void> {
  const started = Date.now();
  const deadline = started + config.startTimeoutMs;
  const hostKeys = [keys.hostKeyPub.split(/\s+/)[1]!];
  let asked = started;
  for (;;) {
    try {
      const s = await Session.connect({ host, port, username: job.owner.name, privateKey: keys.userKey, hostKeys, timeoutMs: config.connectTimeoutMs });
      s.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new JobboxError(`${host}: job sshd`, `not answering after ${config.startTimeoutMs / 1000} s`, String(port), EXIT.transient);
      }
      // A container whose sshd could not start (someone bound the port after the bind test)
      // has exited: say so now rather than at the deadline. Asked once a second from the
      // second second on, since a healthy sshd answers within milliseconds.
      if (Date.now() - asked >= 1000 && Date.now() - started >= 1000) {
        asked = Date.now();
        if (!(await running())) throw new JobboxError(`${host}: job sshd`, 'its container stopped before sshd answered', String(port), EXIT.transient);
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
  // A dir with this job key that is not this owner's earlier run of the same image is the
  // leftover of another job whose id came back (ids wrap; a post-exec missed a node): it is
  // reclaimed whole, and nothing of it (keys, port, containers) is adopted.
  const record = parseAttemptRecord(await readJobFile(paths.attempt).catch(() => undefined));
  const adopted = record?.uid === job.owner.uid && record.image === image.ref ? record : undefined;
  if (!adopted && (record || (await lstat(paths.dir).catch(() => undefined)))) {
    log.warn({ leftover: record ?? 'no owner record' }, 'the job dir is a leftover of another job with this key; reclaiming it');
    await teardownJob(config, job, log);
  }
  const nonce = adopted?.nonce ?? randomBytes(8).toString('hex');
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
      pulls.then(() => imageAccounts(first, config, image, log)),
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
      holders = await each((s, _host, i) => (probes[i]!.listening ? nameHolder(s, config, job, nonce) : Promise.resolve(undefined)));
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
      accounts, nonce,
      facts: new Map(hosts.map((h, i) => [h, probes[i]!])),
    });
    phase('plan');
    if (plan.dropped.length > 0) log.info({ dropped: plan.dropped }, 'user variables kept out of the container');
    await makeJobDir(paths.dir);
    await Promise.all(plan.files.map(writeJobFile));

    // Each node waits for its own sshd as soon as its container runs, not for the slowest run.
    await each(async (s, host, i) => {
      touched.add(host);
      await startContainer(s, config, job, image, plan.runs[i]!.argv, nonce, holders[i]);
      const running = async () => (await s.run([config.engine, ...runningArgv(job)], config.connectTimeoutMs)).stdout.trim() !== 'false';
      await barrier(host, port, job, keys, config, running).catch(async (err: unknown) => {
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
