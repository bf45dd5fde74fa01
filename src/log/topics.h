/* Topics: names, ids, partition counts and configs, persisted under <data>/meta/topics/,
 * each topic in its own small file written atomically (temp file, fsync, rename, fsync of
 * the folder). Partitions are opened through the log (log.h).
 *
 * Thread: owner thread only (the event loop), like the log. */
#ifndef CK_LOG_TOPICS_H
#define CK_LOG_TOPICS_H

#include <stdbool.h>
#include <stdint.h>

#include "log/log.h"

/* ---- topic configs ---- */

enum ck_cfg_type { CK_CFG_BOOL, CK_CFG_INT, CK_CFG_LONG, CK_CFG_DOUBLE, CK_CFG_STRING, CK_CFG_LIST, CK_CFG_ENUM };

typedef struct ck_cfg_def {
    const char *name;
    int type;                  /* enum ck_cfg_type */
    const char *default_value; /* as text; NULL = no default (null) */
    int64_t min, max;          /* for INT/LONG */
    const char *const *values; /* for ENUM/LIST: allowed values, NULL-terminated */
    const char *alias_of;      /* this key is another name for alias_of */
    const char *doc;
    bool sensitive;
} ck_cfg_def_t;

/* All known topic config keys (aliases included), NULL-terminated by name. */
extern const ck_cfg_def_t ck_topic_cfg_defs[];
const ck_cfg_def_t *ck_topic_cfg_find(const char *name, int len);
/* The Kafka type code for DescribeConfigs v3+ (1 BOOLEAN .. 8 PASSWORD). */
int ck_cfg_kafka_type(const ck_cfg_def_t *d);

/* Checks that value (NULL = delete/reset) is valid for key. On error returns CK_EINVAL and
 * writes a message into msg. Unknown keys are errors. */
int ck_topic_cfg_validate(const char *key, const char *value, char *msg, int msglen);

/* Checks rules between keys of a complete config set (canonical names), e.g. that
 * vector.enabled=true has an embedding provider (on the topic or the server's
 * OPENAI_API_KEY / CHRONIK_EMBEDDING_ENDPOINT / CHRONIK_EMBEDDING_PROVIDER). */
struct ck_kvs;
int ck_topic_cfg_check_set(const struct ck_kvs *cfg, char *msg, int msglen);

/* A set of explicitly set config entries (key → value), in insertion order. */
typedef struct ck_kv {
    char *key;
    char *value;
} ck_kv_t;
typedef struct ck_kvs {
    ck_kv_t *items;
    int count, cap;
} ck_kvs_t;

const char *ck_kvs_get(const ck_kvs_t *s, const char *key);
int ck_kvs_set(ck_kvs_t *s, const char *key, const char *value); /* value NULL = remove */
void ck_kvs_free(ck_kvs_t *s);
int ck_kvs_copy(ck_kvs_t *dst, const ck_kvs_t *src);

/* ---- the registry ---- */

typedef struct ck_topic {
    char *name;
    uint8_t id[16];
    int32_t npart;
    ck_partition_t **parts;
    ck_kvs_t configs;       /* explicitly set (canonical key names) */
    bool log_append_time;   /* message.timestamp.type=LogAppendTime */
    int32_t max_message_bytes;
} ck_topic_t;

typedef struct ck_topics ck_topics_t;

typedef struct ck_topic_defaults {
    int32_t partitions;         /* CHRONIK_DEFAULT_PARTITIONS */
    bool columnar, searchable, vector; /* CHRONIK_DEFAULT_* capability defaults */
} ck_topic_defaults_t;

/* Loads every topic under <data_dir>/meta/topics and opens its partitions; partition
 * folders under the log that belong to no topic (a delete interrupted by a crash) are
 * removed. */
int ck_topics_open(const char *data_dir, ck_log_t *log, const ck_topic_defaults_t *defs,
                   ck_topics_t **out);
void ck_topics_close(ck_topics_t *t);

ck_topic_t *ck_topics_get(ck_topics_t *t, const char *name, int len);
int ck_topics_count(const ck_topics_t *t);
ck_topic_t *ck_topics_at(ck_topics_t *t, int i); /* stable until a create/delete */
ck_topic_t *ck_topics_by_id(ck_topics_t *t, const uint8_t id[16]);
const ck_topic_defaults_t *ck_topics_defaults(const ck_topics_t *t);

/* Kafka's topic-name rules: 1..249 chars of [a-zA-Z0-9._-], not "." or "..". */
bool ck_topic_name_valid(const char *name, int len, const char **why);

/* Creates a topic (configs validated by the caller or here; partitions >= 1). When
 * validate_only, checks everything and creates nothing. Errors: CK_EEXIST, CK_EINVAL
 * (msg says why), CK_EIO. */
int ck_topics_create(ck_topics_t *t, const char *name, int32_t partitions, const ck_kvs_t *configs,
                     bool validate_only, char *msg, int msglen, ck_topic_t **out);
int ck_topics_delete(ck_topics_t *t, ck_topic_t *topic);
/* Grows to `total` partitions (must be > current). */
int ck_topics_add_partitions(ck_topics_t *t, ck_topic_t *topic, int32_t total, bool validate_only,
                             char *msg, int msglen);
/* Replaces the explicit configs with `configs` (already validated) and persists. */
int ck_topics_set_configs(ck_topics_t *t, ck_topic_t *topic, const ck_kvs_t *configs);
/* The effective value of key for topic (explicit or default); NULL when none. *is_default
 * tells which. */
const char *ck_topic_config(const ck_topic_t *topic, const char *key, bool *is_default);

#endif
