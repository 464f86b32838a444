import { execa } from 'execa';

// The only code that runs tar. Numeric owners keep the chroot's uids as they are on disk:
// name mapping through the build host's passwd would silently re-own files.
export function tarTree(dir: string) {
  return execa('tar', ['--numeric-owner', '-C', dir, '-c', '.'], { buffer: false, stdin: 'ignore' });
}
