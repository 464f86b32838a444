import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(__dirname, '../../../src');

/**
 * The packages a module loads when it is imported: its static imports, followed through src/
 * (`import type` loads nothing, and an `import()` is loaded only when it runs).
 */
function staticPackages(entry: string, seen = new Set<string>(), packages = new Set<string>()): Set<string> {
  if (seen.has(entry)) return packages;
  seen.add(entry);
  const text = readFileSync(entry, 'utf8');
  for (const m of text.matchAll(/^import (?!type )[^;]*? from '([^']+)';$/gms)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) staticPackages(join(dirname(entry), spec.replace(/\.js$/, '.ts')), seen, packages);
    else if (!spec.startsWith('node:')) packages.add(spec);
  }
  return packages;
}

// Every job's start runs the pre-exec, and what it imports is on the start's critical path:
// execa and yargs cost tens of ms each (bench P2), and the start needs neither.
describe('the pre-exec hook', () => {
  it('loads neither execa nor yargs on its way to the setup', () => {
    const loaded = new Set([...staticPackages(join(SRC, 'cli.ts')), ...staticPackages(join(SRC, 'commands/lsf/pre-exec.ts')), ...staticPackages(join(SRC, 'lifecycle/setup.ts'))]);
    // pino comes by import() when the log opens, and is needed.
    expect([...loaded].sort()).toEqual(['ini', 'ssh2']);
  });
});
