#!/usr/bin/env bash
# The DP audit in one run end to end on CPU (docs/benchmarks.md, "DP auditing
# in one run"): 1,000 mislabelled canaries in a 6,000-row synthetic tabular
# pool (20 features, 10 classes), an MLP target and 2 references trained once
# (20 epochs), LOSS and offline LiRA scores, the default grid plus Privacy
# Meter's best split. Prints wall time, peak RSS and the audit's timing.log.
#
#   bash bench/dp_audit.sh [BUILD_DIR]     (default: build)
set -euo pipefail
build=${1:-build}
mia="$build/client/mia"
[[ -x "$mia" ]] || { echo "no $mia: build the mia target first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 - "$tmp/data.csv" <<'PY'
import random, sys
rng = random.Random(3)
centers = [[rng.gauss(0, 1) for _ in range(20)] for _ in range(10)]
with open(sys.argv[1], "w") as out:
    for _ in range(7000):
        y = rng.randrange(10)
        out.write(",".join([str(y)] + ["%.5f" % (c + 1.5 * rng.gauss(0, 1)) for c in centers[y]]) + "\n")
PY

cat > "$tmp/dp.yaml" <<YAML
run: {random_seed: 1, log_dir: $tmp/runs}
data: {dataset: csv, data_dir: $tmp/data.csv, pool_size: 6000, population_size: 1000}
train: {model_name: mlp, hidden: [128], optimizer: adam, learning_rate: 0.001, epochs: 20, batch_size: 64}
audit:
  attacks: [loss, lira-offline]
  num_ref_models: 2
  dp_audit: {canary_dataset: mislabelled, canary_size: 1000}
YAML

/usr/bin/time -f "wall %e s, peak RSS %M KB" "$mia" audit --config "$tmp/dp.yaml" >"$tmp/out.txt" 2>"$tmp/time.txt" ||
  { cat "$tmp/out.txt" "$tmp/time.txt"; exit 1; }
tail -1 "$tmp/time.txt"
cat "$tmp/runs/report/timing.log"
python3 - "$tmp/runs/report/result.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["dp_audit"]
for a in d["attacks"]:
    best = a["entries"][a["best"]]
    last = a["entries"][-1]
    print("%s: largest eps over the grid %.3f (k+=%d, k-=%d, %d/%d right); Privacy Meter's best %.3f"
          % (a["attack"], best["epsilon"], best["k_plus"], best["k_minus"], best["correct"],
             best["guesses"], last["epsilon"]))
PY
