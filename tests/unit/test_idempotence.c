/* The broker's producer-state table (src/kafka/idempotence.c): lazy load by snapshot +
 * log replay, snapshots at close, removal of snapshots above the log end, fallback over a
 * damaged snapshot. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "kafka/idempotence.h"
#include "log/batch.h"
#include "log/log.h"
#include "log/topics.h"
#include "net/loop.h"
#include "test.h"

static ck_topic_defaults_t defs = {1, false, false, false};

typedef struct env {
    ck_loop_t *loop;
    ck_log_t *log;
    ck_topics_t *ts;
    ck_broker_t *b;
    ck_topic_t *t;
} env_t;

static void env_open(env_t *e, const char *dir)
{
    char ld[512];
    snprintf(ld, sizeof(ld), "%s/log", dir);
    CHECK_EQ(ck_loop_new(&e->loop), 0);
    CHECK_EQ(ck_log_open(ld, 5, NULL, NULL, &e->log), 0);
    CHECK_EQ(ck_topics_open(dir, e->log, &defs, &e->ts), 0);
    char msg[200];
    e->t = ck_topics_get(e->ts, "t", -1);
    if (!e->t)
        CHECK_EQ(ck_topics_create(e->ts, "t", 1, NULL, false, msg, sizeof(msg), &e->t), 0);
    ck_broker_config_t bc;
    ck_broker_config_default(&bc);
    CHECK_EQ(ck_broker_new(e->loop, e->log, e->ts, &bc, &e->b), 0);
}

static void env_start_idem(env_t *e)
{
    CHECK_EQ(ck_broker_set_pids(e->b, NULL), 0);
}

static void env_close(env_t *e)
{
    ck_broker_free(e->b); /* snapshots the changed producer state */
    ck_topics_close(e->ts);
    ck_log_close(e->log);
    ck_loop_free(e->loop);
}

/* Appends one batch of `n` records of producer pid as the produce path does; returns its
 * base offset. Timestamps are now: older producers would expire at load. */
static int64_t append(env_t *e, ck__idem_part_t *ip, int64_t pid, int16_t epoch, int32_t seq, int n)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_batch_builder_t bb;
    ck_batch_builder_init(&bb, &w, CK_CODEC_NONE, 0);
    ck_batch_builder_set_producer(&bb, pid, epoch, seq);
    for (int i = 0; i < n; i++)
        CHECK_EQ(ck_batch_builder_add(&bb, ck_wall_ms() + i, ck_slice_cstr("k"), ck_slice_cstr("v"),
                                      NULL, 0),
                 0);
    CHECK_EQ(ck_batch_builder_finish(&bb), 0);
    int64_t base, last;
    CHECK_EQ(ck_partition_append(e->t->parts[0], w.data, w.len, -1, &base, &last), 0);
    if (ip) {
        CHECK_EQ(ck_pstate_update_from_batches(ip->ip_state, w.data, w.len), 0);
        ip->ip_dirty = true;
    }
    ck_wbuf_free(&w);
    return base;
}

static void snap_file(char *buf, size_t len, const char *dir, int64_t off)
{
    char name[CK_PSTATE_SNAPSHOT_NAME_MAX];
    ck_pstate_snapshot_name(name, off);
    snprintf(buf, len, "%s/log/t-0/%s", dir, name);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

CK_TEST(idem_replay_snapshot_replay)
{
    const char *dir = ck_test_tmpdir();
    env_t e;
    env_open(&e, dir);
    /* batches written before idempotence was on: found by the replay from the log start */
    CHECK_EQ(append(&e, NULL, 7, 0, 0, 3), 0);
    CHECK_EQ(append(&e, NULL, 8, 2, 0, 1), 3);
    env_start_idem(&e);
    ck__idem_part_t *ip = ck__idem_part(e.b, e.t, 0);
    CHECK(ip);
    CHECK(ck__idem_part(e.b, e.t, 0) == ip);
    CHECK(ck__idem_part(e.b, e.t, 1) == NULL); /* no such partition */
    ck_pstate_dup_t d;
    CHECK_EQ(ck_pstate_check(ip->ip_state, 7, 0, 0, 2, &d), CK_PSTATE_DUPLICATE);
    CHECK_EQ(d.first_offset, 0);
    CHECK_EQ(ck_pstate_check(ip->ip_state, 7, 0, 3, 3, NULL), CK_PSTATE_APPEND);
    CHECK_EQ(append(&e, ip, 7, 0, 3, 2), 4);
    int16_t ep;
    CHECK(ck__idem_known_epoch(e.b, 8, &ep) && ep == 2);
    CHECK(!ck__idem_known_epoch(e.b, 9, &ep));
    ck__idem_issued(e.b, 9, 4);
    CHECK(ck__idem_known_epoch(e.b, 9, &ep) && ep == 4);
    env_close(&e);

    char snap[600];
    snap_file(snap, sizeof(snap), dir, 6);
    CHECK(exists(snap));

    /* more batches after the snapshot; a snapshot "from the future" must go */
    env_open(&e, dir);
    CHECK_EQ(append(&e, NULL, 7, 0, 5, 1), 6);
    char future[600];
    snap_file(future, sizeof(future), dir, 1000);
    CHECK_EQ(link(snap, future), 0);
    env_start_idem(&e);
    CHECK(!exists(future));
    ip = ck__idem_part(e.b, e.t, 0);
    CHECK(ip && ip->ip_snap_offset == 6);
    ck_pstate_producer_t pr;
    CHECK_EQ(ck_pstate_get(ip->ip_state, 7, &pr), 0);
    CHECK_EQ(pr.count, 3);
    CHECK_EQ(pr.batches[2].first_offset, 6);
    CHECK_EQ(ck_pstate_check(ip->ip_state, 7, 0, 6, 6, NULL), CK_PSTATE_APPEND);
    CHECK_EQ(append(&e, ip, 7, 0, 6, 1), 7);
    env_close(&e);
    /* two snapshots are kept */
    char s8[600];
    snap_file(s8, sizeof(s8), dir, 8);
    CHECK(exists(s8) && exists(snap));

    /* a damaged newest snapshot: the older one + replay give the same state */
    FILE *f = fopen(s8, "r+");
    CHECK(f);
    fseek(f, 30, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    env_open(&e, dir);
    env_start_idem(&e);
    ip = ck__idem_part(e.b, e.t, 0);
    CHECK(ip && ip->ip_snap_offset == 6);
    CHECK(!exists(s8));
    CHECK_EQ(ck_pstate_get(ip->ip_state, 7, &pr), 0);
    CHECK_EQ(pr.count, 4);
    CHECK_EQ(ck_pstate_check(ip->ip_state, 7, 0, 6, 6, &d), CK_PSTATE_DUPLICATE);
    CHECK_EQ(d.first_offset, 7);
    CHECK_EQ(ck_pstate_get(ip->ip_state, 8, &pr), 0);
    CHECK_EQ(pr.epoch, 2);
    env_close(&e);
}
