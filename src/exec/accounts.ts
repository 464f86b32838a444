// The only code that asks the OS account database (NSS: files, LDAP, sssd) who a user is.
// getent and id go through NSS like sshd and LSF do, where reading /etc/passwd would miss
// directory users.
import { execFile } from 'node:child_process';
import { CLIENT_TIMEOUT_MS, SYSTEM_PATH } from '../config/defaults.js';
import { ACCOUNT_NAME } from '../config/parse.js';
import { EXIT, JobboxError, printable } from '../errors.js';
import type { AccountLookup } from '../job/job.js';
import { describeFailure, type Result } from '../result.js';

// A root hook runs with the job's environment: the user's PATH must not choose our getent.
// The env replaces ours entirely, and its PATH is the one the command is looked up in.
const RUN = { env: { PATH: SYSTEM_PATH, LC_ALL: 'C' }, timeout: CLIENT_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' } as const;

// node:child_process rather than execa: every LSF hook looks the owner up, and execa's import
// alone costs more than both lookups (bench P2). Never rejects; the caller reads the code.
function run(file: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(file, args, RUN, (error, stdout, stderr) => {
      // A number: it exited non-zero. Otherwise it did not start, was killed (timeout) or
      // overflowed maxBuffer, and the error's message says which.
      const code = error ? (typeof error.code === 'number' ? error.code : undefined) : 0;
      resolve({ code, stdout: stdout.replace(/\n$/, ''), stderr, ...(code === undefined ? { error: error?.message ?? 'did not exit' } : {}) });
    });
  });
}

export const lookupAccount: AccountLookup = async (name) => {
  if (!ACCOUNT_NAME.test(name)) throw new JobboxError('user', `not a valid account name (${ACCOUNT_NAME.source})`, name);
  // Both at once: every hook's start waits for them (bench P1). id's answer counts only once getent's has.
  const [passwd, groups] = await Promise.all([run('getent', ['passwd', '--', name]), run('id', ['-G', '--', name])]);
  // getent exits 2 for "no such key"; anything else is NSS trouble (an LDAP server down) that may heal.
  if (passwd.code === 2) throw new JobboxError('user', 'no such account in the account database', name);
  if (passwd.code !== 0) throw failed('getent passwd', passwd, name);
  const [user, , uid, gid, , home = '', shell = ''] = passwd.stdout.split('\n')[0]?.split(':') ?? [];
  if (user !== name || !isId(uid) || !isId(gid) || !home.startsWith('/')) {
    throw new JobboxError('user', 'unexpected passwd entry from getent', passwd.stdout);
  }
  if (groups.code !== 0) throw failed('id -G', groups, name);
  const ids = groups.stdout.trim().split(/\s+/);
  if (!ids.every(isId)) throw new JobboxError('user', 'unexpected group list from id -G', groups.stdout);
  return {
    name,
    uid: Number(uid),
    gid: Number(gid),
    gids: [...new Set(ids.map(Number))].filter((g) => g !== Number(gid)),
    home,
    shell,
  };
};

function isId(text: string | undefined): text is string {
  return text !== undefined && /^\d{1,10}$/.test(text);
}

function failed(command: string, result: Result, name: string): JobboxError {
  return new JobboxError('user', printable(describeFailure(command, result)), name, EXIT.transient);
}

/** Group names for gids, for the container's /etc/group; a gid without a name gets `g<gid>`. */
export async function lookupGroupNames(gids: number[]): Promise<Map<number, string>> {
  const result = await run('getent', ['group', '--', ...gids.map(String)]);
  // Exit 2 means some gid has no entry; the lines found are still printed.
  if (result.code !== 0 && result.code !== 2) throw failed('getent group', result, gids.join(' '));
  const names = new Map<number, string>();
  for (const line of result.stdout.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && isId(gid)) names.set(Number(gid), name);
  }
  return new Map(gids.map((g) => [g, names.get(g) ?? `g${g}`]));
}
