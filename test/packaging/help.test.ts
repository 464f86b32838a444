import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

// docs/cli.md is what the built CLI prints for every command's --help (packaging/help.mjs), so
// it cannot go stale: after a change to a command, `npm run build && npm run docs`.
const REPO = join(import.meta.dirname, '../..');

it('docs/cli.md is every command\'s --help as the built CLI prints it', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [join(REPO, 'packaging/help.mjs'), 'md'], { maxBuffer: 1 << 22 });
  expect(stdout).toContain('## jobbox lsf pre-exec\n');
  expect(stdout).toBe(await readFile(join(REPO, 'docs/cli.md'), 'utf8'));
}, 60_000);
