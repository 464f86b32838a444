#!/usr/bin/env bash
# `npm run bench [-- p1 …]`: builds jobbox, bundles the benchmarks for plain node (esbuild is a
# dev dependency), and runs them as root (the testbed and the port directory need it).
set -euo pipefail
cd "$(dirname "$0")/.."
export SLURM_CONF=${SLURM_CONF:-/var/lib/jobbox-testbed/etc/slurm.conf}
npm run -s build
npx esbuild bench/run.ts --bundle --platform=node --format=esm --packages=external \
  --log-level=warning --outdir=dist/bench --out-extension:.js=.mjs --splitting
exec node dist/bench/run.mjs "$@"
