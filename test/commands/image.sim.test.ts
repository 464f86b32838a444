// `jobbox image gc` against the simulated cluster: what the nodes hold afterwards, per node,
// and a node that fails is its own row. The choice of images is test/plan/image-gc.test.ts's.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { gcNodes, gcSummary, prefetchStatus, statusOutput, type GcOptions } from '../../src/commands/image.js';
import { UNREACHABLE, IMAGE_REF, simFixture, type SimFixture } from '../lifecycle/sim-fixture.js';
import { simDigest, type SimNode } from '../support/sim-cluster.js';

let f: SimFixture;
beforeAll(async () => {
  f = await simFixture(131);
});
afterAll(async () => {
  await f.close();
});
beforeEach(async () => {
  await f.fresh();
});

const REPO = 'registry.sim.example:5000/hpc/deb12';
const OTHER = 'registry.sim.example:5000/admin/tools:1';
const old = (n: number) => `${REPO}@sha256:${String(n).repeat(64)}`;

/**
 * What a node holds after some months: the alias's tag (pulled, so also by its digest), three
 * older builds by digest only (days 1 to 3, the tag's is day 9), and an image of no alias.
 */
function seed(node: SimNode): void {
  for (const ref of [IMAGE_REF, `${REPO}@${simDigest(IMAGE_REF)}`, old(1), old(2), old(3), OTHER]) node.images.add(ref);
  for (const n of [1, 2, 3]) node.created.set(old(n), new Date(`2026-02-0${n}T00:00:00Z`));
  node.created.set(`${REPO}@${simDigest(IMAGE_REF)}`, new Date('2026-02-09T00:00:00Z'));
}

const gc = (opts: Partial<GcOptions> = {}, hosts = f.hosts) => gcNodes(f.config, hosts, { keep: 1, dryRun: false, ...opts }, f.log);
const held = (node: SimNode) => [...node.images].sort();
/** A node's lines, as `status ref` with the refs of the image comma-joined. */
const lines = (images: { node: string; status: string; refs: string[] }[], node: string) => images.filter((i) => i.node === node).map((i) => `${i.status} ${i.refs.join(',')}`);

describe('image gc on the simulated cluster', () => {
  it('removes unused older builds, keeping the one in use (a stopped container too), the tag\'s and the --keep newest; other repositories untouched', async () => {
    const [n1, n2] = f.hosts.map((h) => f.sim.node(h));
    for (const n of [n1!, n2!]) seed(n);
    n1!.plant({ name: 'jobbox-4711.0.x', image: old(1), state: 'exited' });

    const report = await gc({}, f.hosts.slice(0, 2));

    expect(report.failed).toEqual([]);
    expect(lines(report.images, f.hosts[0]!)).toEqual([
      `tagged ${REPO}@${simDigest(IMAGE_REF)},${IMAGE_REF}`,
      `kept ${old(3)}`,
      `removed ${old(2)}`,
      `in-use ${old(1)}`,
    ]);
    expect(lines(report.images, f.hosts[1]!)).toEqual([`tagged ${REPO}@${simDigest(IMAGE_REF)},${IMAGE_REF}`, `kept ${old(3)}`, `removed ${old(2)}`, `removed ${old(1)}`]);
    expect(held(n1!)).toEqual([OTHER, `${REPO}@${simDigest(IMAGE_REF)}`, old(1), old(3), IMAGE_REF].sort());
    expect(held(n2!)).toEqual([OTHER, `${REPO}@${simDigest(IMAGE_REF)}`, old(3), IMAGE_REF].sort());
    expect(gcSummary(report, 2, false)).toBe('2 nodes: removed 3, in-use 1, tagged 2, kept 2, failed 0');
  });

  it('--dry-run says what would go and sends no rmi', async () => {
    const node = f.sim.node(f.hosts[0]!);
    seed(node);
    const before = held(node);

    const report = await gc({ dryRun: true, keep: 0 }, f.hosts.slice(0, 1));

    expect(lines(report.images, f.hosts[0]!).filter((l) => l.startsWith('would-remove'))).toEqual([`would-remove ${old(3)}`, `would-remove ${old(2)}`, `would-remove ${old(1)}`]);
    expect(held(node)).toEqual(before);
    expect(node.count('rmi')).toBe(0);
    expect(gcSummary(report, 1, true)).toBe('1 node: would-remove 3, in-use 0, tagged 1, kept 0, failed 0');
  });

  it('a container made after the listing keeps its image: docker refuses to remove its last name, and the line says failed', async () => {
    const node = f.sim.node(f.hosts[0]!);
    seed(node);
    node.plant({ name: 'jobbox-4712.0.x', image: old(2), state: 'running' });
    // The listing missed it, as when the job's docker run came just after.
    node.intercept = ({ kind }) => (kind === 'ps labels' ? { code: 0, stdout: '' } : undefined);

    const report = await gc({ keep: 0 }, f.hosts.slice(0, 1));

    const failed = report.images.filter((i) => i.status === 'failed');
    expect(failed.map((i) => i.refs)).toEqual([[old(2)]]);
    expect(failed[0]!.error).toMatch(/^docker rmi: exit 1: Error response from daemon: conflict: unable to remove repository reference/);
    expect(node.images.has(old(2))).toBe(true);
    expect(node.images.has(old(1))).toBe(false);
  });

  it('a node that cannot be reached is its own row; the others are collected', async () => {
    for (const h of f.hosts) seed(f.sim.node(h));
    const report = await gc({ keep: 0 }, [f.hosts[0]!, UNREACHABLE]);
    expect(report.failed).toEqual([{ node: UNREACHABLE, error: expect.stringMatching(/^nodes: failed on 1 of 1: ssh 127\.77\.9\.9:\d+: connect ECONNREFUSED/) }]);
    expect(report.images.filter((i) => i.status === 'removed')).toHaveLength(3);
    expect(gcSummary(report, 2, false)).toBe('2 nodes: removed 3, in-use 0, tagged 1, kept 0, failed 1');
  });

  it('a second run finds nothing more to remove (already gone is no failure)', async () => {
    const node = f.sim.node(f.hosts[0]!);
    seed(node);
    await gc({ keep: 0 }, f.hosts.slice(0, 1));
    const again = await gc({ keep: 0 }, f.hosts.slice(0, 1));
    expect(again.images.map((i) => i.status)).toEqual(['tagged']);
  });
});

describe('image prefetch on a terminal', () => {
  const run = (tty: boolean) => {
    const written: string[] = [];
    const out = statusOutput((t) => written.push(t), tty, () => 40);
    out.status(prefetchStatus('deb12', 1, 3, 0, ['node2', 'node3']));
    out.line('node2  ok      reg/deb12@sha256:x');
    out.status(prefetchStatus('deb12', 2, 3, 0, ['node3']));
    out.end();
    return written.join('');
  };

  it('redraws a status line under the per-node lines, cut to the terminal\'s width, and clears it at the end', () => {
    expect(run(true)).toBe(
      '\r\x1b[Kprefetch deb12: 1/3 nodes, 0 failed, pu' +
        '\r\x1b[Knode2  ok      reg/deb12@sha256:x\nprefetch deb12: 1/3 nodes, 0 failed, pu' +
        '\r\x1b[Kprefetch deb12: 2/3 nodes, 0 failed, pu' +
        '\r\x1b[K',
    );
  });

  it('prints only the lines, as before, when stdout is no terminal', () => {
    expect(run(false)).toBe('node2  ok      reg/deb12@sha256:x\n');
  });

  it('names at most 8 busy nodes', () => {
    const busy = Array.from({ length: 10 }, (_, i) => `n${i}`);
    expect(prefetchStatus('deb12', 3, 20, 1, busy)).toBe('prefetch deb12: 3/20 nodes, 1 failed, pulling on n0 n1 n2 n3 n4 n5 n6 n7 +2');
    expect(prefetchStatus('deb12', 20, 20, 0, [])).toBe('prefetch deb12: 20/20 nodes, 0 failed');
  });
});
