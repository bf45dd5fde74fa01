#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

int ck_mkdirs(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof(tmp))
        return CK_ETOOBIG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return ck_from_errno(errno);
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return ck_from_errno(errno);
    return 0;
}

int ck_fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return ck_from_errno(errno);
    int rc = fsync(fd) < 0 ? ck_from_errno(errno) : 0;
    close(fd);
    return rc;
}

int ck_write_file_sync(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ck_from_errno(errno);
    const char *p = data;
    int rc = 0;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = ck_from_errno(errno);
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    if (!rc && fsync(fd) < 0)
        rc = ck_from_errno(errno);
    close(fd);
    return rc;
}

int ck_replace_file(const char *tmp, const char *path, const char *dir, const void *data, size_t n)
{
    int rc = ck_write_file_sync(tmp, data, n);
    if (!rc && rename(tmp, path) != 0)
        rc = ck_from_errno(errno);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return dir ? ck_fsync_path(dir, true) : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int ck_rmtree(const char *path)
{
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        return CK_EIO;
    return 0;
}
