#!/usr/bin/env bash
# Runs inside a fresh node's network namespace, in its new mount and UTS namespaces
# (started by testbed.sh). It gives the node what a real node has of its own, starts its
# dockerd, and becomes its sshd, whose PID testbed.sh records.
set -euo pipefail
node=$1 dir=$2 tb=$3 registry=$4

hostname "$node"
mount --make-rprivate /
# munged serves every node, as one munge key does on a site: keep its socket dir across the
# private /run below.
if [[ -d /run/munge ]]; then
  mkdir -p "$dir/munge"
  mount --bind /run/munge "$dir/munge"
fi
# A private /run: the node's own docker.sock, pid files and sshd privsep dir.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/sshd
if [[ -d $dir/munge ]]; then
  mkdir -p /run/munge
  mount --move "$dir/munge" /run/munge
fi
# The testbed configs where a site keeps them: Slurm's Prolog takes no arguments, and a Slurm
# client that finds no slurm.conf would look the controller up in DNS.
mount --bind "$tb/etc" /etc/jobbox
[[ ! -d /etc/slurm ]] || mount --bind "$tb/etc" /etc/slurm
# Node names resolve the same way on every node and inside --net=host containers.
mount --bind "$tb/etc/hosts" /etc/hosts
# Every node sees its own InfiniBand devices at the one path the config names.
mount --bind "$dir/ib" "$tb/ib"
mount --bind "$dir/gpu" "$tb/gpu"
# Podman has no daemon: a node's images and containers are its own /var/lib/containers, and
# its /etc/containers the testbed's (the registry speaks HTTP; runc).
mkdir -p "$dir/containers"
mount --bind "$dir/containers" /var/lib/containers
mount --bind "$tb/containers" /etc/containers
# sshd runs every remote command through root's bash, which reads ~/.bashrc: this machine's
# (pyenv init here, ~100 ms) is not a node's, so nodes get an empty one.
[[ ! -f /root/.bashrc ]] || mount --bind /dev/null /root/.bashrc

dockerd --data-root "$dir/docker" --bridge=none --iptables=false --ip-masq=false \
  --insecure-registry "$registry" >>"$dir/log/dockerd.log" 2>&1 &
echo $! >"$dir/dockerd.pid"

exec /usr/sbin/sshd -D -e -f "$dir/sshd_config"
