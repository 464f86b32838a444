// Per-job sshd ports, claimed with hard links in a shared (often NFS) directory:
// `port.<N>` is the port, `claims/claim.<claim>.<N>` is a job's link to it. link() is atomic even
// on NFS, but every job links to its own name, so it never fails under contention: exclusion
// comes only from seeing, freshly, that the port file has exactly two names (its own and ours).
// The claims live in their own directory so that finding a job's claims reads only the claims,
// not every port file (bench P5: listing 1000 port files twice per allocation cost 10× the rest).
//
// Synchronous calls: each pre-exec claims one port, and with 32 allocators on 2 cores every
// async call's thread-pool round trip waits for a CPU again (bench P5 measures this).
import { closeSync, constants, fstatSync, futimesSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, unlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT, JobboxError } from '../errors.js';

export interface PortRange { first: number; last: number }

export const CLAIM = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;
// A claim may contain dots, so the port is whatever follows the last one. Canonical digits only
// (no leading zero), so each (claim, port) has exactly one name.
const CLAIM_NAME = /^claim\.(.+)\.([1-9][0-9]{0,4})$/;
// One full scan, then a couple more: a lost race leaves the port free for the next round.
const ROUNDS = 3;

/** Returns the claimed port. `exclude`: ports found busy on a node, skip them this time. */
export async function allocatePort(dir: string, range: PortRange, claim: string, exclude: ReadonlySet<number> = new Set()): Promise<number> {
  checkClaim(claim);
  checkRange(range);
  portArea(dir, true);

  // A re-run pre-exec (a requeued job keeps its id) gets back what it holds. Anything else of
  // ours in range is dropped: a second port, an excluded one, or one that is no longer valid.
  // Out of range is left alone (garbage to this range); releasePort still removes it.
  let held: number | undefined;
  for (const port of ownPorts(dir, claim)) {
    if (port < range.first || port > range.last) continue;
    if (held === undefined && !exclude.has(port) && verify(dir, claim, port, true)) held = port;
    else unlinkQuiet(claimPath(dir, claim, port));
  }
  if (held !== undefined) return held;

  const candidates: number[] = [];
  for (let port = range.first; port <= range.last; port++) if (!exclude.has(port)) candidates.push(port);
  let unusable = 0;
  for (let round = 0; round < ROUNDS; round++) {
    unusable = 0;
    for (const port of shuffle(candidates)) {
      const outcome = tryClaim(dir, claim, port);
      if (outcome === 'won') return port;
      if (outcome === 'unusable') unusable++;
      // Jitter only after a lost race, so that the two losers do not collide again in lockstep.
      if (outcome === 'lost') await sleep(Math.random() * 5);
    }
    await sleep(Math.random() * 5);
  }
  const note = unusable > 0 ? ` (${unusable} port files are not regular files)` : '';
  throw new JobboxError('ports', `no free port in ${range.first}-${range.last}${note}`, dir, EXIT.transient);
}

/** Removes every claims/claim.<claim>.<N> (exactly this claim, never another's); returns the ports freed. Idempotent: nothing there = []. */
export async function releasePort(dir: string, claim: string): Promise<number[]> {
  checkClaim(claim);
  if (!portArea(dir, false)) return [];
  // Best effort: try every claim, then report what could not be removed.
  const freed: number[] = [];
  const failed: string[] = [];
  for (const port of ownPorts(dir, claim)) {
    const name = claimName(claim, port);
    try {
      if (unlinkQuiet(join(dir, CLAIMS, name))) freed.push(port);
    } catch (err) {
      failed.push(`${name} (${code(err) ?? 'error'})`);
    }
  }
  if (failed.length > 0) throw new JobboxError('ports', 'cannot release', failed.join(', '), EXIT.transient);
  return freed.sort((a, b) => a - b);
}

/** The port this claim holds, if any (valid claims only). */
export async function claimedPort(dir: string, claim: string): Promise<number | undefined> {
  checkClaim(claim);
  if (!portArea(dir, false)) return undefined;
  for (const port of ownPorts(dir, claim)) if (verify(dir, claim, port, false)) return port;
  return undefined;
}

/** Every claim in the dir: [{claim, port, mtimeMs}] — for the orphan reaper later. mtimeMs is when it was claimed. */
export async function listClaims(dir: string): Promise<{ claim: string; port: number; mtimeMs: number }[]> {
  if (!portArea(dir, false)) return [];
  const claims: { claim: string; port: number; mtimeMs: number }[] = [];
  for (const name of readdirSync(join(dir, CLAIMS))) {
    const parsed = parseClaimName(name);
    const st = parsed && lstatQuiet(join(dir, CLAIMS, name));
    if (parsed && st?.isFile()) claims.push({ ...parsed, mtimeMs: st.mtimeMs });
  }
  return claims.sort((a, b) => a.port - b.port);
}

type Outcome = 'won' | 'lost' | 'busy' | 'unusable';

function tryClaim(dir: string, claim: string, port: number): Outcome {
  const portPath = join(dir, `port.${port}`);
  let st = lstatQuiet(portPath);
  if (!st) {
    // Lazily created; EEXIST means another job made it first, which is just as good.
    try {
      closeSync(openSync(portPath, constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY, 0o644));
    } catch (err) {
      if (code(err) !== 'EEXIST') throw err;
    }
    st = lstatQuiet(portPath);
  }
  // A symlink or directory planted here is never followed or linked to.
  if (!st?.isFile()) return 'unusable';
  if (st.nlink !== 1) return 'busy';
  const ours = claimPath(dir, claim, port);
  // EEXIST on our own name: a lost NFS reply made a successful link look failed. It is ours if it verifies.
  try {
    linkSync(portPath, ours);
  } catch (err) {
    if (code(err) !== 'EEXIST') throw err;
  }
  if (verify(dir, claim, port, true)) return 'won';
  unlinkQuiet(ours);
  return 'lost';
}

/**
 * A claim is valid when, asked freshly (open + fstat: NFS revalidates on open, a stat may be
 * served from cache), it is a regular file with exactly two names and is the same inode as
 * port.<N>. `touch` stamps the claim time on the inode, since a hard link has no time of its own.
 */
function verify(dir: string, claim: string, port: number, touch: boolean): boolean {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO must not hang the pre-exec.
    fd = openSync(claimPath(dir, claim, port), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const st = fstatSync(fd);
    const portSt = lstatQuiet(join(dir, `port.${port}`));
    const ok = st.isFile() && st.nlink === 2 && portSt?.isFile() === true && portSt.ino === st.ino && portSt.dev === st.dev;
    if (ok && touch) {
      const now = new Date();
      futimesSync(fd, now, now);
    }
    return ok;
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks the port dir and its claims dir (creating them when asked); false when one is missing
 * and not created. As root, anyone else able to write in either could plant links to take or
 * block ports, so both must be root's own, real directories.
 */
function portArea(dir: string, create: boolean): boolean {
  return checkDir(dir, create) && checkDir(join(dir, CLAIMS), create);
}

function checkDir(path: string, create: boolean): boolean {
  let st = lstatQuiet(path);
  if (!st) {
    if (!create) return false;
    try {
      mkdirSync(path, { mode: 0o755 });
    } catch (err) {
      if (code(err) !== 'EEXIST') throw new JobboxError('port dir', `cannot create (${code(err) ?? 'error'})`, path);
    }
    st = lstatQuiet(path);
  }
  if (!st?.isDirectory()) throw new JobboxError('port dir', 'must be a directory, not a symlink or file', path);
  if (process.getuid?.() === 0 && (st.uid !== 0 || (st.mode & 0o022) !== 0)) {
    throw new JobboxError('port dir', 'must be owned by root and not group or world writable', path);
  }
  return true;
}

function ownPorts(dir: string, claim: string): number[] {
  const ports: number[] = [];
  for (const name of readdirSync(join(dir, CLAIMS))) {
    const parsed = parseClaimName(name);
    if (parsed?.claim === claim) ports.push(parsed.port);
  }
  return ports;
}

function parseClaimName(name: string): { claim: string; port: number } | undefined {
  const m = CLAIM_NAME.exec(name);
  const claim = m?.[1];
  const port = Number(m?.[2]);
  return claim !== undefined && CLAIM.test(claim) && port <= 65535 ? { claim, port } : undefined;
}

const CLAIMS = 'claims';
const claimName = (claim: string, port: number) => `claim.${claim}.${port}`;
/** Where a claim's link lives (the reaper re-reads its time before reclaiming). */
export const claimPath = (dir: string, claim: string, port: number) => join(dir, CLAIMS, claimName(claim, port));

function checkClaim(claim: string): void {
  if (!CLAIM.test(claim)) throw new JobboxError('port claim', `must match ${CLAIM.source}`, claim);
}

function checkRange({ first, last }: PortRange): void {
  const ok = Number.isInteger(first) && Number.isInteger(last) && first >= 1 && first <= last && last <= 65535;
  if (!ok) throw new JobboxError('ports', 'range must be whole numbers with 1 <= first <= last <= 65535', `${first}-${last}`);
}

function shuffle<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function lstatQuiet(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** "Already gone" is success for cleanup; true when this call removed it. */
function unlinkQuiet(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if (code(err) === 'ENOENT') return false;
    throw err;
  }
}

const code = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;
