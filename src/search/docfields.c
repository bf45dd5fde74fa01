/* From a record to a search document (see docfields.h for the field rules).
 *
 * A value is parsed completely before anything reaches the builder: the parser collects
 * the leaves (path, kind, decoded value) into scratch arrays, and only a value that is
 * valid JSON is then emitted field by field. Invalid JSON is indexed as plain text, so a
 * half-parsed document never leaves fields behind. */
#include "search/docfields.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

enum { LEAF_STRING, LEAF_NUMBER, LEAF_BOOL };

typedef struct leaf {
    uint32_t path_off, path_len; /* in d_paths */
    uint32_t str_off, str_len;   /* LEAF_STRING: in d_strs */
    int kind;
    bool b;
    double num;
} leaf_t;

/* Tokens handed to the segment builder at a time. */
#define TOK_BATCH 64

/* Per doc and text field: the next position base. */
typedef struct posbase {
    uint32_t path_off, path_len;
    uint32_t next;
} posbase_t;

struct ck_docfields {
    ck_analyzer_t *d_an;
    ck_map_fn d_map;
    void *d_map_ctx;
    /* parse state */
    const char *d_p, *d_end;
    int d_depth;
    ck_wbuf_t d_path;  /* current dotted path */
    ck_wbuf_t d_paths; /* leaf paths */
    ck_wbuf_t d_strs;  /* decoded strings */
    leaf_t *d_leaves;
    size_t d_nleaves, d_cap;
    posbase_t *d_pos;
    size_t d_npos, d_poscap;
    /* emit state */
    ck_segbuild_t *d_b;
    const char *d_field;
    size_t d_flen;
    uint32_t d_base; /* position base of the current value in its field */
    uint32_t d_last; /* positions used by the current value (max + 1) */
    int d_err;
    /* tokens of the current value not yet handed to the builder (ck_segbuild_text_n) */
    size_t d_ntok, d_tbytes_len;
    const char *d_tterm[TOK_BATCH];
    uint32_t d_tlen[TOK_BATCH], d_tpos[TOK_BATCH];
    char d_tbytes[TOK_BATCH * CK_TOKEN_MAX];
};

int ck_docfields_new(const ck_analyzer_config_t *cfg, ck_docfields_t **out)
{
    ck_docfields_t *d = ck_calloc(1, sizeof(*d));
    if (!d)
        return CK_ENOMEM;
    int rc = ck_analyzer_new(cfg, &d->d_an);
    if (rc) {
        ck_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void ck_docfields_free(ck_docfields_t *d)
{
    if (!d)
        return;
    ck_analyzer_free(d->d_an);
    ck_wbuf_free(&d->d_path);
    ck_wbuf_free(&d->d_paths);
    ck_wbuf_free(&d->d_strs);
    ck_free(d->d_leaves);
    ck_free(d->d_pos);
    ck_free(d);
}

void ck_docfields_set_mapping(ck_docfields_t *d, ck_map_fn fn, void *ctx)
{
    d->d_map = fn;
    d->d_map_ctx = ctx;
}

/* ---- ISO-8601 dates ---- */

static bool digits(const char *s, size_t n, int *v)
{
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool ck_doc_parse_date(const char *s, size_t n, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (n < 10 || n > 35 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
        return false;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return false;
    size_t i = 10;
    int64_t off_min = 0;
    if (i < n) {
        if ((s[i] != 'T' && s[i] != 't' && s[i] != ' ') || i + 6 > n || !digits(s + i + 1, 2, &h) ||
            s[i + 3] != ':' || !digits(s + i + 4, 2, &mi))
            return false;
        i += 6;
        if (i < n && s[i] == ':') {
            if (i + 3 > n || !digits(s + i + 1, 2, &sec))
                return false;
            i += 3;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                size_t j = i + 1, nd = 0;
                int scale = 100;
                while (j < n && s[j] >= '0' && s[j] <= '9') {
                    if (nd < 3) {
                        frac += (s[j] - '0') * scale;
                        scale /= 10;
                    }
                    nd++;
                    j++;
                }
                if (nd == 0)
                    return false;
                i = j;
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return false;
        if (i < n) {
            if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
                i++;
            } else if (s[i] == '+' || s[i] == '-') {
                int oh, om = 0;
                if (i + 3 > n || !digits(s + i + 1, 2, &oh))
                    return false;
                size_t j = i + 3;
                if (j < n && s[j] == ':')
                    j++;
                if (j < n) {
                    if (j + 2 != n || !digits(s + j, 2, &om))
                        return false;
                    j += 2;
                }
                if (j != n || oh > 23 || om > 59)
                    return false;
                off_min = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
                i = n;
            } else {
                return false;
            }
        }
    }
    if (i != n)
        return false;
    int64_t days = days_from_civil(y, mo, d);
    *ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - off_min * 60) * 1000 + frac;
    return true;
}

/* ---- parsing ---- */

#define P_FAIL (-100) /* not valid JSON: index as text */

static void skip_ws(ck_docfields_t *d)
{
    while (d->d_p < d->d_end &&
           (*d->d_p == ' ' || *d->d_p == '\t' || *d->d_p == '\n' || *d->d_p == '\r'))
        d->d_p++;
}

static int hex4(const char *p, const char *end, uint32_t *v)
{
    if (end - p < 4)
        return P_FAIL;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        int h = ck_hexval(p[i]);
        if (h < 0)
            return P_FAIL;
        x = x << 4 | (uint32_t)h;
    }
    *v = x;
    return 0;
}

static void put_utf8(ck_wbuf_t *w, uint32_t c)
{
    uint8_t b[4];
    size_t n;
    if (c < 0x80) {
        b[0] = (uint8_t)c;
        n = 1;
    } else if (c < 0x800) {
        b[0] = (uint8_t)(0xC0 | c >> 6);
        b[1] = (uint8_t)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        b[0] = (uint8_t)(0xE0 | c >> 12);
        b[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        b[2] = (uint8_t)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | c >> 18);
        b[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
        b[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        b[3] = (uint8_t)(0x80 | (c & 0x3F));
        n = 4;
    }
    ck_wr_bytes(w, b, n);
}

/* Parses a string (d_p at the opening quote) into w. */
static int parse_string(ck_docfields_t *d, ck_wbuf_t *w)
{
    const char *p = d->d_p + 1, *end = d->d_end;
    for (;;) {
        const char *q = p;
        while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
            q++;
        ck_wr_bytes(w, p, (size_t)(q - p));
        if (q >= end || (unsigned char)*q < 0x20)
            return P_FAIL;
        if (*q == '"') {
            d->d_p = q + 1;
            return 0;
        }
        if (q + 1 >= end)
            return P_FAIL;
        char e = q[1];
        p = q + 2;
        char c;
        switch (e) {
        case '"':
            c = '"';
            break;
        case '\\':
            c = '\\';
            break;
        case '/':
            c = '/';
            break;
        case 'b':
            c = '\b';
            break;
        case 'f':
            c = '\f';
            break;
        case 'n':
            c = '\n';
            break;
        case 'r':
            c = '\r';
            break;
        case 't':
            c = '\t';
            break;
        case 'u': {
            uint32_t u;
            if (hex4(p, end, &u))
                return P_FAIL;
            p += 4;
            if (u >= 0xD800 && u <= 0xDBFF) {
                uint32_t lo;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return P_FAIL;
                p += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return P_FAIL;
            }
            put_utf8(w, u);
            continue;
        }
        default:
            return P_FAIL;
        }
        ck_wr_bytes(w, &c, 1);
    }
}

static int add_leaf(ck_docfields_t *d, int kind)
{
    if (d->d_nleaves == d->d_cap) {
        size_t nc = d->d_cap ? d->d_cap * 2 : 64;
        leaf_t *n = ck_realloc(d->d_leaves, nc * sizeof(*n));
        if (!n)
            return CK_ENOMEM;
        d->d_leaves = n;
        d->d_cap = nc;
    }
    leaf_t *l = &d->d_leaves[d->d_nleaves++];
    memset(l, 0, sizeof(*l));
    l->kind = kind;
    l->path_off = (uint32_t)d->d_paths.len;
    l->path_len = (uint32_t)d->d_path.len;
    ck_wr_bytes(&d->d_paths, d->d_path.data, d->d_path.len);
    return 0;
}

static int parse_value(ck_docfields_t *d);

static int parse_object(ck_docfields_t *d)
{
    d->d_p++; /* { */
    skip_ws(d);
    if (d->d_p < d->d_end && *d->d_p == '}') {
        d->d_p++;
        return 0;
    }
    size_t base = d->d_path.len;
    for (;;) {
        skip_ws(d);
        if (d->d_p >= d->d_end || *d->d_p != '"')
            return P_FAIL;
        if (base)
            ck_wr_bytes(&d->d_path, ".", 1);
        int rc = parse_string(d, &d->d_path);
        if (rc)
            return rc;
        skip_ws(d);
        if (d->d_p >= d->d_end || *d->d_p != ':')
            return P_FAIL;
        d->d_p++;
        rc = parse_value(d);
        if (rc)
            return rc;
        d->d_path.len = base;
        skip_ws(d);
        if (d->d_p < d->d_end && *d->d_p == ',') {
            d->d_p++;
            continue;
        }
        if (d->d_p < d->d_end && *d->d_p == '}') {
            d->d_p++;
            return 0;
        }
        return P_FAIL;
    }
}

static int parse_array(ck_docfields_t *d)
{
    d->d_p++; /* [ */
    skip_ws(d);
    if (d->d_p < d->d_end && *d->d_p == ']') {
        d->d_p++;
        return 0;
    }
    for (;;) {
        int rc = parse_value(d);
        if (rc)
            return rc;
        skip_ws(d);
        if (d->d_p < d->d_end && *d->d_p == ',') {
            d->d_p++;
            continue;
        }
        if (d->d_p < d->d_end && *d->d_p == ']') {
            d->d_p++;
            return 0;
        }
        return P_FAIL;
    }
}

static bool lit(ck_docfields_t *d, const char *w, size_t n)
{
    if ((size_t)(d->d_end - d->d_p) < n || memcmp(d->d_p, w, n))
        return false;
    d->d_p += n;
    return true;
}

static int parse_number(ck_docfields_t *d)
{
    const char *p = d->d_p, *end = d->d_end, *s = p;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return P_FAIL;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return P_FAIL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return P_FAIL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    char buf[64];
    size_t n = (size_t)(p - s);
    double v;
    if (n < sizeof(buf)) {
        memcpy(buf, s, n);
        buf[n] = 0;
        v = strtod(buf, NULL);
    } else {
        char *t = ck_strndup(s, n);
        if (!t)
            return CK_ENOMEM;
        v = strtod(t, NULL);
        ck_free(t);
    }
    d->d_p = p;
    if (!isfinite(v))
        return 0; /* out of double range: not indexed as a number */
    int rc = add_leaf(d, LEAF_NUMBER);
    if (!rc)
        d->d_leaves[d->d_nleaves - 1].num = v;
    return rc;
}

static int parse_value(ck_docfields_t *d)
{
    skip_ws(d);
    if (d->d_p >= d->d_end)
        return P_FAIL;
    int rc;
    switch (*d->d_p) {
    case '{':
    case '[':
        if (++d->d_depth > 512)
            return P_FAIL;
        if (d->d_depth > CK_DOC_MAX_DEPTH) {
            /* still validate, but index nothing below here */
            size_t nl = d->d_nleaves, np = d->d_paths.len, ns = d->d_strs.len;
            rc = *d->d_p == '{' ? parse_object(d) : parse_array(d);
            d->d_nleaves = nl;
            d->d_paths.len = np;
            d->d_strs.len = ns;
        } else {
            rc = *d->d_p == '{' ? parse_object(d) : parse_array(d);
        }
        d->d_depth--;
        return rc;
    case '"': {
        uint32_t off = (uint32_t)d->d_strs.len;
        rc = parse_string(d, &d->d_strs);
        if (rc)
            return rc;
        rc = add_leaf(d, LEAF_STRING);
        if (!rc) {
            leaf_t *l = &d->d_leaves[d->d_nleaves - 1];
            l->str_off = off;
            l->str_len = (uint32_t)(d->d_strs.len - off);
        }
        return rc;
    }
    case 't':
    case 'f': {
        bool b = *d->d_p == 't';
        if (!lit(d, b ? "true" : "false", b ? 4 : 5))
            return P_FAIL;
        rc = add_leaf(d, LEAF_BOOL);
        if (!rc)
            d->d_leaves[d->d_nleaves - 1].b = b;
        return rc;
    }
    case 'n':
        return lit(d, "null", 4) ? 0 : P_FAIL;
    default:
        return parse_number(d);
    }
}

/* ---- emitting ---- */

static int flush_tokens(ck_docfields_t *d)
{
    int rc = ck_segbuild_text_n(d->d_b, d->d_field, d->d_flen, d->d_tterm, d->d_tlen, d->d_tpos,
                                d->d_ntok);
    d->d_ntok = d->d_tbytes_len = 0;
    return rc;
}

static int on_token(void *arg, const ck_token_t *t)
{
    ck_docfields_t *d = arg;
    if (d->d_ntok == TOK_BATCH) {
        int rc = flush_tokens(d);
        if (rc) {
            d->d_err = rc;
            return 1;
        }
    }
    /* the analyzer reuses the term's bytes for the next token: keep a copy */
    char *at = d->d_tbytes + d->d_tbytes_len;
    memcpy(at, t->term, t->term_len);
    d->d_tbytes_len += t->term_len;
    d->d_tterm[d->d_ntok] = at;
    d->d_tlen[d->d_ntok] = (uint32_t)t->term_len;
    d->d_tpos[d->d_ntok] = d->d_base + t->position;
    d->d_ntok++;
    if (t->position + 1 > d->d_last)
        d->d_last = t->position + 1;
    return 0;
}

/* The position base of field path for this doc (CK_DOC_POSITION_GAP after its last
 * value), and where to store the next one. */
static posbase_t *posbase(ck_docfields_t *d, const char *path, size_t len)
{
    for (size_t i = 0; i < d->d_npos; i++) {
        posbase_t *p = &d->d_pos[i];
        if (p->path_len == len && !memcmp(d->d_paths.data + p->path_off, path, len))
            return p;
    }
    if (d->d_npos == d->d_poscap) {
        size_t nc = d->d_poscap ? d->d_poscap * 2 : 16;
        posbase_t *n = ck_realloc(d->d_pos, nc * sizeof(*n));
        if (!n)
            return NULL;
        d->d_pos = n;
        d->d_poscap = nc;
    }
    posbase_t *p = &d->d_pos[d->d_npos++];
    p->path_off = (uint32_t)((const char *)path - (const char *)d->d_paths.data);
    p->path_len = (uint32_t)len;
    p->next = 0;
    return p;
}

static int emit_text(ck_docfields_t *d, const char *field, size_t flen, const char *s, size_t n,
                     posbase_t *pb)
{
    d->d_field = field;
    d->d_flen = flen;
    d->d_base = pb ? pb->next : 0;
    d->d_last = 0;
    d->d_err = 0;
    d->d_ntok = d->d_tbytes_len = 0;
    int rc = ck_analyze(d->d_an, s, n, on_token, d);
    if (d->d_err)
        return d->d_err;
    if (rc < 0)
        return rc;
    if (d->d_ntok && (rc = flush_tokens(d)))
        return rc;
    if (d->d_last && pb)
        pb->next += d->d_last + CK_DOC_POSITION_GAP;
    return 0;
}

/* "<field>.keyword" in d_path (reused as scratch once parsing is over). */
static int emit_keyword_sub(ck_docfields_t *d, const char *field, size_t flen, const char *s,
                            size_t n)
{
    if (n > CK_DOC_KEYWORD_MAX || flen + 8 > CK_SEG_FIELD_MAX)
        return 0;
    d->d_path.len = 0;
    ck_wr_bytes(&d->d_path, field, flen);
    ck_wr_bytes(&d->d_path, ".keyword", 8);
    if (d->d_path.err)
        return CK_ENOMEM;
    return ck_segbuild_keyword(d->d_b, (const char *)d->d_path.data, d->d_path.len, s, n);
}

static int emit_leaf(ck_docfields_t *d, const leaf_t *l)
{
    const char *path = (const char *)d->d_paths.data + l->path_off;
    size_t plen = l->path_len;
    if (plen == 0 || plen > CK_SEG_FIELD_MAX)
        return 0;
    ck_map_type_t mt = d->d_map ? d->d_map(d->d_map_ctx, path, plen) : CK_MAP_DYNAMIC;
    switch (l->kind) {
    case LEAF_NUMBER:
        if (mt == CK_MAP_TEXT || mt == CK_MAP_KEYWORD) {
            char buf[40];
            int n = l->num == floor(l->num) && fabs(l->num) < 1e15
                        ? snprintf(buf, sizeof(buf), "%.0f", l->num)
                        : snprintf(buf, sizeof(buf), "%.17g", l->num);
            if (mt == CK_MAP_KEYWORD)
                return ck_segbuild_keyword(d->d_b, path, plen, buf, (size_t)n);
            return emit_text(d, path, plen, buf, (size_t)n, posbase(d, path, plen));
        }
        return ck_segbuild_number(d->d_b, path, plen, l->num);
    case LEAF_BOOL:
        if (mt == CK_MAP_NUMBER)
            return ck_segbuild_number(d->d_b, path, plen, l->b ? 1.0 : 0.0);
        return ck_segbuild_keyword(d->d_b, path, plen, l->b ? "true" : "false", l->b ? 4 : 5);
    default: {
        const char *s = (const char *)d->d_strs.data + l->str_off;
        size_t n = l->str_len;
        int64_t ms;
        if (mt == CK_MAP_KEYWORD)
            return n <= CK_TERMDICT_MAX_TERM ? ck_segbuild_keyword(d->d_b, path, plen, s, n) : 0;
        if (mt == CK_MAP_NUMBER) {
            if (ck_doc_parse_date(s, n, &ms))
                return ck_segbuild_number(d->d_b, path, plen, (double)ms);
            char buf[64];
            if (n && n < sizeof(buf)) {
                memcpy(buf, s, n);
                buf[n] = 0;
                char *e;
                double v = strtod(buf, &e);
                if (*e == 0 && isfinite(v))
                    return ck_segbuild_number(d->d_b, path, plen, v);
            }
            return 0;
        }
        posbase_t *pb = posbase(d, path, plen);
        if (!pb)
            return CK_ENOMEM;
        int rc = emit_text(d, path, plen, s, n, pb);
        if (!rc && mt == CK_MAP_DYNAMIC)
            rc = emit_keyword_sub(d, path, plen, s, n);
        if (!rc && mt == CK_MAP_DYNAMIC && n >= 10 && n <= 35 && s[4] == '-' &&
            ck_doc_parse_date(s, n, &ms))
            rc = ck_segbuild_number(d->d_b, path, plen, (double)ms);
        return rc;
    }
    }
}

static int emit_plain(ck_docfields_t *d, const char *field, size_t flen, ck_slice_t v)
{
    int rc = emit_text(d, field, flen, (const char *)v.ptr, (size_t)v.len, NULL);
    if (!rc)
        rc = emit_keyword_sub(d, field, flen, (const char *)v.ptr, (size_t)v.len);
    return rc;
}

int ck_docfields_add(ck_docfields_t *d, ck_segbuild_t *b, int32_t partition, int64_t offset,
                     int64_t timestamp, ck_slice_t key, ck_slice_t value)
{
    return ck_docfields_add_at(d, b, partition, offset, timestamp, CK_SEG_NO_POS, key, value);
}

int ck_docfields_add_at(ck_docfields_t *d, ck_segbuild_t *b, int32_t partition, int64_t offset,
                        int64_t timestamp, uint32_t record_pos, ck_slice_t key, ck_slice_t value)
{
    int rc = ck_segbuild_doc_at(b, partition, offset, timestamp, record_pos);
    if (rc)
        return rc;
    d->d_b = b;
    d->d_npos = 0;
    if (key.len >= 0) {
        rc = emit_plain(d, "_key", 4, key);
        if (rc)
            return rc;
    }
    if (value.len <= 0)
        return 0;
    /* a JSON object or array? */
    const char *p = (const char *)value.ptr, *end = p + value.len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (p < end && (*p == '{' || *p == '[')) {
        d->d_p = p;
        d->d_end = end;
        d->d_depth = 0;
        d->d_path.len = 0;
        d->d_paths.len = 0;
        d->d_strs.len = 0;
        d->d_nleaves = 0;
        rc = parse_value(d);
        if (!rc) {
            skip_ws(d);
            if (d->d_p != d->d_end)
                rc = P_FAIL;
        }
        if (!rc && (d->d_path.err || d->d_paths.err || d->d_strs.err))
            rc = CK_ENOMEM;
        if (rc == 0) {
            for (size_t i = 0; i < d->d_nleaves && !rc; i++)
                rc = emit_leaf(d, &d->d_leaves[i]);
            return rc;
        }
        if (rc != P_FAIL)
            return rc;
    }
    return emit_plain(d, "_value", 6, value);
}
