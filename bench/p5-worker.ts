// One process of P5, forked by p5-ports.ts, which bundles this file first (node cannot run
// TypeScript). It warms up, says ready, then runs each Job it is sent and answers with a Result.
// A cycle takes a port, holds it briefly, gives it back; only the taking is timed.
import { closeSync, constants, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { allocatePort, type PortRange, releasePort } from '../src/ports/allocator.js';

export interface Job {
  /** 'floor': the least a port lock costs on this filesystem, one O_EXCL create of lock.<port>. */
  mode: 'allocator' | 'floor';
  portDir: string;
  heldDir: string;
  id: string;
  cycles: number;
  range: PortRange;
}
export interface Result { latencies: number[]; duplicates: number; badReleases: number }

async function run(job: Job): Promise<Result> {
  const result: Result = { latencies: [], duplicates: 0, badReleases: 0 };
  for (let cycle = 0; cycle < job.cycles; cycle++) {
    const claim = `${job.id}.${cycle}.node1`;
    const t0 = performance.now();
    const port = job.mode === 'allocator' ? await allocatePort(job.portDir, job.range, claim) : await lockFloor(job.portDir, job.range);
    result.latencies.push(performance.now() - t0);

    // The observer is independent of the allocator: two holders of one port at once make EEXIST.
    const held = join(job.heldDir, `held.${port}`);
    let mine = false;
    try {
      closeSync(openSync(held, 'wx'));
      mine = true;
    } catch {
      result.duplicates++;
    }
    // Held for one event-loop turn: a real job holds its port for hours, but all that changes
    // for the allocator is how many ports are taken, at most one per process here.
    await nextTurn();
    if (mine) unlinkSync(held);

    if (job.mode === 'floor') await unlink(join(job.portDir, `lock.${port}`));
    else {
      const freed = await releasePort(job.portDir, claim);
      if (freed.length !== 1 || freed[0] !== port) result.badReleases++;
    }
  }
  return result;
}

/** A random port whose lock file this call created; EEXIST means another holds it, try again. */
async function lockFloor(dir: string, range: PortRange): Promise<number> {
  for (;;) {
    const port = range.first + Math.floor(Math.random() * (range.last - range.first + 1));
    const fh = await open(join(dir, `lock.${port}`), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
      throw err;
    });
    if (fh) {
      await fh.close();
      return port;
    }
  }
}

// Warm up both paths untimed in a scratch dir, so the first timed cycles do not pay for the JIT.
const [scratch = '', id = ''] = process.argv.slice(2);
const warm = { portDir: scratch, heldDir: scratch, id: `warm${id}`, cycles: 50, range: { first: 30000, last: 30099 } };
mkdirSync(scratch, { mode: 0o755 });
await run({ mode: 'allocator', ...warm });
await run({ mode: 'floor', ...warm });
process.on('message', (job: Job) => {
  void run(job).then((r) => process.send?.(r));
});
process.send?.('ready');
