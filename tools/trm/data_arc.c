/* trm data arc: not written yet. */
#include <stdio.h>

#include "data.h"

int data_arc(int argc, char **argv) {
  (void)argc;
  fprintf(stderr, "trm data %s: not implemented yet\n", argv[0]);
  return 1;
}
