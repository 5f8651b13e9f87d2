#!/usr/bin/env bash
# `mia` starts without LibTorch: the binary does not link it, the commands
# that train nothing never load it, and `mia audit` loads it from
# libmia_audit_command.so, with a clear error when that library is missing.
# Usage: startup_test.sh PATH_TO_MIA WITH_TORCH(0|1)
set -u
MIA=$(readlink -f "${1:?path to the mia binary}")
WITH_TORCH=${2:-1}
PY=/usr/bin/python3
CHECKS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/checks.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# shellcheck source=checks.sh
source "$CHECKS"
torch_libs='lib(torch|c10)[a-z_]*\.so'

# The binary's dynamic dependencies, all of them (ldd is recursive).
if ldd "$MIA" > ldd.txt 2>&1; then
  if grep -qE "$torch_libs" ldd.txt; then
    bad "mia links no LibTorch"; grep -E "$torch_libs" ldd.txt | sed 's/^/     /'
  else
    ok "mia links no LibTorch"
  fi
else
  bad "ldd $MIA"; sed 's/^/     /' ldd.txt | head -5
fi

# What the dynamic loader actually opens (dlopen included) while a command
# runs: LD_DEBUG=libs names every library it loads.
loads_no_torch() {
  local name=$1
  shift
  LD_DEBUG=libs "$@" >/dev/null 2>loader.txt
  if grep -qE "calling init: .*$torch_libs" loader.txt; then
    bad "$name loads no LibTorch"
  elif ! grep -q "calling init" loader.txt; then
    bad "$name: LD_DEBUG gave no loader trace"
  else
    ok "$name loads no LibTorch"
  fi
}
loads_no_torch "mia --version" "$MIA" --version
loads_no_torch "mia list" "$MIA" list --server 127.0.0.1:1 --timeout 1
"$MIA" make-bundle --out b.npz --points 200 --population 100 2>/dev/null
loads_no_torch "mia score" "$MIA" score --bundle b.npz --attack rmia-offline --out rep -q
loads_no_torch "mia compare" "$MIA" compare rep rep

# The bootstrap's threads change no figure.
"$MIA" score --bundle b.npz --attack rmia-offline,loss --out rep_t1 -q --threads 1 --bootstrap 300 \
  >/dev/null 2>&1
"$MIA" score --bundle b.npz --attack rmia-offline,loss --out rep_t3 -q --threads 3 --bootstrap 300 \
  >/dev/null 2>&1
$PY - <<'PY' && ok "score --threads 1 and 3 agree" || bad "score --threads 1 and 3 agree"
import json
a, b = (json.load(open(f"rep_t{t}/result.json"))["results"] for t in (1, 3))
assert [(x["auc"], x["auc_ci"], x["tpr_at_fpr"]) for x in a] == \
       [(x["auc"], x["auc_ci"], x["tpr_at_fpr"]) for x in b]
assert all(x["auc_ci"] is not None for x in a)
PY
expect "score --threads -1 refused" 2 "--threads" -- "$MIA" score --bundle b.npz --out r --threads -1

[ "$WITH_TORCH" = 1 ] || { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

# A tiny tabular audit: 300 rows, 6 features, 3 classes, 4 small MLPs.
$PY - <<'PY'
import random
random.seed(3)
with open("data.csv", "w") as f:
    for _ in range(300):
        y = random.randrange(3)
        f.write(",".join([str(y)] + ["%.4f" % (y + random.gauss(0, 1.5)) for _ in range(6)]) + "\n")
PY
cat > audit.yaml <<YAML
run:
  random_seed: 7
  log_dir: $WORK/runs
data:
  dataset: csv
  data_dir: $WORK/data.csv
  pool_size: 200
  population_size: 100
train:
  model_name: mlp
  hidden: [16]
  epochs: 3
  batch_size: 32
audit:
  attacks: [rmia, loss]
  num_ref_models: 3
  data_size: 100
  bootstrap: 0
YAML

# Through the library beside mia, as users run it.
expect "mia audit through libmia_audit_command.so" 0 "report written to" -- \
  "$MIA" audit --config audit.yaml --out rep_audit --threads 1 -q
[ -s rep_audit/result.json ] && ok "audit wrote result.json" || bad "audit wrote result.json"
grep -q "AUC" out.txt && ok "audit summary on stdout" || bad "audit summary on stdout"
LD_DEBUG=libs "$MIA" audit --config audit.yaml --out rep_audit2 -q >/dev/null 2>loader.txt
grep -qE "calling init: .*libtorch" loader.txt && ok "mia audit loads LibTorch" \
  || bad "mia audit loads LibTorch"

# The library chosen by MIA_AUDIT_LIBRARY; missing, not a library, another library.
expect "library missing" 3 "mia audit needs the training engine: $WORK/none/libmia_audit_command.so not found" -- \
  env MIA_AUDIT_LIBRARY="$WORK/none/libmia_audit_command.so" "$MIA" audit --config audit.yaml
printf 'not a library' > junk.so
expect "library not loadable" 1 "cannot load the training engine $WORK/junk.so" -- \
  env MIA_AUDIT_LIBRARY="$WORK/junk.so" "$MIA" audit --config audit.yaml
zlib=$(ldd "$MIA" | awk '/libz\.so/ {print $3; exit}')
if [ -n "$zlib" ]; then
  expect "another library" 1 "is not mia's training engine" -- \
    env MIA_AUDIT_LIBRARY="$zlib" "$MIA" audit --config audit.yaml
fi
# Bad input still gets the command's own clear error through the library.
expect "audit missing config" 3 "nope.yaml" -- "$MIA" audit --config nope.yaml

finish_checks
