// Which of the user's variables reach the container. The policy is data: a deny-list of
// names that change how loaders, shells, ssh or docker behave, and of scheduler variables
// (which describe the host side, not the container). Identity variables are set from the
// account database instead.

const DENY = new Set([
  'BASH_ENV', 'ENV', 'IFS', 'CDPATH', 'GLOBIGNORE', 'PS4', 'SHELLOPTS', 'BASHOPTS', 'PROMPT_COMMAND',
  'NODE_OPTIONS', 'PERL5OPT', 'PERL5LIB', 'PYTHONSTARTUP', 'PYTHONPATH', 'RUBYOPT',
  'HOME', 'USER', 'LOGNAME', 'PATH', 'SHELL', 'MAIL', 'HOSTNAME', 'PWD', 'OLDPWD', 'SHLVL', '_',
  'TMPDIR', 'XDG_RUNTIME_DIR', 'DBUS_SESSION_BUS_ADDRESS',
  // Assigning it on a plain object would set the prototype instead of a variable.
  '__proto__',
]);
const DENY_PREFIX = ['LD_', 'DOCKER_', 'SSH_', 'BASH_FUNC_', 'GCONV_', 'MALLOC_', 'LSB_', 'LSF_', 'LS_', 'SLURM_', 'JOBBOX_'];
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export function allowedVariable(name: string): boolean {
  return NAME.test(name) && !DENY.has(name) && !DENY_PREFIX.some((p) => name.startsWith(p));
}

/**
 * The user's environment as it may enter the container. Values with newlines or NULs are
 * dropped (docker's env-file and ssh cannot carry them faithfully); the names dropped are
 * returned so the caller can log them.
 */
export function containerEnv(user: Record<string, string>): { env: Record<string, string>; dropped: string[] } {
  const env: Record<string, string> = {};
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(user)) {
    if (allowedVariable(name) && !/[\n\r\0]/.test(value) && value.length <= 65536) env[name] = value;
    else dropped.push(name);
  }
  return { env, dropped };
}
