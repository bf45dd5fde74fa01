/* libFuzzer target: arbitrary bytes through ck_jscan_object (columnar/jsonscan.h).
 *
 * Properties checked on top of ASan/UBSan (the input is an exact-size copy, so a read
 * past its end is reported):
 *   - the result is >= 0, or one of CK_JSCAN_EINVALID / CK_JSCAN_ENOTOBJ;
 *   - for an accepted object: every key and STRING value lies in the input or in the
 *     scanner's scratch, and re-escaped as JSON scans back to the same bytes (so it is
 *     valid UTF-8); each OBJECT / ARRAY span lies in the input with its brackets, an
 *     OBJECT span scans on its own, an ARRAY span scans when wrapped as {"a":<span>};
 *     no FLOAT is NaN;
 *   - jansson (JSON_DECODE_ANY | JSON_ALLOW_NUL) agrees on validity and on object versus
 *     non-object, and on every member's value (the last one of duplicate keys), except
 *     where jansson has its own limits: integers outside int64 and reals overflowing to
 *     infinity (it refuses them), NUL in keys (refused), nesting deeper than
 *     CK_JSCAN_MAX_DEPTH (jansson allows more; the scanner must then refuse), and a raw
 *     NUL byte (never valid, but jansson skips one after a number or literal: the scanner
 *     must refuse). */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "columnar/jsonscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, what)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz property violated: %s (%s:%d)\n", what, __FILE__, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static volatile uint8_t fuzz_sink;
static void touch(const char *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= (uint8_t)p[i];
    fuzz_sink ^= x;
}

static bool inside(const char *p, size_t n, const char *base, size_t len)
{
    return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

/* {"k":"<v re-escaped>"} scans to one STRING member holding v[0..n) again. */
static void check_reescape(const char *v, size_t n)
{
    char *doc = malloc(n * 6 + 16), *o = doc;
    FUZZ_CHECK(doc != NULL, "malloc");
    memcpy(o, "{\"k\":\"", 6);
    o += 6;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)v[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    memcpy(o, "\"}", 2);
    o += 2;
    ck_jscan_t s;
    ck_jscan_init(&s);
    const ck_jmember_t *m;
    FUZZ_CHECK(ck_jscan_object(&s, doc, (size_t)(o - doc), &m) == 1, "a string does not re-scan");
    FUZZ_CHECK(m[0].kind == CK_JV_STRING && m[0].str_len == n && memcmp(m[0].str, v, n) == 0,
               "a re-escaped string scans to different bytes");
    ck_jscan_free(&s);
    free(doc);
}

static void check_members(const ck_jscan_t *s, const ck_jmember_t *m, int count, const char *p,
                          size_t n)
{
    FUZZ_CHECK(count == 0 || m != NULL, "members without an array");
    for (int i = 0; i < count; i++) {
        const ck_jmember_t *e = &m[i];
        FUZZ_CHECK(inside(e->key, e->key_len, p, n) ||
                       inside(e->key, e->key_len, s->js_scratch, s->js_scratch_cap),
                   "key outside the input and the scratch");
        touch(e->key, e->key_len);
        check_reescape(e->key, e->key_len);
        switch (e->kind) {
        case CK_JV_NULL:
        case CK_JV_BOOL:
        case CK_JV_INT:
            break;
        case CK_JV_FLOAT:
            FUZZ_CHECK(!isnan(e->d), "NaN");
            break;
        case CK_JV_STRING:
            FUZZ_CHECK(inside(e->str, e->str_len, p, n) ||
                           inside(e->str, e->str_len, s->js_scratch, s->js_scratch_cap),
                       "string outside the input and the scratch");
            touch(e->str, e->str_len);
            check_reescape(e->str, e->str_len);
            break;
        case CK_JV_OBJECT:
        case CK_JV_ARRAY: {
            bool obj = e->kind == CK_JV_OBJECT;
            FUZZ_CHECK(inside(e->str, e->str_len, p, n) && e->str_len >= 2,
                       "container span outside the input");
            FUZZ_CHECK(e->str[0] == (obj ? '{' : '[') &&
                           e->str[e->str_len - 1] == (obj ? '}' : ']'),
                       "container span without its brackets");
            ck_jscan_t sub;
            ck_jscan_init(&sub);
            const ck_jmember_t *sm;
            if (obj) {
                char *c = malloc(e->str_len);
                FUZZ_CHECK(c != NULL, "malloc");
                memcpy(c, e->str, e->str_len);
                FUZZ_CHECK(ck_jscan_object(&sub, c, e->str_len, &sm) >= 0,
                           "an OBJECT span does not scan on its own");
                free(c);
            } else {
                char *c = malloc(e->str_len + 6);
                FUZZ_CHECK(c != NULL, "malloc");
                memcpy(c, "{\"a\":", 5);
                memcpy(c + 5, e->str, e->str_len);
                c[e->str_len + 5] = '}';
                FUZZ_CHECK(ck_jscan_object(&sub, c, e->str_len + 6, &sm) == 1,
                           "an ARRAY span does not scan inside an object");
                FUZZ_CHECK(sm[0].kind == CK_JV_ARRAY && sm[0].str_len == e->str_len,
                           "a wrapped ARRAY span scans differently");
                free(c);
            }
            ck_jscan_free(&sub);
            break;
        }
        default:
            FUZZ_CHECK(0, "unknown kind");
        }
    }
}

static int json_depth(json_t *j)
{
    int d = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
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

static void check_jansson(int rc, const ck_jmember_t *m, const char *p, size_t n)
{
    /* A raw NUL byte is never valid JSON, but jansson skips one right after a number or
     * literal ("{\"a\":1<NUL>}" loads). */
    if (memchr(p, 0, n)) {
        FUZZ_CHECK(rc == CK_JSCAN_EINVALID, "a raw NUL byte is accepted");
        return;
    }
    json_error_t e;
    json_t *j = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) {
        enum json_error_code code = json_error_code(&e);
        /* jansson stops at its own limits; what follows is unchecked by it */
        if (code == json_error_numeric_overflow || code == json_error_null_byte_in_key)
            return;
        FUZZ_CHECK(rc == CK_JSCAN_EINVALID, "jansson rejects, the scanner accepts");
        return;
    }
    if (json_depth(j) > CK_JSCAN_MAX_DEPTH) {
        FUZZ_CHECK(rc == CK_JSCAN_EINVALID, "deeper than the limit, the scanner accepts");
    } else if (!json_is_object(j)) {
        FUZZ_CHECK(rc == CK_JSCAN_ENOTOBJ, "jansson finds a non-object, the scanner does not");
    } else {
        FUZZ_CHECK(rc >= 0, "jansson accepts an object, the scanner does not");
        size_t distinct = 0;
        for (int i = 0; i < rc; i++) {
            bool last = true;
            for (int k = i + 1; k < rc && last; k++)
                last = !(m[k].key_len == m[i].key_len &&
                         memcmp(m[k].key, m[i].key, m[i].key_len) == 0);
            if (!last)
                continue;
            distinct++;
            const json_t *v = json_object_getn(j, m[i].key, m[i].key_len);
            FUZZ_CHECK(v != NULL && same_value(&m[i], v), "a member differs from jansson's");
        }
        FUZZ_CHECK(distinct == json_object_size(j), "jansson has other keys");
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* one scanner for every input: reuse across calls is part of what is tested */
    static ck_jscan_t s;
    char *p = malloc(size ? size : 1);
    FUZZ_CHECK(p != NULL, "malloc");
    if (size)
        memcpy(p, data, size);
    const ck_jmember_t *m;
    int rc = ck_jscan_object(&s, p, size, &m);
    FUZZ_CHECK(rc >= 0 || rc == CK_JSCAN_EINVALID || rc == CK_JSCAN_ENOTOBJ, "unexpected result");
    FUZZ_CHECK(rc >= 0 || m == NULL, "an error leaves *out set");
    if (rc >= 0)
        check_members(&s, m, rc, p, size);
    check_jansson(rc, m, p, size);
    free(p);
    return 0;
}
