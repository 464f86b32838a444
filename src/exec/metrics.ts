// The metrics file, `<metrics_dir>/jobbox.prom` (plan/metrics.ts says what is in it): read,
// changed by one event, written back whole, under a lock (proper-lockfile), so that two hooks
// ending at once both count. The directory must be root's and writable by no one else
// (node_exporter only reads the file): whoever could write there could hold the lock and make
// every job start wait. Even so nothing here follows a symlink: the file is read with
// O_NOFOLLOW and at most 1 MiB of it, and replaced by renaming a new file made with O_EXCL. The
// lock is waited for about a second at most. Callers treat a failure as a log line.
import { constants } from 'node:fs';
import { lstat, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { JobboxError } from '../errors.js';
import { parseMetrics, renderMetrics, type Series } from '../plan/metrics.js';

export const METRICS_FILE = 'jobbox.prom';
const MAX_BYTES = 1 << 20;

async function readBounded(file: string): Promise<string> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!fh) return '';
  try {
    const buf = Buffer.alloc(MAX_BYTES);
    const { bytesRead } = await fh.read(buf, 0, MAX_BYTES, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

export async function updateMetrics(dir: string, change: (s: Series) => void): Promise<void> {
  if (dir === '') return;
  const st = await lstat(dir);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) throw new JobboxError('metrics_dir', 'must be a directory of root\'s, not writable by group or others', dir);
  // Loaded here: only a host with metrics on pays for it, and only after the job's work is done.
  const { default: lockfile } = await import('proper-lockfile');
  const release = await lockfile.lock(dir, {
    lockfilePath: join(dir, '.jobbox.prom.lock'),
    realpath: false,
    stale: 10_000,
    retries: { retries: 20, minTimeout: 5, maxTimeout: 50 },
    // The default throws from a timer: a lock lost while we hold it is only a count lost.
    onCompromised: () => undefined,
  });
  try {
    const file = join(dir, METRICS_FILE);
    const series = parseMetrics(await readBounded(file));
    change(series);
    const tmp = join(dir, `.${METRICS_FILE}.${process.pid}`);
    await rm(tmp, { force: true });
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      await fh.writeFile(renderMetrics(series));
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } finally {
    await release();
  }
}
