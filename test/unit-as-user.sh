#!/bin/sh
# The unit project, as an unprivileged user, which proves it needs no root: as root it drops
# to nobody (setpriv), as anyone else it runs as they are. vitest loads its config without
# writing a temp file beside it (--configLoader runner): to nobody the checkout is read-only.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp node_modules/.bin/vitest run --project unit --configLoader runner "$@"
fi
exec node_modules/.bin/vitest run --project unit --configLoader runner "$@"
