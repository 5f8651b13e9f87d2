#!/usr/bin/env python3
"""A small random GPT-2 checkpoint in the Hugging Face layout, and its logits.

Writes OUT/config.json and OUT/model.safetensors (the safetensors layout by
hand: 8-byte little-endian header length, JSON header, raw little-endian
data) with weights stored as DTYPE (F32, F16 or BF16), tensor names with the
"transformer." prefix or without (PREFIX 1 or 0; with the prefix the file also
carries a tied lm_head.weight), Conv1D weights as [in, out], and the causal
mask buffers attn.bias. Then runs a plain NumPy forward pass (float64, on the
weights as stored) over fixed token ids and writes OUT/tokens.bin (int64
[B, T]) and OUT/logits.bin (float64 [B, T, V]).

Written for mia's gpt tests (tests/training/gpt_test.cc) from the GPT-2
definition, independently of mia's code. Usage: gpt2_reference.py OUT DTYPE PREFIX [VOCAB POSITIONS]
"""
import json
import os
import struct
import sys

import numpy as np

N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB = 2, 2, 16, 12, 23
EPS = 1e-5
BATCH, LENGTH = 2, 10


def as_stored(a, dtype):
    """(the values as the file holds them, as float64; their bytes)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype(np.float64), a.tobytes()
    if dtype == "F16":
        h = a.astype("<f2")
        return h.astype(np.float64), h.tobytes()
    if dtype == "BF16":  # round to nearest even on the upper 16 bits
        bits = a.view(np.uint32).astype(np.uint64)
        upper = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
        back = (upper.astype(np.uint32) << 16).view(np.float32)
        return back.astype(np.float64), upper.tobytes()
    raise ValueError(dtype)


def main():
    out, dtype, prefix = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    rng = np.random.default_rng(20240611)
    C, P, V = N_EMBD, N_POSITIONS, VOCAB
    if len(sys.argv) > 5:  # a checkpoint for a given tokenizer (pipeline tests)
        V, P = int(sys.argv[4]), int(sys.argv[5])

    def rand(*shape, scale=0.3):
        return rng.standard_normal(shape).astype(np.float32) * scale

    w = {"wte.weight": rand(V, C), "wpe.weight": rand(P, C)}
    for i in range(N_LAYER):
        p = "h.%d." % i
        w[p + "ln_1.weight"] = 1 + rand(C, scale=0.1)
        w[p + "ln_1.bias"] = rand(C, scale=0.1)
        w[p + "attn.c_attn.weight"] = rand(C, 3 * C)  # Conv1D: [in, out]
        w[p + "attn.c_attn.bias"] = rand(3 * C, scale=0.1)
        w[p + "attn.c_proj.weight"] = rand(C, C)
        w[p + "attn.c_proj.bias"] = rand(C, scale=0.1)
        w[p + "ln_2.weight"] = 1 + rand(C, scale=0.1)
        w[p + "ln_2.bias"] = rand(C, scale=0.1)
        w[p + "mlp.c_fc.weight"] = rand(C, 4 * C)
        w[p + "mlp.c_fc.bias"] = rand(4 * C, scale=0.1)
        w[p + "mlp.c_proj.weight"] = rand(4 * C, C)
        w[p + "mlp.c_proj.bias"] = rand(C, scale=0.1)
        w[p + "attn.bias"] = np.tril(np.ones((P, P), np.float32)).reshape(1, 1, P, P)
    w["ln_f.weight"] = 1 + rand(C, scale=0.1)
    w["ln_f.bias"] = rand(C, scale=0.1)

    header, blobs, values, offset = {}, [], {}, 0
    names = sorted(w)
    if prefix:
        names.append("lm_head.weight")
    for name in names:
        source = w["wte.weight"] if name == "lm_head.weight" else w[name]
        value, data = as_stored(source, dtype)
        values[name] = value
        stored_name = name if (not prefix or name == "lm_head.weight") else "transformer." + name
        header[stored_name] = {"dtype": dtype, "shape": list(source.shape),
                               "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"model_type": "gpt2", "n_layer": N_LAYER, "n_head": N_HEAD, "n_embd": C,
                   "n_positions": P, "n_ctx": P, "vocab_size": V,
                   "layer_norm_epsilon": EPS, "activation_function": "gelu_new"}, f)

    # The forward pass, straight from the definition.
    def layer_norm(x, g, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + EPS) * g + b

    def gelu_new(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))

    idx = rng.integers(0, V, size=(BATCH, LENGTH))
    B, T, H, D = BATCH, LENGTH, N_HEAD, C // N_HEAD
    x = values["wte.weight"][idx] + values["wpe.weight"][:T]
    future = np.triu(np.ones((T, T), bool), 1)
    for i in range(N_LAYER):
        p = "h.%d." % i
        h = layer_norm(x, values[p + "ln_1.weight"], values[p + "ln_1.bias"])
        qkv = h @ values[p + "attn.c_attn.weight"] + values[p + "attn.c_attn.bias"]
        q, k, v = (qkv[..., j * C:(j + 1) * C].reshape(B, T, H, D).transpose(0, 2, 1, 3)
                   for j in range(3))
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)
        att = np.where(future, -np.inf, att)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + y @ values[p + "attn.c_proj.weight"] + values[p + "attn.c_proj.bias"]
        h = layer_norm(x, values[p + "ln_2.weight"], values[p + "ln_2.bias"])
        m = gelu_new(h @ values[p + "mlp.c_fc.weight"] + values[p + "mlp.c_fc.bias"])
        x = x + m @ values[p + "mlp.c_proj.weight"] + values[p + "mlp.c_proj.bias"]
    x = layer_norm(x, values["ln_f.weight"], values["ln_f.bias"])
    logits = x @ values["wte.weight"].T
    idx.astype("<i8").tofile(os.path.join(out, "tokens.bin"))
    logits.astype("<f8").tofile(os.path.join(out, "logits.bin"))


if __name__ == "__main__":
    main()
