/* Request counters and latency histograms of the HTTP server, kept per route pattern (not
 * per path) so that the label sets stay bounded: routes x methods x statuses seen. One
 * mutex guards everything; it is held for a few increments per request. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "http/http_int.h"

static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS ((int)(sizeof(bucket_le) / sizeof(bucket_le[0])))
_Static_assert(NBUCKETS < 16, "h_bucket holds the buckets and +Inf");

void ck__http_metrics_init(ck__http_metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->m_mu, NULL);
}

int ck__http_metrics_alloc(ck__http_metrics_t *m, int nroutes)
{
    ck__http_hist_t *hist = ck_calloc((size_t)nroutes + 1, sizeof(*hist));
    if (!hist)
        return CK_ENOMEM;
    pthread_mutex_lock(&m->m_mu);
    ck_free(m->m_hist);
    m->m_hist = hist;
    m->m_nhist = nroutes + 1;
    pthread_mutex_unlock(&m->m_mu);
    return 0;
}

void ck__http_metrics_destroy(ck__http_metrics_t *m)
{
    ck_free(m->m_hist);
    ck_free(m->m_count);
    pthread_mutex_destroy(&m->m_mu);
}

void ck__http_metrics_record(ck__http_metrics_t *m, int method, int route, int status,
                             double seconds)
{
    if (method < 0 || method >= CK__HTTP_NMETHODS)
        method = CK__HTTP_NMETHODS;
    pthread_mutex_lock(&m->m_mu);
    if (status >= 400)
        m->m_errors++;
    if (route >= 0 && route < m->m_nhist) {
        ck__http_hist_t *hs = &m->m_hist[route];
        int b = 0;
        while (b < NBUCKETS && seconds > bucket_le[b])
            b++;
        hs->h_bucket[b]++;
        hs->h_count++;
        hs->h_sum += seconds;
    }
    int i = 0;
    while (i < m->m_ncount && !(m->m_count[i].c_method == method &&
                                m->m_count[i].c_route == route && m->m_count[i].c_status == status))
        i++;
    if (i == m->m_ncount) {
        if (m->m_ncount == m->m_capcount) {
            int cap = m->m_capcount ? m->m_capcount * 2 : 16;
            ck__http_count_t *n = ck_realloc(m->m_count, (size_t)cap * sizeof(*n));
            if (!n) {
                pthread_mutex_unlock(&m->m_mu);
                return;
            }
            m->m_count = n;
            m->m_capcount = cap;
        }
        m->m_count[i] = (ck__http_count_t){(int8_t)method, (int16_t)route, (int16_t)status, 0};
        m->m_ncount++;
    }
    m->m_count[i].c_n++;
    pthread_mutex_unlock(&m->m_mu);
}

static void appendf(ck_wbuf_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(ck_wbuf_t *w, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(buf)) {
        ck_wr_bytes(w, buf, (size_t)n);
        return;
    }
    uint8_t *d = ck_wbuf_reserve(w, (size_t)n + 1);
    if (!d)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n;
}

/* A label value with '\', '"' and newlines escaped as the text format wants. */
static void label_value(char *dst, size_t cap, const char *s)
{
    size_t j = 0;
    for (; *s && j + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            dst[j++] = '\\';
            dst[j++] = *s;
        } else if (*s == '\n') {
            dst[j++] = '\\';
            dst[j++] = 'n';
        } else {
            dst[j++] = *s;
        }
    }
    dst[j] = 0;
}

static void route_label(const ck_http_t *h, int route, char *dst, size_t cap)
{
    label_value(dst, cap, route < h->h_nroutes ? h->h_routes[route]->rt_pattern : "unmatched");
}

static void render_counter(const ck_http_t *h, const ck__http_metrics_t *m, ck_wbuf_t *out,
                           const char *name, const char *route_key, const char *help)
{
    appendf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int i = 0; i < m->m_ncount; i++) {
        const ck__http_count_t *c = &m->m_count[i];
        char rl[512];
        route_label(h, c->c_route, rl, sizeof(rl));
        appendf(out, "%s{method=\"%s\",%s=\"%s\",status=\"%d\"} %llu\n", name,
                ck__http_method_name(c->c_method), route_key, rl, c->c_status,
                (unsigned long long)c->c_n);
    }
}

static void render_hist(const ck_http_t *h, const ck__http_metrics_t *m, ck_wbuf_t *out,
                        const char *name, const char *route_key, const char *help)
{
    appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int r = 0; r < m->m_nhist; r++) {
        const ck__http_hist_t *hs = &m->m_hist[r];
        if (!hs->h_count)
            continue;
        char rl[512];
        route_label(h, r, rl, sizeof(rl));
        uint64_t cum = 0;
        for (int b = 0; b <= NBUCKETS; b++) {
            cum += hs->h_bucket[b];
            if (b < NBUCKETS)
                appendf(out, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, route_key, rl,
                        bucket_le[b], (unsigned long long)cum);
            else
                appendf(out, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, route_key, rl,
                        (unsigned long long)cum);
        }
        appendf(out, "%s_sum{%s=\"%s\"} %.9g\n%s_count{%s=\"%s\"} %llu\n", name, route_key, rl,
                hs->h_sum, name, route_key, rl, (unsigned long long)hs->h_count);
    }
}

void ck_http_metrics_render(ck_http_t *h, ck_wbuf_t *out)
{
    ck__http_metrics_t *m = &h->h_metrics;
    pthread_mutex_lock(&m->m_mu);
    render_counter(h, m, out, "chronik_http_requests_total", "route",
                   "HTTP requests answered by the unified API.");
    render_hist(h, m, out, "chronik_http_request_duration_seconds", "route",
                "Time from request headers to queued response, per route.");
    render_counter(h, m, out, "search_api_requests_total", "endpoint",
                   "HTTP requests answered by the unified API (upstream name).");
    render_hist(h, m, out, "search_api_request_duration_seconds", "endpoint",
                "Time from request headers to queued response, per endpoint (upstream name).");
    appendf(out,
            "# HELP search_api_errors_total HTTP responses with status 400 or above.\n"
            "# TYPE search_api_errors_total counter\nsearch_api_errors_total %llu\n",
            (unsigned long long)m->m_errors);
    pthread_mutex_unlock(&m->m_mu);
}
