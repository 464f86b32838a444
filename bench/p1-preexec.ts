// P1: the pre-exec's wall time on 1..4 nodes against the floor (plain OpenSSH starting the same
// containers on every node at once, then waiting for every job sshd to accept), with the
// seed's serial loop as a reference row. Target: ≤ 1.3× the floor at 4 nodes.
import { lsfFixture } from '../test/support/lsf-fixture.js';
import { interleave, ratioRow, type Row } from './lib.js';
import type { Bench } from './run.js';
import { expectClean, floorClear, floorEnd, floorJob, floorStart, jobEnv, mustHook, nodes } from './testbed-jobs.js';

const REPS = 5;
const LIMIT = 1.3;

async function run(): Promise<Row[]> {
  const b = await lsfFixture();
  const rows: Row[] = [];
  let next = 81_000;
  for (const n of [1, 2, 3, 4]) {
    const hosts = nodes(n);
    const floorId = 89_000 + n;
    const floor = await floorJob(b, floorId, hosts);
    let last: number | undefined;
    // Each jobbox run is a new job; the previous one is ended (untimed) before the next starts.
    const endLast = async () => {
      if (last !== undefined) await mustHook(b.hooks.postExec, jobEnv(last, hosts));
      last = undefined;
    };
    try {
      const s = await interleave(REPS, {
        jobbox: { before: endLast, run: async () => mustHook(b.hooks.preExec, jobEnv((last = next++), hosts)) },
        floor: { before: () => floorClear(b, floor), run: () => floorStart(b, floor) },
        serial: { before: () => floorClear(b, floor), run: () => floorStart(b, floor, true) },
      });
      rows.push(ratioRow('P1', `pre-exec, ${n} node${n > 1 ? 's' : ''}`, s.jobbox!, 'parallel OpenSSH docker run', s.floor!, n === 4 ? LIMIT : undefined));
      rows.push(ratioRow('P1', `seed's serial loop, ${n} node${n > 1 ? 's' : ''}`, s.serial!, 'parallel OpenSSH docker run', s.floor!));
    } finally {
      await endLast();
      await floorEnd(b, floorId, hosts);
    }
  }
  await expectClean(4, 81_000, 89_999);
  const growth = rows.filter((r) => r.case.startsWith('pre-exec')).map((r) => r.stats.median);
  rows.at(-2)!.note = `growth 1→4 nodes: ${(growth[3]! / growth[0]!).toFixed(2)}× (medians ${growth.map((g) => g.toFixed(0)).join(', ')} ms)`;
  return rows;
}

export default { id: 'P1', title: 'pre-exec wall time vs parallel OpenSSH', testbed: true, run } satisfies Bench;
