import { execa } from 'execa';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { onNode, testbed, testbedStatus, waitFor } from '../support/testbed.js';

// Rootless Podman, the second step docs/podman.md describes: the container started by the job's
// owner and not by root, under --userns=keep-id, with jobbox's run line as far as it goes. jobbox
// does not start jobs this way; this suite shows, on the real testbed, what a site would get:
// what works, and what breaks, each as it happens here (cgroup v1, runc, no CAP_SYS_RESOURCE).

const NODE = 'node1';
const USER = 'jbuser1';
const UID = 2001;
const PROJECT_GID = 3001; // jbproj1, one of jbuser1's supplementary groups
const RUNTIME = `/run/user/${UID}`;
const PORT = 30198;

let image = '';
let ip = '';

/** Podman as the owner on the node, as a login would run it: their runtime dir, their storage. */
async function asOwner(args: string[], reject = true): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
  const r = await testbed(['exec', NODE, '--', 'runuser', '-u', USER, '--',
    'env', `XDG_RUNTIME_DIR=${RUNTIME}`, `HOME=/home/${USER}`, 'podman', '--storage-driver', 'overlay', ...args], { reject });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** jobbox's own flags that need nothing from root (plan/container.ts runArgv), with --userns=keep-id. */
const RUN = ['run', '--net=host', '--userns=keep-id', '--user', `${UID}:${UID}`, '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--pull', 'never'];

describe('rootless Podman: the owner starts the container', () => {
  const dir = { path: '' };
  const timings: Record<string, number> = {};
  // What rootless Podman makes in the owner's home: kept out of the other suites' way.
  const made = ['.local', '.config'].map((d) => `/home/${USER}/${d}`);
  let existed: boolean[] = [];

  beforeAll(async () => {
    const tb = await testbedStatus();
    ip = tb.nodes.find((n) => n.name === NODE)!.ip;
    image = (await loadConfig(tb.config)).images.get('deb12')!.ref;
    existed = await Promise.all(made.map((d) => stat(d).then(() => true, () => false)));
    await onNode(NODE, ['install', '-d', '-m', '0700', '-o', String(UID), '-g', String(UID), RUNTIME]);
    let t = Date.now();
    await asOwner(['pull', '--quiet', image]);
    timings.firstPull = Date.now() - t;
    t = Date.now();
    await asOwner([...RUN, '--rm', image, 'true']);
    timings.firstRun = Date.now() - t;
    t = Date.now();
    await asOwner([...RUN, '--rm', image, 'true']);
    timings.warmRun = Date.now() - t;
    // In the owner's home, as a job dir could not be (jobbox's are root's, 0700).
    dir.path = await mkdtemp(`/home/${USER}/rootless-`);
    await chown(dir.path, UID, UID);
  }, 300_000);

  afterAll(async () => {
    await asOwner(['rm', '--force', '--time', '0', 'jobbox-rootless'], false);
    // Podman leaves a pause process per user (catatonit -P, which ignores SIGTERM): killed by its recorded pid.
    const pause = await onNode(NODE, ['cat', `${RUNTIME}/libpod/tmp/pause.pid`]).catch(() => '');
    if (/^\d+$/.test(pause)) await onNode(NODE, ['kill', '-KILL', pause]).catch(() => '');
    await onNode(NODE, ['rm', '-rf', RUNTIME]);
    // The owner's storage holds files of their subordinate ids: root removes it, and the dirs
    // Podman made (~/.local/share/containers, ~/.config/cni).
    await rm(`/home/${USER}/.local/share/containers`, { recursive: true, force: true });
    await rm(`/home/${USER}/.config/cni`, { recursive: true, force: true });
    await Promise.all(made.map((d, i) => (existed[i] ? undefined : rm(d, { recursive: true, force: true }))));
    if (dir.path) await rm(dir.path, { recursive: true, force: true });
    process.stdout.write(`rootless podman on ${NODE}: first pull ${timings.firstPull} ms, first run ${timings.firstRun} ms, warm run ${timings.warmRun} ms\n`);
  });

  it('works: the job sshd on --net=host answers the owner, and every process of it is the owner\'s own uid on the host', async () => {
    const d = dir.path;
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${d}/host`]);
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${d}/user`]);
    await writeFile(`${d}/authorized_keys`, await readFile(`${d}/user.pub`));
    await writeFile(`${d}/sshd_config`, [
      `Port ${PORT}`, `ListenAddress ${ip}`, `HostKey ${d}/host`, `AuthorizedKeysFile ${d}/authorized_keys`, 'PidFile none',
      'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', '',
    ].join('\n'));
    for (const f of ['host', 'user', 'authorized_keys', 'sshd_config']) await chown(`${d}/${f}`, UID, UID);
    await chmod(`${d}/host`, 0o600);
    const t = Date.now();
    await asOwner([...RUN, '--detach', '--init', '--name', 'jobbox-rootless', '--mount', `type=bind,source=${d},target=${d},readonly`,
      '--entrypoint', '/usr/sbin/sshd', image, '-D', '-e', '-f', `${d}/sshd_config`]);
    const login = () => execa('runuser', ['-u', USER, '--', 'ssh', '-i', `${d}/user`, '-p', String(PORT), '-o', 'StrictHostKeyChecking=no',
      '-o', `UserKnownHostsFile=/dev/null`, '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', `${USER}@${ip}`, 'id -u; cat /proc/self/uid_map'], { reject: false });
    let out = '';
    await waitFor('the rootless sshd', async () => {
      const r = await login();
      out = r.stdout;
      return r.exitCode === 0;
    }, 30);
    process.stdout.write(`rootless podman: the job sshd answered ${Date.now() - t} ms after the run began\n`);
    const [uid, ...map] = out.trim().split('\n');
    expect(uid).toBe(String(UID));
    // keep-id: the owner's uid is itself inside; root inside is one of their subordinate ids.
    expect(map.map((l) => l.trim().split(/\s+/))).toContainEqual([String(UID), '0', '1']);
    const pid = (await asOwner(['inspect', '--format', '{{.State.Pid}}', 'jobbox-rootless'])).stdout.trim();
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(UID));
    expect(/^CapEff:\s+(\S+)/m.exec(status)?.[1]).toBe('0000000000000000');
  });

  it('breaks: the job\'s cgroups cannot be joined, and limits are ignored on cgroup v1', async () => {
    const parent = await asOwner([...RUN, '--rm', '--cgroup-parent', '/jobbox/rootless', image, 'true'], false);
    expect(parent.exitCode).toBe(126);
    expect(parent.stderr).toMatch(/mkdir \/sys\/fs\/cgroup\/\S+\/jobbox\/rootless: permission denied/);
    const memory = await asOwner([...RUN, '--rm', '--memory', '256m', image, 'sh', '-c', 'grep :memory: /proc/self/cgroup'], false);
    expect(memory.exitCode).toBe(0);
    expect(memory.stderr).toContain('Resource limits are not supported and ignored on cgroups V1 rootless systems');
    // Left in the cgroup of whoever ran podman, with no limit of its own.
    expect(memory.stdout).not.toMatch(/libpod/);
  });

  it('breaks: memlock above the owner\'s own hard limit is refused (no CAP_SYS_RESOURCE), which RDMA jobs need', async () => {
    const hard = (await execa('runuser', ['-u', USER, '--', 'sh', '-c', 'ulimit -Hl'])).stdout.trim();
    // Twice the owner's hard limit; where it is unlimited, 64 GiB, which any memlock allows.
    const over = hard === 'unlimited' ? 2 ** 36 : Number(hard) * 1024 * 2;
    const r = await asOwner([...RUN, '--rm', '--ulimit', `memlock=${over}:${over}`, image, 'sh', '-c', 'ulimit -Hl'], false);
    if (hard === 'unlimited') {
      expect(r.stdout.trim()).toBe(String(over / 1024));
      return;
    }
    expect(r.exitCode).toBe(126);
    expect(r.stderr).toContain('error setting rlimit type 8: operation not permitted');
  });

  it('breaks: a supplementary group is not the host\'s, so a project directory stays shut', async () => {
    const project = await mkdtemp('/tmp/jobbox-project-');
    try {
      await mkdir(`${project}/shared`);
      await writeFile(`${project}/shared/data`, 'project data\n');
      await chown(`${project}/shared`, 0, PROJECT_GID);
      await chown(`${project}/shared/data`, 0, PROJECT_GID);
      await chmod(`${project}/shared`, 0o750);
      await chmod(`${project}/shared/data`, 0o640);
      await chmod(project, 0o755);
      // On the node, the owner reads it through the group.
      expect((await execa('runuser', ['-u', USER, '--', 'cat', `${project}/shared/data`])).stdout).toBe('project data');
      const r = await asOwner([...RUN, '--rm', '--group-add', String(PROJECT_GID), '--mount', `type=bind,source=${project},target=/p,readonly`,
        image, 'sh', '-c', 'id -G; cat /p/shared/data'], false);
      // The container claims the group, but it maps to a subordinate gid on the host.
      expect(r.stdout.split('\n')[0]!.split(' ')).toContain(String(PROJECT_GID));
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain('Permission denied');
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  });
});
