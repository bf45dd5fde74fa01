/* Vector log file, version 1 (one per partition: <data>/vector/<topic>/p<N>.vec).
 *
 * All integers little-endian.
 *   header, 64 bytes:
 *     0   4   magic "CKVL"
 *     4   2   version = 1
 *     6   2   metric (1 cosine, 2 dot, 3 euclidean)
 *     8   4   dims (1..4096)
 *     12  4   reserved = 0
 *     16  40  model name, NUL-padded (at most 39 bytes, then NULs)
 *     56  4   reserved = 0
 *     60  4   CRC-32C of bytes [0, 60)
 *   then records of 16 + 4 * dims bytes, back to back:
 *     0   8   offset (int64; strictly increasing over the file)
 *     8   8   timestamp (int64, ms)
 *     16      dims float32
 *
 * Records carry no checksum: the CHECKPOINT names how many are committed (written and
 * fdatasynced before it was), and the file is cut to that count at open, so a torn tail
 * is never read. */
#include "vector/vlog.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/err.h"

#define MAGIC "CKVL"
#define VERSION 1
#define FLUSH_AT (1u << 20) /* buffered bytes that trigger a write */

struct ck_vlog {
    int fd;
    uint32_t dims;
    size_t rec;       /* record size */
    uint64_t written; /* records in the file */
    uint8_t *buf;     /* records appended after `written` */
    size_t nbuf, cap; /* bytes */
    int64_t last;     /* the last record's offset (INT64_MIN: none) */
    int err;          /* sticky write error */
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

size_t ck_vlog_record_size(uint32_t dims)
{
    return 16 + 4 * (size_t)dims;
}

static void make_header(uint8_t h[CK_VLOG_HEADER], const ck_vlog_params_t *p)
{
    memset(h, 0, CK_VLOG_HEADER);
    memcpy(h, MAGIC, 4);
    h[4] = VERSION;
    h[6] = (uint8_t)p->metric;
    put32(h + 8, p->dims);
    memcpy(h + 16, p->model, strlen(p->model));
    put32(h + 60, ck_crc32c(0, h, 60));
}

static int full_pread(int fd, void *b, size_t n, uint64_t at)
{
    uint8_t *p = b;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return CK_EIO;
        if (r == 0)
            return CK_ETRUNC;
        p += r;
        n -= (size_t)r;
        at += (uint64_t)r;
    }
    return 0;
}

static int full_pwrite(int fd, const void *b, size_t n, uint64_t at)
{
    const uint8_t *p = b;
    while (n) {
        ssize_t r = pwrite(fd, p, n, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == ENOSPC ? CK_ENOSPC : CK_EIO;
        p += r;
        n -= (size_t)r;
        at += (uint64_t)r;
    }
    return 0;
}

int ck_vlog_open(const char *path, const ck_vlog_params_t *p, uint64_t records, ck_vlog_t **out)
{
    *out = NULL;
    if (!p->dims || p->dims > CK_VLOG_MAX_DIMS || p->metric < CK_VMETRIC_COSINE ||
        p->metric > CK_VMETRIC_EUCLIDEAN || !p->model || strlen(p->model) > CK_VLOG_MODEL_MAX)
        return CK_EINVAL;
    int fd = open(path, O_RDWR | O_CLOEXEC | (records ? 0 : O_CREAT), 0644);
    if (fd < 0)
        return errno == ENOENT ? CK_ETRUNC : CK_EIO;
    uint8_t want[CK_VLOG_HEADER], have[CK_VLOG_HEADER];
    make_header(want, p);
    size_t rec = ck_vlog_record_size(p->dims);
    struct stat st;
    int rc = fstat(fd, &st) ? CK_EIO : 0;
    if (!rc && st.st_size == 0 && records == 0) {
        rc = full_pwrite(fd, want, sizeof(want), 0);
        if (!rc && fdatasync(fd))
            rc = CK_EIO;
    } else if (!rc) {
        rc = full_pread(fd, have, sizeof(have), 0);
        if (rc == CK_ETRUNC || (!rc && (memcmp(have, MAGIC, 4) || have[4] != VERSION || have[5] ||
                                        get32(have + 60) != ck_crc32c(0, have, 60))))
            rc = CK_ECORRUPT;
        else if (!rc && memcmp(have, want, sizeof(have)))
            rc = CK_EEXIST;
        uint64_t end = CK_VLOG_HEADER + records * rec;
        if (!rc && (uint64_t)st.st_size < end)
            rc = CK_ETRUNC;
        if (!rc && (uint64_t)st.st_size > end && ftruncate(fd, (off_t)end))
            rc = CK_EIO;
    }
    ck_vlog_t *l = rc ? NULL : ck_calloc(1, sizeof(*l));
    if (!rc && !l)
        rc = CK_ENOMEM;
    if (rc) {
        close(fd);
        return rc;
    }
    l->fd = fd;
    l->dims = p->dims;
    l->rec = rec;
    l->written = records;
    l->last = INT64_MIN;
    if (records) {
        uint8_t b[8];
        if ((rc = full_pread(fd, b, 8, CK_VLOG_HEADER + (records - 1) * rec))) {
            ck_vlog_close(l);
            return rc;
        }
        l->last = (int64_t)get64(b);
    }
    *out = l;
    return 0;
}

void ck_vlog_close(ck_vlog_t *l)
{
    if (!l)
        return;
    close(l->fd);
    ck_free(l->buf);
    ck_free(l);
}

uint64_t ck_vlog_count(const ck_vlog_t *l)
{
    return l->written + l->nbuf / l->rec;
}

static int flush_buf(ck_vlog_t *l)
{
    if (l->err)
        return l->err;
    if (!l->nbuf)
        return 0;
    int rc = full_pwrite(l->fd, l->buf, l->nbuf, CK_VLOG_HEADER + l->written * l->rec);
    if (rc)
        return l->err = rc;
    l->written += l->nbuf / l->rec;
    l->nbuf = 0;
    return 0;
}

int ck_vlog_append(ck_vlog_t *l, int64_t offset, int64_t ts, const float *v)
{
    if (l->err)
        return l->err;
    if (offset <= l->last)
        return CK_EINVAL;
    if (l->nbuf + l->rec > l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64 * l->rec;
        uint8_t *nb = ck_realloc(l->buf, cap);
        if (!nb)
            return CK_ENOMEM;
        l->buf = nb;
        l->cap = cap;
    }
    uint8_t *r = l->buf + l->nbuf;
    put64(r, (uint64_t)offset);
    put64(r + 8, (uint64_t)ts);
    memcpy(r + 16, v, 4 * (size_t)l->dims); /* the host is little-endian (x86-64, arm64) */
    l->nbuf += l->rec;
    l->last = offset;
    return l->nbuf >= FLUSH_AT ? flush_buf(l) : 0;
}

int ck_vlog_sync(ck_vlog_t *l)
{
    int rc = flush_buf(l);
    if (!rc && fdatasync(l->fd))
        rc = l->err = CK_EIO;
    return rc;
}

int ck_vlog_read(ck_vlog_t *l, uint64_t first, size_t n, int64_t *offsets, int64_t *ts,
                 float *vecs)
{
    if (first > ck_vlog_count(l) || n > ck_vlog_count(l) - first)
        return CK_ERANGE;
    enum { CHUNK = 256 };
    uint8_t *tmp = NULL;
    for (size_t done = 0; done < n;) {
        uint64_t i = first + done;
        size_t take;
        const uint8_t *src;
        if (i >= l->written) { /* still in the buffer */
            take = n - done;
            src = l->buf + (i - l->written) * l->rec;
        } else {
            take = n - done < CHUNK ? n - done : CHUNK;
            if (i + take > l->written)
                take = (size_t)(l->written - i);
            if (!tmp && !(tmp = ck_malloc(CHUNK * l->rec)))
                return CK_ENOMEM;
            int rc = full_pread(l->fd, tmp, take * l->rec, CK_VLOG_HEADER + i * l->rec);
            if (rc) {
                ck_free(tmp);
                return rc;
            }
            src = tmp;
        }
        for (size_t k = 0; k < take; k++) {
            const uint8_t *r = src + k * l->rec;
            if (offsets)
                offsets[done + k] = (int64_t)get64(r);
            if (ts)
                ts[done + k] = (int64_t)get64(r + 8);
            if (vecs)
                memcpy(vecs + (done + k) * l->dims, r + 16, 4 * (size_t)l->dims);
        }
        done += take;
    }
    ck_free(tmp);
    return 0;
}
