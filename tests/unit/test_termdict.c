#include "core/alloc.h"
#include "core/crc32c.h"
#include "search/termdict.h"
#include "test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct {
    uint8_t b[CK_TERMDICT_MAX_TERM];
    uint32_t len;
} term_t;

static int term_cmp(const term_t *a, const term_t *b)
{
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->b, b->b, n) : 0;
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}
static int qcmp(const void *a, const void *b)
{
    return term_cmp(a, b);
}

/* A random term: over a small alphabet with NUL and 0xff so prefixes and ties are common,
 * sometimes under one of a few long shared prefixes, sometimes the maximum length. */
static void rand_term(term_t *t)
{
    static const uint8_t alpha[] = {0x00, 0x01, 'a', 'b', 'c', 0x7f, 0x80, 0xff};
    static const char *prefixes[] = {"", "inter", "international", "internationalization"};
    const char *pre = prefixes[rng() % 4];
    t->len = (uint32_t)strlen(pre);
    memcpy(t->b, pre, t->len);
    uint32_t extra = rng() % 16 == 0 ? CK_TERMDICT_MAX_TERM - t->len : (uint32_t)(rng() % 7);
    for (uint32_t i = 0; i < extra; i++)
        t->b[t->len++] = alpha[rng() % sizeof(alpha)];
}

/* n distinct sorted terms (n may come out smaller only if the generator saturates). */
static term_t *make_terms(uint32_t n, uint32_t *out_n)
{
    term_t *t = malloc(sizeof(term_t) * (n ? n * 2 : 1));
    uint32_t m = 0;
    while (m < n) {
        uint32_t want = (n - m) * 2;
        for (uint32_t i = 0; i < want; i++)
            rand_term(&t[m + i]);
        m += want;
        qsort(t, m, sizeof(term_t), qcmp);
        uint32_t k = 0;
        for (uint32_t i = 0; i < m; i++)
            if (!k || term_cmp(&t[k - 1], &t[i]) != 0)
                t[k++] = t[i];
        m = k < n ? k : n;
        if (k >= n)
            break;
        t = realloc(t, sizeof(term_t) * (n * 2 + m));
    }
    /* m is the n smallest distinct terms, sorted. */
    *out_n = m;
    return t;
}

static uint64_t val_of(uint32_t i)
{
    return i % 3 == 0 ? (uint64_t)i
                      : (uint64_t)i * 0x9E3779B97F4Aull + (i % 5 == 0 ? UINT64_MAX - i : 0);
}
static uint32_t df_of(uint32_t i)
{
    return i % 7 == 0 ? UINT32_MAX - i : i + 1;
}

static uint8_t *build(const term_t *t, uint32_t n, size_t *len)
{
    ck_termdict_writer_t w;
    ck_termdict_writer_init(&w);
    for (uint32_t i = 0; i < n; i++)
        CHECK_EQ(ck_termdict_writer_add(&w, t[i].b, t[i].len, val_of(i), df_of(i)), 0);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_termdict_writer_finish(&w, &out), 0);
    ck_termdict_writer_free(&w);
    return ck_wbuf_steal(&out, len);
}

/* Index of the first term >= k (n if none). */
static uint32_t lower_bound(const term_t *t, uint32_t n, const term_t *k)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (term_cmp(&t[mid], k) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void check_lookup(const ck_termdict_t *td, const term_t *t, uint32_t n, const term_t *k)
{
    uint32_t i = lower_bound(t, n, k);
    bool present = i < n && term_cmp(&t[i], k) == 0;
    uint64_t v = 0;
    uint32_t df = 0;
    int rc = ck_termdict_lookup(td, k->b, k->len, &v, &df);
    if (present) {
        CHECK_EQ(rc, 0);
        CHECK(v == val_of(i));
        CHECK_EQ(df, df_of(i));
    } else {
        CHECK_EQ(rc, CK_ENOENT);
    }
}

static void check_prefix(const ck_termdict_t *td, const term_t *t, uint32_t n, const term_t *p)
{
    ck_termdict_iter_t it;
    ck_termdict_iter_prefix(td, &it, p->b, p->len);
    for (uint32_t i = 0; i < n; i++) {
        if (t[i].len < p->len || (p->len && memcmp(t[i].b, p->b, p->len) != 0))
            continue;
        CHECK_EQ(ck_termdict_iter_next(&it), 1);
        size_t len;
        const uint8_t *b = ck_termdict_iter_term(&it, &len);
        CHECK_EQ(len, t[i].len);
        CHECK_MEM(b, t[i].b, len);
        CHECK(ck_termdict_iter_value(&it) == val_of(i));
        CHECK_EQ(ck_termdict_iter_df(&it), df_of(i));
    }
    CHECK_EQ(ck_termdict_iter_next(&it), 0);
    CHECK_EQ(ck_termdict_iter_next(&it), 0);
}

static void roundtrip(uint32_t want)
{
    uint32_t n;
    term_t *t = make_terms(want, &n);
    CHECK_EQ(n, want);
    size_t len;
    uint8_t *d = build(t, n, &len);
    ck_termdict_t td;
    CHECK_EQ(ck_termdict_open(d, len, &td), 0);
    CHECK_EQ(ck_termdict_count(&td), n);

    /* Iterate everything. */
    ck_termdict_iter_t it;
    ck_termdict_iter_all(&td, &it);
    for (uint32_t i = 0; i < n; i++) {
        CHECK_EQ(ck_termdict_iter_next(&it), 1);
        size_t tl;
        const uint8_t *b = ck_termdict_iter_term(&it, &tl);
        CHECK_EQ(tl, t[i].len);
        CHECK_MEM(b, t[i].b, tl);
        CHECK(ck_termdict_iter_value(&it) == val_of(i));
        CHECK_EQ(ck_termdict_iter_df(&it), df_of(i));
    }
    CHECK_EQ(ck_termdict_iter_next(&it), 0);

    /* Every present term, and absent neighbours: before first, after last, between. */
    for (uint32_t i = 0; i < n; i++) {
        check_lookup(&td, t, n, &t[i]);
        term_t k = t[i];
        if (k.len < CK_TERMDICT_MAX_TERM) {
            k.b[k.len++] = 0; /* just after t[i] */
            check_lookup(&td, t, n, &k);
        }
        k = t[i];
        if (k.len) {
            k.len--; /* a proper prefix: before t[i] */
            check_lookup(&td, t, n, &k);
            k.len++;
            if (k.b[k.len - 1]) {
                k.b[k.len - 1]--; /* just before, with the same length */
                check_lookup(&td, t, n, &k);
            }
        }
    }
    term_t empty = {.len = 0}, top = {.len = CK_TERMDICT_MAX_TERM};
    memset(top.b, 0xff, sizeof(top.b));
    check_lookup(&td, t, n, &empty);
    check_lookup(&td, t, n, &top);
    for (int i = 0; i < 2000; i++) {
        term_t k;
        rand_term(&k);
        check_lookup(&td, t, n, &k);
    }
    uint64_t v;
    uint8_t big[CK_TERMDICT_MAX_TERM + 1] = {0};
    CHECK_EQ(ck_termdict_lookup(&td, big, sizeof(big), &v, NULL), CK_ENOENT);

    /* Prefix iteration equals a linear filter. */
    check_prefix(&td, t, n, &empty);
    check_prefix(&td, t, n, &top);
    for (uint32_t r = 0; r < 300 && n; r++) {
        term_t p = t[rng() % n];
        p.len = p.len ? (uint32_t)(rng() % (p.len + 1)) : 0;
        check_prefix(&td, t, n, &p);
        rand_term(&p);
        p.len = p.len < 3 ? p.len : (uint32_t)(rng() % 4);
        check_prefix(&td, t, n, &p);
    }
    const char *fixed[] = {"inter", "international", "internationalization", "a", "b", "\xff"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        term_t p = {.len = (uint32_t)strlen(fixed[i])};
        memcpy(p.b, fixed[i], p.len);
        check_prefix(&td, t, n, &p);
    }
    term_t nul = {.b = {0}, .len = 1};
    check_prefix(&td, t, n, &nul);

    ck_free(d);
    free(t);
}

CK_TEST(termdict_roundtrip_small)
{
    roundtrip(0);
    roundtrip(1);
    roundtrip(2);
    roundtrip(63);
    roundtrip(64);
    roundtrip(65);
    roundtrip(128);
    roundtrip(129);
}

CK_TEST(termdict_roundtrip_10000)
{
    roundtrip(10000);
}

CK_TEST(termdict_empty_and_binary_terms)
{
    /* The empty term, NULs inside and at the end, 0xff, a maximum-length term. */
    term_t t[6] = {{.len = 0},
                   {.b = {0}, .len = 1},
                   {.b = {0, 0}, .len = 2},
                   {.b = {0, 'a', 0}, .len = 3},
                   {.b = {'a'}, .len = 1},
                   {.len = 255}};
    memset(t[5].b, 0xff, 255);
    size_t len;
    uint8_t *d = build(t, 6, &len);
    ck_termdict_t td;
    CHECK_EQ(ck_termdict_open(d, len, &td), 0);
    for (int i = 0; i < 6; i++)
        check_lookup(&td, t, 6, &t[i]);
    term_t p = {.b = {0}, .len = 1};
    check_prefix(&td, t, 6, &p);
    ck_free(d);
}

CK_TEST(termdict_writer_rejects)
{
    ck_termdict_writer_t w;
    ck_termdict_writer_init(&w);
    uint8_t big[256];
    memset(big, 'x', sizeof(big));
    CHECK_EQ(ck_termdict_writer_add(&w, big, 256, 1, 1), CK_ETOOBIG);
    CHECK_EQ(ck_termdict_writer_add(&w, "b", 1, 1, 1), 0);
    CHECK_EQ(ck_termdict_writer_add(&w, "b", 1, 2, 1), CK_EINVAL); /* duplicate */
    CHECK_EQ(ck_termdict_writer_add(&w, "a", 1, 2, 1), CK_EINVAL); /* out of order */
    CHECK_EQ(ck_termdict_writer_add(&w, "", 0, 2, 1), CK_EINVAL);  /* empty sorts first */
    CHECK_EQ(ck_termdict_writer_add(&w, "ab\xff", 3, 2, 1), CK_EINVAL);
    CHECK_EQ(ck_termdict_writer_add(&w, NULL, 3, 2, 1), CK_EINVAL);
    CHECK_EQ(ck_termdict_writer_add(&w, "b\0", 2, 2, 1), 0); /* "b" < "b\0" */
    CHECK_EQ(ck_termdict_writer_add(&w, big, 255, 3, 1), 0); /* "x"*255, max length */
    CHECK_EQ(ck_termdict_writer_add(&w, big, 256, 4, 1), CK_ETOOBIG);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_termdict_writer_finish(&w, &out), 0);
    ck_termdict_t td;
    CHECK_EQ(ck_termdict_open(out.data, out.len, &td), 0);
    CHECK_EQ(ck_termdict_count(&td), 3);
    uint64_t v;
    CHECK_EQ(ck_termdict_lookup(&td, "b\0", 2, &v, NULL), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(ck_termdict_lookup(&td, big, 255, &v, NULL), 0);
    CHECK_EQ(v, 3);

    /* The writer was reset by finish(): a fresh dictionary may start anywhere. */
    CHECK_EQ(ck_termdict_writer_add(&w, "a", 1, 9, 9), 0);
    size_t first = out.len;
    CHECK_EQ(ck_termdict_writer_finish(&w, &out), 0);
    CHECK_EQ(ck_termdict_open(out.data + first, out.len - first, &td), 0);
    CHECK_EQ(ck_termdict_count(&td), 1);
    ck_termdict_writer_free(&w);
    ck_wbuf_free(&out);
}

CK_TEST(termdict_writer_oom)
{
    for (long k = 1; k < 20; k++) {
        ck_termdict_writer_t w;
        ck_termdict_writer_init(&w);
        ck_wbuf_t out = CK_WBUF_INIT;
        ck_alloc_fail_after(k);
        int rc = 0;
        for (uint32_t i = 0; i < 300 && !rc; i++) {
            char b[16];
            int n = snprintf(b, sizeof(b), "t%06u", i);
            rc = ck_termdict_writer_add(&w, b, (size_t)n, i, 1);
        }
        int frc = ck_termdict_writer_finish(&w, &out);
        ck_alloc_fail_after(0);
        CHECK(rc == 0 || rc == CK_ENOMEM);
        if (rc)
            CHECK_EQ(frc, CK_ENOMEM);
        if (!frc) {
            ck_termdict_t td;
            CHECK_EQ(ck_termdict_open(out.data, out.len, &td), 0);
        } else {
            CHECK_EQ(out.len, 0);
        }
        ck_termdict_writer_free(&w);
        ck_wbuf_free(&out);
    }
}

/* Walks a dictionary fully; must not crash whatever open() accepted. */
static void exercise(const ck_termdict_t *td)
{
    ck_termdict_iter_t it;
    ck_termdict_iter_all(td, &it);
    while (ck_termdict_iter_next(&it) == 1) {
        size_t len;
        const uint8_t *b = ck_termdict_iter_term(&it, &len);
        CHECK_EQ(ck_termdict_lookup(td, b, len, NULL, NULL), 0);
    }
}

CK_TEST(termdict_truncation_and_flips)
{
    uint32_t n;
    term_t *t = make_terms(150, &n);
    size_t len;
    uint8_t *d = build(t, n, &len);
    ck_termdict_t td;
    CHECK_EQ(ck_termdict_open(d, len, &td), 0);
    for (size_t k = 0; k < len; k++) {
        int rc = ck_termdict_open(d, k, &td);
        CHECK(rc == CK_ETRUNC || rc == CK_ECORRUPT);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, d, len);
    longer[len] = 0;
    CHECK_EQ(ck_termdict_open(longer, len + 1, &td), CK_ECORRUPT);
    free(longer);

    uint8_t *c = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(c, d, len);
        c[i] ^= (uint8_t)(1 + rng() % 255);
        int rc = ck_termdict_open(c, len, &td);
        CHECK(rc == CK_ETRUNC || rc == CK_ECORRUPT);
    }

    /* Structural damage behind a valid checksum: open must reject it or the result must be
     * safe to walk. Sanitizers catch any out-of-bounds read. */
    int rejected = 0;
    for (int r = 0; r < 3000; r++) {
        memcpy(c, d, len);
        int flips = 1 + (int)(rng() % 3);
        for (int f = 0; f < flips; f++)
            c[CK_TERMDICT_HEADER_SIZE + rng() % (len - CK_TERMDICT_HEADER_SIZE)] ^=
                (uint8_t)(1 + rng() % 255);
        uint32_t crc = ck_crc32c(0, c, 28);
        crc = ck_crc32c(crc, c + CK_TERMDICT_HEADER_SIZE, len - CK_TERMDICT_HEADER_SIZE);
        c[28] = (uint8_t)crc;
        c[29] = (uint8_t)(crc >> 8);
        c[30] = (uint8_t)(crc >> 16);
        c[31] = (uint8_t)(crc >> 24);
        int rc = ck_termdict_open(c, len, &td);
        if (rc == 0)
            exercise(&td);
        else
            rejected++;
    }
    CHECK(rejected > 0);
    free(c);
    ck_free(d);
    free(t);
}

CK_TEST(termdict_front_coding_is_compact)
{
    /* 1000 terms sharing a 200-byte prefix: front coding stores the prefix once a block. */
    ck_termdict_writer_t w;
    ck_termdict_writer_init(&w);
    uint8_t b[CK_TERMDICT_MAX_TERM];
    memset(b, 'p', 200);
    for (uint32_t i = 0; i < 1000; i++) {
        int n = snprintf((char *)b + 200, 16, "%05u", i);
        CHECK_EQ(ck_termdict_writer_add(&w, b, 200 + (size_t)n, i, 1), 0);
    }
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_termdict_writer_finish(&w, &out), 0);
    CHECK(out.len < 1000 * 16 + 16 * 2 * 210);
    ck_termdict_t td;
    CHECK_EQ(ck_termdict_open(out.data, out.len, &td), 0);
    snprintf((char *)b + 200, 16, "%05u", 777u);
    uint64_t v;
    CHECK_EQ(ck_termdict_lookup(&td, b, 205, &v, NULL), 0);
    CHECK_EQ(v, 777);
    ck_termdict_writer_free(&w);
    ck_wbuf_free(&out);
}
