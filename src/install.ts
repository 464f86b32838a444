// Where jobbox's own files are. An install (a checkout or the package's /usr/lib/jobbox) holds
// dist/ (the bundle: cli.js and the chunks it loads on demand, all in that one directory) and
// hooks/ beside it. This module sits one level under src/ so that `..` from it is the install's
// root both when it runs from src/ (tests) and from any file of dist/ (the bundle).
import { fileURLToPath } from 'node:url';

const ROOT = new URL('../', import.meta.url);

/** A path inside the install, e.g. `dist/cli.js` or `hooks/lsf/esub`. */
export function installed(path: string): string {
  return fileURLToPath(new URL(path, ROOT));
}
