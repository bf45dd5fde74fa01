/* The JSON object scanner: kinds, escapes, spans, strictness, limits, allocation failure,
 * agreement with jansson on generated and mutated documents, and a speed figure. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "columnar/jsonscan.h"
#include "core/alloc.h"
#include "test.h"

/* Every scan goes through an exact-size heap copy, so that ASan reports any read past
 * the end (the scanner is given no NUL terminator). The copy lives until the next scan. */
static char *copy_buf;
static size_t copy_len;

static int scan_n(ck_jscan_t *s, const char *text, size_t n, const ck_jmember_t **out)
{
    free(copy_buf);
    copy_buf = malloc(n ? n : 1);
    CHECK(copy_buf != NULL);
    memcpy(copy_buf, text, n);
    copy_len = n;
    return ck_jscan_object(s, copy_buf, n, out);
}

static int scan(ck_jscan_t *s, const char *text, const ck_jmember_t **out)
{
    return scan_n(s, text, strlen(text), out);
}

/* Result of scanning text with a fresh scanner. */
static int scan_rc(const char *text, size_t n)
{
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    int rc = scan_n(&s, text, n, &m);
    if (rc < 0)
        CHECK(m == NULL);
    ck_jscan_free(&s);
    return rc;
}

static bool key_is(const ck_jmember_t *m, const char *k)
{
    return m->key_len == strlen(k) && memcmp(m->key, k, m->key_len) == 0;
}
static bool str_is(const ck_jmember_t *m, const char *v, size_t n)
{
    return m->str_len == n && memcmp(m->str, v, n) == 0;
}
#define STR_IS(m, lit) str_is((m), (lit), sizeof(lit) - 1)

static bool in_input(const char *ptr)
{
    return ptr >= copy_buf && ptr < copy_buf + copy_len;
}

CK_TEST(jsonscan_every_kind)
{
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    const char *doc = "{\"n\":null,\"t\":true,\"f\":false,\"i\":-42,\"d\":2.5,\"s\":\"hi\","
                      "\"o\":{\"x\":[1,2]},\"a\":[1,{\"y\":2}],\"e\":1e2,\"z\":-0,\"one\":1.0,"
                      "\"E\":-1.5E-3,\"zero\":0,\"es\":\"\"}";
    CHECK_EQ(scan(&s, doc, &m), 14);
    CHECK(key_is(&m[0], "n") && m[0].kind == CK_JV_NULL);
    CHECK(key_is(&m[1], "t") && m[1].kind == CK_JV_BOOL && m[1].b);
    CHECK(key_is(&m[2], "f") && m[2].kind == CK_JV_BOOL && !m[2].b);
    CHECK(key_is(&m[3], "i") && m[3].kind == CK_JV_INT);
    CHECK_EQ(m[3].i, -42);
    CHECK(key_is(&m[4], "d") && m[4].kind == CK_JV_FLOAT && m[4].d == 2.5);
    CHECK(key_is(&m[5], "s") && m[5].kind == CK_JV_STRING && STR_IS(&m[5], "hi"));
    CHECK(in_input(m[5].str) && in_input(m[5].key));
    CHECK(key_is(&m[6], "o") && m[6].kind == CK_JV_OBJECT && STR_IS(&m[6], "{\"x\":[1,2]}"));
    CHECK(key_is(&m[7], "a") && m[7].kind == CK_JV_ARRAY && STR_IS(&m[7], "[1,{\"y\":2}]"));
    CHECK(key_is(&m[8], "e") && m[8].kind == CK_JV_FLOAT && m[8].d == 100.0);
    CHECK(key_is(&m[9], "z") && m[9].kind == CK_JV_INT);
    CHECK_EQ(m[9].i, 0);
    CHECK(key_is(&m[10], "one") && m[10].kind == CK_JV_FLOAT && m[10].d == 1.0);
    CHECK(key_is(&m[11], "E") && m[11].kind == CK_JV_FLOAT && m[11].d == -1.5e-3);
    CHECK(key_is(&m[12], "zero") && m[12].kind == CK_JV_INT);
    CHECK_EQ(m[12].i, 0);
    CHECK(key_is(&m[13], "es") && m[13].kind == CK_JV_STRING && m[13].str_len == 0);
    /* fields the kind does not name are zero */
    CHECK(m[0].str == NULL && m[0].i == 0 && !m[0].b && m[3].d == 0 && m[4].i == 0);
    ck_jscan_free(&s);
}

CK_TEST(jsonscan_escapes)
{
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    CHECK_EQ(scan(&s,
                  "{\"a\":\"q\\\"b\\\\s\\/b\\bf\\fn\\nr\\rt\\t.\","
                  "\"u\":\"\\u0041\\u00e9\\u20AC\\uD83D\\uDE00\\uDBFF\\uDFFF\","
                  "\"nul\":\"x\\u0000y\",\"plain\":\"p\",\"mixed\":\"\xc3\xa9\\n\xe2\x82\xac\"}",
                  &m),
             5);
    CHECK(STR_IS(&m[0], "q\"b\\s/b\bf\fn\nr\rt\t."));
    CHECK(STR_IS(&m[1], "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"));
    CHECK(STR_IS(&m[2], "x\0y"));
    CHECK(!in_input(m[0].str) && !in_input(m[1].str) && in_input(m[3].str));
    CHECK(STR_IS(&m[4], "\xc3\xa9\n\xe2\x82\xac"));
    /* earlier scratch strings are intact after later ones were written */
    CHECK(STR_IS(&m[0], "q\"b\\s/b\bf\fn\nr\rt\t."));

    /* keys with escapes */
    CHECK_EQ(scan(&s, "{\"a\\\"b\\u00e9\":1,\"\\u0000\":2,\"k\\n\":3,\"\":4}", &m), 4);
    CHECK(key_is(&m[0], "a\"b\xc3\xa9") && !in_input(m[0].key));
    CHECK(m[1].key_len == 1 && m[1].key[0] == 0);
    CHECK(key_is(&m[2], "k\n") && key_is(&m[3], ""));
    CHECK_EQ(m[3].i, 4);

    static const char *bad[] = {
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\U0041\"}",
        "{\"a\":\"\\u12G4\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u\"}",
        "{\"a\":\"\\'\"}",
        "{\"a\":\"\\a\"}",
        "{\"a\":\"\\0\"}",
        "{\"a\":\"\\",
        "{\"a\":\"\\uD800\"}",
        "{\"a\":\"\\uDC00\"}",
        "{\"a\":\"\\uDFFF\\uD800\"}",
        "{\"a\":\"\\uD800\\u0041\"}",
        "{\"a\":\"\\uD800x\"}",
        "{\"a\":\"\\uDBFF\\uDBFF\"}",
        "{\"a\":\"\\uD800\\n\"}",
        "{\"a\":\"\\uD83D\\uDE0\"}",
        "{\"\\uD800\":1}",
        "{\"a\":[\"\\uDC00\"]}",
        "{\"a\":{\"\\q\":1}}",
        "{\"a\":\"\\uD800\\\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (scan_rc(bad[i], strlen(bad[i])) != CK_JSCAN_EINVALID)
            CK_FAIL("accepted %s", bad[i]);
    ck_jscan_free(&s);
}

/* Many escaped strings in one document: all stay valid to the end (the scratch never
 * moves during a call), across scanner reuse with growing documents. */
CK_TEST(jsonscan_scratch_stable)
{
    ck_jscan_t s;
    ck_jscan_init(&s);
    for (int size = 1; size <= 400; size *= 3) {
        char *doc = malloc((size_t)size * 40 + 16);
        CHECK(doc != NULL);
        size_t n = 0;
        doc[n++] = '{';
        for (int i = 0; i < size; i++)
            n += (size_t)sprintf(doc + n, "%s\"k\\u%04x\":\"v\\t%d\"", i ? "," : "", i + 0x100, i);
        doc[n++] = '}';
        const ck_jmember_t *m;
        CHECK_EQ(scan_n(&s, doc, n, &m), size);
        for (int i = 0; i < size; i++) {
            char want[32];
            int wn = sprintf(want, "v\t%d", i);
            CHECK(str_is(&m[i], want, (size_t)wn));
            uint32_t cp = (uint32_t)(i + 0x100);
            CHECK(m[i].key_len == 3 && (uint8_t)m[i].key[0] == 'k');
            CHECK_EQ((uint8_t)m[i].key[1], 0xC0 | cp >> 6);
            CHECK_EQ((uint8_t)m[i].key[2], 0x80 | (cp & 0x3F));
        }
        free(doc);
    }
    ck_jscan_free(&s);
}

CK_TEST(jsonscan_nested_spans)
{
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    const char *doc = "{ \"o\" : { \"a\" : [ 1 , \"]}\" , {\"b\":\"\\\"}\"} , -2.5e3 ] } ,"
                      "\"a\":[ ],\"e\":{},\"deep\":[[[{\"x\":[null,true,false]}]]] }";
    CHECK_EQ(scan(&s, doc, &m), 4);
    CHECK(m[0].kind == CK_JV_OBJECT &&
          STR_IS(&m[0], "{ \"a\" : [ 1 , \"]}\" , {\"b\":\"\\\"}\"} , -2.5e3 ] }"));
    CHECK(m[1].kind == CK_JV_ARRAY && STR_IS(&m[1], "[ ]"));
    CHECK(m[2].kind == CK_JV_OBJECT && STR_IS(&m[2], "{}"));
    CHECK(m[3].kind == CK_JV_ARRAY && STR_IS(&m[3], "[[[{\"x\":[null,true,false]}]]]"));
    /* spans point into the input, and an object span scans on its own */
    CHECK(in_input(m[0].str));
    char inner[128];
    memcpy(inner, m[0].str, m[0].str_len);
    const ck_jmember_t *m2;
    ck_jscan_t s2;
    ck_jscan_init(&s2);
    CHECK_EQ(ck_jscan_object(&s2, inner, m[0].str_len, &m2), 1);
    CHECK(key_is(&m2[0], "a") && m2[0].kind == CK_JV_ARRAY);
    ck_jscan_free(&s2);
    ck_jscan_free(&s);
}

CK_TEST(jsonscan_whitespace_and_empty)
{
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    CHECK_EQ(scan(&s, " \t\r\n{ \t\r\n\"a\" \n: \r1 \t, \"b\"\t:\t[ 1 ,\n2 ]\n} \r\n", &m), 2);
    CHECK_EQ(m[0].i, 1);
    CHECK(STR_IS(&m[1], "[ 1 ,\n2 ]"));
    CHECK_EQ(scan(&s, "{}", &m), 0);
    CHECK(m != NULL); /* the array of an earlier call */
    CHECK_EQ(scan(&s, " { \n } ", &m), 0);
    ck_jscan_t fresh;
    ck_jscan_init(&fresh);
    CHECK_EQ(scan(&fresh, "{}", &m), 0);
    ck_jscan_free(&fresh);
    /* only the four RFC 8259 whitespace characters */
    static const char *bad[] = {"{}\f",           "\v{}",        "{\f}", "\xc2\xa0{}",
                                "\xef\xbb\xbf{}", "{\"a\":1\f}", "{}\0", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = strlen(bad[i]) + (strcmp(bad[i], "{}") == 0); /* "{}\0": keep the NUL */
        if (scan_rc(bad[i], n) != CK_JSCAN_EINVALID)
            CK_FAIL("accepted bad whitespace #%zu", i);
    }
    CHECK_EQ(scan_rc("   ", 3), CK_JSCAN_EINVALID);
    CHECK_EQ(ck_jscan_object(&s, NULL, 0, &m), CK_JSCAN_EINVALID);
    ck_jscan_free(&s);
}

CK_TEST(jsonscan_duplicates_in_order)
{
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    CHECK_EQ(scan(&s, "{\"a\":1,\"b\":2,\"a\":\"x\",\"a\":null,\"\\u0061\":true}", &m), 5);
    CHECK(key_is(&m[0], "a") && m[0].kind == CK_JV_INT);
    CHECK(key_is(&m[1], "b"));
    CHECK(key_is(&m[2], "a") && m[2].kind == CK_JV_STRING);
    CHECK(key_is(&m[3], "a") && m[3].kind == CK_JV_NULL);
    CHECK(key_is(&m[4], "a") && m[4].kind == CK_JV_BOOL);
    ck_jscan_free(&s);
}

CK_TEST(jsonscan_truncated_everywhere)
{
    const char *doc = "{\"ts\":1700000000123,\"k\\u00e9y\":\"v\\uD83D\\uDE00\xc3\xa9\","
                      "\"o\":{\"a\":[1,-2.5e-3,true,false,null,\"s\"],\"b\":{}},"
                      "\"f\":-0.125E+2,\"n\":null}";
    size_t n = strlen(doc);
    CHECK(scan_rc(doc, n) == 5);
    for (size_t i = 0; i < n; i++)
        if (scan_rc(doc, i) != CK_JSCAN_EINVALID)
            CK_FAIL("prefix of %zu bytes accepted", i);
}

CK_TEST(jsonscan_invalid_documents)
{
    static const char *bad[] = {
        /* trailing garbage, commas, structure */
        "{}x",
        "{}{}",
        "{} 1",
        "{\"a\":1,}",
        "{,}",
        "{\"a\":1,,\"b\":2}",
        "{\"a\":[1,]}",
        "{\"a\":[,1]}",
        "{\"a\":[1 2]}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{\"a\"}",
        "{a:1}",
        "{\"a\":1 \"b\":2}",
        "{'a':1}",
        "{\"a\":'x'}",
        "{\"a\":1}}",
        "{\"a\":[1]]}",
        "{\"a\":{\"b\":1]}",
        "{\"a\":[1}}",
        "{\"a\":{1:2}}",
        "{\"a\":{\"b\"}}",
        "{\"a\":{\"b\":1,}}",
        "{1:1}",
        "{\"a\":1/*c*/}",
        "{\"a\":1}//",
        "{\"a\"::1}",
        "{\"a\":1,\"b\"}",
        "{",
        "}",
        "{\"a\":[",
        "{\"a\":{",
        /* numbers */
        "{\"a\":01}",
        "{\"a\":-01}",
        "{\"a\":00}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":1e+}",
        "{\"a\":1E-}",
        "{\"a\":1.e3}",
        "{\"a\":-.5}",
        "{\"a\":0x10}",
        "{\"a\":1.5.2}",
        "{\"a\":NaN}",
        "{\"a\":-NaN}",
        "{\"a\":Infinity}",
        "{\"a\":-Infinity}",
        "{\"a\":[01]}",
        "{\"a\":[1.]}",
        "{\"a\":[-]}",
        "{\"a\":[+1]}",
        "{\"a\":1e5.5}",
        "{\"a\":--1}",
        "{\"a\":- 1}",
        /* literals */
        "{\"a\":tru}",
        "{\"a\":True}",
        "{\"a\":nul}",
        "{\"a\":nulll}",
        "{\"a\":falsee}",
        "{\"a\":[truex]}",
        "{\"a\":undefined}",
        /* strings with control characters */
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\t\"}",
        "{\"a\":\"\n\"}",
        "{\"a\":\"\x1f\"}",
        "{\"\t\":1}",
        "{\"a\":[\"\x1f\"]}",
        "{\"a\":\"x",
        "{\"a\":\"x\\\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (scan_rc(bad[i], strlen(bad[i])) != CK_JSCAN_EINVALID)
            CK_FAIL("accepted %s", bad[i]);
    /* a raw NUL inside a string */
    CHECK_EQ(scan_rc("{\"a\":\"x\0y\"}", 11), CK_JSCAN_EINVALID);
    CHECK_EQ(scan_rc("{\"a\":[\"\0\"]}", 10), CK_JSCAN_EINVALID);
    /* DEL (0x7f) is not a control character for JSON */
    CHECK_EQ(scan_rc("{\"a\":\"\x7f\"}", 9), 1);
    /* every position of a long string, where it is scanned eight bytes at a time, in a
     * key, a value, a string with an escape, and a nested one */
    static const char *forms[] = {"{\"%s\":1,\"pad\":\"0123456789abcdef\"}",
                                  "{\"a\":\"%s\",\"pad\":\"0123456789abcdef\"}",
                                  "{\"a\":\"\\n%s\",\"pad\":\"0123456789abcdef\"}",
                                  "{\"a\":[\"%s\"],\"pad\":\"0123456789abcdef\"}"};
    static const uint8_t ctl[] = {0x00, 0x01, 0x09, 0x0a, 0x1f, 0x20, 0x7f, '/', '!', '#'};
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++)
        for (int at = 0; at < 24; at++)
            for (size_t c = 0; c < sizeof(ctl); c++) {
                char str[25], doc[128];
                memset(str, 'x', 24);
                str[24] = 0;
                str[at] = '#'; /* placeholder: snprintf stops at a NUL */
                int n = snprintf(doc, sizeof(doc), forms[f], str);
                *strchr(doc, '#') = (char)ctl[c];
                int want = ctl[c] < 0x20 ? CK_JSCAN_EINVALID : 2;
                if (scan_rc(doc, (size_t)n) != want)
                    CK_FAIL("byte 0x%02x at %d in form %zu", ctl[c], at, f);
            }
}

CK_TEST(jsonscan_utf8)
{
    static const char *bad[] = {
        "\x80",
        "\xbf",
        "\xc0\x80",
        "\xc1\xbf",
        "\xe0\x80\x80",
        "\xe0\x9f\xbf",
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf",
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xed\xb0\x80",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "\xfe",
        "\xff",
        "\xc3",
        "\xe2\x82",
        "\xf0\x9f\x98",
        "\xc3\x28",
        "\xe2\x28\xac",
        "\xe2\x82\x28",
        "\xf0\x28\x98\x80",
        "\xf0\x9f\x28\x80",
        "\xf0\x9f\x98\x28",
        "a\xc3",
        "\xc3\xa9\x80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char doc[64];
        /* as a value, as a key, nested, and outside any string */
        const char *fmt[] = {"{\"a\":\"%s\"}", "{\"%s\":1}", "{\"a\":[\"%s\"]}",
                             "{\"a\":{\"%s\":1}}", "{\"a\":\"\\n%s\"}", "{\"a\":%s}", "%s{}",
                             /* long strings, scanned eight bytes at a time */
                             "{\"a\":\"%s0123456789abcdef\"}", "{\"a\":\"0123%s0123456789abcdef\"}",
                             "{\"a\":\"0123456%s0123456789abcdef\"}", "{\"%s0123456789abcdef\":1}"};
        for (size_t f = 0; f < sizeof(fmt) / sizeof(fmt[0]); f++) {
            int n = snprintf(doc, sizeof(doc), fmt[f], bad[i]);
            if (scan_rc(doc, (size_t)n) != CK_JSCAN_EINVALID)
                CK_FAIL("accepted invalid UTF-8 #%zu in form %zu", i, f);
        }
    }
    static const char *good[] = {
        "\xc2\x80",
        "\xdf\xbf",
        "\xe0\xa0\x80",
        "\xef\xbf\xbf",
        "\xed\x9f\xbf",
        "\xee\x80\x80",
        "\xf0\x90\x80\x80",
        "\xf4\x8f\xbf\xbf",
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
        "abcdefgh\xc3\xa9ijklmnop\xe2\x82\xacqrstuvwxyz",
    };
    ck_jscan_t s;
    ck_jscan_init(&s);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char doc[256];
        int n =
            snprintf(doc, sizeof(doc), "{\"%s\":\"%s\",\"b\":[\"%s\"]}", good[i], good[i], good[i]);
        const ck_jmember_t *m;
        if (scan_n(&s, doc, (size_t)n, &m) != 2)
            CK_FAIL("rejected valid UTF-8 #%zu", i);
        CHECK(key_is(&m[0], good[i]) && str_is(&m[0], good[i], strlen(good[i])));
    }
    ck_jscan_free(&s);
}

CK_TEST(jsonscan_not_an_object)
{
    static const char *top[] = {"[1]",          "\"s\"",       "1",      "true",
                                "null",         "false",       "-1.5e3", " [ ] ",
                                "[{\"a\":[]}]", "\"\\u00e9\"", "0",      " 12 \n"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
        if (scan_rc(top[i], strlen(top[i])) != CK_JSCAN_ENOTOBJ)
            CK_FAIL("%s is not -2", top[i]);
    static const char *bad[] = {"[1",   "tru",         "1 2",   "[1,]",       "\"s", "01", "-",
                                "[1]]", "\"\\uD800\"", "nulls", "[\"\x01\"]", "1.",  "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (scan_rc(bad[i], strlen(bad[i])) != CK_JSCAN_EINVALID)
            CK_FAIL("%s is not -1", bad[i]);
}

/* Depth d of nested arrays inside the top-level object (depth d + 1 in all). */
static int depth_doc(int total, bool objects, bool top_array)
{
    char *doc = malloc((size_t)total * 8 + 16);
    CHECK(doc != NULL);
    size_t n = 0;
    int inner = total - 1;
    if (top_array) {
        doc[n++] = '[';
    } else {
        memcpy(doc + n, "{\"k\":", 5);
        n += 5;
    }
    for (int i = 0; i < inner; i++) {
        if (objects && i % 2) {
            memcpy(doc + n, "{\"x\":", 5);
            n += 5;
        } else {
            doc[n++] = '[';
        }
    }
    doc[n++] = '1';
    for (int i = inner - 1; i >= 0; i--)
        doc[n++] = objects && i % 2 ? '}' : ']';
    doc[n++] = top_array ? ']' : '}';
    int rc = scan_rc(doc, n);
    free(doc);
    return rc;
}

CK_TEST(jsonscan_depth_limit)
{
    CHECK_EQ(CK_JSCAN_MAX_DEPTH, 512);
    CHECK_EQ(depth_doc(2, false, false), 1);
    CHECK_EQ(depth_doc(512, false, false), 1);
    CHECK_EQ(depth_doc(512, true, false), 1);
    CHECK_EQ(depth_doc(513, false, false), CK_JSCAN_EINVALID);
    CHECK_EQ(depth_doc(513, true, false), CK_JSCAN_EINVALID);
    CHECK_EQ(depth_doc(100000, true, false), CK_JSCAN_EINVALID);
    CHECK_EQ(depth_doc(512, true, true), CK_JSCAN_ENOTOBJ);
    CHECK_EQ(depth_doc(513, false, true), CK_JSCAN_EINVALID);
    /* the stack of object/array bits across 64-bit words: close in the right order */
    for (int d = 60; d < 140; d++)
        CHECK_EQ(depth_doc(d, true, false), 1);
}

static void check_int(const char *text, int64_t want)
{
    char doc[96];
    int n = snprintf(doc, sizeof(doc), "{\"v\":%s}", text);
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    if (scan_n(&s, doc, (size_t)n, &m) != 1 || m[0].kind != CK_JV_INT || m[0].i != want)
        CK_FAIL("%s is not INT %" PRId64, text, want);
    ck_jscan_free(&s);
}

static double check_float(const char *text)
{
    char doc[1200];
    int n = snprintf(doc, sizeof(doc), "{\"v\":%s}", text);
    CHECK((size_t)n < sizeof(doc));
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    if (scan_n(&s, doc, (size_t)n, &m) != 1 || m[0].kind != CK_JV_FLOAT)
        CK_FAIL("%s is not FLOAT", text);
    double got = m[0].d, want = strtod(text, NULL);
    if (memcmp(&got, &want, sizeof(got)) != 0)
        CK_FAIL("%s: %.17g, strtod says %.17g", text, got, want);
    ck_jscan_free(&s);
    return got;
}

CK_TEST(jsonscan_numbers)
{
    check_int("-9223372036854775808", INT64_MIN);
    check_int("9223372036854775807", INT64_MAX);
    check_int("-9223372036854775807", -INT64_MAX);
    check_int("1000000000000000000", INT64_C(1000000000000000000));
    check_int("999999999999999999", INT64_C(999999999999999999));
    check_int("-0", 0);
    check_int("0", 0);
    check_int("7", 7);
    check_int("-1", -1);
    CHECK(check_float("9223372036854775808") == 9223372036854775808.0);
    CHECK(check_float("-9223372036854775809") == -9223372036854775808.0);
    check_float("12345678901234567890");
    check_float("9999999999999999999");
    check_float("18446744073709551616");
    check_float("123456789012345678901234567890");
    CHECK(check_float("1.0") == 1.0);
    CHECK(check_float("1e2") == 100.0);
    CHECK(check_float("1E+2") == 100.0);
    CHECK(check_float("1e-2") == 0.01);
    CHECK(signbit(check_float("-0.0")));
    CHECK(signbit(check_float("-0e5")));
    CHECK(!signbit(check_float("0.0")));
    CHECK(isinf(check_float("1e400")));
    CHECK(isinf(check_float("-1e400")));
    CHECK(check_float("1e-400") == 0.0);
    check_float("0.1");
    check_float("0.30000000000000004");
    check_float("2.2250738585072014e-308");
    check_float("4.9e-324");
    check_float("1.7976931348623157e308");
    check_float("9007199254740993.0"); /* 2^53 + 1: not exact, the slow path */
    check_float("9007199254740992e22");
    check_float("1e22");
    check_float("1e23");
    check_float("123456.789e-22");
    check_float("0.000000000000000000000000001234");
    check_float("1e0000000000000000000000001");
    check_float("1e-99999999999999999999");
    /* longer than the scanner's stack copy: the heap copy */
    char longnum[1100];
    memset(longnum, '3', 1000);
    memcpy(longnum, "0.", 2);
    strcpy(longnum + 1000, "e-5");
    check_float(longnum);
    memset(longnum, '9', 300);
    strcpy(longnum + 300, ".5");
    CHECK(isfinite(check_float(longnum)));
    /* random numbers in every form agree with strtod bit for bit */
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        char t[64];
        int n = 0;
        if (x & 1)
            t[n++] = '-';
        int ip = (int)(x >> 1 & 15), fp = (int)(x >> 5 & 15);
        uint64_t y = x * 2654435761u;
        t[n++] = (char)('1' + y % 9);
        for (int k = 1; k < ip; k++)
            t[n++] = (char)('0' + (y >> (k * 3)) % 10);
        if (fp) {
            t[n++] = '.';
            for (int k = 0; k < fp; k++)
                t[n++] = (char)('0' + (x >> (k % 12 * 4 + 9)) % 10);
        }
        if ((x >> 40 & 3) || !fp)
            n += sprintf(t + n, "e%d", (int)(x >> 42 & 63) - 32);
        t[n] = 0;
        check_float(t);
    }
}

CK_TEST(jsonscan_allocation_failure)
{
    /* more members than the first array holds, an escaped string, a long float */
    char doc[4096];
    size_t n = 0;
    doc[n++] = '{';
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(doc + n, "\"k%d\":%d,", i, i);
    n += (size_t)sprintf(doc + n, "\"e\":\"a\\nb\",\"f\":0.");
    memset(doc + n, '1', 100);
    n += 100;
    doc[n++] = '}';
    int failures = 0, successes = 0;
    for (long k = 1; k < 16; k++) {
        ck_jscan_t s;
        ck_jscan_init(&s);
        const ck_jmember_t *m;
        ck_alloc_fail_after(k);
        int rc = scan_n(&s, doc, n, &m);
        ck_alloc_fail_after(0);
        if (rc == CK_JSCAN_ENOMEM) {
            failures++;
            CHECK(m == NULL);
        } else {
            CHECK_EQ(rc, 42);
            successes++;
        }
        /* usable after a failure */
        CHECK_EQ(scan_n(&s, doc, n, &m), 42);
        CHECK(STR_IS(&m[40], "a\nb"));
        ck_jscan_free(&s);
    }
    CHECK(failures >= 4); /* members twice, scratch, number copy */
    CHECK(successes >= 1);
    /* a warm scanner does not allocate again for a document no larger */
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    CHECK_EQ(scan_n(&s, doc, n, &m), 42);
    ck_alloc_fail_after(1);
    int rc = scan_n(&s, doc, n, &m);
    ck_alloc_fail_after(0);
    CHECK_EQ(rc, 42);
    ck_jscan_free(&s);
}

/* ---- differential test against jansson ---- */

typedef struct gen {
    uint64_t x;
    char *buf;
    size_t len, cap;
} gen_t;

static uint64_t rnd(gen_t *g)
{
    g->x ^= g->x << 13;
    g->x ^= g->x >> 7;
    g->x ^= g->x << 17;
    return g->x;
}
static unsigned pick(gen_t *g, unsigned n)
{
    return (unsigned)(rnd(g) % n);
}

static void put(gen_t *g, const void *p, size_t n)
{
    if (g->len + n > g->cap) {
        g->cap = (g->len + n) * 2 + 64;
        g->buf = realloc(g->buf, g->cap);
        CHECK(g->buf != NULL);
    }
    memcpy(g->buf + g->len, p, n);
    g->len += n;
}
static void puts_(gen_t *g, const char *s)
{
    put(g, s, strlen(s));
}

static void gen_ws(gen_t *g)
{
    static const char ws[] = " \t\n\r";
    if (pick(g, 3) == 0)
        for (unsigned k = pick(g, 3) + 1; k; k--)
            put(g, &ws[pick(g, 4)], 1);
}

static void gen_utf8(gen_t *g, uint32_t cp)
{
    char b[4];
    int n;
    if (cp < 0x80)
        b[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3F)),
        b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3F)),
        b[2] = (char)(0x80 | (cp >> 6 & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    put(g, b, (size_t)n);
}

static uint32_t gen_cp(gen_t *g)
{
    switch (pick(g, 4)) {
    case 0:
        return 0x80 + pick(g, 0x780);
    case 1: {
        uint32_t c = 0x800 + pick(g, 0xF800);
        return c >= 0xD800 && c <= 0xDFFF ? c + 0x800 : c;
    }
    case 2:
        return 0x10000 + pick(g, 0x100000);
    default:
        return 0x20 + pick(g, 0x5F);
    }
}

/* Keys get no \\u0000: jansson refuses NUL in keys, which would make the document
 * useless for the comparison. */
static void gen_string(gen_t *g, bool key)
{
    puts_(g, "\"");
    for (unsigned k = pick(g, 12); k; k--) {
        unsigned c = pick(g, 20);
        char t[16];
        if (c < 10) {
            t[0] = (char)('a' + pick(g, 26));
            put(g, t, 1);
        } else if (c < 13) {
            static const char *esc[] = {"\\\"", "\\\\", "\\/", "\\b",    "\\f",
                                        "\\n",  "\\r",  "\\t", "\\u0000"};
            puts_(g, esc[pick(g, key ? 8 : 9)]);
        } else if (c < 15) {
            uint32_t cp = gen_cp(g);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                sprintf(t, "\\u%04X\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                sprintf(t, pick(g, 2) ? "\\u%04x" : "\\u%04X", cp);
            }
            puts_(g, t);
        } else if (c < 18) {
            gen_utf8(g, gen_cp(g));
        } else {
            t[0] = (char)(' ' + pick(g, 95));
            if (t[0] == '"' || t[0] == '\\')
                t[0] = 'x';
            put(g, t, 1);
        }
    }
    puts_(g, "\"");
}

static void gen_number(gen_t *g)
{
    char t[64];
    switch (pick(g, 8)) {
    case 0:
        sprintf(t, "%d", (int)pick(g, 200) - 100);
        break;
    case 1:
        sprintf(t, "%" PRId64, (int64_t)rnd(g));
        break;
    case 2:
        sprintf(t, "%.*g", (int)pick(g, 17) + 1, (double)(int64_t)rnd(g) / (double)rnd(g));
        break;
    case 3:
        sprintf(t, "%de%s%d", (int)pick(g, 1000),
                pick(g, 2)   ? "-"
                : pick(g, 2) ? "+"
                             : "",
                (int)pick(g, pick(g, 20) ? 30 : 330));
        break;
    case 4:
        sprintf(t, "%s0.%03d", pick(g, 2) ? "-" : "", (int)pick(g, 1000));
        break;
    case 5:
        strcpy(t, pick(g, 2) ? "-0" : "0");
        break;
    case 6:
        sprintf(t, "%d.%dE%d", (int)pick(g, 10), (int)pick(g, 100), (int)pick(g, 40) - 20);
        break;
    default:
        sprintf(t, "%u", (unsigned)pick(g, 100000));
        break;
    }
    puts_(g, t);
}

static void gen_value(gen_t *g, int depth);

static void gen_container(gen_t *g, int depth, bool obj)
{
    puts_(g, obj ? "{" : "[");
    gen_ws(g);
    unsigned k = pick(g, depth < 2 ? 8 : 4);
    for (unsigned i = 0; i < k; i++) {
        if (i)
            puts_(g, ",");
        gen_ws(g);
        if (obj) {
            if (pick(g, 8) == 0 && i) { /* a duplicate key */
                puts_(g, "\"dup\"");
            } else {
                gen_string(g, true);
            }
            gen_ws(g);
            puts_(g, ":");
            gen_ws(g);
        }
        gen_value(g, depth + 1);
        gen_ws(g);
    }
    puts_(g, obj ? "}" : "]");
}

static void gen_value(gen_t *g, int depth)
{
    unsigned c = pick(g, depth > 4 ? 6 : 9);
    switch (c) {
    case 0:
        puts_(g, "null");
        break;
    case 1:
        puts_(g, pick(g, 2) ? "true" : "false");
        break;
    case 2:
    case 3:
        gen_number(g);
        break;
    case 4:
    case 5:
        gen_string(g, false);
        break;
    default:
        gen_container(g, depth, c != 8);
        break;
    }
}

static void mutate(gen_t *g)
{
    static const char interesting[] = "{}[],:\"\\0-.eEu+ a1\x00\x1f\x7f\x80\xbf\xc0\xc3\xed\xf0"
                                      "\xf4\xff";
    for (unsigned k = pick(g, 3) + 1; k && g->len; k--) {
        size_t at = pick(g, (unsigned)g->len);
        char c = pick(g, 4) ? interesting[pick(g, sizeof(interesting) - 1)] : (char)rnd(g);
        switch (pick(g, 4)) {
        case 0:
            g->buf[at] = c;
            break;
        case 1:
            memmove(g->buf + at, g->buf + at + 1, g->len - at - 1);
            g->len--;
            break;
        case 2:
            put(g, "", 1); /* room for one more */
            memmove(g->buf + at + 1, g->buf + at, g->len - at - 1);
            g->buf[at] = c;
            break;
        default:
            g->len = at;
            break;
        }
    }
}

static int json_depth(const json_t *j)
{
    int d = 0;
    if (json_is_object(j)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            int e = json_depth(v);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            int e = json_depth(json_array_get(j, i));
            d = e > d ? e : d;
        }
        return d + 1;
    }
    return 0;
}

/* Does member m hold the value jansson decoded as v? */
static bool same_value(const ck_jmember_t *m, const json_t *v)
{
    switch (m->kind) {
    case CK_JV_NULL:
        return json_is_null(v);
    case CK_JV_BOOL:
        return m->b ? json_is_true(v) : json_is_false(v);
    case CK_JV_INT:
        return json_is_integer(v) && json_integer_value(v) == m->i;
    case CK_JV_FLOAT: {
        double d = json_is_real(v) ? json_real_value(v) : NAN;
        return memcmp(&d, &m->d, sizeof(d)) == 0;
    }
    case CK_JV_STRING:
        return json_is_string(v) && json_string_length(v) == m->str_len &&
               memcmp(json_string_value(v), m->str, m->str_len) == 0;
    default: {
        json_error_t e;
        json_t *sub = json_loadb(m->str, m->str_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        bool ok = sub && (m->kind == CK_JV_OBJECT ? json_is_object(v) : json_is_array(v)) &&
                  json_equal(sub, v);
        json_decref(sub);
        return ok;
    }
    }
}

/* Compares the scanner with jansson on p[0..n). Returns 1 when both accepted an object,
 * 2 when both rejected, 3 when both found a non-object, 0 when not comparable. */
static int compare_with_jansson(ck_jscan_t *s, const char *p, size_t n)
{
    const ck_jmember_t *m;
    int rc = ck_jscan_object(s, p, n, &m);
    /* A raw NUL byte is never valid, but jansson skips one after a number or literal. */
    if (memchr(p, 0, n)) {
        CHECK_EQ(rc, CK_JSCAN_EINVALID);
        return 0;
    }
    json_error_t e;
    json_t *j = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) {
        enum json_error_code code = json_error_code(&e);
        /* jansson's own limits: integers outside int64, reals overflowing to infinity,
         * NUL in keys. It stops there, so what follows is unchecked: not comparable. */
        if (code == json_error_numeric_overflow || code == json_error_null_byte_in_key)
            return 0;
        if (rc != CK_JSCAN_EINVALID)
            CK_FAIL("jansson rejects (%s) but scanner returns %d: %.*s", e.text, rc, (int)n, p);
        return 2;
    }
    int depth = json_depth(j);
    if (depth > CK_JSCAN_MAX_DEPTH) {
        json_decref(j);
        CHECK_EQ(rc, CK_JSCAN_EINVALID);
        return 0;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        if (rc != CK_JSCAN_ENOTOBJ)
            CK_FAIL("jansson finds a non-object but scanner returns %d: %.*s", rc, (int)n, p);
        return 3;
    }
    if (rc < 0)
        CK_FAIL("jansson accepts but scanner returns %d: %.*s", rc, (int)n, p);
    /* every distinct key once in jansson, with the value of its last occurrence */
    size_t distinct = 0;
    for (int i = 0; i < rc; i++) {
        bool last = true;
        for (int k = i + 1; k < rc && last; k++)
            last = !(m[k].key_len == m[i].key_len && memcmp(m[k].key, m[i].key, m[i].key_len) == 0);
        if (!last)
            continue;
        distinct++;
        const json_t *v = json_object_getn(j, m[i].key, m[i].key_len);
        if (!v || !same_value(&m[i], v))
            CK_FAIL("member %d (%.*s) differs from jansson: %.*s", i, (int)m[i].key_len, m[i].key,
                    (int)n, p);
    }
    CHECK_EQ(distinct, json_object_size(j));
    json_decref(j);
    return 1;
}

CK_TEST(jsonscan_agrees_with_jansson)
{
    ck_jscan_t s;
    ck_jscan_init(&s);
    gen_t g = {.x = 0x9E3779B97F4A7C15u};
    int seen[4] = {0};
    for (int i = 0; i < 6000; i++) {
        g.len = 0;
        gen_ws(&g);
        if (pick(&g, 10) == 0)
            gen_value(&g, 1);
        else
            gen_container(&g, 0, true);
        gen_ws(&g);
        if (i % 2)
            mutate(&g);
        char *copy = malloc(g.len ? g.len : 1);
        CHECK(copy != NULL);
        memcpy(copy, g.buf, g.len);
        seen[compare_with_jansson(&s, copy, g.len)]++;
        free(copy);
    }
    fprintf(stderr,
            "  jansson agreement: %d objects, %d invalid, %d non-objects, %d not comparable\n",
            seen[1], seen[2], seen[3], seen[0]);
    CHECK(seen[1] > 2000 && seen[2] > 1000 && seen[3] > 100);
    free(g.buf);
    ck_jscan_free(&s);
}

/* ---- speed ---- */

CK_TEST(jsonscan_speed)
{
    /* typical ~200-byte events: ten fields, short strings and numbers */
    enum { DOCS = 64 };
    static const char *pages[] = {"/products/1234", "/cart", "/checkout/step-2", "/"};
    static const char *countries[] = {"DE", "FR", "US", "JP"};
    char *docs[DOCS];
    size_t lens[DOCS], total = 0;
    for (int i = 0; i < DOCS; i++) {
        char b[512];
        int n = snprintf(b, sizeof(b),
                         "{\"ts\":%lld,\"user_id\":%d,\"event\":\"page_view\",\"path\":\"%s\","
                         "\"referrer\":\"https://www.google.com/\",\"duration_ms\":%d,"
                         "\"price\":%d.%02d,\"logged_in\":%s,\"country\":\"%s\","
                         "\"session\":\"a1b2c3d4e5f6%04d\"}",
                         1700000000000LL + i * 7919, 10000 + i * 37, pages[i % 4], 100 + i * 13,
                         i + 1, i % 100, i % 3 ? "true" : "false", countries[i % 4], i);
        docs[i] = malloc((size_t)n);
        memcpy(docs[i], b, (size_t)n);
        lens[i] = (size_t)n;
        total += (size_t)n;
    }
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    long members = 0;
    /* CPU time of this thread: the figure holds on a busy machine too */
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    double secs = 0;
    long rounds = 0;
    do {
        for (int r = 0; r < 100; r++, rounds++)
            for (int i = 0; i < DOCS; i++)
                members += ck_jscan_object(&s, docs[i], lens[i], &m);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    } while (secs < 0.5);
    CHECK_EQ(members, rounds * DOCS * 10);
    double bytes = (double)total * (double)rounds;
    fprintf(stderr,
            "  jsonscan: %.0f MB/s, %.2f M objects/s per CPU second (%zu-byte objects of 10 "
            "fields; meaningful in an optimised build without sanitizers)\n",
            bytes / secs / 1e6, (double)rounds * DOCS / secs / 1e6, total / DOCS);
    for (int i = 0; i < DOCS; i++)
        free(docs[i]);
    ck_jscan_free(&s);
}
