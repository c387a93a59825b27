/* Shared parts of `trm data`: a seeded PRNG, argument parsing and the writer of the reference
 * data-set layout (TRM-SPEC.md section 8):
 *
 *   DIR/identifiers.json               names of the puzzle identifiers (index = id)
 *   DIR/{train,test}/dataset.json      metadata, as the reference's json.dump writes it
 *   DIR/{train,test}/identifiers.json  a copy of DIR/identifiers.json
 *   DIR/{train,test}/all__inputs.npy   uint8 [examples, seq_len]
 *   DIR/{train,test}/all__labels.npy   uint8 [examples, seq_len]
 *   DIR/{train,test}/all__puzzle_identifiers.npy  int32 [puzzles]
 *   DIR/{train,test}/all__puzzle_indices.npy      int32 [puzzles + 1], first example of each puzzle
 *   DIR/{train,test}/all__group_indices.npy       int32 [groups + 1], first puzzle of each group
 *
 * dtypes as the reference builders produce them (uint8 tokens, int32 indices). */
#ifndef TRM_TOOLS_DATA_H
#define TRM_TOOLS_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- PRNG: xoshiro256** seeded through splitmix64; the same seed gives the same stream on
 * every platform. ---- */
typedef struct {
  uint64_t s[4];
} data_rng;

/* Seeds from SEED and a STREAM number, so independent streams (train, test) do not overlap. */
void data_rng_seed(data_rng *rng, uint64_t seed, uint64_t stream);
uint64_t data_rng_next(data_rng *rng);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint32_t data_rng_below(data_rng *rng, uint32_t n);
/* True with probability p (0 <= p <= 1). */
bool data_rng_chance(data_rng *rng, double p);
/* Fisher-Yates shuffle of N ints. */
void data_rng_shuffle(data_rng *rng, int *values, int n);

/* ---- the 8 dihedral transforms of an n x n grid, numbered as the reference's
 * dihedral_transform (0 identity, 1-3 np.rot90 k=1..3, 4 fliplr, 5 flipud, 6 transpose,
 * 7 fliplr(rot90)) ---- */
void data_dihedral(const uint8_t *in, uint8_t *out, int n, int transform);

/* ---- one split being built ---- */
typedef struct {
  int seq_len;
  int64_t examples, puzzles, groups;
  uint8_t *inputs, *labels;            /* examples x seq_len */
  int64_t *puzzle_identifiers;         /* puzzles */
  int64_t *puzzle_indices;             /* puzzles + 1 */
  int64_t *group_indices;              /* groups + 1 */
  int64_t *ratings;                    /* examples, or NULL when the generator rates nothing */
  size_t example_cap, puzzle_cap, identifier_cap, group_cap;
  bool oom;                            /* an allocation failed; reported by data_split_write */
} data_split;

void data_split_init(data_split *split, int seq_len, bool with_ratings);
void data_split_free(data_split *split);
/* Appends one example (seq_len tokens each) to the current puzzle. */
void data_split_add_example(data_split *split, const uint8_t *input, const uint8_t *label,
                            int64_t rating);
/* Closes the current puzzle (its examples since the last call) with IDENTIFIER. */
void data_split_end_puzzle(data_split *split, int64_t identifier);
/* Closes the current group (its puzzles since the last call). */
void data_split_end_group(data_split *split);

typedef struct {
  int vocab_size;
  int64_t num_puzzle_identifiers;
  const char *const *identifier_names;  /* num_puzzle_identifiers names */
} data_meta;

/* Writes DIR/NAME/ (created if needed) with dataset.json, identifiers.json and the arrays, plus
 * ratings.npy (int32 [examples]) when the split has ratings. Every file is written under a
 * temporary name and renamed once complete; an earlier dataset.json is removed first and the new
 * one written last, so a split is only ever marked complete once it is. Returns 0, or 1 after
 * printing "trm: data: PATH: problem" on stderr. */
int data_split_write(const data_split *split, const char *dir, const char *name, const data_meta *meta);
/* Writes DIR/identifiers.json; same return convention. */
int data_write_identifiers(const char *dir, const data_meta *meta);
/* mkdir -p; same return convention. */
int data_make_dir(const char *path);

/* ---- command-line parsing: every generator takes "--flag VALUE" or "--flag=VALUE" ---- */
typedef struct {
  int argc;
  char **argv;
  int index;          /* next argument to look at */
  const char *cmd;    /* "trm data sudoku", for messages */
  const char *flag;   /* the flag just read */
  const char *value;  /* its value, if it takes one */
} data_args;

/* Advances to the next flag. Returns 1 and sets flag (and value when TAKES_VALUE(flag) says so),
 * 0 at the end, or -1 after printing a usage error. */
int data_args_next(data_args *args, bool (*takes_value)(const char *flag));
/* Strict decimal integer in [lo, hi]; prints a usage error and returns false otherwise. */
bool data_parse_int(const data_args *args, int64_t lo, int64_t hi, int64_t *out);
/* Decimal number in [lo, hi]. */
bool data_parse_double(const data_args *args, double lo, double hi, double *out);
/* 0 to 2^64-1. */
bool data_parse_seed(const data_args *args, uint64_t *out);
/* "A-B" with lo <= A <= B <= hi. */
bool data_parse_range(const data_args *args, int64_t lo, int64_t hi, int64_t *a, int64_t *b);
/* Prints "CMD: MESSAGE" and a hint to see --help; returns 2. */
int data_usage_error(const char *cmd, const char *fmt, ...);

/* the generators (data_sudoku.c, data_maze.c, data_arc.c); argv[0] is the generator's name */
int data_sudoku(int argc, char **argv);
int data_maze(int argc, char **argv);
int data_arc(int argc, char **argv);

#endif
