/* Rendering helpers for one hit: _source filtering and highlighting (query.h).
 *
 * Highlighting re-analyzes the hit's string values with the view's analyzer and marks the
 * words whose terms the query asked for on that field (query_int.h's ck__hlq_t, recorded
 * while parsing): analyzed query text (match, phrase, multi_match, query_string), exact
 * values (term/terms: the whole string or one word), prefixes. Fragments are windows of
 * about fragment_size bytes starting a little before a match, cut at word boundaries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "search/query_int.h"

/* ---- _source filtering ---- */

static bool match_any(char *const *pats, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (ck_search_glob(pats[i], path))
            return true;
    return false;
}

/* Could some pattern match a path below path? */
static bool may_contain(char *const *pats, size_t n, const char *path)
{
    size_t pl = strlen(path);
    for (size_t i = 0; i < n; i++) {
        const char *p = pats[i];
        const char *star = strchr(p, '*');
        size_t pre = star ? (size_t)(star - p) : strlen(p);
        if (!star) {
            if (pre > pl && strncmp(p, path, pl) == 0 && p[pl] == '.')
                return true;
        } else {
            size_t m = pre < pl ? pre : pl;
            if (strncmp(p, path, m) == 0 && (pre > pl ? p[pl] == '.' : true))
                return true;
        }
    }
    return false;
}

static json_t *filter_value(const ck_search_req_t *rq, json_t *v, const char *path, bool inc);

static json_t *filter_object(const ck_search_req_t *rq, json_t *obj, const char *prefix, bool inc)
{
    json_t *out = json_object();
    if (!out)
        return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        size_t n = (prefix ? strlen(prefix) + 1 : 0) + strlen(k) + 1;
        char *path = ck_malloc(n);
        if (!path) {
            json_decref(out);
            return NULL;
        }
        snprintf(path, n, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", k);
        json_t *fv = filter_value(rq, v, path, inc);
        ck_free(path);
        if (fv && json_object_set_new(out, k, fv)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* The filtered value at path, or NULL to drop it. inc: an ancestor was included. */
static json_t *filter_value(const ck_search_req_t *rq, json_t *v, const char *path, bool inc)
{
    if (match_any(rq->r_src_exc, rq->r_nsrc_exc, path))
        return NULL;
    bool here = inc || rq->r_nsrc_inc == 0 || match_any(rq->r_src_inc, rq->r_nsrc_inc, path);
    if (json_is_object(v)) {
        if (!here && !may_contain(rq->r_src_inc, rq->r_nsrc_inc, path))
            return NULL;
        json_t *o = filter_object(rq, v, path, here && rq->r_nsrc_inc > 0 ? true : inc);
        if (o && !here && json_object_size(o) == 0) {
            json_decref(o);
            return NULL;
        }
        return o;
    }
    if (json_is_array(v)) {
        if (!here && !may_contain(rq->r_src_inc, rq->r_nsrc_inc, path))
            return NULL;
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            json_t *fe = json_is_object(e) ? filter_value(rq, e, path, here && rq->r_nsrc_inc)
                         : here            ? json_incref(e)
                                           : NULL;
            if (fe && a)
                json_array_append_new(a, fe);
            else
                json_decref(fe);
        }
        if (a && !here && json_array_size(a) == 0) {
            json_decref(a);
            return NULL;
        }
        return a;
    }
    return here ? json_incref(v) : NULL;
}

json_t *ck_search_source_filter(const ck_search_req_t *rq, json_t *source)
{
    if (!source)
        return NULL;
    if (rq->r_src_mode == 1)
        return NULL;
    if (rq->r_src_mode == 0 || !json_is_object(source) ||
        (rq->r_nsrc_inc == 0 && rq->r_nsrc_exc == 0))
        return json_incref(source);
    return filter_object(rq, source, NULL, false);
}

/* ---- highlighting ---- */

typedef struct hterm {
    char *t;
    size_t n;
    ck__hkind_t k;
} hterm_t;

typedef struct hset {
    hterm_t *v;
    size_t n, cap;
    int err;
} hset_t;

static int hset_add(hset_t *s, const char *t, size_t n, ck__hkind_t k)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        hterm_t *v = ck_realloc(s->v, nc * sizeof(*v));
        if (!v)
            return s->err = CK_ENOMEM;
        s->v = v;
        s->cap = nc;
    }
    char *c = ck_strndup(t, n);
    if (!c)
        return s->err = CK_ENOMEM;
    s->v[s->n++] = (hterm_t){c, n, k};
    return 0;
}

static int hset_cb(void *arg, const ck_token_t *tk)
{
    return hset_add(arg, tk->term, tk->term_len, CK__H_EXACT) ? 1 : 0;
}

static void hset_free(hset_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        ck_free(s->v[i].t);
    ck_free(s->v);
}

/* Does a query on qfield apply to the source path? */
static bool field_applies(const char *qfield, const char *path)
{
    if (strcmp(qfield, "_all") == 0 || strcmp(qfield, "*") == 0 || ck_search_glob(qfield, path))
        return true;
    size_t pl = strlen(path);
    if (strncmp(qfield, path, pl) == 0 && strcmp(qfield + pl, ".keyword") == 0)
        return true;
    if (qfield[0] == '_' && strcmp(qfield + 1, path) == 0)
        return true;
    return path[0] == '_' && strcmp(path + 1, qfield) == 0;
}

typedef struct htok {
    size_t start, end;
    bool hit;
} htok_t;

typedef struct hscan {
    const hset_t *hs_set;
    const char *hs_text;
    size_t hs_len;
    htok_t *hs_v;
    size_t hs_n, hs_cap;
    bool hs_any;
    int hs_err;
} hscan_t;

static int scan_cb(void *arg, const ck_token_t *tk)
{
    hscan_t *s = arg;
    bool hit = false;
    for (size_t i = 0; i < s->hs_set->n && !hit; i++) {
        const hterm_t *h = &s->hs_set->v[i];
        if (h->k == CK__H_PREFIX)
            hit = tk->term_len >= h->n && memcmp(tk->term, h->t, h->n) == 0;
        else
            hit = tk->term_len == h->n && memcmp(tk->term, h->t, h->n) == 0;
    }
    if (s->hs_n == s->hs_cap) {
        size_t nc = s->hs_cap ? 2 * s->hs_cap : 32;
        htok_t *v = ck_realloc(s->hs_v, nc * sizeof(*v));
        if (!v)
            return s->hs_err = 1;
        s->hs_v = v;
        s->hs_cap = nc;
    }
    s->hs_v[s->hs_n++] = (htok_t){tk->start, tk->end, hit};
    s->hs_any |= hit;
    return 0;
}

/* Appends text[a, b) with the hit tokens inside tagged. */
static void emit(ck_wbuf_t *w, const ck_search_req_t *rq, const hscan_t *s, size_t a, size_t b)
{
    size_t at = a;
    for (size_t i = 0; i < s->hs_n; i++) {
        const htok_t *t = &s->hs_v[i];
        if (!t->hit || t->start < a || t->end > b)
            continue;
        ck_wr_bytes(w, s->hs_text + at, t->start - at);
        ck_wr_bytes(w, rq->r_hl_pre, strlen(rq->r_hl_pre));
        ck_wr_bytes(w, s->hs_text + t->start, t->end - t->start);
        ck_wr_bytes(w, rq->r_hl_post, strlen(rq->r_hl_post));
        at = t->end;
    }
    ck_wr_bytes(w, s->hs_text + at, b - at);
}

static int add_frag(json_t *arr, ck_wbuf_t *w)
{
    json_t *f = w->err ? NULL : json_stringn((const char *)w->data, w->len);
    ck_wbuf_reset(w);
    if (!f || json_array_append_new(arr, f))
        return CK_ENOMEM;
    return 0;
}

/* Highlights one string value into arr (fragments). */
static int hl_value(const ck_search_req_t *rq, ck_analyzer_t *an, const hset_t *set,
                    bool exact_whole, const char *text, size_t len, json_t *arr)
{
    hscan_t s = {.hs_set = set, .hs_text = text, .hs_len = len};
    int rc = ck_analyze(an, text, len, scan_cb, &s);
    if (rc || s.hs_err) {
        ck_free(s.hs_v);
        return CK_ENOMEM;
    }
    ck_wbuf_t w = CK_WBUF_INIT;
    if (exact_whole && !s.hs_any) {
        /* a term query on the keyword value: the whole string */
        ck_wr_bytes(&w, rq->r_hl_pre, strlen(rq->r_hl_pre));
        ck_wr_bytes(&w, text, len);
        ck_wr_bytes(&w, rq->r_hl_post, strlen(rq->r_hl_post));
        rc = add_frag(arr, &w);
    } else if (s.hs_any && rq->r_hl_nfrags == 0) {
        emit(&w, rq, &s, 0, len);
        rc = add_frag(arr, &w);
    } else if (s.hs_any) {
        size_t fs = rq->r_hl_frag_size, done = 0;
        for (size_t i = 0; i < s.hs_n && !rc && json_array_size(arr) < rq->r_hl_nfrags; i++) {
            const htok_t *t = &s.hs_v[i];
            if (!t->hit || t->start < done)
                continue;
            /* start up to a third of the fragment before the match, at a word start */
            size_t want = t->start > fs / 3 ? t->start - fs / 3 : 0;
            if (want < done)
                want = done;
            size_t a = t->start;
            for (size_t j = 0; j <= i; j++)
                if (s.hs_v[j].start >= want) {
                    a = s.hs_v[j].start;
                    break;
                }
            size_t b = t->end;
            for (size_t j = i; j < s.hs_n && s.hs_v[j].end <= a + fs; j++)
                b = s.hs_v[j].end;
            if (b - a < fs && b < len) /* trailing non-word text within the budget */
                b = a + fs < len ? b : len;
            emit(&w, rq, &s, a, b);
            rc = add_frag(arr, &w);
            done = b;
        }
    }
    ck_wbuf_free(&w);
    ck_free(s.hs_v);
    return rc;
}

typedef struct hwalk {
    const ck_search_req_t *w_rq;
    const ck_search_view_t *w_view;
    ck_analyzer_t *w_an;
    json_t *w_out;
    int w_err;
} hwalk_t;

/* Highlights the string leaves at path (value v) if a highlight field pattern matches. */
static void hl_leaf(hwalk_t *w, const char *path, const json_t *v)
{
    const ck_search_req_t *rq = w->w_rq;
    bool want = false;
    for (size_t i = 0; i < rq->r_hl_nfields && !want; i++)
        want = ck_search_glob(rq->r_hl_fields[i], path) ||
               (path[0] == '_' && ck_search_glob(rq->r_hl_fields[i], path + 1));
    if (!want)
        return;
    hset_t set = {0};
    bool exact_whole = false;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    for (size_t i = 0; i < rq->r_nhlq; i++) {
        const ck__hlq_t *q = &rq->r_hlq[i];
        if (!field_applies(q->h_field, path))
            continue;
        if (q->h_kind == CK__H_ANALYZED) {
            if (ck_analyze(w->w_an, q->h_text, q->h_len, hset_cb, &set) || set.err)
                set.err = CK_ENOMEM;
        } else {
            hset_add(&set, q->h_text, q->h_len, q->h_kind);
            if (q->h_kind == CK__H_EXACT && q->h_len == len && memcmp(q->h_text, s, len) == 0)
                exact_whole = true;
        }
    }
    if (!set.err && (set.n || exact_whole)) {
        json_t *arr = json_object_get(w->w_out, path);
        if (!arr) {
            arr = json_array();
            if (!arr || json_object_set_new(w->w_out, path, arr))
                set.err = CK_ENOMEM;
        }
        if (!set.err && json_array_size(arr) < (rq->r_hl_nfrags ? rq->r_hl_nfrags : SIZE_MAX))
            set.err = hl_value(rq, w->w_an, &set, exact_whole, s, len, arr);
    }
    if (set.err)
        w->w_err = set.err;
    hset_free(&set);
}

static void hl_walk(hwalk_t *w, const json_t *v, const char *path, int depth)
{
    if (depth > 64 || w->w_err)
        return;
    if (json_is_string(v)) {
        if (path)
            hl_leaf(w, path, v);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) hl_walk(w, e, path, depth + 1);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            size_t n = (path ? strlen(path) + 1 : 0) + strlen(k) + 1;
            char *p = ck_malloc(n);
            if (!p) {
                w->w_err = CK_ENOMEM;
                return;
            }
            snprintf(p, n, "%s%s%s", path ? path : "", path ? "." : "", k);
            hl_walk(w, e, p, depth + 1);
            ck_free(p);
        }
    }
}

json_t *ck_search_highlight(const ck_search_req_t *rq, const ck_search_view_t *view,
                            const json_t *source)
{
    if (!rq->r_hl || !source || rq->r_nhlq == 0)
        return NULL;
    hwalk_t w = {rq, view, NULL, json_object(), 0};
    if (!w.w_out || ck_analyzer_new(&view->analyzer, &w.w_an)) {
        json_decref(w.w_out);
        return NULL;
    }
    hl_walk(&w, source, NULL, 0);
    ck_analyzer_free(w.w_an);
    /* drop fields that got no fragment */
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(w.w_out, tmp, k, v)
    {
        if (json_array_size(v) == 0)
            json_object_del(w.w_out, k);
    }
    if (w.w_err || json_object_size(w.w_out) == 0) {
        json_decref(w.w_out);
        return NULL;
    }
    return w.w_out;
}
