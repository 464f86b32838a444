import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

// Hardening, checked on the source: jobbox starts programs from argv arrays, never through a
// local shell, and the only shell text it makes is the remote command, built by quote()
// (test/exec/quote.test.ts round-trips it through a real sh). A new `shell: true` or a
// `sh -c` with interpolated text fails here.
const SRC = join(import.meta.dirname, '../../src');
const files = (function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
})(SRC).map((path) => ({ path: relative(SRC, path), text: readFileSync(path, 'utf8') }));
const code = (text: string) => text.replace(/^\s*(\/\/|\*|\/\*\*).*$/gm, '');
const SHELLS = /^['"`](\/bin\/|\/usr\/bin\/)?(sh|bash|dash|zsh|ksh|csh|tcsh)['"`]$/;

describe('no shell but the quoted ssh command', () => {
  it('finds the source', () => expect(files.length).toBeGreaterThan(30));

  it.each(files)('$path: no shell option, no exec/execSync, no shell as the program', ({ text }) => {
    const src = code(text);
    expect(src).not.toMatch(/\bshell\s*:\s*(true|['"`][^'"`])/);
    for (const m of src.matchAll(/import\s*\{([^}]*)\}\s*from\s*'node:child_process'/g)) {
      for (const name of m[1]!.split(',').map((s) => s.trim()).filter(Boolean)) expect(['spawn', 'execFile']).toContain(name);
    }
    expect(src).not.toMatch(/from\s*'execa'[\s\S]*\$`|execaCommand|\bexecSync\b|\bspawnSync\b/);
    for (const m of src.matchAll(/\b(?:execa|execFile|spawn)\(\s*([^,)]+)/g)) expect(m[1]!.trim()).not.toMatch(SHELLS);
  });

  it('ssh2 runs only quote(argv) on the nodes, in one place', () => {
    const execs = files.flatMap((f) => [...code(f.text).matchAll(/\.client\.exec\(([^,]+),/g)].map((m) => `${f.path}: ${m[1]}`));
    expect(execs).toEqual(['exec/ssh.ts: command']);
    expect(files.find((f) => f.path === 'exec/ssh.ts')!.text).toMatch(/const command = quote\(argv\);/);
  });

  it('the job starter builds its remote command from quote() and fixed text only', () => {
    const run = code(files.find((f) => f.path === 'lifecycle/run.ts')!.text);
    // From the first remote step to the ssh calls, every interpolation goes through quote().
    const remote = run.slice(run.indexOf('const steps'), run.indexOf('return sshInteractive'));
    expect(remote).toContain('sshQuiet(');
    const interpolations = [...remote.matchAll(/\$\{(.*?)\}/g)].map((m) => m[1]!).filter((e) => !e.startsWith('quote('));
    expect(interpolations).toEqual([]);
  });
});
