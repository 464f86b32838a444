import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocatePort } from '../../src/ports/allocator.js';

// What the allocator refuses only as root: a port area others could enter or own.
let root = '';
beforeAll(() => {
  root = mkdtempSync('/run/jobbox-ports-test-');
  chmodSync(root, 0o755);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const area = () => mkdtempSync(join(root, 'area-'));
const claims = (dir: string) => join(dir, 'claims');
const R1 = { first: 41000, last: 41000 };

describe('as root: the port dir', () => {
  // Entering the dir is enough to give a port file another name, so 0755 is refused too.
  it.each([0o777, 0o755, 0o711, 0o750])('as root: must have no access for group or others (mode %o)', async (mode) => {
    const dir = area();
    chmodSync(dir, mode);
    await expect(allocatePort(dir, R1, '1.0.n')).rejects.toThrow(/^jobbox: port dir: must be owned by root with no access for group or others \(mode 0700\)/);
    expect(readdirSync(dir)).toEqual([]);

    const open = area();
    mkdirSync(claims(open), { mode: 0o700 });
    chmodSync(claims(open), mode);
    await expect(allocatePort(open, R1, '1.0.n')).rejects.toMatchObject({ subject: 'port dir', value: claims(open), problem: 'must be owned by root with no access for group or others (mode 0700)' });
    expect(readdirSync(open)).toEqual(['claims']);
  });

  it('as root: must have a claims dir owned by root', async () => {
    const dir = area();
    mkdirSync(claims(dir), { mode: 0o700 });
    chownSync(claims(dir), 65534, 65534);
    await expect(allocatePort(dir, R1, '1.0.n')).rejects.toMatchObject({ subject: 'port dir', value: claims(dir) });
    expect(readdirSync(claims(dir))).toEqual([]);
  });
});
