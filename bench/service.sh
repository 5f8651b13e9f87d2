#!/usr/bin/env bash
# Service benchmarks: starts a real mia-server (free port, temporary data
# dir, --workers=1), runs `mia_service_bench watch` twice (1,000 WatchAudit
# streams on PENDING audits, first while the single worker sleeps on a named
# pipe, "idle", then while it scores blocker bundles, "busy") and
# `mia_service_bench burst` twice (100 small bundle audits, all CreateAudit
# calls at once, then one after another), stops the server with SIGTERM and
# prints the results table. Results go to docs/benchmarks.md by hand
# ("Service" section). Not part of `make bench` (about 2 minutes, needs
# mia-server).
#
#   bash bench/service.sh BUILD_DIR
#
# Needs BUILD_DIR/server/mia-server, BUILD_DIR/client/mia and
# BUILD_DIR/bench/mia_service_bench (a build without LibTorch is enough:
# only bundle audits run). Knobs (environment): STREAMS (1000), WATCH_AUDITS
# (10), HOLD (40 s), HEARTBEAT (5 s), CALLS (2000), BLOCKERS (6),
# BLOCKER_BOOTSTRAP (resamples of each blocker audit; tune so one runs
# 10-20 s), BURST (100), CONCURRENCY (100 CreateAudit in flight; a second
# burst always runs them one after another), WORKERS (1).
set -euo pipefail
BUILD=${1:-build}
STREAMS=${STREAMS:-1000}
WATCH_AUDITS=${WATCH_AUDITS:-10}
HOLD=${HOLD:-40}
HEARTBEAT=${HEARTBEAT:-5}
CALLS=${CALLS:-2000}
BLOCKERS=${BLOCKERS:-6}
BLOCKER_BOOTSTRAP=${BLOCKER_BOOTSTRAP:-200000}
BURST=${BURST:-100}
CONCURRENCY=${CONCURRENCY:-100}
WORKERS=${WORKERS:-1}

SERVER_BIN="$BUILD/server/mia-server"
MIA="$BUILD/client/mia"
BENCH="$BUILD/bench/mia_service_bench"
for b in "$SERVER_BIN" "$MIA" "$BENCH"; do
  [[ -x "$b" ]] || { echo "service.sh: $b is missing (build it first)" >&2; exit 2; }
done

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Bundles: a small one (the watched and burst audits: 4 models, 300 audit and
# 300 population points, 10 classes) and a larger one for the blocker audits
# that keep the single worker busy while the watched audits stay PENDING.
"$MIA" make-bundle --out "$tmp/small.npz" --models 4 --points 300 --population 300 \
  --classes 10 --seed 1 2>/dev/null
"$MIA" make-bundle --out "$tmp/blocker.npz" --models 8 --points 5000 --population 2000 \
  --classes 10 --seed 2 2>/dev/null

# The idle-worker blocker: a named pipe under the data root. The bundle
# loader's open() waits for a writer (a zero-cost blocker; if a later server
# refuses pipes, that case is skipped with a note).
mkdir "$tmp/roots"
mkfifo "$tmp/roots/pipe.npz"

metrics_port=$(free_port)
"$SERVER_BIN" --data_dir="$tmp/data" --data_roots="$tmp/roots" --listen_address=127.0.0.1:0 \
  --metrics_port="$metrics_port" --metrics_address=127.0.0.1 --workers="$WORKERS" \
  --threads_per_job=1 --heartbeat_seconds="$HEARTBEAT" --max_watchers=2048 \
  --drain_timeout_seconds=60 >"$tmp/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(grep -m1 '"serving"' "$tmp/server.log" 2>/dev/null | grep -o '"port":[0-9]*' | cut -d: -f2 || true)
  [[ -n "$port" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n "$port" ]] || { echo "service.sh: the server did not start" >&2; cat "$tmp/server.log" >&2; exit 1; }
addr="127.0.0.1:$port"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# mia-server pid $server_pid on $addr, metrics 127.0.0.1:$metrics_port, workers=$WORKERS, threads_per_job=1, heartbeat ${HEARTBEAT}s"

small=$("$MIA" upload --server "$addr" "$tmp/small.npz" 2>/dev/null)
blocker=$("$MIA" upload --server "$addr" "$tmp/blocker.npz" 2>/dev/null)

load() { uptime | sed 's/.*load average/load average/'; }
rc=0
common=(--server="$addr" --pid="$server_pid" --metrics="127.0.0.1:$metrics_port")
watch=("${common[@]}" --bundle="$small" --streams="$STREAMS" --audits="$WATCH_AUDITS"
  --hold="$HOLD" --calls="$CALLS")
echo "# load before watch (idle worker): $(load)"
wrc=0
"$BENCH" watch "${watch[@]}" --blocker_path=pipe.npz --blocker_fifo="$tmp/roots/pipe.npz" \
  >"$tmp/watch-idle.out" || wrc=$?
[[ $wrc -eq 0 || $wrc -eq 3 ]] || rc=1
echo "# load before watch (busy worker): $(load)"
"$BENCH" watch "${watch[@]}" --blocker="$blocker" --blockers="$BLOCKERS" \
  --blocker_bootstrap="$BLOCKER_BOOTSTRAP" >"$tmp/watch-busy.out" || rc=1
echo "# load before burst: $(load)"
"$BENCH" burst "${common[@]}" --bundle="$small" --audits="$BURST" --concurrency="$CONCURRENCY" \
  --workers_note="$WORKERS" >"$tmp/burst.out" || rc=1
echo "# load before sequential burst: $(load)"
"$BENCH" burst "${common[@]}" --bundle="$small" --audits="$BURST" --concurrency=1 \
  --workers_note="$WORKERS" >"$tmp/burst-seq.out" || rc=1
echo "# load after: $(load)"

# Stop: SIGTERM drains (nothing is running by now) and exits.
t0=$(date +%s.%N)
kill -TERM "$server_pid"
server_rc=0
wait "$server_pid" || server_rc=$?
t1=$(date +%s.%N)
server_pid=""
[[ $server_rc -eq 0 ]] || rc=1

echo
echo "| case | metric | value |"
echo "|---|---|---|"
cat "$tmp/watch-idle.out" "$tmp/watch-busy.out" "$tmp/burst.out" "$tmp/burst-seq.out"
printf '| server | SIGTERM -> exit | %.2f s, exit code %d |\n' "$(echo "$t1 - $t0" | bc -l)" "$server_rc"
if grep -q '"level":"\(error\|critical\)"' "$tmp/server.log"; then
  echo "# server errors logged:"; grep '"level":"\(error\|critical\)"' "$tmp/server.log" | head -20
fi
exit $rc
