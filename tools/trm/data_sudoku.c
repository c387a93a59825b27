/* trm data sudoku: random 9x9 Sudoku puzzles with unique solutions.
 *
 * Each puzzle: a random complete grid (the solver filling an empty grid with digits tried in
 * random order), then its cells visited in random order, each clue removed unless another
 * solution appears, until the number of givens reaches a target drawn from --givens A-B (a
 * grid whose removals get stuck above B is thrown away and another drawn). A puzzle is rated by
 * the search effort of the exact solver (the nodes it visits proving the solution unique),
 * written to ratings.npy. Every puzzle has its own random stream derived from (seed, split,
 * index), so the first N puzzles of a larger set are the same N puzzles.
 *
 * Tokens as the reference: 1 blank, digit + 1 (labels: the solution's digits + 1); uint8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

enum { N = 9, CELLS = 81, ALL_DIGITS = 0x3FE /* bits 1..9 */ };
enum { STREAM_TRAIN = 1, STREAM_TEST = 2, MAX_TRIES = 1000 };

static int box_of[CELLS];

static void init_tables(void) {
  for (int c = 0; c < CELLS; c++) box_of[c] = (c / 27) * 3 + (c % 9) / 3;
}

static int popcount16(unsigned v) {
  int n = 0;
  for (; v; v &= v - 1) n++;
  return n;
}

/* ---- exact solver: bitmask candidates, minimum-remaining-values cell choice ---- */
typedef struct {
  unsigned row[N], col[N], box[N];  /* digits used, bits 1..9 */
  uint8_t grid[CELLS];
  unsigned allowed[CELLS];          /* digits a cell may take (to forbid one digit in a cell) */
  int empties[CELLS];
  int n_empty;
  long nodes;
  int solutions, limit;
  uint8_t first[CELLS];             /* the first solution found */
  data_rng *rng;                    /* digits in random order when set (filling a grid) */
} solver;

/* Loads GRID (0 = empty); false if the givens already clash. */
static bool solver_load(solver *s, const uint8_t *grid) {
  memset(s->row, 0, sizeof s->row);
  memset(s->col, 0, sizeof s->col);
  memset(s->box, 0, sizeof s->box);
  s->n_empty = 0;
  s->nodes = 0;
  s->solutions = 0;
  s->rng = NULL;
  s->limit = 2;
  for (int c = 0; c < CELLS; c++) {
    s->grid[c] = grid[c];
    s->allowed[c] = ALL_DIGITS;
    if (!grid[c]) {
      s->empties[s->n_empty++] = c;
      continue;
    }
    unsigned bit = 1u << grid[c];
    if ((s->row[c / 9] | s->col[c % 9] | s->box[box_of[c]]) & bit) return false;
    s->row[c / 9] |= bit;
    s->col[c % 9] |= bit;
    s->box[box_of[c]] |= bit;
  }
  return true;
}

/* Depth-first search over s->empties[depth..]; true once limit solutions were found. */
static bool search(solver *s, int depth) {
  if (depth == s->n_empty) {
    if (s->solutions++ == 0) memcpy(s->first, s->grid, CELLS);
    return s->solutions >= s->limit;
  }
  int best_i = -1, best_count = 10;
  unsigned best_mask = 0;
  for (int i = depth; i < s->n_empty; i++) {
    int c = s->empties[i];
    unsigned mask = ~(s->row[c / 9] | s->col[c % 9] | s->box[box_of[c]]) & s->allowed[c];
    int count = popcount16(mask);
    if (count < best_count) {
      best_count = count;
      best_i = i;
      best_mask = mask;
      if (count <= 1) break;
    }
  }
  if (best_count == 0) return false;
  int c = s->empties[best_i];
  s->empties[best_i] = s->empties[depth];
  s->empties[depth] = c;
  int digits[9], n = 0;
  for (int d = 1; d <= 9; d++)
    if (best_mask & (1u << d)) digits[n++] = d;
  if (s->rng) data_rng_shuffle(s->rng, digits, n);
  int r = c / 9, col = c % 9, b = box_of[c];
  bool done = false;
  for (int k = 0; k < n && !done; k++) {
    unsigned bit = 1u << digits[k];
    s->grid[c] = (uint8_t)digits[k];
    s->row[r] |= bit;
    s->col[col] |= bit;
    s->box[b] |= bit;
    s->nodes++;
    done = search(s, depth + 1);
    s->row[r] &= ~bit;
    s->col[col] &= ~bit;
    s->box[b] &= ~bit;
  }
  s->grid[c] = 0;
  /* put the cell back where it was so callers' order is unchanged */
  s->empties[depth] = s->empties[best_i];
  s->empties[best_i] = c;
  return done;
}

/* Number of solutions of PUZZLE, counting up to LIMIT; the nodes searched in *NODES. */
static int count_solutions(solver *s, const uint8_t *puzzle, int limit, long *nodes) {
  if (!solver_load(s, puzzle)) return 0;
  s->limit = limit;
  search(s, 0);
  if (nodes) *nodes = s->nodes;
  return s->solutions;
}

static void random_full_grid(solver *s, data_rng *rng, uint8_t *out) {
  uint8_t empty[CELLS] = {0};
  solver_load(s, empty);
  s->rng = rng;
  s->limit = 1;
  search(s, 0);
  memcpy(out, s->first, CELLS);
}

/* Removes clues from SOLUTION (in random order) while the solution stays unique, stopping at
 * TARGET givens. Returns the givens left. */
static int remove_clues(solver *s, data_rng *rng, const uint8_t *solution, int target, uint8_t *puzzle) {
  memcpy(puzzle, solution, CELLS);
  int order[CELLS];
  for (int c = 0; c < CELLS; c++) order[c] = c;
  data_rng_shuffle(rng, order, CELLS);
  int givens = CELLS;
  for (int k = 0; k < CELLS && givens > target; k++) {
    int c = order[k];
    int digit = puzzle[c];
    puzzle[c] = 0;
    /* unique still iff no solution has another digit in this cell */
    solver_load(s, puzzle);
    s->allowed[c] = ALL_DIGITS & ~(1u << digit);
    s->limit = 1;
    search(s, 0);
    if (s->solutions > 0) puzzle[c] = (uint8_t)digit;
    else givens--;
  }
  return givens;
}

/* The reference's augmentation: digit permutation, band/stack shuffles, row/column shuffles
 * within them, and a transpose half the time, applied alike to puzzle and solution. */
static void shuffle_sudoku(data_rng *rng, const uint8_t *in_puzzle, const uint8_t *in_solution,
                           uint8_t *out_puzzle, uint8_t *out_solution) {
  int digit_map[10] = {0};
  int digits[9];
  for (int i = 0; i < 9; i++) digits[i] = i + 1;
  data_rng_shuffle(rng, digits, 9);
  for (int i = 0; i < 9; i++) digit_map[i + 1] = digits[i];
  bool transpose = data_rng_below(rng, 2) == 1;
  int row_perm[9], col_perm[9];
  for (int axis = 0; axis < 2; axis++) {
    int *perm = axis ? col_perm : row_perm;
    int bands[3] = {0, 1, 2};
    data_rng_shuffle(rng, bands, 3);
    for (int b = 0; b < 3; b++) {
      int inner[3] = {0, 1, 2};
      data_rng_shuffle(rng, inner, 3);
      for (int k = 0; k < 3; k++) perm[b * 3 + k] = bands[b] * 3 + inner[k];
    }
  }
  for (int i = 0; i < 9; i++)
    for (int j = 0; j < 9; j++) {
      int r = row_perm[i], c = col_perm[j];
      int src = transpose ? c * 9 + r : r * 9 + c;
      out_puzzle[i * 9 + j] = (uint8_t)digit_map[in_puzzle[src]];
      out_solution[i * 9 + j] = (uint8_t)digit_map[in_solution[src]];
    }
}

static void to_tokens(const uint8_t *digits, uint8_t *tokens) {
  for (int c = 0; c < CELLS; c++) tokens[c] = (uint8_t)(digits[c] + 1);
}

typedef struct {
  int64_t count, test_count, givens_lo, givens_hi, augment;
  uint64_t seed;
  const char *out;
} sudoku_options;

/* Builds one split; returns 0 or 1 (error printed). */
static int build_split(const sudoku_options *o, int64_t count, int stream, int augment, data_split *split) {
  solver s;
  uint8_t solution[CELLS], puzzle[CELLS], aug_puzzle[CELLS], aug_solution[CELLS];
  uint8_t in_tokens[CELLS], label_tokens[CELLS];
  for (int64_t i = 0; i < count; i++) {
    data_rng rng;
    data_rng_seed(&rng, o->seed, (uint64_t)stream << 40 | (uint64_t)i);
    int tries = 0;
    for (;;) {
      if (++tries > MAX_TRIES) {
        fprintf(stderr,
                "trm: data sudoku: no puzzle with at most %lld givens after %d random grids; raise the "
                "upper end of --givens\n",
                (long long)o->givens_hi, MAX_TRIES);
        return 1;
      }
      random_full_grid(&s, &rng, solution);
      int target = (int)o->givens_lo + (int)data_rng_below(&rng, (uint32_t)(o->givens_hi - o->givens_lo + 1));
      if (remove_clues(&s, &rng, solution, target, puzzle) <= o->givens_hi) break;
    }
    long nodes = 0;
    if (count_solutions(&s, puzzle, 2, &nodes) != 1) {
      fprintf(stderr, "trm: data sudoku: internal error: puzzle %lld is not unique\n", (long long)i);
      return 1;
    }
    to_tokens(puzzle, in_tokens);
    to_tokens(solution, label_tokens);
    data_split_add_example(split, in_tokens, label_tokens, nodes);
    data_split_end_puzzle(split, 0);
    for (int k = 0; k < augment; k++) {
      shuffle_sudoku(&rng, puzzle, solution, aug_puzzle, aug_solution);
      to_tokens(aug_puzzle, in_tokens);
      to_tokens(aug_solution, label_tokens);
      data_split_add_example(split, in_tokens, label_tokens, nodes);  /* same puzzle, same rating */
      data_split_end_puzzle(split, 0);
    }
    data_split_end_group(split);
  }
  return 0;
}

static const char sudoku_help[] =
    "usage: trm data sudoku --count N --out DIR [--givens A-B] [--seed S] [--test-count N] [--augment K]\n"
    "  --count N       puzzles in the train split (1 to 100000000)\n"
    "  --out DIR       output folder (DIR/train, DIR/test; created if missing)\n"
    "  --givens A-B    clues left per puzzle, 17 <= A <= B <= 81 (default 22-30)\n"
    "  --seed S        random seed, 0 to 2^64-1 (default 0); the same seed gives identical files\n"
    "  --test-count N  puzzles in the test split (default: count / 10, at least 1)\n"
    "  --augment K     K shuffled copies of each train puzzle in its group (default 0)\n"
    "Each puzzle has exactly one solution; ratings.npy holds the solver's search nodes.\n";

static bool sudoku_takes_value(const char *flag) { return strcmp(flag, "--help") != 0; }

int data_sudoku(int argc, char **argv) {
  sudoku_options o = {.count = -1, .test_count = -1, .givens_lo = 22, .givens_hi = 30, .augment = 0,
                      .seed = 0, .out = NULL};
  data_args args = {.argc = argc, .argv = argv, .index = 1, .cmd = "trm data sudoku"};
  int r;
  while ((r = data_args_next(&args, sudoku_takes_value)) == 1) {
    const char *f = args.flag;
    bool ok = true;
    if (strcmp(f, "--help") == 0) {
      fputs(sudoku_help, stdout);
      return 0;
    } else if (strcmp(f, "--count") == 0) ok = data_parse_int(&args, 1, 100000000, &o.count);
    else if (strcmp(f, "--test-count") == 0) ok = data_parse_int(&args, 0, 100000000, &o.test_count);
    else if (strcmp(f, "--givens") == 0) ok = data_parse_range(&args, 17, 81, &o.givens_lo, &o.givens_hi);
    else if (strcmp(f, "--augment") == 0) ok = data_parse_int(&args, 0, 1000, &o.augment);
    else if (strcmp(f, "--seed") == 0) ok = data_parse_seed(&args, &o.seed);
    else if (strcmp(f, "--out") == 0) o.out = args.value;
    else return data_usage_error(args.cmd, "unknown option '%s'", f);
    if (!ok) return 2;
  }
  if (r < 0) return 2;
  if (o.count < 0) return data_usage_error(args.cmd, "--count is required");
  if (!o.out || !o.out[0]) return data_usage_error(args.cmd, "--out is required");
  if (o.test_count < 0) o.test_count = o.count / 10 > 0 ? o.count / 10 : 1;
  if ((double)o.count * (double)(o.augment + 1) > 2e8)
    return data_usage_error(args.cmd, "--count times (--augment + 1) is above 200000000");

  if (data_make_dir(o.out)) return 1;  /* fail before the work, not after */
  init_tables();
  static const char *const names[] = {"<blank>"};
  data_meta meta = {.vocab_size = 11, .num_puzzle_identifiers = 1, .identifier_names = names};
  data_split train, test;
  data_split_init(&train, CELLS, true);
  data_split_init(&test, CELLS, true);
  int rc = build_split(&o, o.count, STREAM_TRAIN, (int)o.augment, &train);
  if (!rc) rc = build_split(&o, o.test_count, STREAM_TEST, 0, &test);
  if (!rc) rc = data_split_write(&train, o.out, "train", &meta);
  if (!rc) rc = data_split_write(&test, o.out, "test", &meta);
  if (!rc) rc = data_write_identifiers(o.out, &meta);
  data_split_free(&train);
  data_split_free(&test);
  return rc;
}
