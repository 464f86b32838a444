// One process of P5, forked by p5-ports.ts, which bundles this file first (node cannot run
// TypeScript). It warms up, says ready, then answers each message it is sent:
// - a Job: a closed loop of cycles (take a port, hold it briefly, give it back; only the taking
//   is timed), answered with a Result;
// - a Burst: at the instant `at` on the machine-wide monotonic clock, take one port and hold it,
//   answered with a Taken; then a Release gives it back, answered with 'released'.
import { closeSync, constants, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep, setImmediate as nextTurn } from 'node:timers/promises';
import { allocatePort, type PortRange, releasePort } from '../src/ports/allocator.js';
import { monotonicMs } from './lib.js';

type Mode = 'allocator' | 'floor';
interface Where {
  /** 'floor': the least a port lock costs on this filesystem, one O_EXCL create of lock.<port>. */
  mode: Mode;
  portDir: string;
  heldDir: string;
  range: PortRange;
}
export interface Job extends Where { kind: 'loop'; id: string; cycles: number }
export interface Burst extends Where { kind: 'burst'; claim: string; at: number }
export interface Release { kind: 'release' }
export interface Result { latencies: number[]; duplicates: number; badReleases: number }
export interface Taken { latency: number; duplicate: boolean }

const take = (w: Where, claim: string) => (w.mode === 'allocator' ? allocatePort(w.portDir, w.range, claim) : lockFloor(w.portDir, w.range));

/** The observer, independent of the allocator: two holders of one port at once make EEXIST. Returns whether this holder is alone. */
function hold(w: Where, port: number): boolean {
  try {
    closeSync(openSync(join(w.heldDir, `held.${port}`), 'wx'));
    return true;
  } catch {
    return false;
  }
}

/** Gives the port back; false when the allocator did not free exactly the port taken. */
async function give(w: Where, claim: string, port: number, alone: boolean): Promise<boolean> {
  if (alone) unlinkSync(join(w.heldDir, `held.${port}`));
  if (w.mode === 'floor') {
    await unlink(join(w.portDir, `lock.${port}`));
    return true;
  }
  const freed = await releasePort(w.portDir, claim);
  return freed.length === 1 && freed[0] === port;
}

async function loop(job: Job): Promise<Result> {
  const result: Result = { latencies: [], duplicates: 0, badReleases: 0 };
  for (let cycle = 0; cycle < job.cycles; cycle++) {
    const claim = `${job.id}.${cycle}.node1`;
    const t0 = performance.now();
    const port = await take(job, claim);
    result.latencies.push(performance.now() - t0);
    const alone = hold(job, port);
    if (!alone) result.duplicates++;
    // Held for one event-loop turn: a real job holds its port for hours, but all that changes
    // for the allocator is how many ports are taken, at most one per process here.
    await nextTurn();
    if (!(await give(job, claim, port, alone))) result.badReleases++;
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

let holding: { burst: Burst; port: number; alone: boolean } | undefined;

async function answer(m: Job | Burst | Release): Promise<unknown> {
  if (m.kind === 'loop') return loop(m);
  if (m.kind === 'burst') {
    // Timed from the common instant, so waiting for a CPU behind the other allocators counts;
    // or from the wake-up, when the (millisecond) timer fires before it.
    await sleep(Math.max(0, m.at - monotonicMs()));
    const start = Math.min(m.at, monotonicMs());
    const port = await take(m, m.claim);
    const latency = monotonicMs() - start;
    const alone = hold(m, port);
    holding = { burst: m, port, alone };
    return { latency, duplicate: !alone } satisfies Taken;
  }
  if (!holding) throw new Error('bench: P5 release without a burst');
  const { burst, port, alone } = holding;
  holding = undefined;
  return (await give(burst, burst.claim, port, alone)) ? 'released' : 'bad release';
}

// Warm up both paths untimed in a scratch dir, long enough for V8 to finish optimising them:
// with 32 processes at the same cycle count, a late tier-up lands on every process at once.
const [scratch = '', id = ''] = process.argv.slice(2);
mkdirSync(scratch, { mode: 0o700 });
for (const mode of ['allocator', 'floor'] as const) {
  await loop({ kind: 'loop', mode, portDir: scratch, heldDir: scratch, id: `warm${id}`, cycles: 300, range: { first: 30000, last: 30099 } });
}
process.on('message', (m: Job | Burst | Release) => {
  void answer(m).then((r) => process.send?.(r));
});
process.send?.('ready');
