// The whole setup of a job as data: which files with which modes and owners, and which
// docker argv on which node. Used by the real run and printed by --dry-run.
import type { Config, Image } from '../config/types.js';
import type { Job, JobFile } from '../job/job.js';
import { containerCwd, jobMounts, runArgv, type NodeFacts } from './container.js';
import { containerEnv, shellExports } from './env.js';
import {
  attemptRecord, authorizedKeys, containerGroup, containerPasswd, envFile, knownHosts, mpiEnv, mpichHostfile,
  openMpiHostfile, sshConfig, sshdConfig, type JobPaths, type OpenSsh,
} from '../plan/job-files.js';

export interface Keys {
  userKey: string;
  userKeyPub: string;
  hostKey: string;
  hostKeyPub: string;
}

export interface JobPlan {
  image: Image;
  port: number;
  files: JobFile[];
  /** docker argv per host, in job host order. */
  runs: { host: string; argv: string[] }[];
  /** User variables kept out of the container (deny-list, newlines). */
  dropped: string[];
}

export interface ImageAccounts {
  passwd: string;
  group: string;
  /** The release of the image's sshd; unknown to a dry run, which reads no image. */
  sshd?: OpenSsh;
}

export function planJob(input: {
  config: Config;
  job: Job;
  image: Image;
  port: number;
  paths: JobPaths;
  keys: Keys;
  accounts: ImageAccounts;
  groupNames: Map<number, string>;
  facts: Map<string, NodeFacts>;
  nonce: string;
}): JobPlan {
  const { config, job, image, port, paths, keys } = input;
  const owner = job.owner;
  const { env: userEnv, dropped } = containerEnv(job.env);
  // The user's variables stay out of the container's own environment: its sshd runs with it,
  // and OPENSSL_CONF, TZ or LOCPATH there would break the job's sshd and requeue the job.
  const env = {
    ...image.env,
    HOME: owner.home,
    USER: owner.name,
    LOGNAME: owner.name,
    ...mpiEnv(paths),
  };
  const mine = { uid: owner.uid, gid: owner.gid };
  const nest = job.containment?.scheduler === 'lsf' ? job.containment.nest : undefined;
  const files: JobFile[] = [
    { path: paths.userKey, content: keys.userKey, mode: 0o600, owner: mine },
    { path: paths.userKeyPub, content: keys.userKeyPub, mode: 0o644 },
    // sshd runs as the owner and must read its host key; it is the job's own, used nowhere else.
    { path: paths.hostKey, content: keys.hostKey, mode: 0o600, owner: mine },
    { path: paths.hostKeyPub, content: keys.hostKeyPub, mode: 0o644 },
    { path: paths.authorizedKeys, content: authorizedKeys(keys.userKeyPub), mode: 0o644 },
    // The port is in these three: another user who learns it before the job's sshd binds it
    // can take it first and stall the setup, so only the owner (and sshd, as the owner) reads them.
    { path: paths.knownHosts, content: knownHosts(job.hosts, port, keys.hostKeyPub), mode: 0o600, owner: mine },
    { path: paths.sshdConfig, content: sshdConfig(paths, owner, port, input.accounts.sshd), mode: 0o600, owner: mine },
    { path: paths.sshConfig, content: sshConfig(paths, job.hosts, owner, port), mode: 0o600, owner: mine },
    { path: paths.hostfile, content: openMpiHostfile(job.hosts), mode: 0o644 },
    { path: paths.mpichHostfile, content: mpichHostfile(job.hosts), mode: 0o644 },
    { path: paths.passwd, content: containerPasswd(input.accounts.passwd, owner), mode: 0o644 },
    { path: paths.group, content: containerGroup(input.accounts.group, owner, input.groupNames), mode: 0o644 },
    { path: paths.attempt, content: attemptRecord({ uid: owner.uid, image: image.ref, nonce: input.nonce, ...(image.digest && { digest: image.digest }), ...(nest && { nest }) }), mode: 0o600 },
    { path: paths.envFile, content: envFile(env), mode: 0o600 },
    // What the user chose, their variables and their cwd, only the owner reads (docs/security.md).
    { path: paths.userEnv, content: shellExports(userEnv), mode: 0o600, owner: mine },
    { path: paths.cwd, content: `${containerCwd(job, jobMounts(config.queues.get(job.queue)!, image))}\n`, mode: 0o600, owner: mine },
  ];
  const runs = job.hosts.map((host) => ({
    host: host.name,
    argv: runArgv(config, job, host, image, paths, input.facts.get(host.name) ?? { devices: [] }, input.nonce),
  }));
  return { image, port, files, runs, dropped };
}
