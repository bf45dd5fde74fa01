#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "search/bm25.h"
#include "search/postings.h"
#include "test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double rnd01(void)
{
    return (double)(rng() >> 11) / 9007199254740992.0;
}

#define NEAR(a, b, eps) (fabs((a) - (b)) <= (eps)*fmax(1.0, fabs(b)))

/* One encoded list, built with BM25 bounds from tfs and field lengths. */
typedef struct {
    uint8_t *bytes;
    size_t len;
    uint32_t df;
} list_t;

static list_t build_list(const uint32_t *docs, const uint32_t *tfs, uint32_t n,
                         const uint32_t *lens, double avgdl)
{
    ck_postings_writer_t w;
    ck_postings_writer_init(&w, false);
    for (uint32_t i = 0; i < n; i++)
        CHECK_EQ(ck_postings_writer_add(&w, docs[i], tfs[i], NULL, 0,
                                        ck_bm25_bound(tfs[i], lens[docs[i]], avgdl)),
                 0);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_postings_writer_finish(&w, &out), 0);
    ck_postings_writer_free(&w);
    list_t l = {NULL, 0, n};
    l.bytes = ck_wbuf_steal(&out, &l.len);
    return l;
}

static uint32_t len_cb(void *ctx, uint32_t doc)
{
    return ((const uint32_t *)ctx)[doc];
}

/* Tiny corpus, N = 4, field lengths 4, 2, 6, 4, so avgdl = 16 / 4 = 4:
 *   x: d0 (tf 1), d1 (tf 2)        df 2: idf = ln(1 + (4 - 2 + .5) / (2 + .5)) = ln 2
 *                                            = 0.6931471806
 *   y: d1 (tf 1)                   df 1: idf = ln(1 + 3.5 / 1.5) = ln(10 / 3) = 1.2039728043
 * K(dl) = k1 * (1 - b + b * dl / avgdl):  K(4) = 1.2 * 1 = 1.2;  K(2) = 1.2 * .625 = .75
 *   x in d0: tfn = 1 * 2.2 / (1 + 1.2)  = 1.0      score = 0.6931471806
 *   x in d1: tfn = 2 * 2.2 / (2 + .75)  = 1.6      score = 1.6 * ln 2       = 1.1090354889
 *   y in d1: tfn = 1 * 2.2 / (1 + .75)  = 1.2571428571
 *                                                  score = 1.2571.. * 1.2039.. = 1.5135658112
 * query "x y": d1 = 1.1090354889 + 1.5135658112 = 2.6226013001, d0 = 0.6931471806;
 * with boost 2 on y: d1 = 1.1090354889 + 3.0271316223 = 4.1361671112. */
CK_TEST(bm25_hand_computed)
{
    CHECK(NEAR(ck_bm25_idf(4, 2), 0.6931471806, 1e-9));
    CHECK(NEAR(ck_bm25_idf(4, 1), 1.2039728043, 1e-9));
    CHECK(NEAR(ck_bm25_tfn(1, 4, 4.0), 1.0, 1e-12));
    CHECK(NEAR(ck_bm25_tfn(2, 2, 4.0), 1.6, 1e-12));
    CHECK(NEAR(ck_bm25_tfn(1, 2, 4.0), 1.2571428571, 1e-9));
    CHECK(NEAR(ck_bm25_score(1.0, ck_bm25_idf(4, 1), 1, 2, 4.0), 1.5135658112, 1e-9));
    CHECK(NEAR(ck_bm25_score(2.0, ck_bm25_idf(4, 2), 2, 2, 4.0), 2.2180709778, 1e-9));
    CHECK(ck_bm25_idf(0, 0) == 0.0);
    CHECK(ck_bm25_idf(10, 10) > 0.0 && ck_bm25_idf(10, 99) == ck_bm25_idf(10, 10));
    CHECK(ck_bm25_tfn(0, 5, 4.0) == 0.0);
    CHECK(ck_bm25_tfn(UINT32_MAX, 0, 4.0) < CK_BM25_K1 + 1.0);
    CHECK(ck_bm25_tfn(3, 7, 0.0) == ck_bm25_tfn(3, 1, 1.0)); /* avgdl 0: dl/avgdl = 1 */

    /* bounds never below the score, whatever the rounding */
    for (int i = 0; i < 100000; i++) {
        uint32_t tf = 1 + (uint32_t)(rng() % 50), dl = (uint32_t)(rng() % 500);
        double avg = 0.5 + rnd01() * 100;
        CHECK((double)ck_bm25_bound(tf, dl, avg) >= ck_bm25_tfn(tf, dl, avg));
        CHECK((double)ck_bm25_bound(tf, dl, avg) - ck_bm25_tfn(tf, dl, avg) < 1e-6);
    }

    uint32_t lens[4] = {4, 2, 6, 4};
    uint32_t xd[] = {0, 1}, xt[] = {1, 2}, yd[] = {1}, yt[] = {1};
    list_t lx = build_list(xd, xt, 2, lens, 4.0), ly = build_list(yd, yt, 1, lens, 4.0);
    for (int boost = 1; boost <= 2; boost++) {
        for (int wand = 0; wand < 2; wand++) {
            ck_postings_t cx, cy;
            CHECK_EQ(ck_postings_open(lx.bytes, lx.len, &cx), 0);
            CHECK_EQ(ck_postings_open(ly.bytes, ly.len, &cy), 0);
            ck_bm25_term_t t[2] = {
                {&cx, ck_bm25_idf(4, 2), 4.0, lens, NULL, NULL},
                {&cy, boost * ck_bm25_idf(4, 1), 4.0, NULL, len_cb, lens},
            };
            ck_bm25_hit_t h[3];
            size_t n = 99;
            ck_bm25_stats_t st;
            int rc = wand ? ck_bm25_topk_wand(t, 2, 3, h, &n, &st)
                          : ck_bm25_topk_exhaustive(t, 2, 3, h, &n, &st);
            CHECK_EQ(rc, 0);
            CHECK_EQ(n, 2);
            CHECK_EQ(h[0].doc, 1);
            CHECK(NEAR(h[0].score, boost == 1 ? 2.6226013001 : 4.1361671112, 1e-9));
            CHECK_EQ(h[1].doc, 0);
            CHECK(NEAR(h[1].score, 0.6931471806, 1e-9));
            CHECK_EQ(st.bs_scored, 2);
        }
    }
    /* k = 1 keeps the best; k = 0 and no terms find nothing */
    ck_postings_t cx, cy;
    CHECK_EQ(ck_postings_open(lx.bytes, lx.len, &cx), 0);
    CHECK_EQ(ck_postings_open(ly.bytes, ly.len, &cy), 0);
    ck_bm25_term_t t[2] = {{&cx, ck_bm25_idf(4, 2), 4.0, lens, NULL, NULL},
                           {&cy, ck_bm25_idf(4, 1), 4.0, lens, NULL, NULL}};
    ck_bm25_hit_t h[1];
    size_t n = 99;
    CHECK_EQ(ck_bm25_topk_wand(t, 2, 1, h, &n, NULL), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(h[0].doc, 1);
    CHECK_EQ(ck_bm25_topk_wand(t, 2, 0, h, &n, NULL), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(ck_bm25_topk_exhaustive(t, 0, 1, h, &n, NULL), 0);
    CHECK_EQ(n, 0);
    /* bad arguments */
    t[1].bt_weight = -1;
    CHECK_EQ(ck_bm25_topk_wand(t, 2, 1, h, &n, NULL), CK_EINVAL);
    t[1].bt_weight = NAN;
    CHECK_EQ(ck_bm25_topk_exhaustive(t, 2, 1, h, &n, NULL), CK_EINVAL);
    t[1].bt_weight = 1;
    t[1].bt_lens = NULL;
    CHECK_EQ(ck_bm25_topk_wand(t, 2, 1, h, &n, NULL), CK_EINVAL);
    CHECK_EQ(ck_bm25_topk_wand(t, CK_BM25_MAX_TERMS + 1, 1, h, &n, NULL), CK_EINVAL);
    ck_free(lx.bytes);
    ck_free(ly.bytes);
}

/* ---- random corpora ---- */

#define NTERMS 8

typedef struct {
    uint32_t ndocs;
    uint32_t *lens;
    double avgdl;
    list_t lists[NTERMS];
} corpus_t;

/* Docs with random lengths; term j is in a doc with probability p[j] (decreasing, Zipf-
 * like), with a geometric-ish tf that grows a little with the doc's length. */
static corpus_t make_corpus(uint32_t ndocs, const double *p)
{
    corpus_t c = {ndocs, malloc(ndocs * sizeof(uint32_t)), 0, {{0}}};
    uint64_t sum = 0;
    for (uint32_t d = 0; d < ndocs; d++) {
        uint32_t l = rng() % 4 == 0 ? 1 + (uint32_t)(rng() % 400) : 5 + (uint32_t)(rng() % 60);
        c.lens[d] = l;
        sum += l;
    }
    c.avgdl = (double)sum / ndocs;
    uint32_t *docs = malloc(ndocs * sizeof(uint32_t)), *tfs = malloc(ndocs * sizeof(uint32_t));
    for (int j = 0; j < NTERMS; j++) {
        uint32_t n = 0;
        for (uint32_t d = 0; d < ndocs; d++) {
            if (rnd01() >= p[j])
                continue;
            uint32_t tf = 1;
            while (tf < 1000 && rnd01() < 0.35 + (c.lens[d] > 100 ? 0.2 : 0))
                tf++;
            docs[n] = d;
            tfs[n++] = tf;
        }
        if (n == 0) { /* a list has at least one doc */
            docs[0] = (uint32_t)(rng() % ndocs);
            tfs[0] = 1;
            n = 1;
        }
        c.lists[j] = build_list(docs, tfs, n, c.lens, c.avgdl);
    }
    free(docs);
    free(tfs);
    return c;
}

static void free_corpus(corpus_t *c)
{
    for (int j = 0; j < NTERMS; j++)
        ck_free(c->lists[j].bytes);
    free(c->lens);
}

/* Runs one query both ways, checks equal results; returns the scored counts. */
static void run_query(const corpus_t *c, const int *q, const double *boost, size_t nq, size_t k,
                      uint64_t *scored_wand, uint64_t *scored_exh)
{
    ck_postings_t cur[2][4];
    ck_bm25_term_t t[2][4];
    for (int m = 0; m < 2; m++) {
        for (size_t i = 0; i < nq; i++) {
            const list_t *l = &c->lists[q[i]];
            CHECK_EQ(ck_postings_open(l->bytes, l->len, &cur[m][i]), 0);
            t[m][i] = (ck_bm25_term_t){
                &cur[m][i], boost[i] * ck_bm25_idf(c->ndocs, l->df), c->avgdl, NULL, NULL, NULL};
            if (i % 2)
                t[m][i].bt_lens = c->lens;
            else {
                t[m][i].bt_len_fn = len_cb;
                t[m][i].bt_len_ctx = c->lens;
            }
        }
    }
    ck_bm25_hit_t *hw = malloc(k * sizeof *hw), *he = malloc(k * sizeof *he);
    size_t nw = 0, ne = 0;
    ck_bm25_stats_t sw, se;
    CHECK_EQ(ck_bm25_topk_wand(t[0], nq, k, hw, &nw, &sw), 0);
    CHECK_EQ(ck_bm25_topk_exhaustive(t[1], nq, k, he, &ne, &se), 0);
    CHECK_EQ(nw, ne);
    for (size_t i = 0; i < nw; i++) {
        if (hw[i].doc != he[i].doc || !NEAR(hw[i].score, he[i].score, 1e-6))
            CK_FAIL("hit %zu of %zu (k %zu, %zu terms): wand doc %u score %.17g, exhaustive doc "
                    "%u score %.17g",
                    i, nw, k, nq, hw[i].doc, hw[i].score, he[i].doc, he[i].score);
        CHECK(hw[i].score == he[i].score); /* same summation order: bit-identical */
        if (i > 0)
            CHECK(he[i - 1].score > he[i].score ||
                  (he[i - 1].score == he[i].score && he[i - 1].doc < he[i].doc));
    }
    CHECK(sw.bs_scored <= se.bs_scored);
    *scored_wand += sw.bs_scored;
    *scored_exh += se.bs_scored;
    free(hw);
    free(he);
}

CK_TEST(bm25_wand_equals_exhaustive)
{
    static const size_t ks[] = {1, 10, 100};
    uint64_t sw = 0, se = 0;
    for (int corpus = 0; corpus < 30; corpus++) {
        double p[NTERMS];
        double top = 0.2 + 0.6 * rnd01();
        for (int j = 0; j < NTERMS; j++)
            p[j] = top / pow(j + 1, 1.0 + rnd01()); /* Zipf-ish document frequencies */
        corpus_t c = make_corpus(2000 + (uint32_t)(rng() % 6000), p);
        for (int qi = 0; qi < 12; qi++) {
            int q[4];
            double boost[4];
            size_t nq = 1 + rng() % 4;
            for (size_t i = 0; i < nq; i++) {
                bool dup;
                do { /* distinct terms */
                    q[i] = (int)(rng() % NTERMS);
                    dup = false;
                    for (size_t j = 0; j < i; j++)
                        dup |= q[j] == q[i];
                } while (dup);
                boost[i] = rng() % 3 ? 1.0 : 0.25 + 3 * rnd01();
            }
            for (size_t ki = 0; ki < 3; ki++)
                run_query(&c, q, boost, nq, ks[ki], &sw, &se);
        }
        free_corpus(&c);
    }
    fprintf(stderr, "  random: wand scored %" PRIu64 " of exhaustive %" PRIu64 " docs\n", sw, se);
    CHECK(sw < se);
}

/* Many equal scores: ties at the k-th place must keep the smaller doc ids both ways. */
CK_TEST(bm25_wand_ties)
{
    uint32_t n = 3000;
    uint32_t *lens = malloc(n * 4), *docs = malloc(n * 4), *tfs = malloc(n * 4);
    for (uint32_t d = 0; d < n; d++)
        lens[d] = 10;
    for (int j = 0; j < 2; j++) {
        uint32_t m = 0;
        for (uint32_t d = j; d < n; d += 2 + j) {
            docs[m] = d;
            tfs[m++] = 1 + (d % 7 == 0);
        }
        list_t l = build_list(docs, tfs, m, lens, 10.0);
        ck_postings_t cw, ce;
        CHECK_EQ(ck_postings_open(l.bytes, l.len, &cw), 0);
        CHECK_EQ(ck_postings_open(l.bytes, l.len, &ce), 0);
        ck_bm25_term_t tw = {&cw, 1.0, 10.0, lens, NULL, NULL}, te = tw;
        te.bt_cur = &ce;
        ck_bm25_hit_t hw[50], he[50];
        size_t nw, ne;
        CHECK_EQ(ck_bm25_topk_wand(&tw, 1, 50, hw, &nw, NULL), 0);
        CHECK_EQ(ck_bm25_topk_exhaustive(&te, 1, 50, he, &ne, NULL), 0);
        CHECK_EQ(nw, 50);
        CHECK_EQ(ne, 50);
        for (size_t i = 0; i < 50; i++) {
            CHECK_EQ(hw[i].doc, he[i].doc);
            CHECK(hw[i].score == he[i].score);
        }
        /* the tf-2 docs come first, in doc order */
        CHECK_EQ(hw[0].doc % 7, 0);
        CHECK(hw[0].doc < hw[1].doc);
        ck_free(l.bytes);
    }
    free(lens);
    free(docs);
    free(tfs);
}

/* A rare, high-idf term with a common, low-idf one (k = 10): WAND scores few of the
 * common term's docs. And one term whose high scores sit in a few blocks: the block
 * maxima alone skip the rest. */
CK_TEST(bm25_wand_skips)
{
    uint32_t n = 100000;
    uint32_t *lens = malloc(n * 4), *docs = malloc(n * 4), *tfs = malloc(n * 4);
    for (uint32_t d = 0; d < n; d++)
        lens[d] = 20 + (uint32_t)(rng() % 20);
    double avg = 29.5;
    /* common: 90% of docs, tf 1..2 */
    uint32_t m = 0;
    for (uint32_t d = 0; d < n; d++)
        if (rng() % 10) {
            docs[m] = d;
            tfs[m++] = 1 + (uint32_t)(rng() % 2);
        }
    list_t common = build_list(docs, tfs, m, lens, avg);
    /* rare: 1% of docs */
    m = 0;
    for (uint32_t d = 0; d < n; d++)
        if (rng() % 100 == 0) {
            docs[m] = d;
            tfs[m++] = 1 + (uint32_t)(rng() % 3);
        }
    list_t rare = build_list(docs, tfs, m, lens, avg);
    /* blocky: every doc, tf 1, except a few docs with tf 30 in blocks 2 and 500 */
    m = 0;
    for (uint32_t d = 0; d < n; d++) {
        docs[m] = d;
        tfs[m++] = (d / 128 == 2 || d / 128 == 500) && d % 8 == 0 ? 30 : 1;
    }
    list_t blocky = build_list(docs, tfs, m, lens, avg);

    for (int c = 0; c < 2; c++) {
        ck_postings_t cur[2][2];
        ck_bm25_term_t t[2][2];
        size_t nq = c == 0 ? 2 : 1;
        for (int mth = 0; mth < 2; mth++) {
            if (c == 0) {
                CHECK_EQ(ck_postings_open(common.bytes, common.len, &cur[mth][0]), 0);
                CHECK_EQ(ck_postings_open(rare.bytes, rare.len, &cur[mth][1]), 0);
                t[mth][0] = (ck_bm25_term_t){
                    &cur[mth][0], ck_bm25_idf(n, common.df), avg, lens, NULL, NULL};
                t[mth][1] =
                    (ck_bm25_term_t){&cur[mth][1], ck_bm25_idf(n, rare.df), avg, lens, NULL, NULL};
            } else {
                CHECK_EQ(ck_postings_open(blocky.bytes, blocky.len, &cur[mth][0]), 0);
                t[mth][0] = (ck_bm25_term_t){
                    &cur[mth][0], ck_bm25_idf(n, blocky.df), avg, lens, NULL, NULL};
            }
        }
        ck_bm25_hit_t hw[10], he[10];
        size_t nw, ne;
        ck_bm25_stats_t sw, se;
        CHECK_EQ(ck_bm25_topk_wand(t[0], nq, 10, hw, &nw, &sw), 0);
        CHECK_EQ(ck_bm25_topk_exhaustive(t[1], nq, 10, he, &ne, &se), 0);
        CHECK_EQ(nw, 10);
        CHECK_EQ(ne, 10);
        for (size_t i = 0; i < 10; i++) {
            CHECK_EQ(hw[i].doc, he[i].doc);
            CHECK(hw[i].score == he[i].score);
        }
        fprintf(stderr,
                "  %s: wand scored %" PRIu64 " docs (%" PRIu64 " block skips), exhaustive %" PRIu64
                "\n",
                c == 0 ? "rare+common" : "one term, two hot blocks", sw.bs_scored,
                sw.bs_block_skips, se.bs_scored);
        CHECK(se.bs_scored >= 90000);
        CHECK(sw.bs_scored * 10 < se.bs_scored); /* under 10% of the docs scored */
        if (c == 1)
            CHECK(sw.bs_block_skips > 0);
    }
    ck_free(common.bytes);
    ck_free(rare.bytes);
    ck_free(blocky.bytes);
    free(lens);
    free(docs);
    free(tfs);
}

/* Damaged blocks (the header and skip table intact): both scorers stop with the cursor's
 * error and no hits, never crash or read out of bounds. */
CK_TEST(bm25_corrupt_list)
{
    uint32_t n = 2000;
    uint32_t *lens = malloc(n * 4), *docs = malloc(n * 4), *tfs = malloc(n * 4);
    for (uint32_t d = 0; d < n; d++) {
        lens[d] = 5 + d % 17;
        docs[d] = d;
        tfs[d] = 1 + d % 5;
    }
    list_t l = build_list(docs, tfs, n, lens, 13.0);
    uint8_t *t = malloc(l.len);
    int failed = 0;
    for (int round = 0; round < 400; round++) {
        memcpy(t, l.bytes, l.len);
        for (int k = 1 + (int)(rng() % 4); k; k--)
            t[l.len / 2 + rng() % (l.len - l.len / 2)] = (uint8_t)rng();
        for (int wand = 0; wand < 2; wand++) {
            ck_postings_t c;
            CHECK_EQ(ck_postings_open(t, l.len, &c), 0);
            ck_bm25_term_t tm = {&c, 1.0, 13.0, lens, NULL, NULL};
            ck_bm25_hit_t h[10];
            size_t nh = 99;
            int rc = wand ? ck_bm25_topk_wand(&tm, 1, 10, h, &nh, NULL)
                          : ck_bm25_topk_exhaustive(&tm, 1, 10, h, &nh, NULL);
            if (rc) {
                CHECK(rc == CK_ECORRUPT || rc == CK_ETRUNC);
                CHECK_EQ(nh, 0);
                failed++;
            } else {
                CHECK_EQ(nh, 10);
            }
        }
    }
    CHECK(failed > 0);
    free(t);
    ck_free(l.bytes);
    free(lens);
    free(docs);
    free(tfs);
}

/* ---- options: accept, min_score, bound scale ---- */

static bool accept_mod(void *ctx, uint32_t doc)
{
    uint32_t m = *(const uint32_t *)ctx;
    return doc % m != 1;
}

/* The scale keeps bounds valid: for random tf, dl and two averages, the score under the
 * scoring average never exceeds scale * the bound stored under the segment's average. */
CK_TEST(bm25_bound_scale_proof)
{
    CHECK(ck_bm25_bound_scale(8.0, 4.0) == 2.0);
    CHECK(ck_bm25_bound_scale(2.0, 4.0) == 1.0);
    CHECK(ck_bm25_bound_scale(0.0, 4.0) == 1.0);
    CHECK(ck_bm25_bound_scale(3.0, 0.0) == 1.0);
    for (int i = 0; i < 200000; i++) {
        uint32_t tf = 1 + (uint32_t)(rng() % 40), dl = (uint32_t)(rng() % 1000);
        double as = 0.5 + rnd01() * 200, a = 0.5 + rnd01() * 200;
        double sc = ck_bm25_bound_scale(a, as);
        CHECK(ck_bm25_tfn(tf, dl, a) <= sc * (double)ck_bm25_bound(tf, dl, as) * (1 + 1e-12));
    }
}

CK_TEST(bm25_wand_ex_equals_exhaustive)
{
    uint64_t sw = 0, se = 0;
    for (int corpus = 0; corpus < 12; corpus++) {
        double p[NTERMS];
        double top = 0.2 + 0.6 * rnd01();
        for (int j = 0; j < NTERMS; j++)
            p[j] = top / pow(j + 1, 1.0 + rnd01());
        corpus_t c = make_corpus(1500 + (uint32_t)(rng() % 4000), p);
        for (int qi = 0; qi < 16; qi++) {
            size_t nq = 1 + rng() % 4, k = (size_t[]){1, 7, 50}[rng() % 3];
            int q[4];
            for (size_t i = 0; i < nq; i++) {
                bool dup;
                do {
                    q[i] = (int)(rng() % NTERMS);
                    dup = false;
                    for (size_t j = 0; j < i; j++)
                        dup |= q[j] == q[i];
                } while (dup);
            }
            /* scoring avgdl differs from the bounds' avgdl (both directions) */
            double avg = c.avgdl * (qi % 3 == 0   ? 1.0
                                    : qi % 3 == 1 ? 0.5 + rnd01()
                                                  : 1 + 2 * rnd01());
            uint32_t mod = 2 + (uint32_t)(rng() % 4);
            ck_bm25_opts_t o = {0};
            if (qi % 2)
                o.bo_accept = accept_mod, o.bo_accept_ctx = &mod;
            if (qi % 4 >= 2)
                o.bo_has_min_score = true, o.bo_min_score = rnd01() * 3;
            ck_postings_t cur[2][4];
            ck_bm25_term_t t[2][4];
            for (int m = 0; m < 2; m++)
                for (size_t i = 0; i < nq; i++) {
                    const list_t *l = &c.lists[q[i]];
                    CHECK_EQ(ck_postings_open(l->bytes, l->len, &cur[m][i]), 0);
                    t[m][i] = (ck_bm25_term_t){
                        &cur[m][i], ck_bm25_idf(c.ndocs, l->df),      avg, c.lens, NULL,
                        NULL,       ck_bm25_bound_scale(avg, c.avgdl)};
                }
            ck_bm25_hit_t hw[50], he[50];
            size_t nw = 0, ne = 0;
            ck_bm25_stats_t a, b;
            CHECK_EQ(ck_bm25_topk_wand_ex(t[0], nq, k, &o, hw, &nw, &a), 0);
            CHECK_EQ(ck_bm25_topk_exhaustive_ex(t[1], nq, k, &o, he, &ne, &b), 0);
            CHECK_EQ(nw, ne);
            for (size_t i = 0; i < nw; i++) {
                CHECK_EQ(hw[i].doc, he[i].doc);
                CHECK(hw[i].score == he[i].score);
                if (o.bo_accept)
                    CHECK(hw[i].doc % mod != 1);
                if (o.bo_has_min_score)
                    CHECK(hw[i].score > o.bo_min_score);
            }
            sw += a.bs_scored;
            se += b.bs_scored;
        }
        free_corpus(&c);
    }
    fprintf(stderr, "  options: wand scored %" PRIu64 " of exhaustive %" PRIu64 " docs\n", sw, se);
    CHECK(sw < se);
    /* bad options */
    ck_postings_t cx;
    uint32_t lens[2] = {1, 1};
    uint32_t d[1] = {0}, tf[1] = {1};
    list_t l = build_list(d, tf, 1, lens, 1.0);
    CHECK_EQ(ck_postings_open(l.bytes, l.len, &cx), 0);
    ck_bm25_term_t t = {&cx, 1.0, 1.0, lens, NULL, NULL, 0.5};
    ck_bm25_hit_t h[1];
    size_t n;
    CHECK_EQ(ck_bm25_topk_wand_ex(&t, 1, 1, NULL, h, &n, NULL), CK_EINVAL);
    t.bt_bound_scale = 0;
    ck_bm25_opts_t o = {.bo_has_min_score = true, .bo_min_score = NAN};
    CHECK_EQ(ck_bm25_topk_wand_ex(&t, 1, 1, &o, h, &n, NULL), CK_EINVAL);
    ck_free(l.bytes);
}
