/* The log object and its group-commit thread.
 *
 * Appends only write to the page cache; one flusher thread makes them durable. A partition
 * that received bytes puts itself on log->dirty once (p->listed). Every flush_ms (or at
 * ck_log_flush_now) the flusher takes the whole dirty list and runs a round:
 *
 *   phase 1, per partition: under p->mu (short: a few loads and stores) take the seal
 *            queue, a reference to the active segment, the end offset and byte size of
 *            the appends so far, and the index entry counts; then, without any lock,
 *            fsync the folder (if a segment was created), fdatasync each rolled segment and
 *            the active one; then publish durable_end (release store).
 *   callback once, if some durable_end moved or a partition failed.
 *   phase 2, per partition: write the new index entries (they point at data fsynced in
 *            phase 1), complete and fsync the index files of rolled segments, move the
 *            recovery point (see segment.c, W2/W3), drop the references.
 *
 * Appends never wait for an fsync: the owner takes p->mu only for its own short section,
 * and log->mu only when a partition becomes dirty (once per round). With nothing dirty the
 * flusher sleeps until an append marks a partition dirty (log->idle), so an idle server
 * does not wake up every interval; the first append after a quiet spell is flushed at once. Partitions dropped while the flusher works on them stay
 * allocated through their reference count; segments likewise.
 *
 * The dirty list is intrusive with two link generations: while the flusher walks the
 * list of generation g, appends that re-list a partition use the links of g ^ 1. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/logging.h"
#include "log/log_int.h"

void ck__log_mark_dirty(ck_log_t *log, ck_partition_t *p)
{
    ck__partition_ref(p);
    pthread_mutex_lock(&log->mu);
    p->dirty_next[log->gen] = log->dirty;
    log->dirty = p;
    if (log->idle)
        pthread_cond_signal(&log->cv); /* the flusher sleeps until there is work */
    pthread_mutex_unlock(&log->mu);
}

/* Phase 1. Returns true if the durable callback is due for this partition. */
static bool flush_sync(ck_partition_t *p)
{
    p->fl_active = NULL;
    p->fl_sealed = NULL;
    pthread_mutex_lock(&p->mu);
    p->listed = false;
    if (p->dropped || p->fl_broken || !p->pub_active) {
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    ck__seg_t *sealed = p->sealq;
    p->sealq = p->sealq_tail = NULL;
    ck__seg_t *a = p->pub_active;
    ck__seg_ref(a);
    int64_t end = p->pub_end, size = p->pub_size;
    bool dir_dirty = p->dir_dirty;
    p->dir_dirty = false;
    p->fl_on = a->oidx.n;
    p->fl_tn = a->tidx.n;
    pthread_mutex_unlock(&p->mu);
    p->fl_active = a;
    p->fl_sealed = sealed;

    int rc = 0;
    char what[96] = "";
    /* Folder first: durable bytes in a file whose name is not durable are not durable. */
    if (dir_dirty && ck__log_io.io_fsync(p->dirfd) != 0) {
        rc = ck__io_code(errno);
        snprintf(what, sizeof(what), "fsync of the partition folder failed");
    }
    for (ck__seg_t *s = sealed; !rc && s; s = s->seal_next) {
        if (ck__log_io.io_fdatasync(s->fd) != 0) {
            rc = ck__io_code(errno);
            snprintf(what, sizeof(what), "fdatasync of segment %020" PRId64 " failed", s->base);
        }
    }
    if (!rc && size > 0 && (a->base != p->fl_synced_base || size != p->fl_synced_size)) {
        if (ck__log_io.io_fdatasync(a->fd) != 0) {
            rc = ck__io_code(errno);
            snprintf(what, sizeof(what), "fdatasync of segment %020" PRId64 " failed", a->base);
        }
    }
    if (rc) {
        /* After a failed fsync the page cache may have dropped the dirty pages: nothing
         * written so far can be called durable any more, so durable_end stays put. */
        p->fl_broken = true;
        ck__partition_fail(p, rc, what);
        return true;
    }
    p->fl_synced_base = a->base;
    p->fl_synced_size = size;
    if (end > atomic_load_explicit(&p->durable_end, memory_order_relaxed)) {
        atomic_store_explicit(&p->durable_end, end, memory_order_release);
        return true;
    }
    return false;
}

/* Writes the active segment's index entries [file_n, upto) (phase 2). The owner may be
 * growing the array, so the entries are copied out under p->mu. */
static void write_active_tail(ck_log_t *log, ck_partition_t *p, ck__index_t *ix, size_t esize,
                              size_t upto)
{
    if (ix->fd < 0 || ix->write_failed || upto <= ix->file_n)
        return;
    size_t bytes = (upto - ix->file_n) * esize;
    if (log->fl_cap < bytes) {
        size_t cap = bytes > 4096 ? bytes : 4096;
        uint8_t *b = ck_realloc(log->fl_buf, cap);
        if (!b)
            return; /* try again next round */
        log->fl_buf = b;
        log->fl_cap = cap;
    }
    pthread_mutex_lock(&p->mu);
    memcpy(log->fl_buf, ix->data + ix->file_n * esize, bytes);
    pthread_mutex_unlock(&p->mu);
    int rc = ck__index_write(ix, esize, log->fl_buf, upto);
    if (rc)
        CK_WARN("log", "%s: cannot write index entries: %s (rebuilt at next open)", p->name,
                ck_strerror(rc));
}

/* Completes a rolled segment's index files; false if they are not complete on disk. */
static bool finish_sealed(ck_partition_t *p, ck__seg_t *s)
{
    int rc = ck__index_write_own(&s->oidx, CK__OIDX_ESIZE);
    if (!rc)
        rc = ck__index_write_own(&s->tidx, CK__TIDX_ESIZE);
    if (!rc && s->oidx.fd >= 0 && ck__log_io.io_fdatasync(s->oidx.fd) != 0)
        rc = ck__io_code(errno);
    if (!rc && s->tidx.fd >= 0 && ck__log_io.io_fdatasync(s->tidx.fd) != 0)
        rc = ck__io_code(errno);
    bool ok =
        !rc && s->oidx.fd >= 0 && s->tidx.fd >= 0 && !s->oidx.write_failed && !s->tidx.write_failed;
    if (!ok)
        CK_WARN("log", "%s: index files of segment %020" PRId64 " incomplete%s%s", p->name, s->base,
                rc ? ": " : "", rc ? ck_strerror(rc) : "");
    if (s->oidx.fd >= 0)
        close(s->oidx.fd);
    if (s->tidx.fd >= 0)
        close(s->tidx.fd);
    s->oidx.fd = s->tidx.fd = -1;
    return ok;
}

/* Phase 2. */
static void flush_index(ck_log_t *log, ck_partition_t *p, bool *rp_blocked)
{
    ck__seg_t *a = p->fl_active, *sealed = p->fl_sealed;
    p->fl_active = NULL;
    p->fl_sealed = NULL;
    if (!a)
        return;
    bool ok = !p->fl_broken;
    if (ok) {
        write_active_tail(log, p, &a->oidx, CK__OIDX_ESIZE, p->fl_on);
        write_active_tail(log, p, &a->tidx, CK__TIDX_ESIZE, p->fl_tn);
    }
    bool any = sealed != NULL;
    while (sealed) {
        ck__seg_t *n = sealed->seal_next;
        if (ok && !finish_sealed(p, sealed))
            *rp_blocked = true;
        ck__seg_unref(sealed);
        sealed = n;
    }
    /* W3: segments below the active one are now complete on disk. */
    if (any && ok && !*rp_blocked &&
        ck__meta_write_inplace(p->rpfd, CK__MAGIC_RECOVERY_POINT, a->base) != 0)
        CK_WARN("log", "%s: cannot write %s", p->name, CK__RECOVERY_POINT_FILE);
    ck__seg_unref(a);
}

static void flush_round(ck_log_t *log, ck_partition_t *list, int gen)
{
    bool notify = false;
    for (ck_partition_t *p = list; p; p = p->dirty_next[gen])
        notify |= flush_sync(p);
    if (notify && log->cb)
        log->cb(log->cb_arg);
    for (ck_partition_t *p = list, *n; p; p = n) {
        n = p->dirty_next[gen];
        flush_index(log, p, &p->fl_rp_blocked);
        ck__partition_unref(p);
    }
}

static void *flusher_main(void *arg)
{
    ck_log_t *log = arg;
    const int64_t interval = (int64_t)log->flush_ms * 1000000;
    int64_t next = ck_mono_ns() + interval;
    pthread_mutex_lock(&log->mu);
    for (;;) {
        while (!log->stop && !log->kick) {
            if (!log->dirty) {
                /* nothing to do: sleep until an append marks a partition dirty, so an idle
                 * server does not wake up every interval */
                log->idle = true;
                pthread_cond_wait(&log->cv, &log->mu);
                log->idle = false;
                continue;
            }
            if (ck_mono_ns() >= next)
                break;
            struct timespec ts = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
            pthread_cond_timedwait(&log->cv, &log->mu, &ts);
        }
        bool stopping = log->stop;
        log->kick = false;
        ck_partition_t *list = log->dirty;
        int gen = log->gen;
        log->dirty = NULL;
        log->gen ^= 1;
        pthread_mutex_unlock(&log->mu);
        next = ck_mono_ns() + interval;
        if (list)
            flush_round(log, list, gen);
        pthread_mutex_lock(&log->mu);
        if (stopping && !log->dirty)
            break;
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

/* mkdir -p, fsyncing the parent of every folder it creates. */
static int make_dirs(const char *dir)
{
    size_t n = strlen(dir);
    char *path = ck_strndup(dir, n);
    if (!path)
        return CK_ENOMEM;
    int rc = 0;
    for (size_t i = 1; i <= n && !rc; i++) {
        if (path[i] != '/' && path[i] != 0)
            continue;
        char c = path[i];
        path[i] = 0;
        if (mkdir(path, 0755) == 0) {
            char *slash = strrchr(path, '/');
            int fd;
            if (!slash)
                fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            else if (slash == path)
                fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            else {
                *slash = 0;
                fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                *slash = '/';
            }
            if (fd < 0 || ck__log_io.io_fsync(fd) != 0)
                rc = CK_EIO;
            if (fd >= 0)
                close(fd);
        } else if (errno != EEXIST) {
            rc = ck__io_code(errno);
        }
        path[i] = c;
    }
    ck_free(path);
    return rc;
}

int ck_log_open(const char *dir, int flush_interval_ms, ck_log_durable_cb cb, void *cb_arg,
                ck_log_t **out)
{
    if (!dir || !*dir || flush_interval_ms < 1)
        return CK_EINVAL;
    int rc = make_dirs(dir);
    if (rc) {
        CK_ERROR("log", "cannot create %s: %s", dir, ck_strerror(rc));
        return rc;
    }
    ck_log_t *log = ck_calloc(1, sizeof(*log));
    if (!log)
        return CK_ENOMEM;
    log->dir = ck_strdup(dir);
    log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    log->flush_ms = flush_interval_ms;
    log->cb = cb;
    log->cb_arg = cb_arg;
    if (!log->dir || log->dirfd < 0) {
        rc = log->dir ? ck_from_errno(errno) : CK_ENOMEM;
        goto fail;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&log->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&log->mu, NULL);
    if (pthread_create(&log->thread, NULL, flusher_main, log) != 0) {
        pthread_cond_destroy(&log->cv);
        pthread_mutex_destroy(&log->mu);
        rc = CK_ENOMEM;
        goto fail;
    }
    *out = log;
    return 0;
fail:
    if (log->dirfd >= 0)
        close(log->dirfd);
    ck_free(log->dir);
    ck_free(log);
    return rc;
}

void ck_log_flush_now(ck_log_t *log)
{
    pthread_mutex_lock(&log->mu);
    log->kick = true;
    pthread_cond_signal(&log->cv);
    pthread_mutex_unlock(&log->mu);
}

void ck_log_close(ck_log_t *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->mu);
    log->stop = true;
    pthread_cond_signal(&log->cv);
    pthread_mutex_unlock(&log->mu);
    pthread_join(log->thread, NULL);
    for (size_t i = 0; i < log->nparts; i++) {
        ck__partition_close(log->parts[i]);
        ck__partition_unref(log->parts[i]);
    }
    ck_free(log->parts);
    ck_free(log->fl_buf);
    close(log->dirfd);
    pthread_cond_destroy(&log->cv);
    pthread_mutex_destroy(&log->mu);
    ck_free(log->dir);
    ck_free(log);
}
