/* A deliberately small HTTP responder: one request per connection (Connection: close),
 * requests up to 8 KiB, GET only. The unified HTTP API is a separate, full server. */
#include "server/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/logging.h"
#include "net/sock.h"

#define MAX_REQ 8192

struct ck_metrics {
    ck_loop_t *loop;
    ck_watch_t listen;
    ck_broker_t *broker;
    ck_topics_t *topics;
    void (*extra)(void *, ck_wbuf_t *);
    void *extra_arg;
};

void ck_metrics_set_extra(ck_metrics_t *m, void (*fn)(void *arg, ck_wbuf_t *out), void *arg)
{
    m->extra = fn;
    m->extra_arg = arg;
}

typedef struct mconn {
    ck_metrics_t *m;
    ck_watch_t w;
    char req[MAX_REQ];
    size_t rlen;
    ck_wbuf_t out;
    size_t sent;
    ck_timer_t timeout;
} mconn_t;

static void mconn_close(mconn_t *c)
{
    ck_timer_stop(c->m->loop, &c->timeout);
    ck_watch_stop(c->m->loop, &c->w);
    close(c->w.fd);
    ck_wbuf_free(&c->out);
    ck_free(c);
}

static void appendf(ck_wbuf_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(ck_wbuf_t *w, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        ck_wr_bytes(w, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void ck_metrics_render(ck_broker_t *broker, ck_topics_t *topics, ck_wbuf_t *b)
{
    ck_broker_stats_t st;
    ck_broker_stats(broker, &st);
    const struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"chronik_produce_requests_total", "Produce requests handled.", st.produce_requests},
        {"chronik_fetch_requests_total", "Fetch requests answered.", st.fetch_requests},
        {"chronik_network_bytes_in_total", "Bytes read from Kafka clients.", st.bytes_in},
        {"chronik_network_bytes_out_total", "Bytes written to Kafka clients.", st.bytes_out},
        {"chronik_bytes_produced_total", "Record batch bytes appended by Produce.", st.produced_bytes},
        {"chronik_messages_stored_total", "Records appended by Produce.", st.produced_records},
        {"chronik_bytes_fetched_total", "Record bytes returned by Fetch.", st.fetched_bytes},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        appendf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name, counters[i].help, counters[i].name,
                counters[i].name, (unsigned long long)counters[i].v);
    appendf(b, "# HELP chronik_connections Open Kafka connections.\n# TYPE chronik_connections gauge\n"
               "chronik_connections %d\n", st.connections);
    appendf(b, "# HELP chronik_requests_in_flight Kafka requests being processed.\n"
               "# TYPE chronik_requests_in_flight gauge\nchronik_requests_in_flight %d\n", st.inflight);
    appendf(b, "# HELP chronik_log_end_offset Next offset of each partition.\n# TYPE chronik_log_end_offset gauge\n");
    int n = ck_topics_count(topics);
    for (int i = 0; i < n; i++) {
        ck_topic_t *t = ck_topics_at(topics, i);
        for (int32_t p = 0; p < t->npart; p++)
            appendf(b, "chronik_log_end_offset{topic=\"%s\",partition=\"%d\"} %lld\n", t->name, p,
                    (long long)ck_partition_log_end(t->parts[p]));
    }
    appendf(b, "# HELP chronik_high_watermark Durable end (fsynced) of each partition.\n# TYPE chronik_high_watermark gauge\n");
    for (int i = 0; i < n; i++) {
        ck_topic_t *t = ck_topics_at(topics, i);
        for (int32_t p = 0; p < t->npart; p++)
            appendf(b, "chronik_high_watermark{topic=\"%s\",partition=\"%d\"} %lld\n", t->name, p,
                    (long long)ck_partition_durable_end(t->parts[p]));
    }
    appendf(b, "# HELP chronik_storage_usage_bytes Bytes of log segments.\n# TYPE chronik_storage_usage_bytes gauge\n");
    long long total = 0;
    for (int i = 0; i < n; i++) {
        ck_topic_t *t = ck_topics_at(topics, i);
        for (int32_t p = 0; p < t->npart; p++)
            total += ck_partition_size_bytes(t->parts[p]);
    }
    appendf(b, "chronik_storage_usage_bytes %lld\n", total);
    ck_broker_render_latency(broker, b);
}

static void respond(mconn_t *c)
{
    char method[16] = "", path[256] = "";
    sscanf(c->req, "%15s %255s", method, path);
    char *q = strchr(path, '?');
    if (q)
        *q = 0;
    ck_wbuf_t body = CK_WBUF_INIT;
    int status = 200;
    const char *ctype = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = 405;
        appendf(&body, "method not allowed\n");
    } else if (!strcmp(path, "/metrics")) {
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        ck_metrics_render(c->m->broker, c->m->topics, &body);
        if (c->m->extra)
            c->m->extra(c->m->extra_arg, &body);
    } else if (!strcmp(path, "/health") || !strcmp(path, "/ready")) {
        appendf(&body, "OK");
    } else {
        status = 404;
        appendf(&body, "not found\n");
    }
    appendf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
            status, status == 200 ? "OK" : status == 404 ? "Not Found" : "Method Not Allowed", ctype, body.len);
    if (strcmp(method, "HEAD") != 0)
        ck_wr_bytes(&c->out, body.data, body.len);
    ck_wbuf_free(&body);
}

static void mconn_io(ck_watch_t *w, int events)
{
    mconn_t *c = w->data;
    if (!c->out.len && (events & CK_EV_READ)) {
        ssize_t n = read(w->fd, c->req + c->rlen, sizeof(c->req) - 1 - c->rlen);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            mconn_close(c);
            return;
        }
        c->rlen += (size_t)n;
        c->req[c->rlen] = 0;
        if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
            if (c->rlen >= sizeof(c->req) - 1)
                mconn_close(c);
            return;
        }
        respond(c);
        if (c->out.err) {
            mconn_close(c);
            return;
        }
        ck_watch_set(c->m->loop, w, CK_EV_WRITE);
    }
    if (c->out.len) {
        ssize_t n = write(w->fd, c->out.data + c->sent, c->out.len - c->sent);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            mconn_close(c);
            return;
        }
        c->sent += (size_t)n;
        if (c->sent == c->out.len)
            mconn_close(c);
    }
}

static void mconn_timeout(ck_timer_t *t) { mconn_close(t->data); }

static void on_accept(ck_watch_t *w, int events)
{
    ck_metrics_t *m = w->data;
    for (int i = 0; i < 16; i++) {
        int fd = ck_sock_accept(w->fd);
        if (fd < 0)
            return;
        mconn_t *c = ck_calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->m = m;
        ck_timer_init(&c->timeout, mconn_timeout, c);
        if (ck_watch_start(m->loop, &c->w, fd, CK_EV_READ, mconn_io, c) != 0) {
            close(fd);
            ck_free(c);
            continue;
        }
        ck_timer_start(m->loop, &c->timeout, ck_loop_now(m->loop) + 10000);
    }
}

int ck_metrics_start(ck_loop_t *loop, const char *host, int port, ck_broker_t *b, ck_topics_t *topics,
                     ck_metrics_t **out, const char **msg)
{
    ck_metrics_t *m = ck_calloc(1, sizeof(*m));
    if (!m)
        return CK_ENOMEM;
    m->loop = loop;
    m->broker = b;
    m->topics = topics;
    int fd = ck_sock_listen(host, port, 128, msg);
    if (fd < 0) {
        ck_free(m);
        return fd;
    }
    int rc = ck_watch_start(loop, &m->listen, fd, CK_EV_READ, on_accept, m);
    if (rc) {
        close(fd);
        ck_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void ck_metrics_stop(ck_metrics_t *m)
{
    if (!m)
        return;
    ck_watch_stop(m->loop, &m->listen);
    close(m->listen.fd);
    ck_free(m);
}
