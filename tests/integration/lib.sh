# Shared by the black-box integration tests (server_test.sh, cluster_test.sh):
# check counting, command expectations, free ports, health and state waits.
# Needs PY (a python3 with grpcio), MIA (the CLI) and the generated health
# stubs under ./gen (see server_test.sh's prerequisites) where used.
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }
show() { sed 's/^/     /' "$1" | tail -n "${2:-8}"; }
# relay_python RC OUT LABEL: counts the "ok   ..." lines a Python client
# wrote to OUT as checks, and a non-zero exit RC as a failure.
relay_python() {
  local line
  while read -r line; do
    case "$line" in "ok   "*) ok "${line#ok   }" ;; esac
  done < "$2"
  [ "$1" -eq 0 ] || { bad "$3 (exit $1)"; show "$2" 12; }
}

# expect NAME WANT_EXIT WANT_OUTPUT_SUBSTRING -- command...   (stdout+stderr)
expect() {
  local name=$1 want=$2 msg=$3
  shift 4
  "$@" >out.txt 2>err.txt
  local got=$?
  cat out.txt err.txt >all.txt
  if [ "$got" -ne "$want" ]; then
    bad "$name: exit $got, wanted $want"; show all.txt; return 1
  fi
  if [ -n "$msg" ] && ! grep -qF -- "$msg" all.txt; then
    bad "$name: output lacks '$msg'"; show all.txt; return 1
  fi
  ok "$name"
}

free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}


# wait_health PORT SECONDS [CA_PEM [CERT_PEM KEY_PEM]]: polls the gRPC health
# service until SERVING; over TLS verified with CA_PEM when given (and with a
# client certificate for mutual TLS).
wait_health() {
  $PY - "$@" <<'PY'
import sys, time, grpc
sys.path.insert(0, "gen")
from grpc_gen.health.v1 import health_pb2, health_pb2_grpc
port, limit, tls = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
read = lambda p: open(p, "rb").read()
def channel():
    if not tls:
        return grpc.insecure_channel("127.0.0.1:" + port)
    client = (read(tls[2]), read(tls[1])) if len(tls) > 2 else (None, None)
    return grpc.secure_channel("127.0.0.1:" + port, grpc.ssl_channel_credentials(read(tls[0]), *client))
deadline = time.time() + limit
while time.time() < deadline:
    try:
        with channel() as ch:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            if r.status == health_pb2.HealthCheckResponse.SERVING:
                sys.exit(0)
    except grpc.RpcError:
        pass
    time.sleep(0.1)
sys.exit(1)
PY
}

# audit_json NAME: the audit as JSON (`mia get --json`).
audit_json() { "$MIA" get "$1" --json 2>/dev/null; }

# wait_state NAME STATE SECONDS
wait_state() {
  local name=$1 want=$2 limit=$3 t=0 st=""
  while [ "$t" -lt $((limit * 10)) ]; do
    st=$(audit_json "$name" | $PY -c 'import json,sys; print(json.load(sys.stdin).get("state",""))' 2>/dev/null)
    [ "$st" = "$want" ] && return 0
    sleep 0.1; t=$((t + 1))
  done
  echo "     $name: state '$st' after ${limit}s, wanted $want"
  return 1
}

# prepare_stubs: checks grpcio and the generated mia stubs ($STUBS), and
# generates the health and reflection stubs into ./gen from Debian's
# grpc-proto ($GRPC_PROTO) with protoc + grpc_python_plugin; ends the test
# (finish) when any of it is missing.
prepare_stubs() {
  $PY -c 'import grpc, google.protobuf' 2>/dev/null \
    || { echo "FAIL python3-grpcio / python3-protobuf missing for $PY: run scripts/install-deps.sh"; echo "0 passed, 1 failed"; exit 1; }
  [ -f "$STUBS/mia/v1/audit_pb2_grpc.py" ] \
    || { echo "FAIL no generated stubs in $STUBS (build mia_proto_python)"; echo "0 passed, 1 failed"; exit 1; }
  mkdir -p gen
  if [ -f "$GRPC_PROTO/grpc/health/v1/health.proto" ] \
    && protoc -I"$GRPC_PROTO" --python_out=gen --grpc_python_out=gen \
         --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
         grpc/health/v1/health.proto grpc/reflection/v1alpha/reflection.proto 2>gen.err; then
    # Namespace packages: `grpc` here must not shadow the grpcio package, so
    # the generated modules move under a separate top-level name.
    mkdir -p gen/grpc_gen && mv gen/grpc/* gen/grpc_gen/ && rmdir gen/grpc
    sed -i 's/^from grpc\.\(health\|reflection\)/from grpc_gen.\1/' gen/grpc_gen/*/*/*_grpc.py
    ok "health and reflection stubs generated"
  else
    bad "cannot generate health/reflection stubs (need grpc-proto, protobuf-compiler-grpc)"; show gen.err
    finish
  fi
}

# write_csv FILE SEED: a synthetic tabular dataset, 600 rows of 10 features
# and 4 classes (the first 3 features carry the class), label first.
write_csv() {
  "${PY:-python3}" - "$1" "$2" <<'PY'
import random, sys
r = random.Random(int(sys.argv[2]))
with open(sys.argv[1], "w") as f:
    for _ in range(600):
        y = r.randrange(4)
        xs = [r.gauss(0.6 * y if j < 3 else 0.0, 1.0) for j in range(10)]
        f.write("%d,%s\n" % (y, ",".join("%.5f" % x for x in xs)))
PY
}

# mlp_yaml DATASET EPOCHS SEED REFS [ATTACKS]: an audit of MLPs on a
# write_csv file (pool 400, population 200), trained one at a time on one
# thread so that each model is cached on its own.
mlp_yaml() {
  cat <<EOF2
run:
  random_seed: $3
  num_experiments: 1
  threads: 1
data:
  dataset: csv
  data_dir: $1
  pool_size: 400
  population_size: 200
train:
  model_name: mlp
  hidden: [32]
  batched: false
  optimizer: sgd
  learning_rate: 0.05
  epochs: $2
  batch_size: 32
audit:
  attacks: [${5:-rmia, lira-offline}]
  num_ref_models: $4
  bootstrap: 50
EOF2
}
