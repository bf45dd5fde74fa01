/* The vector routes (API.md 2.4): /_vector/{topic}/search, /search_by_vector, /hybrid,
 * /stats, and /_vector/topics. Handlers run on HTTP threads and reach the vector index
 * directly (ck_vidx_* are thread-safe); the text side of /hybrid is ck__text_search. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/logging.h"
#include "search/docfields.h"
#include "server/api_int.h"
#include "vector/vindex.h"

#define MAX_K 10000

static void bad(ck_http_resp_t *resp, const char *fmt, const char *arg)
{
    ck_http_resp_error(resp, 400, "InvalidRequest", fmt, arg);
}

/* ---- request parsing ---- */

typedef struct vreq {
    json_t *body;
    const char *query;
    size_t k;
    size_t ef;   /* 0: the topic's ef_search; CK_VIDX_EXACT */
    bool rerank; /* over-retrieve 5k and let the reranker order them */
    ck_vidx_filter_t f;
    int32_t parts[256];
} vreq_t;

static bool get_int(json_t *o, const char *key, int64_t *v, ck_http_resp_t *resp)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x))
        return true;
    if (!json_is_integer(x)) {
        bad(resp, "%s must be an integer", key);
        return false;
    }
    *v = json_integer_value(x);
    return true;
}

static bool get_time(json_t *o, const char *key, int64_t *v, ck_http_resp_t *resp)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x))
        return true;
    if (json_is_integer(x)) {
        *v = json_integer_value(x);
        return true;
    }
    if (json_is_string(x) && ck_doc_parse_date(json_string_value(x), json_string_length(x), v))
        return true;
    bad(resp, "%s must be epoch milliseconds or an ISO-8601 date", key);
    return false;
}

/* Filters from o (the body, or its "filters" object). */
static bool parse_filters(json_t *o, vreq_t *r, ck_http_resp_t *resp)
{
    if (!json_is_object(o))
        return true;
    json_t *ps = json_object_get(o, "partitions");
    if (ps && !json_is_null(ps)) {
        if (!json_is_array(ps) || json_array_size(ps) > 256) {
            bad(resp, "%s must be an array of at most 256 partition numbers", "partitions");
            return false;
        }
        size_t i;
        json_t *x;
        r->f.npartitions = 0;
        json_array_foreach(ps, i, x)
        {
            if (!json_is_integer(x) || json_integer_value(x) < 0 ||
                json_integer_value(x) > INT32_MAX) {
                bad(resp, "%s must hold non-negative integers", "partitions");
                return false;
            }
            r->parts[r->f.npartitions++] = (int32_t)json_integer_value(x);
        }
        r->f.partitions = r->parts;
    }
    return get_int(o, "min_offset", &r->f.min_offset, resp) &&
           get_int(o, "max_offset", &r->f.max_offset, resp) &&
           get_time(o, "min_timestamp", &r->f.min_ts, resp) &&
           get_time(o, "max_timestamp", &r->f.max_ts, resp);
}

/* The body, k, filters (top level and under "filters"), and query when need_query. */
static bool parse_req(ck_http_req_t *req, ck_http_resp_t *resp, bool need_query, vreq_t *r)
{
    memset(r, 0, sizeof(*r));
    r->f = (ck_vidx_filter_t){NULL, 0, INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX};
    r->k = 10;
    r->body = ck_http_json_body(req, resp, false);
    if (!r->body)
        return false;
    if (!json_is_object(r->body)) {
        bad(resp, "%s", "the request body must be a JSON object");
        return false;
    }
    if (need_query) {
        json_t *q = json_object_get(r->body, "query");
        if (!json_is_string(q) || !json_string_length(q)) {
            bad(resp, "%s", "query (a non-empty string) is required");
            return false;
        }
        r->query = json_string_value(q);
    }
    int64_t k = 10;
    if (!get_int(r->body, "k", &k, resp))
        return false;
    if (k < 1 || k > MAX_K) {
        ck_http_resp_error(resp, 400, "InvalidRequest", "k must be in [1, %d]", MAX_K);
        return false;
    }
    r->k = (size_t)k;
    int64_t ef = 0;
    if (!get_int(r->body, "ef_search", &ef, resp))
        return false;
    if (ef < 0 || ef > 100000) {
        bad(resp, "%s must be in [0, 100000] (0: the topic's)", "ef_search");
        return false;
    }
    r->ef = (size_t)ef;
    json_t *ex = json_object_get(r->body, "exact");
    if (ex && !json_is_null(ex) && !json_is_boolean(ex)) {
        bad(resp, "%s must be true or false", "exact");
        return false;
    }
    if (json_is_true(ex))
        r->ef = CK_VIDX_EXACT;
    json_t *rr = json_object_get(r->body, "rerank");
    if (rr && !json_is_null(rr) && !json_is_boolean(rr)) {
        bad(resp, "%s must be true or false", "rerank");
        return false;
    }
    r->rerank = json_is_true(rr);
    return parse_filters(r->body, r, resp) &&
           parse_filters(json_object_get(r->body, "filters"), r, resp);
}

/* ---- answers ---- */

static void vector_error(ck_http_resp_t *resp, int rc, const char *topic, const char *err)
{
    if (rc == CK_ENOENT)
        ck_http_resp_error(resp, 404, "NotFound",
                           "no vector index for topic %s (is vector.enabled=true?)", topic);
    else if (rc == CK_ERANGE)
        ck_http_resp_error(resp, 400, "InvalidRequest", "%s", err);
    else if (rc == CK_EIO || rc == CK_EINVAL)
        ck_http_resp_error(resp, 502, "EmbeddingError", "embedding failed: %s", err);
    else
        ck_http_resp_error(resp, 500, "SearchError", "vector search failed: %s",
                           *err ? err : ck_strerror(rc));
}

static double ms_since(int64_t t0_us)
{
    return (double)((ck_mono_ns() / 1000) - t0_us) / 1000.0;
}

static json_t *hits_json(const char *topic, const ck_vidx_hit_t *h, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:i,s:I,s:I,s:f}", "topic", topic, "partition",
                                             (int)h[i].partition, "offset", (json_int_t)h[i].offset,
                                             "timestamp", (json_int_t)h[i].timestamp, "score",
                                             (double)h[i].score));
    return arr;
}

/* A query text's embedding is given up on after the server's query timeout. */
static int64_t query_deadline(const ck_api_t *a)
{
    return a->d.query_timeout_ms > 0 ? ck_mono_ms() + a->d.query_timeout_ms : 0;
}

/* Previews (and the reranker's order when asked) for arr, cut to r->k; adds "reranked" to
 * the answer o when it was. False after answering 503 (shutting down) or 500. */
static bool finish(ck_api_t *a, ck_http_resp_t *resp, json_t *arr, const vreq_t *r, json_t *o)
{
    bool reranked = false;
    char warn[300];
    int rc = ck__finish_results(a, arr, r->k, r->query, r->rerank, query_deadline(a), &reranked,
                                warn, sizeof(warn));
    if (rc) {
        if (rc == CK_ECLOSED)
            ck_http_resp_error(resp, 503, "ServiceUnavailable", "%s",
                               "the server is shutting down");
        else
            ck_http_resp_error(resp, 500, "SearchError", "reading the results: %s",
                               ck_strerror(rc));
        return false;
    }
    if (reranked)
        json_object_set_new(o, "reranked", json_true());
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(arr)));
    return true;
}

static void search_common(ck_api_t *a, ck_http_resp_t *resp, const char *topic, vreq_t *r,
                          const float *q, uint32_t dims, double embed_ms, int64_t t0)
{
    size_t k = r->rerank && r->query && ck__reranker_on(a) ? 5 * r->k : r->k;
    ck_vidx_hit_t *hits = ck_malloc(sizeof(*hits) * k);
    size_t n = 0;
    char err[CK_VIDX_ERR] = "";
    int64_t t1 = (ck_mono_ns() / 1000);
    int rc = hits ? ck_vidx_search(a->d.vector, topic, q, dims, k, r->ef, &r->f, hits, &n, err)
                  : CK_ENOMEM;
    double search_ms = ms_since(t1);
    if (rc) {
        vector_error(resp, rc, topic, err);
    } else {
        ck_vidx_stats_t st;
        ck_vidx_stats(a->d.vector, topic, &st);
        ck_free(st.per_part);
        json_t *arr = hits_json(topic, hits, n);
        /* count and execution_time_ms: after finish() */
        json_t *o = json_pack("{s:O,s:I,s:f,s:f,s:s}", "results", arr, "total_vectors",
                              (json_int_t)st.total, "query_embedding_time_ms", embed_ms,
                              "search_time_ms", search_ms, "model", st.model);
        if (finish(a, resp, arr, r, o)) {
            json_object_set_new(o, "execution_time_ms", json_real(ms_since(t0)));
            ck_http_resp_json(resp, 200, o);
        } else {
            json_decref(o);
        }
        json_decref(arr);
    }
    ck_free(hits);
}

/* ---- texts of results: previews and reranking ---- */

#define PREVIEW_CHARS 100

/* The first PREVIEW_CHARS characters of text as a JSON string (bytes that are not UTF-8
 * become U+FFFD); NULL if it cannot be one. */
static json_t *preview_json(const char *s, size_t len)
{
    char out[PREVIEW_CHARS * 4];
    size_t o = 0, i = 0;
    for (int chars = 0; i < len && chars < PREVIEW_CHARS; chars++) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n && i + n <= len;
        for (size_t j = 1; ok && j < n; j++)
            ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
        if (!ok) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    return json_stringn(out, o);
}

typedef struct texts {
    ck_api_t *a;
    const ck__rec_ref_t *refs;
    char **t;
    size_t *len;
} texts_t;

static void take_text(void *ctx, size_t i, const ck_record_t *r)
{
    texts_t *x = ctx;
    x->t[i] = ck_vidx_record_text(x->a->d.vector, x->refs[i].topic, r, &x->len[i]);
}

typedef struct ranked_ix {
    size_t i;
    double score;
} ranked_ix_t;

static int ranked_ix_cmp(const void *a, const void *b)
{
    const ranked_ix_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* ties keep the fused order */
}

/* Re-orders arr (and the texts with it) by the reranker's scores; false with warn set if
 * it failed. */
static bool rerank_results(ck_api_t *a, json_t *arr, texts_t *x, size_t n, const char *query,
                           int64_t deadline_ms, char *warn, size_t warnlen)
{
    double *sc = ck_calloc(n, sizeof(*sc));
    ranked_ix_t *ix = ck_calloc(n, sizeof(*ix));
    char **t2 = ck_calloc(n, sizeof(*t2));
    size_t *l2 = ck_calloc(n, sizeof(*l2));
    json_t *order = json_array();
    char err[CK_EMBED_ERR] = "";
    int rc = sc && ix && t2 && l2 && order
                 ? ck_rerank(&a->d.reranker, query, (const char *const *)x->t, x->len, n,
                             deadline_ms, sc, err)
                 : CK_ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < n; i++) {
            ix[i] = (ranked_ix_t){i, sc[i]};
            json_object_set_new(json_array_get(arr, i), "rerank_score",
                                isfinite(sc[i]) ? json_real(sc[i]) : json_null());
        }
        qsort(ix, n, sizeof(*ix), ranked_ix_cmp);
        for (size_t i = 0; i < n; i++) {
            json_array_append(order, json_array_get(arr, ix[i].i));
            t2[i] = x->t[ix[i].i];
            l2[i] = x->len[ix[i].i];
        }
        json_array_clear(arr);
        json_array_extend(arr, order);
        memcpy(x->t, t2, n * sizeof(*t2));
        memcpy(x->len, l2, n * sizeof(*l2));
    } else {
        snprintf(warn, warnlen, "rerank skipped: %s", *err ? err : ck_strerror(rc));
        CK_WARN("api", "%s", warn);
    }
    json_decref(order);
    ck_free(sc);
    ck_free(ix);
    ck_free(t2);
    ck_free(l2);
    return !rc;
}

bool ck__reranker_on(const ck_api_t *a)
{
    return a->d.reranker.endpoint && *a->d.reranker.endpoint;
}

int ck__finish_results(ck_api_t *a, json_t *arr, size_t k, const char *query, bool rerank,
                       int64_t deadline_ms, bool *reranked, char *warn, size_t warnlen)
{
    *reranked = false;
    warn[0] = 0;
    bool can = rerank && query && ck__reranker_on(a);
    if (rerank && !can)
        snprintf(warn, warnlen, "rerank skipped: %s",
                 query ? "no reranker is configured (CHRONIK_RERANKER_ENDPOINT)"
                       : "the query has no text to rerank by");
    size_t n = json_array_size(arr);
    if (!can && n > k)
        n = k; /* only the kept ones are read */
    ck__rec_ref_t *refs = ck_calloc(n + 1, sizeof(*refs));
    texts_t x = {a, refs, ck_calloc(n + 1, sizeof(char *)), ck_calloc(n + 1, sizeof(size_t))};
    int rc = refs && x.t && x.len ? 0 : CK_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *o = json_array_get(arr, i);
        refs[i] = (ck__rec_ref_t){json_string_value(json_object_get(o, "topic")),
                                  (int32_t)json_integer_value(json_object_get(o, "partition")),
                                  json_integer_value(json_object_get(o, "offset"))};
        if (!refs[i].topic)
            rc = CK_EINVAL;
    }
    if (!rc)
        rc = ck__read_records(a, refs, n, take_text, &x);
    if (!rc && can)
        *reranked = rerank_results(a, arr, &x, n, query, deadline_ms, warn, warnlen);
    while (!rc && json_array_size(arr) > k)
        json_array_remove(arr, json_array_size(arr) - 1);
    for (size_t i = 0; !rc && i < n && i < k; i++) {
        json_t *pv = x.t[i] ? preview_json(x.t[i], x.len[i]) : NULL;
        if (pv)
            json_object_set_new(json_array_get(arr, i), "text_preview", pv);
    }
    for (size_t i = 0; x.t && i < n; i++)
        ck_free(x.t[i]);
    ck_free(x.t);
    ck_free(x.len);
    ck_free(refs);
    return rc;
}

static void h_search(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    int64_t t0 = (ck_mono_ns() / 1000);
    const char *topic = ck_http_param(req, 0);
    vreq_t r;
    if (parse_req(req, resp, true, &r)) {
        float *q = ck_malloc(sizeof(float) * CK_EMBED_MAX_DIMS);
        uint32_t dims = 0;
        char err[CK_VIDX_ERR] = "";
        int rc = q ? ck_vidx_embed_query(a->d.vector, topic, r.query, strlen(r.query), q, &dims,
                                         query_deadline(a), err)
                   : CK_ENOMEM;
        if (rc)
            vector_error(resp, rc, topic, err);
        else
            search_common(a, resp, topic, &r, q, dims, ms_since(t0), t0);
        ck_free(q);
    }
    json_decref(r.body);
}

static void h_search_by_vector(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    int64_t t0 = (ck_mono_ns() / 1000);
    const char *topic = ck_http_param(req, 0);
    vreq_t r;
    if (parse_req(req, resp, false, &r)) {
        json_t *v = json_object_get(r.body, "vector");
        size_t d = json_is_array(v) ? json_array_size(v) : 0;
        float *q = d && d <= CK_EMBED_MAX_DIMS ? ck_malloc(sizeof(float) * d) : NULL;
        bool ok = q != NULL;
        for (size_t i = 0; ok && i < d; i++) {
            json_t *x = json_array_get(v, i);
            ok = json_is_number(x) && isfinite(json_number_value(x));
            if (ok)
                q[i] = (float)json_number_value(x);
        }
        if (!ok)
            bad(resp, "%s",
                "vector (a non-empty array of at most 4096 finite numbers) is required");
        else
            search_common(a, resp, topic, &r, q, (uint32_t)d, 0.0, t0);
        ck_free(q);
    }
    json_decref(r.body);
}

/* ---- hybrid ---- */

typedef struct fused {
    int32_t partition;
    int64_t offset;
    double score, vscore, tscore;
    int vrank, trank; /* 1-based; 0 = absent */
} fused_t;

static fused_t *find_or_add(fused_t *f, size_t *n, int32_t p, int64_t off)
{
    for (size_t i = 0; i < *n; i++)
        if (f[i].partition == p && f[i].offset == off)
            return &f[i];
    f[*n] = (fused_t){p, off, 0, 0, 0, 0, 0};
    return &f[(*n)++];
}

static int fused_cmp(const void *a, const void *b)
{
    const fused_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Min-max normalisation of the first n scores (all equal: 1). */
static void minmax(double *s, size_t n)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo = s[i] < lo ? s[i] : lo;
        hi = s[i] > hi ? s[i] : hi;
    }
    for (size_t i = 0; i < n; i++)
        s[i] = hi > lo ? (s[i] - lo) / (hi - lo) : 1.0;
}

static bool get_num(json_t *o, const char *key, double *v, ck_http_resp_t *resp)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x))
        return true;
    if (!json_is_number(x) || !isfinite(json_number_value(x))) {
        bad(resp, "%s must be a number", key);
        return false;
    }
    *v = json_number_value(x);
    return true;
}

static void h_hybrid(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    int64_t t0 = (ck_mono_ns() / 1000);
    const char *topic = ck_http_param(req, 0);
    vreq_t r;
    double vw = 0.5, tw = 0.5, rrf_k = 60, alpha = 0.5;
    bool linear = false;
    if (!parse_req(req, resp, true, &r) || !get_num(r.body, "vector_weight", &vw, resp) ||
        !get_num(r.body, "text_weight", &tw, resp) || !get_num(r.body, "rrf_k", &rrf_k, resp) ||
        !get_num(r.body, "alpha", &alpha, resp)) {
        json_decref(r.body);
        return;
    }
    json_t *fu = json_object_get(r.body, "fusion");
    if (fu && !json_is_null(fu)) {
        if (json_is_string(fu) && !strcmp(json_string_value(fu), "linear"))
            linear = true;
        else if (!json_is_string(fu) || strcmp(json_string_value(fu), "rrf")) {
            bad(resp, "%s must be \"rrf\" or \"linear\"", "fusion");
            json_decref(r.body);
            return;
        }
    }
    if (rrf_k < 0 || alpha < 0 || alpha > 1) {
        bad(resp, "%s", "rrf_k must be >= 0 and alpha in [0, 1]");
        json_decref(r.body);
        return;
    }
    /* each side: 3k (5k fused ones for the reranker), and at least the top 100 for the
     * linear fusion's normalisation */
    size_t keep = r.rerank && ck__reranker_on(a) ? 5 * r.k : r.k, side = 3 * keep;
    if (linear && side < 100)
        side = 100;
    float *q = ck_malloc(sizeof(float) * CK_EMBED_MAX_DIMS);
    ck_vidx_hit_t *vh = ck_malloc(sizeof(*vh) * side);
    ck__text_hit_t *th = NULL;
    size_t nv = 0, nt = 0;
    uint32_t dims = 0;
    char err[CK_VIDX_ERR] = "";
    int rc = q && vh ? ck_vidx_embed_query(a->d.vector, topic, r.query, strlen(r.query), q, &dims,
                                           query_deadline(a), err)
                     : CK_ENOMEM;
    if (!rc)
        rc = ck_vidx_search(a->d.vector, topic, q, dims, side, side > 50 ? side : 0, &r.f, vh, &nv,
                            err);
    if (rc) {
        vector_error(resp, rc, topic, err);
        goto out;
    }
    /* the text side: BM25 over the topic's text index, when it has one; filters apply */
    char terr[256] = "";
    size_t want = side * 4 + 64; /* filters drop some */
    int trc = ck__text_search(a, topic, r.query, want, &th, &nt, terr, sizeof(terr));
    if (trc && trc != CK_ENOENT) {
        ck_http_resp_error(resp, 500, "SearchError", "text search failed: %s", terr);
        goto out;
    }
    size_t kept = 0;
    for (size_t i = 0; i < nt && kept < side; i++) {
        const ck__text_hit_t *h = &th[i];
        bool ok = h->offset >= r.f.min_offset && h->offset <= r.f.max_offset &&
                  h->timestamp >= r.f.min_ts && h->timestamp <= r.f.max_ts;
        if (ok && r.f.partitions) {
            ok = false;
            for (size_t j = 0; j < r.f.npartitions; j++)
                ok |= r.f.partitions[j] == h->partition;
        }
        if (ok)
            th[kept++] = *h;
    }
    nt = kept;
    fused_t *f = ck_calloc(nv + nt + 1, sizeof(*f));
    double *vs = ck_calloc(nv + 1, sizeof(double)), *ts = ck_calloc(nt + 1, sizeof(double));
    if (!f || !vs || !ts) {
        ck_free(f);
        ck_free(vs);
        ck_free(ts);
        ck_http_resp_error(resp, 500, "SearchError", "%s", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nv; i++)
        vs[i] = vh[i].score;
    for (size_t i = 0; i < nt; i++)
        ts[i] = th[i].score;
    if (linear) {
        minmax(vs, nv < 100 ? nv : 100);
        minmax(ts, nt < 100 ? nt : 100);
    }
    size_t nf = 0;
    for (size_t i = 0; i < nv; i++) {
        fused_t *e = find_or_add(f, &nf, vh[i].partition, vh[i].offset);
        e->vrank = (int)i + 1;
        e->vscore = vh[i].score;
        e->score += linear ? (i < 100 ? alpha * vs[i] : 0) : vw / (rrf_k + (double)(i + 1));
    }
    for (size_t i = 0; i < nt; i++) {
        fused_t *e = find_or_add(f, &nf, th[i].partition, th[i].offset);
        e->trank = (int)i + 1;
        e->tscore = th[i].score;
        e->score += linear ? (i < 100 ? (1 - alpha) * ts[i] : 0) : tw / (rrf_k + (double)(i + 1));
    }
    qsort(f, nf, sizeof(*f), fused_cmp);
    if (nf > keep)
        nf = keep;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < nf; i++) {
        json_t *o = json_pack("{s:s,s:i,s:I,s:f}", "topic", topic, "partition", (int)f[i].partition,
                              "offset", (json_int_t)f[i].offset, "score", f[i].score);
        if (f[i].vrank) {
            json_object_set_new(o, "vector_rank", json_integer(f[i].vrank));
            json_object_set_new(o, "vector_score", json_real(f[i].vscore));
        }
        if (f[i].trank) {
            json_object_set_new(o, "text_rank", json_integer(f[i].trank));
            json_object_set_new(o, "text_score", json_real(f[i].tscore));
        }
        json_array_append_new(arr, o);
    }
    ck_vidx_stats_t st;
    ck_vidx_stats(a->d.vector, topic, &st);
    ck_free(st.per_part);
    json_t *o = json_pack("{s:O,s:I,s:I,s:s,s:s}", "results", arr, "vector_results_count",
                          (json_int_t)nv, "text_results_count", (json_int_t)nt, "fusion_method",
                          linear ? "linear" : "rrf", "model", st.model);
    if (finish(a, resp, arr, &r, o)) {
        json_object_set_new(o, "execution_time_ms", json_real(ms_since(t0)));
        ck_http_resp_json(resp, 200, o);
    } else {
        json_decref(o);
    }
    json_decref(arr);
    ck_free(f);
    ck_free(vs);
    ck_free(ts);
out:
    ck_free(q);
    ck_free(vh);
    ck_free(th);
    json_decref(r.body);
}

/* ---- stats and topics ---- */

static void h_stats(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    const char *topic = ck_http_param(req, 0);
    ck_vidx_stats_t st;
    if (ck_vidx_stats(a->d.vector, topic, &st)) {
        ck_http_resp_error(resp, 500, "InternalError", "%s", "out of memory");
        return;
    }
    json_t *parts = json_array();
    for (int32_t p = 0; parts && st.per_part && p < st.npart; p++)
        json_array_append_new(parts, json_pack("{s:i,s:I}", "partition", (int)p, "vector_count",
                                               (json_int_t)st.per_part[p]));
    json_t *o = json_pack("{s:s,s:I,s:i,s:i,s:b,s:o}", "topic", topic, "total_vectors",
                          (json_int_t)st.total, "partition_count", (int)st.npart, "dimensions",
                          (int)st.dims, "loading", st.loading, "partitions", parts);
    if (o && st.found) {
        ck_idx_status_t is;
        if (ck_indexer_status(a->d.indexer, "vector", topic, &is, NULL, NULL, 0))
            json_object_set_new(o, "lag", json_integer(is.lag));
        json_object_set_new(o, "index_type", json_string("hnsw"));
        json_object_set_new(o, "distance_metric", json_string(st.metric));
        json_object_set_new(o, "embedding_provider", json_string(st.provider));
        json_object_set_new(o, "embedding_model", json_string(st.model));
        json_object_set_new(o, "hnsw",
                            json_pack("{s:i,s:i,s:i}", "m", (int)st.m, "ef_construction",
                                      (int)st.ef_construction, "ef_search", (int)st.ef_search));
        json_object_set_new(o, "embedded", json_integer((json_int_t)st.embedded));
        json_object_set_new(o, "errors", json_integer((json_int_t)st.errors));
        json_object_set_new(o, "last_error",
                            st.last_error[0] ? json_string(st.last_error) : json_null());
    }
    ck_free(st.per_part);
    ck_http_resp_json(resp, 200, o);
}

static void h_topics(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    (void)req;
    ck_api_t *a = ud;
    char **names = NULL;
    int n = ck_vidx_list(a->d.vector, &names);
    if (n < 0) {
        ck_http_resp_error(resp, 500, "InternalError", "%s", "out of memory");
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(names[i]));
        ck_free(names[i]);
    }
    ck_free(names);
    ck_http_resp_json(resp, 200, json_pack("{s:o,s:i}", "topics", arr, "count", n));
}

/* ---- clearing and backfill ---- */

/* The optional {"partition": N | null} body; false after answering 400. */
static bool partition_arg(ck_http_req_t *req, ck_http_resp_t *resp, int32_t *part)
{
    *part = -1;
    json_t *b = ck_http_json_body(req, resp, true);
    if (!b)
        return false;
    json_t *p = json_is_object(b) ? json_object_get(b, "partition") : NULL;
    bool ok =
        json_is_object(b) &&
        (!p || json_is_null(p) ||
         (json_is_integer(p) && json_integer_value(p) >= 0 && json_integer_value(p) <= INT32_MAX));
    if (ok && json_is_integer(p))
        *part = (int32_t)json_integer_value(p);
    json_decref(b);
    if (!ok)
        bad(resp, "%s", "the body must be {} or {\"partition\": N}");
    return ok;
}

static bool clear_error(ck_http_resp_t *resp, int64_t rc, const char *topic)
{
    if (rc >= 0)
        return false;
    if (rc == CK_ENOENT)
        ck_http_resp_error(resp, 404, "NotFound", "no vector index for topic %s", topic);
    else if (rc == CK_ERANGE)
        ck_http_resp_error(resp, 400, "InvalidRequest", "topic %s has no such partition", topic);
    else
        ck_http_resp_error(resp, 503, "ServiceUnavailable",
                           "the vector indexer did not get to it within 10 s: try again");
    return true;
}

static void h_clear(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    const char *topic = ck_http_param(req, 0);
    int32_t part;
    if (!partition_arg(req, resp, &part))
        return;
    int64_t rc = ck_vidx_clear(a->d.vector, topic, part, false, 10000);
    if (clear_error(resp, rc, topic))
        return;
    json_t *o = json_pack("{s:s,s:I,s:b}", "topic", topic, "vectors_cleared", (json_int_t)rc,
                          "snapshots_deleted", 1);
    json_object_set_new(o, "partition", part < 0 ? json_null() : json_integer(part));
    ck_http_resp_json(resp, 200, o);
}

/* Clears and embeds every record again from the log start; waits (up to timeout_secs,
 * default 120) until the topic has caught up. */
static void h_backfill(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    int64_t t0 = ck_mono_ns();
    const char *topic = ck_http_param(req, 0);
    int32_t part;
    if (!partition_arg(req, resp, &part))
        return;
    ck_vidx_stats_t st;
    ck_vidx_stats(a->d.vector, topic, &st);
    ck_free(st.per_part);
    int64_t rc = ck_vidx_clear(a->d.vector, topic, part, true, 10000);
    if (clear_error(resp, rc, topic))
        return;
    const char *tq = ck_http_query_arg(req, "timeout_secs");
    int64_t limit = (tq && atoll(tq) > 0 ? atoll(tq) : 120) * 1000;
    int64_t deadline = ck_mono_ms() + limit;
    bool done = false;
    ck_vidx_stats_t now = {0};
    while (!done && ck_mono_ms() < deadline) {
        ck_idx_status_t is;
        done = ck_indexer_status(a->d.indexer, "vector", topic, &is, NULL, NULL, 0) && is.ready &&
               is.lag == 0;
        ck_free(now.per_part);
        ck_vidx_stats(a->d.vector, topic, &now);
        if (!done) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    ck_free(now.per_part);
    json_t *o = json_pack("{s:s,s:i,s:I,s:i,s:I,s:f,s:b,s:I}", "topic", topic, "segments_processed",
                          part < 0 ? (int)now.npart : 1, "vectors_generated",
                          (json_int_t)(now.embedded - st.embedded), "skipped_segments", 0, "errors",
                          (json_int_t)(now.errors - st.errors), "duration_secs",
                          (double)(ck_mono_ns() - t0) / 1e9, "complete", done, "vectors_cleared",
                          (json_int_t)rc);
    ck_http_resp_json(resp, 200, o);
}

int ck__vector_routes(ck_api_t *a, ck_http_t *http)
{
    static const struct {
        const char *method, *path;
        ck_http_handler fn;
    } routes[] = {
        {"POST", "/_vector/{topic}/search", h_search},
        {"POST", "/_vector/{topic}/search_by_vector", h_search_by_vector},
        {"POST", "/_vector/{topic}/hybrid", h_hybrid},
        {"GET", "/_vector/{topic}/stats", h_stats},
        {"GET", "/_vector/topics", h_topics},
        {"POST", "/_vector/{topic}/backfill", h_backfill},
        {"DELETE", "/_vector/{topic}/index", h_clear},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !rc; i++)
        rc = ck_http_route(http, routes[i].method, routes[i].path, routes[i].fn, a);
    return rc;
}
