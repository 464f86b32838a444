// The one place argv becomes a shell string, for the remote shell and for logs alike. Its own
// module, free of ssh2, so that `lsf pre-exec --dry-run` and the job starter need not load ssh2.

// No '=': a bare NAME=value as the first word would be an assignment, not a command.
const SAFE = /^[A-Za-z0-9_@%+:,./-]+$/;

/** POSIX shell quoting of an argv, for the remote shell and for logs alike. */
export function quote(argv: string[]): string {
  return argv.map((a) => (SAFE.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
