#!/usr/bin/env python3
"""Compare libtrm's training gradients (lib/train) with PyTorch autograd.

Runs tests/test_grad_dump (two deep-supervision steps of the C engine on a libtrm model file,
gradients of the second written as JSON), then computes the same two steps in PyTorch
(float64 by default) with a model written here after the reference code
(models/recursive_reasoning/trm.py, models/layers.py, models/losses.py of
SamsungSAILMontreal/TinyRecursiveModels): H_cycles - 1 cycles under no_grad, the last with
autograd, stablemax cross-entropy + 0.5 BCE(q_halt, exact), scaled by 1/batch as pretrain.py
does, and compares every gradient, the loss and the logits.

    /usr/bin/python3 tools/grad_torch.py build/make/conformance/conf_att_rope/model.safetensors \
        [--dump build/train/tests/test_grad_dump] [--batch 4] [--dtype float64]

Needs numpy and torch (Debian: python3-torch). Exits 1 when an error exceeds --tol.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -100


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        raw = data[base + begin:base + end]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif t["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {t['dtype']}")
        tensors[name] = a.reshape(t["shape"]).copy()
    return meta, tensors


class Config:
    def __init__(self, meta):
        i = lambda k: int(meta[k])
        self.D, self.H = i("hidden_size"), i("num_heads")
        self.L_layers, self.H_cycles, self.L_cycles = i("L_layers"), i("H_cycles"), i("L_cycles")
        self.seq, self.V = i("seq_len"), i("vocab_size")
        self.ndim = i("puzzle_emb_ndim")
        plen = i("puzzle_emb_len")
        self.P = 0 if self.ndim == 0 else (plen if plen else -(self.ndim // -self.D))
        self.S = self.seq + self.P
        self.pos = meta["pos_encodings"]
        self.mlp_t = meta["mlp_t"] in ("true", "True", "1")
        self.eps = float(meta.get("rms_norm_eps", 1e-5))
        self.theta = float(meta.get("rope_theta", 10000.0))
        self.hd = self.D // self.H


def rms_norm(x, eps):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Model:
    def __init__(self, cfg, tensors, dtype):
        self.cfg, self.dtype = cfg, dtype
        self.w = {}
        for name, a in tensors.items():
            t = torch.tensor(a, dtype=dtype)
            if name not in ("H_init", "L_init", "puzzle_emb.weights"):
                t.requires_grad_(True)
            self.w[name] = t
        if cfg.pos == "rope":  # the reference's RotaryEmbedding, in float32 as there
            inv_freq = 1.0 / (cfg.theta ** (torch.arange(0, cfg.hd, 2, dtype=torch.float32) / cfg.hd))
            freqs = torch.outer(torch.arange(cfg.S, dtype=torch.float32), inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            self.cos, self.sin = emb.cos().to(dtype), emb.sin().to(dtype)

    def layer(self, i, suffix):
        return self.w[f"L_level.layers.{i}.{suffix}"]

    def swiglu(self, x, gate_up, down):
        gate, up = (x @ gate_up.T).chunk(2, dim=-1)
        return (F.silu(gate) * up) @ down.T

    def attention(self, i, h):
        c = self.cfg
        B = h.shape[0]
        qkv = (h @ self.layer(i, "self_attn.qkv_proj.weight").T).view(B, c.S, 3 * c.H, c.hd)
        q, k, v = qkv[:, :, :c.H], qkv[:, :, c.H:2 * c.H], qkv[:, :, 2 * c.H:]
        if c.pos == "rope":
            cos, sin = self.cos.unsqueeze(-2), self.sin.unsqueeze(-2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # B H S hd
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c.hd), dim=-1)
        out = (p @ v).transpose(1, 2).reshape(B, c.S, c.D)
        return out @ self.layer(i, "self_attn.o_proj.weight").T

    def f(self, h, inj):
        c = self.cfg
        h = h + inj
        for i in range(c.L_layers):
            if c.mlp_t:
                t = h.transpose(1, 2)
                t = rms_norm(t + self.swiglu(t, self.layer(i, "mlp_t.gate_up_proj.weight"),
                                             self.layer(i, "mlp_t.down_proj.weight")), c.eps)
                h = t.transpose(1, 2)
            else:
                h = rms_norm(h + self.attention(i, h), c.eps)
            h = rms_norm(h + self.swiglu(h, self.layer(i, "mlp.gate_up_proj.weight"),
                                         self.layer(i, "mlp.down_proj.weight")), c.eps)
        return h

    def embed(self, tokens, puzzle_local):
        c = self.cfg
        e = self.w["embed_tokens.embedding_weight"][tokens]
        if c.ndim > 0:
            pad = c.P * c.D - c.ndim
            pe = F.pad(puzzle_local, (0, pad)) if pad > 0 else puzzle_local
            e = torch.cat((pe.view(-1, c.P, c.D), e), dim=-2)
        if c.pos == "learned":
            e = 0.707106781 * (e + self.w["embed_pos.embedding_weight"])
        return math.sqrt(c.D) * e

    def step(self, y, z, x, grad):
        c = self.cfg
        with torch.no_grad():
            for _ in range(c.H_cycles - (1 if grad else 0)):
                for _ in range(c.L_cycles):
                    z = self.f(z, y + x)
                y = self.f(y, z)
        if grad:
            for _ in range(c.L_cycles):
                z = self.f(z, y + x)
            y = self.f(y, z)
        logits = (y @ self.w["lm_head.weight"].T)[:, c.P:]
        q = y[:, 0] @ self.w["q_head.weight"].T + self.w["q_head.bias"]
        return y, z, logits, q


def stablemax_loss(logits, labels):
    """models/losses.py: stablemax CE in float64, mean over valid tokens per puzzle, summed."""
    x = logits.to(torch.float64)
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    logp = torch.log(s / s.sum(-1, keepdim=True))
    mask = labels != IGNORE
    picked = torch.gather(logp, -1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1)
    ce = -torch.where(mask, picked, torch.zeros_like(picked))
    counts = mask.sum(-1)
    lm = (ce / counts.clamp_min(1).unsqueeze(-1)).sum()
    correct = mask & (torch.argmax(logits, dim=-1) == labels)
    exact = correct.sum(-1) == counts
    return lm, exact


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--dump", default="build/train/tests/test_grad_dump")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "grads.json")
        subprocess.run([args.dump, args.model, out, str(args.batch)], check=True)
        with open(out) as f:
            ref = json.load(f)
    meta, tensors = read_safetensors(args.model)
    cfg = Config(meta)
    dtype = getattr(torch, args.dtype)
    m = Model(cfg, tensors, dtype)
    B = ref["batch"]
    tokens = torch.tensor(ref["tokens"]).view(B, cfg.seq)
    labels = torch.tensor(ref["labels"]).view(B, cfg.seq)
    ids = torch.tensor(ref["puzzle_ids"])

    # the reference's CastedSparseEmbedding in training: the batch's rows copied into a leaf
    local = m.w["puzzle_emb.weights"][ids].clone().requires_grad_(True) if cfg.ndim > 0 else None
    y = m.w["H_init"].expand(B, cfg.S, cfg.D).clone()
    z = m.w["L_init"].expand(B, cfg.S, cfg.D).clone()
    with torch.no_grad():
        x0 = m.embed(tokens, local)
        y, z, _, _ = m.step(y, z, x0, grad=False)  # step 1: its gradients are discarded
    x = m.embed(tokens, local)
    y, z, logits, q = m.step(y.detach(), z.detach(), x, grad=True)
    lm, exact = stablemax_loss(logits, labels)
    q_halt = F.binary_cross_entropy_with_logits(q[:, 0].to(torch.float64), exact.to(torch.float64), reduction="sum")
    total = lm + 0.5 * q_halt
    (ref["loss_scale"] * total).backward()

    rows = []
    worst = 0.0

    def compare(name, c_values, t_values):
        nonlocal worst
        c = np.asarray(c_values, dtype=np.float64).ravel()
        t = t_values.detach().to(torch.float64).numpy().ravel()
        scale = max(np.abs(t).max(), 1e-30)
        err = np.abs(c - t).max() / scale
        worst = max(worst, err)
        rows.append((name, c.size, scale, err))

    compare("loss (total)", [ref["total"]], total.detach().reshape(1))
    compare("logits", ref["logits"], logits)
    compare("q", ref["q"], q)
    compare("y after the step", ref["y"], y)
    if local is not None:
        compare("grad puzzle_emb (batch rows)", ref["grad:puzzle_emb.local_weights"], local.grad)
    for name, t in m.w.items():
        if t.requires_grad:
            key = "grad:" + name
            if key not in ref:
                raise SystemExit(f"the C dump lacks {key}")
            compare("grad " + name, ref[key], t.grad if t.grad is not None else torch.zeros_like(t))

    print(f"{args.model}: batch {B}, torch {torch.__version__} {args.dtype}")
    print(f"{'quantity':56s} {'values':>7s} {'max|ref|':>10s} {'error':>9s}")
    for name, n, scale, err in rows:
        print(f"{name:56s} {n:7d} {scale:10.3e} {err:9.2e}")
    print(f"largest error (max |libtrm - torch| / max |torch|): {worst:.2e} (tolerance {args.tol:g})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
