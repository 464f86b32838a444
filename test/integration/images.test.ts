import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lsfJobEnv } from '../harness/lsf/harness.js';
import { ALLOC, NODES, containers, spec } from '../support/lsf-fixture.js';
import { INSTALL, onNode, registryLog, testbed, testbedStatus, waitFor, type TestbedStatus } from '../support/testbed.js';

// One digest per job on every node, against the testbed's real registry and dockerds. The job
// runs through the queue's root hook lines, as LSF starts them, with a config of this suite's
// own: the testbed's plus an image whose tag the suite moves.
let tb: TestbedStatus;
let configPath: string;
let registry: string;
const TAG = `t${Date.now()}`;
const moving = () => `${registry}/jobbox-moving:${TAG}`;

beforeAll(async () => {
  tb = await testbedStatus();
  const base = await readFile(tb.config, 'utf8');
  registry = /^registry = (\S+)$/m.exec(base)![1]!;
  // The tag starts on deb12's image, pushed from node1; node1 also holds deb12-mpich's, which
  // the tag moves to mid-start.
  await onNode('node1', ['docker', 'pull', '-q', `${registry}/deb12-mpich:r1`]);
  await onNode('node1', ['docker', 'pull', '-q', `${registry}/deb12:r1`]);
  await onNode('node1', ['docker', 'tag', `${registry}/deb12:r1`, moving()]);
  await onNode('node1', ['docker', 'push', '-q', moving()]);
  configPath = `${tb.dir}/shared/images-test.ini`;
  const text = base.replace(/^(allowed_images = deb12 deb12-mpich)$/m, '$1 moving') + `\n[image moving]\nref = ${moving()}\n`;
  await writeFile(configPath, text, { mode: 0o644 });
  await chmod(configPath, 0o644);
});

// Every name a node has for a repository's images, by tag or by digest (an earlier run pulled the same digest).
const FORGET = 'docker images --digests --format "{{.Repository}}@{{.Digest}}" "$1" | grep -v "@<none>$" | xargs -r docker rmi -f; docker images --format "{{.Repository}}:{{.Tag}}" "$1" | xargs -r docker rmi -f';

afterAll(async () => {
  await rm(configPath, { force: true });
  // The suite's repository goes from the nodes and from the registry: the manifests the tag
  // named (deb12's, then deb12-mpich's), by their digests.
  await Promise.all(NODES.map((n) => onNode(n, ['sh', '-c', FORGET, 'sh', `${registry}/jobbox-moving`]).catch(() => '')));
  const accept = { Accept: 'application/vnd.docker.distribution.manifest.v2+json' };
  for (const name of ['deb12', 'deb12-mpich']) {
    const digest = (await fetch(`http://${registry}/v2/${name}/manifests/r1`, { method: 'HEAD', headers: accept })).headers.get('docker-content-digest');
    if (digest) await fetch(`http://${registry}/v2/jobbox-moving/manifests/${digest}`, { method: 'DELETE' });
  }
});

// Holds a node's pull lock in one process, which says its pid, until it is killed.
const HOLD_LOCK = 'use Fcntl ":flock"; open(my $f, ">>", "/run/jobbox/pull.lock") or die; flock($f, LOCK_EX) or die; open(my $p, ">", "/run/jobbox/holder.pid") or die; print $p "$$\\n"; close $p; sleep 120';

/** A queue root hook as LSF runs it on node1, with its stderr whatever its exit code. */
async function rootHook(name: 'pre-exec' | 'post-exec', env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const { HOME: _h, ...rest } = env;
  const vars = Object.entries({ ...rest, PATH: '/bin:/usr/bin:/sbin:/usr/sbin' }).map(([k, v]) => `${k}=${v}`);
  const r = await testbed(['exec', 'node1', '--', 'env', '-i', '-C', '/tmp', ...vars, `${INSTALL}/hooks/lsf/${name}`, '--config', configPath], { reject: false, stdin: 'ignore' });
  return { code: r.exitCode ?? -1, stderr: String(r.stderr) };
}

const registryRequests = (offset: number) => registryLog.since(tb, offset);
const logSize = () => registryLog.size(tb);
const nodeIp = (n: string) => tb.nodes.find((x) => x.name === n)!.ip;

describe('images: one digest per job on every node', () => {
  it('no registry storm: a warm 3-node start makes one manifest request and fetches no blob; a cold node fetches its manifest by digest and its blobs', async () => {
    const jobId = 79_000 + Math.floor(Math.random() * 900);
    const env = lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: 'moving' });
    // Cold: node3 holds no copy of the image under any name (dockerd knows an image it holds by
    // any digest it was pulled by, and would fetch nothing), so deb12's goes too; later suites pull it again.
    await onNode('node3', ['sh', '-c', FORGET, 'sh', `${registry}/jobbox-moving`]);
    await onNode('node3', ['sh', '-c', 'docker images -q --no-trunc "$1" | sort -u | xargs -r docker rmi -f', 'sh', `${registry}/deb12`]);
    expect(await onNode('node3', ['docker', 'images', '-q', `${registry}/deb12`])).toBe('');
    await Promise.all(['node1', 'node2'].map((n) => onNode(n, ['docker', 'pull', '-q', moving()])));
    for (const round of ['cold', 'warm']) {
      const from = await logSize();
      const pre = await rootHook('pre-exec', env);
      await rootHook('post-exec', { ...env, LSB_JOBEXIT_STAT: '0' });
      expect(pre.code, pre.stderr).toBe(0);
      const seen = await registryRequests(from);
      const manifests = seen.filter((r) => r.path.includes('/manifests/'));
      const blobs = seen.filter((r) => r.path.includes('/blobs/') && r.method === 'GET');
      // The tag is asked once, by node1.
      expect(manifests.filter((r) => r.path.endsWith(`/manifests/${TAG}`)).map((r) => r.ip), round).toEqual([nodeIp('node1')]);
      const byDigest = manifests.filter((r) => /\/manifests\/sha256:/.test(r.path)).map((r) => r.ip);
      expect([...new Set(byDigest)], round).toEqual(round === 'cold' ? [nodeIp('node3')] : []);
      expect([...new Set(blobs.map((r) => r.ip))].filter((ip) => ip !== nodeIp('node3')), round).toEqual([]);
      if (round === 'warm') expect(blobs, round).toEqual([]);
    }
  });


  it('image prefetch pins the alias on the first node and brings its digest to the others; image list shows it on every node', async () => {
    await Promise.all(['node2', 'node3'].map((n) => onNode(n, ['sh', '-c', FORGET, 'sh', `${registry}/jobbox-moving`])));
    // From node1, which resolves the node names, as an admin host would.
    const cli = (args: string[]) => testbed(['exec', 'node1', '--', 'node', `${INSTALL}/dist/cli.js`, 'image', ...args, '--config', configPath], { reject: false });
    const pre = await cli(['prefetch', 'moving', '--nodes', 'node[1-3]']);
    expect(pre.exitCode, String(pre.stdout)).toBe(0);
    const lines = String(pre.stdout).split('\n').sort();
    expect(lines).toHaveLength(3);
    const digest = /@(sha256:[0-9a-f]{64})$/.exec(lines[0]!)?.[1];
    expect(lines).toEqual([`node1  pinned  ${registry}/jobbox-moving@${digest}`, `node2  ok      ${registry}/jobbox-moving@${digest}`, `node3  ok      ${registry}/jobbox-moving@${digest}`]);
    const list = await cli(['list', '--nodes', 'node[1-3]', '--json']);
    expect(list.exitCode, String(list.stderr)).toBe(0);
    const { images, failed } = JSON.parse(String(list.stdout)) as { images: { node: string; alias: string; digest: string }[]; failed: unknown[] };
    expect(failed).toEqual([]);
    for (const node of NODES) expect(images.filter((r) => r.node === node && r.alias === 'moving').map((r) => r.digest), node).toContain(digest);
    // A node that cannot be reached is its own row, and the exit status says so.
    const bad = await cli(['prefetch', 'moving', '--nodes', 'node1,node9']);
    expect(bad.exitCode).toBe(1);
    expect(String(bad.stdout)).toMatch(/^node9 {2}failed {2}/m);
  });

  it('a tag pushed again in the middle of a 3-node start leaves every node running the first node\'s digest', async () => {
    const jobId = 70_000 + Math.floor(Math.random() * 9_000);
    const env = lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: 'moving' });
    const before = (await onNode('node1', ['docker', 'image', 'inspect', '--format', '{{.Id}}', moving()])).trim();
    // node2 and node3 lack the image, and their pulls wait on the node's pull lock, held here,
    // until the tag has moved.
    await Promise.all(['node2', 'node3'].map((n) => onNode(n, ['sh', '-c', FORGET, 'sh', `${registry}/jobbox-moving`])));
    const holders = ['node2', 'node3'].map((n) => testbed(['exec', n, '--', 'sh', '-c', `install -d -m 0700 /run/jobbox && exec perl -e '${HOLD_LOCK}'`], { reject: false }));
    const release = () => Promise.all(['node2', 'node3'].map((n) => onNode(n, ['sh', '-c', 'kill $(cat /run/jobbox/holder.pid) 2>/dev/null; rm -f /run/jobbox/holder.pid']).catch(() => undefined)));
    try {
      await waitFor('the pull locks to be held', async () => (await Promise.all(['node2', 'node3'].map((n) => onNode(n, ['cat', '/run/jobbox/holder.pid']).catch(() => '')))).every(Boolean), 30);
      const start = rootHook('pre-exec', env);
      // Both nodes wait to pull by digest: the first node has pinned it.
      await waitFor('node2 and node3 to wait for their pull by digest', async () =>
        (await Promise.all(['node2', 'node3'].map((n) => onNode(n, ['ps', '-eo', 'args'])))).every((ps) => ps.includes(`docker pull ${registry}/jobbox-moving@sha256:`)), 60);
      await onNode('node1', ['docker', 'tag', `${registry}/deb12-mpich:r1`, moving()]);
      await onNode('node1', ['docker', 'push', '-q', moving()]);
      await release();
      const pre = await start;
      expect(pre.code, pre.stderr).toBe(0);
      expect(pre.stderr, pre.stderr).toMatch(new RegExp(`image ${registry.replaceAll('.', '\\.')}/jobbox-moving@sha256:[0-9a-f]{64}$`));
      const ids = await Promise.all(NODES.map((n) => onNode(n, ['docker', 'inspect', '--format', '{{.Image}}', `jobbox-${jobId}`])));
      expect(ids).toEqual(NODES.map(() => before));
      // The tag itself has moved: a start without the pin would have run it on node2 and node3.
      expect((await onNode('node1', ['docker', 'image', 'inspect', '--format', '{{.Id}}', moving()])).trim()).not.toBe(before);
    } finally {
      await release();
      await Promise.all(holders);
      await rootHook('post-exec', { ...env, LSB_JOBEXIT_STAT: '0' });
    }
    expect(await containers(jobId)).toEqual([]);
  });
});

describe('image gc: unused builds of jobbox\'s repositories go, never one a container uses', () => {
  // A repository of this describe's own, in a config whose only [image] it is: gc then touches
  // nothing else on the node. Three builds, oldest first: deb12's, deb12-mpich's, and a commit
  // of deb12 made now. node2 holds them by digest only, as a node that is not a job's first does.
  const repo = () => `${registry}/jobbox-gc`;
  const USER = `jobbox-gc-user-${TAG}`;
  const COMMIT = `jobbox-gc-commit-${TAG}`;
  const built = [`a-${TAG}`, `b-${TAG}`, `c-${TAG}`];
  let gcConfig: string;
  /** The builds' manifest digests and node2's image ids, oldest first. */
  const digests: string[] = [];
  let ids: string[] = [];

  const gc = (args: string[]) => testbed(['exec', 'node1', '--', 'node', `${INSTALL}/dist/cli.js`, 'image', 'gc', '--nodes', 'node2', ...args, '--config', gcConfig], { reject: false });
  const holds = async (digest: string) => (await testbed(['exec', 'node2', '--', 'docker', 'image', 'inspect', `${repo()}@${digest}`], { reject: false, stdio: 'ignore' })).exitCode === 0;
  const line = (status: string, i: number) => `node2  ${status.padEnd(12)}  ${repo()}@${digests[i]}  ${ids[i]}`;

  beforeAll(async () => {
    await onNode('node1', ['docker', 'tag', `${registry}/deb12:r1`, `${repo()}:${built[0]}`]);
    await onNode('node1', ['docker', 'tag', `${registry}/deb12-mpich:r1`, `${repo()}:${built[1]}`]);
    await onNode('node1', ['docker', 'create', '--name', COMMIT, `${registry}/deb12:r1`, 'true']);
    await onNode('node1', ['docker', 'commit', COMMIT, `${repo()}:${built[2]}`]);
    await onNode('node1', ['docker', 'rm', COMMIT]);
    for (const tag of built) digests.push(/digest: (sha256:[0-9a-f]{64})/.exec(await onNode('node1', ['docker', 'push', `${repo()}:${tag}`]))![1]!);
    for (const d of digests) await onNode('node2', ['docker', 'pull', '-q', `${repo()}@${d}`]);
    ids = await Promise.all(digests.map((d) => onNode('node2', ['docker', 'image', 'inspect', '--format', '{{.Id}}', `${repo()}@${d}`])));
    // A job's container on node2 runs the oldest build.
    await onNode('node2', ['docker', 'run', '-d', '--name', USER, `${repo()}@${digests[0]}`, 'sleep', '600']);
    const base = await readFile(tb.config, 'utf8');
    gcConfig = `${tb.dir}/shared/images-gc-test.ini`;
    await writeFile(gcConfig, `${base.slice(0, base.indexOf('\n[queue '))}\n[queue normal]\ndefault_image = gc\n\n[image gc]\nref = ${repo()}:${TAG}\n`, { mode: 0o644 });
    await chmod(gcConfig, 0o644);
  });

  afterAll(async () => {
    await rm(gcConfig, { force: true });
    await onNode('node2', ['docker', 'rm', '-f', USER]).catch(() => '');
    await onNode('node1', ['docker', 'rm', '-f', COMMIT]).catch(() => '');
    await Promise.all(NODES.map((n) => onNode(n, ['sh', '-c', FORGET, 'sh', repo()]).catch(() => '')));
    for (const d of digests) await fetch(`http://${registry}/v2/jobbox-gc/manifests/${d}`, { method: 'DELETE' });
  });

  it('--dry-run names what would go and removes nothing', async () => {
    const r = await gc(['--keep', '0', '--dry-run']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout).split('\n')).toEqual([line('would-remove', 2), line('would-remove', 1), line('in-use', 0), '1 node: would-remove 2, in-use 1, tagged 0, kept 0, failed 0']);
    expect(await Promise.all(digests.map(holds))).toEqual([true, true, true]);
  });

  it('--keep 1 keeps the newest unused build and the one in use, and removes the other', async () => {
    const r = await gc(['--keep', '1']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout).split('\n')).toEqual([line('kept', 2), line('removed', 1), line('in-use', 0), '1 node: removed 1, in-use 1, tagged 0, kept 1, failed 0']);
    expect(await Promise.all(digests.map(holds))).toEqual([true, false, true]);
  });

  it('--keep 0 removes every unused build; the one in use stays until its container is gone', async () => {
    const r = await gc(['--keep', '0', '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const report = JSON.parse(String(r.stdout)) as { images: { node: string; status: string; refs: string[]; id: string }[]; failed: unknown[] };
    expect(report.failed).toEqual([]);
    expect(report.images.map((i) => [i.status, i.refs, i.id])).toEqual([['removed', [`${repo()}@${digests[2]}`], ids[2]], ['in-use', [`${repo()}@${digests[0]}`], ids[0]]]);
    expect(await Promise.all(digests.map(holds))).toEqual([true, false, false]);
    await onNode('node2', ['docker', 'rm', '-f', USER]);
    const after = await gc(['--keep', '0']);
    expect(String(after.stdout).split('\n')[0]).toBe(line('removed', 0));
    expect(await holds(digests[0]!)).toBe(false);
  });
});
