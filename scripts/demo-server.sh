#!/usr/bin/env bash
# The README's main job: the demo audit (configs/demo.yaml) through the
# service. Starts a local mia-server on its embedded defaults (SQLite and files
# under mia-runs/server-data, so a rerun reuses the trained models; data roots:
# this repository, /usr/share/datasets and /usr/share/games/fortunes), submits
# the demo with `mia submit --follow`, downloads the report to demo-out/report
# and stops the server with SIGTERM.
#   Usage: scripts/demo-server.sh BUILD_DIR [CONFIG]
# CONFIG defaults to configs/demo.yaml; `make demo-llm` passes
# configs/llm-demo.yaml (its report goes to demo-out/llm-demo).
set -euo pipefail
BUILD=$(readlink -f "${1:?usage: $0 BUILD_DIR [CONFIG]}")
CONFIG=${2:-configs/demo.yaml}
OUT=demo-out/report
[ "$CONFIG" = configs/demo.yaml ] || OUT="demo-out/$(basename "$CONFIG" .yaml)"
REPO=$(cd "$(dirname "$0")/.." && pwd)
SERVER="$BUILD/server/mia-server"
MIA="$BUILD/client/mia"
for b in "$SERVER" "$MIA"; do [ -x "$b" ] || { echo "demo-server: missing $b (build it first)" >&2; exit 1; }; done

DATA="$REPO/mia-runs/server-data"
mkdir -p "$DATA"
TMP=$(mktemp -d)
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$SERVER" --listen_address="127.0.0.1:$PORT" --data_dir="$DATA/mia-data" \
  --data_roots="$REPO,/usr/share/datasets,/usr/share/games/fortunes" >"$TMP/server.log" 2>&1 &
SPID=$!
stop() {
  if kill -0 "$SPID" 2>/dev/null; then kill -TERM "$SPID"; wait "$SPID" || true; fi
  cp "$TMP/server.log" "$DATA/server.log" 2>/dev/null || true
  rm -rf "$TMP"
}
trap stop EXIT
export MIA_SERVER="127.0.0.1:$PORT"

# Wait until the server answers (a list call), at most 60 s.
for _ in $(seq 1 600); do
  "$MIA" list --timeout 2 >/dev/null 2>&1 && break
  kill -0 "$SPID" 2>/dev/null || { echo "demo-server: the server exited:" >&2; cat "$TMP/server.log" >&2; exit 1; }
  sleep 0.1
done
echo "demo-server: mia-server on $MIA_SERVER (data dir $DATA/mia-data)" >&2

cd "$REPO"
"$MIA" submit "$CONFIG" --follow | tee "$TMP/submit.out"
NAME=$(grep -m1 -o 'audits/[a-z0-9]*' "$TMP/submit.out")
mkdir -p demo-out
rm -rf "$OUT"
"$MIA" report "$NAME" --out "$OUT"
echo "demo-server: report of $NAME in $REPO/$OUT (server log: $DATA/server.log)" >&2
