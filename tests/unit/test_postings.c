#include <math.h>
#include <time.h>

#include "core/alloc.h"
#include "search/postings.h"
#include "test.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A reference list in plain arrays. */
typedef struct {
    uint32_t n;
    bool with_pos;
    uint32_t *docs, *tfs;
    float *bounds;
    uint64_t *pos_off; /* n + 1 offsets into pos */
    uint32_t *pos;
} ref_t;

enum { DENSE, SPARSE, EXTREME };

static ref_t make_ref(uint32_t n, int mode, bool with_pos, bool big_tf)
{
    ref_t r = {
        n,   with_pos, malloc(n * 4ull), malloc(n * 4ull), malloc(n * 4ull), malloc((n + 1) * 8ull),
        NULL};
    uint64_t doc = mode == DENSE ? rng() % 5 : rng() % 1000;
    uint64_t span = (uint64_t)CK_POSTINGS_MAX_DOC / n; /* sparse gaps stay in range */
    uint64_t npos = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i) {
            uint64_t gap = mode == DENSE ? 1 + rng() % 3 : 1 + rng() % span;
            if (mode == SPARSE && rng() % 8 == 0)
                gap = 1;
            doc += gap;
        }
        r.docs[i] = (uint32_t)doc;
        uint32_t tf_range = rng() % 4 == 0 ? 40 : 3; /* own statement: rng() order fixed */
        uint32_t tf = 1 + (uint32_t)(rng() % tf_range);
        if (big_tf && rng() % 16 == 0)
            tf = rng() % 2 ? UINT32_MAX : (uint32_t)rng() | 1;
        r.tfs[i] = tf;
        r.bounds[i] = (float)(rng() % 100000) / 1000.0f;
        npos += with_pos ? tf : 0;
    }
    if (mode == EXTREME && n >= 2) {
        r.docs[0] = 0;
        r.docs[n - 1] = CK_POSTINGS_MAX_DOC;
        if (r.docs[n - 2] >= CK_POSTINGS_MAX_DOC) /* keep strictly increasing */
            CK_FAIL("bad generator");
    }
    r.pos = malloc(npos ? npos * 4 : 4);
    uint64_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        r.pos_off[i] = o;
        if (!with_pos)
            continue;
        uint64_t p = rng() % 3 == 0 ? rng() % 100000 : rng() % 10;
        if (rng() % 50 == 0) /* positions near the top of the range */
            p = UINT32_MAX - r.tfs[i] * 4ull;
        for (uint32_t k = 0; k < r.tfs[i]; k++) {
            r.pos[o++] = (uint32_t)p;
            p += 1 + rng() % 4;
        }
    }
    r.pos_off[n] = o;
    return r;
}

static void free_ref(ref_t *r)
{
    free(r->docs);
    free(r->tfs);
    free(r->bounds);
    free(r->pos_off);
    free(r->pos);
}

/* Encodes r into a fresh malloc'ed buffer of exactly its size (so ASan sees over-reads). */
static uint8_t *encode(const ref_t *r, size_t *len)
{
    ck_postings_writer_t w;
    ck_postings_writer_init(&w, r->with_pos);
    for (uint32_t i = 0; i < r->n; i++) {
        const uint32_t *p = r->with_pos ? r->pos + r->pos_off[i] : NULL;
        uint32_t np = r->with_pos ? r->tfs[i] : 0;
        CHECK_EQ(ck_postings_writer_add(&w, r->docs[i], r->tfs[i], p, np, r->bounds[i]), 0);
    }
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_postings_writer_finish(&w, &out), 0);
    ck_postings_writer_free(&w);
    *len = out.len;
    uint8_t *b = malloc(out.len);
    memcpy(b, out.data, out.len);
    ck_wbuf_free(&out);
    return b;
}

static float true_block_max(const ref_t *r, uint32_t blk)
{
    uint32_t lo = blk * CK_POSTINGS_BLOCK, hi = lo + CK_POSTINGS_BLOCK;
    if (hi > r->n)
        hi = r->n;
    float m = r->bounds[lo];
    for (uint32_t i = lo + 1; i < hi; i++)
        if (r->bounds[i] > m)
            m = r->bounds[i];
    return m;
}

static void check_positions(ck_postings_t *c, const ref_t *r, uint32_t i)
{
    static uint32_t buf[64];
    if (r->tfs[i] > 64)
        CK_FAIL("tf too large for the check buffer");
    if (r->tfs[i] > 1)
        CHECK_EQ(ck_postings_positions(c, buf, r->tfs[i] - 1), CK_ERANGE);
    CHECK_EQ(ck_postings_positions(c, buf, 64), r->tfs[i]);
    CHECK_MEM(buf, r->pos + r->pos_off[i], r->tfs[i] * 4);
}

/* Full scan with next(): docs, freqs, some positions (lazily skipping others), block data. */
static void check_scan(const uint8_t *b, size_t len, const ref_t *r)
{
    ck_postings_t c;
    CHECK_EQ(ck_postings_open(b, len, &c), 0);
    CHECK_EQ(ck_postings_doc_count(&c), r->n);
    CHECK_EQ(ck_postings_has_positions(&c), r->with_pos);
    float mx = r->bounds[0];
    for (uint32_t i = 1; i < r->n; i++)
        mx = r->bounds[i] > mx ? r->bounds[i] : mx;
    CHECK(ck_postings_max_score(&c) == mx);
    for (uint32_t i = 0; i < r->n; i++) {
        uint32_t d = i ? ck_postings_next(&c) : ck_postings_doc(&c);
        if (d != r->docs[i])
            CK_FAIL("doc %u: %u != %u", i, d, r->docs[i]);
        CHECK_EQ(ck_postings_freq(&c), r->tfs[i]);
        if (i % CK_POSTINGS_BLOCK == 0) {
            uint32_t blk = i / CK_POSTINGS_BLOCK;
            uint32_t last = blk * CK_POSTINGS_BLOCK + CK_POSTINGS_BLOCK - 1;
            CHECK_EQ(ck_postings_block_last_doc(&c), r->docs[last < r->n ? last : r->n - 1]);
            CHECK(ck_postings_block_max(&c) == true_block_max(r, blk));
        }
        if (r->with_pos && rng() % 3 == 0)
            check_positions(&c, r, i);
        else if (!r->with_pos)
            CHECK_EQ(ck_postings_positions(&c, NULL, 0), CK_EINVAL);
    }
    CHECK_EQ(ck_postings_next(&c), CK_POSTINGS_END);
    CHECK_EQ(ck_postings_next(&c), CK_POSTINGS_END);
    CHECK_EQ(ck_postings_doc(&c), CK_POSTINGS_END);
    CHECK_EQ(ck_postings_freq(&c), 0);
    CHECK_EQ(ck_postings_block_last_doc(&c), CK_POSTINGS_END);
    CHECK_EQ(ck_postings_err(&c), 0);
}

/* First index i >= from with docs[i] >= target, or n. */
static uint32_t lin(const ref_t *r, uint32_t from, uint32_t target)
{
    while (from < r->n && r->docs[from] < target)
        from++;
    return from;
}

/* Random mixes of advance(), next() and shallow_advance() against a linear scan. */
static void check_advance(const uint8_t *b, size_t len, const ref_t *r)
{
    for (int round = 0; round < 4; round++) {
        ck_postings_t c;
        CHECK_EQ(ck_postings_open(b, len, &c), 0);
        uint32_t i = 0;
        uint64_t span = (uint64_t)r->docs[r->n - 1] + 2;
        for (int step = 0; step < 2000 && i < r->n; step++) {
            uint32_t cur = r->docs[i];
            uint64_t t;
            switch (rng() % 4) {
            case 0:
                t = cur + rng() % 4;
                break; /* near, maybe same block */
            case 1:
                t = cur + rng() % (span / 64 + 1);
                break; /* a few blocks on */
            case 2:
                t = rng() % span;
                break; /* anywhere, maybe behind */
            default:
                t = cur > 0 ? cur - 1 : 0;
                break; /* behind: no move */
            }
            if (t > CK_POSTINGS_MAX_DOC)
                t = CK_POSTINGS_MAX_DOC;
            if (rng() % 3 == 0) {
                /* shallow: the block holding the first doc >= t, never before ours */
                uint32_t j = lin(r, i, (uint32_t)t);
                ck_postings_shallow_advance(&c, (uint32_t)t);
                CHECK_EQ(ck_postings_doc(&c), cur);
                if (j == r->n) {
                    CHECK_EQ(ck_postings_block_last_doc(&c), CK_POSTINGS_END);
                    CHECK(ck_postings_block_max(&c) == 0.0f);
                } else {
                    uint32_t blk = j / CK_POSTINGS_BLOCK;
                    uint32_t last = blk * CK_POSTINGS_BLOCK + CK_POSTINGS_BLOCK - 1;
                    CHECK_EQ(ck_postings_block_last_doc(&c),
                             r->docs[last < r->n ? last : r->n - 1]);
                    CHECK(ck_postings_block_max(&c) == true_block_max(r, blk));
                }
            }
            if (rng() % 5 == 0) {
                i++;
                CHECK_EQ(ck_postings_next(&c), i < r->n ? r->docs[i] : CK_POSTINGS_END);
            } else {
                i = lin(r, i, (uint32_t)t);
                CHECK_EQ(ck_postings_advance(&c, (uint32_t)t),
                         i < r->n ? r->docs[i] : CK_POSTINGS_END);
            }
            if (i < r->n) {
                CHECK_EQ(ck_postings_freq(&c), r->tfs[i]);
                uint32_t last = (i / CK_POSTINGS_BLOCK + 1) * CK_POSTINGS_BLOCK - 1;
                CHECK_EQ(ck_postings_block_last_doc(&c), r->docs[last < r->n ? last : r->n - 1]);
                CHECK(ck_postings_block_max(&c) == true_block_max(r, i / CK_POSTINGS_BLOCK));
                if (r->with_pos && rng() % 2)
                    check_positions(&c, r, i);
            }
        }
        bool at_top = i < r->n && r->docs[r->n - 1] == CK_POSTINGS_MAX_DOC;
        CHECK_EQ(ck_postings_advance(&c, CK_POSTINGS_MAX_DOC),
                 at_top ? CK_POSTINGS_MAX_DOC : CK_POSTINGS_END);
        CHECK_EQ(ck_postings_err(&c), 0);
    }
}

static void roundtrip(uint32_t n, int mode, bool with_pos, bool big_tf)
{
    ref_t r = make_ref(n, mode, with_pos, big_tf);
    size_t len;
    uint8_t *b = encode(&r, &len);
    CHECK_EQ(ck_postings_verify(b, len), 0);
    check_scan(b, len, &r);
    check_advance(b, len, &r);
    free(b);
    free_ref(&r);
}

CK_TEST(postings_roundtrip)
{
    static const uint32_t sizes[] = {1, 2, 127, 128, 129, 255, 256, 1000, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int mode = DENSE; mode <= EXTREME; mode++) {
            roundtrip(sizes[s], mode, false, false);
            roundtrip(sizes[s], mode, false, true);
            roundtrip(sizes[s], mode, true, false);
        }
}

CK_TEST(postings_all_docs_and_widths)
{
    /* Every doc id 0..n-1 with tf 1: zero-bit gap and freq runs. */
    ref_t r = make_ref(1000, DENSE, false, false);
    for (uint32_t i = 0; i < r.n; i++) {
        r.docs[i] = i;
        r.tfs[i] = 1;
    }
    size_t len;
    uint8_t *b = encode(&r, &len);
    CHECK_EQ(ck_postings_verify(b, len), 0);
    /* 7 full blocks of 2 bytes (widths 0/0) plus a 104-doc varint block of 2 bytes each */
    CHECK_EQ(len, CK_POSTINGS_HEADER_SIZE + 8 * CK_POSTINGS_SKIP_SIZE + 7 * 2 + 104 * 2);
    check_scan(b, len, &r);
    check_advance(b, len, &r);
    free(b);
    /* Each bit width 0..32 for gaps and freqs, in a full first block. */
    for (unsigned w = 0; w <= 32; w++) {
        uint32_t n = CK_POSTINGS_BLOCK + 1;
        ref_t q = make_ref(n, DENSE, false, false);
        uint32_t top = w == 32 ? 0xFFFFFE00u : (uint32_t)((1ull << w) - 1); /* w bits */
        for (uint32_t i = 0; i < n; i++) {
            q.docs[i] = top + i; /* first gap is the doc itself, then gaps of 1 (coded 0) */
            q.tfs[i] = w == 32 ? UINT32_MAX : top + 1;
        }
        b = encode(&q, &len);
        CHECK_EQ(b[CK_POSTINGS_HEADER_SIZE + 2 * CK_POSTINGS_SKIP_SIZE], w);     /* gap bits */
        CHECK_EQ(b[CK_POSTINGS_HEADER_SIZE + 2 * CK_POSTINGS_SKIP_SIZE + 1], w); /* tf bits */
        CHECK_EQ(ck_postings_verify(b, len), 0);
        check_scan(b, len, &q);
        check_advance(b, len, &q);
        free(b);
        free_ref(&q);
    }
    free_ref(&r);
}

CK_TEST(postings_writer_contract)
{
    ck_postings_writer_t w;
    ck_wbuf_t out = CK_WBUF_INIT;
    ck_postings_writer_init(&w, false);
    CHECK_EQ(ck_postings_writer_finish(&w, &out), CK_EINVAL);
    CHECK_EQ(out.len, 0);
    CHECK_EQ(ck_postings_writer_add(&w, UINT32_MAX, 1, NULL, 0, 1.0f), CK_EINVAL);
    CHECK_EQ(ck_postings_writer_add(&w, 5, 0, NULL, 0, 1.0f), CK_EINVAL);
    CHECK_EQ(ck_postings_writer_add(&w, 5, 1, NULL, 0, NAN), CK_EINVAL);
    uint32_t p[2] = {1, 2};
    CHECK_EQ(ck_postings_writer_add(&w, 5, 2, p, 2, 1.0f), CK_EINVAL); /* no positions */
    CHECK_EQ(ck_postings_writer_add(&w, 5, 2, NULL, 0, 1.0f), 0);
    CHECK_EQ(ck_postings_writer_add(&w, 5, 1, NULL, 0, 1.0f), CK_EINVAL);
    CHECK_EQ(ck_postings_writer_add(&w, 4, 1, NULL, 0, 1.0f), CK_EINVAL);
    CHECK_EQ(ck_postings_writer_add(&w, 9, 1, NULL, 0, -2.0f), 0);
    CHECK_EQ(ck_postings_writer_finish(&w, &out), 0);
    size_t first = out.len;
    /* the writer is reusable: a second list appended after the first */
    CHECK_EQ(ck_postings_writer_add(&w, 0, 3, NULL, 0, 7.5f), 0);
    CHECK_EQ(ck_postings_writer_finish(&w, &out), 0);
    ck_postings_writer_free(&w);

    ck_postings_t c;
    CHECK_EQ(ck_postings_open(out.data, first, &c), 0);
    CHECK(ck_postings_max_score(&c) == 1.0f);
    CHECK_EQ(ck_postings_doc(&c), 5);
    CHECK_EQ(ck_postings_freq(&c), 2);
    CHECK_EQ(ck_postings_next(&c), 9);
    CHECK_EQ(ck_postings_next(&c), CK_POSTINGS_END);
    CHECK_EQ(ck_postings_open(out.data + first, out.len - first, &c), 0);
    CHECK_EQ(ck_postings_doc(&c), 0);
    CHECK_EQ(ck_postings_freq(&c), 3);
    CHECK(ck_postings_block_max(&c) == 7.5f);
    /* the two lists together are not one list */
    CHECK_EQ(ck_postings_open(out.data, out.len, &c), CK_ECORRUPT);
    CHECK_EQ(ck_postings_doc(&c), CK_POSTINGS_END);

    ck_postings_writer_init(&w, true);
    CHECK_EQ(ck_postings_writer_add(&w, 1, 2, NULL, 0, 1.0f), CK_EINVAL);
    CHECK_EQ(ck_postings_writer_add(&w, 1, 2, p, 1, 1.0f), CK_EINVAL);
    uint32_t bad[2] = {3, 3};
    CHECK_EQ(ck_postings_writer_add(&w, 1, 2, bad, 2, 1.0f), CK_EINVAL);
    CHECK_EQ(ck_postings_writer_add(&w, 1, 2, p, 2, 1.0f), 0);
    ck_postings_writer_free(&w);
    ck_wbuf_free(&out);
}

/* A small list with positions: two full blocks and a varint block. */
static uint8_t *small_list(ref_t *r, size_t *len)
{
    *r = make_ref(300, SPARSE, true, false);
    return encode(r, len);
}

/* Reads everything a query could touch; must not crash whatever the bytes. */
static void poke(const uint8_t *b, size_t len)
{
    ck_postings_t c;
    uint32_t buf[64];
    if (ck_postings_open(b, len, &c) != 0) {
        CHECK_EQ(ck_postings_doc(&c), CK_POSTINGS_END);
        CHECK_EQ(ck_postings_next(&c), CK_POSTINGS_END);
        CHECK_EQ(ck_postings_advance(&c, 5), CK_POSTINGS_END);
        ck_postings_shallow_advance(&c, 10);
        CHECK_EQ(ck_postings_block_last_doc(&c), CK_POSTINGS_END);
        return;
    }
    uint32_t n = 0;
    for (uint32_t d = ck_postings_doc(&c); d != CK_POSTINGS_END; d = ck_postings_next(&c)) {
        (void)ck_postings_freq(&c);
        (void)ck_postings_positions(&c, buf, 64);
        (void)ck_postings_block_max(&c);
        if (++n > ck_postings_doc_count(&c))
            CK_FAIL("more docs than the count");
    }
    CHECK_EQ(ck_postings_open(b, len, &c), 0);
    for (uint32_t t = 0; ck_postings_doc(&c) != CK_POSTINGS_END; t += 1u << 22) {
        ck_postings_shallow_advance(&c, t + (1u << 21));
        (void)ck_postings_block_max(&c);
        if (ck_postings_advance(&c, t) == CK_POSTINGS_END || t > UINT32_MAX - (1u << 22))
            break;
        (void)ck_postings_positions(&c, buf, 64);
    }
}

CK_TEST(postings_truncated)
{
    ref_t r;
    size_t len;
    uint8_t *b = small_list(&r, &len);
    CHECK(len > 300);
    for (size_t n = 0; n < len; n++) {
        uint8_t *t = malloc(n ? n : 1);
        memcpy(t, b, n);
        ck_postings_t c;
        CHECK_EQ(ck_postings_open(t, n, &c), CK_ETRUNC);
        CHECK_EQ(ck_postings_verify(t, n), CK_ETRUNC);
        poke(t, n);
        free(t);
    }
    /* one byte too many is not a list either */
    uint8_t *t = malloc(len + 1);
    memcpy(t, b, len);
    t[len] = 0;
    CHECK_EQ(ck_postings_verify(t, len + 1), CK_ECORRUPT);
    CHECK_EQ(ck_postings_verify(t, len), 0);
    free(t);
    free(b);
    free_ref(&r);
}

CK_TEST(postings_corrupt)
{
    ref_t r;
    size_t len;
    uint8_t *b = small_list(&r, &len);
    uint8_t *t = malloc(len);
    size_t at_open = 0;
    for (size_t i = 0; i < len; i++) {
        for (int k = 0; k < 3; k++) {
            memcpy(t, b, len);
            t[i] ^= (uint8_t)(k == 0 ? 1u << (rng() % 8) : 1 + rng() % 255);
            /* every single-byte change is caught by a CRC-32C */
            int rc = ck_postings_verify(t, len);
            if (rc != CK_ECORRUPT && rc != CK_ETRUNC)
                CK_FAIL("flip at %zu not detected (%d)", i, rc);
            ck_postings_t c;
            if (ck_postings_open(t, len, &c) != 0)
                at_open++;
            poke(t, len);
        }
    }
    /* header and skip table changes are caught by open() itself */
    CHECK(at_open >= 3 * (CK_POSTINGS_HEADER_SIZE + 3 * CK_POSTINGS_SKIP_SIZE));
    /* random multi-byte damage inside the blocks, with the CRCs left stale: no crash */
    for (int round = 0; round < 3000; round++) {
        memcpy(t, b, len);
        size_t lo = CK_POSTINGS_HEADER_SIZE + 3 * CK_POSTINGS_SKIP_SIZE;
        for (int k = 1 + (int)(rng() % 8); k; k--) {
            size_t at = lo + rng() % (len - lo);
            t[at] = (uint8_t)rng();
        }
        CHECK(ck_postings_verify(t, len) != 0 || memcmp(t, b, len) == 0);
        poke(t, len);
    }
    printf("  %zu of %zu single-byte changes rejected by open(), all by verify()\n", at_open,
           3 * len);
    fflush(stdout);
    free(t);
    free(b);
    free_ref(&r);
}

CK_TEST(postings_oom)
{
    ref_t r = make_ref(1000, SPARSE, true, false);
    for (long k = 1; k < 40; k++) {
        ck_postings_writer_t w;
        ck_postings_writer_init(&w, true);
        ck_wbuf_t out = CK_WBUF_INIT;
        ck_alloc_fail_after(k);
        int rc = 0;
        for (uint32_t i = 0; i < r.n && !rc; i++)
            rc = ck_postings_writer_add(&w, r.docs[i], r.tfs[i], r.pos + r.pos_off[i], r.tfs[i],
                                        r.bounds[i]);
        int rc2 = ck_postings_writer_finish(&w, &out);
        ck_alloc_fail_after(0);
        if (rc)
            CHECK_EQ(rc, CK_ENOMEM);
        if (rc || rc2) {
            CHECK_EQ(rc2, CK_ENOMEM);
            CHECK_EQ(out.len, 0);
        } else {
            CHECK_EQ(ck_postings_verify(out.data, out.len), 0);
        }
        ck_postings_writer_free(&w);
        ck_wbuf_free(&out);
    }
    free_ref(&r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

CK_TEST(postings_speed)
{
    uint32_t n = 4000000;
    ref_t r = make_ref(n, DENSE, false, false);
    size_t len;
    double t0 = now_s();
    uint8_t *b = encode(&r, &len);
    double t1 = now_s();
    ck_postings_t c;
    uint64_t sum = 0;
    int reps = 5;
    for (int k = 0; k < reps; k++) {
        CHECK_EQ(ck_postings_open(b, len, &c), 0);
        for (uint32_t d = ck_postings_doc(&c); d != CK_POSTINGS_END; d = ck_postings_next(&c))
            sum += d + ck_postings_freq(&c);
    }
    double t2 = now_s();
    uint64_t hits = 0;
    CHECK_EQ(ck_postings_open(b, len, &c), 0);
    for (uint32_t t = 0; ck_postings_advance(&c, t) != CK_POSTINGS_END; t += 1000)
        hits++;
    double t3 = now_s();
    CHECK(sum > 0);
    printf("  %u docs, %.2f bytes/doc: encode %.1f M docs/s, next() %.1f M docs/s, "
           "advance(+1000) %.1f M calls/s\n",
           n, (double)len / n, n / (t1 - t0) / 1e6, (double)n * reps / (t2 - t1) / 1e6,
           hits / (t3 - t2) / 1e6);
    fflush(stdout);
    free(b);
    free_ref(&r);
}
