/* Idempotent producer state (src/txn/pstate.c) and producer-id allocator (src/txn/pid.c). */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "log/batch.h"
#include "test.h"
#include "txn/pid.h"
#include "txn/pstate.h"

/* Checks then appends a batch of `count` records as the broker would, at *next_off. */
static void produce(ck_pstate_t *s, int64_t pid, int16_t epoch, int32_t first, int32_t count,
                    int64_t *next_off, int64_t ts)
{
    int32_t last = ck_pstate_seq_add(first, count - 1);
    CHECK_EQ(ck_pstate_check(s, pid, epoch, first, last, NULL), CK_PSTATE_APPEND);
    CHECK_EQ(ck_pstate_update(s, pid, epoch, first, last, *next_off, *next_off + count - 1, ts), 0);
    *next_off += count;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

CK_TEST(pstate_seq_add_wraps)
{
    CHECK_EQ(ck_pstate_seq_add(0, 0), 0);
    CHECK_EQ(ck_pstate_seq_add(5, 3), 8);
    CHECK_EQ(ck_pstate_seq_add(INT32_MAX, 0), INT32_MAX);
    CHECK_EQ(ck_pstate_seq_add(INT32_MAX, 1), 0);
    CHECK_EQ(ck_pstate_seq_add(INT32_MAX - 1, 3), 1);
    CHECK_EQ(ck_pstate_seq_add(INT32_MAX - 2, INT32_MAX), INT32_MAX - 3);
    CHECK_EQ(ck_pstate_seq_add(7, -1), 7);
    CHECK_EQ(ck_pstate_seq_add(INT32_MIN, INT32_MIN), INT32_MIN);
}

CK_TEST(pstate_in_order)
{
    ck_pstate_t *s = ck_pstate_new();
    CHECK(s);
    int64_t off = 100;
    /* Unknown producer: any first sequence is accepted (Kafka with no state). */
    CHECK_EQ(ck_pstate_check(s, 7, 0, 42, 50, NULL), CK_PSTATE_APPEND);
    for (int i = 0; i < 20; i++)
        produce(s, 7, 0, i * 3, 3, &off, 1000 + i);
    CHECK_EQ(ck_pstate_count(s), 1);
    ck_pstate_producer_t pr;
    CHECK_EQ(ck_pstate_get(s, 7, &pr), 0);
    CHECK_EQ(pr.epoch, 0);
    CHECK_EQ(pr.count, CK_PSTATE_MAX_BATCHES);
    CHECK_EQ(pr.batches[0].first_seq, 45);
    CHECK_EQ(pr.batches[4].last_seq, 59);
    CHECK_EQ(pr.batches[4].first_offset, 157);
    CHECK_EQ(pr.batches[4].last_offset, 159);
    CHECK_EQ(pr.batches[4].timestamp, 1019);
    CHECK_EQ(ck_pstate_get(s, 8, &pr), CK_ENOENT);
    CHECK_EQ(ck_pstate_check(s, 7, 0, 60, 60, NULL), CK_PSTATE_APPEND);
    ck_pstate_free(s);
}

CK_TEST(pstate_duplicates_last5)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    /* Other producers interleave so offsets are not just the sequences. */
    for (int i = 0; i < 8; i++) {
        produce(s, 1, 2, i * 10, 10, &off, 500 + i);
        produce(s, 2, 0, i, 1, &off, 600 + i);
    }
    /* Batches 3..7 of producer 1 are remembered; each retry gets its original offsets. */
    for (int i = 3; i < 8; i++) {
        ck_pstate_dup_t d = {-1, -1, -1};
        CHECK_EQ(ck_pstate_check(s, 1, 2, i * 10, i * 10 + 9, &d), CK_PSTATE_DUPLICATE);
        CHECK_EQ(d.first_offset, i * 11);
        CHECK_EQ(d.last_offset, i * 11 + 9);
        CHECK_EQ(d.timestamp, 500 + i);
    }
    CHECK_EQ(ck_pstate_check(s, 1, 2, 70, 79, NULL), CK_PSTATE_DUPLICATE); /* dup may be NULL */
    /* A partial overlap is not a duplicate. */
    CHECK_EQ(ck_pstate_check(s, 1, 2, 70, 75, NULL), CK_PSTATE_OUT_OF_ORDER);
    /* A duplicate with a different epoch is judged by the epoch. */
    CHECK_EQ(ck_pstate_check(s, 1, 1, 70, 79, NULL), CK_PSTATE_STALE_EPOCH);
    CHECK_EQ(ck_pstate_check(s, 1, 3, 70, 79, NULL), CK_PSTATE_OUT_OF_ORDER);
    ck_pstate_free(s);
}

CK_TEST(pstate_sixth_oldest_out_of_order)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    for (int i = 0; i < 6; i++)
        produce(s, 9, 0, i * 2, 2, &off, i);
    /* The first batch fell out of the window: Kafka answers OUT_OF_ORDER_SEQUENCE. */
    CHECK_EQ(ck_pstate_check(s, 9, 0, 0, 1, NULL), CK_PSTATE_OUT_OF_ORDER);
    CHECK_EQ(ck_pstate_check(s, 9, 0, 2, 3, NULL), CK_PSTATE_DUPLICATE);
    ck_pstate_free(s);
}

CK_TEST(pstate_gap_out_of_order)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    produce(s, 3, 0, 0, 5, &off, 1);
    CHECK_EQ(ck_pstate_check(s, 3, 0, 6, 6, NULL), CK_PSTATE_OUT_OF_ORDER); /* gap */
    CHECK_EQ(ck_pstate_check(s, 3, 0, 4, 8, NULL), CK_PSTATE_OUT_OF_ORDER); /* overlap */
    CHECK_EQ(ck_pstate_check(s, 3, 0, 0, 0, NULL), CK_PSTATE_OUT_OF_ORDER); /* restart */
    CHECK_EQ(ck_pstate_check(s, 3, 0, -1, -1, NULL), CK_PSTATE_OUT_OF_ORDER);
    CHECK_EQ(ck_pstate_check(s, 3, 0, 5, 9, NULL), CK_PSTATE_APPEND);
    ck_pstate_free(s);
}

CK_TEST(pstate_sequence_wraparound)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    produce(s, 4, 0, INT32_MAX - 9, 5, &off, 1); /* MAX-9 .. MAX-5 */
    produce(s, 4, 0, INT32_MAX - 4, 5, &off, 2); /* MAX-4 .. MAX */
    CHECK_EQ(ck_pstate_check(s, 4, 0, INT32_MAX, INT32_MAX, NULL), CK_PSTATE_OUT_OF_ORDER);
    produce(s, 4, 0, 0, 3, &off, 3); /* after MAX comes 0 */
    CHECK_EQ(ck_pstate_check(s, 4, 0, INT32_MAX - 4, INT32_MAX, NULL), CK_PSTATE_DUPLICATE);

    /* A batch straddling the wrap: MAX-1, MAX, 0, 1. */
    ck_pstate_t *t = ck_pstate_new();
    off = 0;
    produce(t, 5, 0, INT32_MAX - 3, 2, &off, 1);
    produce(t, 5, 0, INT32_MAX - 1, 4, &off, 2);
    ck_pstate_dup_t d;
    CHECK_EQ(ck_pstate_check(t, 5, 0, INT32_MAX - 1, 1, &d), CK_PSTATE_DUPLICATE);
    CHECK_EQ(d.first_offset, 2);
    CHECK_EQ(d.last_offset, 5);
    CHECK_EQ(ck_pstate_check(t, 5, 0, 1, 1, NULL), CK_PSTATE_OUT_OF_ORDER);
    CHECK_EQ(ck_pstate_check(t, 5, 0, 2, 2, NULL), CK_PSTATE_APPEND);
    ck_pstate_free(t);
    ck_pstate_free(s);
}

CK_TEST(pstate_stale_epoch)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    produce(s, 6, 5, 0, 1, &off, 1);
    CHECK_EQ(ck_pstate_check(s, 6, 4, 1, 1, NULL), CK_PSTATE_STALE_EPOCH);
    CHECK_EQ(ck_pstate_check(s, 6, 4, 0, 0, NULL), CK_PSTATE_STALE_EPOCH); /* even a "dup" */
    CHECK_EQ(ck_pstate_check(s, 6, -1, 1, 1, NULL), CK_PSTATE_STALE_EPOCH);
    CHECK_EQ(ck_pstate_check(s, 6, 5, 1, 1, NULL), CK_PSTATE_APPEND);
    ck_pstate_free(s);
}

CK_TEST(pstate_epoch_bump_resets)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    for (int i = 0; i < 4; i++)
        produce(s, 6, 0, i, 1, &off, i);
    /* A higher epoch must start over at 0. */
    CHECK_EQ(ck_pstate_check(s, 6, 1, 4, 4, NULL), CK_PSTATE_OUT_OF_ORDER);
    CHECK_EQ(ck_pstate_check(s, 6, 1, 0, 0, NULL), CK_PSTATE_APPEND);
    produce(s, 6, 1, 0, 2, &off, 10);
    ck_pstate_producer_t pr;
    CHECK_EQ(ck_pstate_get(s, 6, &pr), 0);
    CHECK_EQ(pr.epoch, 1);
    CHECK_EQ(pr.count, 1); /* the old epoch's batches are forgotten */
    CHECK_EQ(ck_pstate_check(s, 6, 1, 0, 1, NULL), CK_PSTATE_DUPLICATE);
    CHECK_EQ(ck_pstate_check(s, 6, 0, 3, 3, NULL), CK_PSTATE_STALE_EPOCH);
    CHECK_EQ(ck_pstate_check(s, 6, 1, 2, 2, NULL), CK_PSTATE_APPEND);
    ck_pstate_free(s);
}

CK_TEST(pstate_non_idempotent)
{
    ck_pstate_t *s = ck_pstate_new();
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(ck_pstate_check(s, -1, -1, -1, -1, NULL), CK_PSTATE_APPEND);
        CHECK_EQ(ck_pstate_update(s, -1, -1, -1, -1, i, i, i), 0);
    }
    CHECK_EQ(ck_pstate_count(s), 0);
    ck_pstate_free(s);
}

CK_TEST(pstate_update_ignores_replayed)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 10;
    produce(s, 1, 0, 0, 2, &off, 1);
    produce(s, 1, 0, 2, 2, &off, 2);
    /* Replaying an already applied batch (overlapping log stretch) changes nothing. */
    CHECK_EQ(ck_pstate_update(s, 1, 0, 0, 1, 10, 11, 1), 0);
    ck_pstate_producer_t pr;
    CHECK_EQ(ck_pstate_get(s, 1, &pr), 0);
    CHECK_EQ(pr.count, 2);
    CHECK_EQ(pr.batches[1].last_offset, 13);
    /* Nor can an old-epoch batch replayed over a newer epoch forget the newer batches. */
    produce(s, 1, 1, 0, 1, &off, 3);
    CHECK_EQ(ck_pstate_update(s, 1, 0, 2, 3, 12, 13, 2), 0);
    CHECK_EQ(ck_pstate_get(s, 1, &pr), 0);
    CHECK_EQ(pr.epoch, 1);
    CHECK_EQ(pr.count, 1);
    CHECK_EQ(pr.batches[0].first_offset, 14);
    ck_pstate_free(s);
}

CK_TEST(pstate_oom)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    produce(s, 1, 0, 0, 1, &off, 1);
    ck_alloc_fail_after(1);
    CHECK_EQ(ck_pstate_update(s, 2, 0, 0, 0, 1, 1, 1), CK_ENOMEM);
    ck_alloc_fail_after(0);
    CHECK_EQ(ck_pstate_count(s), 1);
    ck_alloc_fail_after(1); /* a known producer needs no allocation */
    CHECK_EQ(ck_pstate_update(s, 1, 0, 1, 1, 2, 2, 2), 0);
    ck_alloc_fail_after(0);
    ck_pstate_free(s);
}

#define MANY 100000

CK_TEST(pstate_many_producers)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    double t0 = now_s();
    for (int round = 0; round < 6; round++)
        for (int64_t pid = 0; pid < MANY; pid++)
            produce(s, pid * 7, 0, round * 2, 2, &off, round);
    double t1 = now_s();
    CHECK_EQ(ck_pstate_count(s), MANY);
    for (int64_t pid = 0; pid < MANY; pid++) {
        ck_pstate_dup_t d;
        CHECK_EQ(ck_pstate_check(s, pid * 7, 0, 10, 11, &d), CK_PSTATE_DUPLICATE);
        CHECK_EQ(d.first_offset, 5 * (int64_t)MANY * 2 + pid * 2);
        CHECK_EQ(ck_pstate_check(s, pid * 7, 0, 12, 12, NULL), CK_PSTATE_APPEND);
        CHECK_EQ(ck_pstate_check(s, pid * 7 + 1, 0, 5, 5, NULL), CK_PSTATE_APPEND); /* unknown */
    }
    double t2 = now_s();
    fprintf(stderr, "  %d producers: %.0f ns/update, %.0f ns/check (sanitizers on?)\n", MANY,
            (t1 - t0) * 1e9 / (6.0 * MANY), (t2 - t1) * 1e9 / (3.0 * MANY));
    /* Generous: a linear scan per lookup would take minutes here. */
    CHECK(t2 - t0 < 10.0);
    ck_pstate_free(s);
}

CK_TEST(pstate_expire)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    const int64_t day = CK_PSTATE_DEFAULT_EXPIRATION_MS;
    /* Even pids idle since t=0, odd pids active at t=day/2. */
    for (int64_t pid = 0; pid < 5000; pid++)
        produce(s, pid, 0, 0, 1, &off, (pid & 1) ? day / 2 : 0);
    CHECK_EQ(ck_pstate_expire(s, day - 1, day), 0);
    CHECK_EQ(ck_pstate_expire(s, day, day), 2500); /* idle exactly the limit: expired */
    CHECK_EQ(ck_pstate_count(s), 2500);
    /* Backward-shift deletion must keep every survivor reachable. */
    for (int64_t pid = 0; pid < 5000; pid++) {
        ck_pstate_producer_t pr;
        CHECK_EQ(ck_pstate_get(s, pid, &pr), (pid & 1) ? 0 : CK_ENOENT);
        if (!(pid & 1))
            CHECK_EQ(ck_pstate_check(s, pid, 0, 77, 77, NULL), CK_PSTATE_APPEND); /* any seq */
    }
    /* A producer active again is kept: its newest batch counts. */
    produce(s, 1, 0, 1, 1, &off, 2 * day);
    CHECK_EQ(ck_pstate_expire(s, 2 * day, day), 2499);
    CHECK_EQ(ck_pstate_count(s), 1);
    CHECK_EQ(ck_pstate_expire(s, INT64_MAX, -1), 0);      /* negative limit: never */
    CHECK_EQ(ck_pstate_expire(s, INT64_MIN + 5, day), 0); /* no overflow */
    CHECK_EQ(ck_pstate_expire(s, INT64_MAX, INT64_MAX), 0);
    CHECK_EQ(ck_pstate_count(s), 1);
    ck_pstate_free(s);
}

/* Random-ish activity of several producers, epochs and wraps. */
static void fill(ck_pstate_t *s, int64_t *off)
{
    for (int64_t pid = 0; pid < 300; pid++) {
        int nb = 1 + (int)(pid % 8);
        int32_t seq = (pid % 5 == 0) ? INT32_MAX - 3 : 0;
        for (int i = 0; i < nb; i++) {
            int32_t cnt = 1 + (int32_t)((pid + i) % 3);
            produce(s, pid * 1000 + 17, (int16_t)(pid % 4), seq, cnt, off, 1000 + pid + i);
            seq = ck_pstate_seq_add(seq, cnt);
        }
    }
}

static void check_same(const ck_pstate_t *a, const ck_pstate_t *b)
{
    CHECK_EQ(ck_pstate_count(a), ck_pstate_count(b));
    for (int64_t pid = 0; pid < 300; pid++) {
        ck_pstate_producer_t x, y;
        CHECK_EQ(ck_pstate_get(a, pid * 1000 + 17, &x), 0);
        CHECK_EQ(ck_pstate_get(b, pid * 1000 + 17, &y), 0);
        CHECK_MEM(&x, &y, sizeof(x));
    }
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    CHECK(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    CHECK(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(b, 1, n, f) == n);
    fclose(f);
}

CK_TEST(pstate_snapshot_roundtrip)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    fill(s, &off);
    char name[CK_PSTATE_SNAPSHOT_NAME_MAX], path[512];
    ck_pstate_snapshot_name(name, off);
    CHECK_EQ(strlen(name), 29);
    CHECK(strspn(name, "0123456789") == 20 && strcmp(name + 20, ".snapshot") == 0);
    snprintf(path, sizeof(path), "%s/%s", ck_test_tmpdir(), name);
    CHECK_EQ(ck_pstate_snapshot_write(s, path, off), 0);
    ck_pstate_t *r = NULL;
    int64_t next = -1;
    CHECK_EQ(ck_pstate_snapshot_read(path, &r, &next), 0);
    CHECK_EQ(next, off);
    check_same(s, r);
    /* And it keeps working: a duplicate is still recognised after the reload. */
    ck_pstate_producer_t pr;
    CHECK_EQ(ck_pstate_get(s, 17, &pr), 0);
    CHECK_EQ(
        ck_pstate_check(r, 17, pr.epoch, pr.batches[0].first_seq, pr.batches[0].last_seq, NULL),
        CK_PSTATE_DUPLICATE);
    /* Written again from the reloaded state: same bytes (sorted, deterministic). */
    char path2[520];
    snprintf(path2, sizeof(path2), "%s/again.snapshot", ck_test_tmpdir());
    CHECK_EQ(ck_pstate_snapshot_write(r, path2, off), 0);
    size_t n1, n2;
    uint8_t *b1 = slurp(path, &n1), *b2 = slurp(path2, &n2);
    CHECK_EQ(n1, n2);
    CHECK_MEM(b1, b2, n1);
    free(b1);
    free(b2);
    CHECK(access(path2, F_OK) == 0);
    snprintf(path2, sizeof(path2), "%s.tmp", path);
    CHECK(access(path2, F_OK) != 0); /* no temp left behind */

    /* Empty state round trip; a state ahead of next_offset is refused. */
    ck_pstate_t *e = ck_pstate_new();
    CHECK_EQ(ck_pstate_snapshot_write(e, path, 0), 0);
    ck_pstate_free(r);
    CHECK_EQ(ck_pstate_snapshot_read(path, &r, &next), 0);
    CHECK_EQ(next, 0);
    CHECK_EQ(ck_pstate_count(r), 0);
    CHECK_EQ(ck_pstate_snapshot_write(s, path, off - 1), CK_EINVAL);
    CHECK_EQ(ck_pstate_snapshot_write(s, path, -1), CK_EINVAL);
    ck_pstate_free(e);
    ck_pstate_free(r);
    ck_pstate_free(s);
}

CK_TEST(pstate_snapshot_corrupt)
{
    ck_pstate_t *s = ck_pstate_new();
    int64_t off = 0;
    for (int64_t pid = 0; pid < 3; pid++)
        for (int i = 0; i < 3; i++)
            produce(s, pid, 1, i, 1, &off, 5);
    char path[512];
    snprintf(path, sizeof(path), "%s/00000000000000000009.snapshot", ck_test_tmpdir());
    ck_pstate_t *r = (ck_pstate_t *)1;
    int64_t next;
    CHECK_EQ(ck_pstate_snapshot_read(path, &r, &next), CK_ENOENT);
    CHECK(r == NULL);
    CHECK_EQ(ck_pstate_snapshot_write(s, path, off), 0);
    size_t n;
    uint8_t *good = slurp(path, &n);
    CHECK_EQ(n, 20 + 3 * (12 + 3 * 32) + 4);
    uint8_t *bad = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(bad, good, n);
            bad[i] ^= (uint8_t)(1u << bit);
            spit(path, bad, n);
            CHECK_EQ(ck_pstate_snapshot_read(path, &r, &next), CK_ECORRUPT);
            CHECK(r == NULL);
        }
    }
    /* Every truncation, and a trailing extra byte. */
    for (size_t len = 0; len < n; len++) {
        spit(path, good, len);
        CHECK_EQ(ck_pstate_snapshot_read(path, &r, &next), CK_ECORRUPT);
    }
    memcpy(bad, good, n);
    bad[n] = 0;
    spit(path, bad, n + 1);
    CHECK_EQ(ck_pstate_snapshot_read(path, &r, &next), CK_ECORRUPT);
    /* A CRC-valid file with bad content (batch count 0) is refused as well. */
    memcpy(bad, good, n);
    bad[20 + 10] = 0;
    uint32_t crc = ck_crc32c(0, bad, n - 4);
    ck_put_u32(bad + n - 4, crc);
    spit(path, bad, n);
    CHECK_EQ(ck_pstate_snapshot_read(path, &r, &next), CK_ECORRUPT);
    spit(path, good, n);
    CHECK_EQ(ck_pstate_snapshot_read(path, &r, &next), 0);
    CHECK_EQ(next, 9);
    ck_pstate_free(r);
    free(bad);
    free(good);
    ck_pstate_free(s);
}

/* Builds the stored form of a batch: producer fields, base offset as assigned. */
static void add_batch(ck_wbuf_t *w, int64_t base_off, int64_t pid, int16_t epoch, int32_t seq,
                      int32_t count, int64_t ts, int codec)
{
    ck_batch_builder_t b;
    ck_batch_builder_init(&b, w, codec, CK_COMPRESS_LEVEL_DEFAULT);
    ck_batch_builder_set_base_offset(&b, base_off);
    ck_batch_builder_set_producer(&b, pid, epoch, seq);
    for (int32_t i = 0; i < count; i++)
        CHECK_EQ(ck_batch_builder_add(&b, ts, ck_slice("k", 1), ck_slice("value", 5), NULL, 0), 0);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
}

CK_TEST(pstate_rebuild_from_batches)
{
    ck_pstate_t *live = ck_pstate_new();
    ck_wbuf_t log = CK_WBUF_INIT;
    int64_t off = 0;
    size_t half = 0, quarter = 0;
    for (int64_t pid = 0; pid < 300; pid++) {
        int nb = 1 + (int)(pid % 8);
        int32_t seq = (pid % 5 == 0) ? INT32_MAX - 3 : 0;
        int16_t epoch = (int16_t)(pid % 4);
        for (int i = 0; i < nb; i++) {
            int32_t cnt = 1 + (int32_t)((pid + i) % 3);
            int64_t ts = 1000 + pid + i;
            int64_t base = off;
            produce(live, pid * 1000 + 17, epoch, seq, cnt, &off, ts);
            add_batch(&log, base, pid * 1000 + 17, epoch, seq, cnt, ts,
                      (pid + i) % 7 == 0 ? CK_CODEC_LZ4 : CK_CODEC_NONE);
            seq = ck_pstate_seq_add(seq, cnt);
            /* Interleave non-idempotent batches, which must not create state. */
            if (i == 0) {
                add_batch(&log, off, -1, -1, -1, 2, ts, CK_CODEC_NONE);
                off += 2;
            }
        }
        if (pid == 75)
            quarter = log.len;
        if (pid == 150)
            half = log.len;
    }
    CHECK(!log.err);
    ck_pstate_t *rebuilt = ck_pstate_new();
    CHECK_EQ(ck_pstate_update_from_batches(rebuilt, log.data, log.len), 0);
    check_same(live, rebuilt);

    /* Snapshot at the halfway point + replay of the tail (with overlap) = same state. */
    ck_pstate_t *part = ck_pstate_new();
    CHECK_EQ(ck_pstate_update_from_batches(part, log.data, half), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/snap", ck_test_tmpdir());
    ck_batch_header_t h;
    ck_batch_header_parse(log.data + half, &h);
    CHECK_EQ(ck_pstate_snapshot_write(part, path, h.base_offset), 0);
    ck_pstate_t *loaded = NULL;
    int64_t next = 0;
    CHECK_EQ(ck_pstate_snapshot_read(path, &loaded, &next), 0);
    CHECK_EQ(next, h.base_offset);
    CHECK_EQ(ck_pstate_update_from_batches(loaded, log.data + half, log.len - half), 0);
    check_same(live, loaded);
    /* Replay starting before the snapshot's offset (overlap) gives the same state too. */
    ck_pstate_free(loaded);
    CHECK_EQ(ck_pstate_snapshot_read(path, &loaded, &next), 0);
    CHECK_EQ(ck_pstate_update_from_batches(loaded, log.data + quarter, log.len - quarter), 0);
    check_same(live, loaded);
    /* Replaying everything again on top is harmless. */
    CHECK_EQ(ck_pstate_update_from_batches(loaded, log.data, log.len), 0);
    check_same(live, loaded);

    /* A truncated tail: whole batches before it are applied, then CK_ETRUNC. */
    ck_pstate_t *t = ck_pstate_new();
    CHECK_EQ(ck_pstate_update_from_batches(t, log.data, log.len - 1), CK_ETRUNC);
    CHECK_EQ(ck_pstate_update_from_batches(t, log.data, 30), CK_ETRUNC);
    ck_pstate_free(t);
    t = ck_pstate_new();
    log.data[16] = 1; /* magic of the first batch */
    CHECK_EQ(ck_pstate_update_from_batches(t, log.data, log.len), CK_ECORRUPT);
    CHECK_EQ(ck_pstate_count(t), 0);
    ck_pstate_free(t);

    ck_pstate_free(loaded);
    ck_pstate_free(part);
    ck_pstate_free(rebuilt);
    ck_pstate_free(live);
    ck_wbuf_free(&log);
}

CK_TEST(pstate_rebuild_skips_control_and_empty)
{
    ck_wbuf_t log = CK_WBUF_INIT;
    add_batch(&log, 0, 5, 0, 0, 3, 10, CK_CODEC_NONE);
    /* A control batch (transaction marker) of the same producer carries no sequence. */
    ck_batch_builder_t b;
    ck_batch_builder_init(&b, &log, CK_CODEC_NONE, CK_COMPRESS_LEVEL_DEFAULT);
    ck_batch_builder_set_base_offset(&b, 3);
    ck_batch_builder_set_producer(&b, 5, 0, -1);
    ck_batch_builder_set_flags(&b, CK_ATTR_CONTROL | CK_ATTR_TRANSACTIONAL);
    CHECK_EQ(ck_batch_builder_add(&b, 11, ck_slice("\0\0\0\0", 4), ck_slice("x", 1), NULL, 0), 0);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
    /* An empty batch (lastOffsetDelta -1). */
    ck_batch_builder_init(&b, &log, CK_CODEC_NONE, CK_COMPRESS_LEVEL_DEFAULT);
    ck_batch_builder_set_base_offset(&b, 4);
    ck_batch_builder_set_producer(&b, 6, 0, 0);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
    ck_pstate_t *s = ck_pstate_new();
    CHECK_EQ(ck_pstate_update_from_batches(s, log.data, log.len), 0);
    CHECK_EQ(ck_pstate_count(s), 1);
    ck_pstate_producer_t pr;
    CHECK_EQ(ck_pstate_get(s, 5, &pr), 0);
    CHECK_EQ(pr.count, 1);
    CHECK_EQ(pr.batches[0].first_seq, 0);
    CHECK_EQ(pr.batches[0].last_seq, 2);
    CHECK_EQ(pr.batches[0].first_offset, 0);
    CHECK_EQ(pr.batches[0].last_offset, 2);
    CHECK_EQ(pr.batches[0].timestamp, 10);
    ck_pstate_free(s);
    ck_wbuf_free(&log);
}

/* ---- producer-id allocator ---- */

CK_TEST(pstate_pid_unique_across_reopen)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/meta", ck_test_tmpdir()); /* created by open */
    int64_t last = -1;
    for (int run = 0; run < 3; run++) {
        ck_pid_t *p;
        CHECK_EQ(ck_pid_open(dir, &p), 0);
        for (int i = 0; i < 2500; i++) {
            int64_t id;
            CHECK_EQ(ck_pid_next(p, &id), 0);
            CHECK(id > last);
            if (run == 0 && i == 0)
                CHECK_EQ(id, 0);
            if (run == 0)
                CHECK_EQ(id, i); /* within a run, consecutive across blocks */
            last = id;
        }
        ck_pid_close(p);
    }
    /* 2500 ids use 3 blocks; each reopen starts at the next block. */
    CHECK_EQ(last, 3 * 3 * CK_PID_BLOCK_SIZE - 500 - 1);
}

CK_TEST(pstate_pid_crash_never_reuses)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/meta", ck_test_tmpdir());
    ck_pid_t *p;
    CHECK_EQ(ck_pid_open(dir, &p), 0);
    int64_t id, max = -1;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(ck_pid_next(p, &id), 0);
        max = id;
    }
    /* "Crash": the process dies without close; a new one opens the same folder. Only
     * what is on disk counts (close writes nothing, so leaking p models this exactly). */
    ck_pid_t *q;
    CHECK_EQ(ck_pid_open(dir, &q), 0);
    CHECK_EQ(ck_pid_next(q, &id), 0);
    CHECK(id > max);
    CHECK_EQ(id, CK_PID_BLOCK_SIZE);
    /* A crash in the middle of persisting (temp written, never renamed) changes nothing. */
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, CK_PID_FILE);
    spit(tmp, (const uint8_t *)"garbage", 7);
    ck_pid_t *r;
    CHECK_EQ(ck_pid_open(dir, &r), 0);
    CHECK(access(tmp, F_OK) != 0);
    CHECK_EQ(ck_pid_next(r, &id), 0);
    CHECK_EQ(id, 2 * CK_PID_BLOCK_SIZE);
    ck_pid_close(r);
    ck_pid_close(q);
    ck_pid_close(p);
}

CK_TEST(pstate_pid_corrupt_refused)
{
    char dir[512], file[600];
    snprintf(dir, sizeof(dir), "%s/meta", ck_test_tmpdir());
    snprintf(file, sizeof(file), "%s/%s", dir, CK_PID_FILE);
    ck_pid_t *p;
    int64_t id;
    CHECK_EQ(ck_pid_open(dir, &p), 0);
    CHECK_EQ(ck_pid_next(p, &id), 0);
    ck_pid_close(p);
    size_t n;
    uint8_t *good = slurp(file, &n);
    CHECK_EQ(n, 16);
    for (size_t i = 0; i < n; i++) {
        uint8_t bad[16];
        memcpy(bad, good, n);
        bad[i] ^= 0x40;
        spit(file, bad, n);
        CHECK_EQ(ck_pid_open(dir, &p), CK_ECORRUPT);
        CHECK(p == NULL);
    }
    spit(file, good, 15);
    CHECK_EQ(ck_pid_open(dir, &p), CK_ECORRUPT);
    spit(file, good, n);
    CHECK_EQ(ck_pid_open(dir, &p), 0);
    CHECK_EQ(ck_pid_next(p, &id), 0);
    CHECK_EQ(id, CK_PID_BLOCK_SIZE);
    ck_pid_close(p);
    free(good);
    /* A missing parent folder is an error, not a silent restart elsewhere. */
    snprintf(dir, sizeof(dir), "%s/no/such/meta", ck_test_tmpdir());
    CHECK_EQ(ck_pid_open(dir, &p), CK_ENOENT);
}

CK_TEST(pstate_pid_write_failure_sticky)
{
    char dir[512], tmp[600];
    snprintf(dir, sizeof(dir), "%s/meta", ck_test_tmpdir());
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, CK_PID_FILE);
    ck_pid_t *p;
    int64_t id;
    CHECK_EQ(ck_pid_open(dir, &p), 0);
    /* A folder in the temp file's place makes persisting fail, even for root. */
    CHECK(mkdir(tmp, 0755) == 0);
    CHECK(ck_pid_next(p, &id) < 0);
    CHECK(rmdir(tmp) == 0);
    CHECK_EQ(ck_pid_next(p, &id), CK_ESTATE); /* sticky until reopened */
    ck_pid_close(p);
    CHECK_EQ(ck_pid_open(dir, &p), 0);
    CHECK_EQ(ck_pid_next(p, &id), 0);
    CHECK_EQ(id, 0); /* nothing was ever persisted or handed out */
    ck_pid_close(p);
}
