// What the orphan reaper asks a scheduler about a job, and what it may be told: the words both
// scheduler modules parse their clients' output into, and plan/gc.ts decides on.

export type Scheduler = 'lsf' | 'slurm';

/** A job as the scheduler names it: LSF `id` or `id[index]`, Slurm's per-task job id. */
export interface JobRef {
  id: string;
  index: number;
}

export const refKey = (ref: JobRef): string => `${ref.id}.${ref.index}`;

/** What the scheduler said about one job. */
export type Answer =
  /** It has a record: LSF `stat`, Slurm job state and restart count. */
  | { kind: 'record'; state: string; restarts?: number }
  /** It says, in so many words, that it has no such job (purged, cleaned, never known). */
  | { kind: 'unknown' }
  /** No answer we can trust: the query failed, timed out, or the job is missing from it. */
  | { kind: 'failed'; reason: string };

/** Whether a record says the attempt is over; `over: undefined` when it cannot say. */
export interface Verdict {
  over: boolean | undefined;
  why: string;
}
