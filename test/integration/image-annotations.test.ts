import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submitLsf } from '../harness/lsf/harness.js';
import { containers, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { ENGINE, dropImage, onNode } from '../support/testbed.js';

// A user's image that annotates its manifest with orders for the OCI runtime. Podman copies an
// image's annotations into the container's config, where crun acts on some of them
// (run.oci.keep_original_groups would keep root's groups in the job): jobbox refuses such an
// image there. dockerd passes no annotation on, and the same image runs. The image is built
// with buildah's OCI format by the nodes' Podman, whichever engine the suite runs on.
let fx: LsfFixture;
let registry = '';
let ref = '';
let digest = '';

beforeAll(async () => {
  fx = await lsfFixture();
  registry = /^registry = (\S+)$/m.exec(await readFile(fx.configPath, 'utf8'))![1]!;
  ref = `${registry}/projects/jobbox-annotated:t${Date.now()}`;
  await onNode('node1', ['podman', 'pull', '-q', `${registry}/deb12:r1`]);
  await onNode('node1', ['sh', '-c', 'd=$(mktemp -d) && printf "FROM %s\\n" "$2" >"$d/Containerfile" && podman build -q --format oci --annotation run.oci.keep_original_groups=1 --annotation org.opencontainers.image.title=annotated -t "$1" "$d"; s=$?; rm -rf "$d"; exit $s', 'sh', ref, `${registry}/deb12:r1`]);
  const pushed = await onNode('node1', ['sh', '-c', 'd=$(mktemp) && podman push -q --digestfile "$d" "$1" >/dev/null && cat "$d"; rm -f "$d"', 'sh', ref]);
  digest = pushed.trim();
  expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
}, 300_000);

afterAll(async () => {
  for (const node of ['node1', 'node2', 'node3']) {
    await dropImage(node, ref).catch(() => undefined);
    await onNode(node, ['podman', 'rmi', '--force', ref]).catch(() => '');
  }
  if (digest) await fetch(`http://${registry}/v2/${ref.slice(registry.length + 1, ref.lastIndexOf(':'))}/manifests/${digest}`, { method: 'DELETE' });
});

describe(`an image annotated for the OCI runtime, on ${ENGINE}`, () => {
  it(ENGINE === 'podman' ? 'is refused for good by the pre-exec, which names the annotation, and nothing is left' : 'runs: dockerd hands no annotation to the runtime', async () => {
    const run = await submitLsf(fx.hooks, spec({ app: `docker(${ref})`, command: 'id -G' }));
    if (ENGINE === 'podman') {
      expect(run.preExec.map((p) => p.code)).toEqual([99]);
      expect(run.preExec[0]!.stderr).toBe(`jobbox: image ${ref}: carries annotations the OCI runtime may act on (only org.opencontainers.image.* are taken): run.oci.keep_original_groups\n`);
      expect(run.state).toBe('EXIT');
    } else {
      expect(run.preExec.at(-1)!.code, run.preExec.at(-1)!.stderr).toBe(0);
      // The owner's groups, as the job gives them.
      expect(run.starter?.stdout).toBe('2001 3001 3002\n');
      expect(run.state).toBe('DONE');
    }
    expect(await containers(run.jobId)).toEqual([]);
  });
});
