// The package's /usr/share/doc/jobbox/copyright: jobbox's licence, then, for every npm package
// the bundle contains (dist/bundled.json, written by packaging/bundle.mjs), its name, version,
// licence and its own licence file, whose notice MIT and ISC require to travel with the code.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundled = JSON.parse(readFileSync(join(root, 'dist', 'bundled.json'), 'utf8'));

const out = [
  'jobbox: batch-system job wrapper and multi-node MPI container launcher.',
  '',
  'Copyright: the jobbox developers.',
  'License: Apache-2.0. On Debian systems the full text of the Apache License,',
  'version 2.0, is in /usr/share/common-licenses/Apache-2.0.',
  '',
  'The files under /usr/lib/jobbox/dist are a bundle: they contain the following',
  'npm packages, each under its own licence, reproduced below.',
];
for (const [name, { version, license }] of Object.entries(bundled)) {
  const dir = join(root, 'node_modules', name);
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  out.push('', '-'.repeat(72), `${name} ${version}: ${license}`, '');
  if (license === 'Apache-2.0') out.push('The full text is in /usr/share/common-licenses/Apache-2.0.');
  else out.push(file ? readFileSync(join(dir, file), 'utf8').trimEnd() : `(${name} ships no licence file; its package.json says ${license}.)`);
}
process.stdout.write(`${out.join('\n')}\n`);
