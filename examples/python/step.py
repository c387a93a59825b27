#!/usr/bin/env python3
"""Step through a Tiny Recursive Model with the trm Python binding.

    python3 examples/python/step.py [MODEL] [--halt fixed|q] [--max-steps N] [--tokens T ...]

After every supervision step it prints the decoded answer (a '*' marks a position that changed
since the step before), the mean and lowest confidence and q_halt; at the end, a text chart of
the mean and lowest confidence per step. Without --tokens it makes up a puzzle (token i is
1 + i mod (vocab-1), as examples/c/step.c does). MODEL defaults to models/demo.safetensors.
"""
import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
try:
    import trm
except ModuleNotFoundError as e:
    if e.name != "trm":
        raise
    sys.path.insert(0, str(REPO / "python"))  # run from the source tree without installing
    import trm

BLOCKS = " ▏▎▍▌▋▊▉█"  # eighths of a character cell
WIDTH = 40  # characters for a confidence of 1.0


def bar(value, width=WIDTH):
    """value in [0, 1] as a bar of block characters, to an eighth of a cell."""
    eighths = round(min(max(value, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


def main():
    default_model = Path("models/demo.safetensors")
    if not default_model.exists():
        default_model = REPO / "models" / "demo.safetensors"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=str(default_model), help="model file (.safetensors)")
    parser.add_argument("--halt", choices=("fixed", "q"), default="fixed", help="halting rule")
    parser.add_argument("--max-steps", type=int, default=None, help="steps before halting (model's default)")
    parser.add_argument("--tokens", type=int, nargs="+", help="the puzzle: seq_len token ids")
    args = parser.parse_args()

    try:
        model = trm.Model(args.model)
    except trm.Error as e:
        sys.exit(f"step.py: loading {args.model}: {e}")
    with model:
        c = model.config
        seq_len, vocab = c["seq_len"], c["vocab_size"]
        if args.tokens is None:
            tokens = [1 + i % max(vocab - 1, 1) for i in range(seq_len)]
        else:
            tokens = args.tokens
        with model.session(batch=1, max_steps=args.max_steps, halt=args.halt) as session:
            try:
                session.set_input(0, tokens)
            except trm.InvalidArgument as e:
                sys.exit(f"step.py: the puzzle: {e}")
            print(
                f"model {args.model}: seq_len {seq_len}, vocab {vocab}, H_cycles {c['H_cycles']} x "
                f"L_cycles {c['L_cycles']}, up to {session.max_steps} steps, halt {args.halt!r} "
                f"(libtrm {trm.version()}, {model.isa})"
            )
            print("input    " + "".join(f" {t:2d} " for t in tokens))

            history = []  # (step, mean confidence, min confidence)
            previous = None
            for ev in session.refine(unit="step"):
                answer, confidence = session.answer(0)
                q_halt, _ = session.q(0)
                marks = "".join(
                    f" {a:2d}{'*' if previous is not None and a != p else ' '}"
                    for a, p in zip(answer, previous if previous is not None else answer)
                )
                mean, low = float(confidence.mean()), float(confidence.min())
                print(f"step {ev.step:<4d}{marks}  confidence mean {mean:.3f} min {low:.3f}  q_halt {q_halt:+.3f}")
                history.append((ev.step, mean, low))
                previous = answer

            state, steps = session.slot_state(0)
            print(f"{state} after {steps} steps")

    print("\nconfidence per step (mean, then min; full bar = 1.0)")
    for step, mean, low in history:
        print(f"step {step:3d} mean |{bar(mean)}| {mean:.3f}")
        print(f"         min  |{bar(low)}| {low:.3f}")


if __name__ == "__main__":
    main()
