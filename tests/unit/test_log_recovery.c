/* Recovery: damaged segment tails and index files written on purpose. After each
 * reopen exactly the intact prefix must remain, and appends continue at its end. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/crc32c.h"
#include "log/batch.h"
#include "log/log.h"
#include "test.h"
#include "test_log_util.h"

#define PART "t-0"

/* Reads every offset in [from, to) on its own, newest first (no read position to reuse). */
static void verify_each(ck_partition_t *p, const tl_model_t *m, int64_t from, int64_t to)
{
    ck_wbuf_t out = CK_WBUF_INIT;
    for (int64_t o = to - 1; o >= from; o--) {
        ck_wbuf_reset(&out);
        int64_t n = ck_partition_read(p, o, to, 1, true, &out);
        size_t bi = tl_model_find(m, o);
        size_t bsz = (bi + 1 < m->n ? m->pos[bi + 1] : m->bytes.len) - m->pos[bi];
        if (n != (int64_t)bsz)
            CK_FAIL("read at %" PRId64 ": %" PRId64 " bytes, expected %zu", o, n, bsz);
        CHECK_MEM(out.data, m->bytes.data + m->pos[bi], bsz);
    }
    ck_wbuf_free(&out);
}

/* Writes a partition of nb batches (3 records each) and closes it cleanly. */
static void make_log(const char *dir, const ck_log_config_t *c, tl_model_t *m, int nb, size_t vlen)
{
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, c);
    for (int i = 0; i < nb; i++)
        tl_append(p, m, 3, vlen + (size_t)(i % 5) * 7, 1000 + 10 * i, 1, -1);
    tl_wait_durable(log, p);
    ck_log_close(log);
}

/* Reopens and checks that exactly the first keep batches of the model survived, then
 * appends one batch at the right offset. */
static void expect_prefix(const char *dir, const ck_log_config_t *c, tl_model_t *m, size_t keep,
                          bool each)
{
    tl_model_cut(m, keep);
    int64_t end = keep ? m->last[keep - 1] + 1 : 0;
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, c);
    if (ck_partition_log_end(p) != end)
        CK_FAIL("log_end %" PRId64 ", expected %" PRId64, ck_partition_log_end(p), end);
    CHECK_EQ(ck_partition_durable_end(p), end);
    CHECK_EQ(ck_partition_error(p), 0);
    if (end) {
        tl_verify(p, m, 0, end, 1 << 20);
        if (each)
            verify_each(p, m, 0, end);
        int64_t o, ts;
        int rc = ck_partition_max_timestamp(p, &o, &ts);
        if (rc)
            CK_FAIL("max_timestamp: %d (keep %zu)", rc, keep);
        CHECK_EQ(
            ts, (int64_t)ck_get_u64(m->bytes.data + m->pos[keep - 1] + CK_BATCH_OFF_MAX_TIMESTAMP));
    }
    CHECK_EQ(tl_append(p, m, 2, 30, 99999, 1, -1), end);
    tl_wait_durable(log, p);
    ck_log_close(log);
}

CK_TEST(log_recover_torn_last_batch_every_byte)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1 << 20, 64);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 12, 20);
    const char *lp = tl_seg_path(dir, PART, 0, ".log");
    const char *ip = tl_seg_path(dir, PART, 0, ".index");
    const char *tp = tl_seg_path(dir, PART, 0, ".timeindex");
    size_t ln, in, tn;
    uint8_t *lorig = tl_read_file(lp, &ln), *iorig = tl_read_file(ip, &in),
            *torig = tl_read_file(tp, &tn);
    CHECK_EQ(ln, m.bytes.len);
    CHECK(in > 0 && tn > 0);
    size_t last = m.n - 1, P = m.pos[last];
    for (size_t cut = P; cut < ln; cut++) {
        tl_model_t mm = {0};
        tl_model_add(&mm, m.bytes.data, m.bytes.len);
        tl_write_file(lp, lorig, cut);
        tl_write_file(ip, iorig, in);
        tl_write_file(tp, torig, tn);
        expect_prefix(dir, &c, &mm, last, cut == P + 1);
        CHECK_EQ(tl_file_size(lp), (int64_t)P + (int64_t)(mm.bytes.len - mm.pos[last]));
        tl_model_free(&mm);
    }
    free(lorig);
    free(iorig);
    free(torig);
    tl_model_free(&m);
}

CK_TEST(log_recover_flipped_byte_in_last_batch)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1 << 20, 64);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 8, 20);
    const char *lp = tl_seg_path(dir, PART, 0, ".log");
    const char *ip = tl_seg_path(dir, PART, 0, ".index");
    const char *tp = tl_seg_path(dir, PART, 0, ".timeindex");
    size_t ln, in, tn;
    uint8_t *lorig = tl_read_file(lp, &ln), *iorig = tl_read_file(ip, &in),
            *torig = tl_read_file(tp, &tn);
    size_t last = m.n - 1, P = m.pos[last];
    for (size_t at = P; at < ln; at++) {
        /* restore the index files as the clean close left them (a test append rewrote them) */
        tl_write_file(ip, iorig, in);
        tl_write_file(tp, torig, tn);
        tl_model_t mm = {0};
        tl_model_add(&mm, m.bytes.data, m.bytes.len);
        uint8_t *d = malloc(ln);
        memcpy(d, lorig, ln);
        d[at] ^= 0x40;
        tl_write_file(lp, d, ln);
        free(d);
        /* the leader epoch (bytes 12-15) is not covered by the CRC: the batch stays */
        size_t rel = at - P;
        bool kept = rel >= CK_BATCH_OFF_LEADER_EPOCH && rel < CK_BATCH_OFF_MAGIC;
        if (kept) {
            mm.bytes.data[at] ^= 0x40;
            expect_prefix(dir, &c, &mm, last + 1, false);
        } else {
            expect_prefix(dir, &c, &mm, last, false);
        }
        tl_model_free(&mm);
    }
    free(lorig);
    free(iorig);
    free(torig);
    tl_model_free(&m);
}

CK_TEST(log_recover_garbage_after_tail)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1 << 20, 128);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 30, 40);
    const char *lp = tl_seg_path(dir, PART, 0, ".log");
    const char *ip = tl_seg_path(dir, PART, 0, ".index");
    const char *tp = tl_seg_path(dir, PART, 0, ".timeindex");
    size_t ln, in, tn;
    uint8_t *orig = tl_read_file(lp, &ln), *iorig = tl_read_file(ip, &in),
            *torig = tl_read_file(tp, &tn);
    size_t last = m.n - 1;
    size_t lsz = ln - m.pos[last];
    int64_t next = m.last[last] + 1;
    for (int variant = 0; variant < 7; variant++) {
        uint8_t *d = malloc(ln + 20000);
        memcpy(d, orig, ln);
        size_t add = 0;
        switch (variant) {
        case 0: /* one byte */
            d[ln] = 0;
            add = 1;
            break;
        case 1: /* zeros, like a file extended by a crash but never written */
            memset(d + ln, 0, 8192);
            add = 8192;
            break;
        case 2: /* random bytes */
            for (size_t i = 0; i < 15000; i++)
                d[ln + i] = (uint8_t)(rand() >> 7);
            add = 15000;
            break;
        case 3: /* a copy of the last batch: valid CRC, wrong base offset */
            memcpy(d + ln, orig + m.pos[last], lsz);
            add = lsz;
            break;
        case 4: /* the right base offset but a bad CRC */
            memcpy(d + ln, orig + m.pos[last], lsz);
            ck_put_u64(d + ln, (uint64_t)next);
            d[ln + lsz - 1] ^= 1;
            add = lsz;
            break;
        case 5: /* a header claiming more bytes than the file has */
            memcpy(d + ln, orig + m.pos[last], 61);
            ck_put_u64(d + ln, (uint64_t)next);
            add = 61;
            break;
        case 6: /* a valid next batch: never acknowledged, but intact, so it is kept */
            memcpy(d + ln, orig + m.pos[last], lsz);
            ck_put_u64(d + ln, (uint64_t)next);
            add = lsz;
            break;
        }
        tl_write_file(lp, d, ln + add);
        tl_model_t mm = {0};
        tl_model_add(&mm, m.bytes.data, m.bytes.len);
        if (variant == 6) {
            tl_model_add(&mm, d + ln, lsz);
            expect_prefix(dir, &c, &mm, last + 2, true);
        } else {
            expect_prefix(dir, &c, &mm, last + 1, variant == 2);
        }
        tl_model_free(&mm);
        /* undo the test append too */
        tl_write_file(lp, orig, ln);
        tl_write_file(ip, iorig, in);
        tl_write_file(tp, torig, tn);
        free(d);
    }
    free(orig);
    free(iorig);
    free(torig);
    tl_model_free(&m);
}

/* Index files of the active and of sealed segments missing, damaged or too long. */
CK_TEST(log_recover_missing_and_damaged_indexes)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 3000, 100);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 150, 60);
    int nseg = tl_count_files(tl_dir("data/" PART), ".log");
    CHECK(nseg >= 5);
    /* segment bases in order */
    int64_t bases[64];
    int nb = 0;
    for (size_t i = 0; i < m.n && nb < 64; i++)
        if (tl_file_size(tl_seg_path(dir, PART, m.base[i], ".log")) >= 0)
            bases[nb++] = m.base[i];
    CHECK_EQ(nb, nseg);
    int64_t active = bases[nb - 1];
    size_t keep = m.n;
    for (int variant = 0; variant < 8; variant++) {
        const char *path = NULL;
        switch (variant) {
        case 0: /* active: both missing */
            unlink(tl_seg_path(dir, PART, active, ".index"));
            unlink(tl_seg_path(dir, PART, active, ".timeindex"));
            break;
        case 1: /* active: random bytes */
            path = tl_seg_path(dir, PART, active, ".index");
            break;
        case 2: /* active: time index cut mid-entry */
            truncate(tl_seg_path(dir, PART, active, ".timeindex"), 5);
            break;
        case 3: /* sealed: missing offset index */
            unlink(tl_seg_path(dir, PART, bases[0], ".index"));
            break;
        case 4: /* sealed: random time index */
            path = tl_seg_path(dir, PART, bases[1], ".timeindex");
            break;
        case 5: /* sealed: truncated offset index (size not a multiple of 8) */
            truncate(tl_seg_path(dir, PART, bases[2], ".index"), 13);
            break;
        case 6: { /* sealed: an entry that is well formed but points at the wrong batch */
            const char *ip = tl_seg_path(dir, PART, bases[1], ".index");
            size_t n;
            uint8_t *d = tl_read_file(ip, &n);
            CHECK(n >= 24);
            uint32_t rel = ck_get_u32(d + 8);
            ck_put_u32(d + 8, rel + 1); /* still increasing, no longer true */
            tl_write_file(ip, d, n);
            free(d);
            break;
        }
        case 7: /* both damaged everywhere */
            for (int i = 0; i < nb; i++) {
                tl_write_file(tl_seg_path(dir, PART, bases[i], ".index"), "garbage!", 8);
                tl_write_file(tl_seg_path(dir, PART, bases[i], ".timeindex"), "", 0);
            }
            break;
        }
        if (path) {
            uint8_t junk[4000];
            for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (uint8_t)(rand() >> 5);
            tl_write_file(path, junk, sizeof(junk));
        }
        tl_model_t mm = {0};
        tl_model_add(&mm, m.bytes.data, m.bytes.len);
        tl_model_cut(&mm, keep);
        ck_log_t *log = tl_open(dir, 2);
        ck_partition_t *p = tl_part(log, "t", 0, &c);
        int64_t end = mm.last[mm.n - 1] + 1;
        CHECK_EQ(ck_partition_log_end(p), end);
        verify_each(p, &mm, 0, end);
        int64_t o, ts;
        for (size_t i = 0; i < mm.n; i += 3) {
            int64_t t0 =
                (int64_t)ck_get_u64(mm.bytes.data + mm.pos[i] + CK_BATCH_OFF_BASE_TIMESTAMP);
            CHECK_EQ(ck_partition_offset_for_time(p, t0 + 1, &o, &ts), 0);
            CHECK_EQ(o, mm.base[i] + 1);
        }
        CHECK_EQ(ck_partition_max_timestamp(p, &o, &ts), 0);
        CHECK_EQ(o, m.last[m.n - 1]);
        ck_log_close(log);
        tl_model_free(&mm);
    }
    tl_model_free(&m);
}

/* A crash can leave the .log shorter than its index expects. */
CK_TEST(log_recover_log_shorter_than_index)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1 << 20, 100);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 100, 50);
    const char *lp = tl_seg_path(dir, PART, 0, ".log");
    CHECK(tl_file_size(tl_seg_path(dir, PART, 0, ".index")) > 8 * 20);
    size_t cut_batch = m.n / 2;
    CHECK_EQ(truncate(lp, (off_t)m.pos[cut_batch] + 30), 0);
    expect_prefix(dir, &c, &m, cut_batch, true);
    /* the rebuilt index serves lookups past the old cut too */
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    for (int i = 0; i < 60; i++)
        tl_append(p, &m, 2, 50, 5000 + i, 1, -1);
    tl_wait_durable(log, p);
    verify_each(p, &m, 0, ck_partition_log_end(p));
    ck_log_close(log);
    tl_model_free(&m);
}

/* A rolled segment that was never fsynced can be torn while later segments exist. Segments
 * below the recovery point are trusted, so it is removed here to force the check. */
CK_TEST(log_recover_torn_sealed_segment_drops_later_ones)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1000, 100);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 60, 60);
    int nseg = tl_count_files(tl_dir("data/" PART), ".log");
    CHECK(nseg >= 6);
    /* the batch at the end of the third segment */
    size_t seg_start[64];
    int k = 0;
    for (size_t i = 0; i < m.n; i++)
        if (tl_file_size(tl_seg_path(dir, PART, m.base[i], ".log")) >= 0)
            seg_start[k++] = i;
    size_t victim = seg_start[3] - 1; /* last batch of segment 2 */
    const char *lp = tl_seg_path(dir, PART, m.base[seg_start[2]], ".log");
    CHECK_EQ(truncate(lp, (off_t)(m.pos[victim] - m.pos[seg_start[2]] + 20)), 0);
    char rp[600];
    snprintf(rp, sizeof(rp), "%s/%s/recovery-point", dir, PART);
    CHECK_EQ(unlink(rp), 0);
    expect_prefix(dir, &c, &m, victim, true);
    /* the segments after the torn one are gone; the torn one is active again */
    CHECK_EQ(tl_count_files(tl_dir("data/" PART), ".log"), 3);
    tl_model_free(&m);
}

/* Segments below the recovery point are not read at open (quick recovery): damage in a
 * trusted segment's payload goes unnoticed by recovery, while the same damage in the last
 * segment is found. */
CK_TEST(log_recover_reads_only_the_tail)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1000, 100);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 40, 60);
    char rp[600];
    snprintf(rp, sizeof(rp), "%s/%s/recovery-point", dir, PART);
    size_t n;
    uint8_t *r = tl_read_file(rp, &n);
    CHECK_EQ(n, 16);
    int64_t active = (int64_t)ck_get_u64(r + 4);
    free(r);
    CHECK(tl_file_size(tl_seg_path(dir, PART, active, ".log")) > 0);
    CHECK(tl_count_files(tl_dir("data/" PART), ".log") > 3);
    /* flip a payload byte of the first batch of segment 0 */
    const char *l0 = tl_seg_path(dir, PART, 0, ".log");
    uint8_t *d = tl_read_file(l0, &n);
    d[70] ^= 1;
    tl_write_file(l0, d, n);
    free(d);
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_end(p), m.last[m.n - 1] + 1);
    ck_log_close(log);
    tl_model_free(&m);
}

/* Leftovers of a crash around a roll: an empty next segment, or one past a gap. */
CK_TEST(log_recover_empty_and_stray_segments)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1000, 100);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 30, 60);
    int64_t end = m.last[m.n - 1] + 1;
    tl_write_file(tl_seg_path(dir, PART, end, ".log"), "", 0);
    int nseg = tl_count_files(tl_dir("data/" PART), ".log");
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_end(p), end);
    CHECK_EQ(tl_append(p, &m, 1, 10, 1, 1, -1), end);
    tl_wait_durable(log, p);
    ck_log_close(log);
    CHECK_EQ(tl_count_files(tl_dir("data/" PART), ".log"), nseg);
    CHECK(tl_file_size(tl_seg_path(dir, PART, end, ".log")) > 0);
    /* a segment starting past the end (its predecessor lost bytes); also stray files */
    end += 1;
    tl_write_file(tl_seg_path(dir, PART, end + 5, ".log"), m.bytes.data, m.pos[1]);
    tl_write_file(tl_seg_path(dir, PART, 777777, ".index"), "x", 1);
    tl_write_file(tl_seg_path(dir, PART, 0, ".index.tmp"), "x", 1);
    char rp[600];
    snprintf(rp, sizeof(rp), "%s/%s/recovery-point", dir, PART);
    unlink(rp);
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_end(p), end);
    CHECK_EQ(tl_file_size(tl_seg_path(dir, PART, end + 5, ".log")), -1);
    CHECK_EQ(tl_file_size(tl_seg_path(dir, PART, 777777, ".index")), -1);
    CHECK_EQ(tl_count_files(tl_dir("data/" PART), ".tmp"), 0);
    tl_verify(p, &m, 0, end, 5000);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_recover_log_start_file)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 1000, 100);
    tl_model_t m = {0};
    make_log(dir, &c, &m, 30, 60);
    int64_t end = m.last[m.n - 1] + 1;
    ck_log_t *log = tl_open(dir, 2);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_delete_records(p, 20), 0);
    ck_log_close(log);
    char ls[600];
    snprintf(ls, sizeof(ls), "%s/%s/log-start-offset", dir, PART);
    /* damaged: falls back to the first segment's base */
    size_t n;
    uint8_t *d = tl_read_file(ls, &n);
    CHECK_EQ(n, 16);
    d[15] ^= 1;
    tl_write_file(ls, d, n);
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, &c);
    CHECK(ck_partition_log_start(p) <= 20);
    CHECK_EQ(ck_partition_log_end(p), end);
    ck_log_close(log);
    /* past the end (acknowledged data vanished): offsets are never reused */
    d[15] ^= 1;
    ck_put_u64(d + 4, (uint64_t)(end + 1000));
    ck_put_u32(d + 12, ck_crc32c(0, d, 12));
    tl_write_file(ls, d, n);
    free(d);
    log = tl_open(dir, 2);
    p = tl_part(log, "t", 0, &c);
    CHECK_EQ(ck_partition_log_start(p), end + 1000);
    CHECK_EQ(ck_partition_log_end(p), end + 1000);
    CHECK_EQ(tl_append(p, NULL, 1, 10, 1, 1, -1), end + 1000);
    ck_log_close(log);
    tl_model_free(&m);
}

/* The batch for base offset b: its shape and content depend on b only. */
static void kill_batch(ck_wbuf_t *w, int64_t b)
{
    ck_wbuf_reset(w);
    tl_batch(w, 1 + (int)(b % 3), 1000 + b, 1, 50 + (size_t)(b % 100), (uint32_t)b);
    ck_put_u64(w->data, (uint64_t)b);
    ck_put_u32(w->data + CK_BATCH_OFF_LEADER_EPOCH, 0);
}

/* kill -9 while appending: everything reported durable must come back intact (a killed
 * process keeps its page cache, so this exercises recovery of an unclean stop: no final
 * flush, index files behind, a stale recovery point, rolled segments mid-flush). */
CK_TEST(log_recover_after_kill9)
{
    const char *dir = tl_dir("data");
    ck_log_config_t c;
    tl_cfg(&c, 8192, 256);
    int64_t durable = 0;
    for (int round = 0; round < 4; round++) {
        int fds[2];
        CHECK_EQ(pipe(fds), 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            ck_log_t *log = tl_open(dir, 1);
            ck_partition_t *p = tl_part(log, "t", 0, &c);
            ck_wbuf_t w = CK_WBUF_INIT;
            int64_t reported = -1;
            for (;;) {
                kill_batch(&w, ck_partition_log_end(p));
                int64_t b, l;
                if (ck_partition_append(p, w.data, w.len, -1, &b, &l) != 0)
                    _exit(3);
                int64_t d = ck_partition_durable_end(p);
                if (d > reported && write(fds[1], &d, sizeof(d)) == (ssize_t)sizeof(d))
                    reported = d;
            }
        }
        close(fds[1]);
        int64_t d, last = durable;
        while (last < durable + 2000 + round * 1500 && read(fds[0], &d, sizeof(d)) == sizeof(d))
            last = d;
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st));
        while (read(fds[0], &d, sizeof(d)) == sizeof(d))
            last = d;
        close(fds[0]);
        CHECK(last >= durable);
        durable = last;

        ck_log_t *log = tl_open(dir, 1);
        ck_partition_t *p = tl_part(log, "t", 0, &c);
        int64_t end = ck_partition_log_end(p);
        if (end < durable)
            CK_FAIL("round %d: log_end %" PRId64 " < acknowledged %" PRId64, round, end, durable);
        ck_wbuf_t out = CK_WBUF_INIT, w = CK_WBUF_INIT;
        for (int64_t off = 0; off < end;) {
            ck_wbuf_reset(&out);
            int64_t n = ck_partition_read(p, off, end, 1, true, &out);
            CHECK(n > 0);
            kill_batch(&w, off);
            CHECK_EQ((size_t)n, w.len);
            CHECK_MEM(out.data, w.data, w.len);
            off = (int64_t)ck_get_u64(out.data) +
                  (int32_t)ck_get_u32(out.data + CK_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
        }
        int64_t o, ts;
        CHECK_EQ(ck_partition_offset_for_time(p, 1000 + end / 2, &o, &ts), 0);
        CHECK(o <= end / 2 && o + 3 > end / 2);
        ck_wbuf_free(&out);
        ck_wbuf_free(&w);
        ck_log_close(log);
    }
}
