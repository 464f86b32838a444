#!/usr/bin/env bash
# The jobbox testbed: a real multi-node cluster on one machine (test/testbed/README.md).
#
#   testbed.sh deps                 install the Debian packages the testbed needs
#   testbed.sh up [--nodes N] [--slurm]
#                                   (re)create N nodes (default 3), the registry, users, images;
#                                   --slurm: also munged, slurmctld and one slurmd per node
#   testbed.sh down                 stop everything by recorded PID, remove namespaces and bridge
#   testbed.sh status [--json]      what runs
#   testbed.sh exec NODE -- CMD...  run CMD as root in NODE's namespaces
#   testbed.sh env                  print shell exports for the testbed (config path, registry)
#   testbed.sh registry stop|start  take the registry away and back (fault suites)
#   testbed.sh link NODE down|up    cut a node off the bridge and back
#   testbed.sh dockerd NODE stop|start
#   testbed.sh engine docker|podman    the engine the hooks use (both are on every node)
#   testbed.sh bench-image          build the MPI benchmark image (opt-in; `up` never does), push it
#                                   when the testbed is up, print its ref
#   testbed.sh x11-image            build the X11 suite's image (opt-in, as bench-image), push it when
#                                   the testbed is up, print its ref
#
# A node is a network + mount + UTS namespace with its own IP, hostname, /run, dockerd
# and sshd; /home and the shared jobbox dirs are the host's, as on a site with NFS.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TB=${JOBBOX_TESTBED_DIR:-/var/lib/jobbox-testbed}
CACHE=${JOBBOX_TESTBED_CACHE:-/var/cache/jobbox-testbed}
BRIDGE=jbbr0
NET=10.78.0
HOSTIP=$NET.1
REGISTRY=$HOSTIP:5000
# The image tag names the recipe, so a changed recipe never reuses a stale cached image.
RECIPE=r1
PACKAGES=(docker.io docker-registry debootstrap openssh-server openssh-client iproute2 iptables musl-tools
          util-linux procps curl slurm-wlm slurm-wlm-basic-plugins munge mariadb-server slurmdbd
          xvfb xauth x11-utils lintian logrotate prometheus prometheus-node-exporter
          podman runc catatonit uidmap fuse-overlayfs slirp4netns)
# Slurm clients must never look the controller up in DNS: every command gets this file.
export SLURM_CONF=$TB/etc/slurm.conf

say() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: error: %s\n' "$*" >&2; exit 1; }

node_ip() { echo "$NET.$((10 + ${1#node}))"; }
nodes() { [[ -f $TB/nodes.list ]] && cat "$TB/nodes.list" || true; }
node_pid() { cat "$TB/run/$1.pid" 2>/dev/null || true; }
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
# The caller's working directory is kept: paths are the same on every node (shared fs).
in_node() { local node=$1; shift; nsenter -t "$(node_pid "$node")" --net --mount --uts --wd="$PWD" -- "$@"; }

# Poll until a command succeeds; testbed start-up is asynchronous everywhere.
wait_for() {
  local what=$1 tries=$2; shift 2
  for ((i = 0; i < tries; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "timed out waiting for $what"
}

# debootstrap's mirror is the machine's own Debian source, never a name written here.
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $uri ]] || die "no Debian bookworm source in the apt configuration"
  echo "$uri"
}

cmd_deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- jobbox
# jobbox as a site installs it: the Debian package built from this checkout (`npm run
# package`), installed on the host, whose /usr every node shares. The suites run the installed
# hooks and CLI, so a file missing from the package fails them. Each `up`, and each test run
# (global-setup.ts), installs the package of the tree as it is.
INSTALL=/usr/lib/jobbox

cmd_install() {
  [[ $(id -u) == 0 ]] || die "install must run as root"
  local deb
  deb=$(cd "$REPO" && npm run -s build >&2 && npm run -s package) || die "building the package failed"
  DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$REPO/$deb" >/dev/null || die "dpkg -i $REPO/$deb failed"
  say "install: $deb"
}

# ---------------------------------------------------------------- images
# Chroots are cached outside the repo: debootstrap is the slow step (about 45 s each).
# $3: packages apt installs afterwards, for those debootstrap cannot configure (it fails on
# libopenmpi-dev: it does not resolve the virtual package automake-1.16).
build_chroot() {
  local name=$1 include=$2 extra=${3:-} dir=$CACHE/chroot/$1
  [[ -f $dir/.jobbox-complete ]] && return 0
  rm -rf "$dir" && mkdir -p "$dir"
  say "debootstrap $name ($include)"
  debootstrap --variant=minbase --include="$include" bookworm "$dir" "$(debian_mirror)" >"$CACHE/chroot/$name.log" 2>&1 \
    || die "debootstrap $name failed, see $CACHE/chroot/$name.log"
  if [[ -n $extra ]]; then
    say "apt-get install into $name ($extra)"
    DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -q --no-install-recommends ${extra//,/ } \
      >>"$CACHE/chroot/$name.log" 2>&1 || die "installing into $name failed, see $CACHE/chroot/$name.log"
  fi
  # A host key baked into an image would be shared by every job; jobbox makes one per job.
  rm -f "$dir"/etc/ssh/ssh_host_*
  chroot "$dir" apt-get clean
  touch "$dir/.jobbox-complete"
}

registry_has() { curl -sf "http://$REGISTRY/v2/$1/tags/list" | grep -q "\"${2:-$RECIPE}\""; }

# $3: the repository in the registry, when it is not the chroot's name.
import_image() {
  local name=$1 tag=$2 repo=${3:-$1}
  say "jobbox image import $name as $repo:$tag"
  in_node node1 "$INSTALL/dist/cli.js" image import "$CACHE/chroot/$name" "$REGISTRY/$repo:$tag" --push
  # Nodes must get images from the registry, as real nodes do: node1 keeps no private copy.
  in_node node1 docker rmi -f "$REGISTRY/$repo:$tag" >/dev/null
}

build_images() {
  mkdir -p "$CACHE/chroot"
  build_chroot deb12 openssh-server,openmpi-bin,procps,iproute2 &
  local a=$!
  build_chroot deb12-mpich openssh-server,mpich,procps,iproute2 &
  local b=$!
  wait "$a" && wait "$b" || die "building chroots failed"
  for name in deb12 deb12-mpich; do
    registry_has "$name" || import_image "$name" "$RECIPE"
  done
}

# The MPI benchmark image (P7): deb12 with a compiler, and bench/mpi/pingpong.c compiled inside
# the chroot, so jobs in the image and the baseline on the nodes (chroot into the same tree)
# run the very same binaries. The tag carries the source's hash: an edited ping-pong is
# compiled again and never reuses a stale image.
BENCH_SRC=$REPO/bench/mpi/pingpong.c

bench_tag() {
  local sum
  sum=$(sha256sum "$BENCH_SRC") || die "cannot read $BENCH_SRC"
  echo "$RECIPE-${sum:0:12}"
}

build_bench_chroot() {
  local dir=$CACHE/chroot/deb12-bench tag
  tag=$(bench_tag)
  mkdir -p "$CACHE/chroot"
  build_chroot deb12-bench openssh-server,openmpi-bin,procps,iproute2 gcc,libc6-dev,libopenmpi-dev
  [[ $(cat "$dir/.jobbox-pingpong" 2>/dev/null) == "$tag" ]] && return 0
  say "mpicc jobbox-pingpong in deb12-bench"
  # debootstrap makes no /etc/hosts; the baseline mounts the node's over this one (docker
  # mounts its own in containers), so names resolve in the chroot as on the node.
  touch "$dir/etc/hosts"
  install -D -m 0644 "$BENCH_SRC" "$dir/usr/local/src/jobbox-pingpong.c"
  chroot "$dir" mpicc -O2 -Wall -o /usr/local/bin/jobbox-pingpong /usr/local/src/jobbox-pingpong.c \
    || die "compiling $BENCH_SRC in $dir failed"
  echo "$tag" >"$dir/.jobbox-pingpong"
}

# The ref goes to stdout (for the benchmark's own config); a testbed that is down gets the
# chroot only, and the image on the next call with the testbed up.
cmd_bench_image() {
  [[ $(id -u) == 0 ]] || die "bench-image must run as root"
  cmd_deps
  build_bench_chroot
  local tag
  tag=$(bench_tag)
  if alive "$(cat "$TB/run/registry.pid" 2>/dev/null || true)" && alive "$(node_pid node1)"; then
    [[ -x $INSTALL/dist/cli.js ]] || cmd_install
    registry_has deb12-bench "$tag" || import_image deb12-bench "$tag"
  else
    say "bench-image: the testbed is down: built $CACHE/chroot/deb12-bench only, no image pushed"
  fi
  echo "$REGISTRY/deb12-bench:$tag"
}

# The X11 suite's image (x11.test.ts): Debian with sshd and the X clients of x11-utils
# (xdpyinfo), nothing of MPI. It goes under projects/, as a user's own image, so that the LSF
# and Slurm suites reach it through the queue's allowed_repos without another alias in the
# testbed config. Opt-in, as bench-image: `up` never builds it, and the deb12 images every
# other suite and the benchmark run stay as they are.
X11_REPO=projects/jobbox-x11

cmd_x11_image() {
  [[ $(id -u) == 0 ]] || die "x11-image must run as root"
  cmd_deps
  mkdir -p "$CACHE/chroot"
  build_chroot deb12-x11 openssh-server,procps,iproute2 x11-utils
  if alive "$(cat "$TB/run/registry.pid" 2>/dev/null || true)" && alive "$(node_pid node1)"; then
    [[ -x $INSTALL/dist/cli.js ]] || cmd_install
    registry_has "$X11_REPO" || import_image deb12-x11 "$RECIPE" "$X11_REPO"
  else
    say "x11-image: the testbed is down: built $CACHE/chroot/deb12-x11 only, no image pushed"
  fi
  echo "$REGISTRY/$X11_REPO:$RECIPE"
}

# ---------------------------------------------------------------- site pieces
make_users() {
  getent group jbproj1 >/dev/null || groupadd -g 3001 jbproj1
  getent group jbproj2 >/dev/null || groupadd -g 3002 jbproj2
  id jbuser1 >/dev/null 2>&1 || useradd -m -u 2001 -s /bin/bash -G jbproj1,jbproj2 jbuser1
  id jbuser2 >/dev/null 2>&1 || useradd -m -u 2002 -s /bin/bash jbuser2
  usermod -G jbproj1,jbproj2 jbuser1
}

# Real character devices with InfiniBand's numbers; no driver answers them, but docker's
# device cgroup and visibility inside containers are real. umad/issm are there so tests can
# show that jobbox never passes them.
make_ib_devices() {
  local dir=$1 uverbs=$2
  mkdir -p "$dir"
  for ((i = 0; i < uverbs; i++)); do mknod -m 0666 "$dir/uverbs$i" c 231 $((192 + i)); done
  mknod -m 0666 "$dir/rdma_cm" c 10 58
  mknod -m 0600 "$dir/umad0" c 231 0
  mknod -m 0600 "$dir/issm0" c 231 64
}

# NVIDIA's numbers (major 195: GPUs from minor 0, nvidiactl 255, nvidia-modeset 254; nvidia-uvm's
# major is the driver's choice at load, 511 here), three GPUs a node, two of them Slurm's
# (gres.conf, below). No driver answers them (an open allowed by the device cgroup gives ENXIO, a refused one
# EPERM), so they show what reaches a container and what its cgroup lets it open, not CUDA.
make_gpu_devices() {
  local dir=$1
  mkdir -p "$dir"
  mknod -m 0666 "$dir/nvidia0" c 195 0
  mknod -m 0666 "$dir/nvidia1" c 195 1
  mknod -m 0666 "$dir/nvidia2" c 195 2
  mknod -m 0666 "$dir/nvidiactl" c 195 255
  mknod -m 0666 "$dir/nvidia-modeset" c 195 254
  mknod -m 0666 "$dir/nvidia-uvm" c 511 0
}

# Podman lowers its own nproc to pid_max: no container may have more.
nproc_max() {
  local hard pid_max
  hard=$(ulimit -Hu) pid_max=$(cat /proc/sys/kernel/pid_max)
  [[ $hard == unlimited || $hard -gt $pid_max ]] && echo "$pid_max" || echo "$hard"
}

# Podman's node config (docs/podman.md): the testbed registry speaks HTTP, and runc, since
# crun 1.8 refuses this machine's hybrid cgroups. node-boot.sh binds it over each node's
# /etc/containers, with the node's own /var/lib/containers.
write_podman_config() {
  local dir=$TB/containers
  mkdir -p "$dir"
  cp /etc/containers/policy.json "$dir/policy.json"
  cat >"$dir/registries.conf" <<EOF
unqualified-search-registries = []
[[registry]]
location = "$REGISTRY"
insecure = true
EOF
  # Podman's default nofile and nproc (1048576) are above this machine's hard limits, which
  # root here cannot raise (no CAP_SYS_RESOURCE): throwaway containers (the image check) get
  # the hard limits instead; a job's get them from jobbox (plan/engine.ts).
  cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=$(nproc_max):$(nproc_max)"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
}

write_config() {
  local conf=$TB/etc/jobbox.ini
  # memlock above the hard limit needs CAP_SYS_RESOURCE for dockerd; sandboxes such as this
  # machine's may lack it, so the testbed uses the hard limit it has when that is not unlimited.
  # The short queue has no memory limit, so its memlock must be a size (jobbox refuses unlimited).
  local memlock=unlimited short_memlock=64m
  if [[ $(ulimit -Hl) != unlimited ]]; then memlock=$(ulimit -Hl)k short_memlock=$(ulimit -Hl)k; fi
  cat >"$conf" <<EOF
# Generated by test/testbed/testbed.sh up; do not edit.
[jobbox]
engine = docker
registry = $REGISTRY
port_range = 30000-30199
port_dir = $TB/shared/ports
state_dir = $TB/shared/jobs
log_file = $TB/log/jobbox.log
log_level = debug
ssh_user = root
ssh_key = $TB/etc/ssh/id_ed25519
ssh_known_hosts = $TB/etc/ssh/known_hosts
ssh_port = 22
connect_timeout = 10
# Three nodes share this machine's cores: under the 20-job storm a container's sshd can take
# a minute to answer. A dead node is still found by connect_timeout.
start_timeout = 120
pull_timeout = 300
fanout = 64
device_dir = $TB/ib
gpu_dir = $TB/gpu
# The LSF harness's stand-in (not LSF): it answers a GPU job's allocation as the harness sets it.
bjobs = $TB/bin/bjobs
default_queue = normal
# The testbed registry speaks HTTP (dockerd's insecure-registries, node-boot.sh).
insecure_registries = $REGISTRY

[queue normal]
default_image = deb12
allowed_images = deb12 deb12-mpich
# Users' own images (user-images.test.ts), pinned at submit.
allowed_repos = $REGISTRY/projects/*
mounts = /home
devices = uverbs* rdma_cm
cpus = slots
memory = 1g/slot
shm_size = 256m
memlock = $memlock

[queue short]
default_image = deb12-mpich
allowed_images = deb12-mpich
mounts = /home
devices = uverbs* rdma_cm
cpus = slots
memory = none
memlock = $short_memlock

# GPUs (slurm-gpus and lsf-gpus tests). LSF's allocation comes from bjobs: here the
# harness's stand-in (test/harness/lsf/bin/bjobs, not LSF), copied root-owned.
[queue gpu]
default_image = deb12
mounts = /home
gpus = allocated
# No driver here: a dir stands in for the driver's files, and nvidia-smi, absent, is skipped.
gpu_mounts = $TB/driver /usr/bin/nvidia-smi
memory = 1g/slot
memlock = $memlock

[image deb12]
ref = $REGISTRY/deb12:$RECIPE

[image deb12-mpich]
ref = $REGISTRY/deb12-mpich:$RECIPE
env.MPICH_PORT_RANGE = 42000:42999
EOF
  chmod 0644 "$conf"
}

start_registry() {
  mkdir -p "$CACHE/registry"
  cat >"$TB/etc/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $CACHE/registry
  # Suites push throwaway images and delete them again (DELETE /v2/<name>/manifests/<digest>).
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
  # No descriptor but stdio: a daemon would hold open a lock the caller took (flock, as the suites do).
  docker-registry serve "$TB/etc/registry.yml" >"$TB/log/registry.log" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  echo $! >"$TB/run/registry.pid"
  wait_for registry 100 curl -sf "http://$REGISTRY/v2/"
}


# ---------------------------------------------------------------- slurm
# One slurmctld on the host at the bridge address, one slurmd inside each node's namespaces
# (so its Prolog sees the node's dockerd), one munged for all (see node-boot.sh).
write_slurm_conf() {
  local features cpu list
  features=$("$INSTALL/dist/cli.js" slurm features --config "$TB/etc/jobbox.ini")
  cpu=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //; s/ RealMemory=[0-9]*//')
  list=$(nodes | paste -sd,)
  mkdir -p "$TB/slurm/state"
  {
    echo "# Generated by test/testbed/testbed.sh up --slurm; do not edit."
    echo "ClusterName=jobbox"
    echo "SlurmctldHost=$(hostname -s)($HOSTIP)"
    echo "SlurmUser=root"
    echo "AuthType=auth/munge"
    echo "StateSaveLocation=$TB/slurm/state"
    echo "SlurmctldPidFile=$TB/run/slurmctld.pid"
    echo "SlurmctldLogFile=$TB/log/slurmctld.log"
    echo "SlurmdPidFile=$TB/nodes/%n/slurmd.pid"
    echo "SlurmdSpoolDir=$TB/nodes/%n/spool"
    echo "SlurmdLogFile=$TB/nodes/%n/log/slurmd.log"
    # As sites run it (TESTBED.md, "Slurm with cgroups and real accounting"): jobs are kept in
    # cgroups, bound to their cores, limited to their memory, and accounted by slurmdbd.
    echo "ProctrackType=proctrack/cgroup"
    echo "TaskPlugin=task/cgroup,task/affinity"
    echo "SelectType=select/cons_tres"
    # --mem is a limit only with memory as a consumable resource.
    echo "SelectTypeParameters=CR_Core_Memory"
    echo "DefMemPerCPU=512"
    echo "AccountingStorageType=accounting_storage/slurmdbd"
    echo "AccountingStorageHost=$HOSTIP"
    echo "JobAcctGatherType=jobacct_gather/cgroup"
    echo "JobAcctGatherFrequency=task=1"
    echo "ReturnToService=2"
    echo "MpiDefault=none"
    echo "KillWait=5"
    echo "MinJobAge=600"
    # Alloc: the Prolog runs on every node at allocation; mpirun over ssh makes no job steps.
    # Contain: the extern step, whose cgroup holds what belongs to the job but to no step.
    echo "PrologFlags=Alloc,Contain"
    echo "PrologEpilogTimeout=180"
    echo "Prolog=$INSTALL/hooks/slurm/prolog"
    echo "Epilog=$INSTALL/hooks/slurm/epilog"
    echo "JobSubmitPlugins=lua"
    echo "GresTypes=gpu"
    for node in $(nodes); do
      # slurmd -C's RealMemory is the machine's; --mem is refused without one per node.
      echo "NodeName=$node NodeAddr=$(node_ip "$node") $cpu RealMemory=4096 Gres=gpu:2 Features=$features State=UNKNOWN"
    done
    echo "PartitionName=normal Nodes=$list Default=YES MaxTime=INFINITE State=UP"
    echo "PartitionName=short Nodes=$list MaxTime=INFINITE State=UP"
    echo "PartitionName=gpu Nodes=$list MaxTime=INFINITE State=UP"
    # Not a jobbox queue: jobs here run on the nodes as they are (slurm-security.test.ts).
    echo "PartitionName=other Nodes=$list MaxTime=INFINITE State=UP"
  } >"$SLURM_CONF"
  {
    echo "# Generated by test/testbed/testbed.sh up --slurm; do not edit."
    echo "CgroupPlugin=cgroup/v1"
    echo "ConstrainCores=yes"
    echo "ConstrainRAMSpace=yes"
    echo "ConstrainDevices=yes"
  } >"$TB/etc/cgroup.conf"
  # Each node's own devices, at the one path (node-boot.sh): ConstrainDevices denies a job the
  # GPUs it was not given there, by their numbers.
  # Two of the three, as a site keeps one GPU out of Slurm (a display's, an admin's): GRES
  # index 0 is nvidia1, 1 is nvidia2 (slurmd -G says so).
  echo "NodeName=$list Name=gpu File=$TB/gpu/nvidia[1-2]" >"$TB/etc/gres.conf"
  # slurmctld reads job_submit.lua from the directory of slurm.conf.
  "$INSTALL/dist/cli.js" slurm job-submit-lua --config "$TB/etc/jobbox.ini" >"$TB/etc/job_submit.lua"
}

start_munge() {
  install -d -o munge -g munge -m 0755 /run/munge
  if [[ -S /run/munge/munge.socket.2 ]] && munge -n >/dev/null 2>&1; then return 0; fi
  runuser -u munge -- /usr/sbin/munged
  cp /run/munge/munged.pid "$TB/run/munged.pid"
}

all_idle() { [[ $(sinfo -h -o %T | sort -u) == idle ]]; }

# MariaDB and slurmdbd, started by hand (no systemd here), with files of their own under $TB so
# /etc/mysql is never read. Order matters: the database, slurmdbd, the cluster's record, then
# slurmctld (a cluster added after slurmctld registered stays unrecorded). The database is
# made anew on every up: job ids start again at 1 with a fresh state dir.
start_accounting() {
  local db=$TB/mariadb cnf=$TB/mariadb/my.cnf
  rm -rf "$db"
  mkdir -p "$db/data"
  chown -R mysql:mysql "$db"
  cat >"$cnf" <<CNF
[mariadbd]
user=mysql
datadir=$db/data
socket=$db/mysqld.sock
pid-file=$db/mariadbd.pid
log-error=$db/mariadbd.log
bind-address=127.0.0.1
port=3307
skip-name-resolve
[client]
socket=$db/mysqld.sock
port=3307
CNF
  mariadb-install-db --defaults-file="$cnf" --auth-root-authentication-method=socket --skip-test-db >"$TB/log/mariadb-install.log" 2>&1
  # It runs as mysql, so its pid file and log live in its own dir.
  setsid mariadbd --defaults-file="$cnf" >>"$db/mariadbd.out" 2>&1 &
  wait_for mariadb 100 mariadb --defaults-file="$cnf" -e 'SELECT 1'
  local pass
  pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  mariadb --defaults-file="$cnf" -e "CREATE DATABASE slurm_acct_db; CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  (umask 077; {
    echo "# Generated by test/testbed/testbed.sh up --slurm; do not edit."
    echo "AuthType=auth/munge"
    echo "DbdAddr=$HOSTIP"
    echo "DbdHost=$(hostname -s)"
    echo "SlurmUser=root"
    echo "PidFile=$TB/run/slurmdbd.pid"
    echo "LogFile=$TB/log/slurmdbd.log"
    echo "StorageType=accounting_storage/mysql"
    echo "StorageHost=127.0.0.1"
    echo "StoragePort=3307"
    echo "StorageUser=slurm"
    echo "StoragePass=$pass"
    echo "StorageLoc=slurm_acct_db"
  } >"$TB/etc/slurmdbd.conf")
  # It reads the slurmdbd.conf beside $SLURM_CONF.
  slurmdbd
  wait_for slurmdbd 100 sacctmgr -i list cluster
  sacctmgr -i add cluster jobbox >/dev/null
}

start_slurm() {
  write_slurm_conf
  start_accounting
  slurmctld -f "$SLURM_CONF"
  wait_for slurmctld 100 scontrol ping
  for node in $(nodes); do start_slurmd "$node"; done
  wait_for "idle slurm nodes" 150 all_idle
}

start_slurmd() {
  mkdir -p "$TB/nodes/$1/spool"
  in_node "$1" slurmd -N "$1" -f "$SLURM_CONF"
}

# ---------------------------------------------------------------- nodes
make_network() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$HOSTIP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Docker and br_netfilter drop bridged traffic by default; nodes must reach each other.
  iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
}

start_node() {
  local node=$1 ip dir
  ip=$(node_ip "$node")
  dir=$TB/nodes/$node
  mkdir -p "$dir/docker" "$dir/log" "$dir/ssh"
  ip netns add "$node"
  ip link add "jbv-$node" type veth peer name eth0 netns "$node"
  ip link set "jbv-$node" master "$BRIDGE" up
  ip -n "$node" addr add "$ip/24" dev eth0
  ip -n "$node" link set eth0 up
  ip -n "$node" link set lo up
  # Kept across a reboot, as a node's disk keeps it.
  [[ -f $dir/ssh/host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C "$node" -f "$dir/ssh/host_ed25519_key"
  cat >"$dir/sshd_config" <<EOF
Port 22
ListenAddress $ip
HostKey $dir/ssh/host_ed25519_key
PidFile none
PermitRootLogin prohibit-password
AllowUsers root
AuthorizedKeysFile $TB/etc/ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
EOF
  # nsenter+unshare, not `ip netns exec`: the latter remounts /sys and hides the cgroup tree
  # that dockerd needs. The boot script execs sshd, so this PID is the node's anchor.
  nsenter --net="/run/netns/$node" unshare --mount --uts -- \
    bash "$HERE/node-boot.sh" "$node" "$dir" "$TB" "$REGISTRY" </dev/null >>"$dir/log/boot.log" 2>&1 &
  echo $! >"$TB/run/$node.pid"
}

wait_node() {
  local node=$1
  wait_for "$node dockerd" 300 in_node "$node" docker info
  wait_for "$node sshd" 100 in_node "$node" bash -c "exec 3<>/dev/tcp/$(node_ip "$node")/22"
}

cmd_up() {
  local count=3 slurm=
  while (($#)); do
    case $1 in
      --nodes) count=${2:?--nodes needs a number}; shift 2 ;;
      --slurm) slurm=1; shift ;;
      *) die "up: unknown option: $1" ;;
    esac
  done
  [[ $count =~ ^[1-9][0-9]?$ ]] || die "up: --nodes must be 1..99: $count"
  [[ $(id -u) == 0 ]] || die "up must run as root"
  cmd_deps
  cmd_down quiet
  local t0=$SECONDS
  mkdir -p "$TB"/{run,log,etc/ssh,shared/jobs,ib,gpu,driver,nodes,bin,lsf-gpus}
  # The LSF harness's bjobs stand-in (not LSF), root's as the config's bjobs must be.
  install -m 0755 "$HERE/../harness/lsf/bin/bjobs" "$TB/bin/bjobs"
  echo "testbed: no NVIDIA driver; this dir stands in for the files gpu_mounts names" >"$TB/driver/README"
  chmod 0755 "$TB" "$TB/etc" "$TB/shared"
  # jobbox refuses a port dir others can enter: they could give a port file a name of their own.
  install -d -m 0700 "$TB/shared/ports" "$TB/shared/ports/claims"
  make_users
  ssh-keygen -q -t ed25519 -N '' -C jobbox-admin -f "$TB/etc/ssh/id_ed25519"
  cp "$TB/etc/ssh/id_ed25519.pub" "$TB/etc/ssh/authorized_keys"
  : >"$TB/etc/ssh/known_hosts"
  {
    echo "127.0.0.1 localhost"
    echo "$HOSTIP tbhost"
  } >"$TB/etc/hosts"
  : >"$TB/nodes.list"
  for ((n = 1; n <= count; n++)); do
    echo "node$n" >>"$TB/nodes.list"
    echo "$(node_ip "node$n") node$n" >>"$TB/etc/hosts"
    make_ib_devices "$TB/nodes/node$n/ib" $((n == 1 ? 2 : 1))
    make_gpu_devices "$TB/nodes/node$n/gpu"
  done
  cmd_install
  write_config
  write_podman_config
  mkdir -p /var/lib/containers
  make_network
  start_registry
  mkdir -p /etc/jobbox
  [[ -z $slurm ]] || start_munge
  for node in $(nodes); do start_node "$node"; done
  for node in $(nodes); do
    wait_node "$node"
    echo "$node,$(node_ip "$node") $(cut -d' ' -f1-2 "$TB/nodes/$node/ssh/host_ed25519_key.pub")" >>"$TB/etc/ssh/known_hosts"
  done
  build_images
  [[ -z $slurm ]] || start_slurm
  say "up: $count nodes${slurm:+ with slurm}, registry $REGISTRY, config $TB/etc/jobbox.ini ($((SECONDS - t0)) s)"
}

# Stop by the PIDs recorded at start. The last sweep kills what is left inside a node's
# network namespace (container shims of a dockerd that died): those are ours by construction.
stop_pid() {
  local pid=$1 i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
  local quiet=${1:-} pids=()
  for f in "$TB"/run/*.pid "$TB"/nodes/*/dockerd.pid "$TB"/nodes/*/slurmd.pid "$TB"/mariadb/mariadbd.pid; do [[ -f $f ]] && pids+=("$(cat "$f")"); done
  stop_pid "$(cat "$TB/run/slurmctld.pid" 2>/dev/null || true)"
  for node in $(nodes); do
    stop_pid "$(cat "$TB/nodes/$node/slurmd.pid" 2>/dev/null || true)"
    stop_pid "$(cat "$TB/nodes/$node/dockerd.pid" 2>/dev/null || true)"
    stop_pid "$(node_pid "$node")"
    if ip netns list | grep -qw "$node"; then
      for pid in $(ip netns pids "$node" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$node"
    fi
  done
  stop_pid "$(cat "$TB/run/slurmdbd.pid" 2>/dev/null || true)"
  stop_pid "$(cat "$TB/mariadb/mariadbd.pid" 2>/dev/null || true)"
  stop_pid "$(cat "$TB/run/registry.pid" 2>/dev/null || true)"
  stop_pid "$(cat "$TB/run/munged.pid" 2>/dev/null || true)"
  # What the slurmds made in every cgroup controller (slurm_<node>/…), deepest first.
  for node in $(nodes); do
    find /sys/fs/cgroup/*/"slurm_$node" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  # The LSF harness's job cgroups (lsf/testbed/…) and jobbox's own parent, where empty.
  find /sys/fs/cgroup/*/lsf/testbed -depth -type d -exec rmdir {} + 2>/dev/null || true
  rmdir /sys/fs/cgroup/*/lsf /sys/fs/cgroup/*/jobbox 2>/dev/null || true
  while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  ip link del "$BRIDGE" 2>/dev/null || true
  # Node dirs hold the node image stores; the shared port and job dirs must start empty.
  rm -rf "$TB/nodes" "$TB/run" "$TB/shared" "$TB/etc" "$TB/ib" "$TB/gpu" "$TB/driver" "$TB/bin" "$TB/lsf-gpus" "$TB/slurm" "$TB/mariadb" "$TB/nodes.list"
  # Prove it: nothing we recorded still runs, and no namespace, bridge or mount is left.
  for pid in "${pids[@]}"; do ! alive "$pid" || die "down: process $pid is still alive"; done
  ! ip netns list | grep -qE '^node[0-9]+( |$)' || die "down: namespaces left: $(ip netns list | tr '\n' ' ')"
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "down: bridge $BRIDGE is left"
  ! grep -q " $TB" /proc/mounts || die "down: mounts left under $TB"
  [[ -n $quiet ]] || say "down: ${#pids[@]} processes stopped, no namespace, bridge or mount left"
}

cmd_status() {
  local json=${1:-}
  local up=false regup=false slurm=false
  alive "$(cat "$TB/run/registry.pid" 2>/dev/null || true)" && regup=true
  alive "$(cat "$TB/run/slurmctld.pid" 2>/dev/null || true)" && slurm=true
  local rows=()
  for node in $(nodes); do
    local pid sshd=false dockerd=false
    pid=$(node_pid "$node")
    alive "$pid" && sshd=true && up=true
    alive "$(cat "$TB/nodes/$node/dockerd.pid" 2>/dev/null || true)" && dockerd=true
    rows+=("$node $(node_ip "$node") ${pid:-0} $sshd $dockerd")
  done
  if [[ $json == --json ]]; then
    printf '{"up":%s,"dir":"%s","config":"%s","registry":"%s","registryUp":%s,"slurm":%s,"slurmConf":"%s","bridge":"%s","bridgeIp":"%s","nodes":[' \
      "$up" "$TB" "$TB/etc/jobbox.ini" "$REGISTRY" "$regup" "$slurm" "$SLURM_CONF" "$BRIDGE" "$HOSTIP"
    local sep=''
    for row in "${rows[@]}"; do
      read -r name ip pid sshd dockerd <<<"$row"
      printf '%s{"name":"%s","ip":"%s","pid":%s,"sshd":%s,"dockerd":%s}' "$sep" "$name" "$ip" "$pid" "$sshd" "$dockerd"
      sep=,
    done
    printf ']}\n'
  else
    echo "registry $REGISTRY up=$regup; slurm up=$slurm"
    for row in "${rows[@]}"; do echo "$row" | awk '{printf "%-8s %-12s pid=%-8s sshd=%-5s dockerd=%s\n", $1, $2, $3, $4, $5}'; done
  fi
}

cmd_exec() {
  local node=${1:-}
  shift || true
  [[ ${1:-} == -- ]] && shift
  [[ -n $node ]] && (($#)) || die "usage: exec NODE -- CMD..."
  alive "$(node_pid "$node")" || die "exec: node is not up: $node"
  in_node "$node" "$@"
}

# Faults for the suites: the registry goes away and comes back, as on a site.
cmd_registry() {
  case ${1:-} in
    stop) stop_pid "$(cat "$TB/run/registry.pid" 2>/dev/null || true)"; rm -f "$TB/run/registry.pid" ;;
    start) alive "$(cat "$TB/run/registry.pid" 2>/dev/null || true)" || start_registry ;;
    *) die "usage: registry stop|start" ;;
  esac
}

# A node's link to the bridge goes down and up: the node is unreachable, as when it crashes.
cmd_link() {
  local node=${1:-} state=${2:-}
  [[ $state == up || $state == down ]] || die "usage: link NODE up|down"
  ip link set "jbv-$node" "$state"
}

# The engine every hook uses from now on: both run on every node (podman has no daemon), so
# a switch needs no restart. Containers of the other engine are not seen by this one.
cmd_engine() {
  local engine=${1:-}
  [[ $engine == docker || $engine == podman ]] || die "usage: engine docker|podman"
  sed -i "s/^engine = .*/engine = $engine/" "$TB/etc/jobbox.ini"
  say "engine: $engine"
}

# A node's dockerd stops and starts again (same arguments as node-boot.sh).
cmd_dockerd() {
  local node=${1:-} what=${2:-} dir=$TB/nodes/${1:-}
  case $what in
    stop) stop_pid "$(cat "$dir/dockerd.pid" 2>/dev/null || true)" ;;
    start)
      alive "$(cat "$dir/dockerd.pid" 2>/dev/null || true)" && return 0
      in_node "$node" bash -c 'dockerd --data-root "$1/docker" --bridge=none --iptables=false --ip-masq=false \
        --insecure-registry "$2" >>"$1/log/dockerd.log" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- & echo $! >"$1/dockerd.pid"' _ "$dir" "$REGISTRY"
      wait_for "$node dockerd" 300 in_node "$node" docker info ;;
    *) die "usage: dockerd NODE stop|start" ;;
  esac
}

# A node reboots: everything on it stops (slurmd, dockerd and its containers, sshd), its
# namespaces and /run go away, and it boots again with its disk (image store, stopped
# containers, host key) as it was.
cmd_reboot() {
  local node=${1:-} dir slurmd=
  [[ -n $node ]] && nodes | grep -qx "$node" || die "usage: reboot NODE"
  dir=$TB/nodes/$node
  alive "$(cat "$dir/slurmd.pid" 2>/dev/null || true)" && slurmd=1
  stop_pid "$(cat "$dir/slurmd.pid" 2>/dev/null || true)"
  stop_pid "$(cat "$dir/dockerd.pid" 2>/dev/null || true)"
  stop_pid "$(node_pid "$node")"
  for pid in $(ip netns pids "$node" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  ip netns del "$node"
  start_node "$node"
  wait_node "$node"
  [[ -z $slurmd ]] || start_slurmd "$node"
  say "reboot: $node is back"
}

cmd_env() {
  echo "export JOBBOX_CONFIG=$TB/etc/jobbox.ini"
  echo "export JOBBOX_TESTBED_REGISTRY=$REGISTRY"
  echo "export SLURM_CONF=$SLURM_CONF"
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    deps) cmd_deps ;;
    install) cmd_install ;;
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status "$@" ;;
    exec) cmd_exec "$@" ;;
    env) cmd_env ;;
    registry) cmd_registry "$@" ;;
    link) cmd_link "$@" ;;
    dockerd) cmd_dockerd "$@" ;;
    engine) cmd_engine "$@" ;;
    bench-image) cmd_bench_image ;;
    x11-image) cmd_x11_image ;;
    reboot) cmd_reboot "$@" ;;
    *) die "usage: testbed.sh deps|install|up [--nodes N] [--slurm]|down|status [--json]|exec NODE -- CMD...|env|registry stop|start|link NODE up|down|dockerd NODE stop|start|engine docker|podman|reboot NODE|bench-image|x11-image" ;;
  esac
}
main "$@"
