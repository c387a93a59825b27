/* trm solve MODEL [INPUT|-]: runs one puzzle and shows the answer after every unit of the
 * recursion (supervision step, H-cycle or network call): the grid with the cells that changed
 * since the last answer shown, the per-cell confidence, and the halting head's q values. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

static const char *const CMD = "solve";

static const char usage[] =
    "usage: trm solve MODEL [INPUT|-] [options]\n"
    "\n"
    "Solves one puzzle read from INPUT (standard input when it is '-' or absent) and shows the\n"
    "answer after every unit of the recursion: the grid with the cells that changed since the\n"
    "answer shown before (at the first, those that differ from the input), a confidence digit per\n"
    "cell (0-9: tenths of the answer's softmax probability), and q_halt / q_continue.\n"
    "\n"
    "Input formats:\n"
    "  sudoku   81 cells, digits 1-9 and '.' or '0' for blanks; whitespace, '|', '+', '-' ignored\n"
    "  maze     rows of '#' (wall), ' ' (open), 'S', 'G', 'o' (path), at most the model's\n"
    "           square canvas (30x30 for seq_len 900)\n"
    "  arc      rows of colours 0-9 (spaces and commas between them ignored); at most 30x30\n"
    "  raw      seq_len token ids separated by whitespace or commas\n"
    "\n"
    "options:\n"
    "  --task sudoku|maze|arc|raw  the input format (default: from the model's seq_len and\n"
    "                              vocab_size: 81/11 sudoku, 900/6 (or any square)/6 maze,\n"
    "                              900/12 arc, else raw)\n"
    "  --unit step|cycle|call      show the answer after every supervision step (default),\n"
    "                              H-cycle, or network call\n"
    "  --max-steps N               supervision steps at most (default: the model's halt_max_steps)\n"
    "  --halt fixed|q              stop after max steps (default), or also once q_halt > 0\n"
    "  --puzzle-id N               row of the puzzle-embedding table (default 0)\n"
    "  --threads N                 worker threads, 0 = one per CPU (default 1)\n"
    "  --json                      one JSON object per unit on standard output, nothing else\n";

static const char *const unit_names[] = {"call", "cycle", "step", NULL};
static const char *const halt_names[] = {"fixed", "q", NULL};

typedef struct {
  const char *model_path, *input_path;
  int task;            /* -1: from the model */
  int unit;            /* trm_yield */
  int64_t max_steps;   /* 0: the model's */
  int halt;            /* trm_halt */
  int64_t threads, puzzle_id;
  bool json;
} solve_options;

/* Returns -1 to go on, else the exit status. */
static int parse_options(int argc, char **argv, solve_options *o) {
  memset(o, 0, sizeof *o);
  o->task = -1;
  o->unit = TRM_YIELD_STEP;
  o->halt = TRM_HALT_FIXED;
  o->threads = 1;
  cli_args args;
  cli_args_init(&args, argc, argv);
  const char *opt, *value;
  int kind;
  while ((kind = cli_args_next(&args, &opt)) != 0) {
    if (kind == 2) {
      if (!o->model_path) o->model_path = opt;
      else if (!o->input_path) o->input_path = opt;
      else return cli_usage_error(CMD, "unexpected argument '%s'", opt);
      continue;
    }
    if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
      fputs(usage, stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(opt, "--json") == 0) {
      if (!cli_args_no_value(&args, CMD, opt)) return CLI_EXIT_USAGE;
      o->json = true;
      continue;
    }
    bool known = strcmp(opt, "--task") == 0 || strcmp(opt, "--unit") == 0 || strcmp(opt, "--max-steps") == 0 ||
                 strcmp(opt, "--halt") == 0 || strcmp(opt, "--threads") == 0 || strcmp(opt, "--puzzle-id") == 0;
    if (!known) return cli_usage_error(CMD, "unknown option '%s'", opt);
    if (!(value = cli_args_value(&args, CMD, opt))) return CLI_EXIT_USAGE;
    if (strcmp(opt, "--task") == 0) {
      if ((o->task = cli_parse_choice(CMD, opt, value, cli_task_names)) < 0) return CLI_EXIT_USAGE;
    } else if (strcmp(opt, "--unit") == 0) {
      if ((o->unit = cli_parse_choice(CMD, opt, value, unit_names)) < 0) return CLI_EXIT_USAGE;
    } else if (strcmp(opt, "--halt") == 0) {
      if ((o->halt = cli_parse_choice(CMD, opt, value, halt_names)) < 0) return CLI_EXIT_USAGE;
    } else if (strcmp(opt, "--max-steps") == 0) {
      if (!cli_parse_int(CMD, opt, value, 1, 1000000, &o->max_steps)) return CLI_EXIT_USAGE;
    } else if (strcmp(opt, "--threads") == 0) {
      if (!cli_parse_int(CMD, opt, value, 0, 4096, &o->threads)) return CLI_EXIT_USAGE;
    } else {
      if (!cli_parse_int(CMD, opt, value, 0, INT32_MAX, &o->puzzle_id)) return CLI_EXIT_USAGE;
    }
  }
  if (!o->model_path) return cli_usage_error(CMD, "missing MODEL");
  if (!o->input_path) o->input_path = "-";
  return -1;
}

/* ---- showing an answer ---- */

typedef struct {
  cli_task task;
  const cli_puzzle *puzzle;
  bool colour;
  int rows, cols;   /* the region shown */
  int stride;       /* tokens per row of the canvas */
  int raw_width;    /* characters of one raw id */
} view;

static const char *const HIGHLIGHT = "\033[1;30;43m"; /* bold black on yellow */
static const char *const RESET = "\033[0m";

/* The token index of cell (r, c), or -1 outside the sequence. */
static long cell_index(const view *v, int r, int c) {
  long i = (long)r * v->stride + c;
  return (size_t)i < v->puzzle->n ? i : -1;
}

/* The region shown: sudoku 9x9, raw its rows, maze the input's size, ARC the input's size with
 * its end-of-grid markers, grown to take in every non-padding token of the answer. */
static void fit_region(view *v, const int32_t *answer) {
  v->rows = v->puzzle->rows;
  v->cols = v->puzzle->cols;
  if (v->task != TASK_ARC) return;
  if (v->rows < GRID_SIDE) v->rows++;
  if (v->cols < GRID_SIDE) v->cols++;
  for (int r = 0; r < GRID_SIDE; r++)
    for (int c = 0; c < GRID_SIDE; c++)
      if (answer[r * GRID_SIDE + c] != 0) {
        if (r + 1 > v->rows) v->rows = r + 1;
        if (c + 1 > v->cols) v->cols = c + 1;
      }
}

static int confidence_digit(float p) {
  int d = (int)floorf(p * 10.0f);
  return d < 0 ? 0 : d > 9 ? 9 : d;
}

/* Sudoku: the rule between bands, under the answer's cells (with markers) and the confidence's. */
static const char SUDOKU_RULE[] = "------+-------+-------";
static const char SUDOKU_CONF_RULE[] = "---+---+---";

/* One row of the answer: each cell its character (or id) and a change marker. */
static void print_answer_row(const view *v, int r, const int32_t *answer, const int32_t *previous) {
  for (int c = 0; c < v->cols; c++) {
    long i = cell_index(v, r, c);
    if (v->task == TASK_SUDOKU && (c == 3 || c == 6)) fputs("| ", stdout);
    if (i < 0) {
      printf("%*s", v->task == TASK_RAW ? v->raw_width + 1 : 2, "");
      continue;
    }
    bool changed = answer[i] != previous[i];
    if (changed && v->colour) fputs(HIGHLIGHT, stdout);
    if (v->task == TASK_RAW) printf("%*d", v->raw_width, (int)answer[i]);
    else putchar(cli_token_char(v->task, answer[i]));
    if (changed && v->colour) fputs(RESET, stdout);
    putchar(changed && !v->colour ? '*' : ' ');
  }
}

static void print_confidence_row(const view *v, int r, const float *confidence) {
  for (int c = 0; c < v->cols; c++) {
    long i = cell_index(v, r, c);
    if (v->task == TASK_SUDOKU && (c == 3 || c == 6)) putchar('|');
    if (i < 0) {
      putchar(' ');
      continue;
    }
    int d = confidence_digit(confidence[i]);
    if (v->colour) printf("\033[%dm%d%s", d >= 9 ? 32 : d >= 5 ? 33 : 31, d, RESET);
    else putchar('0' + d);
  }
}

static void print_grids(const view *v, const int32_t *answer, const int32_t *previous, const float *confidence) {
  for (int r = 0; r < v->rows; r++) {
    if (v->task == TASK_SUDOKU && (r == 3 || r == 6)) printf("  %s   %s\n", SUDOKU_RULE, SUDOKU_CONF_RULE);
    fputs("  ", stdout);
    print_answer_row(v, r, answer, previous);
    fputs("   ", stdout);
    print_confidence_row(v, r, confidence);
    putchar('\n');
  }
}

/* A Sudoku answer is a solution when every cell is a digit, rows, columns and boxes hold each
 * digit once, and the givens are kept. */
static bool sudoku_solved(const int32_t *answer, const int32_t *input) {
  for (int i = 0; i < 81; i++) {
    if (answer[i] < 2 || answer[i] > 10) return false;
    if (input[i] >= 2 && input[i] != answer[i]) return false;
  }
  for (int unit = 0; unit < 27; unit++) {
    int seen = 0;
    for (int k = 0; k < 9; k++) {
      int r, c;
      if (unit < 9) r = unit, c = k;
      else if (unit < 18) r = k, c = unit - 9;
      else r = (unit - 18) / 3 * 3 + k / 3, c = (unit - 18) % 3 * 3 + k % 3;
      seen |= 1 << answer[r * 9 + c];
    }
    if (seen != 0x7fc) return false; /* bits 2..10 */
  }
  return true;
}

static const char *event_name(trm_event_kind k) {
  switch (k) {
  case TRM_EVENT_LATENT: return "latent";
  case TRM_EVENT_ANSWER: return "answer";
  case TRM_EVENT_STEP: return "step";
  default: return "none";
  }
}

static void print_json_unit(const view *v, const trm_event *ev, float q_halt, float q_continue, bool halted,
                            const int32_t *answer, const float *confidence, char *grid_text) {
  printf("{\"step\":%lld,\"cycle\":%d,\"call\":%d,\"kind\":\"%s\",\"calls\":%lld,\"q_halt\":", (long long)ev->step,
         (int)ev->cycle, (int)ev->call, event_name(ev->kind), (long long)ev->calls);
  cli_json_number(stdout, q_halt);
  printf(",\"q_continue\":");
  cli_json_number(stdout, q_continue);
  printf(",\"halted\":%s,\"answer\":[", halted ? "true" : "false");
  for (size_t i = 0; i < v->puzzle->n; i++) printf("%s%d", i ? "," : "", (int)answer[i]);
  printf("],\"grid\":");
  cli_grid_text(v->task, v->puzzle, answer, grid_text);
  cli_json_string(stdout, grid_text);
  printf(",\"confidence\":[");
  for (size_t i = 0; i < v->puzzle->n; i++) {
    if (i) putchar(',');
    cli_json_number(stdout, confidence[i]);
  }
  printf("]}\n");
}

int cmd_solve(int argc, char **argv) {
  solve_options o;
  int rc = parse_options(argc, argv, &o);
  if (rc >= 0) return rc;

  trm_model *m = cli_load_model(CMD, o.model_path);
  if (!m) return CLI_EXIT_FAIL;
  int64_t seq_len = cli_model_int(m, "seq_len"), vocab = cli_model_int(m, "vocab_size");
  int64_t model_steps = cli_model_int(m, "halt_max_steps"), n_ids = cli_model_int(m, "num_puzzle_identifiers");
  int64_t h_cycles = cli_model_int(m, "H_cycles"), l_cycles = cli_model_int(m, "L_cycles");
  bool halt_on_halt_only = cli_model_int(m, "no_ACT_continue") != 0;
  cli_task task = o.task >= 0 ? (cli_task)o.task : cli_task_for(seq_len, vocab);
  int64_t max_steps = o.max_steps ? o.max_steps : model_steps;

  char err[512];
  size_t text_len = 0;
  char *text = NULL;
  cli_puzzle puzzle = {0};
  trm_session *session = NULL;
  int32_t *answer = NULL, *previous = NULL;
  float *confidence = NULL;
  char *grid_text = NULL;
  rc = CLI_EXIT_FAIL;

  const char *input_name = strcmp(o.input_path, "-") == 0 ? "standard input" : o.input_path;
  if (o.puzzle_id >= n_ids) {
    cli_fail(CMD, "--puzzle-id %lld is outside the model's [0, %lld)", (long long)o.puzzle_id, (long long)n_ids);
    goto done;
  }
  if (!cli_task_fits(task, seq_len, vocab, err, sizeof err)) {
    cli_fail(CMD, "%s: %s", o.model_path, err);
    goto done;
  }
  if (strcmp(o.input_path, "-") == 0 && isatty(STDIN_FILENO))
    fprintf(stderr, "trm solve: reading the puzzle from the terminal; end it with Ctrl-D\n");
  if (!(text = cli_read_file(o.input_path, 1 << 20, &text_len, err, sizeof err))) {
    cli_fail(CMD, "%s", err);
    goto done;
  }
  if (!cli_puzzle_parse(task, text, text_len, seq_len, vocab, &puzzle, err, sizeof err)) {
    cli_fail(CMD, "%s: %s", input_name, err);
    goto done;
  }
  answer = malloc(puzzle.n * sizeof *answer);
  previous = malloc(puzzle.n * sizeof *previous);
  confidence = malloc(puzzle.n * sizeof *confidence);
  grid_text = malloc(cli_grid_text_size(task, puzzle.n));
  if (!answer || !previous || !confidence || !grid_text) {
    cli_fail(CMD, "out of memory");
    goto done;
  }
  memcpy(previous, puzzle.tokens, puzzle.n * sizeof *previous);

  trm_status st = trm_session_create(m, 1, &session);
  if (st == TRM_OK) st = trm_session_set_option(session, TRM_OPT_YIELD, o.unit);
  if (st == TRM_OK) st = trm_session_set_option(session, TRM_OPT_MAX_STEPS, max_steps);
  if (st == TRM_OK) st = trm_session_set_option(session, TRM_OPT_HALT, o.halt);
  if (st == TRM_OK) st = trm_session_set_option(session, TRM_OPT_THREADS, o.threads);
  if (st == TRM_OK) st = trm_session_set_input(session, 0, puzzle.tokens, puzzle.n, (int32_t)o.puzzle_id);
  if (st != TRM_OK) {
    cli_fail(CMD, "%s: %s", trm_status_string(st), trm_last_error());
    goto done;
  }

  const char *no_colour = getenv("NO_COLOR");
  view v = {task, &puzzle, !o.json && isatty(STDOUT_FILENO) && (!no_colour || !*no_colour), 0, 0, 0, 0};
  v.stride = task == TASK_MAZE || task == TASK_ARC ? puzzle.side : puzzle.cols;
  for (int64_t top = vocab - 1; top > 0; top /= 10) v.raw_width++;
  if (v.raw_width == 0) v.raw_width = 1;

  if (!o.json) {
    printf("model %s: %s puzzle, seq_len %lld, vocab %lld; up to %lld steps of %lld cycles x %lld calls, halt %s\n",
           o.model_path, cli_task_names[task], (long long)seq_len, (long long)vocab, (long long)max_steps,
           (long long)h_cycles, (long long)(l_cycles + 1), halt_names[o.halt]);
    printf("input (%s):\n", input_name);
    v.rows = puzzle.rows;
    v.cols = puzzle.cols;
    if (task == TASK_ARC) fit_region(&v, puzzle.tokens);
    for (int r = 0; r < v.rows; r++) {
      if (task == TASK_SUDOKU && (r == 3 || r == 6)) printf("  %s\n", SUDOKU_RULE);
      fputs("  ", stdout);
      print_answer_row(&v, r, puzzle.tokens, puzzle.tokens);
      putchar('\n');
    }
  }

  trm_event ev = TRM_EVENT_INIT;
  float q_halt = 0, q_continue = 0;
  int64_t steps_done = 0;
  while ((st = trm_refine(session, &ev)) == TRM_OK) {
    trm_slot_state state;
    if (trm_session_answer(session, 0, answer, confidence, puzzle.n) != TRM_OK ||
        trm_session_q(session, 0, &q_halt, &q_continue) != TRM_OK ||
        trm_session_slot_state(session, 0, &state, &steps_done) != TRM_OK) {
      cli_fail(CMD, "reading the answer: %s", trm_last_error());
      goto done;
    }
    bool halted = state == TRM_SLOT_HALTED;
    if (o.json) {
      print_json_unit(&v, &ev, q_halt, q_continue, halted, answer, confidence, grid_text);
      continue;
    }
    size_t changed = 0;
    double mean_conf = 0;
    for (size_t i = 0; i < puzzle.n; i++) {
      changed += answer[i] != previous[i];
      mean_conf += confidence[i];
    }
    mean_conf /= (double)puzzle.n;
    printf("\nstep %lld/%lld", (long long)ev.step, (long long)max_steps);
    if (o.unit != TRM_YIELD_STEP) printf("  cycle %d/%lld", (int)ev.cycle, (long long)h_cycles);
    if (o.unit == TRM_YIELD_CALL) printf("  call %d/%lld", (int)ev.call, (long long)(l_cycles + 1));
    if (ev.kind == TRM_EVENT_LATENT) {
      /* a latent update leaves the answer as it was: one line */
      printf("  latent z updated  q_halt %+.4f\n", q_halt);
      continue;
    }
    printf("  q_halt %+.4f (p %.3f)  q_continue %+.4f  changed %zu/%zu  mean confidence %.3f%s\n", q_halt,
           1.0 / (1.0 + exp(-(double)q_halt)), q_continue, changed, puzzle.n, mean_conf, halted ? "  halted" : "");
    fit_region(&v, answer);
    print_grids(&v, answer, previous, confidence);
    memcpy(previous, answer, puzzle.n * sizeof *answer);
  }
  if (st != TRM_HALTED) {
    cli_fail(CMD, "refining: %s: %s", trm_status_string(st), trm_last_error());
    goto done;
  }
  if (!o.json) {
    bool by_q = o.halt == TRM_HALT_Q && (halt_on_halt_only ? q_halt > 0 : q_halt > q_continue);
    /* at the last step both reasons may hold: then both are named */
    const char *reason = !by_q                  ? "max steps"
                         : steps_done < max_steps ? (halt_on_halt_only ? "q_halt > 0" : "q_halt > q_continue")
                         : halt_on_halt_only      ? "max steps, and q_halt > 0"
                                                  : "max steps, and q_halt > q_continue";
    printf("\nhalted after %lld step%s (%s)\n", (long long)steps_done, steps_done == 1 ? "" : "s", reason);
    cli_grid_text(task, &puzzle, answer, grid_text);
    if (task == TASK_SUDOKU)
      printf("answer %s a valid solution keeping the givens\n", sudoku_solved(answer, puzzle.tokens) ? "is" : "is NOT");
    if (task == TASK_ARC) {
      int rows, cols;
      cli_arc_crop(answer, &rows, &cols);
      printf("answer grid %dx%d (up to the end-of-grid markers):\n", rows, cols);
    } else {
      printf("answer:\n");
    }
    printf("%s\n", grid_text);
  }
  rc = fflush(stdout) == 0 ? CLI_EXIT_OK : cli_fail(CMD, "writing the output failed");

done:
  trm_session_free(session);
  trm_model_free(m);
  cli_puzzle_free(&puzzle);
  free(text);
  free(answer);
  free(previous);
  free(confidence);
  free(grid_text);
  return rc;
}
