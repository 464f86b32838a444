// Every command a setup or a teardown sends to a node besides `docker run` itself (that is
// container.ts), as argv: the ssh executor quotes them with the one quoting function, and
// --dry-run prints them. Engine commands leave out the engine, as runArgv does; the caller
// puts config.engine first.
import { PULL_LOCK, PULL_LOCK_DIR } from '../config/defaults.js';
import { DIGEST, runRef } from '../config/ref.js';
import type { Config, Image, Queue } from '../config/types.js';
import type { Attempt, Job } from '../job/job.js';
import { slurmExternTask } from '../scheduler/slurm.js';
import { dialect, parseLimits, type Dialect } from './engine.js';
import { cgroupClear, containerName, imageAccountsArgv, nameArgv, psArgv, removeArgv, runningArgv, type CgroupClear, type NodeFacts } from './container.js';

/** install -d also closes a directory left more open (by hand, or by an older jobbox). */
export function lockDirArgv(): string[] {
  return ['install', '-d', '-m', '0700', PULL_LOCK_DIR];
}

/**
 * Pulls are serialized per node (flock), waiting at most pull_timeout for the lock, and taking
 * at most pull_timeout themselves. Not
 * --quiet: a pull prints the digest of the manifest it got (`Digest: sha256:…`).
 */
export function pullArgv(config: Config, ref: string): string[] {
  // The pull itself is bounded too: an image that never finishes (a user's, a stalled registry)
  // must not hold the node's one pull lock from everyone else's starts.
  const seconds = String(config.pullTimeoutMs / 1000);
  return ['flock', '-w', seconds, PULL_LOCK, 'timeout', '-k', '5', seconds, config.engine, 'pull', ref];
}

/** `Digest: sha256:…` in a pull's output → the digest (docker's pull of a tag prints it once). */
export function pulledDigest(stdout: string): string | undefined {
  const digests = [...stdout.matchAll(/^Digest: (\S+)$/gm)].map((m) => m[1]!);
  return digests.length === 1 && DIGEST.test(digests[0]!) ? digests[0] : undefined;
}

/** Whether a node holds the job's digest (exit 0, and its image id). */
export function imageIdArgv(image: Image): string[] {
  return ['image', 'inspect', '--format', '{{.Id}}', runRef(image)];
}

/**
 * The registry digests a node's copy of a ref was pulled by, and the engine's own pick where it
 * has one (Dialect.repoDigests): the job's digest when the registry cannot be asked, or when
 * the pull printed none.
 */
export function repoDigestsArgv(d: Dialect, ref: string): string[] {
  return ['image', 'inspect', '--format', d.repoDigests, ref];
}

/** Every image a node holds, one a line: repository, tag, digest and id (`jobbox image list`). */
export function imagesArgv(): string[] {
  return ['images', '--digests', '--no-trunc', '--format', '{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}'];
}

/** imagesArgv's answer → the images that carry a registry digest. */
export function parseImages(stdout: string): { repository: string; tag: string; digest: string; id: string }[] {
  return stdout.split('\n').flatMap((line) => {
    const [repository = '', tag = '', digest = '', id = '', ...rest] = line.trim().split(/\s+/);
    return rest.length === 0 && DIGEST.test(digest) ? [{ repository, tag, digest, id }] : [];
  });
}

/**
 * repoDigestsArgv's answer → the digest of `repo` the copy carries. Of several digests of the
 * repository, the one the engine names as the copy's own (Podman records a multi-platform tag's
 * list and its platform's manifest both, and names the list, which the tag's pull resolved);
 * without that, several (the same layers pushed twice) are ambiguous: none.
 */
export function localDigest(stdout: string, repo: string): string | undefined {
  const m = /^(\[.*\]|null)(?: (\S+))?\s*$/s.exec(stdout.trim());
  if (!m) return undefined;
  let list: unknown;
  try {
    list = JSON.parse(m[1]!);
  } catch {
    return undefined;
  }
  if (!Array.isArray(list)) return undefined;
  const digests = list.filter((d): d is string => typeof d === 'string' && d.startsWith(`${repo}@`)).map((d) => d.slice(repo.length + 1));
  const one = digests.length === 1 ? digests[0] : m[2] !== undefined && digests.includes(m[2]) ? m[2] : undefined;
  return one !== undefined && DIGEST.test(one) ? one : undefined;
}

/**
 * One process per node before its container starts (each is an exec channel, a shell and a
 * process on a node whose cores the job's start competes for). Prints `taken` or `free` for the
 * port given on its stdin (never in argv, which any user of the node can read in /proc, and so
 * bind the port before the job's sshd does); then the type of the filesystem at /sys/fs/cgroup,
 * `tmpfs` where the v1 hierarchies are, `cgroup2` for v2 (`-` for none); then the names of the
 * character devices in device_dir, one a line after `d ` (none when there is no such
 * directory); those in gpu_dir named nvidia…, after `g `, each with its `major:minor`; and, for
 * a queue that passes GPUs, which of its gpu_mounts exist on the node, after `m `; the
 * session's hard nofile and nproc and the kernel's pid_max after `l `.
 */
export function probeArgv(config: Config, queue: Queue, slurm = false): string[] {
  const gpus = queue.gpus === 'allocated';
  return ['perl', '-e', PROBE, config.deviceDir, config.gpuDir, gpus && slurm ? '1' : '0', ...(gpus ? queue.gpuMounts : [])];
}

export interface Probe extends NodeFacts {
  /** `major:minor` of each of gpuDevices. */
  gpuNumbers: string[];
  /** slurmd's GPU records on the node (`slurmd -G`), for a Slurm job in a GPU queue: `count` GRES indices from `index`, the files `file` names. */
  gres?: { count: number; index: number; file: string }[];
  /** Something on the node holds the job's port. */
  listening: boolean;
  /** The filesystem type at /sys/fs/cgroup: `tmpfs` on cgroup v1. */
  cgroupFs: string;
}

/** probeArgv's answer → whether the port is held, the node's cgroup filesystem and devices. */
export function parseProbe(stdout: string): Probe {
  const [said = '', cgroupFs = '-', ...rest] = stdout.split('\n').filter(Boolean);
  const tagged = (tag: string) => rest.filter((l) => l.startsWith(`${tag} `)).map((l) => l.slice(2));
  const gpus = tagged('g').map((l) => /^(.+) (\d+:\d+)$/.exec(l)).filter((m) => m !== null);
  const gres = tagged('s').map((l) => /^(\d+) (\d+) (\S+)$/.exec(l)).filter((m) => m !== null).map((m) => ({ count: Number(m[1]), index: Number(m[2]), file: m[3]! }));
  return { listening: said !== 'free', cgroupFs, limits: parseLimits(tagged('l')[0]), devices: tagged('d'), gpuDevices: gpus.map((m) => m[1]!), gpuNumbers: gpus.map((m) => m[2]!), gpuMounts: tagged('m'), ...(gres.length > 0 && { gres }) };
}

const CGROUP_ROOT = '/sys/fs/cgroup';
const CPUSET = `${CGROUP_ROOT}/cpuset`;

/**
 * Makes the job's cpuset cgroups, top-down from slurmd's root, before the container joins the
 * last one: the Prolog runs before slurmstepd makes them, and a tree runc made with the
 * parent's cores would make slurmstepd's own write of the job's cores fail (EBUSY) and the job
 * with it. The levels shared with other jobs (slurmd's root, uid_U) get their parent's cores,
 * the job's own levels the job's cores. Existing dirs are left as they are. A fixed script:
 * every value is a positional argument. `shared`: how many of `levels` are shared.
 */
export function cpusetArgv(levels: string[], shared: number, cpus: string): string[] {
  const script = [
    'set -e', 'dir=$1 cpus=$2 shared=$3', 'shift 3',
    'for d in "$@"; do',
    '  parent=$dir dir=$dir/$d',
    '  if [ ! -d "$dir" ]; then',
    // slurmstepd may make the same dir at the same moment.
    '    mkdir "$dir" 2>/dev/null || [ -d "$dir" ]',
    '    cat "$parent/cpuset.mems" > "$dir/cpuset.mems"',
    '    if [ "$shared" -gt 0 ]; then cat "$parent/cpuset.cpus" > "$dir/cpuset.cpus"; else echo "$cpus" > "$dir/cpuset.cpus"; fi',
    '  fi',
    '  shared=$((shared - 1))',
    'done',
  ].join('\n');
  return ['sh', '-c', script, 'sh', CPUSET, cpus, String(shared), ...levels];
}

/**
 * With ConstrainDevices, Slurm denies a job the node's GRES devices it was not given (the GPUs
 * of another job; every GPU to a job that asked none), mknod included. runc then cannot give
 * the container engine's default rules (`c *:* m`, `b *:* m`) to a container below the job,
 * and the run fails. So only mknod is given back for the node's GPUs, on the job's own levels
 * that exist: read and write stay denied, and no process in the containers may mknod (no
 * CAP_MKNOD). Slurm's denies written later reach the container's cgroup as well; what it keeps
 * then is what Slurm allows. `numbers`: `major:minor` each. A fixed script, values positional.
 */
export function mknodArgv(levels: string[], shared: number, numbers: string[]): string[] {
  const script = [
    'set -e', 'dir=$1 shared=$2 n=$3', 'shift 3',
    // Numbers as parseProbe read them (digits:digits): safe to split on spaces.
    'nums=""',
    'while [ "$n" -gt 0 ]; do nums="$nums $1" n=$((n - 1)); shift; done',
    'for d in "$@"; do',
    '  dir=$dir/$d',
    '  if [ "$shared" -le 0 ] && [ -d "$dir" ]; then for x in $nums; do echo "c $x m" > "$dir/devices.allow"; done; fi',
    '  shared=$((shared - 1))',
    'done',
  ].join('\n');
  return ['sh', '-c', script, 'sh', `${CGROUP_ROOT}/devices`, String(shared), String(numbers.length), ...numbers, ...levels];
}

/**
 * Removes what is left of the job's cgroups on a node, deepest first, in every hierarchy under
 * /sys/fs/cgroup but `keep`'s (plan/container.ts cgroupClear). A dir still in use stays.
 * A fixed script: the root, the count of `keep`, `keep`, then the dirs, as positional arguments.
 */
export function cgroupCleanupArgv(clear: CgroupClear): string[] {
  const script = [
    'root=$1 n=$2; shift 2; keep=',
    'while [ "$n" -gt 0 ]; do keep="$keep/$1/"; shift; n=$((n - 1)); done',
    'for h in "$root"/*; do',
    // cpu and cpuacct are links to cpu,cpuacct.
    '  [ -L "$h" ] && continue',
    '  case $keep in *"/${h##*/}/"*) continue;; esac',
    '  for rel in "$@"; do',
    // Never the hierarchy's root, nor a level outside it.
    '    case /$rel/ in //*|*/../*|*/./*) continue;; esac',
    '    [ -d "$h/$rel" ] && find "$h/$rel" -depth -type d -exec rmdir {} + 2>/dev/null',
    '  done',
    'done',
    'exit 0',
  ].join('\n');
  return ['sh', '-c', script, 'sh', CGROUP_ROOT, String(clear.keep.length), ...clear.keep, ...clear.dirs];
}

/**
 * What the job's container on a node used, read from its own cgroup (v1) before it is removed:
 * CPU nanoseconds (cpuacct.usage) and peak memory bytes (memory.max_usage_in_bytes), one a line.
 * The cgroup is named from what the engine says, never from where the container's processes
 * are (the owner may move them: Slurm gives them their step dirs): the parent jobbox gave it,
 * else the engine's own, then the engine's name for the container's cgroup (Dialect.cgroup). A
 * fixed script: the engine, the name, the default parent and the prefix are positional.
 */
export function usageArgv(engine: string, job: Attempt): string[] {
  const { defaultParent, prefix } = dialect(engine).cgroup;
  const script = [
    'set -e',
    'id=$("$1" inspect --format "{{.Id}}" "$2")',
    'parent=$("$1" inspect --format "{{.HostConfig.CgroupParent}}" "$2")',
    '[ -n "$parent" ] || parent=$3',
    'cat "/sys/fs/cgroup/cpuacct$parent/$4$id/cpuacct.usage" "/sys/fs/cgroup/memory$parent/$4$id/memory.max_usage_in_bytes"',
  ].join('\n');
  return ['sh', '-c', script, 'sh', engine, containerName(job), defaultParent, prefix];
}

/** The container's last words, for the error when its sshd never answered. */
export function logsArgv(job: Attempt): string[] {
  return ['logs', '--tail', '3', containerName(job)];
}

/** Everything a setup, its rollback and the teardown send to a node besides `docker run`, in order, for --dry-run. */
export function nodeSteps(config: Config, job: Job, image: Image): { when: string; argv: string[] }[] {
  const e = config.engine;
  // The digest is known only once the registry (or the first node's pull) has named it.
  const pinned = { ...image, digest: image.digest ?? 'sha256:<digest>' };
  const c = job.containment;
  const first = job.hosts[0]?.name ?? '<node>';
  const cgroups = c
    ? [
        ...(c.scheduler === 'slurm'
          ? [
              { when: 'before docker run: the job\'s cpuset cgroups (node 1 shown)', argv: cpusetArgv(slurmExternTask(job, c.multipleSlurmd, 0), 2, job.hosts[0]?.cpus ?? '<cpus>') },
              { when: 'then, on a node with GPUs: mknod (only) of them back on the job\'s device cgroups', argv: mknodArgv(slurmExternTask(job, c.multipleSlurmd, 0), 2, ['<major:minor>']) },
            ]
          : []),
        { when: `teardown, after the containers: what is left of the job's cgroups (${first} shown)`, argv: cgroupCleanupArgv(cgroupClear(job, first)!) },
      ]
    : [];
  return [
    ...cgroups,
    { when: 'first node, when jobbox\'s own client cannot ask the registry: the pull lock\'s dir, then the tag\'s pull, which pins the job to the digest it prints', argv: lockDirArgv() },
    { when: 'first node: the pull', argv: pullArgv(config, image.ref) },
    { when: 'first node, when the registry fails, or its pull printed no digest: the digest of its own copy', argv: [e, ...repoDigestsArgv(dialect(e), image.ref)] },
    { when: 'while the port is checked: is the port free (the port on stdin), the cgroup filesystem (v1 for a job that joins its cgroups), the devices and GPUs, and for a Slurm GPU job slurmd\'s GPU records', argv: probeArgv(config, config.queues.get(job.queue)!, job.containment?.scheduler === 'slurm') },
    { when: 'first node, a digest whose accounts are not cached yet: does it hold the digest (pull_policy missing)', argv: [e, ...imageIdArgv(pinned)] },
    { when: 'a node whose docker run (--pull never) finds no such image, or every node with pull_policy always: the lock\'s dir, then a pull by digest', argv: pullArgv(config, runRef(pinned)) },
    { when: 'first node, a digest not seen before: its accounts and sshd release', argv: [e, ...imageAccountsArgv(pinned, 'jobbox-check-<random>')] },
    { when: 'the port is taken, or docker run failed: who holds the job\'s name', argv: [e, ...nameArgv(dialect(e), job)] },
    { when: 'after docker run, while its sshd does not answer: does the container still run', argv: [e, ...runningArgv(job)] },
    { when: 'its sshd never answered: the container\'s last words', argv: [e, ...logsArgv(job)] },
    { when: 'teardown, before the removal: what the container used', argv: usageArgv(e, job) },
    { when: 'rollback and teardown: this attempt\'s containers', argv: [e, ...psArgv(job)] },
    { when: 'their removal, and that of a stale holder of the name', argv: [e, ...removeArgv(dialect(e), ['<ids>'])] },
  ];
}

// Whether sshd could listen on the port: bind 0.0.0.0 and [::] (v6-only) with SO_REUSEADDR,
// as sshd does. Any socket holding the port without SO_REUSEADDR blocks sshd, listening or not,
// and one bound but never listened on shows in no `ss` listing; a TIME_WAIT left by an earlier
// job blocks nothing. Held on [::] alone still counts: sshd would start on IPv4 only, and the
// holder could listen there. No IPv6 on the node is fine, as it is for sshd. Nodes need perl
// (Debian's perl-base is Essential). Perl's own socket calls with Linux's numbers (the generic
// ABI of x86-64 and arm64), not the Socket module: loading it cost 9 ms of CPU on each node of
// every start (bench P1). AF_INET 2, AF_INET6 10, SOCK_STREAM 1, SOL_SOCKET 1, SO_REUSEADDR 2,
// IPPROTO_IPV6 41, IPV6_V6ONLY 26; EAFNOSUPPORT 97, EADDRINUSE 98, EADDRNOTAVAIL 99. The
// addresses are sockaddr_in and sockaddr_in6 of the wildcard: the family in host order, the
// port in network order, the rest zero.
const PROBE = `sub taken {
  my ($family, $addr) = @_;
  my $v6 = $family == 10;
  my $s;
  if (!socket($s, $family, 1, 0)) {
    return 0 if $v6 && $! == 97;
    die "socket: $!\\n";
  }
  setsockopt($s, 1, 2, 1) or die "SO_REUSEADDR: $!\\n";
  if ($v6) { setsockopt($s, 41, 26, 1) or die "IPV6_V6ONLY: $!\\n" }
  return 0 if bind($s, $addr);
  return 1 if $! == 98;
  return 0 if $v6 && $! == 99;
  die "bind: $!\\n";
}
my $line = <STDIN>;
my ($port) = $line =~ /^(\\d+)$/ or die "port: $line\\n";
print taken(2, pack("S n x12", 2, $port)) || taken(10, pack("S n x24", 10, $port)) ? "taken\\n" : "free\\n";
# The last mount at /sys/fs/cgroup is the one in use; mountinfo's type follows " - ".
my $cgroup = "-";
if (open(my $m, "<", "/proc/self/mountinfo")) { while (<$m>) { my @f = split / /; $cgroup = $1 if $f[4] eq "/sys/fs/cgroup" && / - (\\S+) / } }
print "$cgroup\\n";
# As find -maxdepth 1 -type c would list them: a symlink is not a device.
# GPUs with their numbers, as glibc's major() and minor() split a dev_t.
sub devices {
  my ($tag, $dir, $names, $numbers) = @_;
  return unless opendir(my $d, $dir);
  for (sort grep { /$names/ && lstat("$dir/$_") && -c _ } readdir($d)) {
    my $rdev = (lstat("$dir/$_"))[6];
    my $n = $numbers ? sprintf(" %d:%d", (($rdev >> 8) & 0xfff) | (($rdev >> 32) & 0xfffff000), ($rdev & 0xff) | (($rdev >> 12) & 0xffffff00)) : "";
    print "$tag $_$n\\n";
  }
}
# The session's hard limits and the kernel's pid_max, which a container of an engine without a
# daemon may not exceed (plan/engine.ts).
my %hard = ("open files" => "-", "processes" => "-");
if (open(my $l, "<", "/proc/self/limits")) { while (<$l>) { $hard{$1} = $2 if /^Max (open files|processes)\\s+\\S+\\s+(\\S+)/ } }
my $pids = "-";
if (open(my $p, "<", "/proc/sys/kernel/pid_max")) { ($pids) = (<$p> // "-") =~ /(\\S+)/ }
print "l $hard{'open files'} $hard{processes} $pids\\n";
my ($ib, $gpu, $gres, @mounts) = @ARGV;
devices("d", $ib, qr/^/, 0);
devices("g", $gpu, qr/^nvidia/, 1);
for (@mounts) { print "m $_\\n" if -e $_ }
# slurmd's own GPU records: which file each GRES index is. slurmd waits for a file gres.conf
# names that is missing, hence the timeout; it prints nothing where it cannot read its config.
if ($gres) {
  $ENV{PATH} = "/usr/sbin:/usr/bin:/sbin:/bin";
  for (qx(timeout 10 slurmd -G 2>&1)) { print "s $1 $2 $3\\n" if /\\bName=gpu\\b.*\\bCount=(\\d+) Index=(\\d+) .*\\bFile=(\\S+)/ }
}
`;
