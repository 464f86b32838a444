import { stat } from 'node:fs/promises';
import { importImage, pushImage } from '../exec/docker.js';
import { tarTree } from '../exec/tar.js';
import { EXIT, JobboxError } from '../errors.js';
import { say } from '../log.js';
import { qualifiedRef } from '../config/ref.js';

export interface ImportOptions {
  dir: string;
  ref: string;
  push: boolean;
  engine: string;
  /** Progress goes to a terminal only; CI logs get the summary line. */
  tty: boolean;
}

// `tar -C dir -c . | docker import - ref`, streamed: a chroot of several GB never lands in a
// temporary tarball, and the image records which tree it came from.
export async function imageImport(opts: ImportOptions): Promise<void> {
  const ref = qualifiedRef(opts.ref, '', 'image import');
  const info = await stat(opts.dir).catch(() => undefined);
  if (!opts.dir.startsWith('/') || !info?.isDirectory()) {
    throw new JobboxError('image import', 'not an absolute path to a directory', opts.dir, EXIT.usage);
  }
  if (!(await stat(`${opts.dir}/bin/sh`).catch(() => undefined))) {
    throw new JobboxError('image import', 'not a root file system (no bin/sh)', opts.dir, EXIT.usage);
  }

  const tar = tarTree(opts.dir);
  let bytes = 0;
  const started = Date.now();
  const ticker = opts.tty
    ? setInterval(() => process.stderr.write(`\rjobbox: importing ${ref}: ${mb(bytes)}`), 250)
    : undefined;
  try {
    const imported = importImage(opts.engine, tar.stdout, ref, {
      'org.jobbox.source': opts.dir,
      'org.jobbox.imported': new Date().toISOString(),
    });
    // Attached in the same tick as the pipe, before any chunk flows; backpressure stays with the pipe.
    tar.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
    await Promise.all([tar, imported]);
  } catch (err) {
    tar.kill();
    throw err;
  } finally {
    if (ticker) {
      clearInterval(ticker);
      process.stderr.write('\n');
    }
  }
  say(`imported ${ref} from ${opts.dir}: ${mb(bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (opts.push) {
    await pushImage(opts.engine, ref);
    say(`pushed ${ref}`);
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`;
}
