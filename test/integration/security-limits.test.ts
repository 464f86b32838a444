import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { lsfJobEnv, submitLsf, type LsfQueueHooks, type Slots } from '../harness/lsf/harness.js';
import { containers, hook, jobDirs, lsfFixture, spec } from '../support/lsf-fixture.js';
import * as fixture from '../support/lsf-fixture.js';
import { jobLogFrom, onNode, waitFor } from '../support/testbed.js';

// Issue 11, items 7 and 6 (environment), on the testbed: a job's container cannot take its
// node down (pids and locked memory are bounded), and no user variable docker would refuse
// makes the pre-exec fail and requeue forever.
//
// The limits run in a queue of their own, added to a copy of the testbed's config: memory
// 7m/slot puts the memory limit under the memlock the testbed can grant (its hard limit, 8 MiB
// here) on a 1-slot node, so the cap is seen acting, and pids_limit 64 keeps the fork bomb
// short. cpus = none lets node1 take 8 slots of memory on this 2-core machine.
const OWNER = { uid: '2001', name: 'jbuser1' };
const LIMITS: Slots[] = [{ name: 'node1', slots: 8 }, { name: 'node2', slots: 2 }, { name: 'node3', slots: 1 }];
const PER_SLOT = 7 * 1024 ** 2;
const PIDS = 64;
const KEPT_OUT = 'user variables kept out of the container';

let base: { config: Config; hooks: LsfQueueHooks };
let area: string;
let limits: { config: Config; hooks: LsfQueueHooks };
let jobId: number;
let jobLog: (id: number) => Promise<string[]>;

beforeAll(async () => {
  const fx = await lsfFixture();
  base = fx;
  jobLog = await jobLogFrom(fx.config.logFile);
  // Under the shared dir, so every node sees it; 0755, as loadConfig requires of a root config.
  area = await mkdtemp('/var/lib/jobbox-testbed/shared/security-limits-');
  await chmod(area, 0o755);
  const memlock = fx.config.queues.get('normal')!.memlock;
  const file = `${area}/jobbox.ini`;
  await writeFile(file, `${await readFile(fx.configPath, 'utf8')}
[queue limits]
default_image = deb12
mounts = /home
cpus = none
memory = ${PER_SLOT / 1024 ** 2}m/slot
memlock = ${memlock}
pids_limit = ${PIDS}
`, { mode: 0o644 });
  const withFile = (line: string) => line.replace(`--config ${fx.configPath}`, `--config ${file}`);
  limits = {
    config: await loadConfig(file),
    hooks: { preExec: withFile(fx.hooks.preExec), postExec: withFile(fx.hooks.postExec), jobStarter: withFile(fx.hooks.jobStarter) },
  };

  const run = await submitLsf(limits.hooks, spec({ queue: 'limits', hosts: LIMITS, skipStarter: true, skipPostExec: true }));
  jobId = run.jobId;
  expect(run.preExec).toMatchObject([{ code: 0 }]);
});

afterAll(async () => {
  if (jobId !== undefined) {
    const env = lsfJobEnv(spec({ queue: 'limits', hosts: LIMITS }), jobId, LIMITS, {});
    expect((await hook(limits.hooks.postExec, env)).code).toBe(0);
    expect(await containers(jobId)).toEqual([]);
    expect(await fixture.claims(limits.config, jobId)).toEqual([]);
  }
  await rm(area, { recursive: true, force: true });
});

interface HostConfig { Memory: number; PidsLimit: number | null; Ulimits: { Name: string; Soft: number; Hard: number }[] | null }
async function hostConfig(node: string, name: string): Promise<HostConfig> {
  return JSON.parse(await onNode(node, ['docker', 'inspect', '--format', '{{json .HostConfig}}', name])) as HostConfig;
}

/** Tasks in the container, as its pids cgroup counts them. */
async function pids(node: string, name: string): Promise<number> {
  return Number(await onNode(node, ['docker', 'stats', '--no-stream', '--format', '{{.PIDs}}', name]));
}

describe('a container cannot take its node down', () => {
  it('every container has a pids limit, and a memlock ulimit no higher than its memory limit', async () => {
    const configured = limits.config.queues.get('limits')!.memlock;
    const seen = [];
    for (const { name } of LIMITS) {
      const host = await hostConfig(name, `jobbox-${jobId}`);
      const memlock = host.Ulimits?.filter((u) => u.Name === 'memlock') ?? [];
      seen.push({ name, memory: host.Memory, pids: host.PidsLimit, memlock: memlock.map((u) => [u.Soft, u.Hard]) });
      expect(memlock).toHaveLength(1);
      expect(memlock[0]!.Hard).toBeLessThanOrEqual(host.Memory);
    }
    const expected = (slots: number) => Math.min(configured === 'unlimited' ? Infinity : configured, slots * PER_SLOT);
    expect(seen).toEqual(LIMITS.map(({ name, slots }) => ({
      name, memory: slots * PER_SLOT, pids: PIDS, memlock: [[expected(slots), expected(slots)]],
    })));
    // The cap acts: with one slot, the memory limit is below what the queue's memlock allows.
    expect(seen.at(-1)!.memlock).toEqual([[PER_SLOT, PER_SLOT]]);
  });

  it('a fork bomb of the owner stops at the pids limit while the node keeps forking; the job recovers', async () => {
    const name = `jobbox-${jobId}`;
    // Forks sleeps as the owner until fork fails, then waits for them: the container stays at
    // its limit for the sleeps' 10 s.
    const bomb = onNode('node1', ['docker', 'exec', '--user', OWNER.uid, name, 'perl', '-e',
      'my $n = 0; while (defined(my $p = fork)) { if (!$p) { exec "sleep", "10"; exit 127 } $n++ } print "$n forks, then: $!\\n"; 1 while wait != -1;']);
    try {
      await waitFor('the container to reach its pids limit', async () => (await pids('node1', name)) === PIDS, 30);
      // The owner cannot start one more process in the container (docker exec itself gets in:
      // the limit binds forks, not a process moved into the cgroup) …
      await expect(onNode('node1', ['docker', 'exec', '--user', OWNER.uid, name, 'sh', '-c', 'true & wait'])).rejects.toMatchObject({ stderr: expect.stringContaining('Cannot fork') });
      // … while the node forks 200 at once, and its dockerd answers.
      expect(await onNode('node1', ['sh', '-c', 'for i in $(seq 200); do sleep 0.5 & done; wait; echo forked'])).toBe('forked');
      expect(await onNode('node1', ['docker', 'ps', '--filter', `name=^/${name}$`, '--format', '{{.Names}}'])).toBe(name);
    } finally {
      const out = await bomb;
      expect(out).toMatch(/^\d+ forks, then: Resource temporarily unavailable$/);
      expect(Number(out.split(' ')[0])).toBeGreaterThan(PIDS / 2);
    }
    expect(await pids('node1', name)).toBeLessThan(PIDS / 2);
    // The job's sshd survived: the owner gets a session again.
    const dir = `${limits.config.stateDir}/${jobId}.0.node1`;
    expect(await onNode('node1', ['runuser', '-u', OWNER.name, '--', 'ssh', '-F', `${dir}/ssh_config`, 'node1', 'id -un'])).toBe(OWNER.name);
  });
});

// ---- environment ----

/** The pre-exec log's "kept out" lines for a job (the log is JSON, one object per line). */
async function keptOut(id: number): Promise<string[][]> {
  const lines = await jobLog(id);
  return lines.map((l) => JSON.parse(l) as { msg: string; dropped?: string[] }).filter((l) => l.msg === KEPT_OUT).map((l) => l.dropped ?? []);
}

/**
 * The environment a session of the job's owner gets in the container on node1 (the container's
 * own plus the user's variables the starter sources from the job's userenv), names only, and its
 * size in bytes.
 */
async function containerEnvNames(config: Config, id: number): Promise<{ names: string[]; bytes: number }> {
  const userenv = `${config.stateDir}/${id}.0.node1/userenv`;
  const out = await onNode('node1', ['docker', 'exec', '--user', OWNER.uid, `jobbox-${id}`, 'sh', '-c', `. ${userenv} && env | cut -d= -f1; env | wc -c`]);
  const lines = out.split('\n');
  return { names: lines.slice(0, -1).sort(), bytes: Number(lines.at(-1)) };
}

describe('user variables docker would refuse are dropped and logged, never fail the pre-exec', () => {
  // In the shared home, as users write scripts: the starter line's "%USRCMD" quoting would
  // expand $… on the host.
  const SCRIPT = '.jobbox-security-env.sh';
  beforeAll(async () => {
    await writeFile(`/home/${OWNER.name}/${SCRIPT}`, '#!/bin/sh\necho "SMALL=$SMALL BIG=${#BIG} WIDE=${#WIDE}"\n', { mode: 0o755 });
    await chown(`/home/${OWNER.name}/${SCRIPT}`, Number(OWNER.uid), Number(OWNER.uid));
  });
  afterAll(() => rm(`/home/${OWNER.name}/${SCRIPT}`, { force: true }));

  it('a 90 kB variable, and a 40 000-character value of 2-byte characters (80 kB): the job starts and runs', async () => {
    let inside: Awaited<ReturnType<typeof containerEnvNames>> | undefined;
    let limitsSeen: (number | null)[] = [];
    const run = await submitLsf(base.hooks, spec({
      app: 'docker-deb12',
      env: { BIG: 'x'.repeat(90_000), WIDE: 'é'.repeat(40_000), SMALL: 'kept' },
      command: `./${SCRIPT}`,
      beforePostExec: async (id) => {
        inside = await containerEnvNames(base.config, id);
        limitsSeen = await Promise.all(fixture.NODES.map(async (n) => (await hostConfig(n, `jobbox-${id}`)).PidsLimit));
      },
    }));
    expect(run.preExec.map((p) => p.code)).toEqual([0]);
    expect(run.starter).toMatchObject({ code: 0, stdout: 'SMALL=kept BIG=0 WIDE=0\n' });
    expect(run.state).toBe('DONE');
    const [dropped, ...more] = await keptOut(run.jobId);
    expect(more).toEqual([]);
    expect(dropped).toEqual(expect.arrayContaining(['BIG', 'WIDE']));
    expect(dropped).not.toContain('SMALL');
    expect(inside?.names).toContain('SMALL');
    expect(inside?.names).not.toContain('BIG');
    expect(inside?.names).not.toContain('WIDE');
    // The testbed's queue sets no pids_limit: the default reaches every container.
    expect(limitsSeen).toEqual(fixture.NODES.map(() => 4096));
    expect(await containers(run.jobId)).toEqual([]);
  });

  it('40 variables of 60 kB (2.4 MB): the job starts with the first 17 by name, the rest are logged', async () => {
    const forty = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`V${String(i).padStart(2, '0')}`, 'x'.repeat(60_000)]));
    const names = Object.keys(forty);
    // 2.4 MB of environment is more than execve takes with the default 8 MiB stack (2 MiB); a
    // user who submits it has raised theirs (`ulimit -s unlimited`, common on HPC), and so must
    // every exec between this process and the pre-exec: raise ours, as bsub's would be.
    const stack = (await execa('prlimit', ['--pid', String(process.pid), '--stack', '--raw', '--noheadings', '--output', 'SOFT'])).stdout.trim();
    await execa('prlimit', ['--pid', String(process.pid), `--stack=${64 * 1024 ** 2}:`]);
    let inside: Awaited<ReturnType<typeof containerEnvNames>> | undefined;
    let run;
    try {
      run = await submitLsf(base.hooks, spec({
        app: 'docker-deb12',
        env: forty,
        // Not the starter: the harness plays sbatchd's fork with runuser, whose PAM session puts
        // the stack limit back to 8 MiB, too small to exec with 2.4 MB of environment. The test
        // below runs the starter with 900 kB. This one is the pre-exec's.
        skipStarter: true,
        beforePostExec: async (id) => {
          inside = await containerEnvNames(base.config, id);
        },
      }));
    } finally {
      await execa('prlimit', ['--pid', String(process.pid), `--stack=${stack}:`]);
    }
    expect(run.preExec.map((p) => p.code)).toEqual([0]);
    expect(run.postExec?.code).toBe(0);
    const [dropped, ...more] = await keptOut(run.jobId);
    expect(more).toEqual([]);
    expect(dropped?.filter((n) => /^V\d\d$/.test(n)).sort()).toEqual(names.slice(17));
    expect(inside?.names.filter((n) => /^V\d\d$/.test(n))).toEqual(names.slice(0, 17));
    expect(inside?.bytes).toBeLessThan(1.1 * 1024 ** 2);
    expect(await containers(run.jobId)).toEqual([]);
    expect(await jobDirs(base.config, run.jobId)).toEqual([]);
  });

  // The starter used to put the kept variables on the ssh command line: three of 60 kB were
  // enough for E2BIG (MAX_ARG_STRLEN is 128 KiB). They now travel in the owner-only userenv file.
  it('15 variables of 60 kB (900 kB): the job command sees every one', async () => {
    const fifteen = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`W${String(i).padStart(2, '0')}`, 'y'.repeat(60_000)]));
    const run = await submitLsf(base.hooks, spec({ app: 'docker-deb12', env: fifteen, command: "env | grep -c '^W[0-9][0-9]=y'" }));
    expect(run.preExec.map((p) => p.code)).toEqual([0]);
    expect(run.starter).toMatchObject({ code: 0, stdout: '15\n', stderr: '' });
    expect(run.state).toBe('DONE');
    expect(await containers(run.jobId)).toEqual([]);
  });
});
