#!/usr/bin/env bash
# Black-box test of several mia-server replicas on one PostgreSQL (its own,
# started with tests/postgres/start.sh: the test restarts it, which must not
# disturb other tests) and one shared artifact folder (as a
# ReadWriteMany volume would be): three replicas share an audit's units of
# work; a replica killed with SIGKILL mid-training is taken over and the
# audit ends with the scores of an uninterrupted run, no model stored twice;
# a drained replica hands its units back; PostgreSQL restarted mid-audit
# loses nothing; a cancel on another replica stops an audit.
#
# Then two replicas on an S3-compatible server (npm s3rver, installed by the
# ctest fixture `s3`, started here on its own): the S3 server stopped
# mid-audit makes units fail UNAVAILABLE and retry until it is back.
#
# Usage: cluster_test.sh PATH_TO_MIA_SERVER PATH_TO_MIA PYTHON_STUB_DIR [S3RVER_STATE_DIR]
# Exit 77 (skipped) when there is no PostgreSQL and MIA_SKIP_POSTGRES=1.
set -u
SERVER=$(readlink -f "${1:?path to the mia-server binary}")
MIA=$(readlink -f "${2:?path to the mia binary}")
STUBS=$(readlink -f "${3:?folder with mia/v1/audit_pb2.py}")
S3STATE=${4:-}
TESTS=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
GRPC_PROTO=/usr/share/grpc-proto
WORK=$(mktemp -d)
PGDIR="$WORK/pg"
PIDS=()
DB=""

cleanup() {
  local p
  for p in "${PIDS[@]}" ${S3_PID:+"$S3_PID"}; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  bash "$TESTS/postgres/stop.sh" "$PGDIR" >/dev/null 2>&1
  if [ -n "${MIA_KEEP_WORK:-}" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"
# shellcheck source=tests/integration/lib.sh
source "$TESTS/integration/lib.sh"

if ! bash "$TESTS/postgres/start.sh" "$PGDIR" >pg_start.log 2>&1; then
  echo "FAIL cannot start PostgreSQL:"; sed 's/^/     /' pg_start.log | tail -5
  echo "0 passed, 1 failed"; exit 1
fi
if [ ! -s "$PGDIR/url" ]; then
  echo "skipped: no PostgreSQL (MIA_SKIP_POSTGRES=1)"
  exit 77
fi
prepare_stubs
mkdir -p root shared

# A database of its own on the fixture's server.
BASE_URL=$(cat "$PGDIR/url")
DB="mia_cluster_$$"
# (Retried: CREATE DATABASE fails while another session uses template1.)
for _ in $(seq 1 50); do
  psql "$BASE_URL" -qc "CREATE DATABASE $DB" >psql.err 2>&1 && break
  sleep 0.2
done
sql_base() { psql "$BASE_URL" -tAqc "$1" 2>/dev/null; }
[ "$(sql_base "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 1 ] \
  && ok "database $DB created" || { bad "create database"; show psql.err; finish; }
URL="${BASE_URL%/*}/$DB"
sql() { psql "$URL" -tAqc "$1" 2>/dev/null; }

write_csv root/train.csv 7
# spec SEED EPOCHS: 1 target and 8 reference models, trained one at a time.
spec() { mlp_yaml train.csv "$2" "$1" 8; }
spec 5 300 > a.yaml
spec 6 1500 > b.yaml
spec 7 600 > c.yaml
spec 8 600 > d.yaml
spec 9 100000 > e.yaml

# start_replica NAME [ARTIFACT_STORE FLAGS...]: replica NAME on the shared
# store and artifact folder (or the store given); its ports in PORT_<NAME>,
# METRICS_<NAME>, its pid in PID_<NAME>.
start_replica() {
  local name=$1 store=${2:-$WORK/shared} port metrics
  shift; shift || true
  port=$(free_port)
  metrics=$(free_port)
  printf -v "PORT_$name" '%s' "$port"
  printf -v "METRICS_$name" '%s' "$metrics"
  "$SERVER" --listen_address="127.0.0.1:$port" --data_dir="$WORK/data-$name" \
    --data_roots="$WORK/root" --store="$URL" --replica_id="$name" \
    --artifact_store="$store" "$@" --cluster_lease_seconds=6 --threads_per_job=1 --workers=1 \
    --unit_workers=1 --metrics_port="$metrics" --metrics_address=127.0.0.1 \
    --drain_timeout_seconds=20 >>"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  printf -v "PID_$name" '%s' "$pid"
  wait_health "$port" 30 || { echo "     replica $name did not become healthy:"; show "$WORK/$name.log"; return 1; }
}
at() { local v="PORT_$1"; echo "127.0.0.1:${!v}"; }
trained() {  # trained NAME: the replica's mia_models_trained_total
  local v="METRICS_$1"
  curl -s "http://127.0.0.1:${!v}/metrics" | awk '$1 == "mia_models_trained_total" {print int($2)}'
}
# holder AUDIT: the replica that holds the audit now (the shared queue's record).
holder() { sql "SELECT holder FROM jobs WHERE id = '${1#audits/}'"; }
units_done() { sql "SELECT count(*) FROM work_units WHERE job_id = '${1#audits/}' AND state = 'DONE'"; }
# wait_units AUDIT N [TRIES]: waits (0.1 s a try, 600 tries by default) until
# N of the audit's units are DONE; the caller checks what it found.
wait_units() {
  local d
  for _ in $(seq 1 "${3:-600}"); do
    d=$(units_done "$1"); [ "${d:-0}" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
# scores_of SERVER AUDIT OUT
scores_of() { "$MIA" scores "$2" --server "$1" --out "$3" >/dev/null 2>err.txt || show err.txt; }

# The uninterrupted runs, on one server with its own SQLite store.
REF_PORT=$(free_port)
"$SERVER" --listen_address="127.0.0.1:$REF_PORT" --data_dir="$WORK/data-ref" \
  --data_roots="$WORK/root" --threads_per_job=1 --workers=1 >>"$WORK/ref.log" 2>&1 &
PIDS+=("$!")
wait_health "$REF_PORT" 30 && ok "reference server (SQLite) healthy" || { bad "reference server"; finish; }
REF="127.0.0.1:$REF_PORT"
"$MIA" submit a.yaml --follow --server "$REF" >ref_a.out 2>ref_a.err &
REF_A_PID=$!
"$MIA" submit b.yaml --follow --server "$REF" >ref_b.out 2>ref_b.err &
REF_B_PID=$!

for r in r1 r2 r3; do
  start_replica "$r" && ok "replica $r healthy on the shared store" || { bad "replica $r"; finish; }
done
export MIA_SERVER
MIA_SERVER=$(at r1)

# ---------------------------------------------------------------------------
# 1. An audit of 9 models: its units spread over the three replicas, watched
# from another replica than the one it was submitted to.
expect "submit to r1" 0 "" -- "$MIA" submit a.yaml
A=$(head -1 out.txt)
expect "watch from r3: SUCCEEDED" 0 "SUCCEEDED" -- timeout 300 "$MIA" watch "$A" --server "$(at r3)"
t1=$(trained r1); t2=$(trained r2); t3=$(trained r3)
echo "     models trained: r1=$t1 r2=$t2 r3=$t3"
[ "${t1:-0}" -gt 0 ] && [ "${t2:-0}" -gt 0 ] && [ "${t3:-0}" -gt 0 ] \
  && ok "every replica trained models of the audit (mia_models_trained_total)" \
  || bad "every replica trained models: r1=$t1 r2=$t2 r3=$t3"
[ $((t1 + t2 + t3)) -eq 9 ] && ok "9 models trained in all, none twice" || bad "models trained in all: $((t1 + t2 + t3))"
[ "$(units_done "$A")" = 9 ] && ok "9 units DONE in the shared queue" || bad "units done: $(units_done "$A")"
wait "$REF_A_PID" && ok "reference run of the same spec SUCCEEDED" || { bad "reference run a"; show ref_a.err; }
scores_of "$(at r2)" "$A" a_scores.csv
scores_of "$REF" "$(head -1 ref_a.out)" a_ref.csv
[ -s a_scores.csv ] && cmp -s a_scores.csv a_ref.csv \
  && ok "the replicas' scores equal one server's ($(($(wc -l <a_scores.csv) - 1)) rows)" \
  || { bad "the replicas' scores differ from one server's"; diff a_scores.csv a_ref.csv | head -4; }
expect "report downloaded from another replica" 0 "" -- "$MIA" report "$A" --out a_report --server "$(at r2)"
[ -s a_report/result.json ] && ok "report has result.json" || bad "report lacks result.json"

# ---------------------------------------------------------------------------
# 2. kill -9 the replica holding an audit mid-training: the others take the
# audit and its units over; the result equals the uninterrupted run's; models
# finished before the kill are not trained again.
ls shared/models/*.pt 2>/dev/null | sort > pre_b.txt
expect "submit the crash-test audit" 0 "" -- "$MIA" submit b.yaml
B=$(head -1 out.txt)
wait_units "$B" 2 1200 || true
H=$(holder "$B")
d=$(units_done "$B")
if [ -n "$H" ] && [ "${d:-0}" -ge 2 ] && [ "${d:-0}" -lt 9 ]; then
  ok "crash audit held by $H with $d/9 units done"
  ls shared/models/*.pt | sort | comm -13 pre_b.txt - > before_kill.txt
  xargs -r stat -c '%n %i %Y' < before_kill.txt > before_kill.stat
  v="PID_$H"; kill -9 "${!v}"; wait "${!v}" 2>/dev/null
  ok "replica $H killed (SIGKILL) with $(wc -l <before_kill.txt) model(s) saved"
  expect "the crash audit SUCCEEDS on the other replicas" 0 "SUCCEEDED" -- \
    timeout 300 "$MIA" watch "$B" --server "$( [ "$H" = r1 ] && at r2 || at r1 )"
  xargs -r stat -c '%n %i %Y' < before_kill.txt > after_kill.stat
  cmp -s before_kill.stat after_kill.stat \
    && ok "models saved before the kill were not written again" \
    || { bad "models saved before the kill were rewritten"; diff before_kill.stat after_kill.stat | head -4; }
  n_models=$(ls shared/models/*.pt | sort | comm -13 pre_b.txt - | wc -l)
  [ "$n_models" -eq 9 ] && ok "9 models of the crash audit stored, none twice" || bad "models stored: $n_models"
  [ "$(units_done "$B")" = 9 ] && ok "9 units DONE after the take-over" || bad "units done: $(units_done "$B")"
  wait "$REF_B_PID" && ok "reference run of the crash spec SUCCEEDED" || { bad "reference run b"; show ref_b.err; }
  scores_of "$( [ "$H" = r1 ] && at r2 || at r1 )" "$B" b_scores.csv
  scores_of "$REF" "$(head -1 ref_b.out)" b_ref.csv
  [ -s b_scores.csv ] && cmp -s b_scores.csv b_ref.csv \
    && ok "the taken-over audit's scores equal the uninterrupted run's" \
    || { bad "the taken-over audit's scores differ"; diff b_scores.csv b_ref.csv | head -4; }
  start_replica "$H" && ok "replica $H restarted" || bad "replica $H restarted"
else
  bad "crash audit mid-training: holder '$H', $d units done"
fi
MIA_SERVER=$(at r1)

# ---------------------------------------------------------------------------
# 3. Drain (SIGTERM) the replica holding an audit: it hands the audit and its
# units back at once and the others finish it.
expect "submit the drain-test audit" 0 "" -- "$MIA" submit c.yaml
C=$(head -1 out.txt)
wait_units "$C" 1 || true
H=$(holder "$C")
if [ -n "$H" ]; then
  v="PID_$H"; kill -TERM "${!v}"
  timeout 60 tail --pid="${!v}" -f /dev/null && ok "replica $H drained and stopped" || bad "replica $H did not stop"
  [ "$(sql "SELECT count(*) FROM work_units WHERE holder = '$H' AND state = 'RUNNING'")" = 0 ] \
    && ok "the drained replica holds no unit" || bad "the drained replica still holds units"
  other=$( [ "$H" = r1 ] && echo r2 || echo r1 )
  expect "the drained audit SUCCEEDS on the others" 0 "SUCCEEDED" -- \
    timeout 300 "$MIA" watch "$C" --server "$(at "$other")"
  grep -q "\"audit\":\"audits/${C#audits/}\".*\"from\":\"PENDING\",\"state\":\"RUNNING\"" "$WORK/$other.log" "$WORK/r3.log" "$WORK/r1.log" "$WORK/r2.log" \
    && ok "another replica claimed the drained audit" || bad "no replica claimed the drained audit"
  start_replica "$H" && ok "replica $H restarted" || bad "replica $H restarted"
else
  bad "drain audit: no holder found"
fi
MIA_SERVER=$(at r1)

# ---------------------------------------------------------------------------
# 4. PostgreSQL restarted mid-audit: the replicas reconnect, nothing is lost.
expect "submit the restart-test audit" 0 "" -- "$MIA" submit d.yaml
D=$(head -1 out.txt)
wait_units "$D" 1 || true
"$PGDIR/ctl" restart >pgctl.out 2>&1 && ok "PostgreSQL restarted mid-audit" || { bad "PostgreSQL restart"; show pgctl.out; }
expect "the audit SUCCEEDS after the restart" 0 "SUCCEEDED" -- timeout 300 "$MIA" watch "$D"
[ "$(units_done "$D")" = 9 ] && ok "9 units DONE after the restart" || bad "units done: $(units_done "$D")"
for r in r1 r2 r3; do
  expect "replica $r serves after the restart" 0 "" -- "$MIA" list --server "$(at "$r")"
done

# ---------------------------------------------------------------------------
# 5. A cancel on another replica than the holder's stops the audit.
expect "submit a long audit" 0 "" -- "$MIA" submit e.yaml
E=$(head -1 out.txt)
wait_state "$E" RUNNING 60 && ok "long audit RUNNING" || bad "long audit RUNNING"
H=$(holder "$E")
other=$( [ "$H" = r3 ] && echo r2 || echo r3 )
expect "cancel from $other" 0 "" -- "$MIA" cancel "$E" --server "$(at "$other")"
expect "the audit ends CANCELLED" 0 "CANCELLED" -- bash -c \
  "for i in \$(seq 1 600); do s=\$('$MIA' get '$E' --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"state\"])'); case \$s in CANCELLED|SUCCEEDED|FAILED) echo \$s; exit 0;; esac; sleep 0.1; done; echo timeout"

# ---------------------------------------------------------------------------
# 6. The S3 server down mid-audit: units fail UNAVAILABLE and are retried
# (no attempt counted) until it is back; the audit then SUCCEEDS.
MODULES="$S3STATE/npm/node_modules"
if [ -z "$S3STATE" ] || [ ! -d "$MODULES/s3rver" ] || ! command -v node >/dev/null; then
  echo "skip S3 section: no s3rver package (the ctest fixture s3 installs it)"
else
  for r in r1 r2 r3; do v="PID_$r"; kill -TERM "${!v}" 2>/dev/null; wait "${!v}" 2>/dev/null; done
  mkdir -p s3data
  start_s3() {  # start_s3 [PORT]
    setsid node "$TESTS/storage/s3rver_start.js" "$MODULES" "$WORK/s3data" ${1:-} >s3.out 2>s3.err </dev/null &
    S3_PID=$!
    for _ in $(seq 1 100); do grep -q '^http://' s3.out 2>/dev/null && return 0; sleep 0.1; done
    return 1
  }
  start_s3 && ok "private s3rver started" || { bad "s3rver start"; show s3.err; finish; }
  ENDPOINT=$(head -1 s3.out)
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
  for r in s1 s2; do
    start_replica "$r" "s3://mia-test/cluster" --s3_endpoint="$ENDPOINT" \
      && ok "replica $r on S3" || { bad "replica $r on S3"; show "$WORK/$r.log"; finish; }
  done
  spec 10 600 > f.yaml
  expect "submit the S3-test audit" 0 "" -- "$MIA" submit f.yaml --server "$(at s1)"
  F=$(head -1 out.txt)
  wait_units "$F" 1 || true
  kill -9 "$S3_PID"; wait "$S3_PID" 2>/dev/null
  ok "s3rver stopped with $(units_done "$F")/9 units done"
  for _ in $(seq 1 300); do
    grep -qh '"unit of work failed".*"code":"UNAVAILABLE"' "$WORK/s1.log" "$WORK/s2.log" && break
    sleep 0.1
  done
  grep -qh '"unit of work failed".*"code":"UNAVAILABLE"' "$WORK/s1.log" "$WORK/s2.log" \
    && ok "units fail UNAVAILABLE while S3 is down" || bad "no unit failed UNAVAILABLE"
  sleep 3
  st=$("$MIA" get "$F" --json --server "$(at s1)" 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null)
  [ "$st" = RUNNING ] && ok "the audit waits (RUNNING) while S3 is down" || bad "audit state while S3 is down: $st"
  start_s3 "${ENDPOINT##*:}" && ok "s3rver back on the same endpoint" || { bad "s3rver restart"; show s3.err; }
  expect "the audit SUCCEEDS once S3 is back" 0 "SUCCEEDED" -- timeout 300 "$MIA" watch "$F" --server "$(at s2)"
  [ "$(sql "SELECT count(*) FROM work_units WHERE job_id = '${F#audits/}' AND state = 'DONE' AND attempts <= 1")" = 9 ] \
    && ok "no attempt counted for the outage" \
    || bad "attempts counted: $(sql "SELECT string_agg(attempts::text, ',') FROM work_units WHERE job_id = '${F#audits/}'")"
fi

finish
