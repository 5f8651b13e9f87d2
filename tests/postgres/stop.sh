#!/usr/bin/env bash
# Stops the test PostgreSQL that tests/postgres/start.sh DIR started
# (pg_ctl stop -m fast) and removes DIR.
#
#   tests/postgres/stop.sh DIR
set -uo pipefail
dir=${1:?usage: stop.sh DIR}
if [ -x "$dir/ctl" ]; then "$dir/ctl" stop >/dev/null 2>&1 || true; fi
rm -rf "$dir"
