/* Files written whole or not at all, for the tools: the contents go to PATH.tmp, which is synced
 * and renamed over PATH only once complete, so PATH never holds a partly written file (after an
 * interrupted run or a full disk) and a failed write leaves its old contents. Header-only, so
 * that every program built from npy.c or the trm sources has it without a build rule of its own. */
#ifndef TRM_TOOLS_WHOLE_FILE_H
#define TRM_TOOLS_WHOLE_FILE_H

/* needs fileno and fsync: the including file defines _POSIX_C_SOURCE 200809L before any header */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Opens PATH.tmp for writing (binary). Returns the stream and sets *tmp to the temporary's name
 * (the caller passes it to whole_file_commit), or returns NULL with errno set and *tmp NULL. */
static inline FILE *whole_file_open(const char *path, char **tmp) {
  size_t len = strlen(path);
  *tmp = malloc(len + sizeof ".tmp");
  if (!*tmp) {
    errno = ENOMEM;
    return NULL;
  }
  memcpy(*tmp, path, len);
  memcpy(*tmp + len, ".tmp", sizeof ".tmp");
  FILE *fp = fopen(*tmp, "wb");
  if (!fp) {
    int saved = errno;
    free(*tmp);
    *tmp = NULL;
    errno = saved;
  }
  return fp;
}

/* Flushes, syncs and closes FP and renames TMP over PATH; on any failure (a write error the
 * stream recorded included) removes TMP instead. Frees TMP. Returns 0 or the errno value of the
 * failure (EIO when there was none). */
static inline int whole_file_commit(FILE *fp, char *tmp, const char *path) {
  errno = 0;
  bool ok = ferror(fp) == 0 && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
  int saved = errno;
  if (fclose(fp) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (ok && rename(tmp, path) != 0) {
    ok = false;
    saved = errno;
  }
  if (!ok) remove(tmp);
  free(tmp);
  return ok ? 0 : saved ? saved : EIO;
}

#endif
