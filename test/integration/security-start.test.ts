// Another user on the cluster cannot keep the owner out of a job's sshd, nor stall or break a
// job's start (issue 11, items 3 and 4). The attacker is jbuser2, a plain user on a node; each
// attack is first shown to be live, so a pass means jobbox withstood it, not that it was dud.
import { chmod, link, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import { lsfJobEnv, submitLsf, type LsfQueueHooks } from '../harness/lsf/harness.js';
import { ALLOC, claims, containers, hook, jobDirs, lsfFixture, spec } from '../support/lsf-fixture.js';
import { INSTALL, onNode, testbed, testbedStatus, waitFor } from '../support/testbed.js';

let config: Config;
let hooks: LsfQueueHooks;
beforeAll(async () => ({ config, hooks } = await lsfFixture()));

const ATTACKER = { name: 'jbuser2', uid: 2002 };
const NODE_IP = { node1: '10.78.0.11', node2: '10.78.0.12', node3: '10.78.0.13' };

interface Attack { pid: string; said: string; ended: Promise<unknown> }
const attacks: { node: string; attack: Attack }[] = [];

/**
 * Runs a python program as the attacker on a node, in the background. Once it holds what it is
 * after it prints a line: its own pid, then what it holds. The pid is recorded so that it, and
 * only it, is killed at the end.
 */
async function attack(node: string, program: string, args: string[]): Promise<Attack> {
  const proc = testbed(['exec', node, '--', 'runuser', '-u', ATTACKER.name, '--', 'python3', '-c', program, ...args], { reject: false });
  const [pid, said] = await new Promise<[string, string]>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = /^(\d+) ?(.*)\n/.exec(out);
      if (line) resolve([line[1]!, line[2]!]);
    });
    void proc.then((r) => reject(new Error(`attacker on ${node} ended before it was ready: ${String(r.stderr)}`)));
  });
  const started = { pid, said, ended: proc };
  attacks.push({ node, attack: started });
  return started;
}

async function stop({ node, attack: { pid, ended } }: { node: string; attack: Attack }): Promise<void> {
  await onNode(node, ['kill', pid]).catch(() => '');
  await ended;
}

afterAll(async () => {
  for (const a of attacks.splice(0)) await stop(a);
});

async function expectNothingLeft(jobId: number): Promise<void> {
  expect({ containers: await containers(jobId), claims: await claims(config, jobId), dirs: await jobDirs(config, jobId) }).toEqual({ containers: [], claims: [], dirs: [] });
}

const uidOf = async (node: string, pid: string) => /^Uid:\s+(\d+)/m.exec(await onNode(node, ['cat', `/proc/${pid}/status`]))?.[1];

// Keeps `n` connections open to host:port without ever authenticating: whatever sshd closes
// (past its limits, or at LoginGraceTime) is opened again.
const HOLD_CONNECTIONS = `
import os, select, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
live = []
ready = False
while True:
    for s in select.select(live, [], [], 0)[0] if live else []:
        try:
            closed = s.recv(4096) == b''
        except OSError:
            closed = True
        if closed:
            live.remove(s)
            s.close()
    while len(live) < n:
        s = socket.socket()
        try:
            s.connect((host, port))
            live.append(s)
        except OSError:
            s.close()
            break
    if not ready:
        print(os.getpid(), flush=True)
        ready = True
    time.sleep(0.5)
`;

describe('security: another user against a job\'s sshd and its start', () => {
  it('150 idle connections from another user on another node: the owner still logs in, again and again, and mpirun spans the three nodes', async () => {
    const jobId = 73001;
    const home = '/home/jbuser1';
    const go = `${home}/.jobbox-security-go-${jobId}`;
    // The job waits for the attack to be in place, then runs a stock mpirun through the job starter.
    const run = submitLsf(hooks, spec({
      app: 'docker-deb12', jobId,
      command: `timeout 120 sh -c 'until test -e ${go}; do sleep 0.2; done' && mpirun -np 5 hostname | sort | uniq -c`,
    }));
    let attacker: Attack | undefined;
    try {
      await waitFor('the job waiting in its first container', async () => (await onNode('node1', ['docker', 'top', `jobbox-${jobId}`]).catch(() => '')).includes('sleep 0.2'), 120);
      const port = (await claims(config, jobId))[0]!.split('.').pop()!;
      const dir = `${config.stateDir}/${jobId}.0.node1`;

      attacker = await attack('node3', HOLD_CONNECTIONS, ['node2', port, '150']);
      expect(await uidOf('node3', attacker.pid)).toBe(String(ATTACKER.uid));
      // The attack is live: node2's job sshd holds the attacker's node up to the per-source cap,
      // and drops the rest.
      const fromNode3 = async () => (await onNode('node2', ['ss', '-Htn', 'state', 'established', `sport = :${port}`])).split('\n').filter((l) => l.includes(`${NODE_IP.node3}:`)).length;
      await waitFor('the attacker holding 10 unauthenticated connections on node2', async () => (await fromNode3()) === 10, 30);
      const logs = async () => { const r = await testbed(['exec', 'node2', '--', 'docker', 'logs', `jobbox-${jobId}`]); return `${String(r.stdout)}\n${String(r.stderr)}`; };
      expect(await logs()).toMatch(new RegExp(`drop connection #\\d+ from \\[${NODE_IP.node3.replaceAll('.', '\\.')}\\]:\\d+ on \\[${NODE_IP.node2.replaceAll('.', '\\.')}\\]:${port}`));

      // The owner, from node1, with the job's own ssh_config: in, five times in a row.
      for (let i = 0; i < 5; i++) {
        expect(await onNode('node1', ['runuser', '-u', 'jbuser1', '--', 'ssh', '-F', `${dir}/ssh_config`, 'node2', 'echo in'])).toBe('in');
      }
      expect(await fromNode3()).toBeLessThanOrEqual(10);
      expect(await logs()).not.toContain(`from [${NODE_IP.node1}]`);

      await onNode('node1', ['runuser', '-u', 'jbuser1', '--', 'touch', go]);
      const ended = await run;
      expect({ state: ended.state, preExec: ended.preExec.map((p) => p.code), out: ended.starter?.stdout.replace(/ +/g, ' ').trim() })
        .toEqual({ state: 'DONE', preExec: [0], out: '2 node1\n 2 node2\n 1 node3' });
      expect(ended.postExec?.code).toBe(0);
    } finally {
      if (attacker) await stop(attacks.splice(attacks.findIndex((a) => a.attack === attacker), 1)[0]!);
      await onNode('node1', ['rm', '-f', go]);
      await run.catch(() => undefined);
    }
    await expectNothingLeft(jobId);
  });

  it('the pull lock: another user holding the old lock file stalls no start, and can open nothing where the lock now lives', async () => {
    const jobId = 73002;
    const OLD = '/run/jobbox-pull.lock';
    // What an earlier jobbox left on each node, readable by all: anyone could flock it.
    const made: string[] = [];
    for (const node of ['node1', 'node2', 'node3']) {
      if ((await onNode(node, ['sh', '-c', `test -e ${OLD} && echo yes || echo no`])) === 'no') {
        await onNode(node, ['install', '-m', '0644', '/dev/null', OLD]);
        made.push(node);
      }
    }
    const holders: Attack[] = [];
    try {
      for (const node of ['node1', 'node2', 'node3']) {
        holders.push(await attack(node, 'import fcntl, os, sys, time\nf = open(sys.argv[1])\nfcntl.flock(f, fcntl.LOCK_EX)\nprint(os.getpid(), flush=True)\ntime.sleep(600)\n', [OLD]));
      }
      // Live: root itself cannot take the old lock now.
      await expect(onNode('node2', ['flock', '-n', OLD, 'true'])).rejects.toMatchObject({ exitCode: 1 });

      const started = Date.now();
      const run = await submitLsf(hooks, spec({ app: 'docker-deb12', jobId, command: 'true' }));
      const seconds = (Date.now() - started) / 1000;
      expect({ state: run.state, preExec: run.preExec.map((p) => p.code), postExec: run.postExec?.code }).toEqual({ state: 'DONE', preExec: [0], postExec: 0 });
      expect(run.preExec[0]!.stderr).not.toContain('pull failed');
      // Held for pull_timeout, the old lock would have held the start that long.
      expect(seconds).toBeLessThan(config.pullTimeoutMs / 1000 / 2);

      for (const node of ['node1', 'node2', 'node3']) {
        expect(await onNode(node, ['stat', '-c', '%U %a', '/run/jobbox'])).toBe('root 700');
        const as2 = (argv: string[]) => onNode(node, ['runuser', '-u', ATTACKER.name, '--', ...argv]);
        for (const argv of [
          ['flock', '-n', '/run/jobbox/pull.lock', 'true'],
          ['flock', '-n', '/run/jobbox', 'true'],
          ['touch', '/run/jobbox/x'],
          ['ls', '/run/jobbox'],
        ]) await expect(as2(argv), argv.join(' ')).rejects.toMatchObject({ stderr: expect.stringMatching(/Permission denied/) });
      }
    } finally {
      for (const h of holders) await stop(attacks.splice(attacks.findIndex((a) => a.attack === h), 1)[0]!);
      for (const node of made) await onNode(node, ['rm', '-f', OLD]);
    }
    await expectNothingLeft(jobId);
  });

  it('ports another user bound but never listened on (no `ss` shows them): the job passes them by and starts on a free one', async () => {
    const jobId = 73003;
    const { first, last } = config.portRange;
    // Three ports no job holds now stay free; jbuser2 binds every other one on node2 that it can
    // (not those a job's sshd left in TIME_WAIT: sshd's SO_REUSEADDR can have those, a plain
    // bind cannot), in each way that keeps sshd from binding: IPv4, IPv6 dual-stack, IPv6 only.
    const claimed = new Set((await readdir(join(config.portDir, 'claims'))).map((c) => Number(c.split('.').pop())));
    const open = Array.from({ length: last - first + 1 }, (_, i) => first + i).filter((p) => !claimed.has(p));
    const free = [...open].sort(() => Math.random() - 0.5).slice(0, 3).sort((a, b) => a - b);
    const binder = await attack('node2', `
import os, socket, sys
first, last, free = int(sys.argv[1]), int(sys.argv[2]), {int(p) for p in sys.argv[3].split(',')}
held = []
for port in range(first, last + 1):
    if port in free:
        continue
    kind = port % 3
    s = socket.socket(socket.AF_INET if kind == 0 else socket.AF_INET6)
    if kind == 2:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        s.bind(('0.0.0.0' if kind == 0 else '::', port))
        held.append(s)
    except OSError:
        s.close()
print(os.getpid(), ','.join(str(s.getsockname()[1]) for s in held), flush=True)
import time
time.sleep(600)
`, [String(first), String(last), free.join(',')]);
    try {
      expect(await uidOf('node2', binder.pid)).toBe(String(ATTACKER.uid));
      const bound = binder.said.split(',').map(Number);
      expect(bound.length).toBeGreaterThan(150);
      // Live: a port of each kind is bound (a bind of its family fails), yet `ss` lists none.
      for (const kind of [0, 1, 2]) {
        const p = bound.find((q) => q % 3 === kind)!;
        expect(await onNode('node2', ['ss', '-Htan', `sport = :${p}`])).toBe('');
        await expect(onNode('node2', ['python3', '-c', 'import socket, sys; socket.socket(int(sys.argv[2])).bind(("", int(sys.argv[1])))', String(p), String(kind === 2 ? 10 : 2)]))
          .rejects.toMatchObject({ stderr: expect.stringMatching(/Address already in use/) });
      }

      let port: number | undefined;
      const run = await submitLsf(hooks, spec({
        app: 'docker-deb12', jobId, command: 'mpirun -np 5 hostname | sort | uniq -c',
        beforePostExec: async () => void (port = Number((await claims(config, jobId))[0]?.split('.').pop())),
      }));
      expect({ state: run.state, preExec: run.preExec.map((p) => p.code), out: run.starter?.stdout.replace(/ +/g, ' ').trim() })
        .toEqual({ state: 'DONE', preExec: [0], out: '2 node1\n 2 node2\n 1 node3' });
      expect(port).toBeGreaterThanOrEqual(first);
      expect(bound).not.toContain(port);
    } finally {
      await stop(attacks.splice(attacks.findIndex((a) => a.attack === binder), 1)[0]!);
    }
    await expectNothingLeft(jobId);
  });

  it('with only ports another user bound left: exit 1 at once, nothing taken; with one more, free, port the job takes that one', async () => {
    const { first, last } = config.portRange;
    const claimed = new Set((await readdir(join(config.portDir, 'claims'))).map((c) => Number(c.split('.').pop())));
    // A port an earlier job's sessions left in TIME_WAIT on node2 cannot be bound without
    // SO_REUSEADDR, which the attacker's plain bind does not set: not that one.
    const inUse = new Set((await onNode('node2', ['ss', '-Htan'])).split('\n').map((l) => Number(l.trim().split(/\s+/)[3]?.split(':').pop())));
    const [bound, free] = Array.from({ length: last - first + 1 }, (_, i) => first + i)
      .filter((p) => !claimed.has(p) && !inUse.has(p)).sort(() => Math.random() - 0.5) as [number, number];
    const binder = await attack('node2', 'import os, socket, sys, time\ns = socket.socket()\ns.bind(("0.0.0.0", int(sys.argv[1])))\nprint(os.getpid(), flush=True)\ntime.sleep(600)\n', [String(bound)]);
    const env = (jobId: number) => lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' });
    try {
      // Before, `ss` showed nothing there: sshd was started, failed to bind, and the pre-exec
      // waited out start_timeout for it.
      let undo = await holdPortsBut([bound]);
      try {
        expect(await hook(hooks.preExec, env(73004))).toEqual({ code: 1, stderr: `jobbox: ports: no free port in ${first}-${last}: ${config.portDir}` });
      } finally {
        await undo();
      }
      await expectNothingLeft(73004);

      undo = await holdPortsBut([bound, free]);
      try {
        expect(await hook(hooks.preExec, env(73005))).toEqual({ code: 0, stderr: '' });
        expect(await claims(config, 73005)).toEqual([`claim.73005.0.node1.${free}`]);
      } finally {
        await undo();
      }
      expect((await hook(hooks.postExec, env(73005))).code).toBe(0);
      await expectNothingLeft(73005);
    } finally {
      await stop(attacks.splice(attacks.findIndex((a) => a.attack === binder), 1)[0]!);
    }
  });

  it('an image whose sshd predates PerSourceMaxStartups gets a config without it, and says so; one older than 7.8 is refused at once', async () => {
    // Images that say they are older OpenSSH releases: /usr/sbin/sshd answers -V as that release
    // would, in its usage text, and otherwise runs the image's real sshd. Built on node1 and
    // pushed (a job runs one registry digest on every node); deleted from the registry after.
    const base = config.images.get('deb12')!.ref;
    const fake = { old: { release: 'OpenSSH_8.4p1 Debian-5+deb11u3, OpenSSL 1.1.1w  11 Sep 2023', ref: `${config.registry}/jobbox-test-sshd84:${process.pid}` },
      ancient: { release: 'OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017', ref: `${config.registry}/jobbox-test-sshd74:${process.pid}` } };
    const area = await mkdtemp(join(dirname(config.stateDir), 'security-start-'));
    await chmod(area, 0o755);
    const configFile = `${area}/jobbox.ini`;
    const text = (await readFile((await testbedStatus()).config, 'utf8'))
      .replace(/^allowed_images = deb12 deb12-mpich$/m, 'allowed_images = deb12 deb12-mpich sshd84 sshd74')
      .concat(`\n[image sshd84]\nref = ${fake.old.ref}\n\n[image sshd74]\nref = ${fake.ancient.ref}\n`);
    await writeFile(configFile, text, { mode: 0o644 });
    const line = (hook: string) => `${INSTALL}/hooks/lsf/${hook} --config ${configFile}`;
    const env = (jobId: number, image: string) => lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: image });
    try {
      for (const { release, ref } of Object.values(fake)) {
        const maker = `jobbox-test-sshd-${process.pid}`;
        const wrapper = `#!/bin/sh\nif [ "$1" = -V ]; then printf '%s\\n' 'unknown option -- V' '${release}' 'usage: sshd [-46DdeiqTt] ...' >&2; exit 1; fi\nexec /usr/sbin/sshd.real "$@"\n`;
        await onNode('node1', ['docker', 'run', '--name', maker, '--user', '0', base, '/bin/sh', '-c', `mv /usr/sbin/sshd /usr/sbin/sshd.real && printf '%s' "$0" > /usr/sbin/sshd && chmod 0755 /usr/sbin/sshd`, wrapper]);
        await onNode('node1', ['docker', 'commit', '--change', 'CMD ["/bin/bash"]', maker, ref]);
        await onNode('node1', ['docker', 'rm', maker]);
        await onNode('node1', ['docker', 'push', '-q', ref]);
      }
      expect(await onNode('node1', ['docker', 'run', '--rm', fake.old.ref, '/bin/sh', '-c', '/usr/sbin/sshd -V 2>&1; /usr/sbin/sshd.real -V 2>&1 | cut -d, -f1'])).toMatch(/OpenSSH_8\.4p1 Debian[\s\S]*\nOpenSSH_9\.2$/);

      // 8.4: the job starts, its sshd_config says what was left out and why, the log says so too.
      const started = Date.now();
      const pre = await hook(line('pre-exec'), env(73006, 'sshd84'));
      expect(pre.code).toBe(0);
      const dir = `${config.stateDir}/73006.0.node1`;
      expect((await readFile(`${dir}/sshd_config`, 'utf8')).split('\n').filter((l) => /MaxStartups|LoginGraceTime/.test(l)))
        .toEqual(['LoginGraceTime 30', 'MaxStartups 100', "# PerSourceMaxStartups 10: left out, this image's sshd is OpenSSH 8.4"]);
      const warned = (await readFile(config.logFile, 'utf8')).split('\n').filter((l) => l.includes('"job":"73006"') && l.includes('left out'))
        .map((l) => JSON.parse(l) as { time: number; image: string; openssh: string; lacks: string[] }).filter((l) => l.time >= started);
      expect(warned.map(({ image, openssh, lacks }) => ({ image, openssh, lacks }))).toEqual([{ image: fake.old.ref, openssh: '8.4', lacks: ['PerSourceMaxStartups'] }]);
      expect(await onNode('node1', ['runuser', '-u', 'jbuser1', '--', 'ssh', '-F', `${dir}/ssh_config`, 'node2', 'echo in'])).toBe('in');
      expect((await hook(line('post-exec'), env(73006, 'sshd84'))).code).toBe(0);
      await expectNothingLeft(73006);

      // 7.4 (CentOS 7): its sshd would refuse SetEnv and never answer; refused before any container, for good (99).
      const refused = await hook(line('pre-exec'), env(73007, 'sshd74'));
      expect({ code: refused.code, last: refused.stderr.trim().split('\n').at(-1) })
        .toEqual({ code: 99, last: 'jobbox: image sshd74: needs OpenSSH 7.8 or later as /usr/sbin/sshd (SetEnv hands every session the hostfiles): OpenSSH 7.4' });
      await expectNothingLeft(73007);
    } finally {
      await onNode('node1', ['docker', 'rm', '--force', `jobbox-test-sshd-${process.pid}`]).catch(() => '');
      for (const { ref } of Object.values(fake)) await forgetEverywhere(ref);
      await rm(area, { recursive: true, force: true });
    }
  });
});

/** Removes a throwaway image from every node, by tag and by digest, and its manifest from the registry. */
async function forgetEverywhere(ref: string): Promise<void> {
  const colon = ref.lastIndexOf(':');
  const [repo, tag] = [ref.slice(0, colon), ref.slice(colon + 1)];
  const slash = repo.indexOf('/');
  const url = `http://${repo.slice(0, slash)}/v2/${repo.slice(slash + 1)}/manifests`;
  const head = await fetch(`${url}/${tag}`, { method: 'HEAD', headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' } }).catch(() => undefined);
  const digest = head?.headers.get('docker-content-digest');
  for (const node of ['node1', 'node2', 'node3']) {
    await onNode(node, ['docker', 'rmi', '--force', ref, ...(digest ? [`${repo}@${digest}`] : [])]).catch(() => '');
  }
  if (digest) await fetch(`${url}/${digest}`, { method: 'DELETE' });
}

/** Another job's claim on every port in range but `free` (and those already claimed), as its pre-execs would make them; returns the undo. */
async function holdPortsBut(free: number[]): Promise<() => Promise<void>> {
  const made: string[] = [];
  for (let p = config.portRange.first; p <= config.portRange.last; p++) {
    if (free.includes(p)) continue;
    const file = `${config.portDir}/port.${p}`;
    await writeFile(file, '', { flag: 'a', mode: 0o644 });
    if ((await stat(file)).nlink !== 1) continue; // a running job's
    const other = `${config.portDir}/claims/claim.69998.0.node9.${p}`;
    if (await link(file, other).then(() => true, () => false)) made.push(other);
  }
  return async () => void (await Promise.all(made.map((f) => rm(f, { force: true }))));
}
