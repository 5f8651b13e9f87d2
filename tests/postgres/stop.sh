#!/usr/bin/env bash
# Stops the test PostgreSQL that tests/postgres/start.sh DIR started
# (pg_ctl stop -m fast) and removes DIR.
#
#   tests/postgres/stop.sh DIR
set -uo pipefail
dir=${1:?usage: stop.sh DIR}
if [ -x "$dir/ctl" ]; then "$dir/ctl" stop >/dev/null 2>&1 || true; fi
# The server's files, when start.sh put them outside DIR.
if [ -f "$dir/pgdir" ]; then
  pg=$(cat "$dir/pgdir")
  case "$pg" in "$dir"|"") ;; *) rm -rf "$pg" ;; esac
fi
rm -rf "$dir"
