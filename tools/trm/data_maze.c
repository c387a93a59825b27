/* trm data maze: random mazes on an N x N canvas (N = --size, 30 for the reference's models).
 *
 * Layout: cells at odd (row, column) positions 1, 3, ..., walls '#' everywhere else, so a canvas
 * of side N holds (N-1)/2 cells per side (14 for N = 30, whose last row and column are then wall
 * as well). A perfect maze (one path between any two cells) is carved by a randomized depth-first
 * search; --braid P then visits the dead ends in random order and, with probability P, opens a
 * wall from each that is still a dead end to a random neighbouring cell, which makes loops.
 * S and G sit on cells; G is drawn among the cells whose shortest path from S is at least
 * --min-path steps AND unique (braided mazes may have several shortest paths; such goals are
 * skipped, so the label is never ambiguous). The label is the input with the cells strictly
 * between S and G on that path marked 'o'.
 *
 * Tokens as the reference's CHARSET "# SGo": 0 pad, '#' 1, ' ' 2, 'S' 3, 'G' 4, 'o' 5; uint8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

enum { WALL = 1, OPEN = 2, START = 3, GOAL = 4, PATH = 5 };
enum { STREAM_TRAIN = 1, STREAM_TEST = 2, MAX_MAZES = 100, STARTS_PER_MAZE = 20 };

static const int dr[4] = {-1, 1, 0, 0}, dc[4] = {0, 0, -1, 1};

typedef struct {
  int size, cells;  /* canvas side, cells per side */
  uint8_t *grid;    /* size * size tokens */
  int *stack, *dist, *order;
  uint8_t *paths;   /* number of shortest paths, saturating at 2 */
  int *parent;
} maze;

static bool maze_alloc(maze *m, int size) {
  size_t n = (size_t)size * (size_t)size;
  m->size = size;
  m->cells = (size - 1) / 2;
  m->grid = malloc(n);
  m->stack = malloc(n * sizeof(int));
  m->dist = malloc(n * sizeof(int));
  m->order = malloc(n * sizeof(int));
  m->parent = malloc(n * sizeof(int));
  m->paths = malloc(n);
  return m->grid && m->stack && m->dist && m->order && m->parent && m->paths;
}

static void maze_free(maze *m) {
  free(m->grid);
  free(m->stack);
  free(m->dist);
  free(m->order);
  free(m->parent);
  free(m->paths);
}

/* canvas position of cell (i, j) */
static int cell_pos(const maze *m, int i, int j) { return (2 * i + 1) * m->size + 2 * j + 1; }

static void carve(maze *m, data_rng *rng) {
  int k = m->cells;
  memset(m->grid, WALL, (size_t)m->size * (size_t)m->size);
  /* iterative randomized DFS over cells; visited cells are OPEN on the canvas */
  int top = 0;
  m->stack[top++] = 0;
  m->grid[cell_pos(m, 0, 0)] = OPEN;
  while (top > 0) {
    int cur = m->stack[top - 1];
    int i = cur / k, j = cur % k;
    int dirs[4], n = 0;
    for (int d = 0; d < 4; d++) {
      int ni = i + dr[d], nj = j + dc[d];
      if (ni >= 0 && ni < k && nj >= 0 && nj < k && m->grid[cell_pos(m, ni, nj)] == WALL) dirs[n++] = d;
    }
    if (n == 0) {
      top--;
      continue;
    }
    int d = dirs[data_rng_below(rng, (uint32_t)n)];
    int ni = i + dr[d], nj = j + dc[d];
    m->grid[cell_pos(m, i, j) + dr[d] * m->size + dc[d]] = OPEN;  /* the wall between */
    m->grid[cell_pos(m, ni, nj)] = OPEN;
    m->stack[top++] = ni * k + nj;
  }
}

static int open_sides(const maze *m, int i, int j, int *closed, int *n_closed) {
  int open = 0;
  *n_closed = 0;
  for (int d = 0; d < 4; d++) {
    int ni = i + dr[d], nj = j + dc[d];
    if (ni < 0 || ni >= m->cells || nj < 0 || nj >= m->cells) continue;
    if (m->grid[cell_pos(m, i, j) + dr[d] * m->size + dc[d]] == OPEN) open++;
    else closed[(*n_closed)++] = d;
  }
  return open;
}

static void braid(maze *m, data_rng *rng, double p) {
  int k = m->cells, n = k * k;
  for (int c = 0; c < n; c++) m->order[c] = c;
  data_rng_shuffle(rng, m->order, n);
  for (int t = 0; t < n; t++) {
    int i = m->order[t] / k, j = m->order[t] % k;
    int closed[4], n_closed;
    if (open_sides(m, i, j, closed, &n_closed) != 1 || n_closed == 0) continue;
    if (!data_rng_chance(rng, p)) continue;
    int d = closed[data_rng_below(rng, (uint32_t)n_closed)];
    m->grid[cell_pos(m, i, j) + dr[d] * m->size + dc[d]] = OPEN;
  }
}

/* BFS from FROM over open squares: distances, parents and shortest-path counts (capped at 2). */
static void bfs(maze *m, int from) {
  int n = m->size * m->size;
  for (int i = 0; i < n; i++) m->dist[i] = -1;
  int head = 0, tail = 0;
  m->dist[from] = 0;
  m->paths[from] = 1;
  m->parent[from] = -1;
  m->stack[tail++] = from;
  while (head < tail) {
    int cur = m->stack[head++];
    int r = cur / m->size, c = cur % m->size;
    for (int d = 0; d < 4; d++) {
      int nr = r + dr[d], nc = c + dc[d];
      if (nr < 0 || nr >= m->size || nc < 0 || nc >= m->size) continue;
      int next = nr * m->size + nc;
      if (m->grid[next] == WALL) continue;
      if (m->dist[next] < 0) {
        m->dist[next] = m->dist[cur] + 1;
        m->paths[next] = m->paths[cur];
        m->parent[next] = cur;
        m->stack[tail++] = next;
      } else if (m->dist[next] == m->dist[cur] + 1) {
        int sum = m->paths[next] + m->paths[cur];
        m->paths[next] = (uint8_t)(sum > 2 ? 2 : sum);
      }
    }
  }
}

/* Places S and G; writes input and label. False if no placement was found in this maze. */
static bool place(maze *m, data_rng *rng, int min_path, uint8_t *input, uint8_t *label) {
  int k = m->cells;
  for (int attempt = 0; attempt < STARTS_PER_MAZE; attempt++) {
    int s = (int)data_rng_below(rng, (uint32_t)(k * k));
    int start = cell_pos(m, s / k, s % k);
    bfs(m, start);
    int n = 0;
    for (int c = 0; c < k * k; c++) {
      int pos = cell_pos(m, c / k, c % k);
      if (m->dist[pos] >= min_path && m->paths[pos] == 1) m->order[n++] = pos;
    }
    if (n == 0) continue;
    int goal = m->order[data_rng_below(rng, (uint32_t)n)];
    size_t total = (size_t)m->size * (size_t)m->size;
    memcpy(input, m->grid, total);
    input[start] = START;
    input[goal] = GOAL;
    memcpy(label, input, total);
    for (int pos = m->parent[goal]; pos != start; pos = m->parent[pos]) label[pos] = PATH;
    return true;
  }
  return false;
}

typedef struct {
  int64_t count, test_count, size, min_path;
  double braid;
  bool augment;
  uint64_t seed;
  const char *out;
} maze_options;

static int build_split(const maze_options *o, int64_t count, int stream, bool augment, data_split *split) {
  maze m;
  size_t total = (size_t)o->size * (size_t)o->size;
  uint8_t *input = malloc(total), *label = malloc(total), *aug_in = malloc(total), *aug_label = malloc(total);
  int rc = 0;
  if (!maze_alloc(&m, (int)o->size) || !input || !label || !aug_in || !aug_label) {
    fprintf(stderr, "trm: data maze: out of memory\n");
    rc = 1;
  }
  for (int64_t i = 0; !rc && i < count; i++) {
    data_rng rng;
    data_rng_seed(&rng, o->seed, (uint64_t)stream << 40 | (uint64_t)i);
    bool placed = false;
    for (int tries = 0; tries < MAX_MAZES && !placed; tries++) {
      carve(&m, &rng);
      if (o->braid > 0) braid(&m, &rng, o->braid);
      placed = place(&m, &rng, (int)o->min_path, input, label);
    }
    if (!placed) {
      fprintf(stderr,
              "trm: data maze: no start and goal with a unique shortest path of at least %lld steps in %d "
              "mazes of size %lld; lower --min-path\n",
              (long long)o->min_path, MAX_MAZES, (long long)o->size);
      rc = 1;
      break;
    }
    for (int t = 0; t < (augment ? 8 : 1); t++) {
      data_dihedral(input, aug_in, (int)o->size, t);
      data_dihedral(label, aug_label, (int)o->size, t);
      data_split_add_example(split, aug_in, aug_label, 0);
      data_split_end_puzzle(split, 0);
    }
    data_split_end_group(split);
  }
  maze_free(&m);
  free(input);
  free(label);
  free(aug_in);
  free(aug_label);
  return rc;
}

static const char maze_help[] =
    "usage: trm data maze --count N --out DIR [--size N] [--min-path L] [--braid P] [--seed S]\n"
    "                     [--test-count N] [--augment]\n"
    "  --count N       mazes in the train split (1 to 100000000)\n"
    "  --out DIR       output folder (DIR/train, DIR/test; created if missing)\n"
    "  --size N        canvas side, 5 to 64 (default 30): (N-1)/2 cells per side, seq_len N*N\n"
    "  --min-path L    shortest S-G path of at least L steps (default 1)\n"
    "  --braid P       open each dead end with probability P, 0 to 1 (default 0: perfect mazes)\n"
    "  --seed S        random seed, 0 to 2^64-1 (default 0); the same seed gives identical files\n"
    "  --test-count N  mazes in the test split (default: count / 10, at least 1)\n"
    "  --augment       the 8 rotations/reflections of each train maze in its group\n";

static bool maze_takes_value(const char *flag) {
  return strcmp(flag, "--help") != 0 && strcmp(flag, "--augment") != 0;
}

int data_maze(int argc, char **argv) {
  maze_options o = {.count = -1, .test_count = -1, .size = 30, .min_path = 1, .braid = 0, .augment = false,
                    .seed = 0, .out = NULL};
  data_args args = {.argc = argc, .argv = argv, .index = 1, .cmd = "trm data maze"};
  int r;
  while ((r = data_args_next(&args, maze_takes_value)) == 1) {
    const char *f = args.flag;
    bool ok = true;
    if (strcmp(f, "--help") == 0) {
      fputs(maze_help, stdout);
      return 0;
    } else if (strcmp(f, "--count") == 0) ok = data_parse_int(&args, 1, 100000000, &o.count);
    else if (strcmp(f, "--test-count") == 0) ok = data_parse_int(&args, 0, 100000000, &o.test_count);
    else if (strcmp(f, "--size") == 0) ok = data_parse_int(&args, 5, 64, &o.size);
    else if (strcmp(f, "--min-path") == 0) ok = data_parse_int(&args, 1, 64 * 64, &o.min_path);
    else if (strcmp(f, "--braid") == 0) ok = data_parse_double(&args, 0, 1, &o.braid);
    else if (strcmp(f, "--augment") == 0) o.augment = true;
    else if (strcmp(f, "--seed") == 0) ok = data_parse_seed(&args, &o.seed);
    else if (strcmp(f, "--out") == 0) o.out = args.value;
    else return data_usage_error(args.cmd, "unknown option '%s'", f);
    if (!ok) return 2;
  }
  if (r < 0) return 2;
  if (o.count < 0) return data_usage_error(args.cmd, "--count is required");
  if (!o.out || !o.out[0]) return data_usage_error(args.cmd, "--out is required");
  if (o.test_count < 0) o.test_count = o.count / 10 > 0 ? o.count / 10 : 1;
  int64_t cells = (o.size - 1) / 2;
  if (o.min_path > 2 * cells * cells)
    return data_usage_error(args.cmd, "--min-path %lld is longer than any path in a maze of size %lld",
                            (long long)o.min_path, (long long)o.size);
  if ((double)o.count * (o.augment ? 8 : 1) * (double)(o.size * o.size) > 4e9)
    return data_usage_error(args.cmd, "the train split would exceed 4 GB");

  if (data_make_dir(o.out)) return 1;
  static const char *const names[] = {"<blank>"};
  data_meta meta = {.vocab_size = 6, .num_puzzle_identifiers = 1, .identifier_names = names};
  data_split train, test;
  int seq_len = (int)(o.size * o.size);
  data_split_init(&train, seq_len, false);
  data_split_init(&test, seq_len, false);
  int rc = build_split(&o, o.count, STREAM_TRAIN, o.augment, &train);
  if (!rc) rc = build_split(&o, o.test_count, STREAM_TEST, false, &test);
  if (!rc) rc = data_split_write(&train, o.out, "train", &meta);
  if (!rc) rc = data_split_write(&test, o.out, "test", &meta);
  if (!rc) rc = data_write_identifiers(o.out, &meta);
  data_split_free(&train);
  data_split_free(&test);
  return rc;
}
