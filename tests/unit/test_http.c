/* The HTTP server layer over real sockets on 127.0.0.1 with a tiny blocking client. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "http/http.h"
#include "test.h"

/* ---- client ---- */

typedef struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
} client_t;

typedef struct hresp {
    int status;
    char head[1 << 14]; /* status line and headers, NUL-terminated */
    char *body;         /* malloc'ed, NUL-terminated */
    size_t body_len;
} hresp_t;

static int connect_to(int family, const char *addr, int port)
{
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
        inet_pton(AF_INET6, addr, &sa.sin6_addr);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, addr, &sa.sin_addr);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static client_t *client_open(int port)
{
    client_t *c = calloc(1, sizeof(*c));
    CHECK(c);
    c->fd = connect_to(AF_INET, "127.0.0.1", port);
    CHECK(c->fd >= 0);
    return c;
}

static void client_close(client_t *c)
{
    close(c->fd);
    free(c);
}

/* Sends all of p; false when the peer is gone. */
static bool client_send(client_t *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static bool client_sends(client_t *c, const char *s)
{
    return client_send(c, s, strlen(s));
}

/* Reads more into the buffer; false on EOF, error or timeout. */
static bool client_fill(client_t *c)
{
    if (c->len == sizeof(c->buf))
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

static void client_consume(client_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The value of header name in r->head (into out), or NULL. */
static const char *hdr(const hresp_t *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return out;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Reads one response; the body by Content-Length (none for HEAD), else to EOF.
 * false when the connection ended first. */
static bool client_read(client_t *c, hresp_t *r, bool head_request)
{
    memset(r, 0, sizeof(*r));
    char *end;
    for (;;) {
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (!client_fill(c))
            return false;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    CHECK(hlen < sizeof(r->head));
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = 0;
    client_consume(c, hlen);
    CHECK(sscanf(r->head, "HTTP/1.%*d %d", &r->status) == 1);
    char v[64];
    long long clen = -1;
    if (hdr(r, "Content-Length", v, sizeof(v)))
        clen = atoll(v);
    if (head_request)
        clen = 0;
    if (clen >= 0) {
        r->body = malloc((size_t)clen + 1);
        CHECK(r->body);
        while (r->body_len < (size_t)clen) {
            if (!c->len && !client_fill(c)) {
                free(r->body);
                r->body = NULL;
                return false;
            }
            size_t n = c->len < (size_t)clen - r->body_len ? c->len : (size_t)clen - r->body_len;
            memcpy(r->body + r->body_len, c->buf, n);
            r->body_len += n;
            client_consume(c, n);
        }
    } else {
        while (client_fill(c)) {
        }
        r->body = malloc(c->len + 1);
        CHECK(r->body);
        memcpy(r->body, c->buf, c->len);
        r->body_len = c->len;
        c->len = 0;
    }
    r->body[r->body_len] = 0;
    return true;
}

static void hresp_free(hresp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* One request on a fresh connection. */
static void request(int port, const char *raw, hresp_t *r)
{
    client_t *c = client_open(port);
    CHECK(client_sends(c, raw));
    if (!client_read(c, r, strncmp(raw, "HEAD ", 5) == 0))
        CK_FAIL("no response to %.60s", raw);
    client_close(c);
}

static void get(int port, const char *path, hresp_t *r)
{
    char req[2048];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    request(port, req, r);
}

static json_t *body_json(const hresp_t *r)
{
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, 0, &err);
    if (!j)
        CK_FAIL("response body is not JSON (%s): %s", err.text, r->body);
    return j;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void check_error(const hresp_t *r, int status, const char *type, const char *needle)
{
    CHECK_EQ(r->status, status);
    char v[128];
    CHECK(hdr(r, "Content-Type", v, sizeof(v)));
    CHECK_STREQ(v, "application/json");
    json_t *j = body_json(r);
    CHECK(jstr(j, "error_type"));
    CHECK_STREQ(jstr(j, "error_type"), type);
    CHECK(jstr(j, "error"));
    if (needle && !strstr(jstr(j, "error"), needle))
        CK_FAIL("error \"%s\" lacks \"%s\"", jstr(j, "error"), needle);
    json_decref(j);
}

/* The runner ends each test with _exit, which skips LeakSanitizer's exit check: check
 * here, after the server is freed. */
static void leak_check(void)
{
#if defined(__SANITIZE_ADDRESS__)
    if (__lsan_do_recoverable_leak_check())
        CK_FAIL("memory leaked");
#endif
}

/* ---- handlers ---- */

static atomic_int calls;

static void h_echo(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    atomic_fetch_add(&calls, 1);
    json_t *params = json_array();
    for (int i = 0; i < ck_http_param_count(req); i++)
        json_array_append_new(params, json_string(ck_http_param(req, i)));
    CHECK(ck_http_param(req, ck_http_param_count(req)) == NULL);
    ck_http_resp_json(resp, 200,
                      json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "tag", (const char *)ud, "route",
                                ck_http_route_pattern(req), "method", ck_http_method(req), "path",
                                ck_http_path(req), "raw", ck_http_raw_path(req), "params", params));
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static void h_query(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    json_t *o = json_object();
    const char *names[] = {"limit", "name", "flag", "empty", "missing"};
    for (int i = 0; i < 5; i++)
        json_object_set_new(o, names[i], str_or_null(ck_http_query_arg(req, names[i])));
    json_object_set_new(o, "x-test", str_or_null(ck_http_header(req, "X-TEST")));
    json_object_set_new(o, "nothere", str_or_null(ck_http_header(req, "X-Nothere")));
    ck_http_resp_json(resp, 200, o);
}

static void h_json(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    atomic_fetch_add(&calls, 1);
    json_t *body = ck_http_json_body(req, resp, ud != NULL);
    if (!body)
        return;
    size_t len;
    ck_http_body(req, &len);
    ck_http_resp_json(resp, 200, json_pack("{s:o, s:I}", "got", body, "len", (json_int_t)len));
}

static void h_len(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    atomic_fetch_add(&calls, 1);
    size_t len;
    const char *b = ck_http_body(req, &len);
    CHECK(b[len] == 0);
    for (size_t i = 0; i < len; i++)
        if (b[i] != 'a' + (char)(i % 26)) {
            ck_http_resp_error(resp, 500, "Corrupt", "byte %zu differs", i);
            return;
        }
    ck_http_resp_json(resp, 200, json_pack("{s:I}", "len", (json_int_t)len));
}

static void h_noresp(ck_http_req_t *req, ck_http_resp_t *resp, void *ud) {}

static void h_take(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    for (int i = 0; i < (1 << 20); i++)
        ck_wr_u8(&w, (uint8_t)(i * 7));
    CHECK(!w.err);
    size_t len;
    uint8_t *data = ck_wbuf_steal(&w, &len);
    ck_http_resp_header(resp, "X-Kind", "taken");
    ck_http_resp_take(resp, 200, "application/octet-stream", data, len);
}

static void h_text(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    /* the first response is replaced, its body freed */
    ck_http_resp_raw(resp, 200, "text/plain", "first", 5);
    ck_http_resp_raw(resp, 201, "text/plain; charset=utf-8", "hello", 5);
}

static ck_http_t *serve(ck_http_config_t *cfg, int *port)
{
    ck_http_t *h;
    CHECK_EQ(ck_http_new(cfg, &h), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/topics", h_echo, "topics"), 0);
    CHECK_EQ(ck_http_route(h, "POST", "/topics", h_echo, "create"), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/topics/{name}", h_echo, "topic"), 0);
    CHECK_EQ(ck_http_route(h, "DELETE", "/topics/{id}", h_echo, "delete"), 0); /* same pattern */
    CHECK_EQ(ck_http_route(h, "POST", "/_sql", h_echo, "sql"), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/_sql/tables", h_echo, "tables"), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/_sql/{what}", h_echo, "sqlwhat"), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/_sql/describe/{table}", h_echo, "describe"), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/{index}/_search", h_echo, "search"), 0);
    CHECK_EQ(ck_http_route(h, "POST", "/{index}/_search", h_echo, "search-post"), 0);
    CHECK_EQ(ck_http_route(h, "PUT", "/{index}", h_echo, "index-put"), 0);
    CHECK_EQ(ck_http_route(h, "DELETE", "/{index}", h_echo, "index-del"), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/_vector/{topic}/search", h_echo, "vector"), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/", h_echo, "root"), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/q", h_query, NULL), 0);
    CHECK_EQ(ck_http_route(h, "POST", "/json", h_json, NULL), 0);
    CHECK_EQ(ck_http_route(h, "POST", "/json-or-empty", h_json, "allow"), 0);
    CHECK_EQ(ck_http_route(h, "POST", "/len", h_len, NULL), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/noresp", h_noresp, NULL), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/take", h_take, NULL), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/text", h_text, NULL), 0);
    const char *msg = NULL;
    *port = 0;
    CHECK_EQ(ck_http_start(h, port, &msg), 0);
    CHECK(msg == NULL);
    CHECK(*port > 0 && *port < 65536);
    return h;
}

static void local_config(ck_http_config_t *cfg)
{
    ck_http_config_default(cfg);
    cfg->bind = "127.0.0.1";
    cfg->port = 0;
}

/* Routed to the handler tagged tag, with params p0, p1 (NULL = fewer). */
static void check_routed(int port, const char *path, const char *tag, const char *route,
                         const char *p0, const char *p1)
{
    hresp_t r;
    get(port, path, &r);
    if (r.status != 200)
        CK_FAIL("GET %s: status %d", path, r.status);
    json_t *j = body_json(&r);
    if (strcmp(jstr(j, "tag"), tag) != 0)
        CK_FAIL("GET %s went to %s, not %s", path, jstr(j, "tag"), tag);
    CHECK_STREQ(jstr(j, "route"), route);
    CHECK_STREQ(jstr(j, "method"), "GET");
    json_t *params = json_object_get(j, "params");
    CHECK_EQ(json_array_size(params), (p0 != NULL) + (p1 != NULL));
    if (p0)
        CHECK_STREQ(json_string_value(json_array_get(params, 0)), p0);
    if (p1)
        CHECK_STREQ(json_string_value(json_array_get(params, 1)), p1);
    json_decref(j);
    hresp_free(&r);
}

/* ---- tests ---- */

CK_TEST(http_config_and_route_errors)
{
    ck_http_config_t cfg;
    ck_http_config_default(&cfg);
    CHECK_STREQ(cfg.bind, "0.0.0.0");
    CHECK_EQ(cfg.port, 6092);
    CHECK_EQ(cfg.max_body_bytes, 16 << 20);
    CHECK_EQ(cfg.idle_timeout_s, 60);
    CHECK_EQ(cfg.max_connections, 1024);

    ck_http_t *h;
    ck_http_config_t bad = cfg;
    bad.port = 70000;
    CHECK_EQ(ck_http_new(&bad, &h), CK_EINVAL);
    bad = cfg;
    bad.max_body_bytes = 0;
    CHECK_EQ(ck_http_new(&bad, &h), CK_EINVAL);
    bad = cfg;
    bad.max_connections = 0;
    CHECK_EQ(ck_http_new(&bad, &h), CK_EINVAL);

    CHECK_EQ(ck_http_new(&cfg, &h), 0);
    CHECK_EQ(ck_http_route(h, "FETCH", "/a", h_echo, NULL), CK_EINVAL);
    CHECK_EQ(ck_http_route(h, "get", "/a", h_echo, NULL), CK_EINVAL);
    CHECK_EQ(ck_http_route(h, "GET", "a", h_echo, NULL), CK_EINVAL);
    CHECK_EQ(ck_http_route(h, "GET", "/a/{b", h_echo, NULL), CK_EINVAL);
    CHECK_EQ(ck_http_route(h, "GET", "/a/x{b}", h_echo, NULL), CK_EINVAL);
    CHECK_EQ(ck_http_route(h, "GET", "/a/{}", h_echo, NULL), CK_EINVAL);
    CHECK_EQ(ck_http_route(h, "GET", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", h_echo, NULL),
             CK_EINVAL);
    CHECK_EQ(ck_http_route(h, "GET", "/a/{b}", NULL, NULL), CK_EINVAL);
    CHECK_EQ(ck_http_route(h, "GET", "/a/{b}", h_echo, NULL), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/a/{c}", h_echo, NULL), CK_EEXIST);
    CHECK_EQ(ck_http_route(h, "POST", "/a/{c}", h_echo, NULL), 0);
    ck_http_free(h);
    ck_http_free(NULL);
    leak_check();
}

CK_TEST(http_routing_params_and_literals)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    CHECK_EQ(ck_http_route(h, "GET", "/late", h_echo, NULL), CK_ESTATE);
    const char *msg;
    CHECK_EQ(ck_http_start(h, NULL, &msg), CK_ESTATE);

    check_routed(port, "/", "root", "/", NULL, NULL);
    check_routed(port, "/topics", "topics", "/topics", NULL, NULL);
    check_routed(port, "/topics/orders", "topic", "/topics/{name}", "orders", NULL);
    check_routed(port, "/topics/orders?x=1", "topic", "/topics/{name}", "orders", NULL);
    /* literal beats param at the same position */
    check_routed(port, "/_sql/tables", "tables", "/_sql/tables", NULL, NULL);
    check_routed(port, "/_sql/other", "sqlwhat", "/_sql/{what}", "other", NULL);
    /* "/_sql/{what}" has its literal first, "/{index}/_search" second: the first wins */
    check_routed(port, "/_sql/_search", "sqlwhat", "/_sql/{what}", "_search", NULL);
    check_routed(port, "/logs/_search", "search", "/{index}/_search", "logs", NULL);
    check_routed(port, "/_sql/describe/t1", "describe", "/_sql/describe/{table}", "t1", NULL);
    check_routed(port, "/_vector/emb/search", "vector", "/_vector/{topic}/search", "emb", NULL);

    /* POST on the same pattern runs the POST handler */
    hresp_t r;
    request(port, "POST /logs/_search HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}", &r);
    CHECK_EQ(r.status, 200);
    json_t *j = body_json(&r);
    CHECK_STREQ(jstr(j, "tag"), "search-post");
    CHECK_STREQ(jstr(j, "method"), "POST");
    json_decref(j);
    hresp_free(&r);
    request(port, "DELETE /topics/gone HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    j = body_json(&r);
    CHECK_STREQ(jstr(j, "tag"), "delete");
    CHECK_STREQ(jstr(j, "route"), "/topics/{name}"); /* the pattern as first registered */
    json_decref(j);
    hresp_free(&r);

    /* HEAD runs the GET handler: same headers, no body, connection reusable */
    char v[64];
    client_t *c = client_open(port);
    CHECK(client_sends(c, "HEAD /text HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(c, &r, true));
    CHECK_EQ(r.status, 201);
    CHECK(hdr(&r, "Content-Length", v, sizeof(v)));
    CHECK_STREQ(v, "5");
    CHECK(hdr(&r, "Content-Type", v, sizeof(v)));
    CHECK_STREQ(v, "text/plain; charset=utf-8");
    hresp_free(&r);
    CHECK(client_sends(c, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(r.body[0] == '{'); /* no HEAD body left over in the stream */
    hresp_free(&r);
    client_close(c);

    /* raw and replaced responses */
    get(port, "/text", &r);
    CHECK_EQ(r.status, 201);
    CHECK(hdr(&r, "Content-Type", v, sizeof(v)));
    CHECK_STREQ(v, "text/plain; charset=utf-8");
    CHECK_STREQ(r.body, "hello");
    hresp_free(&r);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_percent_decoding)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    check_routed(port, "/topics/a%2Fb%20c", "topic", "/topics/{name}", "a/b c", NULL);
    check_routed(port, "/topics/%E2%82%AC", "topic", "/topics/{name}", "\xe2\x82\xac", NULL);
    check_routed(port, "/topics/50%25", "topic", "/topics/{name}", "50%", NULL);
    check_routed(port, "/topics/a+b", "topic", "/topics/{name}", "a+b", NULL);
    check_routed(port, "/topics/%zz%4", "topic", "/topics/{name}", "%zz%4", NULL);
    /* literals compare against the decoded segment */
    check_routed(port, "/_sql/%74ables", "tables", "/_sql/tables", NULL, NULL);

    hresp_t r;
    get(port, "/topics/a%2Fb%20c", &r);
    json_t *j = body_json(&r);
    CHECK_STREQ(jstr(j, "raw"), "/topics/a%2Fb%20c");
    CHECK_STREQ(jstr(j, "path"), "/topics/a/b c");
    json_decref(j);
    hresp_free(&r);

    get(port, "/topics/a%00b", &r);
    check_error(&r, 400, "InvalidPath", NULL);
    hresp_free(&r);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_query_args_and_headers)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    hresp_t r;
    request(port,
            "GET /q?limit=10&name=a%20b+c&flag&empty=&limit=99 HTTP/1.1\r\nHost: t\r\n"
            "x-test: yes\r\n\r\n",
            &r);
    CHECK_EQ(r.status, 200);
    json_t *j = body_json(&r);
    CHECK_STREQ(jstr(j, "limit"), "10");
    CHECK_STREQ(jstr(j, "name"), "a b c");
    CHECK_STREQ(jstr(j, "flag"), "");
    CHECK_STREQ(jstr(j, "empty"), "");
    CHECK(json_is_null(json_object_get(j, "missing")));
    CHECK_STREQ(jstr(j, "x-test"), "yes");
    CHECK(json_is_null(json_object_get(j, "nothere")));
    json_decref(j);
    hresp_free(&r);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_404_and_405)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    hresp_t r;
    char v[128];
    const char *unknown[] = {"/nope/x/y", "/topics/a/b/c", "/topics//", "//_search",
                             "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        get(port, unknown[i], &r);
        if (r.status != 404)
            CK_FAIL("GET %s: %d %s", unknown[i], r.status, r.body);
        CHECK(hdr(&r, "Content-Length", v, sizeof(v)));
        CHECK_STREQ(v, "0");
        CHECK_EQ(r.body_len, 0);
        hresp_free(&r);
    }
    /* with a body, on a connection that stays usable */
    client_t *c = client_open(port);
    CHECK(
        client_sends(c, "POST /nope/x/y/z HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 404);
    CHECK_EQ(r.body_len, 0);
    hresp_free(&r);
    CHECK(client_sends(c, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    client_close(c);

    get(port, "/_sql", &r);
    check_error(&r, 405, "MethodNotAllowed", NULL);
    json_t *j = body_json(&r);
    CHECK_STREQ(jstr(j, "error"), "method GET not allowed on /_sql");
    json_decref(j);
    CHECK(hdr(&r, "Allow", v, sizeof(v)));
    CHECK_STREQ(v, "POST");
    hresp_free(&r);

    /* any one-segment path matches "/{index}" (PUT, DELETE) */
    get(port, "/foo", &r);
    check_error(&r, 405, "MethodNotAllowed", "/foo");
    CHECK(hdr(&r, "Allow", v, sizeof(v)));
    CHECK_STREQ(v, "PUT, DELETE");
    hresp_free(&r);

    request(port, "PATCH /topics/x HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    check_error(&r, 405, "MethodNotAllowed", "PATCH");
    CHECK(hdr(&r, "Allow", v, sizeof(v)));
    CHECK_STREQ(v, "GET, HEAD, DELETE");
    hresp_free(&r);
    request(port, "OPTIONS /topics HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 405);
    CHECK(hdr(&r, "Allow", v, sizeof(v)));
    CHECK_STREQ(v, "GET, HEAD, POST");
    hresp_free(&r);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_json_body)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    hresp_t r;
    const char *ctypes[] = {"", "Content-Type: application/x-www-form-urlencoded\r\n",
                            "Content-Type: text/plain\r\n"};
    for (int i = 0; i < 3; i++) {
        char req[512];
        snprintf(req, sizeof(req),
                 "POST /json HTTP/1.1\r\nHost: t\r\n%sContent-Length: 19\r\n\r\n"
                 "{\"a\":1,\"b\":[true]} ",
                 ctypes[i]);
        request(port, req, &r);
        CHECK_EQ(r.status, 200);
        /* compact encoding */
        CHECK_STREQ(r.body, "{\"got\":{\"a\":1,\"b\":[true]},\"len\":19}");
        hresp_free(&r);
    }

    request(port, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n{\"a\":\n  1,", &r);
    check_error(&r, 400, "InvalidJson", "invalid JSON body: ");
    json_t *j = body_json(&r);
    CHECK(strstr(jstr(j, "error"), "line 2"));
    json_decref(j);
    hresp_free(&r);

    request(port, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    check_error(&r, 400, "InvalidJson", "empty");
    hresp_free(&r);
    request(port, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n \r\n", &r);
    check_error(&r, 400, "InvalidJson", "empty");
    hresp_free(&r);
    request(port, "POST /json HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    check_error(&r, 400, "InvalidJson", "empty");
    hresp_free(&r);

    request(port, "POST /json-or-empty HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, "{\"got\":{},\"len\":0}");
    hresp_free(&r);

    /* a chunked body under the limit is assembled */
    request(port,
            "POST /json HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "4\r\n{\"k\"\r\n6\r\n:\"vvv\"\r\n1\r\n}\r\n0\r\n\r\n",
            &r);
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, "{\"got\":{\"k\":\"vvv\"},\"len\":11}");
    hresp_free(&r);

    /* no response set */
    get(port, "/noresp", &r);
    check_error(&r, 500, "InternalError", "no response");
    hresp_free(&r);
    ck_http_free(h);
    leak_check();
}

static char *alphabet(size_t n)
{
    char *s = malloc(n + 1);
    CHECK(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + i % 26);
    s[n] = 0;
    return s;
}

/* Sends body as chunks of `chunk` bytes. */
static bool send_chunked(client_t *c, const char *body, size_t len, size_t chunk)
{
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        char line[32];
        snprintf(line, sizeof(line), "%zx\r\n", n);
        if (!client_sends(c, line) || !client_send(c, body + off, n) || !client_sends(c, "\r\n"))
            return false;
    }
    return client_sends(c, "0\r\n\r\n");
}

CK_TEST(http_body_limit)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    cfg.max_body_bytes = 1024;
    int port;
    ck_http_t *h = serve(&cfg, &port);
    hresp_t r;
    char *body = alphabet(10000);
    char v[64];

    /* exactly the limit passes */
    client_t *c = client_open(port);
    CHECK(client_sends(c, "POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n"));
    CHECK(client_send(c, body, 1024));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, "{\"len\":1024}");
    hresp_free(&r);
    client_close(c);
    CHECK_EQ(atomic_load(&calls), 1);

    /* Content-Length over the limit: answered before the body is sent */
    c = client_open(port);
    CHECK(client_sends(c, "POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    check_error(&r, 413, "PayloadTooLarge", "1024");
    CHECK(hdr(&r, "Connection", v, sizeof(v))); /* the unread body: the connection ends */
    CHECK(strcasecmp(v, "close") == 0);
    hresp_free(&r);
    client_close(c);
    CHECK_EQ(atomic_load(&calls), 1);

    /* the same with "Expect: 100-continue": no 100, the 413 straight away */
    c = client_open(port);
    CHECK(client_sends(c, "POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n"
                          "Expect: 100-continue\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 413);
    hresp_free(&r);
    client_close(c);

    /* chunked over the limit: read and dropped, 413, connection still usable */
    c = client_open(port);
    CHECK(client_sends(c, "POST /len HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    CHECK(send_chunked(c, body, 1500, 100));
    CHECK(client_read(c, &r, false));
    check_error(&r, 413, "PayloadTooLarge", NULL);
    hresp_free(&r);
    CHECK_EQ(atomic_load(&calls), 1);
    CHECK(client_sends(c, "POST /len HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    CHECK(send_chunked(c, body, 1000, 300));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, "{\"len\":1000}");
    hresp_free(&r);
    client_close(c);
    CHECK_EQ(atomic_load(&calls), 2);

    /* chunked far over the limit: the server stops reading and drops the connection */
    c = client_open(port);
    CHECK(client_sends(c, "POST /len HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    send_chunked(c, body, 10000, 500);
    CHECK(!client_read(c, &r, false));
    client_close(c);
    CHECK_EQ(atomic_load(&calls), 2);

    /* the server goes on serving */
    get(port, "/topics", &r);
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    free(body);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_keep_alive)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    client_t *c = client_open(port);
    hresp_t r;
    char v[64];
    /* two requests pipelined in one write, then a third */
    CHECK(client_sends(c, "GET /topics/one HTTP/1.1\r\nHost: t\r\n\r\n"
                          "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n{\"x\":2}"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(strstr(r.body, "\"params\":[\"one\"]"));
    CHECK(!hdr(&r, "Connection", v, sizeof(v)) || strcasecmp(v, "close") != 0);
    CHECK(hdr(&r, "Content-Type", v, sizeof(v)));
    CHECK_STREQ(v, "application/json");
    CHECK(hdr(&r, "Content-Length", v, sizeof(v)));
    CHECK_EQ(atoll(v), r.body_len);
    hresp_free(&r);
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, "{\"got\":{\"x\":2},\"len\":7}");
    CHECK(!hdr(&r, "Connection", v, sizeof(v)) || strcasecmp(v, "close") != 0);
    hresp_free(&r);
    usleep(50 * 1000);
    CHECK(client_sends(c, "GET /topics/two HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(strstr(r.body, "\"params\":[\"two\"]"));
    hresp_free(&r);
    client_close(c);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_idle_timeout)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    cfg.idle_timeout_s = 1;
    int port;
    ck_http_t *h = serve(&cfg, &port);
    client_t *c = client_open(port);
    hresp_t r;
    CHECK(client_sends(c, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    int64_t t0 = ck_mono_ms();
    char b;
    CHECK_EQ(recv(c->fd, &b, 1, 0), 0); /* closed by the server */
    int64_t waited = ck_mono_ms() - t0;
    CHECK(waited >= 800 && waited < 5000);
    client_close(c);
    ck_http_free(h);
    leak_check();
}

/* ---- concurrency ---- */

#define NCLIENTS 50
#define NREQ 4

static atomic_int fast_done, slow_entered;

static void h_slow(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    atomic_store(&slow_entered, 1);
    int64_t t0 = ck_mono_ms();
    /* at least 500 ms, and until every fast request was answered (10 s at most) */
    while (ck_mono_ms() - t0 < 500 ||
           (atomic_load(&fast_done) < NCLIENTS * NREQ && ck_mono_ms() - t0 < 10000))
        usleep(5000);
    bool released = atomic_load(&fast_done) == NCLIENTS * NREQ;
    ck_http_resp_json(resp, 200, json_pack("{s:b}", "released", released));
}

static void h_fast(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_http_resp_json(resp, 200, json_pack("{s:s}", "who", ck_http_param(req, 0)));
}

static int g_port;

static void *slow_client(void *arg)
{
    hresp_t *r = arg;
    get(g_port, "/slow", r);
    return NULL;
}

static void *fast_client(void *arg)
{
    int id = (int)(intptr_t)arg;
    client_t *c = client_open(g_port);
    for (int i = 0; i < NREQ; i++) {
        char req[128], want[64];
        snprintf(req, sizeof(req), "GET /fast/c%d-%d HTTP/1.1\r\nHost: t\r\n\r\n", id, i);
        snprintf(want, sizeof(want), "{\"who\":\"c%d-%d\"}", id, i);
        hresp_t r;
        CHECK(client_sends(c, req));
        CHECK(client_read(c, &r, false));
        CHECK_EQ(r.status, 200);
        CHECK_STREQ(r.body, want);
        hresp_free(&r);
        atomic_fetch_add(&fast_done, 1);
    }
    client_close(c);
    return NULL;
}

CK_TEST(http_concurrent_clients_with_blocking_handler)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    ck_http_t *h;
    CHECK_EQ(ck_http_new(&cfg, &h), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/slow", h_slow, NULL), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/fast/{who}", h_fast, NULL), 0);
    CHECK_EQ(ck_http_start(h, &g_port, NULL), 0);

    hresp_t slow;
    pthread_t st, ft[NCLIENTS];
    CHECK_EQ(pthread_create(&st, NULL, slow_client, &slow), 0);
    while (!atomic_load(&slow_entered))
        usleep(1000);
    for (int i = 0; i < NCLIENTS; i++)
        CHECK_EQ(pthread_create(&ft[i], NULL, fast_client, (void *)(intptr_t)i), 0);
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(ft[i], NULL);
    CHECK_EQ(atomic_load(&fast_done), NCLIENTS * NREQ);
    pthread_join(st, NULL);
    CHECK_EQ(slow.status, 200);
    /* every fast request was answered while the slow handler was still blocked */
    CHECK_STREQ(slow.body, "{\"released\":true}");
    hresp_free(&slow);

    ck_wbuf_t m = CK_WBUF_INIT;
    ck_http_metrics_render(h, &m);
    ck_wr_u8(&m, 0);
    CHECK(strstr((char *)m.data,
                 "chronik_http_requests_total{method=\"GET\",route=\"/fast/{who}\",status=\"200\"} "
                 "200\n"));
    CHECK(strstr((char *)m.data, "chronik_http_request_duration_seconds_bucket{route=\"/slow\","
                                 "le=\"0.25\"} 0\n"));
    CHECK(strstr((char *)m.data, "chronik_http_request_duration_seconds_bucket{route=\"/slow\","
                                 "le=\"+Inf\"} 1\n"));
    ck_wbuf_free(&m);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_resp_take_large_body)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    hresp_t r;
    char v[64];
    for (int round = 0; round < 2; round++) {
        get(port, "/take", &r);
        CHECK_EQ(r.status, 200);
        CHECK_EQ(r.body_len, 1 << 20);
        for (size_t i = 0; i < r.body_len; i++)
            if ((uint8_t)r.body[i] != (uint8_t)(i * 7))
                CK_FAIL("byte %zu differs", i);
        CHECK(hdr(&r, "X-Kind", v, sizeof(v)));
        CHECK_STREQ(v, "taken");
        CHECK(hdr(&r, "Content-Type", v, sizeof(v)));
        CHECK_STREQ(v, "application/octet-stream");
        hresp_free(&r);
    }
    ck_http_free(h);
    leak_check();
}

static size_t count_lines_with(const char *text, const char *prefix)
{
    size_t n = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

CK_TEST(http_metrics_text)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    hresp_t r;
    get(port, "/topics/a", &r);
    hresp_free(&r);
    get(port, "/topics/b", &r);
    hresp_free(&r);
    get(port, "/nope/nope/nope", &r);
    hresp_free(&r);
    get(port, "/_sql", &r);
    hresp_free(&r);
    request(port, "POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    hresp_free(&r);

    ck_wbuf_t m = CK_WBUF_INIT;
    ck_http_metrics_render(h, &m);
    ck_wr_u8(&m, 0);
    CHECK(!m.err);
    const char *t = (const char *)m.data;
    const char *want[] = {
        "# HELP chronik_http_requests_total ",
        "# TYPE chronik_http_requests_total counter\n",
        "\nchronik_http_requests_total{method=\"GET\",route=\"/topics/{name}\",status=\"200\"} 2\n",
        "\nchronik_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n",
        "\nchronik_http_requests_total{method=\"GET\",route=\"/_sql\",status=\"405\"} 1\n",
        "\nchronik_http_requests_total{method=\"POST\",route=\"/topics\",status=\"200\"} 1\n",
        "# TYPE chronik_http_request_duration_seconds histogram\n",
        "\nchronik_http_request_duration_seconds_bucket{route=\"/topics/{name}\",le=\"10\"} 2\n",
        "\nchronik_http_request_duration_seconds_bucket{route=\"/topics/{name}\",le=\"+Inf\"} 2\n",
        "\nchronik_http_request_duration_seconds_count{route=\"/topics/{name}\"} 2\n",
        "\nchronik_http_request_duration_seconds_sum{route=\"/topics/{name}\"} ",
        "\nchronik_http_request_duration_seconds_count{route=\"unmatched\"} 1\n",
        "# TYPE search_api_requests_total counter\n",
        "\nsearch_api_requests_total{method=\"GET\",endpoint=\"/topics/{name}\",status=\"200\"} 2",
        "# TYPE search_api_request_duration_seconds histogram\n",
        "\nsearch_api_request_duration_seconds_count{endpoint=\"/topics/{name}\"} 2\n",
        "# TYPE search_api_errors_total counter\n",
        "\nsearch_api_errors_total 2\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(t, want[i]))
            CK_FAIL("metrics lack \"%s\":\n%s", want[i], t);
    /* raw paths never become labels; one histogram of 15 buckets per route seen */
    CHECK(!strstr(t, "/topics/a\""));
    CHECK(!strstr(t, "/nope"));
    CHECK_EQ(count_lines_with(
                 t, "chronik_http_request_duration_seconds_bucket{route=\"/topics/{name}\""),
             15);
    CHECK_EQ(count_lines_with(t, "chronik_http_request_duration_seconds_count{"), 4);
    ck_wbuf_free(&m);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_malformed_requests)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    hresp_t r;
    const struct {
        const char *req;
        int status;
    } bad[] = {
        {"GET /topics HTTP/1.1\r\nBad Header Line\r\n\r\n", 400},
        {"GET /topics HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400},
        {"GET /topics HTTP/9.9\r\nHost: t\r\n\r\n", 505},
    };
    client_t *c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = client_open(port);
        CHECK(client_sends(c, bad[i].req));
        CHECK(client_read(c, &r, false));
        CHECK_EQ(r.status, bad[i].status);
        hresp_free(&r);
        client_close(c);
    }
    c = client_open(port);
    CHECK(client_sends(c, "GARBAGE\r\n\r\n"));
    if (client_read(c, &r, false)) { /* a 400, or just a closed connection */
        CHECK_EQ(r.status, 400);
        hresp_free(&r);
    }
    client_close(c);

    /* a header section beyond the per-connection memory */
    size_t big = 200 * 1024;
    char *req = malloc(big + 128);
    CHECK(req);
    int n = sprintf(req, "GET /topics HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'x', big);
    strcpy(req + n + big, "\r\n\r\n");
    c = client_open(port);
    client_sends(c, req);            /* the server may close before reading everything */
    if (client_read(c, &r, false)) { /* unless the close outran the response */
        CHECK_EQ(r.status, 431);
        hresp_free(&r);
    }
    client_close(c);
    free(req);

    /* and serves on */
    get(port, "/topics", &r);
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    ck_http_free(h);
    leak_check();
}

/* Reads until the server closes the connection: true when it did (EOF or reset), false
 * when nothing more came within the client's receive timeout. *ms gets the time taken. */
static bool read_until_close(client_t *c, int64_t *ms)
{
    int64_t t0 = ck_mono_ms();
    bool closed = false;
    for (;;) {
        CHECK(c->len < sizeof(c->buf));
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        closed = n == 0 || errno == ECONNRESET;
        break;
    }
    if (ms)
        *ms = ck_mono_ms() - t0;
    return closed;
}

/* Sends len bytes of raw on a new connection and expects exactly one error response, of
 * status with error_type type, promptly followed by the server closing the connection
 * (the idle timeout is 60 s, so a close within 3 s is the server's doing). */
static void expect_refusal(int port, const char *raw, size_t len, int status, const char *type)
{
    client_t *c = client_open(port);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    client_send(c, raw, len); /* the server may close before reading everything */
    int64_t ms;
    bool closed = read_until_close(c, &ms);
    if (!closed || ms > 3000)
        CK_FAIL("%.40s...: %s after %lld ms (got %zu bytes: %.200s)", raw,
                closed ? "closed only" : "not closed", (long long)ms, c->len, c->buf);
    hresp_t r;
    if (!client_read(c, &r, false))
        CK_FAIL("%.40s...: no complete response (%zu bytes: %.200s)", raw, c->len, c->buf);
    check_error(&r, status, type, NULL);
    char v[32];
    CHECK(hdr(&r, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0);
    if (c->len) /* e.g. a second header block */
        CK_FAIL("%.40s...: %zu bytes after the response: %.200s", raw, c->len, c->buf);
    hresp_free(&r);
    client_close(c);
}

CK_TEST(http_garbage_on_new_connection)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    atomic_store(&calls, 0);

    /* libmicrohttpd takes a line starting with NUL for an empty line and skips it: this
     * waited for the idle timeout, unanswered */
    static const char nul_garbage[] = "\x00\x01\x02GARBAGE\r\n\r\n";
    expect_refusal(port, nul_garbage, sizeof(nul_garbage) - 1, 400, "BadRequest");
    static const char nul_after_empty[] = "\r\n\r\n\x00GET /topics HTTP/1.1\r\nHost: t\r\n\r\n";
    expect_refusal(port, nul_after_empty, sizeof(nul_after_empty) - 1, 400, "BadRequest");
    /* a NUL byte starting a header line ended the header section there */
    static const char nul_header[] = "POST /topics HTTP/1.1\r\nHost: t\r\n\x00"
                                     "Content-Length: 5\r\n\r\nhello";
    expect_refusal(port, nul_header, sizeof(nul_header) - 1, 400, "BadRequest");
    static const char nul_in_line[] = "GET /top\x00ics HTTP/1.1\r\nHost: t\r\n\r\n";
    expect_refusal(port, nul_in_line, sizeof(nul_in_line) - 1, 400, "BadRequest");
    /* no method token: a TLS ClientHello, every byte value */
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    expect_refusal(port, tls, sizeof(tls) - 1, 400, "BadRequest");
    char all[256 * 16];
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (char)(i & 255);
    expect_refusal(port, all, sizeof(all), 400, "BadRequest");
    CHECK_EQ(atomic_load(&calls), 0);

    /* not too eager: empty lines before a request, NUL bytes in a body, a client that
     * takes its time to send */
    hresp_t r;
    request(port, "\r\n\r\nGET /topics HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    static const char nul_body[] = "POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n"
                                   "a\0bGET /topics HTTP/1.1\r\nHost: t\r\n\r\n";
    client_t *c = client_open(port);
    CHECK(client_send(c, nul_body, sizeof(nul_body) - 1));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    client_close(c);
    c = client_open(port);
    usleep(1200 * 1000);
    CHECK(client_sends(c, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    client_close(c);
    CHECK_EQ(atomic_load(&calls), 4);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_bad_content_length)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    atomic_store(&calls, 0);
    /* libmicrohttpd sent its 400 page with the header block twice */
    const char *bad[] = {
        "GET /topics HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        "POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n",
        "POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refusal(port, bad[i], strlen(bad[i]), 400, "BadRequest");
    const char *huge = "POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: "
                       "99999999999999999999999\r\n\r\n";
    expect_refusal(port, huge, strlen(huge), 413, "PayloadTooLarge");

    /* after a request answered on the same connection */
    client_t *c = client_open(port);
    CHECK(client_sends(c, "GET /topics/one HTTP/1.1\r\nHost: t\r\n\r\n"
                          "GET /topics HTTP/1.1\r\nHost: t\r\nContent-Length: x1\r\n\r\n"));
    hresp_t r;
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(strstr(r.body, "\"params\":[\"one\"]"));
    hresp_free(&r);
    int64_t ms;
    CHECK(read_until_close(c, &ms));
    CHECK(ms < 3000);
    CHECK(client_read(c, &r, false));
    check_error(&r, 400, "BadRequest", "Content-Length");
    CHECK_EQ(c->len, 0);
    hresp_free(&r);
    client_close(c);
    CHECK_EQ(atomic_load(&calls), 1);

    get(port, "/topics", &r);
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_ambiguous_body_length)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    atomic_store(&calls, 0);
    /* request smuggling: the handler must not run with a guessed body length */
    const struct {
        const char *req;
        int status;
        const char *type;
    } bad[] = {
        {"POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345",
         400, "BadRequest"},
        {"POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n"
         "GET /topics HTTP/1.1\r\n\r\n",
         400, "BadRequest"},
        {"POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\ncontent-length: 3x\r\n\r\nabc",
         400, "BadRequest"},
        {"POST /topics HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
         "\r\n0\r\n\r\n",
         400, "BadRequest"},
        {"POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\n\r\n",
         400, "BadRequest"},
        {"POST /topics HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400, "BadRequest"},
        {"POST /topics HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400,
         "BadRequest"},
        {"POST /topics HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         501, "NotImplemented"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refusal(port, bad[i].req, strlen(bad[i].req), bad[i].status, bad[i].type);
    CHECK_EQ(atomic_load(&calls), 0);

    /* what is unambiguous still works, on a connection kept alive: repeated equal
     * lengths (RFC 9112 section 6.3 allows them), chunked in any case */
    client_t *c = client_open(port);
    hresp_t r;
    CHECK(client_sends(c, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n"
                          "Content-Length: 7\r\n\r\n{\"x\":1}"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, "{\"got\":{\"x\":1},\"len\":7}");
    hresp_free(&r);
    CHECK(client_sends(c, "POST /json HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n"
                          "7\r\n{\"x\":2}\r\n0\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, "{\"got\":{\"x\":2},\"len\":7}");
    hresp_free(&r);
    client_close(c);
    CHECK_EQ(atomic_load(&calls), 2);

    /* the refusals are counted */
    ck_wbuf_t m = CK_WBUF_INIT;
    ck_http_metrics_render(h, &m);
    ck_wr_u8(&m, 0);
    CHECK(!m.err);
    CHECK(strstr(
        (const char *)m.data,
        "chronik_http_requests_total{method=\"POST\",route=\"unmatched\",status=\"400\"} 7"));
    ck_wbuf_free(&m);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_bind_errors_and_dual_stack)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);

    ck_http_t *h2;
    ck_http_config_t cfg2 = cfg;
    cfg2.port = port;
    CHECK_EQ(ck_http_new(&cfg2, &h2), 0);
    const char *msg = NULL;
    int p2 = -1;
    CHECK_EQ(ck_http_start(h2, &p2, &msg), CK_EEXIST);
    CHECK_EQ(p2, -1);
    ck_http_free(h2);
    CHECK(msg && strstr(msg, "in use")); /* outlives the server */

    cfg2.bind = "no-such-host.invalid";
    cfg2.port = 0;
    CHECK_EQ(ck_http_new(&cfg2, &h2), 0);
    CHECK(ck_http_start(h2, NULL, &msg) < 0);
    CHECK(msg && strstr(msg, "no-such-host.invalid"));
    ck_http_free(h2);
    ck_http_free(h);

    /* every address: reachable over IPv4, and over IPv6 where the host has it */
    ck_http_config_default(&cfg);
    cfg.port = 0;
    h = serve(&cfg, &port);
    hresp_t r;
    get(port, "/topics", &r);
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&lo6, sizeof(lo6)) == 0;
    if (probe >= 0)
        close(probe);
    if (have_v6) {
        int fd = connect_to(AF_INET6, "::1", port);
        CHECK(fd >= 0);
        close(fd);
    }
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_stop_with_idle_keepalive)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    client_t *c = client_open(port);
    hresp_t r;
    CHECK(client_sends(c, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    hresp_free(&r);

    int64_t t0 = ck_mono_ms();
    ck_http_stop(h);
    CHECK(ck_mono_ms() - t0 < 2000); /* an idle connection is not waited for */
    char b;
    CHECK(recv(c->fd, &b, 1, 0) <= 0);
    client_close(c);
    CHECK(connect_to(AF_INET, "127.0.0.1", port) < 0);
    ck_http_stop(h); /* idempotent */

    ck_wbuf_t m = CK_WBUF_INIT; /* metrics outlive the stop */
    ck_http_metrics_render(h, &m);
    CHECK(m.len > 0 && !m.err);
    ck_wbuf_free(&m);
    ck_http_free(h);
    leak_check();
}

static atomic_int inflight_entered, late_done;

static void h_hold(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    atomic_store(&inflight_entered, 1);
    int64_t t0 = ck_mono_ms();
    while (!atomic_load(&late_done) && ck_mono_ms() - t0 < 5000)
        usleep(2000);
    ck_http_resp_json(resp, 200, json_pack("{s:b}", "late_done", atomic_load(&late_done)));
}

static ck_http_t *g_h;

static void *stopper(void *arg)
{
    ck_http_stop(g_h);
    return NULL;
}

CK_TEST(http_stop_drains_requests_in_flight)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    ck_http_t *h;
    CHECK_EQ(ck_http_new(&cfg, &h), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/hold", h_hold, NULL), 0);
    CHECK_EQ(ck_http_route(h, "GET", "/topics", h_echo, "topics"), 0);
    int port;
    CHECK_EQ(ck_http_start(h, &port, NULL), 0);
    g_h = h;

    /* an idle keep-alive connection */
    client_t *idle = client_open(port);
    hresp_t r;
    CHECK(client_sends(idle, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(idle, &r, false));
    CHECK_EQ(r.status, 200);
    hresp_free(&r);

    /* a request in flight */
    client_t *busy = client_open(port);
    CHECK(client_sends(busy, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"));
    while (!atomic_load(&inflight_entered))
        usleep(1000);

    pthread_t st;
    CHECK_EQ(pthread_create(&st, NULL, stopper, NULL), 0);
    usleep(200 * 1000);
    /* stopping: no new connections; a new request on the open one gets 503 */
    CHECK(connect_to(AF_INET, "127.0.0.1", port) < 0);
    CHECK(client_sends(idle, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(client_read(idle, &r, false));
    check_error(&r, 503, "ServiceUnavailable", NULL);
    char v[32];
    CHECK(hdr(&r, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0);
    hresp_free(&r);
    atomic_store(&late_done, 1);

    /* the request in flight still gets its response */
    CHECK(client_read(busy, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, "{\"late_done\":true}");
    CHECK(hdr(&r, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0);
    hresp_free(&r);
    pthread_join(st, NULL);
    client_close(idle);
    client_close(busy);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_connection_limit)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    cfg.max_connections = 2;
    int port;
    ck_http_t *h = serve(&cfg, &port);
    client_t *c[2];
    hresp_t r;
    for (int i = 0; i < 2; i++) {
        c[i] = client_open(port);
        CHECK(client_sends(c[i], "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n"));
        CHECK(client_read(c[i], &r, false));
        CHECK_EQ(r.status, 200);
        hresp_free(&r);
    }
    /* a third is closed unanswered while two are open */
    client_t *extra = client_open(port);
    client_sends(extra, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(!client_read(extra, &r, false));
    client_close(extra);
    client_close(c[0]);
    bool served = false;
    for (int i = 0; i < 100 && !served; i++) { /* the server notices the close */
        usleep(20 * 1000);
        extra = client_open(port);
        client_sends(extra, "GET /topics HTTP/1.1\r\nHost: t\r\n\r\n");
        served = client_read(extra, &r, false) && r.status == 200;
        if (served)
            hresp_free(&r);
        client_close(extra);
    }
    CHECK(served);
    client_close(c[1]);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_allocation_failures)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    hresp_t r;
    int answered = 0, failed = 0;
    for (long n = 1; n <= 40; n++) {
        client_t *c = client_open(port);
        ck_alloc_fail_after(n);
        CHECK(client_sends(c, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n"
                              "{\"x\":1}GET /q?limit=5 HTTP/1.1\r\nHost: t\r\n\r\n"));
        /* each request is answered properly, with a 500, or the connection is dropped */
        for (int i = 0; i < 2; i++) {
            if (!client_read(c, &r, false))
                break;
            CHECK(r.status == 200 || r.status == 500);
            if (r.status == 500)
                check_error(&r, 500, "InternalError", NULL);
            answered += r.status == 200;
            failed += r.status == 500;
            hresp_free(&r);
        }
        ck_alloc_fail_after(0);
        client_close(c);
    }
    CHECK(answered > 0 && failed > 0);
    get(port, "/topics", &r);
    CHECK_EQ(r.status, 200);
    hresp_free(&r);
    ck_http_free(h);
    leak_check();
}

CK_TEST(http_large_bodies)
{
    ck_http_config_t cfg;
    local_config(&cfg);
    int port;
    ck_http_t *h = serve(&cfg, &port);
    size_t n = (3u << 20) + 123; /* past the buffer allocated up front */
    char *body = alphabet(n);
    char want[64], head[128];
    snprintf(want, sizeof(want), "{\"len\":%zu}", n);
    hresp_t r;

    client_t *c = client_open(port);
    snprintf(head, sizeof(head), "POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
    CHECK(client_sends(c, head));
    CHECK(client_send(c, body, n));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, want);
    hresp_free(&r);

    CHECK(client_sends(c, "POST /len HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    CHECK(send_chunked(c, body, n, 65536 + 7));
    CHECK(client_read(c, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STREQ(r.body, want);
    hresp_free(&r);
    client_close(c);
    free(body);
    ck_http_free(h);
    leak_check();
}
