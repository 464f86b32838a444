import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

// The bundle (packaging/bundle.mjs), as built: dist/ must be jobbox's whole runtime, and read
// nothing from where it is run.
const DIST = join(import.meta.dirname, '../../dist');

it('reads no package.json from the working directory: a FIFO another user put above it does not hang a command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobbox-cwd-'));
  try {
    execFileSync('mkfifo', [join(dir, 'package.json')]);
    mkdirSync(join(dir, 'work'));
    const r = spawnSync(process.execPath, [join(DIST, 'cli.js'), 'config', 'check', '--config', '/nonexistent/jobbox.ini'], { cwd: join(dir, 'work'), encoding: 'utf8', timeout: 20_000 });
    expect({ signal: r.signal, status: r.status, stderr: r.stderr }).toEqual({ signal: null, status: 99, stderr: 'jobbox: config: cannot read the file (ENOENT): /nonexistent/jobbox.ini\n' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('is ESM by its own package.json, and its yargs looks for package.json and translations only in dist/', () => {
  expect(JSON.parse(readFileSync(join(DIST, 'package.json'), 'utf8'))).toMatchObject({ name: 'jobbox', type: 'module' });
  // Minified: compared without whitespace.
  const yargs = readFileSync(join(DIST, readdirSync(DIST).find((f) => /^yargs-.*\.js$/.test(f))!), 'utf8').replace(/\s+/g, '');
  expect(yargs).not.toContain('mainFilename||process.cwd()');
  expect(yargs).toContain('mainFilename:fileURLToPath(newURL(".",import.meta.url))');
  expect(yargs).toContain('directory:fileURLToPath(newURL("./locales",import.meta.url))');
});
