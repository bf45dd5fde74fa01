/* Text analysis for full-text search: UTF-8 text in, a sequence of terms out. The same
 * analyzer (same config) must be used at index time and at query time, or queries miss.
 *
 * Two kinds:
 *
 * - CK_ANALYZER_STANDARD. Words are maximal runs of "word" code points, by Unicode general
 *   category (utf8proc): letters (L*), marks (M*), numbers (N*) and connector punctuation
 *   (Pc, e.g. '_', so "foo_bar" is one word). Everything else separates words, including
 *   apostrophes and hyphens ("don't" -> "don" "t", "e-mail" -> "e" "mail"), and every byte
 *   that is not valid UTF-8 (invalid input never fails). Exceptions:
 *     - '.' or ',' between two decimal digits stays inside the word ("3.14", "1,000");
 *     - each Han ideograph (CJK Unified Ideographs, extensions, compatibility ideographs)
 *       and each Hiragana character is a word of its own, as Lucene's StandardTokenizer
 *       does (there is no dictionary segmentation); Katakana and Hangul runs are words.
 *   Each word is normalized to NFKC with Unicode full case folding (utf8proc: decompose
 *   with COMPAT|CASEFOLD, then recompose; STABLE), so "ÉCOLE" -> "école", "Straße" ->
 *   "strasse", fullwidth "ＡＢＣ" -> "abc". Pure-ASCII words take an equivalent fast path
 *   (ASCII lowercase). Then, in this order: words longer than CK_TOKEN_MAX bytes (in the
 *   input, or after normalization) are dropped; optional English stop words (Lucene's
 *   33-word list, matched after folding) are dropped; the optional Snowball stemmer
 *   (libstemmer) rewrites the term.
 *
 * - CK_ANALYZER_KEYWORD. The whole input is one token, byte for byte unchanged (no
 *   folding, no UTF-8 check), at position 0 with offsets [0, len). Empty input gives one
 *   empty token (an empty string is a value that exact-match queries can ask for); input
 *   longer than CK_TOKEN_MAX bytes gives no token (like Elasticsearch's ignore_above).
 *
 * Positions: the n-th word of the input (counting from 0) has position n, also when
 * earlier words were dropped as stop words or as too long, so dropped words leave a gap
 * as in Lucene and phrase queries do not match across them. Positions restart at 0 on
 * each ck_analyze() call; a caller indexing several values into one field adds its own
 * base (and gap) between values. Offsets are byte offsets into the caller's input,
 * [start, end), covering the original (unnormalized) bytes of the word, for highlighting.
 */
#ifndef CK_SEARCH_ANALYZE_H
#define CK_SEARCH_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

/* Longest term, in bytes, that an analyzer emits; longer words are dropped. */
#define CK_TOKEN_MAX 255

typedef enum {
    CK_ANALYZER_STANDARD = 0,
    CK_ANALYZER_KEYWORD = 1,
} ck_analyzer_kind_t;

typedef struct {
    ck_analyzer_kind_t kind;
    /* Snowball stemmer name as libstemmer knows it ("english", "porter", "german",
     * "french", "russian", ...; also its aliases such as "en"); NULL, "" or "none" for no
     * stemming. Standard analyzer only; ignored by the keyword analyzer. Copied by
     * ck_analyzer_new(), need not outlive it. */
    const char *language;
    /* Nonzero: drop English stop words ("the", "and", ...). Standard analyzer only. */
    int stopwords;
} ck_analyzer_config_t;

typedef struct ck_analyzer ck_analyzer_t;

typedef struct {
    /* The term bytes (not NUL-terminated). Valid only during the callback: they live in
     * the analyzer's scratch buffer or the stemmer's, both reused for the next token. */
    const char *term;
    size_t term_len; /* 0 < term_len <= CK_TOKEN_MAX (0 only for an empty keyword) */
    uint32_t position;
    size_t start, end; /* byte offsets of the word in the input (start == end only for
                        * an empty keyword) */
} ck_token_t;

/* Called once per token, in input order. Return 0 to continue; any other value stops the
 * analysis and ck_analyze() returns that value (use a value that is not a CK_E* code if
 * the caller must tell the two apart). */
typedef int (*ck_token_cb)(void *arg, const ck_token_t *tok);

/* Create an analyzer. On success *out is a new analyzer owned by the caller (free with
 * ck_analyzer_free()). Errors: CK_EINVAL for an unknown kind or stemmer language (nothing
 * is allocated), CK_ENOMEM. An analyzer keeps scratch buffers and the stemmer's state,
 * so it is NOT thread-safe: use one analyzer per thread. Size: about 14 KB, plus
 * a 16 KB stem cache when stemming that grows to 2 MB once the analyzer has seen many
 * distinct words (an indexer's does, a query's does not). */
int ck_analyzer_new(const ck_analyzer_config_t *cfg, ck_analyzer_t **out);

/* Free an analyzer; NULL is a no-op. */
void ck_analyzer_free(ck_analyzer_t *a);

/* Analyze text[0..len) (UTF-8, not necessarily NUL-terminated; text may be NULL when len
 * is 0) and call cb(arg, token) for each token. Returns 0, the callback's nonzero value
 * (analysis stops there), or CK_ENOMEM (a scratch buffer could not grow or the stemmer
 * failed; the tokens before it were delivered). Scratch buffers are kept between calls,
 * so steady-state analysis does not allocate. One thread at a time per analyzer; the
 * callback must not call ck_analyze() on the same analyzer. */
int ck_analyze(ck_analyzer_t *a, const char *text, size_t len, ck_token_cb cb, void *arg);

/* Nonzero if term[0..len) (already folded) is an English stop word of the list above. */
int ck_analyze_is_stopword(const char *term, size_t len);

#endif
