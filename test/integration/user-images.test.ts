import { chmod, chown, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEsub, submitLsf, type LsfQueueHooks } from '../harness/lsf/harness.js';
import { NODES, claims, containers, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { INSTALL, onNode, slurmClient, testbedStatus, waitFor, type TestbedStatus } from '../support/testbed.js';

// Users' own images within the admin's bounds, and the pin at submit, against the testbed's
// real registry and dockerds: the testbed's queue normal allows `<registry>/projects/*`. The
// suite pushes its builds under projects/ and removes them, from the nodes and the registry, after.
let fx: LsfFixture;
let registry: string;
const TAG = `t${Date.now()}`;
const app = () => `${registry}/projects/jobbox-app`;
const noSshd = () => `${registry}/projects/jobbox-nosshd:${TAG}`;
const noShell = () => `${registry}/projects/jobbox-noshell:${TAG}`;
const pushed: { repo: string; digest: string }[] = [];
let suiteConfig: string;
let pinnedHooks: LsfQueueHooks;

async function push(ref: string): Promise<string> {
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(await onNode('node1', ['docker', 'push', ref]))![1]!;
  pushed.push({ repo: ref.slice(registry.length + 1, ref.lastIndexOf(':')), digest });
  return digest;
}
const imageId = (node: string, ref: string) => onNode(node, ['docker', 'image', 'inspect', '--format', '{{.Id}}', ref]).then((s) => s.trim());
const runningIds = (jobId: number) => Promise.all(NODES.map((n) => onNode(n, ['docker', 'inspect', '--format', '{{.Image}}', `jobbox-${jobId}`]).then((s) => s.trim())));

beforeAll(async () => {
  fx = await lsfFixture();
  const base = await readFile(fx.configPath, 'utf8');
  registry = /^registry = (\S+)$/m.exec(base)![1]!;
  await onNode('node1', ['docker', 'pull', '-q', `${registry}/deb12:r1`]);
  await onNode('node1', ['docker', 'pull', '-q', `${registry}/deb12-mpich:r1`]);
  // The builds: deb12's image under the app's tag; deb12 without its sshd; an image with no /bin/sh at all.
  await onNode('node1', ['docker', 'tag', `${registry}/deb12:r1`, `${app()}:${TAG}`]);
  await push(`${app()}:${TAG}`);
  const cut = `jobbox-nosshd-${TAG}`;
  await onNode('node1', ['docker', 'run', '--name', cut, `${registry}/deb12:r1`, 'rm', '/usr/sbin/sshd']);
  await onNode('node1', ['docker', 'commit', cut, noSshd()]);
  await onNode('node1', ['docker', 'rm', cut]);
  await push(noSshd());
  await onNode('node1', ['sh', '-c', 'd=$(mktemp -d) && echo x >"$d/README" && tar -C "$d" -cf - . | docker import - "$1"; rm -rf "$d"', 'sh', noShell()]);
  await push(noShell());
  // A queue of the suite's own that pins its alias at submit.
  suiteConfig = `${fx.config.stateDir}/../user-images-test.ini`;
  await writeFile(suiteConfig, `${base}\n[queue pinned]\ndefault_image = app\nallowed_images = app\nmounts = /home\nmemory = 1g/slot\n${/^memlock = .*$/m.exec(base.slice(base.indexOf('[queue normal]')))![0]}\npin_at_submit = yes\n\n[image app]\nref = ${app()}:${TAG}\n`, { mode: 0o644 });
  await chmod(suiteConfig, 0o644);
  pinnedHooks = {
    preExec: `${INSTALL}/hooks/lsf/pre-exec --config ${suiteConfig}`,
    postExec: `${INSTALL}/hooks/lsf/post-exec --config ${suiteConfig}`,
    jobStarter: `exec ${INSTALL}/hooks/lsf/starter --config ${suiteConfig} --job-file #%USRCMD`,
  };
});

afterAll(async () => {
  await rm(suiteConfig, { force: true });
  for (const node of NODES) {
    const refs = (await onNode(node, ['docker', 'images', '--digests', '--format', '{{.Repository}}:{{.Tag}} {{.Repository}}@{{.Digest}}', '--filter', `reference=${registry}/projects/jobbox-*`]).catch(() => ''))
      .split(/\s+/).filter((r) => r && !r.endsWith(':<none>') && !r.endsWith('@<none>'));
    if (refs.length > 0) await onNode(node, ['docker', 'rmi', '-f', ...refs]).catch(() => '');
  }
  for (const { repo, digest } of pushed) await fetch(`http://${registry}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' });
});

/** Moves the app's tag to the other of deb12's and deb12-mpich's builds, as a project pushing a new release would; returns the new digest. */
let releases = 0;
async function moveTag(): Promise<string> {
  releases += 1;
  await onNode('node1', ['docker', 'tag', `${registry}/${releases % 2 === 1 ? 'deb12-mpich' : 'deb12'}:r1`, `${app()}:${TAG}`]);
  return push(`${app()}:${TAG}`);
}
/** The digest the app's tag names now. */
const current = () => pushed.filter((p) => p.repo === 'projects/jobbox-app').at(-1)!.digest;

describe('user images within the queue\'s allowed_repos', () => {
  it('bsub -a "docker(<ref>)": the esub pins the tag, the tag moves while the job pends, and every node runs the pinned build', async () => {
    const ref = `${app()}:${TAG}`;
    const pinnedId = await imageId('node1', ref);
    const digest = current();
    let moved = '';
    let ids: string[] = [];
    const run = await submitLsf(fx.hooks, spec({
      app: `docker(${ref})`,
      command: 'test -x /usr/sbin/sshd && echo ran',
      whilePending: async () => void (moved = await moveTag()),
      beforePostExec: async (jobId) => void (ids = await runningIds(jobId)),
    }));
    expect(run.esub.envfile).toMatch(new RegExp(`^JOBBOX_IMAGE=${ref.replaceAll('.', '\\.')}@${digest}$`, 'm'));
    expect(moved).not.toBe(digest);
    expect(run.preExec.at(-1)!.code, run.preExec.at(-1)!.stderr).toBe(0);
    expect(run.preExec.at(-1)!.stderr).toContain(`image ${app()}@${digest}`);
    expect(run.starter?.stdout).toBe('ran\n');
    expect(ids).toEqual(NODES.map(() => pinnedId));
    expect(run.state).toBe('DONE');
    expect(await containers(run.jobId)).toEqual([]);
  });

  it('a queue with pin_at_submit pins its alias at submit: the job runs the digest of then, not the tag\'s at start', async () => {
    const digestNow = current();
    let moved = '';
    const run = await submitLsf(pinnedHooks, spec({ queue: 'pinned', config: suiteConfig, app: 'docker-app', whilePending: async () => void (moved = await moveTag()) }));
    expect(run.esub.envfile).toMatch(new RegExp(`^JOBBOX_IMAGE=app@${digestNow}$`, 'm'));
    expect(moved).not.toBe(digestNow);
    expect(run.preExec.at(-1)!.code, run.preExec.at(-1)!.stderr).toBe(0);
    expect(run.preExec.at(-1)!.stderr).toContain(`image ${app()}@${digestNow}`);
    expect(run.state).toBe('DONE');
  });

  it('a repository outside allowed_repos is refused at submit with one line, and a forged request at the pre-exec too; nothing is left', async () => {
    const other = `${registry}/other/jobbox-app:${TAG}`;
    const esub = await runEsub(spec({ app: `docker(${other})` }));
    expect(esub).toMatchObject({ code: 97, rejected: true, envfile: '' });
    expect(esub.stderr).toBe(`jobbox: image: repository not allowed in queue normal (allowed: deb12 deb12-mpich; repositories: ${registry}/projects/*); use -a docker-deb12 or -a docker-deb12-mpich: ${other}\n`);
    const forged = await submitLsf(fx.hooks, spec({ env: { JOBBOX_IMAGE: other } }));
    // No -a: no esub of jobbox's ran, so the user's own JOBBOX_IMAGE reached the pre-exec.
    expect(forged.state).toBe('EXIT');
    expect(forged.preExec.map((p) => p.code)).toEqual([99]);
    expect(forged.preExec[0]!.stderr.trim().split('\n').at(-1)).toBe(`jobbox: image: repository not allowed in queue normal (allowed: deb12 deb12-mpich; repositories: ${registry}/projects/*): ${other}`);
    expect(await claims(fx.config, forged.jobId)).toEqual([]);
  });

  it.each([
    ['no sshd', noSshd, 'needs OpenSSH 7.8 or later as /usr/sbin/sshd (SetEnv hands every session the hostfiles): ', 'not found'],
    ['no /bin/sh', noShell, 'needs a POSIX shell as /bin/sh (the check in a throwaway container exited 127: ', '@sha256:'],
  ])('an image with %s is refused at the start with one line, and every node is rolled back', async (_case, ref, problem, tail) => {
    const run = await submitLsf(fx.hooks, spec({ app: `docker(${ref()})` }));
    expect(run.esub.code, run.esub.stderr).toBe(0);
    expect(run.state).toBe('EXIT');
    expect(run.preExec.map((p) => p.code), run.preExec[0]?.stderr).toEqual([99]);
    const lines = run.preExec[0]!.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.startsWith(`jobbox: image ${ref()}: ${problem}`), lines[0]).toBe(true);
    expect(lines[0]).toContain(tail);
    expect(await containers(run.jobId)).toEqual([]);
    expect(await claims(fx.config, run.jobId)).toEqual([]);
  });
});

describe('user images on Slurm: sbatch --comment jobbox-image=<ref>', () => {
  const HOME = '/home/jbuser1';
  let tb: TestbedStatus;
  const { slurm, jobField } = slurmClient(() => tb.slurmConf);
  // A comment is printed whole to the end of its line (jobField stops at a space).
  const comment = async (id: string) => /^ {3}Comment=(.*?) ?$/m.exec((await slurm(['scontrol', 'show', 'job', id])).stdout)?.[1];
  const asUser = (argv: string[]) => execa('runuser', ['-u', 'jbuser1', '--', 'env', `SLURM_CONF=${tb.slurmConf}`, ...argv], { cwd: HOME, reject: false });
  const ENDED = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL)$/;

  beforeAll(async () => {
    tb = await testbedStatus();
    expect(tb.slurm).toBe(true);
    // This checkout's filter, from the testbed's config (slurm-security.test.ts installs it the same way).
    const lua = `${tb.dir}/etc/job_submit.lua`;
    const seconds = Math.max(Date.now() / 1000, (await stat(lua)).mtimeMs / 1000) + 2;
    await writeFile(lua, (await execa('node', [`${INSTALL}/dist/cli.js`, 'slurm', 'job-submit-lua', '--config', tb.config])).stdout);
    await utimes(lua, seconds, seconds);
    await writeFile(`${HOME}/user-image.sh`, '#!/bin/sh\ntest -x /usr/sbin/sshd && echo "ran on $(hostname)"\n', { mode: 0o755 });
    await chown(`${HOME}/user-image.sh`, 2001, 2001);
  });

  it('runs pinned: job_submit.lua writes the digest into the comment, the tag moves while the job is held, and every node runs the pinned build', async () => {
    const ref = `${app()}:${TAG}`;
    const digest = current();
    const pinnedId = await imageId('node1', `${app()}@${digest}`);
    const r = await asUser(['sbatch', '--parsable', '--hold', '-N3', '-o', `${HOME}/user-image.out`, '--comment', `run 1 jobbox-image=${ref}`, `${HOME}/user-image.sh`]);
    expect(r.stderr).toBe('');
    const id = r.stdout.trim();
    try {
      expect(await comment(id)).toBe(`run 1 jobbox-image=${ref}@${digest}`);
      // The user cannot change the pinned image while the job pends.
      const change = await asUser(['scontrol', 'update', `jobid=${id}`, `comment=jobbox-image=${ref}`]);
      expect(change.exitCode).not.toBe(0);
      expect(await comment(id)).toBe(`run 1 jobbox-image=${ref}@${digest}`);
      expect(await moveTag()).not.toBe(digest);
      await asUser(['scontrol', 'release', id]);
      let ids: string[] = [];
      await waitFor(`job ${id} to run on every node`, async () => {
        ids = await Promise.all(NODES.map((n) => onNode(n, ['docker', 'ps', '--no-trunc', '--filter', `label=org.jobbox.job=${id}`, '--format', '{{.Image}}']).then((s) => s.trim()).catch(() => '')));
        return ids.every(Boolean) || ENDED.test(await jobField(id, 'JobState'));
      });
      // docker ps names the image as the container was made from it: the pinned digest on every node.
      expect(ids).toEqual(NODES.map(() => `${app()}@${digest}`));
      await waitFor(`job ${id} to end`, async () => ENDED.test(await jobField(id, 'JobState')));
      expect(await jobField(id, 'JobState')).toBe('COMPLETED');
      expect(await readFile(`${HOME}/user-image.out`, 'utf8')).toBe('ran on node1\n');
      expect(await imageId('node2', `${app()}@${digest}`)).toBe(pinnedId);
    } finally {
      await slurm(['scancel', id]);
    }
  });

  it.each([
    [['--comment', 'jobbox-image=REG/other/jobbox-app:1'], 'jobbox: image: repository not allowed in queue normal (allowed: deb12 deb12-mpich; repositories: REG/projects/*); use -C docker-deb12 or -C docker-deb12-mpich: REG/other/jobbox-app:1'],
    [['--comment', 'jobbox-image=REG/projects/jobbox-absent:1'], 'jobbox: registry REG: has no such tag or repository: REG/projects/jobbox-absent:1'],
    [['--comment', "jobbox-image=REG/projects/x:1';id;'"], "jobbox: image: not a qualified image reference (registry[:port]/path[:tag][@sha256:…], lowercase): REG/projects/x:1';id;'"],
    [['-C', 'docker-deb12', '--comment', 'jobbox-image=REG/projects/jobbox-app:1'], 'jobbox: image: give it once, as -C docker-<alias> or --comment jobbox-image=<ref>: REG/projects/jobbox-app:1'],
    [['-p', 'short', '--comment', 'jobbox-image=REG/projects/jobbox-app:1'], 'jobbox: image: repository not allowed in queue short (allowed: deb12-mpich); use -p normal, or -C docker-deb12-mpich: REG/projects/jobbox-app:1'],
  ])('sbatch %j is refused with one line', async (options, message) => {
    const r = await asUser(['sbatch', '--hold', ...options.map((o) => o.replaceAll('REG', registry)), `${HOME}/user-image.sh`]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toBe(`sbatch: error: ${message.replaceAll('REG', registry)}\nsbatch: error: Batch job submission failed: Unspecified error`);
  });
});
