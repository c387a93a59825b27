#!/usr/bin/env python3
"""The PyTorch peer for bench/train: the same model and the same supervision step in PyTorch on
the CPU, timed step by step, printed as samples per second.

The model is TRM-SPEC.md written in torch (our own code, as bench/trm_torch.py for inference),
with random weights of the same shapes as bench/train's. One training step, as the reference's
pretrain.py runs it: H_cycles - 1 cycles without gradient, the last one with autograd, the heads,
the loss of models/losses.py (stablemax cross-entropy in float64, mean over each puzzle's tokens,
summed, plus 0.5 BCE(q_halt, exact)) scaled by 1/batch, backward, AdamATan2 (the adam-atan2
update written in torch ops; or torch.optim.AdamW) on the dense weights and signSGD on the
batch's puzzle-embedding rows. The carry (y, z) goes on from step to step, detached.

    train_torch.py [--preset anchor|sudoku-mlp|sudoku-att] [--batch B] [--steps N] [--warmup W]
                   [--threads T] [--optim atan2|adamw]

Prints "torch PRESET batch B threads T: X samples/s (median step S s of N; C CPU s)", C the
process's CPU time for the step (all threads). Run it with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset and OPENBLAS_NUM_THREADS chosen (bench/run-train.sh
does). Needs Debian's python3-torch."""
import argparse
import math
import time

import torch
import torch.nn.functional as F

PRESETS = {
    # ANCHORS.md's CPU-training configuration, and the paper's Sudoku models
    "anchor": dict(D=128, heads=2, H_cycles=2, L_cycles=3, mlp_t=True, pos="none", batch=64),
    "sudoku-mlp": dict(D=512, heads=8, H_cycles=3, L_cycles=6, mlp_t=True, pos="none", batch=8),
    "sudoku-att": dict(D=512, heads=8, H_cycles=3, L_cycles=6, mlp_t=False, pos="rope", batch=8),
}
SEQ, VOCAB, PREFIX, LAYERS, EXPANSION, EPS = 81, 11, 16, 2, 4.0, 1e-5
IGNORE = -100


def swiglu_width(n):
    return 256 * -(-round(EXPANSION * n * 2 / 3) // 256)


def trunc_normal(shape, std):
    """LeCun-style init: a normal truncated to [-2, 2] sigma, rescaled so its std is `std`."""
    t = torch.nn.init.trunc_normal_(torch.empty(shape), std=1.0, a=-2.0, b=2.0)
    return t * (std / 0.87962566103423978)


def rms_norm(x):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + EPS)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Model:
    def __init__(self, cfg):
        torch.manual_seed(1)
        D, S = cfg["D"], SEQ + PREFIX
        self.cfg, self.D, self.S, self.H = cfg, D, S, cfg["heads"]
        self.hd = D // self.H
        I, It = swiglu_width(D), swiglu_width(S)
        lin = lambda o, i: trunc_normal((o, i), 1 / math.sqrt(i)).requires_grad_(True)
        self.w = {"embed_tokens": trunc_normal((VOCAB, D), 1 / math.sqrt(D)).requires_grad_(True)}
        for l in range(LAYERS):
            if cfg["mlp_t"]:
                self.w[f"{l}.mlpt_gate_up"] = lin(2 * It, S)
                self.w[f"{l}.mlpt_down"] = lin(S, It)
            else:
                self.w[f"{l}.qkv"] = lin(3 * D, D)
                self.w[f"{l}.o"] = lin(D, D)
            self.w[f"{l}.gate_up"] = lin(2 * I, D)
            self.w[f"{l}.down"] = lin(D, I)
        self.w["lm_head"] = lin(VOCAB, D)
        self.w["q_weight"] = torch.zeros(2, D, requires_grad=True)
        self.w["q_bias"] = torch.full((2,), -5.0, requires_grad=True)
        self.puzzle_emb = torch.zeros(1, D)  # one identifier (Sudoku), signSGD, not a dense weight
        self.H_init = trunc_normal((D,), 1.0)
        self.L_init = trunc_normal((D,), 1.0)
        if cfg["pos"] == "rope":
            inv = 1.0 / (10000.0 ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
            freqs = torch.outer(torch.arange(S, dtype=torch.float32), inv)
            emb = torch.cat((freqs, freqs), -1)
            self.cos, self.sin = emb.cos(), emb.sin()

    def swiglu(self, x, gate_up, down):
        gate, up = F.linear(x, gate_up).chunk(2, -1)
        return F.linear(F.silu(gate) * up, down)

    def attention(self, h, l):
        B = h.shape[0]
        qkv = F.linear(h, self.w[f"{l}.qkv"]).view(B, self.S, 3 * self.H, self.hd)
        q, k, v = qkv[:, :, :self.H], qkv[:, :, self.H:2 * self.H], qkv[:, :, 2 * self.H:]
        if self.cfg["pos"] == "rope":
            cos, sin = self.cos.unsqueeze(-2), self.sin.unsqueeze(-2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.hd), -1)
        return F.linear((p @ v).transpose(1, 2).reshape(B, self.S, self.D), self.w[f"{l}.o"])

    def f(self, h, inj):
        h = h + inj
        for l in range(LAYERS):
            if self.cfg["mlp_t"]:
                t = h.transpose(1, 2)
                h = rms_norm(t + self.swiglu(t, self.w[f"{l}.mlpt_gate_up"], self.w[f"{l}.mlpt_down"])).transpose(1, 2)
            else:
                h = rms_norm(h + self.attention(h, l))
            h = rms_norm(h + self.swiglu(h, self.w[f"{l}.gate_up"], self.w[f"{l}.down"]))
        return h

    def embed(self, tokens, puzzle_rows):
        e = self.w["embed_tokens"][tokens]
        pe = F.pad(puzzle_rows, (0, PREFIX * self.D - puzzle_rows.shape[-1])).view(-1, PREFIX, self.D)
        return math.sqrt(self.D) * torch.cat((pe, e), 1)

    def step(self, y, z, x):
        c = self.cfg
        with torch.no_grad():
            for _ in range(c["H_cycles"] - 1):
                for _ in range(c["L_cycles"]):
                    z = self.f(z, y + x)
                y = self.f(y, z)
        for _ in range(c["L_cycles"]):
            z = self.f(z, y + x)
        y = self.f(y, z)
        logits = F.linear(y, self.w["lm_head"])[:, PREFIX:]
        q = F.linear(y[:, 0], self.w["q_weight"], self.w["q_bias"])
        return y, z, logits, q


def act_loss(logits, q, labels):
    """models/losses.py's ACTLossHead with stablemax cross-entropy (float64)."""
    x = logits.to(torch.float64)
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    logp = torch.log(s / s.sum(-1, keepdim=True))
    mask = labels != IGNORE
    picked = torch.gather(logp, -1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1)
    counts = mask.sum(-1)
    lm = (-torch.where(mask, picked, torch.zeros_like(picked)) / counts.clamp_min(1).unsqueeze(-1)).sum()
    exact = ((mask & (logits.argmax(-1) == labels)).sum(-1) == counts).to(torch.float64)
    q_halt = F.binary_cross_entropy_with_logits(q[:, 0].to(torch.float64), exact, reduction="sum")
    return lm + 0.5 * q_halt


class AdamATan2:
    """The adam-atan2 package's update: decoupled decay, m, v as Adam, then
    p -= lr atan2(m / (1 - b1^t), sqrt(v) / sqrt(1 - b2^t))."""

    def __init__(self, params, lr, betas, weight_decay):
        self.params, self.lr, self.betas, self.wd, self.t = params, lr, betas, weight_decay, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, math.sqrt(1 - b2 ** self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            p.mul_(1 - self.lr * self.wd)
            m.lerp_(p.grad, 1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.add_(torch.atan2(m / c1, v.sqrt() / c2), alpha=-self.lr)

    def zero_grad(self):
        for p in self.params:
            p.grad = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="anchor", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--optim", default="atan2", choices=["atan2", "adamw"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = PRESETS[args.preset]
    B = args.batch or cfg["batch"]
    m = Model(cfg)
    params = list(m.w.values())
    lr, wd = 1e-4, 0.1
    opt = AdamATan2(params, lr, (0.9, 0.95), wd) if args.optim == "atan2" else \
        torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=wd)
    gen = torch.Generator().manual_seed(2)
    y = m.H_init.expand(B, m.S, m.D).clone()
    z = m.L_init.expand(B, m.S, m.D).clone()
    ids = torch.zeros(B, dtype=torch.long)
    times, cpu_times = [], []
    for it in range(args.warmup + args.steps):
        # Sudoku-shaped random batches: labels digits 2..10, about half the cells given
        labels = torch.randint(2, 11, (B, SEQ), generator=gen)
        tokens = torch.where(torch.rand(B, SEQ, generator=gen) < 0.5, labels, torch.ones_like(labels))
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad()
        rows = m.puzzle_emb[ids].clone().requires_grad_(True)  # the reference's sparse embedding
        x = m.embed(tokens, rows)
        y, z, logits, q = m.step(y.detach(), z.detach(), x)
        loss = act_loss(logits, q, labels)
        (loss / B).backward()
        opt.step()
        with torch.no_grad():  # signSGD on the batch's rows (summed per id), decoupled decay
            g = torch.zeros_like(m.puzzle_emb).index_add_(0, ids, rows.grad)
            touched = torch.unique(ids)
            m.puzzle_emb[touched] = m.puzzle_emb[touched] * (1 - lr * wd) - lr * torch.sign(g[touched])
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if it >= args.warmup:
            times.append(dt)
            cpu_times.append(dc)
    times.sort()
    cpu_times.sort()
    med, cpu = times[len(times) // 2], cpu_times[len(cpu_times) // 2]
    print(f"torch {args.preset} batch {B} threads {args.threads}: {B / med:.2f} samples/s "
          f"(median step {med:.4f} s of {args.steps}; {cpu:.4f} CPU s)")


if __name__ == "__main__":
    main()
