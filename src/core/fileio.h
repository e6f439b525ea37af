/* Durable file output shared by every writer (DICOM, PNG, NIfTI, the archive). */
#ifndef MIRA_CORE_FILEIO_H
#define MIRA_CORE_FILEIO_H

#include "mira/core.h"

/* Write data to path atomically: a temporary file in the same folder, fsync, rename over
 * path, fsync of the folder. Mode 0644. On failure nothing is left under path's name. */
bool mira__write_file_atomic(const char *path, const void *data, size_t len, mira_error **err);

/* Rename tmp over path and fsync the folder (for writers that produce the temporary file
 * themselves, after they fsync'd it). On failure tmp is removed. */
bool mira__commit_file(const char *tmp, const char *path, mira_error **err);

/* Write all n bytes to fd (a short write goes on; EINTR retried). False with errno set. */
bool mira__write_all(int fd, const void *data, size_t n);

#endif
