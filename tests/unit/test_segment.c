#include <math.h>

#include "core/alloc.h"
#include "search/bm25.h"
#include "search/segment.h"
#include "test.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int bcmp_(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* ---- a corpus model ---- */

typedef struct {
    const char *name;
    ck_seg_kind_t kind;
} fdef_t;

static const fdef_t FIELDS[] = {
    {"body", CK_SEG_TEXT},    {"title", CK_SEG_TEXT},   {"tag", CK_SEG_KEYWORD},
    {"body", CK_SEG_KEYWORD}, {"price", CK_SEG_NUMBER}, {"title", CK_SEG_NUMBER},
};
#define NFD 6

typedef struct {
    uint8_t b[CK_TERMDICT_MAX_TERM];
    uint32_t len;
} word_t;

static word_t *vocab;
static uint32_t nvocab;

static int word_qcmp(const void *a, const void *b)
{
    const word_t *x = a, *y = b;
    return bcmp_(x->b, x->len, y->b, y->len);
}

static void make_vocab(void)
{
    if (vocab)
        return;
    uint32_t n = 400;
    vocab = calloc(n, sizeof *vocab);
    uint32_t m = 0;
    vocab[m++].len = 0; /* the empty term */
    vocab[m].len = 3;
    memcpy(vocab[m++].b, "a\0b", 3);
    vocab[m].len = CK_TERMDICT_MAX_TERM;
    memset(vocab[m++].b, 'z', CK_TERMDICT_MAX_TERM);
    while (m < n) {
        word_t *w = &vocab[m++];
        w->len = 1 + (uint32_t)(rng() % 7);
        for (uint32_t i = 0; i < w->len; i++)
            w->b[i] = (uint8_t)('a' + rng() % 6);
    }
    qsort(vocab, n, sizeof *vocab, word_qcmp);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!k || word_qcmp(&vocab[k - 1], &vocab[i]) != 0)
            vocab[k++] = vocab[i];
    nvocab = k;
}

typedef struct {
    uint32_t doc, seq, pos;
    uint16_t term;
    uint8_t f;
    double v;
} op_t;

typedef struct {
    op_t *ops;
    size_t nops, cap;
    uint32_t ndocs;
    int32_t *part;
    int64_t *off, *ts;
} corpus_t;

static void corpus_free(corpus_t *c)
{
    free(c->ops);
    free(c->part);
    free(c->off);
    free(c->ts);
    memset(c, 0, sizeof *c);
}

static void add_op(corpus_t *c, op_t o)
{
    if (c->nops == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->ops = realloc(c->ops, c->cap * sizeof *c->ops);
    }
    o.seq = (uint32_t)c->nops;
    c->ops[c->nops++] = o;
}

/* Zipf-like: small ids far more often. */
static uint16_t pick_term(void)
{
    uint64_t r = rng() % 1000;
    return (uint16_t)((r * r * nvocab) / 1000000);
}

/* ndocs random docs. long_fields: some text fields above 32 tokens (quantized norms). */
static void make_corpus(corpus_t *c, uint32_t ndocs, bool long_fields)
{
    make_vocab();
    memset(c, 0, sizeof *c);
    c->ndocs = ndocs;
    c->part = malloc(4 * (ndocs + 1));
    c->off = malloc(8 * (ndocs + 1));
    c->ts = malloc(8 * (ndocs + 1));
    int64_t next_off[4] = {0, 100, 5000, -7};
    for (uint32_t d = 0; d < ndocs; d++) {
        int32_t p = (int32_t)(rng() % 4) - 1; /* -1..2 */
        c->part[d] = p;
        c->off[d] = next_off[p + 1];
        next_off[p + 1] += 1 + (int64_t)(rng() % 3);
        c->ts[d] = 1700000000000ll + d * 13;
        if (rng() % 10 == 0)
            continue; /* a doc without fields */
        uint32_t maxlen = long_fields && rng() % 4 == 0 ? 90 : 30;
        uint32_t ntext[2] = {(uint32_t)(rng() % maxlen), (uint32_t)(rng() % 6)};
        uint32_t pos[2] = {0, 0};
        uint32_t nkw = (uint32_t)(rng() % 3), nnum = (uint32_t)(rng() % 3);
        /* interleave fields */
        while (ntext[0] + ntext[1] + nkw + nnum) {
            uint32_t which = (uint32_t)(rng() % 4);
            if (which < 2 && ntext[which]) {
                ntext[which]--;
                uint32_t step = rng() % 5 == 0 ? 0 : 1 + (uint32_t)(rng() % 2);
                pos[which] += step;
                add_op(c, (op_t){d, 0, pos[which], pick_term(), (uint8_t)which, 0});
            } else if (which == 2 && nkw) {
                nkw--;
                uint8_t f = rng() % 2 ? 2 : 3;
                add_op(c, (op_t){d, 0, 0, (uint16_t)(rng() % 20), f, 0});
            } else if (which == 3 && nnum) {
                nnum--;
                uint8_t f = rng() % 3 ? 4 : 5;
                double v = (double)(int64_t)(rng() % 200) - 100.0;
                if (rng() % 20 == 0)
                    v = rng() % 2 ? -0.0 : 0.0;
                add_op(c, (op_t){d, 0, 0, 0, f, v / 4});
            }
        }
    }
}

static bool keep_all(uint32_t d, void *ctx)
{
    return true;
}

/* The record position the tests give a doc: a function of (partition, offset), so it
 * survives renumbering; some docs have none. */
static uint32_t rpos_of(int32_t part, int64_t off)
{
    uint64_t x = (uint64_t)off * 2654435761u + (uint64_t)(part + 7);
    return x % 7 == 0 ? CK_SEG_NO_POS : (uint32_t)(x % 1000003u);
}

/* Feeds docs [a, b) of c (those keep() accepts) into a builder and finishes into out. */
static void build(const corpus_t *c, uint32_t a, uint32_t b, bool (*keep)(uint32_t, void *),
                  void *ctx, ck_wbuf_t *out)
{
    ck_segbuild_t *sb;
    CHECK_EQ(ck_segbuild_new(&sb), 0);
    size_t i = 0;
    while (i < c->nops && c->ops[i].doc < a)
        i++;
    for (uint32_t d = a; d < b; d++) {
        bool k = keep(d, ctx);
        if (k)
            CHECK_EQ(ck_segbuild_doc_at(sb, c->part[d], c->off[d], c->ts[d],
                                        rpos_of(c->part[d], c->off[d])),
                     0);
        for (; i < c->nops && c->ops[i].doc == d; i++) {
            if (!k)
                continue;
            const op_t *o = &c->ops[i];
            const fdef_t *f = &FIELDS[o->f];
            const word_t *w = &vocab[o->term];
            if (f->kind == CK_SEG_TEXT)
                CHECK_EQ(ck_segbuild_text(sb, f->name, strlen(f->name), (const char *)w->b, w->len,
                                          o->pos),
                         0);
            else if (f->kind == CK_SEG_KEYWORD)
                CHECK_EQ(
                    ck_segbuild_keyword(sb, f->name, strlen(f->name), (const char *)w->b, w->len),
                    0);
            else
                CHECK_EQ(ck_segbuild_number(sb, f->name, strlen(f->name), o->v), 0);
        }
    }
    CHECK_EQ(ck_segbuild_finish(sb, out), 0);
    CHECK_EQ(ck_segbuild_ndocs(sb), 0);
    ck_segbuild_free(sb);
}

/* The corpus of the docs keep() accepts, renumbered. */
static void sub_corpus(const corpus_t *c, bool (*keep)(uint32_t, void *), void *ctx, corpus_t *s)
{
    memset(s, 0, sizeof *s);
    s->part = malloc(4 * (c->ndocs + 1));
    s->off = malloc(8 * (c->ndocs + 1));
    s->ts = malloc(8 * (c->ndocs + 1));
    size_t i = 0;
    for (uint32_t d = 0; d < c->ndocs; d++) {
        bool k = keep(d, ctx);
        if (k) {
            s->part[s->ndocs] = c->part[d];
            s->off[s->ndocs] = c->off[d];
            s->ts[s->ndocs] = c->ts[d];
        }
        for (; i < c->nops && c->ops[i].doc == d; i++)
            if (k) {
                op_t o = c->ops[i];
                o.doc = s->ndocs;
                add_op(s, o);
            }
        if (k)
            s->ndocs++;
    }
}

static int op_qcmp(const void *a, const void *b)
{
    const op_t *x = a, *y = b;
    if (x->f != y->f)
        return x->f < y->f ? -1 : 1;
    if (x->term != y->term)
        return x->term < y->term ? -1 : 1;
    if (x->doc != y->doc)
        return x->doc < y->doc ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Checks every accessor of an opened segment against the corpus. */
static void check_segment(const ck_segment_t *s, const corpus_t *c)
{
    CHECK_EQ(ck_segment_ndocs(s), c->ndocs);
    for (uint32_t d = 0; d < c->ndocs; d++) {
        int32_t p;
        int64_t o, t;
        ck_segment_doc(s, d, &p, &o, &t);
        CHECK_EQ(p, c->part[d]);
        CHECK_EQ(o, c->off[d]);
        CHECK_EQ(t, c->ts[d]);
        CHECK_EQ(ck_segment_doc_record_pos(s, d), rpos_of(p, o));
    }
    for (int32_t p = -2; p <= 3; p++) {
        bool any = false;
        int64_t mn = 0, mx = 0;
        for (uint32_t d = 0; d < c->ndocs; d++)
            if (c->part[d] == p) {
                if (!any || c->off[d] < mn)
                    mn = c->off[d];
                if (!any || c->off[d] > mx)
                    mx = c->off[d];
                any = true;
            }
        int64_t a = 1, b = 2;
        CHECK_EQ(ck_segment_offsets(s, p, &a, &b), any);
        if (any) {
            CHECK_EQ(a, mn);
            CHECK_EQ(b, mx);
        }
    }
    op_t *ops = malloc(sizeof *ops * (c->nops + 1));
    memcpy(ops, c->ops, sizeof *ops * c->nops);
    qsort(ops, c->nops, sizeof *ops, op_qcmp);
    uint32_t *dl = calloc(c->ndocs + 1, 4);
    uint32_t *pbuf = malloc(4 * 4096), *mpos = malloc(4 * 4096);
    uint32_t nfields_model = 0;
    size_t i = 0;
    for (uint8_t fi = 0; fi < NFD; fi++) {
        const fdef_t *fd = &FIELDS[fi];
        size_t a = i;
        while (i < c->nops && ops[i].f == fi)
            i++;
        size_t b = i;
        int idx = ck_segment_find_field(s, fd->name, strlen(fd->name), fd->kind);
        if (a == b) {
            CHECK_EQ(idx, -1);
            continue;
        }
        nfields_model++;
        CHECK(idx >= 0);
        const ck_seg_field_t *f = ck_segment_field(s, (uint32_t)idx);
        CHECK_EQ(f->kind, fd->kind);
        CHECK_EQ(f->name_len, strlen(fd->name));
        CHECK_STREQ(f->name, fd->name);
        CHECK_EQ(f->sum_len, b - a);
        memset(dl, 0, 4 * (c->ndocs + 1));
        uint32_t docs = 0;
        for (size_t k = a; k < b; k++)
            if (dl[ops[k].doc]++ == 0)
                docs++;
        CHECK_EQ(f->doc_count, docs);
        if (fd->kind == CK_SEG_NUMBER) {
            CHECK_EQ(f->nterms, 0);
            CHECK(f->avgdl == 1.0);
            CHECK(ck_segment_terms(s, (uint32_t)idx) == NULL);
            const uint32_t *nd;
            const double *nv;
            CHECK_EQ(ck_segment_numbers(s, (uint32_t)idx, &nd, &nv), b - a);
            /* model: values per doc sorted */
            double *mv = malloc(sizeof(double) * (b - a));
            uint32_t *md = malloc(4 * (b - a));
            size_t m = 0;
            for (uint32_t d = 0; d < c->ndocs; d++)
                for (size_t k = 0; k < c->nops; k++)
                    if (c->ops[k].doc == d && c->ops[k].f == fi) {
                        md[m] = d;
                        mv[m++] = c->ops[k].v;
                    }
            for (size_t k = 0; k < m; k++) {
                CHECK_EQ(nd[k], md[k]);
                if (k && nd[k] == nd[k - 1])
                    CHECK(nv[k - 1] <= nv[k]);
                /* the multiset per doc: count equal values */
                size_t cs = 0, cm = 0;
                for (size_t q = 0; q < m; q++) {
                    cs += nd[q] == nd[k] && nv[q] == nv[k];
                    cm += md[q] == nd[k] && mv[q] == nv[k];
                }
                CHECK_EQ(cs, cm);
            }
            free(mv);
            free(md);
            continue;
        }
        bool text = fd->kind == CK_SEG_TEXT;
        if (text) {
            CHECK(f->avgdl == (double)(b - a) / docs);
            const uint8_t *norms = ck_segment_norms(s, (uint32_t)idx);
            for (uint32_t d = 0; d < c->ndocs; d++) {
                CHECK_EQ(norms[d], ck_segment_norm_encode(dl[d]));
                CHECK_EQ(ck_segment_len(s, (uint32_t)idx, d),
                         ck_segment_norm_table()[ck_segment_norm_encode(dl[d])]);
                if (dl[d] < 32)
                    CHECK_EQ(ck_segment_len(s, (uint32_t)idx, d), dl[d]);
            }
        } else {
            CHECK(f->avgdl == 1.0);
            CHECK(ck_segment_norms(s, (uint32_t)idx) == NULL);
            CHECK_EQ(ck_segment_len(s, (uint32_t)idx, 0), 1);
        }
        const ck_termdict_t *td = ck_segment_terms(s, (uint32_t)idx);
        CHECK(td);
        ck_termdict_iter_t it;
        ck_termdict_iter_all(td, &it);
        uint32_t nterms = 0;
        for (size_t k = a; k < b;) {
            size_t e = k;
            while (e < b && ops[e].term == ops[k].term)
                e++;
            const word_t *w = &vocab[ops[k].term];
            CHECK_EQ(ck_termdict_iter_next(&it), 1);
            size_t tl;
            const uint8_t *t = ck_termdict_iter_term(&it, &tl);
            CHECK_EQ(tl, w->len);
            CHECK(bcmp_(t, tl, w->b, w->len) == 0);
            nterms++;
            ck_postings_t pc, pc2;
            uint32_t df = 0;
            CHECK_EQ(ck_segment_postings(s, (uint32_t)idx, w->b, w->len, &pc, &df), 0);
            CHECK_EQ(df, ck_termdict_iter_df(&it));
            CHECK_EQ(ck_segment_postings_at(s, (uint32_t)idx, ck_termdict_iter_value(&it), &pc2),
                     0);
            CHECK_EQ(ck_postings_has_positions(&pc), text);
            uint32_t mdf = 0;
            for (size_t q = k; q < e;) {
                size_t r = q;
                uint32_t last = 0;
                while (r < e && ops[r].doc == ops[q].doc) {
                    uint32_t p = ops[r].pos;
                    if (r > q && p <= last)
                        p = last + 1;
                    mpos[r - q] = last = p;
                    r++;
                }
                uint32_t tf = (uint32_t)(r - q);
                CHECK_EQ(ck_postings_doc(&pc), ops[q].doc);
                CHECK_EQ(ck_postings_freq(&pc), tf);
                CHECK_EQ(ck_postings_doc(&pc2), ops[q].doc);
                if (text) {
                    CHECK_EQ(ck_postings_positions(&pc, pbuf, 4096), (int)tf);
                    CHECK_MEM(pbuf, mpos, tf * 4);
                }
                ck_postings_next(&pc);
                ck_postings_next(&pc2);
                mdf++;
                q = r;
            }
            CHECK_EQ(ck_postings_doc(&pc), CK_POSTINGS_END);
            CHECK_EQ(ck_postings_err(&pc), 0);
            CHECK_EQ(df, mdf);
            k = e;
        }
        CHECK_EQ(ck_termdict_iter_next(&it), 0);
        CHECK_EQ(f->nterms, nterms);
        CHECK_EQ(ck_termdict_count(td), nterms);
        CHECK_EQ(
            ck_segment_postings(s, (uint32_t)idx, "zzzzzzzzzzzz", 12, &(ck_postings_t){0}, NULL),
            CK_ENOENT);
    }
    CHECK_EQ(ck_segment_nfields(s), nfields_model);
    for (uint32_t k = 1; k < ck_segment_nfields(s); k++) {
        const ck_seg_field_t *x = ck_segment_field(s, k - 1), *y = ck_segment_field(s, k);
        int cmp =
            bcmp_((const uint8_t *)x->name, x->name_len, (const uint8_t *)y->name, y->name_len);
        CHECK(cmp < 0 || (cmp == 0 && x->kind < y->kind));
    }
    free(ops);
    free(dl);
    free(pbuf);
    free(mpos);
}

/* Copies an image into an exactly sized malloc'ed buffer, so ASan sees over-reads. */
static uint8_t *exact_copy(const ck_wbuf_t *w)
{
    uint8_t *p = malloc(w->len ? w->len : 1);
    memcpy(p, w->data, w->len);
    return p;
}

/* ---- tests ---- */

CK_TEST(segment_norm_encode)
{
    const uint32_t *t = ck_segment_norm_table();
    CHECK_EQ(t[0], 0);
    for (uint32_t i = 1; i < 256; i++)
        CHECK(t[i] > t[i - 1]);
    for (uint32_t i = 0; i < 256; i++)
        CHECK_EQ(ck_segment_norm_encode(t[i]), i);
    uint8_t prev = 0;
    for (uint32_t x = 0; x < 2000000; x += x < 5000 ? 1 : 97) {
        uint8_t b = ck_segment_norm_encode(x);
        CHECK(b >= prev);
        prev = b;
        CHECK(t[b] <= x);
        if (x <= 24)
            CHECK_EQ(t[b], x);
        if (b < 255)
            CHECK(t[b + 1] > x);
        if (x >= 32 && b < 255)
            CHECK((double)(x - t[b]) / x < 1.0 / 16);
    }
    CHECK_EQ(ck_segment_norm_encode(UINT32_MAX), 255);
}

CK_TEST(segment_small)
{
    ck_segbuild_t *b;
    CHECK_EQ(ck_segbuild_new(&b), 0);
    CHECK_EQ(ck_segbuild_text(b, "t", 1, "x", 1, 0), CK_EINVAL); /* no doc yet */
    CHECK_EQ(ck_segbuild_doc(b, 3, 100, 1000), 0);
    CHECK_EQ(ck_segbuild_text(b, "body", 4, "hello", 5, 0), 0);
    CHECK_EQ(ck_segbuild_text(b, "body", 4, "world", 5, 1), 0);
    CHECK_EQ(ck_segbuild_text(b, "body", 4, "hello", 5, 2), 0);
    CHECK_EQ(ck_segbuild_text(b, "body", 4, "hello", 5, 1), CK_EINVAL); /* goes back */
    CHECK_EQ(ck_segbuild_keyword(b, "body", 4, "Hello World", 11), 0);
    CHECK_EQ(ck_segbuild_number(b, "body", 4, 2.5), 0);
    CHECK_EQ(ck_segbuild_number(b, "body", 4, -1), 0);
    CHECK_EQ(ck_segbuild_number(b, "body", 4, NAN), CK_EINVAL);
    CHECK_EQ(ck_segbuild_text(b, "", 0, "x", 1, 0), CK_EINVAL);
    CHECK_EQ(ck_segbuild_doc(b, 1, 7, 2000), 0); /* a doc with no fields */
    CHECK_EQ(ck_segbuild_doc(b, 3, 90, 3000), 0);
    CHECK_EQ(ck_segbuild_text(b, "body", 4, "world", 5, 5), 0);
    CHECK_EQ(ck_segbuild_text(b, "body", 4, "world", 5, 5), 0); /* equal position */
    CHECK_EQ(ck_segbuild_keyword(b, "tag", 3, "", 0), 0);
    CHECK_EQ(ck_segbuild_keyword(b, "tag", 3, "", 0), 0);
    CHECK_EQ(ck_segbuild_ndocs(b), 3);
    CHECK(ck_segbuild_mem(b) > 0);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_segbuild_finish(b, &out), 0);
    CHECK_EQ(out.len % 8, 0);
    uint8_t *img = exact_copy(&out);
    ck_segment_t *s;
    CHECK_EQ(ck_segment_open(img, out.len, true, &s), 0);
    CHECK_EQ(ck_segment_doc_record_pos(s, 0), CK_SEG_NO_POS); /* added without one */
    CHECK_EQ(ck_segment_image_version(img, out.len), CK_SEG_VERSION);
    CHECK_EQ(ck_segment_image_version(img, 7), -1);
    CHECK_EQ(ck_segment_image_version((const uint8_t *)"CKSX\2\0\0\0", 8), -1);
    CHECK_EQ(ck_segment_size(s), out.len);
    CHECK_EQ(ck_segment_ndocs(s), 3);
    int32_t p;
    int64_t o, t;
    ck_segment_doc(s, 1, &p, &o, &t);
    CHECK(p == 1 && o == 7 && t == 2000);
    int64_t mn, mx;
    CHECK(ck_segment_offsets(s, 3, &mn, &mx));
    CHECK(mn == 90 && mx == 100);
    CHECK(ck_segment_offsets(s, 1, &mn, &mx) && mn == 7 && mx == 7);
    CHECK(!ck_segment_offsets(s, 2, &mn, &mx));
    CHECK_EQ(ck_segment_nfields(s), 4);
    int ft = ck_segment_find_field(s, "body", 4, CK_SEG_TEXT);
    int fk = ck_segment_find_field(s, "body", 4, CK_SEG_KEYWORD);
    int fn = ck_segment_find_field(s, "body", 4, CK_SEG_NUMBER);
    int tg = ck_segment_find_field(s, "tag", 3, CK_SEG_KEYWORD);
    CHECK(ft == 0 && fk == 1 && fn == 2 && tg == 3);
    CHECK_EQ(ck_segment_find_field(s, "tag", 3, CK_SEG_TEXT), -1);
    CHECK_EQ(ck_segment_find_field(s, "bod", 3, CK_SEG_TEXT), -1);
    const ck_seg_field_t *f = ck_segment_field(s, (uint32_t)ft);
    CHECK(f->doc_count == 2 && f->sum_len == 5 && f->nterms == 2);
    CHECK(f->avgdl == 2.5);
    CHECK_EQ(ck_segment_len(s, (uint32_t)ft, 0), 3);
    CHECK_EQ(ck_segment_len(s, (uint32_t)ft, 1), 0);
    CHECK_EQ(ck_segment_len(s, (uint32_t)ft, 2), 2);
    CHECK_EQ(ck_segment_len(s, (uint32_t)fk, 2), 1);
    ck_postings_t c;
    uint32_t df, pos[8];
    CHECK_EQ(ck_segment_postings(s, (uint32_t)ft, "hello", 5, &c, &df), 0);
    CHECK(df == 1 && ck_postings_doc(&c) == 0 && ck_postings_freq(&c) == 2);
    CHECK_EQ(ck_postings_positions(&c, pos, 8), 2);
    CHECK(pos[0] == 0 && pos[1] == 2);
    CHECK(ck_postings_max_score(&c) >= (float)ck_bm25_tfn(2, 3, 2.5));
    CHECK_EQ(ck_segment_postings(s, (uint32_t)ft, "world", 5, &c, &df), 0);
    CHECK(df == 2 && ck_postings_doc(&c) == 0 && ck_postings_freq(&c) == 1);
    CHECK_EQ(ck_postings_next(&c), 2);
    CHECK_EQ(ck_postings_freq(&c), 2);
    CHECK_EQ(ck_postings_positions(&c, pos, 8), 2);
    CHECK(pos[0] == 5 && pos[1] == 6); /* the repeat moved to the next position */
    CHECK_EQ(ck_segment_postings(s, (uint32_t)fk, "Hello World", 11, &c, &df), 0);
    CHECK(!ck_postings_has_positions(&c));
    CHECK(ck_postings_max_score(&c) == ck_bm25_bound(1, 1, 1.0));
    CHECK_EQ(ck_segment_postings(s, (uint32_t)tg, "", 0, &c, &df), 0);
    CHECK(df == 1 && ck_postings_doc(&c) == 2 && ck_postings_freq(&c) == 2);
    CHECK_EQ(ck_segment_postings(s, (uint32_t)fn, "x", 1, &c, &df), CK_ENOENT);
    CHECK_EQ(ck_segment_postings(s, (uint32_t)ft, "nope", 4, &c, &df), CK_ENOENT);
    const uint32_t *nd;
    const double *nv;
    CHECK_EQ(ck_segment_numbers(s, (uint32_t)fn, &nd, &nv), 2);
    CHECK(nd[0] == 0 && nd[1] == 0 && nv[0] == -1 && nv[1] == 2.5);
    CHECK_EQ((uintptr_t)nv % 8, 0);
    const ck_seg_field_t *fnf = ck_segment_field(s, (uint32_t)fn);
    CHECK(fnf->doc_count == 1 && fnf->sum_len == 2 && fnf->nterms == 0);
    ck_segment_free(s);
    free(img);

    /* The builder is reusable after finish. */
    out.len = 0;
    CHECK_EQ(ck_segbuild_doc(b, 0, 1, 1), 0);
    CHECK_EQ(ck_segbuild_keyword(b, "k", 1, "v", 1), 0);
    CHECK_EQ(ck_segbuild_finish(b, &out), 0);
    CHECK_EQ(ck_segment_open(out.data, out.len, true, &s), 0);
    CHECK_EQ(ck_segment_nfields(s), 1);
    ck_segment_free(s);
    ck_wbuf_free(&out);
    ck_segbuild_free(b);
}

CK_TEST(segment_empty)
{
    ck_segbuild_t *b;
    CHECK_EQ(ck_segbuild_new(&b), 0);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_segbuild_finish(b, &out), 0);
    ck_segment_t *s;
    uint8_t *img = exact_copy(&out);
    CHECK_EQ(ck_segment_open(img, out.len, true, &s), 0);
    CHECK_EQ(ck_segment_ndocs(s), 0);
    CHECK_EQ(ck_segment_nfields(s), 0);
    CHECK(!ck_segment_offsets(s, 0, NULL, NULL));
    CHECK_EQ(ck_segment_find_field(s, "a", 1, CK_SEG_TEXT), -1);
    ck_segment_free(s);
    free(img);
    /* docs without any field */
    out.len = 0;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ck_segbuild_doc(b, 0, i, i), 0);
    CHECK_EQ(ck_segbuild_finish(b, &out), 0);
    CHECK_EQ(ck_segment_open(out.data, out.len, true, &s), 0);
    CHECK_EQ(ck_segment_ndocs(s), 3);
    CHECK_EQ(ck_segment_nfields(s), 0);
    int64_t mn, mx;
    CHECK(ck_segment_offsets(s, 0, &mn, &mx) && mn == 0 && mx == 2);
    ck_segment_free(s);
    ck_wbuf_free(&out);
    ck_segbuild_free(b);
}

CK_TEST(segment_max_lengths)
{
    char name[CK_SEG_FIELD_MAX + 1], term[CK_TERMDICT_MAX_TERM + 1];
    memset(name, 'f', sizeof name);
    memset(term, 0xff, sizeof term);
    ck_segbuild_t *b;
    CHECK_EQ(ck_segbuild_new(&b), 0);
    CHECK_EQ(ck_segbuild_doc(b, 0, 0, 0), 0);
    CHECK_EQ(ck_segbuild_text(b, name, CK_SEG_FIELD_MAX + 1, "a", 1, 0), CK_EINVAL);
    CHECK_EQ(ck_segbuild_text(b, name, CK_SEG_FIELD_MAX, term, CK_TERMDICT_MAX_TERM + 1, 0),
             CK_EINVAL);
    CHECK_EQ(ck_segbuild_keyword(b, name, CK_SEG_FIELD_MAX, term, CK_TERMDICT_MAX_TERM + 1),
             CK_EINVAL);
    CHECK_EQ(ck_segbuild_number(b, name, CK_SEG_FIELD_MAX + 1, 1), CK_EINVAL);
    CHECK_EQ(ck_segbuild_text(b, name, CK_SEG_FIELD_MAX, term, CK_TERMDICT_MAX_TERM, UINT32_MAX),
             0);
    /* the same term again at the last position cannot move further */
    CHECK_EQ(ck_segbuild_text(b, name, CK_SEG_FIELD_MAX, term, CK_TERMDICT_MAX_TERM, UINT32_MAX),
             CK_EINVAL);
    CHECK_EQ(ck_segbuild_keyword(b, name, CK_SEG_FIELD_MAX, term, CK_TERMDICT_MAX_TERM), 0);
    CHECK_EQ(ck_segbuild_number(b, name, CK_SEG_FIELD_MAX, INFINITY), 0);
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_segbuild_finish(b, &out), 0);
    ck_segment_t *s;
    CHECK_EQ(ck_segment_open(out.data, out.len, true, &s), 0);
    CHECK_EQ(ck_segment_nfields(s), 3);
    for (int k = CK_SEG_TEXT; k <= CK_SEG_NUMBER; k++) {
        int i = ck_segment_find_field(s, name, CK_SEG_FIELD_MAX, (ck_seg_kind_t)k);
        CHECK(i >= 0);
        CHECK_EQ(ck_segment_field(s, (uint32_t)i)->name_len, CK_SEG_FIELD_MAX);
        CHECK_EQ(strlen(ck_segment_field(s, (uint32_t)i)->name), CK_SEG_FIELD_MAX);
        if (k == CK_SEG_NUMBER)
            continue;
        ck_postings_t c;
        CHECK_EQ(ck_segment_postings(s, (uint32_t)i, term, CK_TERMDICT_MAX_TERM, &c, NULL), 0);
        CHECK_EQ(ck_postings_doc(&c), 0);
        if (k == CK_SEG_TEXT) {
            uint32_t p;
            CHECK_EQ(ck_postings_positions(&c, &p, 1), 1);
            CHECK_EQ(p, UINT32_MAX);
        }
    }
    ck_segment_free(s);
    ck_wbuf_free(&out);
    ck_segbuild_free(b);
}

CK_TEST(segment_random_model)
{
    corpus_t c;
    make_corpus(&c, 3000, true);
    ck_wbuf_t out = CK_WBUF_INIT;
    build(&c, 0, c.ndocs, keep_all, NULL, &out);
    uint8_t *img = exact_copy(&out);
    ck_segment_t *s;
    CHECK_EQ(ck_segment_open(img, out.len, true, &s), 0);
    check_segment(s, &c);
    ck_segment_free(s);
    /* deterministic: the same docs give the same bytes */
    ck_wbuf_t out2 = CK_WBUF_INIT;
    build(&c, 0, c.ndocs, keep_all, NULL, &out2);
    CHECK_EQ(out2.len, out.len);
    CHECK_MEM(out2.data, out.data, out.len);
    free(img);
    ck_wbuf_free(&out);
    ck_wbuf_free(&out2);
    corpus_free(&c);
}

/* ck_segbuild_text_n: the same bytes as one ck_segbuild_text call per token, for runs of
 * a doc's tokens of one field cut at random lengths (the batch of 32 and its edges). */
CK_TEST(segment_text_n_equals_text)
{
    corpus_t c;
    make_corpus(&c, 1500, true);
    ck_wbuf_t one = CK_WBUF_INIT, many = CK_WBUF_INIT;
    build(&c, 0, c.ndocs, keep_all, NULL, &one);
    ck_segbuild_t *sb;
    CHECK_EQ(ck_segbuild_new(&sb), 0);
    const char *terms[80];
    uint32_t lens[80], pos[80];
    uint32_t x = 7;
    size_t i = 0, batches = 0;
    for (uint32_t d = 0; d < c.ndocs; d++) {
        CHECK_EQ(ck_segbuild_doc_at(sb, c.part[d], c.off[d], c.ts[d], rpos_of(c.part[d], c.off[d])),
                 0);
        while (i < c.nops && c.ops[i].doc == d) {
            const op_t *o = &c.ops[i];
            const fdef_t *f = &FIELDS[o->f];
            if (f->kind != CK_SEG_TEXT) {
                const word_t *w = &vocab[o->term];
                if (f->kind == CK_SEG_KEYWORD)
                    CHECK_EQ(ck_segbuild_keyword(sb, f->name, strlen(f->name), (const char *)w->b,
                                                 w->len),
                             0);
                else
                    CHECK_EQ(ck_segbuild_number(sb, f->name, strlen(f->name), o->v), 0);
                i++;
                continue;
            }
            x = x * 1103515245u + 12345u;
            size_t want = 1 + (x >> 16) % 80, n = 0;
            for (; n < want && i < c.nops && c.ops[i].doc == d && c.ops[i].f == o->f; n++, i++) {
                const word_t *w = &vocab[c.ops[i].term];
                terms[n] = (const char *)w->b;
                lens[n] = w->len;
                pos[n] = c.ops[i].pos;
            }
            CHECK_EQ(ck_segbuild_text_n(sb, f->name, strlen(f->name), terms, lens, pos, n), 0);
            batches++;
        }
    }
    CHECK(batches > 100);
    CHECK_EQ(ck_segbuild_text_n(sb, "t", 1, terms, lens, pos, 0), 0); /* nothing */
    CHECK_EQ(ck_segbuild_finish(sb, &many), 0);
    CHECK_EQ(many.len, one.len);
    CHECK_MEM(many.data, one.data, one.len);
    /* errors: no doc; a term too long (the tokens before it are added) */
    CHECK_EQ(ck_segbuild_text_n(sb, "t", 1, terms, lens, pos, 1), CK_EINVAL);
    CHECK_EQ(ck_segbuild_doc(sb, 0, 0, 0), 0);
    terms[0] = "ok";
    lens[0] = 2;
    pos[0] = 0;
    terms[1] = "x";
    lens[1] = CK_TERMDICT_MAX_TERM + 1;
    pos[1] = 1;
    CHECK_EQ(ck_segbuild_text_n(sb, "t", 1, terms, lens, pos, 2), CK_EINVAL);
    ck_wbuf_free(&many);
    CHECK_EQ(ck_segbuild_finish(sb, &many), 0);
    ck_segment_t *s;
    CHECK_EQ(ck_segment_open(many.data, many.len, true, &s), 0);
    int fi = ck_segment_find_field(s, "t", 1, CK_SEG_TEXT);
    CHECK(fi >= 0);
    ck_postings_t pc;
    CHECK_EQ(ck_segment_postings(s, (uint32_t)fi, "ok", 2, &pc, NULL), 0);
    CHECK_EQ(ck_postings_doc(&pc), 0);
    ck_segment_free(s);
    ck_segbuild_free(sb);
    ck_wbuf_free(&one);
    ck_wbuf_free(&many);
    corpus_free(&c);
}

/* For every text term, every doc's tfn is within its block's maximum. */
CK_TEST(segment_bm25_bounds)
{
    corpus_t c;
    make_corpus(&c, 2000, true);
    ck_wbuf_t out = CK_WBUF_INIT;
    build(&c, 0, c.ndocs, keep_all, NULL, &out);
    ck_segment_t *s;
    CHECK_EQ(ck_segment_open(out.data, out.len, true, &s), 0);
    uint64_t checked = 0;
    for (uint32_t fi = 0; fi < ck_segment_nfields(s); fi++) {
        const ck_seg_field_t *f = ck_segment_field(s, fi);
        if (f->kind == CK_SEG_NUMBER)
            continue;
        ck_termdict_iter_t it;
        ck_termdict_iter_all(ck_segment_terms(s, fi), &it);
        while (ck_termdict_iter_next(&it) == 1) {
            ck_postings_t c1;
            CHECK_EQ(ck_segment_postings_at(s, fi, ck_termdict_iter_value(&it), &c1), 0);
            for (uint32_t d = ck_postings_doc(&c1); d != CK_POSTINGS_END;
                 d = ck_postings_next(&c1)) {
                ck_postings_shallow_advance(&c1, d);
                double tfn =
                    f->kind == CK_SEG_TEXT
                        ? ck_bm25_tfn(ck_postings_freq(&c1), ck_segment_len(s, fi, d), f->avgdl)
                        : ck_bm25_tfn(ck_postings_freq(&c1), 1, 1.0);
                CHECK(tfn <= (double)ck_postings_block_max(&c1));
                CHECK(tfn <= (double)ck_postings_max_score(&c1));
                checked++;
            }
        }
    }
    CHECK(checked > 10000);
    ck_segment_free(s);
    ck_wbuf_free(&out);
    corpus_free(&c);
}

typedef struct {
    uint32_t base[8];
    uint32_t mod;
} dropctx_t;

static bool keep_mod(uint32_t d, void *ctx)
{
    dropctx_t *k = ctx;
    return k->mod == 0 || d % k->mod != 1;
}
static bool merge_keep(void *ctx, size_t seg, uint32_t doc)
{
    dropctx_t *k = ctx;
    return keep_mod(k->base[seg] + doc, ctx);
}

static void merge_case(uint32_t ndocs, bool long_fields, uint32_t mod, const uint32_t *cuts,
                       size_t ncuts)
{
    corpus_t c;
    make_corpus(&c, ndocs, long_fields);
    dropctx_t kc = {{0}, mod};
    ck_wbuf_t parts[8];
    ck_segment_t *segs[8];
    uint8_t *imgs[8];
    for (size_t i = 0; i + 1 < ncuts; i++) {
        parts[i] = CK_WBUF_INIT;
        build(&c, cuts[i], cuts[i + 1], keep_all, NULL, &parts[i]);
        imgs[i] = exact_copy(&parts[i]);
        CHECK_EQ(ck_segment_open(imgs[i], parts[i].len, true, &segs[i]), 0);
        kc.base[i] = cuts[i];
    }
    ck_wbuf_t merged = CK_WBUF_INIT, direct = CK_WBUF_INIT;
    CHECK_EQ(ck_segment_merge(segs, ncuts - 1, mod ? merge_keep : NULL, &kc, &merged), 0);
    build(&c, 0, c.ndocs, keep_mod, &kc, &direct);
    ck_segment_t *ms;
    uint8_t *mimg = exact_copy(&merged);
    CHECK_EQ(ck_segment_open(mimg, merged.len, true, &ms), 0);
    corpus_t sub;
    sub_corpus(&c, keep_mod, &kc, &sub);
    check_segment(ms, &sub);
    /* exact lengths are recomputed from postings, so even with drops the bytes match */
    CHECK_EQ(merged.len, direct.len);
    CHECK_MEM(merged.data, direct.data, merged.len);
    ck_segment_free(ms);
    free(mimg);
    for (size_t i = 0; i + 1 < ncuts; i++) {
        ck_segment_free(segs[i]);
        free(imgs[i]);
        ck_wbuf_free(&parts[i]);
    }
    ck_wbuf_free(&merged);
    ck_wbuf_free(&direct);
    corpus_free(&sub);
    corpus_free(&c);
}

CK_TEST(segment_merge_equals_build)
{
    const uint32_t cuts[] = {0, 700, 701, 701, 1900, 2500};
    merge_case(2500, true, 0, cuts, 6);
    const uint32_t one[] = {0, 300};
    merge_case(300, false, 0, one, 2);
}

CK_TEST(segment_merge_drop)
{
    const uint32_t cuts[] = {0, 900, 1000, 2500};
    merge_case(2500, true, 3, cuts, 4);
    merge_case(2500, false, 2, cuts, 4);
}

static bool drop_all(void *ctx, size_t seg, uint32_t doc)
{
    return false;
}

CK_TEST(segment_merge_edge)
{
    corpus_t c;
    make_corpus(&c, 200, false);
    ck_wbuf_t a = CK_WBUF_INIT, m = CK_WBUF_INIT;
    build(&c, 0, 200, keep_all, NULL, &a);
    ck_segment_t *s, *ms;
    CHECK_EQ(ck_segment_open(a.data, a.len, true, &s), 0);
    /* every doc dropped: an empty segment */
    CHECK_EQ(ck_segment_merge(&s, 1, drop_all, NULL, &m), 0);
    CHECK_EQ(ck_segment_open(m.data, m.len, true, &ms), 0);
    CHECK_EQ(ck_segment_ndocs(ms), 0);
    CHECK_EQ(ck_segment_nfields(ms), 0);
    ck_segment_free(ms);
    /* no inputs */
    m.len = 0;
    CHECK_EQ(ck_segment_merge(NULL, 0, NULL, NULL, &m), 0);
    CHECK_EQ(ck_segment_open(m.data, m.len, true, &ms), 0);
    CHECK_EQ(ck_segment_ndocs(ms), 0);
    ck_segment_free(ms);
    /* a merge under allocation failures: either ok or nothing appended */
    for (long k = 1; k < 200; k += 7) {
        m.len = 0;
        ck_alloc_fail_after(k);
        int rc = ck_segment_merge(&s, 1, NULL, NULL, &m);
        ck_alloc_fail_after(0);
        CHECK(rc == 0 || (rc == CK_ENOMEM && m.len == 0));
    }
    ck_segment_free(s);
    ck_wbuf_free(&a);
    ck_wbuf_free(&m);
    corpus_free(&c);
}

CK_TEST(segment_build_oom)
{
    corpus_t c;
    make_corpus(&c, 50, false);
    for (long k = 1; k < 400; k += 3) {
        ck_segbuild_t *b;
        if (ck_segbuild_new(&b))
            continue;
        ck_alloc_fail_after(k);
        int rc = 0;
        for (uint32_t d = 0, i = 0; d < c.ndocs; d++) {
            if (ck_segbuild_doc(b, c.part[d], c.off[d], c.ts[d]))
                continue;
            for (; i < c.nops && c.ops[i].doc == d; i++) {
                const op_t *o = &c.ops[i];
                const fdef_t *f = &FIELDS[o->f];
                const word_t *w = &vocab[o->term];
                if (f->kind == CK_SEG_TEXT)
                    rc = ck_segbuild_text(b, f->name, strlen(f->name), (const char *)w->b, w->len,
                                          o->pos);
                else if (f->kind == CK_SEG_KEYWORD)
                    rc = ck_segbuild_keyword(b, f->name, strlen(f->name), (const char *)w->b,
                                             w->len);
                else
                    rc = ck_segbuild_number(b, f->name, strlen(f->name), o->v);
                CHECK(rc == 0 || rc == CK_ENOMEM);
            }
        }
        ck_wbuf_t out = CK_WBUF_INIT;
        rc = ck_segbuild_finish(b, &out);
        ck_alloc_fail_after(0);
        CHECK(rc == 0 || (rc == CK_ENOMEM && out.len == 0));
        if (rc == 0) {
            ck_segment_t *s;
            CHECK_EQ(ck_segment_open(out.data, out.len, true, &s), 0);
            ck_segment_free(s);
        }
        ck_wbuf_free(&out);
        ck_segbuild_free(b);
    }
    corpus_free(&c);
}

CK_TEST(segment_corrupt)
{
    corpus_t c;
    make_corpus(&c, 40, false);
    ck_wbuf_t out = CK_WBUF_INIT;
    build(&c, 0, c.ndocs, keep_all, NULL, &out);
    size_t n = out.len;
    ck_segment_t *s;
    /* every prefix */
    for (size_t k = 0; k < n; k++) {
        uint8_t *p = malloc(k ? k : 1);
        memcpy(p, out.data, k);
        int rc = ck_segment_open(p, k, true, &s);
        CHECK(rc == CK_ETRUNC || rc == CK_ECORRUPT);
        free(p);
    }
    /* trailing garbage */
    uint8_t *p = malloc(n + 8);
    memcpy(p, out.data, n);
    memset(p + n, 0, 8);
    CHECK_EQ(ck_segment_open(p, n + 8, false, &s), CK_ECORRUPT);
    free(p);
    /* byte flips: the CRC catches them */
    p = malloc(n);
    for (int r = 0; r < 3000; r++) {
        memcpy(p, out.data, n);
        size_t at = rng() % n;
        p[at] ^= (uint8_t)(1 + rng() % 255);
        int rc = ck_segment_open(p, n, r % 2 == 0, &s);
        CHECK(rc == CK_ETRUNC || rc == CK_ECORRUPT);
    }
    free(p);
    ck_wbuf_free(&out);
    corpus_free(&c);
}

/* Flips with the CRC recomputed, so the structural checks are what stands between a bad
 * image and the reader: open must fail or everything must read without a crash. */
#include "core/crc32c.h"
CK_TEST(segment_corrupt_crc_fixed)
{
    corpus_t c;
    make_corpus(&c, 60, false);
    ck_wbuf_t out = CK_WBUF_INIT;
    build(&c, 0, c.ndocs, keep_all, NULL, &out);
    size_t n = out.len;
    uint8_t *p = malloc(n);
    uint32_t opened = 0;
    for (int r = 0; r < 4000; r++) {
        memcpy(p, out.data, n);
        int flips = 1 + (int)(rng() % 3);
        for (int i = 0; i < flips; i++)
            p[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
        uint32_t crc = ck_crc32c(ck_crc32c(0, p, 28), p + 32, n - 32);
        ck_put_le32(p + 28, crc);
        ck_segment_t *s;
        int rc = ck_segment_open(p, n, true, &s);
        if (rc) {
            CHECK(rc == CK_ETRUNC || rc == CK_ECORRUPT);
            continue;
        }
        opened++;
        /* read everything */
        for (uint32_t fi = 0; fi < ck_segment_nfields(s); fi++) {
            const ck_seg_field_t *f = ck_segment_field(s, fi);
            if (f->kind == CK_SEG_NUMBER) {
                const uint32_t *d;
                const double *v;
                ck_segment_numbers(s, fi, &d, &v);
                continue;
            }
            ck_termdict_iter_t it;
            ck_termdict_iter_all(ck_segment_terms(s, fi), &it);
            while (ck_termdict_iter_next(&it) == 1) {
                ck_postings_t pc;
                if (ck_segment_postings_at(s, fi, ck_termdict_iter_value(&it), &pc))
                    continue;
                uint32_t pos[64];
                for (uint32_t d = ck_postings_doc(&pc); d != CK_POSTINGS_END;
                     d = ck_postings_next(&pc)) {
                    CHECK(d < ck_segment_ndocs(s));
                    (void)ck_segment_len(s, fi, d);
                    if (f->kind == CK_SEG_TEXT)
                        (void)ck_postings_positions(&pc, pos, 64);
                }
            }
        }
        ck_segment_free(s);
    }
    CHECK(opened > 0); /* some flips land where only content changes */
    free(p);
    ck_wbuf_free(&out);
    corpus_free(&c);
}
