/* Stand-alone driver for `trm data` while the trm binary is elsewhere: `test_data_main data ...`
 * runs cmd_data on the arguments after the program name. */
#include <stdio.h>
#include <string.h>

#include "../../tools/trm/commands.h"

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "data") != 0) {
    fprintf(stderr, "usage: %s data GENERATOR [options]\n", argv[0]);
    return 2;
  }
  return cmd_data(argc - 1, argv + 1);
}
