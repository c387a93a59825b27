#!/usr/bin/env python3
"""Tests of the trm command line (tools/trm): info, solve, eval, usage and bad input.

    python3 tests/cli/test_cli.py --build build/make
    python3 tests/cli/test_cli.py --trm T --step S --models 'DIR/{case}.safetensors'   (Meson)

Needs the build's trm, examples/step and conformance models (make check-cli builds them) and
numpy. Expected values come from elsewhere than trm itself: the reference PyTorch outputs in
tests/conformance/*.npz, the example program examples/c/step.c, the safetensors header read
here, the YAML configurations, and metrics recomputed here from per-step answers. Every run of
trm is checked to end by exiting (status < 128), never by a signal."""
import argparse
import json
import os
import pty
import re
import resource
import select
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = ["conf_att_rope", "conf_mlpt", "conf_att_learned_pad", "conf_att_rope_bf16"]

failures = []
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


def limit_resources():
    # a runaway allocation or loop fails the test instead of the machine
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (120, 120))


class Run:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err


def trm(*args, stdin=None, env=None):
    cmd = [TRM] + [str(a) for a in args]
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=300,
                       preexec_fn=limit_resources)
    r = Run(cmd, p.returncode, p.stdout, p.stderr)
    check(0 <= p.returncode < 128, f"{' '.join(cmd)}: exits normally (status {p.returncode})")
    return r


def one_line_error(r, rc, *words):
    """A failure: status rc, exactly one line on stderr holding every word, nothing on stdout."""
    lines = r.err.splitlines()
    ok = r.rc == rc and len(lines) == 1 and all(w in r.err for w in words) and r.out == ""
    check(ok, f"{' '.join(r.args[1:])}: exit {rc} with one line naming {words}; got {r.rc}: {r.err!r}")


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---- models ----

def read_yaml_facts(path):
    """The flat 'key: value' pairs of a conformance YAML (arch section and data-set facts)."""
    facts = {}
    for line in open(path):
        m = re.match(r"^\s*(\w+):\s*(.+?)\s*$", line)
        if m and not m.group(2).startswith(("#",)):
            facts[m.group(1)] = m.group(2).strip('"')
    return facts


def safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def write_model(path, seq_len, vocab, hidden=16, heads=2, steps=3, seed=0, extra_meta=None):
    """A small random-weight libtrm model (attention, no positions, no puzzle embedding),
    written here as safetensors so tests get models of the Sudoku / maze / ARC shapes."""
    rng = np.random.default_rng(seed)
    inter = 32
    shapes = {
        "embed_tokens.embedding_weight": (vocab, hidden),
        "H_init": (hidden,),
        "L_init": (hidden,),
        "L_level.layers.0.self_attn.qkv_proj.weight": (3 * hidden, hidden),
        "L_level.layers.0.self_attn.o_proj.weight": (hidden, hidden),
        "L_level.layers.0.mlp.gate_up_proj.weight": (2 * inter, hidden),
        "L_level.layers.0.mlp.down_proj.weight": (hidden, inter),
        "lm_head.weight": (vocab, hidden),
        "q_head.weight": (2, hidden),
        "q_head.bias": (2,),
    }
    header = {"__metadata__": {
        "format": "libtrm", "format_version": "1", "hidden_size": str(hidden), "num_heads": str(heads),
        "L_layers": "1", "H_cycles": "2", "L_cycles": "2", "seq_len": str(seq_len),
        "vocab_size": str(vocab), "puzzle_emb_ndim": "0", "puzzle_emb_len": "0",
        "pos_encodings": "none", "mlp_t": "false", "halt_max_steps": str(steps)}}
    header["__metadata__"].update(extra_meta or {})
    blobs, offset = [], 0
    for name, shape in shapes.items():
        data = (rng.standard_normal(shape) * (1.0 / np.sqrt(shape[-1]))).astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ---- the tests ----

def test_usage():
    r = trm("--version")
    major, minor, patch = (re.search(rf"#define TRM_VERSION_{k} (\d+)", open(os.path.join(ROOT, "include/trm.h")).read()).group(1)
                           for k in ("MAJOR", "MINOR", "PATCH"))
    check(r.rc == 0 and r.out.strip().endswith(f"{major}.{minor}.{patch}"), f"--version names {major}.{minor}.{patch}: {r.out!r}")
    r = trm("--help")
    check(r.rc == 0 and all(c in r.out for c in ("info", "solve", "eval", "data")), "trm --help lists every command")
    for cmd in ("info", "solve", "eval", "data"):
        r = trm(cmd, "--help")
        check(r.rc == 0 and "usage:" in r.out, f"trm {cmd} --help")
    for cmd in (["info"], ["solve"], ["eval"], ["data", "sudoku"], ["data", "maze"], ["data", "arc"]):
        text = trm(*cmd, "--help").out
        for flag in re.findall(r"--[a-z-]+", text):
            check(flag in MANPAGE, f"docs/trm.1 mentions {' '.join(cmd)}'s {flag}")
    r = trm()
    check(r.rc == 2 and "usage" in r.err, "trm without a command: usage, exit 2")
    one_line_error(trm("frobnicate"), 2, "frobnicate")
    one_line_error(trm("info"), 2, "MODEL")
    one_line_error(trm("info", DEMO, "--colour"), 2, "--colour")
    one_line_error(trm("info", DEMO, "extra"), 2, "extra")
    one_line_error(trm("solve"), 2, "MODEL")
    one_line_error(trm("solve", DEMO, "--unit", "bogus"), 2, "--unit", "bogus")
    one_line_error(trm("solve", DEMO, "--task", "chess"), 2, "--task", "chess")
    one_line_error(trm("solve", DEMO, "--halt"), 2, "--halt")
    one_line_error(trm("solve", DEMO, "--max-steps", "0"), 2, "--max-steps")
    one_line_error(trm("solve", DEMO, "--max-steps", "3x"), 2, "--max-steps", "3x")
    one_line_error(trm("solve", DEMO, "--threads", "-1"), 2, "--threads")
    one_line_error(trm("solve", DEMO, "--json=yes"), 2, "--json")
    one_line_error(trm("solve", DEMO, "a", "b"), 2, "b")
    one_line_error(trm("eval", DEMO), 2, "DATA_DIR")
    one_line_error(trm("eval", DEMO, "/tmp", "--batch", "0"), 2, "--batch")
    one_line_error(trm("eval", DEMO, "/tmp", "--limit", "-5"), 2, "--limit")
    one_line_error(trm("eval", DEMO, "/tmp", "--halt", "never"), 2, "--halt")
    one_line_error(trm("eval", DEMO, "/tmp", "--split", "../x"), 2, "--split")
    one_line_error(trm("eval", DEMO, "/tmp", "--frobnicate"), 2, "--frobnicate")


def test_info(models):
    for name, path in models.items():
        r = trm("info", "--json", path)
        check(r.rc == 0, f"info --json {name}")
        info = json.loads(r.out)
        header_len, header = safetensors_header(path)
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        values = sum(int(np.prod(v["shape"])) for v in tensors.values())
        check(info["file_bytes"] == os.path.getsize(path), f"{name}: file_bytes")
        check(info["tensors"] == len(tensors), f"{name}: tensor count")
        check(info["derived"]["param_count"] == values, f"{name}: param_count {info['derived']['param_count']} vs {values} in the header")
        dtypes = {}
        for v in tensors.values():
            d = dtypes.setdefault(v["dtype"], [0, 0, 0])
            d[0] += 1
            d[1] += int(np.prod(v["shape"]))
            d[2] += v["data_offsets"][1] - v["data_offsets"][0]
        check({k: [v["tensors"], v["values"], v["bytes"]] for k, v in info["dtypes"].items()} == dtypes,
              f"{name}: dtypes {info['dtypes']} vs header {dtypes}")
        check(sum(v[2] for v in dtypes.values()) == os.path.getsize(path) - 8 - header_len, f"{name}: data bytes")
        meta = header["__metadata__"]
        for key in ("hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "seq_len", "vocab_size",
                    "puzzle_emb_ndim", "halt_max_steps"):
            check(str(info["config"][key]) == meta[key], f"{name}: {key} {info['config'][key]} vs {meta[key]}")
        check(info["config"]["pos_encodings"] == meta["pos_encodings"], f"{name}: pos_encodings")
        check(info["config"]["mlp_t"] == (meta["mlp_t"].lower() in ("true", "1")), f"{name}: mlp_t")
        d = info["derived"]
        check(d["state_len"] == info["config"]["seq_len"] + info["config"]["puzzle_emb_len"], f"{name}: state_len")
        check(d["head_dim"] * info["config"]["num_heads"] == info["config"]["hidden_size"], f"{name}: head_dim")
        r = trm("info", path)
        check(r.rc == 0 and f"seq_len                  {meta['seq_len']}" in r.out and "param_count" in r.out,
              f"info {name} (text)")
    # the conformance cases against their YAML (the configuration they were made with)
    for case in CASES:
        facts = read_yaml_facts(os.path.join(ROOT, "tests/conformance", case + ".yaml"))
        info = json.loads(trm("info", "--json", models[case]).out)
        for key in ("hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "seq_len", "vocab_size",
                    "num_puzzle_identifiers", "halt_max_steps", "puzzle_emb_ndim"):
            check(int(facts[key]) == info["config"][key], f"{case}: {key} as its YAML")
        check(info["config"]["pos_encodings"] == facts["pos_encodings"], f"{case}: pos_encodings as its YAML")
        check(info["task"] == "raw", f"{case}: task raw")
    check("BF16" in json.loads(trm("info", "--json", models["conf_att_rope_bf16"]).out)["dtypes"], "bf16 case shows BF16")
    for task in ("sudoku", "maze", "arc"):
        check(json.loads(trm("info", "--json", models[task]).out)["task"] == task, f"{task}-shaped model detected")
    one_line_error(trm("info", os.path.join(TMP, "missing.safetensors")), 1, "missing.safetensors")
    garbage = os.path.join(TMP, "garbage.safetensors")
    with open(garbage, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    one_line_error(trm("info", garbage), 1, "garbage.safetensors")
    one_line_error(trm("info", TMP), 1, TMP)


def parse_step_example(text):
    """examples/c/step.c's lines: 'step K  t0  t1* ...  confidence C  q_halt Q'."""
    steps = []
    for line in text.splitlines():
        m = re.match(r"^step (\d+)\s+(.*?)\s+confidence ([\d.]+)\s+q_halt ([-+\d.]+)$", line)
        if m:
            tokens = [int(t.rstrip("*")) for t in m.group(2).split()]
            steps.append((int(m.group(1)), tokens, float(m.group(3)), float(m.group(4))))
    return steps


def test_solve_against_step_example():
    tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3]
    p = subprocess.run([STEP, DEMO] + [str(t) for t in tokens], capture_output=True, text=True, timeout=60)
    ref = parse_step_example(p.stdout)
    check(p.returncode == 0 and len(ref) == 6, f"examples/step ran 6 steps: {p.stdout[:200]!r}")
    r = trm("solve", DEMO, "--json", stdin=" ".join(map(str, tokens)))
    units = json_lines(r.out)
    check(r.rc == 0 and len(units) == len(ref), f"solve --json: one object per step ({len(units)})")
    for u, (k, answer, conf, q) in zip(units, ref):
        check(u["step"] == k and u["kind"] == "step", f"step {k}: numbering")
        check(u["answer"] == answer, f"step {k}: answer {u['answer']} vs step example {answer}")
        check(abs(u["q_halt"] - q) <= 0.0006, f"step {k}: q_halt {u['q_halt']} vs {q}")
        check(abs(float(np.mean(u["confidence"])) - conf) <= 0.0006, f"step {k}: mean confidence")
        check(u["grid"].split() == [str(t) for t in answer], f"step {k}: grid string holds the answer")
    check(units[-1]["halted"] and not any(u["halted"] for u in units[:-1]), "only the last step halts")
    # the text view: one block per step, '*' marks (no colour on a pipe), the step example's q
    r = trm("solve", DEMO, "-", stdin=" ".join(map(str, tokens)))
    heads = re.findall(r"^step (\d+)/6  q_halt ([-+\d.]+)", r.out, re.M)
    check(r.rc == 0 and [int(h[0]) for h in heads] == list(range(1, 7)), "text: a block per step")
    check(all(abs(float(h[1]) - ref[i][3]) <= 0.0006 for i, h in enumerate(heads)), "text: q_halt as the step example")
    check("*" in r.out and "\033[" not in r.out, "text: '*' markers and no escape codes on a pipe")
    changed = [int(c) for c in re.findall(r"changed (\d+)", r.out)]
    expect = [sum(a != b for a, b in zip(tokens, ref[0][1]))] + \
             [sum(a != b for a, b in zip(ref[i - 1][1], ref[i][1])) for i in range(1, 6)]
    check(changed == expect, f"text: changed counts {changed} vs {expect} from the step example")


def test_solve_against_reference():
    """Step 1 from H_init / L_init: the reference PyTorch code's q and logits (tests/conformance)."""
    for case in CASES:
        ref = np.load(os.path.join(ROOT, "tests/conformance", case + ".npz"))
        for b in range(ref["inputs"].shape[0]):
            tokens = " ".join(str(int(t)) for t in ref["inputs"][b])
            r = trm("solve", MODELS[case], "--task", "raw", "--max-steps", "1", "--json",
                    "--puzzle-id", int(ref["puzzle_identifiers"][b]), stdin=tokens)
            units = json_lines(r.out)
            if not check(r.rc == 0 and len(units) == 1, f"{case}[{b}]: one step") and units == []:
                continue
            u = units[0]
            logits = ref["logits"][0, b].astype(np.float64)
            top2 = np.sort(logits, axis=-1)[:, -2:]
            clear = (top2[:, 1] - top2[:, 0]) > 1e-3
            check(np.array_equal(np.array(u["answer"])[clear], logits.argmax(-1)[clear]), f"{case}[{b}]: answer = reference argmax")
            prob = np.exp(logits - logits.max(-1, keepdims=True))
            prob = (prob / prob.sum(-1, keepdims=True)).max(-1)
            check(np.allclose(u["confidence"], prob, atol=1e-3), f"{case}[{b}]: confidence = reference softmax")
            check(abs(u["q_halt"] - float(ref["q_halt"][0, b])) < 1e-3, f"{case}[{b}]: q_halt {u['q_halt']} vs {ref['q_halt'][0, b]}")
            check(abs(u["q_continue"] - float(ref["q_continue"][0, b])) < 1e-3, f"{case}[{b}]: q_continue")


def test_solve_units_and_halting():
    tokens = " ".join(str(i % 10) for i in range(16))
    H, L, K = 2, 2, 6  # the demo model (trm info checks these against its YAML)
    steps = json_lines(trm("solve", DEMO, "--json", stdin=tokens).out)
    calls = json_lines(trm("solve", DEMO, "--json", "--unit", "call", stdin=tokens).out)
    cycles = json_lines(trm("solve", DEMO, "--json", "--unit", "cycle", "--threads", "2", stdin=tokens).out)
    check(len(calls) == K * H * (L + 1), f"--unit call: {len(calls)} units, expected {K * H * (L + 1)}")
    check(len(cycles) == K * H, f"--unit cycle: {len(cycles)} units")
    check([u["kind"] for u in calls[:H * (L + 1)]] == (["latent"] * L + ["answer"]) * (H - 1) + ["latent"] * L + ["step"],
          "--unit call: kinds of one step")
    check([(u["cycle"], u["call"]) for u in calls[:L + 1]] == [(1, c) for c in range(1, L + 2)], "--unit call: numbering")
    ends = [u for u in calls if u["kind"] == "step"]
    check([u["answer"] for u in ends] == [u["answer"] for u in steps], "--unit call: step ends equal --unit step")
    check([u["q_halt"] for u in cycles[H - 1::H]] == [u["q_halt"] for u in steps], "--unit cycle: step ends equal --unit step")
    qs = [u["q_halt"] for u in steps]
    first = next((i + 1 for i, q in enumerate(qs) if q > 0), K)
    q_run = json_lines(trm("solve", DEMO, "--json", "--halt", "q", stdin=tokens).out)
    check(len(q_run) == first and q_run[-1]["halted"], f"--halt q stops at step {first} (first q_halt > 0): ran {len(q_run)}")
    short = json_lines(trm("solve", DEMO, "--json", "--max-steps", "2", stdin=tokens).out)
    check(len(short) == 2 and short[1]["answer"] == steps[1]["answer"], "--max-steps 2")
    r = trm("solve", DEMO, "--unit", "call", "--max-steps", "1", stdin=tokens)
    check(r.out.count("latent z updated") == H * L, "text --unit call: a line per latent update")
    # the stated reason for halting, from the shipped Sudoku model (its first q_halt > 0 comes
    # before its last step on the demo puzzle)
    sudoku, puzzle = "models/sudoku.safetensors", "models/sudoku-puzzle.txt"
    s_qs = [u["q_halt"] for u in json_lines(trm("solve", sudoku, puzzle, "--json").out)]
    s_first = next((i + 1 for i, q in enumerate(s_qs) if q > 0), None)
    check(s_first is not None and 1 < s_first < len(s_qs), f"the Sudoku model's q_halt per step: {s_qs}")
    if s_first is not None and s_first > 1:
        for limit, reason in ((s_first - 1, "max steps"), (s_first, "max steps, and q_halt > 0"),
                              (s_first + 1, "q_halt > 0")):
            r = trm("solve", sudoku, puzzle, "--halt", "q", "--max-steps", limit)
            said = f"halted after {min(limit, s_first)} step{'s' if min(limit, s_first) > 1 else ''} ({reason})"
            check(r.rc == 0 and said in r.out, f"--halt q --max-steps {limit}: says '{said}'")


def run_on_tty(args, env, stream="stdout"):
    """Runs trm with standard output (or error) on a pseudo-terminal; returns what it wrote there."""
    master, slave = pty.openpty()
    on_tty = {"stdout": slave, "stderr": subprocess.DEVNULL} if stream == "stdout" else \
             {"stdout": subprocess.DEVNULL, "stderr": slave}
    p = subprocess.Popen([TRM] + args, stdin=subprocess.DEVNULL, env=env, preexec_fn=limit_resources, **on_tty)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=60)
    os.close(master)
    check(p.returncode == 0, f"{args} on a terminal: status {p.returncode}")
    return out.decode(errors="replace")


def test_colour():
    puzzle = os.path.join(TMP, "demo.txt")
    with open(puzzle, "w") as f:
        f.write(" ".join(str(i % 10) for i in range(16)))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    check("\033[" in run_on_tty(["solve", DEMO, puzzle], env), "colour on a terminal")
    check("\033[" not in run_on_tty(["solve", DEMO, puzzle], dict(env, NO_COLOR="1")), "no colour with NO_COLOR")


def sudoku_tokens(text):
    cells = [c for c in text if c in ".0123456789"]
    return [1 if c in ".0" else int(c) + 1 for c in cells]


def arc_tokens(grid):
    """The reference's np_grid_to_seq_translational_augment without translation, written from
    its description: colours + 2 at the top-left, 1 below and right of the grid."""
    canvas = np.zeros((30, 30), np.int64)
    rows, cols = len(grid), len(grid[0])
    canvas[:rows, :cols] = np.array(grid) + 2
    if rows < 30:
        canvas[rows, :cols] = 1
    if cols < 30:
        canvas[:rows, cols] = 1
    return canvas.flatten().tolist()


def maze_tokens(rows):
    canvas = np.zeros((30, 30), np.int64)
    for r, line in enumerate(rows):
        for c, ch in enumerate(line):
            canvas[r, c] = "# SGo".index(ch) + 1
    return canvas.flatten().tolist()


def same_run(model, task, text, tokens, what):
    """The task's text and the tokens encoded here give the same run."""
    a = json_lines(trm("solve", model, "--task", task, "--json", "--max-steps", "2", stdin=text).out)
    b = json_lines(trm("solve", model, "--task", "raw", "--json", "--max-steps", "2", stdin=" ".join(map(str, tokens))).out)
    check(len(a) == 2 and a == [dict(u, grid=v["grid"]) for u, v in zip(b, a)], f"{what}: same run as its tokens")
    return a


def test_tasks(models):
    sudoku = ("53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79")
    runs = same_run(models["sudoku"], "sudoku", "\n".join(sudoku[i:i + 9] for i in range(0, 81, 9)),
                    sudoku_tokens(sudoku), "sudoku")
    grid = runs[-1]["grid"].split("\n")
    check(len(grid) == 9 and all(len(g) == 9 for g in grid), "sudoku: grid string is 9 rows of 9")
    check("".join(grid) == "".join(str(t - 1) if 2 <= t <= 10 else "." for t in runs[-1]["answer"]), "sudoku: grid = answer")
    # the task comes from the model's shape; blanks as '0' too; box rules ignored
    boxed = "|".join(sudoku.replace(".", "0")[i:i + 27] for i in range(0, 81, 27))
    r = trm("solve", models["sudoku"], "--json", "--max-steps", "2", stdin=boxed)
    check(json_lines(r.out) == runs, "sudoku: default task, '0' blanks and separators")
    r = trm("solve", models["sudoku"], stdin=sudoku)
    check(r.rc == 0 and "a valid solution" in r.out and "------+-------+-------" in r.out, "sudoku: text view")
    one_line_error(trm("solve", models["sudoku"], stdin=sudoku[:-1]), 1, "81 cells", "80")
    one_line_error(trm("solve", models["sudoku"], stdin=sudoku[:-1] + "x"), 1, "'x'", "column 81")
    one_line_error(trm("solve", DEMO, "--task", "sudoku", stdin=sudoku), 1, DEMO, "seq_len 81")
    one_line_error(trm("solve", DEMO, "--task", "arc", stdin="0"), 1, DEMO, "seq_len 900")

    arc = [[0, 1, 2], [3, 4, 5]]
    runs = same_run(models["arc"], "arc", "0 1 2\n3 4 5\n", arc_tokens(arc), "arc 2x3")
    same_run(models["arc"], "arc", "\n".join("7" * 30 for _ in range(30)), arc_tokens([[7] * 30] * 30), "arc 30x30")
    same_run(models["arc"], "arc", "\n".join("1" * 30 for _ in range(4)), arc_tokens([[1] * 30] * 4), "arc 4x30")
    answer = np.array(runs[-1]["answer"]).reshape(30, 30)
    # the crop the reference evaluator applies: the largest top-left rectangle of colours
    best, size, width = 0, (0, 0), 30
    for r in range(30):
        c = 0
        while c < width and 2 <= answer[r, c] <= 11:
            c += 1
        width = c
        if (r + 1) * width > best:
            best, size = (r + 1) * width, (r + 1, width)
    expect = "\n".join("".join(str(v - 2) for v in answer[r, :size[1]]) for r in range(size[0]))
    check(runs[-1]["grid"] == expect, "arc: grid string is the answer cropped at the end-of-grid markers")
    one_line_error(trm("solve", models["arc"], stdin="0 1\n2\n"), 1, "line 2", "1 cells")
    one_line_error(trm("solve", models["arc"], stdin="0 a\n"), 1, "'a'")
    one_line_error(trm("solve", models["arc"], stdin="\n".join("1" * 31 for _ in range(2))), 1, "more than 30")
    maze = ["#####", "#S  #", "# # #", "#  G#", "#####"]
    runs = same_run(models["maze"], "maze", "\n".join(maze) + "\n", maze_tokens(maze), "maze")
    check(all(len(row) == 5 for row in runs[-1]["grid"].split("\n")) and len(runs[-1]["grid"].split("\n")) == 5,
          "maze: grid string has the input's shape")
    one_line_error(trm("solve", models["maze"], stdin="#S#\n#x#\n"), 1, "'x'", "line 2")
    one_line_error(trm("solve", DEMO, stdin="1 2 3"), 1, "16 tokens", "3")
    one_line_error(trm("solve", DEMO, stdin=" ".join(["12"] * 16)), 1, "token 1", "12")
    one_line_error(trm("solve", DEMO, stdin=" ".join(["a"] * 16)), 1, "token 1")
    one_line_error(trm("solve", DEMO, os.path.join(TMP, "nothing.txt")), 1, "nothing.txt")
    one_line_error(trm("solve", DEMO, "--puzzle-id", "3", stdin=" ".join(["1"] * 16)), 1, "--puzzle-id")


# ---- eval ----

def write_dataset(d, inputs, labels, ids, indices, meta=None, dtypes=("uint8", "uint8", "int32", "int32")):
    os.makedirs(os.path.join(d, "test"), exist_ok=True)
    np.save(os.path.join(d, "test/all__inputs.npy"), np.asarray(inputs, dtypes[0]))
    np.save(os.path.join(d, "test/all__labels.npy"), np.asarray(labels, dtypes[1]))
    np.save(os.path.join(d, "test/all__puzzle_identifiers.npy"), np.asarray(ids, dtypes[2]))
    np.save(os.path.join(d, "test/all__puzzle_indices.npy"), np.asarray(indices, dtypes[3]))
    m = dict(seq_len=int(np.shape(inputs)[1]), vocab_size=10, pad_id=0, ignore_label_id=0, blank_identifier_id=0,
             num_puzzle_identifiers=3, total_groups=len(ids), mean_puzzle_examples=1.0, total_puzzles=len(ids), sets=["all"])
    m.update(meta or {})
    with open(os.path.join(d, "test/dataset.json"), "w") as f:
        json.dump(m, f)


def eval_json(*args):
    r = trm("eval", *args, "--json")
    check(r.rc == 0, f"eval {args}: {r.err.strip()}")
    return json.loads(r.out) if r.rc == 0 else None


def check_report(rep, max_steps, what):
    for key in ("token_accuracy", "exact_accuracy", "mean_steps", "puzzles_per_second", "exact_accuracy_by_step",
                "q_halt_predictor", "examples"):
        check(key in rep, f"{what}: report has {key}")
    for key in ("token_accuracy", "exact_accuracy"):
        check(0 <= rep[key] <= 1, f"{what}: {key} in [0, 1]")
    check(len(rep["exact_accuracy_by_step"]) == max_steps and all(0 <= v <= 1 for v in rep["exact_accuracy_by_step"]),
          f"{what}: curve of {max_steps} values in [0, 1]")
    q = rep["q_halt_predictor"]
    for key, denominator in (("precision", q["true_positives"] + q["false_positives"]),
                             ("recall", q["true_positives"] + q["false_negatives"]), ("accuracy", rep["examples_scored"])):
        check((q[key] is None) == (denominator == 0) and (q[key] is None or 0 <= q[key] <= 1),
              f"{what}: q_halt {key} in [0, 1], null only without a denominator")
    check(1 <= rep["mean_steps"] <= max_steps and rep["puzzles_per_second"] > 0, f"{what}: steps and speed")


def test_eval(models):
    model = MODELS["conf_att_rope"]  # seq_len 16, vocab 10, 3 puzzle identifiers, 6 steps
    rng = np.random.default_rng(7)
    n, K = 7, 6
    inputs = rng.integers(1, 10, (n, 16))
    indices = [0, 2, 5, 7]
    ids = [2, 0, 1]
    example_ids = [ids[p] for p in range(3) for _ in range(indices[p], indices[p + 1])]
    # each example's per-step answers and q, from trm solve (checked against the reference above)
    per_step = []
    for e in range(n):
        units = json_lines(trm("solve", model, "--json", "--puzzle-id", example_ids[e],
                               stdin=" ".join(map(str, inputs[e]))).out)
        per_step.append(units)
    # labels: examples 0, 3 and 6 are the model's own final answer (exact); example 4 its step-2
    # answer; the rest random; every example has some ignored (0) positions
    labels = rng.integers(1, 10, (n, 16))
    for e, k in ((0, K), (3, K), (6, K), (4, 2)):
        labels[e] = per_step[e][k - 1]["answer"]
    # examples 1, 2 and 5: their answer at the first step with q_halt > 0, where --halt q stops
    # them early, so the curve's later steps must carry their exactness on
    early = 0
    for e in (1, 2, 5):
        stop = next((i + 1 for i, u in enumerate(per_step[e]) if u["q_halt"] > 0), None)
        if stop and stop < K:
            labels[e] = per_step[e][stop - 1]["answer"]
            early += 1
    check(early > 0, "some example halts early on q_halt (the test can see the curve's tail)")
    labels[:, ::5] = 0
    data = os.path.join(TMP, "hand")
    write_dataset(data, inputs, labels, ids, indices)

    def expected(halt_q):
        scored = labels != 0
        exact_at = np.zeros((n, K), bool)
        final, steps = [], []
        for e in range(n):
            stop = next((i + 1 for i, u in enumerate(per_step[e]) if u["q_halt"] > 0), K) if halt_q else K
            answers = [np.array(per_step[e][min(k, stop) - 1]["answer"]) for k in range(1, K + 1)]
            exact_at[e] = [np.all(a[scored[e]] == labels[e][scored[e]]) for a in answers]
            final.append(answers[-1])
            steps.append(stop)
        correct = sum(int(np.sum(final[e][scored[e]] == labels[e][scored[e]])) for e in range(n))
        predicted = np.array([per_step[e][steps[e] - 1]["q_halt"] > 0 for e in range(n)])
        return dict(token_accuracy=correct / int(scored.sum()), exact_accuracy=exact_at[:, -1].mean(),
                    curve=exact_at.mean(0), mean_steps=np.mean(steps),
                    tp=int(np.sum(predicted & exact_at[:, -1])), fp=int(np.sum(predicted & ~exact_at[:, -1])))

    for halt in ("fixed", "q"):
        exp = expected(halt == "q")
        reports = [eval_json(model, data, "--halt", halt, "--batch", b) for b in (1, 3, 7, 64)]
        if None in reports:
            continue
        rep = reports[0]
        check_report(rep, K, f"hand-made set, halt {halt}")
        if halt == "fixed":
            check(rep["exact_accuracy"] >= 3 / 7, "the set has exact examples (the test can see them)")
        check(rep["examples"] == n and rep["tokens_scored"] == int((labels != 0).sum()), f"halt {halt}: counts")
        check(abs(rep["token_accuracy"] - exp["token_accuracy"]) < 1e-7, f"halt {halt}: token accuracy {rep['token_accuracy']} vs {exp['token_accuracy']}")
        check(abs(rep["exact_accuracy"] - exp["exact_accuracy"]) < 1e-7, f"halt {halt}: exact accuracy {rep['exact_accuracy']} vs {exp['exact_accuracy']}")
        check(np.allclose(rep["exact_accuracy_by_step"], exp["curve"]), f"halt {halt}: curve {rep['exact_accuracy_by_step']} vs {list(exp['curve'])}")
        check(abs(rep["mean_steps"] - exp["mean_steps"]) < 1e-7, f"halt {halt}: mean steps {rep['mean_steps']} vs {exp['mean_steps']}")
        q = rep["q_halt_predictor"]
        check((q["true_positives"], q["false_positives"]) == (exp["tp"], exp["fp"]), f"halt {halt}: q_halt predictor counts")
        strip = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "puzzles_per_second", "batch")}
        check(all(strip(r) == strip(rep) for r in reports[1:]), f"halt {halt}: batches 1, 3, 7, 64 give the same report")
    rep = eval_json(model, data, "--limit", 4, "--max-steps", 3)
    if rep:
        check(rep["examples"] == 4 and len(rep["exact_accuracy_by_step"]) == 3, "--limit 4 --max-steps 3")
    r = trm("eval", model, data)
    check(r.rc == 0 and "exact accuracy" in r.out and "puzzles/s" in r.out and r.err == "", "text report, no progress bar on a pipe")
    bar = run_on_tty(["eval", model, data, "--batch", "2"], os.environ, stream="stderr")
    check(re.search(rf"\r\[[#.]+\] \d+/{n} puzzles", bar) is not None and bar.endswith("\r\033[K"),
          f"progress bar on a terminal, erased at the end: {bar!r}")

    # every kind of bad input: exit 1, one line naming the file and the problem
    def variant(name, **changes):
        d = os.path.join(TMP, "bad_" + name)
        args = dict(inputs=inputs, labels=labels, ids=ids, indices=indices, meta=None,
                    dtypes=("uint8", "uint8", "int32", "int32"))
        args.update(changes)
        write_dataset(d, **args)
        return d

    one_line_error(trm("eval", model, os.path.join(TMP, "no_such_dir")), 1, "no_such_dir", "No such file")
    one_line_error(trm("eval", model, data, "--split", "train"), 1, "train", "split")
    d = variant("nojson")
    os.remove(os.path.join(d, "test/dataset.json"))
    one_line_error(trm("eval", model, d), 1, "dataset.json", "No such file")
    for name, text, words in (("garbage", "{\"seq_len\": 16, oops", ["dataset.json", "byte"]),
                              ("notobject", "[1, 2]", ["dataset.json", "object"]),
                              ("noseq", json.dumps(dict(vocab_size=10)), ["dataset.json", "seq_len"]),
                              ("floatseq", json.dumps(dict(seq_len=16.5, vocab_size=10)), ["dataset.json", "integer"]),
                              ("trailing", json.dumps(dict(seq_len=16, vocab_size=10)) + " x", ["dataset.json", "after"]),
                              ("empty", "", ["dataset.json"])):
        d = variant("json_" + name)
        with open(os.path.join(d, "test/dataset.json"), "w") as f:
            f.write(text)
        one_line_error(trm("eval", model, d), 1, *words)
    one_line_error(trm("eval", model, variant("seq", meta=dict(seq_len=81))), 1, "dataset.json", "seq_len 81", "16")
    one_line_error(trm("eval", model, variant("vocab", meta=dict(vocab_size=11))), 1, "dataset.json", "vocab_size 11")
    d = variant("nolabels")
    os.remove(os.path.join(d, "test/all__labels.npy"))
    one_line_error(trm("eval", model, d), 1, "all__labels.npy")
    one_line_error(trm("eval", model, variant("float", dtypes=("float32", "uint8", "int32", "int32"))), 1, "all__inputs.npy")
    one_line_error(trm("eval", model, variant("shape", inputs=inputs[:, :15], labels=labels[:, :15], meta=dict(seq_len=16))),
                   1, "all__inputs.npy", "shape [7, 15]")
    one_line_error(trm("eval", model, variant("labelshape", labels=labels[:6])), 1, "all__labels.npy", "shape [6, 16]")
    one_line_error(trm("eval", model, variant("range", inputs=np.where(inputs == 3, 10, inputs))), 1, "all__inputs.npy", "10")
    one_line_error(trm("eval", model, variant("labelrange", labels=np.where(labels == 3, 12, labels))), 1, "all__labels.npy", "12")
    one_line_error(trm("eval", model, variant("ids", ids=[0, 1, 3])), 1, "all__puzzle_identifiers.npy", "3")
    one_line_error(trm("eval", model, variant("idx_end", indices=[0, 2, 5, 6])), 1, "all__puzzle_indices.npy", "6")
    one_line_error(trm("eval", model, variant("idx_len", indices=[0, 2, 7])), 1, "all__puzzle_indices.npy", "shape")
    one_line_error(trm("eval", model, variant("idx_down", indices=[0, 5, 2, 7])), 1, "all__puzzle_indices.npy", "decreases")
    d = variant("truncated")
    path = os.path.join(d, "test/all__inputs.npy")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 5)
    one_line_error(trm("eval", model, d), 1, "all__inputs.npy")
    d = variant("notnpy")
    with open(os.path.join(d, "test/all__puzzle_indices.npy"), "w") as f:
        f.write("hello")
    one_line_error(trm("eval", model, d), 1, "all__puzzle_indices.npy")
    one_line_error(trm("eval", os.path.join(TMP, "none.safetensors"), data), 1, "none.safetensors")


def test_eval_generated(models):
    out = os.path.join(TMP, "sudoku_set")
    r = trm("data", "sudoku", "--count", 12, "--test-count", 9, "--givens", "30-40", "--seed", 3, "--out", out)
    if r.rc != 0:
        check(False, f"trm data sudoku: {r.err.strip()}")
        return
    reports = [eval_json(models["sudoku"], out, "--batch", b, "--halt", "q") for b in (1, 3)]
    if None in reports:
        return
    check_report(reports[0], 3, "generated Sudoku set")
    check(reports[0]["examples"] == 9, f"generated set: 9 test examples ({reports[0]['examples']})")
    keys = ("token_accuracy", "exact_accuracy", "exact_accuracy_by_step", "mean_steps", "q_halt_predictor")
    check(all(reports[0][k] == reports[1][k] for k in keys), "generated set: --batch 1 and --batch 3 agree")
    train = eval_json(models["sudoku"], out, "--split", "train", "--limit", 5)
    check(train is not None and train["examples"] == 5, "generated set: --split train --limit 5")
    # the generators' tokens and trm solve's reading of the same puzzle as text agree
    tokens = np.load(os.path.join(out, "test/all__inputs.npy"))[0].tolist()
    text = "".join("." if t == 1 else str(t - 1) for t in tokens)
    same_run(models["sudoku"], "sudoku", text, tokens, "generated Sudoku as text")
    maze_out = os.path.join(TMP, "maze_set")
    r = trm("data", "maze", "--size", 9, "--count", 4, "--test-count", 3, "--seed", 5, "--out", maze_out)
    if not check(r.rc == 0, f"trm data maze: {r.err.strip()}"):
        return
    write_model(models["maze"] + ".9", 81, 6)
    tokens = np.load(os.path.join(maze_out, "test/all__inputs.npy"))[0].tolist()
    text = "\n".join("".join("# SGo"[t - 1] for t in tokens[r * 9:r * 9 + 9]) for r in range(9))
    same_run(models["maze"] + ".9", "maze", text, tokens, "generated 9x9 maze as text")
    reports = [eval_json(models["maze"] + ".9", maze_out, "--batch", b) for b in (1, 2)]
    if None not in reports:
        check_report(reports[0], 3, "generated maze set")
        check(reports[0]["exact_accuracy_by_step"] == reports[1]["exact_accuracy_by_step"], "maze set: batches agree")


def test_hostile_bytes():
    """File names and file contents with invalid UTF-8 and terminal escapes: --json output stays
    valid UTF-8 JSON, and no error message passes a control character on to the terminal."""
    odd = os.path.join(os.fsencode(TMP), b"m\xff\x1b[31m.safetensors")
    shutil.copyfile(DEMO, odd)

    def run_bytes(*args, stdin=b""):
        p = subprocess.run([os.fsencode(TRM)] + [a if isinstance(a, bytes) else os.fsencode(str(a)) for a in args],
                           input=stdin, capture_output=True, timeout=300, preexec_fn=limit_resources)
        return p.returncode, p.stdout, p.stderr

    rc, out, err = run_bytes("info", "--json", odd)
    try:
        info = json.loads(out.decode("utf-8"))
    except ValueError as e:
        info = None
        check(False, f"info --json of a non-UTF-8 file name: not UTF-8 JSON ({e}): {out[:80]!r}")
    if info is not None:
        check(rc == 0 and info["path"].endswith("m\ufffd\x1b[31m.safetensors"),
              f"info --json: the path with U+FFFD for the bad byte: {info['path']!r}")
    # metadata that would drive a terminal: shown escaped in text, kept exactly in JSON
    hostile = os.path.join(TMP, "hostile-meta.safetensors")
    write_model(hostile, 16, 6, extra_meta={"note\x1b]0;title\x07": "a\x1b[2Jb\u009bc\x7fd\u00e9"})
    rc, out, err = run_bytes("info", hostile)
    check(rc == 0 and not any(b in out for b in (b"\x1b", b"\x07", b"\xc2\x9b", b"\x7f"))
          and b"note\\x1b]0;title\\x07" in out and b"a\\x1b[2Jb\\x9bc\\x7fd\xc3\xa9" in out,
          f"info: control characters in metadata are shown escaped: {out!r}")
    rc, out, err = run_bytes("info", odd)
    check(rc == 0 and b"\x1b" not in out and b"\xff" not in out, f"info: a file name's escape is not printed raw: {out[:120]!r}")
    info = json.loads(run_bytes("info", "--json", hostile)[1].decode("utf-8"))
    check(info["metadata"].get("note\x1b]0;title\x07") == "a\x1b[2Jb\u009bc\x7fd\u00e9",
          f"info --json: metadata kept exactly: {info['metadata']!r}")
    tokens = b"1 2 \xff\x1b[2J 3"
    rc, out, err = run_bytes("solve", DEMO, "-", stdin=tokens)
    check(rc == 1 and err.count(b"\n") == 1 and b"\x1b" not in err and b"\xff" not in err and b"token 3" in err,
          f"solve: a bad token's bytes are not echoed raw: {err!r}")
    rc, out, err = run_bytes("solve", DEMO, odd + b".missing")
    check(rc == 1 and err.count(b"\n") == 1 and b"\x1b" not in err, f"solve: a file name's escape is not echoed raw: {err!r}")


def main():
    global TRM, STEP, DEMO, MODELS, TMP, MANPAGE
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/make", help="the Makefile's build folder (B)")
    ap.add_argument("--trm", help="the trm program (default BUILD/trm)")
    ap.add_argument("--step", help="examples/c/step.c built (default BUILD/examples/step)")
    ap.add_argument("--models", help="the converted conformance models, {case} standing for the case's "
                    "name (default BUILD/conformance/{case}/model.safetensors)")
    args = ap.parse_args()
    TRM = os.path.abspath(args.trm or os.path.join(args.build, "trm"))
    STEP = os.path.abspath(args.step or os.path.join(args.build, "examples/step"))
    pattern = os.path.abspath(args.models or os.path.join(args.build, "conformance/{case}/model.safetensors"))
    MODELS = {c: pattern.format(case=c) for c in CASES}
    os.chdir(ROOT)
    DEMO = "models/demo.safetensors"
    MANPAGE = open("docs/trm.1").read().replace("\\-", "-")
    TMP = tempfile.mkdtemp(prefix="trm-cli-test-")
    try:
        models = dict(MODELS, demo=DEMO)
        for task, shape in (("sudoku", (81, 11)), ("maze", (900, 6)), ("arc", (900, 12))):
            models[task] = os.path.join(TMP, task + ".safetensors")
            write_model(models[task], *shape)
        for test in (test_usage, lambda: test_info(models), test_solve_against_step_example, test_solve_against_reference,
                     test_solve_units_and_halting, test_colour, lambda: test_tasks(models), lambda: test_eval(models),
                     lambda: test_eval_generated(models), test_hostile_bytes):
            test()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"cli tests: {passed} checks passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
