import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';

const CONFIG = '[queue normal]\ndefault_image = deb12\n[image deb12]\nref = registry.example.org/deb12\n';

// /tmp and /var/tmp are world-writable, which loadConfig refuses by design: the test tree
// lives under /run, root-owned 0755 all the way up.
describe('as root: loadConfig', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp('/run/jobbox-test-');
    file = join(dir, 'jobbox.ini');
    await writeFile(file, CONFIG, { mode: 0o644 });
    await chmod(file, 0o644);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('loads a root-owned file in root-owned directories', async () => {
    const config = await loadConfig(file);
    expect(config.images.get('deb12')?.ref).toBe('registry.example.org/deb12');
  });

  it.each([
    ['group-writable', 0o664, 'file is writable by group or others (mode 0664)'],
    ['world-writable', 0o646, 'file is writable by group or others (mode 0646)'],
  ])('refuses a %s file', async (_name, mode, problem) => {
    await chmod(file, mode);
    await expect(loadConfig(file)).rejects.toThrow(`jobbox: config: ${problem}: ${file}`);
  });

  it('refuses a file owned by another user', async () => {
    await chown(file, 65534, 65534);
    await expect(loadConfig(file)).rejects.toThrow(`jobbox: config: file is not owned by root (uid 65534): ${file}`);
  });

  it('refuses a writable parent directory', async () => {
    await chmod(dir, 0o775);
    await expect(loadConfig(file)).rejects.toThrow(`jobbox: config: parent directory is writable by group or others (mode 0775): ${dir}`);
  });

  it('checks where a symlink leads, not the link', async () => {
    const open = join(dir, 'open');
    await mkdir(open, { mode: 0o777 });
    await chmod(open, 0o1777);
    await writeFile(join(open, 'real.ini'), CONFIG, { mode: 0o644 });
    await symlink(join(open, 'real.ini'), join(dir, 'link.ini'));
    await expect(loadConfig(join(dir, 'link.ini'))).rejects.toThrow(`jobbox: config: parent directory is writable by group or others (mode 1777): ${open}`);
  });

  it('refuses a directory', async () => {
    await expect(loadConfig(dir)).rejects.toThrow(`jobbox: config: not a regular file: ${dir}`);
  });

  it('says which file is missing', async () => {
    await expect(loadConfig(join(dir, 'nope.ini'))).rejects.toThrow(
      expect.objectContaining({ message: `jobbox: config: cannot read the file (ENOENT): ${dir}/nope.ini`, exitCode: 99 }),
    );
  });

  it('names the file in structural errors', async () => {
    await writeFile(file, 'oops\n');
    await expect(loadConfig(file)).rejects.toThrow(`jobbox: config ${file}:1: line is neither`);
  });
});
