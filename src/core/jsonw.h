/* A small JSON text writer over ck_wbuf_t: each call appends one JSON value (or, for
 * the punctuation helpers, the bytes given) and nothing else, so callers write the
 * commas, colons and brackets themselves: ck_jsonw_lit(w, "{\"a\":"); ck_jsonw_i64(w, 1).
 *
 * Output is always valid UTF-8 JSON whatever the input:
 *   - strings: '"' and '\' are escaped, \b \f \n \r \t use their short escapes, other
 *     control characters (< 0x20) become \u00XX, U+2028/U+2029 become \u2028/\u2029
 *     (legal in JSON, not in JavaScript source); every ill-formed UTF-8 sequence
 *     (overlong, surrogate, above U+10FFFF, truncated, stray continuation byte) is
 *     replaced by U+FFFD, one per maximal ill-formed subpart (Unicode's recommended
 *     practice), and valid UTF-8 is copied as is;
 *   - doubles/floats: the first of printf %.15g, %.16g, %.17g (floats: %.6g .. %.9g)
 *     that reads back to the same value — the shortest form for any value with at most
 *     15 (6) significant digits, e.g. 0.1, 1e+20, -0, 0.30000000000000004; NaN and
 *     infinities, which JSON cannot express, become null;
 *   - base64: RFC 4648 standard alphabet with '=' padding, quoted.
 *
 * Errors: like every ck_wbuf_t append, an allocation failure sets w->err (sticky) and
 * turns later appends into no-ops; check w->err once at the end.
 * Thread: none; a writer belongs to one thread at a time. */
#ifndef CK_CORE_JSONW_H
#define CK_CORE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"

/* A quoted, escaped string of n bytes (p may be NULL when n is 0). */
void ck_jsonw_str(ck_wbuf_t *w, const void *p, size_t n);
/* A quoted, escaped NUL-terminated string; NULL writes null. */
void ck_jsonw_cstr(ck_wbuf_t *w, const char *s);
void ck_jsonw_i64(ck_wbuf_t *w, int64_t v);
void ck_jsonw_u64(ck_wbuf_t *w, uint64_t v);
/* A decimal that reads back to d exactly (see above); NaN/Inf → null. */
void ck_jsonw_double(ck_wbuf_t *w, double d);
/* The same for a float, with float digits (0.1f → 0.1); NaN/Inf → null. */
void ck_jsonw_float(ck_wbuf_t *w, float f);
/* The n bytes at p as a quoted base64 string. */
void ck_jsonw_base64(ck_wbuf_t *w, const void *p, size_t n);

static inline void ck_jsonw_null(ck_wbuf_t *w)
{
    ck_wr_bytes(w, "null", 4);
}
static inline void ck_jsonw_bool(ck_wbuf_t *w, bool b)
{
    if (b)
        ck_wr_bytes(w, "true", 4);
    else
        ck_wr_bytes(w, "false", 5);
}
/* Raw bytes the caller vouches for (punctuation, keys written once and reused). */
static inline void ck_jsonw_raw(ck_wbuf_t *w, const void *p, size_t n)
{
    ck_wr_bytes(w, p, n);
}
/* A string literal written raw: ck_jsonw_lit(w, "],\"rows\":["). */
#define ck_jsonw_lit(w, lit) ck_wr_bytes((w), "" lit, sizeof(lit) - 1)

#endif
