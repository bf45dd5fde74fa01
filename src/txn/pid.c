/* Durable producer-id allocator.
 *
 * FILE FORMAT (also docs/PRODUCER_STATE.md): <dir>/producer-id-block, 16 bytes,
 * big-endian:
 *    0  4  magic "CKPI"
 *    4  8  int64 block end: no id >= it was ever handed out; the next process starts here
 *   12  4  CRC-32C of bytes 0-11
 * Replaced atomically through producer-id-block.tmp (write, fdatasync, rename, folder
 * fsync). A missing file means no id was ever handed out (start at 0): the file is made
 * durable before the first id is returned, and a new folder is fsynced in its parent. */
#include "txn/pid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "txn/pstate.h" /* ck__txn_write_durable */

#define PID_MAGIC 0x434b5049u /* "CKPI" */
#define PID_FILE_SIZE 16

struct ck_pid {
    char *path;   /* <dir>/producer-id-block */
    int64_t next; /* next id to hand out */
    int64_t end;  /* persisted block end: next < end means next may be handed out */
    int err;      /* sticky error, 0 if none */
};

/* Makes a new folder's entry durable in its parent. */
static int fsync_parent_of(const char *dir)
{
    char parent[4096];
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    while (len > 0 && dir[len - 1] != '/')
        len--;
    if (len == 0) {
        parent[0] = '.';
        len = 1;
    } else {
        if (len >= sizeof(parent))
            return CK_EINVAL;
        memcpy(parent, dir, len);
    }
    parent[len] = 0;
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ck_from_errno(errno);
    int rc = fsync(fd) != 0 ? ck_from_errno(errno) : 0;
    close(fd);
    return rc;
}

static int read_end(const char *path, int64_t *end)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *end = 0;
            return 0;
        }
        return ck_from_errno(errno);
    }
    uint8_t b[PID_FILE_SIZE + 1];
    ssize_t r;
    do
        r = pread(fd, b, sizeof(b), 0);
    while (r < 0 && errno == EINTR);
    int rc = r < 0 ? ck_from_errno(errno) : 0;
    close(fd);
    if (rc)
        return rc;
    /* Reading one byte more than the size catches a file that grew. */
    if (r != PID_FILE_SIZE || ck_get_u32(b) != PID_MAGIC ||
        ck_get_u32(b + 12) != ck_crc32c(0, b, 12) || (int64_t)ck_get_u64(b + 4) < 0)
        return CK_ECORRUPT;
    *end = (int64_t)ck_get_u64(b + 4);
    return 0;
}

int ck_pid_open(const char *dir, ck_pid_t **out)
{
    *out = NULL;
    size_t dlen = strlen(dir);
    if (dlen == 0 || dlen > 4000)
        return CK_EINVAL;
    if (mkdir(dir, 0755) == 0) {
        int rc = fsync_parent_of(dir);
        if (rc)
            return rc;
    } else if (errno != EEXIST) {
        return ck_from_errno(errno);
    }
    ck_pid_t *p = ck_calloc(1, sizeof(*p));
    if (!p)
        return CK_ENOMEM;
    p->path = ck_malloc(dlen + sizeof("/" CK_PID_FILE ".tmp"));
    if (!p->path) {
        ck_free(p);
        return CK_ENOMEM;
    }
    /* A temp file is a write that never got renamed: the old file is still the truth. */
    sprintf(p->path, "%s/%s.tmp", dir, CK_PID_FILE);
    unlink(p->path);
    sprintf(p->path, "%s/%s", dir, CK_PID_FILE);
    int rc = read_end(p->path, &p->end);
    if (rc) {
        ck_pid_close(p);
        return rc;
    }
    /* Ids between the last handed out and the persisted end are unknown: skip them. */
    p->next = p->end;
    *out = p;
    return 0;
}

int ck_pid_next(ck_pid_t *p, int64_t *producer_id)
{
    if (p->err)
        return CK_ESTATE;
    if (p->next == p->end) {
        if (p->end > INT64_MAX - CK_PID_BLOCK_SIZE)
            return CK_ERANGE;
        int64_t end = p->end + CK_PID_BLOCK_SIZE;
        uint8_t b[PID_FILE_SIZE];
        ck_put_u32(b, PID_MAGIC);
        ck_put_u64(b + 4, (uint64_t)end);
        ck_put_u32(b + 12, ck_crc32c(0, b, 12));
        int rc = ck__txn_write_durable(p->path, b, sizeof(b));
        if (rc) {
            /* The file may now hold the new end or the old one: handing out nothing more
             * from this handle is the only safe choice. */
            p->err = rc;
            return rc;
        }
        p->end = end;
    }
    *producer_id = p->next++;
    return 0;
}

void ck_pid_close(ck_pid_t *p)
{
    if (!p)
        return;
    ck_free(p->path);
    ck_free(p);
}
