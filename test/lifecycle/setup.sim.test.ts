// setupJob against the simulated cluster: what it leaves on the nodes and in port_dir and
// state_dir when a start succeeds, when it is run again, and when a node fails it.
import { readFileSync, statSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { JobboxError } from '../../src/errors.js';
import { resolveImage } from '../../src/config/image.js';
import { setupJob } from '../../src/lifecycle/setup.js';
import { teardownJob } from '../../src/lifecycle/teardown.js';
import { nodeSteps } from '../../src/plan/node.js';
import { parseStatus, PHASES, statusDir, statusPath, type StartRecord } from '../../src/plan/status.js';
import { fakeRegistry } from '../support/fake-registry.js';
import { simDigest } from '../support/sim-cluster.js';
import { IMAGE_REF, PORTS, simFixture, UNREACHABLE, type SimFixture } from './sim-fixture.js';

let f: SimFixture;
beforeAll(async () => {
  f = await simFixture(101);
});
afterAll(() => f.close());
beforeEach(() => f.fresh());
afterEach(() => vi.restoreAllMocks());

/** What a failed setupJob threw, which must be a JobboxError. */
async function failure(id: string, hosts?: string[]): Promise<JobboxError> {
  const err: unknown = await setupJob(f.config, f.job(id, hosts), f.log).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(JobboxError);
  return err as JobboxError;
}

/** Nothing of the attempt is left anywhere: no container on any node, no claim, no job dir. */
function nothingLeft(): void {
  expect(f.sim.containers()).toEqual([]);
  expect(f.claims()).toEqual([]);
  expect(f.jobDirs()).toEqual([]);
}

const nonceOf = (dir: string) => (JSON.parse(readFileSync(`${dir}/attempt`, 'utf8')) as { nonce: string }).nonce;

describe('setupJob on the simulated cluster', () => {
  it('starts one container per node, claims one port and writes the job dir', async () => {
    const job = f.job('1001');
    const { port, paths } = await setupJob(f.config, job, f.log);

    expect(port).toBeGreaterThanOrEqual(PORTS.first);
    expect(port).toBeLessThanOrEqual(PORTS.last);
    expect(f.claims()).toEqual([`claim.1001.0.${f.hosts[0]}.${port}`]);
    expect(f.jobDirs()).toEqual([`1001.0.${f.hosts[0]}`]);
    const nonce = nonceOf(paths.dir);
    for (const ip of f.hosts) {
      const named = f.sim.node(ip).named('jobbox-1001');
      expect(named).toHaveLength(1);
      // Every node runs the digest the first node's pull printed.
      expect(named[0]).toMatchObject({ state: 'running', port, image: `${IMAGE_REF.slice(0, IMAGE_REF.lastIndexOf(':'))}@${simDigest(IMAGE_REF)}` });
      expect(Object.fromEntries(named[0]!.labels)).toEqual({
        'org.jobbox.job': '1001', 'org.jobbox.index': '0', 'org.jobbox.attempt': f.hosts[0],
        'org.jobbox.nonce': nonce, 'org.jobbox.owner': f.owner.name,
      });
    }
    expect(readFileSync(paths.hostfile, 'utf8')).toBe(f.hosts.map((h) => `${h} slots=2\n`).join(''));
    expect(readFileSync(paths.sshdConfig, 'utf8')).toMatch(new RegExp(`^Port ${port}\\nHostKey ${paths.hostKey}\\n`, 'm'));
    // The barrier logged in to each node's job sshd with the job key, once.
    expect(f.sim.stats(0, Date.now()).connections.job).toBe(3);
  });

  it('a re-run of the same attempt adopts its running containers: same port, no second docker run', async () => {
    const job = f.job('1002');
    const first = await setupJob(f.config, job, f.log);
    const ids = f.hosts.map((ip) => f.sim.node(ip).named('jobbox-1002')[0]!.id);

    const second = await setupJob(f.config, job, f.log);

    expect(second.port).toBe(first.port);
    expect(f.hosts.map((ip) => f.sim.node(ip).named('jobbox-1002').map((c) => c.id))).toEqual(ids.map((id) => [id]));
    // The first start's: the simulated nodes begin cold, so the two that are not the first (which
    // pulled for the image check) were told "No such image" by their run, pulled, and ran again.
    expect(f.hosts.map((ip) => f.sim.node(ip).count('run'))).toEqual([1, 2, 2]);
    expect(f.claims()).toEqual([`claim.1002.0.${f.hosts[0]}.${first.port}`]);
  });

  it('a re-run of the same attempt keeps its digest, though the tag has moved and a node lost its container', async () => {
    const job = f.job('1014');
    const first = await setupJob(f.config, job, f.log);
    const third = f.sim.node(f.hosts[2]!);
    third.remove(third.named('jobbox-1014')[0]!.id);
    // The registry now answers the tag with another manifest.
    const moved = `sha256:${'f'.repeat(64)}`;
    f.sim.node(f.hosts[0]!).intercept = (c) => (c.kind === 'pull' && !c.argv.some((a) => a.includes('@')) ? { code: 0, stdout: `Digest: ${moved}\n` } : undefined);
    const pullsBefore = f.sim.node(f.hosts[0]!).count('pull');

    const second = await setupJob(f.config, job, f.log);

    expect(second.image.digest).toBe(first.image.digest);
    expect(f.hosts.map((ip) => f.sim.node(ip).named('jobbox-1014')[0]!.image.split('@')[1])).toEqual(f.hosts.map(() => first.image.digest));
    // The first node did not ask the registry for the tag again.
    expect(f.sim.node(f.hosts[0]!).count('pull')).toBe(pullsBefore);
  });

  it('takes the other port when the bind test finds the first one taken on a node', async () => {
    const third = f.sim.node(f.hosts[2]!);
    let refused: number | undefined;
    third.intercept = (c) => {
      if (c.kind !== 'probe' || refused !== undefined) return undefined;
      refused = Number(c.stdin);
      return { code: 0, stdout: 'taken\n' };
    };

    const { port, paths } = await setupJob(f.config, f.job('1003'), f.log);

    const other = refused === PORTS.first ? PORTS.last : PORTS.first;
    expect(port).toBe(other);
    // The files, first written for the refused port while the nodes checked it, name the one taken.
    expect(readFileSync(paths.sshdConfig, 'utf8')).toContain(`\nPort ${other}\n`);
    expect(readFileSync(paths.sshConfig, 'utf8')).toContain(`  Port ${other}\n`);
    expect(readFileSync(paths.knownHosts, 'utf8')).toContain(`]:${other},`);
    expect(f.claims()).toEqual([`claim.1003.0.${f.hosts[0]}.${other}`]);
    // Taken there: the sim asked who holds the job's name before giving the port up.
    expect([third.count('probe'), third.count('ps name')]).toEqual([2, 1]);
    expect(f.sim.containers().map((c) => c.port)).toEqual([other, other, other]);
  });

  it.each([
    ['an exited container of an earlier attempt', { attempt: 'oldhost', nonce: '00112233445566778899aabb', state: 'exited' as const }],
    ['a running container of this attempt key with another nonce (a recycled job id)', { attempt: '', nonce: 'ffeeddccbbaa998877665544', state: 'running' as const }],
  ])('replaces a stale holder of the job\'s name: %s', async (_case, holder) => {
    const third = f.sim.node(f.hosts[2]!);
    const stale = third.plant({
      name: 'jobbox-1004',
      state: holder.state,
      labels: { 'org.jobbox.job': '1004', 'org.jobbox.index': '0', 'org.jobbox.attempt': holder.attempt || f.hosts[0]!, 'org.jobbox.nonce': holder.nonce },
    });

    const { paths } = await setupJob(f.config, f.job('1004'), f.log);

    const named = third.named('jobbox-1004');
    expect(named).toHaveLength(1);
    expect(named[0]!.id).not.toBe(stale.id);
    expect(named[0]!.labels.get('org.jobbox.nonce')).toBe(nonceOf(paths.dir));
    expect(named[0]!.state).toBe('running');
    // No such image (a cold node), pulled; refused by name, asked who holds it, removed it, ran again.
    expect(third.received.filter((k) => ['run', 'pull', 'ps name', 'rm'].includes(k))).toEqual(['run', 'pull', 'run', 'ps name', 'rm', 'run']);
  });

  it.each([
    ['the runtime cannot start it (transient)', 1, (ip: string) => {
      f.sim.node(ip).startFails = 'failed to create task for container: cgroups: cgroup deleted: unknown.';
    }, 'docker: Error response from daemon: failed to create task for container: cgroups: cgroup deleted: unknown.'],
    ['docker refuses the argv (permanent)', 99, (ip: string) => {
      f.sim.node(ip).intercept = (c) => (c.kind === 'run' ? { code: 125, stderr: "docker: unknown flag: --bogus\nSee 'docker run --help'.\n" } : undefined);
    }, 'docker: unknown flag: --bogus'],
  ])('rolls back every node when docker run fails on one: %s', async (_case, exitCode, fault, said) => {
    const bad = f.hosts[1]!;
    fault(bad);

    const err = await failure('1005');

    expect(err.exitCode).toBe(exitCode);
    expect(err.message).toBe(`jobbox: nodes: failed on 1 of 3: ${bad}: docker run: exit 125: ${said}: ${IMAGE_REF}`);
    nothingLeft();
    // The good nodes' containers did start: the rollback removed them.
    expect([f.hosts[0]!, f.hosts[2]!].map((ip) => f.sim.node(ip).count('rm'))).toEqual([1, 1]);
  });

  it('an unreachable node fails the start as transient and nothing is left on the others', async () => {
    const hosts = [f.hosts[0]!, f.hosts[1]!, UNREACHABLE];

    const err = await failure('1006', hosts);

    const target = `${UNREACHABLE}:${f.sim.adminPort}`;
    expect(err.exitCode).toBe(1);
    expect(err.message).toBe(`jobbox: nodes: failed on 1 of 3: ssh ${target}: connect ECONNREFUSED ${target}: ${f.owner.name}`);
    nothingLeft();
    expect(f.sim.nodes.map((n) => n.count('run'))).toEqual([0, 0, 0]);
  });

  it('a container whose sshd cannot bind its port fails with the container\'s last words, and is rolled back', async () => {
    const second = f.sim.node(f.hosts[1]!);
    // Someone binds the port between the bind test and the job's sshd.
    second.intercept = (c) => (c.kind === 'probe' ? { code: 0, stdout: 'free\n' } : undefined);
    second.busyPorts.add(PORTS.first).add(PORTS.last);

    const err = await failure('1007');

    const said = `jobbox: nodes: failed on 1 of 3: ${f.hosts[1]}: job sshd: its container stopped before sshd answered (container: Cannot bind any address.)`;
    expect([`${said}: ${PORTS.first}`, `${said}: ${PORTS.last}`]).toContain(err.message);
    expect(err.exitCode).toBe(1);
    nothingLeft();
  });

  it('a container the kernel killed for memory before its sshd answered fails the start for good, not at start_timeout', async () => {
    const second = f.sim.node(f.hosts[1]!);
    // docker run starts it, and the job's memory limit kills it at once: inspect says so.
    second.intercept = (c) => {
      if (c.kind === 'run') return { code: 0, stdout: `${'e'.repeat(64)}\n` };
      if (c.kind === 'inspect' && c.argv.includes('{{.State.Running}} {{.State.OOMKilled}}')) return { code: 0, stdout: 'false true\n' };
      return undefined;
    };

    const err = await failure('1012');

    expect(err.message).toMatch(new RegExp(`^jobbox: nodes: failed on 1 of 3: ${f.hosts[1]!.replace(/\./g, '\\.')}: job sshd: its container was killed for memory before sshd answered: the job's memory limit there is too small`));
    expect(err.exitCode).toBe(99);
    nothingLeft();
  });

  it('a container that is gone before its sshd answered fails the start at once, not at start_timeout', async () => {
    const second = f.sim.node(f.hosts[1]!);
    // docker run says it started one, but there is none (removed at once by someone, or a daemon that lost it).
    second.intercept = (c) => (c.kind === 'run' ? { code: 0, stdout: `${'f'.repeat(64)}\n` } : undefined);
    const started = Date.now();

    const err = await failure('1011');

    expect(err.message).toMatch(new RegExp(`^jobbox: nodes: failed on 1 of 3: ${f.hosts[1]!.replace(/\./g, '\\.')}: job sshd: its container stopped before sshd answered`));
    expect(err.exitCode).toBe(1);
    // start_timeout is 5 s: the barrier asks once a second whether the container still runs.
    expect(Date.now() - started).toBeLessThan(4000);
    nothingLeft();
  });

  it('an image whose sshd is older than 7.8 is refused as permanent before any container starts', async () => {
    f.sim.node(f.hosts[0]!).sshdVersion = 'OpenSSH_7.4p1 Debian-10+deb9u7, OpenSSL 1.0.2u  20 Dec 2019';

    const err = await failure('1008');

    expect(err.exitCode).toBe(99);
    expect(err.message).toBe('jobbox: image deb12: needs OpenSSH 7.8 or later as /usr/sbin/sshd (SetEnv hands every session the hostfiles): OpenSSH 7.4');
    nothingLeft();
    expect(f.sim.nodes.map((n) => n.count('run'))).toEqual([0, 0, 0]);
  });

  it('with the registry gone and every node holding the job\'s digest, the job starts on it and nothing is said', async () => {
    for (const ip of f.hosts) {
      f.sim.node(ip).registryDown = true;
      f.sim.node(ip).images.add(IMAGE_REF);
    }
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

    await setupJob(f.config, f.job('1009'), f.log);

    expect(stderr.mock.calls).toEqual([]);
    expect(f.sim.containers().map((c) => [c.state, c.image.split('@')[1]])).toEqual(f.hosts.map(() => ['running', simDigest(IMAGE_REF)]));
    // Only the first node asked the registry (its pull of the tag, which failed).
    expect(f.sim.nodes.map((n) => n.count('pull'))).toEqual([1, 0, 0]);
  });

  it('a registry jobbox can ask names the digest while the nodes connect: no node pulls the tag, and a node that holds the digest asks nothing', async () => {
    const reg = await fakeRegistry();
    try {
      const ref = `${reg.host}/hpc/deb12:r1`;
      const digest = simDigest(ref);
      reg.manifests.set('hpc/deb12:r1', digest);
      const image = { ...f.config.images.get('deb12')!, ref };
      const config = { ...f.config, insecureRegistries: [reg.host], images: new Map([['deb12', image]]) };
      // Nodes 1 and 2 hold the build (pulled by an earlier job); node 3 does not.
      for (const ip of f.hosts.slice(0, 2)) f.sim.node(ip).images.add(`${reg.host}/hpc/deb12@${digest}`);

      await setupJob(config, f.job('1019'), f.log);

      expect(reg.seen).toEqual(['HEAD /v2/hpc/deb12/manifests/r1']);
      expect(f.sim.nodes.map((n) => n.count('pull'))).toEqual([0, 0, 1]);
      expect(f.sim.containers().map((c) => c.image)).toEqual(f.hosts.map(() => `${reg.host}/hpc/deb12@${digest}`));
    } finally {
      await reg.close();
    }
  });

  it('pull_policy always: every other node pulls the digest though it holds it; missing: none does', async () => {
    for (const ip of f.hosts) f.sim.node(ip).images.add(IMAGE_REF);
    await setupJob({ ...f.config, pullPolicy: 'always' }, f.job('1017'), f.log);
    expect(f.sim.nodes.map((n) => n.count('pull'))).toEqual([1, 1, 1]);
    await setupJob(f.config, f.job('1018'), f.log);
    expect(f.sim.nodes.map((n) => n.count('pull'))).toEqual([2, 1, 1]);
  });

  it('a node without the registry and without the job\'s digest fails the start as transient', async () => {
    f.sim.node(f.hosts[1]!).registryDown = true;

    const err = await failure('1010');

    expect(err.exitCode).toBe(1);
    // The rest of the line is the registry's complaint, escaped and cut at 200 characters.
    expect(err.message.startsWith(`jobbox: nodes: failed on 1 of 3: ${f.hosts[1]}: pull: the pull of the job's digest failed (Error response from daemon: Get `)).toBe(true);
    nothingLeft();
  });

  it('a first node whose copy never came from the registry (no RepoDigests) fails the start for good', async () => {
    const first = f.sim.node(f.hosts[0]!);
    first.registryDown = true;
    first.images.add(IMAGE_REF);
    first.intercept = (c) => (c.kind === 'image inspect' && c.argv.includes('{{json .RepoDigests}}') ? { code: 0, stdout: '[]\n' } : undefined);

    const err = await failure('1015');

    expect(err.exitCode).toBe(99);
    expect(err.message).toMatch(new RegExp(`^jobbox: ${f.hosts[0]!.replace(/\./g, '\\.')}: pull: the registry failed \\(.*\\) and the node's copy carries no single registry digest to pin: push the image to its registry: ${IMAGE_REF}$`));
    nothingLeft();
  });

  it('an engine whose pull prints no digest (Podman) pins the digest its copy was pulled by', async () => {
    const first = f.sim.node(f.hosts[0]!);
    // The pull stores the image and prints its name only.
    first.images.add(IMAGE_REF);
    first.intercept = (c) => (c.kind === 'pull' ? { code: 0, stdout: `${IMAGE_REF}\n` } : undefined);

    const result = await setupJob(f.config, f.job('1016'), f.log);

    expect(result.image.digest).toBe(simDigest(IMAGE_REF));
    await teardownJob(f.config, f.job('1016'), f.hosts, f.log);
  });

  it('an engine whose pull names no digest, nor its copy, fails the start for good, not as a registry failure', async () => {
    f.sim.node(f.hosts[0]!).intercept = (c) => {
      if (c.kind === 'pull') return { code: 0, stdout: `${IMAGE_REF}\n` };
      if (c.argv.includes('{{json .RepoDigests}}')) return { code: 0, stdout: '[]\n' };
      return undefined;
    };

    const err = await failure('1016');

    expect(err.exitCode).toBe(99);
    expect(err.message).toContain('pull: the engine pulled the tag but named no single manifest digest to pin');
    nothingLeft();
  });

  it('the first node without the registry and without a copy fails the start as transient', async () => {
    f.sim.node(f.hosts[0]!).registryDown = true;

    const err = await failure('1013');

    expect(err.exitCode).toBe(1);
    expect(err.message.startsWith(`jobbox: ${f.hosts[0]}: pull: registry failed and no local copy (Error response from daemon: Get `)).toBe(true);
    nothingLeft();
  });

  // What the dry run cannot show, a reviewer cannot check: every command that reaches a node
  // is one of nodeSteps (containers' ids filled in), or the planned docker run.
  it('sends a node nothing the dry run does not show', async () => {
    const job = f.job('1012');
    const sent: string[][] = [];
    for (const ip of f.hosts) {
      f.sim.node(ip).intercept = (c) => {
        sent.push(c.argv);
        return undefined;
      };
    }
    // A taken port, a stale name holder and a failed pull on the way, so the rarer steps run too.
    let refused = false;
    const third = f.sim.node(f.hosts[2]!);
    third.intercept = (c) => {
      sent.push(c.argv);
      if (c.kind !== 'probe' || refused) return undefined;
      refused = true;
      return { code: 0, stdout: 'taken\n' };
    };
    f.sim.node(f.hosts[1]!).plant({ name: 'jobbox-1012', labels: { 'org.jobbox.attempt': 'other' }, state: 'exited' });
    f.sim.node(f.hosts[0]!).registryDown = true;
    f.sim.node(f.hosts[0]!).images.add(IMAGE_REF);
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

    await setupJob(f.config, job, f.log);
    await teardownJob(f.config, job, f.hosts, f.log);

    const steps = nodeSteps(f.config, job, { ...resolveImage(f.config, job.queue, job.image), digest: simDigest(IMAGE_REF) }).map((s) => s.argv);
    const rm = steps.find((a) => a.includes('<ids>'))!;
    // The throwaway check container's name is random; the dry run shows its shape.
    const named = (argv: string[]) => argv.map((a) => (/^jobbox-check-[0-9a-f]{12}$/.test(a) ? 'jobbox-check-<random>' : a));
    const known = (argv: string[]) =>
      steps.some((a) => a.join('\0') === named(argv).join('\0')) ||
      argv.slice(0, rm.length - 1).join('\0') === rm.slice(0, -1).join('\0') ||
      argv.slice(0, 3).join('\0') === [f.config.engine, 'run', '--detach'].join('\0');
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.filter((argv) => !known(argv))).toEqual([]);
    // And every step ran, but the two of a barrier that waits long, and the first node's image
    // check, which a pin by the first node's own pull makes moot (the tests above run them).
    expect(steps.filter((step) => !step.includes('<ids>') && !sent.some((argv) => named(argv).join('\0') === step.join('\0'))).map((a) => a.slice(1, 3).join(' '))).toEqual(['image inspect', 'inspect --format', 'logs --tail']);
  });
});

describe('the start record (jobbox status) on the simulated cluster', () => {
  const record = (id: string): StartRecord => parseStatus(readFileSync(statusPath(f.config.stateDir, { id, index: 0 }), 'utf8'))!;

  it('a good start: every node\'s five steps timed, the digest, how it was pinned, the port; the owner\'s file, 0400, in a dir only root may list', async () => {
    const { port, image } = await setupJob(f.config, f.job('1101'), f.log);

    const r = record('1101');
    expect(r).toMatchObject({ job: '1101', index: 0, attempt: f.hosts[0], owner: f.owner.name, uid: f.owner.uid, image: IMAGE_REF, digest: image.digest, pinnedBy: 'first node', port, outcome: 'started' });
    expect(r.error).toBeUndefined();
    expect(r.nodes.map((n) => n.host)).toEqual(f.hosts);
    for (const n of r.nodes) {
      expect(Object.keys(n.phases).sort()).toEqual([...PHASES].sort());
      expect(Object.values(n.phases).every((t) => t.ms !== undefined && !t.failed)).toBe(true);
      // A node's container starts after its port, and its sshd after its container. The image
      // step comes before the start on the first node (the image check needs it), within it
      // on the others (cold here: their run said "No such image").
      const end = (t: { fromMs: number; ms?: number }) => t.fromMs + t.ms!;
      expect(n.phases.start!.fromMs).toBeGreaterThanOrEqual(end(n.phases.port!));
      if (n.host === f.hosts[0]) expect(n.phases.start!.fromMs).toBeGreaterThanOrEqual(end(n.phases.image!));
      else expect([n.phases.image!.fromMs >= n.phases.start!.fromMs, end(n.phases.image!) <= end(n.phases.start!)]).toEqual([true, true]);
      expect(n.phases.sshd!.fromMs).toBeGreaterThanOrEqual(n.phases.start!.fromMs + n.phases.start!.ms!);
    }
    const file = statSync(statusPath(f.config.stateDir, { id: '1101', index: 0 }));
    expect([file.mode & 0o7777, file.uid]).toEqual([0o400, f.owner.uid]);
    expect(statSync(statusDir(f.config.stateDir)).mode & 0o7777).toBe(0o711);
  });

  it('a failed start: the record outlives the rollback, names the step each failed node was in, and carries the error line', async () => {
    f.sim.node(f.hosts[1]!).registryDown = true;

    const err = await failure('1102');

    nothingLeft();
    const r = record('1102');
    expect(r).toMatchObject({ outcome: 'failed', error: err.message, exitCode: 1, digest: expect.stringMatching(/^sha256:/) });
    const second = r.nodes[1]!;
    // Its run found no such image, and the pull that followed failed.
    expect([second.phases.start, second.phases.image]).toMatchObject([{ failed: true }, { failed: true }]);
    expect(second.error).toMatch(new RegExp(`^${f.hosts[1]!.replace(/\./g, '\\.')}: pull: the pull of the job's digest failed`));
    // The others got their image and started (the rollback removed their containers).
    expect([r.nodes[0]!, r.nodes[2]!].map((n) => [n.error, n.phases.image?.failed, n.phases.start?.failed])).toEqual([[undefined, undefined, undefined], [undefined, undefined, undefined]]);
  });

  it('a refused image: the record says so, though no node was reached', async () => {
    const err = await setupJob(f.config, { ...f.job('1103'), image: 'nonesuch' }, f.log).then(() => undefined, (e: unknown) => e as Error);

    expect(record('1103')).toMatchObject({ outcome: 'failed', error: err!.message, exitCode: 99, image: 'nonesuch', nodes: f.hosts.map((host) => ({ host, phases: {} })) });
  });

  it('the next attempt replaces the record of the one before', async () => {
    f.sim.node(f.hosts[2]!).registryDown = true;
    await failure('1104');
    expect(record('1104').outcome).toBe('failed');
    f.sim.node(f.hosts[2]!).registryDown = false;

    await setupJob(f.config, f.job('1104'), f.log);

    expect(record('1104')).toMatchObject({ outcome: 'started' });
    expect(record('1104').error).toBeUndefined();
  });
});
