/* Failures (disk full, short writes, failed fsync) and concurrency (appends while the
 * flusher runs, partitions opened and dropped under it). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "log/batch.h"
#include "log/log.h"
#include "log/log_int.h"
#include "test.h"
#include "test_log_util.h"

#define PART "t-0"

/* ---- injected failures (hooks installed before the log starts its thread) ---- */

static atomic_int fail_fsync;     /* fail every data fdatasync while set */
static atomic_int short_write_at; /* > 0: the next .log write of this many bytes or more is cut */
static atomic_int short_writes;

static int hook_fdatasync(int fd)
{
    if (atomic_load(&fail_fsync)) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static ssize_t hook_pwrite(int fd, const void *b, size_t n, off_t off)
{
    int at = atomic_load(&short_write_at);
    if (at > 0 && (n >= (size_t)at || atomic_load(&short_writes) > 0)) {
        if (atomic_fetch_add(&short_writes, 1) == 0)
            return pwrite(fd, b, n / 2, off); /* half of it lands */
        atomic_store(&short_write_at, 0);
        errno = ENOSPC; /* and the retry of the rest fails */
        return -1;
    }
    return pwrite(fd, b, n, off);
}

CK_TEST(log_fault_fsync_failure)
{
    ck__log_io.io_fdatasync = hook_fdatasync;
    const char *dir = tl_dir("data");
    ck_log_t *log = tl_open(dir, 600000); /* rounds only when asked */
    ck_log_config_t c;
    tl_cfg(&c, 4096, 256);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    tl_model_t m = {0};
    for (int i = 0; i < 20; i++)
        tl_append(p, &m, 2, 100, 1, 1, -1);
    tl_wait_durable(log, p);
    long cb = tl_callbacks();
    for (int i = 0; i < 20; i++) /* crosses a roll too */
        tl_append(p, &m, 2, 100, 1, 1, -1);
    atomic_store(&fail_fsync, 1);
    for (int i = 0; i < 5000 && !ck_partition_error(p); i++) {
        ck_log_flush_now(log);
        usleep(1000);
    }
    CHECK_EQ(ck_partition_error(p), CK_EIO);
    /* Taken once the failure is seen: a round that began before fail_fsync was set (the
     * roll's) may still have made records durable up to here; from now on nothing may. */
    int64_t durable = ck_partition_durable_end(p);
    for (int i = 0; i < 5000 && tl_callbacks() == cb; i++) /* set before the callback runs */
        usleep(1000);
    CHECK(tl_callbacks() > cb); /* the failure is announced */
    atomic_store(&fail_fsync, 0);
    usleep(20000);
    CHECK_EQ(ck_partition_durable_end(p), durable); /* never moves again */
    ck_wbuf_t w = CK_WBUF_INIT;
    tl_batch(&w, 1, 1, 1, 10, 0);
    int64_t b, l;
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &b, &l), CK_ESTATE);
    tl_verify(p, &m, 0, durable, 1000); /* durable data stays readable */
    int64_t o, ts;
    CHECK_EQ(ck_partition_offset_for_time(p, 0, &o, &ts), 0);
    ck_log_close(log);
    /* reopened, the partition works again (what survived is kept and fsynced) */
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_error(p), 0);
    CHECK(ck_partition_log_end(p) >= durable);
    tl_verify(p, &m, 0, ck_partition_log_end(p), 1000);
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &b, &l), 0);
    ck_wbuf_free(&w);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_fault_short_write_leaves_nothing)
{
    ck__log_io.io_pwrite = hook_pwrite;
    const char *dir = tl_dir("data");
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, NULL);
    tl_model_t m = {0};
    for (int i = 0; i < 10; i++)
        tl_append(p, &m, 3, 50, 1, 1, -1);
    int64_t end = ck_partition_log_end(p);
    const char *lp = tl_seg_path(dir, PART, 0, ".log");
    CHECK_EQ(tl_file_size(lp), (int64_t)m.bytes.len);
    ck_wbuf_t w = CK_WBUF_INIT;
    tl_batch(&w, 10, 1, 1, 300, 0); /* > 2000 bytes: the hook cuts it */
    atomic_store(&short_write_at, 2000);
    int64_t b, l;
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &b, &l), CK_ENOSPC);
    CHECK_EQ(atomic_load(&short_writes), 2);
    CHECK_EQ(ck_partition_error(p), CK_ENOSPC);
    CHECK_EQ(ck_partition_log_end(p), end);
    CHECK_EQ(tl_file_size(lp), (int64_t)m.bytes.len); /* the half write was cut back */
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &b, &l), CK_ESTATE);
    /* what was written before the failure still becomes durable and readable */
    tl_wait_durable(log, p);
    tl_verify(p, &m, 0, end, 1 << 20);
    ck_log_close(log);
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, NULL);
    CHECK_EQ(ck_partition_log_end(p), end);
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &b, &l), 0);
    CHECK_EQ(b, end);
    ck_wbuf_free(&w);
    ck_log_close(log);
    tl_model_free(&m);
}

static char mnt_path[600];
static void unmount_at_exit(void)
{
    umount2(mnt_path, MNT_DETACH);
}

/* A real full disk: a 64 KiB tmpfs. */
CK_TEST(log_fault_disk_full_tmpfs)
{
    const char *mnt = tl_dir("mnt");
    CHECK_EQ(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        fprintf(stderr, "  (skipped: cannot mount a tmpfs: %s)\n", strerror(errno));
        return;
    }
    snprintf(mnt_path, sizeof(mnt_path), "%s", mnt);
    atexit(unmount_at_exit); /* also when a CHECK fails */
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/data", mnt);
    ck_log_t *log = tl_open(dir, 2);
    ck_log_config_t c;
    tl_cfg(&c, 16384, 1024);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    tl_model_t m = {0};
    ck_wbuf_t w = CK_WBUF_INIT;
    int rc = 0;
    for (int i = 0; i < 1000; i++) {
        ck_wbuf_reset(&w);
        tl_batch(&w, 3, 1000 + i, 1, 300, (uint32_t)i);
        int64_t b, l;
        rc = ck_partition_append(p, w.data, w.len, -1, &b, &l);
        if (rc)
            break;
        tl_model_add(&m, w.data, w.len);
    }
    CHECK(rc == CK_ENOSPC || rc == CK_EIO);
    CHECK_EQ(ck_partition_error(p), rc);
    int64_t end = ck_partition_log_end(p);
    CHECK_EQ(end, m.last[m.n - 1] + 1);
    int64_t b, l;
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &b, &l), CK_ESTATE);
    tl_wait_durable(log, p);
    tl_verify(p, &m, 0, end, 5000);
    ck_log_close(log);
    /* nothing partial on disk: the reopened log ends where the last good append ended */
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_end(p), end);
    CHECK_EQ(ck_partition_size_bytes(p), (int64_t)m.bytes.len);
    tl_verify(p, &m, 0, end, 5000);
    ck_log_close(log);
    ck_wbuf_free(&w);
    tl_model_free(&m);
    CHECK_EQ(umount2(mnt, MNT_DETACH), 0);
}

/* ---- concurrency ---- */

static struct {
    ck_partition_t *p;
    _Atomic int64_t max_end; /* upper bound of log_end, published before each append */
    atomic_int done;
    _Atomic int64_t last_seen; /* durable_end seen by the callback */
    atomic_int bad;
} st;

static void stress_cb(void *arg)
{
    (void)arg;
    int64_t d = ck_partition_durable_end(st.p);
    int64_t prev = atomic_exchange(&st.last_seen, d);
    if (d < prev || d > atomic_load(&st.max_end))
        atomic_store(&st.bad, 1);
}

static void *checker(void *arg)
{
    (void)arg;
    int64_t prev = 0;
    while (!atomic_load(&st.done)) {
        int64_t d = ck_partition_durable_end(st.p);
        if (d < prev || d > atomic_load(&st.max_end))
            atomic_store(&st.bad, 2);
        prev = d;
    }
    return NULL;
}

CK_TEST(log_stress_appends_while_flushing)
{
    const char *dir = tl_dir("data");
    ck_log_t *log = NULL;
    CHECK_EQ(ck_log_open(dir, 1, stress_cb, NULL, &log), 0);
    ck_log_config_t c;
    tl_cfg(&c, 64 << 10, 512);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    st.p = p;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, checker, NULL), 0);
    tl_model_t m = {0};
    ck_wbuf_t w = CK_WBUF_INIT, out = CK_WBUF_INIT;
    int64_t read_off = 0;
    for (int i = 0; i < 20000; i++) {
        ck_wbuf_reset(&w);
        int n = 1 + i % 5;
        tl_batch(&w, n, 1000 + i, 1, 20 + (size_t)(i % 200), (uint32_t)i);
        atomic_store(&st.max_end, ck_partition_log_end(p) + n);
        int64_t b, l;
        CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &b, &l), 0);
        tl_model_add(&m, w.data, w.len);
        /* a consumer following the durable end on the same thread */
        int64_t d = ck_partition_durable_end(p);
        while (read_off < d) {
            ck_wbuf_reset(&out);
            int64_t r = ck_partition_read(p, read_off, d, 8192, true, &out);
            CHECK(r > 0);
            size_t bi = tl_model_find(&m, read_off);
            CHECK_MEM(out.data, m.bytes.data + m.pos[bi], (size_t)r);
            size_t o = 0;
            while (o < (size_t)r) {
                size_t t = (size_t)ck_batch_total_size(out.data + o, (size_t)r - o);
                read_off = (int64_t)ck_get_u64(out.data + o) +
                           (int32_t)ck_get_u32(out.data + o + CK_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
                o += t;
            }
        }
        if (i % 5000 == 4999)
            CHECK(ck_log_sweep(log, 0) == 0);
    }
    tl_wait_durable(log, p);
    atomic_store(&st.done, 1);
    pthread_join(th, NULL);
    CHECK_EQ(atomic_load(&st.bad), 0);
    CHECK_EQ(ck_partition_durable_end(p), ck_partition_log_end(p));
    ck_log_close(log);
    log = tl_open(dir, 5);
    p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_end(p), m.last[m.n - 1] + 1);
    tl_verify(p, &m, 0, ck_partition_log_end(p), 1 << 20);
    ck_log_close(log);
    ck_wbuf_free(&w);
    ck_wbuf_free(&out);
    tl_model_free(&m);
}

/* Partitions opened, filled and dropped (or closed and reopened) while the flusher works
 * on them, next to a busy partition. */
CK_TEST(log_stress_open_drop_under_flusher)
{
    const char *dir = tl_dir("data");
    ck_log_t *log = tl_open(dir, 1);
    ck_log_config_t c;
    tl_cfg(&c, 2048, 128);
    ck_partition_t *busy = tl_part(log, "busy", 0, &c);
    int64_t t_end = ck_mono_ms() + 1500;
    for (int round = 0; ck_mono_ms() < t_end; round++) {
        ck_partition_t *q = tl_part(log, "tmp", round % 3, &c);
        for (int i = 0; i < 30; i++) {
            tl_append(q, NULL, 1, 100, 1, 1, -1);
            tl_append(busy, NULL, 1, 50, 1, 1, -1);
        }
        if (round % 4 == 0)
            usleep(1000);
        if (round % 2 == 0) {
            CHECK_EQ(ck_log_partition_drop(log, q), 0);
        } else {
            /* dropped with a durable prefix and unsynced bytes */
            tl_wait_durable(log, q);
            tl_append(q, NULL, 1, 100, 1, 1, -1);
            CHECK_EQ(ck_log_partition_drop(log, q), 0);
        }
    }
    tl_wait_durable(log, busy);
    int64_t end = ck_partition_log_end(busy);
    ck_log_close(log);
    log = tl_open(dir, 1);
    busy = tl_part(log, "busy", 0, &c);
    CHECK_EQ(ck_partition_log_end(busy), end);
    CHECK_EQ(tl_count_files(dir, "-0") + tl_count_files(dir, "-1") + tl_count_files(dir, "-2"), 1);
    ck_log_close(log);
}
