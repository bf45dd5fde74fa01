/* Topic config keys: the Kafka keys we act on, plus Chronik's capability keys (stored now,
 * acted on by the indexer). Validation follows Kafka: unknown keys and bad values are
 * INVALID_CONFIG at the protocol edge. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libstemmer.h>

#include "core/alloc.h"
#include "core/err.h"
#include "log/topics.h"

static const char *const cleanup_values[] = {"delete", "compact", NULL};
static const char *const compression_values[] = {"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer", NULL};
static const char *const ts_type_values[] = {"CreateTime", "LogAppendTime", NULL};
static const char *const col_format_values[] = {"parquet", "arrow", NULL};
static const char *const col_compression_values[] = {"zstd", "snappy", "lz4", "gzip", "none", NULL};
static const char *const col_stats_values[] = {"none", "chunk", "full", NULL};
static const char *const col_part_values[] = {"none", "hourly", "daily", NULL};
static const char *const provider_values[] = {"openai", "external", "local", NULL};
static const char *const field_values[] = {NULL}; /* free text, checked separately */
static const char *const index_type_values[] = {"hnsw", "flat", NULL};
static const char *const metric_values[] = {"cosine", "euclidean", "dot", NULL};
static const char *const quant_values[] = {"f32", "f16", "int8", "binary", NULL};

#define L INT64_MAX
#define I INT32_MAX

const ck_cfg_def_t ck_topic_cfg_defs[] = {
    {"cleanup.policy", CK_CFG_LIST, "delete", 0, 0, cleanup_values, NULL, "Retention policy: delete (compact is not supported yet)"},
    {"compression.type", CK_CFG_ENUM, "producer", 0, 0, compression_values, NULL, "Batches are stored as the producer sent them"},
    {"delete.retention.ms", CK_CFG_LONG, "86400000", 0, L, NULL, NULL, "Tombstone retention for compacted topics"},
    {"file.delete.delay.ms", CK_CFG_LONG, "60000", 0, L, NULL, NULL, "Delay before deleting a file"},
    {"flush.messages", CK_CFG_LONG, "9223372036854775807", 1, L, NULL, NULL, "Durability is by group commit (CHRONIK_WAL_PROFILE)"},
    {"flush.ms", CK_CFG_LONG, "9223372036854775807", 0, L, NULL, NULL, "Durability is by group commit (CHRONIK_WAL_PROFILE)"},
    {"index.interval.bytes", CK_CFG_INT, "4096", 0, I, NULL, NULL, "Bytes between offset index entries"},
    {"max.message.bytes", CK_CFG_INT, "1048588", 0, I, NULL, NULL, "Largest record batch accepted"},
    {"message.downconversion.enable", CK_CFG_BOOL, "true", 0, 0, NULL, NULL, "Down-convert for old fetch versions"},
    {"message.timestamp.type", CK_CFG_ENUM, "CreateTime", 0, 0, ts_type_values, NULL, "CreateTime or LogAppendTime"},
    {"min.insync.replicas", CK_CFG_INT, "1", 1, 1, NULL, NULL, "Single node: 1"},
    {"retention.bytes", CK_CFG_LONG, "-1", -1, L, NULL, NULL, "Partition size limit, -1 = none"},
    {"retention.ms", CK_CFG_LONG, "604800000", -1, L, NULL, NULL, "Time limit, -1 = forever"},
    {"segment.bytes", CK_CFG_INT, "1073741824", 14, I, NULL, NULL, "Segment file size"},
    {"segment.index.bytes", CK_CFG_INT, "10485760", 4, I, NULL, NULL, "Index file size"},
    {"segment.jitter.ms", CK_CFG_LONG, "0", 0, L, NULL, NULL, "Jitter for segment.ms"},
    {"segment.ms", CK_CFG_LONG, "604800000", 1, L, NULL, NULL, "Segment age before rolling"},
    {"unclean.leader.election.enable", CK_CFG_BOOL, "false", 0, 0, NULL, NULL, "Single node: no effect"},
    /* Chronik capabilities */
    {"columnar.enabled", CK_CFG_BOOL, "false", 0, 0, NULL, NULL, "Columnar tables and SQL"},
    {"columnar.format", CK_CFG_ENUM, "parquet", 0, 0, col_format_values, NULL, "Cold file format"},
    {"columnar.compression", CK_CFG_ENUM, "zstd", 0, 0, col_compression_values, NULL, "Parquet codec"},
    {"columnar.compression.level", CK_CFG_INT, "3", 1, 22, NULL, NULL, "Parquet codec level"},
    {"columnar.row_group_size", CK_CFG_INT, "100000", 1000, I, NULL, NULL, "Rows per row group"},
    {"columnar.page_size", CK_CFG_INT, "1048576", 1024, I, NULL, NULL, "Parquet page size"},
    {"columnar.bloom_filter", CK_CFG_BOOL, "true", 0, 0, NULL, NULL, "Bloom filters"},
    {"columnar.bloom_filter.columns", CK_CFG_STRING, "_offset,_timestamp", 0, 0, NULL, NULL, "Bloom filter columns"},
    {"columnar.dictionary", CK_CFG_BOOL, "true", 0, 0, NULL, NULL, "Dictionary encoding"},
    {"columnar.statistics", CK_CFG_ENUM, "full", 0, 0, col_stats_values, NULL, "Column statistics"},
    {"columnar.partitioning", CK_CFG_ENUM, "none", 0, 0, col_part_values, NULL, "Cold file layout"},
    {"columnar.json_schema", CK_CFG_STRING, NULL, 0, 0, NULL, NULL, "Inferred JSON schema"},
    {"searchable", CK_CFG_BOOL, "false", 0, 0, NULL, NULL, "Full-text indexing"},
    {"searchable.enabled", CK_CFG_BOOL, NULL, 0, 0, NULL, "searchable", "Alias of searchable"},
    {"searchable.hot.enabled", CK_CFG_BOOL, "true", 0, 0, NULL, NULL, "Near-real-time text index"},
    {"searchable.refresh.ms", CK_CFG_LONG, "1000", 0, 3600000, NULL, NULL, "Longest delay before indexed records become searchable"},
    {"searchable.language", CK_CFG_STRING, "english", 0, 0, NULL, NULL, "Snowball stemmer of text fields (none = no stemming)"},
    {"searchable.stopwords", CK_CFG_BOOL, "true", 0, 0, NULL, NULL, "Drop English stop words from text fields"},
    {"vector.enabled", CK_CFG_BOOL, "false", 0, 0, NULL, NULL, "Embeddings and vector search"},
    {"vector.provider", CK_CFG_ENUM, NULL, 0, 0, provider_values, NULL, "Embedding provider"},
    {"vector.embedding.provider", CK_CFG_ENUM, NULL, 0, 0, provider_values, "vector.provider", "Alias of vector.provider"},
    {"vector.model", CK_CFG_STRING, NULL, 0, 0, NULL, NULL, "Embedding model"},
    {"vector.embedding.model", CK_CFG_STRING, NULL, 0, 0, NULL, "vector.model", "Alias of vector.model"},
    {"vector.dimensions", CK_CFG_INT, NULL, 1, 4096, NULL, NULL, "Embedding dimensions"},
    {"vector.embedding.dimensions", CK_CFG_INT, NULL, 1, 4096, NULL, "vector.dimensions", "Alias of vector.dimensions"},
    {"vector.endpoint", CK_CFG_STRING, NULL, 0, 0, NULL, NULL, "Provider endpoint URL"},
    {"vector.embedding.endpoint", CK_CFG_STRING, NULL, 0, 0, NULL, "vector.endpoint", "Alias of vector.endpoint"},
    {"vector.field", CK_CFG_STRING, "value", 0, 0, field_values, NULL, "value, key or $.json.path"},
    {"vector.hot.enabled", CK_CFG_BOOL, "true", 0, 0, NULL, NULL, "Near-real-time vector path"},
    {"vector.index.type", CK_CFG_ENUM, "hnsw", 0, 0, index_type_values, NULL, "Index type"},
    {"vector.index.m", CK_CFG_INT, "16", 2, 256, NULL, NULL, "HNSW M"},
    {"vector.hnsw.m", CK_CFG_INT, NULL, 2, 256, NULL, "vector.index.m", "Alias of vector.index.m"},
    {"vector.index.ef_construction", CK_CFG_INT, "200", 1, 100000, NULL, NULL, "HNSW ef_construction"},
    {"vector.hnsw.ef_construction", CK_CFG_INT, NULL, 1, 100000, NULL, "vector.index.ef_construction", "Alias"},
    {"vector.index.ef_search", CK_CFG_INT, "50", 1, 100000, NULL, NULL, "HNSW ef_search"},
    {"vector.hnsw.ef_search", CK_CFG_INT, NULL, 1, 100000, NULL, "vector.index.ef_search", "Alias"},
    {"vector.index.metric", CK_CFG_ENUM, "cosine", 0, 0, metric_values, NULL, "Distance metric"},
    {"vector.hnsw.metric", CK_CFG_ENUM, NULL, 0, 0, metric_values, "vector.index.metric", "Alias"},
    {"vector.batch_size", CK_CFG_INT, NULL, 1, 2048, NULL, NULL, "Embedding batch size"},
    {"vector.quantization", CK_CFG_ENUM, NULL, 0, 0, quant_values, NULL, "Vector quantization"},
    {"vector.active_model", CK_CFG_STRING, NULL, 0, 0, NULL, NULL, "Advanced"},
    {"vector.embedding_concurrency", CK_CFG_INT, NULL, 1, 1024, NULL, NULL, "Advanced"},
    {"vector.max_retries", CK_CFG_INT, NULL, 0, 100, NULL, NULL, "Advanced"},
    {"vector.timeout_ms", CK_CFG_INT, NULL, 100, 600000, NULL, NULL, "HTTP provider request timeout"},
    {"vector.search_dimensions", CK_CFG_INT, NULL, 1, 4096, NULL, NULL, "Advanced"},
    {"vector.adaptive_retrieval", CK_CFG_BOOL, NULL, 0, 0, NULL, NULL, "Advanced"},
    {NULL},
};

const ck_cfg_def_t *ck_topic_cfg_find(const char *name, int len)
{
    if (len < 0)
        len = (int)strlen(name);
    for (const ck_cfg_def_t *d = ck_topic_cfg_defs; d->name; d++)
        if ((int)strlen(d->name) == len && memcmp(d->name, name, (size_t)len) == 0)
            return d;
    /* vector.reranker.* are free-form advanced keys */
    if (len > 16 && memcmp(name, "vector.reranker.", 16) == 0) {
        static const ck_cfg_def_t rr = {"vector.reranker.*", CK_CFG_STRING, NULL, 0, 0, NULL, NULL, "Advanced"};
        return &rr;
    }
    return NULL;
}

int ck_cfg_kafka_type(const ck_cfg_def_t *d)
{
    switch (d->type) {
    case CK_CFG_BOOL: return 1;
    case CK_CFG_INT: return 3;
    case CK_CFG_LONG: return 5;
    case CK_CFG_DOUBLE: return 6;
    case CK_CFG_LIST: return 7;
    default: return 2; /* STRING */
    }
}

static bool in_list(const char *const *vals, const char *v, size_t n)
{
    for (; *vals; vals++)
        if (strlen(*vals) == n && strncasecmp(*vals, v, n) == 0)
            return true;
    return false;
}

int ck_topic_cfg_validate(const char *key, const char *value, char *msg, int msglen)
{
    const ck_cfg_def_t *d = ck_topic_cfg_find(key, -1);
    if (!d) {
        snprintf(msg, (size_t)msglen, "Unknown topic config name: %s", key);
        return CK_EINVAL;
    }
    if (!value)
        return 0;
    switch (d->type) {
    case CK_CFG_BOOL:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            snprintf(msg, (size_t)msglen, "Invalid value %s for configuration %s: Expected value to be either true or false", value, key);
            return CK_EINVAL;
        }
        return 0;
    case CK_CFG_INT:
    case CK_CFG_LONG: {
        errno = 0;
        char *end;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno) {
            snprintf(msg, (size_t)msglen, "Invalid value %s for configuration %s: Not a number of type %s", value, key, d->type == CK_CFG_INT ? "INT" : "LONG");
            return CK_EINVAL;
        }
        if (v < d->min || v > d->max) {
            snprintf(msg, (size_t)msglen, "Invalid value %s for configuration %s: Value must be in [%lld, %lld]", value, key, (long long)d->min, (long long)d->max);
            return CK_EINVAL;
        }
        return 0;
    }
    case CK_CFG_ENUM:
        if (!in_list(d->values, value, strlen(value))) {
            snprintf(msg, (size_t)msglen, "Invalid value %s for configuration %s", value, key);
            return CK_EINVAL;
        }
        return 0;
    case CK_CFG_LIST: {
        const char *p = value;
        if (!*p) {
            snprintf(msg, (size_t)msglen, "Invalid value for configuration %s: empty list", key);
            return CK_EINVAL;
        }
        while (*p) {
            size_t n = strcspn(p, ",");
            const char *s = p;
            while (n && *s == ' ') { s++; n--; }
            while (n && s[n - 1] == ' ') n--;
            if (!in_list(d->values, s, n)) {
                snprintf(msg, (size_t)msglen, "Invalid value %s for configuration %s", value, key);
                return CK_EINVAL;
            }
            if (strcmp(key, "cleanup.policy") == 0 && n == 7 && strncasecmp(s, "compact", 7) == 0) {
                snprintf(msg, (size_t)msglen, "cleanup.policy=compact is not supported yet; use delete");
                return CK_EINVAL;
            }
            p += strcspn(p, ",");
            if (*p == ',')
                p++;
        }
        return 0;
    }
    default:
        if (strcmp(key, "vector.field") == 0 && strcmp(value, "value") != 0 &&
            strcmp(value, "key") != 0 && strncmp(value, "$.", 2) != 0) {
            snprintf(msg, (size_t)msglen, "Invalid value %s for configuration vector.field: expected value, key or $.json.path", value);
            return CK_EINVAL;
        }
        if (strcmp(key, "searchable.language") == 0 && strcasecmp(value, "none") != 0) {
            struct sb_stemmer *st = sb_stemmer_new(value, NULL);
            if (!st) {
                snprintf(msg, (size_t)msglen, "Invalid value %s for configuration searchable.language: expected a Snowball stemmer name (english, porter, german, ...) or none", value);
                return CK_EINVAL;
            }
            sb_stemmer_delete(st);
        }
        if ((strcmp(key, "vector.endpoint") == 0) && strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
            snprintf(msg, (size_t)msglen, "Invalid value %s for configuration %s: expected an http(s) URL", value, key);
            return CK_EINVAL;
        }
        return 0;
    }
}

int ck_topic_cfg_check_set(const ck_kvs_t *cfg, char *msg, int msglen)
{
    /* The built-in local model is always there, so vector.enabled needs no provider; what
     * can be checked up front is a dimension count the local model cannot give. */
    const char *v = ck_kvs_get(cfg, "vector.enabled");
    if (!v || strcasecmp(v, "true") != 0)
        return 0;
    const char *prov = ck_kvs_get(cfg, "vector.provider");
    const char *dims = ck_kvs_get(cfg, "vector.dimensions");
    bool local = prov ? strcasecmp(prov, "local") == 0 : false;
    if (!prov) {
        const char *sp = getenv("CHRONIK_EMBEDDING_PROVIDER");
        const char *key = getenv("OPENAI_API_KEY"), *ep = getenv("CHRONIK_EMBEDDING_ENDPOINT");
        local = sp && *sp ? strcasecmp(sp, "local") == 0 : !(key && *key) && !(ep && *ep);
    }
    if (local && dims && strcmp(dims, "512") != 0) {
        snprintf(msg, (size_t)msglen, "vector.dimensions=%s: the local embedding model gives 512 "
                 "dimensions (set vector.provider to openai or external for other models)", dims);
        return CK_EINVAL;
    }
    return 0;
}

/* ---- key/value sets ---- */

const char *ck_kvs_get(const ck_kvs_t *s, const char *key)
{
    for (int i = 0; i < s->count; i++)
        if (strcmp(s->items[i].key, key) == 0)
            return s->items[i].value;
    return NULL;
}

int ck_kvs_set(ck_kvs_t *s, const char *key, const char *value)
{
    for (int i = 0; i < s->count; i++) {
        if (strcmp(s->items[i].key, key) != 0)
            continue;
        if (!value) {
            ck_free(s->items[i].key);
            ck_free(s->items[i].value);
            memmove(&s->items[i], &s->items[i + 1], (size_t)(s->count - i - 1) * sizeof(ck_kv_t));
            s->count--;
            return 0;
        }
        char *v = ck_strdup(value);
        if (!v)
            return CK_ENOMEM;
        ck_free(s->items[i].value);
        s->items[i].value = v;
        return 0;
    }
    if (!value)
        return 0;
    if (s->count == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        ck_kv_t *n = ck_realloc(s->items, (size_t)cap * sizeof(*n));
        if (!n)
            return CK_ENOMEM;
        s->items = n;
        s->cap = cap;
    }
    char *k = ck_strdup(key), *v = ck_strdup(value);
    if (!k || !v) {
        ck_free(k);
        ck_free(v);
        return CK_ENOMEM;
    }
    s->items[s->count++] = (ck_kv_t){k, v};
    return 0;
}

void ck_kvs_free(ck_kvs_t *s)
{
    for (int i = 0; i < s->count; i++) {
        ck_free(s->items[i].key);
        ck_free(s->items[i].value);
    }
    ck_free(s->items);
    *s = (ck_kvs_t){0};
}

int ck_kvs_copy(ck_kvs_t *dst, const ck_kvs_t *src)
{
    *dst = (ck_kvs_t){0};
    for (int i = 0; i < src->count; i++)
        if (ck_kvs_set(dst, src->items[i].key, src->items[i].value)) {
            ck_kvs_free(dst);
            return CK_ENOMEM;
        }
    return 0;
}
