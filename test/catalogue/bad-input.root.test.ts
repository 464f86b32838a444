// The bad-input catalogue's cases only root can check: jobbox refuses a config, a state dir or
// a port dir that others could write or swap only when it runs as root. The root project runs
// them (vitest.config.ts); a unit run as a normal user does not include this file.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config/defaults.js';
import { loadConfig } from '../../src/config/load.js';
import { formatError } from '../../src/errors.js';
import { makeJobDir, removeJobDir, writeJobFile } from '../../src/exec/jobdir.js';
import { allocatePort, claimedPort, releasePort } from '../../src/ports/allocator.js';
import { CANARY, ROOT, VICTIM, cleanups, configText, preExecWith, refused, snapshot, withDeadline, type Env } from './catalogue.js';


// What the pre-exec says of the default config on this machine: it must be a refusal (no file, or
// the package's unconfigured one), or the two JOBBOX_CONFIG cases below could not tell anything.
const DEFAULT_REFUSAL = await loadConfig(DEFAULT_CONFIG).then(
  () => { throw new Error(`${DEFAULT_CONFIG} is a working config: run the root project where it is absent or the package's own`); },
  (err: unknown) => formatError(err).line,
);

describe('as root: config: a file others could write or swap refuses the pre-exec', () => {
  // [case, prepare(dir, file) → the path the pre-exec is given (or undefined: JOBBOX_CONFIG), message, exit]
  it.each<[string, (dir: string, file: string) => Promise<{ cli?: string; env?: Env }>, string, number]>([
    ['group-writable', async (_d, f) => (await chmod(f, 0o664), { cli: f }), 'jobbox: config: file is writable by group or others (mode 0664): {file}', 99],
    ['world-writable', async (_d, f) => (await chmod(f, 0o646), { cli: f }), 'jobbox: config: file is writable by group or others (mode 0646): {file}', 99],
    ['not root-owned', async (_d, f) => (await chown(f, 65534, 65534), { cli: f }), 'jobbox: config: file is not owned by root (uid 65534): {file}', 99],
    ['in a group-writable directory', async (d, f) => (await chmod(d, 0o775), { cli: f }), 'jobbox: config: parent directory is writable by group or others (mode 0775): {dir}', 99],
    ['in a directory owned by a user', async (d, f) => (await chown(d, 65534, 65534), { cli: f }), 'jobbox: config: parent directory is not owned by root (uid 65534): {dir}', 99],
    ['a symlink into /tmp', async (d) => ({ cli: await tmpConfig(d, 0) }), 'jobbox: config: parent directory is writable by group or others (mode 1777): /tmp', 99],
    // A root hook's environment is the job's: JOBBOX_CONFIG is never read, whatever it names.
    // The pre-exec reads /etc/jobbox/jobbox.ini instead: missing, or the package's, which is
    // refused until an admin configures it (packaging/deb.sh).
    ['JOBBOX_CONFIG naming a user\'s file (ignored)', async (d) => ({ env: { JOBBOX_CONFIG: await tmpConfig(d, 65534) } }), DEFAULT_REFUSAL, 99],
    ['a directory', async (d) => ({ cli: d }), 'jobbox: config: not a regular file: {dir}', 99],
    ['a FIFO', async (d) => (execFileSync('mkfifo', ['-m', '0644', '--', join(d, 'fifo.ini')]), { cli: join(d, 'fifo.ini') }), 'jobbox: config: not a regular file: {dir}/fifo.ini', 99],
    ['JOBBOX_CONFIG naming a FIFO (ignored)', async (d) => (execFileSync('mkfifo', ['-m', '0644', '--', join(d, 'fifo.ini')]), { env: { JOBBOX_CONFIG: join(d, 'fifo.ini') } }), DEFAULT_REFUSAL, 99],
    ['missing', async (d) => ({ cli: join(d, 'missing.ini') }), 'jobbox: config: cannot read the file (ENOENT): {dir}/missing.ini', 99],
    ['--config ""', async () => ({ cli: '' }), 'jobbox: --config: must name a file: ', 2],
  ])('%s', async (_case, prepare, message, exitCode) => {
    const dir = await mkdtemp(join(ROOT, 'cfg-'));
    const file = join(dir, 'jobbox.ini');
    await writeFile(file, configText(ROOT), { mode: 0o644 });
    const { cli, env = {} } = await prepare(dir, file);
    const expected = message.replace('{file}', file).replace('{dir}', dir);
    await refused(withDeadline(preExecWith({ ...CANARY, ...env }, cli), dir), expected, exitCode);
  });
});

/** A valid config in a fresh /tmp dir (as a user would place one), linked from dir as link.ini. */
async function tmpConfig(dir: string, uid: number): Promise<string> {
  const tmp = mkdtempSync(join(tmpdir(), 'jobbox-catalogue-'));
  cleanups.push(tmp);
  const file = join(tmp, 'jobbox.ini');
  writeFileSync(file, configText(ROOT), { mode: 0o644 });
  chownSync(file, uid, uid);
  await symlink(file, join(dir, 'link.ini'));
  return uid === 0 ? join(dir, 'link.ini') : file;
}

// ---- planted files ----

const RANGE4 = { first: 30000, last: 30003 };
const CLAIM = '5.0.h';

describe('as root: planted files where jobbox writes: refused, the target untouched', () => {
  // [case, plant(d), act(d), message with {d}, exit]: d is a fresh root-owned dir; d and VICTIM are watched.
  it.each<[string, (d: string) => void, (d: string) => Promise<unknown>, string, number]>([
    ['job dir is a symlink to another dir', (d) => (plantOther(d), mkdirSync(join(d, 'jobs')), symlinkSync(join(d, 'other'), join(d, 'jobs', '1.0.h'))), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: is not a directory (a symlink or file was planted?): {d}/jobs/1.0.h', 99],
    ['job dir is a symlink to a victim file', (d) => (mkdirSync(join(d, 'jobs')), symlinkSync(VICTIM, join(d, 'jobs', '1.0.h'))), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: is not a directory (a symlink or file was planted?): {d}/jobs/1.0.h', 99],
    ['job dir is a regular file', (d) => (mkdirSync(join(d, 'jobs')), writeFileSync(join(d, 'jobs', '1.0.h'), 'x')), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: is not a directory (a symlink or file was planted?): {d}/jobs/1.0.h', 99],
    ['job dir pre-made by a user', (d) => (mkdirSync(join(d, 'jobs', '1.0.h'), { recursive: true }), chownSync(join(d, 'jobs', '1.0.h'), 65534, 65534)), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: must be owned by root and not writable by group or others: {d}/jobs/1.0.h', 99],
    ['job dir world-writable', (d) => (mkdirSync(join(d, 'jobs', '1.0.h'), { recursive: true }), chmodSync(join(d, 'jobs', '1.0.h'), 0o777)), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: job dir: must be owned by root and not writable by group or others: {d}/jobs/1.0.h', 99],
    ['state_dir is a symlink to another dir', (d) => (plantOther(d), symlinkSync(join(d, 'other'), join(d, 'jobs'))), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: is not a directory (a symlink or file was planted?): {d}/jobs', 99],
    ['state_dir is a dangling symlink', (d) => symlinkSync(join(d, 'nowhere'), join(d, 'jobs')), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: is not a directory (a symlink or file was planted?): {d}/jobs', 99],
    ['state_dir is a regular file', (d) => writeFileSync(join(d, 'jobs'), 'x'), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: is not a directory (a symlink or file was planted?): {d}/jobs', 99],
    ['state_dir group-writable', (d) => (mkdirSync(join(d, 'jobs')), chmodSync(join(d, 'jobs'), 0o775)), (d) => makeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: must be owned by root and not writable by group or others: {d}/jobs', 99],
    ['port dir is a symlink to another dir', (d) => (plantOther(d), symlinkSync(join(d, 'other'), join(d, 'ports'))), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports', 99],
    ['port dir is a symlink, at release', (d) => (plantOther(d), symlinkSync(join(d, 'other'), join(d, 'ports'))), (d) => releasePort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports', 99],
    ['port dir is a symlink, at lookup', (d) => (plantOther(d), symlinkSync(join(d, 'other'), join(d, 'ports'))), (d) => claimedPort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports', 99],
    ['port dir is a file', (d) => writeFileSync(join(d, 'ports'), 'x'), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports', 99],
    ['port dir owned by a user', (d) => (mkdirSync(join(d, 'ports'), { mode: 0o700 }), chownSync(join(d, 'ports'), 65534, 65534)), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports', 99],
    ['port dir world-writable', (d) => (mkdirSync(join(d, 'ports')), chmodSync(join(d, 'ports'), 0o1777)), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports', 99],
    // Entering it is enough to give a port file a name of one's own where hard links are not protected.
    ['port dir open to others (0755)', (d) => mkdirSync(join(d, 'ports'), { mode: 0o755 }), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports', 99],
    ['port dir open to others, at release', (d) => mkdirSync(join(d, 'ports'), { mode: 0o755 }), (d) => releasePort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports', 99],
    ['claims dir is a symlink to another dir', (d) => (plantOther(d), mkdirSync(join(d, 'ports'), { mode: 0o700 }), symlinkSync(join(d, 'other'), join(d, 'ports', 'claims'))), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports/claims', 99],
    ['claims dir is a symlink, at release', (d) => (plantOther(d), mkdirSync(join(d, 'ports'), { mode: 0o700 }), symlinkSync(join(d, 'other'), join(d, 'ports', 'claims'))), (d) => releasePort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports/claims', 99],
    ['claims dir is a symlink, at lookup', (d) => (plantOther(d), mkdirSync(join(d, 'ports'), { mode: 0o700 }), symlinkSync(join(d, 'other'), join(d, 'ports', 'claims'))), (d) => claimedPort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be a directory, not a symlink or file: {d}/ports/claims', 99],
    ['claims dir owned by a user', (d) => (mkdirSync(join(d, 'ports', 'claims'), { recursive: true, mode: 0o700 }), chownSync(join(d, 'ports', 'claims'), 65534, 65534)), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports/claims', 99],
    ['claims dir world-writable', (d) => (mkdirSync(join(d, 'ports', 'claims'), { recursive: true, mode: 0o700 }), chmodSync(join(d, 'ports', 'claims'), 0o1777)), (d) => releasePort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports/claims', 99],
    ['claims dir open to others (0755)', (d) => (mkdirSync(join(d, 'ports', 'claims'), { recursive: true, mode: 0o700 }), chmodSync(join(d, 'ports', 'claims'), 0o755)), (d) => claimedPort(join(d, 'ports'), CLAIM), 'jobbox: port dir: must be owned by root with no access for group or others (mode 0700): {d}/ports/claims', 99],
    ['every port file is garbage', (d) => plantGarbage(d), (d) => allocatePort(join(d, 'ports'), { first: 30001, last: 30003 }, CLAIM), 'jobbox: ports: no free port in 30001-30003 (3 port files are not regular files): {d}/ports', 1],
    ['an inverted range', (d) => mkdirSync(join(d, 'ports')), (d) => allocatePort(join(d, 'ports'), { first: 30005, last: 30000 }, CLAIM), 'jobbox: ports: range must be whole numbers with 1 <= first <= last <= 65535: 30005-30000', 99],
    ['a claim name with a path', (d) => mkdirSync(join(d, 'ports')), (d) => allocatePort(join(d, 'ports'), RANGE4, '../x'), 'jobbox: port claim: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$: ../x', 99],
    // Teardown and gc delete recursively as root: the state dir is checked again right before.
    ['state_dir swapped for a symlink before a job dir is removed', (d) => (plantOther(d), mkdirSync(join(d, 'other', '1.0.h')), writeFileSync(join(d, 'other', '1.0.h', 'keep'), 'keep\n'), symlinkSync(join(d, 'other'), join(d, 'jobs'))), (d) => removeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: is not a directory (a symlink or file was planted?): {d}/jobs', 99],
    ['state_dir owned by a user before a job dir is removed', (d) => (mkdirSync(join(d, 'jobs', '1.0.h'), { recursive: true }), chownSync(join(d, 'jobs'), 65534, 65534)), (d) => removeJobDir(join(d, 'jobs', '1.0.h')), 'jobbox: state_dir: must be owned by root and not writable by group or others: {d}/jobs', 99],
  ])('%s', async (_case, plant, act, message, exitCode) => {
    const d = mkdtempSync(join(ROOT, 'plant-'));
    plant(d);
    await refused(() => act(d), message.replace('{d}', d), exitCode, [d, VICTIM]);
  });
});

describe('as root: planted files where jobbox writes: the write goes on safely, the victim untouched', () => {
  const job = (d: string) => join(d, 'jobs', '1.0.h');
  // [case, plant(d), act(d), check(d)]; d (minus what the act is meant to change) and VICTIM are compared before and after.
  it.each<[string, (d: string) => void, (d: string) => Promise<unknown>, string[], (d: string, result: unknown) => void]>([
    ['a job file is a symlink to a victim in /etc', (d) => (mkdirSync(job(d), { recursive: true }), symlinkSync(VICTIM, join(job(d), 'env'))), (d) => writeJobFile({ path: join(job(d), 'env'), content: 'A=1\n', mode: 0o644 }), ['jobs/1.0.h', 'jobs/1.0.h/env'], (d) => expectFile(join(job(d), 'env'), 'A=1\n')],
    ['a job file is a hard link to a victim', (d) => (mkdirSync(job(d), { recursive: true }), writeFileSync(join(d, 'victim'), 'v\n'), linkSync(join(d, 'victim'), join(job(d), 'userkey'))), (d) => writeJobFile({ path: join(job(d), 'userkey'), content: 'KEY\n', mode: 0o600, owner: { uid: 65534, gid: 65534 } }), ['jobs/1.0.h', 'jobs/1.0.h/userkey', 'victim'], (d) => (expectFile(join(job(d), 'userkey'), 'KEY\n'), expect(readFileSync(join(d, 'victim'), 'utf8')).toBe('v\n'))],
    ['a job file is a symlink to another dir', (d) => (plantOther(d), mkdirSync(job(d), { recursive: true }), symlinkSync(join(d, 'other'), join(job(d), 'hostfile'))), (d) => writeJobFile({ path: join(job(d), 'hostfile'), content: 'h slots=1\n', mode: 0o644 }), ['jobs/1.0.h', 'jobs/1.0.h/hostfile'], (d) => expectFile(join(job(d), 'hostfile'), 'h slots=1\n')],
    ['a job file is a FIFO', (d) => (mkdirSync(job(d), { recursive: true }), execFileSync('mkfifo', ['--', join(job(d), 'cwd')])), (d) => writeJobFile({ path: join(job(d), 'cwd'), content: '/home/u\n', mode: 0o644 }), ['jobs/1.0.h', 'jobs/1.0.h/cwd'], (d) => expectFile(join(job(d), 'cwd'), '/home/u\n')],
    ['the job dir is a symlink at removal', (d) => (plantOther(d), mkdirSync(join(d, 'jobs')), symlinkSync(join(d, 'other'), job(d))), (d) => removeJobDir(job(d)), ['jobs', 'jobs/1.0.h'], (d) => expect(sortedDir(join(d, 'jobs'))).toEqual([])],
    ['port-dir garbage: port.abc, claim.x, a dir, a symlink to a victim, a FIFO', (d) => plantGarbage(d), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), ['ports', 'ports/port.30000', 'ports/claims', `ports/claims/claim.${CLAIM}.30000`], (_d, port) => expect(port).toBe(30000)],
    ['our own claim name is a symlink to a victim', (d) => (plantGarbage(d), symlinkSync(VICTIM, join(d, 'ports', 'claims', `claim.${CLAIM}.30001`))), (d) => allocatePort(join(d, 'ports'), RANGE4, CLAIM), ['ports', 'ports/port.30000', 'ports/claims', `ports/claims/claim.${CLAIM}.30000`, `ports/claims/claim.${CLAIM}.30001`], (d, port) => (expect(port).toBe(30000), expect(sortedDir(join(d, 'ports', 'claims')).filter((n) => n.startsWith(`claim.${CLAIM}.`))).toEqual([`claim.${CLAIM}.30000`]))],
    ['our own claim name is a symlink to a victim, at release', (d) => (mkdirSync(join(d, 'ports', 'claims'), { recursive: true, mode: 0o700 }), symlinkSync(VICTIM, join(d, 'ports', 'claims', `claim.${CLAIM}.30001`))), (d) => releasePort(join(d, 'ports'), CLAIM), ['ports/claims', `ports/claims/claim.${CLAIM}.30001`], (d) => expect(sortedDir(join(d, 'ports', 'claims'))).toEqual([])],
  ])('%s', async (_case, plant, act, changes, check) => {
    const d = mkdtempSync(join(ROOT, 'plant-'));
    plant(d);
    const changed = new Set([d, ...changes.map((c) => join(d, c))]);
    const watched = async () => (await snapshot([d, VICTIM])).filter((l) => !changed.has(l.slice(0, l.indexOf(' '))));
    const before = await watched();
    const result = await act(d);
    check(d, result);
    expect(await watched()).toEqual(before);
    expect(readFileSync(VICTIM, 'utf8')).toBe('victim: root must never write here\n');
  });
});

function plantOther(d: string): void {
  mkdirSync(join(d, 'other'));
  writeFileSync(join(d, 'other', 'keep'), 'keep\n');
}

/** port.abc, claim.x (in the port dir and in claims/), a directory port.30001, a symlink port.30002 → VICTIM, a FIFO port.30003. */
function plantGarbage(d: string): void {
  const ports = join(d, 'ports');
  mkdirSync(join(ports, 'claims'), { recursive: true, mode: 0o700 });
  writeFileSync(join(ports, 'port.abc'), 'garbage\n');
  writeFileSync(join(ports, 'claim.x'), 'garbage\n');
  writeFileSync(join(ports, 'claims', 'claim.x'), 'garbage\n');
  mkdirSync(join(ports, 'port.30001'));
  symlinkSync(VICTIM, join(ports, 'port.30002'));
  execFileSync('mkfifo', ['--', join(ports, 'port.30003')]);
}

function expectFile(path: string, content: string): void {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    expect(readFileSync(fd, 'utf8')).toBe(content);
  } finally {
    closeSync(fd);
  }
}

function sortedDir(dir: string): string[] {
  return readdirSync(dir).sort();
}

