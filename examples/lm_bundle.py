#!/usr/bin/env python3
"""Build a language-model bundle for `mia score` from causal language models.

The bundle (docs/bundle-format.md, "Language models") holds, for M models and
N texts, each text's per-token log-probabilities lp_m(x, t) = log p_m(x_t | x_<t)
and, optionally, the mean and variance of log p over each next-token
distribution (for Min-K%++), the texts themselves (for zlib), and which model
trained on which text (keep).

Two parts, so that the second runs without PyTorch:

  * token_signals(model, ids_list, bos_id) runs one causal LM (anything whose
    model(input_ids).logits is [batch, T, vocab], e.g. Hugging Face's
    AutoModelForCausalLM) over tokenized texts: needs torch.
  * signals_from_logits(...) is the same arithmetic in numpy (a reference and
    for logits computed elsewhere); stack_models(...) pads per-model results
    into [M, N, L] arrays; write_lm_bundle(...) checks the arrays and writes
    the .npz with numpy alone.

Command line (needs torch and transformers):

  python3 examples/lm_bundle.py --model gpt2 --model ./my-finetuned-gpt2 \\
      --texts texts.jsonl --keep keep.npy --out lm.npz \\
      [--population-texts population.jsonl] [--max-length 128] [--no-stats]

texts.jsonl holds one JSON string per line (the audit texts, in keep's column
order); keep.npy is a bool array [models, texts] in --model order. Then:

  mia score --bundle lm.npz --attack loss,zlib,min-k,min-k++,lm-reference,rmia-offline --out report
"""

import argparse
import json

import numpy as np


def signals_from_logits(logits, next_ids, with_stats=True):
    """Per-token signals of one text from its logits, in numpy (float64).

    logits: [T, V], the model's outputs at the T positions that predict the
    text's tokens (position t sees [bos, x_1..x_{t-1}]); next_ids: [T], the
    tokens x_1..x_T. Returns (lp, mean, var), each [T] (mean, var None when
    not with_stats): lp = log p(x_t), mean = sum_v p(v) log p(v),
    var = sum_v p(v) (log p(v) - mean)^2 (= sum_v p (log p)^2 - mean^2).
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    lp = np.take_along_axis(logp, np.asarray(next_ids)[:, None], axis=-1)[:, 0]
    if not with_stats:
        return lp, None, None
    p = np.exp(logp)
    mean = (p * logp).sum(axis=-1)
    var = (p * (logp - mean[:, None]) ** 2).sum(axis=-1)
    return lp, mean, var


def token_signals(model, ids_list, bos_id, max_length=None, with_stats=True, device="cpu"):
    """Runs a causal LM over tokenized texts; returns a list of (lp, mean, var)
    per text, each a float64 numpy array of the text's (possibly truncated)
    length. The model sees [bos, x_1..x_{T-1}] and predicts x_1..x_T.
    Needs torch; the arithmetic is signals_from_logits's.
    """
    import torch  # only here: the rest of this file runs without it

    out = []
    model.eval()
    with torch.no_grad():
        for ids in ids_list:
            ids = list(ids)[:max_length] if max_length else list(ids)
            if not ids:
                raise ValueError("a text has no tokens")
            inputs = torch.tensor([[bos_id] + ids[:-1]], device=device)
            targets = torch.tensor(ids, device=device)
            logits = model(inputs).logits[0].double()           # [T, V]
            logp = torch.log_softmax(logits, dim=-1)            # [T, V]
            lp = logp.gather(-1, targets[:, None])[:, 0]        # [T]
            if with_stats:
                p = logp.exp()
                mean = (p * logp).sum(-1)                       # [T]
                var = (p * (logp - mean[:, None]) ** 2).sum(-1)  # [T]
                out.append((lp.cpu().numpy(), mean.cpu().numpy(), var.cpu().numpy()))
            else:
                out.append((lp.cpu().numpy(), None, None))
    return out


def stack_models(per_model):
    """per_model[m][i] = (lp, mean, var) of model m on text i (as
    token_signals returns) -> dict of token_logprobs [M, N, L], lengths [N]
    and, when every entry has them, token_mean and token_var [M, N, L]
    (float32; positions past a text's length hold 0).
    """
    m_count, n = len(per_model), len(per_model[0])
    lengths = np.array([len(per_model[0][i][0]) for i in range(n)], dtype=np.int64)
    for m in range(m_count):
        if len(per_model[m]) != n or any(len(per_model[m][i][0]) != lengths[i] for i in range(n)):
            raise ValueError(f"model {m} has other texts or lengths than model 0")
    length = int(lengths.max())
    stats = all(e[1] is not None and e[2] is not None for row in per_model for e in row)
    out = {"token_logprobs": np.zeros((m_count, n, length), np.float32), "lengths": lengths}
    if stats:
        out["token_mean"] = np.zeros((m_count, n, length), np.float32)
        out["token_var"] = np.zeros((m_count, n, length), np.float32)
    for m in range(m_count):
        for i in range(n):
            t = lengths[i]
            lp, mean, var = per_model[m][i]
            out["token_logprobs"][m, i, :t] = lp
            if stats:
                out["token_mean"][m, i, :t] = mean
                out["token_var"][m, i, :t] = var
    return out


def write_lm_bundle(path, keep, token_logprobs, lengths, token_mean=None, token_var=None,
                    texts=None, population=None, row_ids=None, targets=None, compress=True):
    """Checks the arrays' shapes and writes the bundle as an .npz.

    keep [M, N] bool; token_logprobs (and token_mean, token_var) [M, N, L];
    lengths [N] in 1..L; texts: N strings (stored as numpy unicode, '<U..');
    population: a dict with token_logprobs [M, Z, L'], lengths [Z] and
    optionally token_mean, token_var, texts (written with prefix
    'population_'); row_ids [N] int64; targets: model indices.
    """
    keep = np.asarray(keep, dtype=bool)
    lp = np.asarray(token_logprobs)
    if lp.ndim != 3 or lp.dtype not in (np.float32, np.float64):
        raise ValueError("token_logprobs must be a float32 or float64 array [models, texts, L]")
    m_count, n, length = lp.shape
    if keep.shape != (m_count, n):
        raise ValueError(f"keep has shape {keep.shape}, expected {(m_count, n)}")
    arrays = {"keep": keep}

    def add(prefix, lp, lengths, mean, var, texts, models):
        lp = np.asarray(lp)
        if lp.ndim != 3 or lp.shape[0] != models:
            raise ValueError(f"{prefix}token_logprobs must be [{models}, texts, L]")
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (lp.shape[1],) or lengths.min() < 1 or lengths.max() > lp.shape[2]:
            raise ValueError(f"{prefix}lengths must be [{lp.shape[1]}] in 1..{lp.shape[2]}")
        arrays[prefix + "token_logprobs"] = lp
        arrays[prefix + "lengths"] = lengths
        if (mean is None) != (var is None):
            raise ValueError(f"give {prefix}token_mean and {prefix}token_var together")
        if mean is not None:
            for name, a in (("token_mean", mean), ("token_var", var)):
                a = np.asarray(a)
                if a.shape != lp.shape:
                    raise ValueError(f"{prefix}{name} must have the shape of token_logprobs")
                arrays[prefix + name] = a
        if texts is not None:
            texts = np.array([str(t) for t in texts], dtype=str)
            if texts.shape != (lp.shape[1],):
                raise ValueError(f"{prefix}texts must hold {lp.shape[1]} strings")
            arrays[prefix + "texts"] = texts

    add("", lp, lengths, token_mean, token_var, texts, m_count)
    if population is not None:
        add("population_", population["token_logprobs"], population["lengths"],
            population.get("token_mean"), population.get("token_var"), population.get("texts"),
            m_count)
    if row_ids is not None:
        arrays["row_ids"] = np.asarray(row_ids, dtype=np.int64)
    if targets is not None:
        arrays["targets"] = np.asarray(targets, dtype=np.int64)
    (np.savez_compressed if compress else np.savez)(path, **arrays)


def _read_texts(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True,
                        help="a Hugging Face causal LM (name or folder); once per model, keep's row order")
    parser.add_argument("--tokenizer", help="tokenizer (default: the first model's)")
    parser.add_argument("--texts", required=True, help="audit texts, one JSON string per line")
    parser.add_argument("--keep", required=True, help=".npy bool [models, texts]")
    parser.add_argument("--population-texts", help="population texts (no model trained on them)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per text at most")
    parser.add_argument("--no-stats", action="store_true", help="leave out token_mean/token_var")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model[0])
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    texts = _read_texts(args.texts)
    population = _read_texts(args.population_texts) if args.population_texts else None
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    pop_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in population or []]
    audit_rows, pop_rows = [], []
    for name in args.model:
        model = AutoModelForCausalLM.from_pretrained(name).to(args.device)
        limit = args.max_length or getattr(model.config, "n_positions", None)
        audit_rows.append(token_signals(model, ids, bos, limit, not args.no_stats, args.device))
        if population:
            pop_rows.append(token_signals(model, pop_ids, bos, limit, not args.no_stats, args.device))
        del model
    audit = stack_models(audit_rows)
    pop = stack_models(pop_rows) if population else None
    if pop is not None:
        pop["texts"] = population
    write_lm_bundle(args.out, np.load(args.keep), audit["token_logprobs"], audit["lengths"],
                    audit.get("token_mean"), audit.get("token_var"), texts=texts, population=pop)


if __name__ == "__main__":
    main()
