/* The HTTP server every HTTP feature of the unified API (port 6092) runs on: a router of
 * "/a/{param}/b" patterns over libmicrohttpd, JSON helpers (jansson) and request metrics.
 *
 * Threads: libmicrohttpd runs one thread per connection, and handlers run on it, so a
 * handler may block (a SQL query, waiting for an index to catch up) without holding up
 * other connections. Handlers for different requests run concurrently and must be
 * thread-safe towards their user data.
 *
 * Lifecycle: ck_http_new -> ck_http_route (any number) -> ck_http_start -> ... ->
 * ck_http_stop -> ck_http_free. new/route/start/stop/free are called from one owner
 * thread; ck_http_metrics_render from any thread while the server exists.
 *
 * Behaviour on the wire (compatible with the upstream server):
 *  - Unknown path: 404 with an empty body. Known path, method not registered: 405 with an
 *    Allow header and {"error":"method GET not allowed on /_sql","error_type":
 *    "MethodNotAllowed"}. HEAD runs the GET handler; the body is not sent.
 *  - A body over max_body_bytes: 413 {"error":..., "error_type":"PayloadTooLarge"}
 *    without calling the handler; at most max_body_bytes are buffered.
 *  - A handler that sets no response: 500 {"error":"no response","error_type":
 *    "InternalError"}.
 *  - Malformed framing gets one error response and the connection closed, without calling
 *    a handler: 400 {"error":..., "error_type":"BadRequest"} for a first request that does
 *    not start with a method token or has a NUL byte in its header section, an invalid
 *    Content-Length, different Content-Length values, Transfer-Encoding together with
 *    Content-Length or without chunked as the final coding; 501 "NotImplemented" for
 *    other transfer codings before chunked; 413 for a Content-Length beyond 64 bits.
 *    (Other malformed requests get libmicrohttpd's own 400/414/431/505 page, or a close.)
 *  - Responses carry Content-Type (when there is a body) and Content-Length; connections
 *    are kept alive (HTTP/1.1) until idle_timeout_s passes without a request. */
#ifndef CK_HTTP_HTTP_H
#define CK_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/buf.h"

typedef struct ck_http ck_http_t;
typedef struct ck_http_req ck_http_req_t;
typedef struct ck_http_resp ck_http_resp_t;

typedef struct ck_http_config {
    const char *bind;      /* "0.0.0.0" or "::" (or "" / NULL): every address, IPv6 and IPv4
                              (IPv4 only where IPv6 is unavailable); otherwise that address or
                              host name. Copied by ck_http_new. */
    int port;              /* 0 = ephemeral (ck_http_start reports the port) */
    size_t max_body_bytes; /* larger request bodies get 413 */
    int idle_timeout_s;    /* a connection idle this long is closed; 0 = never */
    int max_connections;   /* further connections are refused while this many are open */
    int stop_grace_ms;     /* ck_http_stop lets requests in flight finish this long */
} ck_http_config_t;

/* 0.0.0.0:6092, 16 MiB bodies, 60 s idle timeout, 1024 connections, 5 s stop grace. */
void ck_http_config_default(ck_http_config_t *c);

/* ---- the request (valid during the handler call, on the handler's thread) ----
 * Every string returned is NUL-terminated and owned by the request; it stays valid until
 * the handler returns. */

/* The request method as sent: "GET", "HEAD" (a HEAD served by a GET handler), "POST"... */
const char *ck_http_method(const ck_http_req_t *r);
/* The path without the query string, percent-decoded ("/topics/a b"). */
const char *ck_http_path(const ck_http_req_t *r);
/* The path without the query string, as sent ("/topics/a%20b"). */
const char *ck_http_raw_path(const ck_http_req_t *r);
/* The pattern of the matched route ("/topics/{name}"). */
const char *ck_http_route_pattern(const ck_http_req_t *r);
/* The i-th (from 0) {param} segment of the matched route, percent-decoded ("%2F" gives
 * '/', '+' stays '+'); NULL when i is out of range. Never empty. */
const char *ck_http_param(const ck_http_req_t *r, int i);
int ck_http_param_count(const ck_http_req_t *r);
/* The decoded value of ?name=value ('+' is a space); "" for "?name" without '=';
 * NULL if absent. With repeated names, the first. */
const char *ck_http_query_arg(const ck_http_req_t *r, const char *name);
/* A request header, name case-insensitive; NULL if absent. */
const char *ck_http_header(const ck_http_req_t *r, const char *name);
/* The request body, NUL-terminated (it may contain NULs; *len, if not NULL, is its
 * length); "" when there is none. */
const char *ck_http_body(const ck_http_req_t *r, size_t *len);
/* Parses the body as JSON whatever the Content-Type says (clients like curl -d send
 * application/x-www-form-urlencoded); any JSON value is accepted at the top level, the
 * handler checks the shape. Returns a new reference the caller must json_decref, or NULL
 * after setting resp to 400 {"error":"invalid JSON body: <jansson message> at line L
 * column C","error_type":"InvalidJson"}. An empty (or all-whitespace) body is an error
 * too, unless allow_empty: then a new empty object is returned. NULL with a 500 on
 * allocation failure. */
json_t *ck_http_json_body(ck_http_req_t *r, ck_http_resp_t *resp, bool allow_empty);

/* ---- the response (filled by the handler; sent after it returns) ----
 * A later ck_http_resp_{json,raw,take,error} replaces an earlier one (its body is freed);
 * headers accumulate. Allocation failures turn the response into a 500. status is a
 * three-digit HTTP status; anything else becomes a 500. */

/* Steals the reference to body (any JSON value; NULL, e.g. from a failed json_object(),
 * gives a 500) and sends it compactly encoded as application/json. */
void ck_http_resp_json(ck_http_resp_t *resp, int status, json_t *body);
/* Copies len bytes of data; content_type NULL = no Content-Type header. */
void ck_http_resp_raw(ck_http_resp_t *resp, int status, const char *content_type, const void *data,
                      size_t len);
/* Takes ownership of data, a ck_malloc/ck_realloc buffer (e.g. a ck_wbuf_t's data from
 * ck_wbuf_steal), which is sent without a copy and ck_free'd after; also when this call
 * fails. data may be NULL when len is 0. */
void ck_http_resp_take(ck_http_resp_t *resp, int status, const char *content_type, void *data,
                       size_t len);
/* {"error":"<formatted message>","error_type":"<error_type>"} with status. */
void ck_http_resp_error(ck_http_resp_t *resp, int status, const char *error_type, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
/* Adds a response header (both strings copied). Content-Length is the server's and is
 * ignored here; "Connection: close" closes the connection after the response. */
void ck_http_resp_header(ck_http_resp_t *resp, const char *name, const char *value);

/* ---- the server ---- */

/* Runs on a connection thread for each request whose route and method match. req and resp
 * are valid only during the call. */
typedef void (*ck_http_handler)(ck_http_req_t *req, ck_http_resp_t *resp, void *ud);

/* Creates a server (not yet listening) with a copy of cfg. CK_EINVAL for a bad config
 * (port outside 0..65535, max_body_bytes 0, negative timeouts, max_connections < 1),
 * CK_ENOMEM. */
int ck_http_new(const ck_http_config_t *cfg, ck_http_t **out);

/* Registers fn(ud) for method on pattern; before ck_http_start only (CK_ESTATE after).
 * pattern: "/" or "/seg/seg..." where a segment is literal text or a whole "{name}"
 * matching one non-empty segment (at most 16 segments): "/topics", "/topics/{name}",
 * "/_sql/describe/{table}", "/{index}/_search", "/_vector/{topic}/search".
 * Routing goes by path first, then method: among patterns matching a path, a literal
 * segment beats a {param} at the first position where they differ (so "/_sql/tables"
 * wins over "/{index}/..." style routes); a path that matches a pattern lacking the
 * method gets 405. Patterns that differ only in their {param} names are the same pattern.
 * method: "GET", "POST", "PUT", "DELETE", "PATCH" or "HEAD"; a GET route also serves HEAD
 * unless HEAD is registered itself. Errors: CK_EINVAL (bad method or pattern), CK_EEXIST
 * (method already registered on the pattern), CK_ENOMEM. */
int ck_http_route(ck_http_t *h, const char *method, const char *pattern, ck_http_handler fn,
                  void *ud);

/* Binds and starts serving on the background threads. *bound_port (if not NULL) gets the
 * port bound (useful with port 0). On failure returns CK_E* (CK_EEXIST address in use,
 * CK_EINVAL bad address, CK_ESTATE already started, ...) and *errmsg (if not NULL) says
 * what failed ("bind 0.0.0.0:6092: Address already in use"); the message is per thread
 * and stays valid, also across ck_http_free, until the next ck_http_start on the thread.
 * *errmsg is NULL on success. */
int ck_http_start(ck_http_t *h, int *bound_port, const char **errmsg);

/* Stops accepting connections, lets requests in flight finish and send their responses
 * (up to stop_grace_ms; requests arriving meanwhile on open connections get 503), then
 * closes every connection and waits for every handler still running to return. So the
 * calling thread must not be one that running handlers wait for (or make them give up
 * first). Idempotent; a no-op before ck_http_start. */
void ck_http_stop(ck_http_t *h);

/* Stops (if running) and frees the server. NULL is a no-op. */
void ck_http_free(ck_http_t *h);

/* Appends the Prometheus text of the HTTP metrics to out (out->err set on allocation
 * failure). Any thread.
 *   chronik_http_requests_total{method,route,status}   counter
 *   chronik_http_request_duration_seconds{route}        histogram
 *   search_api_requests_total{method,endpoint,status}  counter (upstream name)
 *   search_api_request_duration_seconds{endpoint}       histogram (upstream name)
 *   search_api_errors_total                              counter, status >= 400
 * route/endpoint is the route pattern, or "unmatched". Durations run from the request's
 * headers being read to its response being queued. Requests libmicrohttpd refuses by
 * itself (malformed: 400, 431, 505), and those refused before their header is complete
 * (a bad first line or NUL byte, an invalid Content-Length), are not counted. */
void ck_http_metrics_render(ck_http_t *h, ck_wbuf_t *out);

#endif
