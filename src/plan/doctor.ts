// `jobbox doctor`: what an admin checks on a node before it takes jobs. Pure: the fixed
// commands a node runs, their output parsed into facts, and facts judged into one row per
// check and node. commands/doctor.ts runs them.
import { type Dialect, type NodeLimits, parseLimits } from './engine.js';
import type { Config } from '../config/types.js';
import { noControls } from '../errors.js';
import { gresFiles } from '../scheduler/slurm.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  check: string;
  /** The node, or `-` for a check made once (the registry) or per image (on the first node). */
  node: string;
  status: CheckStatus;
  detail: string;
}

/** The engine's version, cgroup driver and version, in one call. */
export function engineInfoArgv(d: Dialect): string[] {
  return ['info', '--format', d.info];
}

export function judgeEngine(node: string, code: number, stdout: string, stderr: string): Check {
  const row = (status: CheckStatus, detail: string): Check => ({ check: 'engine', node, status, detail });
  if (code !== 0) return row('fail', `does not answer: ${stderr.trim().split('\n')[0] || `exit ${code}`}`);
  const [version = '', driver = '', cgroup = ''] = stdout.trim().split(/\s+/);
  // Podman says `v1`, docker `1`.
  const what = `server ${version}, ${driver} cgroup driver, cgroup v${cgroup.replace(/^v/, '')}`;
  // docs/cgroups.md: a container joins the job's cgroup by --cgroup-parent, a path, which the
  // systemd driver refuses (it takes only a slice).
  if (driver === 'systemd') return row('fail', `${what}: jobbox needs the cgroupfs driver (dockerd --exec-opt native.cgroupdriver=cgroupfs; Podman: cgroup_manager = "cgroupfs" in containers.conf)`);
  if (driver !== 'cgroupfs') return row('fail', `${what}: an unknown cgroup driver`);
  return row('ok', what);
}

/**
 * One shell script per node, every value a positional argument: the node's clock; for
 * port_dir and state_dir their owner, mode and whether the marker this host wrote in them is
 * there (the same directory, shared); the kernel's ephemeral and reserved ports; the character
 * devices in device_dir; with a queue that passes GPUs, the GPUs in gpu_dir and slurmd's GPU
 * records where slurmd is installed; the MaxStartups of the sshd that listens on the admin
 * port, read from the config file that very sshd was started with.
 */
const FACTS = `
port_dir=$1 state_dir=$2 marker=$3 device_dir=$4 ssh_port=$5 gpu_dir=$6
echo "clock $(date +%s%N)"
for d in "$port_dir" "$state_dir"; do
  if [ -d "$d" ] && [ ! -L "$d" ]; then
    if [ -e "$d/$marker" ]; then seen=shared; else seen=local; fi
    echo "dir $(stat -c '%u %a' -- "$d") $seen"
  else
    echo "dir missing"
  fi
done
echo "ephemeral $(cat /proc/sys/net/ipv4/ip_local_port_range)"
echo "reserved $(cat /proc/sys/net/ipv4/ip_local_reserved_ports)"
for f in "$device_dir"/*; do [ -c "$f" ] && [ ! -L "$f" ] && echo "device \${f##*/}"; done
if [ -n "$gpu_dir" ]; then
  for f in "$gpu_dir"/nvidia*; do [ -c "$f" ] && [ ! -L "$f" ] && echo "gpu \${f##*/}"; done
  if command -v slurmd >/dev/null; then
    timeout 10 slurmd -G 2>&1 | sed -n 's/.*Name=gpu .*Count=\\([0-9]*\\) Index=\\([0-9]*\\) .*File=\\([^ ]*\\).*/gres \\1 \\2 \\3/p'
  fi
fi
# The sshd on the admin port: a listener that is root's and runs sshd (a user may listen on the
# port on another address), and only a config file that is root's.
conf=/etc/ssh/sshd_config
for pid in $(ss -Hltnp "sport = :$ssh_port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2); do
  [ "$(stat -c %u "/proc/$pid" 2>/dev/null)" = 0 ] || continue
  case $(readlink "/proc/$pid/exe") in */sshd) ;; *) continue ;; esac
  # sshd rewrites its title ("sshd: /usr/sbin/sshd -D -f FILE [listener] …"): read -f from either form.
  c=$(tr '\\000' ' ' <"/proc/$pid/cmdline" | sed -n 's/.* -f \\([^ ]*\\).*/\\1/p')
  if [ -n "$c" ] && [ -f "$c" ] && [ ! -L "$c" ] && [ "$(stat -c %u -- "$c")" = 0 ]; then conf=$c; fi
  break
done
echo "sshd_config $conf"
# The session's hard nofile and nproc, and pid_max: what a Podman container may get (plan/engine.ts).
echo "limits $(awk '/^Max open files/ {v = $5} END {print v == "" ? "-" : v}' /proc/self/limits) $(awk '/^Max processes/ {v = $4} END {print v == "" ? "-" : v}' /proc/self/limits) $(cat /proc/sys/kernel/pid_max 2>/dev/null || echo -)"
echo "maxstartups $(timeout 10 sshd -T -f "$conf" 2>/dev/null | sed -n 's/^maxstartups //p')"
`;

export function factsArgv(config: Config, marker: string): string[] {
  const gpus = [...config.queues.values()].some((q) => q.gpus === 'allocated');
  return ['sh', '-c', FACTS, 'jobbox-doctor', config.portDir, config.stateDir, marker, config.deviceDir, String(config.sshPort), gpus ? config.gpuDir : ''];
}

export interface NodeFacts {
  clockNs: bigint | undefined;
  dirs: ({ uid: number; mode: number; shared: boolean } | undefined)[];
  ephemeral: [number, number] | undefined;
  /** `32768,33000-33099`: the kernel's list, as ranges. */
  reserved: [number, number][];
  devices: string[];
  /** nvidia… character devices in gpu_dir (asked only with a GPU queue). */
  gpus: string[];
  /** slurmd's GPU records (`slurmd -G`), where slurmd is installed. */
  gres: { count: number; index: number; file: string }[];
  sshdConfig: string;
  /** sshd -T's `maxstartups start:rate:full`; undefined when it could not be read. */
  maxStartups: number | undefined;
  limits: NodeLimits;
}

export function parseFacts(stdout: string): NodeFacts {
  const facts: NodeFacts = { clockNs: undefined, dirs: [], ephemeral: undefined, reserved: [], devices: [], gpus: [], gres: [], sshdConfig: '', maxStartups: undefined, limits: parseLimits(undefined) };
  for (const line of stdout.split('\n')) {
    const [key = '', ...rest] = line.trim().split(/\s+/);
    if (key === 'clock' && /^\d+$/.test(rest[0] ?? '')) facts.clockNs = BigInt(rest[0]!);
    else if (key === 'dir') {
      facts.dirs.push(rest[0] === 'missing' || rest.length !== 3 ? undefined : { uid: Number(rest[0]), mode: Number.parseInt(rest[1]!, 8), shared: rest[2] === 'shared' });
    } else if (key === 'ephemeral' && rest.length === 2) facts.ephemeral = [Number(rest[0]), Number(rest[1])];
    else if (key === 'reserved') {
      for (const part of (rest[0] ?? '').split(',').filter(Boolean)) {
        const [a, b = a] = part.split('-');
        facts.reserved.push([Number(a), Number(b)]);
      }
    } else if (key === 'device' && rest[0]) facts.devices.push(rest[0]);
    else if (key === 'gpu' && rest[0]) facts.gpus.push(rest[0]);
    else if (key === 'gres' && rest.length === 3 && /^\d+$/.test(rest[0]!) && /^\d+$/.test(rest[1]!)) facts.gres.push({ count: Number(rest[0]), index: Number(rest[1]), file: rest[2]! });
    else if (key === 'sshd_config') facts.sshdConfig = rest.join(' ');
    else if (key === 'maxstartups' && /^\d+/.test(rest[0] ?? '')) facts.maxStartups = Number.parseInt(rest[0]!, 10);
    else if (key === 'limits') facts.limits = parseLimits(rest.join(' '));
  }
  return facts;
}

/** Above this, mtimes on the shared dirs (gc's grace) and logs of one job disagree across nodes. */
export const CLOCK_SKEW_MS = 2000;
/** OpenSSH's own default start (10:30:100): a node that hosts many starting jobs gets that many logins at once. */
export const MAX_STARTUPS_MIN = 10;

/**
 * The node's rows from its facts. `midMs`: this host's clock halfway through the round trip that
 * read the node's, `rttMs` that round trip (the skew is known only within half of it).
 */
export function judgeFacts(config: Config, node: string, f: NodeFacts, midMs: number, rttMs: number): Check[] {
  const rows: Check[] = [];
  const row = (check: string, status: CheckStatus, detail: string) => rows.push({ check, node, status, detail });

  if (f.clockNs === undefined) row('clock', 'fail', 'the node printed no time');
  else {
    const skew = Number(f.clockNs / 1_000_000n) - midMs;
    const within = `${Math.round(Math.abs(skew))} ms ${skew >= 0 ? 'ahead' : 'behind'} (±${Math.ceil(rttMs / 2)} ms)`;
    row('clock', Math.abs(skew) - rttMs / 2 > CLOCK_SKEW_MS ? 'fail' : 'ok', Math.abs(skew) - rttMs / 2 > CLOCK_SKEW_MS ? `${within}: more than ${CLOCK_SKEW_MS / 1000} s off this host (run chrony or ntpd)` : within);
  }

  // port_dir must be root's alone (0700: a port file another user reached could be linked to hold
  // the port); state_dir root's and not writable by others. Both the same directory on every node.
  const wants = [
    { name: 'port_dir', path: config.portDir, mode: (m: number) => (m & 0o077) === 0, want: 'mode 0700' },
    { name: 'state_dir', path: config.stateDir, mode: (m: number) => (m & 0o022) === 0, want: 'not writable by group or others' },
  ];
  wants.forEach((w, i) => {
    const d = f.dirs[i];
    if (!d) row(w.name, 'fail', `${w.path}: missing, or not a directory`);
    else if (d.uid !== 0 || !w.mode(d.mode)) row(w.name, 'fail', `${w.path}: owner uid ${d.uid}, mode ${d.mode.toString(8).padStart(4, '0')}: must be root's, ${w.want}`);
    else if (!d.shared) row(w.name, 'fail', `${w.path}: not the directory this host sees (a marker written here is not there): it must be shared by every node`);
    else row(w.name, 'ok', `${w.path}: root's, mode ${d.mode.toString(8).padStart(4, '0')}, shared`);
  });

  const { first, last } = config.portRange;
  if (!f.ephemeral) row('ports', 'fail', 'cannot read net.ipv4.ip_local_port_range');
  else {
    const [lo, hi] = f.ephemeral;
    const reserved = (p: number) => f.reserved.some(([a, b]) => p >= a && p <= b);
    const exposed: number[] = [];
    for (let p = Math.max(first, lo); p <= Math.min(last, hi); p++) if (!reserved(p)) exposed.push(p);
    if (exposed.length > 0) {
      row('ports', 'fail', `port_range ${first}-${last} meets the ephemeral range ${lo}-${hi} on ${exposed.length} unreserved ports (${exposed[0]}…): an outgoing connection can hold a job's port; move port_range or add it to net.ipv4.ip_local_reserved_ports`);
    } else row('ports', 'ok', `port_range ${first}-${last} is clear of the ephemeral range ${lo}-${hi}${first <= hi && last >= lo ? ' (reserved)' : ''}`);
  }

  const wanted = [...config.queues.values()].filter((q) => q.devices.length > 0);
  if (wanted.length === 0) row('devices', 'ok', `no queue passes devices (${f.devices.length} under ${config.deviceDir})`);
  else if (f.devices.length === 0) row('devices', 'warn', `no character device under ${config.deviceDir}, though queue ${wanted.map((q) => q.name).join(', ')} passes ${wanted[0]!.devices.join(' ')}: jobs here get none`);
  else row('devices', 'ok', `${f.devices.join(' ')} under ${config.deviceDir}`);

  const gpus = judgeGpus(config, f);
  if (gpus) row('gpus', gpus.status, gpus.detail);

  if (f.maxStartups === undefined) row('sshd', 'warn', `cannot read MaxStartups (sshd -T -f ${f.sshdConfig || '?'})`);
  else if (f.maxStartups < MAX_STARTUPS_MIN) row('sshd', 'fail', `MaxStartups ${f.maxStartups} in ${f.sshdConfig}: below ${MAX_STARTUPS_MIN}, sshd drops logins when several jobs start or end here at once`);
  else row('sshd', 'ok', `MaxStartups ${f.maxStartups} (${f.sshdConfig})`);
  return rows;
}

/**
 * With a queue that passes GPUs: the node's GPUs, and what the Prolog will make of slurmd's GRES
 * indices there (plan/container.ts gresDevices): each must be a GPU in gpu_dir. undefined
 * without such a queue.
 */
function judgeGpus(config: Config, f: NodeFacts): { status: CheckStatus; detail: string } | undefined {
  const queues = [...config.queues.values()].filter((q) => q.gpus === 'allocated').map((q) => q.name);
  if (queues.length === 0) return undefined;
  const gpus = f.gpus.filter((d) => /^nvidia\d+$/.test(d));
  let files: [number, string][];
  try {
    files = [...gresFiles(f.gres)].sort(([a], [b]) => a - b);
  } catch (err) {
    return { status: 'fail', detail: `slurmd -G: ${err instanceof Error ? err.message : String(err)}` };
  }
  const name = (file: string) => (file.startsWith(`${config.gpuDir}/`) ? file.slice(config.gpuDir.length + 1) : file);
  const wrong = files.find(([, file]) => !gpus.includes(name(file)));
  if (wrong) return { status: 'fail', detail: `slurmd's GRES index ${wrong[0]} is ${wrong[1]}, not a GPU in ${config.gpuDir}: a job given it would not start (MIG slices are not passed; gpu_dir must hold gres.conf's files)` };
  if (gpus.length === 0) return { status: 'warn', detail: `no GPU (nvidia<N>) in ${config.gpuDir}, though queue ${queues.join(', ')} passes GPUs: jobs here get none` };
  const slurm = files.length > 0 ? `; slurmd's GRES indices ${files.map(([i, file]) => `${i}=${name(file)}`).join(' ')}` : '';
  return { status: 'ok', detail: `${gpus.join(' ')} in ${config.gpuDir}${slurm}` };
}

/**
 * The most memory a queue's container may lock, as plan/container.ts passes it: the queue's
 * memlock, or for `unlimited` its memory limit (per slot: one slot's, the least a job gets).
 * undefined when no queue has a bound to test.
 */
export function largestMemlock(config: Config): { bytes: number; queue: string } | undefined {
  let best: { bytes: number; queue: string } | undefined;
  for (const q of config.queues.values()) {
    const bytes = q.memlock !== 'unlimited' ? q.memlock : q.memory.kind === 'none' ? undefined : q.memory.bytes;
    if (bytes !== undefined && (!best || bytes > best.bytes)) best = { bytes, queue: q.name };
  }
  return best;
}

/**
 * A throwaway container with that memlock, boxed as the image check's: the engine must be able
 * to set what a queue passes, with the other limits a job's container gets there.
 */
export function memlockArgv(d: Dialect, limits: NodeLimits, ref: string, bytes: number, name: string): string[] {
  return [
    'run', '--rm', '--name', name, '--label', 'org.jobbox.check=memlock', '--pull', 'never', '--net', 'none', '--user', '65534:65534',
    '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--pids-limit', '64', '--ulimit', `memlock=${bytes}:${bytes}`, ...d.limits(limits),
    '--entrypoint', '/bin/sh', ref, '-c', 'ulimit -l',
  ];
}

export function judgeMemlock(node: string, want: { bytes: number; queue: string }, code: number, stdout: string, stderr: string): Check {
  const row = (status: CheckStatus, detail: string): Check => ({ check: 'memlock', node, status, detail });
  const asked = `memlock ${want.bytes / 1024} KiB (queue ${want.queue})`;
  if (code === 125 && /No such image|not found locally|image not known/i.test(stderr)) {
    return row('warn', `not checked: the node holds no copy of the first image (jobbox image prefetch)`);
  }
  const lines = stderr.trim().split('\n');
  if (code !== 0) return row('fail', `the engine cannot set ${asked}, which RDMA jobs get: ${lines.find((l) => /rlimit|denied|permitted/i.test(l)) ?? lines[0] ?? `exit ${code}`}`);
  return stdout.trim() === String(want.bytes / 1024) ? row('ok', `the engine sets ${asked}`) : row('fail', `asked for ${asked}, the container got ${stdout.trim() || 'nothing'}`);
}

/** Fails first, then by check and node: what to fix is on top. */
export function sortChecks(rows: Check[]): Check[] {
  const rank = { fail: 0, warn: 1, ok: 2 };
  return [...rows].sort((a, b) => rank[a.status] - rank[b.status] || a.check.localeCompare(b.check) || a.node.localeCompare(b.node));
}

export function checksTable(rows: Check[]): string {
  // A detail may quote what a node or an image said: no control character reaches the terminal.
  const cells = [['CHECK', 'NODE', 'STATUS', 'DETAIL'], ...rows.map((r) => [r.check, r.node, r.status, noControls(r.detail)])];
  const widths = [0, 1, 2].map((i) => Math.max(...cells.map((c) => c[i]!.length)));
  return cells.map((c) => c.map((v, i) => (i < 3 ? v.padEnd(widths[i]!) : v)).join('  ')).join('\n');
}
