/* chronik-sql-bench: the SQL (columnar) benchmarks, each next to a baseline measured in
 * the same run. bench/sql.sh drives it; docs/BENCHMARKS.md ("SQL (columnar)") explains
 * the figures.
 *
 *   chronik-sql-bench appender --count N [--seed S]
 *       Baseline for ingest: DuckDB's plain appender (duckdb_append_int64/double/varchar/
 *       bool/blob per value) filling an in-memory table shaped like the server's hot
 *       table (6 stored system columns + the 10 event columns) with the same N events,
 *       pre-built as typed values in memory (nothing is parsed, nothing is logged).
 *   chronik-sql-bench ingest --brokers H:P --api H:P --topic T --count N [--seed S]
 *                     [--compression none] [--partitions 3] [--timeout S]
 *       Creates T over HTTP with columnar.enabled=true, produces the N JSON events with
 *       one librdkafka producer (acks=1, linger.ms=5, batch.size=1000000), then, once
 *       all are acknowledged, polls the columnar lag (GET /topics/T) every 20 ms until it
 *       is 0 and checks that `SELECT count(*) FROM T` says N. Reports produce-only
 *       records/s (first produce .. last delivery report) and end to end records/s
 *       (first produce .. lag 0 with the count confirmed). The columnar lag is also
 *       sampled every 500 ms during the run (stderr).
 *   chronik-sql-bench query --api H:P --topic T --manifest PATH --expect N [--runs 30]
 *                     [--warmup 3] [--user-id X]
 *       Runs three queries through POST /_sql on one keep-alive connection (client-side
 *       wall time per request) and, alternating with them, the same queries in an
 *       in-memory DuckDB of this process over read_parquet([files in MANIFEST],
 *       union_by_name = true), each run once with duckdb_query() (the baseline) and once
 *       prepared then executed (as the server does). p50/p99 of each; checks that the
 *       server's and DuckDB's answers agree.
 *   chronik-sql-bench fresh --brokers H:P --api H:P --topic T [--probes 200]
 *                     [--bg-rate 5000] [--poll-ms 2]
 *       Creates T, runs a background producer at --bg-rate events/s, then sends probe
 *       records one at a time (acks=all, linger.ms=0; t0 just before produce(), t_ack at
 *       the delivery report), each with a unique probe_id, and polls
 *       `SELECT count(*) FROM T WHERE probe_id = X` every --poll-ms until it says 1 (t1).
 *       p50/p99 of t1 - t_ack and t1 - t0.
 *
 * Events are generated from (seed, index) alone, so every run and every subcommand sees
 * the same data: {"event_id":i,"user_id":..,"city":..,"country":..,"amount":..,
 * "quantity":..,"status":..,"category":..,"is_mobile":..,"ts_ms":..} (~190 bytes; 20
 * cities, 5 statuses, 10 categories, user ids 1..100000, amounts 0.01..200.00 always
 * written with two decimals so the column is DOUBLE).
 *
 * Output: human-readable lines on stderr/stdout, then one line starting with "RESULT "
 * of key=value pairs (sql.sh parses it). Exit status 0 on success, 1 on failure or a
 * wrong answer, 2 on usage errors. Every wait is bounded. All traffic is on the given
 * addresses (127.0.0.1 in sql.sh). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <duckdb.h>
#include <librdkafka/rdkafka.h>

/* ---------------------------------------------------------------- time */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void sleep_ms(int ms)
{
    sleep_until_ns(now_ns() + (int64_t)ms * 1000000);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Quantile q of v[0..n) by the nearest-rank method (sorts v): with 30 samples p99 is the
 * largest, with 200 the second largest. */
static double quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

/* ---------------------------------------------------------------- events */

static const char *const CITIES[20][2] = {
    {"Berlin", "DE"},    {"Hamburg", "DE"},    {"Munich", "DE"},     {"Paris", "FR"},
    {"Lyon", "FR"},      {"London", "GB"},     {"Manchester", "GB"}, {"Madrid", "ES"},
    {"Barcelona", "ES"}, {"Rome", "IT"},       {"Milan", "IT"},      {"Amsterdam", "NL"},
    {"Vienna", "AT"},    {"Zurich", "CH"},     {"Warsaw", "PL"},     {"Prague", "CZ"},
    {"Stockholm", "SE"}, {"Copenhagen", "DK"}, {"Lisbon", "PT"},     {"Dublin", "IE"},
};
static const char *const STATUSES[5] = {"paid", "shipped", "pending", "refunded", "cancelled"};
static const char *const CATEGORIES[10] = {"books",  "electronics", "clothing", "home",   "toys",
                                           "sports", "beauty",      "food",     "garden", "music"};

typedef struct ev {
    int64_t event_id, user_id, quantity, ts_ms;
    double amount;
    uint8_t city, status, category;
    bool is_mobile;
} ev_t;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Event i of the data set: a function of (seed, i) only. */
static void gen_event(uint64_t seed, int64_t i, ev_t *e)
{
    uint64_t a = splitmix64(seed * 0x100000001b3ull ^ (uint64_t)i);
    uint64_t b = splitmix64(a);
    e->event_id = i;
    e->user_id = (int64_t)(a % 100000) + 1;
    e->city = (uint8_t)((a >> 20) % 20);
    uint64_t s = (a >> 28) % 100; /* paid 45 %, shipped 25, pending 15, refunded 10, cancelled 5 */
    e->status = s < 45 ? 0 : s < 70 ? 1 : s < 85 ? 2 : s < 95 ? 3 : 4;
    e->category = (uint8_t)((a >> 36) % 10);
    e->is_mobile = (a >> 44) & 1;
    e->amount = (double)(b % 20000 + 1) / 100.0;
    e->quantity = (int64_t)((b >> 20) % 10) + 1;
    e->ts_ms = 1700000000000 + i * 10;
}

/* The JSON text of e (with ,"probe_id":N when probe >= 0) into out; returns its length. */
static int event_json(const ev_t *e, int64_t probe, char *out, size_t n)
{
    char extra[40] = "";
    if (probe >= 0)
        snprintf(extra, sizeof(extra), ",\"probe_id\":%" PRId64, probe);
    return snprintf(out, n,
                    "{\"event_id\":%" PRId64 ",\"user_id\":%" PRId64 ",\"city\":\"%s\",\"country\":"
                    "\"%s\",\"amount\":%.2f,\"quantity\":%" PRId64 ",\"status\":\"%s\",\"category\""
                    ":\"%s\",\"is_mobile\":%s,\"ts_ms\":%" PRId64 "%s}",
                    e->event_id, e->user_id, CITIES[e->city][0], CITIES[e->city][1], e->amount,
                    e->quantity, STATUSES[e->status], CATEGORIES[e->category],
                    e->is_mobile ? "true" : "false", e->ts_ms, extra);
}

/* All N events, typed and as JSON text in one buffer (text i at json + off[i]). */
typedef struct dataset {
    int64_t n;
    ev_t *ev;
    char *json;
    uint64_t *off; /* n + 1 entries */
} dataset_t;

static int dataset_build(dataset_t *d, uint64_t seed, int64_t n, bool typed)
{
    memset(d, 0, sizeof(*d));
    d->n = n;
    size_t cap = (size_t)n * 200 + 256;
    d->json = malloc(cap);
    d->off = malloc(((size_t)n + 1) * sizeof(uint64_t));
    d->ev = typed ? malloc((size_t)n * sizeof(ev_t)) : NULL;
    if (!d->json || !d->off || (typed && !d->ev))
        return -1;
    size_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        ev_t e;
        gen_event(seed, i, &e);
        if (typed)
            d->ev[i] = e;
        if (cap - pos < 256) {
            cap *= 2;
            char *nj = realloc(d->json, cap);
            if (!nj)
                return -1;
            d->json = nj;
        }
        d->off[i] = pos;
        pos += (size_t)event_json(&e, -1, d->json + pos, cap - pos);
    }
    d->off[n] = pos;
    return 0;
}

static void dataset_free(dataset_t *d)
{
    free(d->ev);
    free(d->json);
    free(d->off);
}

/* ---------------------------------------------------------------- HTTP/1.1 client */

/* One keep-alive connection; requests are sent one at a time (no pipelining). */
typedef struct http {
    char host[64];
    int port;
    int fd;
    char *buf; /* response: headers then body */
    size_t cap, len;
    char *body; /* into buf, NUL-terminated */
    size_t body_len;
    int status;
    int reconnects;
} http_t;

static int http_init(http_t *h, const char *hostport)
{
    memset(h, 0, sizeof(*h));
    h->fd = -1;
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(h->host))
        return -1;
    memcpy(h->host, hostport, (size_t)(colon - hostport));
    h->port = atoi(colon + 1);
    h->cap = 1 << 16;
    h->buf = malloc(h->cap);
    return h->buf && h->port > 0 ? 0 : -1;
}

static void http_close(http_t *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
}

static void http_free(http_t *h)
{
    http_close(h);
    free(h->buf);
    h->buf = NULL;
}

static int http_connect(http_t *h)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    if (inet_pton(AF_INET, h->host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {120, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    h->fd = fd;
    return 0;
}

static int http_fill(http_t *h)
{
    if (h->cap - h->len < 4096) {
        size_t nc = h->cap * 2;
        char *nb = realloc(h->buf, nc);
        if (!nb)
            return -1;
        h->buf = nb;
        h->cap = nc;
    }
    ssize_t r;
    do {
        r = read(h->fd, h->buf + h->len, h->cap - h->len - 1);
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    h->len += (size_t)r;
    return 0;
}

/* Header value of name (case-insensitive) within hdr[0..n), or NULL. */
static const char *header_value(const char *hdr, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = hdr; p && p < hdr + n;) {
        const char *eol = memmem(p, (size_t)(hdr + n - p), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* One attempt; -2: the connection failed before any byte of a response (retryable). */
static int http_once(http_t *h, const char *method, const char *path, const char *body)
{
    if (h->fd < 0 && http_connect(h) != 0)
        return -1;
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    int hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, h->host, h->port, blen);
    struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, blen}};
    size_t want = (size_t)hl + blen, sent = 0;
    while (sent < want) {
        struct iovec *v = iov;
        int cnt = 2;
        size_t skip = sent;
        struct iovec tmp[2];
        memcpy(tmp, iov, sizeof(tmp));
        v = tmp;
        while (cnt && skip >= v->iov_len) {
            skip -= v->iov_len;
            v++;
            cnt--;
        }
        v->iov_base = (char *)v->iov_base + skip;
        v->iov_len -= skip;
        ssize_t w = writev(h->fd, v, cnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -2;
        sent += (size_t)w;
    }
    h->len = 0;
    char *eoh = NULL;
    while (!eoh) {
        if (http_fill(h) != 0)
            return h->len == 0 ? -2 : -1;
        h->buf[h->len] = 0;
        eoh = memmem(h->buf, h->len, "\r\n\r\n", 4);
    }
    size_t hdr_len = (size_t)(eoh - h->buf) + 4;
    if (sscanf(h->buf, "HTTP/1.%*d %d", &h->status) != 1)
        return -1;
    const char *cl = header_value(h->buf, hdr_len, "Content-Length");
    const char *te = header_value(h->buf, hdr_len, "Transfer-Encoding");
    const char *conn = header_value(h->buf, hdr_len, "Connection");
    bool close_after = conn && strncasecmp(conn, "close", 5) == 0;
    if (te && strncasecmp(te, "chunked", 7) == 0) {
        /* de-chunk in place: body accumulates at buf + hdr_len */
        size_t out = hdr_len, in = hdr_len;
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(h->buf + in, h->len - in, "\r\n", 2)))
                if (http_fill(h) != 0)
                    return -1;
            size_t sz = strtoul(h->buf + in, NULL, 16);
            size_t data = (size_t)(crlf - h->buf) + 2;
            while (h->len < data + sz + 2)
                if (http_fill(h) != 0)
                    return -1;
            memmove(h->buf + out, h->buf + data, sz);
            out += sz;
            in = data + sz + 2;
            if (sz == 0)
                break;
        }
        h->body = h->buf + hdr_len;
        h->body_len = out - hdr_len;
    } else if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        while (h->len < hdr_len + n)
            if (http_fill(h) != 0)
                return -1;
        h->body = h->buf + hdr_len;
        h->body_len = n;
    } else { /* until close */
        while (http_fill(h) == 0) {
        }
        close_after = true;
        h->body = h->buf + hdr_len;
        h->body_len = h->len - hdr_len;
    }
    h->body[h->body_len] = 0;
    if (close_after)
        http_close(h);
    return 0;
}

/* A request; the answer is in h->status and h->body. Retries once on a connection the
 * server closed while idle. Returns 0, or -1 when no answer came. */
static int http_req(http_t *h, const char *method, const char *path, const char *body)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = http_once(h, method, path, body);
        if (rc == 0)
            return 0;
        http_close(h);
        h->reconnects++;
        if (rc != -2)
            return -1;
    }
    return -1;
}

/* POST /_sql {"query": q, "limit": limit}. The query must not need JSON escaping. */
static int sql_req(http_t *h, const char *q, int limit)
{
    char body[2048];
    snprintf(body, sizeof(body), "{\"query\": \"%s\", \"limit\": %d}", q, limit);
    return http_req(h, "POST", "/_sql", body);
}

/* The number after "key": in s (after `after`, when given), or NAN-like failure. */
static bool json_num(const char *s, const char *after, const char *key, double *out)
{
    if (after) {
        s = strstr(s, after);
        if (!s)
            return false;
    }
    char pat[96];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(s, pat);
    if (!p)
        return false;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    char *end;
    double v = strtod(p, &end);
    if (end == p)
        return false;
    *out = v;
    return true;
}

/* The first value of the first row of a /_sql answer ({"rows":[{"col":V,...}]}). */
static bool sql_first_value(const char *s, double *out)
{
    const char *p = strstr(s, "\"rows\":[{");
    if (!p)
        return false;
    p = strstr(p + 9, "\":");
    if (!p)
        return false;
    p += 2;
    char *end;
    double v = strtod(p, &end);
    if (end == p)
        return false;
    *out = v;
    return true;
}

/* POST /topics with columnar.enabled=true; an existing topic is fine. */
static int create_topic(http_t *h, const char *topic, int partitions)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"partitions\":%d,\"config\":{\"columnar.enabled\":\"true\"}}",
             topic, partitions);
    if (http_req(h, "POST", "/topics", body) != 0) {
        fprintf(stderr, "POST /topics: no answer\n");
        return -1;
    }
    if (h->status / 100 != 2 && h->status != 409) {
        fprintf(stderr, "POST /topics: %d %s\n", h->status, h->body);
        return -1;
    }
    return 0;
}

typedef struct colstat {
    double lag, hot_rows, cold_rows, cold_files;
} colstat_t;

/* capabilities.columnar of GET /topics/T. */
static bool topic_stat(http_t *h, const char *topic, colstat_t *st)
{
    char path[300];
    snprintf(path, sizeof(path), "/topics/%s", topic);
    if (http_req(h, "GET", path, NULL) != 0 || h->status != 200)
        return false;
    memset(st, 0, sizeof(*st));
    st->hot_rows = st->cold_rows = st->cold_files = -1;
    const char *c = "\"columnar\":{";
    bool ok = json_num(h->body, c, "lag", &st->lag);
    json_num(h->body, c, "hot_rows", &st->hot_rows);
    json_num(h->body, c, "cold_rows", &st->cold_rows);
    json_num(h->body, c, "cold_files", &st->cold_files);
    return ok;
}

/* ---------------------------------------------------------------- options */

typedef struct opts {
    const char *mode, *brokers, *api, *topic, *manifest, *compression;
    int64_t count, expect, user_id;
    uint64_t seed;
    int partitions, runs, warmup, probes, poll_ms;
    double bg_rate, timeout_s;
} opts_t;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: chronik-sql-bench appender --count N [--seed S]\n"
        "       chronik-sql-bench ingest --brokers H:P --api H:P --topic T --count N [--seed S]\n"
        "                         [--compression none|lz4] [--partitions 3] [--timeout S]\n"
        "       chronik-sql-bench query --api H:P --topic T --manifest PATH --expect N\n"
        "                         [--runs 30] [--warmup 3] [--user-id X]\n"
        "       chronik-sql-bench fresh --brokers H:P --api H:P --topic T [--probes 200]\n"
        "                         [--bg-rate 5000] [--poll-ms 2] [--seed S] [--timeout S]\n");
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    static const struct option longs[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"api", required_argument, NULL, 'A'},
        {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"compression", required_argument, NULL, 'z'},
        {"partitions", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 'T'},
        {"manifest", required_argument, NULL, 'm'},
        {"expect", required_argument, NULL, 'e'},
        {"runs", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'w'},
        {"user-id", required_argument, NULL, 'u'},
        {"probes", required_argument, NULL, 'P'},
        {"bg-rate", required_argument, NULL, 'R'},
        {"poll-ms", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (opts_t){.brokers = "127.0.0.1:9092",
                  .api = "127.0.0.1:6092",
                  .topic = "events",
                  .compression = "none",
                  .seed = 42,
                  .partitions = 3,
                  .runs = 30,
                  .warmup = 3,
                  .user_id = 4242,
                  .probes = 200,
                  .poll_ms = 2,
                  .bg_rate = 5000,
                  .timeout_s = 300};
    if (argc < 2) {
        usage(stderr);
        return -1;
    }
    o->mode = argv[1];
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->brokers = optarg;
            break;
        case 'A':
            o->api = optarg;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'n':
            o->count = strtoll(optarg, NULL, 10);
            break;
        case 's':
            o->seed = strtoull(optarg, NULL, 10);
            break;
        case 'z':
            o->compression = optarg;
            break;
        case 'p':
            o->partitions = atoi(optarg);
            break;
        case 'T':
            o->timeout_s = strtod(optarg, NULL);
            break;
        case 'm':
            o->manifest = optarg;
            break;
        case 'e':
            o->expect = strtoll(optarg, NULL, 10);
            break;
        case 'r':
            o->runs = atoi(optarg);
            break;
        case 'w':
            o->warmup = atoi(optarg);
            break;
        case 'u':
            o->user_id = strtoll(optarg, NULL, 10);
            break;
        case 'P':
            o->probes = atoi(optarg);
            break;
        case 'R':
            o->bg_rate = strtod(optarg, NULL);
            break;
        case 'o':
            o->poll_ms = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    for (const char *p = o->topic; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_')) {
            fprintf(stderr, "--topic: use [A-Za-z0-9_] (the name is used as the SQL table)\n");
            return -1;
        }
    }
    if (o->runs < 1 || o->warmup < 0 || o->probes < 1 || o->poll_ms < 0 || o->partitions < 1)
        return usage(stderr), -1;
    return 0;
}

/* ---------------------------------------------------------------- appender baseline */

static bool app_ok(duckdb_state s, int64_t *bad)
{
    return s == DuckDBSuccess || ((*bad)++, false);
}

static int run_appender(const opts_t *o)
{
    if (o->count < 1)
        return usage(stderr), 2;
    dataset_t d;
    int64_t g0 = now_ns();
    if (dataset_build(&d, o->seed, o->count, true) != 0) {
        fprintf(stderr, "appender: out of memory\n");
        return 1;
    }
    double gen_s = (double)(now_ns() - g0) / 1e9;
    duckdb_database db;
    duckdb_connection con;
    if (duckdb_open(NULL, &db) != DuckDBSuccess || duckdb_connect(db, &con) != DuckDBSuccess) {
        fprintf(stderr, "appender: cannot open DuckDB\n");
        return 1;
    }
    /* The server's per-partition hot table: the 6 stored system columns (_topic and
     * _partition are constants of its views, not stored), then the event fields in the
     * order the JSON has them. */
    duckdb_result res;
    if (duckdb_query(con,
                     "CREATE TABLE hot (_offset BIGINT, _timestamp TIMESTAMP, _timestamp_type "
                     "TINYINT, _key BLOB, _value BLOB, _headers MAP(VARCHAR, BLOB), event_id "
                     "BIGINT, user_id BIGINT, city VARCHAR, country VARCHAR, amount DOUBLE, "
                     "quantity BIGINT, status VARCHAR, category VARCHAR, is_mobile BOOLEAN, "
                     "ts_ms BIGINT)",
                     &res) != DuckDBSuccess) {
        fprintf(stderr, "appender: CREATE TABLE: %s\n", duckdb_result_error(&res));
        return 1;
    }
    duckdb_destroy_result(&res);
    double cpu0 = cpu_seconds();
    int64_t t0 = now_ns();
    duckdb_appender app;
    if (duckdb_appender_create(con, NULL, "hot", &app) != DuckDBSuccess) {
        fprintf(stderr, "appender: create failed\n");
        return 1;
    }
    int64_t bad = 0;
    for (int64_t i = 0; i < d.n; i++) {
        const ev_t *e = &d.ev[i];
        duckdb_timestamp ts = {e->ts_ms * 1000};
        app_ok(duckdb_append_int64(app, i), &bad);
        app_ok(duckdb_append_timestamp(app, ts), &bad);
        app_ok(duckdb_append_int8(app, 0), &bad);
        app_ok(duckdb_append_null(app), &bad); /* _key */
        app_ok(duckdb_append_blob(app, d.json + d.off[i], d.off[i + 1] - d.off[i]), &bad);
        app_ok(duckdb_append_null(app), &bad); /* _headers */
        app_ok(duckdb_append_int64(app, e->event_id), &bad);
        app_ok(duckdb_append_int64(app, e->user_id), &bad);
        app_ok(duckdb_append_varchar(app, CITIES[e->city][0]), &bad);
        app_ok(duckdb_append_varchar(app, CITIES[e->city][1]), &bad);
        app_ok(duckdb_append_double(app, e->amount), &bad);
        app_ok(duckdb_append_int64(app, e->quantity), &bad);
        app_ok(duckdb_append_varchar(app, STATUSES[e->status]), &bad);
        app_ok(duckdb_append_varchar(app, CATEGORIES[e->category]), &bad);
        app_ok(duckdb_append_bool(app, e->is_mobile), &bad);
        app_ok(duckdb_append_int64(app, e->ts_ms), &bad);
        app_ok(duckdb_appender_end_row(app), &bad);
        if (bad)
            break;
    }
    if (bad)
        fprintf(stderr, "appender: %s\n", duckdb_appender_error(app));
    duckdb_appender_close(app);
    duckdb_appender_destroy(&app);
    double el = (double)(now_ns() - t0) / 1e9;
    double cpu = cpu_seconds() - cpu0;
    int64_t rows = -1;
    if (duckdb_query(con, "SELECT count(*) FROM hot", &res) == DuckDBSuccess)
        rows = duckdb_value_int64(&res, 0, 0);
    duckdb_destroy_result(&res);
    double rps = el > 0 ? (double)rows / el : 0;
    const char *status = !bad && rows == d.n ? "ok" : "error";
    printf("appender: %" PRId64 " rows (16 columns, JSON text %.1f MB) in %.3f s: %.0f rows/s, "
           "CPU %.2f s (data built beforehand in %.2f s)\n",
           rows, (double)d.off[d.n] / 1e6, el, rps, cpu, gen_s);
    printf("RESULT mode=appender rows=%" PRId64 " elapsed_s=%.3f rows_per_s=%.0f cpu_s=%.2f "
           "threads=%ld status=%s\n",
           rows, el, rps, cpu, sysconf(_SC_NPROCESSORS_ONLN), status);
    duckdb_disconnect(&con);
    duckdb_close(&db);
    dataset_free(&d);
    return strcmp(status, "ok") == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- librdkafka helpers */

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "config %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    fprintf(stderr, "rdkafka %d %s: %s\n", level, fac, buf);
}

/* Waits until metadata shows the topic with partitions; returns their count or -1. */
static int wait_topic(rd_kafka_t *rk, const char *topic, double timeout_s)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int64_t deadline = now_ns() + (int64_t)(timeout_s * 1e9);
    int found = -1;
    while (found < 0 && now_ns() < deadline) {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && md->topics[0].err == 0 && md->topics[0].partition_cnt > 0)
                found = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if (found < 0)
            usleep(100 * 1000);
    }
    rd_kafka_topic_destroy(rkt);
    if (found < 0)
        fprintf(stderr, "topic %s: not in metadata after %.0f s\n", topic, timeout_s);
    return found;
}

typedef struct prod_state {
    atomic_llong delivered, failed, last_dr_ns;
    atomic_int first_err;
    atomic_bool stop;
} prod_state_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    prod_state_t *st = opaque;
    if (m->err) {
        atomic_fetch_add(&st->failed, 1);
        int zero = 0;
        atomic_compare_exchange_strong(&st->first_err, &zero, (int)m->err);
        return;
    }
    atomic_fetch_add(&st->delivered, 1);
    atomic_store(&st->last_dr_ns, now_ns());
}

static rd_kafka_t *make_producer(const char *brokers, const char *acks, const char *linger,
                                 const char *compression, prod_state_t *st)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", brokers) || conf_set(conf, "acks", acks) ||
        conf_set(conf, "linger.ms", linger) || conf_set(conf, "batch.size", "1000000") ||
        conf_set(conf, "compression.type", compression) ||
        conf_set(conf, "enable.idempotence", "false") ||
        conf_set(conf, "queue.buffering.max.messages", "200000") ||
        conf_set(conf, "queue.buffering.max.kbytes", "262144") ||
        conf_set(conf, "message.timeout.ms", "60000")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk)
        fprintf(stderr, "producer: %s\n", err);
    return rk;
}

typedef struct poller_arg {
    rd_kafka_t *rk;
    prod_state_t *st;
} poller_arg_t;

static void *poller_main(void *arg)
{
    poller_arg_t *pa = arg;
    while (!atomic_load(&pa->st->stop))
        rd_kafka_poll(pa->rk, 50);
    return NULL;
}

/* ---------------------------------------------------------------- ingest */

/* Samples the columnar lag every 500 ms while the ingest runs (its own connection). */
typedef struct lag_sampler {
    const char *api, *topic;
    prod_state_t *st;
    int64_t start_ns;
    atomic_bool stop;
    double max_lag;
    int samples;
} lag_sampler_t;

static void *lag_main(void *arg)
{
    lag_sampler_t *ls = arg;
    http_t h;
    if (http_init(&h, ls->api) != 0)
        return NULL;
    while (!atomic_load(&ls->stop)) {
        colstat_t cs;
        if (topic_stat(&h, ls->topic, &cs)) {
            if (cs.lag > ls->max_lag)
                ls->max_lag = cs.lag;
            ls->samples++;
            fprintf(stderr,
                    "  t=%5.1f s  acked %9lld  columnar lag %9.0f  hot rows %8.0f  cold rows "
                    "%9.0f  files %4.0f\n",
                    (double)(now_ns() - ls->start_ns) / 1e9,
                    (long long)atomic_load(&ls->st->delivered), cs.lag, cs.hot_rows, cs.cold_rows,
                    cs.cold_files);
        }
        for (int i = 0; i < 10 && !atomic_load(&ls->stop); i++)
            sleep_ms(50);
    }
    http_free(&h);
    return NULL;
}

static int run_ingest(const opts_t *o)
{
    static prod_state_t st;
    if (o->count < 1)
        return usage(stderr), 2;
    dataset_t d;
    if (dataset_build(&d, o->seed, o->count, false) != 0) {
        fprintf(stderr, "ingest: out of memory\n");
        return 1;
    }
    http_t h;
    if (http_init(&h, o->api) != 0 || create_topic(&h, o->topic, o->partitions) != 0)
        return 1;
    rd_kafka_t *rk = make_producer(o->brokers, "1", "5", o->compression, &st);
    if (!rk || wait_topic(rk, o->topic, 30) < 0)
        return 1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    poller_arg_t pa = {rk, &st};
    pthread_t poller, lagt;
    if (pthread_create(&poller, NULL, poller_main, &pa) != 0)
        return 1;
    static lag_sampler_t ls;
    ls = (lag_sampler_t){.api = o->api, .topic = o->topic, .st = &st};

    double cpu0 = cpu_seconds();
    int64_t start = now_ns();
    ls.start_ns = start;
    bool lag_thread = pthread_create(&lagt, NULL, lag_main, &ls) == 0;
    int64_t deadline = start + (int64_t)(o->timeout_s * 1e9);
    int64_t produced = 0;
    int produce_err = 0;
    while (produced < d.n && now_ns() < deadline) {
        /* the payloads live in d.json until the end: no copy */
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, d.json + d.off[produced],
                             d.off[produced + 1] - d.off[produced], NULL, 0, NULL) == 0) {
            produced++;
            continue;
        }
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
            produce_err = 1;
            break;
        }
        usleep(200);
    }
    atomic_store(&st.stop, true);
    pthread_join(poller, NULL);
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, 60000);
    rd_kafka_poll(rk, 0);
    int64_t acked_ns = now_ns();
    double produce_cpu = cpu_seconds() - cpu0;
    int64_t delivered = atomic_load(&st.delivered), failed = atomic_load(&st.failed);
    int64_t last_dr = atomic_load(&st.last_dr_ns);
    double produce_s = (double)((last_dr > start ? last_dr : acked_ns) - start) / 1e9;

    /* Visible: poll the columnar lag (GET /topics/T, cheap) every 20 ms until it is 0 with
     * every record acknowledged, then check with count(*). Polling count(*) itself this
     * often would cost the server more CPU than the ingest it measures (it reads the
     * metadata of every Parquet file). If the count disagrees, poll it every 100 ms. */
    char q[256];
    snprintf(q, sizeof(q), "SELECT count(*) FROM %s", o->topic);
    double seen = -1, polls = 0;
    int64_t visible_ns = 0, qerr = 0;
    bool lag_zero = false;
    while (now_ns() < deadline) {
        int64_t tq = now_ns();
        polls++;
        if (!lag_zero) {
            colstat_t cs;
            if (topic_stat(&h, o->topic, &cs) && cs.lag == 0) {
                lag_zero = true;
                visible_ns = now_ns();
            } else {
                sleep_until_ns(tq + 20 * 1000000);
                continue;
            }
        }
        if (sql_req(&h, q, 10) == 0 && h.status == 200 && sql_first_value(h.body, &seen)) {
            if (seen >= (double)delivered)
                break;
            if (qerr++ < 3)
                fprintf(stderr, "lag 0 but count(*) = %.0f of %" PRId64 "\n", seen, delivered);
        } else if (qerr++ < 3) {
            fprintf(stderr, "count(*): %d %s\n", h.status, h.body ? h.body : "");
        }
        visible_ns = 0; /* the count decides now */
        sleep_until_ns(tq + 100 * 1000000);
        if (seen >= (double)delivered)
            break;
    }
    if (lag_zero && !visible_ns && seen >= (double)delivered)
        visible_ns = now_ns();
    atomic_store(&ls.stop, true);
    if (lag_thread)
        pthread_join(lagt, NULL);
    double cpu = cpu_seconds() - cpu0;
    double e2e_s = visible_ns ? (double)(visible_ns - start) / 1e9 : 0;
    double after_ack_ms = visible_ns ? (double)(visible_ns - acked_ns) / 1e6 : 0;
    double prod_rps = produce_s > 0 ? (double)delivered / produce_s : 0;
    double e2e_rps = e2e_s > 0 ? (double)delivered / e2e_s : 0;
    double mb = (double)d.off[d.n] / 1e6;
    colstat_t cs = {0};
    topic_stat(&h, o->topic, &cs);
    const char *status = "ok";
    if (produce_err || failed || ferr || delivered != d.n)
        status = "produce_error";
    else if (!visible_ns)
        status = "not_visible";
    else if (seen != (double)d.n)
        status = "count_mismatch";
    printf("ingest %s: %" PRId64 " JSON events (%.1f MB, avg %.0f B), acks=1 linger.ms=5 "
           "batch.size=1000000 compression=%s\n",
           o->topic, d.n, mb, mb * 1e6 / (double)d.n, o->compression);
    printf("  produced and acknowledged in %.2f s: %.0f records/s (%.1f MB/s); client CPU %.2f s\n",
           produce_s, prod_rps, prod_rps * mb / (double)d.n, produce_cpu);
    printf("  all %.0f visible in SQL %.0f ms after the last ack (%.0f polls): "
           "%.2f s end to end, %.0f records/s\n",
           seen, after_ack_ms, polls, e2e_s, e2e_rps);
    printf("  columnar lag: max %.0f records over %d samples; now hot rows %.0f, cold rows %.0f in "
           "%.0f files\n",
           ls.max_lag, ls.samples, cs.hot_rows, cs.cold_rows, cs.cold_files);
    printf("RESULT mode=ingest records=%" PRId64 " bytes=%" PRIu64
           " compression=%s delivered=%" PRId64 " failed=%" PRId64
           " produce_s=%.3f produce_rps=%.0f e2e_s=%.3f e2e_rps=%.0f "
           "visible_after_ack_ms=%.0f max_lag=%.0f count=%.0f client_cpu_s=%.2f status=%s\n",
           d.n, d.off[d.n], o->compression, delivered, failed, produce_s, prod_rps, e2e_s, e2e_rps,
           after_ack_ms, ls.max_lag, seen, cpu, status);
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    http_free(&h);
    dataset_free(&d);
    return strcmp(status, "ok") == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- query */

/* The "path" entries of MANIFEST, made absolute (relative to its folder), as a DuckDB list
 * literal ['a','b',...]; NULL on failure. *nfiles gets their count. */
static char *manifest_files(const char *manifest, int *nfiles)
{
    FILE *f = fopen(manifest, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *txt = malloc((size_t)sz + 1);
    if (!txt || fread(txt, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        free(txt);
        return NULL;
    }
    fclose(f);
    txt[sz] = 0;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", manifest);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof(dir), ".");
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    if (!out) {
        free(txt);
        return NULL;
    }
    out[len++] = '[';
    *nfiles = 0;
    for (char *p = strstr(txt, "\"path\":"); p; p = strstr(p, "\"path\":")) {
        p += 7;
        while (*p == ' ')
            p++;
        if (*p != '"')
            continue;
        char *end = strchr(++p, '"');
        if (!end)
            break;
        char path[2048];
        if (*p == '/')
            snprintf(path, sizeof(path), "%.*s", (int)(end - p), p);
        else
            snprintf(path, sizeof(path), "%s/%.*s", dir, (int)(end - p), p);
        if (cap - len < strlen(path) * 2 + 8) {
            cap = cap * 2 + strlen(path) * 2;
            char *no = realloc(out, cap);
            if (!no) {
                free(out);
                free(txt);
                return NULL;
            }
            out = no;
        }
        len += (size_t)sprintf(out + len, "%s'", *nfiles ? "," : "");
        for (const char *c = path; *c; c++) {
            if (*c == '\'')
                out[len++] = '\'';
            out[len++] = *c;
        }
        out[len++] = '\'';
        (*nfiles)++;
        p = end + 1;
    }
    out[len++] = ']';
    out[len] = 0;
    free(txt);
    return out;
}

typedef struct qdef {
    const char *name;
    char sql[512];
    int limit;
} qdef_t;

static int run_query(const opts_t *o)
{
    if (!o->manifest || o->expect < 1)
        return usage(stderr), 2;
    http_t h;
    if (http_init(&h, o->api) != 0)
        return 2;
    colstat_t cs = {0};
    topic_stat(&h, o->topic, &cs);
    int nfiles = 0;
    char *files = manifest_files(o->manifest, &nfiles);
    if (!files || nfiles == 0) {
        fprintf(stderr, "query: no files listed in %s\n", o->manifest);
        return 1;
    }
    duckdb_database db;
    duckdb_connection con;
    duckdb_result res;
    if (duckdb_open(NULL, &db) != DuckDBSuccess || duckdb_connect(db, &con) != DuckDBSuccess) {
        fprintf(stderr, "query: cannot open DuckDB\n");
        return 1;
    }
    size_t vl = strlen(files) + 256;
    char *view = malloc(vl);
    snprintf(view, vl, "CREATE VIEW %s AS SELECT * FROM read_parquet(%s, union_by_name = true)",
             o->topic, files);
    if (duckdb_query(con, view, &res) != DuckDBSuccess) {
        fprintf(stderr, "query: %s\n", duckdb_result_error(&res));
        return 1;
    }
    duckdb_destroy_result(&res);
    free(view);
    int64_t direct_rows = -1;
    char q0[256];
    snprintf(q0, sizeof(q0), "SELECT count(*) FROM %s", o->topic);
    if (duckdb_query(con, q0, &res) == DuckDBSuccess)
        direct_rows = duckdb_value_int64(&res, 0, 0);
    duckdb_destroy_result(&res);

    qdef_t qs[3] = {{"group_by", "", 1000}, {"filter", "", 1000}, {"point", "", 10}};
    snprintf(qs[0].sql, sizeof(qs[0].sql),
             "SELECT city, COUNT(*), AVG(amount) FROM %s GROUP BY city", o->topic);
    snprintf(qs[1].sql, sizeof(qs[1].sql),
             "SELECT count(*), sum(amount) FROM %s WHERE status = 'refunded' AND amount > 150",
             o->topic);
    snprintf(qs[2].sql, sizeof(qs[2].sql), "SELECT * FROM %s WHERE user_id = %" PRId64 " LIMIT 10",
             o->topic, o->user_id);
    printf("query: %s, %.0f rows hot and %.0f cold (%d files in the manifest, %" PRId64
           " rows in them); %d warm-ups + %d runs each, server and direct alternating\n",
           o->topic, cs.hot_rows, cs.cold_rows, nfiles, direct_rows, o->warmup, o->runs);
    const char *status = direct_rows == o->expect ? "ok" : "direct_rows_mismatch";
    char result[4096];
    int rl =
        snprintf(result, sizeof(result),
                 "RESULT mode=query hot_rows=%.0f cold_rows=%.0f files=%d direct_rows=%" PRId64,
                 cs.hot_rows, cs.cold_rows, nfiles, direct_rows);
    int total = o->warmup + o->runs;
    double *ts = calloc((size_t)o->runs, sizeof(double)),
           *td = calloc((size_t)o->runs, sizeof(double));
    double *tx = calloc((size_t)o->runs, sizeof(double)),
           *tp = calloc((size_t)o->runs, sizeof(double));
    for (int qi = 0; qi < 3; qi++) {
        const qdef_t *qd = &qs[qi];
        double srv_first = -1, srv_rows = -1, dir_first = -1, dir_rows = -1;
        int errors = 0;
        for (int r = 0; r < total; r++) {
            int64_t t0 = now_ns();
            int rc = sql_req(&h, qd->sql, qd->limit);
            int64_t t1 = now_ns();
            if (rc != 0 || h.status != 200) {
                if (errors++ < 3)
                    fprintf(stderr, "%s: %d %s\n", qd->name, h.status, rc ? "(no answer)" : h.body);
            } else if (r == 0) {
                json_num(h.body, NULL, "row_count", &srv_rows);
                sql_first_value(h.body, &srv_first);
            }
            double exec_ms = -1;
            if (rc == 0)
                json_num(h.body, NULL, "execution_time_ms", &exec_ms);
            int64_t t2 = now_ns();
            duckdb_state ds = duckdb_query(con, qd->sql, &res);
            int64_t t3 = now_ns();
            if (ds != DuckDBSuccess) {
                if (errors++ < 3)
                    fprintf(stderr, "%s direct: %s\n", qd->name, duckdb_result_error(&res));
            } else if (r == 0) {
                dir_rows = (double)duckdb_row_count(&res);
                dir_first = qi == 2 ? 0 : duckdb_value_double(&res, qi == 0 ? 1 : 0, 0);
                if (qi == 0) { /* group by: compare the total count */
                    dir_first = 0;
                    for (idx_t i = 0; i < duckdb_row_count(&res); i++)
                        dir_first += (double)duckdb_value_int64(&res, 1, i);
                }
            }
            duckdb_destroy_result(&res);
            /* the same, prepared then executed (as the server runs queries: it prepares to
             * check that the statement is one SELECT) */
            int64_t t4 = now_ns();
            duckdb_prepared_statement ps;
            if (duckdb_prepare(con, qd->sql, &ps) != DuckDBSuccess) {
                if (errors++ < 3)
                    fprintf(stderr, "%s prepare: %s\n", qd->name, duckdb_prepare_error(ps));
            } else {
                if (duckdb_execute_prepared(ps, &res) != DuckDBSuccess && errors++ < 3)
                    fprintf(stderr, "%s prepared: %s\n", qd->name, duckdb_result_error(&res));
                duckdb_destroy_result(&res);
            }
            duckdb_destroy_prepare(&ps);
            int64_t t5 = now_ns();
            if (r >= o->warmup) {
                ts[r - o->warmup] = (double)(t1 - t0) / 1e6;
                td[r - o->warmup] = (double)(t3 - t2) / 1e6;
                tx[r - o->warmup] = exec_ms;
                tp[r - o->warmup] = (double)(t5 - t4) / 1e6;
            }
        }
        if (qi == 0) { /* the server's group-by: sum the counts over the rows */
            if (sql_req(&h, qd->sql, qd->limit) == 0 && h.status == 200) {
                srv_first = 0;
                for (const char *p = strstr(h.body, "\"count_star()\":"); p;
                     p = strstr(p + 1, "\"count_star()\":"))
                    srv_first += strtod(p + 15, NULL);
            }
        }
        double s50 = quantile(ts, (size_t)o->runs, 0.5), s99 = quantile(ts, (size_t)o->runs, 0.99);
        double d50 = quantile(td, (size_t)o->runs, 0.5), d99 = quantile(td, (size_t)o->runs, 0.99);
        double x50 = quantile(tx, (size_t)o->runs, 0.5);
        double p50 = quantile(tp, (size_t)o->runs, 0.5);
        bool agree = srv_rows == dir_rows && (qi == 2 || srv_first == dir_first);
        if (errors)
            status = "query_error";
        else if (!agree && strcmp(status, "ok") == 0)
            status = "answer_mismatch";
        printf("  %-8s %s\n", qd->name, qd->sql);
        printf("           server p50 %.2f ms p99 %.2f ms (server execution_time_ms p50 %.0f) | "
               "direct p50 %.2f ms p99 %.2f ms | p50 ratio %.2f | rows %.0f/%.0f, first value "
               "%.6g/%.6g%s\n",
               s50, s99, x50, d50, d99, d50 > 0 ? s50 / d50 : 0, srv_rows, dir_rows, srv_first,
               dir_first, agree ? "" : "  ** answers differ **");
        printf("           direct, prepared then executed: p50 %.2f ms\n", p50);
        rl += snprintf(result + rl, sizeof(result) - (size_t)rl,
                       " %s_p50_ms=%.2f %s_p99_ms=%.2f %s_exec_p50_ms=%.0f %s_direct_p50_ms=%.2f "
                       "%s_direct_p99_ms=%.2f %s_prep_p50_ms=%.2f %s_ratio=%.2f %s_rows=%.0f "
                       "%s_agree=%d",
                       qd->name, s50, qd->name, s99, qd->name, x50, qd->name, d50, qd->name, d99,
                       qd->name, p50, qd->name, d50 > 0 ? s50 / d50 : 0, qd->name, srv_rows,
                       qd->name, agree);
    }
    printf("%s reconnects=%d runs=%d status=%s\n", result, h.reconnects, o->runs, status);
    fflush(stdout);
    free(ts);
    free(td);
    free(tx);
    free(tp);
    free(files);
    duckdb_disconnect(&con);
    duckdb_close(&db);
    http_free(&h);
    return strcmp(status, "ok") == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- freshness */

typedef struct bg_arg {
    const char *brokers, *topic;
    double rate;
    uint64_t seed;
    atomic_bool stop;
    int64_t sent;
    double achieved;
    int err;
} bg_arg_t;

/* The background load: events paced at rate/s (acks=1, linger.ms=5), its own producer. */
static void *bg_main(void *arg)
{
    bg_arg_t *b = arg;
    static prod_state_t st;
    rd_kafka_t *rk = make_producer(b->brokers, "1", "5", "none", &st);
    if (!rk) {
        b->err = 1;
        return NULL;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, b->topic, NULL);
    int64_t gap = (int64_t)(1e9 / b->rate);
    int64_t start = now_ns();
    char buf[512];
    /* background events are numbered from 10^9 on, apart from any other data set */
    while (!atomic_load(&b->stop)) {
        int64_t due = start + b->sent * gap;
        int64_t t = now_ns();
        if (t < due) {
            rd_kafka_poll(rk, 0);
            sleep_until_ns(due);
            continue;
        }
        ev_t e;
        gen_event(b->seed, 1000000000 + b->sent, &e);
        int n = event_json(&e, -1, buf, sizeof(buf));
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, buf, (size_t)n, NULL,
                             0, NULL) == 0)
            b->sent++;
        else
            rd_kafka_poll(rk, 1);
    }
    b->achieved = (double)b->sent / ((double)(now_ns() - start) / 1e9);
    rd_kafka_flush(rk, 30000);
    rd_kafka_poll(rk, 0);
    if (atomic_load(&st.failed))
        b->err = 1;
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return NULL;
}

typedef struct probe_dr {
    int64_t ack_ns;
    int err;
    bool done;
} probe_dr_t;

static void on_probe_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    probe_dr_t *p = m->_private;
    p->ack_ns = now_ns();
    p->err = m->err;
    p->done = true;
}

static int run_fresh(const opts_t *o)
{
    http_t h;
    if (http_init(&h, o->api) != 0 || create_topic(&h, o->topic, o->partitions) != 0)
        return 1;
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", o->brokers) || conf_set(conf, "acks", "all") ||
        conf_set(conf, "linger.ms", "0") || conf_set(conf, "enable.idempotence", "false"))
        return 2;
    rd_kafka_conf_set_dr_msg_cb(conf, on_probe_dr);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk || wait_topic(rk, o->topic, 30) < 0)
        return 1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);

    static bg_arg_t bg;
    bg = (bg_arg_t){.brokers = o->brokers, .topic = o->topic, .rate = o->bg_rate, .seed = o->seed};
    pthread_t bgt;
    bool bg_on = o->bg_rate > 0;
    if (bg_on && pthread_create(&bgt, NULL, bg_main, &bg) != 0)
        return 1;
    sleep_ms(2000); /* let the background load settle */

    enum { WARM = 3 };
    int n = o->probes;
    double *vis_ack = calloc((size_t)n, sizeof(double)),
           *vis_send = calloc((size_t)n, sizeof(double));
    double *ack = calloc((size_t)n, sizeof(double));
    double *rtt = calloc((size_t)(n + WARM) * 64, sizeof(double));
    size_t nrtt = 0, rtt_cap = (size_t)(n + WARM) * 64;
    int got = 0, missing = 0, first_poll = 0, qerrors = 0;
    int64_t polls = 0;
    int64_t t_begin = now_ns();
    int64_t run_deadline = t_begin + (int64_t)(o->timeout_s * 1e9);
    for (int k = 0; k < n + WARM; k++) {
        bool warm = k < WARM;
        if (now_ns() >= run_deadline) {
            fprintf(stderr, "fresh: --timeout %.0f s reached; %d probes not sent\n", o->timeout_s,
                    n + WARM - k);
            missing += n + WARM - k < n ? n + WARM - k : n;
            break;
        }
        int64_t probe_id = warm ? k + 1 : 1000 + k;
        ev_t e;
        gen_event(o->seed, 2000000000 + k, &e);
        char buf[512], q[256];
        int len = event_json(&e, probe_id, buf, sizeof(buf));
        snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE probe_id = %" PRId64, o->topic,
                 probe_id);
        probe_dr_t dr = {0};
        int64_t t0 = now_ns();
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, buf, (size_t)len,
                             NULL, 0, &dr) != 0) {
            fprintf(stderr, "probe produce: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
            missing++;
            continue;
        }
        int64_t ack_deadline = t0 + 10000000000ll;
        while (!dr.done && now_ns() < ack_deadline)
            rd_kafka_poll(rk, 1);
        if (!dr.done || dr.err) {
            fprintf(stderr, "probe %" PRId64 ": %s\n", probe_id,
                    dr.done ? rd_kafka_err2str((rd_kafka_resp_err_t)dr.err) : "no delivery report");
            missing++;
            continue;
        }
        int64_t t1 = 0, deadline = dr.ack_ns + 10000000000ll;
        if (deadline > run_deadline)
            deadline = run_deadline;
        int npoll = 0;
        while (now_ns() < deadline) {
            int64_t tq = now_ns();
            double c = 0;
            int rc = sql_req(&h, q, 10);
            int64_t tr = now_ns();
            npoll++;
            polls++;
            if (nrtt < rtt_cap)
                rtt[nrtt++] = (double)(tr - tq) / 1e6;
            if (rc == 0 && h.status == 200 && sql_first_value(h.body, &c)) {
                if (c >= 1) {
                    t1 = tr;
                    break;
                }
            } else if (!warm && qerrors++ < 3) {
                fprintf(stderr, "probe query: %d %s\n", h.status, rc ? "(no answer)" : h.body);
            }
            if (o->poll_ms > 0)
                sleep_until_ns(tq + (int64_t)o->poll_ms * 1000000);
        }
        if (warm)
            continue;
        if (!t1) {
            missing++;
            fprintf(stderr, "probe %" PRId64 ": not visible within 10 s of its ack\n", probe_id);
            continue;
        }
        if (npoll == 1)
            first_poll++;
        vis_ack[got] = (double)(t1 - dr.ack_ns) / 1e6;
        vis_send[got] = (double)(t1 - t0) / 1e6;
        ack[got] = (double)(dr.ack_ns - t0) / 1e6;
        got++;
    }
    double probe_s = (double)(now_ns() - t_begin) / 1e9;
    atomic_store(&bg.stop, true);
    if (bg_on)
        pthread_join(bgt, NULL);
    double mx_ack = 0, mx_send = 0;
    for (int i = 0; i < got; i++) {
        mx_ack = vis_ack[i] > mx_ack ? vis_ack[i] : mx_ack;
        mx_send = vis_send[i] > mx_send ? vis_send[i] : mx_send;
    }
    double a50 = quantile(vis_ack, (size_t)got, 0.5), a99 = quantile(vis_ack, (size_t)got, 0.99);
    double s50 = quantile(vis_send, (size_t)got, 0.5), s99 = quantile(vis_send, (size_t)got, 0.99);
    double k50 = quantile(ack, (size_t)got, 0.5), k99 = quantile(ack, (size_t)got, 0.99);
    double r50 = quantile(rtt, nrtt, 0.5), r99 = quantile(rtt, nrtt, 0.99);
    colstat_t cs = {0};
    topic_stat(&h, o->topic, &cs);
    const char *status = missing || bg.err ? "error" : "ok";
    printf(
        "fresh %s: %d probes (acks=all, linger.ms=0) in %.1f s under %.0f events/s of background "
        "load (achieved %.0f/s, %" PRId64 " sent); poll every %d ms\n",
        o->topic, got, probe_s, o->bg_rate, bg.achieved, bg.sent, o->poll_ms);
    printf("  ack -> visible: p50 %.1f ms p99 %.1f ms max %.1f ms\n", a50, a99, mx_ack);
    printf("  send -> visible: p50 %.1f ms p99 %.1f ms max %.1f ms (send -> ack p50 %.1f ms p99 "
           "%.1f ms)\n",
           s50, s99, mx_send, k50, k99);
    printf("  %" PRId64
           " polls, round trip p50 %.2f ms p99 %.2f ms; visible at the first poll: %d; "
           "missing: %d; at the end: %.0f hot rows, %.0f cold\n",
           polls, r50, r99, first_poll, missing, cs.hot_rows, cs.cold_rows);
    printf(
        "RESULT mode=fresh probes=%d missing=%d bg_rate=%.0f bg_achieved=%.0f ack_vis_p50_ms=%.1f "
        "ack_vis_p99_ms=%.1f ack_vis_max_ms=%.1f send_vis_p50_ms=%.1f send_vis_p99_ms=%.1f "
        "send_vis_max_ms=%.1f send_ack_p50_ms=%.1f send_ack_p99_ms=%.1f poll_rtt_p50_ms=%.2f "
        "poll_rtt_p99_ms=%.2f first_poll=%d polls=%" PRId64 " status=%s\n",
        got, missing, o->bg_rate, bg.achieved, a50, a99, mx_ack, s50, s99, mx_send, k50, k99, r50,
        r99, first_poll, polls, status);
    fflush(stdout);
    free(vis_ack);
    free(vis_send);
    free(ack);
    free(rtt);
    rd_kafka_flush(rk, 10000);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    http_free(&h);
    return strcmp(status, "ok") == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    opts_t o;
    signal(SIGPIPE, SIG_IGN);
    if (parse_opts(argc, argv, &o))
        return 2;
    if (strcmp(o.mode, "appender") == 0)
        return run_appender(&o);
    if (strcmp(o.mode, "ingest") == 0)
        return run_ingest(&o);
    if (strcmp(o.mode, "query") == 0)
        return run_query(&o);
    if (strcmp(o.mode, "fresh") == 0)
        return run_fresh(&o);
    usage(stderr);
    return 2;
}
