/* trm: the libtrm command line. Dispatches on the subcommand; each lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char usage[] =
    "usage: trm COMMAND [ARGS...]\n"
    "\n"
    "Runs Tiny Recursive Models (libtrm model files) from the command line.\n"
    "\n"
    "commands:\n"
    "  info MODEL                  configuration, parameters and sizes of a model\n"
    "  solve MODEL [INPUT|-]       solve one puzzle, showing the answer after every step\n"
    "  eval MODEL DATA_DIR         accuracy and speed on a data set in the reference layout\n"
    "  data sudoku|maze|arc ...    write a data set in the reference layout\n"
    "  train DATA_DIR -o MODEL     train a model on a data set (see trm train --help)\n"
    "\n"
    "  trm COMMAND --help          the options of a command\n"
    "  trm --version               the version of trm and libtrm\n"
    "\n"
    "See trm(1).\n";

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    return CLI_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage, stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("trm (libtrm) %s\n", trm_version_string());
    return CLI_EXIT_OK;
  }
  if (strcmp(cmd, "info") == 0) return cmd_info(argc - 1, argv + 1);
  if (strcmp(cmd, "solve") == 0) return cmd_solve(argc - 1, argv + 1);
  if (strcmp(cmd, "eval") == 0) return cmd_eval(argc - 1, argv + 1);
  if (strcmp(cmd, "data") == 0) return cmd_data(argc - 1, argv + 1);
  if (strcmp(cmd, "train") == 0) return cmd_train(argc - 1, argv + 1);
  fprintf(stderr, "trm: unknown command '%s' (see 'trm --help')\n", cmd);
  return CLI_EXIT_USAGE;
}
