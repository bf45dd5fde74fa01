/* BM25 scoring and top-k retrieval over postings cursors: block-max WAND, plus an
 * exhaustive scorer with the same interface (the reference in tests and benchmarks).
 *
 * Scoring (k1 = 1.2, b = 0.75, Lucene's idf, which is never negative):
 *
 *     idf(N, df)       = ln(1 + (N - df + 0.5) / (df + 0.5))
 *     tfn(tf, dl, avg) = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avg))
 *     score(term, doc) = boost * idf * tfn(tf, dl, avg)
 *
 * and a doc's score is the sum over the query terms it contains. The per-doc bound stored
 * in postings (ck_postings_writer_add()'s bound) is ck_bm25_bound(tf, dl, avg): tfn only,
 * rounded up to float, so that it stays valid whatever idf (which moves with N and df as
 * segments merge) and boost (per query) are; the search multiplies the list and block
 * maxima by the term's weight = boost * idf. The search must use the same dl and avgdl
 * the bounds were computed with (the segment's own field norms and average), otherwise a
 * block maximum may be below a real score and WAND may miss a hit.
 *
 * Results: hits sorted by score descending, then doc ascending; ties at the k-th place are
 * kept by the smaller doc id. WAND and the exhaustive scorer return the same hits with
 * bit-identical scores (both sum a doc's term scores in query-term order, in double).
 *
 * Thread: none; the functions use only their arguments (cursors are advanced). */
#ifndef CK_SEARCH_BM25_H
#define CK_SEARCH_BM25_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "search/postings.h"

#define CK_BM25_K1 1.2
#define CK_BM25_B 0.75
#define CK_BM25_MAX_TERMS 64 /* query terms per top-k call (kept on the stack) */

/* idf with n_docs docs of which df contain the term; df is clamped to n_docs. > 0 when
 * df <= n_docs; 0 when n_docs == 0. */
double ck_bm25_idf(uint64_t n_docs, uint64_t df);

/* The tf part of a term score; avgdl <= 0 (no docs yet) is taken as dl / avgdl = 1.
 * 0 when tf == 0; below k1 + 1 always. */
double ck_bm25_tfn(uint32_t tf, uint32_t dl, double avgdl);

/* boost * idf * tfn: one term's score in one doc. */
double ck_bm25_score(double boost, double idf, uint32_t tf, uint32_t dl, double avgdl);

/* The per-doc upper bound to store in postings: ck_bm25_tfn() rounded up to a float
 * (so (double)bound >= tfn exactly, never below it through rounding). */
float ck_bm25_bound(uint32_t tf, uint32_t dl, double avgdl);

/* The bound scale for scoring with avgdl while the stored bounds used seg_avgdl:
 * max(1, avgdl / seg_avgdl) (1 when either is <= 0 or not finite). Proof that
 * tfn(tf, dl, avgdl) <= scale * tfn(tf, dl, seg_avgdl) <= scale * bound: see bm25.c. */
double ck_bm25_bound_scale(double avgdl, double seg_avgdl);

/* One query term: an open cursor and how to score it. */
typedef struct ck_bm25_term {
    ck_postings_t *bt_cur;   /* open (ck_postings_open()), not yet advanced; the search
                                moves it and leaves it anywhere */
    double bt_weight;        /* boost * idf, >= 0 and finite */
    double bt_avgdl;         /* the field's average length the list's bounds used */
    const uint32_t *bt_lens; /* field length by doc id, covering every doc of the list
                                (the one the bounds used), or NULL: */
    uint32_t (*bt_len_fn)(void *ctx, uint32_t doc); /* used when bt_lens is NULL */
    void *bt_len_ctx;
    /* Multiplies the list's and blocks' stored maxima in WAND; 0 means 1. Needed when
     * bt_avgdl (the avgdl the search scores with, e.g. one averaged over several segments)
     * differs from the avgdl the stored bounds were computed with (the segment's own,
     * avg_s): ck_bm25_bound_scale(bt_avgdl, avg_s) keeps every bound above the score. */
    double bt_bound_scale;
} ck_bm25_term_t;

typedef struct ck_bm25_hit {
    uint32_t doc;
    double score;
} ck_bm25_hit_t;

/* Work counters of one search, for tests and benchmarks. */
typedef struct ck_bm25_stats {
    uint64_t bs_scored;      /* docs fully scored (every term on them scored) */
    uint64_t bs_block_skips; /* WAND: pivots rejected by block maxima alone */
    uint64_t bs_advances;    /* cursor moves (next or advance) */
} ck_bm25_stats_t;

/* Top k docs of the disjunction of terms[0..nterms) by block-max WAND. out has room for k
 * hits; *nout gets how many were found (<= k), sorted by score desc, doc asc. stats may be
 * NULL. A doc contained in none of the lists is never a hit; with k == 0 or nterms == 0
 * nothing is read.
 * Errors: CK_EINVAL (nterms > CK_BM25_MAX_TERMS, a NULL cursor, a negative or non-finite
 * weight, a term with neither lens nor len_fn), CK_ECORRUPT/CK_ETRUNC (a cursor failed
 * while reading; *nout is then 0). Nothing allocates. */
int ck_bm25_topk_wand(ck_bm25_term_t *terms, size_t nterms, size_t k, ck_bm25_hit_t *out,
                      size_t *nout, ck_bm25_stats_t *stats);

/* Same contract and results; scores every doc of every list. */
int ck_bm25_topk_exhaustive(ck_bm25_term_t *terms, size_t nterms, size_t k, ck_bm25_hit_t *out,
                            size_t *nout, ck_bm25_stats_t *stats);

/* Options of the _ex variants; a zeroed struct (or NULL) means none. */
typedef struct ck_bm25_opts {
    /* Called on a candidate doc (in increasing doc order, each doc at most once) before it
     * is scored and may enter the top k; false drops it (filters, deleted or expired docs).
     * NULL accepts every doc. Must not touch the cursors. */
    bool (*bo_accept)(void *ctx, uint32_t doc);
    void *bo_accept_ctx;
    /* With bo_has_min_score, only docs scoring strictly above bo_min_score are collected,
     * and WAND prunes with it from the start (a multi-segment search passes the k-th score
     * of the segments searched before). */
    bool bo_has_min_score;
    double bo_min_score;
} ck_bm25_opts_t;

/* ck_bm25_topk_wand() / ck_bm25_topk_exhaustive() with options (opts may be NULL). Same
 * contract; both still return the same hits with bit-identical scores, accept and
 * min_score applied. bs_scored counts only accepted docs. CK_EINVAL also for a NaN
 * bo_min_score. */
int ck_bm25_topk_wand_ex(ck_bm25_term_t *terms, size_t nterms, size_t k, const ck_bm25_opts_t *opts,
                         ck_bm25_hit_t *out, size_t *nout, ck_bm25_stats_t *stats);
int ck_bm25_topk_exhaustive_ex(ck_bm25_term_t *terms, size_t nterms, size_t k,
                               const ck_bm25_opts_t *opts, ck_bm25_hit_t *out, size_t *nout,
                               ck_bm25_stats_t *stats);

#endif
