import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lsfJobEnv } from '../harness/lsf/harness.js';
import { ALLOC, NODES, containers, spec } from '../support/lsf-fixture.js';
import { REPO, onNode, testbed, testbedStatus, waitFor, type TestbedStatus } from '../support/testbed.js';

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

afterAll(async () => {
  await rm(configPath, { force: true });
});

// Holds a node's pull lock in one process, which says its pid, until it is killed.
const HOLD_LOCK = 'use Fcntl ":flock"; open(my $f, ">>", "/run/jobbox/pull.lock") or die; flock($f, LOCK_EX) or die; open(my $p, ">", "/run/jobbox/holder.pid") or die; print $p "$$\\n"; close $p; sleep 120';

/** A queue root hook as LSF runs it on node1, with its stderr whatever its exit code. */
async function rootHook(name: 'pre-exec' | 'post-exec', env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const { HOME: _h, ...rest } = env;
  const vars = Object.entries({ ...rest, PATH: '/bin:/usr/bin:/sbin:/usr/sbin' }).map(([k, v]) => `${k}=${v}`);
  const r = await testbed(['exec', 'node1', '--', 'env', '-i', '-C', '/tmp', ...vars, `${REPO}/hooks/lsf/${name}`, '--config', configPath], { reject: false, stdin: 'ignore' });
  return { code: r.exitCode ?? -1, stderr: String(r.stderr) };
}

describe('images: one digest per job on every node', () => {
  it('a tag pushed again in the middle of a 3-node start leaves every node running the first node\'s digest', async () => {
    const jobId = 70_000 + Math.floor(Math.random() * 9_000);
    const env = lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: 'moving' });
    const before = (await onNode('node1', ['docker', 'image', 'inspect', '--format', '{{.Id}}', moving()])).trim();
    // node2 and node3 lack the image, and their pulls wait on the node's pull lock, held here,
    // until the tag has moved.
    // Every name of the repository's images, by tag or by digest (an earlier run pulled the same digest).
    const forget = 'docker images --digests --format "{{.Repository}}@{{.Digest}}" "$1" | grep -v "@<none>$" | xargs -r docker rmi -f; docker images --format "{{.Repository}}:{{.Tag}}" "$1" | xargs -r docker rmi -f';
    await Promise.all(['node2', 'node3'].map((n) => onNode(n, ['sh', '-c', forget, 'sh', `${registry}/jobbox-moving`])));
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
