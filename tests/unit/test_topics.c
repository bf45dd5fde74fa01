#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "log/topics.h"
#include "test.h"

static ck_topic_defaults_t defs = {3, false, false, false};

static void open_all(const char *dir, ck_log_t **log, ck_topics_t **ts)
{
    char ld[512];
    snprintf(ld, sizeof(ld), "%s/log", dir);
    CHECK_EQ(ck_log_open(ld, 5, NULL, NULL, log), 0);
    CHECK_EQ(ck_topics_open(dir, *log, &defs, ts), 0);
}

static void close_all(ck_log_t *log, ck_topics_t *ts)
{
    ck_topics_close(ts);
    ck_log_close(log);
}

CK_TEST(topics_create_configs_reopen_delete)
{
    const char *dir = ck_test_tmpdir();
    ck_log_t *log;
    ck_topics_t *ts;
    open_all(dir, &log, &ts);
    char msg[256];
    ck_kvs_t cfg = {0};
    ck_kvs_set(&cfg, "retention.ms", "1000");
    ck_kvs_set(&cfg, "searchable.enabled", "true"); /* alias of searchable */
    ck_topic_t *t = NULL;
    CHECK_EQ(ck_topics_create(ts, "orders", 4, &cfg, false, msg, sizeof(msg), &t), 0);
    CHECK(t && t->npart == 4);
    CHECK_STREQ(ck_topic_config(t, "searchable", NULL), "true");
    CHECK_EQ(ck_topics_create(ts, "orders", 1, NULL, false, msg, sizeof(msg), NULL), CK_EEXIST);
    /* validate_only creates nothing */
    CHECK_EQ(ck_topics_create(ts, "dry", 1, NULL, true, msg, sizeof(msg), NULL), 0);
    CHECK(ck_topics_get(ts, "dry", -1) == NULL);
    /* bad names and configs */
    CHECK_EQ(ck_topics_create(ts, "a/b", 1, NULL, false, msg, sizeof(msg), NULL), CK_EINVAL);
    ck_kvs_t bad = {0};
    ck_kvs_set(&bad, "cleanup.policy", "compact");
    CHECK_EQ(ck_topics_create(ts, "c", 1, &bad, false, msg, sizeof(msg), NULL), CK_EINVAL);
    CHECK(strstr(msg, "compact") != NULL);
    ck_kvs_free(&bad);
    ck_kvs_set(&bad, "no.such.key", "1");
    CHECK_EQ(ck_topics_create(ts, "c", 1, &bad, false, msg, sizeof(msg), NULL), CK_EINVAL);
    ck_kvs_free(&bad);
    CHECK_EQ(ck_topics_add_partitions(ts, t, 6, false, msg, sizeof(msg)), 0);
    CHECK_EQ(ck_topics_add_partitions(ts, t, 5, false, msg, sizeof(msg)), CK_EINVAL);
    uint8_t id[16];
    memcpy(id, t->id, 16);
    close_all(log, ts);

    open_all(dir, &log, &ts);
    t = ck_topics_get(ts, "orders", -1);
    CHECK(t != NULL);
    CHECK_EQ(t->npart, 6);
    CHECK_MEM(t->id, id, 16);
    CHECK_STREQ(ck_topic_config(t, "retention.ms", NULL), "1000");
    bool def;
    CHECK_STREQ(ck_topic_config(t, "segment.ms", &def), "604800000");
    CHECK(def);
    CHECK_EQ(ck_topics_delete(ts, t), 0);
    CHECK(ck_topics_get(ts, "orders", -1) == NULL);
    close_all(log, ts);
    char p[600];
    snprintf(p, sizeof(p), "%s/log/orders-0", dir);
    struct stat st;
    CHECK(stat(p, &st) != 0);
    ck_kvs_free(&cfg);
}

CK_TEST(topics_orphans_removed_damaged_meta_kept)
{
    const char *dir = ck_test_tmpdir();
    ck_log_t *log;
    ck_topics_t *ts;
    open_all(dir, &log, &ts);
    char msg[256];
    CHECK_EQ(ck_topics_create(ts, "keep", 1, NULL, false, msg, sizeof(msg), NULL), 0);
    CHECK_EQ(ck_topics_create(ts, "gone", 1, NULL, false, msg, sizeof(msg), NULL), 0);
    close_all(log, ts);
    char p[600];
    /* "gone" lost its metadata (a delete interrupted after the first step) */
    snprintf(p, sizeof(p), "%s/meta/topics/gone.topic", dir);
    CHECK_EQ(unlink(p), 0);
    /* "keep" has a damaged metadata file: not loaded, but its data is not touched */
    snprintf(p, sizeof(p), "%s/meta/topics/keep.topic", dir);
    FILE *f = fopen(p, "r+");
    CHECK(f);
    fputs("XX", f);
    fclose(f);
    open_all(dir, &log, &ts);
    CHECK(ck_topics_get(ts, "keep", -1) == NULL);
    CHECK(ck_topics_get(ts, "gone", -1) == NULL);
    close_all(log, ts);
    struct stat st;
    snprintf(p, sizeof(p), "%s/log/gone-0", dir);
    CHECK(stat(p, &st) != 0);
    snprintf(p, sizeof(p), "%s/log/keep-0", dir);
    CHECK(stat(p, &st) == 0);
}

CK_TEST(topics_config_validation)
{
    char msg[256];
    CHECK_EQ(ck_topic_cfg_validate("retention.ms", "-1", msg, sizeof(msg)), 0);
    CHECK_EQ(ck_topic_cfg_validate("retention.ms", "-2", msg, sizeof(msg)), CK_EINVAL);
    CHECK_EQ(ck_topic_cfg_validate("retention.ms", "12x", msg, sizeof(msg)), CK_EINVAL);
    CHECK_EQ(ck_topic_cfg_validate("columnar.enabled", "TRUE", msg, sizeof(msg)), CK_EINVAL);
    CHECK_EQ(ck_topic_cfg_validate("message.timestamp.type", "LogAppendTime", msg, sizeof(msg)), 0);
    CHECK_EQ(ck_topic_cfg_validate("message.timestamp.type", "Wallclock", msg, sizeof(msg)), CK_EINVAL);
    CHECK_EQ(ck_topic_cfg_validate("cleanup.policy", "delete", msg, sizeof(msg)), 0);
    CHECK_EQ(ck_topic_cfg_validate("cleanup.policy", "delete,compact", msg, sizeof(msg)), CK_EINVAL);
    CHECK_EQ(ck_topic_cfg_validate("vector.field", "$.body.text", msg, sizeof(msg)), 0);
    CHECK_EQ(ck_topic_cfg_validate("vector.field", "body", msg, sizeof(msg)), CK_EINVAL);
    CHECK_EQ(ck_topic_cfg_validate("vector.reranker.model", "x", msg, sizeof(msg)), 0);
    CHECK_EQ(ck_topic_cfg_validate("nope", "1", msg, sizeof(msg)), CK_EINVAL);
}
