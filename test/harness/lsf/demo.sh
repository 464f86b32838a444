#!/usr/bin/env bash
# The demo (docs/lsf.md): from a fresh Debian machine (as root) to an MPI job submitted through the
# LSF contract harness, across containers on three testbed nodes, and back to nothing.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash test/testbed/testbed.sh deps
[[ -d node_modules ]] || npm ci --no-audit --no-fund
npm run -s build
bash test/testbed/testbed.sh up
trap 'bash test/testbed/testbed.sh down' EXIT
# The harness is TypeScript; esbuild (a dev dependency) bundles it for plain node.
npx esbuild test/harness/lsf/demo.ts --bundle --platform=node --format=esm --packages=external \
  --log-level=warning --outfile=dist/demo/lsf-demo.mjs
node dist/demo/lsf-demo.mjs
