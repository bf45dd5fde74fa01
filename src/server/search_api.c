/* The search routes of the unified API: /_search, /{index}/_search (Elasticsearch-style,
 * API.md §2.3 and §5) over searchable topics and REST-created indexes.
 *
 * A search runs on the HTTP thread: snapshots of the indexes (segments held by
 * reference), the query layer (search/query.h), then the hits' documents. For topics the
 * document is the log record itself: its batch is copied from the log on the event loop
 * (one call for all hits) and decoded here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/logging.h"
#include "log/batch.h"
#include "search/query.h"
#include "search/restidx.h"
#include "search/sindex.h"
#include "server/api_int.h"

#define MAX_INDEXES 256

/* ---------------------------------------------------------------- errors */

/* {"error":{"type","reason"},"status":N} */
static void es_error(ck_http_resp_t *resp, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void es_error(ck_http_resp_t *resp, int status, const char *type, const char *fmt, ...)
{
    char reason[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    ck_http_resp_json(
        resp, status,
        json_pack("{s:{s:s,s:s},s:i}", "error", "type", type, "reason", reason, "status", status));
}

static void es_error_from(ck_http_resp_t *resp, const ck_search_error_t *e, int rc)
{
    if (rc == CK_ENOMEM)
        es_error(resp, 500, "out_of_memory_error", "not enough memory for this search");
    else if (e->type[0])
        es_error(resp, e->status ? e->status : 400, e->type, "%s", e->reason);
    else
        es_error(resp, 500, "search_phase_execution_exception", "search failed: %s",
                 ck_strerror(rc));
}

/* The request body as JSON (any Content-Type), or NULL after answering 400
 * parse_exception as Elasticsearch does. An empty body is {} when allow_empty. */
static json_t *es_json_body(ck_http_req_t *req, ck_http_resp_t *resp, bool allow_empty)
{
    size_t n = 0;
    const char *b = ck_http_body(req, &n);
    size_t i = 0;
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
        i++;
    if (i == n) {
        if (allow_empty)
            return json_object();
        es_error(resp, 400, "parse_exception", "request body is required");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(b, n, JSON_DECODE_ANY, &je);
    if (!j)
        es_error(resp, 400, "parse_exception",
                 "failed to parse the request body: %s (line %d, column %d)", je.text, je.line,
                 je.column);
    return j;
}

/* ---------------------------------------------------------------- JSON of bytes */

/* A JSON string of arbitrary bytes: invalid UTF-8 sequences become U+FFFD. */
static json_t *bytes_string(const uint8_t *p, size_t n)
{
    json_t *j = json_stringn((const char *)p, n);
    if (j)
        return j;
    ck_wbuf_t w = CK_WBUF_INIT;
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len && i + len <= n && !(c == 0);
        for (size_t k = 1; ok && k < len; k++)
            ok = (p[i + k] & 0xC0) == 0x80;
        if (ok && len > 1) {
            json_t *t = json_stringn((const char *)p + i, len);
            ok = t != NULL;
            json_decref(t);
        }
        if (ok) {
            ck_wr_bytes(&w, p + i, len);
            i += len;
        } else {
            ck_wr_bytes(&w, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    j = json_stringn((const char *)w.data, w.len);
    ck_wbuf_free(&w);
    return j;
}

/* The record value as JSON when it is JSON, else as a string. */
static json_t *value_json(ck_slice_t v)
{
    if (v.len < 0)
        return json_null();
    json_error_t je;
    json_t *j =
        json_loadb((const char *)v.ptr, (size_t)v.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    return j ? j : bytes_string(v.ptr, (size_t)v.len);
}

/* ---------------------------------------------------------------- fetching records */

typedef struct fetch_item {
    const char *topic;
    int32_t partition;
    int64_t offset;
    uint32_t rpos; /* the record's position in its batch (CK_SEG_NO_POS: unknown) */
    int rc;
    int32_t batch;   /* index into fetch_op.batches, -1 = none */
    ck_wbuf_t part;  /* read alone: the batch header, then the record */
    ck_record_t rec; /* ... decoded (when has_rec), slices into part */
    bool has_rec;
    json_t *src; /* the hit's _source (owned), or NULL */
    json_t *doc; /* its "value" (borrowed from src) */
} fetch_item_t;

typedef struct fetch_batch {
    ck_wbuf_t bytes;
    const char *topic;
    int32_t partition;
    int64_t base, last;
} fetch_batch_t;

typedef struct fetch_op {
    fetch_item_t *items;
    size_t n;
    size_t *order; /* items by (topic, partition, offset) */
    fetch_batch_t *batches;
    size_t nbatches;
} fetch_op_t;

static int item_cmp(const void *a, const void *b, void *arg)
{
    const fetch_item_t *items = arg;
    const fetch_item_t *x = &items[*(const size_t *)a], *y = &items[*(const size_t *)b];
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Reads just the hit's record out of its uncompressed batch (4 KB, or up to 1 MB for a
 * bigger record): true if that worked and it is the record asked for, else the caller
 * reads the batch whole. */
static bool fetch_record_alone(ck_partition_t *p, fetch_item_t *it)
{
    if (it->rpos == CK_SEG_NO_POS)
        return false;
    size_t want = 4096;
    for (int round = 0; round < 2; round++, want = 1u << 20) {
        ck_wbuf_reset(&it->part);
        int64_t n = ck_partition_read_part(p, it->offset, ck_partition_durable_end(p), it->rpos,
                                           want, &it->part);
        if (n < CK_BATCH_HEADER_SIZE)
            return false;
        int64_t size = ck_batch_record_at(it->part.data, it->part.data + CK_BATCH_HEADER_SIZE,
                                          (size_t)n - CK_BATCH_HEADER_SIZE, &it->rec);
        if (size == CK_ETRUNC && (size_t)n - CK_BATCH_HEADER_SIZE == want)
            continue; /* a bigger record: read more */
        /* the log was compacted since (records moved) or the position is off: not it */
        it->has_rec = size > 0 && it->rec.offset == it->offset;
        return it->has_rec;
    }
    return false;
}

/* Loop thread: reads each hit's record alone where its position is known, else copies
 * the batches holding the items out of the log, each batch once (hits are visited in
 * offset order, so hits of one batch share it). */
static void do_fetch(ck_api_t *a, void *arg)
{
    fetch_op_t *op = arg;
    fetch_batch_t *cur = NULL;
    for (size_t k = 0; k < op->n; k++) {
        fetch_item_t *it = &op->items[op->order[k]];
        if (it->rc)
            continue;
        if (cur && !strcmp(cur->topic, it->topic) && cur->partition == it->partition &&
            it->offset >= cur->base && it->offset <= cur->last) {
            it->batch = (int32_t)(cur - op->batches);
            continue;
        }
        ck_topic_t *t = ck_topics_get(a->d.topics, it->topic, (int)strlen(it->topic));
        if (!t || it->partition < 0 || it->partition >= t->npart) {
            it->rc = CK_ENOENT;
            continue;
        }
        ck_partition_t *p = t->parts[it->partition];
        if (fetch_record_alone(p, it))
            continue;
        fetch_batch_t *b = &op->batches[op->nbatches];
        memset(b, 0, sizeof(*b));
        int64_t n =
            ck_partition_read(p, it->offset, ck_partition_durable_end(p), 1, true, &b->bytes);
        if (n < 61) { /* no whole batch header */
            ck_wbuf_free(&b->bytes);
            it->rc = n < 0 ? (int)n : CK_ENOENT;
            continue;
        }
        b->topic = it->topic;
        b->partition = it->partition;
        b->base = (int64_t)ck_get_u64(b->bytes.data);
        b->last = b->base + (int32_t)ck_get_u32(b->bytes.data + 23);
        cur = b;
        it->batch = (int32_t)op->nbatches++;
    }
}

/* The topic hit's _source {topic, partition, offset, timestamp, key?, value}. */
static json_t *record_json(const fetch_item_t *it, const ck_record_t *r, json_t **doc)
{
    json_t *src = json_object();
    json_object_set_new(src, "topic", json_string(it->topic));
    json_object_set_new(src, "partition", json_integer(it->partition));
    json_object_set_new(src, "offset", json_integer(r->offset));
    json_object_set_new(src, "timestamp", json_integer(r->timestamp));
    if (r->key.len >= 0)
        json_object_set_new(src, "key", bytes_string(r->key.ptr, (size_t)r->key.len));
    *doc = value_json(r->value);
    json_object_set_new(src, "value", *doc);
    return src;
}

/* Decodes each fetched batch once and calls fn(ctx, i, record) for each item i found. */
static void each_record(fetch_op_t *op, void (*fn)(void *, size_t, const ck_record_t *), void *ctx)
{
    for (size_t i = 0; i < op->n; i++) {
        fetch_item_t *fi = &op->items[i];
        if (fi->has_rec)
            fn(ctx, i, &fi->rec);
        ck_wbuf_free(&fi->part);
    }
    ck_wbuf_t scratch = CK_WBUF_INIT;
    size_t k = 0;
    for (size_t bi = 0; bi < op->nbatches; bi++) {
        while (k < op->n && op->items[op->order[k]].batch != (int32_t)bi)
            k++; /* items of batch bi are consecutive in order */
        fetch_batch_t *b = &op->batches[bi];
        ck_batch_iter_t it;
        ck_wbuf_reset(&scratch);
        if (ck_batch_iter_init(&it, b->bytes.data, b->bytes.len, &scratch))
            continue;
        ck_record_t r;
        while (k < op->n && op->items[op->order[k]].batch == (int32_t)bi &&
               ck_batch_iter_next(&it, &r) == 1) {
            /* several hits may be the same record (one topic searched twice): all get it */
            while (k < op->n) {
                fetch_item_t *fi = &op->items[op->order[k]];
                if (fi->batch != (int32_t)bi || fi->offset != r.offset)
                    break;
                fn(ctx, (size_t)(fi - op->items), &r);
                k++;
            }
            while (k < op->n && op->items[op->order[k]].batch == (int32_t)bi &&
                   op->items[op->order[k]].offset < r.offset)
                k++; /* not in the batch (compacted away) */
        }
    }
    ck_wbuf_free(&scratch);
    for (size_t i = 0; i < op->nbatches; i++)
        ck_wbuf_free(&op->batches[i].bytes);
}

static void keep_source(void *ctx, size_t i, const ck_record_t *r)
{
    fetch_item_t *it = &((fetch_op_t *)ctx)->items[i];
    it->src = record_json(it, r, &it->doc);
}

int ck__read_records(ck_api_t *a, const ck__rec_ref_t *refs, size_t n,
                     void (*fn)(void *ctx, size_t i, const ck_record_t *r), void *ctx)
{
    if (!n)
        return 0;
    fetch_item_t *items = ck_calloc(n, sizeof(*items));
    size_t *order = ck_calloc(n, sizeof(*order));
    fetch_batch_t *batches = ck_calloc(n, sizeof(*batches));
    int rc = items && order && batches ? 0 : CK_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        items[i].topic = refs[i].topic;
        items[i].partition = refs[i].partition;
        items[i].offset = refs[i].offset;
        items[i].rpos = CK_SEG_NO_POS;
        items[i].batch = -1;
        order[i] = i;
    }
    fetch_op_t op = {items, n, order, batches, 0};
    if (!rc) {
        qsort_r(order, n, sizeof(*order), item_cmp, items);
        rc = ck__api_loop_call(a, do_fetch, &op);
        if (rc) /* not fetched: free what was */
            for (size_t i = 0; i < op.nbatches; i++)
                ck_wbuf_free(&op.batches[i].bytes);
        else
            each_record(&op, fn, ctx);
    }
    for (size_t i = 0; items && i < n; i++)
        ck_wbuf_free(&items[i].part);
    ck_free(items);
    ck_free(order);
    ck_free(batches);
    return rc;
}

/* ---------------------------------------------------------------- index resolution */

typedef struct target {
    char *name;
    ck_sidx_snap_t *topic;   /* a searchable topic, or */
    ck_restidx_snap_t *rest; /* a REST-created index */
} target_t;

typedef struct targets {
    target_t t[MAX_INDEXES];
    size_t n;
} targets_t;

static void targets_free(targets_t *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        ck_sidx_release(ts->t[i].topic);
        ck_restidx_release(ts->t[i].rest);
        ck_free(ts->t[i].name);
    }
    ts->n = 0;
}

static bool targets_has(const targets_t *ts, const char *name)
{
    for (size_t i = 0; i < ts->n; i++)
        if (!strcmp(ts->t[i].name, name))
            return true;
    return false;
}

static bool add_topic(ck_api_t *a, targets_t *ts, const char *name)
{
    if (targets_has(ts, name))
        return true;
    if (ts->n == MAX_INDEXES)
        return true;
    ck_sidx_snap_t *sn = ck_sidx_acquire(a->d.search, name);
    ck_restidx_snap_t *rs = sn ? NULL : ck_restidx_acquire(a->d.rest, name);
    if (!sn && !rs)
        return false;
    ts->t[ts->n].name = ck_strdup(name);
    ts->t[ts->n].topic = sn;
    ts->t[ts->n].rest = rs;
    ts->n++;
    return true;
}

/* Every index name: searchable topics, then REST-created indexes. */
static int all_names(ck_api_t *a, char ***out)
{
    char **names = NULL;
    int nn = ck_sidx_list(a->d.search, &names);
    if (nn < 0)
        return nn;
    ck_restidx_info_t *ri = NULL;
    size_t nr = 0;
    if (ck_restidx_list(a->d.rest, &ri, &nr) == 0 && nr) {
        char **n2 = ck_realloc(names, sizeof(*n2) * ((size_t)nn + nr));
        if (n2) {
            names = n2;
            for (size_t i = 0; i < nr; i++) {
                char *d = ck_strdup(ri[i].name);
                if (d)
                    names[nn++] = d;
            }
        }
    }
    ck_free(ri);
    *out = names;
    return nn;
}

/* Resolves "a,b,c*" (NULL, "", "_all" or "*" = every index). On a missing concrete name
 * fills resp with 404 and returns false. */
static bool resolve(ck_api_t *a, const char *spec, targets_t *ts, ck_http_resp_t *resp)
{
    char **names = NULL;
    int nn = all_names(a, &names);
    if (nn < 0) {
        es_error(resp, 500, "out_of_memory_error", "not enough memory");
        return false;
    }
    bool all = !spec || !*spec || !strcmp(spec, "_all") || !strcmp(spec, "*");
    bool ok = true;
    if (all) {
        for (int i = 0; i < nn; i++)
            add_topic(a, ts, names[i]);
    } else {
        char *copy = ck_strdup(spec);
        char *save = NULL;
        for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && ok;
             tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            if (!*tok)
                continue;
            if (strchr(tok, '*')) {
                for (int i = 0; i < nn; i++)
                    if (ck_search_glob(tok, names[i]))
                        add_topic(a, ts, names[i]);
                continue;
            }
            if (!add_topic(a, ts, tok)) {
                es_error(resp, 404, "index_not_found_exception", "no such index [%s]", tok);
                ok = false;
            }
        }
        if (!copy) {
            es_error(resp, 500, "out_of_memory_error", "not enough memory");
            ok = false;
        }
        ck_free(copy);
    }
    for (int i = 0; i < nn; i++)
        ck_free(names[i]);
    ck_free(names);
    if (!ok)
        targets_free(ts);
    return ok;
}

/* ---------------------------------------------------------------- /_search */

/* The request body, or one built from URI parameters (?q=, ?size=, ?from=). */
static json_t *search_body(ck_http_req_t *req, ck_http_resp_t *resp)
{
    size_t blen = 0;
    const char *b = ck_http_body(req, &blen);
    bool empty = true;
    for (size_t i = 0; i < blen && empty; i++)
        empty = b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n';
    json_t *body = es_json_body(req, resp, true);
    if (!body)
        return NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        es_error(resp, 400, "parsing_exception", "request body must be a JSON object");
        return NULL;
    }
    if (empty) {
        const char *q = ck_http_query_arg(req, "q");
        if (q)
            json_object_set_new(body, "query", json_pack("{s:{s:s}}", "query_string", "query", q));
        const char *names[] = {"size", "from"};
        for (int i = 0; i < 2; i++) {
            const char *v = ck_http_query_arg(req, names[i]);
            if (v) {
                char *e;
                long long x = strtoll(v, &e, 10);
                if (*v && !*e)
                    json_object_set_new(body, names[i], json_integer(x));
                else
                    json_object_set_new(body, names[i], json_string(v));
            }
        }
        const char *tth = ck_http_query_arg(req, "track_total_hits");
        if (tth)
            json_object_set_new(body, "track_total_hits",
                                !strcmp(tth, "false") ? json_false() : json_true());
    }
    return body;
}

static void run_search(ck_api_t *a, ck_http_req_t *req, ck_http_resp_t *resp,
                       const char *path_index)
{
    int64_t t0 = ck_mono_ms();
    json_t *body = search_body(req, resp);
    if (!body)
        return;
    ck_search_req_t *rq = NULL;
    ck_search_error_t err = {0};
    int rc = ck_search_parse(body, &rq, &err);
    json_decref(body);
    if (rc) {
        es_error_from(resp, &err, rc);
        return;
    }
    const char *spec = path_index ? path_index : ck_search_req_index(rq);
    targets_t *ts = ck_calloc(1, sizeof(*ts));
    if (!ts) {
        ck_search_req_free(rq);
        es_error(resp, 500, "out_of_memory_error", "not enough memory");
        return;
    }
    if (!resolve(a, spec, ts, resp)) {
        ck_free(ts);
        ck_search_req_free(rq);
        return;
    }
    ck_search_view_t *views = ck_calloc(ts->n ? ts->n : 1, sizeof(*views));
    ck_search_result_t res = {0};
    if (!views) {
        rc = CK_ENOMEM;
    } else {
        for (size_t i = 0; i < ts->n; i++) {
            ck_sidx_snap_t *sn = ts->t[i].topic;
            if (ts->t[i].rest) {
                ck_restidx_view(ts->t[i].rest, &views[i]);
            } else {
                views[i].segs = sn->segs;
                views[i].nsegs = sn->nsegs;
                views[i].analyzer = sn->analyzer;
                views[i].live = sn->all_live ? NULL : ck_sidx_live;
                views[i].live_ctx = sn;
            }
            views[i].index = ts->t[i].name;
        }
        rc = ck_search_execute(rq, views, ts->n, &res, &err);
    }
    if (rc) {
        es_error_from(resp, &err, rc);
        goto out;
    }

    /* the documents of the hits */
    fetch_item_t *items = ck_calloc(res.nhits ? res.nhits : 1, sizeof(*items));
    size_t *order = ck_calloc(res.nhits ? res.nhits : 1, sizeof(*order));
    fetch_batch_t *batches = ck_calloc(res.nhits ? res.nhits : 1, sizeof(*batches));
    if (!items || !order || !batches) {
        ck_free(items);
        ck_free(order);
        ck_free(batches);
        es_error(resp, 500, "out_of_memory_error", "not enough memory");
        goto out;
    }
    size_t ntopic = 0;
    for (size_t i = 0; i < res.nhits; i++) {
        const ck_search_hit_t *h = &res.hits[i];
        int64_t ts_ms;
        items[i].topic = ts->t[h->view].name;
        ck_segment_doc(views[h->view].segs[h->seg], h->doc, &items[i].partition, &items[i].offset,
                       &ts_ms);
        items[i].rpos = ck_segment_doc_record_pos(views[h->view].segs[h->seg], h->doc);
        items[i].batch = -1;
        order[i] = i;
        if (ts->t[h->view].rest)
            items[i].rc = CK_ENOENT; /* not a log record */
        else
            ntopic++;
    }
    qsort_r(order, res.nhits, sizeof(*order), item_cmp, items);
    fetch_op_t fop = {items, res.nhits, order, batches, 0};
    /* "_source": false and no highlight: the records are not read at all */
    json_t *probe = json_object();
    json_t *kept = probe ? ck_search_source_filter(rq, probe) : NULL;
    bool need_docs = kept || ck_search_req_has_highlight(rq);
    json_decref(kept);
    json_decref(probe);
    if (!need_docs)
        ntopic = 0;
    if (ntopic && ck__api_loop_call(a, do_fetch, &fop)) {
        ck_free(items);
        ck_free(order);
        ck_free(batches);
        es_error(resp, 503, "unavailable_shards_exception", "the server is shutting down");
        goto out;
    }
    each_record(&fop, keep_source, &fop);
    ck_free(order);
    ck_free(batches);
    json_t *hits = json_array();
    for (size_t i = 0; i < res.nhits; i++) {
        const ck_search_hit_t *h = &res.hits[i];
        fetch_item_t *it = &items[i];
        json_t *hit = json_object();
        char id[600];
        json_t *doc = NULL;
        ck_restidx_snap_t *rs = ts->t[h->view].rest;
        if (rs) {
            doc = ck_restidx_hit_source(rs, h->seg, h->doc, id, sizeof(id));
            if (!doc)
                snprintf(id, sizeof(id), "%lld", (long long)it->offset);
        } else {
            snprintf(id, sizeof(id), "%s-%d-%lld", it->topic, it->partition, (long long)it->offset);
        }
        json_object_set_new(hit, "_index", json_string(it->topic));
        json_object_set_new(hit, "_id", json_string(id));
        json_object_set_new(hit, "_score",
                            h->sort && !res.has_max_score ? json_null() : json_real(h->score));
        if (rs) {
            /* a REST document is its own _source, as in Elasticsearch */
            if (doc) {
                json_t *f = ck_search_source_filter(rq, doc);
                if (f)
                    json_object_set_new(hit, "_source", f);
                json_t *hl = ck_search_req_has_highlight(rq)
                                 ? ck_search_highlight(rq, &views[h->view], doc)
                                 : NULL;
                if (hl)
                    json_object_set_new(hit, "highlight", hl);
                json_decref(doc);
            }
            if (h->sort)
                json_object_set(hit, "sort", h->sort);
            json_array_append_new(hits, hit);
            continue;
        }
        json_t *src = it->src;
        doc = it->doc;
        if (src) {
            json_t *filtered =
                json_is_object(doc) ? ck_search_source_filter(rq, doc) : json_incref(doc);
            if (!filtered) {
                json_decref(src); /* _source: false */
                src = NULL;
            } else if (filtered != doc) {
                json_object_set(src, "value", filtered);
            }
            if (ck_search_req_has_highlight(rq)) {
                json_t *hdoc =
                    json_is_object(doc) ? json_incref(doc) : json_pack("{s:O}", "_value", doc);
                json_t *hl = hdoc ? ck_search_highlight(rq, &views[h->view], hdoc) : NULL;
                if (hl)
                    json_object_set_new(hit, "highlight", hl);
                json_decref(hdoc);
            }
            json_decref(filtered);
            if (src)
                json_object_set_new(hit, "_source", src);
        } else if (need_docs) {
            /* the record is gone (retention raced the search): show what the index knows */
            json_t *s = json_pack("{s:s,s:i,s:I}", "topic", it->topic, "partition", it->partition,
                                  "offset", (json_int_t)it->offset);
            json_object_set_new(hit, "_source", s);
        }
        if (h->sort)
            json_object_set(hit, "sort", h->sort);
        json_array_append_new(hits, hit);
    }
    ck_free(items);
    json_t *total = res.has_total ? json_pack("{s:I,s:s}", "value", (json_int_t)res.total,
                                              "relation", res.total_is_lower_bound ? "gte" : "eq")
                                  : NULL;
    json_t *hobj = json_object();
    if (total)
        json_object_set_new(hobj, "total", total);
    json_object_set_new(hobj, "max_score",
                        res.has_max_score ? json_real(res.max_score) : json_null());
    json_object_set_new(hobj, "hits", hits);
    json_t *out = json_object();
    json_object_set_new(out, "took", json_integer(ck_mono_ms() - t0));
    json_object_set_new(out, "timed_out", json_false());
    json_object_set_new(out, "_shards",
                        json_pack("{s:i,s:i,s:i,s:i}", "total", (int)ts->n, "successful",
                                  (int)ts->n, "skipped", 0, "failed", 0));
    json_object_set_new(out, "hits", hobj);
    ck_http_resp_json(resp, 200, out);
out:
    ck_search_result_free(&res);
    ck_free(views);
    targets_free(ts);
    ck_free(ts);
    ck_search_req_free(rq);
}

static void h_search_all(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    run_search(ud, req, resp, NULL);
}

static void h_search_index(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    run_search(ud, req, resp, ck_http_param(req, 0));
}

/* ---------------------------------------------------------------- REST-created indexes */

typedef struct topic_check {
    const char *name;
    bool exists;
} topic_check_t;

static void do_topic_check(ck_api_t *a, void *arg)
{
    topic_check_t *tc = arg;
    tc->exists = ck_topics_get(a->d.topics, tc->name, (int)strlen(tc->name)) != NULL;
}

/* 1 when name is a Kafka topic (those are not REST indexes), 0 if not, -1 after answering
 * 503 (shutting down). */
static int is_topic(ck_api_t *a, const char *name, ck_http_resp_t *resp)
{
    topic_check_t tc = {name, false};
    if (ck__api_loop_call(a, do_topic_check, &tc)) {
        es_error(resp, 503, "unavailable_shards_exception", "the server is shutting down");
        return -1;
    }
    return tc.exists;
}

static void no_index(ck_http_resp_t *resp, const char *name)
{
    es_error(resp, 404, "index_not_found_exception", "no such index [%s]", name);
}

static json_t *shards_json(void)
{
    return json_pack("{s:i,s:i,s:i,s:i}", "total", 1, "successful", 1, "skipped", 0, "failed", 0);
}

static void h_index_create(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    const char *name = ck_http_param(req, 0);
    json_t *body = es_json_body(req, resp, true);
    if (!body)
        return;
    ck_search_error_t err = {0};
    int topic = 0;
    if (ck_restidx_check_name(name, &err)) {
        es_error_from(resp, &err, CK_EINVAL);
    } else if ((topic = is_topic(a, name, resp)) == 0) {
        int rc = ck_restidx_create(a->d.rest, name, json_object_size(body) ? body : NULL, &err);
        if (rc)
            es_error_from(resp, &err, rc);
        else
            ck_http_resp_json(resp, 200,
                              json_pack("{s:b,s:b,s:s}", "acknowledged", 1, "shards_acknowledged",
                                        1, "index", name));
    } else if (topic > 0) {
        es_error(resp, 400, "resource_already_exists_exception",
                 "index [%s] already exists (it is a Kafka topic)", name);
    }
    json_decref(body);
}

static void h_index_drop(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    const char *name = ck_http_param(req, 0);
    int rc = ck_restidx_drop(a->d.rest, name);
    if (rc == CK_ENOENT)
        no_index(resp, name);
    else if (rc)
        es_error(resp, 500, "exception", "cannot delete index [%s]: %s", name, ck_strerror(rc));
    else
        ck_http_resp_json(resp, 200, json_pack("{s:b}", "acknowledged", 1));
}

static void h_index_mapping(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    const char *name = ck_http_param(req, 0);
    json_t *m = ck_restidx_mapping(a->d.rest, name);
    if (!m) {
        no_index(resp, name);
        return;
    }
    ck_http_resp_json(resp, 200, json_pack("{s:{s:o}}", name, "mappings", m));
}

static json_t *write_json(const char *index, const ck_restidx_write_t *w)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:o,s:I,s:i}", "_index", index, "_id", w->id, "_version",
                     (json_int_t)w->version, "result", ck_restidx_result_name(w->result), "_shards",
                     shards_json(), "_seq_no", (json_int_t)w->seq_no, "_primary_term", 1);
}

static void put_doc(ck_api_t *a, ck_http_req_t *req, ck_http_resp_t *resp, const char *id)
{
    const char *name = ck_http_param(req, 0);
    json_t *body = es_json_body(req, resp, false);
    if (!body)
        return;
    ck_search_error_t err = {0};
    int topic;
    if (!json_is_object(body)) {
        es_error(resp, 400, "mapper_parsing_exception",
                 "failed to parse: the document must be a JSON object");
    } else if (!ck_restidx_exists(a->d.rest, name) && (topic = is_topic(a, name, resp)) != 0) {
        if (topic > 0)
            no_index(resp, name); /* topics get records through Kafka, not _doc */
    } else {
        ck_restidx_write_t w;
        memset(&w, 0, sizeof(w));
        int rc = ck_restidx_index(a->d.rest, name, id, body, true, &w, &err);
        if (rc)
            es_error_from(resp, &err, rc);
        else
            ck_http_resp_json(resp, w.result == CK_RESTIDX_CREATED ? 201 : 200,
                              write_json(name, &w));
    }
    json_decref(body);
}

static void h_doc_put(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    put_doc(ud, req, resp, ck_http_param(req, 1));
}

static void h_doc_post(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    put_doc(ud, req, resp, NULL);
}

static void h_doc_get(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    const char *name = ck_http_param(req, 0), *id = ck_http_param(req, 1);
    json_t *src = NULL;
    uint64_t version = 0, seq = 0;
    int rc = ck_restidx_get(a->d.rest, name, id, &src, &version, &seq);
    if (rc == CK_ENOENT) {
        no_index(resp, name);
    } else if (rc) {
        es_error(resp, 500, "exception", "cannot read [%s/%s]: %s", name, id, ck_strerror(rc));
    } else if (!src) {
        ck_http_resp_json(resp, 404,
                          json_pack("{s:s,s:s,s:b}", "_index", name, "_id", id, "found", 0));
    } else {
        ck_http_resp_json(resp, 200,
                          json_pack("{s:s,s:s,s:I,s:I,s:i,s:b,s:o}", "_index", name, "_id", id,
                                    "_version", (json_int_t)version, "_seq_no", (json_int_t)seq,
                                    "_primary_term", 1, "found", 1, "_source", src));
    }
}

static void h_doc_delete(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    const char *name = ck_http_param(req, 0), *id = ck_http_param(req, 1);
    ck_restidx_write_t w;
    memset(&w, 0, sizeof(w));
    ck_search_error_t err = {0};
    int rc = ck_restidx_delete(a->d.rest, name, id, &w, &err);
    if (rc)
        es_error_from(resp, &err, rc);
    else
        ck_http_resp_json(resp, w.result == CK_RESTIDX_NOT_FOUND ? 404 : 200, write_json(name, &w));
}

static void h_cat_indices(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    (void)req;
    ck_api_t *a = ud;
    ck_restidx_info_t *ri = NULL;
    size_t n = 0;
    if (ck_restidx_list(a->d.rest, &ri, &n)) {
        es_error(resp, 500, "out_of_memory_error", "not enough memory");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char docs[24], del[24], size[32];
        snprintf(docs, sizeof(docs), "%llu", (unsigned long long)ri[i].docs_count);
        snprintf(del, sizeof(del), "%llu", (unsigned long long)ri[i].docs_deleted);
        snprintf(size, sizeof(size), "%llub", (unsigned long long)ri[i].store_bytes);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "health",
                                             "green", "status", "open", "index", ri[i].name, "uuid",
                                             ri[i].uuid, "pri", "1", "rep", "0", "docs.count", docs,
                                             "docs.deleted", del, "store.size", size,
                                             "pri.store.size", size));
    }
    ck_free(ri);
    ck_http_resp_json(resp, 200, arr);
}

/* ---------------------------------------------------------------- routes */

/* ---------------------------------------------------------------- for other routes */

int ck__text_search(ck_api_t *a, const char *topic, const char *query, size_t k,
                    ck__text_hit_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    ck_sidx_snap_t *sn = ck_sidx_acquire(a->d.search, topic);
    if (!sn)
        return CK_ENOENT;
    if (k > CK_SEARCH_MAX_WINDOW)
        k = CK_SEARCH_MAX_WINDOW;
    json_t *body = json_pack("{s:{s:{s:s}},s:I,s:b,s:b}", "query", "match", "_all", query, "size",
                             (json_int_t)k, "_source", 0, "track_total_hits", 0);
    ck_search_req_t *rq = NULL;
    ck_search_error_t e = {0};
    int rc = body ? ck_search_parse(body, &rq, &e) : CK_ENOMEM;
    json_decref(body);
    ck_search_result_t res = {0};
    ck_search_view_t view = {0};
    if (!rc) {
        view.segs = sn->segs;
        view.nsegs = sn->nsegs;
        view.analyzer = sn->analyzer;
        view.live = sn->all_live ? NULL : ck_sidx_live;
        view.live_ctx = sn;
        view.index = topic;
        rc = ck_search_execute(rq, &view, 1, &res, &e);
    }
    if (rc)
        snprintf(err, errlen, "%s", e.reason[0] ? e.reason : ck_strerror(rc));
    ck__text_hit_t *hits = rc ? NULL : ck_calloc(res.nhits ? res.nhits : 1, sizeof(*hits));
    if (!rc && !hits)
        rc = CK_ENOMEM;
    for (size_t i = 0; !rc && i < res.nhits; i++) {
        const ck_search_hit_t *h = &res.hits[i];
        ck_segment_doc(sn->segs[h->seg], h->doc, &hits[i].partition, &hits[i].offset,
                       &hits[i].timestamp);
        hits[i].score = h->score;
    }
    if (!rc) {
        *out = hits;
        *n = res.nhits;
    }
    ck_search_result_free(&res);
    ck_search_req_free(rq);
    ck_sidx_release(sn);
    return rc;
}

int ck__search_routes(ck_api_t *a, ck_http_t *http)
{
    static const struct {
        const char *method, *path;
        ck_http_handler fn;
    } routes[] = {
        {"GET", "/_search", h_search_all},
        {"POST", "/_search", h_search_all},
        {"GET", "/{index}/_search", h_search_index},
        {"POST", "/{index}/_search", h_search_index},
        {"PUT", "/{index}", h_index_create},
        {"DELETE", "/{index}", h_index_drop},
        {"GET", "/{index}/_mapping", h_index_mapping},
        {"PUT", "/{index}/_doc/{id}", h_doc_put},
        {"POST", "/{index}/_doc/{id}", h_doc_put},
        {"POST", "/{index}/_doc", h_doc_post},
        {"GET", "/{index}/_doc/{id}", h_doc_get},
        {"DELETE", "/{index}/_doc/{id}", h_doc_delete},
        {"GET", "/_cat/indices", h_cat_indices},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !rc; i++)
        rc = ck_http_route(http, routes[i].method, routes[i].path, routes[i].fn, a);
    return rc;
}

void ck__search_routes_free(ck_api_t *a)
{
    (void)a;
}
