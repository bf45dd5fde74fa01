#include <jansson.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "search/bm25.h"
#include "search/docfields.h"
#include "search/query.h"
#include "search/segment.h"
#include "test.h"

#define NEAR(a, b, eps) (fabs((a) - (b)) <= (eps)*fmax(1.0, fabs(b)))

/* ---- fixtures ---- */

typedef struct seg {
    uint8_t *img;
    size_t len;
    ck_segment_t *s;
} seg_t;

/* One segment from JSON values docs[0..n), record offsets base.., partition base % 3,
 * timestamp 1000 * offset. */
static seg_t build(const char *const *docs, size_t n, int64_t base)
{
    ck_analyzer_config_t cfg = {CK_ANALYZER_STANDARD, NULL, 0};
    ck_docfields_t *df;
    ck_segbuild_t *b;
    CHECK_EQ(ck_docfields_new(&cfg, &df), 0);
    CHECK_EQ(ck_segbuild_new(&b), 0);
    for (size_t i = 0; i < n; i++) {
        int64_t off = base + (int64_t)i;
        CHECK_EQ(ck_docfields_add(df, b, (int32_t)(off % 3), off, 1000 * off, CK_SLICE_NULL,
                                  ck_slice_cstr(docs[i])),
                 0);
    }
    ck_wbuf_t out = CK_WBUF_INIT;
    CHECK_EQ(ck_segbuild_finish(b, &out), 0);
    seg_t s = {0};
    s.img = ck_wbuf_steal(&out, &s.len);
    CHECK_EQ(ck_segment_open(s.img, s.len, true, &s.s), 0);
    ck_segbuild_free(b);
    ck_docfields_free(df);
    return s;
}

static void seg_free(seg_t *s)
{
    ck_segment_free(s->s);
    ck_free(s->img);
}

static ck_search_view_t view_of(ck_segment_t *const *segs, size_t n)
{
    ck_search_view_t v = {"idx", segs, n, {CK_ANALYZER_STANDARD, NULL, 0}, NULL, NULL};
    return v;
}

static int search(const char *body, const ck_search_view_t *v, size_t nv, ck_search_result_t *r,
                  ck_search_error_t *e)
{
    json_error_t je;
    json_t *j = body ? json_loads(body, 0, &je) : NULL;
    if (body && !j)
        CK_FAIL("bad test JSON: %s", body);
    ck_search_req_t *rq;
    int rc = ck_search_parse(j, &rq, e);
    json_decref(j);
    if (rc)
        return rc;
    rc = ck_search_execute(rq, v, nv, r, e);
    ck_search_req_free(rq);
    return rc;
}

/* Hit docs as a string "d0,d1,..." for easy checks (single segment). */
static void hits_str(const ck_search_result_t *r, char *buf, size_t cap)
{
    buf[0] = 0;
    for (size_t i = 0; i < r->nhits; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%u", i ? "," : "", r->hits[i].doc);
    }
}

static void expect(const char *body, const ck_search_view_t *v, const char *want)
{
    ck_search_result_t r;
    ck_search_error_t e = {0};
    int rc = search(body, v, 1, &r, &e);
    if (rc)
        CK_FAIL("%s: rc %d %s %s", body, rc, e.type, e.reason);
    char got[512];
    if (want[0] == '=') { /* "=a,b": the hit set in doc order, whatever the scores */
        want++;
        for (size_t i = 1; i < r.nhits; i++)
            for (size_t j = i; j > 0 && r.hits[j - 1].doc > r.hits[j].doc; j--) {
                ck_search_hit_t t = r.hits[j];
                r.hits[j] = r.hits[j - 1];
                r.hits[j - 1] = t;
            }
    }
    hits_str(&r, got, sizeof(got));
    if (strcmp(got, want) != 0)
        CK_FAIL("%s: hits [%s], want [%s]", body, got, want);
    ck_search_result_free(&r);
}

static void expect_err(const char *body, int status, const char *type, const char *reason_part)
{
    ck_search_result_t r;
    ck_search_error_t e = {0};
    json_t *j = json_loads(body, 0, NULL);
    CHECK(j);
    ck_search_req_t *rq = NULL;
    int rc = ck_search_parse(j, &rq, &e);
    json_decref(j);
    if (rc == 0) {
        CK_FAIL("%s: parsed, want %s", body, type);
        (void)r;
    }
    CHECK_EQ(e.status, status);
    if (strcmp(e.type, type) != 0 || (reason_part && !strstr(e.reason, reason_part)))
        CK_FAIL("%s: got %s \"%s\", want %s \"%s\"", body, e.type, e.reason, type,
                reason_part ? reason_part : "");
}

static const char *const DOCS[] = {
    /* 0 */ "{\"title\":\"The quick brown fox\",\"n\":5,\"tag\":\"animal\",\"ok\":true,"
            "\"when\":\"2024-05-01T10:00:00Z\",\"user\":{\"name\":\"Ann\"}}",
    /* 1 */ "{\"title\":\"lazy dog sleeps\",\"n\":10,\"tag\":\"animal\",\"ok\":false}",
    /* 2 */
    "{\"title\":\"quick dog runs quick\",\"n\":15,\"tag\":\"pet\","
    "\"when\":\"2024-06-01\"}",
    /* 3 */ "{\"title\":\"brown paper bag\",\"n\":20,\"user\":{\"name\":\"Bob\"}}",
    /* 4 */ "plain text value with quick words",
    /* 5 */ "{\"body\":\"the dog and the fox are friends\",\"n\":[1,30]}",
};
#define NDOCS (sizeof(DOCS) / sizeof(DOCS[0]))

/* ---- parsing and errors ---- */

CK_TEST(query_parse_errors)
{
    expect_err("{\"query\":{\"foo\":{}}}", 400, "parsing_exception", "unknown query [foo]");
    expect_err("{\"query\":{\"match\":{\"a\":\"x\",\"b\":\"y\"}}}", 400, "parsing_exception",
               "doesn't support multiple fields");
    expect_err("{\"query\":{\"match\":{\"a\":{\"operator\":\"and\"}}}}", 400, "parsing_exception",
               "requires query");
    expect_err("{\"query\":{\"match\":{\"a\":[1]}}}", 400, "parsing_exception", NULL);
    expect_err("{\"query\":{}}", 400, "parsing_exception", "empty clause");
    expect_err("{\"query\":{\"match_all\":{},\"match_none\":{}}}", 400, "parsing_exception", NULL);
    expect_err("{\"query\":[]}", 400, "parsing_exception", NULL);
    expect_err("{\"size\":-1}", 400, "illegal_argument_exception", "negative");
    expect_err("{\"size\":\"x\"}", 400, "x_content_parse_exception", "size");
    expect_err("{\"from\":9000,\"size\":2000}", 400, "illegal_argument_exception",
               "Result window is too large");
    expect_err("{\"bogus\":1}", 400, "parsing_exception", "bogus");
    expect_err("{\"query\":{\"bool\":{\"must\":5}}}", 400, "parsing_exception", "must");
    expect_err("{\"query\":{\"bool\":{\"shoud\":[]}}}", 400, "parsing_exception", "shoud");
    expect_err("{\"query\":{\"range\":{\"n\":{\"gte\":\"abc\"}}}}", 400, "parsing_exception",
               "abc");
    expect_err("{\"query\":{\"term\":{\"a\":{\"value\":[1]}}}}", 400, "parsing_exception", NULL);
    expect_err("{\"query\":{\"terms\":{\"a\":\"x\"}}}", 400, "parsing_exception", NULL);
    expect_err("{\"query\":{\"exists\":{}}}", 400, "parsing_exception", "field");
    expect_err("{\"query\":{\"query_string\":{\"query\":\"(a b\"}}}", 400, "parsing_exception",
               NULL);
    expect_err("{\"query\":{\"query_string\":{\"query\":\"\\\"a b\"}}}", 400, "parsing_exception",
               NULL);
    expect_err("{\"query\":{\"multi_match\":{\"query\":\"x\",\"type\":\"phrase_prefix\"}}}", 400,
               "parsing_exception", "type");
    expect_err("{\"sort\":[{\"n\":\"up\"}]}", 400, "illegal_argument_exception", "order");
    expect_err("{\"track_total_hits\":\"x\"}", 400, "illegal_argument_exception", NULL);
    expect_err("{\"query\":{\"match\":{\"a\":{\"query\":\"x\",\"minimum_should_match\":\"x%\"}}}}",
               400, "parsing_exception", "minimum_should_match");
    /* deep nesting is refused, not a stack overflow */
    char deep[8192] = "{\"query\":";
    for (int i = 0; i < 200; i++)
        strcat(deep, "{\"bool\":{\"must\":");
    strcat(deep, "{\"match_all\":{}}");
    for (int i = 0; i < 200; i++)
        strcat(deep, "}}");
    strcat(deep, "}");
    expect_err(deep, 400, "parsing_exception", "nested");

    /* accepted shapes */
    ck_search_req_t *rq;
    ck_search_error_t e;
    CHECK_EQ(ck_search_parse(NULL, &rq, &e), 0);
    CHECK(ck_search_req_index(rq) == NULL);
    CHECK_EQ(ck_search_req_size(rq), 10);
    ck_search_req_free(rq);
    json_t *j = json_loads("{\"index\":\"t1\",\"size\":0,\"from\":3,\"timeout\":\"1s\"}", 0, NULL);
    CHECK_EQ(ck_search_parse(j, &rq, &e), 0);
    CHECK_STREQ(ck_search_req_index(rq), "t1");
    CHECK_EQ(ck_search_req_size(rq), 0);
    CHECK_EQ(ck_search_req_from(rq), 3);
    ck_search_req_free(rq);
    json_decref(j);
}

static uint64_t rs = 88172645463325252ull;
static uint64_t rng(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static json_t *random_json(int depth)
{
    static const char *const keys[] = {"query",
                                       "match",
                                       "bool",
                                       "must",
                                       "should",
                                       "term",
                                       "range",
                                       "title",
                                       "n",
                                       "gte",
                                       "lt",
                                       "size",
                                       "from",
                                       "sort",
                                       "terms",
                                       "prefix",
                                       "exists",
                                       "field",
                                       "query_string",
                                       "match_phrase",
                                       "multi_match",
                                       "fields",
                                       "slop",
                                       "operator",
                                       "minimum_should_match",
                                       "_source",
                                       "highlight",
                                       "must_not",
                                       "filter",
                                       "boost",
                                       "constant_score",
                                       "value",
                                       "track_total_hits",
                                       "tag",
                                       "_offset",
                                       "_timestamp",
                                       "match_all",
                                       "type"};
    static const char *const strs[] = {
        "quick",  "and",        "OR",  "x*",   "\"a b\"", "(dog",        "title:fox", "-dog +quick",
        "now-1d", "2024-05-01", "50%", "desc", "",        "most_fields", "_all",      "n"};
    int r = (int)(rng() % (depth > 5 ? 5 : 8));
    switch (r) {
    case 0:
        return json_integer((json_int_t)(rng() % 40) - 5);
    case 1:
        return json_string(strs[rng() % (sizeof(strs) / sizeof(strs[0]))]);
    case 2:
        return json_real((double)(rng() % 1000) / 7.0);
    case 3:
        return rng() % 2 ? json_true() : json_null();
    case 4:
        return json_string(keys[rng() % (sizeof(keys) / sizeof(keys[0]))]);
    case 5:
    case 6: {
        json_t *o = json_object();
        int n = (int)(rng() % 3) + (r == 6);
        for (int i = 0; i < n; i++)
            json_object_set_new(o, keys[rng() % (sizeof(keys) / sizeof(keys[0]))],
                                random_json(depth + 1));
        return o;
    }
    default: {
        json_t *a = json_array();
        int n = (int)(rng() % 3);
        for (int i = 0; i < n; i++)
            json_array_append_new(a, random_json(depth + 1));
        return a;
    }
    }
}

/* Mutates a valid body: replaces a random nested value. */
static void mutate(json_t *j, int depth)
{
    if (json_is_object(j) && json_object_size(j)) {
        size_t pick = rng() % json_object_size(j), i = 0;
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (i++ == pick) {
                if (rng() % 3 == 0 || depth > 6)
                    json_object_set_new(j, k, random_json(depth));
                else
                    mutate(v, depth + 1);
                return;
            }
        }
    } else if (json_is_array(j) && json_array_size(j)) {
        size_t i = rng() % json_array_size(j);
        if (rng() % 3 == 0)
            json_array_set_new(j, i, random_json(depth));
        else
            mutate(json_array_get(j, i), depth + 1);
    }
}

CK_TEST(query_fuzz_no_crash)
{
    seg_t s = build(DOCS, NDOCS, 0);
    ck_segment_t *segs[1] = {s.s};
    ck_search_view_t v = view_of(segs, 1);
    static const char *const seeds[] = {
        "{\"query\":{\"bool\":{\"must\":[{\"match\":{\"title\":\"quick\"}}],\"filter\":{\"range\":"
        "{\"n\":{\"gte\":5,\"lt\":20}}},\"should\":[{\"term\":{\"tag\":\"pet\"}}]}},\"sort\":"
        "[{\"n\":\"desc\"},\"_score\"],\"highlight\":{\"fields\":{\"title\":{}}}}",
        "{\"query\":{\"query_string\":{\"query\":\"quick AND (dog OR fox) -lazy title:\\\"brown "
        "fox\\\"\"}},\"_source\":[\"title\"]}",
        "{\"query\":{\"multi_match\":{\"query\":\"quick dog\",\"fields\":[\"title^2\",\"body\"],"
        "\"type\":\"most_fields\"}},\"size\":2,\"from\":1,\"track_total_hits\":true}",
        "{\"query\":{\"match_phrase\":{\"title\":{\"query\":\"quick dog\",\"slop\":1}}}}",
        "{\"query\":{\"terms\":{\"n\":[5,\"10\",true]}},\"min_score\":0.5}",
        "{\"query\":{\"prefix\":{\"title\":\"qu\"}}}",
    };
    int parsed = 0, errs = 0;
    for (int i = 0; i < 600; i++) {
        json_t *j;
        if (i % 3 == 0) {
            j = random_json(0);
        } else {
            j = json_loads(seeds[rng() % (sizeof(seeds) / sizeof(seeds[0]))], 0, NULL);
            CHECK(j);
            for (int m = 0; m < 1 + (int)(rng() % 3); m++)
                mutate(j, 0);
        }
        ck_search_req_t *rq;
        ck_search_error_t e = {0};
        if (ck_search_parse(j, &rq, &e) == 0) {
            parsed++;
            ck_search_result_t r;
            if (ck_search_execute(rq, &v, 1, &r, &e) == 0) {
                json_t *src = json_loads(DOCS[0], 0, NULL);
                for (size_t h = 0; h < r.nhits; h++) {
                    json_t *f = ck_search_source_filter(rq, src);
                    json_t *hl = ck_search_highlight(rq, &v, src);
                    json_decref(f);
                    json_decref(hl);
                }
                json_decref(src);
                ck_search_result_free(&r);
            } else {
                CHECK(e.status == 400 || e.status == 500);
            }
            ck_search_req_free(rq);
        } else {
            errs++;
            CHECK_EQ(e.status, 400);
            CHECK(e.type[0] && e.reason[0]);
        }
        json_decref(j);
    }
    fprintf(stderr, "  fuzz: %d parsed, %d rejected\n", parsed, errs);
    CHECK(parsed > 50 && errs > 50);
    seg_free(&s);
}

/* ---- clauses ---- */

CK_TEST(query_clauses)
{
    seg_t s = build(DOCS, NDOCS, 0);
    ck_segment_t *segs[1] = {s.s};
    ck_search_view_t v = view_of(segs, 1);
    expect(NULL, &v, "0,1,2,3,4,5");
    expect("{\"query\":{\"match_all\":{}}}", &v, "0,1,2,3,4,5");
    expect("{\"query\":{\"match_none\":{}}}", &v, "");
    /* match: doc 2 has "quick" twice in 4 words; doc 0 once in 4 */
    expect("{\"query\":{\"match\":{\"title\":\"quick\"}}}", &v, "2,0");
    expect("{\"query\":{\"match\":{\"title\":\"QUICK fox\"}}}", &v, "0,2");
    expect("{\"query\":{\"match\":{\"title\":{\"query\":\"quick fox\",\"operator\":\"and\"}}}}", &v,
           "0");
    expect("{\"query\":{\"match\":{\"title\":{\"query\":\"quick brown fox\","
           "\"minimum_should_match\":2}}}}",
           &v, "0");
    expect("{\"query\":{\"match\":{\"title\":{\"query\":\"quick brown fox\","
           "\"minimum_should_match\":\"60%\"}}}}",
           &v, "0,2,3"); /* 60% of 3 rounds down to 1, as in ES */
    expect("{\"query\":{\"match\":{\"title\":{\"query\":\"quick brown fox\","
           "\"minimum_should_match\":\"67%\"}}}}",
           &v, "0");
    expect("{\"query\":{\"match\":{\"title\":\"\"}}}", &v, "0,1,2,3,4,5"); /* no terms: all */
    expect("{\"query\":{\"match\":{\"nosuch\":\"quick\"}}}", &v, "");
    /* _value <-> value, _all */
    expect("{\"query\":{\"match\":{\"value\":\"quick\"}}}", &v, "4");
    /* _all = the same match on every text field, summed: "fox" is rare among the four
     * titles (idf 1.2) and in the only body (idf 0.29), so doc 0 (title) ranks first */
    expect("{\"query\":{\"match\":{\"_all\":\"fox\"}}}", &v, "0,5");
    expect("{\"query\":{\"match\":{\"user.name\":\"ann\"}}}", &v, "0");
    /* term: keyword sub-field, text fallback, numbers, booleans, doc table */
    expect("{\"query\":{\"term\":{\"tag\":\"animal\"}}}", &v, "0,1");
    expect("{\"query\":{\"term\":{\"tag.keyword\":\"pet\"}}}", &v, "2");
    expect("{\"query\":{\"term\":{\"title\":\"lazy dog sleeps\"}}}", &v, "1");
    expect("{\"query\":{\"term\":{\"n\":15}}}", &v, "2");
    expect("{\"query\":{\"term\":{\"n\":1}}}", &v, "5");
    expect("{\"query\":{\"term\":{\"ok\":true}}}", &v, "0");
    expect("{\"query\":{\"term\":{\"_offset\":3}}}", &v, "3");
    expect("{\"query\":{\"term\":{\"_partition\":\"1\"}}}", &v, "1,4");
    expect("{\"query\":{\"terms\":{\"n\":[5,20]}}}", &v, "0,3");
    expect("{\"query\":{\"terms\":{\"tag\":[\"pet\",\"animal\"]}}}", &v, "0,1,2");
    /* range: bounds as written, one or two */
    expect("{\"query\":{\"range\":{\"n\":{\"gte\":10,\"lte\":20}}}}", &v, "1,2,3");
    expect("{\"query\":{\"range\":{\"n\":{\"gt\":10,\"lt\":20}}}}", &v, "2");
    expect("{\"query\":{\"range\":{\"n\":{\"gt\":25}}}}", &v, "5");
    expect("{\"query\":{\"range\":{\"_offset\":{\"lt\":2}}}}", &v, "0,1");
    expect("{\"query\":{\"range\":{\"_timestamp\":{\"gte\":2000,\"lte\":3000}}}}", &v, "2,3");
    expect("{\"query\":{\"range\":{\"when\":{\"gte\":\"2024-05-15\"}}}}", &v, "2");
    expect("{\"query\":{\"range\":{\"when\":{\"lt\":\"now\"}}}}", &v, "0,2");
    expect("{\"query\":{\"range\":{\"_timestamp\":{\"gte\":\"1970-01-01T00:00:04Z\"}}}}", &v,
           "4,5");
    /* exists, prefix */
    expect("{\"query\":{\"exists\":{\"field\":\"user.name\"}}}", &v, "0,3");
    expect("{\"query\":{\"exists\":{\"field\":\"ok\"}}}", &v, "0,1");
    expect("{\"query\":{\"exists\":{\"field\":\"n\"}}}", &v, "0,1,2,3,5");
    expect("{\"query\":{\"prefix\":{\"title\":\"bro\"}}}", &v, "0,3");
    expect("{\"query\":{\"prefix\":{\"tag\":\"an\"}}}", &v, "0,1");
    /* bool */
    expect("{\"query\":{\"bool\":{\"must\":{\"match\":{\"title\":\"dog\"}},\"must_not\":"
           "{\"term\":{\"n\":10}}}}}",
           &v, "2");
    expect("{\"query\":{\"bool\":{\"filter\":[{\"range\":{\"n\":{\"gte\":10}}}],\"should\":"
           "[{\"match\":{\"title\":\"quick\"}}]}}}",
           &v, "2,1,3,5");
    expect("{\"query\":{\"bool\":{\"should\":[{\"match\":{\"title\":\"lazy\"}},{\"match\":"
           "{\"title\":\"paper\"}}]}}}",
           &v, "1,3");
    expect("{\"query\":{\"bool\":{\"should\":[{\"match\":{\"title\":\"quick\"}},{\"match\":"
           "{\"title\":\"brown\"}}],\"minimum_should_match\":2}}}",
           &v, "0");
    expect("{\"query\":{\"bool\":{\"must_not\":{\"exists\":{\"field\":\"n\"}}}}}", &v, "4");
    expect("{\"query\":{\"bool\":{\"must\":{\"bool\":{\"should\":[{\"term\":{\"tag\":\"pet\"}},"
           "{\"term\":{\"ok\":false}}]}},\"filter\":{\"range\":{\"n\":{\"lte\":15}}}}}}",
           &v, "2,1"); /* pet: idf ln(1 + 2.5/1.5) > false: ln(1 + 1.5/1.5) */
    /* phrase */
    expect("{\"query\":{\"match_phrase\":{\"title\":\"quick brown\"}}}", &v, "0");
    expect("{\"query\":{\"match_phrase\":{\"title\":\"brown quick\"}}}", &v, "");
    expect("{\"query\":{\"match_phrase\":{\"title\":\"quick fox\"}}}", &v, "");
    expect("{\"query\":{\"match_phrase\":{\"title\":{\"query\":\"quick fox\",\"slop\":1}}}}", &v,
           "0");
    expect("{\"query\":{\"match_phrase\":{\"body\":\"dog and the fox\"}}}", &v, "5");
    /* multi_match */
    expect("{\"query\":{\"multi_match\":{\"query\":\"fox\",\"fields\":[\"title\",\"body\"]}}}", &v,
           "=0,5");
    expect("{\"query\":{\"multi_match\":{\"query\":\"dog\",\"fields\":[\"title\",\"body^10\"],"
           "\"type\":\"most_fields\"}}}",
           &v, "5,1,2");
    /* query_string */
    expect("{\"query\":{\"query_string\":{\"query\":\"quick AND dog\"}}}", &v, "2");
    /* default field _all: "quick" in a title (doc 0; 2 of the 4 titles have it) outscores
     * "quick" in the only _value (doc 4: idf 0.29) */
    expect("{\"query\":{\"query_string\":{\"query\":\"quick -dog\"}}}", &v, "0,4");
    expect("{\"query\":{\"query_string\":{\"query\":\"title:\\\"brown fox\\\" OR lazy\"}}}", &v,
           "=0,1");
    expect("{\"query\":{\"query_string\":{\"query\":\"(fox OR lazy) AND NOT brown\"}}}", &v,
           "=1,5");
    expect("{\"query\":{\"query_string\":{\"query\":\"quick dog\",\"default_operator\":\"AND\","
           "\"default_field\":\"title\"}}}",
           &v, "2");
    expect("{\"query\":{\"query_string\":{\"query\":\"bro*\"}}}", &v, "=0,3");
    expect("{\"query\":{\"query_string\":{\"query\":\"_exists_:user.name\"}}}", &v, "0,3");
    expect("{\"query\":{\"constant_score\":{\"filter\":{\"term\":{\"tag\":\"animal\"}},"
           "\"boost\":2}}}",
           &v, "0,1");
    seg_free(&s);
}

/* Tiny corpus, field t only: "a b", "a", "c d e". docCount 3, sum_len 6, avgdl 2.
 * term a: df 2, idf = ln(1 + (3 - 2 + .5) / (2 + .5)) = ln 1.6 = 0.4700036292
 *   doc 1 (dl 1): tfn = 2.2 / (1 + 1.2 * (.25 + .75 * 1 / 2)) = 2.2 / 1.75 = 1.2571428571
 *                 score = 0.5908617053
 *   doc 0 (dl 2): tfn = 2.2 / (1 + 1.2) = 1                  score = 0.4700036292
 * term e: df 1, idf = ln(1 + 2.5 / 1.5) = ln(8 / 3) = 0.9808292530
 *   doc 2 (dl 3): tfn = 2.2 / (1 + 1.2 * (.25 + .75 * 1.5)) = 2.2 / 2.65 = 0.8301886792
 *                 score = 0.9808292530 * 0.8301886792 = 0.8142733421
 * "a e" with boost 2: doc 2 = 1.6285466842, doc 1 = 1.1817234106, doc 0 = 0.9400072584 */
CK_TEST(query_bm25_hand_computed)
{
    static const char *const d[] = {"{\"t\":\"a b\"}", "{\"t\":\"a\"}", "{\"t\":\"c d e\"}"};
    seg_t s = build(d, 3, 0);
    ck_segment_t *segs[1] = {s.s};
    ck_search_view_t v = view_of(segs, 1);
    ck_search_result_t r;
    ck_search_error_t e;
    CHECK_EQ(search("{\"query\":{\"match\":{\"t\":\"a\"}}}", &v, 1, &r, &e), 0);
    CHECK_EQ(r.nhits, 2);
    CHECK_EQ(r.hits[0].doc, 1);
    CHECK(NEAR(r.hits[0].score, 0.5908617053, 1e-9));
    CHECK_EQ(r.hits[1].doc, 0);
    CHECK(NEAR(r.hits[1].score, 0.4700036292, 1e-9));
    CHECK(r.has_max_score && NEAR(r.max_score, 0.5908617053, 1e-9));
    CHECK(r.has_total && r.total == 2 && !r.total_is_lower_bound);
    ck_search_result_free(&r);
    CHECK_EQ(
        search("{\"query\":{\"match\":{\"t\":{\"query\":\"a e\",\"boost\":2}}}}", &v, 1, &r, &e),
        0);
    CHECK_EQ(r.nhits, 3);
    CHECK_EQ(r.hits[0].doc, 2);
    CHECK(NEAR(r.hits[0].score, 1.6285466842, 1e-9));
    CHECK(NEAR(r.hits[1].score, 1.1817234106, 1e-9));
    CHECK(NEAR(r.hits[2].score, 0.9400072584, 1e-9));
    ck_search_result_free(&r);
    /* the generic scorer (min_score disables WAND) gives the same */
    CHECK_EQ(search("{\"query\":{\"match\":{\"t\":{\"query\":\"a e\",\"boost\":2}}},"
                    "\"min_score\":1.0}",
                    &v, 1, &r, &e),
             0);
    CHECK_EQ(r.nhits, 2);
    CHECK(NEAR(r.hits[0].score, 1.6285466842, 1e-9));
    CHECK(NEAR(r.hits[1].score, 1.1817234106, 1e-9));
    CHECK_EQ(r.total, 2);
    ck_search_result_free(&r);
    /* filter does not score; match_all scores 1; constant_score its boost */
    CHECK_EQ(search("{\"query\":{\"bool\":{\"filter\":{\"match\":{\"t\":\"a\"}}}}}", &v, 1, &r, &e),
             0);
    CHECK_EQ(r.nhits, 2);
    CHECK(r.hits[0].score == 0.0);
    ck_search_result_free(&r);
    CHECK_EQ(search("{\"query\":{\"constant_score\":{\"filter\":{\"match\":{\"t\":\"a\"}},"
                    "\"boost\":3}}}",
                    &v, 1, &r, &e),
             0);
    CHECK(r.nhits == 2 && r.hits[0].score == 3.0 && r.hits[0].doc == 0);
    ck_search_result_free(&r);
    seg_free(&s);
}

/* ---- random corpora: multi-segment statistics, WAND vs generic ---- */

static char *random_doc(void)
{
    static const char *const words[] = {"alpha", "beta",  "gamma", "delta", "eps",    "zeta",
                                        "eta",   "theta", "iota",  "kappa", "lambda", "mu"};
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "{\"n\":%d,\"t\":\"", (int)(rng() % 100));
    int len = 1 + (int)(rng() % 25);
    for (int i = 0; i < len; i++) {
        /* Zipf-ish: low indexes are common */
        size_t w = (size_t)(rng() % 12);
        w = w * (rng() % 12) / 12;
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s%s", i ? " " : "", words[w]);
    }
    snprintf(buf + n, sizeof(buf) - (size_t)n, "\"}");
    return strdup(buf);
}

static bool live_odd7(void *ctx, size_t seg, uint32_t doc)
{
    const uint32_t *bases = ctx;
    return (bases[seg] + doc) % 7 != 3;
}

CK_TEST(query_multi_segment_and_wand)
{
    static const char *const queries[] = {
        "{\"query\":{\"match\":{\"t\":\"alpha theta\"}},\"size\":%d}",
        "{\"query\":{\"match\":{\"t\":\"kappa lambda mu iota\"}},\"size\":%d}",
        "{\"query\":{\"bool\":{\"should\":[{\"match\":{\"t\":\"beta\"}},{\"match\":{\"t\":"
        "\"eta\"}}],\"must_not\":{\"range\":{\"n\":{\"lt\":20}}}}},\"size\":%d}",
        "{\"query\":{\"multi_match\":{\"query\":\"gamma zeta\",\"fields\":[\"t\",\"_all^0.5\"],"
        "\"type\":\"most_fields\"}},\"size\":%d}",
        "{\"query\":{\"match\":{\"t\":{\"query\":\"delta eps iota\",\"boost\":1.5}}},"
        "\"size\":%d}",
        /* phrases, and terms missing from the view (or from some of its segments) */
        "{\"query\":{\"bool\":{\"should\":[{\"match_phrase\":{\"t\":\"alpha beta\"}},"
        "{\"match_phrase\":{\"t\":{\"query\":\"gamma alpha\",\"slop\":2}}}]}},\"size\":%d}",
        "{\"query\":{\"match\":{\"t\":\"nosuchword mu kappa\"}},\"size\":%d}",
    };
    for (int round = 0; round < 4; round++) {
        size_t n = 300 + rng() % 700;
        char **docs = malloc(n * sizeof(char *));
        for (size_t i = 0; i < n; i++)
            docs[i] = random_doc();
        seg_t one = build((const char *const *)docs, n, 0);
        size_t c1 = n / 3, c2 = c1 + n / 4;
        seg_t three[3] = {build((const char *const *)docs, c1, 0),
                          build((const char *const *)docs + c1, c2 - c1, (int64_t)c1),
                          build((const char *const *)docs + c2, n - c2, (int64_t)c2)};
        uint32_t bases1[1] = {0}, bases3[3] = {0, (uint32_t)c1, (uint32_t)c2};
        ck_segment_t *s1[1] = {one.s}, *s3[3] = {three[0].s, three[1].s, three[2].s};
        ck_search_view_t v1 = view_of(s1, 1), v3 = view_of(s3, 3);
        if (round % 2) {
            v1.live = v3.live = live_odd7;
            v1.live_ctx = bases1;
            v3.live_ctx = bases3;
        }
        for (size_t qi = 0; qi < sizeof(queries) / sizeof(queries[0]); qi++) {
            int size = (int)(1 + rng() % 40);
            char body[1024], body_exh[1100];
            snprintf(body, sizeof(body), queries[qi], size);
            /* min_score 0 takes the generic doc-at-a-time path (every match scored) */
            snprintf(body_exh, sizeof(body_exh), "%.*s,\"min_score\":0}", (int)strlen(body) - 1,
                     body);
            ck_search_result_t a, b, c;
            ck_search_error_t e;
            CHECK_EQ(search(body, &v1, 1, &a, &e), 0);
            CHECK_EQ(search(body, &v3, 1, &b, &e), 0);
            CHECK_EQ(search(body_exh, &v3, 1, &c, &e), 0);
            CHECK_EQ(a.nhits, b.nhits);
            CHECK_EQ(b.nhits, c.nhits);
            CHECK_EQ(a.total, b.total);
            CHECK_EQ(b.total, c.total);
            for (size_t i = 0; i < a.nhits; i++) {
                uint32_t gb = bases3[b.hits[i].seg] + b.hits[i].doc;
                uint32_t gc = bases3[c.hits[i].seg] + c.hits[i].doc;
                if (!NEAR(a.hits[i].score, b.hits[i].score, 1e-9) ||
                    !NEAR(b.hits[i].score, c.hits[i].score, 1e-9))
                    CK_FAIL("q%zu hit %zu: scores %.17g %.17g %.17g", qi, i, a.hits[i].score,
                            b.hits[i].score, c.hits[i].score);
                /* same docs, unless tied with a neighbour by (nearly) equal scores */
                if (a.hits[i].doc != gb || gb != gc) {
                    bool tie =
                        (i > 0 && NEAR(a.hits[i - 1].score, a.hits[i].score, 1e-9)) ||
                        (i + 1 < a.nhits && NEAR(a.hits[i + 1].score, a.hits[i].score, 1e-9));
                    if (!tie)
                        CK_FAIL("q%zu hit %zu: docs %u %u %u", qi, i, a.hits[i].doc, gb, gc);
                }
                if (round % 2)
                    CHECK(gb % 7 != 3);
            }
            ck_search_result_free(&a);
            ck_search_result_free(&b);
            ck_search_result_free(&c);
        }
        seg_free(&one);
        for (int i = 0; i < 3; i++)
            seg_free(&three[i]);
        for (size_t i = 0; i < n; i++)
            free(docs[i]);
        free(docs);
    }
}

/* ---- request options ---- */

CK_TEST(query_sort_paging_totals_live)
{
    seg_t s = build(DOCS, NDOCS, 0);
    ck_segment_t *segs[1] = {s.s};
    ck_search_view_t v = view_of(segs, 1);
    expect("{\"sort\":[{\"n\":\"desc\"}]}", &v, "5,3,2,1,0,4");            /* doc 5: max(1, 30) */
    expect("{\"sort\":[{\"n\":{\"order\":\"asc\"}}]}", &v, "5,0,1,2,3,4"); /* min 1; missing last */
    expect("{\"sort\":[{\"_offset\":\"desc\"}]}", &v, "5,4,3,2,1,0");
    expect("{\"sort\":[\"_timestamp\"],\"from\":2,\"size\":2}", &v, "2,3");
    expect("{\"sort\":[{\"_partition\":\"asc\"},{\"_offset\":\"desc\"}]}", &v, "3,0,4,1,5,2");
    expect("{\"query\":{\"match\":{\"title\":\"quick dog\"}},\"size\":1}", &v, "2");
    /* "lazy dog sleeps" (3 words) outscores "The quick brown fox" (4 words) */
    expect("{\"query\":{\"match\":{\"title\":\"quick dog\"}},\"from\":1,\"size\":5}", &v, "1,0");
    expect("{\"from\":10}", &v, "");

    ck_search_result_t r;
    ck_search_error_t e;
    CHECK_EQ(search("{\"size\":0}", &v, 1, &r, &e), 0);
    CHECK(r.nhits == 0 && r.total == 6 && r.has_total && !r.total_is_lower_bound);
    ck_search_result_free(&r);
    CHECK_EQ(search("{\"track_total_hits\":false}", &v, 1, &r, &e), 0);
    CHECK(!r.has_total && r.nhits == 6);
    ck_search_result_free(&r);
    CHECK_EQ(search("{\"track_total_hits\":3,\"size\":1}", &v, 1, &r, &e), 0);
    CHECK(r.has_total && r.total == 3 && r.total_is_lower_bound);
    ck_search_result_free(&r);
    CHECK_EQ(search("{\"query\":{\"match\":{\"_all\":\"quick dog fox\"}},\"track_total_hits\":2,"
                    "\"size\":1}",
                    &v, 1, &r, &e),
             0);
    CHECK(r.total == 2 && r.total_is_lower_bound && r.nhits == 1);
    ck_search_result_free(&r);
    CHECK_EQ(search("{\"query\":{\"match\":{\"_all\":\"quick dog fox\"}},\"track_total_hits\":true,"
                    "\"size\":1}",
                    &v, 1, &r, &e),
             0);
    CHECK(r.total == 5 && !r.total_is_lower_bound);
    ck_search_result_free(&r);
    /* sort values */
    CHECK_EQ(search("{\"sort\":[{\"n\":\"desc\"},\"_score\"],\"size\":1}", &v, 1, &r, &e), 0);
    CHECK(r.hits[0].sort && json_array_size(r.hits[0].sort) == 2);
    CHECK_EQ(json_integer_value(json_array_get(r.hits[0].sort, 0)), 30);
    CHECK(!r.has_max_score);
    ck_search_result_free(&r);

    /* live(): dead docs are never hits nor counted */
    uint32_t base[1] = {0};
    v.live = live_odd7;
    v.live_ctx = base; /* doc 3 dead */
    expect("{\"query\":{\"match\":{\"title\":\"brown\"}}}", &v, "0");
    CHECK_EQ(search("{\"size\":0}", &v, 1, &r, &e), 0);
    CHECK_EQ(r.total, 5);
    ck_search_result_free(&r);

    /* two views: ordered by score, then view */
    v.live = NULL;
    ck_search_view_t two[2] = {v, v};
    CHECK_EQ(search("{\"query\":{\"match\":{\"title\":\"lazy\"}}}", two, 2, &r, &e), 0);
    CHECK(r.nhits == 2 && r.hits[0].view == 0 && r.hits[1].view == 1 && r.total == 2);
    CHECK(r.hits[0].score == r.hits[1].score);
    ck_search_result_free(&r);
    seg_free(&s);
}

CK_TEST(query_source_filter_and_highlight)
{
    seg_t s = build(DOCS, NDOCS, 0);
    ck_segment_t *segs[1] = {s.s};
    ck_search_view_t v = view_of(segs, 1);
    json_t *src = json_loads("{\"title\":\"The quick brown fox\",\"n\":5,\"user\":{\"name\":"
                             "\"Ann\",\"age\":3},\"tags\":[\"a\",\"b\"]}",
                             0, NULL);
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{}", "{\"title\":\"The quick brown fox\",\"n\":5,\"user\":{\"name\":\"Ann\",\"age\":3},"
               "\"tags\":[\"a\",\"b\"]}"},
        {"{\"_source\":[\"title\",\"user.name\"]}",
         "{\"title\":\"The quick brown fox\",\"user\":{\"name\":\"Ann\"}}"},
        {"{\"_source\":\"user\"}", "{\"user\":{\"name\":\"Ann\",\"age\":3}}"},
        {"{\"_source\":{\"excludes\":[\"user.*\",\"n\"]}}",
         "{\"title\":\"The quick brown fox\",\"user\":{},\"tags\":[\"a\",\"b\"]}"},
        {"{\"_source\":{\"includes\":[\"u*\"],\"excludes\":[\"user.age\"]}}",
         "{\"user\":{\"name\":\"Ann\"}}"},
        {"{\"_source\":[\"*.name\",\"tags\"]}",
         "{\"user\":{\"name\":\"Ann\"},\"tags\":[\"a\",\"b\"]}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *b = json_loads(cases[i].body, 0, NULL);
        ck_search_req_t *rq;
        ck_search_error_t e;
        CHECK_EQ(ck_search_parse(b, &rq, &e), 0);
        json_t *f = ck_search_source_filter(rq, src), *want = json_loads(cases[i].want, 0, NULL);
        if (!json_equal(f, want)) {
            char *d = json_dumps(f, JSON_COMPACT);
            CK_FAIL("%s: got %s", cases[i].body, d ? d : "NULL");
        }
        json_decref(f);
        json_decref(want);
        ck_search_req_free(rq);
        json_decref(b);
    }
    json_t *b = json_loads("{\"_source\":false}", 0, NULL);
    ck_search_req_t *rq;
    ck_search_error_t e;
    CHECK_EQ(ck_search_parse(b, &rq, &e), 0);
    CHECK(ck_search_source_filter(rq, src) == NULL);
    ck_search_req_free(rq);
    json_decref(b);

    /* highlight */
    b = json_loads("{\"query\":{\"bool\":{\"should\":[{\"match\":{\"title\":\"QUICK fox\"}},"
                   "{\"term\":{\"user.name\":\"Ann\"}}]}},\"highlight\":{\"fields\":{\"title\":{},"
                   "\"user.name\":{}},\"pre_tags\":[\"[\"],\"post_tags\":[\"]\"]}}",
                   0, NULL);
    CHECK_EQ(ck_search_parse(b, &rq, &e), 0);
    CHECK(ck_search_req_has_highlight(rq));
    json_t *hl = ck_search_highlight(rq, &v, src);
    CHECK(hl);
    CHECK_STREQ(json_string_value(json_array_get(json_object_get(hl, "title"), 0)),
                "The [quick] brown [fox]");
    CHECK_STREQ(json_string_value(json_array_get(json_object_get(hl, "user.name"), 0)), "[Ann]");
    json_decref(hl);
    ck_search_req_free(rq);
    json_decref(b);

    /* fragments of a long value, default tags */
    char text[2000] = "";
    for (int i = 0; i < 60; i++)
        strcat(text, i == 5 || i == 50 ? "needle " : "filler words ");
    json_t *big = json_pack("{s:s}", "body", text);
    b = json_loads("{\"query\":{\"match\":{\"body\":\"needle\"}},\"highlight\":{\"fields\":"
                   "{\"body\":{\"fragment_size\":40}},\"fragment_size\":40}}",
                   0, NULL);
    CHECK_EQ(ck_search_parse(b, &rq, &e), 0);
    hl = ck_search_highlight(rq, &v, big);
    CHECK(hl);
    json_t *frags = json_object_get(hl, "body");
    CHECK_EQ(json_array_size(frags), 2);
    for (size_t i = 0; i < 2; i++) {
        const char *f = json_string_value(json_array_get(frags, i));
        CHECK(strstr(f, "<em>needle</em>"));
        CHECK(strlen(f) <= 40 + 9 + 13);
    }
    json_decref(hl);
    ck_search_req_free(rq);
    json_decref(b);
    /* no match on the field: nothing */
    b = json_loads("{\"query\":{\"match\":{\"title\":\"zzz\"}},\"highlight\":{\"fields\":"
                   "{\"title\":{}}}}",
                   0, NULL);
    CHECK_EQ(ck_search_parse(b, &rq, &e), 0);
    CHECK(ck_search_highlight(rq, &v, src) == NULL);
    ck_search_req_free(rq);
    json_decref(b);
    json_decref(big);
    json_decref(src);
    seg_free(&s);
}
