// The per-job files, as pure text. The job directory sits on the shared state dir and is
// bind-mounted read-only at the same path in every container, so one ssh_config serves the
// job starter on the host and mpirun inside the containers.
import type { Attempt, Host, LsfNest, Owner } from '../job/job.js';
import { DIGEST } from '../config/ref.js';
import { isCgroupPath } from '../scheduler/lsf.js';
import { X11_HANDOFF_NAMES } from './x11.js';

export interface JobPaths {
  dir: string;
  userKey: string;
  userKeyPub: string;
  hostKey: string;
  hostKeyPub: string;
  authorizedKeys: string;
  knownHosts: string;
  sshdConfig: string;
  sshConfig: string;
  hostfile: string;
  mpichHostfile: string;
  passwd: string;
  group: string;
  /** Whose attempt this dir is (AttemptRecord), root-only. */
  attempt: string;
  /** docker's --env-file: jobbox's and the image's variables, for the container's own processes. */
  envFile: string;
  /** The user's variables, as sh exports for the job starter's session (owner-only). */
  userEnv: string;
  /** Where the job starter runs the command inside the container. */
  cwd: string;
}

/**
 * Who a job dir belongs to. A job key (id, index, attempt) comes back when the scheduler's ids
 * wrap or a node kept a dir its teardown could not remove: a later start adopts the dir's
 * keys, port and containers only when this matches it (same owner, same image) and the
 * containers carry the nonce, so a recycled id never hands one user's keys to another.
 */
export interface AttemptRecord {
  uid: number;
  image: string;
  nonce: string;
  /** The digest the attempt's containers run: a re-run of the attempt runs it again, never the tag's newer one. */
  digest?: string;
  /**
   * LSF's job cgroup the first host's container nested in: what the post-exec and gc clear
   * there, whichever cgroup they themselves run in.
   */
  nest?: LsfNest;
}

export function attemptRecord(record: AttemptRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** The record's text → the record, or undefined when it is not one (an older jobbox, damage). */
export function parseAttemptRecord(text: string | undefined): AttemptRecord | undefined {
  try {
    const r = JSON.parse(text ?? '') as Partial<AttemptRecord>;
    if (!(Number.isInteger(r.uid) && typeof r.image === 'string' && typeof r.nonce === 'string' && /^[0-9a-f]{16,64}$/.test(r.nonce))) return undefined;
    const nest = r.nest && isCgroupPath(r.nest.path) && Array.isArray(r.nest.controllers) && r.nest.controllers.every((c) => /^[a-z0-9_,]+$/.test(c)) ? r.nest : undefined;
    const digest = typeof r.digest === 'string' && DIGEST.test(r.digest) ? r.digest : undefined;
    return { uid: r.uid!, image: r.image, nonce: r.nonce, ...(digest && { digest }), ...(nest && { nest: { path: nest.path, controllers: nest.controllers } }) };
  } catch {
    return undefined;
  }
}

/** Per-image facts kept between jobs; its name is no job key, and gc leaves it alone. */
export function imageCacheDir(stateDir: string): string {
  return `${stateDir}/.images`;
}

/** Job, array index and attempt: what tells two runs of a job apart (port claim, job dir). */
export function jobKey(job: Attempt): string {
  return `${job.id}.${job.index}.${job.attempt}`;
}

export function jobPaths(stateDir: string, job: Attempt): JobPaths {
  const dir = `${stateDir}/${jobKey(job)}`;
  return {
    dir,
    userKey: `${dir}/userkey`,
    userKeyPub: `${dir}/userkey.pub`,
    hostKey: `${dir}/hostkey`,
    hostKeyPub: `${dir}/hostkey.pub`,
    authorizedKeys: `${dir}/authorized_keys`,
    knownHosts: `${dir}/known_hosts`,
    sshdConfig: `${dir}/sshd_config`,
    sshConfig: `${dir}/ssh_config`,
    hostfile: `${dir}/hostfile`,
    mpichHostfile: `${dir}/hostfile.mpich`,
    passwd: `${dir}/passwd`,
    group: `${dir}/group`,
    attempt: `${dir}/attempt`,
    envFile: `${dir}/env`,
    userEnv: `${dir}/userenv`,
    cwd: `${dir}/cwd`,
  };
}

/** Variables every session in the job sees, so a stock mpirun finds the hosts unaided. */
export function mpiEnv(paths: JobPaths): Record<string, string> {
  return {
    JOBBOX_HOSTFILE: paths.hostfile,
    OMPI_MCA_orte_default_hostfile: paths.hostfile,
    HYDRA_HOST_FILE: paths.mpichHostfile,
  };
}

/**
 * What a node's container says of its GPUs: the n it was given, numbered from 0 as CUDA sees
 * them inside (the scheduler's own numbers are the host's), as Sarus does. Empty without GPUs.
 */
export function gpuEnv(gpus: number): Record<string, string> {
  return gpus > 0 ? { CUDA_VISIBLE_DEVICES: Array.from({ length: gpus }, (_, i) => i).join(',') } : {};
}

/** sshd's SetEnv value: every session's variables, one NAME=value word each. */
export function setEnvLine(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** An OpenSSH release: `sshd -V` prints `OpenSSH_9.2p1 Debian-2, OpenSSL …` (releases without -V, in their usage). */
export interface OpenSsh { major: number; minor: number }

export function parseOpenSsh(text: string): OpenSsh | undefined {
  const m = /\bOpenSSH_(\d+)\.(\d+)/.exec(text);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

export function openSshAtLeast(sshd: OpenSsh, release: OpenSsh): boolean {
  return sshd.major !== release.major ? sshd.major > release.major : sshd.minor >= release.minor;
}

/** The oldest sshd a job can use: SetEnv (7.8) is how every session, mpirun's too, finds the hostfiles. */
export const OPENSSH_MIN: OpenSsh = { major: 7, minor: 8 };

// Directives newer than OPENSSH_MIN, with the release that brought them. sshd refuses to start
// on one it does not know, so they are left out where the image's sshd is older.
const NEWER: [directive: string, since: OpenSsh][] = [['PerSourceMaxStartups', { major: 8, minor: 5 }]];

/** The directives sshdConfig leaves out for this sshd. */
export function sshdLacks(sshd: OpenSsh): string[] {
  return NEWER.filter(([, since]) => !openSshAtLeast(sshd, since)).map(([directive]) => directive);
}

// A non-root sshd can only log in the user it runs as; AllowUsers and the key outside the
// user's writable home make that the job's key and the job's owner only.
//
// Anyone who reaches the port can hold a connection that never authenticates, and sshd's
// defaults (MaxStartups 10:30:100, LoginGraceTime 120) let a few dozen idle ones keep the owner
// out. So each source address may hold 10 (the users of one node share its address), below the
// total nothing is dropped at random, and the total stays at 100 because each waiting
// connection is an sshd process charged to the job's memory (1.4 MB each in the deb12 image).
// `sshd`: the image's release; undefined where it is not known (a dry run): a current one.
//
// AcceptEnv takes only the X11 variables of the environment a run session starts from (under
// jobbox's own names, plan/x11.ts), the owner's data for the owner's session; X11Forwarding
// stays off, since the container reaches the node's displays itself (--net=host).
export function sshdConfig(paths: JobPaths, owner: Owner, port: number, sshd?: OpenSsh): string {
  const setEnv = setEnvLine(mpiEnv(paths));
  const lacks = sshd ? sshdLacks(sshd) : [];
  // What the image's sshd does not know stays in the file, commented out, to say why it is not in force.
  const newer = (line: string) => (lacks.includes(line.split(' ')[0]!) ? `# ${line}: left out, this image's sshd is OpenSSH ${sshd?.major}.${sshd?.minor}` : line);
  return `# jobbox: sshd for one job, running as ${owner.name}
Port ${port}
HostKey ${paths.hostKey}
AuthorizedKeysFile ${paths.authorizedKeys}
AllowUsers ${owner.name}
PidFile none
UsePAM no
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitUserEnvironment no
StrictModes yes
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PrintMotd no
LoginGraceTime 30
MaxStartups 100
${newer('PerSourceMaxStartups 10')}
ClientAliveInterval 15
ClientAliveCountMax 3
SetEnv ${setEnv}
AcceptEnv ${X11_HANDOFF_NAMES.join(' ')}
`;
}

export function sshConfig(paths: JobPaths, hosts: Host[], owner: Owner, port: number): string {
  return `# jobbox: how this job's sessions reach its containers
Host ${hosts.map((h) => h.name).join(' ')}
  Port ${port}
  User ${owner.name}
  IdentityFile ${paths.userKey}
  IdentitiesOnly yes
  UserKnownHostsFile ${paths.knownHosts}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  CheckHostIP no
  BatchMode yes
  LogLevel ERROR
  # A node that reboots or vanishes sends no reset: without probes mpirun's sessions to it
  # would wait forever and the job would hang instead of failing.
  ServerAliveInterval 15
  ServerAliveCountMax 3
`;
}

/** Pins the job's host key for exactly the job's hosts on the job's port. */
export function knownHosts(hosts: Host[], port: number, hostKeyPub: string): string {
  const key = hostKeyPub.trim().split(/\s+/).slice(0, 2).join(' ');
  return `${hosts.map((h) => `[${h.name}]:${port}`).join(',')} ${key}\n`;
}

/** Every forwarding stays off (`restrict`); a terminal is allowed (`pty`) for `bsub -Is` and `jobbox shell`. */
export function authorizedKeys(userKeyPub: string): string {
  return `restrict,pty ${userKeyPub.trim().split(/\s+/).slice(0, 2).join(' ')} jobbox-job\n`;
}

export function openMpiHostfile(hosts: Host[]): string {
  return hosts.map((h) => `${h.name} slots=${h.slots}\n`).join('');
}

export function mpichHostfile(hosts: Host[]): string {
  return hosts.map((h) => `${h.name}:${h.slots}\n`).join('');
}

/**
 * The image's passwd plus the owner, so sshd and `id` inside know the user. An image entry
 * with the owner's name or uid would shadow the owner, so it is dropped.
 */
export function containerPasswd(imagePasswd: string, owner: Owner): string {
  const shell = owner.shell === '/bin/bash' ? '/bin/bash' : '/bin/sh';
  const kept = lines(imagePasswd).filter((l) => {
    const [name, , uid] = l.split(':');
    return name !== owner.name && uid !== String(owner.uid);
  });
  return [...kept, `${owner.name}:x:${owner.uid}:${owner.gid}::${owner.home}:${shell}`].join('\n') + '\n';
}

/**
 * The image's groups, with the owner added as a member of each of its groups. A gid the image
 * already has keeps the image's name; a new one takes the site's name unless the image uses
 * that name already, then `g<gid>`, so names and gids stay unique.
 */
export function containerGroup(imageGroup: string, owner: Owner, names: Map<number, string>): string {
  const wanted = new Set([owner.gid, ...owner.gids]);
  const image = lines(imageGroup).map((l) => l.split(':'));
  const imageGids = new Set(image.map((f) => Number(f[2])));
  const taken = new Set(image.map((f) => f[0]));
  const out = image.map(([name = '', pw = 'x', gid = '', members = '']) => {
    if (!wanted.has(Number(gid))) return `${name}:${pw}:${gid}:${members}`;
    const list = members ? members.split(',').filter((m) => m !== owner.name) : [];
    return `${name}:${pw}:${gid}:${[...list, owner.name].join(',')}`;
  });
  for (const gid of wanted) {
    if (imageGids.has(gid)) continue;
    const site = names.get(gid);
    const name = site && !taken.has(site) ? site : `g${gid}`;
    taken.add(name);
    out.push(`${name}:x:${gid}:${owner.name}`);
  }
  return out.join('\n') + '\n';
}

/** docker's --env-file: NAME=value lines taken literally (the values were checked for newlines). */
export function envFile(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join('');
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
}
