/* chronik-embed-bench: the built-in embedding model's (USE-lite) texts per second on one
 * core, in process, at batch sizes 1 and 64.
 *
 *   chronik-embed-bench [--model DIR] [--texts FILE] [--n N] [--seconds S] [--write-texts OUT]
 *
 * Texts: FILE with one text per line, or by default the Vaswani abstracts
 * (shared/datasets/vaswani/doc-text.trec beside the source tree), run together and cut at
 * word boundaries into texts of about 64 tokens. N texts (1024) are embedded over and over
 * for S seconds (3) per batch size, after one warm-up batch. --write-texts OUT writes the
 * texts to OUT, one per line, and stops: bench/embed_compare.py gives them to the model's
 * JavaScript runtime too. Everything runs in the calling
 * thread (the model's OpenBLAS is its single-threaded build).
 *
 * Output (bench/vector.sh keeps stdout as a report section, stderr as the log): on stdout a
 * short Markdown section with the mean tokens per text, the compute path, texts/s and texts
 * per CPU second (the rate on a busy machine), then the JSON line
 *   {"batch1_per_s":..,"batch64_per_s":..,"tokens_mean":..}
 * on stderr the progress and one "RESULT bench=embed ..." line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "vector/model.h"

#define TARGET_TOKENS 64

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    if (b)
        b[n] = 0;
    *len = n;
    return b;
}

typedef struct {
    char **t;
    size_t *len;
    size_t n, cap;
} texts_t;

static void add_text(texts_t *ts, const char *s, size_t len)
{
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? ts->cap * 2 : 256;
        ts->t = realloc(ts->t, ts->cap * sizeof(char *));
        ts->len = realloc(ts->len, ts->cap * sizeof(size_t));
    }
    ts->t[ts->n] = strndup(s, len);
    ts->len[ts->n++] = len;
}

/* The abstracts' words, in order, into texts of about TARGET_TOKENS tokens. */
static void vaswani_texts(const ck_sp_t *sp, char *doc, size_t max, texts_t *ts)
{
    char *cur = malloc(1 << 16);
    size_t cl = 0;
    int32_t ids[CK_USE_MAX_TOKENS];
    for (char *p = doc; *p && ts->n < max;) {
        if (*p == '<') { /* a tag line */
            char *nl = strchr(p, '\n');
            p = nl ? nl + 1 : p + strlen(p);
            continue;
        }
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
            p++;
        if (!*p || *p == '<')
            continue;
        size_t w = strcspn(p, " \n\t\r<");
        if (cl + w + 2 >= (1 << 16))
            cl = 0;
        if (cl)
            cur[cl++] = ' ';
        memcpy(cur + cl, p, w);
        cl += w;
        p += w;
        size_t n = 0;
        ck_sp_encode(sp, cur, cl, ids, CK_USE_MAX_TOKENS, &n);
        if (n >= TARGET_TOKENS) {
            add_text(ts, cur, cl);
            cl = 0;
        }
    }
    free(cur);
}

/* Texts per second at this batch size, over at least `secs` seconds (wall clock). */
static double measure(const ck_use_t *m, const texts_t *ts, size_t batch, double secs,
                      double *per_cpu_s)
{
    float *out = malloc(batch * CK_USE_DIMS * sizeof(float));
    size_t done = 0, i = 0;
    /* warm-up: one batch */
    ck_use_embed(m, (const char *const *)ts->t, ts->len, batch < ts->n ? batch : ts->n, out);
    double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID), t1;
    do {
        size_t b = batch;
        if (i + b > ts->n)
            i = 0;
        if (b > ts->n)
            b = ts->n;
        int rc = ck_use_embed(m, (const char *const *)ts->t + i, ts->len + i, b, out);
        if (rc) {
            fprintf(stderr, "ck_use_embed: %s\n", ck_strerror(rc));
            exit(1);
        }
        done += b;
        i += b;
        t1 = now_s(CLOCK_MONOTONIC);
    } while (t1 - t0 < secs);
    double cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    fprintf(stderr,
            "batch %zu: %zu texts in %.2f s (thread CPU %.2f s): %.1f texts/s, %.1f per CPU "
            "second\n",
            batch, done, t1 - t0, cpu, (double)done / (t1 - t0), (double)done / cpu);
    free(out);
    *per_cpu_s = (double)done / cpu;
    return (double)done / (t1 - t0);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *file = NULL, *out = NULL;
    long n = 1024;
    double secs = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--texts") && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--write-texts") && i + 1 < argc)
            out = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--model DIR] [--texts FILE] [--n N] [--seconds S] "
                    "[--write-texts OUT]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n <= 0 || secs <= 0) {
        fprintf(stderr, "--n and --seconds must be positive\n");
        return 2;
    }
    char err[512];
    ck_use_t *m = NULL;
    double l0 = now_s(CLOCK_MONOTONIC);
    int rc = ck_use_load(dir, &m, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "cannot load the model: %s\n", err);
        return 1;
    }
    char backend[128];
    fprintf(stderr, "model loaded in %.0f ms; matrix products: %s\n",
            (now_s(CLOCK_MONOTONIC) - l0) * 1e3, ck_use_backend(m, backend, sizeof(backend)));

    texts_t ts = {0};
    size_t len = 0;
    if (file) {
        char *all = read_all(file, &len);
        if (!all) {
            perror(file);
            return 1;
        }
        for (char *p = all; *p && ts.n < (size_t)n;) {
            size_t l = strcspn(p, "\n");
            size_t k = l && p[l - 1] == '\r' ? l - 1 : l;
            if (k)
                add_text(&ts, p, k);
            p += l + (p[l] == '\n');
        }
        free(all);
    } else {
        char path[4096];
        /* bench/ -> the source tree -> shared/ beside it */
        snprintf(path, sizeof(path), "%s", __FILE__);
        char *s = strrchr(path, '/');
        if (s)
            *s = 0;
        s = strrchr(path, '/');
        if (s)
            *s = 0;
        strcat(path, "/../shared/datasets/vaswani/doc-text.trec");
        char *doc = read_all(path, &len);
        if (!doc) {
            perror(path);
            fprintf(stderr, "give texts with --texts FILE\n");
            return 1;
        }
        vaswani_texts(ck_use_tokenizer(m), doc, (size_t)n, &ts);
        free(doc);
    }
    if (ts.n == 0) {
        fprintf(stderr, "no texts\n");
        return 1;
    }
    if (out) {
        FILE *f = fopen(out, "w");
        for (size_t i = 0; f && i < ts.n; i++) {
            for (size_t j = 0; j < ts.len[i]; j++)
                fputc(ts.t[i][j] == '\n' || ts.t[i][j] == '\r' ? ' ' : ts.t[i][j], f);
            fputc('\n', f);
        }
        if (!f || fclose(f)) {
            perror(out);
            return 1;
        }
        fprintf(stderr, "%zu texts written to %s\n", ts.n, out);
        return 0;
    }
    size_t tokens = 0;
    int32_t ids[CK_USE_MAX_TOKENS];
    for (size_t i = 0; i < ts.n; i++) {
        size_t k = 0;
        ck_sp_encode(ck_use_tokenizer(m), ts.t[i], ts.len[i], ids, CK_USE_MAX_TOKENS, &k);
        tokens += k;
    }
    double tmean = (double)tokens / (double)ts.n;
    fprintf(stderr, "%zu texts, %.1f tokens per text on average\n", ts.n, tmean);

    double c1, c64;
    double b1 = measure(m, &ts, 1, secs, &c1);
    double b64 = measure(m, &ts, 64, secs, &c64);
    printf("### Built-in embedding model (USE-lite), one thread\n\n");
    printf("%zu texts of %.1f tokens on average (%s); matrix products: %s.\n\n", ts.n, tmean,
           file ? file : "Vaswani abstracts cut to about 64 tokens", backend);
    printf("| batch | texts/s | texts per CPU second |\n|---|---|---|\n");
    printf("| 1 | %.1f | %.1f |\n| 64 | %.1f | %.1f |\n\n", b1, c1, b64, c64);
    printf("{\"batch1_per_s\":%.1f,\"batch64_per_s\":%.1f,\"tokens_mean\":%.1f,\"amx\":%d}\n", b1,
           b64, tmean, !strncmp(backend, "amx", 3));
    fprintf(stderr,
            "RESULT bench=embed batch1_per_s=%.1f batch64_per_s=%.1f batch1_per_cpu_s=%.1f "
            "batch64_per_cpu_s=%.1f tokens_mean=%.1f amx=%d\n",
            b1, b64, c1, c64, tmean, !strncmp(backend, "amx", 3));
    for (size_t i = 0; i < ts.n; i++)
        free(ts.t[i]);
    free(ts.t);
    free(ts.len);
    ck_use_free(m);
    return 0;
}
