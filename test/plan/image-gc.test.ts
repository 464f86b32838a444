import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/parse.js';
import { aliasRefs, containerImagesArgv, managedRepo, parseImageTable, planImageGc, rmiArgv, type GcInput, type ImageTableRow } from '../../src/plan/image-gc.js';

const config = parseConfig(
  `
[queue normal]
default_image = deb12
allowed_images = deb12 deb12-mpich
[image deb12]
ref = reg:5000/hpc/deb12:r2
[image deb12-mpich]
ref = reg:5000/hpc/deb12-mpich:r1
`,
  'test.ini',
);
const R = 'reg:5000/hpc/deb12';
const M = 'reg:5000/hpc/deb12-mpich';
const id = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const dg = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64).replace(/./g, (c) => 'abcdefghij'[Number(c)]!)}`;
const day = (d: number) => Date.parse(`2026-01-${String(d).padStart(2, '0')}T00:00:00Z`);

/** A node's image table: image n, created on day n, in `repo` by `tag` (or by digest only). */
function row(n: number, repo = R, tag = '<none>', digest = dg(n)): ImageTableRow {
  return { id: id(n), repository: repo, tag, digest, created: day(n) };
}

function fates(rows: ImageTableRow[], over: Partial<GcInput> = {}): Record<string, string> {
  const plan = planImageGc({ rows, used: [], managed: managedRepo(config), named: aliasRefs(config), keep: 2, ...over });
  return Object.fromEntries(plan.map((p) => [p.id.slice(7, 8), p.fate]));
}

describe('managedRepo', () => {
  it('is the repositories of the [image] refs, and nothing around them', () => {
    const managed = managedRepo(config);
    expect([R, M, `${R}x`, 'reg:5000/hpc', 'other:5000/hpc/deb12', 'deb12'].map(managed)).toEqual([true, true, false, false, false, false]);
  });

  it('takes in the repositories users may name images of (allowed_repos)', () => {
    const users = parseConfig('[queue normal]\ndefault_image = a\nallowed_repos = reg:5000/projects/* reg:5000/tools/app\n[image a]\nref = reg:5000/hpc/a:1\n', 'u.ini');
    const managed = managedRepo(users);
    expect(['reg:5000/hpc/a', 'reg:5000/projects/x', 'reg:5000/projects/x/y', 'reg:5000/tools/app', 'reg:5000/tools/app2', 'reg:5000/projectsx/a'].map(managed)).toEqual([true, true, true, true, false, false]);
  });

  it('keeps a build that an alias\'s tag names in the registry now, also where the node holds it by digest only', () => {
    const rows = [row(1), row(2), row(3)];
    expect(fates(rows, { keep: 0, named: new Set([...aliasRefs(config), `${R}@${dg(1)}`]) })).toEqual({ 3: 'remove', 2: 'remove', 1: 'tagged' });
  });
});

describe('parseImageTable', () => {
  it('reads docker images\' rows, the creation time with its offset', () => {
    const D = dg(1);
    const text = `${id(1)} ${R} r2 ${D} 2026-05-07 21:09:36 +0000 UTC\n${id(2)} ${R} <none> ${D} 2026-05-07 23:09:36 +0200 CEST\n${id(3)} <none> <none> <none> 2025-01-01 00:00:00 +0000 UTC\n\n`;
    expect(parseImageTable(text)).toEqual([
      { id: id(1), repository: R, tag: 'r2', digest: D, created: Date.parse('2026-05-07T21:09:36Z') },
      { id: id(2), repository: R, tag: '<none>', digest: D, created: Date.parse('2026-05-07T21:09:36Z') },
      { id: id(3), repository: '<none>', tag: '<none>', digest: '<none>', created: Date.parse('2025-01-01T00:00:00Z') },
    ]);
  });

  it.each([
    ['no creation time', `${id(1)} ${R} r2 ${dg(1)}`],
    ['a relative one', `${id(1)} ${R} r2 ${dg(1)} 3 weeks ago`],
  ])('refuses a line it cannot order (%s): the node fails rather than gc guessing', (_case, line) => {
    expect(() => parseImageTable(`${line}\n`)).toThrow(`jobbox: docker images: cannot read the line (id repository tag digest created): ${line}`);
  });
});

describe('planImageGc', () => {
  it.each<[string, ImageTableRow[], Partial<GcInput>, Record<string, string>]>([
    ['keeps the 2 newest unused by default', [row(1), row(2), row(3), row(4)], {}, { 4: 'kept', 3: 'kept', 2: 'remove', 1: 'remove' }],
    ['--keep 0 removes every unused one', [row(1), row(2)], { keep: 0 }, { 2: 'remove', 1: 'remove' }],
    ['an image in use stays, and does not count towards --keep', [row(1), row(2), row(3)], { keep: 1, used: [id(3)] }, { 3: 'in-use', 2: 'kept', 1: 'remove' }],
    ['an old image in use stays however old', [row(1), row(2), row(3)], { keep: 0, used: [id(1)] }, { 3: 'remove', 2: 'remove', 1: 'in-use' }],
    ['the image an alias\'s tag names stays, even with --keep 0', [row(1, R, 'r2'), row(2)], { keep: 0 }, { 2: 'remove', 1: 'tagged' }],
    ['another tag of the alias\'s repository is no alias\'s', [row(1, R, 'r1'), row(2, R, 'r2')], { keep: 0 }, { 2: 'tagged', 1: 'remove' }],
    ['in use wins over tagged', [row(1, R, 'r2')], { keep: 0, used: [id(1)] }, { 1: 'in-use' }],
    ['--keep counts per repository', [row(1), row(2), row(3, M), row(4, M)], { keep: 1 }, { 2: 'kept', 1: 'remove', 4: 'kept', 3: 'remove' }],
    ['an image in two repositories stays when either keeps it', [row(2), row(3), row(2, M, 'r0'), row(1, M)], { keep: 1 }, { 3: 'kept', 2: 'kept', 1: 'remove' }],
    ['other repositories, and images with no name, are not gc\'s', [row(1, 'other:5000/x'), row(2, '<none>', '<none>', '<none>'), row(3)], { keep: 0 }, { 3: 'remove' }],
    ['a container of an unmanaged image changes nothing', [row(1), row(2)], { keep: 1, used: [id(9)] }, { 2: 'kept', 1: 'remove' }],
  ])('%s', (_case, rows, over, expected) => {
    expect(fates(rows, over)).toEqual(expected);
  });

  it('ties in creation time are broken by id, so every run of gc picks the same', () => {
    const same = [id(5), id(6), id(7)].map((i) => ({ id: i, repository: R, tag: '<none>', digest: dg(1), created: day(1) }));
    expect(fates(same.reverse(), { keep: 1 })).toEqual({ 5: 'kept', 6: 'remove', 7: 'remove' });
  });

  it('removes every name of the image in managed repositories, digests first, and none elsewhere', () => {
    const rows = [row(1, R, 'r1'), row(1, R, 'old', '<none>'), row(1, M, '<none>'), row(1, 'other:5000/x', 'keep')];
    const [plan] = planImageGc({ rows, used: [], managed: managedRepo(config), named: aliasRefs(config), keep: 0 });
    expect(plan).toEqual({ id: id(1), created: day(1), fate: 'remove', refs: [`${M}@${dg(1)}`, `${R}@${dg(1)}`, `${R}:old`, `${R}:r1`] });
    expect(rmiArgv(plan!.refs)).toEqual(['rmi', `${M}@${dg(1)}`, `${R}@${dg(1)}`, `${R}:old`, `${R}:r1`]);
  });

  it('lists by repository, newest first', () => {
    const plan = planImageGc({ rows: [row(1, M), row(2), row(3, M), row(4)], used: [], managed: managedRepo(config), named: new Set(), keep: 9 });
    expect(plan.map((p) => p.id)).toEqual([id(4), id(2), id(3), id(1)]);
  });
});

describe('argv', () => {
  it('asks the containers\' image ids, never with --force anywhere', () => {
    expect(containerImagesArgv(['c1', 'c2'])).toEqual(['inspect', '--type', 'container', '--format', '{{.Image}}', 'c1', 'c2']);
    expect(rmiArgv(['a'])).not.toContain('--force');
    expect(rmiArgv(['a'])).not.toContain('-f');
  });
});
