// Plays LSF's documented part in a job's life (docs/contracts.md, LSF and openlava sections) on the
// real testbed, and nothing else: no scheduling, no dispatch decisions. See README.md here.
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { execa } from 'execa';
import { join } from 'node:path';
import { parseParmFile } from '../../../src/scheduler/lsf.js';
import { INSTALL, REPO, onNode, testbed, testbedStatus, type TestbedStatus } from '../../support/testbed.js';

export interface LsfQueueHooks {
  /** lsb.queues lines, e.g. `${repo}/hooks/lsf/pre-exec --config ${tb.config}`; jobStarter contains %USRCMD. */
  preExec: string;
  postExec: string;
  jobStarter: string;
}
export interface Slots {
  name: string;
  slots: number;
}
export interface LsfJobSpec {
  user: string;
  queue?: string;
  /** `bsub -a` value, e.g. 'docker-deb12'. */
  app?: string;
  /** %USRCMD text: the command as the user typed it after bsub. */
  command: string;
  /** `bsub < script`: the script's text; %USRCMD is then the path of its spooled copy, as openlava hands it over. */
  script?: string;
  /** The allocation; the first is the first execution host. */
  hosts: Slots[];
  /** Extra user environment at submit. */
  env?: Record<string, string>;
  jobId?: number;
  jobIndex?: number;
  /** Default 3. */
  maxRequeues?: number;
  /** Allocation for re-runs after a requeue; default the same. */
  requeueHosts?: Slots[];
  /** Plays bkill: signals the starter's process group once its stdout contains the text. */
  starterSignal?: { signal: 'SIGTERM' | 'SIGINT' | 'SIGKILL'; whenStdoutContains: string };
  skipStarter?: boolean;
  skipPostExec?: boolean;
  /** Called after the starter, before POST_EXEC: a look at the running job (the demo prints the nodes). */
  beforePostExec?: (jobId: number) => Promise<void>;
  /** 'lsf' (default): LSF 10, mesub runs esub.<app> for -a. 'openlava': only the master esub runs, and root hooks keep the user's gid and groups. */
  flavour?: 'lsf' | 'openlava';
  /**
   * Plays LSF_PROCESS_TRACKING=Y, LSF_LINUX_CGROUP_ACCT=Y and LSB_RESOURCE_ENFORCE="memory cpu"
   * (README.md): a job cgroup on the first host that the root hooks and the starter run in,
   * limited to `memoryBytes` and bound to `cpus` (then also in LSB_BIND_CPU_LIST).
   */
  cgroup?: { memoryBytes?: number; cpus?: string };
  /**
   * Plays `bsub -gpu`: the GPU ids mbatchd gave the job on each host, which the testbed's bjobs
   * stand-in answers the pre-exec with (GPU_ALLOC, bin/bjobs); 'down' plays mbatchd not answering.
   */
  gpus?: Record<string, number[]> | 'down';
  /** The config the esubs read (JOBBOX_CONFIG), as a site's /etc/jobbox/jobbox.ini; the testbed's by default. */
  config?: string;
  /** Plays the time the job pends, between its submit (the esubs) and its first PRE_EXEC. */
  whilePending?: () => Promise<void>;
  /**
   * Plays `bsub -Is`: the starter's stdin, stdout and stderr are a terminal (a tmux pane of
   * `cols`×`rows`), which `drive` types at and reads while the job runs. The starter's stdout is
   * then the screen at the end.
   */
  terminal?: { cols: number; rows: number; drive: (pane: Pane) => Promise<void> };
  /**
   * Plays what `bsub -XF` gives the job: the DISPLAY that LSF's SSH X11 forwarding
   * (LSB_SSH_XFORWARD_CMD) makes on the first execution host, e.g. `localhost:10.0`, in the
   * job starter's environment over any DISPLAY submitted with. IBM does not say whether the
   * queue's PRE_EXEC sees it: the harness gives it to the starter only, the stricter case. The
   * forwarding itself (a listener on that host's loopback, the cookie in ~/.Xauthority) is the
   * test's to set up: the harness plays no ssh.
   */
  x11Display?: string;
}

/** A tmux pane with the job's terminal in it. */
export interface Pane {
  /** tmux send-keys: text, or key names such as Enter, C-c, C-z. */
  keys(...keys: string[]): Promise<void>;
  /** The screen as it shows now, trailing blank lines dropped. */
  screen(): Promise<string>;
  /** Resizes the terminal, as a user resizing their window. */
  resize(cols: number, rows: number): Promise<void>;
  /** Waits until the screen matches. */
  waitFor(what: RegExp): Promise<string>;
}
export interface EsubResult {
  code: number;
  stderr: string;
  /** What the esubs wrote to LSB_SUB_MODIFY_ENVFILE ('' when nothing). */
  envfile: string;
  rejected: boolean;
}
export interface LsfJobRun {
  jobId: number;
  esub: EsubResult;
  preExec: { code: number; stderr: string; hosts: string[] }[];
  starter?: { code: number | null; signal?: string; stdout: string; stderr: string };
  postExec?: { code: number; stderr: string };
  state: 'DONE' | 'EXIT' | 'REJECTED';
  /** spec.cgroup: the job cgroup's path, and the hierarchies where LSF's rmdir of it failed at the end (something was left in it, or it was gone). */
  cgroup?: { path: string; notRemoved: string[] };
}
export interface Account {
  name: string;
  uid: number;
  gids: number[];
  home: string;
  shell: string;
}

const WRAPPER = `${REPO}/test/harness/lsf/job-starter.mjs`;
/** lsb.params DEFAULT_QUEUE, as the testbed config's default_queue. */
export const DEFAULT_QUEUE = 'normal';
export const SUBMIT_HOST = 'node1';
const ABORT = 97; // LSB_SUB_ABORT_VALUE
const PRE_ABORT = 99; // LSB_EXIT_PRE_ABORT
// Output exactly as the hook wrote it; exit codes are results, not failures.
const RAW = { reject: false, stdin: 'ignore', stripFinalNewline: false } as const;
const ROOT_PATH = '/bin:/usr/bin:/sbin:/usr/sbin';
const USER_PATH = '/usr/local/bin:/usr/bin:/bin';

let status: Promise<TestbedStatus> | undefined;
const tb = () => (status ??= testbedStatus());

/** Submit, then play one job's life: esub, PRE_EXEC (with requeues), JOB_STARTER, POST_EXEC. */
export async function submitLsf(hooks: LsfQueueHooks, spec: LsfJobSpec): Promise<LsfJobRun> {
  const account = await lookup(spec.user);
  const dir = await userDir(account);
  const jobId = spec.jobId ?? 10_000 + Math.floor(Math.random() * 80_000);
  try {
    const esub = await esubStage(spec, account, dir);
    const run: LsfJobRun = { jobId, esub, preExec: [], state: 'REJECTED' };
    if (esub.rejected) return run;
    await spec.whilePending?.();
    const envfileVars = Object.fromEntries(parseParmFile(esub.envfile));

    if (spec.gpus) {
      const alloc = spec.gpus === 'down' ? 'down' : Object.entries(spec.gpus).map(([h, ids]) => `${h}:${ids.join(',')}`).join(';');
      await writeFile(gpuFile(await tb(), jobId, spec.jobIndex), `${alloc}\n`, { mode: 0o644 });
    }
    let hosts = spec.hosts;
    let cgroup: JobCgroup | undefined;
    for (let attempt = 0; ; attempt += 1) {
      if (attempt > 0) hosts = spec.requeueHosts ?? spec.hosts;
      cgroup = spec.cgroup && (await jobCgroup(hosts[0]!.name, jobId, spec.jobIndex ?? 0, spec.cgroup));
      const r = await asRoot(hosts, hooks.preExec, rootEnv(lsfJobEnv(spec, jobId, hosts, envfileVars, account)), account, spec, cgroup);
      run.preExec.push({ ...r, hosts: hosts.map((h) => h.name) });
      if (r.code === 0) break;
      if (cgroup) run.cgroup = { path: cgroup.path, notRemoved: await cgroup.remove() };
      // 99 EXITs the job; anything else requeues it, here up to maxRequeues times. The job never
      // ran, so no POST_EXEC: a failed pre-exec must undo its own partial work.
      if (r.code === PRE_ABORT || attempt >= (spec.maxRequeues ?? 3)) return { ...run, state: 'EXIT' };
    }

    const env = lsfJobEnv(spec, jobId, hosts, envfileVars, account);
    let waitStatus = 0;
    if (!spec.skipStarter) {
      const starterEnv = spec.x11Display === undefined ? env : { ...env, DISPLAY: spec.x11Display };
      run.starter = await starter(hooks.jobStarter, spec, starterEnv, dir, account, cgroup);
      waitStatus = run.starter.signal ? (constants.signals[run.starter.signal as NodeJS.Signals] ?? 0) : (run.starter.code ?? 0) << 8;
    }
    await spec.beforePostExec?.(jobId);
    if (!spec.skipPostExec) {
      const postEnv: Record<string, string> = { ...rootEnv(env), LSB_JOBEXIT_STAT: String(waitStatus) };
      delete postEnv.LSB_JOBPEND;
      run.postExec = await asRoot(hosts, hooks.postExec, postEnv, account, spec, cgroup);
    }
    if (cgroup) run.cgroup = { path: cgroup.path, notRemoved: await cgroup.remove() };
    return { ...run, state: waitStatus === 0 ? 'DONE' : 'EXIT' };
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (spec.gpus) await rm(gpuFile(await tb(), jobId, spec.jobIndex), { force: true });
  }
}

/** The file the bjobs stand-in reads a job's GPU_ALLOC from (bin/bjobs). */
const gpuFile = (t: TestbedStatus, id: number, index?: number) => `${t.dir}/lsf-gpus/${index ? `${id}[${index}]` : id}`;

/** The submit stage alone: what bsub does with the esubs before the job exists. */
export async function runEsub(spec: LsfJobSpec): Promise<EsubResult> {
  const account = await lookup(spec.user);
  const dir = await userDir(account);
  try {
    return await esubStage(spec, account, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The job's environment as sbatchd builds it: the user's submit environment, the esub's additions, then LSF's own. */
export function lsfJobEnv(
  spec: LsfJobSpec,
  jobId: number,
  hosts: Slots[],
  envfileVars: Record<string, string>,
  account: Pick<Account, 'home' | 'shell'> = { home: `/home/${spec.user}`, shell: '/bin/bash' },
): Record<string, string> {
  return {
    ...loginEnv(spec, account),
    ...envfileVars,
    LSB_JOBID: String(jobId),
    ...(spec.jobIndex !== undefined && { LSB_JOBINDEX: String(spec.jobIndex) }),
    LSB_QUEUE: spec.queue ?? DEFAULT_QUEUE,
    LSB_JOBNAME: spec.command,
    LSB_HOSTS: hosts.flatMap((h) => Array<string>(h.slots).fill(h.name)).join(' '),
    // Another order than LSB_HOSTS, and openlava's trailing space.
    LSB_MCPU_HOSTS: [...hosts].reverse().map((h) => `${h.name} ${h.slots} `).join(''),
    LSB_JOB_EXECUSER: spec.user,
    LS_SUBCWD: account.home,
    LSB_SUB_HOST: SUBMIT_HOST,
    ...(spec.cgroup?.cpus !== undefined && { LSB_BIND_CPU_LIST: spec.cgroup.cpus }),
  };
}

function loginEnv(spec: LsfJobSpec, account: Pick<Account, 'home' | 'shell'>): Record<string, string> {
  return { HOME: account.home, USER: spec.user, LOGNAME: spec.user, SHELL: account.shell, PATH: USER_PATH, ...spec.env };
}

// Root hooks: the job's environment without HOME (openlava), LSF's PATH.
function rootEnv(env: Record<string, string>): Record<string, string> {
  const { HOME: _home, ...rest } = env;
  return { ...rest, PATH: ROOT_PATH };
}

async function esubStage(spec: LsfJobSpec, account: Account, dir: string): Promise<EsubResult> {
  const { config } = await tb();
  const openlava = spec.flavour === 'openlava';
  // LSF 10's mesub runs esub.<app> for `-a "app(args)"` too; the whole -a value is in LSB_SUB_ADDITIONAL.
  const name = openlava ? 'esub' : spec.app && `esub.${spec.app.replace(/\([^()]*\)$/, '')}`;
  if (!name) return { code: 0, stderr: '', envfile: '', rejected: false };
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`harness: bad bsub -a value: ${spec.app}`);

  const serverdir = await mkdtemp('/tmp/jobbox-lsf-serverdir-');
  try {
    await chmod(serverdir, 0o755);
    const install = [`${INSTALL}/dist/cli.js`, 'lsf', 'install-esubs', serverdir, '--config', spec.config ?? config, ...(openlava ? ['--master'] : [])];
    await onNode(SUBMIT_HOST, ['/usr/bin/node', ...install]);
    if (!(await stat(join(serverdir, name)).catch(() => undefined))) {
      return { code: 127, stderr: `harness: bsub -a ${spec.app}: no ${name} in LSF_SERVERDIR, so LSF rejects the job\n`, envfile: '', rejected: true };
    }
    const parm = join(dir, 'parm');
    const quoted = (v: string) => `"${v.replace(/["\\$`]/g, '\\$&')}"`;
    const lines = [
      ...(spec.queue !== undefined ? [`LSB_SUB_QUEUE=${quoted(spec.queue)}`] : []),
      ...(spec.app !== undefined ? [`LSB_SUB_ADDITIONAL=${quoted(spec.app)}`] : []),
      `LSB_SUB_COMMAND_LINE=${quoted(spec.command)}`,
    ];
    await writeFile(parm, `${lines.join('\n')}\n`);
    await chown(parm, account.uid, account.gids[0] ?? account.uid);
    const envfile = join(dir, 'envfile');
    const env = {
      // LSF passes esubs no arguments, so a site relies on /etc/jobbox/jobbox.ini; the testbed's config is elsewhere.
      JOBBOX_CONFIG: spec.config ?? config,
      ...loginEnv(spec, account),
      LSF_SERVERDIR: serverdir,
      LSB_SUB_PARM_FILE: parm,
      LSB_SUB_MODIFY_ENVFILE: envfile,
      LSB_SUB_MODIFY_FILE: join(dir, 'modify'),
      LSB_SUB_ABORT_VALUE: String(ABORT),
    };
    const r = await testbed(['exec', SUBMIT_HOST, '--', ...asUser(account, env), join(serverdir, name)], RAW);
    const code = r.exitCode ?? -1;
    // bsub rejects only on LSB_SUB_ABORT_VALUE.
    return { code, stderr: String(r.stderr), envfile: await readFile(envfile, 'utf8').catch(() => ''), rejected: code === ABORT };
  } finally {
    await rm(serverdir, { recursive: true, force: true });
  }
}

async function starter(line: string, spec: LsfJobSpec, env: Record<string, string>, dir: string, account: Account, cgroup?: JobCgroup): Promise<NonNullable<LsfJobRun['starter']>> {
  const host = spec.hosts[0]?.name ?? SUBMIT_HOST;
  const { jobFile, spooled } = await writeJobFile(line, spec, env, account);
  const pidFile = join(dir, 'starter.pid');
  const statusFile = join(dir, 'starter.status');
  const jobEnv = { ...env, LSB_JOBFILENAME: jobFile, LSB_CHKFILENAME: jobFile };
  if (spec.terminal) {
    try {
      return await onTerminal(spec.terminal, host, [`${REPO}/test/testbed/testbed.sh`, 'exec', host, '--', ...(cgroup?.enter ?? []), ...asUser(account, jobEnv), '/usr/bin/node', WRAPPER, pidFile, statusFile, jobFile], pidFile, statusFile);
    } finally {
      await Promise.all([rm(jobFile, { force: true }), spooled && rm(spooled, { force: true })]);
    }
  }
  const proc = testbed(['exec', host, '--', ...(cgroup?.enter ?? []), ...asUser(account, jobEnv), '/usr/bin/node', WRAPPER, pidFile, statusFile, jobFile], RAW);
  proc.finally(() => Promise.all([rm(jobFile, { force: true }), spooled && rm(spooled, { force: true })])).catch(() => undefined);
  const bkill = spec.starterSignal;
  if (bkill) {
    let seen = '';
    let sent = false;
    proc.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (sent || !seen.includes(bkill.whenStdoutContains)) return;
      sent = true;
      void pidOf(pidFile).then((pid) => testbed(['exec', host, '--', 'kill', '-s', bkill.signal.slice(3), '--', `-${pid}`], { reject: false }));
    });
  }
  const r = await proc;
  const ended = JSON.parse(await readFile(statusFile, 'utf8').catch(() => 'null')) as { code: number | null; signal: string | null } | null;
  return {
    code: ended ? ended.code : (r.exitCode ?? null),
    ...(ended?.signal && { signal: ended.signal }),
    stdout: String(r.stdout),
    stderr: String(r.stderr),
  };
}

// The starter on a terminal of its own: a detached tmux session runs it, `drive` plays the user
// at the keyboard, and the status file the wrapper writes says when and how it ended.
async function onTerminal(terminal: NonNullable<LsfJobSpec['terminal']>, host: string, argv: string[], pidFile: string, statusFile: string): Promise<NonNullable<LsfJobRun['starter']>> {
  const session = `jobbox-harness-${process.pid}-${Date.now()}`;
  const tmux = (args: string[]) => execa('tmux', args, { reject: false });
  const screen = async () => String((await tmux(['capture-pane', '-p', '-t', session])).stdout).replace(/\n+$/, '');
  const pane: Pane = {
    keys: async (...keys) => void (await tmux(['send-keys', '-t', session, ...keys])),
    screen,
    resize: async (cols, rows) => void (await tmux(['resize-window', '-t', session, '-x', String(cols), '-y', String(rows)])),
    waitFor: async (what) => {
      for (let i = 0; i < 300; i += 1) {
        const now = await screen();
        if (what.test(now)) return now;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`harness: the terminal never showed ${what}:\n${await screen()}`);
    },
  };
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  // The pane stays after the starter ends, so its last screen can be read.
  await execa('tmux', ['new-session', '-d', '-s', session, '-x', String(terminal.cols), '-y', String(terminal.rows), `bash ${quoted}; sleep 600`]);
  const ended = async () => JSON.parse(await readFile(statusFile, 'utf8').catch(() => 'null')) as { code: number | null; signal: string | null } | null;
  let failure = '';
  try {
    await terminal.drive(pane);
  } catch (err) {
    // The job must still end, and its POST_EXEC run: the test fails on what the result says.
    failure = `\n${String(err)}`;
  }
  try {
    for (let i = 0; i < 600; i += 1) {
      const end = await ended();
      if (end) return { code: end.code, ...(end.signal && { signal: end.signal }), stdout: await screen(), stderr: failure };
      // A drive that failed leaves the job running: bkill it, as LSF would.
      if (failure && i === 0) await pidOf(pidFile).then((pid) => testbed(['exec', host, '--', 'kill', '-s', 'KILL', '--', `-${pid}`], { reject: false })).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { code: null, stdout: await screen(), stderr: `${failure}\nharness: the starter on the terminal did not end` };
  } finally {
    await tmux(['kill-session', '-t', session]);
  }
}

// openlava's job file (lsbatch.h: SHELLLINE, TRAPSIGCMD, CMDSTART, WAITCLEANCMD, EXITCMD), as
// sbatchd writes it in the owner's ~/.lsbatch and runs it with /bin/sh: the JOB_STARTER line
// with the user's command pasted in verbatim in place of %USRCMD (appended after a space when
// the line has none), and read by sh again. `bsub < script` spools the script next to it.
async function writeJobFile(line: string, spec: LsfJobSpec, env: Record<string, string>, account: Account): Promise<{ jobFile: string; spooled: string | undefined }> {
  const dir = join(account.home, '.lsbatch');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chown(dir, account.uid, account.gids[0] ?? account.uid);
  const jobFile = join(dir, `${Math.floor(Date.now() / 1000)}.${env.LSB_JOBID}`);
  let command = spec.command;
  let spooled: string | undefined;
  if (spec.script !== undefined) {
    spooled = `${jobFile}.shell`;
    await writeFile(spooled, spec.script, { mode: 0o700 });
    await chown(spooled, account.uid, account.gids[0] ?? account.uid);
    command = spooled;
  }
  // A function, not the text: a command with $$ or $& must reach the job file as typed.
  const content = line.includes('%USRCMD') ? line.replaceAll('%USRCMD', () => command) : `${line} ${command}`;
  const text = `#! /bin/sh\n\n$LSB_TRAPSIGS\n$LSB_RCP1\n$LSB_RCP2\n$LSB_RCP3\n# LSBATCH: User input\n${content}\nExitStat=$?\nwait\n# LSBATCH: End user input\ntrue\nexit \`expr $? "|" $ExitStat\`\n`;
  await writeFile(jobFile, text, { mode: 0o700 });
  await chown(jobFile, account.uid, account.gids[0] ?? account.uid);
  return { jobFile, spooled };
}

// The wrapper writes the pid right after the fork; output can come first.
async function pidOf(file: string): Promise<number> {
  for (let i = 0; i < 100; i += 1) {
    const pid = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (pid > 0) return pid;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`harness: no starter pid in ${file}`);
}

// PRE_EXEC and POST_EXEC: root, first execution host, /bin/sh -c, cwd /tmp, stdin /dev/null.
// LSF sends their output to /dev/null; the harness keeps stderr for the tests to read.
async function asRoot(hosts: Slots[], line: string, env: Record<string, string>, account: Account, spec: LsfJobSpec, cgroup?: JobCgroup) {
  const host = hosts[0]?.name ?? SUBMIT_HOST;
  const identity = spec.flavour === 'openlava' ? ['setpriv', `--regid=${account.gids[0]}`, `--groups=${account.gids.join(',')}`, '--'] : [];
  const r = await testbed(['exec', host, '--', ...(cgroup?.enter ?? []), ...identity, 'env', '-i', '-C', '/tmp', ...pairs(env), '/bin/sh', '-c', line], RAW);
  return { code: r.exitCode ?? -1, stderr: String(r.stderr) };
}

// ---- LSF's job cgroup (spec.cgroup; README.md) ----

// The hierarchies LSF uses with process tracking, cgroup accounting and memory and cpu
// enforcement. cpuacct is cpu,cpuacct's link on this machine.
const LSF_HIERARCHIES = ['memory', 'cpuacct', 'freezer', 'cpuset'];

interface JobCgroup {
  /** `/lsf/testbed/job.<id>.<index>.<submit time>`, as IBM documents the name. */
  path: string;
  /** argv prefix that runs the rest inside it (moved in as root, before any identity change). */
  enter: string[];
  /** LSF's rmdir at the job's end: the hierarchies where it failed. */
  remove(): Promise<string[]>;
}

async function jobCgroup(host: string, jobId: number, index: number, limits: NonNullable<LsfJobSpec['cgroup']>): Promise<JobCgroup> {
  const path = `/lsf/testbed/job.${jobId}.${index}.${Math.floor(Date.now() / 1000)}`;
  const levels = path.split('/').filter(Boolean);
  // cpuset levels need cpus and mems before a task can join: the parent's, the job's its binding.
  const make = [
    'set -e', 'p=$1 cpus=$2 mem=$3; d=/sys/fs/cgroup/cpuset',
    `for l in ${levels.join(' ')}; do`,
    '  parent=$d d=$d/$l',
    '  [ -d "$d" ] || { mkdir "$d"; cat "$parent/cpuset.mems" > "$d/cpuset.mems"; cat "$parent/cpuset.cpus" > "$d/cpuset.cpus"; }',
    'done',
    '[ -z "$cpus" ] || echo "$cpus" > "$d/cpuset.cpus"',
    `for h in ${LSF_HIERARCHIES.filter((h) => h !== 'cpuset').join(' ')}; do mkdir -p "/sys/fs/cgroup/$h$p"; done`,
    '[ -z "$mem" ] || echo "$mem" > "/sys/fs/cgroup/memory$p/memory.limit_in_bytes"',
  ].join('\n');
  await onNode(host, ['sh', '-c', make, 'sh', path, limits.cpus ?? '', limits.memoryBytes === undefined ? '' : String(limits.memoryBytes)]);
  const join = `for h in ${LSF_HIERARCHIES.join(' ')}; do echo $$ > "/sys/fs/cgroup/$h$0/cgroup.procs" || exit 125; done; exec "$@"`;
  return {
    path,
    enter: ['sh', '-c', join, path],
    remove: async () => {
      const left: string[] = [];
      for (const h of LSF_HIERARCHIES) {
        // Gone already counts as failed too: something removed LSF's own dir.
        const r = await testbed(['exec', host, '--', 'rmdir', `/sys/fs/cgroup/${h}${path}`], { reject: false });
        if (r.exitCode !== 0) left.push(h);
      }
      return left;
    },
  };
}

function asUser(account: Account, env: Record<string, string>): string[] {
  return ['runuser', '-u', account.name, '--', 'env', '-i', '-C', account.home, ...pairs(env)];
}

function pairs(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`harness: bad environment name: ${k}`);
    return `${k}=${v}`;
  });
}

async function lookup(user: string): Promise<Account> {
  const [name = '', , uid = '', , , home = '', shell = ''] = (await onNode(SUBMIT_HOST, ['getent', 'passwd', '--', user])).split(':');
  const gids = (await onNode(SUBMIT_HOST, ['id', '-G', '--', user])).split(/\s+/).map(Number);
  return { name, uid: Number(uid), gids, home, shell };
}

// bsub's and sbatchd's files for the job: the user's, so the esub can write its modify files.
async function userDir(account: Account): Promise<string> {
  const dir = await mkdtemp('/tmp/jobbox-lsf-job-');
  await chown(dir, account.uid, account.gids[0] ?? account.uid);
  return dir;
}

// ---- bjobs, for `jobbox gc --scheduler lsf` (bin/bjobs; not LSF, see README.md) ----

/** Put this directory first on gc's PATH to give it the bjobs stand-in. */
export const BJOBS_BIN = `${REPO}/test/harness/lsf/bin`;

/**
 * Writes what the stand-in answers (its file is named by JOBBOX_BJOBS_STATE): the jobs LSF
 * still knows, with their status; any other job "is not found". 'down' plays mbatchd not answering.
 */
export async function writeBjobsState(file: string, jobs: { id: string | number; index?: number; stat: string }[] | 'down'): Promise<void> {
  const text = jobs === 'down' ? 'down\n' : jobs.map((j) => `${j.id} ${j.index ?? 0} ${j.stat}\n`).join('');
  await writeFile(file, text, { mode: 0o644 });
}
