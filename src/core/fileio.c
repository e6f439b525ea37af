/* Durable file output shared by every writer (DICOM, PNG, NIfTI, the archive). */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool mira__write_all(int fd, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void sync_dir_of(const char *path)
{
    char *dir = mira_strdup(path);
    if (!dir)
        return;
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    mira_free(dir);
}

bool mira__commit_file(const char *tmp, const char *path, mira_error **err)
{
    if (rename(tmp, path) != 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot write", "%s: %s", path, strerror(errno));
        unlink(tmp);
        return false;
    }
    sync_dir_of(path);
    return true;
}

bool mira__write_file_atomic(const char *path, const void *data, size_t len, mira_error **err)
{
    size_t plen = strlen(path);
    char *tmp = mira_malloc(plen + 16);
    if (!tmp) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "writing %s", path);
        return false;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    bool ok = fd >= 0;
    if (ok)
        (void)fchmod(fd, 0644); /* mkstemp makes 0600; archives are read by other users */
    if (ok) {
        ok = mira__write_all(fd, data, len) && fsync(fd) == 0;
        int saved = errno;
        ok = close(fd) == 0 && ok;
        errno = ok ? errno : saved;
    }
    if (!ok) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot write", "%s: %s", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
        mira_free(tmp);
        return false;
    }
    ok = mira__commit_file(tmp, path, err);
    mira_free(tmp);
    return ok;
}
