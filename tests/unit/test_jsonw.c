#include <float.h>
#include <jansson.h>
#include <math.h>

#include "core/alloc.h"
#include "core/jsonw.h"
#include "test.h"

/* The writer's bytes as a NUL-terminated string, for CHECK_STREQ; resets the writer. */
static const char *take(ck_wbuf_t *w)
{
    static char out[4096];
    CHECK_EQ(w->err, 0);
    CHECK(w->len < sizeof(out));
    memcpy(out, w->data, w->len);
    out[w->len] = 0;
    ck_wbuf_reset(w);
    return out;
}

static const char *str_of(ck_wbuf_t *w, const char *p, size_t n)
{
    ck_jsonw_str(w, p, n);
    return take(w);
}

CK_TEST(jsonw_strings_escape)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    CHECK_STREQ(str_of(&w, "", 0), "\"\"");
    ck_jsonw_str(&w, NULL, 0);
    CHECK_STREQ(take(&w), "\"\"");
    CHECK_STREQ(str_of(&w, "plain text", 10), "\"plain text\"");
    CHECK_STREQ(str_of(&w, "a\"b\\c/d", 7), "\"a\\\"b\\\\c/d\"");
    CHECK_STREQ(str_of(&w, "\b\f\n\r\t", 5), "\"\\b\\f\\n\\r\\t\"");
    CHECK_STREQ(str_of(&w, "\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"");
    CHECK_STREQ(str_of(&w, "a\0b", 3), "\"a\\u0000b\"");
    ck_jsonw_cstr(&w, "x\ny");
    CHECK_STREQ(take(&w), "\"x\\ny\"");
    ck_jsonw_cstr(&w, NULL);
    CHECK_STREQ(take(&w), "null");
    ck_wbuf_free(&w);
}

CK_TEST(jsonw_strings_utf8)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    /* valid UTF-8 of every length is copied */
    const char *ok = "\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF";
    ck_jsonw_cstr(&w, ok);
    const char *got = take(&w);
    CHECK_EQ(strlen(got), strlen(ok) + 2);
    CHECK_MEM(got + 1, ok, strlen(ok));
    /* line and paragraph separators are escaped for JavaScript */
    CHECK_STREQ(str_of(&w, "\xE2\x80\xA8|\xE2\x80\xA9", 7), "\"\\u2028|\\u2029\"");
#define FFFD "\xEF\xBF\xBD"
    /* stray continuation bytes, C0/C1, F5..FF: one U+FFFD each */
    CHECK_STREQ(str_of(&w,
                       "a\x80"
                       "b",
                       3),
                "\"a" FFFD "b\"");
    CHECK_STREQ(str_of(&w, "\xC0\xAF", 2), "\"" FFFD FFFD "\"");
    CHECK_STREQ(str_of(&w, "\xC1\xBF", 2), "\"" FFFD FFFD "\"");
    CHECK_STREQ(str_of(&w, "\xF5\xFF", 2), "\"" FFFD FFFD "\"");
    /* overlong 3- and 4-byte forms, surrogates, above U+10FFFF */
    CHECK_STREQ(str_of(&w, "\xE0\x80\xAF", 3), "\"" FFFD FFFD FFFD "\"");
    CHECK_STREQ(str_of(&w, "\xF0\x8F\xBF\xBF", 4), "\"" FFFD FFFD FFFD FFFD "\"");
    CHECK_STREQ(str_of(&w, "\xED\xA0\x80", 3), "\"" FFFD FFFD FFFD "\"");
    CHECK_STREQ(str_of(&w, "\xF4\x90\x80\x80", 4), "\"" FFFD FFFD FFFD FFFD "\"");
    /* a truncated sequence is one maximal subpart: one U+FFFD, then what follows */
    CHECK_STREQ(str_of(&w,
                       "\xE2\x82"
                       "x",
                       3),
                "\"" FFFD "x\"");
    CHECK_STREQ(str_of(&w, "\xF0\x9F\x98", 3), "\"" FFFD "\"");
    CHECK_STREQ(str_of(&w, "\xF0\x9F\x98\"", 4), "\"" FFFD "\\\"\"");
    CHECK_STREQ(str_of(&w, "\xC3", 1), "\"" FFFD "\"");
#undef FFFD
    ck_wbuf_free(&w);
}

/* Whatever the bytes, the output parses as JSON, and valid UTF-8 comes back unchanged. */
CK_TEST(jsonw_strings_random_bytes_parse)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    uint32_t seed = 12345;
    uint8_t in[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 64);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            uint8_t b = (uint8_t)(seed >> 16);
            /* bias towards interesting bytes */
            in[i] = (iter & 1) ? b : (uint8_t)(b % 8 == 0 ? 0xE2 : b % 8 == 1 ? 0x80 : b);
        }
        ck_wbuf_reset(&w);
        ck_jsonw_str(&w, in, n);
        CHECK_EQ(w.err, 0);
        json_error_t jerr;
        json_t *j =
            json_loadb((const char *)w.data, w.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!j)
            CK_FAIL("iteration %d: not JSON: %s", iter, jerr.text);
        CHECK(json_is_string(j));
        json_decref(j);
    }
    const char *valid = "h\xC3\xA9llo \xF0\x9F\x98\x80 \"q\" \\ \t\x01";
    ck_wbuf_reset(&w);
    ck_jsonw_cstr(&w, valid);
    json_t *j = json_loadb((const char *)w.data, w.len, JSON_DECODE_ANY, NULL);
    CHECK(j && json_is_string(j));
    CHECK_STREQ(json_string_value(j), valid);
    json_decref(j);
    ck_wbuf_free(&w);
}

CK_TEST(jsonw_integers)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_jsonw_i64(&w, 0);
    CHECK_STREQ(take(&w), "0");
    ck_jsonw_i64(&w, -42);
    CHECK_STREQ(take(&w), "-42");
    ck_jsonw_i64(&w, INT64_MAX);
    CHECK_STREQ(take(&w), "9223372036854775807");
    ck_jsonw_i64(&w, INT64_MIN);
    CHECK_STREQ(take(&w), "-9223372036854775808");
    ck_jsonw_u64(&w, UINT64_MAX);
    CHECK_STREQ(take(&w), "18446744073709551615");
    ck_jsonw_u64(&w, 7);
    CHECK_STREQ(take(&w), "7");
    ck_jsonw_bool(&w, true);
    ck_jsonw_lit(&w, ",");
    ck_jsonw_bool(&w, false);
    ck_jsonw_lit(&w, ",");
    ck_jsonw_null(&w);
    CHECK_STREQ(take(&w), "true,false,null");
    ck_wbuf_free(&w);
}

CK_TEST(jsonw_doubles_shortest_roundtrip)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    static const struct {
        double d;
        const char *s;
    } cases[] = {
        {0.0, "0"},
        {-0.0, "-0"},
        {1.0, "1"},
        {0.1, "0.1"},
        {1.5, "1.5"},
        {-2.25, "-2.25"},
        {1e20, "1e+20"},
        {1e-7, "1e-07"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456789.125, "123456789.125"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {5e-324, "4.94065645841247e-324"}, /* round-trips; not the shortest "5e-324" */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_jsonw_double(&w, cases[i].d);
        CHECK_STREQ(take(&w), cases[i].s);
    }
    ck_jsonw_double(&w, NAN);
    ck_jsonw_double(&w, INFINITY);
    ck_jsonw_double(&w, -INFINITY);
    CHECK_STREQ(take(&w), "nullnullnull");
    /* every output reads back exactly */
    uint64_t bits = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 20000; i++) {
        bits = bits * 6364136223846793005ull + 1442695040888963407ull;
        double d;
        memcpy(&d, &bits, 8);
        if (!isfinite(d))
            continue;
        ck_jsonw_double(&w, d);
        const char *s = take(&w);
        CHECK(strtod(s, NULL) == d);
        CHECK(strlen(s) <= 24);
    }
    ck_jsonw_float(&w, 0.1f);
    CHECK_STREQ(take(&w), "0.1");
    ck_jsonw_float(&w, 3.4028235e38f);
    CHECK_STREQ(take(&w), "3.4028235e+38");
    ck_jsonw_float(&w, -1.5f);
    CHECK_STREQ(take(&w), "-1.5");
    ck_jsonw_float(&w, NAN);
    CHECK_STREQ(take(&w), "null");
    ck_wbuf_free(&w);
}

CK_TEST(jsonw_base64)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    /* RFC 4648 test vectors */
    static const char *vec[][2] = {{"", "\"\""},
                                   {"f", "\"Zg==\""},
                                   {"fo", "\"Zm8=\""},
                                   {"foo", "\"Zm9v\""},
                                   {"foob", "\"Zm9vYg==\""},
                                   {"fooba", "\"Zm9vYmE=\""},
                                   {"foobar", "\"Zm9vYmFy\""}};
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        ck_jsonw_base64(&w, vec[i][0], strlen(vec[i][0]));
        CHECK_STREQ(take(&w), vec[i][1]);
    }
    static const uint8_t bin[] = {0x00, 0xFF, 0xFE, 0x3E, 0x3F};
    ck_jsonw_base64(&w, bin, sizeof(bin));
    CHECK_STREQ(take(&w), "\"AP/+Pj8=\"");
    ck_wbuf_free(&w);
}

CK_TEST(jsonw_oom_is_sticky)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_alloc_fail_after(1);
    ck_jsonw_cstr(&w, "hello");
    ck_jsonw_i64(&w, 5);
    ck_jsonw_base64(&w, "abc", 3);
    ck_alloc_fail_after(0);
    CHECK_EQ(w.err, CK_ENOMEM);
    CHECK_EQ(w.len, 0);
    ck_wbuf_free(&w);
}
