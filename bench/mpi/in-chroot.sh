#!/usr/bin/env bash
# Runs CMD as root inside the benchmark chroot, the tree the deb12-bench image is imported from,
# so P7's baseline on the testbed nodes runs the very binaries the containers run. The mounts it
# needs live in a mount namespace of its own and go away with CMD (see README.md).
#
#   in-chroot.sh [--ssh DIR] CHROOT CMD...
#
# --ssh DIR: root's ssh identity in the chroot, from DIR/id_ed25519 and DIR/known_hosts (the
# testbed's admin key, $TB/etc/ssh), so mpirun in the chroot can start orted on other nodes.
set -euo pipefail

die() { printf 'in-chroot: error: %s\n' "$*" >&2; exit 2; }

ssh=
if [[ ${1:-} == --ssh ]]; then
  ssh=${2:-}
  [[ -f $ssh/id_ed25519 && -f $ssh/known_hosts ]] || die "--ssh: no id_ed25519 and known_hosts in: $ssh"
  shift 2
fi
root=${1:-}
[[ -n $root ]] && shift && (($#)) || die "usage: in-chroot.sh [--ssh DIR] CHROOT CMD..."
[[ $root == /* && -x $root/bin/sh ]] || die "not an absolute path to a root file system: $root"

# Once more in a private mount namespace: nothing mounted below can reach the caller's.
if [[ -z ${IN_CHROOT_NS:-} ]]; then
  IN_CHROOT_NS=1 exec unshare --mount --propagation private -- "$0" ${ssh:+--ssh "$ssh"} "$root" "$@"
fi
unset IN_CHROOT_NS

mount -t proc proc "$root/proc"
# hwloc reads the CPU topology from /sys; Open MPI's session dirs go to a fresh /tmp; /dev/shm
# is private, as in a container.
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
# Node names resolve as on the node (the testbed's hosts file).
mount --bind /etc/hosts "$root/etc/hosts"
if [[ -n $ssh ]]; then
  mount -t tmpfs -o mode=0700 tmpfs "$root/root"
  install -d -m 0700 "$root/root/.ssh"
  install -m 0600 "$ssh/id_ed25519" "$root/root/.ssh/id_ed25519"
  install -m 0644 "$ssh/known_hosts" "$root/root/.ssh/known_hosts"
fi
exec chroot "$root" "$@"
