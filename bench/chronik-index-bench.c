/* chronik-index-bench: the search indexer's build path in one thread, without the server.
 *
 *   chronik-index-bench CORPUS.jsonl [--docs N] [--segment-docs D] [--rounds R]
 *
 * Reads up to N lines of CORPUS (one record value per line, e.g. bench/search_corpus.py's
 * output) into memory, then, R times (3): turns every value into fields and terms
 * (ck_docfields_add: JSON walk, analysis, stemming) into a segment builder and finishes
 * the builder into a segment image every D documents (40000, about what one refresh of
 * a bulk load holds), as one indexing lane of the server does. Prints docs/s, ns per doc
 * and the thread's CPU time per round, then the median round. Use it to compare builds of
 * the indexer on one machine in one sitting; the end-to-end figure is bench/search.sh's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "search/docfields.h"
#include "search/segment.h"

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long max_docs = 1000000, seg_docs = 40000, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--docs") && i + 1 < argc)
            max_docs = atol(argv[++i]);
        else if (!strcmp(argv[i], "--segment-docs") && i + 1 < argc)
            seg_docs = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atol(argv[++i]);
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "usage: %s CORPUS.jsonl [--docs N] [--segment-docs D] [--rounds R]\n", argv[0]);
            return 2;
        }
    }
    if (!path || max_docs <= 0 || seg_docs <= 0 || rounds <= 0 || rounds > 100) {
        fprintf(stderr, "usage: %s CORPUS.jsonl [--docs N] [--segment-docs D] [--rounds R]\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    char **lines = malloc(sizeof(char *) * (size_t)max_docs);
    size_t *lens = malloc(sizeof(size_t) * (size_t)max_docs);
    long n = 0;
    size_t bytes = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while (n < max_docs && (got = getline(&line, &cap, f)) > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            got--;
        lines[n] = malloc((size_t)got + 1);
        memcpy(lines[n], line, (size_t)got);
        lens[n] = (size_t)got;
        bytes += (size_t)got;
        n++;
    }
    free(line);
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "%s: no documents\n", path);
        return 1;
    }
    printf("%ld documents, %.1f MB of values, a segment every %ld documents\n", n, bytes / 1e6,
           seg_docs);
    ck_analyzer_config_t ac = {CK_ANALYZER_STANDARD, "english", 1};
    double wall[100], cpu[100];
    for (long r = 0; r < rounds; r++) {
        ck_docfields_t *df = NULL;
        ck_segbuild_t *b = NULL;
        if (ck_docfields_new(&ac, &df) || ck_segbuild_new(&b)) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        size_t out_bytes = 0;
        double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        for (long i = 0; i < n; i++) {
            int rc = ck_docfields_add(df, b, 0, i, 0, CK_SLICE_NULL, ck_slice(lines[i], lens[i]));
            if (rc) {
                fprintf(stderr, "document %ld: error %d\n", i, rc);
                return 1;
            }
            if ((i + 1) % seg_docs == 0 || i + 1 == n) {
                ck_wbuf_t w = CK_WBUF_INIT;
                if (ck_segbuild_finish(b, &w)) {
                    fprintf(stderr, "finish failed\n");
                    return 1;
                }
                out_bytes += w.len;
                ck_wbuf_free(&w);
            }
        }
        wall[r] = now_s(CLOCK_MONOTONIC) - w0;
        cpu[r] = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        printf("round %ld: %.0f docs/s, %.0f ns/doc, CPU %.2f s of %.2f s, segments %.1f MB\n",
               r + 1, n / wall[r], wall[r] * 1e9 / n, cpu[r], wall[r], out_bytes / 1e6);
        ck_segbuild_free(b);
        ck_docfields_free(df);
    }
    qsort(cpu, (size_t)rounds, sizeof(double), cmp_double);
    qsort(wall, (size_t)rounds, sizeof(double), cmp_double);
    printf("median: %.0f docs/s (wall), %.0f docs/s per CPU second\n", n / wall[rounds / 2],
           n / cpu[rounds / 2]);
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(lens);
    return 0;
}
