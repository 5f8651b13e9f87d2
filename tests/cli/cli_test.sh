#!/usr/bin/env bash
# Black-box tests of the `mia` CLI: the real binary on real files, checking
# exit codes, messages and report files.
# Usage: cli_test.sh PATH_TO_MIA [PATH_TO_MIA_SERVER] (with it, also a bundle
# audit with a policy on a real server)
set -u
MIA=$(readlink -f "${1:?path to the mia binary}")
SERVER=""
[ -n "${2:-}" ] && SERVER=$(readlink -f "$2")
TESTS=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3   # Debian's python3 with numpy (scripts/install-deps.sh)
CHECKS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/checks.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# shellcheck source=checks.sh
source "$CHECKS"

$PY -c 'import numpy' 2>/dev/null || { echo "FAIL numpy missing for $PY: run scripts/install-deps.sh"; echo "0 passed, 1 failed"; exit 1; }

# A full audit of a synthetic bundle.
expect "make-bundle" 0 "wrote b.npz" -- "$MIA" make-bundle --out b.npz --points 600 --population 300
expect "score" 0 "report written" -- "$MIA" score --bundle b.npz --attack rmia,rmia-offline,lira,loss --out rep --bootstrap 100
for f in result.json scores.csv roc.svg roc_log.svg summary.md report.html timing.log; do
  [ -s "rep/$f" ] && ok "report has $f" || bad "report lacks $f"
done
! grep -qE 'https?://|<script' rep/report.html && ok "report.html loads nothing" \
  || bad "report.html refers to a URL or has a script"
$PY - <<'PY' && ok "result.json content" || bad "result.json content"
import json, csv, sys
r = json.load(open("rep/result.json"))
assert r["schema_version"] >= 1
names = [x["attack"] for x in r["results"]]
assert names == ["rmia", "rmia-offline", "lira", "loss"], names
for x in r["results"]:
    assert 0.55 < x["auc"] <= 1, (x["attack"], x["auc"])
    assert x["counts"]["members"] + x["counts"]["non_members"] + x["counts"]["excluded"] == 600
assert "a" in r["results"][1]["chosen"]
rows = list(csv.reader(open("rep/scores.csv")))
assert len(rows) == 601, len(rows)
assert rows[1][0] == "10000"
PY
grep -q "AUC" out.txt && ok "summary table on stdout" || bad "summary table on stdout"

# The scoring flags go through core's one validator of scoring options (the
# rules of a config file's audit section), every problem at once, named by flag.
many_fprs=$(seq -s, 0.001 0.001 0.065)
many_attacks=$(printf 'loss:x%d=1,' $(seq 1 40))
expect "score: every flag problem at once" 2 "--fpr: must have at most 64 entries" -- "$MIA" score --bundle b.npz \
  --out rep_bad --fpr "$many_fprs" --bootstrap -1 --confidence 2
grep -q -- "--bootstrap: " err.txt && grep -q -- "--confidence: " err.txt \
  && ok "score: --bootstrap and --confidence named too" || { bad "score: all flags named"; cat err.txt; }
expect "score: too many attacks" 2 "--attack: must have at most 32 entries" -- "$MIA" score --bundle b.npz \
  --out rep_bad --attack "$many_attacks"
expect "score: an FPR out of range" 2 "--fpr[1]: must be in [0, 1]" -- "$MIA" score \
  --bundle b.npz --out rep_bad --fpr 0.1,2

# The same bundle as a folder of .npy files, and written by numpy itself.
expect "folder bundle" 0 "" -- "$MIA" make-bundle --out bdir --folder --points 100 --population 50
expect "score folder" 0 "" -- "$MIA" score --bundle bdir --attack lira --out rep2 -q
$PY - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
M, N, Z = 6, 300, 200
keep = np.zeros((M, N), bool)
for i in range(N):
    keep[rng.permutation(M)[:M // 2], i] = True
p = rng.uniform(0.2, 0.8, (M, N)).astype(np.float32)
p[keep] = np.minimum(1.0, p[keep] + 0.15)
np.savez_compressed("numpy_bundle.npz", signals=p, keep=keep,
                    population_signals=rng.uniform(0.2, 0.8, (M, Z)),
                    row_ids=np.arange(N, dtype=np.int64) * 2, targets=np.array([0, 1]))
bad = p.astype(np.float64).copy(); bad[2, 5] = np.nan
np.savez("nan_bundle.npz", signals=bad, keep=keep)
np.savez("nokeep_bundle.npz", signals=p)
allin = np.ones((M, N), bool)
np.savez("allin_bundle.npz", signals=p, keep=allin)
np.savez("shape_bundle.npz", signals=p, keep=keep[:, :10])
np.savez("dtype_bundle.npz", signals=p, keep=keep.astype(np.float32) * 0.5)
np.savez("object_bundle.npz", signals=np.array([{"a": 1}], dtype=object), keep=keep)
PY
expect "numpy bundle" 0 "" -- "$MIA" score --bundle numpy_bundle.npz --attack rmia,reference --out rep3 -q
[ "$(tail -n +2 rep3/scores.csv | wc -l)" = 600 ] && ok "two targets x 300 rows" || bad "two targets x 300 rows"

# Bad input: clear message, non-zero exit code, no crash.
expect "NaN signal" 2 "array 'signals': non-finite value (NaN or inf) at flat index 605" -- "$MIA" score --bundle nan_bundle.npz --attack loss --out r
expect "missing keep" 2 "array 'keep' is missing" -- "$MIA" score --bundle nokeep_bundle.npz --attack loss --out r
expect "no OUT reference" 2 "keep" -- "$MIA" score --bundle allin_bundle.npz --attack reference --out r
expect "keep shape" 2 "array 'keep': shape (6, 10), expected (6, 300)" -- "$MIA" score --bundle shape_bundle.npz --attack loss --out r
expect "keep dtype" 2 "keep" -- "$MIA" score --bundle dtype_bundle.npz --attack loss --out r
expect "object array refused" 2 "signals" -- "$MIA" score --bundle object_bundle.npz --attack loss --out r
expect "missing file" 3 "no_such.npz" -- "$MIA" score --bundle no_such.npz --attack rmia --out r
head -c 3000 b.npz > cut.npz
expect "truncated zip" 2 "cut.npz" -- "$MIA" score --bundle cut.npz --attack rmia --out r
# A bundle mia may not read is a permission problem, not bad input: exit 1,
# not 2 (root reads anything, so as root this runs as nobody).
cp b.npz locked.npz && chmod 000 locked.npz && chmod 755 "$WORK"
as_user=()
if [ "$(id -u)" -eq 0 ]; then as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups); fi
expect "unreadable bundle" 1 "locked.npz: cannot open: Permission denied" -- "${as_user[@]}" "$MIA" score --bundle locked.npz --attack rmia --out r
printf 'PK\003\004garbage' > junk.npz
expect "corrupt zip" 2 "junk.npz" -- "$MIA" score --bundle junk.npz --attack rmia --out r
expect "unknown attack" 2 "unknown attack 'rmiax'" -- "$MIA" score --bundle b.npz --attack rmiax --out r
expect "unknown option" 2 "unknown option 'gama'" -- "$MIA" score --bundle b.npz --attack rmia:gama=2 --out r
rm -f bdir/population_logits.npy bdir/population_labels.npy
expect "population missing" 2 "needs population points" -- "$MIA" score --bundle bdir --attack rmia --out r
expect "bad target" 2 "target model 9" -- "$MIA" score --bundle b.npz --targets 9 --out r
# One validator that reports every problem: `mia audit` on the file of issue 10
# names all three fields, as CreateAudit does (it stopped at the first).
printf 'data:\n  dataset: purchase100\n  data_dir: x.csv\n  population_size: 10\ntrain:\n  learning_rate: 0\n  epochs: 0\n  batch_size: 0\n' >bad_config.yaml
expect "audit: every problem" 2 "bad_config.yaml: 3 problems: " -- "$MIA" audit --config bad_config.yaml
for field in train.learning_rate train.epochs train.batch_size; do
  if grep -qF "$field: must be in" err.txt; then ok "audit names $field"; else bad "audit lacks $field"; fi
done
# `mia duci` (--cf as Privacy Meter's run_duci.py) goes through the same
# validator, with audit.duci's checks.
printf 'data:\n  dataset: purchase100\n  data_dir: x.csv\naudit:\n  algorithm: RMIA\n  num_ref_models: 1\n  duci:\n    fractions: [0.5, 2]\n' >bad_duci.yaml
expect "duci: bad fraction" 2 "audit.duci.fractions[1]: must be in [0, 1]" -- "$MIA" duci --cf bad_duci.yaml
# A synthetic language-model bundle: every attack, sequence and classifier,
# finds its leak; with --leak 0 none does; missing arrays are named.
expect "make-bundle --lm" 0 "wrote lm.npz: language-model bundle" -- "$MIA" make-bundle --lm --out lm.npz --points 600 --population 300
expect "score lm" 0 "report written" -- "$MIA" score --bundle lm.npz --attack loss,zlib,min-k,min-k++,lm-reference,rmia-offline --out lmrep --bootstrap 50
$PY - <<'PY' && ok "lm result.json and scores.csv" || bad "lm result.json and scores.csv"
import json, csv
r = json.load(open("lmrep/result.json"))
names = [x["attack"] for x in r["results"]]
assert names == ["loss", "zlib", "min-k", "min-k++", "lm-reference", "rmia-offline"], names
for x in r["results"]:
    assert 0.6 < x["auc"] <= 1, (x["attack"], x["auc"])
rows = list(csv.reader(open("lmrep/scores.csv")))
assert rows[0] == ["row_id", "target", "member"] + names, rows[0]
assert len(rows) == 601, len(rows)
PY
expect "make-bundle --lm --leak 0" 0 "" -- "$MIA" make-bundle --lm --leak 0 --out lm0.npz --points 1000 --population 300 --no-texts
expect "score lm without leak" 0 "" -- "$MIA" score --bundle lm0.npz --attack loss,min-k,min-k++,lm-reference,rmia-offline --out lmrep0 --bootstrap 0 -q
$PY - <<'PY' && ok "lm without leak: AUC near 0.5" || bad "lm without leak: AUC near 0.5"
import json
for x in json.load(open("lmrep0/result.json"))["results"]:
    assert abs(x["auc"] - 0.5) < 0.07, (x["attack"], x["auc"])
PY
expect "zlib needs texts" 2 "attack 'zlib' needs texts: add the array 'texts' to the bundle" -- "$MIA" score --bundle lm0.npz --attack zlib --out r
expect "min-k on a classifier" 2 "attack 'min-k' is for language models" -- "$MIA" score --bundle b.npz --attack min-k --out r
grep -q "^min-k++" <("$MIA" attacks) && ok "attacks lists min-k++" || bad "attacks lists min-k++"

expect "big bundle" 0 "" -- "$MIA" make-bundle --out big.npz --points 20000 --population 10
expect "too large" 4 "big.npz" -- "$MIA" score --bundle big.npz --max-bundle-mb 1 --out r
expect "missing flag" 2 "--out" -- "$MIA" score --bundle b.npz

# A few megabytes of deflated zeros declaring keep and signals of [4, 1e8]
# (2 GB decoded): sized from the headers and refused before decoding.
$PY "$TESTS/io/make_zeros_npz.py" zeros.npz
expect "memory budget" 4 "for scoring a bundle of 4 models x 100000000 points x 1 query (2 arrays, 2.00 GB decoded) exceeds this machine's memory budget 1.05 GB; see --memory-budget-mb" -- "$MIA" score --bundle zeros.npz --memory-budget-mb 1000 --out r
expect "declared array too large" 4 "zeros.npz: member 'signals.npy': declared size" -- "$MIA" score --bundle zeros.npz --max-bundle-mb 1000 --out r
expect "report folder not writable" 1 "rep/result.json" -- "$MIA" score --bundle b.npz --attack loss --out rep/result.json
expect "list attacks" 0 "" -- "$MIA" attacks
grep -q "rmia-offline" out.txt && ok "attacks lists rmia-offline" || bad "attacks lists rmia-offline"

# The DP-SGD accountant: the published MNIST example (q = 256/60000, sigma 1.1,
# 60 epochs = 14063 steps, delta 1e-5) is eps 3.01 with the classic
# conversion; the spec's conversion gives less. Bad values name their flag.
expect "accountant" 0 "" -- "$MIA" accountant --sample-rate 0.00426666666667 --noise-multiplier 1.1 --epochs 60 --conversion classic
grep -q "^epsilon *3.009" out.txt && grep -q "^steps *14063" out.txt && grep -q "^order *9" out.txt \
  && ok "accountant: classic eps 3.009 at order 9" || { bad "accountant: classic eps"; cat out.txt; }
expect "accountant --json" 0 "" -- "$MIA" accountant --sample-rate 0.00426666666667 --noise-multiplier 1.1 --steps 14063 --delta 1e-5 --json
$PY - <<'PY' && ok "accountant JSON" || bad "accountant JSON"
import json
r = json.load(open("out.txt"))
assert r["conversion"] == "spec" and r["steps"] == 14063 and r["noise_multiplier"] == 1.1, r
assert 2.5 < r["epsilon"] < 3.0 and r["order"] == 8, r
assert r["delta"] == 1e-5 and abs(r["sample_rate"] - 256 / 60000) < 1e-12, r
PY
expect "accountant --target-epsilon" 0 "" -- "$MIA" accountant --sample-rate 0.00426666666667 --target-epsilon 3.0092 --steps 14063 --conversion classic --json
$PY -c 'import json; r = json.load(open("out.txt")); assert abs(r["noise_multiplier"] - 1.1) < 1e-3 and r["epsilon"] <= 3.0092, r' \
  && ok "accountant solves sigma 1.1 back" || bad "accountant solves sigma 1.1 back"
expect "accountant: bad sample rate" 2 "--sample-rate: must be in (0, 1]" -- "$MIA" accountant --sample-rate 1.5 --noise-multiplier 1 --steps 10
expect "accountant: bad delta" 2 "--delta: must be in (0, 1)" -- "$MIA" accountant --sample-rate 0.1 --noise-multiplier 1 --steps 10 --delta 0
expect "accountant: bad conversion" 2 "--conversion: 'rdp' is neither" -- "$MIA" accountant --sample-rate 0.1 --noise-multiplier 1 --steps 10 --conversion rdp
expect "accountant: steps and epochs" 2 "give --steps or --epochs" -- "$MIA" accountant --sample-rate 0.1 --noise-multiplier 1 --steps 10 --epochs 2
expect "accountant: not a number" 2 "--noise-multiplier" -- "$MIA" accountant --sample-rate 0.1 --noise-multiplier x --steps 10
expect "accountant: unreachable target" 2 "--target-epsilon: 0.01 is unreachable" -- "$MIA" accountant --sample-rate 0.1 --target-epsilon 0.01 --steps 10
# The one-run DP audit bound from counts: text, JSON, and flags named in errors.
# All 100 guesses right with delta 0: q^100 < 0.05 up to eps = log(q / (1 - q)),
# q = 0.05^(1/100), i.e. 3.492965, less at most 1e-5 (bisection from below).
expect "one-run-bound" 0 "" -- "$MIA" one-run-bound --canaries 1000 --guesses 100 --correct 100 --delta 0
grep -qE "epsilon lower bound \(one run\): 3\.4929[56]" out.txt && ok "one-run-bound text" \
  || { bad "one-run-bound text"; cat out.txt; }
expect "one-run-bound --json" 0 "" -- "$MIA" one-run-bound --canaries 1000 --guesses 100 --correct 90 \
  --delta 1e-5 --beta 0.05 --json
$PY - <<'PY' && ok "one-run-bound JSON" || { bad "one-run-bound JSON"; cat out.txt; }
import json
r = json.load(open("out.txt"))
assert 1.5 < r["epsilon"] < 1.7, r
assert (r["canaries"], r["guesses"], r["correct"], r["delta"], r["beta"]) == (1000, 100, 90, 1e-5, 0.05), r
PY
expect "one-run-bound chance" 0 "" -- "$MIA" one-run-bound --canaries 100 --guesses 100 --correct 50 --json
grep -q '"epsilon": 0.000000' out.txt && ok "one-run-bound half right gives 0" || bad "one-run-bound half right gives 0"
expect "one-run-bound: more right than guessed" 2 "--correct: must lie in [0, guesses = 100]" -- "$MIA" \
  one-run-bound --canaries 1000 --guesses 100 --correct 101
expect "one-run-bound: delta out of range" 2 "--delta: must lie in [0, 1)" -- "$MIA" \
  one-run-bound --canaries 1000 --guesses 100 --correct 90 --delta 1
expect "one-run-bound: not a number" 2 "--canaries" -- "$MIA" one-run-bound --canaries many --guesses 1 --correct 1

# A DP audit in one run through `mia audit`: its table in result.json holds the
# bound `mia one-run-bound` prints for the same (m, r, v, delta, beta).
$PY - <<'PY'
import random
rng = random.Random(5)
with open("dp.csv", "w") as out:
    for _ in range(500):
        y = rng.randrange(3)
        out.write(",".join([str(y)] + ["%.4f" % (y + rng.gauss(0, 1)) for _ in range(5)]) + "\n")
PY
cat > dp.yaml <<YAML
run: {random_seed: 3, log_dir: $WORK/dpruns}
data: {dataset: csv, data_dir: $WORK/dp.csv, pool_size: 400}
train: {model_name: mlp, hidden: [32], optimizer: adam, learning_rate: 0.01, epochs: 10, batch_size: 32}
audit: {attacks: [loss], num_ref_models: 0, bootstrap: 0}
dp_audit: {canary_size: 100, grid: [{k_plus: 10, k_minus: 10}, {k_plus: 25, k_minus: 25}]}
YAML
expect "audit: dp_audit" 0 "" -- "$MIA" audit --config dp.yaml --out dprep
[ -s dprep/dp_audit.svg ] && ok "dp_audit.svg written" || bad "dp_audit.svg written"
$PY - "$MIA" <<'PY' && ok "dp_audit table = one-run-bound" || bad "dp_audit table = one-run-bound"
import json, subprocess, sys
d = json.load(open("dprep/result.json"))["dp_audit"]
assert d["canaries"] == 100 and len(d["attacks"]) == 1, d
entries = d["attacks"][0]["entries"]
assert [(e["k_plus"], e["k_minus"]) for e in entries[:2]] == [(10, 10), (25, 25)], entries
assert entries[-1]["chosen_after_looking"], entries
for e in entries:
    out = subprocess.run([sys.argv[1], "one-run-bound", "--canaries", "100", "--guesses",
                          str(e["guesses"]), "--correct", str(e["correct"]), "--delta",
                          repr(d["delta"]), "--beta", repr(d["beta"]), "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert abs(json.loads(out)["epsilon"] - e["epsilon"]) < 1e-6, (e, out)
PY

# Remote commands without a server: the job file is checked first, then the
# connection. Port 1 on the loopback has no mia server.
printf 'train:\n  learing_rate: 0.1\n' > badjob.yaml
expect "submit unknown key" 2 "badjob.yaml: train.learing_rate: unknown key (line 2)" -- "$MIA" submit badjob.yaml --server 127.0.0.1:1
expect "submit missing job" 3 "nojob.yaml" -- "$MIA" submit nojob.yaml --server 127.0.0.1:1
printf 'bundle:\n  path: srv/b.npz\n' > bjob.yaml
expect "no server" 5 "cannot reach the mia server at 127.0.0.1:1: is it running?" -- "$MIA" submit bjob.yaml --server 127.0.0.1:1
expect "no server (env)" 5 "127.0.0.1:1" -- env MIA_SERVER=127.0.0.1:1 "$MIA" list
expect "bad state" 2 "--state" -- "$MIA" list --state sleeping --server 127.0.0.1:1

# The privacy gate: `mia score --policy FILE` (the keys of audit.policy) puts
# the verdict in the report and exits 7 on FAIL, 0 on PASS; errors keep theirs.
printf 'max_auc: 0.999\nmax_tpr_at_fpr: {0.005: 1}\n' > pass.yaml
expect "score --policy: PASS exits 0" 0 "" -- "$MIA" score --bundle b.npz \
  --attack rmia,loss --out gate_pass --bootstrap 50 -q --policy pass.yaml
grep -q "^policy: PASS" out.txt && ok "score --policy: PASS printed" || { bad "score --policy: PASS printed"; cat out.txt; }
$PY - <<'PY' && ok "score --policy: verdict in result.json and summary.md" || bad "score --policy: verdict in the report"
import json
r = json.load(open("gate_pass/result.json"))
assert r["policy"]["verdict"] == "PASS", r["policy"]
assert 0.005 in r["fprs"], r["fprs"]  # the policy's FPR was added
rules = [(x["rule"], x["target"]) for x in r["policy"]["rules"]]
assert rules == [("max_auc", 0), ("max_tpr_at_fpr[0.005]", 0)], rules
md = open("gate_pass/summary.md").read()
assert md.index("## Privacy policy: PASS") < md.index("- Tool:")
PY
printf 'max_auc: 0.55\nattacks:\n  loss: {max_epsilon_lower_bound: 100}\n' > fail.yaml
expect "score --policy: FAIL exits 7" 7 "" -- "$MIA" score --bundle b.npz \
  --attack rmia,loss --out gate_fail --bootstrap 0 -q --policy fail.yaml
grep -q "^policy: FAIL" out.txt && grep -q "FAIL max_auc: rmia, target 0" out.txt && ok "score --policy: the failed rule named" \
  || { bad "score --policy: the failed rule named"; cat out.txt; }
grep -q '"verdict": "FAIL"' gate_fail/result.json && ok "score --policy: FAIL in result.json" \
  || bad "score --policy: FAIL in result.json"
printf 'max_auc: 2\nmax_tpr_at_fpr: {0.001: 0.1, 1e-3: 0.2}\n' > bad_policy.yaml
expect "score --policy: every problem of the file, exit 2" 2 "bad_policy.yaml: max_auc: must be in [0, 1] (line 1)" -- \
  "$MIA" score --bundle b.npz --out gate_bad --policy bad_policy.yaml
grep -qF "max_tpr_at_fpr[1e-3]: the same FPR as [0.001]" err.txt && ok "score --policy: the repeated FPR named" \
  || { bad "score --policy: the repeated FPR named"; cat err.txt; }
printf 'use: upper_ci\nattacks: {lira: {max_auc: 0.5}}\n' > other_policy.yaml
expect "score --policy: an attack not run, exit 2" 2 "attacks.lira: the audit does not run this attack" -- \
  "$MIA" score --bundle b.npz --attack rmia --bootstrap 0 --out gate_bad --policy other_policy.yaml
grep -qF "use: upper_ci needs bootstrap intervals" err.txt && ok "score --policy: upper_ci without intervals named" \
  || { bad "score --policy: upper_ci without intervals"; cat err.txt; }
expect "score --policy: missing file, exit 3" 3 "nopolicy.yaml" -- "$MIA" score --bundle b.npz \
  --out gate_bad --policy nopolicy.yaml
[ ! -e gate_bad ] && ok "score --policy: a bad policy is refused before any work" || bad "score --policy: gate_bad written"

# `mia compare A B`: a leakier model B fails the regression test (exit 7).
"$MIA" make-bundle --out low.npz --points 600 --population 300 --leak 0.2 --seed 4 >/dev/null 2>&1
"$MIA" make-bundle --out high.npz --points 600 --population 300 --leak 3 --seed 4 >/dev/null 2>&1
"$MIA" score --bundle low.npz --attack rmia,loss --out rep_low --bootstrap 100 -q >/dev/null 2>&1
"$MIA" score --bundle high.npz --attack rmia,loss --out rep_high --bootstrap 100 -q >/dev/null 2>&1
expect "compare: the same report is not worse" 0 "" -- "$MIA" compare rep_low rep_low
grep -q "B is not worse than A" out.txt && ok "compare: says not worse" || { bad "compare: says not worse"; cat out.txt; }
expect "compare: a leakier B exits 7" 7 "" -- "$MIA" compare rep_low rep_high --threshold 0.01
grep -q "WORSE" out.txt && grep -q "B is worse than A" out.txt && ok "compare: the worse figure marked" \
  || { bad "compare: the worse figure marked"; cat out.txt; }
expect "compare: a less leaky B exits 0" 0 "" -- "$MIA" compare rep_high rep_low --use lower_ci
expect "compare --json" 7 "" -- "$MIA" compare rep_low rep_high --json --tpr-threshold 0.01
$PY - <<'PY' && ok "compare --json content" || bad "compare --json content"
import json
c = json.load(open("out.txt"))
assert c["worse"] is True
assert [a["attack"] for a in c["attacks"]] == ["rmia", "loss"]
auc = c["attacks"][0]["figures"][0]
assert auc["figure"] == "auc" and auc["threshold"] == 0.02 and auc["worse"]  # the default
assert abs(auc["diff"] - (auc["b"] - auc["a"])) < 1e-12
lo, hi = auc["diff_ci"]
assert lo < auc["diff"] < hi
a = json.load(open("rep_low/result.json"))["results"][0]
assert auc["a"] == a["auc"] and auc["a_ci"] == a["auc_ci"]
assert any(f["figure"] == "tpr@0.01" for f in c["attacks"][0]["figures"])
PY
expect "compare: no result.json, exit 3" 3 "no result.json" -- "$MIA" compare nowhere rep_low
expect "compare: remote without a server, exit 5" 5 "cannot reach" -- "$MIA" compare audits/abc rep_low --server 127.0.0.1:1

# A bundle audit on a real mia-server (the second argument, when given) with
# a policy file: `mia submit --policy FILE --follow` and `mia watch` exit 7 on
# FAIL and 0 on PASS, as `mia score --policy` does locally.
if [ -n "$SERVER" ]; then
  mkdir -p srv_roots srv_data
  cp b.npz srv_roots/b.npz
  "$SERVER" --listen_address=127.0.0.1:0 --data_dir=srv_data --data_roots="$WORK/srv_roots" \
    --metrics_port=0 >server.log 2>&1 &
  spid=$!
  port=""
  for _ in $(seq 1 300); do
    port=$(sed -n 's/.*"msg":"serving","port":\([0-9]*\).*/\1/p' server.log)
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    bad "mia-server did not start"; sed 's/^/     /' server.log | tail -5
  else
    printf 'bundle:\n  path: b.npz\n  attacks: [rmia, loss]\n  bootstrap: 0\n' > bjob.yaml
    printf 'max_auc: 0.51\n' > gate_fail.yaml   # b.npz leaks: every AUC above 0.55
    printf 'max_auc: 1\nmax_tpr_at_fpr: {0.1: 1}\n' > gate_pass.yaml
    expect "submit --policy: a FAIL verdict exits 7" 7 "SUCCEEDED" -- "$MIA" submit bjob.yaml \
      --policy gate_fail.yaml --follow --server "127.0.0.1:$port"
    grep -q "^policy: FAIL" out.txt && grep -q "FAIL max_auc: rmia, target 0" out.txt \
      && ok "submit --policy: the failed rule named" || { bad "submit --policy: the failed rule"; cat out.txt; }
    name=$(head -n 1 out.txt)
    expect "watch: the FAIL bundle audit exits 7" 7 "" -- "$MIA" watch "$name" --server "127.0.0.1:$port"
    expect "submit --policy: a PASS verdict exits 0" 0 "" -- "$MIA" submit bjob.yaml \
      --policy gate_pass.yaml --follow --server "127.0.0.1:$port"
    grep -q "^policy: PASS" out.txt && ok "submit --policy: PASS printed" || { bad "submit --policy: PASS printed"; cat out.txt; }
    printf 'attacks: {lira: {max_auc: 0.5}}\n' > gate_other.yaml
    expect "submit --policy: an attack the job does not run, exit 2" 2 \
      "spec.signals_bundle.policy.attacks.lira: the audit does not run this attack" -- \
      "$MIA" submit bjob.yaml --policy gate_other.yaml --server "127.0.0.1:$port"
  fi
  kill -TERM "$spid" 2>/dev/null
  wait "$spid" 2>/dev/null
fi

finish_checks
