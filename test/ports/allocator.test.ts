import { fork } from 'node:child_process';
import { chmodSync, closeSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_PARENT } from '../helpers/config-file.js';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, JobboxError } from '../../src/errors.js';
import { STALE_LINK_GRACE_MS } from '../../src/config/defaults.js';
import { allocatePort, claimedPort, listClaims, releasePort } from '../../src/ports/allocator.js';

// Real directories (root-owned under /run when run as root: the allocator refuses a port area others can enter).
let root = '';
beforeAll(() => {
  root = mkdtempSync(join(TEST_PARENT, 'jobbox-ports-test-'));
  chmodSync(root, 0o755);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const area = () => mkdtempSync(join(root, 'area-'));
const touch = (path: string) => closeSync(openSync(path, 'wx', 0o644));
const nlink = (path: string) => lstatSync(path).nlink;
const ino = (path: string) => lstatSync(path).ino;
/** The claims dir: the allocator makes it; tests that plant claims first make it themselves, 0700 as it does. */
const claims = (dir: string) => join(dir, 'claims');
const claimsIn = (dir: string) => readdirSync(claims(dir)).sort();
const R1 = { first: 41000, last: 41000 };
const R8 = { first: 41000, last: 41007 };

async function noFreePort(promise: Promise<unknown>): Promise<void> {
  const err: unknown = await promise.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(JobboxError);
  expect((err as JobboxError).exitCode).toBe(EXIT.transient);
  expect((err as JobboxError).problem).toMatch(/^no free port in 41000-41000/);
}

describe('allocatePort / releasePort', () => {
  it('claims a port in range with a second link, and release gives it back', async () => {
    const dir = area();
    const port = await allocatePort(dir, R8, '1234.0.node1');
    expect(port).toBeGreaterThanOrEqual(41000);
    expect(port).toBeLessThanOrEqual(41007);
    expect(nlink(join(claims(dir), `claim.1234.0.node1.${port}`))).toBe(2);
    expect(lstatSync(join(claims(dir), `claim.1234.0.node1.${port}`)).ino).toBe(lstatSync(join(dir, `port.${port}`)).ino);
    expect(await claimedPort(dir, '1234.0.node1')).toBe(port);
    expect(await listClaims(dir)).toEqual([{ claim: '1234.0.node1', port, mtimeMs: expect.any(Number) }]);

    expect(await releasePort(dir, '1234.0.node1')).toEqual([port]);
    expect(nlink(join(dir, `port.${port}`))).toBe(1);
    expect(await claimedPort(dir, '1234.0.node1')).toBeUndefined();
    expect(await releasePort(dir, '1234.0.node1')).toEqual([]);
  });

  it('gives a re-run pre-exec the port it already holds, without taking a second', async () => {
    const dir = area();
    const port = await allocatePort(dir, R8, '77.0.node1');
    expect(await allocatePort(dir, R8, '77.0.node1')).toBe(port);
    expect(claimsIn(dir)).toEqual([`claim.77.0.node1.${port}`]);
  });

  it('gives two claims two ports; with one port the second gets a transient error and keeps nothing', async () => {
    const dir = area();
    const a = await allocatePort(dir, R8, '1.0.n');
    const b = await allocatePort(dir, R8, '2.0.n');
    expect(a).not.toBe(b);

    const one = area();
    expect(await allocatePort(one, R1, '1.0.n')).toBe(41000);
    await noFreePort(allocatePort(one, R1, '2.0.n'));
    expect(readdirSync(one).sort()).toEqual(['claims', 'port.41000']);
    expect(claimsIn(one)).toEqual(['claim.1.0.n.41000']);
  });

  it('skips excluded ports, and drops a held one that is now excluded', async () => {
    const dir = area();
    const exclude = new Set([41000, 41001, 41002, 41003, 41004, 41005, 41006]);
    expect(await allocatePort(dir, R8, '5.0.n', exclude)).toBe(41007);
    expect(await allocatePort(dir, R8, '5.0.n', new Set([41007]))).not.toBe(41007);
    expect(claimsIn(dir)).toHaveLength(1);
    await noFreePort(allocatePort(area(), R1, '6.0.n', new Set([41000])));
  });

  it('never follows or links a planted symlink or directory, and leaves garbage alone', async () => {
    const dir = area();
    const target = join(root, `target-${Date.now()}`);
    writeFileSync(target, 'not a port');
    symlinkSync(target, join(dir, 'port.41000'));
    mkdirSync(join(dir, 'port.41001'));
    mkdirSync(claims(dir), { mode: 0o700 });
    const garbage = ['foo', 'claim.bad', 'port.abc', 'port.041002'];
    const claimGarbage = ['foo', 'claim.bad', 'claim.9.0.n.99999', 'claim.9.0.n.041002', 'port.41002'];
    for (const name of garbage) touch(join(dir, name));
    for (const name of claimGarbage) touch(join(claims(dir), name));

    expect(await allocatePort(dir, { first: 41000, last: 41002 }, '9.0.n')).toBe(41002);
    expect(nlink(target)).toBe(1);
    expect(lstatSync(join(dir, 'port.41000')).isSymbolicLink()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual([...garbage, 'claims', 'port.41000', 'port.41001', 'port.41002'].sort());
    expect(claimsIn(dir)).toEqual([...claimGarbage, 'claim.9.0.n.41002'].sort());

    const err: unknown = await allocatePort(dir, { first: 41000, last: 41001 }, '10.0.n').catch((e: unknown) => e);
    expect((err as JobboxError).problem).toBe('no free port in 41000-41001 (2 port files are not regular files)');
    expect(await releasePort(dir, '9.0.n')).toEqual([41002]);
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(garbage));
    expect(claimsIn(dir)).toEqual([...claimGarbage].sort());
  });

  it('drops a held claim whose port has a third link (another job linked it) and moves on', async () => {
    const dir = area();
    mkdirSync(claims(dir), { mode: 0o700 });
    touch(join(dir, 'port.41000'));
    linkSync(join(dir, 'port.41000'), join(claims(dir), 'claim.3.0.n.41000'));
    linkSync(join(dir, 'port.41000'), join(claims(dir), 'claim.4.0.n.41000'));
    expect(await claimedPort(dir, '3.0.n')).toBeUndefined();

    expect(await allocatePort(dir, { first: 41000, last: 41001 }, '3.0.n')).toBe(41001);
    expect(claimsIn(dir)).toEqual(['claim.3.0.n.41001', 'claim.4.0.n.41000']);
    expect(nlink(join(dir, 'port.41000'))).toBe(2);
  });

  it('drops a held claim that is not the same inode as its port file', async () => {
    const dir = area();
    mkdirSync(claims(dir), { mode: 0o700 });
    touch(join(dir, 'port.41000'));
    touch(join(dir, 'elsewhere'));
    linkSync(join(dir, 'elsewhere'), join(claims(dir), 'claim.3.0.n.41000'));
    expect(await claimedPort(dir, '3.0.n')).toBeUndefined();
    expect(await allocatePort(dir, R1, '3.0.n')).toBe(41000);
    expect(nlink(join(dir, 'elsewhere'))).toBe(1);
  });

  it('never releases a look-alike claim of another job', async () => {
    const dir = area();
    mkdirSync(claims(dir), { mode: 0o700 });
    for (const [i, claim] of ['12.0.node1', '12.0.node1x', '12.0.node1.5', '112.0.node1', '2.0.node1'].entries()) {
      touch(join(dir, `port.${41000 + i}`));
      linkSync(join(dir, `port.${41000 + i}`), join(claims(dir), `claim.${claim}.${41000 + i}`));
    }
    expect(await releasePort(dir, '12.0.node1')).toEqual([41000]);
    expect((await listClaims(dir)).map((c) => c.claim).sort()).toEqual(['112.0.node1', '12.0.node1.5', '12.0.node1x', '2.0.node1']);
  });

  it('ignores a claim-like name left in the port dir itself (only claims/ holds claims)', async () => {
    const dir = area();
    touch(join(dir, 'port.41000'));
    linkSync(join(dir, 'port.41000'), join(dir, 'claim.3.0.n.41000'));
    expect(await listClaims(dir)).toEqual([]);
    expect(await releasePort(dir, '3.0.n')).toEqual([]);
    // The stray second link makes port.41000 look taken, so the allocator passes it by.
    await noFreePort(allocatePort(dir, R1, '4.0.n'));
    expect(nlink(join(dir, 'port.41000'))).toBe(2);
  });

  it.each(['', '-rf', '../x', 'a/b', 'a b', 'x'.repeat(202)])('rejects the claim %j', async (claim) => {
    await expect(allocatePort(area(), R8, claim)).rejects.toThrow(/^jobbox: port claim: must match/);
    await expect(releasePort(area(), claim)).rejects.toThrow(JobboxError);
  });

  it.each([[{ first: 0, last: 10 }], [{ first: 10, last: 9 }], [{ first: 1, last: 65536 }], [{ first: 1.5, last: 9 }]])('rejects the range %j', async (range) => {
    await expect(allocatePort(area(), range, '1.0.n')).rejects.toMatchObject({ subject: 'ports', exitCode: EXIT.permanent });
  });
});

// A name given to a port file from outside claims/ (a user on a node without
// fs.protected_hardlinks, before the port dir was closed) must not block the port for ever.
// The age test is the grace parameter: 0 judges at once, the default never within a test.
describe('a port file with a foreign name', () => {
  it('is replaced by a fresh file once unchanged for the grace: the port is claimed, the foreign name keeps the old inode', async () => {
    const dir = area();
    mkdirSync(claims(dir), { mode: 0o700 });
    touch(join(dir, 'port.41000'));
    const foreign = join(area(), 'mine-now');
    linkSync(join(dir, 'port.41000'), foreign);
    const old = ino(foreign);
    // What a run killed half-way through a replacement leaves.
    touch(join(dir, '.fresh.1.0.n.41000'));

    expect(await allocatePort(dir, R1, '1.0.n', new Set(), 0)).toBe(41000);
    expect(ino(join(dir, 'port.41000'))).not.toBe(old);
    expect(await claimedPort(dir, '1.0.n')).toBe(41000);
    expect(nlink(foreign)).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['claims', 'port.41000']);
    expect(claimsIn(dir)).toEqual(['claim.1.0.n.41000']);
  });

  it('is left alone within the grace (the default is the one pre-exec uses)', async () => {
    expect(STALE_LINK_GRACE_MS).toBe(60_000);
    const dir = area();
    touch(join(dir, 'port.41000'));
    const foreign = join(area(), 'mine-now');
    linkSync(join(dir, 'port.41000'), foreign);
    await noFreePort(allocatePort(dir, R1, '1.0.n'));
    expect(ino(join(dir, 'port.41000'))).toBe(ino(foreign));
    expect(nlink(foreign)).toBe(2);
    expect(claimsIn(dir)).toEqual([]);
  });

  it('is never replaced while a claim explains a second name, however old', async () => {
    const dir = area();
    mkdirSync(claims(dir), { mode: 0o700 });
    touch(join(dir, 'port.41000'));
    linkSync(join(dir, 'port.41000'), join(claims(dir), 'claim.9.0.n.41000'));
    await noFreePort(allocatePort(dir, R1, '1.0.n', new Set(), 0));
    expect(await claimedPort(dir, '9.0.n')).toBe(41000);

    // A claim plus a foreign name: still the claim's port (three names, so it no longer verifies).
    const foreign = join(area(), 'mine-now');
    linkSync(join(dir, 'port.41000'), foreign);
    await noFreePort(allocatePort(dir, R1, '1.0.n', new Set(), 0));
    expect(ino(join(dir, 'port.41000'))).toBe(ino(foreign));
    expect(claimsIn(dir)).toEqual(['claim.9.0.n.41000']);
  });

  it('32 allocators judging the same stale files at once never hand one port out twice nor leave a name behind; what contention left, a later allocation takes', async () => {
    const dir = area();
    const elsewhere = area();
    mkdirSync(claims(dir), { mode: 0o700 });
    const planted = new Map<number, number>();
    for (let port = R8.first; port <= R8.last; port++) {
      touch(join(dir, `port.${port}`));
      linkSync(join(dir, `port.${port}`), join(elsewhere, `x.${port}`));
      planted.set(port, ino(join(dir, `port.${port}`)));
    }
    // The planted names must be older than the grace, and the allocators' own claims younger:
    // an allocator would have to stall for the whole grace between its link and its verify.
    const grace = 3000;
    await new Promise((r) => setTimeout(r, grace + 200));
    const worker = join(root, 'burst-worker.mjs');
    await build({
      stdin: { contents: BURST_WORKER, resolveDir: fileURLToPath(new URL('.', import.meta.url)), loader: 'ts' },
      outfile: worker, bundle: true, platform: 'node', format: 'esm', logLevel: 'silent',
    });
    const children = Array.from({ length: 32 }, (_, i) => fork(worker, [dir, `${2000 + i}.0.n`, `${R8.first}`, `${R8.last}`, `${grace}`], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    type Answer = { port?: number; error?: string };
    const answers = children.map((child) => new Promise<Answer>((resolve, reject) => {
      child.on('message', (m: Answer & { ready?: true }) => { if (!m.ready) resolve(m); });
      child.on('error', reject);
      // 'close', not 'exit': an exit can be seen before the last message on the channel is read
      // (CI once saw it on a loaded machine).
      child.on('close', (code) => reject(new Error(`burst worker exited ${code} without an answer`)));
    }));
    await Promise.all(children.map((child) => new Promise((r) => child.once('message', r))));
    for (const child of children) child.send('go');
    const results = await Promise.all(answers);

    const won = results.flatMap((r, i) => (r.port === undefined ? [] : [{ claim: `${2000 + i}.0.n`, port: r.port }]));
    expect(results.filter((r) => r.port === undefined).map((r) => r.error)).toEqual(Array(32 - won.length).fill(expect.stringMatching(/^jobbox: ports: no free port in 41000-41007: /)));
    expect(new Set(won.map((w) => w.port)).size).toBe(won.length);
    for (const w of won) {
      expect(await claimedPort(dir, w.claim)).toBe(w.port);
      expect(ino(join(dir, `port.${w.port}`))).not.toBe(planted.get(w.port));
    }
    // A port nobody won is either still the planted file with its two names (two judges
    // collided; their names make it young again for a grace) or a fresh file with one name.
    for (let port = R8.first; port <= R8.last; port++) {
      if (won.some((w) => w.port === port)) continue;
      const file = join(dir, `port.${port}`);
      expect(ino(file) === planted.get(port) ? nlink(file) === 2 : nlink(file) === 1).toBe(true);
    }
    expect((await listClaims(dir)).map(({ claim, port }) => ({ claim, port }))).toEqual([...won].sort((a, b) => a.port - b.port));
    expect(readdirSync(dir).filter((n) => !n.startsWith('port.'))).toEqual(['claims']);

    // No port is lost: one allocator after another takes every port left.
    for (let i = won.length; i < 8; i++) expect(await allocatePort(dir, R8, `${3000 + i}.0.n`, new Set(), 0)).toBeGreaterThanOrEqual(R8.first);
    await noFreePort(allocatePort(dir, R1, '3999.0.n', new Set(), 0));
    for (let port = R8.first; port <= R8.last; port++) {
      expect(ino(join(dir, `port.${port}`))).not.toBe(planted.get(port));
      expect(nlink(join(elsewhere, `x.${port}`))).toBe(1);
    }
    expect(await listClaims(dir)).toHaveLength(8);
  }, 60_000);
});

// One allocation per process, all released at one instant: the burst of pre-execs above.
const BURST_WORKER = `
import { allocatePort } from '../../src/ports/allocator.js';
const [dir = '', claim = '', first = '0', last = '0', grace = '0'] = process.argv.slice(2);
process.once('message', () => {
  // The answer is sent before the channel closes: disconnect only once it is out.
  const answer = (m: { port?: number; error?: string }) => process.send?.(m, () => process.disconnect());
  allocatePort(dir, { first: Number(first), last: Number(last) }, claim, new Set(), Number(grace)).then(
    (port) => answer({ port }),
    (err: Error) => answer({ error: err.message }),
  );
});
process.send?.({ ready: true });
`;

describe('the port area', () => {
  it('is created when missing, 0700, with its claims dir', async () => {
    const dir = join(area(), 'ports');
    expect(await listClaims(dir)).toEqual([]);
    expect(await releasePort(dir, '1.0.n')).toEqual([]);
    expect(await allocatePort(dir, R1, '1.0.n')).toBe(41000);
    for (const d of [dir, claims(dir)]) {
      expect(lstatSync(d).isDirectory()).toBe(true);
      expect(lstatSync(d).mode & 0o777).toBe(0o700);
    }
  });

  it('without a claims dir holds no claims, and is not changed by a look', async () => {
    const dir = area();
    touch(join(dir, 'port.41000'));
    expect(await listClaims(dir)).toEqual([]);
    expect(await claimedPort(dir, '1.0.n')).toBeUndefined();
    expect(await releasePort(dir, '1.0.n')).toEqual([]);
    expect(readdirSync(dir)).toEqual(['port.41000']);
  });

  it('must not be a symlink', async () => {
    const link = join(area(), 'ports');
    symlinkSync(area(), link);
    await expect(allocatePort(link, R1, '1.0.n')).rejects.toMatchObject({ subject: 'port dir', value: link, exitCode: EXIT.permanent });
    await expect(listClaims(link)).rejects.toThrow(/^jobbox: port dir: must be a directory/);
  });

  it('must not have a symlink or a file as its claims dir', async () => {
    const dir = area();
    const elsewhere = area();
    symlinkSync(elsewhere, claims(dir));
    await expect(allocatePort(dir, R1, '1.0.n')).rejects.toMatchObject({ subject: 'port dir', value: claims(dir), exitCode: EXIT.permanent });
    await expect(releasePort(dir, '1.0.n')).rejects.toThrow(/^jobbox: port dir: must be a directory, not a symlink or file: .*\/claims$/);
    await expect(listClaims(dir)).rejects.toThrow(/^jobbox: port dir: must be a directory/);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(readdirSync(dir)).toEqual(['claims']);

    const file = area();
    touch(claims(file));
    await expect(allocatePort(file, R1, '1.0.n')).rejects.toMatchObject({ subject: 'port dir', value: claims(file) });
  });

});

describe('concurrency', () => {
  // Forked children cannot run TypeScript: bundle the worker (and the allocator) with esbuild.
  let worker = '';
  beforeAll(async () => {
    worker = join(root, 'stress-worker.mjs');
    await build({
      entryPoints: [fileURLToPath(new URL('./stress-worker.ts', import.meta.url))],
      outfile: worker,
      bundle: true,
      platform: 'node',
      format: 'esm',
      logLevel: 'silent',
    });
  });

  it('32 processes × 100 cycles over 8 ports never hold one port twice', async () => {
    const dir = area();
    const held = area();
    const WORKERS = 32;
    const CYCLES = 100;
    type Result = { completed: number; duplicates: number; waits: number; badReleases: number };
    const results = await Promise.all(
      Array.from({ length: WORKERS }, (_, i) => new Promise<Result>((resolve, reject) => {
        let result: Result | undefined;
        const child = fork(worker, [dir, held, `${1000 + i}`, `${CYCLES}`, `${R8.first}`, `${R8.last}`], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        child.on('message', (m) => { result = m as Result; });
        child.on('error', reject);
        child.on('close', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`worker ${i} exited ${code}`))));
      })),
    );
    const total = results.reduce((a, r) => ({ completed: a.completed + r.completed, duplicates: a.duplicates + r.duplicates, badReleases: a.badReleases + r.badReleases }), { completed: 0, duplicates: 0, badReleases: 0 });
    expect(total).toEqual({ completed: WORKERS * CYCLES, duplicates: 0, badReleases: 0 });
    // Everything given back: every port file has its single name again.
    expect(readdirSync(dir).filter((n) => !n.startsWith('port.'))).toEqual(['claims']);
    expect(claimsIn(dir)).toEqual([]);
    for (const name of readdirSync(dir).filter((n) => n.startsWith('port.'))) expect(nlink(join(dir, name))).toBe(1);
    expect(readdirSync(held)).toEqual([]);
  }, 120_000);
});
