#!/bin/sh
# Builds the launcher every root hook line runs (src/launcher/jobbox-hook.c): dist/jobbox-hook
# for this checkout, or `build.sh OUT` for the package (packaging/deb.sh), which installs it
# below root-only directories and so gets no allowance for a sticky one.
# Static and with musl: there is no loader to read LD_PRELOAD or LD_AUDIT, and musl's start-up
# reads nothing from the environment (glibc's static start-up still parses GLIBC_TUNABLES).
set -eu
cd "$(dirname "$0")/../.."
command -v musl-gcc >/dev/null || {
  echo 'jobbox: build: musl-gcc not found (Debian: apt-get install musl-tools): needed for dist/jobbox-hook' >&2
  exit 1
}
out=${1:-}
flags=
if [ -z "$out" ]; then
  out=dist/jobbox-hook
  # The launcher refuses an install below a directory others may write, sticky ones too (see
  # checkOwned). A checkout built below one, such as a CI clone in /tmp, is let through, loudly.
  dir=$(pwd -P)
  while [ "$dir" != / ]; do
    dir=$(dirname "$dir")
    if [ -k "$dir" ] && [ -n "$(find "$dir" -maxdepth 0 -perm -o+w)" ]; then
      echo "jobbox: build: $dir, above this checkout, is world-writable (sticky): the hook launcher will accept it, and anyone able to create $dir/node_modules can run code as root; install below a root-only path instead" >&2
      flags=-DJOBBOX_ALLOW_STICKY
    fi
  done
fi
mkdir -p "$(dirname "$out")"
musl-gcc -static -s -O2 -Wall -Wextra -Werror $flags -o "$out" src/launcher/jobbox-hook.c
