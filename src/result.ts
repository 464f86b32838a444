// What a command did, wherever it ran (this host or a node over ssh): the one result type of
// the executors, which the scheduler parsers read too.

export interface Result {
  /** undefined when it has no exit code: see `error`. */
  code: number | undefined;
  stdout: string;
  stderr: string;
  /** Why it did not run to an exit code: not found on PATH, timed out, killed. */
  error?: string;
}

/** `squeue: exit 1: slurm_load_jobs error: …`: the command and its first line of complaint. */
export function describeFailure(command: string, r: Result): string {
  const said = r.stderr.split('\n').map((l) => l.trim()).find(Boolean);
  if (r.error) return `${command}: ${r.error}`;
  return `${command}: exit ${r.code}${said ? `: ${said}` : ''}`;
}

/** The parts of an execa result (reject: false) the executors read. */
export interface ExecaLike {
  exitCode?: number | undefined;
  stdout?: unknown;
  stderr?: unknown;
  timedOut?: boolean | undefined;
  code?: string | undefined;
  shortMessage?: string | undefined;
}

/** An execa result → a Result: its exit code, or why there is none. */
export function fromExeca(r: ExecaLike, timeoutMs: number): Result {
  const out = { code: r.exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if (r.timedOut) return { ...out, code: undefined, error: `timed out after ${timeoutMs / 1000} s` };
  if (r.code === 'ENOENT') return { ...out, code: undefined, error: 'not found on PATH' };
  if (r.exitCode === undefined) return { ...out, error: r.shortMessage ?? 'did not exit' };
  return out;
}
