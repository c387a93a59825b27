#!/usr/bin/env python3
"""The PyTorch peer for bench/trm: TRM-SPEC.md written in torch (our own code), loading the
same libtrm model file, timed one supervision step at a time in inference mode.

    trm_torch.py MODEL.safetensors --batch B [--steps N] [--threads T]

Prints one line: "torch batch B threads T: S s/step (median of N)". Run it with OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE unset (bench/trm does). Needs torch and numpy (Debian python3-torch)."""
import argparse
import json
import math
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        raw = data[base + b:base + e]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif t["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            raise SystemExit(f"{path}: dtype {t['dtype']} not handled")
        tensors[name] = torch.from_numpy(a.reshape(t["shape"]).copy())
    return meta, tensors


def rms_norm(x, eps):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


class TRM:
    def __init__(self, meta, w):
        self.w = w
        self.D = int(meta["hidden_size"])
        self.H = int(meta["num_heads"])
        self.layers = int(meta["L_layers"])
        self.H_cycles, self.L_cycles = int(meta["H_cycles"]), int(meta["L_cycles"])
        self.seq_len = int(meta["seq_len"])
        self.P = int(meta["puzzle_emb_len"])
        self.S = self.seq_len + self.P
        self.mlp_t = meta["mlp_t"].lower() in ("true", "1")
        self.pos = meta["pos_encodings"]
        self.eps = float(meta.get("rms_norm_eps", "1e-5"))
        self.ndim = int(meta["puzzle_emb_ndim"])
        hd = self.D // self.H
        if self.pos == "rope":
            theta = float(meta.get("rope_theta", "10000"))
            inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
            freqs = torch.outer(torch.arange(self.S, dtype=torch.float32), inv)
            emb = torch.cat((freqs, freqs), -1)
            self.cos, self.sin = emb.cos(), emb.sin()

    def embed(self, tokens, ids):
        w = self.w
        e = w["embed_tokens.embedding_weight"][tokens]
        if self.ndim > 0:
            pe = w["puzzle_emb.weights"][ids]
            pe = F.pad(pe, (0, self.P * self.D - self.ndim)).view(-1, self.P, self.D)
            e = torch.cat((pe, e), 1)
        if self.pos == "learned":
            e = 0.707106781 * (e + w["embed_pos.embedding_weight"])
        return math.sqrt(self.D) * e

    def swiglu(self, x, prefix):
        gate, up = F.linear(x, self.w[prefix + "gate_up_proj.weight"]).chunk(2, -1)
        return F.linear(F.silu(gate) * up, self.w[prefix + "down_proj.weight"])

    def attention(self, x, prefix):
        B, S, D = x.shape
        hd = D // self.H
        qkv = F.linear(x, self.w[prefix + "qkv_proj.weight"]).view(B, S, 3 * self.H, hd)
        q, k, v = qkv[:, :, :self.H], qkv[:, :, self.H:2 * self.H], qkv[:, :, 2 * self.H:]
        if self.pos == "rope":
            def rot(t):
                t1, t2 = t[..., :hd // 2], t[..., hd // 2:]
                return t * self.cos.unsqueeze(-2) + torch.cat((-t2, t1), -1) * self.sin.unsqueeze(-2)
            q, k = rot(q), rot(k)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)) \
            if hasattr(F, "scaled_dot_product_attention") else \
            torch.softmax(q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2) / math.sqrt(hd), -1) @ v.transpose(1, 2)
        return F.linear(o.transpose(1, 2).reshape(B, S, D), self.w[prefix + "o_proj.weight"])

    def f(self, h, inj):
        h = h + inj
        for i in range(self.layers):
            p = f"L_level.layers.{i}."
            if self.mlp_t:
                t = h.transpose(1, 2)
                h = rms_norm(t + self.swiglu(t, p + "mlp_t."), self.eps).transpose(1, 2)
            else:
                h = rms_norm(h + self.attention(h, p + "self_attn."), self.eps)
            h = rms_norm(h + self.swiglu(h, p + "mlp."), self.eps)
        return h

    def step(self, y, z, x):
        for _ in range(self.H_cycles):
            for _ in range(self.L_cycles):
                z = self.f(z, y + x)
            y = self.f(y, z)
        logits = F.linear(y, self.w["lm_head.weight"])[:, self.P:]
        q = F.linear(y[:, 0], self.w["q_head.weight"], self.w["q_head.bias"])
        return y, z, logits, q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    meta, w = load(args.model)
    m = TRM(meta, w)
    tokens = (torch.arange(m.seq_len) % 9 + 1).repeat(args.batch, 1)
    ids = torch.zeros(args.batch, dtype=torch.long)
    with torch.inference_mode():
        x = m.embed(tokens, ids)
        y = w["H_init"].expand(args.batch, m.S, m.D).clone()
        z = w["L_init"].expand(args.batch, m.S, m.D).clone()
        y, z, _, _ = m.step(y, z, x)  # warm-up
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            y, z, _, _ = m.step(y, z, x)
            times.append(time.perf_counter() - t0)
    times.sort()
    print(f"torch batch {args.batch} threads {args.threads}: {times[len(times) // 2]:.4f} s/step "
          f"(median of {args.steps})")


if __name__ == "__main__":
    main()
