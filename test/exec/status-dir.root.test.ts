import { chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeStatusDir, readStatusFile, writeJobFile } from '../../src/exec/jobdir.js';

// The start records' dir as root makes it (plan/status.ts): a name a user planted is refused,
// never written through.
let d: string;
beforeEach(() => {
  d = mkdtempSync(join(tmpdir(), 'jobbox-status-'));
  mkdirSync(join(d, 'jobs'), { mode: 0o755 });
});
afterEach(() => rmSync(d, { recursive: true, force: true }));

describe('makeStatusDir as root', () => {
  it('makes it root\'s, 0711, whatever the umask, and a record in it the owner\'s, 0400', async () => {
    const old = process.umask(0o077);
    try {
      await makeStatusDir(join(d, 'jobs', '.status'));
    } finally {
      process.umask(old);
    }
    const st = lstatSync(join(d, 'jobs', '.status'));
    expect([st.mode & 0o7777, st.uid]).toEqual([0o711, 0]);
    await writeJobFile({ path: join(d, 'jobs', '.status', '1.0.json'), content: '{}\n', mode: 0o400, owner: { uid: 65534, gid: 65534 } });
    const f = lstatSync(join(d, 'jobs', '.status', '1.0.json'));
    expect([f.mode & 0o7777, f.uid]).toEqual([0o400, 65534]);
    expect(await readStatusFile(join(d, 'jobs', '.status', '1.0.json'), 100)).toEqual({ text: '{}\n', uid: 65534 });
    expect(await readStatusFile(join(d, 'jobs', '.status', '1.0.json'), 2)).toBeUndefined();
  });

  it.each([
    ['a symlink to another dir', () => (mkdirSync(join(d, 'other')), symlinkSync(join(d, 'other'), join(d, 'jobs', '.status'))), 'jobbox: status dir: is not a directory (a symlink or file was planted?): {d}/jobs/.status'],
    ['a file', () => writeFileSync(join(d, 'jobs', '.status'), 'x'), 'jobbox: status dir: is not a directory (a symlink or file was planted?): {d}/jobs/.status'],
    ['a user\'s dir', () => (mkdirSync(join(d, 'jobs', '.status'), { mode: 0o711 }), chownSync(join(d, 'jobs', '.status'), 65534, 65534)), 'jobbox: status dir: must be owned by root and not writable by group or others: {d}/jobs/.status'],
  ])('refuses .status planted as %s', async (_case, plant, message) => {
    plant();
    await expect(makeStatusDir(join(d, 'jobs', '.status'))).rejects.toThrow(message.replace('{d}', d));
    if (lstatSync(join(d, 'jobs', '.status')).isSymbolicLink()) expect(() => readFileSync(join(d, 'other', '1.0.json'))).toThrow();
  });
});
