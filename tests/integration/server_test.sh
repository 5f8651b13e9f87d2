#!/usr/bin/env bash
# Black-box integration tests of the audit service: the real `mia-server`
# binary on a free loopback port, driven by the real `mia` CLI and by a Python
# gRPC client (Debian's python3-grpcio with the generated stubs).
#
# Usage: server_test.sh PATH_TO_MIA_SERVER PATH_TO_MIA PYTHON_STUB_DIR
set -u
SERVER=$(readlink -f "${1:?path to the mia-server binary}")
MIA=$(readlink -f "${2:?path to the mia binary}")
STUBS=$(readlink -f "${3:?folder with mia/v1/audit_pb2.py}")
TESTS=$(cd "$(dirname "$0")/.." && pwd)   # tests/, for its helper scripts
PY=/usr/bin/python3   # Debian's python3 with grpcio and protobuf (scripts/install-deps.sh)
GRPC_PROTO=/usr/share/grpc-proto   # Debian's grpc-proto: health and reflection .proto
WORK=$(mktemp -d)
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "${MIA_KEEP_WORK:-}" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"
# shellcheck source=tests/integration/lib.sh
source "$TESTS/integration/lib.sh"
# start_server VAR_PREFIX DATA_DIR PORT [FLAG...]: starts mia-server in the
# background (extra flags appended), its pid in ${PREFIX}_PID, log in
# DATA_DIR.log; waits until it serves.
start_server() {
  local prefix=$1 data=$2 port=$3
  shift 3
  "$SERVER" --listen_address="127.0.0.1:$port" --data_dir="$data" \
    --data_roots="$WORK/root" --enable_reflection --threads_per_job=1 --workers=1 \
    --drain_timeout_seconds=5 "$@" >>"$data.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  printf -v "${prefix}_PID" '%s' "$pid"
  wait_health "$port" 30 ${HEALTH_TLS[@]+"${HEALTH_TLS[@]}"} \
    || { echo "     server did not become healthy:"; show "$data.log"; return 1; }
}
# TLS files wait_health uses for the servers start_server starts (section 5).
HEALTH_TLS=()

# ---------------------------------------------------------------------------
# Prerequisites: grpcio and the stubs, health and reflection stubs (lib.sh).
prepare_stubs
mkdir -p root

# ---------------------------------------------------------------------------
# Data: a synthetic bundle and two small CSV datasets (600 rows x 10 features,
# 4 classes) under the data root.
"$MIA" make-bundle --out root/b.npz --points 400 --population 200 >/dev/null 2>&1 \
  && ok "make-bundle into the data root" || bad "make-bundle into the data root"
write_csv root/train.csv 7
write_csv root/cancel.csv 8
cat > bundle.yaml <<'EOF2'
bundle:
  path: b.npz
  attacks: [rmia, lira]
  bootstrap: 50
EOF2
# The crash-test audit: 6 MLPs trained one at a time (batched: false, so each
# model is saved to the cache on its own) on one thread.
train_yaml() { mlp_yaml "$1" "$2" "$3" 5; }  # train_yaml DATASET EPOCHS SEED
# Epochs: long enough that a model takes about a second here (the kill must
# land while models are still training), short enough for the test.
train_yaml train.csv 2000 5 > train.yaml
train_yaml cancel.csv 100000 6 > cancel.yaml

PORT_A=$(free_port)
METRICS_A=$(free_port)
start_server A "$WORK/data-a" "$PORT_A" --metrics_port="$METRICS_A" --metrics_address=127.0.0.1 \
  && ok "server A healthy" || { bad "server A healthy"; finish; }
PORT_B=$(free_port)
start_server B "$WORK/data-b" "$PORT_B" && ok "server B healthy" || { bad "server B healthy"; finish; }
export MIA_SERVER=127.0.0.1:$PORT_A

# The uninterrupted reference run of the crash-test spec, on server B with its
# own fresh data dir, in the background while the other tests run.
"$MIA" submit train.yaml --follow --server "127.0.0.1:$PORT_B" >ref.out 2>ref.err &
REF_PID=$!
PIDS+=("$REF_PID")

# ---------------------------------------------------------------------------
# 1. Bundle audit with the CLI.
expect "submit bundle job --follow" 0 "SUCCEEDED" -- "$MIA" submit bundle.yaml --follow --label team=qa
NAME=$(head -1 out.txt)
case "$NAME" in audits/*) ok "submit prints the audit name" ;; *) bad "submit prints the audit name: '$NAME'" ;; esac
expect "get" 0 "SUCCEEDED" -- "$MIA" get "$NAME"
grep -qF "team" all.txt && ok "get shows the label" || bad "get shows the label"
expect "get --json" 0 "" -- "$MIA" get "$NAME" --json
$PY -c 'import json; d = json.load(open("out.txt")); assert d["state"] == "SUCCEEDED", d["state"]' 2>/dev/null \
  && ok "get --json parses, SUCCEEDED" || bad "get --json parses, SUCCEEDED"
expect "submit a second bundle job" 0 "" -- "$MIA" submit bundle.yaml --follow
NAME2=$(head -1 out.txt)
expect "list --page-size 1 (one page)" 0 "" -- "$MIA" list --page-size 1
[ "$(grep -c '^audits/' out.txt)" -eq 1 ] && grep -qF -- "--page-token" err.txt \
  && ok "list page of 1 with a continuation hint" || { bad "list page of 1 with a continuation hint"; show all.txt; }
expect "list --page-size 1 --all" 0 "" -- "$MIA" list --page-size 1 --all
grep -qF "$NAME" out.txt && grep -qF "$NAME2" out.txt && [ "$(grep -c '^audits/' out.txt)" -eq 2 ] \
  && ok "list --all follows the pages" || { bad "list --all follows the pages"; show all.txt; }
expect "list --state succeeded" 0 "$NAME" -- "$MIA" list --state succeeded
expect "scores --out" 0 "" -- "$MIA" scores "$NAME" --out scores.csv
head -1 scores.csv | grep -q '^row_id,target,member,rmia,lira' && ok "scores.csv header" || bad "scores.csv header: $(head -1 scores.csv)"
[ "$(wc -l <scores.csv)" -eq 401 ] && ok "scores.csv has 400 rows" || bad "scores.csv rows: $(wc -l <scores.csv)"
expect "scores to stdout" 0 "row_id,target,member" -- "$MIA" scores "$NAME"
expect "report --out" 0 "result.json" -- "$MIA" report "$NAME" --out rep
for f in result.json scores.csv roc.svg summary.md; do
  [ -s "rep/$f" ] && ok "report has $f" || bad "report lacks $f"
done
$PY - <<'PY' && ok "report result.json parses, scores match" || bad "report result.json parses, scores match"
import json
r = json.load(open("rep/result.json"))
names = [x["attack"] for x in r["results"]]
assert names == ["rmia", "lira"], names
assert open("rep/scores.csv").read() == open("scores.csv").read()
PY

# Scripts: `list --json` and `watch --json` instead of tables; names, never
# server paths.
expect "list --json" 0 "" -- "$MIA" list --all --json
$PY - "$NAME" "$NAME2" <<'PY' && ok "list --json: one object with every audit" || { bad "list --json: one object with every audit"; show all.txt; }
import json, sys
d = json.load(open("out.txt"))
names = [a["name"] for a in d["audits"]]
assert sys.argv[1] in names and sys.argv[2] in names, names
assert all(a["state"] == "SUCCEEDED" for a in d["audits"]), d
assert d["next_page_token"] == "", d
PY
expect "watch --json of a finished audit" 0 "" -- "$MIA" watch "$NAME" --json
$PY - "$NAME" <<'PY' && ok "watch --json: JSON lines, the last SUCCEEDED with its result" || { bad "watch --json: JSON lines"; show all.txt; }
import json, sys
lines = [json.loads(l) for l in open("out.txt") if l.strip()]
assert lines and all(l["name"] == sys.argv[1] for l in lines), lines
assert lines[-1]["state"] == "SUCCEEDED" and lines[-1]["result"]["results"], lines[-1]
PY
grep -qF "its report: mia report $NAME --out DIR" err.txt && ok "watch names the report's download command" \
  || { bad "watch names the report's download command"; show all.txt; }
expect "get --json (again)" 0 "" -- "$MIA" get "$NAME" --json
! grep -qF "$WORK" all.txt && ok "get --json shows no server path" || { bad "get --json shows a server path"; show all.txt; }

# A report file deleted under a finished audit: get warns, report names it and exits 3.
rm -f "$WORK/data-a/jobs/${NAME2#audits/}/report/roc.svg"
expect "get: a deleted report file is named" 0 "the server lost 1 file: roc.svg" -- "$MIA" get "$NAME2"
expect "report: a deleted report file: exit 3" 3 "is incomplete: the server lost 1 file: roc.svg" -- \
  "$MIA" report "$NAME2" --out rep2
[ -s rep2/result.json ] && [ ! -e rep2/roc.svg ] && ok "report downloads what is left" \
  || bad "report downloads what is left"

# Versions and help.
expect "mia-server --help: exit 0" 0 "--data_dir" -- "$SERVER" --help
! grep -qF "No flags matched" all.txt && grep -qF -- "--listen_address" all.txt \
  && ok "mia-server --help lists the settings" || { bad "mia-server --help lists the settings"; show all.txt; }
expect "mia-server --version" 0 "" -- "$SERVER" --version
grep -qE '^mia-server [0-9]+\.[0-9]+\.[0-9]+' out.txt && ok "mia-server --version prints the version" \
  || { bad "mia-server --version prints the version"; show all.txt; }
expect "mia --version" 0 "" -- "$MIA" --version
grep -qE '^mia [0-9]+\.[0-9]+\.[0-9]+' out.txt && ok "mia --version prints the version" \
  || { bad "mia --version prints the version"; show all.txt; }

# Addresses: checked before connecting; a name that does not resolve gets a
# DNS hint, not a TLS one.
expect "--server without a port: exit 2" 2 "expected HOST:PORT" -- "$MIA" list --server localhost
expect "--server with a bad port: exit 2" 2 "port must be a number" -- "$MIA" list --server 127.0.0.1:99999
expect "unresolvable host: exit 5, DNS hint" 5 "does not resolve" -- \
  "$MIA" list --server no-such-host.invalid:50051
! grep -qF "TLS" all.txt && ok "unresolvable host: no TLS hint" || { bad "unresolvable host: a TLS hint"; show all.txt; }
expect "get unknown audit: named as the API does" 3 "audits/nope not found" -- "$MIA" get nope
"$MIA" make-bundle --out up.npz --points 300 --population 100 --seed 3 >/dev/null 2>&1
expect "upload" 0 "" -- "$MIA" upload up.npz
ART=$(head -1 out.txt)
[ "$ART" = "$(sha256sum up.npz | cut -d' ' -f1)" ] && ok "artifact id is the SHA-256" || bad "artifact id '$ART'"
printf 'bundle:\n  path: artifact:%s\n  attacks: [rmia]\n  bootstrap: 0\n' "$ART" > art.yaml
expect "submit artifact: job --follow" 0 "SUCCEEDED" -- "$MIA" submit art.yaml --follow
ART_NAME=$(head -1 out.txt)
"$MIA" scores "$ART_NAME" --out art_scores.csv >/dev/null 2>&1
[ "$(wc -l <art_scores.csv 2>/dev/null)" = 301 ] && ok "artifact job scored 300 points" || bad "artifact job scores"
printf 'bundle:\n  path: upload:up.npz\n  attacks: [rmia]\n  bootstrap: 0\n' > upl.yaml
expect "submit upload: job --follow" 0 "SUCCEEDED" -- "$MIA" submit upl.yaml --follow

# The privacy gate through the server: the spec's audit.policy travels as
# AuditSection.policy, the verdict comes back in the AuditResult, and
# `submit --follow` and `watch` exit 7 on FAIL (0 on PASS). Its own seed, so
# that the crash test's models are not these.
train_yaml train.csv 40 11 > gate_fail.yaml
printf '  policy:\n    max_auc: 0.0\n    max_tpr_at_fpr: {0.005: 1}\n' >> gate_fail.yaml
expect "policy FAIL: submit --follow exits 7" 7 "SUCCEEDED" -- "$MIA" submit gate_fail.yaml --follow
GATE_FAIL=$(head -1 out.txt)
grep -q "^policy: FAIL" out.txt && grep -q "FAIL max_auc" out.txt && ok "policy FAIL: the verdict and the failed rule printed" \
  || { bad "policy FAIL: the verdict printed"; show all.txt; }
expect "policy FAIL: watch exits 7" 7 "" -- "$MIA" watch "$GATE_FAIL"
expect "policy FAIL: get --json has the verdict" 0 "" -- "$MIA" get "$GATE_FAIL" --json
$PY - <<'PY' && ok "policy FAIL: AuditResult.policy, and the policy's FPR scored" || { bad "policy in get --json"; show all.txt; }
import json
r = json.load(open("out.txt"))["result"]
# Pretty JSON leaves fields at their default out: pass false is absent.
assert r["policy"]["verdict"] == "FAIL" and not r["policy"].get("pass", False), r["policy"]
assert 0.005 in r["fprs"], r["fprs"]
assert {x["rule"] for x in r["policy"]["rules"]} == {"max_auc", "max_tpr_at_fpr[0.005]"}
PY
train_yaml train.csv 40 11 > gate_pass.yaml
printf '  policy:\n    max_auc: 1.0\n' >> gate_pass.yaml
expect "policy PASS: submit --follow exits 0" 0 "SUCCEEDED" -- "$MIA" submit gate_pass.yaml --follow
GATE_PASS=$(head -1 out.txt)
grep -q "^policy: PASS" out.txt && ok "policy PASS printed" || { bad "policy PASS printed"; show all.txt; }
printf 'audit:\n  policy: {max_auc: 2, attacks: {nope: {max_auc: 0.5}}}\n' > gate_bad_part.yaml
train_yaml train.csv 40 11 | sed '/^audit:/,$d' > gate_bad.yaml && cat gate_bad_part.yaml >> gate_bad.yaml
expect "policy problems refused by the server: exit 2" 2 "spec.audit.policy.max_auc" -- "$MIA" submit gate_bad.yaml
grep -qF "spec.audit.policy.attacks.nope" all.txt && ok "policy problems: the unknown attack named" \
  || { bad "policy problems: the unknown attack named"; show all.txt; }
# `mia compare` of two remote audits (the same models: nothing worse).
expect "compare two remote audits" 0 "" -- "$MIA" compare "$GATE_FAIL" "$GATE_PASS"
grep -q "B is not worse than A" out.txt && ok "compare of remote audits" || { bad "compare of remote audits"; show all.txt; }

# ---------------------------------------------------------------------------
# 1b. A language-model audit: a text corpus in the data root, a small GPT
# trained from scratch with a BPE trained on the pool, the sequence attacks.
$PY - <<'PY'
import random
r = random.Random(3)
words = ["w%d" % i for i in range(40)]
with open("root/corpus.txt", "w") as f:
    for i in range(300):
        f.write("qx%dz %s\n" % (i, " ".join(r.choice(words) for _ in range(r.randrange(6, 12)))))
PY
cat > lm.yaml <<'EOF2'
run:
  random_seed: 4
  threads: 1
data:
  dataset: lines
  data_dir: corpus.txt
  pool_size: 200
  population_size: 100
train:
  model_name: gpt
  vocab_size: 300
  n_layer: 1
  n_embd: 32
  block_size: 32
  epochs: 60
  batch_size: 16
  learning_rate: 0.01
audit:
  bootstrap: 50
EOF2
expect "language-model audit --follow" 0 "SUCCEEDED" -- "$MIA" submit lm.yaml --follow
LM_NAME=$(head -1 out.txt)
expect "language-model scores" 0 "" -- "$MIA" scores "$LM_NAME" --out lm_scores.csv
head -1 lm_scores.csv | grep -q '^row_id,target,member,loss,zlib,min-k,min-k++,lm-reference,lira-offline' \
  && ok "language-model scores.csv has the sequence attacks" \
  || bad "language-model scores.csv header: $(head -1 lm_scores.csv)"
$PY - <<'PY' && ok "an overfit GPT leaks (loss AUC > 0.7)" || bad "an overfit GPT leaks (loss AUC > 0.7)"
import csv
rows = list(csv.DictReader(open("lm_scores.csv")))
pos = [float(r["loss"]) for r in rows if r["member"] == "1"]
neg = [float(r["loss"]) for r in rows if r["member"] == "0"]
wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
assert wins / (len(pos) * len(neg)) > 0.7
PY
! grep -q "qx1" "$WORK"/data-a.log && ok "no text in the server's log" || bad "a text in the server's log"
printf 'data:\n  dataset: lines\n  data_dir: corpus.txt\ntrain:\n  model_name: gpt\n  peft: {r: 4}\n' > lm_bad.yaml
expect "LoRA without a checkpoint is refused before training: exit 2" 2 "spec.train.peft" -- "$MIA" submit lm_bad.yaml

# ---------------------------------------------------------------------------
# 2. The Python client: CreateAudit, WatchAudit to the end, GetAudit, health,
# reflection.
$PY - "$STUBS" "$PORT_A" "$WORK/gen" >py.out 2>&1 <<'PY'
import sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[3])
import grpc
from mia.v1 import audit_pb2, audit_pb2_grpc
from grpc_gen.health.v1 import health_pb2, health_pb2_grpc
from grpc_gen.reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[2])
stub = audit_pb2_grpc.AuditServiceStub(ch)
spec = audit_pb2.AuditSpec(signals_bundle=audit_pb2.SignalsBundleInput(
    bundle=audit_pb2.DataRef(server_path="b.npz"), attacks=["rmia"], bootstrap=0))
req = audit_pb2.CreateAuditRequest(spec=spec, request_id="py-1")
req.labels["client"] = "python"
audit = stub.CreateAudit(req, timeout=30)
assert audit.name.startswith("audits/"), audit.name
print("ok   python CreateAudit", audit.name)
again = stub.CreateAudit(req, timeout=30)
assert again.name == audit.name, (again.name, audit.name)
print("ok   python CreateAudit with the same request id returns the same audit")

last, versions = None, []
for ev in stub.WatchAudit(audit_pb2.WatchAuditRequest(name=audit.name), timeout=60):
    if ev.WhichOneof("event") == "snapshot":
        last = ev.snapshot
        versions.append(last.version)
        if last.state in (audit_pb2.Audit.SUCCEEDED, audit_pb2.Audit.FAILED, audit_pb2.Audit.CANCELLED):
            break
assert last is not None and last.state == audit_pb2.Audit.SUCCEEDED, last
assert versions == sorted(versions) and len(set(versions)) == len(versions), versions
print("ok   python WatchAudit to SUCCEEDED (%d snapshots, versions increasing)" % len(versions))

got = stub.GetAudit(audit_pb2.GetAuditRequest(name=audit.name), timeout=30)
assert got.state == audit_pb2.Audit.SUCCEEDED and got.labels["client"] == "python", got
print("ok   python GetAudit")

try:
    stub.GetAudit(audit_pb2.GetAuditRequest(name="audits/doesnotexist"), timeout=30)
    raise AssertionError("unknown id answered")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()
print("ok   python GetAudit unknown id: NOT_FOUND")

h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
assert h.status == health_pb2.HealthCheckResponse.SERVING, h
print("ok   python health check SERVING")

refl = reflection_pb2_grpc.ServerReflectionStub(ch)
resp = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
services = [s.name for s in resp[0].list_services_response.service]
assert "mia.v1.AuditService" in services, services
print("ok   python reflection lists mia.v1.AuditService")
PY
relay_python $? py.out "python client"

# Prometheus /metrics on its own plain HTTP port (a build with LibTorch once
# failed to serve it: civetweb's threads and the process's static TLS).
if $PY - "$METRICS_A" >metrics.txt 2>&1 <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
import re
for want in ('mia_rpcs_total{', 'method="CreateAudit"', "mia_queue_depth",
             "mia_stage_seconds_bucket", 'mia_rpc_duration_seconds_bucket{method="CreateAudit"',
             'mia_rpc_duration_seconds_count{method="WatchAudit"}'):
    assert want in body, f"/metrics lacks {want}"
done = re.search(r'^mia_jobs\{state="succeeded"\} ([0-9.e+]+)$', body, re.M | re.I)
assert done and float(done.group(1)) >= 1, "/metrics lacks the succeeded jobs"
assert "audits/" not in body, "a job id in the metrics"
assert re.search(r'^mia_build_info\{version="[0-9]+\.[0-9]+\.[0-9]+"\} 1$', body, re.M), "no mia_build_info"
for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
             "process_start_time_seconds"):
    m = re.search(r"^%s ([0-9.e+]+)$" % name, body, re.M)
    assert m, f"/metrics lacks {name}"
    assert name == "process_cpu_seconds_total" or float(m.group(1)) > 0, f"{name} is 0"
PY
then ok "/metrics serves jobs by state, RPCs and their latency, queue depth, stage histograms, process metrics, build info; no job ids"
else bad "/metrics"; show metrics.txt; fi

# One structured line per state change of an audit: name, states, stage,
# duration, code; nothing of its data or labels.
if $PY - "$WORK/data-a.log" "$NAME" >statelog.txt 2>&1 <<'PY'
import json, sys
lines = []
for raw in open(sys.argv[1]):
    try:
        lines.append(json.loads(raw))
    except ValueError:
        pass  # gRPC's own stderr lines
mine = [l for l in lines if l.get("msg") == "audit state" and l.get("audit") == sys.argv[2]]
assert [l["state"] for l in mine] == ["PENDING", "RUNNING", "SUCCEEDED"], mine
assert mine[-1]["from"] == "RUNNING" and mine[-1]["stage"] == "done", mine[-1]
assert all(isinstance(l["duration_seconds"], (int, float)) for l in mine), mine
allowed = {"time", "level", "msg", "audit", "from", "state", "stage", "duration_seconds",
           "error_code", "store_error_code"}
for l in lines:
    if l.get("msg") == "audit state":
        assert set(l) <= allowed, l
        assert "team" not in json.dumps(l) and "b.npz" not in json.dumps(l), l
PY
then ok "server log: one line per state change of an audit, no data"
else bad "server log: state changes"; show statelog.txt; fi

# One server per data dir and per port: a second exits 1 naming the holder
# or the address (timeout: one that starts anyway would serve forever).
expect "second server on A's data dir: exit 1, names the holder" 1 \
  "in use by another server (pid $A_PID on host" -- timeout 30 "$SERVER" \
  --listen_address="127.0.0.1:$(free_port)" --data_dir="$WORK/data-a" --data_roots="$WORK/root" \
  --metrics_port=0
grep -qF "$WORK/data-a/LOCK" all.txt && ok "the refusal names the lock file" \
  || { bad "the refusal names the lock file"; show all.txt; }
expect "second server on A's port: exit 1, names the address" 1 \
  "cannot listen on 127.0.0.1:$PORT_A" -- timeout 30 "$SERVER" \
  --listen_address="127.0.0.1:$PORT_A" --data_dir="$WORK/data-x" --data_roots="$WORK/root" \
  --metrics_port=0
kill -0 "$A_PID" 2>/dev/null && wait_health "$PORT_A" 5 && ok "server A serves on after both were refused" \
  || bad "server A serves on after both were refused"

# ---------------------------------------------------------------------------
# 3. Bad input; the server stays up after each.
alive() { kill -0 "$A_PID" 2>/dev/null && wait_health "$PORT_A" 5; }
sed -e 's/learning_rate: 0.05/learning_rate: 1000/' -e 's/pool_size: 400/pool_size: -5/' train.yaml > invalid.yaml
expect "invalid spec: exit 2" 2 "spec.train.learning_rate" -- "$MIA" submit invalid.yaml
grep -qF "spec.data.pool_size" all.txt && ok "invalid spec: every field path printed" \
  || { bad "invalid spec: every field path printed"; show all.txt; }
alive && ok "server up after an invalid spec" || bad "server up after an invalid spec"
printf 'bundle:\n  path: /etc/passwd\n' > outside.yaml
expect "path outside the roots: exit 2" 2 "outside" -- "$MIA" submit outside.yaml
grep -qF "spec.signals_bundle.bundle" all.txt && ok "outside path names its field" \
  || { bad "outside path names its field"; show all.txt; }
printf 'bundle:\n  path: ../../../etc/passwd\n' > outside2.yaml
expect "relative path escaping the roots: exit 2" 2 "outside" -- "$MIA" submit outside2.yaml
alive && ok "server up after paths outside the roots" || bad "server up after paths outside the roots"
expect "get unknown id: exit 3" 3 "not found" -- "$MIA" get audits/doesnotexist
expect "scores unknown id: exit 3" 3 "" -- "$MIA" scores doesnotexist
expect "cancel unknown id: exit 3" 3 "" -- "$MIA" cancel doesnotexist
alive && ok "server up after unknown ids" || bad "server up after unknown ids"
expect "malformed page token: exit 2" 2 "" -- "$MIA" list --page-token '%%garbage%%'
expect "unknown key in a job file: exit 2" 2 "learing_rate" -- \
  bash -c "sed 's/learning_rate/learing_rate/' train.yaml > typo.yaml && '$MIA' submit typo.yaml"

# The same kinds of bad input sent with the Python client, which can build
# what the CLI never sends (a wrong checksum, a size the header lies about).
# bad_input.py PORT CASE ARGS... prints "CODE details" (CODE: the gRPC status
# code's name, OK when the call succeeded) as its first line.
cat > bad_input.py <<'PY'
import hashlib, sys
sys.path.insert(0, sys.argv[1])
import grpc
from mia.v1 import audit_pb2, audit_pb2_grpc

port, case, args = sys.argv[2], sys.argv[3], sys.argv[4:]
stub = audit_pb2_grpc.AuditServiceStub(grpc.insecure_channel("127.0.0.1:" + port))

def bundle_request(ref):
    spec = audit_pb2.AuditSpec(signals_bundle=audit_pb2.SignalsBundleInput(
        bundle=ref, attacks=["rmia"], bootstrap=0))
    return audit_pb2.CreateAuditRequest(spec=spec)

def upload(data, size, sha):
    header = audit_pb2.ArtifactHeader(filename="x.bin", size=size, sha256=sha)
    # 16 KiB chunks: each message far below any limit the test sets.
    msgs = [audit_pb2.UploadArtifactRequest(header=header)] + [
        audit_pb2.UploadArtifactRequest(chunk=data[i:i + 16384]) for i in range(0, len(data), 16384)]
    return stub.UploadArtifact(iter(msgs), timeout=30)

try:
    if case == "create-bytes":
        # A valid bundle request padded with an unknown field (number 999,
        # ignored by the parser) of BYTES bytes: only its size can matter.
        def varint(v):
            out = b""
            while True:
                out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
                v >>= 7
                if not v:
                    return out
        n = int(args[0])
        raw = bundle_request(audit_pb2.DataRef(server_path="b.npz")).SerializeToString()
        raw += varint((999 << 3) | 2) + varint(n) + b"x" * n
        create = grpc.insecure_channel("127.0.0.1:" + port).unary_unary(
            "/mia.v1.AuditService/CreateAudit", request_serializer=lambda b: b,
            response_deserializer=audit_pb2.Audit.FromString)
        r = create(raw, timeout=30)
    elif case == "upload":  # upload FILE [SIZE|-] [SHA256|-]: header says SIZE and SHA256
        data = open(args[0], "rb").read()
        size = len(data) if len(args) < 2 or args[1] == "-" else int(args[1])
        sha = hashlib.sha256(data).hexdigest() if len(args) < 3 or args[2] == "-" else args[2]
        r = upload(data, size, sha)
    elif case == "create-artifact":  # a bundle job on artifact ID
        r = stub.CreateAudit(bundle_request(audit_pb2.DataRef(artifact_id=args[0])), timeout=30)
    elif case == "list-state":  # ListAudits with state number N
        r = stub.ListAudits(audit_pb2.ListAuditsRequest(state=int(args[0])), timeout=30)
    elif case == "upload-chunk":  # upload FILE in one chunk, however large
        data = open(args[0], "rb").read()
        header = audit_pb2.ArtifactHeader(filename="x.bin", size=len(data),
                                          sha256=hashlib.sha256(data).hexdigest())
        r = stub.UploadArtifact(iter([audit_pb2.UploadArtifactRequest(header=header),
                                      audit_pb2.UploadArtifactRequest(chunk=data)]), timeout=30)
    elif case == "list-token":  # ListAudits with page token TOKEN
        r = stub.ListAudits(audit_pb2.ListAuditsRequest(page_token=args[0]), timeout=30)
    elif case == "list-token-other-filter":  # a real token of a SUCCEEDED listing, used for FAILED
        page = stub.ListAudits(audit_pb2.ListAuditsRequest(
            page_size=1, state=audit_pb2.Audit.SUCCEEDED), timeout=30)
        assert page.next_page_token, "no second page of succeeded audits"
        r = stub.ListAudits(audit_pb2.ListAuditsRequest(
            page_size=1, state=audit_pb2.Audit.FAILED, page_token=page.next_page_token), timeout=30)
    elif case in ("get", "cancel", "delete"):
        req_type = {"get": audit_pb2.GetAuditRequest, "cancel": audit_pb2.CancelAuditRequest,
                    "delete": audit_pb2.DeleteAuditRequest}[case]
        r = getattr(stub, case.capitalize() + "Audit")(req_type(name=args[0]), timeout=30)
    else:
        raise SystemExit("unknown case " + case)
    print("OK", str(r).replace("\n", " "))
except grpc.RpcError as e:
    print(e.code().name, e.details())
PY

# py_expect NAME PORT WANT_CODE WANT_DETAILS_SUBSTRING -- CASE ARGS...
py_expect() {
  local name=$1 port=$2 want=$3 msg=$4
  shift 5
  $PY bad_input.py "$STUBS" "$port" "$@" >out.txt 2>err.txt
  local rc=$? code rest
  cat out.txt err.txt >all.txt
  read -r code rest <out.txt
  if [ "$rc" -ne 0 ]; then bad "$name: python client exit $rc"; show all.txt; return 1; fi
  if [ "$code" != "$want" ]; then bad "$name: $code, wanted $want"; show all.txt; return 1; fi
  if [ -n "$msg" ] && ! grep -qF -- "$msg" out.txt; then
    bad "$name: details lack '$msg'"; show all.txt; return 1
  fi
  ok "$name"
}

py_expect "python ListAudits malformed page token: INVALID_ARGUMENT" "$PORT_A" INVALID_ARGUMENT \
  "page_token: malformed" -- list-token '%%garbage%%'
py_expect "python ListAudits token of another state filter: INVALID_ARGUMENT" "$PORT_A" \
  INVALID_ARGUMENT "page_token: issued for a different state filter" -- list-token-other-filter
py_expect "python ListAudits state=99: INVALID_ARGUMENT naming the field" "$PORT_A" \
  INVALID_ARGUMENT "state: 99 is not an Audit.State" -- list-state 99
head -c 1048577 /dev/zero > chunk.bin
py_expect "python upload chunk above 1 MiB: INVALID_ARGUMENT" "$PORT_A" INVALID_ARGUMENT \
  "chunk: 1048577 bytes in one message" -- upload-chunk chunk.bin
[ ! -e "$WORK/data-a/artifacts/$(sha256sum chunk.bin | cut -d' ' -f1)" ] \
  && ok "refused chunk stored nothing" || bad "refused chunk stored something"
alive && ok "server up after bad page tokens" || bad "server up after bad page tokens"
py_expect "python GetAudit unknown id: NOT_FOUND naming it" "$PORT_A" NOT_FOUND \
  "doesnotexist not found" -- get audits/doesnotexist
py_expect "python CancelAudit unknown id: NOT_FOUND" "$PORT_A" NOT_FOUND "not found" -- \
  cancel audits/doesnotexist
py_expect "python DeleteAudit unknown id: NOT_FOUND" "$PORT_A" NOT_FOUND "not found" -- \
  delete audits/doesnotexist
py_expect "python GetAudit malformed name: INVALID_ARGUMENT" "$PORT_A" INVALID_ARGUMENT \
  'name: must be "audits/{id}"' -- get 'audits/../x'
alive && ok "server up after unknown ids (python)" || bad "server up after unknown ids (python)"

# A corrupt upload: the header's sha256 is not that of the bytes. Nothing may
# be stored under either hash, and no temporary file may stay behind.
ARTS="$WORK/data-a/artifacts"
ls -A "$ARTS" > arts_before.txt
head -c 50000 /dev/urandom > corrupt.bin
CLAIMED=$(printf 'other content' | sha256sum | cut -d' ' -f1)
ACTUAL=$(sha256sum corrupt.bin | cut -d' ' -f1)
py_expect "corrupt upload (sha256 mismatch): INVALID_ARGUMENT naming the SHA-256" "$PORT_A" \
  INVALID_ARGUMENT "SHA-256 of the uploaded bytes differs from the header's sha256" -- \
  upload corrupt.bin - "$CLAIMED"
ls -A "$ARTS" | cmp -s arts_before.txt - && ok "corrupt upload left nothing in the artifact store" \
  || { bad "corrupt upload left files in the artifact store"; ls -A "$ARTS" | diff arts_before.txt - | head -4; }
py_expect "job on the claimed sha256 of a corrupt upload: NOT_FOUND" "$PORT_A" NOT_FOUND \
  "the server holds no artifact with that id" -- create-artifact "$CLAIMED"
py_expect "job on the real sha256 of a corrupt upload: NOT_FOUND" "$PORT_A" NOT_FOUND \
  "the server holds no artifact with that id" -- create-artifact "$ACTUAL"
printf 'bundle:\n  path: artifact:%s\n  attacks: [rmia]\n' "$CLAIMED" > corrupt.yaml
expect "submit on a corrupt upload's sha256: exit 3" 3 "no artifact with that id" -- \
  "$MIA" submit corrupt.yaml
# Bytes that differ from an artifact already stored, under that artifact's id:
# refused, and the stored file stays as it was.
py_expect "corrupt upload under a stored artifact's id: INVALID_ARGUMENT" "$PORT_A" \
  INVALID_ARGUMENT "SHA-256 of the uploaded bytes differs" -- upload corrupt.bin - "$ART"
[ "$(sha256sum "$ARTS/$ART" 2>/dev/null | cut -d' ' -f1)" = "$ART" ] \
  && ok "stored artifact unchanged after a corrupt upload under its id" \
  || bad "stored artifact changed after a corrupt upload under its id"
ls -A "$ARTS" | cmp -s arts_before.txt - && ok "artifact store unchanged after the corrupt uploads" \
  || { bad "artifact store changed after the corrupt uploads"; ls -A "$ARTS" | diff arts_before.txt - | head -4; }
alive && ok "server up after corrupt uploads" || bad "server up after corrupt uploads"

# Limits: server C, short-lived, with a 64 KiB message limit and a 20000-byte
# upload limit.
PORT_C=$(free_port)
if start_server C "$WORK/data-c" "$PORT_C" --max_message_bytes=65536 --max_upload_bytes=20000 \
    --memory_budget_bytes=1000000000; then
  ok "server C (small limits) healthy"
  alive_c() { kill -0 "$C_PID" 2>/dev/null && wait_health "$PORT_C" 5; }
  # gRPC refuses a message above the server's receive limit before the
  # service sees it.
  py_expect "python CreateAudit above max_message_bytes: RESOURCE_EXHAUSTED" "$PORT_C" \
    RESOURCE_EXHAUSTED "Received message larger than max" -- create-bytes 100000
  grep -qF "vs. 65536)" out.txt && ok "oversized message: the limit is named (65536)" \
    || { bad "oversized message: the limit is named (65536)"; show all.txt; }
  alive_c && ok "server C up after an oversized message" || bad "server C up after an oversized message"
  py_expect "python CreateAudit below max_message_bytes is accepted" "$PORT_C" OK "audits/" -- \
    create-bytes 1000
  head -c 30000 /dev/urandom > big.bin
  head -c 10000 /dev/urandom > small.bin
  expect "upload above max_upload_bytes: exit 4" 4 "upload limit of 20000 bytes" -- \
    "$MIA" upload big.bin --server "127.0.0.1:$PORT_C"
  grep -qF "header.size: 30000 bytes" all.txt && ok "oversized upload: the size is named" \
    || { bad "oversized upload: the size is named"; show all.txt; }
  py_expect "python UploadArtifact above max_upload_bytes: RESOURCE_EXHAUSTED" "$PORT_C" \
    RESOURCE_EXHAUSTED "above this server's upload limit of 20000 bytes" -- upload big.bin
  # A header that claims less than the limit cannot smuggle more bytes in.
  py_expect "upload longer than its header declared: INVALID_ARGUMENT" "$PORT_C" INVALID_ARGUMENT \
    "the upload is longer than the 100 bytes its header declared" -- upload big.bin 100
  [ -z "$(ls -A "$WORK/data-c/artifacts" 2>/dev/null)" ] && ok "refused uploads stored nothing" \
    || { bad "refused uploads stored something"; ls -A "$WORK/data-c/artifacts" | head -4; }
  expect "upload below max_upload_bytes is accepted" 0 "$(sha256sum small.bin | cut -d' ' -f1)" -- \
    "$MIA" upload small.bin --server "127.0.0.1:$PORT_C"
  alive_c && ok "server C up after oversized uploads" || bad "server C up after oversized uploads"
  # Memory admission: sized before queueing, refused with the estimate.
  sed -e 's/hidden: \[32\]/hidden: [65536, 65536, 65536]/' train.yaml > wide.yaml
  expect "training above memory_budget_bytes: exit 4" 4 "exceeds the server's memory budget 1.00 GB" -- \
    "$MIA" submit wide.yaml --server "127.0.0.1:$PORT_C"
  grep -qF "training 'mlp' with hidden [65536, 65536, 65536]" all.txt \
    && ok "memory refusal names the architecture" || { bad "memory refusal names the architecture"; show all.txt; }
  $PY "$TESTS/io/make_zeros_npz.py" root/zeros.npz
  sed -e 's/path: b.npz/path: zeros.npz/' bundle.yaml > zeros.yaml
  expect "bundle above memory_budget_bytes: exit 4" 4 "scoring a bundle of 4 models x 100000000 points" -- \
    "$MIA" submit zeros.yaml --server "127.0.0.1:$PORT_C"
  grep -qF "$WORK" all.txt && { bad "memory refusal names server paths"; show all.txt; } \
    || ok "memory refusal names no server path"
  alive_c && ok "server C up after memory refusals" || bad "server C up after memory refusals"
  grep -q '"msg":"serving".*"memory_budget_bytes":1000000000' "$WORK/data-c.log" \
    && ok "server C logs its memory budget" || { bad "server C logs its memory budget"; show "$WORK/data-c.log"; }
  grep -q '"msg":"serving".*"memory_budget_bytes":[1-9]' "$WORK/data-a.log" \
    && ok "server A logs the budget it derived from the machine" \
    || { bad "server A logs the budget it derived from the machine"; show "$WORK/data-a.log"; }
  kill -TERM "$C_PID"; wait "$C_PID"; c_rc=$?
  [ "$c_rc" -eq 0 ] && ok "server C: SIGTERM exits 0" || bad "server C: SIGTERM exit $c_rc"
else
  bad "server C (small limits) healthy"
fi
alive && ok "server A up after the limit cases" || bad "server A up after the limit cases"

# Cancel a running audit (a training job far too long to finish).
expect "submit a long training job" 0 "" -- "$MIA" submit cancel.yaml
CNAME=$(head -1 out.txt)
if wait_state "$CNAME" RUNNING 60; then ok "long job RUNNING"; else bad "long job RUNNING"; fi
expect "delete a running audit: exit 2" 2 "" -- "$MIA" delete "$CNAME"
expect "cancel a running audit" 0 "" -- "$MIA" cancel "$CNAME"
if wait_state "$CNAME" CANCELLED 30; then ok "cancelled job ends CANCELLED"; else bad "cancelled job ends CANCELLED"; fi
expect "watch a cancelled audit: exit 6" 6 "" -- "$MIA" watch "$CNAME"
expect "scores of a cancelled audit: exit 2" 2 "" -- "$MIA" scores "$CNAME"
expect "delete a cancelled audit" 0 "" -- "$MIA" delete "$CNAME"
expect "get a deleted audit: exit 3" 3 "" -- "$MIA" get "$CNAME"
alive && ok "server up after cancel and delete" || bad "server up after cancel and delete"

# ---------------------------------------------------------------------------
# 4. Crash test: kill -9 during reference-model training, restart on the same
# data dir, the job completes without retraining finished models and with the
# scores of the uninterrupted run (server B).
MODELS="$WORK/data-a/cache/models"
# Models left by the cancelled job (other dataset): not part of the check.
ls "$MODELS"/*.pt 2>/dev/null | sort > pre_models.txt
expect "submit the crash-test job" 0 "" -- "$MIA" submit train.yaml
XNAME=$(head -1 out.txt)
# Wait until at least one model of this job is in the cache and the job is
# still training.
snap=""
for _ in $(seq 1 1200); do
  ls "$MODELS"/*.pt 2>/dev/null | sort | comm -13 pre_models.txt - > new_models.txt
  if [ -s new_models.txt ]; then
    snap=$(audit_json "$XNAME" | $PY -c '
import json, sys
d = json.load(sys.stdin); p = d.get("progress", {})
print(d.get("state"), p.get("stage"), p.get("models_trained", 0), p.get("models_total", 0))' 2>/dev/null)
    break
  fi
  sleep 0.05
done
set -- $snap
if [ "${1:-}" = RUNNING ] && [ "${2:-}" = train ] && [ "${3:-0}" -ge 1 ] && [ "${3:-0}" -lt "${4:-0}" ]; then
  ok "crash job mid-training ($3/$4 models)"
  kill -9 "$A_PID"; wait "$A_PID" 2>/dev/null
  # Models finished before the kill: their .pt files, listed before the
  # progress above reported them trained. (The store counts a model as cached
  # only with its .json metadata too: core/pipeline/artifact_store.cc HasModel.)
  cp new_models.txt before_kill.txt
  n_done=$(wc -l <before_kill.txt)
  n_json=0
  while read -r pt; do [ -s "${pt%.pt}.json" ] && n_json=$((n_json + 1)); done < before_kill.txt
  xargs -r stat -c '%n %i %y' < before_kill.txt > before_kill.stat
  ok "server killed with $n_done saved model(s) of 6 ($n_json with cache metadata)"
  # What a kill -9 leaves when it lands mid-write: a half-received upload and
  # a half-saved model. The next start removes them (they would fill the disk).
  STALE_UPLOAD="$WORK/data-a/artifacts/$(printf 'e%.0s' $(seq 64)).tmp.999999.0"
  STALE_MODEL="$MODELS/$(printf 'f%.0s' $(seq 64)).pt.tmp.999999.3"
  head -c 20971520 /dev/zero > "$STALE_UPLOAD"
  head -c 4096 /dev/zero > "$STALE_MODEL"
  start_server A "$WORK/data-a" "$PORT_A" && ok "server A restarted on the same data dir" \
    || { bad "server A restarted on the same data dir"; finish; }
  if $PY - "$WORK/data-a.log" "$XNAME" >restartlog.txt 2>&1 <<'PY'
import json, sys
lines = []
for raw in open(sys.argv[1]):
    try:
        lines.append(json.loads(raw))
    except ValueError:
        pass
serving = [l for l in lines if l.get("msg") == "serving"]
assert serving[-1]["resumed_jobs"] >= 1, serving[-1]
assert any(l.get("msg") == "audit state" and l.get("audit") == sys.argv[2] and
           l.get("from") == "RUNNING" and l.get("state") == "PENDING" for l in lines), "no requeue line"
PY
  then ok "restart: the requeue is logged and the serving line counts the resumed audit"
  else bad "restart: requeue and resumed_jobs in the log"; show restartlog.txt; fi
  [ ! -e "$STALE_UPLOAD" ] && [ ! -e "$STALE_MODEL" ] \
    && grep -q '"stale temporary files removed"' "$WORK/data-a.log" \
    && ok "stale temporaries of the killed server removed at start (and logged)" \
    || { bad "stale temporaries of the killed server removed at start"; ls -la "$STALE_UPLOAD" "$STALE_MODEL" 2>&1 | head -2; }
  expect "crash job resumes and SUCCEEDS (watch)" 0 "SUCCEEDED" -- timeout 120 "$MIA" watch "$XNAME"
  cp err.txt resume_watch.txt
  # A watcher may skip intermediate progress versions (by design), so read the
  # job's models.json: models finished before the kill come from the cache.
  models_json=$(find "$WORK/data-a" -path "*${XNAME##*/}*" -name models.json | head -1)
  [ -n "$models_json" ] && grep -q '"source": "cache"' "$models_json" \
    && ok "resume took finished models from the cache (models.json)" \
    || bad "resume took finished models from the cache (models.json: ${models_json:-missing})"
  xargs -r stat -c '%n %i %y' < before_kill.txt > after.stat 2>&1
  if cmp -s before_kill.stat after.stat; then
    ok "no model finished before the kill was retrained (inode, mtime unchanged)"
  else
    bad "models finished before the kill were retrained (rewritten)"; diff before_kill.stat after.stat | head -6
  fi
  n_after=$(ls "$MODELS"/*.pt | sort | comm -13 pre_models.txt - | wc -l)
  [ "$n_after" -eq 6 ] && ok "6 models in the cache after the resume" || bad "models in the cache after the resume: $n_after"
else
  bad "crash job mid-training: got '$snap' (state stage trained total)"
  expect "crash job completes" 0 "SUCCEEDED" -- timeout 120 "$MIA" watch "$XNAME"
fi
# The uninterrupted run on server B.
if timeout 180 tail --pid="$REF_PID" -f /dev/null; then :; fi
wait "$REF_PID"; ref_rc=$?
[ "$ref_rc" -eq 0 ] && ok "uninterrupted reference run SUCCEEDED" || { bad "uninterrupted reference run: exit $ref_rc"; show ref.err; }
REF_NAME=$(head -1 ref.out)
"$MIA" scores "$XNAME" --out crash_scores.csv >/dev/null 2>err.txt || show err.txt
"$MIA" scores "$REF_NAME" --server "127.0.0.1:$PORT_B" --out ref_scores.csv >/dev/null 2>err.txt || show err.txt
if [ -s crash_scores.csv ] && cmp -s crash_scores.csv ref_scores.csv; then
  ok "resumed run's scores equal the uninterrupted run's ($(($(wc -l <crash_scores.csv) - 1)) rows)"
else
  bad "resumed run's scores differ from the uninterrupted run's"; diff crash_scores.csv ref_scores.csv | head -4
fi
alive && ok "server up at the end" || bad "server up at the end"

# A pipeline audit's report names the mia that made it.
expect "report of the crash-test audit" 0 "" -- "$MIA" report "$XNAME" --out xrep
$PY - <<'PY' && ok "pipeline audit: result.json has the tool version" || { bad "pipeline audit: tool_version"; show all.txt; }
import json, re
v = json.load(open("xrep/result.json"))["tool_version"]
assert re.match(r"^[0-9]+\.[0-9]+\.[0-9]+", v), repr(v)
PY
! grep -qF "unknown version" xrep/summary.md && ok "pipeline audit: summary.md names the version" \
  || bad "pipeline audit: summary.md says unknown version"
! grep -qF "$WORK/data" resume_watch.txt ref.err && ok "pipeline watches show no server path" \
  || { bad "pipeline watches show a server path"; grep -hF "$WORK/data" resume_watch.txt ref.err | head -3; }

# A watch survives a drain (SIGTERM) and a restart on the same data dir, and
# exits 0 when the audit succeeds.
train_yaml train.csv 1500 9 > drain.yaml
expect "submit the drain-test job" 0 "" -- "$MIA" submit drain.yaml
DNAME=$(head -1 out.txt)
"$MIA" watch "$DNAME" >drain_watch.out 2>drain_watch.err &
WATCH_PID=$!
PIDS+=("$WATCH_PID")
if wait_state "$DNAME" RUNNING 60; then
  sleep 1  # into training
  kill -TERM "$A_PID"; wait "$A_PID"
  ok "server A drained with the watched audit running"
  sleep 2  # the watch finds nothing listening for a while
  kill -0 "$WATCH_PID" 2>/dev/null && ok "the watch waits for the server" \
    || { bad "the watch exited when the server stopped"; show drain_watch.err; }
  start_server A "$WORK/data-a" "$PORT_A" && ok "server A restarted after the drain" \
    || { bad "server A restarted after the drain"; finish; }
  if timeout 240 tail --pid="$WATCH_PID" -f /dev/null; then :; fi
  wait "$WATCH_PID"; watch_rc=$?
  [ "$watch_rc" -eq 0 ] && grep -qF "$DNAME SUCCEEDED" drain_watch.err \
    && ok "the watch survived the drain and restart: exit 0, SUCCEEDED" \
    || { bad "the watch across a drain and restart: exit $watch_rc"; show drain_watch.err 12; }
  grep -qF "reconnecting from version" drain_watch.err && ok "the watch reconnected from its last version" \
    || { bad "the watch did not say it reconnected"; show drain_watch.err; }
  grep -qF "AUC" drain_watch.out && ok "the watch printed the summary table" || bad "the watch printed no summary"
else
  bad "drain-test job RUNNING"
fi

# Graceful stop: SIGTERM drains and exits 0.
kill -TERM "$A_PID"; wait "$A_PID"; term_rc=$?
[ "$term_rc" -eq 0 ] && ok "SIGTERM: server exits 0" || bad "SIGTERM: server exit $term_rc"

# ---------------------------------------------------------------------------
# 5. TLS: a throwaway CA signs a server certificate (127.0.0.1, localhost) and
# a client certificate; server T serves TLS, server M mutual TLS.
make_certs() {  # in the current folder: ca.pem, server.pem/.key, client.pem/.key
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=mia test CA" -keyout ca.key -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
  openssl req "${ec[@]}" -subj "/CN=localhost" -keyout server.key -out server.csr &&
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext &&
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem &&
  openssl req "${ec[@]}" -subj "/CN=mia test client" -keyout client.key -out client.csr &&
  printf 'extendedKeyUsage=clientAuth\n' >client.ext &&
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile client.ext -out client.pem
}
if ! command -v openssl >/dev/null; then
  bad "TLS: openssl missing (scripts/install-deps.sh)"
elif ! (mkdir -p tls && cd tls && make_certs) >tls.err 2>&1; then
  bad "TLS: throwaway CA and certificates"; show tls.err
else
  ok "TLS: throwaway CA, server and client certificates"
  T=$WORK/tls
  TLS_FLAGS=(--tls_cert_file="$T/server.pem" --tls_key_file="$T/server.key")
  PORT_T=$(free_port)
  HEALTH_TLS=("$T/ca.pem")
  start_server T "$WORK/data-t" "$PORT_T" "${TLS_FLAGS[@]}" \
    && ok "server T (TLS) healthy over TLS" || bad "server T (TLS) healthy over TLS"
  PORT_M=$(free_port)
  HEALTH_TLS=("$T/ca.pem" "$T/client.pem" "$T/client.key")
  start_server M "$WORK/data-m" "$PORT_M" "${TLS_FLAGS[@]}" --tls_client_ca_file="$T/ca.pem" \
    && ok "server M (mutual TLS) healthy over TLS with a client certificate" \
    || bad "server M (mutual TLS) healthy over TLS with a client certificate"
  HEALTH_TLS=()
  grep '"msg":"serving"' "$WORK/data-t.log" | grep -qF '"tls":"tls"' \
    && grep '"msg":"serving"' "$WORK/data-m.log" | grep -qF '"tls":"mtls"' \
    && grep '"msg":"configuration"' "$WORK/data-m.log" | grep -qF "\"tls_client_ca_file\":\"$T/ca.pem\"" \
    && ok "TLS: the log says tls / mtls and names the files" || bad "TLS: the log says tls / mtls"
  ! grep -q "BEGIN\|PRIVATE" "$WORK/data-t.log" "$WORK/data-m.log" \
    && ok "TLS: no certificate or key contents in the logs" || bad "TLS: key material in the logs"

  TS=127.0.0.1:$PORT_T
  MS=127.0.0.1:$PORT_M
  expect "TLS: list --tls-ca ca.pem" 0 "0 audits" -- "$MIA" list --server "$TS" --tls-ca "$T/ca.pem"
  expect "TLS: by name: localhost" 0 "0 audits" -- \
    "$MIA" list --server "localhost:$PORT_T" --tls-ca "$T/ca.pem"
  expect "TLS: --tls-server-name localhost" 0 "0 audits" -- \
    "$MIA" list --server "$TS" --tls-ca "$T/ca.pem" --tls-server-name localhost
  expect "TLS: a name the certificate lacks: exit 5" 5 "TLS mismatch" -- \
    "$MIA" list --server "$TS" --tls-ca "$T/ca.pem" --tls-server-name other.example
  expect "TLS: plaintext client against the TLS server: exit 5" 5 "TLS mismatch" -- \
    "$MIA" list --server "$TS"
  expect "TLS: TLS client against a plaintext server: exit 5" 5 "TLS mismatch" -- \
    "$MIA" list --server "127.0.0.1:$PORT_B" --tls-ca "$T/ca.pem"
  expect "TLS: unreadable --tls-ca: exit 2" 2 "--tls-ca (MIA_TLS_CA) $T/none.pem: cannot read it" -- \
    "$MIA" list --server "$TS" --tls-ca "$T/none.pem"
  expect "TLS: --tls-cert without --tls-key: exit 2" 2 "go together" -- \
    "$MIA" list --server "$MS" --tls-ca "$T/ca.pem" --tls-cert "$T/client.pem"
  expect "mTLS: no client certificate: exit 5" 5 "TLS mismatch" -- \
    "$MIA" list --server "$MS" --tls-ca "$T/ca.pem"
  expect "mTLS: with the client certificate" 0 "0 audits" -- \
    "$MIA" list --server "$MS" --tls-ca "$T/ca.pem" --tls-cert "$T/client.pem" --tls-key "$T/client.key"
  # Streams too (upload, watch), with the settings from the environment.
  expect "mTLS: submit --follow (MIA_TLS_CA, MIA_TLS_CERT, MIA_TLS_KEY)" 0 "SUCCEEDED" -- \
    env MIA_SERVER="$MS" MIA_TLS_CA="$T/ca.pem" MIA_TLS_CERT="$T/client.pem" \
    MIA_TLS_KEY="$T/client.key" "$MIA" submit upl.yaml --follow

  $PY - "$STUBS" "$WORK/gen" "$T" "$PORT_T" "$PORT_M" >py_tls.out 2>&1 <<'PY'
import sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import grpc
from mia.v1 import audit_pb2, audit_pb2_grpc
from grpc_gen.health.v1 import health_pb2, health_pb2_grpc
tls, port_t, port_m = sys.argv[3], sys.argv[4], sys.argv[5]
read = lambda name: open(tls + "/" + name, "rb").read()
ca = read("ca.pem")

def check(port, creds, service=""):
    with grpc.secure_channel("127.0.0.1:" + port, creds) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10).status

assert check(port_t, grpc.ssl_channel_credentials(ca)) == health_pb2.HealthCheckResponse.SERVING
assert check(port_t, grpc.ssl_channel_credentials(ca), "mia.v1.AuditService") == \
    health_pb2.HealthCheckResponse.SERVING
print("ok   TLS: python health and readiness checks (ssl_channel_credentials)")
mtls = grpc.ssl_channel_credentials(ca, read("client.key"), read("client.pem"))
assert check(port_m, mtls) == health_pb2.HealthCheckResponse.SERVING
with grpc.secure_channel("127.0.0.1:" + port_m, mtls) as ch:
    page = audit_pb2_grpc.AuditServiceStub(ch).ListAudits(audit_pb2.ListAuditsRequest(), timeout=10)
    assert len(page.audits) == 1, page
print("ok   mTLS: python health check and ListAudits with a client certificate")
try:
    check(port_m, grpc.ssl_channel_credentials(ca))
    raise AssertionError("mutual TLS server answered a client without a certificate")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNAVAILABLE, e.code()
print("ok   mTLS: python client without a certificate: UNAVAILABLE")
try:
    with grpc.insecure_channel("127.0.0.1:" + port_t) as ch:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    raise AssertionError("TLS server answered a plaintext client")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNAVAILABLE, e.code()
print("ok   TLS: python plaintext client: UNAVAILABLE")
PY
  relay_python $? py_tls.out "python TLS client"
  # mia_client (clients/python) over TLS and mutual TLS, with a token.
  MIA_PROTO_PYTHON="$STUBS" PYTHONPATH="$TESTS/../clients/python" $PY - "$T" "$PORT_T" "$PORT_M" \
    >py_client_tls.out 2>&1 <<'PY'
import sys
import grpc
from mia_client import Client, MiaError
t, port_t, port_m = sys.argv[1], sys.argv[2], sys.argv[3]
def not_found(client):
    try:
        client.get("audits/none")
    except MiaError as e:
        return e.code == grpc.StatusCode.NOT_FOUND
    return False
with Client.connect("127.0.0.1:" + port_t, root_cert=t + "/ca.pem", token="x") as c:
    assert not_found(c)
print("ok   mia_client: TLS with root_cert")
with Client.connect("127.0.0.1:" + port_m, root_cert=t + "/ca.pem", client_cert=t + "/client.pem",
                    client_key=t + "/client.key") as c:
    assert not_found(c)
print("ok   mia_client: mutual TLS with a client certificate")
with Client("127.0.0.1:" + port_m, root_cert=t + "/ca.pem", timeout=5) as c:
    try:
        c.get("audits/none")
        raise SystemExit("mTLS without a client certificate answered")
    except MiaError as e:
        assert e.code == grpc.StatusCode.UNAVAILABLE, e.code
print("ok   mia_client: mutual TLS without a client certificate is UNAVAILABLE")
PY
  relay_python $? py_client_tls.out "mia_client over TLS"

  # Bad TLS settings stop the server at start like any bad configuration.
  expect "TLS: server with a missing key file: exit 2, the key named" 2 \
    "tls_key_file: $T/none.key: cannot read it" -- \
    "$SERVER" --listen_address=127.0.0.1:0 --data_dir="$WORK/data-x" \
    --tls_cert_file="$T/server.pem" --tls_key_file="$T/none.key"
  expect "TLS: server with a certificate and no key: exit 2" 2 "tls_key_file: required" -- \
    "$SERVER" --listen_address=127.0.0.1:0 --data_dir="$WORK/data-x" --tls_cert_file="$T/server.pem"

  for s in T M; do
    pid_var=${s}_PID
    kill -TERM "${!pid_var}"; wait "${!pid_var}"; rc=$?
    [ "$rc" -eq 0 ] && ok "server $s: SIGTERM exits 0" || bad "server $s: SIGTERM exit $rc"
  done
fi
# ---------------------------------------------------------------------------
# 6. Tenants and tokens: a server with a tokens file, driven by the CLI with
# --token, MIA_TOKEN and --token-file; another tenant's audit is not found, a
# reader cannot delete; the server's log holds no token.
TOK_A=cli-token-a-6d0e2b9f41
TOK_B=cli-token-b-2a7c5e8d03
TOK_R=cli-token-r-9b4f1a6c27
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
{
  echo "tokens:"
  echo "  - {sha256: $(sha $TOK_A), tenant: team-a, role: submitter}"
  echo "  - {sha256: $(sha $TOK_B), tenant: team-b, role: submitter}"
  echo "  - {sha256: $(sha $TOK_R), tenant: team-a, role: reader}"
} >"$WORK/tokens.yaml"
printf '%s\n' "$TOK_B" >"$WORK/token-b"
PORT_AUTH=$(free_port)
HEALTH_TLS=()
if start_server AUTH "$WORK/data-auth" "$PORT_AUTH" --auth_tokens_file="$WORK/tokens.yaml"; then
  ok "auth: server with a tokens file healthy (health needs no token)"
  AS="127.0.0.1:$PORT_AUTH"
  expect "auth: no token: refused, with a hint" 1 "mia: note: the server requires credentials" -- \
    env -u MIA_TOKEN "$MIA" list --server "$AS"
  expect "auth: unknown token: refused" 1 "refused by the server" -- \
    "$MIA" list --server "$AS" --token cli-token-unknown-1
  grep -qF "cli-token-unknown-1" all.txt && bad "auth: the CLI printed the token" \
    || ok "auth: the token is not printed"
  expect "auth: --token submits as team-a" 0 "SUCCEEDED" -- \
    "$MIA" submit bundle.yaml --follow --server "$AS" --token "$TOK_A"
  NAME_A=$(head -1 out.txt)
  expect "auth: MIA_TOKEN reads team-a's audit" 0 "SUCCEEDED" -- \
    env MIA_TOKEN="$TOK_A" "$MIA" get "$NAME_A" --server "$AS"
  expect "auth: --token-file of team-b: team-a's audit is not found" 3 "not found" -- \
    env -u MIA_TOKEN "$MIA" get "$NAME_A" --server "$AS" --token-file "$WORK/token-b"
  expect "auth: --token-file of team-b: list" 0 "" -- \
    "$MIA" list --server "$AS" --token-file "$WORK/token-b"
  grep -qF "$NAME_A" out.txt && bad "auth: team-b lists team-a's audit" \
    || ok "auth: team-b's list lacks team-a's audit"
  expect "auth: --token beats MIA_TOKEN" 3 "not found" -- \
    env MIA_TOKEN="$TOK_A" "$MIA" get "$NAME_A" --server "$AS" --token "$TOK_B"
  expect "auth: team-b cannot download team-a's report" 3 "not found" -- \
    "$MIA" report "$NAME_A" --out rep-b --server "$AS" --token "$TOK_B"
  expect "auth: a reader reads scores" 0 "row_id,target,member" -- \
    "$MIA" scores "$NAME_A" --server "$AS" --token "$TOK_R"
  expect "auth: a reader cannot delete" 1 "permission denied" -- \
    "$MIA" delete "$NAME_A" --server "$AS" --token "$TOK_R"
  expect "auth: a missing --token-file is invalid input" 2 "--token-file" -- \
    env -u MIA_TOKEN "$MIA" list --server "$AS" --token-file "$WORK/no-such-token"
  expect "auth: team-a deletes its audit" 0 "" -- \
    "$MIA" delete "$NAME_A" --server "$AS" --token "$TOK_A"
  kill -TERM "$AUTH_PID"; wait "$AUTH_PID"
  if grep -qF -e "$TOK_A" -e "$TOK_B" -e "$TOK_R" -e cli-token-unknown-1 "$WORK/data-auth.log"; then
    bad "auth: the server's log holds a token"
  else
    ok "auth: no token in the server's log"
  fi
else
  bad "auth: server with a tokens file healthy"
fi
# Mutual TLS: the client certificate's CN maps to a tenant and role (no token).
if [ -n "${T:-}" ] && [ -f "$T/client.pem" ]; then
  cp "$WORK/tokens.yaml" "$WORK/tokens-mtls.yaml"
  printf 'mtls:\n  - {identity: mia test client, tenant: team-m, role: reader}\n' \
    >>"$WORK/tokens-mtls.yaml"
  PORT_MA=$(free_port)
  HEALTH_TLS=("$T/ca.pem" "$T/client.pem" "$T/client.key")
  if start_server MA "$WORK/data-ma" "$PORT_MA" --tls_cert_file="$T/server.pem" \
      --tls_key_file="$T/server.key" --tls_client_ca_file="$T/ca.pem" \
      --auth_tokens_file="$WORK/tokens-mtls.yaml"; then
    MTLS=(--server "127.0.0.1:$PORT_MA" --tls-ca "$T/ca.pem" --tls-cert "$T/client.pem"
          --tls-key "$T/client.key")
    expect "auth: an mTLS identity lists as its tenant's reader" 0 "" -- \
      env -u MIA_TOKEN "$MIA" list "${MTLS[@]}"
    expect "auth: an mTLS reader cannot submit" 1 "permission denied" -- \
      env -u MIA_TOKEN "$MIA" submit bundle.yaml "${MTLS[@]}"
    expect "auth: a token decides over the certificate" 1 "refused by the server" -- \
      "$MIA" list "${MTLS[@]}" --token cli-token-unknown-2
    kill -TERM "$MA_PID"; wait "$MA_PID"
  else
    bad "auth: mutual-TLS server with mtls identities healthy"
  fi
  HEALTH_TLS=()
fi
# A bad tokens file stops the start, naming the entry and field, never the hash.
printf 'tokens:\n  - {sha256: %s, tenant: a, role: owner}\n' "$(sha x)" >"$WORK/bad-tokens.yaml"
expect "auth: a bad tokens file stops the start" 1 \
  "tokens[0].role: must be reader, submitter or admin" -- \
  "$SERVER" --listen_address=127.0.0.1:0 --data_dir="$WORK/data-y" \
  --auth_tokens_file="$WORK/bad-tokens.yaml"
grep -qF "$(sha x)" all.txt && bad "auth: the start-up error holds the hash" \
  || ok "auth: the start-up error holds no hash"
finish
