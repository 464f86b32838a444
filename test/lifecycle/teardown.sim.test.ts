// teardownJob against the simulated cluster: it removes exactly one attempt's containers, job
// dir and claim, is idempotent, and keeps the claim and the dir for gc when a node fails it.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JobboxError } from '../../src/errors.js';
import { setupJob } from '../../src/lifecycle/setup.js';
import { teardownJob, usageLine } from '../../src/lifecycle/teardown.js';
import { simFixture, type SimFixture } from './sim-fixture.js';

let f: SimFixture;
beforeAll(async () => {
  f = await simFixture(111);
});
afterAll(() => f.close());
beforeEach(() => f.fresh());

/** What a failed teardownJob threw, which must be a JobboxError. */
async function failure(run: Promise<unknown>): Promise<JobboxError> {
  const err: unknown = await run.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(JobboxError);
  return err as JobboxError;
}

describe('teardownJob on the simulated cluster', () => {
  it('removes the containers on every node, the claim and the job dir; a second call succeeds and finds nothing', async () => {
    const job = f.job('2001');
    await setupJob(f.config, job, f.log);
    expect(f.sim.containers()).toHaveLength(3);

    await teardownJob(f.config, job, f.hosts, f.log);

    expect(f.sim.containers()).toEqual([]);
    expect(f.claims()).toEqual([]);
    expect(f.jobDirs()).toEqual([]);
    await teardownJob(f.config, job, f.hosts, f.log);
    expect(f.sim.containers()).toEqual([]);
    // The second call listed each node's containers and found none to remove.
    expect(f.sim.nodes.map((n) => [n.count('ps labels'), n.count('rm')])).toEqual([[2, 1], [2, 1], [2, 1]]);
  });

  it('leaves another attempt of the same job alone (a late post-exec of an earlier attempt)', async () => {
    const earlier = f.job('2002', [f.hosts[0]!, f.hosts[1]!]);
    const later = f.job('2002', [f.hosts[2]!]);
    await setupJob(f.config, earlier, f.log);
    const { port } = await setupJob(f.config, later, f.log);

    // Swept on every node, as gc does with --nodes.
    await teardownJob(f.config, earlier, f.hosts, f.log);

    expect(f.sim.containers().map((c) => [c.name, c.labels.get('org.jobbox.attempt')])).toEqual([['jobbox-2002', f.hosts[2]]]);
    expect(f.claims()).toEqual([`claim.2002.0.${f.hosts[2]}.${port}`]);
    expect(f.jobDirs()).toEqual([`2002.0.${f.hosts[2]}`]);
  });

  it('a node that is down fails the teardown as transient, and the claim and the job dir stay for gc', async () => {
    const job = f.job('2003');
    const { port } = await setupJob(f.config, job, f.log);
    const third = f.sim.node(f.hosts[2]!);
    await third.setDown(true);

    const err = await failure(teardownJob(f.config, job, f.hosts, f.log));

    const target = `${third.ip}:${f.sim.adminPort}`;
    expect(err.exitCode).toBe(1);
    expect(err.message).toBe(`jobbox: nodes: failed on 1 of 3: ssh ${target}: connect ECONNREFUSED ${target}: ${f.owner.name}`);
    expect(f.claims()).toEqual([`claim.2003.0.${f.hosts[0]}.${port}`]);
    expect(f.jobDirs()).toEqual([`2003.0.${f.hosts[0]}`]);
    expect(f.sim.containers()).toHaveLength(3);
  });

  it('a docker rm that fails on one node is reported; the other nodes are cleaned, the claim and the dir stay', async () => {
    const job = f.job('2004');
    await setupJob(f.config, job, f.log);
    const second = f.sim.node(f.hosts[1]!);
    const id = second.named('jobbox-2004')[0]!.id.slice(0, 12);
    const said = `Error response from daemon: cannot remove container "/jobbox-2004": could not kill: tried to kill container, but did not receive an exit event`;
    second.intercept = (c) => (c.kind === 'rm' ? { code: 1, stderr: `${said}\n` } : undefined);

    const err = await failure(teardownJob(f.config, job, f.hosts, f.log));

    expect(err.exitCode).toBe(1);
    expect(err.message.startsWith(`jobbox: nodes: failed on 1 of 3: ${second.ip}: docker rm: Error response from daemon: cannot remove container `)).toBe(true);
    expect(f.sim.containers().map((c) => c.id.slice(0, 12))).toEqual([id]);
    expect(f.claims()).toHaveLength(1);
    expect(f.jobDirs()).toHaveLength(1);
  });

  it('a container that vanished between docker ps and docker rm counts as removed', async () => {
    const job = f.job('2005');
    await setupJob(f.config, job, f.log);
    const first = f.sim.node(f.hosts[0]!);
    const real = first.named('jobbox-2005')[0]!.id.slice(0, 12);
    first.intercept = (c) => (c.kind === 'ps labels' ? { code: 0, stdout: `${real}\n0123456789ab\n` } : undefined);

    await teardownJob(f.config, job, f.hosts, f.log);

    expect(f.sim.containers()).toEqual([]);
    expect(f.claims()).toEqual([]);
    expect(f.jobDirs()).toEqual([]);
  });

  it('a docker rm that fails for one container is reported even when another vanished meanwhile', async () => {
    const job = f.job('2006');
    await setupJob(f.config, job, f.log);
    const first = f.sim.node(f.hosts[0]!);
    const real = first.named('jobbox-2006')[0]!.id.slice(0, 12);
    first.intercept = (c) => {
      if (c.kind === 'ps labels') return { code: 0, stdout: `${real}\n0123456789ab\n` };
      if (c.kind === 'rm') {
        return { code: 1, stderr: `Error response from daemon: No such container: 0123456789ab\nError response from daemon: cannot remove container "/jobbox-2006": could not kill\n` };
      }
      return undefined;
    };

    const err = await failure(teardownJob(f.config, job, f.hosts, f.log));

    // Only the real complaint is reported, not the vanished one's.
    expect(err.message).toMatch(new RegExp(`^jobbox: nodes: failed on 1 of 3: ${first.ip.replace(/\./g, '\\.')}: docker rm: Error response from daemon: cannot remove container .*could not kill: ${real} 0123456789ab$`));
    expect(err.exitCode).toBe(1);
    expect(f.sim.containers().map((c) => c.id.slice(0, 12))).toEqual([real]);
    expect(f.claims()).toHaveLength(1);
    expect(f.jobDirs()).toHaveLength(1);
  });

  it('a docker rm that fails saying nothing (its session ended by a signal) is not taken for "gone"', async () => {
    const job = f.job('2007');
    await setupJob(f.config, job, f.log);
    const third = f.sim.node(f.hosts[2]!);
    third.intercept = (c) => (c.kind === 'rm' ? { code: 255, stderr: '' } : undefined);

    const err = await failure(teardownJob(f.config, job, f.hosts, f.log));

    expect(err.message).toMatch(/: docker rm: exit 255: /);
    expect(err.exitCode).toBe(1);
    expect(third.named('jobbox-2007')).toHaveLength(1);
    expect(f.claims()).toHaveLength(1);
    expect(f.jobDirs()).toHaveLength(1);
  });
});

describe('usageLine', () => {
  it('sums the nodes and names each', () => {
    const usage = new Map([['node1', { cpuSeconds: 400.4, peakBytes: 1.6 * 1024 ** 3 }], ['node2', { cpuSeconds: 411.7, peakBytes: 1.5 * 1024 ** 3 }]]);
    expect(usageLine('123', usage)).toBe('jobbox: job 123: cpu 812 s, peak memory 3.1 GB in all (node1: 400 s, 1.6 GB; node2: 412 s, 1.5 GB)');
  });
  it('says small figures in MB and tenths of a second', () => {
    expect(usageLine('7', new Map([['node1', { cpuSeconds: 0.35, peakBytes: 7.3 * 1024 ** 2 }]]))).toBe('jobbox: job 7: cpu 0.3 s, peak memory 7 MB in all (node1: 0.3 s, 7 MB)');
  });
  it('says nothing when nothing could be read', () => expect(usageLine('123', new Map())).toBeUndefined());
});
