// The only code that writes jobbox's per-job files. Root writes them, so every path is
// treated as a possible trap: directories are checked with lstat (never followed), files are
// created O_EXCL|O_NOFOLLOW under a temporary name and renamed into place (rename replaces a
// planted symlink instead of writing through it), then chowned by descriptor.
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, rename, rm, unlink } from 'node:fs/promises';
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


/**
 * Creates (or accepts) `<state_dir>/.status`: root's, 0711, so that the owner of a record can
 * open it by its name while nobody but root can list the directory or create a name in it. The
 * mode is set after mkdir: a root hook runs with the job's umask.
 */
export async function makeStatusDir(dir: string): Promise<void> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true, mode: 0o755 }).catch(() => undefined);
  await checkedDir(parent, 'state_dir');
  let made = true;
  try {
    await mkdir(dir, { mode: 0o711 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    made = false;
  }
  await checkedDir(dir, 'status dir');
  if (made) await chmod(dir, 0o711);
}

/**
 * A start record as whoever runs `jobbox status` may read it: never through a symlink, only a
 * regular file, at most `maxBytes`. undefined when it cannot be opened (absent, or not this
 * user's to read), so the caller cannot tell the two apart, and neither can the user.
 */
export async function readStatusFile(path: string, maxBytes: number): Promise<{ text: string; uid: number } | undefined> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size > maxBytes) return undefined;
    const buffer = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await handle.read(buffer, 0, maxBytes + 1, 0);
    if (bytesRead > maxBytes) return undefined;
    return { text: buffer.subarray(0, bytesRead).toString('utf8'), uid: info.uid };
  } finally {
    await handle.close();
  }
}

/** Removes one start record; the directory is checked again first, as removeJobDir checks state_dir. Already gone is success. */
export async function removeStatusFile(dir: string, name: string): Promise<void> {
  await checkedDir(dir, 'status dir');
  await unlink(`${dir}/${name}`).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
