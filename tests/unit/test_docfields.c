#include "core/alloc.h"
#include "core/err.h"
#include "search/docfields.h"
#include "test.h"

/* Builds one segment from (key, value) records with the default analyzer. */
static ck_segment_t *build(const char *const *keys, const char *const *values, int n,
                           ck_wbuf_t *img)
{
    ck_analyzer_config_t ac = {CK_ANALYZER_STANDARD, "english", 1};
    ck_docfields_t *d;
    ck_segbuild_t *b;
    CHECK_EQ(ck_docfields_new(&ac, &d), 0);
    CHECK_EQ(ck_segbuild_new(&b), 0);
    for (int i = 0; i < n; i++) {
        ck_slice_t k = keys && keys[i] ? ck_slice_cstr(keys[i]) : CK_SLICE_NULL;
        ck_slice_t v = values[i] ? ck_slice_cstr(values[i]) : CK_SLICE_NULL;
        CHECK_EQ(ck_docfields_add(d, b, 0, 100 + i, 1000 + i, k, v), 0);
    }
    CHECK_EQ(ck_segbuild_finish(b, img), 0);
    ck_segbuild_free(b);
    ck_docfields_free(d);
    ck_segment_t *s;
    CHECK_EQ(ck_segment_open(img->data, img->len, true, &s), 0);
    return s;
}

/* The docs holding term in (field, kind), as a bit mask. */
static unsigned docs_of(ck_segment_t *s, const char *field, ck_seg_kind_t kind, const char *term)
{
    int f = ck_segment_find_field(s, field, strlen(field), kind);
    if (f < 0)
        return 0;
    ck_postings_t c;
    if (ck_segment_postings(s, (uint32_t)f, term, strlen(term), &c, NULL))
        return 0;
    unsigned m = 0;
    for (uint32_t d = ck_postings_doc(&c); d != CK_POSTINGS_END; d = ck_postings_next(&c))
        m |= 1u << d;
    return m;
}

/* The docs with a value of a NUMBER field equal to v. */
static unsigned num_docs(ck_segment_t *s, const char *field, double v)
{
    int f = ck_segment_find_field(s, field, strlen(field), CK_SEG_NUMBER);
    if (f < 0)
        return 0;
    const uint32_t *docs;
    const double *vals;
    size_t n = ck_segment_numbers(s, (uint32_t)f, &docs, &vals);
    unsigned m = 0;
    for (size_t i = 0; i < n; i++)
        if (vals[i] == v)
            m |= 1u << docs[i];
    return m;
}

CK_TEST(docfields_json_fields)
{
    static const char *const vals[] = {
        "{\"title\":\"Running "
        "Shoes\",\"n\":42,\"ok\":true,\"user\":{\"name\":\"Ann\",\"tags\":[\"a b\",\"c\"]},"
        "\"when\":\"2024-05-01T10:00:00Z\",\"nothing\":null,\"esc\":\"caf\\u00e9 \\\"q\\\"\"}",
        "  [{\"title\":\"second doc\"}, {\"n\": 7.5}]  ",
        "not json at all: running",
        "{\"broken\": \"json\"", /* invalid: indexed as text, nothing else */
        "{\"deep\":[[[[{\"x\":\"leaf\"}]]]]}",
        NULL, /* tombstone */
    };
    static const char *const keys[] = {"user-42", NULL, NULL, NULL, NULL, "k"};
    ck_wbuf_t img = CK_WBUF_INIT;
    ck_segment_t *s = build(keys, vals, 6, &img);
    CHECK_EQ(ck_segment_ndocs(s), 6);
    /* strings: analyzed TEXT (stemmed, folded) and the exact .keyword */
    CHECK_EQ(docs_of(s, "title", CK_SEG_TEXT, "run"), 1u);
    CHECK_EQ(docs_of(s, "title", CK_SEG_TEXT, "shoe"), 1u);
    CHECK_EQ(docs_of(s, "title.keyword", CK_SEG_KEYWORD, "Running Shoes"), 1u);
    CHECK_EQ(docs_of(s, "title", CK_SEG_TEXT, "second"), 2u); /* inside an array of objects */
    /* nested objects and arrays: dotted paths, each element at the array's path */
    CHECK_EQ(docs_of(s, "user.name", CK_SEG_TEXT, "ann"), 1u);
    CHECK_EQ(docs_of(s, "user.tags.keyword", CK_SEG_KEYWORD, "a b"), 1u);
    CHECK_EQ(docs_of(s, "user.tags.keyword", CK_SEG_KEYWORD, "c"), 1u);
    CHECK_EQ(docs_of(s, "deep.x", CK_SEG_TEXT, "leaf"), 16u);
    /* escapes decoded */
    CHECK_EQ(docs_of(s, "esc.keyword", CK_SEG_KEYWORD, "caf\xc3\xa9 \"q\""), 1u);
    /* numbers, booleans, dates */
    CHECK_EQ(num_docs(s, "n", 42), 1u);
    CHECK_EQ(num_docs(s, "n", 7.5), 2u);
    CHECK_EQ(docs_of(s, "ok", CK_SEG_KEYWORD, "true"), 1u);
    CHECK_EQ(num_docs(s, "when", 1714557600000.0), 1u);
    CHECK_EQ(docs_of(s, "when", CK_SEG_TEXT, "2024"), 1u);
    CHECK(ck_segment_find_field(s, "nothing", 7, CK_SEG_TEXT) < 0);
    CHECK(ck_segment_find_field(s, "nothing", 7, CK_SEG_KEYWORD) < 0);
    /* non-JSON and invalid JSON values: _value, never half-indexed fields */
    CHECK_EQ(docs_of(s, "_value", CK_SEG_TEXT, "run"), 4u);
    CHECK_EQ(docs_of(s, "_value", CK_SEG_TEXT, "broken"), 8u);
    CHECK(ck_segment_find_field(s, "broken", 6, CK_SEG_TEXT) < 0);
    /* keys: _key text and keyword */
    CHECK_EQ(docs_of(s, "_key", CK_SEG_TEXT, "user"), 1u);
    CHECK_EQ(docs_of(s, "_key.keyword", CK_SEG_KEYWORD, "k"), 32u);
    /* no _all field: the query layer expands it */
    CHECK(ck_segment_find_field(s, "_all", 4, CK_SEG_TEXT) < 0);
    /* the doc table */
    int32_t p;
    int64_t off, ts;
    ck_segment_doc(s, 5, &p, &off, &ts);
    CHECK_EQ(p, 0);
    CHECK_EQ(off, 105);
    CHECK_EQ(ts, 1005);
    ck_segment_free(s);
    ck_wbuf_free(&img);
}

CK_TEST(docfields_positions_gap_between_values)
{
    /* two values of one field: positions 100 apart, so a phrase cannot span them */
    static const char *const vals[] = {"{\"t\":[\"alpha beta\",\"gamma\"]}"};
    ck_wbuf_t img = CK_WBUF_INIT;
    ck_segment_t *s = build(NULL, vals, 1, &img);
    int f = ck_segment_find_field(s, "t", 1, CK_SEG_TEXT);
    CHECK(f >= 0);
    ck_postings_t c;
    uint32_t pos[4];
    CHECK_EQ(ck_segment_postings(s, (uint32_t)f, "gamma", 5, &c, NULL), 0);
    CHECK_EQ(ck_postings_positions(&c, pos, 4), 1);
    CHECK_EQ(pos[0], 2 + CK_DOC_POSITION_GAP);
    CHECK_EQ(ck_segment_len(s, (uint32_t)f, 0), 3);
    ck_segment_free(s);
    ck_wbuf_free(&img);
}

CK_TEST(docfields_parse_date)
{
    int64_t ms;
    CHECK(ck_doc_parse_date("1970-01-01", 10, &ms) && ms == 0);
    CHECK(ck_doc_parse_date("2024-05-01T10:00:00Z", 20, &ms) && ms == 1714557600000);
    CHECK(ck_doc_parse_date("2024-05-01 10:00:00.123", 23, &ms) && ms == 1714557600123);
    CHECK(ck_doc_parse_date("2024-05-01T12:00:00+02:00", 25, &ms) && ms == 1714557600000);
    CHECK(ck_doc_parse_date("2024-05-01T09:30-0030", 21, &ms) && ms == 1714557600000);
    CHECK(ck_doc_parse_date("2024-02-29", 10, &ms));
    CHECK(!ck_doc_parse_date("2023-02-29", 10, &ms)); /* not a leap year */
    CHECK(!ck_doc_parse_date("2024-13-01", 10, &ms));
    CHECK(!ck_doc_parse_date("2024-05-01T25:00", 16, &ms));
    CHECK(!ck_doc_parse_date("2024-05-01x", 11, &ms));
    CHECK(!ck_doc_parse_date("20240501", 8, &ms));
    CHECK(!ck_doc_parse_date("2024-05-01T10:00:00Zjunk", 24, &ms));
}

static ck_map_type_t test_map(void *ctx, const char *path, size_t len)
{
    (void)ctx;
    static const struct {
        const char *path;
        ck_map_type_t t;
    } map[] = {{"sku", CK_MAP_KEYWORD}, {"price", CK_MAP_NUMBER}, {"name", CK_MAP_TEXT}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strlen(map[i].path) == len && !memcmp(map[i].path, path, len))
            return map[i].t;
    return CK_MAP_DYNAMIC;
}

CK_TEST(docfields_mapping)
{
    ck_analyzer_config_t ac = {CK_ANALYZER_STANDARD, "english", 1};
    ck_docfields_t *d;
    ck_segbuild_t *b;
    CHECK_EQ(ck_docfields_new(&ac, &d), 0);
    CHECK_EQ(ck_segbuild_new(&b), 0);
    ck_docfields_set_mapping(d, test_map, NULL);
    const char *v = "{\"sku\":\"AB-1\",\"price\":\"90\",\"name\":\"Red Shoes\",\"other\":\"x y\"}";
    CHECK_EQ(ck_docfields_add(d, b, 0, 0, 0, CK_SLICE_NULL, ck_slice_cstr(v)), 0);
    ck_wbuf_t img = CK_WBUF_INIT;
    CHECK_EQ(ck_segbuild_finish(b, &img), 0);
    ck_segment_t *s;
    CHECK_EQ(ck_segment_open(img.data, img.len, true, &s), 0);
    CHECK_EQ(docs_of(s, "sku", CK_SEG_KEYWORD, "AB-1"), 1u); /* exact, no TEXT */
    CHECK(ck_segment_find_field(s, "sku", 3, CK_SEG_TEXT) < 0);
    CHECK_EQ(num_docs(s, "price", 90), 1u);                /* numeric string */
    CHECK_EQ(docs_of(s, "name", CK_SEG_TEXT, "shoe"), 1u); /* text, no .keyword */
    CHECK(ck_segment_find_field(s, "name.keyword", 12, CK_SEG_KEYWORD) < 0);
    CHECK_EQ(docs_of(s, "other.keyword", CK_SEG_KEYWORD, "x y"), 1u); /* unmapped: dynamic */
    ck_segment_free(s);
    ck_wbuf_free(&img);
    ck_docfields_free(d);
    ck_segbuild_free(b);
    ck_analyzer_config_t bad = {CK_ANALYZER_STANDARD, "klingon", 0};
    CHECK_EQ(ck_docfields_new(&bad, &d), CK_EINVAL);
}
