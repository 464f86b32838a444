// Promise 1 of docs/security.md: no user-chosen environment reaches a root process of jobbox.
// A job user plants payloads in their home and sets every variable that makes a loader, node,
// OpenSSL or a shell run them; the root hooks run with that environment, through the real hook
// lines, on the testbed. Each payload is first shown to be live (it runs when a program of the
// user's meets the variable), so a pass means jobbox kept it out, not that the payload was dud.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lsfJobEnv, submitLsf } from '../harness/lsf/harness.js';
import { ALLOC, claims, containers, jobDirs, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { INSTALL, testbed } from '../support/testbed.js';

const USER = { name: 'jbuser1', uid: 2001, gid: 2001 };
const HOME = `/home/${USER.name}`;
const ATTACK = `${HOME}/.jobbox-attack-${process.pid}`;
const MARKS = `${ATTACK}/marks`;
// Present in every attacked environment: a root process whose environ holds it got the job's variables.
const CANARY = 'JOBBOX_ATTACK_CANARY';
const LSF_PATH = '/bin:/usr/bin:/sbin:/usr/sbin';

let fx: LsfFixture;

/** A payload marks that it ran: which kind, as whom, in which program. */
const markC = (kind: string) => `
#include <stdio.h>
#include <unistd.h>
static void mark(void) {
  char exe[512] = "", path[512];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) exe[n] = 0;
  snprintf(path, sizeof path, "${MARKS}/${kind}.%d", (int)getpid());
  FILE *f = fopen(path, "w");
  if (f) { fprintf(f, "uid=%d exe=%s\\n", (int)getuid(), exe); fclose(f); }
}`;
const markSh = (kind: string) => `echo "uid=$(/usr/bin/id -u) exe=$0" > ${MARKS}/${kind}.$$`;
const markJs = (kind: string) => `require('fs').writeFileSync('${MARKS}/${kind}.' + process.pid, 'uid=' + process.getuid() + ' exe=' + process.execPath + '\\n');`;

function cc(out: string, source: string, ...flags: string[]): void {
  writeFileSync(`${out}.c`, source);
  execFileSync('cc', ['-shared', '-fPIC', ...flags, '-o', out, `${out}.c`]);
}

/** The attack: every variable the issue names, each pointing at a payload in the user's home. */
function attackEnv(): Record<string, string> {
  return {
    [CANARY]: 'x',
    NODE_OPTIONS: `--require ${ATTACK}/x.cjs --import ${ATTACK}/y.mjs`,
    LD_PRELOAD: `${ATTACK}/preload.so`,
    LD_AUDIT: `${ATTACK}/audit.so`,
    LD_LIBRARY_PATH: `${ATTACK}/lib`,
    OPENSSL_CONF: `${ATTACK}/openssl.cnf`,
    BASH_ENV: `${ATTACK}/bash-env.sh`,
    ENV: `${ATTACK}/env.sh`,
    SHELLOPTS: 'xtrace',
    PS4: `$(${markSh('ps4')})`,
    NODE_V8_COVERAGE: `${ATTACK}/coverage`,
    NODE_REDIRECT_WARNINGS: `${ATTACK}/warnings.txt`,
    PATH: `${ATTACK}/bin:${LSF_PATH}`,
  };
}
// Loader variables reach the first program the scheduler starts: under LSF that is /bin/sh -c,
// which no hook can defend (docs/security.md, "What the scheduler must do"). Through the real
// LSF line the attack therefore leaves them out; the launcher run alone gets them.
const LOADER = ['LD_PRELOAD', 'LD_AUDIT', 'LD_LIBRARY_PATH'];
const withoutLoader = (env: Record<string, string>) => Object.fromEntries(Object.entries(env).filter(([k]) => !LOADER.includes(k)));

function plant(): void {
  rmSync(ATTACK, { recursive: true, force: true });
  for (const dir of [ATTACK, MARKS, `${ATTACK}/lib`, `${ATTACK}/bin`, `${ATTACK}/coverage`]) mkdirSync(dir, { recursive: true });
  cc(`${ATTACK}/preload.so`, `${markC('ld-preload')}\n__attribute__((constructor)) static void hit(void) { mark(); }\n`);
  cc(`${ATTACK}/audit.so`, `${markC('ld-audit')}\nunsigned int la_version(unsigned int v) { mark(); return v; }\n`);
  // Named like a library node needs, with the version it asks for, so the loader takes it.
  writeFileSync(`${ATTACK}/lib/v.map`, 'GLIBC_2.2.5 { global: jobbox_attack; local: *; };\n');
  cc(`${ATTACK}/lib/libdl.so.2`, `${markC('ld-library-path')}\nvoid jobbox_attack(void) {}\n__attribute__((constructor)) static void hit(void) { mark(); }\n`,
    `-Wl,--version-script=${ATTACK}/lib/v.map`, '-Wl,-soname,libdl.so.2');
  // OpenSSL loads a provider module named by the config node reads at start-up.
  cc(`${ATTACK}/provider.so`, `${markC('openssl-conf')}\n__attribute__((constructor)) static void hit(void) { mark(); }\nint OSSL_provider_init(void) { return 0; }\n`);
  writeFileSync(`${ATTACK}/openssl.cnf`, `nodejs_conf = init\nopenssl_conf = init\n[init]\nproviders = p\n[p]\nevil = e\n[e]\nmodule = ${ATTACK}/provider.so\nactivate = 1\n`);
  writeFileSync(`${ATTACK}/x.cjs`, markJs('node-require'));
  writeFileSync(`${ATTACK}/y.mjs`, `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n${markJs('node-import')}`);
  writeFileSync(`${ATTACK}/bash-env.sh`, `${markSh('bash-env')}\n`);
  writeFileSync(`${ATTACK}/env.sh`, `${markSh('env')}\n`);
  // Every command a hook might look up on PATH, each marking and then doing its real work.
  for (const cmd of ['node', 'readlink', 'dirname', 'getent', 'id', 'ssh', 'docker', 'flock', 'setpriv', 'env', 'sh', 'scontrol', 'scancel', 'squeue', 'bjobs', 'perl', 'ss']) {
    writeFileSync(`${ATTACK}/bin/${cmd}`, `#!/bin/sh\n${markSh(`path-${cmd}`)}\nexec /usr/bin/${cmd} "$@"\n`, { mode: 0o755 });
  }
  execFileSync('chown', ['-R', `${USER.uid}:${USER.gid}`, ATTACK]);
  chmodSync(MARKS, 0o777);
  chmodSync(`${ATTACK}/coverage`, 0o777);
  chownSync(ATTACK, USER.uid, USER.gid);
}

interface Mark { kind: string; uid: number; exe: string }
function marks(): Mark[] {
  return readdirSync(MARKS).map((name) => {
    const m = /^uid=(\d+) exe=(.*)$/.exec(readFileSync(join(MARKS, name), 'utf8').trim());
    return { kind: name.replace(/\.\d+$/, ''), uid: Number(m?.[1]), exe: m?.[2] ?? '' };
  });
}
function clearMarks(): void {
  for (const name of readdirSync(MARKS)) rmSync(join(MARKS, name));
  for (const name of readdirSync(`${ATTACK}/coverage`)) rmSync(join(`${ATTACK}/coverage`, name));
  rmSync(`${ATTACK}/warnings.txt`, { force: true });
}

/**
 * Watches every process on the machine (the nodes share its pid namespace) while `run` runs,
 * and returns the executables of root processes whose environment held the canary.
 */
async function rootProcessesWithCanary(run: () => Promise<unknown>): Promise<Set<string>> {
  const seen = new Set<string>();
  let done = false;
  const watch = (async () => {
    while (!done) {
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
        try {
          if (!readFileSync(`/proc/${pid}/status`, 'utf8').includes('\nUid:\t0\t')) continue;
          if (readFileSync(`/proc/${pid}/environ`).includes(`${CANARY}=`)) seen.add(readlinkSync(`/proc/${pid}/exe`));
        } catch {
          // gone meanwhile
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    await run();
  } finally {
    done = true;
    await watch;
  }
  return seen;
}

/** Runs argv as root on node1 with exactly `env` (env -i), cwd /tmp and stdin /dev/null, as a scheduler would. */
async function asRootWith(env: Record<string, string>, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const r = await testbed(['exec', 'node1', '--', 'env', '-i', '-C', '/tmp', ...vars, ...argv], { reject: false, stdin: 'ignore' });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

function rootOwnedInHome(): string[] {
  return execFileSync('find', [HOME, '-xdev', '-uid', '0'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

beforeAll(async () => {
  fx = await lsfFixture();
  plant();
});

afterAll(() => {
  rmSync(ATTACK, { recursive: true, force: true });
});

describe('every payload is live: a program of the user meets the variable and runs it', () => {
  // [variable(s), the user's program, the mark it leaves]
  it.each<[string, Record<string, string>, string[], string]>([
    ['NODE_OPTIONS --require', { NODE_OPTIONS: `--require ${ATTACK}/x.cjs` }, ['node', '-e', '0'], 'node-require'],
    ['NODE_OPTIONS --import', { NODE_OPTIONS: `--import ${ATTACK}/y.mjs` }, ['node', '-e', '0'], 'node-import'],
    ['LD_PRELOAD', { LD_PRELOAD: `${ATTACK}/preload.so` }, ['node', '-e', '0'], 'ld-preload'],
    ['LD_AUDIT', { LD_AUDIT: `${ATTACK}/audit.so` }, ['node', '-e', '0'], 'ld-audit'],
    ['LD_LIBRARY_PATH', { LD_LIBRARY_PATH: `${ATTACK}/lib` }, ['node', '-e', '0'], 'ld-library-path'],
    ['OPENSSL_CONF', { OPENSSL_CONF: `${ATTACK}/openssl.cnf` }, ['node', '-e', '0'], 'openssl-conf'],
    ['BASH_ENV', { BASH_ENV: `${ATTACK}/bash-env.sh` }, ['bash', '-c', 'true'], 'bash-env'],
    ['ENV', { ENV: `${ATTACK}/env.sh` }, ['sh', '-i', '-c', 'true'], 'env'],
    ['SHELLOPTS=xtrace with PS4', { SHELLOPTS: 'xtrace', PS4: attackEnv().PS4! }, ['bash', '-c', 'true'], 'ps4'],
    ['PATH', { PATH: `${ATTACK}/bin:${LSF_PATH}` }, ['sh', '-c', 'readlink -f /'], 'path-readlink'],
  ])('%s', async (_name, env, argv, kind) => {
    clearMarks();
    const vars = Object.entries({ PATH: LSF_PATH, HOME, ...env }).map(([k, v]) => `${k}=${v}`);
    await testbed(['exec', 'node1', '--', 'runuser', '-u', USER.name, '--', 'env', '-i', ...vars, ...argv], { reject: false, stdin: 'ignore' });
    expect(marks()).toContainEqual(expect.objectContaining({ kind, uid: USER.uid }));
  });

  it('NODE_V8_COVERAGE and NODE_REDIRECT_WARNINGS: node writes where they say', async () => {
    clearMarks();
    const vars = [`PATH=${LSF_PATH}`, `NODE_V8_COVERAGE=${ATTACK}/coverage`, `NODE_REDIRECT_WARNINGS=${ATTACK}/warnings.txt`];
    await testbed(['exec', 'node1', '--', 'runuser', '-u', USER.name, '--', 'env', '-i', ...vars, 'node', '-e', 'process.emitWarning("x")']);
    expect(readdirSync(`${ATTACK}/coverage`).length).toBeGreaterThan(0);
    expect(readFileSync(`${ATTACK}/warnings.txt`, 'utf8')).toContain('Warning: x');
  });

  it('the watcher sees a root process that holds the canary', async () => {
    const seen = await rootProcessesWithCanary(() => asRootWith({ [CANARY]: 'x', PATH: LSF_PATH }, ['sleep', '0.3']));
    expect([...seen]).toContain('/usr/bin/sleep');
  });
});

describe('no user-chosen environment reaches a root process of jobbox', () => {
  const LAUNCHER = `${INSTALL}/dist/jobbox-hook`;

  function expectClean(seen: Set<string>, allowed: string[]): void {
    // The launcher holds the variables only to save them as data; nothing it starts may.
    expect([...seen].filter((exe) => exe !== LAUNCHER && !allowed.includes(exe))).toEqual([]);
    expect(marks()).toEqual([]);
    expect(readdirSync(`${ATTACK}/coverage`)).toEqual([]);
    expect(rootOwnedInHome()).toEqual([]);
  }

  it('LSF pre-exec and post-exec through the real lsb.queues lines (/bin/sh -c), with the user\'s PATH too', async () => {
    clearMarks();
    const jobId = 70_000 + Math.floor(Math.random() * 9_000);
    const env = { ...lsfJobEnv({ user: USER.name, command: 'true', hosts: ALLOC }, jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' }), ...withoutLoader(attackEnv()) };
    delete (env as Record<string, string>).HOME;
    let pre = { code: -1, stdout: '', stderr: '' };
    let post = { code: -1, stdout: '', stderr: '' };
    const seen = await rootProcessesWithCanary(async () => {
      pre = await asRootWith(env, ['/bin/sh', '-c', fx.hooks.preExec]);
      post = await asRootWith(env, ['/bin/sh', '-c', fx.hooks.postExec]);
    });
    expect(pre).toMatchObject({ code: 0 });
    expect(post).toMatchObject({ code: 0 });
    // The job really ran its course: started on every node, then nothing left.
    expect(pre.stderr).toContain(`jobbox: job ${jobId}: started on 3 nodes`);
    expect(await containers(jobId)).toEqual([]);
    expect(await claims(fx.config, jobId)).toEqual([]);
    expect(await jobDirs(fx.config, jobId)).toEqual([]);
    // LSF's /bin/sh is the scheduler's program, started with the job's environment; it execs
    // the hook line in place.
    expectClean(seen, [realpathSync('/bin/sh')]);
  });

  it('through bsub -a docker-deb12, loader variables included: the esub blanks them, so LSF\'s own /bin/sh loads nothing', async () => {
    clearMarks();
    let run: Awaited<ReturnType<typeof submitLsf>> | undefined;
    const seen = await rootProcessesWithCanary(async () => {
      // Less OPENSSL_CONF, whose provider aborts the user's own node (the esub, the starter).
      const { OPENSSL_CONF: _ownNodeOnly, ...env } = attackEnv();
      run = await submitLsf(fx.hooks, spec({ user: USER.name, app: 'docker-deb12', command: 'true', env }));
    });
    expect(run?.preExec.map((p) => p.code)).toEqual([0]);
    expect(run?.postExec?.code).toBe(0);
    expect(run?.state).toBe('DONE');
    expect(run?.esub.envfile).toContain('LD_PRELOAD=\nLD_AUDIT=\nLD_LIBRARY_PATH=\n');
    // The user's own programs (the esub, the starter) run the payloads as the user: that is theirs.
    expect(marks().filter((m) => m.uid !== USER.uid)).toEqual([]);
    expect([...seen].filter((exe) => exe !== LAUNCHER && exe !== realpathSync('/bin/sh'))).toEqual([]);
    expect(rootOwnedInHome()).toEqual([]);
    expect(await containers(run!.jobId)).toEqual([]);
  });

  it('LSF pre-exec and post-exec with the loader variables as well, the launcher started directly', async () => {
    clearMarks();
    const jobId = 80_000 + Math.floor(Math.random() * 9_000);
    const env = { ...lsfJobEnv({ user: USER.name, command: 'true', hosts: ALLOC }, jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' }), ...attackEnv() };
    delete (env as Record<string, string>).HOME;
    const hook = (name: string) => [`${INSTALL}/hooks/lsf/${name}`, '--config', fx.configPath];
    let pre = { code: -1, stdout: '', stderr: '' };
    let post = { code: -1, stdout: '', stderr: '' };
    const seen = await rootProcessesWithCanary(async () => {
      pre = await asRootWith(env, hook('pre-exec'));
      post = await asRootWith(env, hook('post-exec'));
    });
    expect(pre).toMatchObject({ code: 0 });
    expect(post).toMatchObject({ code: 0 });
    expect(await containers(jobId)).toEqual([]);
    expectClean(seen, []);
  });

  it('Slurm Prolog and Epilog, started directly as slurmd does (slurmd builds their environment; checked anyway)', async () => {
    clearMarks();
    // A job slurmctld does not know: the Prolog reaches scontrol and gives up (it never fails).
    const slurm = {
      SLURM_CONF: process.env.SLURM_CONF ?? '', SLURM_JOB_ID: '999999', SLURM_JOB_USER: USER.name, SLURM_JOB_UID: String(USER.uid),
      SLURM_JOB_GID: String(USER.gid), SLURM_JOB_PARTITION: 'normal', SLURMD_NODENAME: 'node1', SLURM_NODELIST: 'node1',
      SLURM_JOB_CONSTRAINTS: 'docker-deb12', SLURM_JOB_RESTART_COUNT: '0',
    };
    const results: { code: number; stdout: string; stderr: string }[] = [];
    const seen = await rootProcessesWithCanary(async () => {
      for (const hook of ['prolog', 'epilog']) results.push(await asRootWith({ ...slurm, ...attackEnv() }, [`${INSTALL}/hooks/slurm/${hook}`]));
    });
    expect(results.map((r) => r.code)).toEqual([0, 0]);
    // It did run jobbox as far as asking Slurm about the job.
    expect(results[0]!.stderr).toMatch(/^jobbox: /m);
    expectClean(seen, []);
  });

  it('jobbox gc through hooks/gc (the systemd unit\'s line)', async () => {
    clearMarks();
    // Its own empty dirs, so gc asks the scheduler nothing: its clients (squeue, bjobs) get gc's
    // environment, which is the admin's or the unit's, never a job's (docs/security.md).
    // Under the testbed's dir, which every node sees (each node has a /run of its own).
    const dir = mkdtempSync('/var/lib/jobbox-testbed/sec-env-');
    try {
      const text = readFileSync(fx.configPath, 'utf8').replace(/^port_dir = .*$/m, `port_dir = ${dir}/ports`).replace(/^state_dir = .*$/m, `state_dir = ${dir}/jobs`);
      writeFileSync(`${dir}/jobbox.ini`, text, { mode: 0o644 });
      chmodSync(dir, 0o755);
      let r = { code: -1, stdout: '', stderr: '' };
      const seen = await rootProcessesWithCanary(async () => {
        r = await asRootWith(attackEnv(), [`${INSTALL}/hooks/gc`, '--config', `${dir}/jobbox.ini`, '--scheduler', 'slurm', '--dry-run']);
      });
      expect(r).toEqual({ code: 0, stdout: 'jobbox: gc: dry run: would reclaim 0, keep 0; nothing changed', stderr: '' });
      expectClean(seen, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // P4: another user who learns the port before the job's sshd binds it can take it first.
  it('the job\'s port is in no command line of the start, which every user of the node can read', async () => {
    const jobId = 85_000 + Math.floor(Math.random() * 4_000);
    const env = lsfJobEnv({ user: USER.name, command: 'true', hosts: ALLOC }, jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' });
    delete (env as Record<string, string>).HOME;
    const lines = new Set<string>();
    let done = false;
    const watch = (async () => {
      while (!done) {
        for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
          try {
            lines.add(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '));
          } catch {
            // gone meanwhile
          }
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    let pre = { code: -1, stdout: '', stderr: '' };
    try {
      pre = await asRootWith(env, ['/bin/sh', '-c', fx.hooks.preExec]);
    } finally {
      done = true;
      await watch;
    }
    try {
      expect(pre.code).toBe(0);
      const port = (await claims(fx.config, jobId))[0]!.split('.').pop()!;
      // The watcher did see the start: the bind test and docker run of this job.
      expect([...lines].some((l) => l.startsWith('perl -e sub taken'))).toBe(true);
      expect([...lines].some((l) => l.includes(`--name jobbox-${jobId} `))).toBe(true);
      expect([...lines].filter((l) => l.split(/[\s=:,]/).includes(port))).toEqual([]);
    } finally {
      expect((await asRootWith(env, ['/bin/sh', '-c', fx.hooks.postExec])).code).toBe(0);
    }
  });

  it('node started as root without the launcher is refused: a hook line must name the launcher', async () => {
    const r = await asRootWith({ PATH: LSF_PATH }, ['/usr/bin/node', `${INSTALL}/dist/cli.js`, 'lsf', 'pre-exec', '--config', fx.configPath]);
    expect(r).toEqual({ code: 99, stdout: '', stderr: `jobbox: lsf pre-exec: as root, runs only through the hook launcher (hooks/lsf/*, hooks/slurm/*): ${INSTALL}/dist/cli.js` });
  });
});
