/* Helpers shared by the trm subcommands: option parsing, messages, model loading, the puzzle
 * kinds (TRM-SPEC.md section 8) and their text forms, JSON output. */
#ifndef TRM_TOOLS_CLI_H
#define TRM_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trm.h"

#if defined(__GNUC__) || defined(__clang__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* Exit statuses of every subcommand (see commands.h). */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* "trm: CMD: message" on stderr, on one line; returns CLI_EXIT_FAIL. */
int cli_fail(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* "trm CMD: message (see 'trm CMD --help')" on stderr, on one line; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* ---- options ---- */

/* Walks argv[1..argc-1] of a subcommand. Options are "--name", "--name VALUE" or
 * "--name=VALUE"; "--" ends the options; "-" alone is a positional argument. */
typedef struct cli_args {
  int argc;
  char **argv;
  int index;            /* next argument to look at */
  bool options_done;    /* "--" seen */
  const char *inline_value; /* the part after '=' of the current option, or NULL */
} cli_args;

void cli_args_init(cli_args *a, int argc, char **argv);
/* The next argument: returns 1 and sets *opt to its name ("--task") for an option, with
 * a->inline_value set if it came as --name=VALUE; returns 2 and sets *opt to the argument for a
 * positional one; returns 0 at the end. */
int cli_args_next(cli_args *a, const char **opt);
/* The value of the current option: its inline part or the next argument. NULL (after a usage
 * message) if there is none. */
const char *cli_args_value(cli_args *a, const char *cmd, const char *opt);
/* True if the current option had no "=VALUE" part; else prints a usage message. */
bool cli_args_no_value(cli_args *a, const char *cmd, const char *opt);

/* A decimal integer in [lo, hi] (no sign unless lo < 0, no spaces, no trailing characters).
 * False after a usage message naming the option. */
bool cli_parse_int(const char *cmd, const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out);
/* One of the NULL-terminated names; its index, or -1 after a usage message. */
int cli_parse_choice(const char *cmd, const char *opt, const char *text, const char *const *names);

/* ---- model ---- */

/* Loads PATH, or prints "trm: CMD: PATH: status: detail" and returns NULL. */
trm_model *cli_load_model(const char *cmd, const char *path);
/* A model fact that cannot fail for a loaded model (the keys are the documented ones). */
int64_t cli_model_int(const trm_model *m, const char *key);

/* ---- puzzle kinds ---- */

typedef enum { TASK_SUDOKU = 0, TASK_MAZE = 1, TASK_ARC = 2, TASK_RAW = 3 } cli_task;
extern const char *const cli_task_names[]; /* "sudoku", "maze", "arc", "raw", NULL */

/* ARC canvases are 30 x 30; maze canvases are square, 30 x 30 in the reference data set (trm
 * data maze --size makes others), at most MAX_SIDE. */
enum { GRID_SIDE = 30, MAX_SIDE = 256 };

/* The kind a model of this shape was made for: 81/11 sudoku, N*N/6 maze (900/6 in the
 * reference), 900/12 arc, else raw. */
cli_task cli_task_for(int64_t seq_len, int64_t vocab);

/* True if a model of seq_len / vocab can take puzzles of TASK; else false with a message in ERR. */
bool cli_task_fits(cli_task task, int64_t seq_len, int64_t vocab, char *err, size_t err_len);

/* A puzzle parsed from text: seq_len tokens and where they sit on screen. */
typedef struct cli_puzzle {
  int32_t *tokens;  /* seq_len ids */
  size_t n;         /* seq_len */
  int rows, cols;   /* the region shown on screen (sudoku 9x9; maze/ARC: the input's size) */
  int side;         /* maze/ARC: the canvas side, tokens per canvas row; else 0 */
} cli_puzzle;

/* Parses TEXT (LEN bytes) as a puzzle of TASK for a model of seq_len / vocab; NAME is used in
 * messages ("-" for stdin). False after a one-line message in ERR. */
bool cli_puzzle_parse(cli_task task, const char *text, size_t len, int64_t seq_len, int64_t vocab,
                      cli_puzzle *out, char *err, size_t err_len);
void cli_puzzle_free(cli_puzzle *p);

/* The character shown for a token of TASK ('?' for an id the task does not define). */
char cli_token_char(cli_task task, int32_t token);

/* An answer as text, rows separated by '\n' (no trailing newline), written to OUT (a buffer of
 * at least cli_grid_text_size bytes): sudoku 81 digits in 9 rows ('.' for a non-digit),
 * maze the shown region, ARC the grid cropped at the end-of-grid markers as the reference
 * evaluator does, raw the ids separated by spaces. */
size_t cli_grid_text_size(cli_task task, size_t n);
void cli_grid_text(cli_task task, const cli_puzzle *shape, const int32_t *tokens, char *out);
/* The size of the ARC answer the reference evaluator reads from a 30x30 canvas: the largest
 * top-left rectangle holding only colour tokens (2..11). */
void cli_arc_crop(const int32_t *tokens, int *rows, int *cols);

/* ---- files and output ---- */

/* Reads all of PATH ("-" = stdin), at most MAX bytes, NUL-terminated. NULL after a message in
 * ERR. */
char *cli_read_file(const char *path, size_t max, size_t *len, char *err, size_t err_len);

/* The length (1-4) of the well-formed UTF-8 sequence at P, of which AVAIL bytes may be read (a
 * NUL ends it early, so a C string may pass 4), or 0 if there is none: a stray continuation
 * byte, a truncated, overlong or surrogate sequence, or a code point above U+10FFFF. */
int cli_utf8_length(const unsigned char *p, size_t avail);
/* Writes S as a JSON string (with the quotes); bytes that are not UTF-8 become U+FFFD. */
void cli_json_string(FILE *f, const char *s);
/* Writes S for a terminal: control characters (C0, DEL, C1) and bytes that are not UTF-8 become
 * \xNN, so that text from a file (a model's metadata, a file name) cannot drive the terminal.
 * Returns the number of bytes written. */
size_t cli_text_string(FILE *f, const char *s);
/* Writes a float as a JSON number, or null when it is not finite. */
void cli_json_number(FILE *f, double v);

/* Monotonic seconds. */
double cli_now(void);

#endif
