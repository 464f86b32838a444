import { chmod } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Attempt } from './job/job.js';

// Two audiences: admins grep the JSON log file, users and schedulers read stderr.
// pino is loaded only by commands that log, so `jobbox --version` never pays for it.

export async function openLog(file: string, level: string): Promise<Logger> {
  // The default export, the one a bundled CommonJS package has for sure (packaging/bundle.mjs).
  const { default: pino } = await import('pino');
  // sync: hooks exit right after their last line, and async writes would be lost.
  // 0600: the log names jobs, ports and hosts, which other users have no business reading. The
  // mode applies to a new file only: one an older jobbox or logrotate made is closed up too.
  const dest = pino.destination({ dest: file, sync: true, mkdir: true, mode: 0o600 });
  if (process.getuid?.() === 0) await chmod(file, 0o600).catch(() => {});
  return pino({ level, base: { pid: process.pid } }, dest);
}

export function jobLog(log: Logger, job: Attempt, host: string): Logger {
  return log.child({ job: job.id, index: job.index, attempt: job.attempt, host });
}

/** A short human line on stderr, in the same voice as errors. */
export function say(message: string): void {
  process.stderr.write(`jobbox: ${message}\n`);
}
