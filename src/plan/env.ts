import { quote } from '../quote.js';

// Which of the user's variables reach the container. The policy is data: a deny-list of
// names that change how loaders, shells, ssh or docker behave, and of scheduler variables
// (which describe the host side, not the container). Identity variables are set from the
// account database instead.

const DENY = new Set([
  'BASH_ENV', 'ENV', 'IFS', 'CDPATH', 'GLOBIGNORE', 'PS4', 'SHELLOPTS', 'BASHOPTS', 'PROMPT_COMMAND',
  'NODE_OPTIONS', 'PERL5OPT', 'PERL5LIB', 'PYTHONSTARTUP', 'PYTHONPATH', 'RUBYOPT',
  'HOME', 'USER', 'LOGNAME', 'PATH', 'SHELL', 'MAIL', 'HOSTNAME', 'PWD', 'OLDPWD', 'SHLVL', '_',
  'TMPDIR', 'XDG_RUNTIME_DIR', 'DBUS_SESSION_BUS_ADDRESS',
  // bash's own: read-only ones fail the starter's exports, TMOUT times its read out,
  // EXECIGNORE and FUNCNEST change what the session's commands do.
  'UID', 'EUID', 'PPID', 'GROUPS', 'TMOUT', 'EXECIGNORE', 'FUNCNEST', 'POSIXLY_CORRECT',
  // The GPUs the scheduler or the user named, by the host's numbers: a container counts its
  // own from 0 (plan/job-files.ts gpuEnv), and names outside the allocation would only mislead.
  'CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES', 'GPU_DEVICE_ORDINAL',
  // Assigning it on a plain object would set the prototype instead of a variable.
  '__proto__',
]);
const DENY_PREFIX = ['LD_', 'DOCKER_', 'SSH_', 'BASH_', 'GCONV_', 'MALLOC_', 'LSB_', 'LSF_', 'LS_', 'SLURM_', 'JOBBOX_'];
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export function allowedVariable(name: string): boolean {
  return NAME.test(name) && !DENY.has(name) && !DENY_PREFIX.some((p) => name.startsWith(p));
}

// docker reads --env-file with a Go bufio.Scanner, whose token limit is 64 KiB: a line
// (NAME=value and its newline, in UTF-8 bytes) longer than that fails `docker run` with
// "token too long" (docker 28.2: 65536 bytes read, 65537 refused). A setup that fails
// there requeues the job forever, so such a variable is dropped instead.
export const ENV_LINE_MAX = 64 * 1024;
// The container's sshd, the user's command and everything it starts exec with these variables,
// and execve takes at most a quarter of the stack limit for arguments and environment together
// (2 MiB with the usual 8 MiB stack), each string at most 128 KiB (MAX_ARG_STRLEN, which
// ENV_LINE_MAX stays under). The user's variables get half; the other half is for the image's
// and jobbox's variables and the programs' own arguments.
export const ENV_TOTAL_MAX = 1024 * 1024;

/**
 * The user's environment as it may enter the container. Dropped, and returned by name in input
 * order so the caller can log them: denied names; values with newlines or NULs (docker's
 * env-file and ssh cannot carry them faithfully); lines longer than ENV_LINE_MAX; and what
 * does not fit in ENV_TOTAL_MAX.
 */
export function containerEnv(user: Record<string, string>): { env: Record<string, string>; dropped: string[] } {
  // Bytes of NAME=value plus its terminator: the newline in the env file, the NUL in execve.
  const sizes: [string, number][] = [];
  for (const [name, value] of Object.entries(user)) {
    if (!allowedVariable(name) || /[\n\r\0]/.test(value)) continue;
    const bytes = Buffer.byteLength(`${name}=${value}\n`);
    if (bytes <= ENV_LINE_MAX) sizes.push([name, bytes]);
  }
  // Smallest first, then by name: a few huge variables cannot crowd out the small ones jobs
  // depend on (OMP_NUM_THREADS), and the same environment always keeps the same variables.
  sizes.sort(([a, x], [b, y]) => x - y || (a < b ? -1 : a > b ? 1 : 0));
  const kept = new Set<string>();
  let total = 0;
  for (const [name, bytes] of sizes) {
    if (total + bytes > ENV_TOTAL_MAX) break;
    total += bytes;
    kept.add(name);
  }
  const env: Record<string, string> = {};
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(user)) {
    if (kept.has(name)) env[name] = value;
    else dropped.push(name);
  }
  return { env, dropped };
}

/**
 * The user's variables as sh `export` lines, each value a single quoted word: what a session in
 * the container sources before the user's command. They travel in an owner-only file or in the
 * session's input, never on a command line, where every user of the node could read them (ps)
 * and where one argument of 128 KiB is refused (MAX_ARG_STRLEN).
 */
export function shellExports(env: Record<string, string>): string {
  return Object.entries(env).map(([name, value]) => `export ${name}=${quote([value])}\n`).join('');
}
