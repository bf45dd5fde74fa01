/* A strict, allocation-light scanner of one top-level JSON object (RFC 8259), for turning
 * record values into typed columns.
 *
 * ck_jscan_object validates the whole text, nested values included, and hands back the
 * top-level members in input order: scalars typed and decoded, nested objects and arrays
 * as their raw JSON text. Nothing is built for nested values; the indexer parses those
 * spans again (with ck_jscan_object for objects) only when it needs them.
 *
 * Memory: a scanner owns a member array and a scratch area for unescaped strings. Both
 * grow through ck_realloc to the largest document seen and are kept for the next call, so
 * a warm scanner scanning documents no larger than before does not allocate.
 * Thread: a scanner belongs to one thread at a time; distinct scanners are independent.
 * Numbers with a fraction or exponent that need the slow path go through strtod, which
 * follows the process locale: the server runs in the C locale, and so must other callers. */
#ifndef CK_COLUMNAR_JSONSCAN_H
#define CK_COLUMNAR_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ck_jv_kind {
    CK_JV_NULL,
    CK_JV_BOOL,
    CK_JV_INT,
    CK_JV_FLOAT,
    CK_JV_STRING,
    CK_JV_OBJECT,
    CK_JV_ARRAY
};

/* Results of ck_jscan_object below zero. They are the scanner's own and do not follow
 * the CK_E* numbering of core/err.h (there -2 is CK_ENOMEM): do not pass them to
 * ck_strerror. */
enum {
    CK_JSCAN_EINVALID = -1, /* not valid JSON, or nested deeper than CK_JSCAN_MAX_DEPTH */
    CK_JSCAN_ENOTOBJ = -2,  /* valid JSON, but the top-level value is not an object */
    CK_JSCAN_ENOMEM = -3,   /* an allocation failed (or more than INT_MAX members) */
};

/* Deepest nesting accepted; the top-level object is depth 1. */
#define CK_JSCAN_MAX_DEPTH 512

/* One top-level member. Fields not named by kind are zero / NULL. */
typedef struct ck_jmember {
    /* Unescaped UTF-8, not NUL-terminated, may contain NUL (from \u0000). Points into
     * the input when the key had no escapes, else into the scanner's scratch. */
    const char *key;
    size_t key_len;
    int kind; /* enum ck_jv_kind */
    bool b;   /* BOOL */
    /* INT: an integer literal (no fraction, no exponent) that fits int64_t. "-0" is INT 0
     * (the sign is lost; "-0.0" is FLOAT -0.0). */
    int64_t i;
    /* FLOAT: any other number: with a fraction or exponent, or an integer outside int64_t.
     * The value is what strtod gives in the C locale (correctly rounded; a magnitude too
     * large is +-HUGE_VAL, a too small one underflows towards 0). */
    double d;
    /* STRING: unescaped UTF-8 as for key (input or scratch), may contain NUL.
     * OBJECT / ARRAY: the raw JSON text of the value, exactly as in the input (from its
     * opening to its closing bracket), always pointing into the input. */
    const char *str;
    size_t str_len;
} ck_jmember_t;

/* Fields are private; the layout is here so that a scanner can live on the stack or
 * inside another structure. */
typedef struct ck_jscan {
    ck_jmember_t *js_members; /* js_cap entries */
    size_t js_cap;
    char *js_scratch; /* unescaped keys and strings of the current call */
    size_t js_scratch_cap;
    char *js_num; /* NUL-terminated copy of a long number for strtod */
    size_t js_num_cap;
} ck_jscan_t;

/* Makes *s an empty scanner. Does not allocate; cannot fail. */
void ck_jscan_init(ck_jscan_t *s);

/* Frees what the scanner holds and makes it empty again (it may be used or freed again).
 * Invalidates every member and pointer a previous call handed out. */
void ck_jscan_free(ck_jscan_t *s);

/* Scans p[0..n), which must be exactly one JSON object with optional surrounding
 * whitespace (space, tab, LF, CR), validated in full per RFC 8259: nested values too;
 * strings with no raw control characters (< 0x20), only the escapes \" \\ \/ \b \f \n \r
 * \t \uXXXX, surrogate pairs combined (a lone surrogate escape is an error), and valid
 * UTF-8 (no overlong forms, no encoded surrogates, nothing above U+10FFFF); the number
 * grammar (no leading zeros, "+", ".5", "1.", NaN, Infinity); no trailing commas, no
 * comments, no byte order mark. Nesting deeper than CK_JSCAN_MAX_DEPTH is an error.
 *
 * Returns the number of top-level members (>= 0) and sets *out to the scanner's member
 * array, in input order, duplicate keys included (*out may be NULL when 0 is returned).
 * The array, and keys and strings in the scratch, stay valid until the next call on s or
 * ck_jscan_free; pointers into the input live as long as the input.
 * Errors set *out to NULL: CK_JSCAN_EINVALID (-1) when the text is not valid JSON,
 * CK_JSCAN_ENOTOBJ (-2) when it is valid JSON but not an object, CK_JSCAN_ENOMEM (-3)
 * when an allocation failed (the scanner stays usable).
 * Never reads outside p[0..n); p need not be NUL-terminated and may be NULL if n is 0. */
int ck_jscan_object(ck_jscan_t *s, const char *p, size_t n, const ck_jmember_t **out);

#endif
