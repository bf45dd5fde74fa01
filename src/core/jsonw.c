#include "core/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Bytes that can be copied into a JSON string as they are: printable ASCII but '"', '\'. */
static inline bool plain(uint8_t c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static inline bool cont(uint8_t c)
{
    return (c & 0xC0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence starting at p (n >= 1 bytes left, p[0] >= 0x80),
 * or 0 with *bad set to the length of the maximal ill-formed subpart to replace. The
 * second-byte ranges are those of the Unicode table "Well-Formed UTF-8 Byte Sequences". */
static size_t utf8_seq(const uint8_t *p, size_t n, size_t *bad)
{
    uint8_t c = p[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* no overlongs */
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *bad = 1; /* continuation byte, C0, C1 or F5..FF */
        return 0;
    }
    if (n < 2 || p[1] < lo || p[1] > hi) {
        *bad = 1;
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (i >= n || !cont(p[i])) {
            *bad = i;
            return 0;
        }
    }
    return len;
}

void ck_jsonw_str(ck_wbuf_t *w, const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = p, *end = s + n;
    ck_wr_u8(w, '"');
    while (s < end) {
        const uint8_t *run = s;
        while (s < end && plain(*s))
            s++;
        if (s > run)
            ck_wr_bytes(w, run, (size_t)(s - run));
        if (s == end)
            break;
        uint8_t c = *s;
        if (c < 0x80) {
            char e[6] = {'\\', 0, 0, 0, 0, 0};
            size_t el = 2;
            switch (c) {
            case '"':
                e[1] = '"';
                break;
            case '\\':
                e[1] = '\\';
                break;
            case '\b':
                e[1] = 'b';
                break;
            case '\f':
                e[1] = 'f';
                break;
            case '\n':
                e[1] = 'n';
                break;
            case '\r':
                e[1] = 'r';
                break;
            case '\t':
                e[1] = 't';
                break;
            default:
                memcpy(e + 1, "u00", 3);
                e[4] = hex[c >> 4];
                e[5] = hex[c & 15];
                el = 6;
            }
            ck_wr_bytes(w, e, el);
            s++;
            continue;
        }
        size_t bad = 0, len = utf8_seq(s, (size_t)(end - s), &bad);
        if (!len) {
            ck_wr_bytes(w, "\xEF\xBF\xBD", 3); /* U+FFFD */
            s += bad;
        } else if (len == 3 && c == 0xE2 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9)) {
            ck_wr_bytes(w, s[2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            s += 3;
        } else {
            ck_wr_bytes(w, s, len);
            s += len;
        }
    }
    ck_wr_u8(w, '"');
}

void ck_jsonw_cstr(ck_wbuf_t *w, const char *s)
{
    if (!s)
        ck_jsonw_null(w);
    else
        ck_jsonw_str(w, s, strlen(s));
}

void ck_jsonw_u64(ck_wbuf_t *w, uint64_t v)
{
    char b[20];
    size_t i = sizeof(b);
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ck_wr_bytes(w, b + i, sizeof(b) - i);
}

void ck_jsonw_i64(ck_wbuf_t *w, int64_t v)
{
    if (v < 0) {
        ck_wr_u8(w, '-');
        ck_jsonw_u64(w, (uint64_t)0 - (uint64_t)v); /* exact for INT64_MIN too */
    } else {
        ck_jsonw_u64(w, (uint64_t)v);
    }
}

static size_t fmt_double(char *buf, double d)
{
    int n = 0;
    /* 15 digits round-trip most decimal inputs; 17 always round-trips. */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, 32, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            break;
    }
    return (size_t)n;
}

void ck_jsonw_double(ck_wbuf_t *w, double d)
{
    if (!isfinite(d)) {
        ck_jsonw_null(w);
        return;
    }
    char b[32];
    ck_wr_bytes(w, b, fmt_double(b, d));
}

void ck_jsonw_float(ck_wbuf_t *w, float f)
{
    if (!isfinite(f)) {
        ck_jsonw_null(w);
        return;
    }
    char b[32];
    int n = 0;
    for (int prec = 6; prec <= 9; prec++) {
        n = snprintf(b, sizeof(b), "%.*g", prec, (double)f);
        if (prec == 9 || strtof(b, NULL) == f)
            break;
    }
    ck_wr_bytes(w, b, (size_t)n);
}

void ck_jsonw_base64(ck_wbuf_t *w, const void *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *s = p;
    size_t out = (n + 2) / 3 * 4;
    uint8_t *d = ck_wbuf_reserve(w, out + 2);
    if (!d)
        return;
    uint8_t *o = d;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = (uint8_t)tab[(v >> 6) & 63];
        *o++ = (uint8_t)tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = (uint8_t)tab[(v >> 6) & 63];
        *o++ = '=';
    }
    *o++ = '"';
    w->len += (size_t)(o - d);
}
