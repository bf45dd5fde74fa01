/* Text analysis: segmentation, folding, stop words, stemming, offsets, keyword analyzer. */
#include "test.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "search/analyze.h"

#include <libstemmer.h>

/* Tokens rendered as "term@pos[start,end]" separated by spaces, so one string comparison
 * checks terms, positions and offsets together. */
typedef struct {
    char out[1024 * 1024];
    size_t n;
    int count;
    const char *text; /* the input: offsets are checked against it */
    size_t len;
} collect_t;

static int collect_cb(void *arg, const ck_token_t *t)
{
    collect_t *c = arg;
    if (t->start > t->end || t->end > c->len)
        CK_FAIL("token offsets [%zu,%zu) outside input of %zu bytes", t->start, t->end, c->len);
    if (t->term_len > CK_TOKEN_MAX)
        CK_FAIL("term of %zu bytes", t->term_len);
    int w = snprintf(c->out + c->n, sizeof(c->out) - c->n, "%s%.*s@%u[%zu,%zu]",
                     c->count ? " " : "", (int)t->term_len, t->term, t->position, t->start, t->end);
    CHECK(w > 0 && (size_t)w < sizeof(c->out) - c->n);
    c->n += (size_t)w;
    c->count++;
    return 0;
}

/* Terms only, separated by spaces. */
static int terms_cb(void *arg, const ck_token_t *t)
{
    collect_t *c = arg;
    int w = snprintf(c->out + c->n, sizeof(c->out) - c->n, "%s%.*s", c->count ? " " : "",
                     (int)t->term_len, t->term);
    CHECK(w > 0 && (size_t)w < sizeof(c->out) - c->n);
    c->n += (size_t)w;
    c->count++;
    return 0;
}

static collect_t *run_n(ck_analyzer_t *a, const char *text, size_t len, ck_token_cb cb)
{
    static collect_t c;
    memset(&c, 0, sizeof(c));
    c.text = text;
    c.len = len;
    CHECK_EQ(ck_analyze(a, text, len, cb, &c), 0);
    return &c;
}

static const char *full(ck_analyzer_t *a, const char *text)
{
    return run_n(a, text, strlen(text), collect_cb)->out;
}

static const char *terms(ck_analyzer_t *a, const char *text)
{
    return run_n(a, text, strlen(text), terms_cb)->out;
}

static ck_analyzer_t *mk(ck_analyzer_kind_t kind, const char *lang, int stop)
{
    ck_analyzer_config_t cfg = {.kind = kind, .language = lang, .stopwords = stop};
    ck_analyzer_t *a = NULL;
    CHECK_EQ(ck_analyzer_new(&cfg, &a), 0);
    CHECK(a != NULL);
    return a;
}

CK_TEST(analyze_ascii_sentence)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, NULL, 0);
    CHECK_STREQ(full(a, "Hello, World!"), "hello@0[0,5] world@1[7,12]");
    CHECK_STREQ(full(a, "  \t\nfoo_bar  "), "foo_bar@0[4,11]");
    ck_analyzer_free(a);
}

CK_TEST(analyze_stemming)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, "english", 0);
    CHECK_STREQ(full(a, "running runs ran"), "run@0[0,7] run@1[8,12] ran@2[13,16]");
    CHECK_STREQ(terms(a, "Connections connected CONNECTING"), "connect connect connect");
    ck_analyzer_free(a);

    a = mk(CK_ANALYZER_STANDARD, "Porter", 0); /* names are case-insensitive */
    CHECK_STREQ(terms(a, "generalizations"), "gener");
    ck_analyzer_free(a);

    a = mk(CK_ANALYZER_STANDARD, "german", 0);
    CHECK_STREQ(terms(a, "Häuser"), "haus");
    ck_analyzer_free(a);

    a = mk(CK_ANALYZER_STANDARD, "none", 0);
    CHECK_STREQ(terms(a, "running"), "running");
    ck_analyzer_free(a);
}

CK_TEST(analyze_stopwords)
{
    const char *s = "The quick fox and the dog";
    ck_analyzer_t *off = mk(CK_ANALYZER_STANDARD, NULL, 0);
    CHECK_STREQ(terms(off, s), "the quick fox and the dog");
    ck_analyzer_t *on = mk(CK_ANALYZER_STANDARD, NULL, 1);
    /* Dropped words keep their positions: a gap, as in Lucene. */
    CHECK_STREQ(full(on, s), "quick@1[4,9] fox@2[10,13] dog@5[22,25]");
    CHECK_STREQ(full(on, "the a an"), "");
    CHECK(ck_analyze_is_stopword("the", 3));
    CHECK(ck_analyze_is_stopword("with", 4));
    CHECK(ck_analyze_is_stopword("a", 1));
    CHECK(!ck_analyze_is_stopword("th", 2));
    CHECK(!ck_analyze_is_stopword("thee", 4));
    CHECK(!ck_analyze_is_stopword("", 0));
    ck_analyzer_free(off);
    ck_analyzer_free(on);

    /* Stop words are matched before stemming: "was" is dropped, "wa" is not produced. */
    ck_analyzer_t *both = mk(CK_ANALYZER_STANDARD, "english", 1);
    CHECK_STREQ(full(both, "It was raining"), "rain@2[7,14]");
    ck_analyzer_free(both);
}

CK_TEST(analyze_case_folding)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, NULL, 0);
    /* "ÉCOLE": É is 2 bytes, so the word is 6 bytes; folded, precomposed é. */
    CHECK_STREQ(full(a, "ÉCOLE"), "école@0[0,6]");
    /* Decomposed input (E + combining acute) composes to the same term. */
    CHECK_STREQ(terms(a, "E\xcc\x81"
                         "cole"),
                "école");
    CHECK_STREQ(terms(a, "Straße STRASSE"), "strasse strasse");
    CHECK_STREQ(terms(a, "ΣΊΣΥΦΟΣ"), "σίσυφοσ"); /* full case folding: final sigma too */
    ck_analyzer_free(a);
}

CK_TEST(analyze_nfkc)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, NULL, 0);
    /* Fullwidth letters and digits, 3 bytes each. */
    CHECK_STREQ(full(a, "ＡＢＣ １２３"), "abc@0[0,9] 123@1[10,19]");
    CHECK_STREQ(terms(a, "\xef\xac\x81nd"), "find"); /* U+FB01 ligature fi */
    CHECK_STREQ(terms(a, "\xe2\x84\xaa"), "k");      /* U+212A Kelvin sign */
    ck_analyzer_free(a);
}

CK_TEST(analyze_cjk_cyrillic)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, NULL, 0);
    CHECK_STREQ(full(a, "Привет, МИР"), "привет@0[0,12] мир@1[14,20]");
    /* Han ideographs are one token each, Latin next to them is its own word. */
    CHECK_STREQ(full(a, "中文abc字"), "中@0[0,3] 文@1[3,6] abc@2[6,9] 字@3[9,12]");
    /* Hiragana per character, Katakana runs together, Hangul runs together. */
    CHECK_STREQ(terms(a, "ひらカタカナ 한국어"), "ひ ら カタカナ 한국어");
    ck_analyzer_free(a);

    ck_analyzer_t *ru = mk(CK_ANALYZER_STANDARD, "russian", 0);
    CHECK_STREQ(terms(ru, "книги книга"), "книг книг");
    ck_analyzer_free(ru);
}

CK_TEST(analyze_digits_apostrophes_hyphens)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, NULL, 0);
    CHECK_STREQ(terms(a, "version 2 of 42abc in 2024"), "version 2 of 42abc in 2024");
    /* '.' and ',' join digits only. */
    CHECK_STREQ(full(a, "pi=3.14, n=1,000."), "pi@0[0,2] 3.14@1[3,7] n@2[9,10] 1,000@3[11,16]");
    CHECK_STREQ(terms(a, "a.b 3. .5 v1.2.3"), "a b 3 5 v1.2.3");
    CHECK_STREQ(full(a, "don't"), "don@0[0,3] t@1[4,5]");
    CHECK_STREQ(terms(a, "don\xe2\x80\x99t"), "don t"); /* U+2019 right single quote */
    CHECK_STREQ(full(a, "e-mail state-of-the-art"),
                "e@0[0,1] mail@1[2,6] state@2[7,12] of@3[13,15] the@4[16,19] art@5[20,23]");
    ck_analyzer_free(a);
}

CK_TEST(analyze_offsets_original_bytes)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, "english", 0);
    const char *s = "  ÜBER  «Ｆｏｏ» Running\xff"
                    "cats";
    collect_t *c = run_n(a, s, strlen(s), collect_cb);
    CHECK_STREQ(c->out, "über@0[2,7] foo@1[11,20] run@2[23,30] cat@3[31,35]");
    CHECK_MEM(s + 2, "ÜBER", 5);
    CHECK_MEM(s + 11, "Ｆｏｏ", 9);
    CHECK_MEM(s + 23, "Running", 7);
    CHECK_MEM(s + 31, "cats", 4);
    ck_analyzer_free(a);
}

CK_TEST(analyze_invalid_utf8_and_empty)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, "english", 1);
    CHECK_STREQ(run_n(a, NULL, 0, collect_cb)->out, "");
    CHECK_EQ(run_n(a, "", 0, collect_cb)->count, 0);
    CHECK_STREQ(full(a, "   ,.;!? -- "), "");
    /* Invalid bytes separate words: a stray continuation byte, a truncated sequence, an
     * overlong '/', an encoded surrogate, a byte that never occurs in UTF-8. */
    CHECK_STREQ(full(a, "ab\x80"
                        "cd"),
                "ab@0[0,2] cd@1[3,5]");
    CHECK_STREQ(terms(a, "ab\xc3"), "ab");
    CHECK_STREQ(terms(a, "x\xc0\xafy"), "x y");
    CHECK_STREQ(terms(a, "x\xed\xa0\x80y"), "x y");
    CHECK_STREQ(terms(a, "\xfe\xff"
                         "ok"),
                "ok");
    /* Length is honoured: no read past it, embedded NUL separates. */
    CHECK_STREQ(run_n(a, "hello world", 5, terms_cb)->out, "hello");
    CHECK_STREQ(run_n(a, "ab\0cd", 5, terms_cb)->out, "ab cd");
    /* Random bytes: never crash, every token within bounds (checked by collect_cb). */
    unsigned char buf[4096];
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (unsigned char)(x >> 16);
        }
        collect_t c = {.text = (const char *)buf, .len = sizeof(buf)};
        int rc = ck_analyze(a, (const char *)buf, sizeof(buf), terms_cb, &c);
        if (rc != 0)
            CK_FAIL("round %d: rc %d", round, rc);
    }
    ck_analyzer_free(a);
}

CK_TEST(analyze_long_tokens_dropped)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, NULL, 0);
    char buf[2048];
    memset(buf, 'x', 255);
    memcpy(buf + 255, " ok", 4);
    collect_t *c = run_n(a, buf, strlen(buf), collect_cb);
    CHECK_EQ(c->count, 2); /* exactly 255 bytes: kept */

    memset(buf, 'y', 256);
    memcpy(buf + 256, " ok", 4);
    CHECK_STREQ(full(a, buf), "ok@1[257,259]"); /* 256: dropped, its position stays used */

    /* 128 two-byte letters = 256 bytes: dropped too (the limit is in bytes). */
    size_t n = 0;
    for (int i = 0; i < 128; i++) {
        memcpy(buf + n, "é", 2);
        n += 2;
    }
    memcpy(buf + n, " z", 3);
    CHECK_STREQ(full(a, buf), "z@1[257,258]");

    /* A very long word in a long input. */
    size_t big = 1 << 20;
    char *huge = ck_malloc(big + 8);
    CHECK(huge != NULL);
    memset(huge, 'q', big);
    memcpy(huge + big, " end", 4);
    CHECK_STREQ(run_n(a, huge, big + 4, terms_cb)->out, "end");
    ck_free(huge);
    ck_analyzer_free(a);
}

CK_TEST(analyze_keyword)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_KEYWORD, "english", 1); /* language, stop words ignored */
    CHECK_STREQ(full(a, "The Running-Man, ÉCOLE"), "The Running-Man, ÉCOLE@0[0,23]");
    collect_t *c = run_n(a, "", 0, collect_cb);
    CHECK_EQ(c->count, 1);
    CHECK_STREQ(c->out, "@0[0,0]");
    CHECK_STREQ(run_n(a,
                      "a\xff"
                      "b",
                      3, collect_cb)
                    ->out,
                "a\xff"
                "b@0[0,3]");
    char buf[300];
    memset(buf, 'k', 256);
    buf[256] = 0;
    CHECK_EQ(run_n(a, buf, 256, collect_cb)->count, 0);
    CHECK_EQ(run_n(a, buf, 255, collect_cb)->count, 1);
    ck_analyzer_free(a);
}

CK_TEST(analyze_unknown_language)
{
    ck_analyzer_config_t cfg = {.kind = CK_ANALYZER_STANDARD, .language = "klingon"};
    ck_analyzer_t *a = (ck_analyzer_t *)1;
    CHECK_EQ(ck_analyzer_new(&cfg, &a), CK_EINVAL);
    CHECK(a == NULL);
    cfg.language = "an absurdly long language name that no stemmer could ever have, surely";
    CHECK_EQ(ck_analyzer_new(&cfg, &a), CK_EINVAL);
    cfg.language = "";
    CHECK_EQ(ck_analyzer_new(&cfg, &a), 0);
    ck_analyzer_free(a);
    cfg.kind = (ck_analyzer_kind_t)7;
    cfg.language = NULL;
    CHECK_EQ(ck_analyzer_new(&cfg, &a), CK_EINVAL);
    ck_analyzer_free(NULL);
}

/* The stem cache must give what the stemmer gives, cold or warm, through evictions and
 * its growth (after 16384 misses; the text has ~40000 distinct words). */
CK_TEST(analyze_stem_cache)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, "english", 0);
    static char text[768 * 1024];
    size_t n = 0;
    uint32_t x = 99;
    while (n < sizeof(text) - 64) {
        x = x * 1103515245u + 12345u;
        /* many distinct terms, with suffixes the stemmer strips */
        static const char *suf[] = {"ing", "ed", "s", "ations", "ness", ""};
        n += (size_t)sprintf(text + n, "connect%u%s ", (x >> 12) % 40000, suf[(x >> 8) % 6]);
    }
    /* Reference: the unstemmed terms, each stemmed by libstemmer directly. */
    static char want[1024 * 1024];
    ck_analyzer_t *plain = mk(CK_ANALYZER_STANDARD, NULL, 0);
    static char folded[1024 * 1024];
    strcpy(folded, run_n(plain, text, n, terms_cb)->out);
    struct sb_stemmer *st = sb_stemmer_new("english", "UTF_8");
    CHECK(st != NULL);
    size_t wn = 0;
    int words = 0;
    for (char *save = NULL, *w = strtok_r(folded, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        const sb_symbol *r = sb_stemmer_stem(st, (const sb_symbol *)w, (int)strlen(w));
        CHECK(r != NULL);
        wn += (size_t)sprintf(want + wn, "%s%.*s", words++ ? " " : "", sb_stemmer_length(st),
                              (const char *)r);
    }
    sb_stemmer_delete(st);
    ck_analyzer_free(plain);
    CHECK(words > 1000);
    CHECK_STREQ(run_n(a, text, n, terms_cb)->out, want); /* cold, then evictions */
    CHECK_STREQ(run_n(a, text, n, terms_cb)->out, want); /* warm */
    ck_analyzer_t *b = mk(CK_ANALYZER_STANDARD, "english", 0);
    CHECK_STREQ(terms(b, "connecting connections"), "connect connect");
    CHECK_STREQ(run_n(b, text, n, terms_cb)->out, want);
    ck_analyzer_free(a);
    ck_analyzer_free(b);
    /* Stop words are remembered as such: dropped cold and warm, positions kept. */
    ck_analyzer_t *c = mk(CK_ANALYZER_STANDARD, "english", 1);
    for (int round = 0; round < 2; round++) {
        CHECK_STREQ(terms(c, "The connections was the connecting"), "connect connect");
        CHECK_STREQ(full(c, "The connections was the connecting"),
                    "connect@1[4,15] connect@4[24,34]");
    }
    ck_analyzer_free(c);
}

static int stop_after_two(void *arg, const ck_token_t *t)
{
    int *n = arg;
    return ++*n == 2 ? 77 : 0;
}

CK_TEST(analyze_callback_stops)
{
    ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, NULL, 0);
    int n = 0;
    CHECK_EQ(ck_analyze(a, "one two three four", 18, stop_after_two, &n), 77);
    CHECK_EQ(n, 2);
    ck_analyzer_free(a);
}

CK_TEST(analyze_oom)
{
    ck_analyzer_config_t cfg = {.kind = CK_ANALYZER_STANDARD, .language = "english"};
    ck_analyzer_t *a = NULL;
    for (long k = 1; k <= 3; k++) { /* analyzer, code points, small stem cache */
        ck_alloc_fail_after(k);
        CHECK_EQ(ck_analyzer_new(&cfg, &a), CK_ENOMEM);
        CHECK(a == NULL);
    }
    ck_alloc_fail_after(0);
    CHECK_EQ(ck_analyzer_new(&cfg, &a), 0);
    /* A word whose decomposition outgrows the initial buffer needs to grow it: U+FDFA
     * expands to 18 code points under NFKC; 80 of them (240 bytes) are 1440 code points. */
    char buf[256];
    size_t n = 0;
    for (int i = 0; i < 80; i++) {
        memcpy(buf + n, "\xef\xb7\xba", 3);
        n += 3;
    }
    ck_alloc_fail_after(1);
    collect_t c = {.text = buf, .len = n};
    CHECK_EQ(ck_analyze(a, buf, n, terms_cb, &c), CK_ENOMEM);
    ck_alloc_fail_after(0);
    /* After growing, the term is longer than CK_TOKEN_MAX and dropped; no error. */
    CHECK_EQ(ck_analyze(a, buf, n, terms_cb, &c), 0);
    CHECK_EQ(c.count, 0);
    ck_analyzer_free(a);
}

static int count_cb(void *arg, const ck_token_t *t)
{
    (*(size_t *)arg)++;
    return 0;
}

CK_TEST(analyze_speed)
{
    /* ~4 MB of mixed English text, mostly ASCII with some accented and Cyrillic words. */
    static const char *words[] = {
        "the",  "search", "engine", "Indexes", "documents", "quickly",          "running",
        "café", "naïve",  "Москва", "2024",    "don't",     "state-of-the-art", "résumé",
        "and",  "queries"};
    size_t cap = 4 << 20, n = 0;
    char *text = ck_malloc(cap + 64);
    CHECK(text != NULL);
    uint32_t x = 7;
    while (n < cap) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
        size_t l = strlen(w);
        memcpy(text + n, w, l);
        n += l;
        text[n++] = (x >> 8) % 11 == 0 ? '.' : ' ';
    }
    struct {
        const char *name, *lang;
        int stop;
    } cfgs[] = {{"plain", NULL, 0}, {"english+stop", "english", 1}};
    for (size_t i = 0; i < 2; i++) {
        ck_analyzer_t *a = mk(CK_ANALYZER_STANDARD, cfgs[i].lang, cfgs[i].stop);
        size_t tokens = 0;
        int64_t t0 = ck_mono_ns();
        CHECK_EQ(ck_analyze(a, text, n, count_cb, &tokens), 0);
        int64_t dt = ck_mono_ns() - t0;
        CHECK(tokens > n / 20);
        fprintf(stderr, "  analyze %-13s %.1f MB/s, %.2f M tokens/s (%zu tokens)\n", cfgs[i].name,
                (double)n / 1e6 / ((double)dt / 1e9), (double)tokens / 1e6 / ((double)dt / 1e9),
                tokens);
        ck_analyzer_free(a);
    }
    ck_free(text);
}
