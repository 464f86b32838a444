// P1: the pre-exec's wall time on 1..4 nodes against the floor (plain OpenSSH starting the same
// containers on every node at once, then waiting for every job sshd to accept), with the
// seed's serial loop as a reference row. Target: ≤ 1.0× the floor at 4 nodes. Then the
// registry's own access log, for one warm and one cold 4-node start: at most one manifest
// request by tag per start, and blobs only for the node that lacks the image.
import { lsfFixture } from '../test/support/lsf-fixture.js';
import { onNode, registryLog, testbedStatus } from '../test/support/testbed.js';
import { interleave, ratioRow, stats, type Row } from './lib.js';
import type { Bench } from './run.js';
import { expectClean, floorClear, floorEnd, floorJob, floorStart, jobEnv, mustHook, nodes } from './testbed-jobs.js';

// P1_REPS=<n> (default 5, at least 5) sets the runs per side; P1_SIZES=4 runs only those node counts.
const REPS = Math.max(5, Number.parseInt(process.env.P1_REPS ?? '5', 10) || 5);
const LIMIT = 1.0;

async function run(): Promise<Row[]> {
  const b = await lsfFixture();
  const rows: Row[] = [];
  let next = 81_000;
  // 8 nodes too where the testbed has them (`npm run testbed -- up --nodes 8`); the target is at 4.
  const all = (await testbedStatus()).nodes.length >= 8 ? [1, 2, 3, 4, 8] : [1, 2, 3, 4];
  const sizes = process.env.P1_SIZES ? all.filter((n) => process.env.P1_SIZES!.split(',').includes(String(n))) : all;
  for (const n of sizes) {
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
  const growth = rows.filter((r) => r.case.startsWith('pre-exec')).map((r) => r.stats.median);
  const at4 = rows.find((r) => r.case === 'pre-exec, 4 nodes');
  if (at4) at4.note = `growth ${sizes[0]}→${sizes.at(-1)} nodes: ${(growth.at(-1)! / growth[0]!).toFixed(2)}× (medians ${growth.map((g) => g.toFixed(0)).join(', ')} ms)`;
  rows.push(...(await registryRequests(b, next)));
  await expectClean(sizes.at(-1)!, 81_000, 89_999);
  return rows;
}

/** One warm and one cold 4-node start of deb12, counted from the registry's log; node4 is the cold one. */
async function registryRequests(b: Awaited<ReturnType<typeof lsfFixture>>, jobId: number): Promise<Row[]> {
  const tb = await testbedStatus();
  const hosts = nodes(4);
  const ref = b.config.images.get('deb12')!.ref;
  const repo = ref.slice(0, ref.lastIndexOf(':'));
  const rows: Row[] = [];
  for (const round of ['warm', 'cold']) {
    // Cold: node4 holds no copy of deb12 under any name (dockerd would fetch nothing for one it holds by another).
    if (round === 'cold') await onNode('node4', ['sh', '-c', 'docker images -q --no-trunc "$1" | sort -u | xargs -r docker rmi -f', 'sh', repo]);
    const from = await registryLog.size(tb);
    const env = jobEnv(jobId, hosts);
    await mustHook(b.hooks.preExec, env);
    await mustHook(b.hooks.postExec, env);
    jobId += 1;
    const seen = await registryLog.since(tb, from);
    const byTag = seen.filter((r) => r.path.endsWith(`/manifests/${ref.slice(ref.lastIndexOf(':') + 1)}`)).length;
    const byDigest = seen.filter((r) => /\/manifests\/sha256:/.test(r.path)).length;
    const blobs = seen.filter((r) => r.path.includes('/blobs/') && r.method === 'GET');
    const node4 = tb.nodes.find((n) => n.name === 'node4')!.ip;
    const row: Row = {
      bench: 'P1',
      case: `registry: manifest requests by tag, one ${round} 4-node start`,
      unit: 'requests',
      stats: stats([byTag]),
      target: '≤ 1',
      // Blobs only where a node lacks the image: none warm, only node4's cold.
      met: byTag <= 1 && (round === 'warm' ? blobs.length === 0 && byDigest === 0 : blobs.every((r) => r.ip === node4)),
      note: `${byTag} by tag, ${byDigest} by digest, ${blobs.length} blob GETs (${[...new Set(blobs.map((r) => tb.nodes.find((n) => n.ip === r.ip)?.name ?? r.ip))].join(' ') || 'none'})`,
    };
    rows.push(row);
  }
  return rows;
}

export default { id: 'P1', title: 'pre-exec wall time vs parallel OpenSSH', testbed: true, run } satisfies Bench;
