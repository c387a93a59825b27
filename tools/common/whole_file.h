/* Files written whole or not at all, for the tools: the contents go to PATH.tmp, which is synced
 * and renamed over PATH only once complete, so PATH never holds a partly written file (after an
 * interrupted run or a full disk) and a failed write leaves its old contents. Header-only, so
 * that every program built from npy.c or the trm sources has it without a build rule of its own. */
#ifndef TRM_TOOLS_WHOLE_FILE_H
#define TRM_TOOLS_WHOLE_FILE_H

/* needs fileno and fsync: the including file defines _POSIX_C_SOURCE 200809L before any header */
#include <errno.h>
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

/* Flushes, syncs and closes FP and renames TMP over PATH; on any failure removes TMP instead.
 * WRITE_ERROR is the errno of a write the caller saw fail (0: none), which makes it a failure
 * and is what gets reported; a stream error without it reports EIO. Frees TMP. Returns 0 or
 * the errno value of the first failure. */
static inline int whole_file_commit(FILE *fp, char *tmp, const char *path, int write_error) {
  int failed = write_error;
  if (!failed && ferror(fp)) failed = EIO;
  if (!failed && (fflush(fp) != 0 || fsync(fileno(fp)) != 0)) failed = errno ? errno : EIO;
  if (fclose(fp) != 0 && !failed) failed = errno ? errno : EIO;
  if (!failed && rename(tmp, path) != 0) failed = errno ? errno : EIO;
  if (failed) remove(tmp);
  free(tmp);
  return failed;
}

#endif
