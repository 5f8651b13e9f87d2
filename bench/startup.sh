#!/usr/bin/env bash
# Start-up and small-command costs of the `mia` CLI: wall time (mean and best
# of REPS runs, a shell loop) and peak RSS (/usr/bin/time) of `mia --version`,
# `mia list` against a real mia-server, and `mia score` with RMIA-offline on
# the bench's bundle (10 models x 50,000 audit x 10,000 population points, 10
# classes). Results go to docs/benchmarks.md by hand ("Start-up" section).
#
#   bash bench/startup.sh BUILD_DIR [OTHER_MIA ...]
#
# OTHER_MIA: further mia binaries measured the same way in the same run (an
# older build, for a before/after table). Needs BUILD_DIR/client/mia and
# BUILD_DIR/server/mia-server; knobs (environment): REPS (20), SCORE_REPS (5).
set -euo pipefail
BUILD=${1:-build}
shift || true
REPS=${REPS:-20}
SCORE_REPS=${SCORE_REPS:-5}
MIA="$BUILD/client/mia"
SERVER_BIN="$BUILD/server/mia-server"
for b in "$MIA" "$SERVER_BIN" /usr/bin/time; do
  [[ -x "$b" ]] || { echo "startup.sh: $b is missing (build it; Debian package time)" >&2; exit 2; }
done

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "# $(date -u '+%Y-%m-%d %H:%M') UTC on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# A server with one finished audit, so that `mia list` has a row to print.
mkdir "$tmp/roots"
"$MIA" make-bundle --out "$tmp/roots/small.npz" --models 6 --points 300 --population 300 \
  2>/dev/null
"$SERVER_BIN" --data_dir="$tmp/data" --data_roots="$tmp/roots" --listen_address=127.0.0.1:0 \
  --metrics_port=0 --workers=1 --threads_per_job=1 >"$tmp/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(grep -m1 '"serving"' "$tmp/server.log" 2>/dev/null | grep -o '"port":[0-9]*' | cut -d: -f2 || true)
  [[ -n "$port" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n "$port" ]] || { echo "startup.sh: mia-server did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
printf 'bundle:\n  path: %s/roots/small.npz\n' "$tmp" > "$tmp/job.yaml"
"$MIA" submit "$tmp/job.yaml" --follow --server "127.0.0.1:$port" >/dev/null 2>&1

"$MIA" make-bundle --out "$tmp/big.npz" --models 10 --points 50000 --population 10000 --seed 5 \
  2>/dev/null

# measure LABEL REPS command...: mean and best wall time, peak RSS of one run.
measure() {
  local label=$1 reps=$2
  shift 2
  local best="" total=0
  for _ in $(seq "$reps"); do
    local t0 t1 ms
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    total=$((total + ms))
    if [[ -z "$best" || $ms -lt $best ]]; then best=$ms; fi
  done
  local rss
  /usr/bin/time -o "$tmp/time.txt" -f "%M %U %S" "$@" >/dev/null 2>&1 || true
  rss=$(tail -1 "$tmp/time.txt")
  read -r kb user sys <<<"$rss"
  printf '| %s | %d ms | %d ms | %.1f MB | %s + %s s |\n' "$label" $((total / reps)) "$best" \
    "$(awk -v kb="$kb" 'BEGIN { print kb / 1024 }')" "$user" "$sys"
}

echo "| command | mean wall | best wall | peak RSS | user + sys (one run) |"
echo "|---|---|---|---|---|"
for bin in "$MIA" "$@"; do
  echo "| **$bin** | | | | |"
  measure "mia --version" "$REPS" "$bin" --version
  measure "mia list" "$REPS" "$bin" list --server "127.0.0.1:$port"
  measure "mia score (rmia-offline, 1,000 bootstrap resamples)" "$SCORE_REPS" \
    "$bin" score --bundle "$tmp/big.npz" --attack rmia-offline --out "$tmp/report" -q
  measure "mia score (rmia-offline, --bootstrap 0)" "$SCORE_REPS" \
    "$bin" score --bundle "$tmp/big.npz" --attack rmia-offline --out "$tmp/report" -q --bootstrap 0
done
