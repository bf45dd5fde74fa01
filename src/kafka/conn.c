/* Connections: framing ([int32 size][request]), the per-connection request queue that
 * keeps replies in request order while later requests are already being processed
 * (pipelining), backpressure, idle timeouts, and the parked (deferred) requests.
 *
 * A request's life: read → dispatch (decode, handle) → DONE or DEFER → finished → written
 * → freed. A connection that goes away while requests are parked leaves them orphaned
 * (conn = NULL); they are freed when they complete, so a handler never sees freed memory. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/logging.h"
#include "kafka/broker_int.h"
#include "net/sock.h"

#define READ_CHUNK 65536
#define MAX_QUEUED_REQUESTS 1024
#define IOV_MAX_BATCH 64

static void conn_io(ck_watch_t *w, int events);
static void conn_close(ck_kconn_t *c, const char *why);

void ck_broker_config_default(ck_broker_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->advertised_host = "127.0.0.1";
    c->node_id = 1;
    c->cluster_id = "chronik-cluster";
    c->max_request_bytes = 104857600;
    c->idle_ms = 600000;
    c->auto_create_topics = true;
    c->default_partitions = 3;
    c->max_conn_pending_bytes = 64 << 20;
    c->offsets_retention_ms = 7LL * 24 * 3600 * 1000;
}

/* Large reply buffers (fetch) are kept for the next large reply: their pages stay mapped,
 * so the next reply is not paid for in page faults. */
#define SPARE_MIN ((size_t)1 << 20)
#define SPARE_MAX ((size_t)128 << 20)

static void req_free(ck_broker_t *b, ck_kreq_t *r)
{
    ck_free(r->frame);
    ck_arena_free(&r->arena);
    ck_free(r->cuts);
    /* a fetch's read buffer goes back to the broker for the next fetch */
    if (r->data.cap && r->data.cap <= SPARE_MAX && r->data.cap > b->scratch.cap) {
        ck_wbuf_free(&b->scratch);
        b->scratch = r->data;
        ck_wbuf_reset(&b->scratch);
    } else {
        ck_wbuf_free(&r->data);
    }
    if (r->resp.cap >= SPARE_MIN && r->resp.cap <= SPARE_MAX && r->resp.cap > b->spare.cap) {
        ck_wbuf_free(&b->spare);
        b->spare = r->resp;
        ck_wbuf_reset(&b->spare);
    } else {
        ck_wbuf_free(&r->resp);
    }
    ck_free(r);
}

/* Fills iov with the not yet sent part of r's reply: the reply buffer, interleaved with
 * the records the cuts refer to. Returns the number of entries used (<= max). */
static int req_iov(const ck_kreq_t *r, struct iovec *iov, int max)
{
    size_t skip = r->resp_sent, at = 0;
    int n = 0;
    for (int i = 0; i <= r->ncuts && n < max; i++) {
        size_t end = i < r->ncuts ? r->cuts[i].at : r->resp.len;
        const uint8_t *parts[2] = {r->resp.data + at, i < r->ncuts ? r->cuts[i].ptr : NULL};
        size_t lens[2] = {end - at, i < r->ncuts ? r->cuts[i].len : 0};
        for (int k = 0; k < 2 && n < max; k++) {
            if (skip >= lens[k]) {
                skip -= lens[k];
                continue;
            }
            iov[n].iov_base = (void *)(parts[k] + skip);
            iov[n].iov_len = lens[k] - skip;
            skip = 0;
            n++;
        }
        at = end;
    }
    return n;
}

static void records_sink(void *arg, ck_wbuf_t *w, ck_slice_t s)
{
    ck_kreq_t *r = arg;
    if (r->ncuts == r->cuts_cap) {
        int cap = r->cuts_cap ? r->cuts_cap * 2 : 16;
        ck_kcut_t *nc = ck_realloc(r->cuts, (size_t)cap * sizeof(*nc));
        if (!nc) {
            w->err = CK_ENOMEM;
            return;
        }
        r->cuts = nc;
        r->cuts_cap = cap;
    }
    r->cuts[r->ncuts++] = (ck_kcut_t){w->len, s.ptr, (size_t)s.len};
    r->cut_bytes += (size_t)s.len;
}

void ck__kreq_records_by_reference(ck_kreq_t *r, bool on)
{
    ck__records_sink = on ? records_sink : NULL;
    ck__records_sink_arg = on ? r : NULL;
}

void ck__kreq_reserve(ck_broker_t *b, ck_kreq_t *r, size_t n)
{
    if (r->resp.cap - r->resp.len >= n)
        return;
    if (b->spare.cap >= r->resp.len + n) {
        ck_wbuf_t w = b->spare;
        b->spare = CK_WBUF_INIT;
        ck_wbuf_reset(&w);
        ck_wr_bytes(&w, r->resp.data, r->resp.len); /* the response header so far */
        ck_wbuf_free(&r->resp);
        r->resp = w;
        return;
    }
    ck_wbuf_reserve(&r->resp, n);
}

/* ---- parked requests ---- */

static void wait_unlink(ck_broker_t *b, ck_kreq_t *r)
{
    if (!r->waiting)
        return;
    if (r->wait_prev)
        r->wait_prev->wait_next = r->wait_next;
    else
        b->waiting = r->wait_next;
    if (r->wait_next)
        r->wait_next->wait_prev = r->wait_prev;
    r->wait_next = r->wait_prev = NULL;
    r->waiting = false;
}

static void arm_wait_timer(ck_broker_t *b)
{
    int64_t next = -1;
    for (ck_kreq_t *r = b->waiting; r; r = r->wait_next)
        if (r->deadline_ms >= 0 && (next < 0 || r->deadline_ms < next))
            next = r->deadline_ms;
    if (next >= 0)
        ck_timer_start(b->loop, &b->wait_timer, next);
    else
        ck_timer_stop(b->loop, &b->wait_timer);
}

void ck__kreq_wait(ck_broker_t *b, ck_kreq_t *r, ck_kreq_resume_fn resume, int64_t deadline_ms)
{
    r->resume = resume;
    r->deadline_ms = deadline_ms;
    r->waiting = true;
    r->wait_prev = NULL;
    r->wait_next = b->waiting;
    if (b->waiting)
        b->waiting->wait_prev = r;
    b->waiting = r;
    if (deadline_ms >= 0 && (!ck_timer_armed(&b->wait_timer) || deadline_ms < b->wait_timer.deadline_ms))
        ck_timer_start(b->loop, &b->wait_timer, deadline_ms);
}

static void run_waiters(ck_broker_t *b, bool only_timeouts)
{
    int64_t now = ck_mono_ms();
    ck_kreq_t *r = b->waiting;
    while (r) {
        ck_kreq_t *next = r->wait_next;
        bool timed_out = r->deadline_ms >= 0 && now >= r->deadline_ms;
        if (!only_timeouts || timed_out) {
            int rc = r->resume(b, r, timed_out);
            if (rc != CK_H_DEFER) {
                wait_unlink(b, r);
                if (rc == CK_H_NORESP)
                    r->noresp = true;
                ck__kreq_finish(b, r);
            }
        }
        r = next;
    }
    arm_wait_timer(b);
}

void ck__broker_wake_waiters(ck_broker_t *b) { run_waiters(b, false); }
void ck_broker_on_durable(ck_broker_t *b) { run_waiters(b, false); }

void ck_broker_topics_changed(ck_broker_t *b) { ck__broker_wake_waiters(b); }

static void wait_timer_cb(ck_timer_t *t) { run_waiters(t->data, true); }

/* ---- output ---- */

static void conn_update_interest(ck_kconn_t *c)
{
    int ev = 0;
    if (!c->read_paused && !c->peer_closed && c->b->accepting)
        ev |= CK_EV_READ;
    if (c->q_head && c->q_head->done && !c->q_head->noresp)
        ev |= CK_EV_WRITE;
    ck_watch_set(c->b->loop, &c->watch, ev);
}

/* Writes finished responses at the head of the queue. Returns -1 if the connection died. */
static int conn_flush(ck_kconn_t *c)
{
    ck_broker_t *b = c->b;
    for (;;) {
        /* skip acks=0 produce requests that need no reply */
        while (c->q_head && c->q_head->done && c->q_head->noresp) {
            ck_kreq_t *r = c->q_head;
            c->q_head = r->next;
            if (!c->q_head)
                c->q_tail = NULL;
            c->q_len--;
            c->pending_bytes -= r->frame_len;
            b->inflight--;
            req_free(b, r);
        }
        if (!c->q_head || !c->q_head->done)
            break;
        struct iovec iov[IOV_MAX_BATCH];
        int n = 0;
        for (ck_kreq_t *r = c->q_head; r && r->done && n < IOV_MAX_BATCH; r = r->next) {
            if (r->noresp)
                break;
            n += req_iov(r, iov + n, IOV_MAX_BATCH - n);
        }
        if (n == 0)
            continue;
        ssize_t w = writev(c->watch.fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            conn_close(c, "write failed");
            return -1;
        }
        b->bytes_out += (uint64_t)w;
        size_t left = (size_t)w;
        while (left && c->q_head) {
            ck_kreq_t *r = c->q_head;
            size_t rem = ck__kreq_len(r) - r->resp_sent;
            if (left < rem) {
                r->resp_sent += left;
                left = 0;
                break;
            }
            left -= rem;
            c->q_head = r->next;
            if (!c->q_head)
                c->q_tail = NULL;
            c->q_len--;
            c->pending_bytes -= r->frame_len + ck__kreq_len(r);
            b->inflight--;
            req_free(b, r);
        }
        if (c->q_head && c->q_head->done && c->q_head->resp_sent > 0)
            break; /* partial write: wait for EPOLLOUT */
    }
    if (c->read_paused && c->q_len < MAX_QUEUED_REQUESTS / 2 &&
        (int64_t)c->pending_bytes < b->cfg.max_conn_pending_bytes / 2)
        c->read_paused = false;
    if (c->closing && !c->q_head) {
        conn_close(c, NULL);
        return -1;
    }
    conn_update_interest(c);
    return 0;
}

const double ck__lat_bounds[CK_LAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10};

static void record_latency(ck_broker_t *b, ck_kreq_t *r)
{
    if (r->api_key < 0 || r->api_key >= CK_LAT_KEYS || !r->start_us)
        return;
    double s = (double)((ck_mono_ns() / 1000) - r->start_us) / 1e6;
    int i = 0;
    while (i < CK_LAT_BUCKETS && s > ck__lat_bounds[i])
        i++;
    pthread_mutex_lock(&b->lat_mu);
    b->lat_hist[r->api_key][i]++;
    b->lat_count[r->api_key]++;
    b->lat_sum[r->api_key] += s;
    pthread_mutex_unlock(&b->lat_mu);
}

void ck_broker_render_latency(ck_broker_t *b, ck_wbuf_t *out)
{
    static const char hdr[] = "# HELP chronik_kafka_request_duration_seconds Kafka request latency, arrival to reply.\n"
                              "# TYPE chronik_kafka_request_duration_seconds histogram\n";
    ck_wr_bytes(out, hdr, sizeof(hdr) - 1);
    char line[256];
    pthread_mutex_lock(&b->lat_mu);
    for (int k = 0; k < CK_LAT_KEYS; k++) {
        if (!b->lat_count[k])
            continue;
        const ck_kafka_api_t *api = ck_kafka_api_find((int16_t)k);
        const char *name = api ? api->name : "unknown";
        uint64_t cum = 0;
        for (int i = 0; i <= CK_LAT_BUCKETS; i++) {
            cum += b->lat_hist[k][i];
            int n = i < CK_LAT_BUCKETS
                        ? snprintf(line, sizeof(line), "chronik_kafka_request_duration_seconds_bucket{api=\"%s\",le=\"%g\"} %llu\n",
                                   name, ck__lat_bounds[i], (unsigned long long)cum)
                        : snprintf(line, sizeof(line), "chronik_kafka_request_duration_seconds_bucket{api=\"%s\",le=\"+Inf\"} %llu\n",
                                   name, (unsigned long long)cum);
            ck_wr_bytes(out, line, (size_t)n);
        }
        int n = snprintf(line, sizeof(line), "chronik_kafka_request_duration_seconds_sum{api=\"%s\"} %.6f\n"
                                             "chronik_kafka_request_duration_seconds_count{api=\"%s\"} %llu\n",
                         name, b->lat_sum[k], name, (unsigned long long)b->lat_count[k]);
        if (n > 0 && (size_t)n < sizeof(line))
            ck_wr_bytes(out, line, (size_t)n);
    }
    pthread_mutex_unlock(&b->lat_mu);
}

void ck__kreq_finish(ck_broker_t *b, ck_kreq_t *r)
{
    r->done = true;
    record_latency(b, r);
    if (!r->noresp) {
        /* patch the size prefix */
        ck_put_u32(r->resp.data, (uint32_t)(ck__kreq_len(r) - 4));
    }
    ck_kconn_t *c = r->conn;
    if (!c) {
        /* orphaned: the connection is gone */
        b->inflight--;
        req_free(b, r);
        return;
    }
    if (!r->noresp)
        c->pending_bytes += ck__kreq_len(r);
    if (c->q_head == r || (c->q_head && c->q_head->done))
        conn_flush(c);
}

/* ---- dispatch ---- */

static void dispatch(ck_kconn_t *c, ck_kreq_t *r)
{
    ck_broker_t *b = c->b;
    ck_rbuf_t rd;
    ck_rbuf_init(&rd, r->frame, r->frame_len);
    int16_t key = ck_get_u16(r->frame) , ver = (int16_t)ck_get_u16(r->frame + 2);
    r->api_key = key;
    r->api_version = ver;
    r->start_us = (ck_mono_ns() / 1000);
    r->correlation_id = (int32_t)ck_get_u32(r->frame + 4);
    const ck_served_api_t *api = ck__served_api(key);
    bool unsupported = !api || ver < api->min_version || ver > api->max_version;
    if (unsupported && key != CK_API_API_VERSIONS) {
        CK_WARN("kafka", "%s: unsupported API key %d version %d, closing connection", c->peer, key, ver);
        r->done = true;
        r->noresp = true;
        c->closing = true;
        return;
    }
    int hv = unsupported ? 1 : ck_kafka_request_header_version(key, ver);
    ck_kafka_request_header_t hdr;
    ck_kafka_request_header_init(&hdr);
    if (ck_kafka_request_header_decode(&rd, (int16_t)hv, &r->arena, &hdr) != 0) {
        CK_WARN("kafka", "%s: malformed request header, closing connection", c->peer);
        r->done = true;
        r->noresp = true;
        c->closing = true;
        return;
    }
    r->client_id = hdr.client_id;
    /* response header: size placeholder, correlation id, tagged fields for v1 */
    ck_wr_u32(&r->resp, 0);
    ck_wr_i32(&r->resp, r->correlation_id);
    if (!unsupported && ck_kafka_response_header_version(key, ver) >= 1)
        ck_wr_u8(&r->resp, 0);
    int rc;
    if (unsupported) {
        /* ApiVersions newer than ours: reply v0 with UNSUPPORTED_VERSION and our ranges,
         * so the client can retry with a version we know. */
        r->api_version = 0;
        rc = ck__h_api_versions(b, r, NULL);
    } else {
        rc = api->fn(b, r, &rd);
    }
    if (r->resp.err)
        rc = CK_H_CLOSE;
    switch (rc) {
    case CK_H_DONE:
        r->done = true;
        break;
    case CK_H_DEFER:
        break; /* handler parked it with ck__kreq_wait */
    case CK_H_NORESP:
        r->done = true;
        r->noresp = true;
        break;
    default:
        CK_WARN("kafka", "%s: malformed %s v%d request (correlation id %d), closing connection",
                c->peer, ck_kafka_api_find(key) ? ck_kafka_api_find(key)->name : "?", ver,
                r->correlation_id);
        r->done = true;
        r->noresp = true;
        c->closing = true;
        break;
    }
    if (r->done && !r->noresp)
        ck_put_u32(r->resp.data, (uint32_t)(ck__kreq_len(r) - 4));
    if (r->done && !r->noresp)
        c->pending_bytes += ck__kreq_len(r);
}

/* Takes ownership of frame. */
static void enqueue(ck_kconn_t *c, uint8_t *frame, size_t len)
{
    ck_broker_t *b = c->b;
    ck_kreq_t *r = ck_calloc(1, sizeof(*r));
    if (!r) {
        ck_free(frame);
        conn_close(c, "out of memory");
        return;
    }
    r->conn = c;
    r->frame = frame;
    r->frame_len = len;
    if (c->q_tail)
        c->q_tail->next = r;
    else
        c->q_head = r;
    c->q_tail = r;
    c->q_len++;
    c->pending_bytes += len;
    b->inflight++;
    dispatch(c, r);
}

/* Cuts the complete small frames out of rbuf; a frame too large for rbuf moves to its own
 * buffer (c->big), which later reads fill directly. Returns -1 if c was closed. */
static int conn_cut_frames(ck_kconn_t *c)
{
    ck_broker_t *b = c->b;
    size_t off = 0;
    while (c->rlen - off >= 4 && !c->closing) {
        int32_t size = (int32_t)ck_get_u32(c->rbuf + off);
        if (size < 8 || (int64_t)size > b->cfg.max_request_bytes) {
            CK_WARN("kafka", "%s: invalid request size %d (limit %lld), closing connection", c->peer,
                    size, (long long)b->cfg.max_request_bytes);
            conn_close(c, NULL);
            return -1;
        }
        size_t have = c->rlen - off - 4;
        if (have < (size_t)size && (size_t)size + 4 <= READ_CHUNK)
            break; /* a small frame: wait until it is all in rbuf */
        /* the size is known and allowed: allocate exactly that, once */
        uint8_t *frame = ck_malloc((size_t)size);
        if (!frame) {
            conn_close(c, "out of memory");
            return -1;
        }
        size_t take = have < (size_t)size ? have : (size_t)size;
        memcpy(frame, c->rbuf + off + 4, take);
        off += 4 + take;
        if (take < (size_t)size) {
            c->big = frame;
            c->big_len = (size_t)size;
            c->big_got = take;
            break;
        }
        enqueue(c, frame, (size_t)size);
        if (c->q_len >= MAX_QUEUED_REQUESTS || (int64_t)c->pending_bytes >= b->cfg.max_conn_pending_bytes)
            c->read_paused = true;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return 0;
}

static void conn_read(ck_kconn_t *c)
{
    ck_broker_t *b = c->b;
    if (!c->rbuf && !(c->rbuf = ck_malloc(READ_CHUNK))) {
        conn_close(c, "out of memory");
        return;
    }
    for (int rounds = 0; rounds < 16 && !c->read_paused && !c->closing; rounds++) {
        uint8_t *dst = c->big ? c->big + c->big_got : c->rbuf + c->rlen;
        size_t room = c->big ? c->big_len - c->big_got : READ_CHUNK - c->rlen;
        ssize_t n = read(c->watch.fd, dst, room);
        if (n == 0) {
            c->peer_closed = true;
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_close(c, "read failed");
            return;
        }
        b->bytes_in += (uint64_t)n;
        c->last_active_ms = ck_loop_now(b->loop);
        if (c->big) {
            c->big_got += (size_t)n;
            if (c->big_got == c->big_len) {
                uint8_t *frame = c->big;
                c->big = NULL;
                enqueue(c, frame, c->big_len);
                if (c->q_len >= MAX_QUEUED_REQUESTS || (int64_t)c->pending_bytes >= b->cfg.max_conn_pending_bytes)
                    c->read_paused = true;
            }
            continue;
        }
        c->rlen += (size_t)n;
        if (conn_cut_frames(c) < 0)
            return;
    }
    if (c->peer_closed) {
        /* half-close: answer what was asked, then close */
        c->closing = true;
        if (!c->q_head) {
            conn_close(c, NULL);
            return;
        }
    }
    conn_flush(c);
}

static void conn_io(ck_watch_t *w, int events)
{
    ck_kconn_t *c = w->data;
    if (events & CK_EV_READ) {
        if (!c->read_paused && !c->peer_closed) {
            conn_read(c);
            return; /* conn_read flushes; c may be gone */
        }
        if (c->read_paused && !c->peer_closed) {
            /* not reading, yet woken: a hang-up or error (level-triggered, so it would
             * wake us again and again); find out which without consuming data */
            char b;
            ssize_t n = recv(c->watch.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0) {
                c->peer_closed = true;
                c->closing = true;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                conn_close(c, "socket error");
                return;
            }
        }
    }
    if (events & CK_EV_WRITE)
        conn_flush(c);
}

static void conn_close(ck_kconn_t *c, const char *why)
{
    ck_broker_t *b = c->b;
    if (why)
        CK_DEBUG("kafka", "%s: closing connection: %s", c->peer, why);
    ck_watch_stop(b->loop, &c->watch);
    close(c->watch.fd);
    c->watch.fd = -1;
    ck_kreq_t *r = c->q_head;
    while (r) {
        ck_kreq_t *n = r->next;
        if (r->done) {
            b->inflight--;
            req_free(b, r);
        } else {
            r->conn = NULL; /* parked: freed when it completes */
            r->next = NULL;
        }
        r = n;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->nconns--;
    ck_free(c->rbuf);
    ck_free(c->big);
    ck_free(c);
}

static void on_accept(ck_watch_t *w, int events)
{
    ck_broker_t *b = w->data;
    for (int i = 0; i < 64; i++) {
        int fd = ck_sock_accept(w->fd);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR)
                CK_WARN("kafka", "accept failed: %s", strerror(errno));
            return;
        }
        ck_kconn_t *c = ck_calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->b = b;
        c->last_active_ms = ck_loop_now(b->loop);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char host[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            } else if (ss.ss_family == AF_INET6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            }
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
        if (ck_watch_start(b->loop, &c->watch, fd, CK_EV_READ, conn_io, c) != 0) {
            close(fd);
            ck_free(c);
            continue;
        }
        c->next = b->conns;
        if (b->conns)
            b->conns->prev = c;
        b->conns = c;
        b->nconns++;
    }
}

static void idle_timer_cb(ck_timer_t *t)
{
    ck_broker_t *b = t->data;
    int64_t now = ck_mono_ms();
    ck_kconn_t *c = b->conns;
    while (c) {
        ck_kconn_t *n = c->next;
        if (!c->q_head && now - c->last_active_ms > b->cfg.idle_ms)
            conn_close(c, "idle");
        c = n;
    }
    ck_timer_start(b->loop, t, now + 1000);
}

static void sweep_timer_cb(ck_timer_t *t)
{
    ck_broker_t *b = t->data;
    ck_log_sweep(b->log, ck_wall_ms());
    ck_timer_start(b->loop, t, ck_mono_ms() + 5000);
}

int ck_broker_new(ck_loop_t *loop, ck_log_t *log, ck_topics_t *topics, const ck_broker_config_t *cfg,
                  ck_broker_t **out)
{
    ck_broker_t *b = ck_calloc(1, sizeof(*b));
    if (!b)
        return CK_ENOMEM;
    b->loop = loop;
    b->log = log;
    b->topics = topics;
    b->cfg = *cfg;
    b->advertised_host = ck_strdup(cfg->advertised_host ? cfg->advertised_host : "127.0.0.1");
    b->cluster_id = ck_strdup(cfg->cluster_id ? cfg->cluster_id : "chronik-cluster");
    b->cfg.advertised_host = b->advertised_host;
    b->cfg.cluster_id = b->cluster_id;
    b->accepting = true;
    b->next_session_id = 1;
    pthread_mutex_init(&b->lat_mu, NULL);
    ck_timer_init(&b->wait_timer, wait_timer_cb, b);
    ck_timer_init(&b->idle_timer, idle_timer_cb, b);
    ck_timer_init(&b->sweep_timer, sweep_timer_cb, b);
    ck_timer_start(loop, &b->idle_timer, ck_mono_ms() + 1000);
    ck_timer_start(loop, &b->sweep_timer, ck_mono_ms() + 5000);
    ck__groups_start(b);
    *out = b;
    return 0;
}

int ck_broker_listen(ck_broker_t *b, const char *host, int port, int *bound_port, const char **msg)
{
    if (b->nlisteners >= 4) {
        *msg = "too many listeners";
        return CK_EINVAL;
    }
    int fd = ck_sock_listen(host, port, 1024, msg);
    if (fd < 0)
        return fd;
    int rc = ck_watch_start(b->loop, &b->listeners[b->nlisteners], fd, CK_EV_READ, on_accept, b);
    if (rc) {
        close(fd);
        *msg = "cannot watch the listening socket";
        return rc;
    }
    b->nlisteners++;
    if (b->nlisteners == 1)
        b->bound_port = ck_sock_port(fd); /* the port advertised when none is set */
    if (bound_port)
        *bound_port = ck_sock_port(fd);
    return 0;
}

void ck_broker_stop_accepting(ck_broker_t *b)
{
    b->accepting = false;
    for (int i = 0; i < b->nlisteners; i++) {
        ck_watch_stop(b->loop, &b->listeners[i]);
        close(b->listeners[i].fd);
    }
    b->nlisteners = 0;
    for (ck_kconn_t *c = b->conns; c; c = c->next)
        conn_update_interest(c);
}

int ck_broker_inflight(const ck_broker_t *b) { return b->inflight; }
void ck_broker_set_offsets(ck_broker_t *b, ck_offsets_t *offsets) { b->offsets = offsets; }

void ck_broker_stats(const ck_broker_t *b, ck_broker_stats_t *out)
{
    out->produce_requests = b->produce_requests;
    out->fetch_requests = b->fetch_requests;
    out->bytes_in = b->bytes_in;
    out->bytes_out = b->bytes_out;
    out->produced_bytes = b->produced_bytes;
    out->produced_records = b->produced_records;
    out->fetched_bytes = b->fetched_bytes;
    out->connections = b->nconns;
    out->inflight = b->inflight;
}

void ck_broker_free(ck_broker_t *b)
{
    if (!b)
        return;
    ck_broker_stop_accepting(b);
    /* complete parked requests with what they have (timeout path) */
    while (b->waiting) {
        ck_kreq_t *r = b->waiting;
        wait_unlink(b, r);
        r->resume(b, r, true);
        if (r->conn)
            r->done = true;
        else {
            b->inflight--;
            req_free(b, r);
        }
    }
    while (b->conns)
        conn_close(b->conns, NULL);
    ck__idem_close(b); /* before the topics close: snapshots need the partitions */
    ck_timer_stop(b->loop, &b->wait_timer);
    ck_timer_stop(b->loop, &b->idle_timer);
    ck_timer_stop(b->loop, &b->sweep_timer);
    ck__fetch_sessions_free(b);
    ck__groups_stop(b);
    ck_wbuf_free(&b->scratch);
    ck_wbuf_free(&b->spare);
    ck_free(b->advertised_host);
    ck_free(b->cluster_id);
    ck_free(b);
}
