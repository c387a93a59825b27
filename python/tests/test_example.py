"""examples/python/step.py: runs, prints an answer per step that agrees with the binding (and
with the C example when it is built), and draws the confidence chart."""
import os
import re
import subprocess
import sys

import pytest

import trm
from conftest import DEMO, REPO, build_dir
from conftest import c_example as c_example_path

EXAMPLE = REPO / "examples" / "python" / "step.py"


def run_example(*args, cwd=REPO):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, str(EXAMPLE), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=120)  # fmt: skip


def parse_steps(stdout):
    """{step: (answer tokens, mean confidence, min confidence)} from the example's output."""
    steps = {}
    for line in stdout.splitlines():
        m = re.match(r"step (\d+)\s+((?:\s*\d+\*?)+)\s+confidence mean ([\d.]+) min ([\d.]+)", line)
        if m:
            tokens = [int(t.rstrip("*")) for t in m.group(2).split()]
            steps[int(m.group(1))] = (tokens, float(m.group(3)), float(m.group(4)))
    return steps


def test_example_default_model_from_anywhere(tmp_path):
    r = run_example(cwd=tmp_path)  # models/demo.safetensors found next to the example
    assert r.returncode == 0, r.stderr
    assert "demo.safetensors" in r.stdout.splitlines()[0]


def test_example_answers_and_chart():
    r = run_example(str(DEMO))
    assert r.returncode == 0, r.stderr
    steps = parse_steps(r.stdout)
    with trm.Model(DEMO) as m, m.session() as s:
        c = m.config
        assert sorted(steps) == list(range(1, c["halt_max_steps"] + 1))
        assert f"halted after {c['halt_max_steps']} steps" in r.stdout
        # the same puzzle through the binding directly: the same answers and confidences
        s.set_input(0, [1 + i % (c["vocab_size"] - 1) for i in range(c["seq_len"])])
        for ev in s.refine():
            tokens, confidence = s.answer(0)
            got_tokens, got_mean, got_min = steps[ev.step]
            assert got_tokens == tokens.tolist()
            assert got_mean == pytest.approx(float(confidence.mean()), abs=6e-4)
            assert got_min == pytest.approx(float(confidence.min()), abs=6e-4)
    # the chart: a mean and a min bar per step, as long as the value says (40 cells = 1.0)
    bars = re.findall(r"(mean|min)\s+\|([ ▏▎▍▌▋▊▉█]{40})\| ([\d.]+)", r.stdout)
    assert len(bars) == 2 * len(steps)
    for _, cells, value in bars:
        eighths = 8 * cells.count("█") + sum(" ▏▎▍▌▋▊▉".index(ch) for ch in cells if ch not in "█ ")
        assert abs(eighths - float(value) * 320) <= 2.5  # rounding of the value and of the bar


def test_example_agrees_with_c_example():
    c_example = c_example_path()
    if c_example is None:
        pytest.skip(f"the C example is not built in {build_dir()}")
    c_out = subprocess.run([str(c_example), str(DEMO)], capture_output=True, text=True, check=True).stdout
    c_steps = {}
    for line in c_out.splitlines():
        m = re.match(r"step (\d+)\s+((?:\s*\d+\*?)+)\s+confidence ([\d.]+)", line)
        if m:
            c_steps[int(m.group(1))] = ([int(t.rstrip("*")) for t in m.group(2).split()], float(m.group(3)))
    py_steps = parse_steps(run_example(str(DEMO)).stdout)
    assert c_steps and sorted(c_steps) == sorted(py_steps)
    for k, (tokens, mean) in c_steps.items():
        assert py_steps[k][0] == tokens and py_steps[k][1] == pytest.approx(mean, abs=1e-3)


def test_example_options(tmp_path):
    r = run_example(str(DEMO), "--max-steps", "2", "--tokens", *["3"] * 16)
    assert r.returncode == 0, r.stderr
    assert sorted(parse_steps(r.stdout)) == [1, 2]
    assert "halted after 2 steps" in r.stdout


def test_example_errors(tmp_path):
    r = run_example(str(tmp_path / "missing.safetensors"))
    assert r.returncode != 0 and "TRM_E_IO" in r.stderr and "Traceback" not in r.stderr
    r = run_example(str(DEMO), "--tokens", "1", "2")
    assert r.returncode != 0 and "2 given, the model takes seq_len = 16" in r.stderr
    assert "Traceback" not in r.stderr
