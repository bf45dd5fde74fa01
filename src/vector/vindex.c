/* The vector capability (see vindex.h and docs/VECTOR.md). */
#include "vector/vindex.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/logging.h"
#include "index/capreg.h"
#include "vector/hnsw.h"
#include "vector/vlog.h"

#define CKPT_VERSION 1
#define DEFAULT_BATCH_LOCAL 32
#define DEFAULT_BATCH_HTTP 256
#define MAX_TEXT (64u << 10) /* bytes of a record's text sent to the provider */

/* ---- per partition ---- */

typedef struct vpart {
    pthread_rwlock_t lock; /* hnsw, offs, ts, n against searches (worker writes) */
    ck_hnsw_t *hnsw;       /* NULL until the first vector (dims known) */
    ck_vlog_t *vlog;
    int64_t *offs, *ts; /* per internal id */
    size_t n, cap;
    uint64_t live;     /* n minus deleted */
    uint64_t del_upto; /* ids below are deleted (retention) */
    int64_t next;      /* worker: every record below is handled */
    int64_t ckpt_next; /* committed next_offset */
    uint64_t ckpt_records, snap_count;
    int64_t log_start;
} vpart_t;

/* A record waiting for its embedding. */
typedef struct pend {
    int32_t part;
    int64_t offset, ts;
    char *text; /* NULL: nothing to embed (handled as skipped) */
    size_t len;
} pend_t;

typedef struct vtopic {
    ck_capreg_node_t node; /* in ck_vidx.reg; its references count this object's */
    char *name;
    uint8_t id[16];
    char dir[1100];
    /* config */
    ck_embed_kind_t kind;
    char model[64], field[256];
    int metric;
    uint32_t m, efc, efs;
    size_t batch;
    ck_embedder_t *emb;
    uint32_t dims; /* 0 until the first vector or the embedder knows */
    /* partitions */
    pthread_mutex_t mu;     /* last_error */
    pthread_rwlock_t plock; /* the parts array (grows) against searches */
    vpart_t **parts;
    int32_t npart;
    /* worker only */
    ck_idx_topic_t *it;
    pend_t *pend;
    size_t npend, pcap;
    int64_t last_commit, last_retention;
    int64_t retry_at; /* after a failed flush from idle: when to try again (0: not failed) */
    int64_t backoff;
    bool dirty;
    _Atomic uint64_t embedded, errors;
    _Atomic bool loading;
    char last_error[CK_VIDX_ERR]; /* mu */
    /* a clear request from an HTTP thread, done by the worker (mu, cv) */
    pthread_cond_t cv;
    bool req_pending, req_rewind;
    int32_t req_part; /* < 0: every partition */
    uint64_t req_gen, done_gen;
    int64_t req_cleared;
} vtopic_t;

struct ck_vidx {
    char dir[1024];
    ck_vidx_config_t cfg;
    char *provider, *model, *endpoint, *api_key, *model_dir;
    ck_capreg_t reg; /* the open topics */
};

static const char *metric_name(int m)
{
    return m == CK_VMETRIC_DOT ? "dot" : m == CK_VMETRIC_EUCLIDEAN ? "euclidean" : "cosine";
}

static int metric_parse(const char *s)
{
    if (!s || !strcasecmp(s, "cosine"))
        return CK_VMETRIC_COSINE;
    if (!strcasecmp(s, "dot"))
        return CK_VMETRIC_DOT;
    if (!strcasecmp(s, "euclidean") || !strcasecmp(s, "l2"))
        return CK_VMETRIC_EUCLIDEAN;
    return 0;
}

/* ---- lifetime ---- */

static char *dup_opt(const char *s)
{
    return s && *s ? ck_strdup(s) : NULL;
}

int ck_vidx_new(const ck_vidx_config_t *cfg, ck_vidx_t **out)
{
    *out = NULL;
    ck_vidx_t *v = ck_calloc(1, sizeof(*v));
    if (!v)
        return CK_ENOMEM;
    v->cfg = *cfg;
    if (v->cfg.commit_ms <= 0)
        v->cfg.commit_ms = 1000;
    if (!v->cfg.snapshot_every)
        v->cfg.snapshot_every = 100000;
    snprintf(v->dir, sizeof(v->dir), "%s", cfg->dir);
    v->provider = dup_opt(cfg->provider);
    v->model = dup_opt(cfg->model);
    v->endpoint = dup_opt(cfg->endpoint);
    v->api_key = dup_opt(cfg->api_key);
    v->model_dir = dup_opt(cfg->model_dir);
    ck_capreg_init(&v->reg);
    int rc = ck_mkdirs(v->dir);
    if (rc) {
        ck_vidx_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void ck_vidx_free(ck_vidx_t *v)
{
    if (!v)
        return;
    ck_capreg_destroy(&v->reg);
    ck_free(v->provider);
    ck_free(v->model);
    ck_free(v->endpoint);
    ck_free(v->api_key);
    ck_free(v->model_dir);
    ck_free(v);
}

/* The provider of a topic: its vector.provider, else the server's, else openai when a key
 * or an endpoint is set, else the built-in model. */
static const char *provider_for(const ck_vidx_t *v, const char *topic_provider)
{
    if (topic_provider && ck_embed_kind_parse(topic_provider))
        return ck_embed_kind_name(ck_embed_kind_parse(topic_provider));
    if (v->provider && ck_embed_kind_parse(v->provider))
        return ck_embed_kind_name(ck_embed_kind_parse(v->provider));
    if (v->api_key || v->endpoint)
        return "openai";
    return "local";
}

static void part_free(vpart_t *p)
{
    ck_hnsw_free(p->hnsw);
    ck_vlog_close(p->vlog);
    ck_free(p->offs);
    ck_free(p->ts);
    pthread_rwlock_destroy(&p->lock);
    ck_free(p);
}

static void pend_clear(vtopic_t *t)
{
    for (size_t i = 0; i < t->npend; i++)
        ck_free(t->pend[i].text);
    t->npend = 0;
}

static void topic_unref(vtopic_t *t)
{
    if (!t || !ck_capreg_unref(&t->node))
        return;
    for (int32_t p = 0; p < t->npart; p++)
        part_free(t->parts[p]);
    ck_free(t->parts);
    pend_clear(t);
    ck_free(t->pend);
    ck_embedder_free(t->emb);
    ck_free(t->name);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_rwlock_destroy(&t->plock);
    ck_free(t);
}

static vtopic_t *topic_of(ck_capreg_node_t *n)
{
    return n ? (vtopic_t *)((char *)n - offsetof(vtopic_t, node)) : NULL;
}

static vtopic_t *registry_get(ck_vidx_t *v, const char *name)
{
    return topic_of(ck_capreg_get(&v->reg, name));
}

static void set_error(vtopic_t *t, const char *msg)
{
    pthread_mutex_lock(&t->mu);
    snprintf(t->last_error, sizeof(t->last_error), "%s", msg);
    pthread_mutex_unlock(&t->mu);
}

/* ---- config ---- */

/* Reads the topic's vector.* configs (with the server's defaults) into t and makes its
 * embedder. */
static int read_options(ck_vidx_t *v, vtopic_t *t, const ck_kvs_t *cfg, char err[CK_EMBED_ERR])
{
    const char *prov = provider_for(v, ck_kvs_get(cfg, "vector.provider"));
    t->kind = ck_embed_kind_parse(prov);
    const char *model = ck_kvs_get(cfg, "vector.model");
    if (!model && t->kind != CK_EMBED_LOCAL)
        model = v->model ? v->model : t->kind == CK_EMBED_OPENAI ? "text-embedding-3-small" : NULL;
    const char *dv = ck_kvs_get(cfg, "vector.dimensions");
    uint32_t dims = dv                          ? (uint32_t)strtoul(dv, NULL, 10)
                    : t->kind != CK_EMBED_LOCAL ? v->cfg.dims
                                                : 0;
    const char *ep = ck_kvs_get(cfg, "vector.endpoint");
    if (!ep)
        ep = v->endpoint;
    const char *f = ck_kvs_get(cfg, "vector.field");
    snprintf(t->field, sizeof(t->field), "%s", f && *f ? f : "value");
    const char *mv = ck_kvs_get(cfg, "vector.index.metric");
    t->metric = metric_parse(mv);
    if (!t->metric)
        t->metric = CK_VMETRIC_COSINE;
    if (t->kind == CK_EMBED_LOCAL)
        t->metric = mv ? t->metric : CK_VMETRIC_COSINE;
    const char *x = ck_kvs_get(cfg, "vector.index.m");
    t->m = x ? (uint32_t)strtoul(x, NULL, 10) : 16;
    x = ck_kvs_get(cfg, "vector.index.ef_construction");
    t->efc = x ? (uint32_t)strtoul(x, NULL, 10) : 200;
    x = ck_kvs_get(cfg, "vector.index.ef_search");
    t->efs = x ? (uint32_t)strtoul(x, NULL, 10) : 50;
    x = ck_kvs_get(cfg, "vector.batch_size");
    t->batch = x                           ? strtoul(x, NULL, 10)
               : t->kind == CK_EMBED_LOCAL ? DEFAULT_BATCH_LOCAL
                                           : DEFAULT_BATCH_HTTP;
    if (t->m < 2 || t->m > 256)
        t->m = 16;
    if (!t->efc)
        t->efc = 200;
    if (!t->efs)
        t->efs = 50;
    if (!t->batch || t->batch > 2048)
        t->batch = DEFAULT_BATCH_LOCAL;
    x = ck_kvs_get(cfg, "vector.max_retries");
    const char *to = ck_kvs_get(cfg, "vector.timeout_ms");
    ck_embed_config_t ec = {
        .kind = t->kind,
        .model = model,
        .dims = dims,
        .endpoint = ep,
        .api_key = v->api_key,
        .timeout_ms = to ? atoi(to) : 30000,
        .max_retries = x ? atoi(x) : 3,
        .model_dir = v->model_dir,
    };
    ck_embedder_t *e = NULL;
    int rc = ck_embedder_new(&ec, &e, err);
    if (rc)
        return rc;
    ck_embedder_free(t->emb);
    t->emb = e;
    snprintf(t->model, sizeof(t->model), "%s", ck_embedder_model(e));
    if (!t->dims)
        t->dims = ck_embedder_dims(e);
    return 0;
}

/* ---- files ---- */

static void part_path(const vtopic_t *t, int32_t p, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/p%d.%s", t->dir, (int)p, ext);
}

static void hex_id(const uint8_t id[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static int grow_parts(vtopic_t *t, int32_t npart)
{
    if (npart <= t->npart)
        return 0;
    vpart_t **np = ck_calloc((size_t)npart, sizeof(*np));
    if (!np)
        return CK_ENOMEM;
    for (int32_t p = t->npart; p < npart; p++) {
        if (!(np[p] = ck_calloc(1, sizeof(vpart_t)))) {
            for (int32_t q = t->npart; q < p; q++)
                ck_free(np[q]);
            ck_free(np);
            return CK_ENOMEM;
        }
        pthread_rwlock_init(&np[p]->lock, NULL);
    }
    pthread_rwlock_wrlock(&t->plock);
    if (t->npart)
        memcpy(np, t->parts, sizeof(*np) * (size_t)t->npart);
    ck_free(t->parts);
    t->parts = np;
    t->npart = npart;
    pthread_rwlock_unlock(&t->plock);
    return 0;
}

static int push_id(vpart_t *p, int64_t off, int64_t ts)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 1024;
        int64_t *o = ck_realloc(p->offs, cap * sizeof(*o));
        if (!o)
            return CK_ENOMEM;
        p->offs = o;
        int64_t *s = ck_realloc(p->ts, cap * sizeof(*s));
        if (!s)
            return CK_ENOMEM;
        p->ts = s;
        p->cap = cap;
    }
    p->offs[p->n] = off;
    p->ts[p->n] = ts;
    p->n++;
    return 0;
}

/* First id whose offset is >= off. */
static size_t lower_id(const vpart_t *p, int64_t off)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->offs[mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int open_graph(vtopic_t *t, vpart_t *p)
{
    if (p->hnsw)
        return 0;
    return ck_hnsw_new(t->dims, t->metric, t->m, t->efc, 100, &p->hnsw);
}

static int open_vlog(vtopic_t *t, int32_t pi, vpart_t *p, uint64_t records)
{
    if (p->vlog)
        return 0;
    char path[1200];
    part_path(t, pi, "vec", path, sizeof(path));
    ck_vlog_params_t vp = {t->dims, t->metric, t->model};
    return ck_vlog_open(path, &vp, records, &p->vlog);
}

/* Marks every id with an offset below log_start deleted (worker; takes the lock). */
static void apply_log_start(vpart_t *p, int64_t log_start)
{
    if (log_start <= p->log_start && p->del_upto >= lower_id(p, p->log_start))
        return;
    p->log_start = log_start > p->log_start ? log_start : p->log_start;
    size_t upto = lower_id(p, p->log_start);
    if (upto <= p->del_upto)
        return;
    pthread_rwlock_wrlock(&p->lock);
    for (size_t id = p->del_upto; id < upto; id++) {
        /* CK_EEXIST: deleted in a loaded snapshot already, but counted live by the load */
        int rc = ck_hnsw_mark_deleted(p->hnsw, (uint32_t)id);
        if ((rc == 0 || rc == CK_EEXIST) && p->live)
            p->live--;
    }
    p->del_upto = upto;
    pthread_rwlock_unlock(&p->lock);
}

/* Loads one partition from its files: the snapshot, then the vector log's records after
 * it. Returns 0, or an error that makes the caller start the topic afresh. */
static int load_part(vtopic_t *t, int32_t pi, uint64_t records, uint64_t snap)
{
    vpart_t *p = t->parts[pi];
    int rc = open_vlog(t, pi, p, records);
    if (rc)
        return rc;
    if (snap > records)
        snap = 0;
    if (snap) {
        char path[1200];
        part_path(t, pi, "hnsw", path, sizeof(path));
        if (ck_hnsw_load(path, t->dims, t->metric, t->m, t->efc, &p->hnsw) ||
            ck_hnsw_count(p->hnsw) != snap) {
            CK_WARN("vector", "%s-%d: graph snapshot unusable: rebuilding it from the vectors",
                    t->name, (int)pi);
            ck_hnsw_free(p->hnsw);
            p->hnsw = NULL;
            snap = 0;
        }
    }
    if (!p->hnsw && (rc = open_graph(t, p)))
        return rc;
    enum { CHUNK = 1024 };
    float *vec = ck_malloc(sizeof(float) * t->dims * CHUNK);
    int64_t *offs = ck_malloc(sizeof(int64_t) * CHUNK), *ts = ck_malloc(sizeof(int64_t) * CHUNK);
    if (!vec || !offs || !ts)
        rc = CK_ENOMEM;
    for (uint64_t i = 0; !rc && i < records; i += CHUNK) {
        size_t n = records - i < CHUNK ? (size_t)(records - i) : CHUNK;
        bool need_vec = i + n > snap;
        rc = ck_vlog_read(p->vlog, i, n, offs, ts, need_vec ? vec : NULL);
        for (size_t k = 0; !rc && k < n; k++) {
            rc = push_id(p, offs[k], ts[k]);
            if (!rc && i + k >= snap) {
                uint32_t id;
                rc = ck_hnsw_add(p->hnsw, vec + k * t->dims, (uint64_t)offs[k], &id);
                if (!rc && id != i + k)
                    rc = CK_ECORRUPT;
            }
        }
    }
    ck_free(vec);
    ck_free(offs);
    ck_free(ts);
    p->live = p->n;
    p->snap_count = snap;
    p->ckpt_records = records;
    return rc;
}

/* Reads CHECKPOINT. CK_ENOENT: none, another topic's, or another config (start afresh). */
static int load_checkpoint(vtopic_t *t)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/CHECKPOINT", t->dir);
    json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        return CK_ENOENT;
    char idhex[33];
    hex_id(t->id, idhex);
    const char *tid = json_string_value(json_object_get(j, "topic_id"));
    const char *prov = json_string_value(json_object_get(j, "provider"));
    const char *model = json_string_value(json_object_get(j, "model"));
    const char *metric = json_string_value(json_object_get(j, "metric"));
    uint32_t dims = (uint32_t)json_integer_value(json_object_get(j, "dims"));
    json_t *parts = json_object_get(j, "partitions");
    int rc = 0;
    if (json_integer_value(json_object_get(j, "version")) != CKPT_VERSION || !tid ||
        strcmp(tid, idhex) || !prov || !model || !metric || !json_is_array(parts)) {
        CK_INFO("vector", "%s: vector index belongs to another topic or is unreadable: rebuilding",
                t->name);
        rc = CK_ENOENT;
    } else if (strcmp(prov, ck_embed_kind_name(t->kind)) || strcmp(model, t->model) ||
               metric_parse(metric) != t->metric || (t->dims && dims && dims != t->dims) ||
               (json_integer_value(json_object_get(j, "m")) != t->m) ||
               (json_integer_value(json_object_get(j, "ef_construction")) != t->efc)) {
        CK_INFO("vector",
                "%s: vector config changed (%s/%s/%s/%u -> %s/%s/%s/%u): re-embedding "
                "from the log",
                t->name, prov, model, metric, dims, ck_embed_kind_name(t->kind), t->model,
                metric_name(t->metric), t->dims);
        rc = CK_ENOENT;
    }
    if (!rc && dims)
        t->dims = dims;
    for (size_t i = 0; !rc && i < json_array_size(parts); i++) {
        json_t *e = json_array_get(parts, i);
        json_int_t pi = json_integer_value(json_object_get(e, "partition"));
        if (pi < 0 || pi >= t->npart)
            continue;
        vpart_t *p = t->parts[pi];
        p->ckpt_next = p->next = json_integer_value(json_object_get(e, "next_offset"));
        uint64_t records = (uint64_t)json_integer_value(json_object_get(e, "records"));
        uint64_t snap = (uint64_t)json_integer_value(json_object_get(e, "snapshot_count"));
        p->log_start = json_integer_value(json_object_get(e, "log_start"));
        if (records && !t->dims)
            rc = CK_ECORRUPT;
        else if (records)
            rc = load_part(t, (int32_t)pi, records, snap);
        if (rc)
            CK_WARN("vector", "%s-%d: vectors unusable (%s): re-embedding from the log", t->name,
                    (int)pi, ck_strerror(rc));
    }
    json_decref(j);
    return rc ? CK_ENOENT : 0;
}

/* Writes CHECKPOINT after syncing every vector log (worker). */
static int commit(ck_vidx_t *v, vtopic_t *t)
{
    (void)v;
    json_t *parts = json_array();
    int rc = parts ? 0 : CK_ENOMEM;
    for (int32_t pi = 0; !rc && pi < t->npart; pi++) {
        vpart_t *p = t->parts[pi];
        if (p->vlog && (rc = ck_vlog_sync(p->vlog)))
            break;
        uint64_t records = p->vlog ? ck_vlog_count(p->vlog) : 0;
        rc = json_array_append_new(parts, json_pack("{s:i,s:I,s:I,s:I,s:I}", "partition", (int)pi,
                                                    "next_offset", (json_int_t)p->next, "records",
                                                    (json_int_t)records, "snapshot_count",
                                                    (json_int_t)p->snap_count, "log_start",
                                                    (json_int_t)p->log_start))
                 ? CK_ENOMEM
                 : 0;
    }
    char idhex[33];
    hex_id(t->id, idhex);
    json_t *j = rc ? NULL
                   : json_pack("{s:i,s:s,s:s,s:s,s:i,s:s,s:i,s:i,s:o}", "version", CKPT_VERSION,
                               "topic_id", idhex, "provider", ck_embed_kind_name(t->kind), "model",
                               t->model, "dims", (int)t->dims, "metric", metric_name(t->metric),
                               "m", (int)t->m, "ef_construction", (int)t->efc, "partitions", parts);
    if (!rc && !j)
        rc = CK_ENOMEM;
    if (!j)
        json_decref(parts);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!rc && !s)
        rc = CK_ENOMEM;
    if (!rc) {
        char tmp[1200], path[1200];
        snprintf(tmp, sizeof(tmp), "%s/CHECKPOINT.tmp", t->dir);
        snprintf(path, sizeof(path), "%s/CHECKPOINT", t->dir);
        rc = ck_replace_file(tmp, path, t->dir, s, strlen(s));
    }
    free(s);
    if (!rc) {
        for (int32_t pi = 0; pi < t->npart; pi++) {
            vpart_t *p = t->parts[pi];
            p->ckpt_next = p->next;
            p->ckpt_records = p->vlog ? ck_vlog_count(p->vlog) : 0;
        }
        t->dirty = false;
    }
    return rc;
}

/* Saves the graphs that gained snapshot_every vectors (or all, at close) (worker). */
static void snapshot(ck_vidx_t *v, vtopic_t *t, bool all)
{
    bool saved = false;
    for (int32_t pi = 0; pi < t->npart; pi++) {
        vpart_t *p = t->parts[pi];
        if (!p->hnsw || p->ckpt_records == p->snap_count ||
            (!all && p->ckpt_records - p->snap_count < v->cfg.snapshot_every))
            continue;
        /* the graph may hold more than the committed records: snapshot only after a
         * commit that covers them all */
        if (ck_hnsw_count(p->hnsw) != p->ckpt_records)
            continue;
        char path[1200];
        part_path(t, pi, "hnsw", path, sizeof(path));
        int rc = ck_hnsw_save(p->hnsw, path);
        if (rc) {
            CK_WARN("vector", "%s-%d: graph snapshot failed: %s", t->name, (int)pi,
                    ck_strerror(rc));
            continue;
        }
        p->snap_count = p->ckpt_records;
        saved = true;
    }
    if (saved) {
        t->dirty = true;
        commit(v, t);
    }
}

/* ---- the worker ---- */

static int op_open(void *cap, ck_idx_topic_t *it, int64_t *next)
{
    ck_vidx_t *v = cap;
    vtopic_t *t = it->priv;
    if (t) {
        int rc = grow_parts(t, it->npart);
        if (rc)
            return rc;
        pend_clear(t); /* re-fed from next[] */
        t->retry_at = t->backoff = 0;
        for (int32_t p = 0; p < t->npart; p++)
            next[p] = t->parts[p]->next;
        return 0;
    }
    t = ck_calloc(1, sizeof(*t));
    if (!t)
        return CK_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pthread_rwlock_init(&t->plock, NULL);
    t->name = ck_strdup(it->name);
    ck_capreg_node_init(&t->node, t->name);
    memcpy(t->id, it->id, 16);
    snprintf(t->dir, sizeof(t->dir), "%s/%s", v->dir, it->name);
    char err[CK_EMBED_ERR] = "";
    int rc = t->name ? read_options(v, t, &it->configs, err) : CK_ENOMEM;
    if (rc && *err)
        ck_idx_topic_set_status(it, "vector: %s", err);
    if (!rc)
        rc = grow_parts(t, it->npart);
    if (!rc && load_checkpoint(t) == CK_ENOENT) {
        for (int32_t p = 0; p < t->npart; p++) {
            vpart_t *vp = t->parts[p];
            ck_hnsw_free(vp->hnsw);
            ck_vlog_close(vp->vlog);
            vp->hnsw = NULL;
            vp->vlog = NULL;
            vp->n = vp->live = vp->del_upto = vp->snap_count = vp->ckpt_records = 0;
            vp->next = vp->ckpt_next = vp->log_start = 0;
        }
        t->dims = ck_embedder_dims(t->emb);
        ck_rmtree(t->dir);
    }
    if (!rc)
        rc = ck_mkdirs(t->dir);
    if (rc) {
        topic_unref(t);
        return rc;
    }
    for (int32_t p = 0; p < t->npart; p++) {
        vpart_t *vp = t->parts[p];
        int64_t ls = ck_idx_topic_log_start(it, p);
        if (vp->next < ls)
            vp->next = ls;
        if (vp->hnsw)
            apply_log_start(vp, ls);
        else
            vp->log_start = ls;
        next[p] = vp->next;
        ck_idx_topic_set_visible(it, p, vp->next);
    }
    t->it = it;
    t->last_commit = t->last_retention = ck_mono_ms();
    atomic_store(&t->loading, true);
    it->priv = t;
    ck_capreg_add(&v->reg, &t->node);
    uint64_t n = 0;
    for (int32_t p = 0; p < t->npart; p++)
        n += t->parts[p]->live;
    CK_INFO("vector", "%s: vector index open (%llu vectors, provider %s, model %s, %u dims, %s)",
            t->name, (unsigned long long)n, ck_embed_kind_name(t->kind), t->model, t->dims,
            metric_name(t->metric));
    return 0;
}

static int op_config(void *cap, ck_idx_topic_t *it)
{
    (void)cap;
    vtopic_t *t = it->priv;
    if (t)
        ck_idx_topic_set_status(it, "vector config changes apply after a restart, which "
                                    "re-embeds when the provider, model or metric changed");
    return 0;
}

/* The text to embed of one record: key, value, or a JSON path of the value. For a JSON
 * object or array value the string leaves are joined by newlines (keys and punctuation
 * would only blur the embedding). Returns a new string or NULL (nothing to embed). */
static void leaves(json_t *j, ck_wbuf_t *w)
{
    if (json_is_string(j)) {
        if (w->len)
            ck_wr_bytes(w, "\n", 1);
        ck_wr_bytes(w, json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        const char *k;
        json_t *x;
        json_object_foreach(j, k, x) leaves(x, w);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x) leaves(x, w);
    }
}

static char *record_text(const char *field, const ck_record_t *r, size_t *len)
{
    const ck_slice_t *s = !strcmp(field, "key") ? &r->key : &r->value;
    if (s->len <= 0)
        return NULL;
    bool path = !strncmp(field, "$.", 2);
    json_t *j = NULL;
    if (s->ptr[0] == '{' || s->ptr[0] == '[' || s->ptr[0] == '"' || path)
        j = json_loadb((const char *)s->ptr, (size_t)s->len, JSON_DECODE_ANY, NULL);
    if (path) {
        json_t *x = j;
        const char *p = field + 2;
        while (x && *p) {
            size_t n = strcspn(p, ".");
            char key[256];
            snprintf(key, sizeof(key), "%.*s", (int)(n < 255 ? n : 255), p);
            x = json_is_object(x) ? json_object_get(x, key) : NULL;
            p += n;
            if (*p == '.')
                p++;
        }
        char *out = NULL;
        if (json_is_string(x)) {
            out = ck_strdup(json_string_value(x));
            *len = out ? json_string_length(x) : 0;
        } else if (x && !json_is_null(x)) {
            char *d = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY);
            out = d ? ck_strdup(d) : NULL;
            *len = out ? strlen(out) : 0;
            free(d);
        }
        json_decref(j);
        return out;
    }
    char *out = NULL;
    if (json_is_object(j) || json_is_array(j) || json_is_string(j)) {
        ck_wbuf_t w = CK_WBUF_INIT;
        leaves(j, &w);
        if (!w.err && w.len) {
            out = ck_malloc(w.len + 1);
            if (out) {
                memcpy(out, w.data, w.len);
                out[w.len] = 0;
                *len = w.len;
            }
        }
        ck_wbuf_free(&w);
    } else {
        out = ck_malloc((size_t)s->len + 1);
        if (out) {
            memcpy(out, s->ptr, (size_t)s->len);
            out[s->len] = 0;
            *len = (size_t)s->len;
        }
    }
    json_decref(j);
    if (out && *len > MAX_TEXT)
        *len = MAX_TEXT; /* cut (the local model reads only the first 128 tokens anyway) */
    return out;
}

/* Embeds the pending records and inserts their vectors, in order (worker). On a provider
 * failure nothing is inserted and the error is returned; keep says whether the pending
 * records stay for another try (idle) or are dropped (apply: its error makes the indexer
 * stop feeding the topic, re-open it after a while and re-feed from each partition's
 * next, which only moves past records whose vectors are in). */
static int flush_pending(vtopic_t *t, bool keep)
{
    if (!t->npend)
        return 0;
    size_t ntext = 0;
    for (size_t i = 0; i < t->npend; i++)
        ntext += t->pend[i].text != NULL;
    const char **texts = ck_calloc(ntext ? ntext : 1, sizeof(*texts));
    size_t *lens = ck_calloc(ntext ? ntext : 1, sizeof(*lens));
    uint32_t dims = t->dims ? t->dims : CK_EMBED_MAX_DIMS;
    float *vecs = ck_malloc(sizeof(float) * dims * (ntext ? ntext : 1));
    int rc = texts && lens && vecs ? 0 : CK_ENOMEM;
    for (size_t i = 0, k = 0; !rc && i < t->npend; i++)
        if (t->pend[i].text) {
            texts[k] = t->pend[i].text;
            lens[k++] = t->pend[i].len;
        }
    char err[CK_EMBED_ERR] = "";
    if (!rc && ntext)
        rc = ck_embedder_embed(t->emb, texts, lens, ntext, vecs, err);
    if (rc) {
        atomic_fetch_add(&t->errors, 1);
        set_error(t, *err ? err : ck_strerror(rc));
        ck_idx_topic_set_status(t->it, "vector: embedding failed: %s",
                                *err ? err : ck_strerror(rc));
        if (!keep)
            pend_clear(t);
        ck_free(texts);
        ck_free(lens);
        ck_free(vecs);
        return rc;
    }
    if (!t->dims)
        t->dims = ck_embedder_dims(t->emb);
    for (size_t i = 0, k = 0; !rc && i < t->npend; i++) {
        pend_t *e = &t->pend[i];
        vpart_t *p = t->parts[e->part];
        if (e->text) {
            const float *vec = vecs + k++ * t->dims;
            if (!p->vlog)
                rc = open_vlog(t, e->part, p, 0);
            if (!rc && !p->hnsw)
                rc = open_graph(t, p);
            if (!rc)
                rc = ck_vlog_append(p->vlog, e->offset, e->ts, vec);
            if (!rc) {
                pthread_rwlock_wrlock(&p->lock);
                uint32_t id;
                rc = push_id(p, e->offset, e->ts);
                if (!rc)
                    rc = ck_hnsw_add(p->hnsw, vec, (uint64_t)e->offset, &id);
                if (!rc) {
                    p->live++;
                    if (e->offset < p->log_start) {
                        ck_hnsw_mark_deleted(p->hnsw, id);
                        p->live--;
                        p->del_upto = id + 1;
                    }
                }
                pthread_rwlock_unlock(&p->lock);
            }
        }
        if (!rc) {
            p->next = e->offset + 1;
            t->dirty = true;
        }
    }
    atomic_fetch_add(&t->embedded, ntext);
    for (size_t i = 0; !rc && i < t->npend; i++) {
        int32_t pi = t->pend[i].part;
        ck_idx_topic_set_visible(t->it, pi, t->parts[pi]->next);
    }
    if (!rc) {
        set_error(t, "");
        ck_idx_topic_set_status(t->it, "%s", "");
    }
    pend_clear(t);
    ck_free(texts);
    ck_free(lens);
    ck_free(vecs);
    return rc;
}

static int op_apply(void *cap, ck_idx_topic_t *it, const ck_idx_batch_t *b)
{
    (void)cap;
    vtopic_t *t = it->priv;
    if (!t)
        return CK_ESTATE;
    if (b->control || b->partition < 0 || b->partition >= t->npart)
        return 0;
    if (t->retry_at)
        return CK_EIO; /* the provider failed: stop the feed until the indexer re-opens */
    vpart_t *p = t->parts[b->partition];
    for (int i = 0; i < b->n; i++) {
        const ck_record_t *r = &b->recs[i];
        if (r->offset < p->next)
            continue;
        if (t->npend == t->pcap) {
            size_t cap2 = t->pcap ? 2 * t->pcap : 64;
            pend_t *np = ck_realloc(t->pend, cap2 * sizeof(*np));
            if (!np)
                return CK_ENOMEM;
            t->pend = np;
            t->pcap = cap2;
        }
        pend_t *e = &t->pend[t->npend++];
        e->part = b->partition;
        e->offset = r->offset;
        e->ts = r->timestamp;
        e->len = 0;
        e->text = record_text(t->field, r, &e->len);
        size_t ntext = 0;
        if (t->npend >= t->batch) {
            for (size_t k = 0; k < t->npend; k++)
                ntext += t->pend[k].text != NULL;
        }
        if (ntext >= t->batch || t->npend >= 4 * t->batch) {
            int rc = flush_pending(t, false);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Does a pending clear request (worker): drops the chosen partitions' vectors, graphs and
 * files; with rewind, moves their next offset back to the log start and has the indexer
 * re-open the topic so that the records are fed (and embedded) again. */
static void do_clear(ck_vidx_t *v, vtopic_t *t)
{
    pthread_mutex_lock(&t->mu);
    bool pending = t->req_pending, rewind = t->req_rewind;
    int32_t only = t->req_part;
    uint64_t gen = t->req_gen;
    pthread_mutex_unlock(&t->mu);
    if (!pending)
        return;
    int64_t cleared = 0;
    for (int32_t pi = 0; pi < t->npart; pi++) {
        if (only >= 0 && pi != only)
            continue;
        vpart_t *p = t->parts[pi];
        pthread_rwlock_wrlock(&p->lock);
        cleared += (int64_t)p->live;
        ck_hnsw_free(p->hnsw);
        p->hnsw = NULL;
        p->n = p->live = p->del_upto = p->snap_count = p->ckpt_records = 0;
        pthread_rwlock_unlock(&p->lock);
        ck_vlog_close(p->vlog);
        p->vlog = NULL;
        char path[1200];
        part_path(t, pi, "vec", path, sizeof(path));
        unlink(path);
        part_path(t, pi, "hnsw", path, sizeof(path));
        unlink(path);
        if (rewind) {
            p->next = p->log_start = ck_idx_topic_log_start(t->it, pi);
            ck_idx_topic_set_visible(t->it, pi, p->next);
        }
    }
    if (rewind)
        pend_clear(t);
    t->dirty = true;
    int rc = commit(v, t);
    if (rc)
        CK_WARN("vector", "%s: commit after clearing failed: %s", t->name, ck_strerror(rc));
    if (rewind)
        ck_idx_topic_reopen(t->it);
    CK_INFO("vector", "%s: %lld vectors cleared%s", t->name, (long long)cleared,
            rewind ? "; embedding again from the log start" : "");
    pthread_mutex_lock(&t->mu);
    t->req_pending = false;
    t->req_cleared = cleared;
    t->done_gen = gen;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void op_idle(void *cap, int64_t now)
{
    ck_vidx_t *v = cap;
    ck_capreg_node_t **list = NULL;
    int k = ck_capreg_all(&v->reg, &list);
    for (int i = 0; i < k; i++) {
        vtopic_t *t = topic_of(list[i]);
        if (t->it)
            do_clear(v, t);
        if (t->it && t->npend && now >= t->retry_at) {
            if (flush_pending(t, true)) {
                t->backoff = t->backoff ? (t->backoff * 2 > 30000 ? 30000 : t->backoff * 2) : 500;
                t->retry_at = now + t->backoff;
            } else {
                t->retry_at = t->backoff = 0;
            }
        }
        if (t->it && now - t->last_retention >= 1000) {
            t->last_retention = now;
            for (int32_t p = 0; p < t->npart; p++) {
                int64_t ls = ck_idx_topic_log_start(t->it, p);
                if (ls > t->parts[p]->log_start) {
                    apply_log_start(t->parts[p], ls);
                    t->dirty = true;
                }
            }
        }
        if (t->it && t->dirty && now - t->last_commit >= v->cfg.commit_ms) {
            t->last_commit = now;
            int rc = commit(v, t);
            if (rc)
                CK_WARN("vector", "%s: commit failed: %s", t->name, ck_strerror(rc));
            else
                snapshot(v, t, false);
        }
        if (t->it && !t->npend)
            atomic_store(&t->loading, false);
        topic_unref(t);
    }
    ck_free(list);
}

static void op_drop(void *cap, ck_idx_topic_t *it)
{
    ck_vidx_t *v = cap;
    vtopic_t *t = it->priv;
    if (!t)
        return;
    if (ck_capreg_remove(&v->reg, &t->node))
        topic_unref(t);
    ck_rmtree(t->dir);
    t->it = NULL;
    it->priv = NULL;
    topic_unref(t);
}

static void op_close(void *cap, ck_idx_topic_t *it)
{
    ck_vidx_t *v = cap;
    vtopic_t *t = it->priv;
    if (!t)
        return;
    /* a clean stop leaves every graph snapshotted: the next start loads instead of
     * rebuilding */
    if (!flush_pending(t, false) && (!t->dirty || !commit(v, t)))
        snapshot(v, t, true);
    if (ck_capreg_remove(&v->reg, &t->node))
        topic_unref(t);
    t->it = NULL;
    it->priv = NULL;
    topic_unref(t);
}

static bool op_enabled(const ck_topic_t *tp)
{
    const char *x = ck_topic_config(tp, "vector.enabled", NULL);
    return x && !strcasecmp(x, "true");
}

const ck_capability_ops_t ck_vidx_ops = {
    .name = "vector",
    .enabled = op_enabled,
    .open_topic = op_open,
    .config_topic = op_config,
    .apply = op_apply,
    .idle = op_idle,
    .drop_topic = op_drop,
    .close_topic = op_close,
};

/* ---- readers ---- */

char *ck_vidx_record_text(ck_vidx_t *v, const char *topic, const ck_record_t *r, size_t *len)
{
    *len = 0;
    vtopic_t *t = registry_get(v, topic);
    char *out = record_text(t ? t->field : "value", r, len);
    if (t)
        topic_unref(t);
    return out;
}

int ck_vidx_embed_query(ck_vidx_t *v, const char *topic, const char *text, size_t len, float *out,
                        uint32_t *dims, int64_t deadline_ms, char err[CK_VIDX_ERR])
{
    err[0] = 0;
    vtopic_t *t = registry_get(v, topic);
    if (!t)
        return CK_ENOENT;
    const char *texts[1] = {text};
    size_t lens[1] = {len};
    char e[CK_EMBED_ERR] = "";
    int rc = ck_embedder_embed_by(t->emb, texts, lens, 1, out, deadline_ms, e);
    if (rc)
        snprintf(err, CK_VIDX_ERR, "%s", *e ? e : ck_strerror(rc));
    *dims = ck_embedder_dims(t->emb);
    topic_unref(t);
    return rc;
}

typedef struct tsfilter {
    const vpart_t *p;
    int64_t lo, hi;
} tsfilter_t;

static bool ts_allow(void *ctx, uint32_t id)
{
    const tsfilter_t *f = ctx;
    int64_t ts = f->p->ts[id];
    return ts >= f->lo && ts <= f->hi;
}

static int hit_cmp(const void *a, const void *b)
{
    const ck_vidx_hit_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int ck_vidx_search(ck_vidx_t *v, const char *topic, const float *q, uint32_t dims, size_t k,
                   size_t ef, const ck_vidx_filter_t *f, ck_vidx_hit_t *hits, size_t *n,
                   char err[CK_VIDX_ERR])
{
    *n = 0;
    err[0] = 0;
    vtopic_t *t = registry_get(v, topic);
    if (!t)
        return CK_ENOENT;
    int rc = 0;
    if (t->dims && dims != t->dims) {
        snprintf(err, CK_VIDX_ERR, "vector has %u dimensions, the index of %s has %u", dims, topic,
                 t->dims);
        rc = CK_ERANGE;
    }
    if (!ef)
        ef = t->efs;
    if (ef < k)
        ef = k;
    ck_hnsw_hit_t *ph = rc ? NULL : ck_malloc(sizeof(*ph) * (k ? k : 1));
    ck_vidx_hit_t *all = rc ? NULL : ck_malloc(sizeof(*all) * (k ? k : 1) * 2);
    if (!rc && (!ph || !all))
        rc = CK_ENOMEM;
    size_t nall = 0;
    pthread_rwlock_rdlock(&t->plock);
    for (int32_t pi = 0; !rc && k && pi < t->npart; pi++) {
        if (f && f->partitions) {
            bool want = false;
            for (size_t i = 0; i < f->npartitions; i++)
                want |= f->partitions[i] == pi;
            if (!want)
                continue;
        }
        vpart_t *p = t->parts[pi];
        pthread_rwlock_rdlock(&p->lock);
        if (p->hnsw && p->n) {
            ck_hnsw_filter_t hf = {0, (uint32_t)p->n, NULL, NULL};
            tsfilter_t tf = {p, INT64_MIN, INT64_MAX};
            if (f) {
                hf.id_lo = (uint32_t)lower_id(p, f->min_offset);
                hf.id_hi = f->max_offset == INT64_MAX ? (uint32_t)p->n
                                                      : (uint32_t)lower_id(p, f->max_offset + 1);
                if (f->min_ts != INT64_MIN || f->max_ts != INT64_MAX) {
                    tf.lo = f->min_ts;
                    tf.hi = f->max_ts;
                    hf.allow = ts_allow;
                    hf.ctx = &tf;
                }
            }
            size_t got = 0;
            if (hf.id_lo < hf.id_hi)
                rc = ck_hnsw_search(p->hnsw, q, k, ef == CK_VIDX_EXACT ? p->n + k : ef, &hf, ph,
                                    &got); /* ef over n/32: an exact scan */
            for (size_t i = 0; !rc && i < got; i++)
                all[nall++] = (ck_vidx_hit_t){pi, p->offs[ph[i].id], p->ts[ph[i].id], ph[i].score};
        }
        pthread_rwlock_unlock(&p->lock);
        if (nall > k) { /* keep the best k so far */
            qsort(all, nall, sizeof(*all), hit_cmp);
            nall = k;
        }
    }
    pthread_rwlock_unlock(&t->plock);
    if (!rc) {
        qsort(all, nall, sizeof(*all), hit_cmp);
        if (nall > k)
            nall = k;
        memcpy(hits, all, nall * sizeof(*all));
        *n = nall;
    }
    ck_free(ph);
    ck_free(all);
    topic_unref(t);
    return rc;
}

int ck_vidx_stats(ck_vidx_t *v, const char *topic, ck_vidx_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    vtopic_t *t = registry_get(v, topic);
    if (!t)
        return 0;
    st->found = true;
    pthread_mutex_lock(&t->mu);
    snprintf(st->last_error, sizeof(st->last_error), "%s", t->last_error);
    pthread_mutex_unlock(&t->mu);
    pthread_rwlock_rdlock(&t->plock);
    st->npart = t->npart;
    st->per_part = ck_calloc(t->npart ? (size_t)t->npart : 1, sizeof(uint64_t));
    for (int32_t pi = 0; pi < st->npart; pi++) {
        vpart_t *p = t->parts[pi];
        pthread_rwlock_rdlock(&p->lock);
        if (st->per_part)
            st->per_part[pi] = p->live;
        st->total += p->live;
        pthread_rwlock_unlock(&p->lock);
    }
    pthread_rwlock_unlock(&t->plock);
    st->dims = t->dims ? t->dims : ck_embedder_dims(t->emb);
    snprintf(st->provider, sizeof(st->provider), "%s", ck_embed_kind_name(t->kind));
    snprintf(st->model, sizeof(st->model), "%s", t->model);
    snprintf(st->metric, sizeof(st->metric), "%s", metric_name(t->metric));
    st->m = t->m;
    st->ef_construction = t->efc;
    st->ef_search = t->efs;
    st->loading = atomic_load(&t->loading);
    st->embedded = atomic_load(&t->embedded);
    st->errors = atomic_load(&t->errors);
    topic_unref(t);
    return st->per_part || !st->npart ? 0 : CK_ENOMEM;
}

int64_t ck_vidx_clear(ck_vidx_t *v, const char *topic, int32_t partition, bool rewind,
                      int64_t timeout_ms)
{
    vtopic_t *t = registry_get(v, topic);
    if (!t)
        return CK_ENOENT;
    int64_t rc;
    pthread_rwlock_rdlock(&t->plock);
    bool bad = partition >= t->npart;
    pthread_rwlock_unlock(&t->plock);
    if (bad) {
        topic_unref(t);
        return CK_ERANGE;
    }
    int64_t deadline = ck_mono_ms() + timeout_ms;
    pthread_mutex_lock(&t->mu);
    uint64_t gen = ++t->req_gen;
    t->req_pending = true;
    t->req_rewind = rewind;
    t->req_part = partition;
    while (t->done_gen < gen && ck_mono_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    }
    rc = t->done_gen >= gen ? t->req_cleared : CK_EAGAIN;
    pthread_mutex_unlock(&t->mu);
    topic_unref(t);
    return rc;
}

int ck_vidx_list(ck_vidx_t *v, char ***names)
{
    return ck_capreg_names(&v->reg, names);
}
