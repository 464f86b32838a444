// P4: the post-exec on 4 nodes against the floor, plain OpenSSH running `docker rm -f` of the
// job's container on every node at once. Target: ≤ 1.3×.
import { lsfFixture } from '../test/support/lsf-fixture.js';
import { interleave, ratioRow, type Row } from './lib.js';
import type { Bench } from './run.js';
import { expectClean, floorClear, floorEnd, floorJob, floorRemove, floorStart, jobEnv, mustHook, nodes } from './testbed-jobs.js';

const REPS = 5;
const LIMIT = 1.3;

async function run(): Promise<Row[]> {
  const b = await lsfFixture();
  const hosts = nodes(4);
  const floorId = 89_104;
  const floor = await floorJob(b, floorId, hosts);
  let next = 84_000;
  let current: number | undefined;
  try {
    const s = await interleave(REPS, {
      // Untimed before each: a job (or the floor's containers) running on every node.
      jobbox: {
        before: async () => mustHook(b.hooks.preExec, jobEnv((current = next++), hosts)),
        run: async () => {
          await mustHook(b.hooks.postExec, jobEnv(current!, hosts));
          current = undefined;
        },
      },
      floor: { before: async () => { await floorClear(b, floor); await floorStart(b, floor); }, run: () => floorRemove(b, floor) },
    });
    return [ratioRow('P4', 'post-exec, 4 nodes', s.jobbox!, 'parallel OpenSSH docker rm -f', s.floor!, LIMIT)];
  } finally {
    if (current !== undefined) await mustHook(b.hooks.postExec, jobEnv(current, hosts));
    await floorEnd(b, floorId, hosts);
    await expectClean(4, 84_000, 89_999);
  }
}

export default { id: 'P4', title: 'post-exec wall time vs parallel OpenSSH', testbed: true, run } satisfies Bench;
