#!/usr/bin/env bash
# `npm run package`: dist/jobbox_<version>_<arch>.deb, built with dpkg-deb from `npm run build`'s
# dist/. What goes where (docs/operations.md, "Install"):
#   /usr/lib/jobbox/dist/       the bundle (cli.js and its chunks) and the hook launcher
#   /usr/lib/jobbox/hooks/      the lines lsb.queues and slurm.conf name
#   /usr/bin/jobbox             a link to the bundle's cli.js
#   /etc/jobbox/jobbox.ini      the example config, a conffile: dpkg never overwrites an edited one
#   /etc/logrotate.d/jobbox     rotation of /var/log/jobbox/jobbox.log
#   /lib/systemd/system/        jobbox-gc.service and .timer, not enabled (one admin host runs them)
#   /usr/share/man/man1/        jobbox(1), every command's --help
# /usr/lib/jobbox keeps the checkout's layout (dist/ beside hooks/), which the hook shims and
# src/install.ts rely on. The launcher is built here again without the checkout's allowance
# for a sticky directory above it (src/launcher/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f dist/cli.js ]] || { echo 'jobbox: package: no build: run npm run build first: dist/cli.js' >&2; exit 1; }
# --version V: the same files under another version, for the upgrade test (test/integration/package.test.ts).
version=$(node -p 'require("./package.json").version')
if [[ ${1:-} == --version ]]; then version=${2:?--version needs a value}; fi
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "jobbox: package: not a Debian version: $version" >&2; exit 2; }
arch=$(dpkg --print-architecture)
out=dist/jobbox_${version}_${arch}.deb
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
umask 022

lib=$stage/usr/lib/jobbox
doc=$stage/usr/share/doc/jobbox
install -d "$lib/dist" "$lib/hooks/lsf" "$lib/hooks/slurm" "$stage/usr/bin" "$stage/etc/jobbox" "$stage/etc/logrotate.d" \
  "$stage/lib/systemd/system" "$stage/usr/share/man/man1" "$doc/docs" "$stage/usr/share/lintian/overrides" "$stage/DEBIAN"
install -m 0644 dist/*.js dist/package.json "$lib/dist/"
chmod 0755 "$lib/dist/cli.js"
sh src/launcher/build.sh "$lib/dist/jobbox-hook"
strip --remove-section=.comment "$lib/dist/jobbox-hook"
# The hooks: shell shims, and links to the launcher, which knows its hook by the name it runs as.
for f in hooks/lsf/esub hooks/lsf/esub.docker hooks/lsf/starter; do install -m 0755 "$f" "$lib/$f"; done
for f in hooks/gc hooks/lsf/pre-exec hooks/lsf/post-exec hooks/slurm/prolog hooks/slurm/epilog; do
  ln -s "$(readlink "$f")" "$lib/$f"
done
ln -s ../lib/jobbox/dist/cli.js "$stage/usr/bin/jobbox"
# The conffile is the example with every setting commented out: until an admin writes a queue
# and an image, every hook refuses with one line about the config instead of running the example's.
{
  printf '; jobbox refuses this file until it has a [queue] and an [image]: see docs/operations.md\n'
  sed -E 's/^([^;#[:space:]])/;\1/' etc/jobbox.ini.example
} >"$stage/etc/jobbox/jobbox.ini"
chmod 0644 "$stage/etc/jobbox/jobbox.ini"
install -m 0644 packaging/logrotate "$stage/etc/logrotate.d/jobbox"
install -m 0644 etc/jobbox-gc.service etc/jobbox-gc.timer "$stage/lib/systemd/system/"
install -m 0644 packaging/lintian-overrides "$stage/usr/share/lintian/overrides/jobbox"
node packaging/help.mjs man | gzip -9n >"$stage/usr/share/man/man1/jobbox.1.gz"

# Docs, the changelog Debian wants, and the copyright of everything the bundle contains.
install -m 0644 README.md "$doc/"
install -m 0644 docs/*.md "$doc/docs/"
date=$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
printf 'jobbox (%s) unstable; urgency=medium\n\n  * Built from the jobbox repository at %s.\n\n -- jobbox developers <maintainers@jobbox.invalid>  %s\n' \
  "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo 'an unknown commit')" "$date" | gzip -9n >"$doc/changelog.gz"
node packaging/copyright.mjs >"$doc/copyright"
chmod 0644 "$doc/changelog.gz" "$doc/copyright"

cat >"$stage/DEBIAN/control" <<EOF
Package: jobbox
Version: $version
Architecture: $arch
Maintainer: jobbox developers <maintainers@jobbox.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: nodejs (>= 20.19), openssh-client, util-linux (>= 2.36), perl-base (>= 5.32)
Recommends: docker.io | docker-ce, logrotate
Suggests: slurm-wlm
Section: admin
Priority: optional
Description: batch-system job wrapper and multi-node MPI container launcher
 jobbox runs each LSF or Slurm job inside containers started as the job's
 owner on every node the scheduler allocated, with a per-job sshd, so that a
 stock mpirun spans them. It installs as the scheduler's own hooks: an esub or
 job_submit.lua at submit, a root pre-exec or Prolog that starts the
 containers, a job starter or wrapped batch script, and a post-exec or Epilog
 that removes them. jobbox gc reaps what a crashed hook left behind.
EOF
printf '/etc/jobbox/jobbox.ini\n/etc/logrotate.d/jobbox\n' >"$stage/DEBIAN/conffiles"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/"*
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
