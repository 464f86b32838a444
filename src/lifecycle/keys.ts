// The job's two key pairs: the user key its sessions log in with, and the host key of its
// sshd, pinned in its known_hosts. Made fresh for every attempt; used nowhere else.
import ssh2 from 'ssh2';
import { readJobFile } from '../exec/jobdir.js';
import type { Keys } from '../plan/job.js';
import type { JobPaths } from '../plan/job-files.js';

/** A re-run of the same attempt keeps its keys: its containers may already serve them. */
export async function jobKeys(paths: JobPaths): Promise<Keys> {
  const [userKey, userKeyPub, hostKey, hostKeyPub] = await Promise.all(
    [paths.userKey, paths.userKeyPub, paths.hostKey, paths.hostKeyPub].map(readJobFile),
  );
  if (userKey && userKeyPub && hostKey && hostKeyPub) return { userKey, userKeyPub, hostKey, hostKeyPub };
  const [user, host] = await Promise.all([ed25519KeyPair('jobbox-user'), ed25519KeyPair('jobbox-host')]);
  return { userKey: user.private, userKeyPub: user.public, hostKey: host.private, hostKeyPub: host.public };
}

/**
 * A new ed25519 key pair in OpenSSH format, made on libuv's thread pool: the setup's event loop
 * meanwhile serves the nodes' answers. ssh2's generator strips leading zero bytes off the
 * public key, so one key in 256 comes out 31 bytes long, which neither ssh2 nor OpenSSH can
 * load (mscdex/ssh2#1513): such a job's sshd has no host key and the barrier never passes.
 * Draw again until both halves parse.
 */
export async function ed25519KeyPair(comment: string): Promise<{ private: string; public: string }> {
  for (;;) {
    const pair = await new Promise<{ private: string; public: string }>((resolve, reject) =>
      ssh2.utils.generateKeyPair('ed25519', { comment }, (err, keys) => (err ? reject(err) : resolve(keys))),
    );
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
  }
}
