#!/usr/bin/env python3
"""Test of the gdb support (tools/gdb/libtrm.py, examples/gdb/step.gdb, the auto-load script).

    check_gdb.py [--step PROGRAM] [--step-cpp PROGRAM] BUILD_DIR [MODEL]

BUILD_DIR holds libtrm.so and the auto-load script; the programs default to
BUILD_DIR/examples/step and BUILD_DIR/examples/step-cpp (the C++ one is left out if missing).
Runs the C example on the model (default models/demo.safetensors) on its own, then
under `gdb -batch -x examples/gdb/step.gdb` in each way of decoding the answer (gdb with numpy,
gdb in pure Python, trm_session_answer() called in the inferior), and the C++ example
(BUILD_DIR/examples/step-cpp, same output) under it too, and checks what gdb printed:
one stop after every trm_refine() (plus the final one that returns TRM_HALTED), the step
counters advancing by one, each slot's state, the answer drawn as a grid when seq_len is a square,
and the answer and q_halt equal to those the program prints itself. Then checks that the
auto-load script next to the library loads the printers with no `source` at all, and that damaged
or unset structs (garbage, zeroes, a model claiming a huge vocabulary) print as such.
Run from the repository root. Exit status 0 when every check passes.
"""

import math
import os
import re
import subprocess
import sys

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL: " + what)


def run(cmd):
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    return done.returncode, done.stdout


def program_steps(output):
    """[(step, tokens, q_halt text)] from examples/c/step.c's lines
    `step 3  9*  9 ...  confidence 0.302  q_halt -0.171`."""
    steps = []
    for line in output.splitlines():
        m = re.match(r"step (\d+) (.*)  confidence \S+  q_halt (\S+)$", line)
        if m:
            tokens = [int(t) for t in re.findall(r"\d+", m.group(2))]
            steps.append((int(m.group(1)), tokens, m.group(3)))
    return steps


def session_blocks(output):
    """Each `$N = trm_session {...}` print of gdb's output, as its list of lines."""
    blocks, current = [], None
    for line in output.splitlines():
        if re.match(r"\$\d+ = trm_session \{", line):
            current = [line]
        elif current is not None:
            current.append(line)
            if line == "}":
                blocks.append(current)
                current = None
    return blocks


def parse_block(block):
    """(steps begun, slot-0 state, steps, q_halt text, grid rows of the answer, answer line tokens)."""
    text = "\n".join(block)
    begun = re.search(r"recursion: (\d+) steps begun", text)
    slot = re.search(r"slot 0: (\w+), steps (\d+).*q_halt (\S+),", text)
    answer = re.search(r"^    answer: ([\d ]+)$", text, re.M)
    header = next((i for i, line in enumerate(block) if line.lstrip().startswith("input")), None)
    grid = []
    if header is not None:
        for line in block[header + 1:]:
            if not re.match(r"^    [\d ]+$", line):
                break
            grid.append(line)
    return (int(begun.group(1)) if begun else None, slot.group(1) if slot else None,
            int(slot.group(2)) if slot else None, slot.group(3) if slot else None, grid,
            [int(t) for t in answer.group(1).split()] if answer else None)


def check_step_script(label, gdb_output, rc, expected, seq_len):
    check(rc == 0, "%s: gdb exits with 0 (got %d)" % (label, rc))
    stops = re.findall(r"after trm_refine\(\): status (-?\d+), event step (\d+)", gdb_output)
    check(len(stops) == len(expected) + 1,
          "%s: one stop per trm_refine() call: %d, expected %d" % (label, len(stops), len(expected) + 1))
    check([s for s, _ in stops] == ["0"] * len(expected) + ["1"],
          "%s: trm_refine() returned TRM_OK each step, then TRM_HALTED: %s" % (label, [s for s, _ in stops]))
    blocks = [parse_block(b) for b in session_blocks(gdb_output)]
    check(len(blocks) == len(stops), "%s: a session printed at each stop (%d of %d)" % (label, len(blocks), len(stops)))
    if not blocks:
        return
    side = math.isqrt(seq_len)
    square = side * side == seq_len and side > 1
    for i, (begun, state, steps, q_halt, grid, answer) in enumerate(blocks):
        n = min(i, len(expected) - 1)  # the last stop (TRM_HALTED) shows the state after the last step
        step, tokens, program_q = expected[n]
        check(begun == step, "%s: stop %d: %s steps begun, expected %d" % (label, i + 1, begun, step))
        check(steps == step, "%s: stop %d: slot 0 has %s steps, expected %d" % (label, i + 1, steps, step))
        want_state = "halted" if n == len(expected) - 1 else "running"
        check(state == want_state, "%s: stop %d: slot 0 %s, expected %s" % (label, i + 1, state, want_state))
        check(answer == tokens, "%s: stop %d: gdb's answer %s, the program's %s" % (label, i + 1, answer, tokens))
        check(q_halt == program_q, "%s: stop %d: gdb's q_halt %s, the program's %s" % (label, i + 1, q_halt, program_q))
        if square:
            # input grid on the left, answer grid on the right: side rows of 2*side numbers
            rows = [[int(t) for t in row.split()] for row in grid]
            check(len(rows) == side and all(len(r) == 2 * side for r in rows),
                  "%s: stop %d: a %dx%d grid of input and answer, got %s" % (label, i + 1, side, side, grid))
            check([t for r in rows for t in r[side:]] == tokens,
                  "%s: stop %d: the grid's answer is the program's" % (label, i + 1))


def main():
    args = sys.argv[1:]
    programs = {"--step": None, "--step-cpp": None}
    while args and args[0] in programs and len(args) > 1:
        programs[args[0]] = args[1]
        args = args[2:]
    if len(args) not in (1, 2):
        print(__doc__)
        return 2
    build = args[0]
    model = args[1] if len(args) == 2 else "models/demo.safetensors"
    step = programs["--step"] or os.path.join(build, "examples", "step")
    step_cpp = programs["--step-cpp"] or os.path.join(build, "examples", "step-cpp")
    gdb = os.environ.get("GDB", "gdb")
    library_dir = os.path.abspath(build)

    # gdb must be able to run a program here (containers may forbid ptrace): if not, say so
    rc, output = run([gdb, "-nx", "-batch", "-ex", "run", "--args", step])
    if "exited with code 02" not in output:
        print("check-gdb: SKIPPED: gdb cannot run a program here (ptrace not permitted?):\n" + output[-500:])
        return 0

    rc, program_output = run([step, model])
    expected = program_steps(program_output)
    check(rc == 0 and len(expected) >= 2, "the example runs on its own and prints its steps (rc %d)" % rc)
    if failures:
        return 1
    check([s for s, _, _ in expected] == list(range(1, len(expected) + 1)), "the example's steps count 1, 2, ...")
    seq_len = len(expected[0][1])

    # -nx: no ~/.gdbinit; the auto-load script next to the library is allowed, and must not get in
    # the way of the printers the script sources by hand
    base = [gdb, "-nx", "-batch", "-iex", "add-auto-load-safe-path " + library_dir]
    variants = [
        ("step.gdb", [], step),
        ("step.gdb, pure Python", ["-x", "tools/gdb/libtrm.py", "-ex", "python import libtrm; libtrm.numpy = None"], step),
        ("step.gdb, decode in the inferior", ["-x", "tools/gdb/libtrm.py", "-ex", "set trm decode inferior"], step),
    ]
    # the C++ example calls trm_refine() from inlined code (which gdb.FinishBreakpoint cannot follow)
    if os.path.exists(step_cpp):
        variants.append(("step.gdb on the C++ example", [], step_cpp))
    for label, options, program in variants:
        rc, output = run(base + options + ["-x", "examples/gdb/step.gdb", "--args", program, model])
        check_step_script(label, output, rc, expected, seq_len)
        if failures:
            print("---- gdb printed:\n" + output)
            return 1
        print("check-gdb: %s: %d stops, every answer and q_halt equal to the program's" % (label, len(expected) + 1))

    # auto-load alone: nothing sourced; the printers arrive with the library
    rc, output = run(base + ["-ex", "set breakpoint pending on", "-ex", "break trm_session_answer", "-ex", "run",
                             "-ex", "info auto-load python-scripts", "-ex", "up", "-ex", "print *session",
                             "-ex", "print *session->model", "--args", step, model])
    check(re.search(r"Yes\s+\S*libtrm\.so[\w.]*-gdb\.py", output) is not None,
          "auto-load: gdb loaded the libtrm.so-gdb.py script next to the library")
    blocks = [parse_block(b) for b in session_blocks(output)]
    check(len(blocks) == 1 and blocks[0][5] == expected[0][1],
          "auto-load: print *session shows the program's first answer")
    check(re.search(r"= trm_model \{hidden_size \d+, .*seq_len %d," % seq_len, output) is not None,
          "auto-load: print *session->model shows the configuration")
    if failures:
        print("---- gdb printed:\n" + output)
        return 1
    print("check-gdb: auto-load: printers loaded with the library; answer equal to the program's")

    # damaged and unset structs: the printers say so on one line and gdb carries on (a printer
    # that raised would abort the script; one that read what a garbage size claims could hang)
    alloc = "((void *(*)(unsigned long)) malloc)"
    fill = "((void *(*)(void *, int, unsigned long)) memset)"
    copy = "((void *(*)(void *, const void *, unsigned long)) memcpy)"
    commands = [
        "set breakpoint pending on", "break trm_refine", "run",
        # all bytes 0x41: the model pointer leads nowhere
        "set $g = (struct trm_session *) %s(sizeof(struct trm_session))" % alloc,
        "call (void) %s($g, 0x41, sizeof(struct trm_session))" % fill, "print *$g",
        # zeroed, as before initialisation
        "set $z = (struct trm_model *) %s(sizeof(struct trm_model))" % alloc,
        "call (void) %s($z, 0, sizeof(struct trm_model))" % fill, "print *$z",
        "set var $g->model = $z", "print *$g",
        # the real session on a copy of its model that claims a vocabulary of 16 million
        "set $m = (struct trm_model *) %s(sizeof(struct trm_model))" % alloc,
        "call (void) %s($m, s->model, sizeof(struct trm_model))" % copy,
        "set var $m->cfg.vocab_size = 16000000",
        "set $c = (struct trm_session *) %s(sizeof(struct trm_session))" % alloc,
        "call (void) %s($c, s, sizeof(struct trm_session))" % copy,
        "set var $c->model = $m", "print *$c",
        "echo damaged: done\\n",
    ]
    rc, output = run([gdb, "-nx", "-batch", "-x", "tools/gdb/libtrm.py"] +
                     [a for c in commands for a in ("-ex", c)] + ["--args", step, model])
    prints = re.findall(r"^\$\d+ = (.*)$", output, re.M)
    check(len(prints) == 4 and "damaged: done" in output, "damaged structs: 4 prints and gdb carried on: %s" % prints)
    if len(prints) == 4:
        check(prints[0].startswith("trm_session <unreadable: Cannot access memory"),
              "damaged session (0x41 bytes): %s" % prints[0])
        check(prints[1].startswith("trm_model <not initialised"), "zeroed model: %s" % prints[1])
        check(prints[2].startswith("trm_session <not initialised"), "session of a zeroed model: %s" % prints[2])
        check(prints[3].startswith("trm_session {batch 1,") and re.search(r"answer: <not decoded: ", output),
              "session whose model claims 16M tokens: printed, the answer not decoded: %s" % prints[3])
    if failures:
        print("---- gdb printed:\n" + output)
        return 1
    print("check-gdb: damaged and unset structs print as such")
    return 0


if __name__ == "__main__":
    sys.exit(main())
