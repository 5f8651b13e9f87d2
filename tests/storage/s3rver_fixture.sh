#!/usr/bin/env bash
# The ctest fixture "s3": a real S3-compatible server (npm s3rver 3.7.1,
# pinned with its integrity hashes by npm/package-lock.json and installed into
# the build tree) on 127.0.0.1 with a free port, its objects in a temporary
# folder, the bucket "mia-test" created at start. Tests read the endpoint
# from STATE/endpoint (one line, "http://127.0.0.1:PORT"); the server accepts
# the access key id S3RVER (any secret: s3rver does not verify SigV4
# signatures, only the key id).
#   s3rver_fixture.sh start STATE [NPM] [NODE]
#   s3rver_fixture.sh stop STATE
# Without node or npm, or with MIA_OFFLINE set and the package not fetched,
# start writes no endpoint and succeeds: the tests that need it skip.
set -u
cmd=${1:?usage: s3rver_fixture.sh start|stop STATE [NPM] [NODE]}
state=${2:?usage: s3rver_fixture.sh start|stop STATE [NPM] [NODE]}
npm=${3:-npm}
node=${4:-node}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$state" && state=$(cd "$state" && pwd) || exit 1
modules="$state/npm/node_modules"
version=3.7.1

stop() {
  # Only our server: a stale pid file may name another process by now.
  if [ -f "$state/pid" ] && grep -qs s3rver_start.js "/proc/$(cat "$state/pid")/cmdline"; then
    pid=$(cat "$state/pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$state/pid" "$state/endpoint"
  if [ -L "$state/data" ]; then
    rm -rf "$(readlink "$state/data")"
    rm -f "$state/data"
  fi
  return 0
}

case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "s3rver_fixture: unknown command $cmd (start, stop)" >&2; exit 2 ;;
esac

stop  # a server left by an interrupted run
mkdir -p "$state/npm" || exit 1
if ! command -v "$node" >/dev/null 2>&1 || ! command -v "$npm" >/dev/null 2>&1; then
  echo "s3rver_fixture: node or npm missing (scripts/install-deps.sh installs them); the S3 tests skip" >&2
  exit 0
fi
installed="$modules/s3rver/package.json"
if ! { [ -f "$installed" ] && grep -q "\"version\": \"$version\"" "$installed" &&
       cmp -s "$here/npm/package-lock.json" "$state/npm/package-lock.json"; }; then
  cp "$here/npm/package.json" "$here/npm/package-lock.json" "$state/npm/" || exit 1
  if ! timeout 300 "$npm" ci --prefix "$state/npm" --no-audit --no-fund --ignore-scripts; then
    if [ -n "${MIA_OFFLINE:-}" ]; then
      echo "s3rver_fixture: npm ci failed; MIA_OFFLINE is set, so the S3 tests skip" >&2
      exit 0
    fi
    echo "s3rver_fixture: npm ci failed: the S3 tests need the npm registry (set MIA_OFFLINE=1 to skip them)" >&2
    exit 1
  fi
fi
data=$(mktemp -d "${TMPDIR:-/tmp}/mia-s3rver.XXXXXX") || exit 1
ln -sfn "$data" "$state/data"
: > "$state/out"
setsid "$node" "$here/s3rver_start.js" "$modules" "$data" > "$state/out" 2> "$state/err" < /dev/null &
echo $! > "$state/pid"
for _ in $(seq 200); do
  if grep -q '^http://' "$state/out" 2>/dev/null; then
    head -n 1 "$state/out" > "$state/endpoint.tmp" && mv "$state/endpoint.tmp" "$state/endpoint"
    echo "s3rver at $(cat "$state/endpoint") (bucket mia-test)"
    exit 0
  fi
  kill -0 "$(cat "$state/pid")" 2>/dev/null || break
  sleep 0.1
done
echo "s3rver_fixture: s3rver did not start:" >&2
cat "$state/err" >&2
stop
exit 1
