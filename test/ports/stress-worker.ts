// One job-like process for the concurrency test in allocator.test.ts, which bundles it with
// esbuild (forked children cannot run TypeScript). Each cycle allocates, holds and releases.
// The observer is independent of the allocator: a holder creates held.<port> with O_EXCL, so
// two holders of one port at once show up as EEXIST.
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT, JobboxError } from '../../src/errors.js';
import { allocatePort, releasePort } from '../../src/ports/allocator.js';

const [portDir = '', heldDir = '', id = '', cycles = '0', first = '0', last = '0'] = process.argv.slice(2);
const range = { first: Number(first), last: Number(last) };
const result = { completed: 0, duplicates: 0, waits: 0, badReleases: 0 };

for (let cycle = 0; cycle < Number(cycles); cycle++) {
  const claim = `${id}.${cycle}.node1`;
  let port: number | undefined;
  while (port === undefined) {
    try {
      port = await allocatePort(portDir, range, claim);
    } catch (err) {
      // Every port held by others: what a requeued job would do, wait and try again.
      if (!(err instanceof JobboxError && err.exitCode === EXIT.transient)) throw err;
      result.waits++;
      await sleep(Math.random() * 3);
    }
  }
  const held = join(heldDir, `held.${port}`);
  let mine = false;
  try {
    closeSync(openSync(held, 'wx'));
    mine = true;
  } catch {
    result.duplicates++;
  }
  await sleep(Math.random() * 2);
  if (mine) unlinkSync(held);
  const freed = await releasePort(portDir, claim);
  if (freed.length !== 1 || freed[0] !== port) result.badReleases++;
  result.completed++;
}
process.send?.(result);
