// Every failure jobbox reports has one shape, `jobbox: <subject>: <problem>: <value>`,
// and carries the exit code its caller needs. LSF reads a pre-exec's code as an
// instruction (99 = give up, other non-zero = requeue), the Slurm Prolog turns it into a
// cancel or a requeue (scheduler/slurm.ts prologOutcome), so the code is chosen where the
// error is raised, where its nature is known.

export const EXIT = {
  /** Wrong use of the command line itself. */
  usage: 2,
  /** Will not heal by retrying: bad config, a disallowed image, bad job data. LSB_EXIT_PRE_ABORT. */
  permanent: 99,
  /** May heal: a node or the registry is unreachable. LSF requeues the job. */
  transient: 1,
  /** esub rejection: LSB_SUB_ABORT_VALUE. */
  esubReject: 97,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class JobboxError extends Error {
  constructor(
    readonly subject: string,
    readonly problem: string,
    readonly value: string,
    readonly exitCode: ExitCode = EXIT.permanent,
  ) {
    super(`jobbox: ${subject}: ${problem}: ${printable(value)}`);
    this.name = 'JobboxError';
  }
}

/** Values come from attackers too: keep control characters and huge values out of terminals and logs. */
/** Text that may carry what a user chose, for a terminal: every control character (C0, DEL, C1) as \\uXXXX, nothing cut. */
export function noControls(value: string): string {
  return value.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function printable(value: string): string {
  const shown = value.length > 200 ? `${value.slice(0, 200)}… (${value.length} chars)` : value;
  // JSON escapes C0 controls; DEL and the C1 range (U+009B is a one-byte terminal escape) too.
  return JSON.stringify(shown)
    .slice(1, -1)
    .replace(/[\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The one place an error becomes output: a single stderr line. An error nobody foresaw is
 * permanent (99): LSF requeues a pre-exec that exits 1 without end (LOCAL_MAX_PREEXEC_RETRY is
 * unlimited by default), and the Slurm Prolog cancels rather than requeues. What may heal (a
 * node, the registry, ports) is raised as a transient JobboxError where it is known.
 */
export function formatError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof JobboxError) return { line: err.message, exitCode: err.exitCode };
  const message = err instanceof Error ? err.message : String(err);
  return { line: `jobbox: internal: unexpected failure: ${printable(message)}`, exitCode: EXIT.permanent };
}
