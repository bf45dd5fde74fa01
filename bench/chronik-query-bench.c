/* chronik-query-bench: search latency as a C client sees it.
 *
 *   chronik-query-bench HOST:PORT INDEX QUERIES.txt [--field text] [--size 10]
 *                       [--source] [--match-none] [--budget SECONDS] [--warmup N]
 *
 * One keep-alive HTTP/1.1 connection; for each line of QUERIES.txt (terms separated by
 * spaces), POST /INDEX/_search {"query":{"match":{FIELD:LINE}},"size":SIZE,
 * "track_total_hits":false,"_source":false} (without "_source":false with --source; with
 * --match-none the query is {"match_none":{}}, the round trip without search work), read
 * the whole response, and time it, in file order, after the last N queries (20) as an
 * untimed warm-up; the loop stops after the budget (30 s). Prints one line of JSON: {"n", "errors", "ms": every
 * timed query's milliseconds in order, "p50_ms", "p99_ms"}; exits 1 if a response is not
 * 200 or the connection fails.
 *
 * bench/search_speed.py runs it next to its Python client: Python's http.client costs
 * about 0.1 ms per request by itself, which is most of a rare-term query's time. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int dial(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(host))
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Appends s as the inside of a JSON string (quotes, backslashes, control bytes escaped). */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = 0;
    return n;
}

/* Sends one request and reads one response (Content-Length bodies; the server sends no
 * chunked search responses). Returns the HTTP status, or -1. */
static int round_trip(int fd, const char *req, size_t len, char **buf, size_t *cap)
{
    for (size_t off = 0; off < len;) {
        ssize_t k = write(fd, req + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    size_t got = 0, hdr = 0, clen = 0;
    for (;;) {
        if (got + 1 >= *cap) {
            size_t nc = *cap * 2;
            char *nb = realloc(*buf, nc);
            if (!nb)
                return -1;
            *buf = nb;
            *cap = nc;
        }
        ssize_t k = read(fd, *buf + got, *cap - got - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
        (*buf)[got] = 0;
        if (!hdr) {
            char *e = strstr(*buf, "\r\n\r\n");
            if (!e)
                continue;
            hdr = (size_t)(e - *buf) + 4;
            char *c = strcasestr(*buf, "\r\ncontent-length:");
            if (!c || c > e)
                return -1;
            clen = (size_t)strtoul(c + 17, NULL, 10);
        }
        if (got >= hdr + clen)
            break;
    }
    if (got != hdr + clen || strncmp(*buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    return atoi(*buf + 9);
}

int main(int argc, char **argv)
{
    const char *usage = "usage: chronik-query-bench HOST:PORT INDEX QUERIES.txt [--field F] "
                        "[--size N] [--source] [--match-none] [--budget SECONDS] [--warmup N]\n";
    if (argc < 4) {
        fputs(usage, stderr);
        return 2;
    }
    const char *field = "text";
    int size = 10, warmup = 20, source = 0, none = 0;
    double budget = 30.0;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--field") && i + 1 < argc)
            field = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc)
            budget = atof(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--source"))
            source = 1;
        else if (!strcmp(argv[i], "--match-none"))
            none = 1;
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    FILE *f = fopen(argv[3], "r");
    if (!f) {
        perror(argv[3]);
        return 2;
    }
    size_t nq = 0, qcap = 1024;
    char **qs = malloc(qcap * sizeof(*qs));
    char line[2048];
    while (qs && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        if (nq == qcap) {
            char **nqs = realloc(qs, (qcap *= 2) * sizeof(*qs));
            if (!nqs)
                return 1;
            qs = nqs;
        }
        qs[nq++] = strdup(line);
    }
    fclose(f);
    if (!qs || nq == 0) {
        fprintf(stderr, "%s: no queries\n", argv[3]);
        return 2;
    }
    int fd = dial(argv[1]);
    if (fd < 0) {
        fprintf(stderr, "cannot connect to %s\n", argv[1]);
        return 1;
    }
    double *lat = malloc(sizeof(double) * nq);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    static char body[8192], req[16384], fesc[512], qesc[4096];
    json_escape(fesc, sizeof(fesc), field);
    /* the last `warmup` queries first, untimed (as search_speed.py's Python loop does) */
    size_t w = (size_t)warmup < nq ? (size_t)warmup : nq;
    double t_end = 0;
    for (size_t k = 0; k < w + nq; k++) {
        bool timed = k >= w;
        size_t i = timed ? k - w : nq - w + k;
        json_escape(qesc, sizeof(qesc), qs[i]);
        int bl = none ? snprintf(body, sizeof(body),
                                 "{\"query\":{\"match_none\":{}},\"size\":%d,\"track_total_hits\":false}",
                                 size)
                      : snprintf(body, sizeof(body),
                                 "{\"query\":{\"match\":{\"%s\":\"%s\"}},\"size\":%d,"
                                 "\"track_total_hits\":false%s}",
                                 fesc, qesc, size, source ? "" : ",\"_source\":false");
        int rl = snprintf(req, sizeof(req),
                          "POST /%s/_search HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n%s",
                          argv[2], argv[1], bl, body);
        double t0 = now_s();
        int st = round_trip(fd, req, (size_t)rl, &buf, &cap);
        double el = now_s() - t0;
        if (st != 200) {
            fprintf(stderr, "query %zu (%s): %s %d\n", i, qs[i], st < 0 ? "connection failed" : "HTTP",
                    st);
            printf("{\"n\":%zu,\"errors\":1}\n", n);
            return 1;
        }
        if (!timed)
            continue;
        if (n == 0)
            t_end = t0 + budget;
        lat[n++] = el;
        if (now_s() > t_end)
            break;
    }
    printf("{\"n\":%zu,\"errors\":0,\"ms\":[", n);
    for (size_t i = 0; i < n; i++)
        printf("%s%.4f", i ? "," : "", lat[i] * 1e3);
    qsort(lat, n, sizeof(*lat), cmp_double);
    size_t i99 = (size_t)((double)n * 0.99);
    if (i99 >= n)
        i99 = n - 1;
    printf("],\"p50_ms\":%.4f,\"p99_ms\":%.4f}\n", lat[n / 2] * 1e3, lat[i99] * 1e3);
    close(fd);
    return 0;
}
