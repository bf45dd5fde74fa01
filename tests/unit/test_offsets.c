#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "group/offsets.h"
#include "log/log.h"
#include "test.h"

static ck_slice_t S(const char *s) { return ck_slice_cstr(s); }

static ck_log_t *open_log(void)
{
    char d[400];
    snprintf(d, sizeof(d), "%s/groups", ck_test_tmpdir());
    ck_log_t *log = NULL;
    CHECK_EQ(ck_log_open(d, 2, NULL, NULL, &log), 0);
    return log;
}

static void wait_durable(ck_log_t *log, ck_offsets_t *o, int64_t last)
{
    for (int i = 0; i < 2000 && ck_partition_durable_end(ck_offsets_partition(o)) <= last; i++) {
        ck_log_flush_now(log);
        usleep(1000);
    }
    CHECK(ck_partition_durable_end(ck_offsets_partition(o)) > last);
}

typedef struct { int n; int64_t sum; } acc_t;
static void count_fn(void *arg, ck_slice_t topic, int32_t partition, const ck_offset_entry_t *e)
{
    acc_t *a = arg;
    a->n++;
    a->sum += e->offset;
}

CK_TEST(offsets_commit_get_delete_replay)
{
    ck_log_t *log = open_log();
    ck_offsets_t *o;
    CHECK_EQ(ck_offsets_open(log, &o), 0);
    ck_offset_commit_t c[3] = {
        {S("orders"), 0, 10, -1, S("m0")},
        {S("orders"), 1, 20, 5, CK_SLICE_NULL},
        {S("payments"), 0, 30, -1, S("")},
    };
    int64_t last = -1;
    CHECK_EQ(ck_offsets_commit(o, S("g1"), c, 3, 1000, &last), 0);
    CHECK(last >= 0);
    c[0].offset = 11; /* overwrite */
    CHECK_EQ(ck_offsets_commit(o, S("g1"), c, 1, 2000, &last), 0);
    CHECK_EQ(ck_offsets_commit(o, S("g2"), c + 2, 1, 3000, &last), 0);
    const ck_offset_entry_t *e = ck_offsets_get(o, S("g1"), S("orders"), 0);
    CHECK(e && e->offset == 11 && e->commit_ms == 2000 && e->metadata.len == 2);
    e = ck_offsets_get(o, S("g1"), S("orders"), 1);
    CHECK(e && e->leader_epoch == 5 && e->metadata.len < 0);
    CHECK(ck_offsets_get(o, S("g1"), S("orders"), 2) == NULL);
    CHECK(ck_offsets_get(o, S("g3"), S("orders"), 0) == NULL);
    CHECK_EQ(ck_offsets_count(o), 4);
    CHECK_EQ(ck_offsets_delete(o, S("g1"), S("payments"), 0, 4000, &last), 0);
    CHECK_EQ(ck_offsets_count(o), 3);
    CHECK_EQ(ck_offsets_delete(o, S("g2"), CK_SLICE_NULL, 0, 4000, &last), 0);
    CHECK(!ck_offsets_group_has(o, S("g2")));
    CHECK_EQ(ck_offsets_count(o), 2);
    /* bad input changes nothing */
    CHECK_EQ(ck_offsets_commit(o, S(""), c, 1, 1, &last), CK_EINVAL);
    ck_offset_commit_t bad = {S(""), 0, 1, -1, CK_SLICE_NULL};
    CHECK_EQ(ck_offsets_commit(o, S("g1"), &bad, 1, 1, &last), CK_EINVAL);
    CHECK_EQ(ck_offsets_count(o), 2);
    wait_durable(log, o, last);
    ck_offsets_close(o);
    ck_log_close(log);

    /* replay rebuilds exactly the live state */
    log = open_log();
    CHECK_EQ(ck_offsets_open(log, &o), 0);
    CHECK_EQ(ck_offsets_count(o), 2);
    acc_t a = {0, 0};
    ck_offsets_foreach(o, S("g1"), count_fn, &a);
    CHECK_EQ(a.n, 2);
    CHECK_EQ(a.sum, 31);
    e = ck_offsets_get(o, S("g1"), S("orders"), 0);
    CHECK(e && e->offset == 11 && e->metadata.len == 2 && memcmp(e->metadata.ptr, "m0", 2) == 0);
    CHECK(!ck_offsets_group_has(o, S("g2")));
    ck_offsets_close(o);
    ck_log_close(log);
}

CK_TEST(offsets_many_keys)
{
    ck_log_t *log = open_log();
    ck_offsets_t *o;
    CHECK_EQ(ck_offsets_open(log, &o), 0);
    int64_t last = -1;
    char t[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(t, sizeof(t), "topic-%d", i % 50);
        ck_offset_commit_t c = {S(t), i / 50, i, -1, CK_SLICE_NULL};
        CHECK_EQ(ck_offsets_commit(o, S(i % 2 ? "odd" : "even"), &c, 1, i, &last), 0);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(t, sizeof(t), "topic-%d", i % 50);
        CHECK_EQ(ck_offsets_delete(o, S(i % 2 ? "odd" : "even"), S(t), i / 50, 1, &last), 0);
    }
    long live = ck_offsets_count(o);
    wait_durable(log, o, last);
    ck_offsets_close(o);
    ck_log_close(log);
    log = open_log();
    CHECK_EQ(ck_offsets_open(log, &o), 0);
    CHECK_EQ(ck_offsets_count(o), live);
    for (int i = 0; i < 5000; i++) {
        snprintf(t, sizeof(t), "topic-%d", i % 50);
        const ck_offset_entry_t *e = ck_offsets_get(o, S(i % 2 ? "odd" : "even"), S(t), i / 50);
        if (i % 7 == 0)
            CHECK(e == NULL);
        else
            CHECK(e && e->offset == i);
    }
    ck_offsets_close(o);
    ck_log_close(log);
}

static bool only_busy_active(void *arg, ck_slice_t group) { return ck_slice_eq_cstr(group, "busy"); }

CK_TEST(offsets_expire_inactive_groups_only)
{
    ck_log_t *log = open_log();
    ck_offsets_t *o;
    CHECK_EQ(ck_offsets_open(log, &o), 0);
    int64_t last;
    ck_offset_commit_t c = {S("t"), 0, 5, -1, CK_SLICE_NULL};
    CHECK_EQ(ck_offsets_commit(o, S("old"), &c, 1, 1000, &last), 0);
    CHECK_EQ(ck_offsets_commit(o, S("busy"), &c, 1, 1000, &last), 0);
    CHECK_EQ(ck_offsets_commit(o, S("fresh"), &c, 1, 9000, &last), 0);
    CHECK_EQ(ck_offsets_expire(o, 10000, 5000, only_busy_active, NULL, &last), 1);
    CHECK(ck_offsets_get(o, S("old"), S("t"), 0) == NULL);
    CHECK(ck_offsets_get(o, S("busy"), S("t"), 0) != NULL);
    CHECK(ck_offsets_get(o, S("fresh"), S("t"), 0) != NULL);
    wait_durable(log, o, last);
    ck_offsets_close(o);
    ck_log_close(log);
    log = open_log();
    CHECK_EQ(ck_offsets_open(log, &o), 0);
    CHECK(ck_offsets_get(o, S("old"), S("t"), 0) == NULL);
    CHECK_EQ(ck_offsets_count(o), 2);
    ck_offsets_close(o);
    ck_log_close(log);
}

CK_TEST(offsets_log_cleanup_keeps_live_state)
{
    ck_log_t *log = open_log();
    ck_offsets_t *o;
    CHECK_EQ(ck_offsets_open(log, &o), 0);
    int64_t last = -1;
    char t[32];
    /* the same 30 keys committed over and over: the log grows, the live state does not */
    for (int round = 0; round < 200; round++)
        for (int k = 0; k < 30; k++) {
            snprintf(t, sizeof(t), "topic-%d", k % 3);
            ck_offset_commit_t c = {S(t), k, round * 100 + k, -1, CK_SLICE_NULL};
            CHECK_EQ(ck_offsets_commit(o, S("g"), &c, 1, 1000 + round, &last), 0);
        }
    CHECK_EQ(ck_offsets_delete(o, S("g"), S("topic-0"), 0, 5000, &last), 0);
    ck_partition_t *p = ck_offsets_partition(o);
    CHECK_EQ(ck_offsets_compact_step(o, 1 << 30, 4, 6000), 0); /* not due: under min_bytes */
    CHECK_EQ(ck_offsets_compact_step(o, 1, 4, 6000), 1);       /* phase 1: copy */
    int64_t start_before = ck_partition_log_start(p);
    wait_durable(log, o, ck_partition_log_end(p) - 1);
    CHECK_EQ(ck_offsets_compact_step(o, 1, 4, 6000), 1);       /* phase 2: move the start */
    CHECK(ck_partition_log_start(p) > start_before);
    CHECK_EQ(ck_offsets_count(o), 29);
    ck_offsets_close(o);
    ck_log_close(log);
    /* replay from the new start gives the same state */
    log = open_log();
    CHECK_EQ(ck_offsets_open(log, &o), 0);
    CHECK_EQ(ck_offsets_count(o), 29);
    CHECK(ck_offsets_get(o, S("g"), S("topic-0"), 0) == NULL);
    for (int k = 1; k < 30; k++) {
        snprintf(t, sizeof(t), "topic-%d", k % 3);
        const ck_offset_entry_t *e = ck_offsets_get(o, S("g"), S(t), k);
        CHECK(e && e->offset == 199 * 100 + k);
    }
    ck_offsets_close(o);
    ck_log_close(log);
}
