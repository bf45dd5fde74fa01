/* The server: a libmicrohttpd daemon with one thread per connection, and the life of one
 * request on it.
 *
 * Request flow (all on the connection's thread):
 *   request line    uri_started(): allocates the ck_http_req_t, keeps the raw path
 *                   (MHD decodes the path before the access handler sees it, and a decoded
 *                   "%2F" could no longer be told from a '/').
 *   headers read    on_access() first call: decode and match the path; a Content-Length
 *                   over the limit is answered 413 at once (MHD then closes the connection
 *                   instead of reading the body).
 *   body chunks     on_access() with data: appended up to max_body_bytes; past it (chunked
 *                   bodies) or for a request already refused, read and dropped, and the
 *                   connection is dropped after another max_body_bytes.
 *   body complete   on_access() last call: 404/405/413/400, or the handler; respond().
 *   response sent   req_completed(): frees the request (also on errors and shutdown).
 *
 * Malformed framing. libmicrohttpd 0.9.75 mishandles some malformed requests, and this
 * layer works around it:
 *  - A line starting with a NUL byte counts as an empty line there and is skipped, so
 *    "\0garbage\r\n\r\n" on a fresh connection got no answer until the idle timeout (and
 *    a header line starting with NUL ended the header section). The listening socket
 *    defers accept until the client's first bytes arrive (TCP_DEFER_ACCEPT), and
 *    conn_started() peeks at them before MHD reads anything: a first request that does
 *    not start with a method token, or has a NUL byte in its header section, is answered
 *    400 on the socket and the connection closed (refuse_raw()).
 *  - A malformed or oversized Content-Length makes MHD queue its error page but then
 *    carry on, and it sends the header block twice. MHD logs the reason just before; on
 *    that message mhd_log() answers 400 (413) on the socket itself and shuts it down, so
 *    MHD's own writes fail and it closes the connection.
 *  - Conflicting Content-Length headers (MHD takes the first), Transfer-Encoding with
 *    Content-Length, or a transfer coding other than chunked reach on_access(), which
 *    answers 400 (501 for an unknown coding with chunked last) and closes the connection
 *    (RFC 9112 section 6), never guessing the body length.
 *
 * Stop: mark stopping (new requests get 503 and Connection: close), close the listening
 * socket (MHD_quiesce_daemon), wait up to stop_grace_ms for requests in flight to
 * complete, then MHD_stop_daemon shuts every connection down and joins their threads. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/logging.h"
#include "http/http_int.h"

/* Per-connection memory of MHD (request line, headers, read buffer): header sections
 * beyond about this size get 431. */
#define CONN_MEMORY (64 * 1024)
/* The most body buffer allocated before the bytes arrive. */
#define PREALLOC_MAX ((size_t)1 << 20)
/* The kernel holds a new connection back from accept until its first bytes arrive, up
 * to about this long (then it is accepted anyway), so they can be checked. */
#define DEFER_ACCEPT_S 3
/* How much of a new connection's first bytes conn_started() looks at. */
#define SNIFF_BYTES 8192

/* The socket context of a connection refused by conn_started(). */
static char refused_conn;

/* The request whose header MHD is reading on this (connection) thread: from its request
 * line (uri_started) to the first on_access() call. For mhd_log(). */
static __thread ck_http_req_t *tl_req;

static const char oom_body[] = "{\"error\":\"out of memory\",\"error_type\":\"InternalError\"}";

void ck_http_config_default(ck_http_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->bind = "0.0.0.0";
    c->port = 6092;
    c->max_body_bytes = 16u << 20;
    c->idle_timeout_s = 60;
    c->max_connections = 1024;
    c->stop_grace_ms = 5000;
}

int ck_http_new(const ck_http_config_t *cfg, ck_http_t **out)
{
    if (cfg->port < 0 || cfg->port > 65535 || cfg->max_body_bytes == 0 ||
        cfg->max_body_bytes > SIZE_MAX / 4 || cfg->idle_timeout_s < 0 || cfg->max_connections < 1 ||
        cfg->stop_grace_ms < 0)
        return CK_EINVAL;
    ck_http_t *h = ck_calloc(1, sizeof(*h));
    if (!h)
        return CK_ENOMEM;
    h->h_cfg = *cfg;
    h->h_bind = ck_strdup(cfg->bind ? cfg->bind : "");
    if (!h->h_bind) {
        ck_free(h);
        return CK_ENOMEM;
    }
    h->h_cfg.bind = h->h_bind;
    pthread_mutex_init(&h->h_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->h_cv, &ca);
    pthread_condattr_destroy(&ca);
    ck__http_metrics_init(&h->h_metrics);
    *out = h;
    return 0;
}

int ck_http_route(ck_http_t *h, const char *method, const char *pattern, ck_http_handler fn,
                  void *ud)
{
    if (h->h_state != CK__HTTP_NEW)
        return CK_ESTATE;
    int mi = method ? ck__http_method_index(method) : -1;
    if (mi < 0 || !fn)
        return CK_EINVAL;
    ck__http_route_t *rt;
    int rc = ck__http_route_parse(pattern, &rt);
    if (rc)
        return rc;
    for (int i = 0; i < h->h_nroutes; i++) {
        ck__http_route_t *o = h->h_routes[i];
        if (!ck__http_route_same(o, rt))
            continue;
        ck__http_route_free(rt);
        if (o->rt_fn[mi])
            return CK_EEXIST;
        o->rt_fn[mi] = fn;
        o->rt_ud[mi] = ud;
        return 0;
    }
    if (h->h_nroutes == h->h_caproutes) {
        int cap = h->h_caproutes ? h->h_caproutes * 2 : 16;
        ck__http_route_t **n = ck_realloc(h->h_routes, (size_t)cap * sizeof(*n));
        if (!n) {
            ck__http_route_free(rt);
            return CK_ENOMEM;
        }
        h->h_routes = n;
        h->h_caproutes = cap;
    }
    rt->rt_fn[mi] = fn;
    rt->rt_ud[mi] = ud;
    rt->rt_id = h->h_nroutes;
    h->h_routes[h->h_nroutes++] = rt;
    return 0;
}

/* ---- listening socket ---- */

static bool is_wildcard(const char *b)
{
    return !*b || !strcmp(b, "0.0.0.0") || !strcmp(b, "::") || !strcmp(b, "[::]") ||
           !strcmp(b, "*");
}

static int try_bind(int family, const struct sockaddr *sa, socklen_t salen, bool v6only, int *err)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int one = 1, v6 = v6only ? 1 : 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6)) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    if (bind(fd, sa, salen) != 0 || listen(fd, SOMAXCONN) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    /* best effort: without it, conn_started() sees the first bytes only when they came
     * quickly enough */
    int defer = DEFER_ACCEPT_S;
    if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer)) != 0)
        CK_DEBUG("http", "TCP_DEFER_ACCEPT: %s", strerror(errno));
    return fd;
}

/* Returns a listening socket and its family, or a CK_E* code with h_errbuf set. */
static int http_listen(ck_http_t *h, int *family)
{
    const char *b = h->h_bind;
    int port = h->h_cfg.port, err = 0, fd;
    if (is_wildcard(b)) {
        struct sockaddr_in6 s6 = {
            .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};
        fd = try_bind(AF_INET6, (struct sockaddr *)&s6, sizeof(s6), false, &err);
        if (fd >= 0) {
            *family = AF_INET6;
            return fd;
        }
        /* IPv6 missing (no module, disabled): IPv4 alone. A port in use stays an error. */
        if (err == EAFNOSUPPORT || err == EADDRNOTAVAIL || err == EPROTONOSUPPORT ||
            err == EINVAL) {
            struct sockaddr_in s4 = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)port),
                                     .sin_addr.s_addr = htonl(INADDR_ANY)};
            fd = try_bind(AF_INET, (struct sockaddr *)&s4, sizeof(s4), false, &err);
            if (fd >= 0) {
                *family = AF_INET;
                return fd;
            }
        }
    } else {
        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", port);
        int gai = getaddrinfo(b, ps, &hints, &res);
        if (gai != 0 || !res) {
            snprintf(h->h_errbuf, sizeof(h->h_errbuf), "bind address %s: %s", b,
                     gai ? gai_strerror(gai) : "no address");
            return CK_EINVAL;
        }
        fd = -1;
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = try_bind(ai->ai_family, ai->ai_addr, ai->ai_addrlen, true, &err);
            if (fd >= 0)
                *family = ai->ai_family;
        }
        freeaddrinfo(res);
        if (fd >= 0)
            return fd;
    }
    snprintf(h->h_errbuf, sizeof(h->h_errbuf), "bind %s:%d: %s", *b ? b : "0.0.0.0", port,
             strerror(err));
    return err == EADDRINUSE ? CK_EEXIST : ck_from_errno(err);
}

/* ---- refusing behind MHD's back ---- */

/* Writes a complete error response (JSON body, Connection: close) straight to fd, then
 * shuts the socket down both ways: MHD reads EOF, and its own writes fail, so it closes
 * the connection without sending anything more. Only for a socket on which MHD has no
 * response queued or in flight: before MHD reads the first request, or while it parses a
 * request's header. Waits up to wait_ms for room in the send buffer. msg must need no
 * JSON escaping. */
static void refuse_raw(int fd, int status, const char *error_type, const char *msg, int wait_ms)
{
    char body[384], buf[640];
    int bl =
        snprintf(body, sizeof(body), "{\"error\":\"%s\",\"error_type\":\"%s\"}", msg, error_type);
    if (bl < 0 || (size_t)bl >= sizeof(body))
        bl = 0;
    const char *reason = MHD_get_reason_phrase_for((unsigned)status);
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%.*s",
                     status, reason && *reason ? reason : "Error", bl, bl, body);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    size_t off = 0;
    int64_t deadline = ck_mono_ms() + wait_ms;
    while (off < len) {
        ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        int64_t left = deadline - ck_mono_ms();
        if (w == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, (int)left);
    }
    shutdown(fd, SHUT_RDWR);
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* What is wrong with the first n bytes a client sent (NULL: nothing seen so far): the
 * request must start with a method token (after empty lines, which MHD skips), and its
 * header section must not hold a NUL byte (MHD would take a line starting with one for
 * the empty line ending the header). */
static const char *bad_request_start(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i == n)
        return NULL;
    if (!is_tchar(p[i]))
        return "malformed request line";
    for (; i < n; i++) {
        if (p[i] == 0)
            return "NUL byte in the request header";
        if (p[i] == '\n' && i + 1 < n &&
            (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')))
            break; /* the end of the header section: the body may hold anything */
    }
    return NULL;
}

/* MHD_OPTION_NOTIFY_CONNECTION, on MHD's listening thread as a connection is accepted
 * and before its thread reads from it. Refuses a connection whose first bytes (usually
 * there already: TCP_DEFER_ACCEPT) cannot begin a request MHD handles properly. */
static void conn_started(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    int fd = ci->connect_fd;
    unsigned char buf[SNIFF_BYTES];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0)
        return;
    const char *why = bad_request_start(buf, (size_t)n);
    if (!why)
        return;
    *socket_context = &refused_conn;
    /* drop what arrived, so that MHD does not parse it and closing does not reset the
     * connection (losing the answer) over unread bytes */
    for (int i = 0; i < 64 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++) {
    }
    refuse_raw(fd, 400, "BadRequest", why, 0);
    CK_DEBUG("http", "new connection refused with 400: %s", why);
}

/* ---- responding ---- */

static void set_status_only(ck_http_resp_t *resp, int status)
{
    ck__http_resp_clear(resp);
    resp->rs_status = status;
}

/* Queues r's response, records metrics and logs. MHD_NO when it could not be queued
 * (MHD then drops the connection). */
static enum MHD_Result respond(ck_http_req_t *r)
{
    ck_http_t *h = r->rq_h;
    ck_http_resp_t *resp = &r->rq_resp;
    if (!resp->rs_status && !resp->rs_oom)
        ck_http_resp_error(resp, 500, "InternalError", "no response");
    if (!resp->rs_oom && (resp->rs_status < 100 || resp->rs_status > 999)) {
        CK_WARN("http", "%s %s: handler set status %d", r->rq_method, r->rq_raw_path,
                resp->rs_status);
        ck_http_resp_error(resp, 500, "InternalError", "invalid response status");
    }
    struct MHD_Response *mr = NULL;
    int status = resp->rs_status;
    if (!resp->rs_oom) {
        mr = MHD_create_response_from_buffer_with_free_callback(resp->rs_len, resp->rs_data,
                                                                ck_free);
        if (mr) {
            resp->rs_data = NULL; /* MHD frees it with the response */
            resp->rs_len = 0;
            bool ok = !resp->rs_ctype || MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                                                                 resp->rs_ctype) == MHD_YES;
            for (int i = 0; ok && i < resp->rs_nhdr; i++)
                ok = MHD_add_response_header(mr, resp->rs_hdr[i].name, resp->rs_hdr[i].value) ==
                     MHD_YES;
            if (!ok) {
                CK_WARN("http", "%s %s: handler set an invalid header", r->rq_method,
                        r->rq_raw_path);
                MHD_destroy_response(mr);
                mr = NULL;
                resp->rs_oom = true; /* answered with the static 500 below */
            }
        } else {
            resp->rs_oom = true;
        }
    }
    if (!mr) {
        status = 500;
        mr = MHD_create_response_from_buffer(sizeof(oom_body) - 1, (void *)oom_body,
                                             MHD_RESPMEM_PERSISTENT);
        if (mr)
            MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    }
    if (mr && atomic_load(&h->h_stopping))
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = mr ? MHD_queue_response(r->rq_conn, (unsigned)status, mr) : MHD_NO;
    if (mr)
        MHD_destroy_response(mr);
    r->rq_answered = true;

    double secs = (double)(ck_mono_ns() - r->rq_t0) / 1e9;
    int route = r->rq_route ? r->rq_route->rt_id : h->h_nroutes;
    ck__http_metrics_record(&h->h_metrics, ck__http_method_index(r->rq_method), route, status,
                            secs);
    /* a 503 is part of stopping, a 501 the client's doing */
    if (status >= 500 && r->rq_reject != 503 && r->rq_reject != 501)
        CK_WARN("http", "%s %s -> %d (%s) %.3f ms: %s", r->rq_method, r->rq_raw_path, status,
                r->rq_route ? r->rq_route->rt_pattern : "unmatched", secs * 1e3,
                resp->rs_oom      ? "out of memory"
                : resp->rs_errmsg ? resp->rs_errmsg
                                  : "");
    else
        CK_DEBUG("http", "%s %s -> %d (%s) %.3f ms", r->rq_method, r->rq_raw_path, status,
                 r->rq_route ? r->rq_route->rt_pattern : "unmatched", secs * 1e3);
    ck__http_resp_clear(resp);
    return ok;
}

/* Sets r's refusal (404/405/413/400/503) as the response. */
static void set_reject(ck_http_req_t *r, int status)
{
    ck_http_resp_t *resp = &r->rq_resp;
    switch (status) {
    case 404:
        set_status_only(resp, 404); /* upstream: empty body */
        break;
    case 405: {
        char allow[64] = "";
        for (int m = 0; m < CK__HTTP_NMETHODS; m++) {
            bool has =
                r->rq_route->rt_fn[m] || (m == CK__HTTP_HEAD && r->rq_route->rt_fn[CK__HTTP_GET]);
            if (has) {
                if (allow[0])
                    strcat(allow, ", ");
                strcat(allow, ck__http_method_name(m));
            }
        }
        ck_http_resp_error(resp, 405, "MethodNotAllowed", "method %s not allowed on %s",
                           r->rq_method, r->rq_raw_path);
        ck_http_resp_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        break;
    }
    case 413:
        ck_http_resp_error(resp, 413, "PayloadTooLarge",
                           "request body larger than the limit of %zu bytes",
                           r->rq_h->h_cfg.max_body_bytes);
        break;
    case 503:
        ck_http_resp_error(resp, 503, "ServiceUnavailable", "server shutting down");
        break;
    case 501:
        ck_http_resp_error(resp, 501, "NotImplemented", "%s", r->rq_framing);
        ck_http_resp_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        break;
    default:
        if (r->rq_framing) {
            ck_http_resp_error(resp, 400, "BadRequest", "%s", r->rq_framing);
            ck_http_resp_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        } else {
            ck_http_resp_error(resp, 400, "InvalidPath", "invalid percent-encoding in path");
        }
        break;
    }
}

/* ---- MHD callbacks ---- */

static void *uri_started(void *cls, const char *uri, struct MHD_Connection *conn)
{
    ck_http_t *h = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context == &refused_conn)
        return NULL; /* answered already: on_access drops the connection */
    ck_http_req_t *r = ck_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    size_t n = strcspn(uri, "?");
    r->rq_raw_path = ck_strndup(uri, n);
    if (!r->rq_raw_path) {
        ck_free(r);
        return NULL;
    }
    r->rq_h = h;
    r->rq_conn = conn;
    r->rq_midx = -1;
    pthread_mutex_lock(&h->h_mu);
    h->h_active++;
    pthread_mutex_unlock(&h->h_mu);
    tl_req = r;
    return r;
}

static void req_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    ck_http_t *h = cls;
    ck_http_req_t *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    if (tl_req == r)
        tl_req = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->rq_answered)
        CK_DEBUG("http", "%s %s: connection ended before the response was sent (%d)",
                 r->rq_method ? r->rq_method : "?", r->rq_raw_path, (int)toe);
    ck__http_resp_clear(&r->rq_resp);
    ck_free(r->rq_body);
    ck_free(r->rq_segbuf);
    ck_free(r->rq_raw_path);
    ck_free(r);
    pthread_mutex_lock(&h->h_mu);
    h->h_active--;
    pthread_cond_broadcast(&h->h_cv);
    pthread_mutex_unlock(&h->h_mu);
}

/* Splits and decodes the raw path, and picks the route and method. */
static void resolve(ck_http_req_t *r)
{
    ck_http_t *h = r->rq_h;
    const char *p = r->rq_raw_path;
    if (p[0] != '/') { /* "*" (OPTIONS *) or an absolute URI */
        r->rq_reject = 404;
        return;
    }
    if (!(r->rq_segbuf = ck_strdup(p + 1))) {
        r->rq_resp.rs_oom = true;
        return;
    }
    if (p[1]) {
        char *s = r->rq_segbuf;
        for (;;) {
            char *slash = strchr(s, '/');
            if (slash)
                *slash = 0;
            if (r->rq_nseg == CK__HTTP_MAX_SEGS) {
                r->rq_reject = 404; /* deeper than any route */
                return;
            }
            if (ck__http_pct_decode(s) != 0) {
                r->rq_reject = 400;
                return;
            }
            r->rq_seg[r->rq_nseg++] = s;
            if (!slash)
                break;
            s = slash + 1;
        }
    }
    const ck__http_route_t *rt =
        ck__http_route_match(h->h_routes, h->h_nroutes, r->rq_seg, r->rq_nseg);
    if (!rt) {
        r->rq_reject = 404;
        return;
    }
    r->rq_route = rt;
    for (int i = 0; i < rt->rt_nseg; i++)
        if (rt->rt_params & (1u << i))
            r->rq_param[r->rq_nparam++] = r->rq_seg[i];
    int mi = ck__http_method_index(r->rq_method);
    if (mi == CK__HTTP_HEAD && !rt->rt_fn[mi])
        mi = CK__HTTP_GET;
    if (mi < 0 || !rt->rt_fn[mi]) {
        r->rq_reject = 405;
        return;
    }
    r->rq_midx = mi;
}

typedef struct framing {
    int ncl, nte;
    unsigned long long cl;
    bool cl_bad, cl_conflict;
    const char *te;
} framing_t;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    framing_t *f = cls;
    if (!key)
        return MHD_YES;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        /* 1*DIGIT; MHD checked the first one only */
        unsigned long long v = 0;
        const char *p = value ? value : "";
        bool ok = *p != 0;
        for (; ok && *p; p++) {
            if (*p < '0' || *p > '9' || v > (ULLONG_MAX - 9) / 10)
                ok = false;
            else
                v = v * 10 + (unsigned)(*p - '0');
        }
        if (!ok)
            f->cl_bad = true;
        else if (f->ncl && v != f->cl)
            f->cl_conflict = true;
        f->cl = v;
        f->ncl++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->nte++;
        f->te = value ? value : "";
    }
    return MHD_YES;
}

/* Checks how the request says its body is framed (RFC 9112 section 6.3); NULL when fine,
 * else why not, with *status 400 or 501. Such a request is answered and the connection
 * closed: the end of its body, so the start of the next request, is unknown. */
static const char *check_framing(struct MHD_Connection *conn, int *status)
{
    framing_t f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_header, &f);
    *status = 400;
    if (f.cl_bad)
        return "invalid Content-Length header";
    if (f.cl_conflict)
        return "conflicting Content-Length headers";
    if (f.nte && f.ncl)
        return "both Transfer-Encoding and Content-Length headers";
    if (f.nte > 1)
        return "repeated Transfer-Encoding header";
    if (f.nte && strcasecmp(f.te, "chunked") != 0) {
        /* MHD decodes chunked alone: any other coding list is refused, with 501 when it
         * ends in chunked as it must, else 400 */
        const char *last = strrchr(f.te, ',');
        last = last ? last + 1 : f.te;
        last += strspn(last, " \t");
        size_t n = strcspn(last, " \t");
        bool chunked_last = n == 7 && strncasecmp(last, "chunked", 7) == 0 &&
                            last[n + strspn(last + n, " \t")] == 0;
        if (chunked_last && last != f.te)
            *status = 501;
        return "unsupported Transfer-Encoding (only chunked is accepted)";
    }
    return NULL;
}

static bool content_length_over(ck_http_req_t *r, size_t *len)
{
    *len = 0;
    const char *cl =
        MHD_lookup_connection_value(r->rq_conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(cl, &end, 10);
    if (errno || end == cl) /* MHD refuses a malformed one before us */
        return false;
    *len = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
    return v > r->rq_h->h_cfg.max_body_bytes;
}

/* Takes one chunk of the body. false = drop the connection. */
static bool take_body(ck_http_req_t *r, const char *data, size_t n)
{
    size_t max = r->rq_h->h_cfg.max_body_bytes;
    if (!r->rq_discard && r->rq_body_len + n > max) {
        r->rq_too_large = true;
        r->rq_discard = true;
        r->rq_discarded = r->rq_body_len;
        ck_free(r->rq_body);
        r->rq_body = NULL;
        r->rq_body_len = r->rq_body_cap = 0;
    }
    if (r->rq_discard) {
        /* Read on, so the refusal can be answered on a healthy connection, but not
         * without end. */
        r->rq_discarded += n;
        return r->rq_discarded <= 2 * max;
    }
    if (r->rq_body_len + n + 1 > r->rq_body_cap) {
        size_t cap = r->rq_body_cap ? r->rq_body_cap : 4096;
        while (cap < r->rq_body_len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *nb = ck_realloc(r->rq_body, cap);
        if (!nb) {
            r->rq_resp.rs_oom = true;
            r->rq_discard = true;
            return true;
        }
        r->rq_body = nb;
        r->rq_body_cap = cap;
    }
    memcpy(r->rq_body + r->rq_body_len, data, n);
    r->rq_body_len += n;
    r->rq_body[r->rq_body_len] = 0;
    return true;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    ck_http_t *h = cls;
    ck_http_req_t *r = *con_cls;
    if (!r)
        return MHD_NO; /* uri_started could not allocate */
    if (!r->rq_started) {
        r->rq_started = true;
        r->rq_t0 = ck_mono_ns();
        r->rq_conn = conn;
        r->rq_method = method;
        r->rq_url = url;
        if (tl_req == r)
            tl_req = NULL;
        if (atomic_load(&h->h_stopping)) {
            r->rq_reject = 503;
            set_reject(r, 503);
            return respond(r);
        }
        int fst;
        const char *bad = check_framing(conn, &fst);
        if (bad) {
            /* MHD reads no body after an early response, and closes the connection */
            r->rq_reject = fst;
            r->rq_framing = bad;
            r->rq_discard = true;
            set_reject(r, fst);
            return respond(r);
        }
        resolve(r);
        if (r->rq_reject || r->rq_resp.rs_oom)
            r->rq_discard = true;
        size_t cl;
        if (content_length_over(r, &cl)) {
            if (!r->rq_reject)
                r->rq_reject = 413;
            set_reject(r, r->rq_reject);
            return respond(r); /* MHD will not read the body, and closes after */
        }
        if (!r->rq_discard && cl) {
            /* sized by the announced length, but a client announcing much and sending
             * little does not get a big buffer at once */
            size_t cap = cl + 1 < PREALLOC_MAX ? cl + 1 : PREALLOC_MAX;
            r->rq_body = ck_malloc(cap);
            if (!r->rq_body) {
                r->rq_resp.rs_oom = true;
                r->rq_discard = true;
            } else {
                r->rq_body_cap = cap;
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        bool go_on = take_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (!go_on)
            CK_DEBUG("http", "%s %s: dropping the connection after %zu body bytes", r->rq_method,
                     r->rq_raw_path, r->rq_discarded);
        return go_on ? MHD_YES : MHD_NO;
    }
    if (r->rq_answered)
        return MHD_YES;
    if (r->rq_resp.rs_oom) {
        /* respond() answers with the static 500 */
    } else if (r->rq_reject || r->rq_too_large) {
        set_reject(r, r->rq_reject ? r->rq_reject : 413);
    } else {
        const ck__http_route_t *rt = r->rq_route;
        rt->rt_fn[r->rq_midx](r, &r->rq_resp, rt->rt_ud[r->rq_midx]);
    }
    return respond(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    ck_http_t *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    if (atomic_load(&h->h_starting))
        snprintf(h->h_errbuf, sizeof(h->h_errbuf), "%.200s", msg);
    CK_DEBUG("http", "libmicrohttpd: %s", msg);
    /* MHD 0.9.75 says so just before queueing an error page for a bad Content-Length;
     * then it goes on as if nothing happened and sends two header blocks. Answer here,
     * before MHD writes anything, and make its writes fail (see the top of the file). */
    ck_http_req_t *r = tl_req;
    if (r && r->rq_h == h && !r->rq_started && !r->rq_raw_sent &&
        strstr(msg, "Content-Length' header")) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(r->rq_conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
            r->rq_raw_sent = true;
            if (strstr(msg, "Too large")) {
                char m[128];
                snprintf(m, sizeof(m), "request body larger than the limit of %zu bytes",
                         h->h_cfg.max_body_bytes);
                refuse_raw(ci->connect_fd, 413, "PayloadTooLarge", m, 2000);
            } else {
                refuse_raw(ci->connect_fd, 400, "BadRequest", "invalid Content-Length header",
                           2000);
            }
            CK_DEBUG("http", "%s: refused for its Content-Length", r->rq_raw_path);
        }
    }
}

/* ---- start / stop ---- */

/* Binds and starts the daemon; on failure *why is a static string or h_errbuf. */
static int start_daemon(ck_http_t *h, const char **why)
{
    if (h->h_state != CK__HTTP_NEW) {
        *why = "server already started";
        return CK_ESTATE;
    }
    int rc = ck__http_metrics_alloc(&h->h_metrics, h->h_nroutes);
    if (rc) {
        *why = "out of memory";
        return rc;
    }
    int family = AF_INET;
    int fd = http_listen(h, &family);
    if (fd < 0) {
        *why = h->h_errbuf;
        return fd;
    }
    /* MHD owns the socket it gets, but does not close it on every failure path; hand it a
     * duplicate and close ours whatever happens. */
    int mhd_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (mhd_fd < 0) {
        int e = errno;
        snprintf(h->h_errbuf, sizeof(h->h_errbuf), "dup listening socket: %s", strerror(e));
        close(fd);
        *why = h->h_errbuf;
        return ck_from_errno(e);
    }
    close(fd);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    atomic_store(&h->h_starting, true);
    h->h_errbuf[0] = 0;
    h->h_daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_LISTEN_SOCKET, mhd_fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)h->h_cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)h->h_cfg.idle_timeout_s, MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0u,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_URI_LOG_CALLBACK,
        uri_started, h, MHD_OPTION_NOTIFY_COMPLETED, req_completed, h, MHD_OPTION_NOTIFY_CONNECTION,
        conn_started, h, MHD_OPTION_END);
    atomic_store(&h->h_starting, false);
    if (!h->h_daemon) {
        char mhd_msg[201];
        snprintf(mhd_msg, sizeof(mhd_msg), "%.200s", h->h_errbuf[0] ? h->h_errbuf : "failed");
        snprintf(h->h_errbuf, sizeof(h->h_errbuf), "starting libmicrohttpd: %.200s", mhd_msg);
        *why = h->h_errbuf;
        return CK_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->h_daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->h_port = info ? info->port : h->h_cfg.port;
    h->h_state = CK__HTTP_RUNNING;
    CK_INFO("http", "listening on %s port %d (%s)", *h->h_bind ? h->h_bind : "0.0.0.0", h->h_port,
            family == AF_INET6 ? "IPv6" : "IPv4");
    return 0;
}

int ck_http_start(ck_http_t *h, int *bound_port, const char **errmsg)
{
    /* per thread, so the message outlives a ck_http_free right after the failure */
    static __thread char start_err[256];
    const char *why = NULL;
    int rc = start_daemon(h, &why);
    if (rc) {
        snprintf(start_err, sizeof(start_err), "%s", why);
        if (errmsg)
            *errmsg = start_err;
        return rc;
    }
    if (bound_port)
        *bound_port = h->h_port;
    if (errmsg)
        *errmsg = NULL;
    return 0;
}

void ck_http_stop(ck_http_t *h)
{
    if (!h || h->h_state != CK__HTTP_RUNNING)
        return;
    atomic_store(&h->h_stopping, true);
    MHD_socket lfd = MHD_quiesce_daemon(h->h_daemon);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + (int64_t)h->h_cfg.stop_grace_ms * 1000000;
    until.tv_sec += ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&h->h_mu);
    while (h->h_active > 0 && pthread_cond_timedwait(&h->h_cv, &h->h_mu, &until) != ETIMEDOUT) {
    }
    int left = h->h_active;
    pthread_mutex_unlock(&h->h_mu);
    if (left)
        CK_WARN("http", "stopping with %d request(s) still in flight", left);
    MHD_stop_daemon(h->h_daemon);
    h->h_daemon = NULL;
    h->h_state = CK__HTTP_STOPPED;
}

void ck_http_free(ck_http_t *h)
{
    if (!h)
        return;
    ck_http_stop(h);
    for (int i = 0; i < h->h_nroutes; i++)
        ck__http_route_free(h->h_routes[i]);
    ck_free(h->h_routes);
    ck__http_metrics_destroy(&h->h_metrics);
    pthread_cond_destroy(&h->h_cv);
    pthread_mutex_destroy(&h->h_mu);
    ck_free(h->h_bind);
    ck_free(h);
}
