#!/bin/sh
# Builds dist/jobbox-hook, the launcher every root hook line runs (src/launcher/jobbox-hook.c).
# Static and with musl: there is no loader to read LD_PRELOAD or LD_AUDIT, and musl's start-up
# reads nothing from the environment (glibc's static start-up still parses GLIBC_TUNABLES).
set -eu
cd "$(dirname "$0")/../.."
command -v musl-gcc >/dev/null || {
  echo 'jobbox: build: musl-gcc not found (Debian: apt-get install musl-tools): needed for dist/jobbox-hook' >&2
  exit 1
}
mkdir -p dist
musl-gcc -static -s -O2 -Wall -Wextra -Werror -o dist/jobbox-hook src/launcher/jobbox-hook.c
