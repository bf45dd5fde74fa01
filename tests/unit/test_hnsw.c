#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/err.h"
#include "test.h"
#include "vector/hnsw.h"
#include "vector/vlog.h"

/* ---- data: a seeded Gaussian mixture (xorshift64*, Box-Muller) ---- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}
static double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
static float rng_gauss(rng_t *r)
{
    double u1 = rng_unit(r), u2 = rng_unit(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

typedef struct {
    uint32_t dims;
    int metric;
    size_t n;
    float *v;    /* n * dims, as given to ck_hnsw_add */
    double *aux; /* per vector: 1 / |v| (cosine) or |v|^2 (euclidean), for ranking */
} set_t;

#define NCENTRES 64

/* Vectors of the recall and filter tests. hnswlib runs about 6 times slower under
 * AddressSanitizer (and without its SSE code there, see hnsw.cc): half as many there. */
#if defined(__SANITIZE_ADDRESS__)
#define NBIG 10000
#else
#define NBIG 20000
#endif

/* n vectors around NCENTRES random centres (the same centres for any rng seed derived from
 * `world`); under dot the norms vary from 0.5 to 1.5. */
static float *gen(uint64_t world, uint64_t seed, uint32_t dims, size_t n, int metric)
{
    rng_t cr = {world * 0x9E3779B97F4A7C15ull + 1};
    float *c = malloc(sizeof(float) * NCENTRES * dims);
    for (size_t i = 0; i < (size_t)NCENTRES * dims; i++)
        c[i] = rng_gauss(&cr);
    rng_t r = {seed * 0xD1B54A32D192ED03ull + 7};
    float *v = malloc(sizeof(float) * n * dims);
    for (size_t i = 0; i < n; i++) {
        const float *ci = c + (rng_next(&r) % NCENTRES) * dims;
        float scale = metric == CK_VMETRIC_DOT ? (float)(0.5 + rng_unit(&r)) : 1.0f;
        for (uint32_t d = 0; d < dims; d++)
            v[i * dims + d] = scale * (ci[d] + 1.4f * rng_gauss(&r));
    }
    free(c);
    return v;
}

static float score_exact(int metric, const float *q, const float *v, uint32_t dims)
{
    double a = 0, qq = 0, vv = 0;
    if (metric == CK_VMETRIC_EUCLIDEAN) {
        for (uint32_t d = 0; d < dims; d++)
            a += ((double)q[d] - v[d]) * ((double)q[d] - v[d]);
        return (float)(1.0 / (1.0 + sqrt(a)));
    }
    for (uint32_t d = 0; d < dims; d++)
        a += (double)q[d] * v[d];
    if (metric == CK_VMETRIC_DOT)
        return (float)a;
    for (uint32_t d = 0; d < dims; d++) {
        qq += (double)q[d] * q[d];
        vv += (double)v[d] * v[d];
    }
    return qq > 0 && vv > 0 ? (float)(a / sqrt(qq * vv)) : 0.0f;
}

typedef struct {
    uint32_t lo, hi;
    uint32_t mod, rem; /* predicate: id % mod == rem (mod 0: none) */
    const uint8_t *deleted;
} xfilter_t;

static bool xf_allows(const xfilter_t *f, uint32_t id)
{
    if (id < f->lo || id >= f->hi)
        return false;
    if (f->deleted && f->deleted[id])
        return false;
    return !f->mod || id % f->mod == f->rem;
}

/* Exact top k under the filter: ids best first; returns how many. The scores it ranks
 * by are the metric's up to a constant factor or term, one dot product per vector. */
static size_t exact_topk(const set_t *s, const float *q, size_t k, const xfilter_t *f,
                         uint32_t *ids, float *scores)
{
    size_t got = 0;
    for (uint32_t id = 0; id < s->n; id++) {
        if (f && !xf_allows(f, id))
            continue;
        const float *v = s->v + (size_t)id * s->dims;
        double dot = 0;
        for (uint32_t d = 0; d < s->dims; d++)
            dot += (double)q[d] * v[d];
        float sc = s->metric == CK_VMETRIC_COSINE      ? (float)(dot * s->aux[id])
                   : s->metric == CK_VMETRIC_EUCLIDEAN ? (float)(2 * dot - s->aux[id])
                                                       : (float)dot;
        if (got == k && sc <= scores[k - 1])
            continue;
        size_t j = got < k ? got++ : k - 1;
        while (j > 0 && scores[j - 1] < sc) {
            scores[j] = scores[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        scores[j] = sc;
        ids[j] = id;
    }
    return got;
}

static ck_hnsw_t *build(const set_t *s, uint32_t m, uint32_t efc)
{
    ck_hnsw_t *h = NULL;
    CHECK_EQ(ck_hnsw_new(s->dims, s->metric, m, efc, 42, &h), 0);
    for (size_t i = 0; i < s->n; i++) {
        uint32_t id = UINT32_MAX;
        CHECK_EQ(ck_hnsw_add(h, s->v + i * s->dims, 1000000 + i, &id), 0);
        CHECK_EQ(id, i);
    }
    CHECK_EQ(ck_hnsw_count(h), s->n);
    return h;
}

typedef struct {
    const xfilter_t *xf;
    long calls;
} pred_ctx_t;

static bool pred(void *ctx, uint32_t id)
{
    pred_ctx_t *c = ctx;
    c->calls++;
    if (id < c->xf->lo || id >= c->xf->hi)
        CK_FAIL("predicate called for id %u outside [%u, %u)", id, c->xf->lo, c->xf->hi);
    return c->xf->mod ? id % c->xf->mod == c->xf->rem : true;
}

/* Mean recall@k of nq queries against the exact filtered top k; checks every hit is allowed,
 * carries its label and the right score, and that hits come best first. */
static double recall(const ck_hnsw_t *h, const set_t *s, const float *qs, size_t nq, size_t k,
                     size_t ef, const xfilter_t *xf)
{
    ck_hnsw_hit_t hits[64];
    uint32_t ids[64];
    float sc[64];
    double sum = 0;
    size_t counted = 0;
    for (size_t qi = 0; qi < nq; qi++) {
        const float *q = qs + qi * s->dims;
        pred_ctx_t pc = {xf, 0};
        ck_hnsw_filter_t f = CK_HNSW_FILTER_ALL;
        if (xf) {
            f.id_lo = xf->lo;
            f.id_hi = xf->hi;
            if (xf->mod) {
                f.allow = pred;
                f.ctx = &pc;
            }
        }
        size_t n = 99;
        CHECK_EQ(ck_hnsw_search(h, q, k, ef, xf ? &f : NULL, hits, &n), 0);
        size_t want = exact_topk(s, q, k, xf, ids, sc);
        if (want < k)
            CHECK_EQ(n, want);
        CHECK(n <= k);
        size_t found = 0;
        for (size_t i = 0; i < n; i++) {
            if (xf && !xf_allows(xf, hits[i].id))
                CK_FAIL("hit %u is not allowed by the filter", hits[i].id);
            CHECK(hits[i].id < s->n);
            CHECK(hits[i].label == 1000000 + (uint64_t)hits[i].id);
            float ex = score_exact(s->metric, q, s->v + (size_t)hits[i].id * s->dims, s->dims);
            if (fabsf(ex - hits[i].score) > 1e-4f * (1.0f + fabsf(ex)))
                CK_FAIL("score of %u: %g, exact %g", hits[i].id, hits[i].score, ex);
            if (i)
                CHECK(hits[i - 1].score >= hits[i].score - 1e-6f);
            for (size_t j = 0; j < want; j++)
                found += ids[j] == hits[i].id;
        }
        if (want) {
            sum += (double)found / (double)want;
            counted++;
        }
    }
    return counted ? sum / (double)counted : 1.0;
}

static set_t make_set(int metric, size_t n, uint32_t dims)
{
    set_t s = {dims, metric, n, gen(1, 2, dims, n, metric), malloc(sizeof(double) * n)};
    for (size_t i = 0; i < n; i++) {
        double nn = 0;
        for (uint32_t d = 0; d < dims; d++)
            nn += (double)s.v[i * dims + d] * s.v[i * dims + d];
        s.aux[i] = metric == CK_VMETRIC_COSINE ? (nn > 0 ? 1 / sqrt(nn) : 0) : nn;
    }
    return s;
}

static void free_set(set_t *s)
{
    free(s->v);
    free(s->aux);
}

static void recall_test(int metric)
{
    set_t s = make_set(metric, NBIG, 32);
    float *qs = gen(1, 99, 32, 200, metric);
    ck_hnsw_t *h = build(&s, 16, 200);
    double r = recall(h, &s, qs, 200, 10, 64, NULL);
    printf("    recall@10 (metric %d, %d x 32, ef 64): %.4f\n", metric, NBIG, r);
    fflush(stdout);
    CHECK(r >= 0.95);
    ck_hnsw_free(h);
    free(qs);
    free_set(&s);
}

CK_TEST(hnsw_recall_cosine)
{
    recall_test(CK_VMETRIC_COSINE);
}

CK_TEST(hnsw_recall_dot)
{
    recall_test(CK_VMETRIC_DOT);
}

CK_TEST(hnsw_recall_euclidean)
{
    recall_test(CK_VMETRIC_EUCLIDEAN);
}

CK_TEST(hnsw_filter)
{
    set_t s = make_set(CK_VMETRIC_COSINE, NBIG, 32);
    float *qs = gen(1, 98, 32, 150, CK_VMETRIC_COSINE);
    ck_hnsw_t *h = build(&s, 16, 200);
    const struct {
        const char *what;
        xfilter_t f;
        bool exact; /* a range below 32 * ef: the exact scan */
    } cases[] = {
        {"large range", {NBIG * 3 / 20, NBIG * 17 / 20, 0, 0, NULL}, false},
        {"range to the end", {NBIG * 3 / 5, NBIG, 0, 0, NULL}, false},
        {"small range", {NBIG / 4, NBIG / 4 + 600, 0, 0, NULL}, true},
        {"range of one", {777, 778, 0, 0, NULL}, true},
        {"predicate 1/3", {0, UINT32_MAX, 3, 1, NULL}, false},
        {"predicate 1/50", {0, UINT32_MAX, 50, 7, NULL}, false},
        {"range and predicate", {NBIG / 20, NBIG * 3 / 4, 2, 0, NULL}, false},
        {"small range and predicate", {NBIG * 9 / 20, NBIG * 9 / 20 + 1500, 4, 3, NULL}, true},
        {"empty range", {4000, 4000, 0, 0, NULL}, true},
        {"range past the end", {NBIG + 5000, NBIG + 10000, 0, 0, NULL}, true},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double r = recall(h, &s, qs, 150, 10, 64, &cases[c].f);
        printf("    %-26s recall@10 %.4f\n", cases[c].what, r);
        fflush(stdout);
        if (cases[c].exact)
            CHECK(r == 1.0);
        else
            CHECK(r >= 0.95);
    }
    /* A graph walk, not a scan in disguise: the predicate runs for a small part of the ids. */
    xfilter_t third = {0, UINT32_MAX, 3, 1, NULL};
    pred_ctx_t tc = {&third, 0};
    for (size_t qi = 0; qi < 150; qi++) {
        ck_hnsw_filter_t f3 = {0, UINT32_MAX, pred, &tc};
        ck_hnsw_hit_t h3[10];
        size_t n3;
        CHECK_EQ(ck_hnsw_search(h, qs + qi * 32, 10, 64, &f3, h3, &n3), 0);
        CHECK_EQ(n3, 10);
    }
    printf("    predicate 1/3: %.0f predicate calls per search over %d ids\n",
           (double)tc.calls / 150, NBIG);
    fflush(stdout);
    CHECK(tc.calls / 150 < NBIG / 10);
    /* The predicate runs only inside the range, at most once per id and search. */
    xfilter_t xf = {2000, 2000 + 32 * 64, 2, 0, NULL};
    pred_ctx_t pc = {&xf, 0};
    ck_hnsw_filter_t f = {xf.lo, xf.hi, pred, &pc};
    ck_hnsw_hit_t hits[10];
    size_t n;
    CHECK_EQ(ck_hnsw_search(h, qs, 10, 64, &f, hits, &n), 0);
    CHECK_EQ(n, 10);
    CHECK(pc.calls > 0 && pc.calls <= (long)(xf.hi - xf.lo));
    ck_hnsw_free(h);
    free(qs);
    free_set(&s);
}

CK_TEST(hnsw_deleted)
{
    set_t s = make_set(CK_VMETRIC_EUCLIDEAN, 6000, 32);
    float *qs = gen(1, 97, 32, 100, CK_VMETRIC_EUCLIDEAN);
    ck_hnsw_t *h = build(&s, 12, 100);
    uint8_t *del = calloc(s.n, 1);
    for (uint32_t id = 0; id < s.n; id++) {
        if (id < 1500 || id % 4 == 1) { /* a retention cut and scattered deletes */
            CHECK_EQ(ck_hnsw_mark_deleted(h, id), 0);
            del[id] = 1;
        }
    }
    CHECK_EQ(ck_hnsw_mark_deleted(h, 1), CK_EEXIST);
    CHECK_EQ(ck_hnsw_mark_deleted(h, (uint32_t)s.n), CK_ERANGE);
    CHECK_EQ(ck_hnsw_count(h), s.n);
    float v[32];
    CHECK_EQ(ck_hnsw_get(h, 3, v), 0); /* a deleted id keeps its vector */
    CHECK_MEM(v, s.v + 3 * 32, sizeof(v));
    CHECK_EQ(ck_hnsw_get(h, (uint32_t)s.n, v), CK_ERANGE);

    xfilter_t all = {0, UINT32_MAX, 0, 0, del};
    double r = recall(h, &s, qs, 100, 10, 64, &all); /* graph walk (6000 >= 32 * 64) */
    printf("    recall@10 with 1/2 deleted, ef 64: %.4f\n", r);
    fflush(stdout);
    CHECK(r >= 0.95);
    xfilter_t part = {1000, 1900, 0, 0, del}; /* exact scan, mostly deleted */
    CHECK(recall(h, &s, qs, 100, 10, 32, &part) == 1.0);
    xfilter_t pr = {0, UINT32_MAX, 3, 0, del};
    CHECK(recall(h, &s, qs, 100, 10, 32, &pr) >= 0.95);

    /* Everything deleted: nothing comes back, by either path. */
    for (uint32_t id = 0; id < s.n; id++)
        if (!del[id])
            CHECK_EQ(ck_hnsw_mark_deleted(h, id), 0);
    ck_hnsw_hit_t hits[10];
    size_t n = 9;
    CHECK_EQ(ck_hnsw_search(h, qs, 10, 32, NULL, hits, &n), 0);
    CHECK_EQ(n, 0);
    ck_hnsw_filter_t f = {10, 20, NULL, NULL};
    CHECK_EQ(ck_hnsw_search(h, qs, 10, 32, &f, hits, &n), 0);
    CHECK_EQ(n, 0);
    ck_hnsw_free(h);
    free(del);
    free(qs);
    free_set(&s);
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    CHECK_EQ(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK_EQ(fwrite(b, 1, len, f), len);
    fclose(f);
}

static void same_results(const ck_hnsw_t *a, const ck_hnsw_t *b, const float *qs, size_t nq,
                         uint32_t dims, const ck_hnsw_filter_t *f)
{
    ck_hnsw_hit_t ha[20], hb[20];
    for (size_t qi = 0; qi < nq; qi++) {
        size_t na, nb;
        CHECK_EQ(ck_hnsw_search(a, qs + qi * dims, 20, 40, f, ha, &na), 0);
        CHECK_EQ(ck_hnsw_search(b, qs + qi * dims, 20, 40, f, hb, &nb), 0);
        CHECK_EQ(na, nb);
        for (size_t i = 0; i < na; i++) {
            CHECK_EQ(ha[i].id, hb[i].id);
            CHECK(ha[i].label == hb[i].label);
            CHECK_MEM(&ha[i].score, &hb[i].score, sizeof(float));
        }
    }
}

CK_TEST(hnsw_save_load)
{
    const int metrics[] = {CK_VMETRIC_COSINE, CK_VMETRIC_DOT, CK_VMETRIC_EUCLIDEAN};
    for (int mi = 0; mi < 3; mi++) {
        int metric = metrics[mi];
        set_t s = make_set(metric, 5000, 24);
        float *qs = gen(1, 96, 24, 200, metric);
        float *more = gen(1, 95, 24, 1500, metric);
        ck_hnsw_t *h = build(&s, 8, 60);
        for (uint32_t id = 0; id < s.n; id += 7)
            CHECK_EQ(ck_hnsw_mark_deleted(h, id), 0);
        char path[512], native[512];
        snprintf(path, sizeof(path), "%s/p0.hnsw", ck_test_tmpdir());
        snprintf(native, sizeof(native), "%s/native.hnsw", ck_test_tmpdir());
        CHECK_EQ(ck_hnsw_save(h, path), 0);
        CHECK(access(path, F_OK) == 0);
        char tmp[600];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        CHECK(access(tmp, F_OK) != 0);

        /* Our bytes before the labels and trailer are hnswlib's saveIndex output. */
        CHECK_EQ(ck__hnsw_save_native(h, native), 0);
        size_t la, lb;
        uint8_t *fa = read_all(path, &la), *fb = read_all(native, &lb);
        CHECK_EQ(la, lb + 8 * s.n + 48);
        CHECK_MEM(fa, fb, lb);
        free(fa);
        free(fb);

        ck_hnsw_t *l = NULL;
        CHECK_EQ(ck_hnsw_load(path, 24, metric, 8, 60, &l), 0);
        CHECK_EQ(ck_hnsw_count(l), s.n);
        CHECK_EQ(ck_hnsw_dims(l), 24);
        float va[24], vb[24];
        for (uint32_t id = 0; id < s.n; id += 97) {
            CHECK_EQ(ck_hnsw_get(h, id, va), 0);
            CHECK_EQ(ck_hnsw_get(l, id, vb), 0);
            CHECK_MEM(va, vb, sizeof(va));
        }
        CHECK_EQ(ck_hnsw_mark_deleted(l, 7), CK_EEXIST); /* deletions survive */
        same_results(h, l, qs, 200, 24, NULL);
        ck_hnsw_filter_t f = {1000, 4000, NULL, NULL};
        same_results(h, l, qs, 200, 24, &f);
        ck_hnsw_filter_t small = {100, 900, NULL, NULL};
        same_results(h, l, qs, 50, 24, &small);

        /* Adds after the load build the graph the original builds (same level draws). */
        for (size_t i = 0; i < 1500; i++) {
            uint32_t ia, ib;
            CHECK_EQ(ck_hnsw_add(h, more + i * 24, 7 + i, &ia), 0);
            CHECK_EQ(ck_hnsw_add(l, more + i * 24, 7 + i, &ib), 0);
            CHECK_EQ(ia, s.n + i);
            CHECK_EQ(ib, ia);
        }
        same_results(h, l, qs, 200, 24, NULL);

        /* Saving the loaded graph again gives the original's file, but for the capacity
         * (bytes 8..16, which the body CRC covers). */
        char p2[600];
        snprintf(p2, sizeof(p2), "%s/p1.hnsw", ck_test_tmpdir());
        CHECK_EQ(ck_hnsw_save(h, path), 0);
        CHECK_EQ(ck_hnsw_save(l, p2), 0);
        fa = read_all(path, &la);
        fb = read_all(p2, &lb);
        CHECK_EQ(la, lb);
        CHECK_MEM(fa, fb, 8);
        CHECK_MEM(fa + 16, fb + 16, la - 16 - 8);
        free(fa);
        free(fb);
        ck_hnsw_free(l);
        ck_hnsw_free(h);
        free(more);
        free(qs);
        free_set(&s);
    }
}

/* Rewrites both CRCs of a file image after a deliberate change, so only the structure
 * checks can catch it. */
static void fix_crcs(uint8_t *b, size_t len)
{
    uint8_t *t = b + len - 48;
    uint64_t g, n;
    memcpy(&g, t + 24, 8);
    memcpy(&n, t + 16, 8);
    uint32_t body = ck_crc32c(0, b, (size_t)(g + 8 * n));
    memcpy(t + 40, &body, 4);
    uint32_t tc = ck_crc32c(0, t, 44);
    memcpy(t + 44, &tc, 4);
}

static int load_image(const char *path, const uint8_t *b, size_t len)
{
    write_all(path, b, len);
    ck_hnsw_t *h = (ck_hnsw_t *)(uintptr_t)1;
    int rc = ck_hnsw_load(path, 16, CK_VMETRIC_COSINE, 6, 50, &h);
    if (rc)
        CHECK(h == NULL);
    ck_hnsw_free(h);
    return rc;
}

CK_TEST(hnsw_load_damaged)
{
    set_t s = make_set(CK_VMETRIC_COSINE, 3000, 16);
    ck_hnsw_t *h = build(&s, 6, 50);
    char path[512], bad[512];
    snprintf(path, sizeof(path), "%s/p0.hnsw", ck_test_tmpdir());
    snprintf(bad, sizeof(bad), "%s/bad.hnsw", ck_test_tmpdir());
    ck_hnsw_t *l = (ck_hnsw_t *)(uintptr_t)1;
    CHECK_EQ(ck_hnsw_load(path, 16, CK_VMETRIC_COSINE, 6, 50, &l), CK_ENOENT);
    CHECK(l == NULL);
    CHECK_EQ(ck_hnsw_save(h, path), 0);
    size_t len;
    uint8_t *img = read_all(path, &len);
    CHECK_EQ(load_image(bad, img, len), 0);

    /* Other parameters. */
    CHECK_EQ(ck_hnsw_load(path, 17, CK_VMETRIC_COSINE, 6, 50, &l), CK_EEXIST);
    CHECK_EQ(ck_hnsw_load(path, 16, CK_VMETRIC_DOT, 6, 50, &l), CK_EEXIST);
    CHECK_EQ(ck_hnsw_load(path, 16, CK_VMETRIC_COSINE, 8, 50, &l), CK_EEXIST);
    CHECK_EQ(ck_hnsw_load(path, 16, 9, 6, 50, &l), CK_EINVAL);
    CHECK(l == NULL);
    CHECK_EQ(ck_hnsw_load(path, 16, CK_VMETRIC_COSINE, 6, 400, &l), 0); /* efc is free */
    ck_hnsw_free(l);

    /* Truncated anywhere. */
    const size_t cuts[] = {0, 1, 47, 48, 96, 100, len / 3, len / 2, len - 49, len - 48, len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        CHECK_EQ(load_image(bad, img, cuts[i]), CK_ECORRUPT);
    /* One bad byte anywhere: header, base layer, upper layers, labels, trailer. */
    for (size_t pos = 0; pos < len; pos += len / 211 + 1) {
        uint8_t *c = malloc(len);
        memcpy(c, img, len);
        c[pos] ^= 0x10;
        int rc = load_image(bad, c, len);
        if (rc != CK_ECORRUPT)
            CK_FAIL("flipped byte %zu of %zu: rc %d", pos, len, rc);
        free(c);
    }
    /* Longer than its trailer says. */
    uint8_t *longer = malloc(len + 8);
    memcpy(longer, img, len);
    memcpy(longer + len, img + len - 8, 8);
    CHECK_EQ(load_image(bad, longer, len + 8), CK_ECORRUPT);
    free(longer);

    /* Changes with valid checksums: the structure checks catch them. */
    const size_t S = 4 + 8 * 6 + 4 * 16 + 8, n = s.n;
    uint8_t *c = malloc(len);
    memcpy(c, img, len);
    fix_crcs(c, len);
    CHECK_EQ(load_image(bad, c, len), 0); /* fix_crcs alone changes nothing */
    struct {
        const char *what;
        size_t pos;
        uint32_t val;
        int width;
    } forged[] = {
        {"base link to id n", 96 + 5 * S + 4, (uint32_t)n, 4},
        {"base link far out", 96 + 9 * S + 4, 0xfffffff0u, 4},
        {"base link count > 2m", 96 + 11 * S, 13, 2},
        {"entry point out of range", 52, (uint32_t)n, 4},
        {"entry point not on the top level", 52, 0 /* set below */, 4},
        {"max level huge", 48, 100000, 4},
        {"hnswlib label duplicate", 96 + 1 * S + 4 + 8 * 6 + 4 * 16, 0, 4},
        {"element size", 24, 12345, 4},
        {"count", 16, 2999, 4},
    };
    /* A node without upper layers, and the first upper-layer list of some node. */
    uint32_t flat = 0;
    for (size_t p = 96 + n * S; flat < n; flat++) {
        uint32_t l;
        memcpy(&l, img + p, 4);
        if (!l)
            break;
        p += 4 + l;
    }
    CHECK(flat < n);
    forged[4].val = flat;
    size_t p = 96 + n * S, up_list = 0, up_len_at = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t l;
        memcpy(&l, img + p, 4);
        if (l && !up_list) {
            up_len_at = p;
            up_list = p + 4;
        }
        p += 4 + l;
    }
    CHECK(up_list != 0);
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        memcpy(c, img, len);
        if (forged[i].width == 4)
            memcpy(c + forged[i].pos, &forged[i].val, 4);
        else
            memcpy(c + forged[i].pos, &(uint16_t){(uint16_t)forged[i].val}, 2);
        fix_crcs(c, len);
        int rc = load_image(bad, c, len);
        if (rc != CK_ECORRUPT)
            CK_FAIL("forged %s: rc %d", forged[i].what, rc);
    }
    memcpy(c, img, len);
    memcpy(c + up_list + 4, &(uint32_t){(uint32_t)n + 3}, 4); /* upper link out of range */
    memcpy(c + up_list, &(uint16_t){1}, 2);
    fix_crcs(c, len);
    CHECK_EQ(load_image(bad, c, len), CK_ECORRUPT);
    memcpy(c, img, len);
    memcpy(c + up_len_at, &(uint32_t){7}, 4); /* not a whole number of lists */
    fix_crcs(c, len);
    CHECK_EQ(load_image(bad, c, len), CK_ECORRUPT);
    /* An upper-layer link to a node without that layer. */
    memcpy(c, img, len);
    memcpy(c + up_list + 4, &flat, 4);
    memcpy(c + up_list, &(uint16_t){1}, 2);
    fix_crcs(c, len);
    CHECK_EQ(load_image(bad, c, len), CK_ECORRUPT);
    free(c);
    free(img);

    /* The good file still loads and works after all that. */
    CHECK_EQ(ck_hnsw_load(path, 16, CK_VMETRIC_COSINE, 6, 50, &l), 0);
    CHECK_EQ(ck_hnsw_count(l), n);
    ck_hnsw_free(l);
    ck_hnsw_free(h);
    free_set(&s);
}

CK_TEST(hnsw_edges)
{
    ck_hnsw_t *h = NULL;
    CHECK_EQ(ck_hnsw_new(0, CK_VMETRIC_COSINE, 16, 200, 1, &h), CK_EINVAL);
    CHECK_EQ(ck_hnsw_new(CK_HNSW_MAX_DIMS + 1, CK_VMETRIC_COSINE, 16, 200, 1, &h), CK_EINVAL);
    CHECK_EQ(ck_hnsw_new(8, 0, 16, 200, 1, &h), CK_EINVAL);
    CHECK_EQ(ck_hnsw_new(8, CK_VMETRIC_COSINE, 1, 200, 1, &h), CK_EINVAL);
    CHECK_EQ(ck_hnsw_new(8, CK_VMETRIC_COSINE, 16, 0, 1, &h), CK_EINVAL);
    CHECK(h == NULL);
    CHECK_EQ(ck_hnsw_new(8, CK_VMETRIC_COSINE, 16, 200, 1, &h), 0);
    CHECK_EQ(ck_hnsw_dims(h), 8);

    /* Empty graph: searches find nothing; it saves and loads. */
    float q[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ck_hnsw_hit_t hits[16];
    size_t n = 5;
    CHECK_EQ(ck_hnsw_search(h, q, 10, 50, NULL, hits, &n), 0);
    CHECK_EQ(n, 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/empty.hnsw", ck_test_tmpdir());
    CHECK_EQ(ck_hnsw_save(h, path), 0);
    ck_hnsw_t *l = NULL;
    CHECK_EQ(ck_hnsw_load(path, 8, CK_VMETRIC_COSINE, 16, 200, &l), 0);
    CHECK_EQ(ck_hnsw_count(l), 0);
    CHECK_EQ(ck_hnsw_search(l, q, 10, 50, NULL, hits, &n), 0);
    CHECK_EQ(n, 0);
    uint32_t id;
    CHECK_EQ(ck_hnsw_add(l, q, 5, &id), 0); /* a loaded empty graph takes adds */
    CHECK_EQ(id, 0);
    ck_hnsw_free(l);

    /* Bad input. */
    float nan[8] = {0, 0, NAN, 0, 0, 0, 0, 0}, inf[8] = {INFINITY};
    CHECK_EQ(ck_hnsw_add(h, nan, 1, &id), CK_EINVAL);
    CHECK_EQ(ck_hnsw_add(h, inf, 1, &id), CK_EINVAL);
    CHECK_EQ(ck_hnsw_add(h, NULL, 1, &id), CK_EINVAL);
    CHECK_EQ(ck_hnsw_search(h, nan, 10, 50, NULL, hits, &n), CK_EINVAL);
    CHECK_EQ(ck_hnsw_search(h, q, 10, 50, NULL, NULL, &n), CK_EINVAL);
    CHECK_EQ(ck_hnsw_search(h, q, 10, 50, NULL, hits, NULL), CK_EINVAL);
    CHECK_EQ(ck_hnsw_count(h), 0);

    /* k larger than the count: all of them, best first, exact. A zero vector under cosine
     * is stored as is and scores 0. Stored vectors are normalised. */
    float vs[5][8] = {{1, 0, 0, 0, 0, 0, 0, 0},
                      {0, 2, 0, 0, 0, 0, 0, 0},
                      {1, 2, 3, 4, 5, 6, 7, 9},
                      {0, 0, 0, 0, 0, 0, 0, 0},
                      {-1, -2, -3, -4, -5, -6, -7, -8}};
    for (uint32_t i = 0; i < 5; i++) {
        CHECK_EQ(ck_hnsw_add(h, vs[i], 100 + i, &id), 0);
        CHECK_EQ(id, i);
    }
    float got[8];
    CHECK_EQ(ck_hnsw_get(h, 1, got), 0);
    CHECK(got[1] == 1.0f);
    CHECK_EQ(ck_hnsw_get(h, 3, got), 0);
    CHECK_MEM(got, vs[3], sizeof(got));
    CHECK_EQ(ck_hnsw_search(h, q, 16, 1, NULL, hits, &n), 0);
    CHECK_EQ(n, 5);
    CHECK_EQ(hits[0].id, 2);
    CHECK(hits[0].label == 102);
    CHECK(fabsf(hits[0].score - score_exact(CK_VMETRIC_COSINE, q, vs[2], 8)) < 1e-5f);
    CHECK_EQ(hits[4].id, 4);
    CHECK(fabsf(hits[4].score + 1.0f) < 1e-5f);
    bool zero_seen = false;
    for (size_t i = 0; i < n; i++)
        if (hits[i].id == 3) {
            zero_seen = true;
            CHECK(fabsf(hits[i].score) < 1e-6f);
        }
    CHECK(zero_seen);
    /* A zero query scores 0 against everything. */
    float zq[8] = {0};
    CHECK_EQ(ck_hnsw_search(h, zq, 3, 10, NULL, hits, &n), 0);
    CHECK_EQ(n, 3);
    CHECK(hits[0].score == 0.0f);
    /* k 0. */
    n = 7;
    CHECK_EQ(ck_hnsw_search(h, q, 0, 10, NULL, NULL, &n), 0);
    CHECK_EQ(n, 0);
    ck_hnsw_free(h);

    /* Euclidean and dot scores on a tiny set. */
    CHECK_EQ(ck_hnsw_new(2, CK_VMETRIC_EUCLIDEAN, 4, 10, 1, &h), 0);
    float a[2] = {3, 4}, b[2] = {0, 0}, qq[2] = {0, 0};
    CHECK_EQ(ck_hnsw_add(h, a, 1, NULL), 0);
    CHECK_EQ(ck_hnsw_add(h, b, 2, NULL), 0);
    CHECK_EQ(ck_hnsw_search(h, qq, 5, 5, NULL, hits, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(hits[0].id == 1 && hits[0].score == 1.0f);
    CHECK(fabsf(hits[1].score - 1.0f / 6.0f) < 1e-6f);
    ck_hnsw_free(h);
    CHECK_EQ(ck_hnsw_new(2, CK_VMETRIC_DOT, 4, 10, 1, &h), 0);
    CHECK_EQ(ck_hnsw_add(h, a, 1, NULL), 0);
    CHECK_EQ(ck_hnsw_add(h, b, 2, NULL), 0);
    float qd[2] = {1, 1};
    CHECK_EQ(ck_hnsw_search(h, qd, 5, 5, NULL, hits, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(hits[0].id == 0 && fabsf(hits[0].score - 7.0f) < 1e-5f);
    CHECK(fabsf(hits[1].score) < 1e-6f);
    CHECK_EQ(ck_hnsw_reserve(h, 1000), 0);
    CHECK_EQ(ck_hnsw_reserve(h, 10), 0);
    CHECK_EQ(ck_hnsw_reserve(h, (uint64_t)CK_HNSW_MAX_COUNT + 1), CK_ETOOBIG);
    CHECK_EQ(ck_hnsw_count(h), 2);
    ck_hnsw_free(h);
    ck_hnsw_free(NULL);
}

typedef struct {
    ck_hnsw_t *h;
    const set_t *s;
    size_t first, n;
} adder_t;

static void *adder(void *arg)
{
    adder_t *a = arg;
    for (size_t i = a->first; i < a->first + a->n; i++)
        if (ck_hnsw_add(a->h, a->s->v + i * a->s->dims, 1000000 + i, NULL) != 0)
            return (void *)1;
    return NULL;
}

/* Adds on several threads at once (a bulk build): every vector gets in once, under some
 * id, and the graph is as good. */
CK_TEST(hnsw_concurrent_add)
{
    set_t s = make_set(CK_VMETRIC_COSINE, 8000, 32);
    float *qs = gen(1, 94, 32, 100, CK_VMETRIC_COSINE);
    ck_hnsw_t *h = NULL;
    CHECK_EQ(ck_hnsw_new(32, CK_VMETRIC_COSINE, 16, 100, 3, &h), 0);
    enum { T = 4 };
    pthread_t th[T];
    adder_t a[T];
    for (int i = 0; i < T; i++) {
        a[i] = (adder_t){h, &s, i * s.n / T, s.n / T};
        CHECK_EQ(pthread_create(&th[i], NULL, adder, &a[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL);
    }
    CHECK_EQ(ck_hnsw_count(h), s.n);
    /* Ids follow the adds' order, not the vectors': map each id back by its label. */
    uint8_t *seen = calloc(s.n, 1);
    float v[32], want[32];
    for (uint32_t id = 0; id < s.n; id++) {
        ck_hnsw_hit_t hit[1];
        size_t n;
        CHECK_EQ(ck_hnsw_get(h, id, v), 0);
        ck_hnsw_filter_t f = {id, id + 1, NULL, NULL};
        CHECK_EQ(ck_hnsw_search(h, v, 1, 1, &f, hit, &n), 0);
        CHECK_EQ(n, 1);
        uint64_t i = hit[0].label - 1000000;
        CHECK(i < s.n && !seen[i]);
        seen[i] = 1;
        double nn = 0;
        for (int d = 0; d < 32; d++)
            nn += (double)s.v[i * 32 + d] * s.v[i * 32 + d];
        for (int d = 0; d < 32; d++)
            want[d] = (float)(s.v[i * 32 + d] / sqrt(nn));
        for (int d = 0; d < 32; d++)
            CHECK(fabsf(want[d] - v[d]) < 1e-5f);
    }
    free(seen);
    /* Recall by labels: search, then compare the vectors' indexes. */
    ck_hnsw_hit_t hits[10];
    uint32_t ids[10];
    float sc[10];
    double sum = 0;
    for (size_t qi = 0; qi < 100; qi++) {
        size_t n;
        CHECK_EQ(ck_hnsw_search(h, qs + qi * 32, 10, 64, NULL, hits, &n), 0);
        CHECK_EQ(n, 10);
        exact_topk(&s, qs + qi * 32, 10, NULL, ids, sc);
        for (size_t i = 0; i < 10; i++)
            for (size_t j = 0; j < 10; j++)
                sum += hits[i].label - 1000000 == ids[j];
    }
    printf("    recall@10 after 4-thread build: %.4f\n", sum / 1000);
    fflush(stdout);
    CHECK(sum / 1000 >= 0.95);
    ck_hnsw_free(h);
    free(qs);
    free_set(&s);
}
