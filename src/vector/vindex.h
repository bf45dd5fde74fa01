/* The vector capability: for each topic with vector.enabled=true, the text of every record
 * (vector.field) is embedded by the topic's provider and inserted into an HNSW graph per
 * partition, findable at once; the vectors and a checkpoint are committed every second
 * and the graphs snapshotted now and then (docs/VECTOR.md).
 *
 * Topic configs: vector.enabled, vector.provider (local, openai, external; default: the
 * server's, see ck_vidx_config_t), vector.model, vector.dimensions, vector.endpoint,
 * vector.field (value, key, $.json.path), vector.index.m / ef_construction / ef_search /
 * metric, vector.batch_size, vector.max_retries, vector.timeout_ms.
 *
 * Threads: the capability ops run on the indexer's vector worker; ck_vidx_search,
 * ck_vidx_embed_query, ck_vidx_stats and ck_vidx_list on any thread. */
#ifndef CK_VECTOR_VINDEX_H
#define CK_VECTOR_VINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/indexer.h"
#include "vector/embed.h"

typedef struct ck_vidx ck_vidx_t;

typedef struct ck_vidx_config {
    const char *dir;          /* <data>/vector, created if missing */
    int64_t commit_ms;        /* vectors and checkpoint committed this often (1000) */
    uint64_t snapshot_every;  /* a partition's graph is saved after this many new vectors
                               * (100000) */
    /* Server defaults for topics that do not set them (NULL: none). */
    const char *provider;     /* CHRONIK_EMBEDDING_PROVIDER */
    const char *model;        /* CHRONIK_EMBEDDING_MODEL */
    uint32_t dims;            /* CHRONIK_EMBEDDING_DIMENSIONS */
    const char *endpoint;     /* CHRONIK_EMBEDDING_ENDPOINT */
    const char *api_key;      /* OPENAI_API_KEY (or CHRONIK_EMBEDDING_API_KEY) */
    const char *model_dir;    /* CHRONIK_EMBEDDING_MODEL_DIR (local model files) */
} ck_vidx_config_t;

int ck_vidx_new(const ck_vidx_config_t *cfg, ck_vidx_t **out);
/* After the indexer stopped. */
void ck_vidx_free(ck_vidx_t *v);

extern const ck_capability_ops_t ck_vidx_ops;

/* ---- any thread ---- */

typedef struct ck_vidx_filter {
    const int32_t *partitions; /* NULL: all */
    size_t npartitions;
    int64_t min_offset, max_offset; /* inclusive; INT64_MIN / INT64_MAX: open */
    int64_t min_ts, max_ts;         /* inclusive, ms */
} ck_vidx_filter_t;

typedef struct ck_vidx_hit {
    int32_t partition;
    int64_t offset;
    int64_t timestamp;
    float score; /* higher is better */
} ck_vidx_hit_t;

#define CK_VIDX_ERR 256

/* Embeds a query text with the topic's provider into out (dims floats, at most
 * CK_EMBED_MAX_DIMS); *dims receives the count. An HTTP provider is given up on at
 * deadline_ms (ck_mono_ms time; 0: none). Returns 0, CK_ENOENT (no such vector topic),
 * CK_EIO (provider failure: err), CK_EINVAL. */
int ck_vidx_embed_query(ck_vidx_t *v, const char *topic, const char *text, size_t len, float *out,
                        uint32_t *dims, int64_t deadline_ms, char err[CK_VIDX_ERR]);

/* The text of record r that its topic embeds (vector.field; for a topic without vectors,
 * the value's: a JSON value's strings joined by newlines), cut at 64 KiB; NULL when it has
 * none (ck_free; *len bytes, NUL-terminated). */
char *ck_vidx_record_text(ck_vidx_t *v, const char *topic, const ck_record_t *r, size_t *len);

/* The k best hits for vector q (dims floats) over the filtered partitions, best first;
 * ef 0 = the topic's ef_search, CK_VIDX_EXACT = an exact scan instead of the graph. *n receives the count (<= k); hits holds k entries.
 * Returns 0, CK_ENOENT (no such vector topic), CK_ERANGE (dims differ from the index's:
 * err says both), CK_ENOMEM. */
#define CK_VIDX_EXACT SIZE_MAX
int ck_vidx_search(ck_vidx_t *v, const char *topic, const float *q, uint32_t dims, size_t k,
                   size_t ef, const ck_vidx_filter_t *f, ck_vidx_hit_t *hits, size_t *n,
                   char err[CK_VIDX_ERR]);

typedef struct ck_vidx_stats {
    bool found;
    uint64_t total;         /* live vectors */
    int32_t npart;
    uint64_t *per_part;     /* npart counts (caller frees with ck_free) */
    uint32_t dims;          /* 0 until known */
    char provider[16], model[64], metric[16];
    uint32_t m, ef_construction, ef_search;
    bool loading;           /* opened but still catching up with the log */
    uint64_t embedded, errors;
    char last_error[CK_VIDX_ERR];
} ck_vidx_stats_t;
/* Stats of one topic; found false if it is not an open vector topic. */
int ck_vidx_stats(ck_vidx_t *v, const char *topic, ck_vidx_stats_t *st);

/* Names of the open vector topics (caller frees each and the array). Returns the count
 * or CK_ENOMEM. */
int ck_vidx_list(ck_vidx_t *v, char ***names);

/* Clears the vectors of one partition (every one when partition < 0) of a vector topic;
 * with rewind its records are then embedded again from the log start (backfill). The
 * indexer's worker does it; this waits up to timeout_ms. Returns the number of vectors
 * cleared, or CK_ENOENT (no such vector topic), CK_ERANGE (no such partition), CK_EAGAIN
 * (not done in time: it still will be). */
int64_t ck_vidx_clear(ck_vidx_t *v, const char *topic, int32_t partition, bool rewind,
                      int64_t timeout_ms);

#endif
