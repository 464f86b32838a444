// The only code that writes jobbox's per-job files. Root writes them, so every path is
// treated as a possible trap: directories are checked with lstat (never followed), files are
// created O_EXCL|O_NOFOLLOW under a temporary name and renamed into place (rename replaces a
// planted symlink instead of writing through it), then chowned by descriptor.
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { JobboxError } from '../errors.js';
import type { JobFile } from '../job/job.js';


async function checkedDir(path: string, subject: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) throw new JobboxError(subject, 'is not a directory (a symlink or file was planted?)', path);
  if (!info.isDirectory()) throw new JobboxError(subject, 'is not a directory (a symlink or file was planted?)', path);
  if (process.getuid?.() === 0 && (info.uid !== 0 || (info.mode & 0o022) !== 0)) {
    throw new JobboxError(subject, 'must be owned by root and not writable by group or others', path);
  }
}

/** Creates (or, for a re-run of the same attempt, accepts) the root-owned job directory. */
export async function makeJobDir(dir: string): Promise<void> {
  const parent = dirname(dir);
  // A planted file or dangling symlink makes mkdir fail first: report it as what it is.
  await mkdir(parent, { recursive: true, mode: 0o755 }).catch(() => undefined);
  await checkedDir(parent, 'state_dir');
  try {
    await mkdir(dir, { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  await checkedDir(dir, 'job dir');
}

export async function writeJobFile(file: JobFile): Promise<void> {
  const tmp = `${file.path}.${randomBytes(6).toString('hex')}.tmp`;
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const handle = await open(tmp, flags, file.mode);
  try {
    await handle.writeFile(file.content);
    await handle.chmod(file.mode);
    if (file.owner) await handle.chown(file.owner.uid, file.owner.gid);
  } catch (err) {
    await handle.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await handle.close();
  await rename(tmp, file.path);
}

/** A file's text, or undefined when absent; never through a symlink. */
export async function readJobFile(path: string): Promise<string | undefined> {
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Removes the job directory; already gone is success, and a planted symlink is removed, not
 * followed. The state dir is checked again first, as makeJobDir does: a recursive delete as root
 * must never run below a directory someone else could have swapped since the job started.
 */
export async function removeJobDir(dir: string): Promise<void> {
  const parent = dirname(dir);
  if (await lstat(parent).catch(() => undefined)) await checkedDir(parent, 'state_dir');
  const info = await lstat(dir).catch(() => undefined);
  if (!info) return;
  if (!info.isDirectory()) {
    await unlink(dir);
    return;
  }
  await rm(dir, { recursive: true, force: true });
}

