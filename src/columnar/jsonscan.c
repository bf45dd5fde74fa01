/* The JSON object scanner of jsonscan.h.
 *
 * One pass, no recursion. The top-level object is walked member by member, decoding keys
 * and scalar values; a nested object or array is walked by skip_container, which only
 * validates and keeps its object/array nesting in a bit stack (CK_JSCAN_MAX_DEPTH bits).
 *
 * Speed comes from the string scan (skip_plain): eight bytes at a time, stopping at the
 * first byte that is '"', '\\', a control character or non-ASCII. Strings without escapes
 * are handed back as spans of the input; the first escape of a call reserves n bytes of
 * scratch (an unescaped string is never longer than its JSON text, so the scratch then
 * never moves during the call and earlier members' pointers into it stay valid).
 * Integers are accumulated while scanned; fractions and exponents take an exact fast path
 * (Clinger: at most 19 significant digits, mantissa <= 2^53, power of ten <= 22, one
 * correctly rounded IEEE operation) and otherwise strtod on a NUL-terminated copy. */
#include "columnar/jsonscan.h"

#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

typedef const uint8_t *cur_t;

/* Per-call state. err is what a NULL return from the helpers below means. */
struct scan {
    ck_jscan_t *s;
    size_t n;      /* input length: the scratch size an escape reserves */
    size_t used;   /* scratch bytes used by this call */
    bool reserved; /* scratch holds >= n bytes for this call */
    int err;       /* CK_JSCAN_EINVALID, or CK_JSCAN_ENOMEM */
};

void ck_jscan_init(ck_jscan_t *s)
{
    memset(s, 0, sizeof(*s));
}

void ck_jscan_free(ck_jscan_t *s)
{
    ck_free(s->js_members);
    ck_free(s->js_scratch);
    ck_free(s->js_num);
    ck_jscan_init(s);
}

static inline bool is_digit(uint8_t c)
{
    return (unsigned)(c - '0') < 10;
}

static inline cur_t skip_ws(cur_t q, cur_t end)
{
    while (q < end && *q <= ' ' && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
        q++;
    return q;
}

/* ---- strings ---- */

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t load_le64(cur_t q)
{
    uint64_t w;
    memcpy(&w, q, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* 1 for bytes a string holds as they are: not '"', '\\', control or non-ASCII. */
/* clang-format off */
static const uint8_t plain_byte[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20..: '"' is 0x22 */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50..: '\\' is 0x5c */
    R16(1), R16(1),
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};
/* clang-format on */

/* Returns the first byte at or after q that is not plain (see plain_byte), or end.
 * Word at a time: a byte is flagged when it is '"' or '\\' (zero after the xor), below
 * 0x20 (the subtraction borrows into its high bit) or has its high bit set. Borrows only
 * run upwards, so the lowest flagged byte is always a real one. */
static inline cur_t skip_plain(cur_t q, cur_t end)
{
    while (end - q >= 8) {
        uint64_t w = load_le64(q);
        uint64_t xq = w ^ (ONES * '"'), xb = w ^ (ONES * '\\');
        uint64_t m = (((xq - ONES) & ~xq) | ((xb - ONES) & ~xb) | (w - ONES * 0x20) | w) & HIGHS;
        if (m)
            return q + (__builtin_ctzll(m) >> 3);
        q += 8;
    }
    while (q < end && plain_byte[*q])
        q++;
    return q;
}

/* Length of the valid UTF-8 sequence (RFC 3629: shortest form, no surrogates, at most
 * U+10FFFF) starting at the non-ASCII byte q[0], or 0. */
static inline size_t utf8_len(cur_t q, cur_t end)
{
    size_t left = (size_t)(end - q);
    uint8_t c = q[0];
    if (c < 0xC2)
        return 0; /* continuation byte, or overlong C0/C1 */
    if (c < 0xE0)
        return left >= 2 && (q[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (left < 3 || (q[2] & 0xC0) != 0x80)
            return 0;
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return q[1] >= lo && q[1] <= hi ? 3 : 0;
    }
    if (c < 0xF5) {
        if (left < 4 || (q[2] & 0xC0) != 0x80 || (q[3] & 0xC0) != 0x80)
            return 0;
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return q[1] >= lo && q[1] <= hi ? 4 : 0;
    }
    return 0;
}

static inline int hex4(cur_t q)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = q[i], h;
        if (c - '0' < 10)
            h = c - '0';
        else if ((c | 0x20) - 'a' < 6)
            h = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | (int)h;
    }
    return v;
}

/* Decodes the escape at q (q[0] is '\\') into the code point *cp; a high surrogate
 * escape must be followed by a low one, and they make one code point. Returns the byte
 * after the escape, or NULL. */
static cur_t parse_escape(cur_t q, cur_t end, uint32_t *cp)
{
    if (end - q < 2)
        return NULL;
    switch (q[1]) {
    case '"':
    case '\\':
    case '/':
        *cp = q[1];
        return q + 2;
    case 'b':
        *cp = '\b';
        return q + 2;
    case 'f':
        *cp = '\f';
        return q + 2;
    case 'n':
        *cp = '\n';
        return q + 2;
    case 'r':
        *cp = '\r';
        return q + 2;
    case 't':
        *cp = '\t';
        return q + 2;
    case 'u':
        break;
    default:
        return NULL;
    }
    if (end - q < 6)
        return NULL;
    int h = hex4(q + 2);
    if (h < 0)
        return NULL;
    q += 6;
    if (h >= 0xD800 && h <= 0xDBFF) {
        if (end - q < 6 || q[0] != '\\' || q[1] != 'u')
            return NULL;
        int l = hex4(q + 2);
        if (l < 0xDC00 || l > 0xDFFF)
            return NULL;
        *cp = 0x10000 + ((uint32_t)(h - 0xD800) << 10) + (uint32_t)(l - 0xDC00);
        return q + 6;
    }
    if (h >= 0xDC00 && h <= 0xDFFF)
        return NULL;
    *cp = (uint32_t)h;
    return q;
}

static inline char *put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Validates the string whose opening quote is just before q. Returns the byte after the
 * closing quote, or NULL. */
static cur_t skip_string(cur_t q, cur_t end)
{
    for (;;) {
        q = skip_plain(q, end);
        if (q == end)
            return NULL;
        if (*q == '"')
            return q + 1;
        if (*q == '\\') {
            uint32_t cp;
            q = parse_escape(q, end, &cp);
            if (!q)
                return NULL;
        } else if (*q >= 0x80) {
            size_t k = utf8_len(q, end);
            if (!k)
                return NULL;
            q += k;
        } else {
            return NULL; /* control character */
        }
    }
}

/* Validates and decodes the string whose opening quote is just before q into *sp, *sl:
 * a span of the input when it has no escape, else unescaped into the scratch. Returns the
 * byte after the closing quote, or NULL (sc->err says why). */
static cur_t scan_string(struct scan *sc, cur_t q, cur_t end, const char **sp, size_t *sl)
{
    cur_t start = q;
    for (;;) {
        q = skip_plain(q, end);
        if (q == end)
            return NULL;
        if (*q == '"') {
            *sp = (const char *)start;
            *sl = (size_t)(q - start);
            return q + 1;
        }
        if (*q == '\\')
            break;
        if (*q < 0x80)
            return NULL;
        size_t k = utf8_len(q, end);
        if (!k)
            return NULL;
        q += k;
    }
    ck_jscan_t *s = sc->s;
    if (!sc->reserved) {
        if (s->js_scratch_cap < sc->n) {
            char *b = ck_realloc(s->js_scratch, sc->n);
            if (!b) {
                sc->err = CK_JSCAN_ENOMEM;
                return NULL;
            }
            s->js_scratch = b;
            s->js_scratch_cap = sc->n;
        }
        sc->reserved = true;
    }
    char *o0 = s->js_scratch + sc->used, *o = o0;
    memcpy(o, start, (size_t)(q - start));
    o += q - start;
    for (;;) {
        /* q < end here */
        if (*q == '"')
            break;
        if (*q == '\\') {
            uint32_t cp;
            q = parse_escape(q, end, &cp);
            if (!q)
                return NULL;
            o = put_utf8(o, cp);
        } else if (*q >= 0x80) {
            size_t k = utf8_len(q, end);
            if (!k)
                return NULL;
            memcpy(o, q, k);
            o += k;
            q += k;
        } else {
            return NULL;
        }
        cur_t r = skip_plain(q, end);
        memcpy(o, q, (size_t)(r - q));
        o += r - q;
        q = r;
        if (q == end)
            return NULL;
    }
    *sp = o0;
    *sl = (size_t)(o - o0);
    sc->used += *sl;
    return q + 1;
}

/* ---- numbers and literals ---- */

/* Validates the number at q. Returns the byte after it, or NULL. A leading zero followed
 * by a digit ends the number after the zero; the caller then fails on the digit. */
static cur_t skip_number(cur_t q, cur_t end)
{
    if (*q == '-' && ++q == end)
        return NULL;
    if (*q == '0')
        q++;
    else if (is_digit(*q))
        while (++q < end && is_digit(*q))
            ;
    else
        return NULL;
    if (q < end && *q == '.') {
        if (++q == end || !is_digit(*q))
            return NULL;
        while (++q < end && is_digit(*q))
            ;
    }
    if (q < end && (*q | 0x20) == 'e') {
        if (++q < end && (*q == '+' || *q == '-'))
            q++;
        if (q == end || !is_digit(*q))
            return NULL;
        while (++q < end && is_digit(*q))
            ;
    }
    return q;
}

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The exact fast path for the valid number q[0..len); false when it does not apply. */
static bool float_fast(cur_t q, size_t len, double *out)
{
    cur_t end = q + len;
    bool neg = *q == '-';
    q += neg;
    uint64_t m = 0;
    int nd = 0;   /* significant digits in m */
    long e10 = 0; /* value = m * 10^e10 */
    bool frac = false;
    for (; q < end; q++) {
        if (*q == '.') {
            frac = true;
            continue;
        }
        if (!is_digit(*q))
            break;
        if (m == 0 && *q == '0') {
            e10 -= frac;
            continue;
        }
        if (++nd > 19)
            return false;
        m = m * 10 + (uint64_t)(*q - '0');
        e10 -= frac;
    }
    if (q < end) { /* exponent */
        q++;
        bool eneg = *q == '-';
        q += *q == '-' || *q == '+';
        long e = 0;
        for (; q < end; q++) {
            if (e > 100000)
                return false;
            e = e * 10 + (*q - '0');
        }
        e10 += eneg ? -e : e;
    }
    if (m == 0) {
        *out = neg ? -0.0 : 0.0;
        return true;
    }
    if (FLT_EVAL_METHOD != 0 || m > (UINT64_C(1) << 53) || e10 < -22 || e10 > 22)
        return false;
    double d = (double)m;
    d = e10 < 0 ? d / pow10_exact[-e10] : d * pow10_exact[e10];
    *out = neg ? -d : d;
    return true;
}

/* strtod on a NUL-terminated copy of the valid number q[0..len). */
static bool float_slow(struct scan *sc, cur_t q, size_t len, double *out)
{
    char small[64], *b = small;
    if (len >= sizeof(small)) {
        ck_jscan_t *s = sc->s;
        if (s->js_num_cap <= len) {
            char *nb = ck_realloc(s->js_num, len + 1);
            if (!nb) {
                sc->err = CK_JSCAN_ENOMEM;
                return false;
            }
            s->js_num = nb;
            s->js_num_cap = len + 1;
        }
        b = s->js_num;
    }
    memcpy(b, q, len);
    b[len] = 0;
    *out = strtod(b, NULL);
    return true;
}

/* Validates and decodes the number at q into m (INT or FLOAT). Returns the byte after
 * it, or NULL. */
static cur_t scan_number(struct scan *sc, cur_t q, cur_t end, ck_jmember_t *m)
{
    cur_t start = q;
    bool neg = *q == '-';
    if (neg && ++q == end)
        return NULL;
    uint64_t u;
    cur_t ds = q;
    if (*q == '0') {
        u = 0;
        q++;
    } else if (is_digit(*q)) {
        u = (uint64_t)(*q++ - '0');
        /* wraps past 20 digits; u is not used then */
        while (q < end && is_digit(*q))
            u = u * 10 + (uint64_t)(*q++ - '0');
    } else {
        return NULL;
    }
    size_t nd = (size_t)(q - ds);
    if (q == end || (*q != '.' && (*q | 0x20) != 'e')) {
        /* 19 digits never wrap (< 1e19 < 2^64) */
        if (nd < 19 || (nd == 19 && u <= (uint64_t)INT64_MAX + neg)) {
            m->kind = CK_JV_INT;
            m->i = !neg ? (int64_t)u : u > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)u;
            return q;
        }
    } else {
        q = skip_number(start, end); /* again, with the fraction and exponent */
        if (!q)
            return NULL;
    }
    size_t len = (size_t)(q - start);
    m->kind = CK_JV_FLOAT;
    if (!float_fast(start, len, &m->d) && !float_slow(sc, start, len, &m->d))
        return NULL;
    return q;
}

static inline cur_t skip_literal(cur_t q, cur_t end, const char *lit, size_t len)
{
    return (size_t)(end - q) >= len && memcmp(q, lit, len) == 0 ? q + len : NULL;
}

/* ---- nested values ---- */

/* Validates the object or array at q (q[0] is '{' or '['), whose parent is at nesting
 * depth `depth` (0 when it is the top-level value). Returns the byte after its closing
 * bracket, or NULL. */
static cur_t skip_container(cur_t q, cur_t end, int depth)
{
    uint64_t is_obj[CK_JSCAN_MAX_DEPTH / 64]; /* bit d-1: the container at depth d */
    const int base = depth;
open: /* q at '{' or '[' */
    if (depth >= CK_JSCAN_MAX_DEPTH)
        return NULL;
    if (*q == '{') {
        is_obj[depth / 64] |= UINT64_C(1) << (depth % 64);
        depth++;
        q = skip_ws(q + 1, end);
        if (q == end)
            return NULL;
        if (*q == '}') {
            q++;
            goto closed;
        }
        goto key;
    }
    is_obj[depth / 64] &= ~(UINT64_C(1) << (depth % 64));
    depth++;
    q = skip_ws(q + 1, end);
    if (q == end)
        return NULL;
    if (*q == ']') {
        q++;
        goto closed;
    }
    goto value;
key: /* q < end */
    if (*q != '"' || !(q = skip_string(q + 1, end)))
        return NULL;
    q = skip_ws(q, end);
    if (q == end || *q != ':')
        return NULL;
    q = skip_ws(q + 1, end);
    if (q == end)
        return NULL;
value: /* q < end */
    switch (*q) {
    case '{':
    case '[':
        goto open;
    case '"':
        q = skip_string(q + 1, end);
        break;
    case 't':
        q = skip_literal(q, end, "true", 4);
        break;
    case 'f':
        q = skip_literal(q, end, "false", 5);
        break;
    case 'n':
        q = skip_literal(q, end, "null", 4);
        break;
    default:
        q = skip_number(q, end);
        break;
    }
    if (!q)
        return NULL;
after: /* after a value inside the container at `depth` */
    q = skip_ws(q, end);
    if (q == end)
        return NULL;
    if (is_obj[(depth - 1) / 64] >> ((depth - 1) % 64) & 1) {
        if (*q == ',') {
            q = skip_ws(q + 1, end);
            if (q == end)
                return NULL;
            goto key;
        }
        if (*q != '}')
            return NULL;
    } else {
        if (*q == ',') {
            q = skip_ws(q + 1, end);
            if (q == end)
                return NULL;
            goto value;
        }
        if (*q != ']')
            return NULL;
    }
    q++;
closed:
    if (--depth == base)
        return q;
    goto after;
}

/* The top-level value at q is not an object: -2 if the whole text is valid, else -1. */
static int not_object(cur_t q, cur_t end)
{
    switch (*q) {
    case '[':
        q = skip_container(q, end, 0);
        break;
    case '"':
        q = skip_string(q + 1, end);
        break;
    case 't':
        q = skip_literal(q, end, "true", 4);
        break;
    case 'f':
        q = skip_literal(q, end, "false", 5);
        break;
    case 'n':
        q = skip_literal(q, end, "null", 4);
        break;
    default:
        q = skip_number(q, end);
        break;
    }
    return q && skip_ws(q, end) == end ? CK_JSCAN_ENOTOBJ : CK_JSCAN_EINVALID;
}

/* ---- the top-level object ---- */

static bool grow_members(ck_jscan_t *s)
{
    if (s->js_cap >= (size_t)INT_MAX)
        return false;
    size_t cap = s->js_cap ? s->js_cap * 2 : 16;
    if (cap > (size_t)INT_MAX)
        cap = (size_t)INT_MAX;
    ck_jmember_t *m = ck_realloc(s->js_members, cap * sizeof(*m));
    if (!m)
        return false;
    s->js_members = m;
    s->js_cap = cap;
    return true;
}

int ck_jscan_object(ck_jscan_t *s, const char *p, size_t n, const ck_jmember_t **out)
{
    *out = NULL;
    if (n == 0)
        return CK_JSCAN_EINVALID;
    cur_t q = (cur_t)p, end = q + n;
    struct scan sc = {.s = s, .n = n, .err = CK_JSCAN_EINVALID};
    q = skip_ws(q, end);
    if (q == end)
        return CK_JSCAN_EINVALID;
    if (*q != '{')
        return not_object(q, end);
    q = skip_ws(q + 1, end);
    if (q == end)
        return CK_JSCAN_EINVALID;
    int count = 0;
    if (*q == '}') {
        q++;
    } else {
        for (;;) {
            if (*q != '"')
                return CK_JSCAN_EINVALID;
            if ((size_t)count == s->js_cap && !grow_members(s))
                return CK_JSCAN_ENOMEM;
            ck_jmember_t *m = &s->js_members[count];
            *m = (ck_jmember_t){0};
            q = scan_string(&sc, q + 1, end, &m->key, &m->key_len);
            if (!q)
                return sc.err;
            q = skip_ws(q, end);
            if (q == end || *q != ':')
                return CK_JSCAN_EINVALID;
            q = skip_ws(q + 1, end);
            if (q == end)
                return CK_JSCAN_EINVALID;
            cur_t v = q;
            switch (*q) {
            case '"':
                m->kind = CK_JV_STRING;
                q = scan_string(&sc, q + 1, end, &m->str, &m->str_len);
                break;
            case '{':
            case '[':
                m->kind = *q == '{' ? CK_JV_OBJECT : CK_JV_ARRAY;
                q = skip_container(q, end, 1);
                m->str = (const char *)v;
                m->str_len = q ? (size_t)(q - v) : 0;
                break;
            case 't':
                m->kind = CK_JV_BOOL;
                m->b = true;
                q = skip_literal(q, end, "true", 4);
                break;
            case 'f':
                m->kind = CK_JV_BOOL;
                q = skip_literal(q, end, "false", 5);
                break;
            case 'n':
                m->kind = CK_JV_NULL;
                q = skip_literal(q, end, "null", 4);
                break;
            default:
                q = scan_number(&sc, q, end, m);
                break;
            }
            if (!q)
                return sc.err;
            count++;
            q = skip_ws(q, end);
            if (q == end)
                return CK_JSCAN_EINVALID;
            if (*q == ',') {
                q = skip_ws(q + 1, end);
                if (q == end)
                    return CK_JSCAN_EINVALID;
                continue;
            }
            if (*q != '}')
                return CK_JSCAN_EINVALID;
            q++;
            break;
        }
    }
    if (skip_ws(q, end) != end)
        return CK_JSCAN_EINVALID;
    *out = s->js_members;
    return count;
}
