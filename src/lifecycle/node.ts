// What a setup and a teardown do on one node, each step over the node's admin session with
// argv from plan/. lifecycle/setup.ts and teardown.ts run them on every node of a job at once.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { BARRIER_CHECK_MS, BARRIER_FIRST_RETRY_MS, BARRIER_RETRY_MS, PULL_SLACK_MS } from '../config/defaults.js';
import type { Config, Image, Queue } from '../config/types.js';
import { EXIT, JobboxError, printable } from '../errors.js';
import { makeJobDir, readJobFile, writeJobFile } from '../exec/jobdir.js';
import { Session } from '../exec/ssh.js';
import type { Attempt, Host, Job } from '../job/job.js';
import { containerName, imageAccountsArgv, missingGpus, type CgroupClear, nameArgv, psArgv, removeArgv, runningArgv, splitHeadOutput, SSHD_VERSION } from '../plan/container.js';
import type { ImageAccounts, Keys } from '../plan/job.js';
import { imageCacheDir, OPENSSH_MIN, openSshAtLeast, parseOpenSsh, sshdLacks } from '../plan/job-files.js';
import { cgroupCleanupArgv, cpusetArgv, mknodArgv, imageIdArgv, localDigest, lockDirArgv, logsArgv, parseProbe, probeArgv, type Probe, pullArgv, pulledDigest, repoDigestsArgv, usageArgv } from '../plan/node.js';
import { DIGEST, repoOf, runRef } from '../config/ref.js';
import { slurmExternTask } from '../scheduler/slurm.js';
import { DAEMON_ANSWER, dialect, strangeAnnotations } from '../plan/engine.js';
import type { Result } from '../result.js';

/** Who holds the job's container name on a node. */
export interface Holder {
  /** This attempt's container, already running from an earlier run of the same setup. */
  running: string | undefined;
  /** Containers holding the job's name that must go first. */
  stale: string[];
}

/** The line that says what went wrong: docker puts usage hints after it. */
export function firstLine(stderr: string): string {
  return lines(stderr)[0] ?? '';
}

/** A command's output, as its non-blank lines, trimmed. */
export function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** `value`: what the command was about (an image, a port, container ids), for the error line. */
async function must(session: Session, argv: string[], timeoutMs: number, value: string, input?: string): Promise<string> {
  const r = await session.run(argv, timeoutMs, input);
  if (r.code !== 0) throw commandFailed(session.host, argv, r, value);
  return r.stdout;
}

// docker's own usage errors (exit 125, "unknown flag: --x", with a hint to --help) come from
// argv jobbox built: a requeue would build the same argv again, so they are permanent. The
// daemon's answers (a name conflict, a missing bind source, a daemon down) may heal,
// though docker prints the same hint after them too (docker 28, the testbed's, does). The
// hint reads "See 'docker run --help'." in older releases, "Run 'docker run --help' for more
// information" in newer ones.
const HELP_HINT = /(?:See|Run) '[^']*--help'/;

// runc could not give the container its device rules below the job's cgroups: the scheduler
// denies the job a device (Slurm's ConstrainDevices; see joinSlurmCgroups). Another attempt
// would meet the same denial. Said first, before runc's long line is cut.
const DEVICES_DENIED = /devices\.allow: operation not permitted/;
export const DEVICES_DENIED_PROBLEM = 'the job\'s cgroups deny a device rule of the container';

export function commandFailed(host: string, argv: string[], r: Result, value: string): JobboxError {
  const subject = `${host}: ${argv.slice(0, 2).join(' ')}`;
  if (DEVICES_DENIED.test(r.stderr)) return new JobboxError(subject, `exit ${r.code}: ${DEVICES_DENIED_PROBLEM} (${printable(firstLine(r.stderr))})`, value);
  const permanent = r.code === 125 && HELP_HINT.test(r.stderr) && !DAEMON_ANSWER.test(r.stderr);
  return new JobboxError(subject, `exit ${r.code}: ${printable(firstLine(r.stderr))}`, value, permanent ? EXIT.permanent : EXIT.transient);
}

export async function probe(session: Session, config: Config, job: Job, port: number): Promise<Probe> {
  const argv = probeArgv(config, config.queues.get(job.queue)!, job.containment?.scheduler === 'slurm');
  // Not the connect timeout: a dockerd busy extracting a pull answers slowly, and that is no fault.
  return parseProbe(await must(session, argv, config.startTimeoutMs, String(port), `${port}\n`));
}

/** The node must have every GPU the scheduler gave the job there: a device missing from gpu_dir is a config that no requeue mends. */
export function checkGpus(config: Config, queue: Queue, host: Host, probe: Probe): void {
  const missing = missingGpus(queue, host, probe.gpuDevices ?? []);
  if (missing.length > 0) {
    throw new JobboxError(`${host.name}: gpu`, `allocated by the scheduler, but not a character device in ${config.gpuDir} there`, missing.join(' '), EXIT.permanent);
  }
}

/**
 * For a job whose containers join its scheduler's cgroups: the node must be on cgroup v1, the
 * only tree jobbox places them in today (docs/cgroups.md). Refused at once, as permanent, where it
 * is not: a container outside the job's cgroup would escape its limits and accounting, so there
 * is no fallback. The engine's driver is judged by its own run (systemdDriver).
 */
export function checkCgroupV1(host: string, probe: Probe): void {
  if (probe.cgroupFs !== 'tmpfs') {
    throw new JobboxError(`${host}: cgroups`, 'a job\'s containers join its cgroups, which needs cgroup v1 (the filesystem at /sys/fs/cgroup)', probe.cgroupFs, EXIT.permanent);
  }
}

/**
 * Before the node's docker run: the job's cpuset cgroups, from slurmd's root down to its extern
 * step's task (plan/node.ts cpusetArgv); on a node with GPUs, mknod of them given back on the
 * job's device cgroups, which ConstrainDevices denies (mknodArgv; every queue's jobs need it).
 */
export async function joinSlurmCgroups(session: Session, config: Config, job: Job, multipleSlurmd: boolean, index: number, probe: Probe): Promise<void> {
  const host = job.hosts[index]!;
  const levels = slurmExternTask(job, multipleSlurmd, index);
  await must(session, cpusetArgv(levels, 2, host.cpus ?? ''), config.connectTimeoutMs, host.cpus ?? '');
  if (probe.gpuNumbers.length > 0) await must(session, mknodArgv(levels, 2, [...new Set(probe.gpuNumbers)]), config.connectTimeoutMs, probe.gpuNumbers.join(' '));
}

/**
 * Asked only when it matters (the port is taken, or `docker run` failed): a container engine
 * call costs more than the rest of a probe, and a fresh job's name is free.
 */
export async function nameHolder(session: Session, config: Config, job: Job, nonce: string): Promise<Holder> {
  const named = await must(session, [config.engine, ...nameArgv(dialect(config.engine), job)], config.startTimeoutMs, containerName(job));
  const [id, state, attempt, label] = named.trim().split(/\s+/);
  const ours = id !== undefined && attempt === job.attempt && label === nonce && state === 'running';
  return { running: ours ? id : undefined, stale: id && !ours ? [id] : [] };
}

/**
 * Starts the node's container, unless this attempt's already runs; a leftover holding the name
 * goes first. `known`: the holder, when the port check asked. The run never pulls (`--pull
 * never`): a node that lacks the pinned digest says so in the run's answer, and `pull` fetches
 * it under the node's pull lock before the run is tried again. A node that holds it (pull_policy
 * missing, the usual case) has asked nothing but the run. `untouched` is called when the first
 * engine command could not reach the engine (dockerd down): nothing was made on the node, so a
 * rollback has nothing to remove there, and must not keep the job's claim for a node it cannot
 * ask.
 */
export async function startContainer(
  session: Session, config: Config, job: Job, image: Image, argv: string[], nonce: string, known: Holder | undefined,
  pull: () => Promise<void>, untouched: () => void,
): Promise<void> {
  const t = config.startTimeoutMs;
  const d = dialect(config.engine);
  if (known?.running) return;
  if (known?.stale.length) await must(session, [config.engine, ...removeArgv(d, known.stale)], t, known.stale.join(' '));
  let run = await session.run([config.engine, ...argv], t);
  // The client's own first words, not a line the daemon may have relayed from elsewhere.
  if (run.code !== 0 && !known?.stale.length && d.unreachable?.test(firstLine(run.stderr))) {
    untouched();
    throw commandFailed(session.host, [config.engine, ...argv], run, image.ref);
  }
  let pulled = false;
  if (run.code !== 0 && d.noImage.test(run.stderr)) {
    await pull();
    pulled = true;
    run = await session.run([config.engine, ...argv], t);
  }
  if (run.code === 0) return;
  // An engine on the systemd driver takes only a `.slice` for --cgroup-parent, and says so
  // before it creates anything: the job's cgroups, absolute paths for the cgroupfs driver,
  // cannot be joined there, and no requeue changes the driver. Read from the run's refusal
  // rather than asked with `info` before every start, which costs each node an engine call.
  if (job.containment && d.systemdDriver.test(run.stderr)) {
    throw new JobboxError(`${session.host}: ${config.engine} run`, 'a job\'s containers join its cgroups, which needs the engine\'s cgroupfs driver (it uses systemd)', firstLine(run.stderr), EXIT.permanent);
  }
  // Where the port was free the name was not looked at: it may be held by a re-run whose sshd
  // is still starting, or by an earlier attempt's leftover that never listened. Without such a
  // holder, the failure is the run's own.
  const late = known ? undefined : await nameHolder(session, config, job, nonce);
  if (late?.running) return;
  if (!late?.stale.length) {
    // An engine that words "no such image" otherwise (another release, another engine) would
    // fail this run on every requeue: whether the node holds the digest is asked plainly, once.
    if (!pulled && !(await holdsImage(session, config, image))) {
      await pull();
      await must(session, [config.engine, ...argv], t, image.ref);
      return;
    }
    throw commandFailed(session.host, [config.engine, ...argv], run, image.ref);
  }
  await must(session, [config.engine, ...removeArgv(d, late.stale)], t, late.stale.join(' '));
  await must(session, [config.engine, ...argv], t, image.ref);
}

/** A pull on a node, serialized with the node's other pulls (flock). */
async function pullOn(session: Session, config: Config, ref: string): Promise<Result> {
  const lockDir = lockDirArgv();
  await must(session, lockDir, config.connectTimeoutMs, lockDir.at(-1)!);
  // pull_timeout for the lock, then pull_timeout for the pull (pullArgv).
  return session.run(pullArgv(config, ref), 2 * config.pullTimeoutMs + PULL_SLACK_MS);
}

/**
 * The job's image, pinned to one manifest digest, resolved once, on the first node: the digest
 * its pull of the tag prints (one manifest request to the registry, whatever the node count).
 * When the registry fails, the digest of the node's own copy: every other node must then hold
 * that very digest, so no node runs another build, and no warning is owed.
 */
export async function pinImage(session: Session, config: Config, image: Image, log: Logger): Promise<Image> {
  const pulled = await pullOn(session, config, image.ref);
  if (pulled.code === 0) {
    // docker's pull prints the digest; Podman's does not, and its copy is asked then.
    const digest = pulledDigest(pulled.stdout) ?? localDigest((await session.run([config.engine, ...repoDigestsArgv(dialect(config.engine), image.ref)], config.connectTimeoutMs)).stdout, repoOf(image.ref));
    // The same engine prints the same way next time: no requeue would help.
    if (!digest) throw new JobboxError(`${session.host}: pull`, 'the engine pulled the tag but named no single manifest digest to pin (docker prints "Digest: sha256:…", the copy\'s RepoDigests hold it)', image.ref, EXIT.permanent);
    return { ...image, digest };
  }
  const reason = firstLine(pulled.stderr);
  const local = await session.run([config.engine, ...repoDigestsArgv(dialect(config.engine), image.ref)], config.connectTimeoutMs);
  if (local.code !== 0) throw new JobboxError(`${session.host}: pull`, `registry failed and no local copy (${printable(reason)})`, image.ref, EXIT.transient);
  const own = localDigest(local.stdout, repoOf(image.ref));
  // A copy that was loaded, committed or imported without a push has no registry digest, and
  // one pulled by two has two: neither can be pinned, and waiting will not change that.
  if (!own) throw new JobboxError(`${session.host}: pull`, `the registry failed (${printable(reason)}) and the node's copy carries no single registry digest to pin: push the image to its registry`, image.ref, EXIT.permanent);
  log.warn({ node: session.host, image: image.ref, digest: own, reason }, 'registry failed; the job runs the digest of the first node\'s copy');
  return { ...image, digest: own };
}

/**
 * A node's copy of the pinned image, before anything runs it: one it holds is used as it is
 * (pull_policy missing: no registry request), else it is pulled by digest (pullImage).
 */
export async function ensureImage(session: Session, config: Config, image: Image, pinnedAtSubmit = false): Promise<void> {
  if (config.pullPolicy === 'missing' && (await holdsImage(session, config, image))) return;
  await pullImage(session, config, image, pinnedAtSubmit);
}

/** Whether the node holds the pinned digest; an engine that cannot answer says no. */
async function holdsImage(session: Session, config: Config, image: Image): Promise<boolean> {
  return (await session.run([config.engine, ...imageIdArgv(image)], config.connectTimeoutMs)).code === 0;
}

/**
 * The pinned digest, pulled. A node that cannot get it while the registry fails fails the
 * start (a requeue may find the registry back), and never runs a copy of another build.
 */
export async function pullImage(session: Session, config: Config, image: Image, pinnedAtSubmit = false): Promise<void> {
  const ref = runRef(image);
  const pulled = await pullOn(session, config, ref);
  if (pulled.code === 0) return;
  const reason = firstLine(pulled.stderr);
  // A digest pinned at submit that its registry no longer holds will not come back: a requeue
  // would loop. One the start pinned may have been deleted under it, and a requeue pins anew.
  // A user's image with no build for the node's platform will have none at the next requeue either.
  if (image.user && /no matching manifest/i.test(reason)) {
    throw new JobboxError(`${session.host}: pull`, `the image has no build for this node's platform (${printable(reason)})`, ref, EXIT.permanent);
  }
  if (pinnedAtSubmit && /manifest unknown|not found/i.test(reason)) {
    throw new JobboxError(`${session.host}: pull`, `the registry no longer holds the digest the job was pinned to at submit (${printable(reason)}); submit it again`, ref, EXIT.permanent);
  }
  throw new JobboxError(`${session.host}: pull`, `the pull of the job's digest failed (${printable(reason)})`, ref, EXIT.transient);
}

/**
 * The image's /etc/passwd and /etc/group, which the job's own are merged into, and the release
 * of its sshd, which the sshd_config must fit. Reading them takes a throwaway container on the
 * first node (after `ready`, which makes sure it holds the image), so the output is kept per
 * manifest digest (content-addressed: a new build is a new digest) in a root-owned directory
 * next to the job dirs: a start of a digest seen before asks no node anything for it. An image
 * whose sshd can never serve a job is refused here, at once, rather than by a barrier timeout
 * and a requeue that would never heal.
 */
export async function imageAccounts(first: Session, config: Config, image: Image, log: Logger, ready: () => Promise<void>): Promise<ImageAccounts> {
  const d = dialect(config.engine);
  // Named for what it holds: the files of older jobbox releases (by image id) have no sshd
  // section, and one checked where annotations are ignored says nothing of them.
  const kind = d.annotationsArgv ? 'accounts-sshd-annotations' : 'accounts-sshd';
  const cached = image.digest && DIGEST.test(image.digest) ? `${imageCacheDir(config.stateDir)}/${image.digest.slice('sha256:'.length)}.manifest.${kind}` : undefined;
  let text: string | undefined;
  if (cached) {
    await makeJobDir(imageCacheDir(config.stateDir));
    text = await readJobFile(cached);
  }
  if (text === undefined) {
    await ready();
    // Before anything runs it: the throwaway container would get the annotations too.
    if (d.annotationsArgv) await checkAnnotations(first, config, image, d.annotationsArgv(runRef(image)));
    const name = `jobbox-check-${randomBytes(6).toString('hex')}`;
    const argv = [config.engine, ...imageAccountsArgv(image, name)];
    // Best effort: a container that ended on its own is gone already (--rm).
    const discard = () => first.run([config.engine, ...removeArgv(d, [name])], config.connectTimeoutMs).catch(() => undefined);
    const r = await first.run(argv, config.startTimeoutMs).catch(async (err: unknown) => {
      // The client gave up (a timeout, too much output): the container may run on. A user's
      // image that does this will do it again: no requeue.
      await discard();
      if (image.user && err instanceof JobboxError) throw new JobboxError(`image ${image.alias}`, `its check in a throwaway container failed (${err.problem})`, runRef(image), EXIT.permanent);
      throw err;
    });
    // 126 and 127 are the container's own: its /bin/sh cannot run. Every requeue would find the same.
    if (r.code === 126 || r.code === 127) {
      throw new JobboxError(`image ${image.alias}`, `needs a POSIX shell as /bin/sh (the check in a throwaway container exited ${r.code}: ${printable(firstLine(r.stderr))})`, runRef(image), EXIT.permanent);
    }
    if (r.code !== 0) {
      await discard();
      throw commandFailed(first.host, argv, r, image.ref);
    }
    text = r.stdout;
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

/**
 * An image whose manifest annotates anything but the OCI's descriptive keys is refused for
 * good, where the engine hands annotations to the runtime (Dialect.annotationsArgv): a user's
 * image could order root's crun to keep root's groups in the job, or swap its seccomp filter.
 */
async function checkAnnotations(first: Session, config: Config, image: Image, argv: string[]): Promise<void> {
  const stdout = await must(first, [config.engine, ...argv], config.connectTimeoutMs, runRef(image));
  const strange = strangeAnnotations(stdout.trim());
  if (strange === undefined) throw new JobboxError(`image ${image.alias}`, 'its annotations cannot be read', printable(stdout.trim().slice(0, 200)), EXIT.transient);
  if (strange.length > 0) {
    throw new JobboxError(`image ${image.alias}`, 'carries annotations the OCI runtime may act on (only org.opencontainers.image.* are taken)', printable(strange.join(' ')), EXIT.permanent);
  }
}

/** What became of a node's container while the barrier waits: `oom`, stopped by the kernel for memory. */
type ContainerState = 'running' | 'stopped' | 'oom';

/** Waits until the node's job sshd shows the pinned host key and would log the owner in with the job key. */
async function barrier(host: string, port: number, job: Job, keys: Keys, config: Config, state: () => Promise<ContainerState>): Promise<void> {
  const started = Date.now();
  const deadline = started + config.startTimeoutMs;
  const hostKeys = [keys.hostKeyPub.split(/\s+/)[1]!];
  let asked = started;
  let tries = 0;
  for (;;) {
    try {
      await Session.accepts({ host, port, username: job.owner.name, privateKey: keys.userKey, hostKeys, timeoutMs: config.connectTimeoutMs });
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new JobboxError(`${host}: job sshd`, `not answering after ${config.startTimeoutMs / 1000} s`, String(port), EXIT.transient);
      }
      // A container whose sshd could not start (someone bound the port after the bind test)
      // has exited: say so now rather than at the deadline. Asked once a second from the
      // second second on, since a healthy sshd answers within milliseconds.
      if (Date.now() - asked >= BARRIER_CHECK_MS && Date.now() - started >= BARRIER_CHECK_MS) {
        asked = Date.now();
        const now = await state();
        // The job's memory limit (the scheduler's, or the queue's) cannot hold even the
        // container's sshd: a requeue would meet the same limit, so it is permanent.
        if (now === 'oom') throw new JobboxError(`${host}: job sshd`, 'its container was killed for memory before sshd answered: the job\'s memory limit there is too small', String(port), EXIT.permanent);
        if (now === 'stopped') throw new JobboxError(`${host}: job sshd`, 'its container stopped before sshd answered', String(port), EXIT.transient);
      }
      // sshd listens a few ms after docker run returns: a refused connect costs little, so retry soon.
      await new Promise((r) => setTimeout(r, Math.min(BARRIER_RETRY_MS, BARRIER_FIRST_RETRY_MS * 2 ** tries++)));
    }
  }
}

/**
 * The setup barrier of one node: its container must be running with an sshd that answers.
 * When it never does, the container's own last words say why.
 */
export async function awaitSshd(s: Session, config: Config, job: Job, port: number, keys: Keys): Promise<void> {
  // A container gone (removed, or never made) is not running either; any other failure to
  // ask says nothing, and the barrier waits on.
  const state = async (): Promise<ContainerState> => {
    const r = await s.run([config.engine, ...runningArgv(job)], config.connectTimeoutMs);
    if (r.code !== 0) return /No such (?:object|container)/i.test(r.stderr) ? 'stopped' : 'running';
    const [running, oom] = r.stdout.trim().split(' ');
    return running !== 'false' ? 'running' : oom === 'true' ? 'oom' : 'stopped';
  };
  await barrier(s.host, port, job, keys, config, state).catch(async (err: unknown) => {
    const logs = await s.run([config.engine, ...logsArgv(job)], config.connectTimeoutMs);
    const last = lines(`${logs.stdout}\n${logs.stderr}`).at(-1);
    throw last && err instanceof JobboxError ? new JobboxError(err.subject, `${err.problem} (container: ${printable(last)})`, err.value, err.exitCode) : err;
  });
}

/** CPU seconds and peak memory of one node's container. */
export interface Usage {
  cpuSeconds: number;
  peakBytes: number;
}

/** Best effort, before the removal: undefined when there is no container or no cgroup v1 to read. */
export async function containerUsage(s: Session, config: Config, job: Attempt): Promise<Usage | undefined> {
  const r = await s.run(usageArgv(config.engine, job), config.connectTimeoutMs);
  const [cpu, peak] = r.stdout.trim().split('\n');
  if (r.code !== 0 || !/^\d+$/.test(cpu ?? '') || !/^\d+$/.test(peak ?? '')) return undefined;
  return { cpuSeconds: Number(cpu) / 1e9, peakBytes: Number(peak) };
}

/**
 * Best effort, never failing: what is left of a Slurm job's cgroups on the node. Slurm gives
 * the job's owner its step dirs, so the tree may be theirs to fill: a cleanup that cannot
 * finish must not keep the teardown from freeing the claim (slurmd removes the rest).
 */
export async function clearCgroups(s: Session, config: Config, clear: CgroupClear): Promise<void> {
  await s.run(cgroupCleanupArgv(clear), config.connectTimeoutMs).catch(() => undefined);
}

export async function removeContainers(s: Session, config: Config, job: Attempt): Promise<number> {
  const listed = await s.run([config.engine, ...psArgv(job)], config.connectTimeoutMs);
  if (listed.code !== 0) throw new JobboxError(`${s.host}: ${config.engine} ps`, printable(listed.stderr.trim()), job.id, EXIT.transient);
  const ids = listed.stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return 0;
  const removed = await s.run([config.engine, ...removeArgv(dialect(config.engine), ids)], config.startTimeoutMs);
  // A container that vanished between ps and rm is gone, which is what we want; any other
  // complaint, about any one of them, is a container that may still run.
  // A failure that says nothing (a session ended by a signal) is not "gone" either.
  const said = lines(removed.stderr);
  const complaints = said.filter((l) => !/No such container/i.test(l));
  if (removed.code !== 0 && (said.length === 0 || complaints.length > 0)) {
    throw new JobboxError(`${s.host}: ${config.engine} rm`, printable(complaints.join('; ') || `exit ${removed.code}`), ids.join(' '), EXIT.transient);
  }
  return ids.length;
}

