import type { Readable } from 'node:stream';
import { execa, ExecaError } from 'execa';
import { EXIT, JobboxError } from '../errors.js';

// The only code that runs the container engine on this host. Commands sent to other nodes
// go through the ssh executor instead, built from the same planners.

function failure(engine: string, args: string[], err: unknown): JobboxError {
  const detail = err instanceof ExecaError ? String(err.stderr ?? err.shortMessage).trim().split('\n').pop() : String(err);
  return new JobboxError(`${engine} ${args[0]}`, detail || 'failed', args.at(-1) ?? '', EXIT.transient);
}

export async function importImage(
  engine: string,
  tar: Readable,
  ref: string,
  labels: Record<string, string>,
): Promise<void> {
  const changes = Object.entries(labels).flatMap(([k, v]) => ['--change', `LABEL ${k}=${JSON.stringify(v)}`]);
  const args = ['import', ...changes, '-', ref];
  try {
    const child = execa(engine, args, { stdin: 'pipe', stdout: 'ignore' });
    tar.pipe(child.stdin);
    await child;
  } catch (err) {
    throw failure(engine, args, err);
  }
}

export async function pushImage(engine: string, ref: string): Promise<void> {
  const args = ['push', ref];
  try {
    await execa(engine, args, { stdin: 'ignore', stdout: 'ignore' });
  } catch (err) {
    throw failure(engine, args, err);
  }
}
