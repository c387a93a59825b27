/* trm info MODEL [--json]: what a model file holds. The configuration and derived sizes come
 * from trm_model_info(); the dtypes and byte counts from the file's safetensors header, read
 * with the library's own parser (linked statically, so its internal functions are at hand). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "format/safetensors.h"

static const char *const CMD = "info";

static const char usage[] =
    "usage: trm info MODEL [--json]\n"
    "\n"
    "Prints a model's configuration (the reference code's names), its parameter count, the\n"
    "dtypes and bytes of its tensors, the sizes derived from the configuration, and the kind\n"
    "of puzzle its seq_len / vocab_size fit.\n"
    "\n"
    "  --json    one JSON object instead of text\n";

/* Integer configuration keys, in the order shown; kind 0 integer, 1 boolean, 2 pos_encodings. */
static const struct {
  const char *key;
  int kind;
} config_keys[] = {
    {"hidden_size", 0},  {"num_heads", 0},       {"L_layers", 0},       {"H_cycles", 0},
    {"L_cycles", 0},     {"seq_len", 0},         {"vocab_size", 0},     {"num_puzzle_identifiers", 0},
    {"puzzle_emb_ndim", 0}, {"puzzle_emb_len", 0}, {"halt_max_steps", 0}, {"mlp_t", 1},
    {"no_ACT_continue", 1}, {"pos_encodings", 2},
};
static const char *const real_keys[] = {"rms_norm_eps", "rope_theta", "expansion"};
static const char *const derived_keys[] = {"state_len", "head_dim", "inter_size", "inter_t_size", "param_count", "isa"};
static const char *const pos_names[] = {"none", "rope", "learned"};
static const char *const isa_names[] = {"scalar", "avx2", "avx512", "neon"};

typedef struct {
  char name[16];
  int64_t tensors, elements, bytes;
} dtype_total;

/* Reads the safetensors header of PATH and totals its tensors per dtype. */
static int read_header(const char *path, st_file *file, uint64_t *file_size) {
  FILE *f = fopen(path, "rb");
  if (!f) return cli_fail(CMD, "%s: %s", path, strerror(errno));
  uint8_t first8[8];
  uint64_t header_len = 0;
  uint8_t *head = NULL;
  int rc = CLI_EXIT_FAIL;
  if (fseek(f, 0, SEEK_END) != 0 || ftell(f) < 0) {
    cli_fail(CMD, "%s: cannot find its size", path);
    goto done;
  }
  *file_size = (uint64_t)ftell(f);
  if (fseek(f, 0, SEEK_SET) != 0 || fread(first8, 1, 8, f) != 8) {
    cli_fail(CMD, "%s: shorter than a safetensors header", path);
    goto done;
  }
  trm_status st = st_header_length(first8, *file_size, &header_len);
  if (st == TRM_OK) {
    head = malloc((size_t)header_len + 8);
    if (!head) {
      cli_fail(CMD, "%s: out of memory for its header", path);
      goto done;
    }
    memcpy(head, first8, 8);
    if (fread(head + 8, 1, (size_t)header_len, f) != header_len) {
      cli_fail(CMD, "%s: cannot read its header", path);
      goto done;
    }
    st = st_parse(head, (size_t)header_len + 8, *file_size, file);
  }
  if (st != TRM_OK) cli_fail(CMD, "%s: %s: %s", path, trm_status_string(st), trm_last_error());
  else rc = CLI_EXIT_OK;
done:
  free(head);
  fclose(f);
  return rc;
}

static size_t total_dtypes(const st_file *file, dtype_total *totals, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < file->n_tensors; i++) {
    const st_tensor *t = &file->tensors[i];
    size_t k = 0;
    while (k < n && strcmp(totals[k].name, t->dtype_name) != 0) k++;
    if (k == n) {
      if (n == max) continue;
      memset(&totals[n], 0, sizeof totals[n]);
      snprintf(totals[n].name, sizeof totals[n].name, "%s", t->dtype_name);
      n++;
    }
    totals[k].tensors++;
    totals[k].elements += (int64_t)t->numel;
    totals[k].bytes += (int64_t)(t->end - t->begin);
  }
  return n;
}

static void print_text(const char *path, const trm_model *m, const st_file *file, uint64_t file_size,
                       const dtype_total *totals, size_t n_totals) {
  int64_t seq_len = cli_model_int(m, "seq_len"), vocab = cli_model_int(m, "vocab_size");
  int64_t params = cli_model_int(m, "param_count");
  fputs("model        ", stdout);
  cli_text_string(stdout, path);
  putchar('\n');
  printf("file         %llu bytes, %zu tensors\n", (unsigned long long)file_size, file->n_tensors);
  for (size_t k = 0; k < n_totals; k++)
    printf("dtype        %-5s %lld tensors, %lld values, %lld bytes\n", totals[k].name, (long long)totals[k].tensors,
           (long long)totals[k].elements, (long long)totals[k].bytes);
  printf("parameters   %lld (%lld bytes as float32 in memory)\n", (long long)params, (long long)params * 4);
  printf("task         %s (seq_len %lld, vocab_size %lld)\n", cli_task_names[cli_task_for(seq_len, vocab)],
         (long long)seq_len, (long long)vocab);
  printf("configuration:\n");
  for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++) {
    int64_t v = cli_model_int(m, config_keys[i].key);
    if (config_keys[i].kind == 1) printf("  %-24s %s\n", config_keys[i].key, v ? "true" : "false");
    else if (config_keys[i].kind == 2) printf("  %-24s %s\n", config_keys[i].key, v >= 0 && v <= 2 ? pos_names[v] : "?");
    else printf("  %-24s %lld\n", config_keys[i].key, (long long)v);
  }
  for (size_t i = 0; i < sizeof real_keys / sizeof real_keys[0]; i++) {
    double v = 0;
    trm_model_info_double(m, real_keys[i], &v);
    printf("  %-24s %g\n", real_keys[i], v);
  }
  printf("derived:\n");
  for (size_t i = 0; i < sizeof derived_keys / sizeof derived_keys[0]; i++) {
    int64_t v = cli_model_int(m, derived_keys[i]);
    if (strcmp(derived_keys[i], "isa") == 0) printf("  %-24s %s\n", derived_keys[i], v >= 0 && v <= 3 ? isa_names[v] : "?");
    else printf("  %-24s %lld\n", derived_keys[i], (long long)v);
  }
  bool any_meta = false;
  for (size_t i = 0; i < file->n_meta; i++) {
    const char *key = file->meta[i].key;
    bool known = strcmp(key, "format") == 0 || strcmp(key, "format_version") == 0;
    for (size_t k = 0; !known && k < sizeof config_keys / sizeof config_keys[0]; k++)
      known = strcmp(key, config_keys[k].key) == 0;
    for (size_t k = 0; !known && k < sizeof real_keys / sizeof real_keys[0]; k++) known = strcmp(key, real_keys[k]) == 0;
    if (known) continue;
    if (!any_meta) printf("other metadata:\n");
    any_meta = true;
    fputs("  ", stdout);
    for (size_t n = cli_text_string(stdout, key); n < 24; n++) putchar(' ');
    putchar(' ');
    cli_text_string(stdout, file->meta[i].value);
    putchar('\n');
  }
}

static void print_json(const char *path, const trm_model *m, const st_file *file, uint64_t file_size,
                       const dtype_total *totals, size_t n_totals) {
  int64_t seq_len = cli_model_int(m, "seq_len"), vocab = cli_model_int(m, "vocab_size");
  printf("{\"path\":");
  cli_json_string(stdout, path);
  printf(",\"file_bytes\":%llu,\"tensors\":%zu,\"dtypes\":{", (unsigned long long)file_size, file->n_tensors);
  for (size_t k = 0; k < n_totals; k++) {
    printf("%s", k ? "," : "");
    cli_json_string(stdout, totals[k].name);
    printf(":{\"tensors\":%lld,\"values\":%lld,\"bytes\":%lld}", (long long)totals[k].tensors,
           (long long)totals[k].elements, (long long)totals[k].bytes);
  }
  printf("},\"task\":\"%s\",\"config\":{", cli_task_names[cli_task_for(seq_len, vocab)]);
  for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++) {
    int64_t v = cli_model_int(m, config_keys[i].key);
    printf("%s\"%s\":", i ? "," : "", config_keys[i].key);
    if (config_keys[i].kind == 1) printf("%s", v ? "true" : "false");
    else if (config_keys[i].kind == 2) printf("\"%s\"", v >= 0 && v <= 2 ? pos_names[v] : "?");
    else printf("%lld", (long long)v);
  }
  for (size_t i = 0; i < sizeof real_keys / sizeof real_keys[0]; i++) {
    double v = 0;
    trm_model_info_double(m, real_keys[i], &v);
    printf(",\"%s\":", real_keys[i]);
    cli_json_number(stdout, v);
  }
  printf("},\"derived\":{");
  for (size_t i = 0; i < sizeof derived_keys / sizeof derived_keys[0]; i++) {
    int64_t v = cli_model_int(m, derived_keys[i]);
    printf("%s\"%s\":", i ? "," : "", derived_keys[i]);
    if (strcmp(derived_keys[i], "isa") == 0) printf("\"%s\"", v >= 0 && v <= 3 ? isa_names[v] : "?");
    else printf("%lld", (long long)v);
  }
  printf("},\"metadata\":{");
  for (size_t i = 0; i < file->n_meta; i++) {
    printf("%s", i ? "," : "");
    cli_json_string(stdout, file->meta[i].key);
    putchar(':');
    cli_json_string(stdout, file->meta[i].value);
  }
  printf("}}\n");
}

int cmd_info(int argc, char **argv) {
  cli_args args;
  cli_args_init(&args, argc, argv);
  const char *opt, *path = NULL;
  bool json = false;
  int kind;
  while ((kind = cli_args_next(&args, &opt)) != 0) {
    if (kind == 2) {
      if (path) return cli_usage_error(CMD, "unexpected argument '%s'", opt);
      path = opt;
    } else if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
      fputs(usage, stdout);
      return CLI_EXIT_OK;
    } else if (strcmp(opt, "--json") == 0) {
      if (!cli_args_no_value(&args, CMD, opt)) return CLI_EXIT_USAGE;
      json = true;
    } else {
      return cli_usage_error(CMD, "unknown option '%s'", opt);
    }
  }
  if (!path) return cli_usage_error(CMD, "missing MODEL");

  trm_model *m = cli_load_model(CMD, path);
  if (!m) return CLI_EXIT_FAIL;
  st_file file;
  memset(&file, 0, sizeof file);
  uint64_t file_size = 0;
  int rc = read_header(path, &file, &file_size);
  if (rc == CLI_EXIT_OK) {
    dtype_total totals[8];
    size_t n_totals = total_dtypes(&file, totals, 8);
    if (json) print_json(path, m, &file, file_size, totals, n_totals);
    else print_text(path, m, &file, file_size, totals, n_totals);
    st_free(&file);
  }
  trm_model_free(m);
  if (rc == CLI_EXIT_OK && fflush(stdout) != 0) rc = cli_fail(CMD, "writing the output failed");
  return rc;
}
