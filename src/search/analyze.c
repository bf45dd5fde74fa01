/* Standard and keyword analyzers; the rules are in analyze.h.
 *
 * The scanner walks the input once. ASCII bytes are classified by a few comparisons;
 * other code points are decoded with utf8proc_iterate() and classified by
 * utf8proc_category(). A word made only of ASCII is folded by a byte loop (NFKC is the
 * identity on ASCII and case folding is lowercasing there), which keeps the common case
 * away from utf8proc's normalization; other words go through utf8proc_decompose() into a
 * code-point buffer owned by the analyzer and utf8proc_reencode() back to UTF-8 in place,
 * which is what utf8proc_map() does minus its per-call malloc. */
#include "search/analyze.h"

#include <pthread.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libstemmer.h>
#include <utf8proc.h>

#include "core/alloc.h"
#include "core/err.h"

/* Initial code-point buffer: a word has at most CK_TOKEN_MAX input bytes, so at most that
 * many code points, and decompositions rarely expand much; it grows when one does. */
#define CPS_INITIAL 1024

#define NORM_OPTS (UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD)

/* Stemming is the slowest step (libstemmer runs its Snowball program on every word), and
 * natural text repeats a small vocabulary, so the outcome for a folded term -- its stem,
 * or that it is a stop word -- is remembered in a direct-mapped cache indexed by a hash of
 * the term into pairs of slots (two-way). A miss replaces the entry of the pair with less
 * credit, and only once the entry has used up its credit
 * (each miss on the slot takes one, each hit gives one back), so that a rare word does not
 * push out a frequent one. A query's analyzer sees a few words, an indexer's millions: the cache starts
 * with STEM_CACHE_SMALL slots and grows to STEM_CACHE_BIG after STEM_CACHE_GROW misses
 * (if that allocation fails it just stays small). */
#define STEM_CACHE_SMALL 256    /* slots, powers of two */
#define STEM_CACHE_BIG 32768    /* 2 MB */
#define STEM_CACHE_GROW 16384   /* misses before growing */
#define STEM_CACHE_TERM 30      /* longest term and stem cached, in bytes */
#define STEM_CACHE_STOP 0xFF    /* sc_slen of a stop word */
#define STEM_CACHE_HITS 3       /* a slot's credit: a miss takes one, a hit gives one back */

/* Words scanned and folded before they are stemmed, so that their stem cache slots are
 * fetched together (see analyze_standard). */
#define WORD_BATCH 32

typedef struct {
    uint8_t sc_tlen, sc_slen; /* sc_tlen 0: empty slot */
    uint8_t sc_credit;        /* a miss replaces the entry only when this is 0 */
    char sc_term[STEM_CACHE_TERM];
    char sc_stem[STEM_CACHE_TERM];
    uint8_t sc_pad;
} stem_slot_t;
_Static_assert(sizeof(stem_slot_t) == 64, "a stem cache slot is one cache line");

struct ck_analyzer {
    ck_analyzer_kind_t an_kind;
    int an_stopwords;
    struct sb_stemmer *an_stemmer; /* NULL: no stemming */
    stem_slot_t *an_stem_cache;    /* an_stem_mask + 1 slots when an_stemmer is set */
    uint32_t an_stem_mask;
    uint32_t an_stem_misses;
    int32_t *an_cps;               /* normalization scratch, an_cps_cap code points */
    size_t an_cps_cap;
    /* words scanned and folded, not yet stemmed and delivered (see analyze_standard) */
    size_t an_nw, an_wlen;
    struct word {
        uint32_t w_off, w_len; /* folded bytes in an_wbytes */
        uint32_t w_hash;       /* of the folded bytes (the stem cache's index) */
        uint32_t w_pos;
        size_t w_start, w_end; /* in the input */
    } an_w[WORD_BATCH];
    char an_wbytes[WORD_BATCH * CK_TOKEN_MAX];
};

/* Code-point classes of the scanner. */
enum {
    CL_SEP,    /* separates words */
    CL_WORD,   /* letter, mark, non-decimal number, connector punctuation */
    CL_DIGIT,  /* decimal digit (Nd) */
    CL_SINGLE, /* a word on its own (Han ideograph, Hiragana) */
    CL_MIDNUM, /* '.' or ',': inside a word only between two digits */
};

/* Lucene's English stop words (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET), sorted by strcmp. */
static const char *const stopwords_en[] = {
    "a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
    "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
    "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with",
};

/* The stop words packed into integers (bytes in order, then the length), sorted: one
 * packing and a binary search over integers per token instead of string compares. */
static uint64_t stop_codes[sizeof(stopwords_en) / sizeof(stopwords_en[0])];
static pthread_once_t stop_once = PTHREAD_ONCE_INIT;

static inline uint64_t stop_pack(const char *t, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++)
        v = v << 8 | (uint8_t)t[i];
    return v << 8 * (6 - len) | len;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void stop_init(void)
{
    size_t n = sizeof(stopwords_en) / sizeof(stopwords_en[0]);
    for (size_t i = 0; i < n; i++)
        stop_codes[i] = stop_pack(stopwords_en[i], strlen(stopwords_en[i]));
    qsort(stop_codes, n, sizeof(stop_codes[0]), u64_cmp);
}

int ck_analyze_is_stopword(const char *term, size_t len)
{
    if (len == 0 || len > 5) /* the longest stop word has 5 bytes */
        return 0;
    pthread_once(&stop_once, stop_init);
    uint64_t v = stop_pack(term, len);
    size_t lo = 0, hi = sizeof(stop_codes) / sizeof(stop_codes[0]);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (stop_codes[mid] == v)
            return 1;
        if (stop_codes[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static inline int ascii_class(uint8_t c)
{
    uint8_t l = c | 0x20;
    if (l >= 'a' && l <= 'z')
        return CL_WORD;
    if (c >= '0' && c <= '9')
        return CL_DIGIT;
    if (c == '_')
        return CL_WORD;
    if (c == '.' || c == ',')
        return CL_MIDNUM;
    return CL_SEP;
}

static int cp_class(int32_t cp)
{
    utf8proc_category_t cat = utf8proc_category(cp);
    switch (cat) {
    case UTF8PROC_CATEGORY_LO:
        /* Hiragana; CJK Ext A; CJK Unified; CJK Compatibility; planes 2-3 (Ext B and on). */
        if ((cp >= 0x3040 && cp <= 0x309F) || (cp >= 0x3400 && cp <= 0x4DBF) ||
            (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
            (cp >= 0x20000 && cp <= 0x3FFFF))
            return CL_SINGLE;
        return CL_WORD;
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_PC:
        return CL_WORD;
    case UTF8PROC_CATEGORY_ND:
        return CL_DIGIT;
    default:
        return CL_SEP;
    }
}

/* Class of the code point at s[i] (i < len); *adv is its length in bytes. A byte that does
 * not start a valid UTF-8 sequence is a one-byte separator. */
static inline int next_class(const uint8_t *s, size_t len, size_t i, size_t *adv)
{
    if (s[i] < 0x80) {
        *adv = 1;
        return ascii_class(s[i]);
    }
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
    if (n <= 0 || cp < 0) {
        *adv = 1;
        return CL_SEP;
    }
    *adv = (size_t)n;
    return cp_class(cp);
}

/* Normalize the non-ASCII word w[0..n) into the analyzer's buffer. Returns the byte
 * length (the bytes are at (char *)a->an_cps), 0 to drop the word, or CK_ENOMEM. */
static long fold_unicode(ck_analyzer_t *a, const uint8_t *w, size_t n)
{
    utf8proc_ssize_t got;
    for (;;) {
        got = utf8proc_decompose(w, (utf8proc_ssize_t)n, a->an_cps, (utf8proc_ssize_t)a->an_cps_cap,
                                 NORM_OPTS);
        if (got < 0)
            return 0; /* cannot happen for a scanned word; drop it rather than fail */
        /* utf8proc_reencode() writes a NUL after the bytes: keep one spare slot. */
        if ((size_t)got < a->an_cps_cap)
            break;
        size_t cap = a->an_cps_cap * 2;
        while (cap <= (size_t)got)
            cap *= 2;
        int32_t *p = ck_realloc(a->an_cps, cap * sizeof(*p));
        if (!p)
            return CK_ENOMEM;
        a->an_cps = p;
        a->an_cps_cap = cap;
    }
    utf8proc_ssize_t bytes = utf8proc_reencode(a->an_cps, got, NORM_OPTS);
    return bytes < 0 ? 0 : (long)bytes;
}

static void stem_cache_grow(ck_analyzer_t *a)
{
    stem_slot_t *big = ck_calloc(STEM_CACHE_BIG, sizeof(*big));
    if (!big)
        return;
    ck_free(a->an_stem_cache);
    a->an_stem_cache = big;
    a->an_stem_mask = STEM_CACHE_BIG - 1;
}

/* Replace the term (*term, *tlen) by its stem (in the cache or the stemmer's buffer);
 * *tlen = 0 if it is a stop word (and the analyzer drops them). */
static int stem(ck_analyzer_t *a, const char **term, size_t *tlen, uint32_t h)
{
    const char *t = *term;
    size_t n = *tlen;
    stem_slot_t *slot = NULL;
    if (n <= STEM_CACHE_TERM) {
        /* two-way: the pair of slots at h (an even index and the next) */
        stem_slot_t *pair = &a->an_stem_cache[h & a->an_stem_mask & ~1u];
        for (int w = 0; w < 2; w++) {
            slot = &pair[w];
            if (slot->sc_tlen == n && memcmp(slot->sc_term, t, n) == 0) {
                if (slot->sc_credit < STEM_CACHE_HITS)
                    slot->sc_credit++;
                *term = slot->sc_stem;
                *tlen = slot->sc_slen == STEM_CACHE_STOP ? 0 : slot->sc_slen;
                return 0;
            }
        }
        if (++a->an_stem_misses == STEM_CACHE_GROW && a->an_stem_mask < STEM_CACHE_BIG - 1) {
            stem_cache_grow(a);
            pair = &a->an_stem_cache[h & a->an_stem_mask & ~1u];
        }
        slot = pair[1].sc_credit < pair[0].sc_credit ? &pair[1] : &pair[0];
        if (slot->sc_credit) { /* keep both entries; this word is not cached */
            slot->sc_credit--;
            slot = NULL;
        }
    }
    if (a->an_stopwords && ck_analyze_is_stopword(t, n)) {
        if (slot) {
            slot->sc_tlen = (uint8_t)n;
            slot->sc_slen = STEM_CACHE_STOP;
            slot->sc_credit = 1;
            memcpy(slot->sc_term, t, n);
        }
        *tlen = 0;
        return 0;
    }
    const sb_symbol *st = sb_stemmer_stem(a->an_stemmer, (const sb_symbol *)t, (int)n);
    if (!st)
        return CK_ENOMEM;
    size_t sn = (size_t)sb_stemmer_length(a->an_stemmer);
    if (slot && sn <= STEM_CACHE_TERM) {
        slot->sc_tlen = (uint8_t)n;
        slot->sc_slen = (uint8_t)sn;
        slot->sc_credit = 1;
        memcpy(slot->sc_term, t, n);
        memcpy(slot->sc_stem, st, sn);
    }
    *term = (const char *)st;
    *tlen = sn;
    return 0;
}

static inline uint32_t fnv1a(const char *t, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)t[i]) * 16777619u;
    return h;
}

/* Folds the word s[start..end) into the batch (and fetches its stem cache slot). */
static int add_word(ck_analyzer_t *a, const uint8_t *s, size_t start, size_t end, int ascii,
                    uint32_t pos)
{
    size_t n = end - start;
    if (n > CK_TOKEN_MAX)
        return 0;
    char *out = a->an_wbytes + a->an_wlen;
    size_t tlen;
    if (ascii) {
        for (size_t i = 0; i < n; i++) {
            uint8_t c = s[start + i];
            out[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
        }
        tlen = n;
    } else {
        long r = fold_unicode(a, s + start, n);
        if (r < 0)
            return (int)r;
        tlen = (size_t)r;
        if (tlen > CK_TOKEN_MAX)
            return 0;
        memcpy(out, a->an_cps, tlen);
    }
    if (tlen == 0)
        return 0;
    struct word *w = &a->an_w[a->an_nw++];
    w->w_off = (uint32_t)a->an_wlen;
    w->w_len = (uint32_t)tlen;
    w->w_pos = pos;
    w->w_start = start;
    w->w_end = end;
    a->an_wlen += tlen;
    if (a->an_stemmer) {
        w->w_hash = fnv1a(out, tlen);
        const stem_slot_t *pair = &a->an_stem_cache[w->w_hash & a->an_stem_mask & ~1u];
        __builtin_prefetch(pair);
        __builtin_prefetch(pair + 1);
    }
    return 0;
}

/* Filters and stems the batched words and hands them to cb, in order; empties the batch. */
static int flush_words(ck_analyzer_t *a, ck_token_cb cb, void *arg)
{
    size_t nw = a->an_nw;
    a->an_nw = a->an_wlen = 0;
    for (size_t i = 0; i < nw; i++) {
        const struct word *w = &a->an_w[i];
        const char *term = a->an_wbytes + w->w_off;
        size_t tlen = w->w_len;
        if (a->an_stemmer) { /* the stop word check is in stem(), behind the cache */
            int rc = stem(a, &term, &tlen, w->w_hash);
            if (rc)
                return rc;
            if (tlen == 0 || tlen > CK_TOKEN_MAX)
                continue;
        } else if (a->an_stopwords && ck_analyze_is_stopword(term, tlen)) {
            continue;
        }
        ck_token_t tok = {
            .term = term, .term_len = tlen, .position = w->w_pos, .start = w->w_start, .end = w->w_end};
        int rc = cb(arg, &tok);
        if (rc)
            return rc;
    }
    return 0;
}

/* Scans words into the batch; every WORD_BATCH words (and at the end) they are stemmed and
 * delivered, so their stem cache lookups overlap instead of missing one after another. */
static int analyze_standard(ck_analyzer_t *a, const uint8_t *s, size_t len, ck_token_cb cb,
                            void *arg)
{
    uint32_t pos = 0;
    size_t i = 0, adv;
    int rc;
    a->an_nw = a->an_wlen = 0;
    while (i < len) {
        if (a->an_nw == WORD_BATCH && (rc = flush_words(a, cb, arg)))
            return rc;
        size_t start = i;
        int cls = next_class(s, len, i, &adv);
        i += adv;
        if (cls == CL_SINGLE) {
            if ((rc = add_word(a, s, start, i, 0, pos++)))
                return rc;
            continue;
        }
        if (cls != CL_WORD && cls != CL_DIGIT)
            continue;
        int ascii = adv == 1, last_digit = cls == CL_DIGIT;
        while (i < len) {
            cls = next_class(s, len, i, &adv);
            if (cls == CL_WORD || cls == CL_DIGIT) {
                ascii &= adv == 1;
                last_digit = cls == CL_DIGIT;
                i += adv;
                continue;
            }
            if (cls == CL_MIDNUM && last_digit && i + 1 < len) {
                size_t adv2;
                if (next_class(s, len, i + 1, &adv2) == CL_DIGIT) {
                    ascii &= adv2 == 1;
                    i += 1 + adv2;
                    continue;
                }
            }
            break;
        }
        if ((rc = add_word(a, s, start, i, ascii, pos++)))
            return rc;
    }
    return flush_words(a, cb, arg);
}

int ck_analyze(ck_analyzer_t *a, const char *text, size_t len, ck_token_cb cb, void *arg)
{
    if (a->an_kind == CK_ANALYZER_KEYWORD) {
        if (len > CK_TOKEN_MAX)
            return 0;
        ck_token_t tok = {
            .term = len ? text : "", .term_len = len, .position = 0, .start = 0, .end = len};
        return cb(arg, &tok);
    }
    if (len == 0)
        return 0;
    return analyze_standard(a, (const uint8_t *)text, len, cb, arg);
}

/* libstemmer names are lowercase; accept any case. Returns 0, CK_EINVAL or CK_ENOMEM. */
static int open_stemmer(const char *language, struct sb_stemmer **out)
{
    char name[64];
    size_t n = strlen(language);
    *out = NULL;
    if (n == 0 || (n == 4 && strncasecmp(language, "none", 4) == 0))
        return 0;
    if (n >= sizeof(name))
        return CK_EINVAL;
    for (size_t i = 0; i <= n; i++) {
        char c = language[i];
        name[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    *out = sb_stemmer_new(name, "UTF_8");
    if (*out)
        return 0;
    /* NULL means unknown name or no memory; a listed name can only fail for memory. */
    for (const char **l = sb_stemmer_list(); *l; l++)
        if (strcmp(*l, name) == 0)
            return CK_ENOMEM;
    return CK_EINVAL;
}

int ck_analyzer_new(const ck_analyzer_config_t *cfg, ck_analyzer_t **out)
{
    *out = NULL;
    if (cfg->kind != CK_ANALYZER_STANDARD && cfg->kind != CK_ANALYZER_KEYWORD)
        return CK_EINVAL;
    struct sb_stemmer *st = NULL;
    if (cfg->kind == CK_ANALYZER_STANDARD && cfg->language) {
        int rc = open_stemmer(cfg->language, &st);
        if (rc)
            return rc;
    }
    ck_analyzer_t *a = ck_calloc(1, sizeof(*a));
    if (!a)
        goto oom;
    a->an_kind = cfg->kind;
    a->an_stopwords = cfg->stopwords != 0;
    a->an_stemmer = st;
    if (cfg->kind == CK_ANALYZER_STANDARD) {
        a->an_cps = ck_malloc(CPS_INITIAL * sizeof(*a->an_cps));
        if (!a->an_cps)
            goto oom;
        a->an_cps_cap = CPS_INITIAL;
    }
    if (st) {
        a->an_stem_cache = ck_calloc(STEM_CACHE_SMALL, sizeof(*a->an_stem_cache));
        if (!a->an_stem_cache)
            goto oom;
        a->an_stem_mask = STEM_CACHE_SMALL - 1;
    }
    *out = a;
    return 0;
oom:
    if (st)
        sb_stemmer_delete(st);
    if (a) {
        ck_free(a->an_cps);
        ck_free(a->an_stem_cache);
    }
    ck_free(a);
    return CK_ENOMEM;
}

void ck_analyzer_free(ck_analyzer_t *a)
{
    if (!a)
        return;
    if (a->an_stemmer)
        sb_stemmer_delete(a->an_stemmer);
    ck_free(a->an_cps);
    ck_free(a->an_stem_cache);
    ck_free(a);
}
