// The per-job files, as pure text. The job directory sits on the shared state dir and is
// bind-mounted read-only at the same path in every container, so one ssh_config serves the
// job starter on the host and mpirun inside the containers.
import type { Host, Job, Owner } from '../job/job.js';

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
  envFile: string;
  /** Where the job starter runs the command inside the container. */
  cwd: string;
}

/** Per-image facts kept between jobs; its name is no job key, and gc leaves it alone. */
export function imageCacheDir(stateDir: string): string {
  return `${stateDir}/.images`;
}

/** Job, array index and attempt: what tells two runs of a job apart (port claim, job dir). */
export function jobKey(job: Pick<Job, 'id' | 'index' | 'attempt'>): string {
  return `${job.id}.${job.index}.${job.attempt}`;
}

export function jobPaths(stateDir: string, job: Pick<Job, 'id' | 'index' | 'attempt'>): JobPaths {
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
    envFile: `${dir}/env`,
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

// A non-root sshd can only log in the user it runs as; AllowUsers and the key outside the
// user's writable home make that the job's key and the job's owner only.
export function sshdConfig(paths: JobPaths, owner: Owner, port: number): string {
  const setEnv = Object.entries(mpiEnv(paths)).map(([k, v]) => `${k}=${v}`).join(' ');
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
ClientAliveInterval 15
ClientAliveCountMax 3
SetEnv ${setEnv}
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

export function authorizedKeys(userKeyPub: string): string {
  return `restrict ${userKeyPub.trim().split(/\s+/).slice(0, 2).join(' ')} jobbox-job\n`;
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
