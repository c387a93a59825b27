/* trm data maze: not written yet. */
#include <stdio.h>

#include "data.h"

int data_maze(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "trm data %s: not implemented yet\n", argv[0]);
  return 1;
}
