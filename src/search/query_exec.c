/* Executing a parsed request over views (sets of segments).
 *
 * Per segment, the clause tree is compiled into a tree of doc-at-a-time scorers
 * (sc_t): each has a current doc and advance(target) = move to the first match >= target,
 * never backwards; score() is the score of the current doc. Kinds:
 *   TERM    one postings cursor, BM25 with global statistics (below);
 *   BITS    a bitset of the segment's docs with a constant score (range, exists, prefix,
 *           terms, term on numbers or on _partition/_offset/_timestamp);
 *   PHRASE  a conjunction of positional cursors, checked by positions (with slop);
 *   BOOL    required clauses by leapfrog (must scores, filter does not), optional clauses
 *           (should, at least msm of them), exclusions (must_not);
 *   DISMAX  max of the children plus tie_breaker * the others (multi_match best_fields);
 *   CONST   a child's matches with a constant score; ALL, NONE.
 *
 * Field resolution (per view: a field "exists" if any segment of the view has it):
 *   match/match_phrase/multi_match/query_string: TEXT P (analyzed with the view's
 *     analyzer), else the same with/without a leading '_', else exact on KEYWORD P, else
 *     NUMBER P for numeric text; nothing matches otherwise. A match whose text gives no
 *     term (only stop words) matches everything (API.md §5).
 *   term/terms: _partition/_offset/_timestamp from the doc table; then KEYWORD P, KEYWORD
 *     "P.keyword", TEXT P (exact, unanalyzed), NUMBER P (numbers, numeric or date strings);
 *     then the same with/without a leading '_'. term on TEXT/KEYWORD scores BM25, on
 *     numbers a constant; terms is constant score.
 *   range: the doc table fields, else NUMBER P (dates were turned into epoch ms).
 *   exists: doc table fields (all docs), else any of TEXT P, KEYWORD P, "P.keyword",
 *     NUMBER P.
 *   prefix: TEXT P, else KEYWORD P, else KEYWORD "P.keyword" (terms from the termdict
 *     prefix iterator, constant score).
 *
 * Scoring: BM25 with statistics global to the view: for TEXT, idf(docCount, df) with
 * docCount the sum of the field's doc counts over segments and df the term's summed
 * doc frequency; avgdl = summed lengths / docCount; dl from ck_segment_len(). KEYWORD
 * terms have no norms: dl = avgdl = 1 (as the stored bounds). Phrase: weight = boost * sum
 * of the terms' idf, tf = the phrase frequency (sloppy matches count 1 / (1 + distance)).
 * Boosts multiply. bool score = boost * (sum of must and matching should scores).
 *
 * Top k: pure disjunctions of scored terms (match, should-only bool of terms with
 * minimum_should_match <= 1, multi_match most_fields) sorted by score go through
 * ck_bm25_topk_wand_ex() with the live/filter/must_not test as accept and the k-th score
 * so far as min_score; everything else is scored doc by doc. One global heap keeps the
 * best from + size hits over all views and segments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "search/bm25.h"
#include "search/query_int.h"

#define END CK_POSTINGS_END

typedef enum { S_NONE, S_ALL, S_TERM, S_BITS, S_PHRASE, S_BOOL, S_DISMAX, S_CONST } skind_t;

typedef struct sc sc_t;
struct sc {
    skind_t k;
    uint32_t doc;
    bool positioned;
    double boost; /* BOOL/DISMAX/CONST/BITS/ALL: score multiplier or constant */
    uint32_t nd;  /* docs in the segment */
    /* TERM */
    ck_postings_t *cur;
    const ck_segment_t *seg;
    uint32_t fidx;
    bool text;
    double weight, avgdl, seg_avgdl;
    /* BITS */
    uint64_t *bits;
    /* PHRASE */
    ck_postings_t **pcur;
    uint32_t *qpos;
    size_t np;
    uint32_t slop;
    uint32_t **pbuf;
    uint32_t *pcap;
    double pfreq;
    /* BOOL / DISMAX / CONST */
    sc_t **kids;
    int *occ;
    size_t nkids;
    size_t msm;
    bool has_req;
    double tie;
};

/* ---- execution context ---- */

/* A term's statistics over a view, computed once per query and view: every segment's
 * scorer for the term needs them, and each costs a dictionary lookup in every segment. */
typedef struct tstat {
    char *field, *term; /* owned copies; term holds n bytes */
    size_t n;
    ck_seg_kind_t kind;
    uint64_t doc_count, sum_len, df;
    uint64_t *vals; /* per segment of the view: the term's postings locator, or TS_NONE */
} tstat_t;

#define TS_NONE UINT64_MAX

typedef struct ex {
    const ck_search_req_t *x_rq;
    const ck_search_view_t *x_view;
    size_t x_vi, x_si;
    ck_analyzer_t *x_an;
    ck_search_error_t *x_err;
    int x_rc;
    tstat_t *x_ts; /* the current view's term statistics */
    size_t x_nts, x_tscap;
} ex_t;

static void ex_stats_clear(ex_t *x)
{
    for (size_t i = 0; i < x->x_nts; i++) {
        ck_free(x->x_ts[i].field);
        ck_free(x->x_ts[i].term);
        ck_free(x->x_ts[i].vals);
    }
    x->x_nts = 0;
}

static int ex_oom(ex_t *x)
{
    if (!x->x_rc)
        x->x_rc = ck__qerr_rc(x->x_err, CK_ENOMEM);
    return x->x_rc;
}

static const ck_segment_t *ex_seg(const ex_t *x)
{
    return x->x_view->segs[x->x_si];
}

static void sc_free(sc_t *s)
{
    if (!s)
        return;
    ck_free(s->cur);
    ck_free(s->bits);
    for (size_t i = 0; i < s->np; i++) {
        ck_free(s->pcur ? s->pcur[i] : NULL);
        ck_free(s->pbuf ? s->pbuf[i] : NULL);
    }
    ck_free(s->pcur);
    ck_free(s->pbuf);
    ck_free(s->pcap);
    ck_free(s->qpos);
    for (size_t i = 0; i < s->nkids; i++)
        sc_free(s->kids[i]);
    ck_free(s->kids);
    ck_free(s->occ);
    ck_free(s);
}

static int sc_err(const sc_t *s)
{
    if (!s)
        return 0;
    if (s->cur && ck_postings_err(s->cur))
        return ck_postings_err(s->cur);
    for (size_t i = 0; i < s->np; i++)
        if (s->pcur[i] && ck_postings_err(s->pcur[i]))
            return ck_postings_err(s->pcur[i]);
    for (size_t i = 0; i < s->nkids; i++) {
        int rc = sc_err(s->kids[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static sc_t *sc_new(ex_t *x, skind_t k)
{
    sc_t *s = ck_calloc(1, sizeof(*s));
    if (!s) {
        ex_oom(x);
        return NULL;
    }
    s->k = k;
    s->boost = 1.0;
    s->nd = ck_segment_ndocs(ex_seg(x));
    return s;
}

static int sc_add(ex_t *x, sc_t *p, sc_t *kid, int occ)
{
    if (!kid)
        return x->x_rc ? x->x_rc : ex_oom(x);
    sc_t **v = ck_realloc(p->kids, (p->nkids + 1) * sizeof(*v));
    if (v)
        p->kids = v;
    int *o = v ? ck_realloc(p->occ, (p->nkids + 1) * sizeof(*o)) : NULL;
    if (!o) {
        sc_free(kid);
        return ex_oom(x);
    }
    p->occ = o;
    p->kids[p->nkids] = kid;
    p->occ[p->nkids++] = occ;
    return 0;
}

/* ---- field resolution ---- */

static int find_field(const ck_segment_t *s, const char *name, ck_seg_kind_t k)
{
    return ck_segment_find_field(s, name, strlen(name), k);
}

static bool view_has(const ck_search_view_t *v, const char *name, ck_seg_kind_t k)
{
    for (size_t i = 0; i < v->nsegs; i++)
        if (find_field(v->segs[i], name, k) >= 0)
            return true;
    return false;
}

/* The other spelling of a field name: without the leading '_', or with one. */
static bool alt_name(const char *name, char *buf, size_t cap)
{
    if (name[0] == '_')
        return snprintf(buf, cap, "%s", name + 1) < (int)cap && buf[0];
    return snprintf(buf, cap, "_%s", name) < (int)cap;
}

enum { DF_NONE = -1, DF_PARTITION, DF_OFFSET, DF_TIMESTAMP };

static int doc_field(const char *name)
{
    if (strcmp(name, "_partition") == 0)
        return DF_PARTITION;
    if (strcmp(name, "_offset") == 0)
        return DF_OFFSET;
    if (strcmp(name, "_timestamp") == 0)
        return DF_TIMESTAMP;
    return DF_NONE;
}

static double doc_value(const ck_segment_t *s, int df, uint32_t doc)
{
    int32_t p;
    int64_t o, t;
    ck_segment_doc(s, doc, &p, &o, &t);
    return df == DF_PARTITION ? (double)p : df == DF_OFFSET ? (double)o : (double)t;
}

/* The NUMBER field name to use for name (exact or alternate spelling), or NULL. */
static const char *number_field(const ck_search_view_t *v, const char *name, char *buf, size_t cap)
{
    if (view_has(v, name, CK_SEG_NUMBER))
        return name;
    if (alt_name(name, buf, cap) && view_has(v, buf, CK_SEG_NUMBER))
        return buf;
    return NULL;
}

/* ---- scorers: constructors ---- */

static sc_t *mk_none(ex_t *x)
{
    return sc_new(x, S_NONE);
}

static sc_t *mk_all(ex_t *x, double boost)
{
    sc_t *s = sc_new(x, S_ALL);
    if (s)
        s->boost = boost;
    return s;
}

static sc_t *mk_bits(ex_t *x, double boost)
{
    sc_t *s = sc_new(x, S_BITS);
    if (!s)
        return NULL;
    s->boost = boost;
    s->bits = ck_calloc((s->nd + 63) / 64 + 1, sizeof(uint64_t));
    if (!s->bits) {
        sc_free(s);
        ex_oom(x);
        return NULL;
    }
    return s;
}

static inline void bit_set(sc_t *s, uint32_t d)
{
    if (d < s->nd)
        s->bits[d >> 6] |= 1ull << (d & 63);
}

/* ORs every doc of a postings list into s's bits. */
static int bits_or_postings(ex_t *x, sc_t *s, ck_postings_t *c)
{
    for (uint32_t d = ck_postings_doc(c); d != END; d = ck_postings_next(c))
        bit_set(s, d);
    int rc = ck_postings_err(c);
    if (rc && !x->x_rc)
        x->x_rc = ck__qerr_rc(x->x_err, rc);
    return rc;
}

static int bits_or_term(ex_t *x, sc_t *s, const char *field, ck_seg_kind_t k, const char *t,
                        size_t n)
{
    const ck_segment_t *seg = ex_seg(x);
    int fi = find_field(seg, field, k);
    if (fi < 0)
        return 0;
    ck_postings_t *c = ck_malloc(sizeof(*c));
    if (!c)
        return ex_oom(x);
    int rc = ck_segment_postings(seg, (uint32_t)fi, t, n, c, NULL);
    if (rc == 0)
        rc = bits_or_postings(x, s, c);
    else if (rc == CK_ENOENT)
        rc = 0;
    else if (!x->x_rc)
        x->x_rc = ck__qerr_rc(x->x_err, rc);
    ck_free(c);
    return rc;
}

static void bits_or_range(sc_t *s, const ck_segment_t *seg, const char *field, int df, bool has_lo,
                          double lo, bool lo_incl, bool has_hi, double hi, bool hi_incl)
{
#define IN_RANGE(v)                                                                                \
    ((!has_lo || (lo_incl ? (v) >= lo : (v) > lo)) && (!has_hi || (hi_incl ? (v) <= hi : (v) < hi)))
    if (df != DF_NONE) {
        for (uint32_t d = 0; d < s->nd; d++) {
            double v = doc_value(seg, df, d);
            if (IN_RANGE(v))
                bit_set(s, d);
        }
        return;
    }
    int fi = find_field(seg, field, CK_SEG_NUMBER);
    if (fi < 0)
        return;
    const uint32_t *docs;
    const double *vals;
    size_t n = ck_segment_numbers(seg, (uint32_t)fi, &docs, &vals);
    for (size_t i = 0; i < n; i++)
        if (IN_RANGE(vals[i]))
            bit_set(s, docs[i]);
#undef IN_RANGE
}

/* Global statistics of (field, kind, term) over the view: summed over its segments. With
 * vals, also the term's postings locator in each segment (TS_NONE where it is absent). */
static void view_term_stats(const ck_search_view_t *v, const char *field, ck_seg_kind_t k,
                            const char *t, size_t n, uint64_t *doc_count, uint64_t *sum_len,
                            uint64_t *df, uint64_t *vals)
{
    *doc_count = *sum_len = *df = 0;
    for (size_t i = 0; i < v->nsegs; i++) {
        if (vals)
            vals[i] = TS_NONE;
        int fi = find_field(v->segs[i], field, k);
        if (fi < 0)
            continue;
        const ck_seg_field_t *f = ck_segment_field(v->segs[i], (uint32_t)fi);
        *doc_count += f->doc_count;
        *sum_len += f->sum_len;
        uint32_t d;
        uint64_t val;
        if (t && ck_termdict_lookup(ck_segment_terms(v->segs[i], (uint32_t)fi), t, n, &val, &d) ==
                     0) {
            *df += d;
            if (vals)
                vals[i] = val;
        }
    }
}

static int grow_stats(ex_t *x)
{
    size_t cap = x->x_tscap ? 2 * x->x_tscap : 8;
    tstat_t *nv = ck_realloc(x->x_ts, cap * sizeof(*nv));
    if (!nv)
        return CK_ENOMEM;
    x->x_ts = nv;
    x->x_tscap = cap;
    return 0;
}

/* view_term_stats, remembered for the rest of the view (t may be NULL: field totals).
 * Returns the remembered entry (its vals set when t is), or NULL when it is not kept. */
static const tstat_t *term_stats(ex_t *x, const char *field, ck_seg_kind_t k, const char *t,
                                 size_t n, uint64_t *doc_count, uint64_t *sum_len, uint64_t *df)
{
    size_t tn = t ? n : SIZE_MAX;
    for (size_t i = 0; i < x->x_nts; i++) {
        const tstat_t *e = &x->x_ts[i];
        if (e->kind == k && e->n == tn && !strcmp(e->field, field) &&
            (!t || !memcmp(e->term, t, n))) {
            *doc_count = e->doc_count;
            *sum_len = e->sum_len;
            *df = e->df;
            return e;
        }
    }
    size_t ns = x->x_view->nsegs;
    if (ns < 2 || (x->x_nts == x->x_tscap && grow_stats(x))) {
        /* one segment: one lookup anyway; or no memory to remember it */
        view_term_stats(x->x_view, field, k, t, n, doc_count, sum_len, df, NULL);
        return NULL;
    }
    tstat_t *e = &x->x_ts[x->x_nts];
    e->field = ck_strdup(field);
    e->term = t ? ck_malloc(n ? n : 1) : NULL;
    e->vals = t ? ck_malloc(ns * sizeof(*e->vals)) : NULL;
    view_term_stats(x->x_view, field, k, t, n, doc_count, sum_len, df, e->vals);
    if (!e->field || (t && (!e->term || !e->vals))) {
        ck_free(e->field);
        ck_free(e->term);
        ck_free(e->vals);
        return NULL;
    }
    if (t && n)
        memcpy(e->term, t, n);
    e->n = tn;
    e->kind = k;
    e->doc_count = *doc_count;
    e->sum_len = *sum_len;
    e->df = *df;
    x->x_nts++;
    return e;
}

/* The postings of (field index fi, term) in the current segment, through the locator
 * remembered in e when there is one. */
static int term_postings(ex_t *x, const tstat_t *e, int fi, const char *t, size_t n,
                         ck_postings_t *cur)
{
    const ck_segment_t *seg = ex_seg(x);
    if (!e || !e->vals)
        return ck_segment_postings(seg, (uint32_t)fi, t, n, cur, NULL);
    uint64_t v = e->vals[x->x_si];
    return v == TS_NONE ? CK_ENOENT : ck_segment_postings_at(seg, (uint32_t)fi, v, cur);
}

/* A BM25 term scorer (TEXT or KEYWORD), or NONE when the segment lacks the term. */
static sc_t *mk_term(ex_t *x, const char *field, ck_seg_kind_t k, const char *t, size_t n,
                     double boost)
{
    const ck_segment_t *seg = ex_seg(x);
    int fi = find_field(seg, field, k);
    if (fi < 0)
        return mk_none(x);
    sc_t *s = sc_new(x, S_TERM);
    if (!s)
        return NULL;
    s->cur = ck_malloc(sizeof(*s->cur));
    if (!s->cur) {
        sc_free(s);
        ex_oom(x);
        return NULL;
    }
    uint64_t dc, sl, df;
    const tstat_t *e = term_stats(x, field, k, t, n, &dc, &sl, &df);
    int rc = term_postings(x, e, fi, t, n, s->cur);
    if (rc) {
        sc_free(s);
        if (rc == CK_ENOENT)
            return mk_none(x);
        if (!x->x_rc)
            x->x_rc = ck__qerr_rc(x->x_err, rc);
        return NULL;
    }
    s->seg = seg;
    s->fidx = (uint32_t)fi;
    s->text = k == CK_SEG_TEXT;
    s->weight = boost * ck_bm25_idf(dc, df);
    s->avgdl = s->text && dc ? (double)sl / (double)dc : 1.0;
    s->seg_avgdl = s->text ? ck_segment_field(seg, (uint32_t)fi)->avgdl : 1.0;
    s->doc = ck_postings_doc(s->cur);
    s->positioned = true;
    return s;
}

/* ---- scorers: iteration ---- */

static uint32_t sc_advance(sc_t *s, uint32_t target);

static uint32_t bits_next(const sc_t *s, uint32_t t)
{
    if (t >= s->nd)
        return END;
    size_t w = t >> 6;
    uint64_t m = s->bits[w] & (~0ull << (t & 63));
    size_t nw = (s->nd + 63) / 64;
    while (!m) {
        if (++w >= nw)
            return END;
        m = s->bits[w];
    }
    uint32_t d = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(m));
    return d < s->nd ? d : END;
}

/* Phrase frequency of the current doc (all cursors on it): sweep the terms' positions,
 * normalized by their query offsets, keeping the window of one position per term; a
 * window of width w <= slop counts 1 / (1 + w). Exact phrases: w == 0 only. */
static double phrase_freq(sc_t *s)
{
    size_t np = s->np;
    for (size_t i = 0; i < np; i++) {
        uint32_t f = ck_postings_freq(s->pcur[i]);
        if (f > s->pcap[i]) {
            uint32_t *b = ck_realloc(s->pbuf[i], (size_t)f * sizeof(uint32_t));
            if (!b)
                return 0; /* treated as no match; rare */
            s->pbuf[i] = b;
            s->pcap[i] = f;
        }
        if (ck_postings_positions(s->pcur[i], s->pbuf[i], s->pcap[i]) != (int)f)
            return 0;
    }
    size_t idx[64] = {0};
    double freq = 0;
    for (;;) {
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        size_t mi = 0;
        for (size_t i = 0; i < np; i++) {
            int64_t p = (int64_t)s->pbuf[i][idx[i]] - (int64_t)s->qpos[i];
            if (p < mn) {
                mn = p;
                mi = i;
            }
            if (p > mx)
                mx = p;
        }
        if (mx - mn <= (int64_t)s->slop)
            freq += 1.0 / (1.0 + (double)(mx - mn));
        if (++idx[mi] >= ck_postings_freq(s->pcur[mi]))
            break;
    }
    return freq;
}

static uint32_t phrase_advance(sc_t *s, uint32_t target)
{
    uint32_t d = target;
    for (;;) {
        bool again = false;
        for (size_t i = 0; i < s->np; i++) {
            uint32_t x = ck_postings_advance(s->pcur[i], d);
            if (x == END)
                return END;
            if (x > d) {
                d = x;
                again = true;
            }
        }
        if (again)
            continue;
        s->pfreq = phrase_freq(s);
        if (s->pfreq > 0)
            return d;
        if (d >= CK_POSTINGS_MAX_DOC)
            return END;
        d++;
    }
}

static uint32_t bool_advance(sc_t *s, uint32_t target)
{
    for (;;) {
        uint32_t d = target;
        if (s->has_req) {
            for (;;) {
                bool again = false;
                for (size_t i = 0; i < s->nkids; i++) {
                    if (s->occ[i] != CK__B_MUST && s->occ[i] != CK__B_FILTER)
                        continue;
                    uint32_t x = sc_advance(s->kids[i], d);
                    if (x == END)
                        return END;
                    if (x > d) {
                        d = x;
                        again = true;
                    }
                }
                if (!again)
                    break;
            }
        } else {
            /* optional clauses only: the smallest doc that msm of them share */
            uint32_t mn = END;
            for (size_t i = 0; i < s->nkids; i++)
                if (s->occ[i] == CK__B_SHOULD) {
                    uint32_t x = sc_advance(s->kids[i], d);
                    if (x < mn)
                        mn = x;
                }
            if (mn == END)
                return END;
            d = mn;
        }
        bool ok = true;
        size_t nopt = 0;
        for (size_t i = 0; i < s->nkids && ok; i++) {
            if (s->occ[i] == CK__B_MUST_NOT)
                ok = sc_advance(s->kids[i], d) != d;
            else if (s->occ[i] == CK__B_SHOULD && s->msm > 0)
                nopt += sc_advance(s->kids[i], d) == d;
        }
        if (ok && nopt >= s->msm)
            return d;
        if (d >= CK_POSTINGS_MAX_DOC)
            return END;
        target = d + 1;
    }
}

static uint32_t sc_advance(sc_t *s, uint32_t target)
{
    if (s->positioned && (s->doc >= target || s->doc == END))
        return s->doc;
    uint32_t d;
    switch (s->k) {
    case S_NONE:
        d = END;
        break;
    case S_ALL:
        d = target < s->nd ? target : END;
        break;
    case S_TERM:
        d = ck_postings_advance(s->cur, target);
        break;
    case S_BITS:
        d = bits_next(s, target);
        break;
    case S_PHRASE:
        d = phrase_advance(s, target);
        break;
    case S_BOOL:
        d = bool_advance(s, target);
        break;
    case S_DISMAX: {
        d = END;
        for (size_t i = 0; i < s->nkids; i++) {
            uint32_t x = sc_advance(s->kids[i], target);
            if (x < d)
                d = x;
        }
        break;
    }
    case S_CONST:
        d = sc_advance(s->kids[0], target);
        break;
    default:
        d = END;
    }
    s->doc = d;
    s->positioned = true;
    return d;
}

static double tfn_real(double f, uint32_t dl, double avgdl)
{
    double rel = avgdl > 0 ? (double)dl / avgdl : 1.0;
    return f * (CK_BM25_K1 + 1.0) / (f + CK_BM25_K1 * (1.0 - CK_BM25_B + CK_BM25_B * rel));
}

/* Score of s's current doc (s->doc, a match). */
static double sc_score(sc_t *s)
{
    switch (s->k) {
    case S_ALL:
    case S_BITS:
    case S_CONST:
        return s->boost;
    case S_TERM: {
        uint32_t dl = s->text ? ck_segment_len(s->seg, s->fidx, s->doc) : 1;
        return s->weight * ck_bm25_tfn(ck_postings_freq(s->cur), dl, s->avgdl);
    }
    case S_PHRASE: {
        uint32_t dl = ck_segment_len(s->seg, s->fidx, s->doc);
        return s->weight * tfn_real(s->pfreq, dl, s->avgdl);
    }
    case S_BOOL: {
        double sum = 0;
        for (size_t i = 0; i < s->nkids; i++) {
            if (s->occ[i] == CK__B_MUST)
                sum += sc_score(s->kids[i]);
            else if (s->occ[i] == CK__B_SHOULD && sc_advance(s->kids[i], s->doc) == s->doc)
                sum += sc_score(s->kids[i]);
        }
        return s->boost * sum;
    }
    case S_DISMAX: {
        double mx = 0, sum = 0;
        for (size_t i = 0; i < s->nkids; i++)
            if (s->kids[i]->doc == s->doc) {
                double v = sc_score(s->kids[i]);
                sum += v;
                if (v > mx)
                    mx = v;
            }
        return s->boost * (mx + s->tie * (sum - mx));
    }
    default:
        return 0;
    }
}

/* ---- compiling clauses ---- */

typedef struct tok {
    char *t;
    size_t n;
    uint32_t pos;
} tok_t;

typedef struct toks {
    tok_t *v;
    size_t n, cap;
    int err;
} toks_t;

static int tok_cb(void *arg, const ck_token_t *tk)
{
    toks_t *ts = arg;
    if (ts->n >= CK__Q_MAX_CLAUSES)
        return 0; /* longer query texts are cut */
    if (ts->n == ts->cap) {
        size_t nc = ts->cap ? ts->cap * 2 : 8;
        tok_t *v = ck_realloc(ts->v, nc * sizeof(*v));
        if (!v)
            return ts->err = 1;
        ts->v = v;
        ts->cap = nc;
    }
    char *c = ck_strndup(tk->term, tk->term_len);
    if (!c)
        return ts->err = 1;
    ts->v[ts->n++] = (tok_t){c, tk->term_len, tk->position};
    return 0;
}

static void toks_free(toks_t *ts)
{
    for (size_t i = 0; i < ts->n; i++)
        ck_free(ts->v[i].t);
    ck_free(ts->v);
}

static int analyze(ex_t *x, const char *text, size_t len, toks_t *ts)
{
    memset(ts, 0, sizeof(*ts));
    int rc = ck_analyze(x->x_an, text, len, tok_cb, ts);
    if (rc || ts->err) {
        toks_free(ts);
        memset(ts, 0, sizeof(*ts));
        return ex_oom(x);
    }
    return 0;
}

static size_t msm_eval(const ck__msm_t *m, size_t n, size_t dflt)
{
    long r;
    if (m->m_kind == 0)
        return dflt;
    if (m->m_kind == 1)
        r = m->m_val < 0 ? (long)n + m->m_val : m->m_val;
    else
        r = m->m_val < 0 ? (long)n - (long)((double)n * -m->m_val / 100.0)
                         : (long)((double)n * m->m_val / 100.0);
    return r < 0 ? 0 : (size_t)r;
}

/* The TEXT field for a match-family query, or NULL (then *kw tells if KEYWORD P exists). */
static const char *text_field(ex_t *x, const char *f, char *buf, size_t cap)
{
    if (strcmp(f, "_all") == 0 || strcmp(f, "*") == 0)
        return "_all";
    if (view_has(x->x_view, f, CK_SEG_TEXT))
        return f;
    if (alt_name(f, buf, cap) && view_has(x->x_view, buf, CK_SEG_TEXT))
        return buf;
    return NULL;
}

static sc_t *compile(ex_t *x, const ck__qnode_t *q);

/* match on one field: a bool of the analyzed terms. */
static sc_t *mk_match(ex_t *x, const char *field, const char *text, size_t len, bool op_and,
                      const ck__msm_t *msm, double boost)
{
    char buf[CK_SEG_FIELD_MAX + 2], nb[CK_SEG_FIELD_MAX + 2];
    const char *tf = text_field(x, field, buf, sizeof(buf));
    if (!tf) {
        /* no text field: exact on a keyword field (REST mapping), or a number */
        const char *kf = NULL;
        if (view_has(x->x_view, field, CK_SEG_KEYWORD))
            kf = field;
        else if (alt_name(field, buf, sizeof(buf)) && view_has(x->x_view, buf, CK_SEG_KEYWORD))
            kf = buf;
        if (kf)
            return mk_term(x, kf, CK_SEG_KEYWORD, text, len, boost);
        const char *nf = number_field(x->x_view, field, nb, sizeof(nb));
        char *end;
        double v = strtod(text, &end);
        if (nf && len && !*end) {
            sc_t *s = mk_bits(x, boost);
            if (s)
                bits_or_range(s, ex_seg(x), nf, DF_NONE, true, v, true, true, v, true);
            return s;
        }
        return mk_none(x);
    }
    toks_t ts;
    if (analyze(x, text, len, &ts))
        return NULL;
    if (ts.n == 0)
        return mk_all(x, boost);
    sc_t *s;
    if (ts.n == 1) {
        s = mk_term(x, tf, CK_SEG_TEXT, ts.v[0].t, ts.v[0].n, boost);
        toks_free(&ts);
        return s;
    }
    s = sc_new(x, S_BOOL);
    if (!s) {
        toks_free(&ts);
        return NULL;
    }
    s->boost = boost;
    s->has_req = op_and;
    for (size_t i = 0; i < ts.n; i++)
        if (sc_add(x, s, mk_term(x, tf, CK_SEG_TEXT, ts.v[i].t, ts.v[i].n, 1.0),
                   op_and ? CK__B_MUST : CK__B_SHOULD)) {
            sc_free(s);
            toks_free(&ts);
            return NULL;
        }
    if (!op_and) {
        s->msm = msm_eval(msm, ts.n, 1);
        if (s->msm == 0)
            s->msm = 1;
        if (s->msm > ts.n) {
            sc_free(s);
            s = mk_none(x);
        }
    }
    toks_free(&ts);
    return s;
}

static sc_t *mk_phrase(ex_t *x, const ck__qnode_t *q)
{
    char buf[CK_SEG_FIELD_MAX + 2];
    const char *tf = text_field(x, q->q_field, buf, sizeof(buf));
    if (!tf)
        return mk_match(x, q->q_field, q->q_text, q->q_text_len, true, &q->q_msm, q->q_boost);
    toks_t ts;
    if (analyze(x, q->q_text, q->q_text_len, &ts))
        return NULL;
    if (ts.n <= 1 || ts.n > 64) {
        sc_t *s = ts.n == 0 ? mk_none(x)
                  : ts.n == 1
                      ? mk_term(x, tf, CK_SEG_TEXT, ts.v[0].t, ts.v[0].n, q->q_boost)
                      : mk_match(x, tf, q->q_text, q->q_text_len, true, &q->q_msm, q->q_boost);
        toks_free(&ts);
        return s;
    }
    const ck_segment_t *seg = ex_seg(x);
    int fi = find_field(seg, tf, CK_SEG_TEXT);
    sc_t *s = fi < 0 ? NULL : sc_new(x, S_PHRASE);
    if (!s) {
        toks_free(&ts);
        return fi < 0 ? mk_none(x) : NULL;
    }
    s->seg = seg;
    s->fidx = (uint32_t)fi;
    s->slop = q->q_slop;
    s->pcur = ck_calloc(ts.n, sizeof(*s->pcur));
    s->pbuf = ck_calloc(ts.n, sizeof(*s->pbuf));
    s->pcap = ck_calloc(ts.n, sizeof(*s->pcap));
    s->qpos = ck_calloc(ts.n, sizeof(*s->qpos));
    if (!s->pcur || !s->pbuf || !s->pcap || !s->qpos) {
        toks_free(&ts);
        sc_free(s);
        ex_oom(x);
        return NULL;
    }
    s->np = ts.n;
    double idf = 0;
    uint64_t dc = 0, sl = 0, df;
    bool missing = false;
    for (size_t i = 0; i < ts.n && !missing; i++) {
        s->qpos[i] = ts.v[i].pos - ts.v[0].pos;
        const tstat_t *e = term_stats(x, tf, CK_SEG_TEXT, ts.v[i].t, ts.v[i].n, &dc, &sl, &df);
        idf += ck_bm25_idf(dc, df);
        s->pcur[i] = ck_malloc(sizeof(ck_postings_t));
        if (!s->pcur[i]) {
            toks_free(&ts);
            sc_free(s);
            ex_oom(x);
            return NULL;
        }
        int rc = term_postings(x, e, fi, ts.v[i].t, ts.v[i].n, s->pcur[i]);
        if (rc == CK_ENOENT || (!rc && !ck_postings_has_positions(s->pcur[i])))
            missing = true;
        else if (rc) {
            if (!x->x_rc)
                x->x_rc = ck__qerr_rc(x->x_err, rc);
            toks_free(&ts);
            sc_free(s);
            return NULL;
        }
    }
    toks_free(&ts);
    if (missing) {
        sc_free(s);
        return mk_none(x);
    }
    s->weight = q->q_boost * idf;
    s->avgdl = dc ? (double)sl / (double)dc : 1.0;
    return s;
}

/* Resolves the field a term/terms value is looked up in (see the top): 1 with the name in
 * buf and its kind in *kind, 0 if the view has no such field. */
static int term_target(ex_t *x, const char *name, const ck__qval_t *v, char *buf, size_t cap,
                       ck_seg_kind_t *kind)
{
    const ck_search_view_t *vw = x->x_view;
    char alt[CK_SEG_FIELD_MAX + 2];
    const char *names[2] = {name, alt_name(name, alt, sizeof(alt)) ? alt : NULL};
    for (int i = 0; i < 2 && names[i]; i++) {
        const char *n = names[i];
        if (v->v_kind == CK__V_NUM) {
            if (view_has(vw, n, CK_SEG_NUMBER)) {
                snprintf(buf, cap, "%s", n);
                *kind = CK_SEG_NUMBER;
                return 1;
            }
        }
        if (view_has(vw, n, CK_SEG_KEYWORD)) {
            snprintf(buf, cap, "%s", n);
            *kind = CK_SEG_KEYWORD;
            return 1;
        }
        if (v->v_kind == CK__V_STR && snprintf(buf, cap, "%s.keyword", n) < (int)cap &&
            view_has(vw, buf, CK_SEG_KEYWORD)) {
            *kind = CK_SEG_KEYWORD;
            return 1;
        }
        if (v->v_kind != CK__V_BOOL && view_has(vw, n, CK_SEG_TEXT)) {
            snprintf(buf, cap, "%s", n);
            *kind = CK_SEG_TEXT;
            return 1;
        }
        if (v->v_is_num && view_has(vw, n, CK_SEG_NUMBER)) {
            snprintf(buf, cap, "%s", n);
            *kind = CK_SEG_NUMBER;
            return 1;
        }
    }
    return 0;
}

static sc_t *mk_termq(ex_t *x, const char *field, const ck__qval_t *vals, size_t nvals,
                      double boost, bool scored)
{
    int df = doc_field(field);
    if (scored && nvals == 1 && df == DF_NONE) {
        char buf[CK_SEG_FIELD_MAX + 16];
        ck_seg_kind_t k;
        if (!term_target(x, field, &vals[0], buf, sizeof(buf), &k))
            return mk_none(x);
        if (k != CK_SEG_NUMBER)
            return mk_term(x, buf, k, vals[0].v_str, vals[0].v_len, boost);
    }
    sc_t *s = mk_bits(x, boost);
    if (!s)
        return NULL;
    for (size_t i = 0; i < nvals; i++) {
        const ck__qval_t *v = &vals[i];
        if (df != DF_NONE) {
            if (v->v_is_num)
                bits_or_range(s, ex_seg(x), NULL, df, true, v->v_num, true, true, v->v_num, true);
            continue;
        }
        char buf[CK_SEG_FIELD_MAX + 16];
        ck_seg_kind_t k;
        if (!term_target(x, field, v, buf, sizeof(buf), &k))
            continue;
        if (k == CK_SEG_NUMBER)
            bits_or_range(s, ex_seg(x), buf, DF_NONE, true, v->v_num, true, true, v->v_num, true);
        else if (bits_or_term(x, s, buf, k, v->v_str, v->v_len)) {
            sc_free(s);
            return NULL;
        }
    }
    return s;
}

static sc_t *mk_range(ex_t *x, const ck__qnode_t *q)
{
    int df = doc_field(q->q_field);
    char buf[CK_SEG_FIELD_MAX + 2];
    const char *nf = df == DF_NONE ? number_field(x->x_view, q->q_field, buf, sizeof(buf)) : NULL;
    if (df == DF_NONE && !nf)
        return mk_none(x);
    sc_t *s = mk_bits(x, q->q_boost);
    if (s)
        bits_or_range(s, ex_seg(x), nf, df, q->q_has_lo, q->q_lo, q->q_lo_incl, q->q_has_hi,
                      q->q_hi, q->q_hi_incl);
    return s;
}

/* Sets the bits of every doc holding a term of field fi that starts with prefix (all
 * terms for an empty prefix). 0 or the error, also recorded in x. */
static int bits_or_terms(ex_t *x, sc_t *s, const ck_segment_t *seg, uint32_t fi, const char *prefix,
                         size_t plen)
{
    ck_termdict_iter_t it;
    ck_termdict_iter_prefix(ck_segment_terms(seg, fi), &it, prefix, plen);
    ck_postings_t *c = ck_malloc(sizeof(*c));
    if (!c)
        return ex_oom(x);
    int rc;
    while ((rc = ck_termdict_iter_next(&it)) == 1) {
        rc = ck_segment_postings_at(seg, fi, ck_termdict_iter_value(&it), c);
        if (!rc)
            rc = bits_or_postings(x, s, c);
        if (rc)
            break;
    }
    ck_free(c);
    if (rc < 0) {
        if (!x->x_rc)
            x->x_rc = ck__qerr_rc(x->x_err, rc);
        return rc;
    }
    return 0;
}

static int bits_or_field_all(ex_t *x, sc_t *s, const char *name)
{
    const ck_segment_t *seg = ex_seg(x);
    int fi = find_field(seg, name, CK_SEG_TEXT);
    if (fi >= 0)
        for (uint32_t d = 0; d < s->nd; d++)
            if (ck_segment_len(seg, (uint32_t)fi, d) > 0)
                bit_set(s, d);
    fi = find_field(seg, name, CK_SEG_NUMBER);
    if (fi >= 0) {
        const uint32_t *docs;
        const double *vals;
        size_t n = ck_segment_numbers(seg, (uint32_t)fi, &docs, &vals);
        for (size_t i = 0; i < n; i++)
            bit_set(s, docs[i]);
    }
    fi = find_field(seg, name, CK_SEG_KEYWORD);
    return fi >= 0 ? bits_or_terms(x, s, seg, (uint32_t)fi, "", 0) : 0;
}

static sc_t *mk_exists(ex_t *x, const ck__qnode_t *q)
{
    if (doc_field(q->q_field) != DF_NONE)
        return mk_all(x, q->q_boost);
    sc_t *s = mk_bits(x, q->q_boost);
    if (!s)
        return NULL;
    char alt[CK_SEG_FIELD_MAX + 2], kw[CK_SEG_FIELD_MAX + 16];
    const char *names[2] = {q->q_field, alt_name(q->q_field, alt, sizeof(alt)) ? alt : NULL};
    for (int i = 0; i < 2 && names[i]; i++) {
        snprintf(kw, sizeof(kw), "%s.keyword", names[i]);
        if (bits_or_field_all(x, s, names[i]) || bits_or_field_all(x, s, kw)) {
            sc_free(s);
            return NULL;
        }
        /* an object field exists where any field below it does (ES) */
        const ck_segment_t *seg = ex_seg(x);
        size_t plen = strlen(names[i]);
        const char *prev = NULL;
        for (uint32_t f = 0; f < ck_segment_nfields(seg); f++) {
            const ck_seg_field_t *fd = ck_segment_field(seg, f);
            if (fd->name_len <= plen || memcmp(fd->name, names[i], plen) || fd->name[plen] != '.' ||
                (prev && !strcmp(prev, fd->name)))
                continue;
            prev = fd->name;
            if (bits_or_field_all(x, s, fd->name)) {
                sc_free(s);
                return NULL;
            }
        }
    }
    return s;
}

static sc_t *mk_prefix(ex_t *x, const ck__qnode_t *q)
{
    char buf[CK_SEG_FIELD_MAX + 16];
    const char *tf = text_field(x, q->q_field, buf, sizeof(buf));
    ck_seg_kind_t k = CK_SEG_TEXT;
    if (!tf) {
        k = CK_SEG_KEYWORD;
        if (view_has(x->x_view, q->q_field, CK_SEG_KEYWORD))
            tf = q->q_field;
        else if (snprintf(buf, sizeof(buf), "%s.keyword", q->q_field) < (int)sizeof(buf) &&
                 view_has(x->x_view, buf, CK_SEG_KEYWORD))
            tf = buf;
        else
            return mk_none(x);
    }
    sc_t *s = mk_bits(x, q->q_boost);
    if (!s)
        return NULL;
    const ck_segment_t *seg = ex_seg(x);
    int fi = find_field(seg, tf, k);
    if (fi < 0)
        return s;
    if (bits_or_terms(x, s, seg, (uint32_t)fi, q->q_text, q->q_text_len)) {
        sc_free(s);
        return NULL;
    }
    return s;
}

static sc_t *mk_multi(ex_t *x, const ck__qnode_t *q)
{
    sc_t *s = sc_new(x, q->q_most_fields ? S_BOOL : S_DISMAX);
    if (!s)
        return NULL;
    s->boost = q->q_boost;
    s->tie = q->q_tie;
    s->msm = 1;
    for (size_t i = 0; i < q->q_nfields; i++)
        if (sc_add(x, s,
                   mk_match(x, q->q_fields[i], q->q_text, q->q_text_len, q->q_op_and, &q->q_msm,
                            q->q_fboost[i]),
                   CK__B_SHOULD)) {
            sc_free(s);
            return NULL;
        }
    return s;
}

static sc_t *mk_bool(ex_t *x, const ck__qnode_t *q)
{
    size_t nshould = q->q_nkids[CK__B_SHOULD];
    size_t nreq = q->q_nkids[CK__B_MUST] + q->q_nkids[CK__B_FILTER];
    if (nreq == 0 && nshould == 0 && q->q_nkids[CK__B_MUST_NOT] == 0)
        return mk_all(x, q->q_boost);
    size_t msm = msm_eval(&q->q_msm, nshould, nreq == 0 && nshould > 0 ? 1 : 0);
    if (msm > nshould)
        return mk_none(x);
    if (nreq == 0 && nshould > 0 && msm == 0)
        msm = 1; /* without required clauses, a should must match */
    sc_t *s = sc_new(x, S_BOOL);
    if (!s)
        return NULL;
    s->boost = q->q_boost;
    s->msm = msm;
    for (int o = 0; o < CK__B_N; o++)
        for (size_t i = 0; i < q->q_nkids[o]; i++)
            if (sc_add(x, s, compile(x, q->q_kids[o][i]), o)) {
                sc_free(s);
                return NULL;
            }
    s->has_req = nreq > 0;
    if (nreq == 0 && nshould == 0) {
        /* only must_not: every other doc, score 0 */
        if (sc_add(x, s, mk_all(x, 0.0), CK__B_FILTER)) {
            sc_free(s);
            return NULL;
        }
        s->has_req = true;
    }
    return s;
}

/* Is f the field of every text field? */
static bool is_all_field(const char *f)
{
    return f && (strcmp(f, "_all") == 0 || strcmp(f, "*") == 0);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* `_all` is not indexed: a match, phrase or prefix on it is the same query on each TEXT
 * field of the view except `_key` (the sum of their scores, like ES's most_fields). A
 * view with a TEXT field named "_all" (built by hand, as in tests) uses it directly. The
 * names are collected over every segment of the view, so each segment compiles the same
 * tree and statistics stay view-wide. */
static sc_t *mk_all_fields(ex_t *x, const ck__qnode_t *q)
{
    const ck_search_view_t *v = x->x_view;
    size_t n = 0, cap = 0;
    const char **names = NULL;
    for (size_t i = 0; i < v->nsegs; i++) {
        for (uint32_t f = 0; f < ck_segment_nfields(v->segs[i]); f++) {
            const ck_seg_field_t *fd = ck_segment_field(v->segs[i], f);
            if (fd->kind != CK_SEG_TEXT || strcmp(fd->name, "_key") == 0)
                continue;
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++)
                seen = strcmp(names[k], fd->name) == 0;
            if (seen)
                continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                const char **nn = ck_realloc(names, nc * sizeof(*nn));
                if (!nn) {
                    ck_free(names);
                    ex_oom(x);
                    return NULL;
                }
                names = nn;
                cap = nc;
            }
            names[n++] = fd->name;
        }
    }
    if (n == 0) {
        ck_free(names);
        return q->q_kind == CK__Q_MATCH ? mk_match(x, "_all", q->q_text, q->q_text_len, q->q_op_and,
                                                   &q->q_msm, q->q_boost)
                                        : mk_none(x);
    }
    qsort(names, n, sizeof(*names), name_cmp); /* the same order in every segment */
    sc_t *b = sc_new(x, S_BOOL);
    if (!b) {
        ck_free(names);
        return NULL;
    }
    b->boost = 1.0;
    b->msm = 1;
    for (size_t i = 0; i < n; i++) {
        ck__qnode_t c = *q;
        c.q_field = (char *)names[i];
        if (sc_add(x, b, compile(x, &c), CK__B_SHOULD)) {
            sc_free(b);
            ck_free(names);
            return NULL;
        }
    }
    ck_free(names);
    return b;
}

static sc_t *compile(ex_t *x, const ck__qnode_t *q)
{
    if (x->x_rc)
        return NULL;
    if ((q->q_kind == CK__Q_MATCH || q->q_kind == CK__Q_PHRASE || q->q_kind == CK__Q_PREFIX) &&
        is_all_field(q->q_field) && !view_has(x->x_view, "_all", CK_SEG_TEXT))
        return mk_all_fields(x, q);
    switch (q->q_kind) {
    case CK__Q_ALL:
        return mk_all(x, q->q_boost);
    case CK__Q_NONE:
        return mk_none(x);
    case CK__Q_MATCH:
        return mk_match(x, q->q_field, q->q_text, q->q_text_len, q->q_op_and, &q->q_msm,
                        q->q_boost);
    case CK__Q_PHRASE:
        return mk_phrase(x, q);
    case CK__Q_MULTI:
        return mk_multi(x, q);
    case CK__Q_BOOL:
        return mk_bool(x, q);
    case CK__Q_TERM:
        return mk_termq(x, q->q_field, q->q_vals, q->q_nvals, q->q_boost, true);
    case CK__Q_TERMS:
        return mk_termq(x, q->q_field, q->q_vals, q->q_nvals, q->q_boost, false);
    case CK__Q_RANGE:
        return mk_range(x, q);
    case CK__Q_EXISTS:
        return mk_exists(x, q);
    case CK__Q_PREFIX:
        return mk_prefix(x, q);
    case CK__Q_CONST: {
        sc_t *s = sc_new(x, S_CONST);
        if (!s)
            return NULL;
        s->boost = q->q_boost;
        if (sc_add(x, s, compile(x, q->q_kids[CK__B_FILTER][0]), CK__B_FILTER)) {
            sc_free(s);
            return NULL;
        }
        return s;
    }
    }
    return mk_none(x);
}

/* ---- the global top k ---- */

typedef struct hitx {
    uint32_t view, seg, doc;
    double score;
    double *keys; /* per sort key; NAN = missing */
} hitx_t;

typedef struct heap {
    const ck_search_req_t *h_rq;
    hitx_t *h_v;
    size_t h_n, h_k;
    double *h_keys; /* h_k * nsort slots */
} heap_t;

static int pos_cmp(const hitx_t *a, const hitx_t *b)
{
    if (a->view != b->view)
        return a->view < b->view ? -1 : 1;
    if (a->seg != b->seg)
        return a->seg < b->seg ? -1 : 1;
    return a->doc < b->doc ? -1 : a->doc > b->doc;
}

/* < 0: a ranks before b. */
static int hit_order(const ck_search_req_t *rq, const hitx_t *a, const hitx_t *b)
{
    for (size_t i = 0; i < rq->r_nsort; i++) {
        const ck__sort_t *s = &rq->r_sort[i];
        int c = 0;
        if (s->s_kind == CK__S_SCORE) {
            c = a->score > b->score ? -1 : a->score < b->score;
        } else if (s->s_kind == CK__S_DOC) {
            c = pos_cmp(a, b);
        } else {
            double x = a->keys[i], y = b->keys[i];
            bool mx = isnan(x), my = isnan(y);
            if (mx || my) {
                c = mx == my ? 0 : mx ? 1 : -1; /* missing last either way */
                if (c)
                    return c;
                continue;
            }
            c = x < y ? -1 : x > y;
        }
        if (c)
            return s->s_desc ? -c : c;
    }
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return pos_cmp(a, b);
}

static void heap_swap(hitx_t *a, hitx_t *b)
{
    hitx_t t = *a;
    *a = *b;
    *b = t;
}

/* Root = the worst kept hit. */
static void heap_down(heap_t *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < h->h_n && hit_order(h->h_rq, &h->h_v[l], &h->h_v[m]) > 0)
            m = l;
        if (l + 1 < h->h_n && hit_order(h->h_rq, &h->h_v[l + 1], &h->h_v[m]) > 0)
            m = l + 1;
        if (m == i)
            return;
        heap_swap(&h->h_v[i], &h->h_v[m]);
        i = m;
    }
}

/* Offers a hit (keys copied). */
static void heap_push(heap_t *h, const hitx_t *c)
{
    size_t ns = h->h_rq->r_nsort;
    if (h->h_k == 0)
        return;
    if (h->h_n < h->h_k) {
        size_t i = h->h_n++;
        hitx_t *e = &h->h_v[i];
        double *slot = h->h_keys + i * ns;
        *e = *c;
        e->keys = slot;
        if (ns)
            memcpy(slot, c->keys, ns * sizeof(double));
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (hit_order(h->h_rq, &h->h_v[i], &h->h_v[p]) <= 0)
                break;
            heap_swap(&h->h_v[i], &h->h_v[p]);
            i = p;
        }
    } else if (hit_order(h->h_rq, c, &h->h_v[0]) < 0) {
        double *slot = h->h_v[0].keys;
        h->h_v[0] = *c;
        h->h_v[0].keys = slot;
        if (ns)
            memcpy(slot, c->keys, ns * sizeof(double));
        heap_down(h, 0);
    }
}

/* ---- per segment ---- */

typedef struct segrun {
    ex_t *r_x;
    heap_t *r_heap;
    uint64_t r_count; /* matches counted so far (all views) */
    uint64_t r_cap;   /* stop counting beyond this (limit + 1) */
    double r_max;
    bool r_has_max;
    double *r_keys;              /* scratch, nsort */
    const int32_t *r_num_fields; /* per sort key: NUMBER field index in this seg, or -1 */
    sc_t **r_filters;            /* WAND accept: must match all */
    size_t r_nfilters;
    sc_t **r_excl; /* WAND accept: must match none */
    size_t r_nexcl;
} segrun_t;

static bool is_live(const ex_t *x, uint32_t doc)
{
    return !x->x_view->live || x->x_view->live(x->x_view->live_ctx, x->x_si, doc);
}

static double number_key(const ck_segment_t *seg, int fi, uint32_t doc, bool desc)
{
    const uint32_t *docs;
    const double *vals;
    size_t n = ck_segment_numbers(seg, (uint32_t)fi, &docs, &vals);
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (docs[m] < doc)
            lo = m + 1;
        else
            hi = m;
    }
    if (lo >= n || docs[lo] != doc)
        return NAN;
    if (!desc)
        return vals[lo];
    while (lo + 1 < n && docs[lo + 1] == doc)
        lo++;
    return vals[lo];
}

static void collect(segrun_t *r, uint32_t doc, double score)
{
    ex_t *x = r->r_x;
    const ck_search_req_t *rq = x->x_rq;
    for (size_t i = 0; i < rq->r_nsort; i++) {
        const ck__sort_t *s = &rq->r_sort[i];
        r->r_keys[i] = 0;
        if (s->s_kind != CK__S_FIELD)
            continue;
        int df = doc_field(s->s_field);
        if (df != DF_NONE)
            r->r_keys[i] = doc_value(ex_seg(x), df, doc);
        else
            r->r_keys[i] = r->r_num_fields[i] < 0
                               ? NAN
                               : number_key(ex_seg(x), r->r_num_fields[i], doc, s->s_desc);
    }
    hitx_t h = {(uint32_t)x->x_vi, (uint32_t)x->x_si, doc, score, r->r_keys};
    heap_push(r->r_heap, &h);
    if (!r->r_has_max || score > r->r_max) {
        r->r_max = score;
        r->r_has_max = true;
    }
}

static bool wand_accept(void *ctx, uint32_t doc)
{
    segrun_t *r = ctx;
    if (!is_live(r->r_x, doc))
        return false;
    for (size_t i = 0; i < r->r_nfilters; i++)
        if (sc_advance(r->r_filters[i], doc) != doc)
            return false;
    for (size_t i = 0; i < r->r_nexcl; i++)
        if (sc_advance(r->r_excl[i], doc) == doc)
            return false;
    return true;
}

/* Collects the scored terms of a pure disjunction (weights multiplied by the boosts on
 * the way); false if s is not one. */
static bool flatten(sc_t *s, double mul, ck_bm25_term_t *t, size_t *n, bool top)
{
    if (s->k == S_NONE)
        return true;
    if (s->k == S_TERM) {
        if (*n >= CK_BM25_MAX_TERMS)
            return false;
        t[*n] = (ck_bm25_term_t){s->cur,
                                 s->weight * mul,
                                 s->avgdl,
                                 NULL,
                                 NULL,
                                 NULL,
                                 ck_bm25_bound_scale(s->avgdl, s->seg_avgdl)};
        (*n)++;
        return true;
    }
    if (s->k != S_BOOL || s->has_req || s->msm > 1)
        return false;
    for (size_t i = 0; i < s->nkids; i++) {
        if (s->occ[i] == CK__B_SHOULD) {
            if (!flatten(s->kids[i], mul * s->boost, t, n, false))
                return false;
        } else if (!top || s->occ[i] != CK__B_MUST_NOT) {
            return false;
        }
    }
    return true;
}

static uint32_t len_fn(void *ctx, uint32_t doc)
{
    const sc_t *s = ctx;
    return s->text ? ck_segment_len(s->seg, s->fidx, doc) : 1;
}

/* Counts live matches of a fresh scorer tree (WAND path's totals). */
static int count_matches(segrun_t *r, sc_t *root)
{
    for (uint32_t d = sc_advance(root, 0); d != END && r->r_count < r->r_cap;
         d = d >= CK_POSTINGS_MAX_DOC ? END : sc_advance(root, d + 1))
        if (is_live(r->r_x, d))
            r->r_count++;
    return sc_err(root);
}

static bool score_sorted(const ck_search_req_t *rq)
{
    return rq->r_nsort == 0 ||
           (rq->r_nsort == 1 && rq->r_sort[0].s_kind == CK__S_SCORE && rq->r_sort[0].s_desc);
}

static int run_segment(segrun_t *r)
{
    ex_t *x = r->r_x;
    const ck_search_req_t *rq = x->x_rq;
    sc_t *root = compile(x, rq->r_query);
    if (!root)
        return x->x_rc ? x->x_rc : ex_oom(x);
    int rc = 0;
    ck_bm25_term_t terms[CK_BM25_MAX_TERMS];
    size_t nt = 0;
    bool wand = score_sorted(rq) && !rq->r_has_min_score && r->r_heap->h_k > 0 &&
                flatten(root, 1.0, terms, &nt, true);
    if (wand) {
        /* the accept test: live, and none of the top bool's must_not */
        sc_t *excl[CK__Q_MAX_CLAUSES];
        r->r_nexcl = 0;
        r->r_nfilters = 0;
        if (root->k == S_BOOL)
            for (size_t i = 0; i < root->nkids && r->r_nexcl < CK__Q_MAX_CLAUSES; i++)
                if (root->occ[i] == CK__B_MUST_NOT)
                    excl[r->r_nexcl++] = root->kids[i];
        r->r_excl = excl;
        /* lengths through the scorer that owns each cursor */
        size_t j = 0;
        for (size_t i = 0; i < nt; i++)
            terms[i].bt_len_ctx = NULL;
        /* find each term's scorer again to give len_fn its segment and field */
        sc_t *stack[256];
        size_t sp = 0;
        stack[sp++] = root;
        while (sp) {
            sc_t *s = stack[--sp];
            if (s->k == S_TERM) {
                for (size_t i = 0; i < nt; i++)
                    if (terms[i].bt_cur == s->cur) {
                        terms[i].bt_len_fn = len_fn;
                        terms[i].bt_len_ctx = s;
                        j++;
                    }
            } else if (s->k == S_BOOL) {
                for (size_t i = s->nkids; i-- > 0 && sp < 256;)
                    if (s->occ[i] == CK__B_SHOULD)
                        stack[sp++] = s->kids[i];
            }
        }
        heap_t *h = r->r_heap;
        bool accept = x->x_view->live || r->r_nexcl || r->r_nfilters;
        ck_bm25_opts_t o = {accept ? wand_accept : NULL, r, false, 0};
        /* hits must beat the k-th of the earlier segments (ties go to the earlier ones) */
        if (h->h_n == h->h_k) {
            o.bo_has_min_score = true;
            o.bo_min_score = h->h_v[0].score;
        }
        ck_bm25_hit_t *hits = ck_malloc(h->h_k * sizeof(*hits));
        size_t nh = 0;
        if (!hits)
            rc = ex_oom(x);
        else if (j == nt && nt > 0)
            rc = ck_bm25_topk_wand_ex(terms, nt, h->h_k, &o, hits, &nh, NULL);
        for (size_t i = 0; !rc && i < nh; i++)
            collect(r, hits[i].doc, hits[i].score);
        ck_free(hits);
        if (!rc && rq->r_track && r->r_count < r->r_cap) {
            sc_t *again = compile(x, rq->r_query);
            rc = again ? count_matches(r, again) : (x->x_rc ? x->x_rc : ex_oom(x));
            sc_free(again);
        }
    } else {
        for (uint32_t d = sc_advance(root, 0); d != END;
             d = d >= CK_POSTINGS_MAX_DOC ? END : sc_advance(root, d + 1)) {
            if (!is_live(x, d))
                continue;
            double sc = sc_score(root);
            if (rq->r_has_min_score && sc < rq->r_min_score)
                continue;
            if (r->r_count < r->r_cap)
                r->r_count++;
            collect(r, d, sc);
        }
    }
    if (!rc)
        rc = sc_err(root);
    sc_free(root);
    if (rc && !x->x_rc)
        x->x_rc = ck__qerr_rc(x->x_err, rc);
    return rc;
}

/* ---- API ---- */

void ck_search_result_free(ck_search_result_t *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->nhits; i++)
        json_decref(res->hits[i].sort);
    ck_free(res->hits);
    memset(res, 0, sizeof(*res));
}

static json_t *sort_json(const ck_search_req_t *rq, const hitx_t *h)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; i < rq->r_nsort; i++) {
        const ck__sort_t *s = &rq->r_sort[i];
        json_t *v;
        if (s->s_kind == CK__S_SCORE)
            v = json_real(h->score);
        else if (s->s_kind == CK__S_DOC)
            v = json_integer(h->doc);
        else if (isnan(h->keys[i]))
            v = json_null();
        else if (h->keys[i] == floor(h->keys[i]) && fabs(h->keys[i]) < 9007199254740992.0)
            v = json_integer((json_int_t)h->keys[i]);
        else
            v = json_real(h->keys[i]);
        if (!v || json_array_append_new(a, v)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static int cmp_ctx_sort(const void *a, const void *b, void *rq)
{
    return hit_order(rq, a, b);
}

int ck_search_execute(const ck_search_req_t *rq, const ck_search_view_t *views, size_t nviews,
                      ck_search_result_t *res, ck_search_error_t *err)
{
    memset(res, 0, sizeof(*res));
    size_t k = rq->r_from + rq->r_size;
    size_t ns = rq->r_nsort;
    heap_t h = {rq, NULL, 0, k, NULL};
    h.h_v = ck_calloc(k ? k : 1, sizeof(*h.h_v));
    h.h_keys = ck_calloc(k && ns ? k * ns : 1, sizeof(double));
    double *keys = ck_calloc(ns ? ns : 1, sizeof(double));
    int32_t *nfields = ck_calloc(ns ? ns : 1, sizeof(int32_t));
    ex_t x = {.x_rq = rq, .x_err = err};
    segrun_t r = {.r_x = &x, .r_heap = &h, .r_keys = keys, .r_num_fields = nfields};
    r.r_cap = !rq->r_track                      ? 0
              : rq->r_track_limit == UINT64_MAX ? UINT64_MAX
                                                : rq->r_track_limit + 1;
    int rc = 0;
    if (!h.h_v || !h.h_keys || !keys || !nfields)
        rc = ex_oom(&x);
    for (size_t vi = 0; !rc && vi < nviews; vi++) {
        const ck_search_view_t *v = &views[vi];
        x.x_view = v;
        x.x_vi = vi;
        rc = ck_analyzer_new(&v->analyzer, &x.x_an);
        if (rc) {
            rc = rc == CK_ENOMEM ? ex_oom(&x)
                                 : ck__qerr(err, "illegal_argument_exception",
                                            "index [%s]: bad analyzer configuration",
                                            v->index ? v->index : "?");
            break;
        }
        for (size_t si = 0; !rc && si < v->nsegs; si++) {
            x.x_si = si;
            for (size_t i = 0; i < ns; i++) {
                nfields[i] = -1;
                if (rq->r_sort[i].s_kind == CK__S_FIELD) {
                    char buf[CK_SEG_FIELD_MAX + 2];
                    const char *nf = number_field(v, rq->r_sort[i].s_field, buf, sizeof(buf));
                    nfields[i] = nf ? find_field(v->segs[si], nf, CK_SEG_NUMBER) : -1;
                }
            }
            if (ck_segment_ndocs(v->segs[si]) > 0)
                rc = run_segment(&r);
        }
        ck_analyzer_free(x.x_an);
        x.x_an = NULL;
        ex_stats_clear(&x);
    }
    ex_stats_clear(&x);
    ck_free(x.x_ts);
    if (!rc) {
        qsort_r(h.h_v, h.h_n, sizeof(*h.h_v), cmp_ctx_sort, (void *)rq);
        res->has_total = rq->r_track;
        if (rq->r_track) {
            bool over = rq->r_track_limit != UINT64_MAX && r.r_count > rq->r_track_limit;
            res->total = over ? rq->r_track_limit : r.r_count;
            res->total_is_lower_bound = over;
        }
        if (score_sorted(rq) || (ns > 0 && rq->r_sort[0].s_kind == CK__S_SCORE)) {
            res->has_max_score = r.r_has_max;
            res->max_score = r.r_max;
        }
        size_t n = h.h_n > rq->r_from ? h.h_n - rq->r_from : 0;
        if (n) {
            res->hits = ck_calloc(n, sizeof(*res->hits));
            if (!res->hits)
                rc = ex_oom(&x);
        }
        for (size_t i = 0; !rc && i < n; i++) {
            const hitx_t *e = &h.h_v[rq->r_from + i];
            ck_search_hit_t *o = &res->hits[i];
            *o = (ck_search_hit_t){e->view, e->seg, e->doc, e->score, NULL};
            res->nhits = i + 1;
            if (ns && !(o->sort = sort_json(rq, e)))
                rc = ex_oom(&x);
        }
    }
    ck_free(h.h_v);
    ck_free(h.h_keys);
    ck_free(keys);
    ck_free(nfields);
    if (rc)
        ck_search_result_free(res);
    return rc;
}
