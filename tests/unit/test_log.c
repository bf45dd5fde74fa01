/* Storage engine: append/read, reopen, durability, limits, timestamps, retention. Recovery
 * from damaged files is in test_log_recovery.c, failures and threads in test_log_fault.c. */
#include <inttypes.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/compress.h"
#include "core/crc32c.h"
#include "log/batch.h"
#include "log/log.h"
#include "test.h"
#include "test_log_util.h"

#define PART "t-0"

CK_TEST(log_roundtrip_many_segments)
{
    const char *dir = tl_dir("data");
    ck_log_t *log = tl_open(dir, 2);
    ck_log_config_t c;
    tl_cfg(&c, 4096, 256);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_start(p), 0);
    CHECK_EQ(ck_partition_log_end(p), 0);
    tl_model_t m = {0};
    for (int i = 0; i < 1500; i++)
        tl_append(p, &m, 1 + i % 7, (size_t)(i * 13) % 300, 1000 + i, 1, -1);
    /* several batches in one append call */
    ck_wbuf_t w = CK_WBUF_INIT;
    for (int i = 0; i < 5; i++)
        tl_batch(&w, 3, 5000, 1, 40, (uint32_t)i);
    int64_t base, last, end = ck_partition_log_end(p);
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &base, &last), 0);
    CHECK_EQ(base, end);
    CHECK_EQ(last, end + 14);
    tl_model_add(&m, w.data, w.len);
    ck_wbuf_free(&w);
    tl_wait_durable(log, p);
    int64_t log_end = ck_partition_log_end(p);
    CHECK_EQ(ck_partition_durable_end(p), log_end);
    CHECK(tl_count_files(tl_dir("data/" PART), ".log") > 50);
    CHECK_EQ(ck_partition_size_bytes(p), (int64_t)m.bytes.len);

    /* sequential reads of various sizes, and a read starting at every offset */
    tl_verify(p, &m, 0, log_end, 1);
    tl_verify(p, &m, 0, log_end, 1000);
    tl_verify(p, &m, 0, log_end, 1 << 20);
    ck_wbuf_t out = CK_WBUF_INIT;
    for (int64_t o = 0; o < log_end; o += 1) {
        ck_wbuf_reset(&out);
        int64_t n = ck_partition_read(p, o, log_end, 1, true, &out);
        CHECK(n > 0);
        size_t bi = tl_model_find(&m, o);
        CHECK_EQ(n, (int64_t)(bi + 1 < m.n ? m.pos[bi + 1] - m.pos[bi] : m.bytes.len - m.pos[bi]));
        CHECK_MEM(out.data, m.bytes.data + m.pos[bi], (size_t)n);
    }
    /* every record read alone at its position in its batch */
    for (int64_t o = 0; o < log_end; o += 3) {
        size_t bi = tl_model_find(&m, o);
        const uint8_t *bb = m.bytes.data + m.pos[bi];
        ck_batch_iter_t it;
        CHECK_EQ(ck_batch_iter_init(&it, bb, m.bytes.len - m.pos[bi], NULL), 0);
        ck_record_t r, one;
        while (ck_batch_iter_next(&it, &r) == 1 && r.offset != o)
            ;
        CHECK_EQ(r.offset, o);
        ck_wbuf_reset(&out);
        int64_t n = ck_partition_read_part(p, o, log_end, r.pos, 64, &out);
        CHECK(n > CK_BATCH_HEADER_SIZE && n <= CK_BATCH_HEADER_SIZE + 64);
        CHECK_EQ((size_t)n, out.len);
        CHECK_MEM(out.data, bb, CK_BATCH_HEADER_SIZE);
        int64_t size = ck_batch_record_at(out.data, out.data + CK_BATCH_HEADER_SIZE,
                                          (size_t)n - CK_BATCH_HEADER_SIZE, &one);
        if (size == CK_ETRUNC) { /* longer than 64 bytes: read it all */
            ck_wbuf_reset(&out);
            n = ck_partition_read_part(p, o, log_end, r.pos, 1 << 20, &out);
            size = ck_batch_record_at(out.data, out.data + CK_BATCH_HEADER_SIZE,
                                      (size_t)n - CK_BATCH_HEADER_SIZE, &one);
        }
        CHECK(size > 0);
        CHECK_EQ(one.offset, o);
        CHECK_EQ(one.timestamp, r.timestamp);
        CHECK(ck_slice_eq(one.value, r.value));
        /* not durable below upper, a position past the batch: not read */
        CHECK_EQ(ck_partition_read_part(p, o, o, r.pos, 64, &out), CK_ENOENT);
        CHECK_EQ(ck_partition_read_part(p, o, log_end, 1u << 30, 64, &out), CK_ENOENT);
    }
    CHECK_EQ(ck_partition_read_part(p, log_end + 1, log_end, 0, 64, &out), CK_ERANGE);
    CHECK_EQ(ck_partition_read_part(p, -1, log_end, 0, 64, &out), CK_ERANGE);
    /* past the end: nothing; past log_end: out of range */
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_partition_read(p, log_end, log_end, 1000, true, &out), 0);
    CHECK_EQ(ck_partition_read(p, log_end + 1, log_end, 1000, true, &out), CK_ERANGE);
    CHECK_EQ(ck_partition_read(p, -1, log_end, 1000, true, &out), CK_ERANGE);
    ck_wbuf_free(&out);
    ck_log_close(log);
    tl_model_free(&m);
}

/* A compressed batch is not read in parts (its positions are in the decompressed
 * records): CK_ENOENT, and the caller reads it whole. */
CK_TEST(log_read_part_compressed)
{
    ck_log_t *log = tl_open(tl_dir("data"), 2);
    ck_log_config_t c;
    tl_cfg(&c, 1 << 20, 4096);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    ck_wbuf_t w = CK_WBUF_INIT, out = CK_WBUF_INIT;
    ck_batch_builder_t b;
    ck_batch_builder_init(&b, &w, CK_CODEC_GZIP, CK_COMPRESS_LEVEL_DEFAULT);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(ck_batch_builder_add(&b, 1000 + i, CK_SLICE_NULL, ck_slice_cstr("a value"), NULL, 0), 0);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
    int64_t base, last;
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &base, &last), 0);
    tl_wait_durable(log, p);
    CHECK_EQ(ck_partition_read_part(p, 3, ck_partition_durable_end(p), 0, 64, &out), CK_ENOENT);
    CHECK_EQ(out.len, 0);
    ck_wbuf_free(&w);
    ck_wbuf_free(&out);
    ck_log_close(log);
}

CK_TEST(log_reopen_keeps_offsets_and_data)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 8192, 512);
    tl_model_t m = {0};
    for (int round = 0; round < 4; round++) {
        ck_log_t *log = tl_open(dir, 5);
        ck_partition_t *p = tl_part(log, "t", 0, &c);
        int64_t end = ck_partition_log_end(p);
        CHECK_EQ(end, m.n ? m.last[m.n - 1] + 1 : 0);
        CHECK_EQ(ck_partition_durable_end(p), end);
        CHECK_EQ(ck_partition_size_bytes(p), (int64_t)m.bytes.len);
        if (end)
            tl_verify(p, &m, 0, end, 3000);
        for (int i = 0; i < 300; i++)
            tl_append(p, &m, 1 + i % 4, 50 + (size_t)i % 100, 10000 + round * 1000 + i, 2, -1);
        if (round % 2 == 0)
            tl_wait_durable(log, p);
        ck_log_close(log); /* a clean close makes everything durable */
    }
    ck_log_t *log = tl_open(dir, 5);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_end(p), m.last[m.n - 1] + 1);
    tl_verify(p, &m, 0, ck_partition_log_end(p), 700);
    /* the same partition cannot be opened twice; bad names are refused */
    ck_partition_t *q;
    CHECK_EQ(ck_log_partition_open(log, "t", 0, &c, &q), CK_EEXIST);
    CHECK_EQ(ck_log_partition_open(log, "a/b", 0, &c, &q), CK_EINVAL);
    CHECK_EQ(ck_log_partition_open(log, "..", 0, &c, &q), CK_EINVAL);
    CHECK_EQ(ck_log_partition_open(log, "", 0, &c, &q), CK_EINVAL);
    CHECK_EQ(ck_log_partition_open(log, "t", -1, &c, &q), CK_EINVAL);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_durable_end_moves_only_after_flush)
{
    /* an interval long enough that only ck_log_flush_now triggers a round */
    ck_log_t *log = tl_open(tl_dir("data"), 600000);
    ck_log_config_t c;
    tl_cfg(&c, 1 << 20, 4096);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    tl_model_t m = {0};
    long cb0 = tl_callbacks();
    for (int i = 0; i < 10; i++)
        tl_append(p, &m, 2, 10, 1, 1, -1);
    usleep(20000);
    CHECK_EQ(ck_partition_durable_end(p), 0);
    CHECK_EQ(tl_callbacks(), cb0);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_partition_read(p, 0, ck_partition_durable_end(p), 1 << 20, true, &out), 0);
    ck_log_flush_now(log);
    for (int i = 0; i < 5000 && tl_callbacks() == cb0; i++)
        usleep(1000);
    CHECK(tl_callbacks() > cb0);
    CHECK_EQ(ck_partition_durable_end(p), 20);
    CHECK_EQ(ck_partition_read(p, 0, ck_partition_durable_end(p), 1 << 20, true, &out),
             (int64_t)m.bytes.len);
    /* nothing new: a round changes nothing and does not call back */
    long cb1 = tl_callbacks();
    ck_log_flush_now(log);
    usleep(20000);
    CHECK_EQ(tl_callbacks(), cb1);
    /* unflushed appends are invisible to a reader bounded by durable_end */
    tl_append(p, &m, 1, 10, 1, 1, -1);
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_partition_read(p, 20, ck_partition_durable_end(p), 1 << 20, true, &out), 0);
    ck_wbuf_free(&out);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_read_limits)
{
    ck_log_t *log = tl_open(tl_dir("data"), 2);
    ck_log_config_t c;
    tl_cfg(&c, 1 << 20, 4096);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    tl_model_t m = {0};
    /* batches of 5 records: offsets 0-4, 5-9, ... */
    for (int i = 0; i < 10; i++)
        tl_append(p, &m, 5, 100, 1, 1, -1);
    tl_wait_durable(log, p);
    size_t bsz = m.pos[1];
    ck_wbuf_t out = CK_WBUF_INIT;
    /* max_bytes smaller than the first batch: min_one decides */
    CHECK_EQ(ck_partition_read(p, 0, 50, 10, false, &out), 0);
    CHECK_EQ(out.len, 0);
    CHECK_EQ(ck_partition_read(p, 0, 50, 10, true, &out), (int64_t)bsz);
    CHECK_MEM(out.data, m.bytes.data, bsz);
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_partition_read(p, 0, 50, 0, true, &out), (int64_t)bsz);
    ck_wbuf_reset(&out);
    /* max_bytes is respected in whole batches */
    CHECK_EQ(ck_partition_read(p, 0, 50, 3 * bsz - 1, true, &out), (int64_t)(2 * bsz));
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_partition_read(p, 0, 50, 3 * bsz, false, &out), (int64_t)(3 * bsz));
    ck_wbuf_reset(&out);
    /* an offset inside a batch returns the whole batch */
    CHECK_EQ(ck_partition_read(p, 7, 50, bsz, false, &out), (int64_t)bsz);
    CHECK_EQ((int64_t)ck_get_u64(out.data), 5);
    ck_wbuf_reset(&out);
    /* upper: only batches whose last offset is below it */
    CHECK_EQ(ck_partition_read(p, 0, 10, 1 << 20, true, &out), (int64_t)(2 * bsz));
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_partition_read(p, 0, 9, 1 << 20, true, &out), (int64_t)bsz);
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_partition_read(p, 0, 4, 1 << 20, true, &out), 0);
    CHECK_EQ(ck_partition_read(p, 5, 5, 1 << 20, true, &out), 0);
    /* upper beyond log_end is clamped; output is appended after existing bytes */
    ck_wr_bytes(&out, "xyz", 3);
    CHECK_EQ(ck_partition_read(p, 45, 1000, 1 << 20, true, &out), (int64_t)bsz);
    CHECK_EQ(out.len, 3 + bsz);
    CHECK_MEM(out.data, "xyz", 3);
    CHECK_MEM(out.data + 3, m.bytes.data + 9 * bsz, bsz);
    /* several sequential consumers at once keep their places */
    int64_t off[3] = {0, 10, 20};
    for (int r = 0; r < 8; r++) {
        for (int k = 0; k < 3; k++) {
            if (off[k] >= 50)
                continue;
            ck_wbuf_reset(&out);
            CHECK_EQ(ck_partition_read(p, off[k], 50, bsz, false, &out), (int64_t)bsz);
            CHECK_EQ((int64_t)ck_get_u64(out.data), off[k]);
            off[k] += 5;
        }
    }
    ck_wbuf_free(&out);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_append_time_rewrites_header_and_crc)
{
    ck_log_t *log = tl_open(tl_dir("data"), 2);
    ck_partition_t *p = tl_part(log, "t", 0, NULL);
    ck_wbuf_t w = CK_WBUF_INIT;
    tl_batch(&w, 4, 111, 5, 20, 1);
    w.data[CK_BATCH_OFF_LEADER_EPOCH] = 7; /* whatever the producer sent */
    int64_t base, last;
    CHECK_EQ(ck_partition_append(p, w.data, w.len, 987654321, &base, &last), 0);
    CHECK_EQ(base, 0);
    CHECK_EQ(last, 3);
    tl_wait_durable(log, p);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_partition_read(p, 0, 4, 1 << 20, true, &out), (int64_t)w.len);
    ck_batch_header_t h;
    ck_batch_header_parse(out.data, &h);
    CHECK_EQ(h.base_offset, 0);
    CHECK_EQ(h.leader_epoch, 0);
    CHECK(h.attributes & CK_ATTR_TIMESTAMP_LOG_APPEND);
    CHECK_EQ(h.base_timestamp, 987654321);
    CHECK_EQ(h.max_timestamp, 987654321);
    CHECK(tl_crc_ok(out.data, out.len));
    /* CreateTime batches keep their timestamps and CRC */
    ck_wbuf_reset(&w);
    tl_batch(&w, 2, 500, 1, 20, 2);
    uint32_t crc = ck_get_u32(w.data + CK_BATCH_OFF_CRC);
    CHECK_EQ(ck_partition_append(p, w.data, w.len, -1, &base, &last), 0);
    CHECK_EQ(base, 4);
    CHECK_EQ(ck_get_u32(w.data + CK_BATCH_OFF_CRC), crc);
    tl_wait_durable(log, p);
    /* timestamps: the LogAppendTime batch counts with its append time */
    int64_t o, ts;
    CHECK_EQ(ck_partition_offset_for_time(p, 600, &o, &ts), 0);
    CHECK_EQ(o, 0);
    CHECK_EQ(ts, 987654321);
    CHECK_EQ(ck_partition_offset_for_time(p, 400, &o, &ts), 0);
    CHECK_EQ(o, 0);
    CHECK_EQ(ck_partition_max_timestamp(p, &o, &ts), 0);
    CHECK_EQ(o, 0);
    CHECK_EQ(ts, 987654321);
    /* malformed input changes nothing */
    uint8_t junk[100] = {0};
    CHECK_EQ(ck_partition_append(p, junk, sizeof(junk), -1, &base, &last), CK_EINVAL);
    CHECK_EQ(ck_partition_append(p, junk, 0, -1, &base, &last), CK_EINVAL);
    CHECK_EQ(ck_partition_log_end(p), 6);
    CHECK_EQ(ck_partition_error(p), 0);
    ck_wbuf_free(&w);
    ck_wbuf_free(&out);
    ck_log_close(log);
}

/* offset_for_time / max_timestamp, in memory and after a reopen (lazy sealed indexes). */
CK_TEST(log_offset_for_time_and_max_timestamp)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 2048, 128);
    tl_model_t m = {0};
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    int64_t o, ts;
    CHECK_EQ(ck_partition_offset_for_time(p, 0, &o, &ts), CK_ENOENT);
    CHECK_EQ(ck_partition_max_timestamp(p, &o, &ts), CK_ENOENT);
    /* batch i: 3 records at 10000 + 10*i + {0,1,2}; one batch out of order carries the
     * maximum (it appears twice; the earliest must win) */
    for (int i = 0; i < 400; i++) {
        int64_t t0 = 10000 + 10 * i;
        if (i == 123 || i == 300)
            t0 = 900000;
        tl_append(p, &m, 3, 30, t0, 1, -1);
    }
    tl_wait_durable(log, p);
    for (int pass = 0; pass < 2; pass++) {
        CHECK_EQ(ck_partition_offset_for_time(p, 0, &o, &ts), 0);
        CHECK_EQ(o, 0);
        CHECK_EQ(ts, 10000);
        CHECK_EQ(ck_partition_offset_for_time(p, 10001, &o, &ts), 0);
        CHECK_EQ(o, 1);
        CHECK_EQ(ts, 10001);
        CHECK_EQ(ck_partition_offset_for_time(p, 10003, &o, &ts), 0);
        CHECK_EQ(o, 3);
        CHECK_EQ(ts, 10010);
        /* all record timestamps: 10000 + 10*i + k, except the two out-of-order batches */
        for (int i = 0; i < 400; i += 7) {
            if (i == 123 || i == 300 || i == 122 || i == 299)
                continue;
            CHECK_EQ(ck_partition_offset_for_time(p, 10000 + 10 * i + 2, &o, &ts), 0);
            /* past batch 123 its records (t = 900000) are the first ones >= ts */
            CHECK_EQ(o, i < 123 ? 3 * i + 2 : 3 * 123);
        }
        /* 11235 is past batch 122's records: the first record >= it is batch 123's */
        CHECK_EQ(ck_partition_offset_for_time(p, 11225, &o, &ts), 0);
        CHECK_EQ(o, 3 * 123);
        CHECK_EQ(ts, 900000);
        CHECK_EQ(ck_partition_offset_for_time(p, 900001, &o, &ts), 0);
        CHECK_EQ(o, 3 * 123 + 1);
        CHECK_EQ(ck_partition_offset_for_time(p, 900003, &o, &ts), CK_ENOENT);
        CHECK_EQ(ck_partition_max_timestamp(p, &o, &ts), 0);
        CHECK_EQ(o, 3 * 123 + 2);
        CHECK_EQ(ts, 900002);
        ck_log_close(log);
        log = tl_open(dir, 2);
        p = tl_part(log, "t", 0, &c);
    }
    /* only durable records count */
    ck_log_close(log);
    log = tl_open(dir, 600000);
    p = tl_part(log, "t", 0, &c);
    tl_append(p, &m, 1, 10, 5000000, 1, -1);
    CHECK_EQ(ck_partition_offset_for_time(p, 4000000, &o, &ts), CK_ENOENT);
    CHECK_EQ(ck_partition_max_timestamp(p, &o, &ts), 0);
    CHECK_EQ(ts, 900002);
    tl_wait_durable(log, p);
    CHECK_EQ(ck_partition_offset_for_time(p, 4000000, &o, &ts), 0);
    CHECK_EQ(o, 1200);
    CHECK_EQ(ck_partition_max_timestamp(p, &o, &ts), 0);
    CHECK_EQ(o, 1200);
    CHECK_EQ(ts, 5000000);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_retention_by_time)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1000, 100);
    c.retention_ms = 10000;
    ck_log_t *log = tl_open(dir, 600000); /* rounds only when asked */
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    tl_model_t m = {0};
    /* old records (t = 1000..), then new ones (t = 100000..) */
    for (int i = 0; i < 40; i++)
        tl_append(p, &m, 2, 100, 1000 + i, 1, -1);
    int64_t first_new = ck_partition_log_end(p);
    for (int i = 0; i < 40; i++)
        tl_append(p, &m, 2, 100, 100000 + i, 1, -1);
    int nseg = tl_count_files(tl_dir("data/" PART), ".log");
    CHECK(nseg > 10);
    /* nothing is deleted before it is durable */
    CHECK_EQ(ck_log_sweep(log, 50000), 0);
    tl_wait_durable(log, p);
    CHECK_EQ(ck_log_sweep(log, 10000), 0); /* nothing old enough yet */
    int del = ck_log_sweep(log, 50000);
    CHECK(del > 0);
    CHECK_EQ(tl_count_files(tl_dir("data/" PART), ".log"), nseg - del);
    int64_t ls = ck_partition_log_start(p);
    CHECK(ls > 0 && ls <= first_new);
    CHECK(first_new - ls < 20); /* only the segment holding old and new records is kept */
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_partition_read(p, ls - 1, 1 << 30, 100, true, &out), CK_ERANGE);
    tl_verify(p, &m, ls, ck_partition_log_end(p), 500);
    /* everything expired: all but the active segment goes */
    del = ck_log_sweep(log, 1000000);
    CHECK(del > 0);
    CHECK_EQ(tl_count_files(tl_dir("data/" PART), ".log"), 1);
    CHECK_EQ(ck_partition_size_bytes(p),
             tl_file_size(tl_seg_path(dir, PART, ck_partition_log_start(p), ".log")));
    /* log_start survives a reopen (it is the first segment's base) */
    ls = ck_partition_log_start(p);
    ck_log_close(log);
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_start(p), ls);
    CHECK_EQ(ck_partition_log_end(p), m.last[m.n - 1] + 1);
    tl_verify(p, &m, ls, ck_partition_log_end(p), 500);
    ck_wbuf_free(&out);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_retention_by_size_and_segment_ms)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 2000, 100);
    c.retention_ms = -1;
    c.retention_bytes = 5000;
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    tl_model_t m = {0};
    for (int i = 0; i < 100; i++)
        tl_append(p, &m, 1, 150, 1000 + i, 1, -1);
    tl_wait_durable(log, p);
    int64_t before = ck_partition_size_bytes(p);
    CHECK(before > 10000);
    int del = ck_log_sweep(log, 1);
    CHECK(del > 0);
    int64_t after = ck_partition_size_bytes(p);
    /* Kafka's rule: keep at least retention_bytes, drop whole segments while possible */
    CHECK(after >= 5000);
    CHECK(after < 5000 + 2000);
    tl_verify(p, &m, ck_partition_log_start(p), ck_partition_log_end(p), 1000);
    CHECK_EQ(ck_log_sweep(log, 2), 0);

    /* segment_ms: the active segment rolls once it is old enough, only if non-empty */
    ck_log_config_t c2;
    tl_cfg(&c2, 1 << 20, 100);
    c2.segment_ms = 50;
    ck_partition_t *q = tl_part(log, "r", 0, &c2);
    const char *qdir = tl_dir("data/r-0");
    CHECK_EQ(ck_log_sweep(log, ck_wall_ms() + 1000), 0);
    CHECK_EQ(tl_count_files(qdir, ".log"), 1);
    tl_append(q, NULL, 1, 10, ck_wall_ms(), 1, -1);
    usleep(60000);
    tl_append(q, NULL, 1, 10, ck_wall_ms(), 1, -1); /* rolls at append time */
    CHECK_EQ(tl_count_files(qdir, ".log"), 2);
    CHECK_EQ(ck_log_sweep(log, ck_wall_ms() + 1000), 0); /* rolls, deletes nothing */
    CHECK_EQ(tl_count_files(qdir, ".log"), 3);
    CHECK_EQ(ck_log_sweep(log, ck_wall_ms() + 2000), 0); /* empty active: no roll */
    CHECK_EQ(tl_count_files(qdir, ".log"), 3);
    CHECK(tl_file_size(tl_seg_path(dir, "r-0", 2, ".log")) == 0);
    tl_wait_durable(log, q);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_delete_records_persists)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1500, 100);
    ck_log_t *log = tl_open(dir, 600000);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    tl_model_t m = {0};
    for (int i = 0; i < 60; i++)
        tl_append(p, &m, 2, 100, 1000 + i, 1, -1);
    /* only up to durable_end */
    CHECK_EQ(ck_partition_delete_records(p, 10), CK_ERANGE);
    CHECK_EQ(ck_partition_delete_records(p, -1), 0); /* durable_end is 0: nothing to do */
    CHECK_EQ(ck_partition_log_start(p), 0);
    tl_wait_durable(log, p);
    int nseg = tl_count_files(tl_dir("data/" PART), ".log");
    CHECK_EQ(ck_partition_delete_records(p, 121), CK_ERANGE);
    CHECK_EQ(ck_partition_delete_records(p, 51), 0);
    CHECK_EQ(ck_partition_log_start(p), 51);
    CHECK(tl_count_files(tl_dir("data/" PART), ".log") < nseg);
    CHECK_EQ(ck_partition_delete_records(p, 40), 0); /* never moves back */
    CHECK_EQ(ck_partition_log_start(p), 51);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_partition_read(p, 50, 120, 1000, true, &out), CK_ERANGE);
    /* the batch holding log_start is returned whole (offsets 50-51) */
    CHECK(ck_partition_read(p, 51, 120, 1000, true, &out) > 0);
    CHECK_EQ((int64_t)ck_get_u64(out.data), 50);
    int64_t o, ts;
    CHECK_EQ(ck_partition_offset_for_time(p, 0, &o, &ts), 0);
    CHECK_EQ(o, 51);
    ck_log_close(log);
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_start(p), 51);
    CHECK_EQ(ck_partition_log_end(p), 120);
    tl_verify(p, &m, 51, 120, 600);
    /* everything durable can go; the active segment stays (empty log, same offsets) */
    CHECK_EQ(ck_partition_delete_records(p, -1), 0);
    CHECK_EQ(ck_partition_log_start(p), 120);
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_partition_read(p, 120, 120, 1000, true, &out), 0);
    CHECK_EQ(ck_partition_offset_for_time(p, 0, &o, &ts), CK_ENOENT);
    ck_log_close(log);
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_start(p), 120);
    CHECK_EQ(ck_partition_log_end(p), 120);
    CHECK_EQ(tl_append(p, NULL, 1, 10, 1, 1, -1), 120);
    ck_wbuf_free(&out);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_drop_removes_files)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1000, 100);
    ck_log_t *log = tl_open(dir, 1);
    ck_partition_t *p = tl_part(log, "gone", 3, &c);
    ck_partition_t *k = tl_part(log, "kept", 0, &c);
    for (int i = 0; i < 30; i++) {
        tl_append(p, NULL, 1, 100, 1, 1, -1);
        tl_append(k, NULL, 1, 100, 1, 1, -1);
    }
    /* dropped with unsynced bytes and a seal queue, while the flusher runs */
    CHECK_EQ(ck_log_partition_drop(log, p), 0);
    CHECK_EQ(tl_count_files(tl_dir("data/gone-3"), ""), -1);
    tl_wait_durable(log, k);
    /* a new partition with the same name starts empty */
    p = tl_part(log, "gone", 3, &c);
    CHECK_EQ(ck_partition_log_end(p), 0);
    ck_log_close(log);
    log = tl_open(dir, 1);
    k = tl_part(log, "kept", 0, &c);
    CHECK_EQ(ck_partition_log_end(k), 30);
    ck_log_close(log);
}
