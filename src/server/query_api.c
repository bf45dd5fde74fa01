/* The query orchestrator (API.md 2.5): POST /_query runs text (BM25), vector, sql and
 * fetch backends over several topics, fuses their rankings by reciprocal rank fusion and
 * re-scores the candidates with a ranking profile; GET /_query/capabilities and
 * GET /_query/profiles.
 *
 * Request forms: {"sources":[{"topic","modes":[...]}],"q":{"text","semantic","sql",
 * "fetch"},"filters","k","rank":{"profile"},"timeout_ms","result_format","explain"} and
 * the README's {"query","topics","backends","k"} (backends "search"/"text", "vector",
 * "sql", "fetch"; the query text feeds text and vector).
 *
 * The backends run at once on threads of their own (at most QUERY_THREADS), each asked for
 * 3k candidates. The handler waits until they are done or timeout_ms has passed; one still
 * running then is reported timed_out, its candidates are dropped and the answer goes out
 * without it. A late backend finishes on its own (a provider's query embedding and a SQL
 * query are cut short at the deadline) and the last one out frees the shared state.
 * Ranks are 0-based: rrf_score = sum over backends of 1 / (60 + rank). */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "search/docfields.h"
#include "server/api_int.h"
#include "vector/vindex.h"

#define MAX_SOURCES 64
#define RRF_K 60.0
#define QUERY_THREADS 8

enum { B_TEXT, B_VECTOR, B_SQL, B_FETCH, NB };
static const char *const bname[NB] = {"text", "vector", "sql", "fetch"};

/* ---- ranking profiles ---- */

enum {
    F_RRF,
    F_SOURCES,
    F_TEXT_RANK,
    F_VECTOR_RANK,
    F_SQL_RANK,
    F_TEXT_SCORE,
    F_VECTOR_SCORE,
    F_FRESHNESS,
    NF
};
static const char *const fname[NF] = {"rrf_score", "source_count", "text_rank",    "vector_rank",
                                      "sql_rank",  "text_score",   "vector_score", "freshness"};

typedef struct boost {
    int feature;
    int op; /* 0 gt, 1 gte, 2 lt, 3 lte, 4 eq */
    double threshold, mult;
} boost_t;

typedef struct profile {
    char name[64];
    double w[NF];
    boost_t boosts[8];
    int nboosts;
} profile_t;

static const char *const opname[] = {"gt", "gte", "lt", "lte", "eq"};

static void builtin(int which, profile_t *p)
{
    memset(p, 0, sizeof(*p));
    if (which == 0) {
        snprintf(p->name, sizeof(p->name), "default");
        p->w[F_RRF] = 100, p->w[F_SOURCES] = 10, p->w[F_FRESHNESS] = 5;
        p->w[F_TEXT_RANK] = p->w[F_VECTOR_RANK] = p->w[F_SQL_RANK] = 3;
        p->w[F_TEXT_SCORE] = p->w[F_VECTOR_SCORE] = 1;
        p->boosts[p->nboosts++] = (boost_t){F_SOURCES, 0, 1, 1.2};
    } else if (which == 1) {
        snprintf(p->name, sizeof(p->name), "freshness");
        p->w[F_RRF] = 50, p->w[F_FRESHNESS] = 50, p->w[F_SOURCES] = 5;
        p->w[F_TEXT_RANK] = p->w[F_VECTOR_RANK] = p->w[F_SQL_RANK] = 2;
    } else {
        snprintf(p->name, sizeof(p->name), "relevance");
        p->w[F_RRF] = 100, p->w[F_SOURCES] = 15, p->w[F_FRESHNESS] = 1;
        p->w[F_TEXT_RANK] = p->w[F_VECTOR_RANK] = 10;
        p->w[F_TEXT_SCORE] = p->w[F_VECTOR_SCORE] = 5;
        p->boosts[p->nboosts++] = (boost_t){F_SOURCES, 0, 1, 1.5};
    }
}

static int feature_index(const char *s)
{
    for (int i = 0; i < NF; i++)
        if (!strcmp(s, fname[i]))
            return i;
    return -1;
}

/* A custom profile from <data>/profiles/<name>.json: {name, weights{}, boosts[{feature,
 * op, threshold, multiplier}]}. Unknown features are ignored. Returns 0 or CK_ENOENT. */
static int load_custom(const char *dir, const char *name, profile_t *p)
{
    if (!*name || strchr(name, '/') || strchr(name, '.') || strlen(name) > 60)
        return CK_ENOENT;
    char path[1400];
    snprintf(path, sizeof(path), "%s/%s.json", dir, name);
    json_t *j = json_load_file(path, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return CK_ENOENT;
    }
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(j, "weights"), k, v)
    {
        int f = feature_index(k);
        if (f >= 0 && json_is_number(v))
            p->w[f] = json_number_value(v);
    }
    size_t i;
    json_array_foreach(json_object_get(j, "boosts"), i, v)
    {
        int f = feature_index(json_string_value(json_object_get(v, "feature")) ?: "");
        const char *op = json_string_value(json_object_get(v, "op")) ?: "";
        int o = -1;
        for (int x = 0; x < 5; x++)
            if (!strcmp(op, opname[x]))
                o = x;
        json_t *th = json_object_get(v, "threshold"), *mu = json_object_get(v, "multiplier");
        if (f >= 0 && o >= 0 && json_is_number(th) && json_is_number(mu) && p->nboosts < 8)
            p->boosts[p->nboosts++] = (boost_t){f, o, json_number_value(th), json_number_value(mu)};
    }
    json_decref(j);
    return 0;
}

static void profiles_dir(ck_api_t *a, char *out, size_t cap)
{
    snprintf(out, cap, "%s/profiles", a->d.data_dir ? a->d.data_dir : ".");
}

/* The profile by name: built-in, else a custom file, else "default". */
static void find_profile(ck_api_t *a, const char *name, profile_t *p)
{
    static const char *const names[] = {"default", "freshness", "relevance"};
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) {
            builtin(i, p);
            return;
        }
    char dir[1100];
    profiles_dir(a, dir, sizeof(dir));
    if (name && !load_custom(dir, name, p))
        return;
    builtin(0, p);
}

static json_t *profile_json(const profile_t *p)
{
    json_t *w = json_object();
    for (int f = 0; f < NF; f++)
        if (p->w[f] != 0)
            json_object_set_new(w, fname[f], json_real(p->w[f]));
    json_t *b = json_array();
    for (int i = 0; i < p->nboosts; i++)
        json_array_append_new(b,
                              json_pack("{s:s,s:s,s:f,s:f}", "feature", fname[p->boosts[i].feature],
                                        "op", opname[p->boosts[i].op], "threshold",
                                        p->boosts[i].threshold, "multiplier", p->boosts[i].mult));
    return json_pack("{s:s,s:o,s:o}", "name", p->name, "weights", w, "boosts", b);
}

/* ---- candidates ---- */

typedef struct cand {
    int topic; /* index into the plan's topics */
    int32_t partition;
    int64_t offset, timestamp; /* timestamp INT64_MIN: unknown */
    int nsrc;
    int rank[NB];     /* 0-based; -1 absent */
    double score[NB]; /* raw backend score */
    double rrf, final;
    double feat[NF];
} cand_t;

typedef struct cands {
    cand_t *v;
    size_t n, cap;
} cands_t;

static cand_t *cand_get(cands_t *c, int topic, int32_t p, int64_t off)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].topic == topic && c->v[i].partition == p && c->v[i].offset == off)
            return &c->v[i];
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        cand_t *nv = ck_realloc(c->v, cap * sizeof(*nv));
        if (!nv)
            return NULL;
        c->v = nv;
        c->cap = cap;
    }
    cand_t *e = &c->v[c->n++];
    memset(e, 0, sizeof(*e));
    e->topic = topic;
    e->partition = p;
    e->offset = off;
    e->timestamp = INT64_MIN;
    for (int b = 0; b < NB; b++)
        e->rank[b] = -1;
    return e;
}

/* ---- the plan ---- */

typedef struct source {
    char *topic;
    bool mode[NB];
} source_t;

typedef struct plan {
    source_t src[MAX_SOURCES];
    int nsrc;
    const char *text, *semantic, *sql;
    json_t *fetch; /* {offset, partition, max_bytes} */
    int64_t ts_gte, ts_lte;
    int32_t parts[256];
    size_t nparts;
    bool has_parts;
    size_t k;
    int64_t timeout_ms;
    bool grouped, explain, rerank;
    const char *profile;
    json_t *warnings;
} plan_t;

static int mode_of(const char *s)
{
    if (!strcmp(s, "text") || !strcmp(s, "search") || !strcmp(s, "bm25"))
        return B_TEXT;
    if (!strcmp(s, "vector") || !strcmp(s, "semantic"))
        return B_VECTOR;
    if (!strcmp(s, "sql"))
        return B_SQL;
    if (!strcmp(s, "fetch"))
        return B_FETCH;
    return -1;
}

static void planning_error(ck_http_resp_t *resp, const char *msg)
{
    ck_http_resp_json(resp, 400, json_pack("{s:s,s:s}", "error", msg, "type", "planning_error"));
}

static bool time_arg(json_t *x, int64_t *out)
{
    if (!x || json_is_null(x))
        return true;
    if (json_is_integer(x)) {
        *out = json_integer_value(x);
        return true;
    }
    if (!json_is_string(x))
        return false;
    const char *s = json_string_value(x);
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s && !*end) {
        *out = v;
        return true;
    }
    return ck_doc_parse_date(s, strlen(s), out);
}

static void plan_free(plan_t *p)
{
    for (int i = 0; i < p->nsrc; i++)
        ck_free(p->src[i].topic);
    json_decref(p->warnings);
}

static bool add_source(plan_t *p, const char *topic, const bool *modes)
{
    for (int i = 0; i < p->nsrc; i++)
        if (!strcmp(p->src[i].topic, topic)) {
            for (int b = 0; b < NB; b++)
                p->src[i].mode[b] |= modes[b];
            return true;
        }
    if (p->nsrc == MAX_SOURCES)
        return false;
    p->src[p->nsrc].topic = ck_strdup(topic);
    if (!p->src[p->nsrc].topic)
        return false;
    memcpy(p->src[p->nsrc].mode, modes, sizeof(bool) * NB);
    p->nsrc++;
    return true;
}

/* Parses either request form into p; false after answering 400. */
static bool parse_plan(json_t *b, plan_t *p, ck_http_resp_t *resp)
{
    memset(p, 0, sizeof(*p));
    p->warnings = json_array();
    p->k = 50;
    p->timeout_ms = 5000;
    p->ts_gte = INT64_MIN;
    p->ts_lte = INT64_MAX;
    if (!json_is_object(b)) {
        planning_error(resp, "the request body must be a JSON object");
        return false;
    }
    json_t *sources = json_object_get(b, "sources");
    json_t *topics = json_object_get(b, "topics");
    if (json_is_array(sources)) {
        size_t i;
        json_t *s;
        json_array_foreach(sources, i, s)
        {
            const char *t = json_string_value(json_object_get(s, "topic"));
            json_t *modes = json_object_get(s, "modes");
            if (!t || !json_is_array(modes)) {
                planning_error(resp, "each source needs a topic and an array of modes");
                return false;
            }
            bool m[NB] = {0};
            size_t j;
            json_t *x;
            json_array_foreach(modes, j, x)
            {
                int mo = json_is_string(x) ? mode_of(json_string_value(x)) : -1;
                if (mo < 0)
                    json_array_append_new(
                        p->warnings, json_pack("s+", "unknown mode skipped: ",
                                               json_is_string(x) ? json_string_value(x) : "?"));
                else
                    m[mo] = true;
            }
            if (!add_source(p, t, m)) {
                planning_error(resp, "too many sources");
                return false;
            }
        }
        json_t *q = json_object_get(b, "q");
        p->text = json_string_value(json_object_get(q, "text"));
        p->semantic = json_string_value(json_object_get(q, "semantic"));
        p->sql = json_string_value(json_object_get(q, "sql"));
        p->fetch = json_object_get(q, "fetch");
    } else if (json_is_array(topics)) {
        const char *query = json_string_value(json_object_get(b, "query"));
        json_t *backends = json_object_get(b, "backends");
        bool m[NB] = {0};
        if (json_is_array(backends)) {
            size_t j;
            json_t *x;
            json_array_foreach(backends, j, x)
            {
                int mo = json_is_string(x) ? mode_of(json_string_value(x)) : -1;
                if (mo >= 0)
                    m[mo] = true;
                else
                    json_array_append_new(
                        p->warnings, json_pack("s+", "unknown backend skipped: ",
                                               json_is_string(x) ? json_string_value(x) : "?"));
            }
        } else {
            m[B_TEXT] = m[B_VECTOR] = true;
        }
        size_t i;
        json_t *t;
        json_array_foreach(topics, i, t)
        {
            if (!json_is_string(t) || !add_source(p, json_string_value(t), m)) {
                planning_error(resp, "topics must be an array of topic names");
                return false;
            }
        }
        p->text = query;
        p->sql = json_string_value(json_object_get(b, "sql"));
    } else {
        planning_error(resp, "sources (or topics) is required");
        return false;
    }
    if (!p->nsrc) {
        planning_error(resp, "sources is empty");
        return false;
    }
    json_t *k = json_object_get(b, "k");
    if (k && !json_is_null(k)) {
        if (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > 10000) {
            planning_error(resp, "k must be an integer in [1, 10000]");
            return false;
        }
        p->k = (size_t)json_integer_value(k);
    }
    json_t *to = json_object_get(b, "timeout_ms");
    if (to && !json_is_null(to)) {
        if (!json_is_integer(to)) {
            planning_error(resp, "timeout_ms must be an integer");
            return false;
        }
        p->timeout_ms = json_integer_value(to) < 100 ? 100 : json_integer_value(to);
    }
    json_t *f = json_object_get(b, "filters");
    if (f && !json_is_null(f)) {
        if (!json_is_object(f) || !time_arg(json_object_get(f, "timestamp_gte"), &p->ts_gte) ||
            !time_arg(json_object_get(f, "timestamp_lte"), &p->ts_lte)) {
            planning_error(resp,
                           "filters.timestamp_gte/lte must be ISO-8601 or epoch milliseconds");
            return false;
        }
        json_t *ps = json_object_get(f, "partitions");
        if (ps && !json_is_null(ps)) {
            size_t i;
            json_t *x;
            if (!json_is_array(ps) || json_array_size(ps) > 256) {
                planning_error(resp, "filters.partitions must be an array of partition numbers");
                return false;
            }
            json_array_foreach(ps, i, x)
            {
                if (!json_is_integer(x) || json_integer_value(x) < 0) {
                    planning_error(resp,
                                   "filters.partitions must be an array of partition numbers");
                    return false;
                }
                p->parts[p->nparts++] = (int32_t)json_integer_value(x);
            }
            p->has_parts = true;
        }
    }
    const char *rf = json_string_value(json_object_get(b, "result_format"));
    p->grouped = rf && !strcmp(rf, "grouped");
    p->explain = json_is_true(json_object_get(b, "explain")) ||
                 json_is_true(json_object_get(b, "explanation"));
    json_t *rr = json_object_get(b, "rerank");
    if (rr && !json_is_null(rr) && !json_is_boolean(rr)) {
        planning_error(resp, "rerank must be true or false");
        return false;
    }
    p->rerank = json_is_true(rr);
    p->profile = json_string_value(json_object_get(json_object_get(b, "rank"), "profile"));
    if (!p->profile)
        p->profile = json_string_value(json_object_get(b, "profile"));
    return true;
}

static bool part_ok(const plan_t *p, int32_t part)
{
    if (!p->has_parts)
        return true;
    for (size_t i = 0; i < p->nparts; i++)
        if (p->parts[i] == part)
            return true;
    return false;
}

/* ---- the backends ---- */

typedef struct brun {
    int backend, topic;
    size_t candidates;
    double ms;
    bool timed_out;
    char error[256];
} brun_t;

/* Adds a ranked list (already filtered) to the candidates; the backend's rank is the
 * position in the list. */
typedef struct ranked {
    int32_t partition;
    int64_t offset, timestamp;
    double score;
} ranked_t;

static int merge_list(cands_t *c, int topic, int backend, const ranked_t *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cand_t *e = cand_get(c, topic, l[i].partition, l[i].offset);
        if (!e)
            return CK_ENOMEM;
        if (e->rank[backend] >= 0)
            continue; /* a duplicate in one list counts once, at its best rank */
        e->rank[backend] = (int)i;
        e->score[backend] = l[i].score;
        if (l[i].timestamp != INT64_MIN)
            e->timestamp = l[i].timestamp;
        e->nsrc++;
        e->rrf += 1.0 / (RRF_K + (double)i);
    }
    return 0;
}

static int run_text(ck_api_t *a, const plan_t *p, const char *topic, size_t want,
                    int64_t deadline_ms, ranked_t **out, size_t *n, char *err, size_t errlen)
{
    (void)deadline_ms; /* in-process and quick */
    *out = NULL;
    *n = 0;
    const char *q = p->text ? p->text : p->semantic;
    if (!q)
        return CK_EINVAL;
    ck__text_hit_t *th = NULL;
    size_t nt = 0;
    /* over-ask when filters may drop hits */
    bool filtered = p->has_parts || p->ts_gte != INT64_MIN || p->ts_lte != INT64_MAX;
    int rc = ck__text_search(a, topic, q, filtered ? want * 4 + 64 : want, &th, &nt, err, errlen);
    if (rc)
        return rc;
    ranked_t *l = ck_calloc(nt ? nt : 1, sizeof(*l));
    if (!l) {
        ck_free(th);
        return CK_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < nt && k < want; i++)
        if (part_ok(p, th[i].partition) && th[i].timestamp >= p->ts_gte &&
            th[i].timestamp <= p->ts_lte)
            l[k++] = (ranked_t){th[i].partition, th[i].offset, th[i].timestamp, th[i].score};
    ck_free(th);
    *out = l;
    *n = k;
    return 0;
}

static int run_vector(ck_api_t *a, const plan_t *p, const char *topic, size_t want,
                      int64_t deadline_ms, ranked_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    const char *q = p->semantic ? p->semantic : p->text;
    if (!q)
        return CK_EINVAL;
    float *vec = ck_malloc(sizeof(float) * CK_EMBED_MAX_DIMS);
    ck_vidx_hit_t *h = ck_malloc(sizeof(*h) * want);
    ranked_t *l = ck_calloc(want, sizeof(*l));
    uint32_t dims = 0;
    char e[CK_VIDX_ERR] = "";
    int rc = vec && h && l
                 ? ck_vidx_embed_query(a->d.vector, topic, q, strlen(q), vec, &dims, deadline_ms, e)
                 : CK_ENOMEM;
    ck_vidx_filter_t f = {
        p->has_parts ? p->parts : NULL, p->nparts, INT64_MIN, INT64_MAX, p->ts_gte, p->ts_lte};
    size_t nh = 0;
    if (!rc)
        rc = ck_vidx_search(a->d.vector, topic, vec, dims, want, 0, &f, h, &nh, e);
    if (rc)
        snprintf(err, errlen, "%s", *e ? e : ck_strerror(rc));
    for (size_t i = 0; !rc && i < nh; i++)
        l[i] = (ranked_t){h[i].partition, h[i].offset, h[i].timestamp, h[i].score};
    ck_free(vec);
    ck_free(h);
    if (rc) {
        ck_free(l);
        return rc;
    }
    *out = l;
    *n = nh;
    return 0;
}

static int run_sql(ck_api_t *a, const plan_t *p, const char *topic, size_t want,
                   int64_t deadline_ms, ranked_t **out, size_t *n, char *err, size_t errlen)
{
    (void)topic;
    *out = NULL;
    *n = 0;
    if (!p->sql)
        return CK_EINVAL;
    json_t *rows = NULL;
    int64_t left = deadline_ms - ck_mono_ms();
    int rc = ck__sql_rows(a, p->sql, (int64_t)want, left > 1 ? left : 1, &rows, err, errlen);
    if (rc)
        return rc;
    ranked_t *l = ck_calloc(json_array_size(rows) + 1, sizeof(*l));
    if (!l) {
        json_decref(rows);
        return CK_ENOMEM;
    }
    size_t k = 0, i;
    json_t *r;
    bool missing = false;
    json_array_foreach(rows, i, r)
    {
        json_t *pp = json_object_get(r, "_partition"), *oo = json_object_get(r, "_offset");
        json_t *tt = json_object_get(r, "_timestamp");
        if (!json_is_integer(pp) || !json_is_integer(oo)) {
            missing = true;
            continue;
        }
        int64_t ts = INT64_MIN;
        if (json_is_integer(tt))
            ts = json_integer_value(tt);
        else if (json_is_string(tt))
            ck_doc_parse_date(json_string_value(tt), json_string_length(tt), &ts);
        int32_t part = (int32_t)json_integer_value(pp);
        if (!part_ok(p, part) || (ts != INT64_MIN && (ts < p->ts_gte || ts > p->ts_lte)))
            continue;
        l[k++] = (ranked_t){part, json_integer_value(oo), ts, 0};
    }
    json_decref(rows);
    if (missing && !k) {
        ck_free(l);
        snprintf(err, errlen, "the SQL result has no _partition and _offset columns to rank");
        return CK_EINVAL;
    }
    *out = l;
    *n = k;
    return 0;
}

typedef struct fetch_arg {
    const char *topic;
    int32_t partition;
    int64_t start, end;
    bool found;
} fetch_arg_t;

static void do_bounds(ck_api_t *a, void *arg)
{
    fetch_arg_t *f = arg;
    ck_topic_t *t = ck_topics_get(a->d.topics, f->topic, (int)strlen(f->topic));
    if (!t || f->partition < 0 || f->partition >= t->npart)
        return;
    f->found = true;
    f->start = ck_partition_log_start(t->parts[f->partition]);
    f->end = ck_partition_durable_end(t->parts[f->partition]);
}

static int run_fetch(ck_api_t *a, const plan_t *p, const char *topic, size_t want,
                     int64_t deadline_ms, ranked_t **out, size_t *n, char *err, size_t errlen)
{
    (void)deadline_ms;
    *out = NULL;
    *n = 0;
    json_t *off = json_object_get(p->fetch, "offset");
    if (!json_is_integer(off)) {
        snprintf(err, errlen, "q.fetch.offset (an integer) is required");
        return CK_EINVAL;
    }
    json_t *pj = json_object_get(p->fetch, "partition");
    fetch_arg_t f = {topic, json_is_integer(pj) ? (int32_t)json_integer_value(pj) : 0, 0, 0, false};
    if (ck__api_loop_call(a, do_bounds, &f))
        return CK_ECLOSED;
    if (!f.found) {
        snprintf(err, errlen, "no partition %d in %s", (int)f.partition, topic);
        return CK_ENOENT;
    }
    int64_t from = json_integer_value(off) > f.start ? json_integer_value(off) : f.start;
    ranked_t *l = ck_calloc(want, sizeof(*l));
    if (!l)
        return CK_ENOMEM;
    size_t k = 0;
    for (int64_t o = from; o < f.end && k < want; o++)
        l[k++] = (ranked_t){f.partition, o, INT64_MIN, 0};
    *out = l;
    *n = k;
    return 0;
}

/* Which backends a topic supports, for the plan and /_query/capabilities. */
typedef struct caps {
    bool text, vector, sql, exists;
} caps_t;

typedef struct caps_arg {
    const char *topic;
    caps_t c;
} caps_arg_t;

static void do_caps(ck_api_t *a, void *arg)
{
    caps_arg_t *x = arg;
    ck_topic_t *t = ck_topics_get(a->d.topics, x->topic, (int)strlen(x->topic));
    if (!t)
        return;
    x->c.exists = true;
    const char *c = ck_kvs_get(&t->configs, "columnar.enabled");
    x->c.sql = c && !strcasecmp(c, "true");
}

static caps_t topic_caps(ck_api_t *a, const char *topic)
{
    caps_arg_t x = {topic, {0}};
    ck__api_loop_call(a, do_caps, &x);
    ck_sidx_snap_t *sn = ck_sidx_acquire(a->d.search, topic);
    x.c.text = sn != NULL;
    ck_sidx_release(sn);
    ck_vidx_stats_t st;
    ck_vidx_stats(a->d.vector, topic, &st);
    ck_free(st.per_part);
    x.c.vector = st.found;
    return x.c;
}

/* ---- scoring ---- */

static void features(cand_t *e, int64_t now_ms)
{
    e->feat[F_RRF] = e->rrf;
    e->feat[F_SOURCES] = e->nsrc;
    e->feat[F_TEXT_RANK] = e->rank[B_TEXT] >= 0 ? 1.0 / (1 + e->rank[B_TEXT]) : 0;
    e->feat[F_VECTOR_RANK] = e->rank[B_VECTOR] >= 0 ? 1.0 / (1 + e->rank[B_VECTOR]) : 0;
    e->feat[F_SQL_RANK] = e->rank[B_SQL] >= 0 ? 1.0 / (1 + e->rank[B_SQL]) : 0;
    e->feat[F_TEXT_SCORE] = e->rank[B_TEXT] >= 0 ? e->score[B_TEXT] : 0;
    e->feat[F_VECTOR_SCORE] = e->rank[B_VECTOR] >= 0 ? e->score[B_VECTOR] : 0;
    double age_h =
        e->timestamp == INT64_MIN ? INFINITY : (double)(now_ms - e->timestamp) / 3600000.0;
    e->feat[F_FRESHNESS] = isinf(age_h) ? 0 : 1.0 / (1.0 + (age_h > 0 ? age_h : 0));
}

static bool boost_holds(const boost_t *b, double v)
{
    switch (b->op) {
    case 0:
        return v > b->threshold;
    case 1:
        return v >= b->threshold;
    case 2:
        return v < b->threshold;
    case 3:
        return v <= b->threshold;
    default:
        return v == b->threshold;
    }
}

static void score(cand_t *e, const profile_t *pr)
{
    double s = 0;
    for (int f = 0; f < NF; f++)
        s += pr->w[f] * e->feat[f];
    for (int i = 0; i < pr->nboosts; i++)
        if (boost_holds(&pr->boosts[i], e->feat[pr->boosts[i].feature]))
            s *= pr->boosts[i].mult;
    e->final = s;
}

static int cand_cmp(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    if (x->final != y->final)
        return x->final > y->final ? -1 : 1;
    if (x->topic != y->topic)
        return x->topic - y->topic;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static json_t *cand_json(const plan_t *p, const cand_t *e, const profile_t *pr)
{
    json_t *feat = json_object();
    for (int f = 0; f < NF; f++)
        json_object_set_new(feat, fname[f], json_real(e->feat[f]));
    json_t *o = json_pack("{s:s,s:i,s:I,s:f,s:o}", "topic", p->src[e->topic].topic, "partition",
                          (int)e->partition, "offset", (json_int_t)e->offset, "final_score",
                          e->final, "features", feat);
    if (e->timestamp != INT64_MIN)
        json_object_set_new(o, "timestamp", json_integer(e->timestamp));
    if (p->explain) {
        char buf[1024];
        int n = snprintf(buf, sizeof(buf), "score=%.6g [", e->final);
        bool first = true;
        for (int f = 0; f < NF && n < (int)sizeof(buf); f++) {
            if (pr->w[f] == 0 || e->feat[f] == 0)
                continue;
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s%s=%.4g*%g", first ? "" : ", ",
                          fname[f], e->feat[f], pr->w[f]);
            first = false;
        }
        for (int i = 0; i < pr->nboosts && n < (int)sizeof(buf); i++)
            if (boost_holds(&pr->boosts[i], e->feat[pr->boosts[i].feature]))
                n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%sx%g (%s %s %g)",
                              first ? "" : ", ", pr->boosts[i].mult, fname[pr->boosts[i].feature],
                              opname[pr->boosts[i].op], pr->boosts[i].threshold);
        if (n < (int)sizeof(buf))
            snprintf(buf + n, sizeof(buf) - (size_t)n, "]");
        json_object_set_new(o, "explanation", json_string(buf));
    }
    return o;
}

static void uuid4(char out[37])
{
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        uint64_t t = (uint64_t)ck_mono_ns();
        for (int i = 0; i < 16; i++)
            b[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)(i * 37);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* ---- the routes ---- */

typedef int (*backend_fn)(ck_api_t *, const plan_t *, const char *, size_t, int64_t, ranked_t **,
                          size_t *, char *, size_t);

/* One request's backend runs, shared by the handler and the threads running them; the last
 * one out frees it (the plan's strings live in body). */
typedef struct qexec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;         /* the handler and each running thread */
    int next;         /* the next run to start */
    int pending;      /* runs not finished */
    bool abandoned;   /* the handler answered: late results are dropped */
    int64_t deadline; /* ck_mono_ms */
    size_t want;
    ck_api_t *a;
    json_t *body;
    plan_t p;
    int nruns;
    struct qslot {
        brun_t br;
        ranked_t *l;
        size_t n;
        int rc;
        bool done;
    } s[MAX_SOURCES * NB];
} qexec_t;

static void qexec_unref(qexec_t *x)
{
    pthread_mutex_lock(&x->mu);
    bool last = --x->refs == 0;
    pthread_mutex_unlock(&x->mu);
    if (!last)
        return;
    for (int i = 0; i < x->nruns; i++)
        ck_free(x->s[i].l);
    plan_free(&x->p);
    json_decref(x->body);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    ck_free(x);
}

/* A backend thread: runs the next run not started until none is left; one not started by
 * the deadline is not started at all. */
static void *qexec_thread(void *arg)
{
    static const backend_fn fns[NB] = {run_text, run_vector, run_sql, run_fetch};
    qexec_t *x = arg;
    ck_api_t *a = x->a;
    pthread_mutex_lock(&x->mu);
    while (x->next < x->nruns) {
        struct qslot *sl = &x->s[x->next++];
        if (x->abandoned || ck_mono_ms() >= x->deadline) {
            sl->br.timed_out = true;
            x->pending--;
            continue;
        }
        pthread_mutex_unlock(&x->mu);
        int64_t b0 = ck_mono_ns();
        ranked_t *l = NULL;
        size_t n = 0;
        char err[sizeof(sl->br.error)] = "";
        int rc = fns[sl->br.backend](a, &x->p, x->p.src[sl->br.topic].topic, x->want, x->deadline,
                                     &l, &n, err, sizeof(err));
        double ms = (double)(ck_mono_ns() - b0) / 1e6;
        pthread_mutex_lock(&x->mu);
        sl->br.ms = ms;
        sl->rc = rc;
        sl->br.timed_out = rc && ck_mono_ms() >= x->deadline; /* cut short at the deadline */
        snprintf(sl->br.error, sizeof(sl->br.error), "%s", rc && !*err ? ck_strerror(rc) : err);
        sl->l = l;
        sl->n = n;
        sl->done = true;
        x->pending--;
        pthread_cond_broadcast(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    qexec_unref(x);
    ck__api_bg_leave(a);
    return NULL;
}

/* Starts the runs' threads and waits until they are done or the deadline passed; the
 * finished runs' lists are merged into c. Returns 0 or CK_ENOMEM. */
static int qexec_run(qexec_t *x, cands_t *c, brun_t *runs)
{
    int nthreads = x->nruns < QUERY_THREADS ? x->nruns : QUERY_THREADS, started = 0;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_lock(&x->mu);
        x->refs++;
        pthread_mutex_unlock(&x->mu);
        ck__api_bg_enter(x->a);
        pthread_t th;
        if (pthread_create(&th, &at, qexec_thread, x)) {
            ck__api_bg_leave(x->a);
            pthread_mutex_lock(&x->mu);
            x->refs--;
            pthread_mutex_unlock(&x->mu);
            break;
        }
        started++;
    }
    pthread_attr_destroy(&at);
    if (!started) { /* no thread to be had: run them here */
        x->refs++;
        ck__api_bg_enter(x->a);
        qexec_thread(x);
    }
    pthread_mutex_lock(&x->mu);
    while (x->pending > 0) {
        int64_t now = ck_mono_ms();
        if (now >= x->deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (x->deadline - now) * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&x->cv, &x->mu, &ts);
    }
    x->abandoned = true;
    int rc = 0;
    for (int r = 0; r < x->nruns; r++) {
        struct qslot *sl = &x->s[r];
        runs[r] = sl->br;
        if (!sl->done) {
            runs[r].timed_out = true;
            runs[r].ms = (double)x->p.timeout_ms;
        } else if (!sl->rc && !rc) {
            runs[r].candidates = sl->n;
            rc = merge_list(c, sl->br.topic, sl->br.backend, sl->l, sl->n);
        }
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

static void h_query(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    int64_t t0 = ck_mono_ns();
    json_t *body = ck_http_json_body(req, resp, false);
    if (!body)
        return;
    qexec_t *x = ck_calloc(1, sizeof(*x));
    if (!x) {
        ck_http_resp_json(
            resp, 500, json_pack("{s:s,s:s}", "error", "out of memory", "type", "execution_error"));
        json_decref(body);
        return;
    }
    pthread_mutex_init(&x->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the deadline is ck_mono_ms time */
    pthread_cond_init(&x->cv, &ca);
    pthread_condattr_destroy(&ca);
    x->refs = 1;
    x->a = a;
    x->body = body;
    plan_t *pp = &x->p;
    if (!parse_plan(body, pp, resp)) {
        qexec_unref(x);
        return;
    }
    /* what can run */
    bool sql_added = false;
    for (int i = 0; i < pp->nsrc; i++) {
        caps_t c = topic_caps(a, pp->src[i].topic);
        if (!c.exists && !c.text && !c.vector) {
            json_array_append_new(pp->warnings,
                                  json_pack("s+", "unknown topic skipped: ", pp->src[i].topic));
            continue;
        }
        bool can[NB] = {c.text && (pp->text || pp->semantic),
                        c.vector && (pp->text || pp->semantic), pp->sql != NULL,
                        c.exists && pp->fetch != NULL};
        for (int b = 0; b < NB; b++) {
            if (!pp->src[i].mode[b])
                continue;
            if (!can[b]) {
                char w[400];
                snprintf(w, sizeof(w), "%s: mode %s skipped (%s)", pp->src[i].topic, bname[b],
                         b == B_TEXT     ? "no text index or no q.text"
                         : b == B_VECTOR ? "no vector index or no query text"
                         : b == B_SQL    ? "no q.sql"
                                         : "no q.fetch");
                json_array_append_new(pp->warnings, json_string(w));
                continue;
            }
            if (b == B_SQL && sql_added) /* one query: attributed to the first topic */
                continue;
            sql_added |= b == B_SQL;
            x->s[x->nruns++].br = (brun_t){.backend = b, .topic = i};
        }
    }
    if (!x->nruns) {
        planning_error(resp, "no executable backend: the sources' topics lack the requested "
                             "capabilities or the query lacks what they need");
        qexec_unref(x);
        return;
    }
    x->pending = x->nruns;
    x->want = 3 * pp->k;
    x->deadline = ck_mono_ms() + pp->timeout_ms;
    brun_t runs[MAX_SOURCES * NB];
    int nruns = x->nruns;
    cands_t c = {0};
    int rc = qexec_run(x, &c, runs);
    const plan_t *p = pp; /* the handler's reference keeps it alive until the end */
    if (rc) {
        ck_http_resp_json(
            resp, 500, json_pack("{s:s,s:s}", "error", "out of memory", "type", "execution_error"));
        ck_free(c.v);
        qexec_unref(x);
        return;
    }
    profile_t pr;
    find_profile(a, p->profile, &pr);
    int64_t now = ck_wall_ms();
    for (size_t i = 0; i < c.n; i++) {
        features(&c.v[i], now);
        score(&c.v[i], &pr);
    }
    qsort(c.v, c.n, sizeof(*c.v), cand_cmp);
    size_t keep = p->rerank && ck__reranker_on(a) ? 5 * p->k : p->k; /* the reranker gets 5k */
    size_t ranked = c.n < keep ? c.n : keep;
    json_t *results = json_array(), *grouped = NULL;
    for (size_t i = 0; i < ranked; i++)
        json_array_append_new(results, cand_json(p, &c.v[i], &pr));
    bool reranked = false;
    char warn[300];
    rc = ck__finish_results(a, results, p->k, p->text ? p->text : p->semantic, p->rerank,
                            ck_mono_ms() + p->timeout_ms, &reranked, warn, sizeof(warn));
    if (rc) {
        json_decref(results);
        ck_http_resp_json(
            resp, 500, json_pack("{s:s,s:s}", "error", ck_strerror(rc), "type", "execution_error"));
        ck_free(c.v);
        qexec_unref(x);
        return;
    }
    if (*warn)
        json_array_append_new(p->warnings, json_string(warn));
    ranked = json_array_size(results);
    if (p->grouped) {
        grouped = json_object();
        size_t i;
        json_t *e;
        json_array_foreach(results, i, e)
        {
            const char *t = json_string_value(json_object_get(e, "topic"));
            json_t *g = json_object_get(grouped, t);
            if (!g) {
                g = json_array();
                json_object_set_new(grouped, t, g);
            }
            json_array_append(g, e);
        }
        json_array_clear(results);
    }
    json_t *backs = json_array();
    for (int r = 0; r < nruns; r++) {
        json_t *o =
            json_pack("{s:s,s:s,s:I,s:f,s:b}", "backend", bname[runs[r].backend], "topic",
                      p->src[runs[r].topic].topic, "candidates", (json_int_t)runs[r].candidates,
                      "latency_ms", runs[r].ms, "timed_out", runs[r].timed_out);
        if (runs[r].error[0])
            json_object_set_new(o, "error", json_string(runs[r].error));
        json_array_append_new(backs, o);
    }
    char qid[37];
    uuid4(qid);
    json_t *out =
        json_pack("{s:s,s:o,s:{s:I,s:I,s:f,s:o},s:s}", "query_id", qid, "results", results, "stats",
                  "candidates", (json_int_t)c.n, "ranked", (json_int_t)ranked, "latency_ms",
                  (double)(ck_mono_ns() - t0) / 1e6, "backends", backs, "profile", pr.name);
    if (grouped)
        json_object_set_new(out, "grouped_results", grouped);
    if (reranked)
        json_object_set_new(json_object_get(out, "stats"), "reranked", json_true());
    if (json_array_size(p->warnings))
        json_object_set(out, "warnings", p->warnings);
    ck_http_resp_json(resp, 200, out);
    ck_free(c.v);
    qexec_unref(x);
}

typedef struct names_arg {
    char **names;
    int n;
} names_arg_t;

static void do_names(ck_api_t *a, void *arg)
{
    names_arg_t *x = arg;
    int n = ck_topics_count(a->d.topics);
    x->names = ck_calloc(n ? (size_t)n : 1, sizeof(char *));
    for (int i = 0; x->names && i < n; i++) {
        ck_topic_t *t = ck_topics_at(a->d.topics, i);
        if (t && strncmp(t->name, "__", 2) && (x->names[x->n] = ck_strdup(t->name)))
            x->n++;
    }
}

static void h_capabilities(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    (void)req;
    ck_api_t *a = ud;
    names_arg_t x = {0};
    if (ck__api_loop_call(a, do_names, &x)) {
        ck_http_resp_error(resp, 503, "ServiceUnavailable", "%s", "the server is shutting down");
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < x.n; i++) {
        caps_t c = topic_caps(a, x.names[i]);
        json_array_append_new(arr, json_pack("{s:s,s:b,s:b,s:b,s:b}", "topic", x.names[i],
                                             "text_search", c.text, "vector_search", c.vector,
                                             "sql_query", c.sql, "fetch", c.exists));
        ck_free(x.names[i]);
    }
    ck_free(x.names);
    ck_http_resp_json(resp, 200, arr);
}

static void h_profiles(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    (void)req;
    ck_api_t *a = ud;
    json_t *arr = json_array();
    for (int i = 0; i < 3; i++) {
        profile_t p;
        builtin(i, &p);
        json_array_append_new(arr, profile_json(&p));
    }
    char dir[1100];
    profiles_dir(a, dir, sizeof(dir));
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= 5 || strcmp(de->d_name + n - 5, ".json"))
            continue;
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(n - 5), de->d_name);
        profile_t p;
        if (!strcmp(name, "default") || !strcmp(name, "freshness") || !strcmp(name, "relevance"))
            continue;
        if (!load_custom(dir, name, &p))
            json_array_append_new(arr, profile_json(&p));
    }
    if (d)
        closedir(d);
    ck_http_resp_json(resp, 200, arr);
}

int ck__query_routes(ck_api_t *a, ck_http_t *http)
{
    int rc = ck_http_route(http, "POST", "/_query", h_query, a);
    if (!rc)
        rc = ck_http_route(http, "GET", "/_query/capabilities", h_capabilities, a);
    if (!rc)
        rc = ck_http_route(http, "GET", "/_query/profiles", h_profiles, a);
    return rc;
}
