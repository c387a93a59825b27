"""Tests of `trm data` (tools/trm/data*.c): python3 test_data.py --trm TRM --npydump DUMP --tmp DIR

Generates small Sudoku, maze and ARC sets and reads them back with numpy and with the tools'
own .npy reader (DUMP, tests/cli/test_data_npydump.c), checking the reference layout
(TRM-SPEC.md section 8), the puzzles themselves with checkers written here (a Sudoku solution
counter, BFS over mazes, an ARC encoder), augmentations, determinism, and that bad arguments and
bad inputs get one-line errors with exit status 2 (usage) or 1 (failure).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from collections import deque

import numpy as np

ARGS = None
FAILURES = []
CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILURES.append(what)
        print("FAIL: " + what, file=sys.stderr)
    return cond


def run(*args):
    proc = subprocess.run([ARGS.trm, "data", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def generate(*args):
    rc, out, err = run(*args)
    if rc != 0:
        raise SystemExit("trm data %s failed (%d): %s" % (" ".join(map(str, args)), rc, err))


def tmp(name):
    path = os.path.join(ARGS.tmp, name)
    shutil.rmtree(path, ignore_errors=True)
    return path


# ---- layout ----

FIELDS = ["pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
          "num_puzzle_identifiers", "total_groups", "mean_puzzle_examples", "total_puzzles", "sets"]
ARRAYS = ["inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices"]


def load_split(root, split):
    d = os.path.join(root, split)
    with open(os.path.join(d, "dataset.json")) as f:
        text = f.read()
    meta = json.loads(text)
    arrays = {k: np.load(os.path.join(d, "all__%s.npy" % k)) for k in ARRAYS}
    if os.path.exists(os.path.join(d, "ratings.npy")):
        arrays["ratings"] = np.load(os.path.join(d, "ratings.npy"))
    with open(os.path.join(d, "identifiers.json")) as f:
        ids = json.load(f)
    return {"meta": meta, "meta_text": text, "ids": ids, **arrays}


def check_with_own_reader(root):
    """Every .npy of the set read by the tools' reader equals what numpy reads."""
    files = []
    for split in ("train", "test"):
        d = os.path.join(root, split)
        files += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".npy")]
    proc = subprocess.run([ARGS.npydump, *files], capture_output=True, text=True)
    if not check(proc.returncode == 0, "%s: own reader refused a file: %s" % (root, proc.stderr.strip())):
        return
    lines = proc.stdout.splitlines()
    check(len(lines) == len(files), "%s: own reader printed %d lines for %d files" % (root, len(lines), len(files)))
    for line, path in zip(lines, files):
        head, _, values = line.partition(" : ")
        parts = head.split()
        arr = np.load(path)
        ndim = int(parts[2])
        shape = tuple(int(x) for x in parts[3:3 + ndim])
        got = np.array([int(v) for v in values.split()], dtype=np.int64) if values.strip() else np.zeros(0, np.int64)
        check(parts[0] == path and parts[1] == str(arr.dtype) and shape == arr.shape,
              "%s: own reader sees %s %s, numpy %s %s" % (path, parts[1], shape, arr.dtype, arr.shape))
        check(np.array_equal(got, arr.reshape(-1).astype(np.int64)), "%s: own reader's values differ" % path)


def check_layout(root, split, seq_len, vocab, num_ids):
    s = load_split(root, split)
    meta, name = s["meta"], "%s/%s" % (root, split)
    inputs, labels = s["inputs"], s["labels"]
    pidx, gidx, pids = s["puzzle_indices"], s["group_indices"], s["puzzle_identifiers"]
    check(list(meta.keys()) == FIELDS, "%s: dataset.json keys %s" % (name, list(meta.keys())))
    check(inputs.dtype == np.uint8 and labels.dtype == np.uint8, "%s: token dtypes %s %s" % (name, inputs.dtype, labels.dtype))
    for k in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
        check(s[k].dtype == np.int32 and s[k].ndim == 1, "%s: %s dtype %s ndim %d" % (name, k, s[k].dtype, s[k].ndim))
    n = inputs.shape[0]
    check(inputs.shape == (n, seq_len) and labels.shape == (n, seq_len), "%s: shapes %s %s" % (name, inputs.shape, labels.shape))
    check(inputs.max(initial=0) < vocab and labels.max(initial=0) < vocab, "%s: token beyond vocab %d" % (name, vocab))
    puzzles, groups = len(pidx) - 1, len(gidx) - 1
    check(pidx[0] == 0 and pidx[-1] == n and np.all(np.diff(pidx) > 0), "%s: puzzle_indices not 0..examples, increasing" % name)
    check(gidx[0] == 0 and gidx[-1] == puzzles and np.all(np.diff(gidx) > 0), "%s: group_indices not 0..puzzles, increasing" % name)
    check(len(pids) == puzzles and np.all((pids >= 0) & (pids < num_ids)), "%s: puzzle_identifiers" % name)
    expected = {"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": vocab, "seq_len": seq_len,
                "num_puzzle_identifiers": num_ids, "total_groups": groups, "total_puzzles": puzzles, "sets": ["all"]}
    for k, v in expected.items():
        check(meta[k] == v, "%s: dataset.json %s = %r, expected %r" % (name, k, meta[k], v))
    mean = n / puzzles if puzzles else 0.0
    check(isinstance(meta["mean_puzzle_examples"], float) and meta["mean_puzzle_examples"] == mean,
          "%s: mean_puzzle_examples %r, expected %r" % (name, meta["mean_puzzle_examples"], mean))
    # byte for byte what the reference's json.dump(metadata.model_dump()) writes
    check(s["meta_text"] == json.dumps(meta), "%s: dataset.json not in json.dump's form" % name)
    with open(os.path.join(root, "identifiers.json")) as f:
        top_ids = json.load(f)
    check(len(s["ids"]) == num_ids and s["ids"][0] == "<blank>" and s["ids"] == top_ids, "%s: identifiers.json" % name)
    return s


def same_files(a, b):
    for split in ("train", "test"):
        for f in sorted(os.listdir(os.path.join(a, split))):
            with open(os.path.join(a, split, f), "rb") as x, open(os.path.join(b, split, f), "rb") as y:
                if x.read() != y.read():
                    return False
    return True


# ---- Sudoku ----

def sudoku_count(grid, limit=2):
    """Solutions of a 9x9 grid (0 = blank), counted up to LIMIT: candidate sets, fewest first."""
    cells = [grid[i] for i in range(81)]
    rows = [set() for _ in range(9)]
    cols = [set() for _ in range(9)]
    boxes = [set() for _ in range(9)]
    for i, v in enumerate(cells):
        if v:
            r, c, b = i // 9, i % 9, (i // 27) * 3 + (i % 9) // 3
            if v in rows[r] or v in cols[c] or v in boxes[b]:
                return 0
            rows[r].add(v)
            cols[c].add(v)
            boxes[b].add(v)
    count = 0

    def solve():
        nonlocal count
        best, best_cands = None, None
        for i in range(81):
            if cells[i] == 0:
                r, c, b = i // 9, i % 9, (i // 27) * 3 + (i % 9) // 3
                cands = set(range(1, 10)) - rows[r] - cols[c] - boxes[b]
                if best is None or len(cands) < len(best_cands):
                    best, best_cands = i, cands
                    if len(cands) <= 1:
                        break
        if best is None:
            count += 1
            return count >= limit
        r, c, b = best // 9, best % 9, (best // 27) * 3 + (best % 9) // 3
        for v in sorted(best_cands):
            cells[best] = v
            rows[r].add(v)
            cols[c].add(v)
            boxes[b].add(v)
            done = solve()
            cells[best] = 0
            rows[r].discard(v)
            cols[c].discard(v)
            boxes[b].discard(v)
            if done:
                return True
        return False

    solve()
    return count


def valid_solution(g):
    g = np.asarray(g).reshape(9, 9)
    want = set(range(1, 10))
    return (all(set(g[r]) == want for r in range(9)) and all(set(g[:, c]) == want for c in range(9)) and
            all(set(g[r:r + 3, c:c + 3].reshape(-1)) == want for r in (0, 3, 6) for c in (0, 3, 6)))


def test_sudoku():
    root = tmp("sudoku")
    lo, hi = 24, 30
    generate("sudoku", "--count", 30, "--test-count", 6, "--givens", "%d-%d" % (lo, hi), "--seed", 7,
             "--augment", 2, "--out", root)
    for split, groups, per_group in (("train", 30, 3), ("test", 6, 1)):
        s = check_layout(root, split, 81, 11, 1)
        inputs, labels = s["inputs"].astype(int), s["labels"].astype(int)
        check(len(s["group_indices"]) - 1 == groups, "sudoku %s: %d groups" % (split, len(s["group_indices"]) - 1))
        check(np.all(np.diff(s["group_indices"]) == per_group), "sudoku %s: puzzles per group" % split)
        check(np.all(np.diff(s["puzzle_indices"]) == 1), "sudoku %s: one example per puzzle" % split)
        check(np.all(s["puzzle_identifiers"] == 0), "sudoku %s: identifiers" % split)
        check(inputs.min() >= 1 and labels.min() >= 2, "sudoku %s: pad or blank in the wrong place" % split)
        ratings = s["ratings"]
        check(ratings.dtype == np.int32 and ratings.shape == (len(inputs),) and ratings.min() > 0, "sudoku %s: ratings" % split)
        for e in range(len(inputs)):
            given = inputs[e] != 1
            puzzle = np.where(given, inputs[e] - 1, 0)
            solution = labels[e] - 1
            check(valid_solution(solution), "sudoku %s example %d: label is not a valid grid" % (split, e))
            check(np.array_equal(puzzle[given], solution[given]), "sudoku %s example %d: label disagrees with givens" % (split, e))
            check(lo <= given.sum() <= hi, "sudoku %s example %d: %d givens" % (split, e, given.sum()))
            check(sudoku_count(list(puzzle)) == 1, "sudoku %s example %d: not exactly one solution" % (split, e))
        for g in range(groups):  # augmented copies: same givens count and rating, another grid
            a, b = s["group_indices"][g], s["group_indices"][g + 1]
            check(len(set((inputs[a:b] != 1).sum(1))) == 1, "sudoku %s group %d: copies with other givens counts" % (split, g))
            check(len(set(ratings[a:b])) == 1, "sudoku %s group %d: copies rated differently" % (split, g))
            check(len({inputs[e].tobytes() for e in range(a, b)}) == b - a, "sudoku %s group %d: copies identical" % (split, g))
    check_with_own_reader(root)

    # determinism, seeds, and the first puzzles of a larger set
    again, other, more = tmp("sudoku_again"), tmp("sudoku_other"), tmp("sudoku_more")
    generate("sudoku", "--count", 30, "--test-count", 6, "--givens", "%d-%d" % (lo, hi), "--seed", 7, "--augment", 2, "--out", again)
    generate("sudoku", "--count=30", "--test-count=6", "--givens=%d-%d" % (lo, hi), "--seed=8", "--augment=2", "--out=" + other)
    generate("sudoku", "--count", 40, "--test-count", 6, "--givens", "%d-%d" % (lo, hi), "--seed", 7, "--augment", 2, "--out", more)
    check(same_files(root, again), "sudoku: the same seed gave different files")
    a, b = np.load(root + "/train/all__inputs.npy"), np.load(other + "/train/all__inputs.npy")
    check(not np.array_equal(a, b), "sudoku: seeds 7 and 8 gave the same puzzles")
    m = np.load(more + "/train/all__inputs.npy")
    check(np.array_equal(m[:len(a)], a), "sudoku: the first 30 of 40 puzzles differ from a set of 30")
    check(np.array_equal(np.load(more + "/test/all__inputs.npy"), np.load(root + "/test/all__inputs.npy")),
          "sudoku: the test split depends on --count")


# ---- mazes ----

WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5


def bfs(grid, start):
    n = grid.shape[0]
    dist = {start: 0}
    ways = {start: 1}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < n and 0 <= nc < n and grid[nr, nc] != WALL:
                if (nr, nc) not in dist:
                    dist[(nr, nc)] = dist[(r, c)] + 1
                    ways[(nr, nc)] = ways[(r, c)]
                    queue.append((nr, nc))
                elif dist[(nr, nc)] == dist[(r, c)] + 1:
                    ways[(nr, nc)] += ways[(r, c)]
    return dist, ways


def check_maze(inp, lab, size, min_path, where):
    g, l = inp.reshape(size, size), lab.reshape(size, size)
    check(set(np.unique(g)) <= {WALL, OPEN, START, GOAL}, "%s: input tokens %s" % (where, np.unique(g)))
    check((g == START).sum() == 1 and (g == GOAL).sum() == 1, "%s: not one S and one G" % where)
    check(np.all(g[0] == WALL) and np.all(g[-1] == WALL) and np.all(g[:, 0] == WALL) and np.all(g[:, -1] == WALL),
          "%s: open border" % where)
    check(np.all((l == g) | ((l == PATH) & (g == OPEN))), "%s: label differs from input beyond path marks" % where)
    s = tuple(np.argwhere(g == START)[0])
    goal = tuple(np.argwhere(g == GOAL)[0])
    dist, ways = bfs(g, s)
    if not check(goal in dist, "%s: G unreachable" % where):
        return
    d = dist[goal]
    check(d >= min_path, "%s: path %d shorter than %d" % (where, d, min_path))
    check(ways[goal] == 1, "%s: %d shortest paths" % (where, ways[goal]))
    marked = l == PATH
    check(marked.sum() == d - 1, "%s: %d cells marked, shortest path has %d inside" % (where, marked.sum(), d - 1))
    only_path = np.where(marked | (g == START) | (g == GOAL), OPEN, WALL)
    pd, _ = bfs(only_path, s)
    check(pd.get(goal) == d, "%s: marked cells do not join S to G in %d steps" % (where, d))


def dihedral(a, t):  # the reference's dataset/common.py numbering
    return [a, np.rot90(a, 1), np.rot90(a, 2), np.rot90(a, 3), np.fliplr(a), np.flipud(a), a.T,
            np.fliplr(np.rot90(a, 1))][t]


def test_maze():
    for size, braid, min_path in ((30, "0", 30), (15, "0.6", 12), (12, "1", 5)):
        root = tmp("maze_%d" % size)
        generate("maze", "--size", size, "--count", 12, "--test-count", 4, "--min-path", min_path, "--braid", braid,
                 "--seed", 3, "--augment", "--out", root)
        for split, per_group in (("train", 8), ("test", 1)):
            s = check_layout(root, split, size * size, 6, 1)
            check(np.all(np.diff(s["group_indices"]) == per_group), "maze %s: puzzles per group" % split)
            check(np.all(np.diff(s["puzzle_indices"]) == 1), "maze %s: one example per puzzle" % split)
            for e in range(len(s["inputs"])):
                check_maze(s["inputs"][e], s["labels"][e], size, min_path, "maze size %d %s example %d" % (size, split, e))
            if split == "train":
                for g in range(len(s["group_indices"]) - 1):
                    first = s["group_indices"][g]
                    base_in = s["inputs"][first].reshape(size, size)
                    base_lab = s["labels"][first].reshape(size, size)
                    for t in range(8):
                        check(np.array_equal(s["inputs"][first + t].reshape(size, size), dihedral(base_in, t)) and
                              np.array_equal(s["labels"][first + t].reshape(size, size), dihedral(base_lab, t)),
                              "maze %s group %d: copy %d is not dihedral transform %d" % (split, g, t, t))
        if braid == "0":  # a perfect maze: open cells form a tree (edges = vertices - 1, connected)
            g = np.load(root + "/test/all__inputs.npy")[0].reshape(size, size)
            open_ = g != WALL
            edges = (open_[:, 1:] & open_[:, :-1]).sum() + (open_[1:] & open_[:-1]).sum()
            dist, _ = bfs(g, tuple(np.argwhere(g == START)[0]))
            check(edges == open_.sum() - 1 and len(dist) == open_.sum(), "maze size %d: not a perfect maze" % size)
        else:
            loops = 0
            for inp in np.load(root + "/train/all__inputs.npy"):
                o = inp.reshape(size, size) != WALL
                loops += (o[:, 1:] & o[:, :-1]).sum() + (o[1:] & o[:-1]).sum() - (o.sum() - 1)
            check(loops > 0, "maze size %d braid %s: no loops" % (size, braid))
        check_with_own_reader(root)
    root, again, other = tmp("maze_30"), tmp("maze_again"), tmp("maze_other")
    generate("maze", "--size", 30, "--count", 12, "--test-count", 4, "--min-path", 30, "--braid", "0", "--seed", 3, "--augment", "--out", root)
    generate("maze", "--size", 30, "--count", 12, "--test-count", 4, "--min-path", 30, "--braid", "0", "--seed", 3, "--augment", "--out", again)
    generate("maze", "--size", 30, "--count", 12, "--test-count", 4, "--min-path", 30, "--braid", "0", "--seed", 4, "--augment", "--out", other)
    check(same_files(root, again), "maze: the same seed gave different files")
    check(not np.array_equal(np.load(root + "/train/all__inputs.npy"), np.load(other + "/train/all__inputs.npy")),
          "maze: seeds 3 and 4 gave the same mazes")
    plain = tmp("maze_plain")
    generate("maze", "--count", 5, "--out", plain)
    s = check_layout(plain, "train", 900, 6, 1)
    check(len(s["inputs"]) == 5 and np.all(np.diff(s["group_indices"]) == 1), "maze: without --augment one puzzle per group")
    check(len(load_split(plain, "test")["inputs"]) == 1, "maze: default --test-count of 5 is 1")


# ---- ARC ----

def encode(grid, r0, c0):
    """The reference's encoding: colour + 2 at (r0, c0), end-of-grid 1 below and right, 0 pad."""
    g = np.array(grid)
    canvas = np.zeros((30, 30), np.uint8)
    h, w = g.shape
    canvas[r0:r0 + h, c0:c0 + w] = g + 2
    if r0 + h < 30:
        canvas[r0 + h, c0:c0 + w] = 1
    if c0 + w < 30:
        canvas[r0:r0 + h, c0 + w] = 1
    return canvas.reshape(-1)


def random_grid(rng, h, w):
    return [[rng.randrange(10) for _ in range(w)] for _ in range(h)]


def test_arc():
    rng = random.Random(5)
    tasks, sols = {}, {}
    shapes = [((30, 30), (30, 30)), ((1, 1), (3, 2)), ((5, 30), (30, 5)), ((2, 7), (2, 7))]
    for t in range(4):
        name = "%08x" % rng.getrandbits(32)
        train = [{"input": random_grid(rng, *shapes[(t + k) % 4][0]), "output": random_grid(rng, *shapes[(t + k) % 4][1])}
                 for k in range(2 + t % 2)]
        test = [{"input": random_grid(rng, rng.randint(1, 30), rng.randint(1, 30))} for _ in range(1 + t % 2)]
        tasks[name] = {"train": train, "test": test}
        sols[name] = [random_grid(rng, rng.randint(1, 30), rng.randint(1, 30)) for _ in test]
    d = tmp("arc_json")
    os.makedirs(d)
    ch, so = os.path.join(d, "challenges.json"), os.path.join(d, "solutions.json")
    with open(ch, "w") as f:
        json.dump(tasks, f, indent=1)
    with open(so, "w") as f:
        json.dump(dict(reversed(list(sols.items()))), f)  # another order than the challenges
    root = tmp("arc")
    generate("arc", "--challenges", ch, "--solutions", so, "--out", root, "--seed", 11)
    names = list(tasks)
    train = check_layout(root, "train", 900, 12, len(names) + 1)
    test = check_layout(root, "test", 900, 12, len(names) + 1)
    check(train["ids"] == ["<blank>"] + names, "arc: identifiers.json %s" % train["ids"])
    for s, split in ((train, "train"), (test, "test")):
        check(np.array_equal(s["group_indices"], np.arange(len(names) + 1)), "arc %s: one puzzle per task" % split)
        check(np.array_equal(s["puzzle_identifiers"], np.arange(1, len(names) + 1)), "arc %s: identifiers" % split)
    shifted = 0
    for t, name in enumerate(names):
        a, b = train["puzzle_indices"][t], train["puzzle_indices"][t + 1]
        check(b - a == len(tasks[name]["train"]), "arc train task %d: %d examples" % (t, b - a))
        unshifted = 0
        for k, pair in enumerate(tasks[name]["train"]):
            inp, lab = train["inputs"][a + k], train["labels"][a + k]
            r0, c0 = np.argwhere(inp.reshape(30, 30) >= 2).min(0)
            check(np.array_equal(inp, encode(pair["input"], r0, c0)) and np.array_equal(lab, encode(pair["output"], r0, c0)),
                  "arc train task %d example %d: not the pair at offset (%d, %d)" % (t, k, r0, c0))
            unshifted += (r0, c0) == (0, 0)
            shifted += (r0, c0) != (0, 0)
        check(unshifted >= 1, "arc train task %d: every example shifted" % t)
        a, b = test["puzzle_indices"][t], test["puzzle_indices"][t + 1]
        check(b - a == len(tasks[name]["test"]), "arc test task %d: %d examples" % (t, b - a))
        for k, pair in enumerate(tasks[name]["test"]):
            check(np.array_equal(test["inputs"][a + k], encode(pair["input"], 0, 0)) and
                  np.array_equal(test["labels"][a + k], encode(sols[name][k], 0, 0)),
                  "arc test task %d example %d: not the test pair with its solution" % (t, k))
    check(shifted > 0, "arc: no train example shifted")
    check_with_own_reader(root)
    again = tmp("arc_again")
    generate("arc", "--challenges", ch, "--solutions", so, "--out", again, "--seed", 11)
    check(same_files(root, again), "arc: the same seed gave different files")

    # without solutions the test labels are the reference's dummy [[0]]
    nosol = tmp("arc_nosol")
    generate("arc", "--challenges", ch, "--out", nosol)
    labels = load_split(nosol, "test")["labels"]
    check(all(np.array_equal(l, encode([[0]], 0, 0)) for l in labels), "arc: dummy labels without --solutions")

    # bad inputs: exit 1, one line naming the file
    name0 = names[0]
    bad_challenges = {
        "truncated": json.dumps(tasks)[:-5],
        "not_an_object": "[1, 2]",
        "colour_10": json.dumps({"x": {"train": [{"input": [[10]], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "negative": json.dumps({"x": {"train": [{"input": [[-1]], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "float": json.dumps({"x": {"train": [{"input": [[1.5]], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "string_cell": json.dumps({"x": {"train": [{"input": [["1"]], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "ragged": json.dumps({"x": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "rows_31": json.dumps({"x": {"train": [{"input": [[1]] * 31, "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "cols_31": json.dumps({"x": {"train": [{"input": [[1] * 31], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "empty_grid": json.dumps({"x": {"train": [{"input": [], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "empty_row": json.dumps({"x": {"train": [{"input": [[]], "output": [[1]]}], "test": [{"input": [[1]]}]}}),
        "no_output": json.dumps({"x": {"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}}),
        "no_test": json.dumps({"x": {"train": [{"input": [[1]], "output": [[1]]}]}}),
        "no_tasks": "{}",
        "duplicate": '{"x": %s, "x": %s}' % (json.dumps(tasks[names[0]]), json.dumps(tasks[names[0]])),
        "trailing": json.dumps(tasks) + " []",
        "nul_name": '{"a\\u0000b": {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}}',
    }
    for case, text in bad_challenges.items():
        path = os.path.join(d, case + ".json")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run("arc", "--challenges", path, "--out", tmp("arc_bad"))
        check(rc == 1 and err.count("\n") == 1 and path in err, "arc bad challenges %s: rc %d, stderr %r" % (case, rc, err))
    bad_solutions = {
        "missing_task": json.dumps({k: v for k, v in sols.items() if k != name0}),
        "too_few": json.dumps({**sols, name0: []}),
        "too_many": json.dumps({**sols, name0: sols[name0] + [[[1]]]}),
        "unknown_task": json.dumps({**sols, "zzz": [[[1]]]}),
        "bad_grid": json.dumps({**sols, name0: [[[1, 2], [3]]] * len(sols[name0])}),
        "truncated": json.dumps(sols)[:-2],
    }
    for case, text in bad_solutions.items():
        path = os.path.join(d, "sol_" + case + ".json")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run("arc", "--challenges", ch, "--solutions", path, "--out", tmp("arc_bad"))
        check(rc == 1 and err.count("\n") == 1 and path in err, "arc bad solutions %s: rc %d, stderr %r" % (case, rc, err))
    rc, out, err = run("arc", "--challenges", os.path.join(d, "missing.json"), "--out", tmp("arc_bad"))
    check(rc == 1 and err.count("\n") == 1 and "missing.json" in err, "arc: missing file: rc %d %r" % (rc, err))

    # --identifiers: a trained set's names, augmented ones included, give each task's puzzles
    idfile = os.path.join(d, "identifiers.json")
    id_list = ["<blank>", "other|||t1|||0123456789", names[0], names[0] + "|||t1|||0918273645", names[1] + "|||t6|||0123456789",
               names[1], names[2] + "|||t7|||0987654321", names[3] + "|||t3|||0213456789", names[3] + "|||t4|||0123456798", names[2]]
    with open(idfile, "w") as f:
        json.dump(id_list, f)
    aug = tmp("arc_aug")
    generate("arc", "--challenges", ch, "--solutions", so, "--identifiers", idfile, "--out", aug)
    atrain = check_layout(aug, "train", 900, 12, len(id_list))
    atest = check_layout(aug, "test", 900, 12, len(id_list))
    check(atrain["ids"] == id_list, "arc --identifiers: identifiers.json is not the given list")
    for s, split in ((atrain, "train"), (atest, "test")):
        want_ids = [i for t in names for i, n in enumerate(id_list) if n.split("|||")[0] == t]
        check(list(s["puzzle_identifiers"]) == want_ids, "arc --identifiers %s: puzzle ids %s, expected %s" % (split, list(s["puzzle_identifiers"]), want_ids))
        check(list(np.diff(s["group_indices"])) == [2, 2, 2, 2], "arc --identifiers %s: puzzles per group" % split)
        for p, pid in enumerate(s["puzzle_identifiers"]):
            parts = id_list[pid].split("|||")
            tid = int(parts[1][1:]) if len(parts) == 3 else 0
            mapping = np.array([int(c) for c in parts[2]]) if len(parts) == 3 else np.arange(10)
            task_def = tasks[parts[0]]
            pairs = task_def["train"] if split == "train" else [{"input": x["input"], "output": y} for x, y in zip(task_def["test"], sols[parts[0]])]
            a = s["puzzle_indices"][p]
            for k, pair in enumerate(pairs):
                inp, lab = s["inputs"][a + k], s["labels"][a + k]
                r0, c0 = np.argwhere(inp.reshape(30, 30) >= 2).min(0)
                want_in = encode(dihedral(mapping[np.array(pair["input"])], tid), r0, c0)
                want_out = encode(dihedral(mapping[np.array(pair["output"])], tid), r0, c0)
                check(np.array_equal(inp, want_in) and np.array_equal(lab, want_out) and (split == "train" or (r0, c0) == (0, 0)),
                      "arc --identifiers %s puzzle %d (%s) example %d: not the augmented pair" % (split, p, id_list[pid], k))
    for case, ids in (("bad_transform", ["<blank>"] + names + [names[0] + "|||t8|||0123456789"]),
                      ("bad_perm", ["<blank>"] + names + [names[0] + "|||t1|||0123456788"]),
                      ("short_perm", ["<blank>"] + names + [names[0] + "|||t1|||012345678"]),
                      ("missing_task", ["<blank>"] + names[1:]),
                      ("not_strings", ["<blank>", 1])):
        path = os.path.join(d, "ids_" + case + ".json")
        with open(path, "w") as f:
            json.dump(ids, f)
        rc, out, err = run("arc", "--challenges", ch, "--identifiers", path, "--out", tmp("arc_bad"))
        check(rc == 1 and err.count("\n") == 1 and path in err, "arc bad identifiers %s: rc %d, stderr %r" % (case, rc, err))

    # random damage to a valid file: read (0) or refused in one line (1), never a crash
    text = json.dumps({k: tasks[k] for k in names[:2]}).encode()
    fuzz_rng = random.Random(9)
    path = os.path.join(d, "damaged.json")
    statuses = set()
    for trial in range(200):
        damaged = bytearray(text)
        if trial % 4 == 0:
            damaged = damaged[:fuzz_rng.randrange(len(damaged))]
        else:
            for _ in range(1 + trial % 3):
                damaged[fuzz_rng.randrange(len(damaged))] = fuzz_rng.choice(b'[]{},:"0123456789-.e \\\x00\xff')
        with open(path, "wb") as f:
            f.write(damaged)
        rc, out, err = run("arc", "--challenges", path, "--out", tmp("arc_bad"))
        statuses.add(rc)
        check(rc == 0 or (rc == 1 and err.count("\n") == 1 and path in err),
              "arc damaged file (trial %d): rc %d, stderr %r" % (trial, rc, err))
    check(1 in statuses, "arc damaged files: none refused")


# ---- arguments ----

def test_arguments():
    out = tmp("args")
    usage = [
        [], ["nosuch"], ["sudoku"], ["sudoku", "--out", out], ["sudoku", "--count", "5"],
        ["sudoku", "--count", "0", "--out", out], ["sudoku", "--count", "x", "--out", out],
        ["sudoku", "--count", "5 ", "--out", out], ["sudoku", "--count", "5", "--out", out, "--givens", "10-20"],
        ["sudoku", "--count", "5", "--out", out, "--givens", "30-20"], ["sudoku", "--count", "5", "--out", out, "--givens", "20-"],
        ["sudoku", "--count", "5", "--out", out, "--seed", "-1"], ["sudoku", "--count", "5", "--out", out, "--augment", "-1"],
        ["sudoku", "--count", "5", "--out", out, "--bogus", "1"], ["sudoku", "--count", "5", "--out", out, "stray"],
        ["sudoku", "--count"], ["sudoku", "--count", "5", "--out", out, "--seed", "99999999999999999999"],
        ["maze", "--count", "5", "--out", out, "--size", "3"], ["maze", "--count", "5", "--out", out, "--braid", "1.5"],
        ["maze", "--count", "5", "--out", out, "--braid", "nan"], ["maze", "--count", "5", "--out", out, "--augment=1"],
        ["maze", "--count", "5", "--out", out, "--size", "9", "--min-path", "100"], ["maze", "--out", out],
        ["arc", "--out", out], ["arc", "--challenges", "x.json"],
    ]
    for args in usage:
        rc, _, err = run(*args)
        check(rc == 2 and err.count("\n") == 1 and err.startswith("trm data"), "usage error %s: rc %d, stderr %r" % (args, rc, err))
    for args in (["--help"], ["sudoku", "--help"], ["maze", "--help"], ["arc", "--help"]):
        rc, text, _ = run(*args)
        check(rc == 0 and "usage: trm data" in text, "%s: rc %d" % (args, rc))
    # failures: status 1, one line
    blocker = os.path.join(ARGS.tmp, "a_file")
    with open(blocker, "w") as f:
        f.write("x")
    for args in (["sudoku", "--count", "2", "--out", blocker], ["sudoku", "--count", "2", "--out", blocker + "/sub"],
                 ["maze", "--count", "2", "--out", blocker], ["sudoku", "--count", "2", "--givens", "17-18", "--out", out],
                 ["maze", "--count", "2", "--size", "7", "--min-path", "17", "--out", out]):
        rc, _, err = run(*args)
        check(rc == 1 and err.count("\n") == 1 and err.startswith("trm: data"), "failure %s: rc %d, stderr %r" % (args, rc, err))


def test_arc_utf8():
    """Task names in raw UTF-8 arrive as they are; bytes that are not UTF-8 are refused, naming
    the file and the place, as the reference's json.load would refuse them."""
    task = b'{"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]], "output": [[4]]}]}'
    good = os.path.join(ARGS.tmp, "arc_utf8.json")
    with open(good, "wb") as f:
        f.write(b'{"t\xc3\xa2che": ' + task + b', "\xf0\x9f\xa7\xa9": ' + task + b"}")
    out = tmp("arc_utf8")
    rc, _, err = run("arc", "--challenges", good, "--out", out)
    if check(rc == 0, "arc: raw UTF-8 task names: rc %d, %r" % (rc, err)):
        with open(os.path.join(out, "identifiers.json"), encoding="utf-8") as f:
            check(json.load(f) == ["<blank>", "t\u00e2che", "\U0001F9E9"], "arc: UTF-8 names kept in identifiers.json")
    for bad in (b"t\xff", b"t\xc3", b"t\xc0\xaf", b"t\xed\xa0\x80", b"t\x80"):
        path = os.path.join(ARGS.tmp, "arc_bad_utf8.json")
        with open(path, "wb") as f:
            f.write(b'{"' + bad + b'": ' + task + b"}")
        rc, _, err = run("arc", "--challenges", path, "--out", tmp("arc_bad_utf8"))
        check(rc == 1 and err.count("\n") == 1 and path in err and "UTF-8" in err,
              "arc: name %r refused as invalid UTF-8: rc %d, %r" % (bad, rc, err))


# ---- a run that fails while writing ----

def test_failed_write():
    """A run that fails (or is killed) part way through writing a split must not leave a split
    that passes for complete: dataset.json, which every reader opens first, is written last,
    and no array is ever left half written under its own name."""
    out = tmp("failed_write")
    generate("sudoku", "--count", 20, "--test-count", 5, "--seed", 1, "--out", out)
    test_dir = os.path.join(out, "test")
    labels = os.path.join(test_dir, "all__labels.npy")
    os.remove(labels)
    os.mkdir(labels)  # the labels of the next run cannot be put there
    rc, _, err = run("sudoku", "--count", 20, "--test-count", 5, "--seed", 2, "--out", out)
    check(rc == 1 and err.count("\n") == 1 and "all__labels.npy" in err,
          "failed write: rc 1 and one line naming the file: rc %d, %r" % (rc, err))
    check(not os.path.exists(os.path.join(test_dir, "dataset.json")),
          "failed write: the unfinished split has no dataset.json (it would pass for a complete set "
          "with the new inputs and whatever labels were there)")
    leftovers = [f for f in os.listdir(test_dir) if f.endswith(".tmp")]
    check(not leftovers, "failed write: temporary files left behind: %s" % leftovers)
    # the train split, written before, is complete and is the new run's
    fresh = tmp("failed_write_ref")
    generate("sudoku", "--count", 20, "--test-count", 5, "--seed", 2, "--out", fresh)
    names = sorted(os.listdir(os.path.join(fresh, "train")))
    check(sorted(os.listdir(os.path.join(out, "train"))) == names and all(
        open(os.path.join(out, "train", f), "rb").read() == open(os.path.join(fresh, "train", f), "rb").read()
        for f in names), "failed write: the train split written before the failure is complete")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--trm", required=True)
    p.add_argument("--npydump", required=True)
    p.add_argument("--tmp", required=True)
    p.add_argument("--only", choices=["sudoku", "maze", "arc", "arc_utf8", "arguments", "failed_write"])
    ARGS = p.parse_args()
    os.makedirs(ARGS.tmp, exist_ok=True)
    for name, fn in (("sudoku", test_sudoku), ("maze", test_maze), ("arc", test_arc), ("arc_utf8", test_arc_utf8), ("arguments", test_arguments),
                     ("failed_write", test_failed_write)):
        if ARGS.only and ARGS.only != name:
            continue
        before = len(FAILURES)
        fn()
        print("trm data %s: %s" % (name, "ok" if len(FAILURES) == before else "%d FAILED" % (len(FAILURES) - before)))
    print("test_data: %d checks, %d failed" % (CHECKS, len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
