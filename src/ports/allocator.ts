// Per-job sshd ports, claimed with hard links in a shared (often NFS) directory:
// `port.<N>` is the port, `claims/claim.<claim>.<N>` is a job's link to it. link() is atomic even
// on NFS, but every job links to its own name, so it never fails under contention: exclusion
// comes only from seeing, freshly, that the port file has exactly two names (its own and ours).
// The claims live in their own directory so that finding a job's claims reads only the claims,
// not every port file (bench P5: listing 1000 port files twice per allocation cost 10× the rest).
//
// Both directories are root's alone (0700): on a shared file system mounted on a node without
// fs.protected_hardlinks, anyone who can reach a port file can give it a name of their own, and
// the port would look taken for ever. Such names made before (or by a way around the mode) are
// outlived: a port file with more names than claims/ explains, unchanged for STALE_LINK_GRACE_MS,
// is replaced by a fresh one (replaceForeign).
//
// Synchronous calls: each setup claims one port, and with 32 allocators on 2 cores every
// async call's thread-pool round trip waits for a CPU again (bench P5 measures this).
import { closeSync, constants, fstatSync, futimesSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, unlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT, JobboxError } from '../errors.js';
import { STALE_LINK_GRACE_MS } from '../config/defaults.js';

export interface PortRange { first: number; last: number }

export const CLAIM = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;
// A claim may contain dots, so the port is whatever follows the last one. Canonical digits only
// (no leading zero), so each (claim, port) has exactly one name.
const CLAIM_NAME = /^claim\.(.+)\.([1-9][0-9]{0,4})$/;
// One full scan, then a couple more: a lost race leaves the port free for the next round.
const ROUNDS = 3;

/**
 * Returns the claimed port. `exclude`: ports found busy on a node, skip them this time.
 * `graceMs`: STALE_LINK_GRACE_MS; the tests pass 0 to judge a foreign name at once.
 */
export async function allocatePort(
  dir: string, range: PortRange, claim: string, exclude: ReadonlySet<number> = new Set(), graceMs = STALE_LINK_GRACE_MS,
): Promise<number> {
  checkClaim(claim);
  checkRange(range);
  portArea(dir, true);

  // One listing serves both: our own claims, and which ports any claim explains.
  const claims = readClaims(dir);
  const claimed = new Set(claims.map((c) => c.port));
  // A re-run setup (a requeued job keeps its id) gets back what it holds. Anything else of
  // ours in range is dropped: a second port, an excluded one, or one that is no longer valid.
  // Out of range is left alone (garbage to this range); releasePort still removes it.
  let held: number | undefined;
  for (const { port } of claims.filter((c) => c.claim === claim)) {
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
      const outcome = tryClaim(dir, claim, port, (st) => !claimed.has(port) && Date.now() - st.ctimeMs >= graceMs);
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

/** Every claim in the dir: [{claim, port, mtimeMs}], for the orphan reaper (lifecycle/gc.ts). mtimeMs is when it was claimed. */
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

/** `foreign`: whether a port file with more than one name has a name no claim explains, for long enough. */
function tryClaim(dir: string, claim: string, port: number, foreign: (st: Stats) => boolean): Outcome {
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
  if (st.nlink !== 1 && !(foreign(st) && replaceForeign(dir, claim, port, foreign))) return 'busy';
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
    // O_NONBLOCK: a FIFO must not hang the setup.
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
 * Puts a fresh port.<N> in place of one whose extra names no claim explains (see the top). The
 * judgement is made again on fresh attributes (open + fstat), then announced as a claim is: we
 * link the old inode and go on only if its count rose by exactly our one name, so of several
 * allocators judging the same file at once exactly one replaces it. Winning the old inode needs
 * it to have had one name, which takes its foreign name going away meanwhile; such a winner's
 * claim is listed by then, so the claims are read once more. The fresh file is renamed over
 * port.<N>; whoever linked the old inode then fails verify and retries. True when port.<N> is
 * the fresh file.
 */
function replaceForeign(dir: string, claim: string, port: number, foreign: (st: Stats) => boolean): boolean {
  const portPath = join(dir, `port.${port}`);
  const seen = freshStat(portPath);
  if (!seen?.isFile() || seen.nlink < 2 || !foreign(seen)) return false;
  const ours = claimPath(dir, claim, port);
  try {
    linkSync(portPath, ours);
  } catch (err) {
    // EEXIST: our own link, whose NFS reply was lost; the count below tells.
    if (code(err) !== 'EEXIST') throw err;
  }
  try {
    const now = freshStat(ours);
    if (now?.ino !== seen.ino || now.dev !== seen.dev || now.nlink !== seen.nlink + 1) return false;
    if (readClaims(dir).some((c) => c.port === port && c.claim !== claim)) return false;
    const fresh = join(dir, `.fresh.${claim}.${port}`);
    unlinkQuiet(fresh); // the leftover of a run killed here
    closeSync(openSync(fresh, constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY, 0o644));
    renameSync(fresh, portPath);
    return true;
  } finally {
    unlinkQuiet(ours);
  }
}

/** Attributes asked of the server (open + fstat), not a cached stat; undefined when not there. */
function freshStat(path: string): Stats | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO must not hang the setup.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    return fstatSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks the port dir and its claims dir (creating them when asked); false when one is missing
 * and not created. As root, anyone else able to reach into either could plant links to take or
 * block ports, so both must be root's own, real directories that nobody else can enter.
 */
function portArea(dir: string, create: boolean): boolean {
  return checkDir(dir, create) && checkDir(join(dir, CLAIMS), create);
}

function checkDir(path: string, create: boolean): boolean {
  let st = lstatQuiet(path);
  if (!st) {
    if (!create) return false;
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (err) {
      if (code(err) !== 'EEXIST') throw new JobboxError('port dir', `cannot create (${code(err) ?? 'error'})`, path);
    }
    st = lstatQuiet(path);
  }
  if (!st?.isDirectory()) throw new JobboxError('port dir', 'must be a directory, not a symlink or file', path);
  if (process.getuid?.() === 0 && (st.uid !== 0 || (st.mode & 0o077) !== 0)) {
    throw new JobboxError('port dir', 'must be owned by root with no access for group or others (mode 0700)', path);
  }
  return true;
}

function readClaims(dir: string): { claim: string; port: number }[] {
  return readdirSync(join(dir, CLAIMS)).flatMap((name) => parseClaimName(name) ?? []);
}

function ownPorts(dir: string, claim: string): number[] {
  return readClaims(dir).filter((c) => c.claim === claim).map((c) => c.port);
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
