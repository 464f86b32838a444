import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submitLsf, type LsfQueueHooks } from '../harness/lsf/harness.js';
import { containers, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { INSTALL, onNode, testbed, testbedStatus, waitFor, type TestbedStatus } from '../support/testbed.js';

// X11 from a job's container (docs/x11.md), on the testbed: an X client in the container on
// node2 reaches an X server on node1, the harness's submission host, through the display the
// job was given.
//
// - The display: Xvfb on node1 (as on the user's side), TCP only, in node1's network namespace.
// - LSF's `bsub -XF`: LSF runs OpenSSH X11 forwarding (LSB_SSH_XFORWARD_CMD) so that the
//   execution host's sshd serves the job a display, `localhost:10.0`, and writes its cookie
//   into the user's ~/.Xauthority. The stand-in is that very forwarding, real OpenSSH: jbuser1's
//   `ssh -Y` from node1 to an sshd of this suite's own on node2 (the nodes' sshds let in root
//   only). What is not LSF's is who starts it: the suite, before the job, rather than bsub. The
//   harness then gives the job starter that DISPLAY (x11Display), and the queue's PRE_EXEC
//   never sees it.
// - IBM: an esub cannot modify a -XF job, so `-a docker-…` is not applied: the X clients'
//   image is the queue's default here (the queue `x11` of this suite's config), as docs/x11.md
//   tells admins to do.
// - The image: deb12 with x11-utils (`testbed.sh x11-image`, pushed under projects/), since the
//   testbed's deb12 has no X client.
//
// Every process the suite starts is recorded by PID and stopped by that PID in afterAll.
const USER = 'jbuser1';
const HOME = `/home/${USER}`;
const XAUTH_HOME = `${HOME}/.Xauthority`;
const SCREEN = '1234x567';
const SSHD_PORT = 2210;
const CLI = `${INSTALL}/dist/cli.js`;

let tb: TestbedStatus;
let fx: LsfFixture;
let image: string;
let hooks: LsfQueueHooks;
let suiteConfig: string;
let dir: string;
let userDir: string;
let display: string;
let savedXauthority: Buffer | undefined;
/** Whether /tmp/.X11-unix was there before: Xvfb makes it in the /tmp all nodes share. */
let hadSocketDir = true;
const started: { what: string; proc: ChildProcess; exited: Promise<void> }[] = [];

const nodePid = (name: string) => String(tb.nodes.find((n) => n.name === name)!.pid);
const nodeIp = (name: string) => tb.nodes.find((n) => n.name === name)!.ip;
/** A process in a node's namespaces (network, mount, hostname), started by nsenter's exec: its PID is the program's. */
const inNode = (node: string, argv: string[]) => ['nsenter', '-t', nodePid(node), '--net', '--mount', '--uts', '--', ...argv];
const asUser = ['setpriv', '--reuid', USER, '--regid', USER, '--init-groups', '--'];
async function account(): Promise<{ uid: number; gid: number }> {
  const [, , uid, gid] = (await execa('getent', ['passwd', USER])).stdout.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
/** Runs argv as the user on this machine (/home is the nodes' too). */
const user = (argv: string[], env: Record<string, string> = {}) =>
  execa('runuser', ['-u', USER, '--', 'env', '-i', `HOME=${HOME}`, 'PATH=/usr/bin:/bin', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv]);
/** Starts a long-running process and records it, for afterAll to stop by its PID. */
function start(what: string, argv: string[], env?: Record<string, string>, stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: [stdin, 'pipe', 'pipe'], ...(env && { env }) });
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null) resolve();
    proc.once('exit', () => resolve()).once('error', () => resolve());
  });
  // Unread output would fill the pipe and stall the process.
  proc.stdout!.resume();
  proc.stderr!.resume();
  started.push({ what, proc, exited });
  return proc;
}

beforeAll(async () => {
  tb = await testbedStatus();
  fx = await lsfFixture();
  // Built and pushed on the first run (debootstrap), cached after.
  image = String((await testbed(['x11-image'])).stdout).trim().split('\n').at(-1)!;
  expect(image).toMatch(/\/projects\/jobbox-x11:/);
  const base = await readFile(fx.configPath, 'utf8');
  suiteConfig = `${fx.config.stateDir}/../x11-test.ini`;
  const memlock = /^memlock = .*$/m.exec(base.slice(base.indexOf('[queue normal]')))![0];
  await writeFile(suiteConfig, `${base}\n[queue x11]\ndefault_image = x11\nallowed_images = x11\nmounts = /home\nmemory = 1g/slot\n${memlock}\n\n[image x11]\nref = ${image}\n`, { mode: 0o644 });
  await chmod(suiteConfig, 0o644);
  hooks = {
    preExec: `${INSTALL}/hooks/lsf/pre-exec --config ${suiteConfig}`,
    postExec: `${INSTALL}/hooks/lsf/post-exec --config ${suiteConfig}`,
    jobStarter: `exec ${INSTALL}/hooks/lsf/starter --config ${suiteConfig} --job-file #%USRCMD`,
  };

  const { uid, gid } = await account();
  dir = await mkdtemp('/tmp/jobbox-x11-');
  await chmod(dir, 0o755);
  // The user's files: the X server's cookie, the ssh client's key and known_hosts, the sshd's.
  userDir = `${dir}/user`;
  await mkdir(userDir, { mode: 0o700 });
  await chown(userDir, uid, gid);
  await user(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', `${userDir}/id`]);
  const cookie = randomBytes(16).toString('hex');
  savedXauthority = await readFile(XAUTH_HOME).catch(() => undefined);

  // The X server. Display :N of node1 is TCP port 6000+N in node1's network namespace only; its
  // lock file is in the /tmp all nodes share, so the number is one no X server holds here.
  hadSocketDir = await stat('/tmp/.X11-unix').then(() => true, () => false);
  let n = 42;
  while (await readFile(`/tmp/.X${n}-lock`).then(() => true, () => false)) n += 1;
  await execa('xauth', ['-f', `${dir}/server.auth`, 'add', `:${n}`, '.', cookie]);
  await user(['xauth', '-f', `${userDir}/display.auth`, 'add', `node1/unix:${n}`, 'MIT-MAGIC-COOKIE-1', cookie]);
  start('Xvfb', inNode('node1', ['Xvfb', `:${n}`, '-listen', 'tcp', '-nolisten', 'unix', '-auth', `${dir}/server.auth`, '-screen', '0', `${SCREEN}x24`]));
  // The user's session on the display's side.
  const xenv = { DISPLAY: `localhost:${n}`, XAUTHORITY: `${userDir}/display.auth`, HOME, PATH: '/usr/bin:/bin' };
  const probe = inNode('node1', [...asUser, 'xdpyinfo']);
  await waitFor('Xvfb on node1', async () => (await execa(probe[0]!, probe.slice(1), { env: xenv, extendEnv: false, reject: false })).exitCode === 0, 30);

  // The execution host's sshd, with X11 forwarding on as a site's sshd has it. It runs as the
  // user: a root sshd without PAM refuses the testbed's users, whose password is locked ("!"),
  // and for X11 forwarding a user's sshd does what root's does for that user: a listener on
  // the host's loopback, the cookie into ~/.Xauthority by xauth run as the user.
  await user(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', `${userDir}/hostkey`]);
  await user(['cp', `${userDir}/id.pub`, `${userDir}/authorized_keys`]);
  await writeFile(`${userDir}/sshd_config`, [
    `Port ${SSHD_PORT}`, `ListenAddress ${nodeIp('node2')}`, `HostKey ${userDir}/hostkey`, 'PidFile none',
    `AuthorizedKeysFile ${userDir}/authorized_keys`, `AllowUsers ${USER}`, 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'UsePAM no',
    // Its files are under /tmp, sticky and world-writable, which StrictModes refuses.
    'StrictModes no',
    'X11Forwarding yes', 'X11DisplayOffset 10', 'X11UseLocalhost yes', 'XAuthLocation /usr/bin/xauth', 'PrintMotd no', '',
  ].join('\n'), { mode: 0o644 });
  start('sshd on node2', inNode('node2', [...asUser, '/usr/sbin/sshd', '-D', '-e', '-f', `${userDir}/sshd_config`]), { HOME, PATH: '/usr/bin:/bin' });

  // LSF's SSH X11 forwarding, as bsub -XF has it made: the user's ssh from the submission host.
  // Its session reads stdin, so closing stdin in afterAll ends it and the forwarding.
  const ssh = [
    ...asUser, 'ssh', '-F', '/dev/null', '-Y', '-i', `${userDir}/id`, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
    '-o', `UserKnownHostsFile=${userDir}/known_hosts`, '-o', 'StrictHostKeyChecking=accept-new', '-o', 'XAuthLocation=/usr/bin/xauth',
    '-p', String(SSHD_PORT), '-l', USER, nodeIp('node2'), 'echo "DISPLAY=$DISPLAY"; exec cat',
  ];
  let out = '';
  for (let tries = 0; !display && tries < 50; tries += 1) {
    const client = start('ssh -Y from node1', inNode('node1', ssh), xenv, 'pipe');
    client.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
    client.stderr!.on('data', (d: Buffer) => void (out += d.toString()));
    await waitFor('the forwarded display', async () => /DISPLAY=\S+/.test(out) || client.exitCode !== null, 10).catch(() => undefined);
    display = /DISPLAY=(\S+)/.exec(out)?.[1] ?? '';
    // Until the sshd listens, the client fails at once.
    if (!display) await new Promise((r) => setTimeout(r, 200));
  }
  expect(display, out).toMatch(/^localhost:1\d\.0$/);
}, 600_000);

afterAll(async () => {
  // The forwarding's session ends when its input does; what still runs then is stopped by its PID.
  for (const { proc } of started) proc.stdin?.end();
  const ended = Promise.all(started.map(({ exited }) => exited));
  await Promise.race([ended, new Promise((r) => setTimeout(r, 5000))]);
  for (const { proc } of [...started].reverse()) {
    if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, 'SIGTERM');
  }
  await ended;
  if (savedXauthority) {
    await writeFile(XAUTH_HOME, savedXauthority);
    const { uid, gid } = await account();
    await chown(XAUTH_HOME, uid, gid);
  } else await rm(XAUTH_HOME, { force: true });
  await rm(`${XAUTH_HOME}-c`, { force: true });
  await rm(`${XAUTH_HOME}-l`, { force: true });
  await rm(`${HOME}/.jobbox-x11-test`, { recursive: true, force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
  if (!hadSocketDir) await rmdir('/tmp/.X11-unix').catch(() => undefined);
  if (suiteConfig) await rm(suiteConfig, { force: true });
});

const ON_NODE2 = [{ name: 'node2', slots: 1 }];
/** A -XF job in the suite's queue, its command run in node2's container. */
const xjob = (command: string, over: Parameters<typeof spec>[0] = {}) =>
  submitLsf(hooks, spec({ queue: 'x11', config: suiteConfig, hosts: ON_NODE2, command, x11Display: display, ...over }));
const DIMENSIONS = new RegExp(`^ {2}dimensions: {4}${SCREEN} pixels \\(`, 'm');

describe('bsub -XF: the forwarded display in the container', () => {
  it('xdpyinfo in node2\'s container shows the screen of the X server on node1, through the DISPLAY LSF gave the job, not the one submitted', async () => {
    // What the pre-exec wrote for the session: the submitted display, which the starter's replaces.
    let userenv = '';
    const r = await xjob('echo "DISPLAY=$DISPLAY XAUTHORITY=${XAUTHORITY-none}"; xdpyinfo | grep dimensions', {
      env: { DISPLAY: 'localhost:11.0' },
      beforePostExec: async (jobId) => void (userenv = await readFile(`${fx.config.stateDir}/${jobId}.0.node2/userenv`, 'utf8')),
    });
    expect(userenv).toMatch(/^export DISPLAY=localhost:11\.0$/m);
    expect(r.preExec.at(-1)?.code, r.preExec.at(-1)?.stderr).toBe(0);
    expect(r.starter?.stderr).toBe('');
    expect(r.starter?.stdout).toMatch(new RegExp(`^DISPLAY=${display.replace('.', '\\.')} XAUTHORITY=none\n`));
    expect(r.starter?.stdout).toMatch(DIMENSIONS);
    expect(r.starter?.code).toBe(0);
    expect(r.state).toBe('DONE');
    expect(await containers(r.jobId)).toEqual([]);
  });

  it('the cookie is checked: an XAUTHORITY the container can read is the one used, and a wrong cookie in it is refused; the right one there connects', async () => {
    const { uid, gid } = await account();
    const files = `${HOME}/.jobbox-x11-test`;
    await mkdir(files, { recursive: true, mode: 0o700 });
    await chown(files, uid, gid);
    const entry = `node2/unix:${display.slice('localhost:'.length, display.lastIndexOf('.'))}`;
    await user(['xauth', '-f', `${files}/wrong`, 'add', entry, 'MIT-MAGIC-COOKIE-1', randomBytes(16).toString('hex')]);
    await user(['sh', '-c', 'xauth -f "$1" extract - "$2" | xauth -f "$3" merge -', 'sh', XAUTH_HOME, entry, `${files}/right`]);

    const wrong = await xjob('xdpyinfo', { env: { XAUTHORITY: `${files}/wrong` } });
    expect(wrong.starter?.code).toBe(1);
    expect(wrong.starter?.stderr).toContain(`xdpyinfo:  unable to open display "${display}".`);
    expect(wrong.starter?.stderr).not.toContain('jobbox:');

    const right = await xjob('xdpyinfo | grep dimensions', { env: { XAUTHORITY: `${files}/right` } });
    expect(right.starter).toMatchObject({ code: 0, stderr: '' });
    expect(right.starter?.stdout).toMatch(DIMENSIONS);
  });

  it('an XAUTHORITY outside the container (a file in the node\'s /tmp, as Slurm\'s per-step one): one line, and X clients use ~/.Xauthority', async () => {
    const outside = `${dir}/user/display.auth`;
    const r = await xjob('xdpyinfo | grep dimensions', { env: { XAUTHORITY: outside } });
    expect(r.starter?.stderr).toBe(`jobbox: XAUTHORITY: not readable in the container, X clients read ~/.Xauthority instead: ${outside}\n`);
    expect(r.starter?.stdout).toMatch(DIMENSIONS);
    expect(r.starter?.code).toBe(0);
  });

  it.each([
    ['a forwarded display nobody serves', 'localhost:19.0'],
    ['a display of the submitting desktop (a unix socket the container does not have)', ':0'],
  ])('%s fails at once with the X client\'s own line, no hang, nothing from jobbox', async (_case, shown) => {
    const r = await xjob('s=$(date +%s%N); xdpyinfo; echo "rc=$? ms=$(( ($(date +%s%N) - s) / 1000000 ))"', { x11Display: shown });
    expect(r.starter?.stderr).toBe(`xdpyinfo:  unable to open display "${shown}".\n`);
    const [, rc, ms] = /^rc=(\d+) ms=(\d+)$/m.exec(r.starter?.stdout ?? '') ?? [];
    expect(rc).toBe('1');
    expect(Number(ms)).toBeLessThan(2000);
  });
});

describe('Slurm: jobbox exec from a step with a DISPLAY (as srun --x11 with X11Parameters=home_xauthority gives it)', () => {
  it('the step\'s DISPLAY and XAUTHORITY reach the command in the container, which the Prolog never saw', async () => {
    expect(tb.slurm).toBe(true);
    // Slurm's own X11 forwarding (PrologFlags=X11) is not configured on the testbed: the step
    // gets the display the suite's ssh forwarding serves on node2, and the cookie file it wrote.
    const inner = `/usr/bin/node ${CLI} exec --config ${tb.config} -- sh -c 'echo "DISPLAY=$DISPLAY"; xdpyinfo | grep dimensions'`;
    const argv = ['runuser', '-u', USER, '--', 'env', `SLURM_CONF=${tb.slurmConf}`, 'PATH=/usr/bin:/bin',
      'salloc', '-N1', '-w', 'node2', '-p', 'normal', '--comment', `jobbox-image=${image}`,
      'srun', '-N1', '-n1', '-w', 'node2', 'env', `DISPLAY=${display}`, `XAUTHORITY=${XAUTH_HOME}`, 'sh', '-c', inner];
    const r = await execa(argv[0]!, argv.slice(1), { cwd: HOME, reject: false });
    expect(r.stdout, r.stderr).toMatch(new RegExp(`^DISPLAY=${display.replace('.', '\\.')}\n`));
    expect(r.stdout).toMatch(DIMENSIONS);
    expect(r.exitCode).toBe(0);
    // The Epilog takes the allocation's container.
    await waitFor('the allocation\'s container to go', async () => (await onNode('node2', ['docker', 'ps', '-aq', '--filter', `label=org.jobbox.owner=${USER}`])) === '', 60);
  });
});
