/* A quick throughput measurement of the storage engine, not a test: it runs only when
 * CK_LOG_BENCH_DIR names a folder (on the disk to measure), e.g.
 *   CK_LOG_BENCH_DIR=/some/dir/on/the/data/disk CK_LOG_BENCH_MB=1024 ck-unit log_bench
 * Appends 1 KiB batches with a 10 ms group-commit interval, waits until all are durable,
 * then reads everything back sequentially in 1 MiB reads (page cache).
 * CK_LOG_BENCH_FLUSH_MS changes the interval (e.g. 600000: appends without fsyncs). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/clock.h"
#include "log/batch.h"
#include "log/log.h"
#include "test.h"
#include "test_log_util.h"

CK_TEST(log_bench_append_and_read)
{
    const char *base = getenv("CK_LOG_BENCH_DIR");
    if (!base) {
        fprintf(stderr, "  (skipped: set CK_LOG_BENCH_DIR)\n");
        return;
    }
    long mb = getenv("CK_LOG_BENCH_MB") ? atol(getenv("CK_LOG_BENCH_MB")) : 1024;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/ck-log-bench-%d", base, (int)getpid());
    int flush_ms = getenv("CK_LOG_BENCH_FLUSH_MS") ? atoi(getenv("CK_LOG_BENCH_FLUSH_MS")) : 10;
    ck_log_t *log = tl_open(dir, flush_ms);
    ck_log_config_t c;
    tl_cfg(&c, 256 << 20, 4096);
    ck_partition_t *p = tl_part(log, "bench", 0, &c);

    /* one record whose value makes the batch exactly 1024 bytes */
    ck_wbuf_t w = CK_WBUF_INIT;
    size_t vlen = 1024 - 61 - 10;
    tl_batch(&w, 1, ck_wall_ms(), 0, vlen, 1);
    while (w.len != 1024) {
        vlen += w.len < 1024 ? 1024 - w.len : 0;
        vlen -= w.len > 1024 ? w.len - 1024 : 0;
        ck_wbuf_reset(&w);
        tl_batch(&w, 1, ck_wall_ms(), 0, vlen, 1);
    }
    int64_t n = mb * 1024;
    int64_t t0 = ck_mono_ns();
    for (int64_t i = 0; i < n; i++) {
        int64_t b, l;
        CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &b, &l), 0);
    }
    int64_t t1 = ck_mono_ns();
    while (ck_partition_durable_end(p) < n) {
        ck_log_flush_now(log); /* only matters with a long CK_LOG_BENCH_FLUSH_MS */
        usleep(100);
    }
    int64_t t2 = ck_mono_ns();
    double bytes = (double)n * 1024;
    fprintf(stderr,
            "  append: %" PRId64
            " x 1 KiB batches: %.0f MB/s, %.2f M batches/s into the page cache;"
            " durable after %.3f s: %.0f MB/s end to end\n",
            n, bytes / ((double)(t1 - t0) / 1e9) / 1e6, (double)n / ((double)(t1 - t0) / 1e9) / 1e6,
            (double)(t2 - t0) / 1e9, bytes / ((double)(t2 - t0) / 1e9) / 1e6);

    ck_wbuf_t out = CK_WBUF_INIT;
    for (int rep = 0; rep < 2; rep++) {
        int64_t off = 0, total = 0, reads = 0;
        int64_t r0 = ck_mono_ns();
        while (off < n) {
            ck_wbuf_reset(&out);
            int64_t r = ck_partition_read(p, off, n, 1 << 20, true, &out);
            CHECK(r > 0);
            /* whole 1 KiB batches of one record each */
            off += r / 1024;
            total += r;
            reads++;
        }
        int64_t r1 = ck_mono_ns();
        fprintf(stderr, "  sequential read (1 MiB reads, pass %d): %.0f MB/s (%" PRId64 " reads)\n",
                rep + 1, (double)total / ((double)(r1 - r0) / 1e9) / 1e6, reads);
    }
    ck_wbuf_free(&out);
    ck_wbuf_free(&w);
    ck_log_close(log);

    /* recovery: a clean reopen reads only the tail of the last segment; without its index
     * files the whole last segment is scanned and CRC-checked */
    for (int rep = 0; rep < 2; rep++) {
        if (rep == 1) {
            int64_t last_base = -1;
            for (int64_t b = 0; b < n; b++) /* one record per batch: offsets = batches */
                if (tl_file_size(tl_seg_path(dir, "bench-0", b, ".log")) >= 0)
                    last_base = b;
            unlink(tl_seg_path(dir, "bench-0", last_base, ".index"));
            unlink(tl_seg_path(dir, "bench-0", last_base, ".timeindex"));
        }
        int64_t o0 = ck_mono_ns();
        log = tl_open(dir, flush_ms);
        p = tl_part(log, "bench", 0, &c);
        int64_t o1 = ck_mono_ns();
        CHECK_EQ(ck_partition_log_end(p), n);
        fprintf(stderr, "  reopen (%s): %.1f ms\n",
                rep ? "last segment's index files deleted" : "clean", (double)(o1 - o0) / 1e6);
        ck_log_close(log);
    }
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}
