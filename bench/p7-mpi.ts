// P7: MPI overhead. The ping-pong of bench/mpi (latency of 8 bytes, bandwidth of 4 MiB, one rank
// on node1 and one on node2, Open MPI over TCP on each node's eth0) runs in a real jobbox job
// and, as the baseline measured in the same run, on the nodes' own namespaces with the very same
// binaries (a chroot into the tree the image is imported from: bench/mpi/README.md). Target: the
// containers within 5 % of the host on latency and on bandwidth.
//
// The job is started once, through the queue's real LSF hook lines (PRE_EXEC as root on node1,
// the JOB_STARTER as the owner, POST_EXEC at the end, also on failure) with a config of its own:
// the testbed's plus the deb12-bench image. The two sides then alternate run by run.
//
// The job is bound as LSF binds one: LSB_BIND_CPU_LIST (P7_BIND, default core 0) puts the first
// host's container in that cpuset; LSF binds no other host, so node2's is not.
//
// P7_REPS=<n> (default 9, at least 5) sets the runs per side; P7_PIN=1 pins rank r to core r on
// both sides (taskset; see bench/mpi/README.md for what it did on an idle and on a busy machine).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { loadConfig } from '../src/config/load.js';
import { resolveImage } from '../src/config/image.js';
import { quote } from '../src/quote.js';
import { lsfJobEnv, type LsfJobSpec, type Slots } from '../test/harness/lsf/harness.js';
import { claims, hook } from '../test/support/lsf-fixture.js';
import { REPO, onNode, testbed, testbedStatus } from '../test/support/testbed.js';
import { interleave, type Row, type Stats, ratioRow, stats } from './lib.js';
import type { Bench } from './run.js';

const B = 'P7';
const LIMIT = 1.05;
const IMAGE = 'deb12-bench';
const QUEUE = 'normal';
const USER = 'jbuser1';
const HOSTS: Slots[] = [{ name: 'node1', slots: 1 }, { name: 'node2', slots: 1 }];
const CACHE = process.env.JOBBOX_TESTBED_CACHE ?? '/var/cache/jobbox-testbed';
const CHROOT = `${CACHE}/chroot/${IMAGE}`;
const IN_CHROOT = `${REPO}/bench/mpi/in-chroot.sh`;
const PINGPONG = '/usr/local/bin/jobbox-pingpong';
// One run takes a few seconds; a hung one is ended (timeout's TERM reaches mpirun) well before this.
const RUN_TIMEOUT_S = 180;
// A run whose lower rank got less CPU than this was starved (busy-polling ranks want 1).
const UNSTARVED = 0.85;

// The same transport and placement on both sides; bench/mpi/README.md says why each flag.
const MPI = [
  '-np', '2', '--host', 'node1:1,node2:1', '--bind-to', 'none',
  '--mca', 'pml', 'ob1', '--mca', 'btl', 'tcp,self',
  '--mca', 'btl_tcp_if_include', 'eth0', '--mca', 'oob_tcp_if_include', 'eth0',
];
const PIN = process.env.P7_PIN === '1';
const BIND = process.env.P7_BIND ?? '0';
const PROGRAM = PIN ? ['sh', '-c', `exec taskset -c $OMPI_COMM_WORLD_RANK ${PINGPONG}`] : [PINGPONG];
// The job's command, as the user would type it after bsub (LSF's %USRCMD).
const JOB_COMMAND = quote(['mpirun', ...MPI, ...PROGRAM]);

interface PingPong {
  latencyUs: number;
  bandwidthMBps: number;
  /** The lower rank's CPU time over wall time: below ~0.9 the busy-polling ranks were starved. */
  cpuShare: number;
  nivcsw: number;
}

interface CpuStat {
  quota: string;
  /** The container's cpuset (v1). */
  cpus: string;
  /** The cpu cgroup's parent and its weight (v1 cpu.shares, v2 cpu.weight). */
  parent: string;
  periods: number;
  throttled: number;
  throttledMs: number;
}

interface ContainerRun extends PingPong {
  /** cpu.stat deltas of the run, per node: [node1, node2]. */
  throttled: [number, number];
  throttledMs: [number, number];
  periods: [number, number];
}

function parse(side: string, stdout: string, stderr: string): PingPong {
  const m = /latency_us=([0-9.]+) bandwidth_MBps=([0-9.]+) cpu_share=([0-9.]+) nivcsw=([0-9]+)/.exec(stdout);
  if (!m) throw new Error(`bench: P7 ${side}: no "latency_us=… bandwidth_MBps=… cpu_share=… nivcsw=…" line; stdout: ${stdout.slice(-500)}; stderr: ${stderr.slice(-1500)}`);
  return { latencyUs: Number(m[1]), bandwidthMBps: Number(m[2]), cpuShare: Number(m[3]), nivcsw: Number(m[4]) };
}

/** The testbed's config with the bench image allowed in queue normal and defined. */
function benchConfig(base: string, ref: string): string {
  if (/^\[image deb12-bench\]/m.test(base)) throw new Error(`bench: P7: the testbed config already defines [image ${IMAGE}]`);
  let section = '';
  let added = false;
  const lines = base.split('\n').map((line) => {
    const head = /^\s*\[([^\]]+)\]/.exec(line);
    if (head) section = head[1]!.trim();
    if (section === `queue ${QUEUE}` && /^\s*allowed_images\s*=/.test(line)) {
      added = true;
      return `${line.trimEnd()} ${IMAGE}`;
    }
    return line;
  });
  if (!added) throw new Error(`bench: P7: no allowed_images in [queue ${QUEUE}] of the testbed config`);
  return `${lines.join('\n').trimEnd()}\n\n# Added by bench/p7-mpi.ts for benchmark P7.\n[image ${IMAGE}]\nref = ${ref}\n`;
}

/** The cpu cgroup of the job's container on a node: its quota and cpu.stat (cgroup v1 or v2). */
async function cpuStat(node: string, jobId: number): Promise<CpuStat> {
  const script = [
    'set -e',
    `id=$(docker ps -q --filter "label=org.jobbox.job=$1")`,
    '[ -n "$id" ] || { echo "no container of job $1" >&2; exit 1; }',
    `pid=$(docker inspect -f '{{.State.Pid}}' "$id")`,
    `cg=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ { print $3; exit }' /proc/$pid/cgroup)`,
    'if [ -n "$cg" ]; then',
    '  for m in /sys/fs/cgroup/cpu /sys/fs/cgroup/cpu,cpuacct; do [ -d "$m$cg" ] && d=$m$cg && break; done',
    '  echo "quota $(cat "$d/cpu.cfs_quota_us") $(cat "$d/cpu.cfs_period_us")"',
    '  echo "parent $(dirname "$cg") cpu.shares=$(cat "$(dirname "$d")/cpu.shares")"',
    'else',
    `  d=/sys/fs/cgroup$(awk -F: '$1 == 0 { print $3; exit }' /proc/$pid/cgroup)`,
    '  echo "quota $(cat "$d/cpu.max")"',
    '  echo "parent $(dirname "$d" | sed "s|^/sys/fs/cgroup||") cpu.weight=$(cat "$(dirname "$d")/cpu.weight" 2>/dev/null || echo root)"',
    'fi',
    'cat "$d/cpu.stat"',
    `cs=$(awk -F: '$2 ~ /(^|,)cpuset(,|$)/ { print $3; exit }' /proc/$pid/cgroup)`,
    '[ -z "$cs" ] || echo "cpuset $(cat "/sys/fs/cgroup/cpuset$cs/cpuset.cpus")"',
  ].join('\n');
  const out = await onNode(node, ['sh', '-c', script, 'sh', String(jobId)]);
  const field = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, 'm').exec(out)?.[1] ?? NaN);
  const [quota = '?', period = '?'] = (/^quota (\S+) (\S+)$/m.exec(out) ?? []).slice(1);
  const ns = field('throttled_time');
  return {
    quota: quota === 'max' || quota === '-1' ? 'none' : `${quota}/${period} µs`,
    cpus: /^cpuset (\S+)$/m.exec(out)?.[1] ?? '?',
    parent: /^parent (.+)$/m.exec(out)?.[1] ?? '?',
    periods: field('nr_periods'),
    throttled: field('nr_throttled'),
    throttledMs: Number.isNaN(ns) ? field('throttled_usec') / 1000 : ns / 1e6,
  };
}

/** The bench's cpu cgroup, which the baseline's ranks inherit through testbed.sh exec. */
function ownCgroup(): string {
  try {
    const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
    return (lines.find((l) => /^\d+:([^:]*,)?cpu(,[^:]*)?:/.test(l)) ?? lines.find((l) => l.startsWith('0::')) ?? '?').replace(/^[^:]*:[^:]*:/, '');
  } catch {
    return '?';
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const f1 = (x: number) => x.toFixed(1);

async function run(): Promise<Row[]> {
  const reps = Math.max(5, Number.parseInt(process.env.P7_REPS ?? '9', 10) || 9);
  const load0 = loadavg()[0]!;
  const status = await testbedStatus();
  if (!status.up || !['node1', 'node2'].every((n) => status.nodes.some((x) => x.name === n && x.sshd && x.dockerd))) {
    throw new Error('bench: P7: needs the testbed up with node1 and node2');
  }

  // The image (cached: only a changed pingpong.c builds and pushes again); its ref is the last stdout line.
  const built = await testbed(['bench-image'], { stderr: 'inherit' });
  const ref = String(built.stdout).trim().split('\n').pop() ?? '';
  if (!/^[^\s]+\/deb12-bench:[A-Za-z0-9._-]+$/.test(ref)) throw new Error(`bench: P7: testbed.sh bench-image printed no image ref: ${String(built.stdout)}`);
  const tag = ref.slice(ref.lastIndexOf(':') + 1);
  const chrootTag = (await readFile(`${CHROOT}/.jobbox-pingpong`, 'utf8')).trim();
  if (chrootTag !== tag) throw new Error(`bench: P7: the chroot ${CHROOT} holds ${chrootTag}, the image is ${tag}`);
  const binaryHash = createHash('sha256').update(await readFile(`${CHROOT}${PINGPONG}`)).digest('hex');

  // The bench's own config, root-owned and 0644 like the testbed's (jobbox refuses anything else).
  const configPath = `${status.dir}/shared/bench-p7.ini`;
  const text = benchConfig(await readFile(status.config, 'utf8'), ref);
  try {
    await writeFile(configPath, text, { mode: 0o644 });
    await chmod(configPath, 0o644);
    return await measure(configPath, ref, binaryHash, status.dir, reps, load0);
  } finally {
    await rm(configPath, { force: true });
  }
}

async function measure(configPath: string, ref: string, binaryHash: string, tbDir: string, reps: number, load0: number): Promise<Row[]> {
  const config = await loadConfig(configPath);
  resolveImage(config, QUEUE, IMAGE);
  const hooks = {
    preExec: `${REPO}/hooks/lsf/pre-exec --config ${configPath}`,
    postExec: `${REPO}/hooks/lsf/post-exec --config ${configPath}`,
    jobStarter: `${REPO}/hooks/lsf/starter --config ${configPath} "%USRCMD"`,
  };

  const jobId = 90_000 + Math.floor(Math.random() * 9_000);
  const spec: LsfJobSpec = { user: USER, queue: QUEUE, command: JOB_COMMAND, hosts: HOSTS };
  // What the esub would have added for `bsub -a docker-deb12-bench`; pre-exec re-checks it against the config.
  const env: Record<string, string> = { ...lsfJobEnv(spec, jobId, HOSTS, { JOBBOX_IMAGE: IMAGE }), ...(BIND ? { LSB_BIND_CPU_LIST: BIND } : {}) };
  const home = env.HOME ?? `/home/${USER}`;
  // JOB_STARTER as sbatchd runs it: the owner, the job's environment, /bin/sh -c on the first
  // host, %USRCMD substituted as it stands. The line has it in double quotes, so the command is
  // escaped for them, as a user would write `$` for LSF (only P7_PIN's command has any).
  const starter = (command: string) =>
    testbed(['exec', 'node1', '--', 'timeout', '-k', '10', String(RUN_TIMEOUT_S), 'runuser', '-u', USER, '--', 'env', '-i', '-C', home,
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`), '/bin/sh', '-c', hooks.jobStarter.replaceAll('%USRCMD', command.replace(/[$`"\\]/g, '\\$&'))], { reject: false });
  const inContainer = async (): Promise<PingPong> => {
    const r = await starter(JOB_COMMAND);
    if (r.exitCode !== 0) throw new Error(`bench: P7 container run: exit ${r.exitCode}: ${String(r.stderr).slice(-1500)}`);
    return parse('container', String(r.stdout), String(r.stderr));
  };
  // The baseline: bench/mpi/README.md's recipe, root on node1, orted on node2 in the same chroot.
  const onHost = async (): Promise<PingPong> => {
    const r = await testbed(['exec', 'node1', '--', 'timeout', '-k', '10', String(RUN_TIMEOUT_S),
      IN_CHROOT, '--ssh', `${tbDir}/etc/ssh`, CHROOT,
      'mpirun', '--allow-run-as-root', ...MPI, '--launch-agent', `${IN_CHROOT} ${CHROOT} orted`, ...PROGRAM], { reject: false });
    if (r.exitCode !== 0) throw new Error(`bench: P7 host run: exit ${r.exitCode}: ${String(r.stderr).slice(-1500)}`);
    return parse('host', String(r.stdout), String(r.stderr));
  };

  const container: ContainerRun[] = [];
  const host: PingPong[] = [];
  let launch: Record<string, Stats> = {};
  let quota = '?';
  let parent = '?';
  let cpusets = '?';
  let leftovers = '';
  try {
    const pre = await hook(hooks.preExec, env);
    if (pre.code !== 0) throw new Error(`bench: P7: PRE_EXEC exit ${pre.code}: ${pre.stderr.trim()}`);

    // Untimed warm-up of each side; it also proves the container runs the chroot's binary.
    const check = await starter(`sha256sum ${PINGPONG}`);
    if (!String(check.stdout).startsWith(binaryHash)) throw new Error(`bench: P7: the image's ${PINGPONG} is not the chroot's: ${String(check.stdout)} ${String(check.stderr)}`);
    await inContainer();
    await onHost();

    const snap = async () => Promise.all(HOSTS.map((h) => cpuStat(h.name, jobId)));
    let before: CpuStat[] = [];
    let last: PingPong | undefined;
    // The container's cpu.stat is read around each container run, outside the timed calls: before
    // it, and before the host run that follows it.
    const settle = async () => {
      if (!last) return;
      const after = await snap();
      const d = (k: 'throttled' | 'throttledMs' | 'periods') => [after[0]![k] - before[0]![k], after[1]![k] - before[1]![k]] as [number, number];
      container.push({ ...last, throttled: d('throttled'), throttledMs: d('throttledMs'), periods: d('periods') });
      last = undefined;
    };
    launch = await interleave(reps, {
      container: {
        before: async () => {
          before = await snap();
          quota = [...new Set(before.map((s) => s.quota))].join(', ');
          parent = [...new Set(before.map((s) => s.parent))].join(', ');
          cpusets = before.map((s) => s.cpus).join('/');
        },
        run: async () => (last = await inContainer()),
      },
      host: { before: settle, run: async () => host.push(await onHost()) },
    });
    await settle();
  } finally {
    const post = await hook(hooks.postExec, { ...env, LSB_JOBEXIT_STAT: '0' });
    // What the job must not leave: containers on its nodes, its port claim, its job directory.
    const ps = await Promise.all(HOSTS.map((h) =>
      onNode(h.name, ['docker', 'ps', '-a', '-q', '--filter', `label=org.jobbox.job=${jobId}`]).then(
        (ids) => (ids ? `${h.name}: container ${ids.replace(/\n/g, ' ')}` : ''),
        (e: Error) => `${h.name}: docker ps failed: ${e.message}`,
      )));
    const [ports, jobs] = await Promise.all([claims(config, jobId), readdir(config.stateDir)]);
    const left = [
      ...ps.filter(Boolean),
      ...ports,
      ...jobs.filter((f) => f.startsWith(`${jobId}.`)),
    ];
    if (post.code !== 0) left.unshift(`POST_EXEC exit ${post.code}: ${post.stderr.trim()}`);
    leftovers = left.join('; ');
    if (leftovers) console.error(`bench: P7: job ${jobId} left: ${leftovers}`);
  }

  const cLat = stats(container.map((r) => r.latencyUs));
  const hLat = stats(host.map((r) => r.latencyUs));
  const cBw = stats(container.map((r) => r.bandwidthMBps));
  const hBw = stats(host.map((r) => r.bandwidthMBps));

  const throttledRuns = container.filter((r) => r.throttled[0] + r.throttled[1] > 0);
  const one = (r: PingPong, i: number) => `#${i + 1} ${r.latencyUs.toFixed(2)} µs ${r.bandwidthMBps.toFixed(0)} MB/s cpu ${r.cpuShare.toFixed(2)}`;
  const perRun = container.map((r, i) => `${one(r, i)} thr ${r.throttled[0]}/${r.throttled[1]}`).join(', ');
  const hostRuns = host.map(one).join(', ');
  const share = (xs: PingPong[]) => stats(xs.map((r) => r.cpuShare)).median.toFixed(2);
  const csw = (xs: PingPong[]) => stats(xs.map((r) => r.nivcsw)).median.toFixed(0);
  // The figures an idle machine would give, from the runs that got their CPU: a hint, not the result.
  const fed = (xs: PingPong[]) => xs.filter((r) => r.cpuShare >= UNSTARVED);
  const [cFed, hFed] = [fed(container), fed(host)];
  const unstarved =
    `runs not starved (cpu ≥ ${UNSTARVED}): ${cFed.length}/${container.length} in containers, ${hFed.length}/${host.length} on the host` +
    (cFed.length >= 3 && hFed.length >= 3
      ? `; their medians ${stats(cFed.map((r) => r.latencyUs)).median.toFixed(2)} vs ${stats(hFed.map((r) => r.latencyUs)).median.toFixed(2)} µs, ` +
        `${stats(cFed.map((r) => r.bandwidthMBps)).median.toFixed(0)} vs ${stats(hFed.map((r) => r.bandwidthMBps)).median.toFixed(0)} MB/s`
      : '');
  const throttling =
    `cpu cgroup of the containers (node1/node2) over the ${container.length} timed runs: quota ${quota}, parent ${parent}, cpusets ${cpusets} ` +
    `(the baseline's ranks run in the bench's own cpu cgroup ${ownCgroup()}); ` +
    `nr_throttled +${sum(container.map((r) => r.throttled[0]))}/+${sum(container.map((r) => r.throttled[1]))} ` +
    `of nr_periods +${sum(container.map((r) => r.periods[0]))}/+${sum(container.map((r) => r.periods[1]))}, ` +
    `throttled_time ${f1(sum(container.map((r) => r.throttledMs[0])))}/${f1(sum(container.map((r) => r.throttledMs[1])))} ms; ` +
    `runs with any throttling: ${throttledRuns.length}/${container.length}` +
    (throttledRuns.length && throttledRuns.length < container.length
      ? ` (median latency throttled ${f1(stats(throttledRuns.map((r) => r.latencyUs)).median)} µs vs not ${f1(stats(container.filter((r) => !throttledRuns.includes(r)).map((r) => r.latencyUs)).median)} µs)`
      : '');
  const [l1, l5] = loadavg();
  const common =
    `one job (id ${jobId}) started once through the LSF hook lines (PRE_EXEC, JOB_STARTER as ${USER}, POST_EXEC) with image ${ref}, ` +
    `${reps} runs per side interleaved after one untimed warm-up each; each sample is the ping-pong's own median of 9 blocks. ` +
    `Known difference: queue ${QUEUE} has cpus = slots, so each container has a CFS quota of 1 CPU (1 slot) shared by the rank, orted and the job's sshd; the baseline has none. ` +
    `${throttling}. CPU the ranks got (cpu = the lower rank's CPU time over wall time; busy-polling ranks want 1): median ${share(container)} in containers, ${share(host)} on the host; ` +
    `involuntary context switches per run (both ranks) median ${csw(container)} vs ${csw(host)}; ${unstarved}. ${PIN ? 'Ranks pinned (taskset -c rank). ' : ''}Load average ${f1(load0)} at the start, ${f1(l1!)} at the end (5 min ${f1(l5!)}) on ${cpus().length} CPUs, shared with anything else running` +
    (leftovers ? `. LEFT BEHIND: ${leftovers}` : '');
  const hostCase = 'host namespaces (chroot)';
  const lat = ratioRow(B, 'latency 8 B, jobbox containers', cLat, hostCase, hLat, undefined, 'µs');
  const bwRow = ratioRow(B, 'bandwidth 4 MiB, jobbox containers', cBw, hostCase, hBw, undefined, 'MB/s');
  const launchRow = ratioRow(B, 'wall time of one run, jobbox lsf starter', launch.container!, 'chroot on node1', launch.host!);
  return [
    {
      ...lat, target: `container/host ≤ ${LIMIT}×`, met: lat.ratio! <= LIMIT && !leftovers,
      note: `${common}. Container runs: ${perRun}. Host runs: ${hostRuns}`,
    },
    {
      ...bwRow, target: `container/host ≥ ${(2 - LIMIT).toFixed(2)}×`, met: bwRow.ratio! >= 2 - LIMIT && !leftovers,
      note: `ratio = container MB/s over host MB/s: ≥ ${(2 - LIMIT).toFixed(2)}× is at most 5 % less bandwidth in the containers`,
    },
    {
      ...launchRow,
      note: `informational, no target: from launch to exit of one ping-pong (~1 s of it the program); container = runuser + JOB_STARTER (jobbox lsf starter, ssh into the first container, mpirun, orted over the job's sshd); host = nsenter + in-chroot.sh + mpirun, orted over the node's sshd`,
    },
  ];
}

const bench: Bench = { id: 'P7', title: 'MPI overhead', testbed: true, run };
export default bench;
