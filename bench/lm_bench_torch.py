#!/usr/bin/env python3
"""The same benchmark as bench/lm_bench.cc in plain PyTorch (Debian's python3-torch).

    python3 bench/lm_bench_torch.py [steps=30] [threads=0] [n_layer=4] [n_embd=128]
                                    [block=128] [vocab=2000] [batch=16] [texts=256]

The same model (GPT-2 layout: pre-LayerNorm blocks, causal self-attention
with an explicit mask, tanh GELU, tied head, dropout 0.1), the same recipe
(AdamW lr 1e-3 betas 0.9/0.999 eps 1e-8, decay 0.01 on the linear weights
only, warm-up over 10% of the steps then cosine, clipping at 1.0), batches of
`batch` random texts of `block` tokens, and the same counts: tokens/s and
GFLOP/s at 6 N + 12 n_layer n_embd T per token from the end of the first step
to the end of the last; sgemm of 1024^3 floats, best of 10; then log-probs,
mean and variance of log p over the vocabulary for `texts` texts in batches
of 16, under torch.inference_mode, and the peak RSS during it.
"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def arg(i, default):
    return int(sys.argv[i]) if len(sys.argv) > i else default


STEPS, THREADS, N_LAYER, N_EMBD = arg(1, 30), arg(2, 0), arg(3, 4), arg(4, 128)
BLOCK, VOCAB, BATCH, TEXTS = arg(5, 128), arg(6, 2000), arg(7, 16), arg(8, 256)
N_HEAD, DROPOUT = N_EMBD // 32, 0.1


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        C = N_EMBD
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_c_proj = nn.Linear(4 * C, C)
        self.drop = nn.Dropout(DROPOUT)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2)
        k = k.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2)
        v = v.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = self.drop(F.softmax(att.masked_fill(future, float("-inf")), dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.drop(self.attn_c_proj(y))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.drop(self.mlp_c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, N_EMBD)
        self.wpe = nn.Embedding(BLOCK, N_EMBD)
        self.h = nn.ModuleList([Block() for _ in range(N_LAYER)])
        self.ln_f = nn.LayerNorm(N_EMBD, eps=1e-5)
        self.drop = nn.Dropout(DROPOUT)

    def forward(self, idx):
        T = idx.size(1)
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T)))
        for block in self.h:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)


def sgemm_gflops():
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    best = 1e30
    for _ in range(10):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * 1024 ** 3 / best / 1e9


def peak_rss_mib(reset):
    if reset:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return -1


def main():
    if THREADS > 0:
        torch.set_num_threads(THREADS)
    torch.manual_seed(1)
    model = Gpt()
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("w")]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.startswith("w"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    warmup = math.ceil(0.1 * STEPS)

    def lr_at(step):
        if step < warmup:
            return 1e-3 * (step + 1) / warmup
        progress = (step - warmup) / max(1, STEPS - warmup - 1)
        return 1e-3 * 0.5 * (1 + math.cos(math.pi * progress))

    sgemm = sgemm_gflops()
    tokens = torch.randint(1, VOCAB, (max(STEPS * BATCH, TEXTS), BLOCK))
    bos = torch.zeros(BATCH, 1, dtype=torch.long)
    model.train()
    first = last = None
    for step in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        x = tokens[step * BATCH:(step + 1) * BATCH]
        inp = torch.cat([bos, x[:, :-1]], dim=1)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inp).flatten(0, 1), x.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = time.perf_counter()
        if first is None:
            first = last
    C, L, T, V = N_EMBD, N_LAYER, BLOCK, VOCAB
    params = V * C + L * (12 * C * C + 13 * C) + 2 * C
    flops_per_token = 6 * params + 12 * L * C * T
    seconds = last - first
    timed = (STEPS - 1) * BATCH * T
    print("threads: %d; batch %d x %d tokens; %d steps (first untimed); torch %s"
          % (torch.get_num_threads(), BATCH, BLOCK, STEPS, torch.__version__))
    print("train: %.2f s: %.0f tokens/s, %.2f GFLOP/s (%.2f MFLOP per token)"
          % (seconds, timed / seconds, timed * flops_per_token / seconds / 1e9, flops_per_token / 1e6))
    print("sgemm 1024^3: %.2f GFLOP/s" % sgemm)

    model.eval()
    rss_before = peak_rss_mib(True)
    start = time.perf_counter()
    with torch.inference_mode():
        for begin in range(0, TEXTS, 16):
            x = tokens[begin:begin + 16]
            inp = torch.cat([torch.zeros(x.size(0), 1, dtype=torch.long), x[:, :-1]], dim=1)
            logp = F.log_softmax(model(inp).float(), dim=-1)
            lp = logp.gather(2, x.unsqueeze(2)).squeeze(2)
            plogp = logp.exp() * logp
            mean = plogp.sum(-1)
            var = ((plogp * logp).sum(-1) - mean * mean).clamp_min(0)
            _ = (lp.numpy().copy(), mean.numpy().copy(), var.numpy().copy())
    seconds = time.perf_counter() - start
    print("signals (lp, mean, var) of %d texts, batch 16: %.3f s, %.0f tokens/s; "
          "peak RSS %.0f MiB (%.0f MiB at the start)"
          % (TEXTS, seconds, TEXTS * BLOCK / seconds, peak_rss_mib(False), rss_before))


if __name__ == "__main__":
    main()
