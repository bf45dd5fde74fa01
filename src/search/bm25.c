/* BM25 scoring and top-k by block-max WAND (Ding & Suel, SIGIR 2011), the shape PISA's
 * block_max_wand_query has:
 *
 *   1. Keep the cursors sorted by current doc. Walk them summing each list's maximum
 *      score (weight * list max bound); the first cursor where the sum could enter the
 *      top k is the pivot, its doc the pivot doc (every doc before it is short of the
 *      threshold even with every list's maximum). Cursors after it on the same doc join.
 *   2. Move the shallow pointers of the cursors up to the pivot to the block holding the
 *      pivot doc and sum their block maxima. If even that sum cannot enter, no doc from
 *      the pivot doc up to the first block end (or the next cursor's doc) can: skip there
 *      by advancing the list with the largest maximum.
 *   3. Otherwise, if the first cursor is on the pivot doc, every cursor up to the pivot is
 *      too: score the doc fully. If not, advance a cursor that is before the pivot doc.
 *
 * The top k is a min-heap in the caller's out array (root = the worst kept hit). Docs
 * arrive in increasing order, so a later doc with an equal score never displaces a kept
 * one: ties keep the smaller doc id, as the final order (score desc, doc asc) says.
 *
 * Floating point: a doc's score is the sum of its term scores in query-term order, in
 * double, in both scorers, so they agree bit for bit. The bounds the pruning uses are
 * summed in another order; a tiny relative slack (CK__BM25_SLACK) on the threshold keeps
 * rounding from ever pruning a doc that would have entered. */
#include "search/bm25.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"

#define CK__BM25_SLACK 1e-12

double ck_bm25_idf(uint64_t n_docs, uint64_t df)
{
    if (n_docs == 0)
        return 0.0;
    if (df > n_docs)
        df = n_docs;
    return log(1.0 + ((double)n_docs - (double)df + 0.5) / ((double)df + 0.5));
}

double ck_bm25_tfn(uint32_t tf, uint32_t dl, double avgdl)
{
    if (tf == 0)
        return 0.0;
    double rel = avgdl > 0.0 ? (double)dl / avgdl : 1.0;
    double f = (double)tf;
    return f * (CK_BM25_K1 + 1.0) / (f + CK_BM25_K1 * (1.0 - CK_BM25_B + CK_BM25_B * rel));
}

double ck_bm25_score(double boost, double idf, uint32_t tf, uint32_t dl, double avgdl)
{
    return boost * idf * ck_bm25_tfn(tf, dl, avgdl);
}

/* Why max(1, a / s) bounds the error of scoring with avgdl a while the stored bound used
 * avgdl s (same tf, same dl). Write K(x) = k1 * (1 - b + b * dl / x), so tfn under x is
 * tf * (k1 + 1) / (tf + K(x)), and let r = a / s.
 *   r <= 1: dl / a >= dl / s, so K(a) >= K(s) and tfn(a) <= tfn(s) <= bound.
 *   r >  1: with A = tf + k1 * (1 - b) > 0 and B = k1 * b * dl / a >= 0,
 *           tf + K(a) = A + B and tf + K(s) = A + B * r, so
 *           tfn(a) / tfn(s) = (A + B * r) / (A + B) <= (A * r + B * r) / (A + B) = r,
 *           using A <= A * r. Hence tfn(a) <= r * tfn(s) <= r * bound.
 * Either way tfn(a) <= max(1, r) * bound. The product is formed in double and the pruning
 * keeps a relative slack, so rounding of the scaled bound cannot push it below a score. */
double ck_bm25_bound_scale(double avgdl, double seg_avgdl)
{
    if (!(avgdl > 0.0) || !(seg_avgdl > 0.0) || !isfinite(avgdl) || !isfinite(seg_avgdl))
        return 1.0;
    double r = avgdl / seg_avgdl;
    return r > 1.0 ? r : 1.0;
}

float ck_bm25_bound(uint32_t tf, uint32_t dl, double avgdl)
{
    double t = ck_bm25_tfn(tf, dl, avgdl);
    float f = (float)t;
    if ((double)f < t)
        f = nextafterf(f, INFINITY);
    return f;
}

/* ---- shared pieces ---- */

static int check_terms(const ck_bm25_term_t *terms, size_t nterms)
{
    if (nterms > CK_BM25_MAX_TERMS)
        return CK_EINVAL;
    for (size_t i = 0; i < nterms; i++) {
        const ck_bm25_term_t *t = &terms[i];
        if (!t->bt_cur || !(t->bt_weight >= 0.0) || !isfinite(t->bt_weight))
            return CK_EINVAL;
        if (!t->bt_lens && !t->bt_len_fn)
            return CK_EINVAL;
        if (t->bt_bound_scale != 0.0 && !(t->bt_bound_scale >= 1.0 && isfinite(t->bt_bound_scale)))
            return CK_EINVAL;
    }
    return 0;
}

static inline double term_score(const ck_bm25_term_t *t, uint32_t doc)
{
    uint32_t dl = t->bt_lens ? t->bt_lens[doc] : t->bt_len_fn(t->bt_len_ctx, doc);
    return t->bt_weight * ck_bm25_tfn(ck_postings_freq(t->bt_cur), dl, t->bt_avgdl);
}

/* Sum of the term scores of the terms in mask (all on doc), in term order. */
static double score_doc(const ck_bm25_term_t *terms, uint64_t mask, uint32_t doc)
{
    double s = 0.0;
    while (mask) {
        int i = __builtin_ctzll(mask);
        mask &= mask - 1;
        s += term_score(&terms[i], doc);
    }
    return s;
}

typedef struct topk {
    ck_bm25_hit_t *tk_h;
    size_t tk_n, tk_k;
    bool tk_has_min; /* only scores > tk_min enter */
    double tk_min;
} topk_t;

static inline double term_scale(const ck_bm25_term_t *t)
{
    return t->bt_bound_scale > 0.0 ? t->bt_bound_scale : 1.0;
}

static inline bool accept_doc(const ck_bm25_opts_t *o, uint32_t doc)
{
    return !o || !o->bo_accept || o->bo_accept(o->bo_accept_ctx, doc);
}

static int check_opts(const ck_bm25_opts_t *o)
{
    if (o && o->bo_has_min_score && isnan(o->bo_min_score))
        return CK_EINVAL;
    return 0;
}

static void topk_init(topk_t *t, ck_bm25_hit_t *out, size_t k, const ck_bm25_opts_t *o)
{
    *t = (topk_t){out, 0, k, false, 0.0};
    if (o && o->bo_has_min_score) {
        t->tk_has_min = true;
        t->tk_min = o->bo_min_score;
    }
}

/* a ranks below b */
static inline bool hit_worse(const ck_bm25_hit_t *a, const ck_bm25_hit_t *b)
{
    return a->score < b->score || (a->score == b->score && a->doc > b->doc);
}

static void topk_sift_down(topk_t *t, size_t i)
{
    ck_bm25_hit_t *h = t->tk_h;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < t->tk_n && hit_worse(&h[l], &h[m]))
            m = l;
        if (l + 1 < t->tk_n && hit_worse(&h[l + 1], &h[m]))
            m = l + 1;
        if (m == i)
            return;
        ck_bm25_hit_t x = h[i];
        h[i] = h[m];
        h[m] = x;
        i = m;
    }
}

static void topk_push(topk_t *t, uint32_t doc, double score)
{
    ck_bm25_hit_t c = {doc, score};
    ck_bm25_hit_t *h = t->tk_h;
    if (t->tk_has_min && !(score > t->tk_min))
        return;
    if (t->tk_n < t->tk_k) {
        size_t i = t->tk_n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!hit_worse(&c, &h[p]))
                break;
            h[i] = h[p];
            i = p;
        }
        h[i] = c;
    } else if (hit_worse(&h[0], &c)) {
        h[0] = c;
        topk_sift_down(t, 0);
    }
}

/* Could a doc whose score is at most ub enter? */
static inline bool topk_competitive(const topk_t *t, double ub)
{
    double th;
    if (t->tk_n < t->tk_k) {
        if (!t->tk_has_min)
            return true;
        th = t->tk_min;
    } else {
        th = t->tk_h[0].score;
        if (t->tk_has_min && t->tk_min > th)
            th = t->tk_min;
    }
    if (isinf(th))
        return th < 0 || ub >= th;
    return ub >= th - fabs(th) * CK__BM25_SLACK;
}

static int hit_cmp(const void *a, const void *b)
{
    const ck_bm25_hit_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* Sorts the hits, checks the cursors; shared end of both scorers. */
static int finish(const ck_bm25_term_t *terms, size_t nterms, topk_t *t, size_t *nout)
{
    for (size_t i = 0; i < nterms; i++) {
        int rc = ck_postings_err(terms[i].bt_cur);
        if (rc) {
            *nout = 0;
            return rc;
        }
    }
    qsort(t->tk_h, t->tk_n, sizeof *t->tk_h, hit_cmp);
    *nout = t->tk_n;
    return 0;
}

/* ---- exhaustive ---- */

int ck_bm25_topk_exhaustive(ck_bm25_term_t *terms, size_t nterms, size_t k, ck_bm25_hit_t *out,
                            size_t *nout, ck_bm25_stats_t *stats)
{
    return ck_bm25_topk_exhaustive_ex(terms, nterms, k, NULL, out, nout, stats);
}

int ck_bm25_topk_exhaustive_ex(ck_bm25_term_t *terms, size_t nterms, size_t k,
                               const ck_bm25_opts_t *opts, ck_bm25_hit_t *out, size_t *nout,
                               ck_bm25_stats_t *stats)
{
    ck_bm25_stats_t st = {0};
    *nout = 0;
    int rc = check_terms(terms, nterms);
    if (!rc)
        rc = check_opts(opts);
    if (rc)
        return rc;
    if (k == 0 || nterms == 0)
        goto done;
    topk_t t;
    topk_init(&t, out, k, opts);
    for (;;) {
        uint32_t doc = CK_POSTINGS_END;
        uint64_t mask = 0;
        for (size_t i = 0; i < nterms; i++) {
            uint32_t d = ck_postings_doc(terms[i].bt_cur);
            if (d < doc) {
                doc = d;
                mask = 0;
            }
            if (d == doc)
                mask |= 1ull << i;
        }
        if (doc == CK_POSTINGS_END)
            break;
        if (accept_doc(opts, doc)) {
            topk_push(&t, doc, score_doc(terms, mask, doc));
            st.bs_scored++;
        }
        for (uint64_t m = mask; m; m &= m - 1) {
            ck_postings_next(terms[__builtin_ctzll(m)].bt_cur);
            st.bs_advances++;
        }
    }
    rc = finish(terms, nterms, &t, nout);
done:
    if (stats)
        *stats = st;
    return rc;
}

/* ---- block-max WAND ---- */

typedef struct wand {
    ck_bm25_term_t *w_terms;
    uint8_t w_ord[CK_BM25_MAX_TERMS]; /* term indices sorted by current doc */
    double w_ub[CK_BM25_MAX_TERMS];   /* per term: weight * list max */
    size_t w_n;
} wand_t;

static inline uint32_t wdoc(const wand_t *w, size_t i)
{
    return ck_postings_doc(w->w_terms[w->w_ord[i]].bt_cur);
}

/* Moves w_ord[i], whose doc grew, forward to its sorted place. */
static void wand_sift(wand_t *w, size_t i)
{
    uint8_t x = w->w_ord[i];
    uint32_t d = ck_postings_doc(w->w_terms[x].bt_cur);
    while (i + 1 < w->w_n && wdoc(w, i + 1) < d) {
        w->w_ord[i] = w->w_ord[i + 1];
        i++;
    }
    w->w_ord[i] = x;
}

int ck_bm25_topk_wand(ck_bm25_term_t *terms, size_t nterms, size_t k, ck_bm25_hit_t *out,
                      size_t *nout, ck_bm25_stats_t *stats)
{
    return ck_bm25_topk_wand_ex(terms, nterms, k, NULL, out, nout, stats);
}

int ck_bm25_topk_wand_ex(ck_bm25_term_t *terms, size_t nterms, size_t k, const ck_bm25_opts_t *opts,
                         ck_bm25_hit_t *out, size_t *nout, ck_bm25_stats_t *stats)
{
    ck_bm25_stats_t st = {0};
    *nout = 0;
    int rc = check_terms(terms, nterms);
    if (!rc)
        rc = check_opts(opts);
    if (rc)
        return rc;
    if (k == 0 || nterms == 0)
        goto done;
    topk_t t;
    topk_init(&t, out, k, opts);
    wand_t w = {.w_terms = terms, .w_n = nterms};
    for (size_t i = 0; i < nterms; i++) {
        w.w_ub[i] = terms[i].bt_weight * term_scale(&terms[i]) *
                    (double)ck_postings_max_score(terms[i].bt_cur);
        w.w_ord[i] = (uint8_t)i;
        /* insertion sort by doc */
        for (size_t j = i; j > 0 && wdoc(&w, j - 1) > wdoc(&w, j); j--) {
            uint8_t x = w.w_ord[j];
            w.w_ord[j] = w.w_ord[j - 1];
            w.w_ord[j - 1] = x;
        }
    }

    for (;;) {
        /* 1. pivot by list maxima */
        double acc = 0.0;
        size_t p;
        bool found = false;
        for (p = 0; p < w.w_n; p++) {
            if (wdoc(&w, p) == CK_POSTINGS_END)
                break;
            acc += w.w_ub[w.w_ord[p]];
            if (topk_competitive(&t, acc)) {
                found = true;
                break;
            }
        }
        if (!found)
            break;
        uint32_t pivot = wdoc(&w, p);
        while (p + 1 < w.w_n && wdoc(&w, p + 1) == pivot)
            p++;

        /* 2. refine by block maxima */
        double bub = 0.0;
        for (size_t i = 0; i <= p; i++) {
            ck_bm25_term_t *tm = &terms[w.w_ord[i]];
            if (ck_postings_block_last_doc(tm->bt_cur) < pivot)
                ck_postings_shallow_advance(tm->bt_cur, pivot);
            bub += tm->bt_weight * term_scale(tm) * (double)ck_postings_block_max(tm->bt_cur);
        }

        if (topk_competitive(&t, bub)) {
            if (wdoc(&w, 0) == pivot) {
                /* 3a. every cursor up to p is on the pivot doc */
                uint64_t mask = 0;
                for (size_t i = 0; i <= p; i++)
                    mask |= 1ull << w.w_ord[i];
                if (accept_doc(opts, pivot)) {
                    topk_push(&t, pivot, score_doc(terms, mask, pivot));
                    st.bs_scored++;
                }
                for (size_t i = 0; i <= p; i++) {
                    ck_postings_next(terms[w.w_ord[i]].bt_cur);
                    st.bs_advances++;
                }
                for (size_t i = p + 1; i-- > 0;)
                    wand_sift(&w, i);
            } else {
                /* 3b. bring the last cursor before the pivot doc up to it */
                size_t i = p;
                while (wdoc(&w, i) == pivot)
                    i--;
                ck_postings_advance(terms[w.w_ord[i]].bt_cur, pivot);
                st.bs_advances++;
                wand_sift(&w, i);
            }
            continue;
        }

        /* 2b. skip: nothing up to the end of the first block (or the next list) enters */
        st.bs_block_skips++;
        uint64_t next = (uint64_t)CK_POSTINGS_END + 1;
        size_t best = 0;
        for (size_t i = 0; i <= p; i++) {
            uint64_t last = ck_postings_block_last_doc(terms[w.w_ord[i]].bt_cur);
            if (last + 1 < next)
                next = last + 1;
            if (w.w_ub[w.w_ord[i]] > w.w_ub[w.w_ord[best]])
                best = i;
        }
        if (p + 1 < w.w_n && wdoc(&w, p + 1) < next)
            next = wdoc(&w, p + 1);
        if (next <= pivot) /* cannot happen: block ends are >= the pivot doc */
            next = (uint64_t)pivot + 1;
        uint32_t target = next > CK_POSTINGS_MAX_DOC ? CK_POSTINGS_END : (uint32_t)next;
        ck_postings_advance(terms[w.w_ord[best]].bt_cur, target);
        st.bs_advances++;
        wand_sift(&w, best);
    }
    rc = finish(terms, nterms, &t, nout);
done:
    if (stats)
        *stats = st;
    return rc;
}
