// `npm run build`'s first step: dist/ becomes jobbox as it is installed, with node as its only
// runtime and no node_modules. (`node packaging/bundle.mjs ENTRY OUTFILE` bundles one more entry
// the same way into one file, for a test that runs part of src/ on a testbed node.) src/cli.ts is the one entry point; every command it imports on
// demand, and every package that command needs, goes into a chunk beside it, so a hook still
// loads only what it runs (bench P2). All files land in dist/ itself: src/install.ts finds the
// install's root as `..` of whichever file it ends up in.
//
// Native add-ons are left out: ssh2 tries its optional crypto binding and cpu-features in a
// try/catch and works without them, so the bundle behaves the same on every machine whether or
// not node-gyp built them here.
import { build } from 'esbuild';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));

const noNative = {
  name: 'no-native',
  setup(b) {
    b.onResolve({ filter: /\.node$|^cpu-features$/ }, (a) => ({ path: a.path, namespace: 'no-native' }));
    b.onLoad({ filter: /.*/, namespace: 'no-native' }, (a) => ({
      contents: `throw new Error(${JSON.stringify(`native add-on not bundled: ${a.path}`)});`,
      loader: 'js',
    }));
  },
};

// yargs finds "its" package.json and its translations from its own place in node_modules, and
// with none (a bundle) from the caller's working directory: a directory of another user's,
// where a FIFO named package.json would hang every jobbox command run below it. Both are
// pointed into dist/, which is root's, and dist/package.json ends the search there.
const yargsPaths = {
  name: 'yargs-paths',
  setup(b) {
    b.onLoad({ filter: /yargs[\\/]lib[\\/]platform-shims[\\/]esm\.mjs$/ }, async (a) => {
      let text = await readFile(a.path, 'utf8');
      for (const [from, to] of [
        ['mainFilename: mainFilename || process.cwd(),', "mainFilename: fileURLToPath(new URL('.', import.meta.url)),"],
        ["directory: resolve(__dirname, '../../../locales'),", "directory: fileURLToPath(new URL('./locales', import.meta.url)),"],
      ]) {
        if (!text.includes(from)) throw new Error(`bundle: yargs's platform shim changed, check the paths it reads: ${from}`);
        text = text.replace(from, to);
      }
      return { contents: text, loader: 'js' };
    });
  },
};

const [entry, outfile] = process.argv.slice(2);
const where = entry ? { entryPoints: [entry], outfile } : { entryPoints: ['src/cli.ts'], outdir: 'dist', splitting: true };
if (!entry) await rm(join(root, 'dist'), { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  ...where,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: '[name]-[hash]',
  define: { JOBBOX_VERSION: JSON.stringify(pkg.version) },
  // The CommonJS packages (ssh2, pino, ini, …) call require() for node's own modules and read
  // __dirname. `var`, because yargs's own ESM code declares a `var __dirname` of its own.
  banner: {
    js: [
      "import { createRequire as jobboxRequire } from 'node:module';",
      "import { fileURLToPath as jobboxPath } from 'node:url';",
      'const require = jobboxRequire(import.meta.url);',
      'var __filename = jobboxPath(import.meta.url);',
      "var __dirname = jobboxPath(new URL('.', import.meta.url));",
    ].join(' '),
  },
  plugins: [noNative, yargsPaths],
  metafile: true,
  legalComments: 'none',
  // Less for node to parse at every hook's start (the ssh2 chunk: 737 → 449 kB). Names are
  // kept, so a stack trace still names its functions.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});

// What the bundle contains, for the package's copyright file (packaging/deb.sh).
if (!entry) {
  await writeFile(join(root, 'dist', 'package.json'), `${JSON.stringify({ name: 'jobbox', version: pkg.version, type: 'module', private: true })}\n`);
  const packages = new Map();
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (!m || packages.has(m[1])) continue;
    const meta = JSON.parse(await readFile(join(root, 'node_modules', m[1], 'package.json'), 'utf8'));
    packages.set(m[1], { version: meta.version, license: meta.license ?? 'see its package' });
  }
  await writeFile(join(root, 'dist', 'bundled.json'), `${JSON.stringify(Object.fromEntries([...packages].sort()), null, 2)}\n`);
}
