#!/usr/bin/env python3
"""Writes a libtrm model with random weights in one of the paper's configurations, for benchmarks.

    make_model.py {sudoku-mlp,arc,sudoku-att} -o OUT.safetensors [--seed N]

Weights are random (scaled like the reference's LeCun init), so the model computes the same
amount of work as a trained one; its answers mean nothing. Needs numpy only."""
import argparse
import json
import math
import struct

import numpy as np

PRESETS = {
    # the paper's Sudoku-Extreme model with the token MLP: hidden 512, seq 81 + 16 prefix
    "sudoku-mlp": dict(hidden_size=512, num_heads=8, expansion=4, L_layers=2, H_cycles=3, L_cycles=6,
                       pos_encodings="none", mlp_t=True, puzzle_emb_ndim=512, puzzle_emb_len=16,
                       seq_len=81, vocab_size=11, num_puzzle_identifiers=1, halt_max_steps=16),
    # the same with attention
    "sudoku-att": dict(hidden_size=512, num_heads=8, expansion=4, L_layers=2, H_cycles=3, L_cycles=6,
                       pos_encodings="rope", mlp_t=False, puzzle_emb_ndim=512, puzzle_emb_len=16,
                       seq_len=81, vocab_size=11, num_puzzle_identifiers=1, halt_max_steps=16),
    # the paper's ARC-AGI model: 30x30 canvas + 16 prefix rows, rope attention
    "arc": dict(hidden_size=512, num_heads=8, expansion=4, L_layers=2, H_cycles=3, L_cycles=4,
                pos_encodings="rope", mlp_t=False, puzzle_emb_ndim=512, puzzle_emb_len=16,
                seq_len=900, vocab_size=12, num_puzzle_identifiers=1000, halt_max_steps=16),
}


def swiglu_width(expansion, n):
    return 256 * -(-round(expansion * n * 2 / 3) // 256)


def build(cfg, rng):
    D, V, S = cfg["hidden_size"], cfg["vocab_size"], cfg["seq_len"] + cfg["puzzle_emb_len"]
    inter = swiglu_width(cfg["expansion"], D)

    def lin(out_f, in_f):
        return (rng.standard_normal((out_f, in_f), dtype=np.float32) / math.sqrt(in_f)).astype(np.float32)

    t = {
        "embed_tokens.embedding_weight": lin(V, D),
        "puzzle_emb.weights": (rng.standard_normal((cfg["num_puzzle_identifiers"], cfg["puzzle_emb_ndim"]),
                                                   dtype=np.float32) * 0.02).astype(np.float32),
        "H_init": rng.standard_normal(D, dtype=np.float32),
        "L_init": rng.standard_normal(D, dtype=np.float32),
        "lm_head.weight": lin(V, D),
        "q_head.weight": lin(2, D),
        "q_head.bias": np.array([-5.0, 0.0], dtype=np.float32),
    }
    for i in range(cfg["L_layers"]):
        p = f"L_level.layers.{i}."
        if cfg["mlp_t"]:
            inter_t = swiglu_width(cfg["expansion"], S)
            t[p + "mlp_t.gate_up_proj.weight"] = lin(2 * inter_t, S)
            t[p + "mlp_t.down_proj.weight"] = lin(S, inter_t)
        else:
            t[p + "self_attn.qkv_proj.weight"] = lin(3 * D, D)
            t[p + "self_attn.o_proj.weight"] = lin(D, D)
        t[p + "mlp.gate_up_proj.weight"] = lin(2 * inter, D)
        t[p + "mlp.down_proj.weight"] = lin(D, inter)
    return t


def write(path, tensors, cfg):
    meta = {"format": "libtrm", "format_version": "1", "source": "bench/make_model.py (random weights)"}
    for k, v in cfg.items():
        meta[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    header, offset, blobs = {"__metadata__": meta}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = PRESETS[args.preset]
    write(args.output, build(cfg, np.random.default_rng(args.seed)), cfg)


if __name__ == "__main__":
    main()
