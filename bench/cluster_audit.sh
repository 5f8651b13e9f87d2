#!/usr/bin/env bash
# An audit of 16 small models (1 target + 15 references, MLPs on a synthetic
# 600-row CSV, one thread each) run three ways in the same run:
#   single   one mia-server on its own SQLite store (no shared queue)
#   1 x pg   one replica on PostgreSQL with a shared artifact folder
#   3 x pg   three replicas on the same PostgreSQL and folder
# Wall time from submit to SUCCEEDED (`mia submit --follow`), fresh caches
# each time (a new seed), REPS repetitions, best and mean. The queue's
# overhead per unit is (1 x pg - single) / 16: what claiming, leasing and
# reloading the data for each unit cost over running the same audit in one
# piece. On one 2-core machine three replicas share the same cores, so they
# show no speedup; docs/benchmarks.md gives the model for several machines.
#
#   bash bench/cluster_audit.sh BUILD_DIR
#
# Starts its own PostgreSQL 15 with tests/postgres/start.sh (Debian's
# postgresql-15). Knobs: REPS (3), EPOCHS (300).
set -euo pipefail
BUILD=$(readlink -f "${1:-build}")
REPS=${REPS:-3}
EPOCHS=${EPOCHS:-300}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# write_csv: the synthetic CSV the cluster tests use.
source "$HERE/../tests/integration/lib.sh"
MIA="$BUILD/client/mia"
SERVER_BIN="$BUILD/server/mia-server"
for b in "$MIA" "$SERVER_BIN"; do
  [[ -x "$b" ]] || { echo "cluster_audit.sh: $b is missing (build it)" >&2; exit 2; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bash "$HERE/../tests/postgres/stop.sh" "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
bash "$HERE/../tests/postgres/start.sh" "$tmp/pg" >/dev/null
BASE_URL=$(cat "$tmp/pg/url")

echo "# $(date -u '+%Y-%m-%d %H:%M') UTC on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$tmp/root"
write_csv "$tmp/root/train.csv" 7
spec() {
  cat <<EOF2
run: {random_seed: $1, num_experiments: 1, threads: 1}
data: {dataset: csv, data_dir: train.csv, pool_size: 400, population_size: 200}
train: {model_name: mlp, hidden: [32], batched: false, optimizer: sgd, learning_rate: 0.05,
        epochs: $EPOCHS, batch_size: 32}
audit: {attacks: [rmia], num_ref_models: 15, bootstrap: 0}
EOF2
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {  # until `mia list` answers
  for _ in $(seq 1 300); do "$MIA" list --server "127.0.0.1:$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
# start NAME EXTRA_FLAGS...: a server; its port in $port
start() {
  local name=$1; shift
  port=$(free_port)
  "$SERVER_BIN" --listen_address="127.0.0.1:$port" --data_dir="$tmp/data-$name" \
    --data_roots="$tmp/root" --threads_per_job=1 --workers=1 --metrics_port=0 "$@" \
    >"$tmp/$name.log" 2>&1 &
  pids+=("$!")
  wait_port "$port"
}
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}
seed=100
# run LABEL: REPS audits against $MIA_AT, printing each wall time
run() {
  local label=$1 times=() t0 t1
  for _ in $(seq 1 "$REPS"); do
    seed=$((seed + 1))
    spec "$seed" > "$tmp/spec.yaml"
    t0=$(date +%s.%N)
    "$MIA" submit "$tmp/spec.yaml" --follow --server "$MIA_AT" >"$tmp/out" 2>"$tmp/err" \
      || { echo "$label: audit failed"; tail -3 "$tmp/err"; exit 1; }
    t1=$(date +%s.%N)
    # Every model trained, none from a cache: the runs are comparable.
    "$MIA" report "$(head -1 "$tmp/out")" --out "$tmp/rep-$seed" --server "$MIA_AT" >/dev/null
    python3 - "$tmp/rep-$seed/models.json" "$label" <<'PY' >&2
import json, sys
m = json.load(open(sys.argv[1]))["models"]
src = [x["source"] for x in m]
print("  %s: %d models, sources %s, training seconds %.2f" % (
    sys.argv[2], len(m), sorted(set(src)), sum(x["seconds"] for x in m)))
PY
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  printf '%s' "${times[*]}" | python3 -c "
import sys
t = [float(x) for x in sys.stdin.read().split()]
print('%-8s best %6.2f s  mean %6.2f s  (%s)' % ('$label', min(t), sum(t) / len(t), ', '.join('%.2f' % x for x in t)))
print(min(t), file=open('$tmp/best_$label', 'w'))"
}

start single
MIA_AT="127.0.0.1:$port"
run single
stop_all

db=0
for n in 1 3; do
  db=$((db + 1))
  psql "$BASE_URL" -qc "CREATE DATABASE bench_$db" >/dev/null
  url="${BASE_URL%/*}/bench_$db"
  first=""
  for i in $(seq 1 "$n"); do
    start "r$n-$i" --store="$url" --replica_id="r$n-$i" --artifact_store="$tmp/shared-$n" \
      --cluster_lease_seconds=10 --unit_workers=1
    [[ -z "$first" ]] && first=$port
  done
  MIA_AT="127.0.0.1:$first"
  run "${n}xpg"
  stop_all
done
python3 - "$tmp" <<'PY'
import sys
d = sys.argv[1]
best = {k: float(open("%s/best_%s" % (d, k)).read()) for k in ("single", "1xpg", "3xpg")}
print("queue overhead per unit (1 x pg - single) / 16: %.3f s" % ((best["1xpg"] - best["single"]) / 16))
PY
