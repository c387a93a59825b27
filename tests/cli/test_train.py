#!/usr/bin/env python3
"""Tests of `trm train`: a tiny Sudoku model trains and loads, a run resumed from its checkpoint
ends with the same bytes as an uninterrupted one, thread counts do not change the result, usage
and data errors are reported with the documented exit statuses.

    python3 tests/cli/test_train.py --trm build/make/trm
"""
import argparse
import os
import subprocess
import sys
import tempfile

TINY = ["--mlp-t", "--hidden", "16", "--layers", "1", "--H-cycles", "1", "--L-cycles", "1",
        "--batch", "4", "--halt-max-steps", "3", "--eval-limit", "8", "--seed", "5"]


def run(trm, *args, expect=0):
    p = subprocess.run([trm, *args], capture_output=True, text=True, timeout=300)
    if p.returncode != expect:
        raise AssertionError(f"trm {' '.join(args)}: exit {p.returncode}, expected {expect}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trm", required=True)
    trm = ap.parse_args().trm
    failures = 0

    def check(name, fn):
        nonlocal failures
        try:
            fn()
            print(f"ok   {name}")
        except AssertionError as e:
            failures += 1
            print(f"FAIL {name}: {e}")

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        run(trm, "data", "sudoku", "--count", "40", "--test-count", "8", "--givens", "40-45", "--seed", "3",
            "--out", data)
        p = lambda name: os.path.join(tmp, name)

        def trains_and_loads():
            r = run(trm, "train", data, "-o", p("m.safetensors"), *TINY, "--steps", "5")
            assert "step 5" in r.stderr, r.stderr
            assert "eval step 5: exact" in r.stderr, r.stderr
            assert os.path.exists(p("m.safetensors.ckpt"))
            info = run(trm, "info", p("m.safetensors")).stdout
            assert "hidden_size" in info and "16" in info, info
            run(trm, "eval", p("m.safetensors"), data, "--limit", "8")

        def resume_is_exact():
            run(trm, "train", data, "-o", p("full.safetensors"), *TINY, "--steps", "8")
            run(trm, "train", data, "-o", p("half.safetensors"), *TINY, "--steps", "3")
            run(trm, "train", data, "-o", p("resumed.safetensors"), "--resume", p("half.safetensors.ckpt"),
                "--steps", "8", "--eval-limit", "0")
            assert read(p("full.safetensors")) == read(p("resumed.safetensors")), "resumed model differs"
            assert read(p("half.safetensors")) != read(p("full.safetensors")), "training changed nothing"

        def threads_do_not_matter():
            run(trm, "train", data, "-o", p("t1.safetensors"), *TINY, "--steps", "4", "--threads", "1")
            run(trm, "train", data, "-o", p("t2.safetensors"), *TINY, "--steps", "4", "--threads", "2")
            assert read(p("t1.safetensors")) == read(p("t2.safetensors")), "thread counts differ"

        def seeds_matter():
            run(trm, "train", data, "-o", p("s1.safetensors"), *TINY, "--steps", "2")
            run(trm, "train", data, "-o", p("s2.safetensors"), *TINY, "--steps", "2", "--seed", "6")
            assert read(p("s1.safetensors")) != read(p("s2.safetensors"))

        def errors():
            run(trm, "train", data, expect=2)                                  # no -o
            run(trm, "train", "-o", p("x"), expect=2)                          # no data
            run(trm, "train", data, "-o", p("x"), "--bogus", expect=2)
            run(trm, "train", data, "-o", p("x"), "--batch", "0", expect=2)
            run(trm, "train", data, "-o", p("x"), "--resume", p("m.safetensors.ckpt"), "--hidden", "8", expect=2)
            r = run(trm, "train", p("nothing"), "-o", p("x"), expect=1)
            assert "nothing" in r.stderr, r.stderr
            r = run(trm, "train", data, "-o", p("x"), "--resume", p("m.safetensors"), expect=1)  # not a checkpoint
            assert "checkpoint" in r.stderr, r.stderr
            with open(p("bad.conf"), "w") as f:
                f.write("hidden_size = 16\nmlp_t = true\nfrobnicate = 3\n")
            r = run(trm, "train", data, "-o", p("x"), "--config", p("bad.conf"), expect=1)
            assert "frobnicate" in r.stderr, r.stderr
            assert "train DATA_DIR" in run(trm, "train", "--help").stdout

        def config_file():
            with open(p("ok.conf"), "w") as f:
                f.write("# tiny\nhidden_size = 16\nmlp_t = true\npos_encodings = none\nL_layers = 1\n"
                        "H_cycles = 1\nL_cycles = 1\nbatch = 4\nhalt_max_steps = 2\nlr = 1e-3\n")
            r = run(trm, "train", data, "-o", p("c.safetensors"), "--config", p("ok.conf"), "--steps", "2",
                    "--eval-limit", "0")
            assert "batch 4" in r.stderr, r.stderr

        check("trains and loads", trains_and_loads)
        check("resume is exact", resume_is_exact)
        check("threads do not matter", threads_do_not_matter)
        check("seeds matter", seeds_matter)
        check("errors", errors)
        check("config file", config_file)
    print(f"test_train.py: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
