#!/usr/bin/env bash
# The PostgreSQL work queue's claim benchmark: starts a throwaway PostgreSQL
# 15 as the test fixture does (tests/postgres/start.sh, 127.0.0.1, fsync off),
# runs mia_cluster_queue_bench with 3 replicas (threads, one connection each)
# and with 1 for comparison, and stops it. Results go to docs/benchmarks.md by
# hand ("Work queue on PostgreSQL"). Not part of `make bench`.
#
#   bash bench/cluster_queue.sh BUILD_DIR [audits=10] [units_per_audit=300]
set -euo pipefail
BUILD=${1:-build}
AUDITS=${2:-10}
UNITS=${3:-300}
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH="$BUILD/bench/mia_cluster_queue_bench"
[[ -x "$BENCH" ]] || { echo "cluster_queue.sh: $BENCH is missing (build it first)" >&2; exit 2; }
DIR="$(cd "$BUILD" && pwd)/bench-postgres"
trap 'bash "$HERE/../tests/postgres/stop.sh" "$DIR"' EXIT
bash "$HERE/../tests/postgres/start.sh" "$DIR" >/dev/null
URL=$(cat "$DIR/url")
uptime
for replicas in 3 1; do
  echo "== $replicas replica(s)"
  "$BENCH" "$URL" "$replicas" "$AUDITS" "$UNITS" 2
done
