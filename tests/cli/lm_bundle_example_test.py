#!/usr/bin/env python3
"""examples/lm_bundle.py's numpy part writes the bundle format mia reads.

Builds per-token signals from random logits with the example's own functions,
writes a language-model bundle with write_lm_bundle, scores it with the real
`mia score`, and checks every score against the definitions of
shared/spec/ATTACKS.md ("Sequences") computed here independently (Python's
zlib, exact fractions for n = max(1, floor(k T))); then checks the PyTorch
half (token_signals) against the numpy one on a small causal model.

Usage: lm_bundle_example_test.py PATH_TO_MIA REPO_ROOT
"""

import csv
import fractions
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import zlib

import numpy as np

MIA, ROOT = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("lm_bundle", os.path.join(ROOT, "examples", "lm_bundle.py"))
lm_bundle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lm_bundle)

failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + detail))
    failures += 0 if cond else 1


rng = np.random.default_rng(5)

# signals_from_logits against the definition, term by term.
logits = rng.normal(size=(4, 7)) * 3
next_ids = rng.integers(0, 7, size=4)
lp, mean, var = lm_bundle.signals_from_logits(logits, next_ids)
ok = True
for t in range(4):
    total = sum(math.exp(v) for v in logits[t])
    logp = [v - math.log(total) for v in logits[t]]
    p = [math.exp(v) for v in logp]
    mu = sum(pi * li for pi, li in zip(p, logp))
    second = sum(pi * li * li for pi, li in zip(p, logp))
    ok = ok and abs(lp[t] - logp[next_ids[t]]) < 1e-12
    ok = ok and abs(mean[t] - mu) < 1e-12 and abs(var[t] - (second - mu * mu)) < 1e-10
check("signals_from_logits is the definition", ok)

# A small leaky game: M models, N audit texts, Z population texts, vocab V.
M, N, Z, V, L = 4, 80, 30, 11, 9
keep = np.zeros((M, N), bool)
for i in range(N):
    keep[rng.permutation(M)[: M // 2], i] = True
words = ["alpha", "beta", "gamma", "delta", "\u00e9t\u00e9", "\u4e2d\u6587", "\U0001F600", "zz"]


def game(n, members):
    lengths = rng.integers(1, L + 1, size=n)
    texts = [" ".join(rng.choice(words, size=t)) for t in lengths]
    tokens = [rng.integers(0, V, size=t) for t in lengths]
    base = [rng.normal(size=(t, V)) * 2 for t in lengths]
    rows = []
    for m in range(M):
        row = []
        for i in range(n):
            z = base[i] + 0.3 * rng.normal(size=base[i].shape)
            if members is not None and members[m, i]:
                z[np.arange(lengths[i]), tokens[i]] += 1.5  # memorized: the true token gains
            row.append(lm_bundle.signals_from_logits(z, tokens[i]))
        rows.append(row)
    return lm_bundle.stack_models(rows), texts


audit, texts = game(N, keep)
pop, pop_texts = game(Z, None)
pop["texts"] = pop_texts
work = tempfile.mkdtemp()
path = os.path.join(work, "lm.npz")
lm_bundle.write_lm_bundle(path, keep, audit["token_logprobs"], audit["lengths"],
                          audit["token_mean"], audit["token_var"], texts=texts, population=pop,
                          row_ids=np.arange(N) + 500, targets=[0, 1])
with np.load(path) as z:
    check("texts are numpy unicode", z["texts"].dtype.kind == "U", str(z["texts"].dtype))
    check("arrays named as docs/bundle-format.md",
          set(z.files) == {"keep", "token_logprobs", "lengths", "token_mean", "token_var", "texts",
                           "population_token_logprobs", "population_lengths", "population_token_mean",
                           "population_token_var", "population_texts", "row_ids", "targets"},
          str(z.files))

attacks = ["loss", "zlib", "min-k", "min-k++:k=0.5", "lm-reference", "rmia-offline"]
out = os.path.join(work, "report")
run = subprocess.run([MIA, "score", "--bundle", path, "--attack", ",".join(attacks), "--out", out,
                      "--bootstrap", "0", "-q"], capture_output=True, text=True)
check("mia score exits 0", run.returncode == 0, run.stderr[-2000:])
if run.returncode != 0:
    sys.exit(1)

rows = list(csv.DictReader(open(os.path.join(out, "scores.csv"))))
check("one row per target and text", len(rows) == 2 * N, str(len(rows)))
check("one column per attack, by canonical name",
      list(rows[0].keys()) == ["row_id", "target", "member"] + attacks, str(list(rows[0].keys())))


def n_of(k, t):
    return max(1, math.floor(fractions.Fraction(k) * t))


lp_all = audit["token_logprobs"].astype(np.float64)
zl = [len(zlib.compress(t.encode("utf-8"), 6)) for t in texts]
worst = {a: 0.0 for a in attacks[:4]}
for row in rows:
    tgt, i = int(row["target"]), int(row["row_id"]) - 500
    t = audit["lengths"][i]
    lp_t = lp_all[tgt, i, :t]
    loss = -lp_t.sum() / t
    z = np.where(audit["token_var"][tgt, i, :t] > 0,
                 (lp_t - audit["token_mean"][tgt, i, :t]) /
                 np.sqrt(np.maximum(audit["token_var"][tgt, i, :t].astype(np.float64), 1e-300)), 0.0)
    want = {"loss": -loss, "zlib": -loss / zl[i],
            "min-k": np.sort(lp_t)[: n_of("0.2", t)].mean(),
            "min-k++:k=0.5": np.sort(z)[: n_of("0.5", t)].mean()}
    for a, w in want.items():
        worst[a] = max(worst[a], abs(float(row[a]) - w))
    if int(row["member"]) != int(keep[tgt, i]):
        check("member column", False, f"row {row['row_id']}")
for a, err in worst.items():
    check(f"{a} scores are the definition", err < 1e-9, f"max error {err}")

# The PyTorch half: token_signals on a small causal model equals
# signals_from_logits on that model's logits (python3-torch is a test
# package: its absence is a failure, not a skip).
import torch  # noqa: E402

torch.manual_seed(0)


class TinyLm(torch.nn.Module):
    """A causal model: position t sees tokens 0..t only (cumulative sum)."""

    def __init__(self, vocab=23, width=8):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.head = torch.nn.Linear(width, vocab)

    def forward(self, input_ids, attention_mask=None):
        class Out:
            pass

        out = Out()
        out.logits = self.head(torch.cumsum(self.embed(input_ids), dim=1))
        return out


model = TinyLm().eval()
ids_list = [[3, 4, 5, 6, 7], [8, 9], [10], [11, 12, 13]]
got = lm_bundle.token_signals(model, ids_list, bos_id=0, with_stats=True)
worst = 0.0
for ids, (g_lp, g_mean, g_var) in zip(ids_list, got):
    with torch.no_grad():
        logits = model(torch.tensor([[0] + ids[:-1]])).logits[0].double().numpy()
    lp, mean, var = lm_bundle.signals_from_logits(logits, np.array(ids))
    for a, b in ((g_lp, lp), (g_mean, mean), (g_var, var)):
        worst = max(worst, float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b))))
check("token_signals (PyTorch) equals signals_from_logits", worst < 1e-4, f"max error {worst}")

result = json.load(open(os.path.join(out, "result.json")))
for x in result["results"]:
    check(f"{x['attack']} (target {x['target']}) finds the leak", x["auc"] > 0.6, str(x["auc"]))

# A bad array is refused, naming the array and the position.
bad = os.path.join(work, "bad.npz")
lp_bad = audit["token_logprobs"].copy()
lp_bad[1, 3, 0] = 0.5
lm_bundle.write_lm_bundle(bad, keep, lp_bad, audit["lengths"])
run = subprocess.run([MIA, "score", "--bundle", bad, "--attack", "loss", "--out", out + "2", "-q"],
                     capture_output=True, text=True)
check("a positive log-prob is refused", run.returncode == 2 and
      "array 'token_logprobs': value above 0 at [1, 3, 0]" in run.stderr, run.stderr)

print(f"{'all passed' if failures == 0 else f'{failures} failed'}")
sys.exit(1 if failures else 0)
