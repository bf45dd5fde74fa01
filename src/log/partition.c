/* Partitions: opening (recovery, see segment.c for the procedure), appending, rolling,
 * dropping. Reads are in read.c, retention in retention.c, group commit in flusher.c.
 *
 * Segment states (transitions on the owner thread unless marked "flusher"):
 *
 *   ck__seg_create              ck__partition_roll
 *        |                              |
 *        v                              v
 *     ACTIVE --------------------> SEALED, on p->sealq
 *        ^                              | flusher phase 1: fdatasync .log
 *        | recovery: last segment       | flusher phase 2: index tail, fsync, R
 *        |                              v
 *   ck__seg_open ----------------> SEALED, complete (TRUSTED once below R;
 *                base < R               |            indexes loaded lazily)
 *                                       | ck__partition_drop_front (retention,
 *                                       v   DeleteRecords, recovery)
 *                                   unlinked; freed at the last unref
 *
 * A segment leaves memory when its last reference goes (the flusher may outlive a drop). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/logging.h"
#include "log/batch.h"
#include "log/log_int.h"

#define READ_SCAN_BUF (64u << 10)

void ck_log_config_default(ck_log_config_t *cfg)
{
    cfg->segment_bytes = INT64_C(1) << 30;
    cfg->segment_ms = INT64_C(7) * 24 * 3600 * 1000;
    cfg->retention_ms = INT64_C(7) * 24 * 3600 * 1000;
    cfg->retention_bytes = -1;
    cfg->index_interval_bytes = 4096;
}

static void cfg_sanitize(ck_log_config_t *dst, const ck_log_config_t *src)
{
    if (src)
        *dst = *src;
    else
        ck_log_config_default(dst);
    /* positions in the offset index are int32 */
    if (dst->segment_bytes < 1)
        dst->segment_bytes = 1;
    if (dst->segment_bytes > INT32_MAX)
        dst->segment_bytes = INT32_MAX;
    if (dst->index_interval_bytes < 1)
        dst->index_interval_bytes = 1;
}

void ck_partition_set_config(ck_partition_t *p, const ck_log_config_t *cfg)
{
    cfg_sanitize(&p->cfg, cfg);
}

/* ---- lifetime ---- */

void ck__partition_ref(ck_partition_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void ck__partition_unref(ck_partition_t *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&p->mu);
    if (p->dirfd >= 0)
        close(p->dirfd);
    if (p->rpfd >= 0)
        close(p->rpfd);
    ck__scan_free(&p->scan);
    ck_free(p->segs);
    ck_free(p->topic);
    ck_free(p->name);
    ck_free(p->path);
    ck_free(p);
}

void ck__partition_close(ck_partition_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->dropped = true;
    ck__seg_t *q = p->sealq;
    p->sealq = p->sealq_tail = NULL;
    p->pub_active = NULL;
    pthread_mutex_unlock(&p->mu);
    while (q) {
        ck__seg_t *n = q->seal_next;
        ck__seg_unref(q);
        q = n;
    }
    for (size_t i = 0; i < p->nsegs; i++)
        ck__seg_unref(p->segs[i]);
    p->nsegs = 0;
    p->seg_gen++;
    ck__scan_free(&p->scan);
}

void ck__partition_fail(ck_partition_t *p, int err, const char *what)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&p->err, &expected, err))
        CK_ERROR("log", "%s: %s: %s; partition refuses appends until reopened", p->name, what,
                 ck_strerror(err));
}

/* ---- accessors ---- */

int64_t ck_partition_log_start(const ck_partition_t *p)
{
    return p->log_start;
}
int64_t ck_partition_log_end(const ck_partition_t *p)
{
    return p->log_end;
}
const char *ck_partition_dir(const ck_partition_t *p) { return p->path; }

int64_t ck_partition_size_bytes(const ck_partition_t *p)
{
    return p->size_bytes;
}

int64_t ck_partition_durable_end(const ck_partition_t *p)
{
    /* the cast drops const only: C11 atomic loads take non-const pointers on older clang */
    return atomic_load_explicit((_Atomic int64_t *)&p->durable_end, memory_order_acquire);
}

int ck_partition_error(const ck_partition_t *p)
{
    return atomic_load_explicit((atomic_int *)&p->err, memory_order_relaxed);
}

/* ---- segment list ---- */

static int segs_reserve(ck_partition_t *p, size_t more)
{
    if (p->nsegs + more <= p->segcap)
        return 0;
    size_t cap = p->segcap ? p->segcap : 8;
    while (cap < p->nsegs + more)
        cap *= 2;
    ck__seg_t **n = ck_realloc(p->segs, cap * sizeof(*n));
    if (!n)
        return CK_ENOMEM;
    p->segs = n;
    p->segcap = cap;
    return 0;
}

void ck__partition_drop_front(ck_partition_t *p)
{
    ck__seg_t *s = p->segs[0];
    memmove(p->segs, p->segs + 1, (p->nsegs - 1) * sizeof(*p->segs));
    p->nsegs--;
    p->seg_gen++;
    p->size_bytes -= s->size;
    ck__seg_unlink(p->dirfd, s->base);
    ck__seg_unref(s);
}

int ck__partition_seg_index(ck_partition_t *p, ck__seg_t *s)
{
    return ck__seg_load_index(p->dirfd, s, p->cfg.index_interval_bytes, p->name);
}

int ck__partition_seg_reindex(ck_partition_t *p, ck__seg_t *s)
{
    return ck__seg_reindex(p->dirfd, s, p->cfg.index_interval_bytes, p->name);
}

/* ---- open / recovery ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* "<20 digits><ext>" → base offset, or -1. */
static int64_t parse_seg_name(const char *name, const char **ext)
{
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        int d = name[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *ext = name + 20;
    return v;
}

static int push_i64(int64_t **a, size_t *n, size_t *cap, int64_t v)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        int64_t *x = ck_realloc(*a, c * sizeof(*x));
        if (!x)
            return CK_ENOMEM;
        *a = x;
        *cap = c;
    }
    (*a)[(*n)++] = v;
    return 0;
}

/* Lists the segment bases (sorted), removing temp files and orphaned index files. */
static int list_segments(ck_partition_t *p, int64_t **out, size_t *nout)
{
    int fd = dup(p->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return CK_EIO;
    }
    rewinddir(d);
    int64_t *logs = NULL, *idx = NULL;
    size_t nl = 0, cl = 0, ni = 0, ci = 0;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (len > 4 && strcmp(name + len - 4, ".tmp") == 0) {
            unlinkat(p->dirfd, name, 0); /* an interrupted atomic write */
            continue;
        }
        if (len < 21)
            continue;
        const char *ext;
        int64_t base = parse_seg_name(name, &ext);
        if (base < 0)
            continue;
        if (strcmp(ext, ".log") == 0)
            rc = push_i64(&logs, &nl, &cl, base);
        else if (strcmp(ext, ".index") == 0 || strcmp(ext, ".timeindex") == 0)
            rc = push_i64(&idx, &ni, &ci, base);
    }
    closedir(d);
    if (!rc) {
        if (nl > 1)
            qsort(logs, nl, sizeof(*logs), cmp_i64);
        for (size_t i = 0; i < ni; i++) {
            if (nl && bsearch(&idx[i], logs, nl, sizeof(*logs), cmp_i64))
                continue;
            /* left over from a deletion interrupted between the index files and the .log */
            char name[CK__NAME_MAX];
            ck__seg_name(name, idx[i], ".index");
            unlinkat(p->dirfd, name, 0);
            ck__seg_name(name, idx[i], ".timeindex");
            unlinkat(p->dirfd, name, 0);
        }
    }
    ck_free(idx);
    if (rc) {
        ck_free(logs);
        return rc;
    }
    *out = logs;
    *nout = nl;
    return 0;
}

/* Finishes a segment that recovery checked but that is not the last one: it is sealed, so
 * it gets its final time entry and complete, fsynced index files (W3). */
static void seal_recovered(ck_partition_t *p, ck__seg_t *s, bool *index_ok)
{
    ck__seg_seal_time(s);
    s->sealed = true;
    int rc = ck__index_write_own(&s->tidx, CK__TIDX_ESIZE);
    if (!rc && s->tidx.fd >= 0 && ck__log_io.io_fdatasync(s->tidx.fd) != 0)
        rc = ck__io_code(errno);
    if (rc || s->oidx.write_failed || s->tidx.write_failed)
        *index_ok = false;
    if (s->oidx.fd >= 0)
        close(s->oidx.fd);
    if (s->tidx.fd >= 0)
        close(s->tidx.fd);
    s->oidx.fd = s->tidx.fd = -1;
}

static void remove_all_segments(ck_partition_t *p)
{
    while (p->nsegs > 0) {
        ck__seg_t *s = p->segs[--p->nsegs];
        ck__seg_unlink(p->dirfd, s->base);
        ck__seg_unref(s);
    }
    p->seg_gen++;
}

static int partition_load(ck_partition_t *p)
{
    int64_t *bases = NULL;
    size_t nb = 0;
    int rc = list_segments(p, &bases, &nb);
    if (rc)
        return rc;

    int64_t ls = -1;
    rc = ck__meta_read(p->dirfd, CK__LOG_START_FILE, CK__MAGIC_LOG_START, &ls);
    if (rc == CK_ECORRUPT)
        CK_WARN("log", "%s: %s is damaged; using the first segment's base", p->name,
                CK__LOG_START_FILE);
    else if (rc && rc != CK_ENOENT) {
        ck_free(bases);
        return rc;
    }
    if (rc || ls < 0)
        ls = -1;
    int64_t rp = 0;
    if (ck__meta_read(p->dirfd, CK__RECOVERY_POINT_FILE, CK__MAGIC_RECOVERY_POINT, &rp) != 0 ||
        rp < 0)
        rp = 0; /* check every segment */

    rc = segs_reserve(p, nb + 1);
    for (size_t i = 0; !rc && i < nb; i++) {
        ck__seg_t *s;
        rc = ck__seg_open(p->dirfd, bases[i], &s);
        if (!rc)
            p->segs[p->nsegs++] = s;
    }
    ck_free(bases);
    if (rc)
        return rc;

    bool dir_changed = false, index_ok = true;
    int32_t interval = p->cfg.index_interval_bytes;
    if (p->nsegs > 0) {
        size_t first = p->nsegs - 1;
        for (size_t i = 0; i < p->nsegs; i++) {
            if (p->segs[i]->base >= rp) {
                first = i;
                break;
            }
        }
        for (size_t i = 0; i < first; i++) {
            p->segs[i]->next = p->segs[i + 1]->base;
            p->segs[i]->sealed = true;
        }
        for (size_t k = first; k < p->nsegs; k++) {
            ck__seg_t *s = p->segs[k];
            int64_t cut = 0;
            rc = ck__seg_recover(p->dirfd, s, interval, p->name, &cut);
            if (rc) {
                CK_ERROR("log", "%s: recovery of segment %020" PRId64 " failed: %s", p->name,
                         s->base, ck_strerror(rc));
                return rc;
            }
            if (k + 1 < p->nsegs && s->next != p->segs[k + 1]->base) {
                /* Normally a segment rolled but never fully fsynced: nothing after it was
                 * acknowledged (W1). If it had been fsynced, the disk lost synced data. */
                CK_ERROR("log",
                         "%s: segment %020" PRId64 " ends at offset %" PRId64
                         " but the next starts at %" PRId64 "; removing %zu later segment(s)",
                         p->name, s->base, s->next, p->segs[k + 1]->base, p->nsegs - k - 1);
                while (p->nsegs > k + 1) {
                    ck__seg_t *x = p->segs[--p->nsegs];
                    ck__seg_unlink(p->dirfd, x->base);
                    ck__seg_unref(x);
                }
                dir_changed = true;
            }
            if (k + 1 < p->nsegs)
                seal_recovered(p, s, &index_ok);
            else if (s->oidx.write_failed || s->tidx.write_failed)
                index_ok = false;
        }
    }

    int64_t first_base = p->nsegs ? p->segs[0]->base : 0;
    int64_t end = p->nsegs ? p->segs[p->nsegs - 1]->next : 0;
    p->log_start = ls > first_base ? ls : first_base;
    if (p->nsegs > 0 && p->log_start > end) {
        /* Only possible if acknowledged data vanished under us; never reuse offsets. */
        CK_ERROR("log",
                 "%s: log start %" PRId64 " is past the log end %" PRId64
                 "; restarting the log empty at %" PRId64,
                 p->name, p->log_start, end, p->log_start);
        remove_all_segments(p);
        dir_changed = true;
    }
    if (p->nsegs == 0) {
        ck__seg_t *s;
        rc = ck__seg_create(p->dirfd, p->log_start, interval, &s);
        if (rc)
            return rc;
        p->segs[p->nsegs++] = s;
        dir_changed = true;
    }
    while (p->nsegs > 1 && p->segs[1]->base <= p->log_start) {
        ck__partition_drop_front(p);
        dir_changed = true;
    }
    if (dir_changed && ck__log_io.io_fsync(p->dirfd) != 0) {
        CK_ERROR("log", "%s: fsync of the partition folder failed: %s", p->name, strerror(errno));
        return CK_EIO;
    }

    ck__seg_t *a = p->segs[p->nsegs - 1];
    a->sealed = false;
    a->created_ms = ck_wall_ms();
    p->log_end = a->next;
    p->size_bytes = 0;
    for (size_t i = 0; i < p->nsegs; i++)
        p->size_bytes += p->segs[i]->size;
    atomic_store_explicit(&p->durable_end, p->log_end, memory_order_release);
    p->pub_active = a;
    p->pub_end = p->log_end;
    p->pub_size = a->size;
    p->fl_synced_base = a->base;
    p->fl_synced_size = a->size;
    /* W3: every segment below the active one was just checked or was trusted already */
    p->fl_rp_blocked = !index_ok;
    if (index_ok && ck__meta_write_inplace(p->rpfd, CK__MAGIC_RECOVERY_POINT, a->base) != 0)
        CK_WARN("log", "%s: cannot write %s", p->name, CK__RECOVERY_POINT_FILE);
    return 0;
}

static bool topic_name_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 249 || strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int register_partition(ck_log_t *log, ck_partition_t *p)
{
    if (log->nparts == log->partcap) {
        size_t cap = log->partcap ? log->partcap * 2 : 16;
        ck_partition_t **n = ck_realloc(log->parts, cap * sizeof(*n));
        if (!n)
            return CK_ENOMEM;
        log->parts = n;
        log->partcap = cap;
    }
    log->parts[log->nparts++] = p;
    return 0;
}

static void unregister_partition(ck_log_t *log, ck_partition_t *p)
{
    for (size_t i = 0; i < log->nparts; i++) {
        if (log->parts[i] == p) {
            log->parts[i] = log->parts[--log->nparts];
            return;
        }
    }
}

int ck_log_partition_open(ck_log_t *log, const char *topic, int32_t partition,
                          const ck_log_config_t *cfg, ck_partition_t **out)
{
    if (!topic_name_ok(topic) || partition < 0)
        return CK_EINVAL;
    for (size_t i = 0; i < log->nparts; i++)
        if (log->parts[i]->id == partition && strcmp(log->parts[i]->topic, topic) == 0)
            return CK_EEXIST;

    ck_partition_t *p = ck_calloc(1, sizeof(*p));
    if (!p)
        return CK_ENOMEM;
    atomic_init(&p->refs, 1);
    atomic_init(&p->err, 0);
    atomic_init(&p->durable_end, 0);
    p->log = log;
    p->id = partition;
    p->dirfd = p->rpfd = -1;
    p->seg_gen = 1;
    cfg_sanitize(&p->cfg, cfg);
    ck__scan_init(&p->scan, READ_SCAN_BUF);
    pthread_mutex_init(&p->mu, NULL);
    char name[300];
    snprintf(name, sizeof(name), "%s-%" PRId32, topic, partition);
    size_t plen = strlen(log->dir) + 1 + strlen(name) + 1;
    p->topic = ck_strdup(topic);
    p->name = ck_strdup(name);
    p->path = ck_malloc(plen);
    int rc = 0;
    if (!p->topic || !p->name || !p->path) {
        rc = CK_ENOMEM;
        goto fail;
    }
    snprintf(p->path, plen, "%s/%s", log->dir, name);

    if (mkdirat(log->dirfd, name, 0755) == 0) {
        /* the new folder's entry must survive a crash with the data inside it */
        if (ck__log_io.io_fsync(log->dirfd) != 0) {
            rc = CK_EIO;
            goto fail;
        }
    } else if (errno != EEXIST) {
        rc = ck__io_code(errno);
        goto fail;
    }
    p->dirfd = openat(log->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p->dirfd < 0) {
        rc = ck_from_errno(errno);
        goto fail;
    }
    p->rpfd = openat(p->dirfd, CK__RECOVERY_POINT_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->rpfd < 0) {
        rc = ck__io_code(errno);
        goto fail;
    }
    rc = partition_load(p);
    if (!rc)
        rc = register_partition(log, p);
    if (rc)
        goto fail;
    CK_DEBUG("log", "%s: open, offsets %" PRId64 "..%" PRId64 " in %zu segment(s)", p->name,
             p->log_start, p->log_end, p->nsegs);
    *out = p;
    return 0;
fail:
    CK_ERROR("log", "cannot open partition %s-%" PRId32 ": %s", topic, partition, ck_strerror(rc));
    ck__partition_close(p);
    ck__partition_unref(p);
    return rc;
}

/* Removes every file of the partition folder, then the folder. */
static int remove_folder(ck_log_t *log, ck_partition_t *p)
{
    int fd = dup(p->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return CK_EIO;
    }
    rewinddir(d);
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(p->dirfd, de->d_name, 0) != 0 && errno != ENOENT) {
            CK_WARN("log", "%s: cannot remove %s: %s", p->name, de->d_name, strerror(errno));
            rc = CK_EIO;
        }
    }
    closedir(d);
    if (unlinkat(log->dirfd, p->name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        CK_WARN("log", "cannot remove folder %s: %s", p->path, strerror(errno));
        rc = CK_EIO;
    }
    if (ck__log_io.io_fsync(log->dirfd) != 0)
        rc = CK_EIO;
    return rc;
}

int ck_log_partition_drop(ck_log_t *log, ck_partition_t *p)
{
    unregister_partition(log, p);
    ck__partition_close(p);
    int rc = remove_folder(log, p);
    ck__partition_unref(p);
    return rc;
}

/* ---- append ---- */

int ck__partition_roll(ck_partition_t *p, int64_t now_ms)
{
    ck__seg_t *old = p->segs[p->nsegs - 1];
    if (segs_reserve(p, 1))
        return CK_ENOMEM;
    ck__seg_t *ns;
    int rc = ck__seg_create(p->dirfd, p->log_end, p->cfg.index_interval_bytes, &ns);
    if (rc) {
        ck__partition_fail(p, rc == CK_ENOSPC ? rc : CK_EIO, "cannot create a new segment");
        return rc == CK_ENOSPC ? rc : CK_EIO;
    }
    ns->created_ms = now_ms;
    ck__seg_ref(old); /* owned by the seal queue until the flusher is done with it */
    pthread_mutex_lock(&p->mu);
    ck__seg_seal_time(old);
    old->sealed = true;
    old->seal_next = NULL;
    if (p->sealq_tail)
        p->sealq_tail->seal_next = old;
    else
        p->sealq = old;
    p->sealq_tail = old;
    p->pub_active = ns;
    p->pub_size = 0;
    p->dir_dirty = true;
    bool list = !p->listed;
    p->listed = true;
    pthread_mutex_unlock(&p->mu);
    p->segs[p->nsegs++] = ns;
    if (list)
        ck__log_mark_dirty(p->log, p);
    return 0;
}

int ck_partition_append(ck_partition_t *p, uint8_t *batches, size_t len, int64_t log_append_time,
                        int64_t *base_offset, int64_t *last_offset)
{
    if (ck_partition_error(p))
        return CK_ESTATE;
    if (len == 0)
        return CK_EINVAL;
    if (len > INT32_MAX)
        return CK_ETOOBIG;
    /* Structure only (the caller validated CRCs and records): a wrong length here would
     * make the log unreadable past this point. */
    int64_t count = 0;
    for (size_t off = 0; off < len;) {
        const uint8_t *b = batches + off;
        if (len - off < CK_BATCH_HEADER_SIZE || b[CK_BATCH_OFF_MAGIC] != 2)
            return CK_EINVAL;
        int64_t total = ck_batch_total_size(b, len - off);
        int32_t lod = (int32_t)ck_get_u32(b + CK_BATCH_OFF_LAST_OFFSET_DELTA);
        if (total < CK_BATCH_HEADER_SIZE || (uint64_t)total > len - off || lod < 0)
            return CK_EINVAL;
        count += (int64_t)lod + 1;
        off += (size_t)total;
    }
    if (count > INT32_MAX)
        return CK_ETOOBIG;

    int64_t now = ck_wall_ms();
    ck__seg_t *s = p->segs[p->nsegs - 1];
    if (s->size > 0 && (s->size + (int64_t)len > p->cfg.segment_bytes ||
                        (p->cfg.segment_ms > 0 && now - s->created_ms >= p->cfg.segment_ms) ||
                        p->log_end + count - 1 - s->base > INT32_MAX)) {
        int rc = ck__partition_roll(p, now);
        if (rc)
            return rc;
        s = p->segs[p->nsegs - 1];
    }

    int64_t next = p->log_end;
    for (size_t off = 0; off < len;) {
        uint8_t *b = batches + off;
        size_t total = (size_t)ck_batch_total_size(b, len - off);
        ck_put_u64(b + CK_BATCH_OFF_BASE_OFFSET, (uint64_t)next);
        ck_put_u32(b + CK_BATCH_OFF_LEADER_EPOCH, 0);
        if (log_append_time >= 0) {
            uint16_t attr = ck_get_u16(b + CK_BATCH_OFF_ATTRIBUTES);
            ck_put_u16(b + CK_BATCH_OFF_ATTRIBUTES, attr | CK_ATTR_TIMESTAMP_LOG_APPEND);
            ck_put_u64(b + CK_BATCH_OFF_BASE_TIMESTAMP, (uint64_t)log_append_time);
            ck_put_u64(b + CK_BATCH_OFF_MAX_TIMESTAMP, (uint64_t)log_append_time);
            ck_batch_update_crc(b, total); /* offset and epoch are outside the CRC */
        }
        next += (int64_t)(int32_t)ck_get_u32(b + CK_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
        off += total;
    }

    int rc = ck__pwrite_all(s->fd, batches, len, s->size, true);
    if (rc) {
        /* Leave no partial batch behind: readers and recovery both stop at s->size. */
        if (ftruncate(s->fd, (off_t)s->size) != 0)
            CK_ERROR("log", "%s: cannot cut a failed write back to %" PRId64 ": %s", p->name,
                     s->size, strerror(errno));
        char what[96];
        snprintf(what, sizeof(what), "append of %zu bytes at offset %" PRId64 " failed", len,
                 p->log_end);
        ck__partition_fail(p, rc, what);
        return rc;
    }
    if (s->size == 0)
        s->created_ms = now;

    pthread_mutex_lock(&p->mu);
    int64_t pos = s->size;
    for (size_t off = 0; off < len;) {
        const uint8_t *b = batches + off;
        size_t total = (size_t)ck_batch_total_size(b, len - off);
        int64_t rel = (int64_t)ck_get_u64(b + CK_BATCH_OFF_BASE_OFFSET) - s->base;
        ck__seg_note_batch(s, (int32_t)rel, pos,
                           (int64_t)ck_get_u64(b + CK_BATCH_OFF_MAX_TIMESTAMP));
        pos += (int64_t)total;
        off += total;
    }
    s->size = pos;
    s->next = next;
    p->pub_end = next;
    p->pub_size = pos;
    bool list = !p->listed;
    p->listed = true;
    pthread_mutex_unlock(&p->mu);
    if (list)
        ck__log_mark_dirty(p->log, p);

    *base_offset = p->log_end;
    *last_offset = next - 1;
    p->log_end = next;
    p->size_bytes += (int64_t)len;
    return 0;
}
