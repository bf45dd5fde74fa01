/* Layouts shared by the files of the HTTP server (http.c: daemon and request flow,
 * route.c: patterns and matching, message.c: request/response accessors, metrics.c). */
#ifndef CK_HTTP_HTTP_INT_H
#define CK_HTTP_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "http/http.h"

#define CK__HTTP_MAX_SEGS 16

/* Methods a route can hold, in the order an Allow header lists them. */
enum {
    CK__HTTP_GET,
    CK__HTTP_HEAD,
    CK__HTTP_POST,
    CK__HTTP_PUT,
    CK__HTTP_DELETE,
    CK__HTTP_PATCH,
    CK__HTTP_NMETHODS
};

/* Index of a method name in the enum above, -1 for any other. */
int ck__http_method_index(const char *m);
const char *ck__http_method_name(int idx);

/* One pattern with a handler per method. Immutable once the server starts. */
typedef struct ck__http_route {
    char *rt_pattern;                      /* as first registered */
    char *rt_segbuf;                       /* the literal segments, NUL-separated */
    const char *rt_seg[CK__HTTP_MAX_SEGS]; /* literal text, or NULL for a {param} */
    int rt_nseg;
    uint32_t rt_params; /* bit i set: segment i is a {param} */
    int rt_id;          /* index in h->routes, the metrics slot */
    ck_http_handler rt_fn[CK__HTTP_NMETHODS];
    void *rt_ud[CK__HTTP_NMETHODS];
} ck__http_route_t;

/* Parses pattern into a new route (no handlers). CK_EINVAL, CK_ENOMEM. */
int ck__http_route_parse(const char *pattern, ck__http_route_t **out);
void ck__http_route_free(ck__http_route_t *rt);
/* True when a and b have the same segments (param names aside). */
bool ck__http_route_same(const ck__http_route_t *a, const ck__http_route_t *b);
/* The best route for the decoded segments (see ck_http_route), or NULL. */
const ck__http_route_t *ck__http_route_match(ck__http_route_t *const *routes, int n,
                                             const char *const *seg, int nseg);
/* Percent-decodes s in place; -1 when it decodes to a NUL byte (never allowed). Broken
 * escapes ("%zz", "%4") are kept as they are. */
int ck__http_pct_decode(char *s);

typedef struct ck__http_hdr {
    char *name;
    char *value;
} ck__http_hdr_t;

struct ck_http_resp {
    int rs_status;    /* 0 = not set */
    char *rs_ctype;   /* NULL = no Content-Type */
    uint8_t *rs_data; /* ck_malloc'ed body, or NULL */
    size_t rs_len;
    char *rs_errmsg; /* message of ck_http_resp_error, for the log */
    ck__http_hdr_t *rs_hdr;
    int rs_nhdr, rs_caphdr;
    bool rs_oom; /* an allocation failed: answer 500 */
};

void ck__http_resp_clear(ck_http_resp_t *resp);

/* One request: created when its request line arrives (MHD URI log callback), freed when
 * MHD reports it completed. Owned by the connection thread. */
struct ck_http_req {
    ck_http_t *rq_h;
    struct MHD_Connection *rq_conn;
    const char *rq_method; /* MHD's, valid for the request */
    const char *rq_url;    /* MHD's decoded path */
    char *rq_raw_path;     /* path as sent, without the query */
    char *rq_segbuf;       /* decoded path segments, NUL-separated */
    const char *rq_seg[CK__HTTP_MAX_SEGS];
    int rq_nseg;
    const char *rq_param[CK__HTTP_MAX_SEGS];
    int rq_nparam;
    const ck__http_route_t *rq_route; /* NULL = unmatched */
    int rq_midx;                      /* method index to call, -1 = none */
    int rq_reject; /* status decided before the body: 0, 400, 404, 405, 501, 503 */
    /* With rq_reject 400/501: what is wrong with the message framing (a static string);
     * the answer is {"error_type":"BadRequest"/"NotImplemented"} and closes the
     * connection. NULL: a 400 is a bad percent-encoding in the path. */
    const char *rq_framing;
    char *rq_body;
    size_t rq_body_len, rq_body_cap;
    size_t rq_discarded; /* body bytes read and dropped */
    bool rq_started;     /* the first access-handler call happened */
    bool rq_discard;     /* drop the body (unmatched route, or too large) */
    bool rq_too_large;
    bool rq_answered; /* a response was queued */
    bool rq_raw_sent; /* refused on the socket directly, behind MHD (see mhd_log) */
    int64_t rq_t0;    /* ck_mono_ns when the headers were read */
    ck_http_resp_t rq_resp;
};

typedef struct ck__http_hist {
    uint64_t h_bucket[16]; /* cumulative counts are computed when rendering */
    uint64_t h_count;
    double h_sum; /* seconds */
} ck__http_hist_t;

typedef struct ck__http_count {
    int8_t c_method; /* method index, CK__HTTP_NMETHODS = other */
    int16_t c_route; /* route id, nroutes = unmatched */
    int16_t c_status;
    uint64_t c_n;
} ck__http_count_t;

typedef struct ck__http_metrics {
    pthread_mutex_t m_mu;
    ck__http_hist_t *m_hist; /* nroutes + 1 (unmatched); NULL before start */
    int m_nhist;
    ck__http_count_t *m_count;
    int m_ncount, m_capcount;
    uint64_t m_errors;
} ck__http_metrics_t;

void ck__http_metrics_init(ck__http_metrics_t *m);
int ck__http_metrics_alloc(ck__http_metrics_t *m, int nroutes);
void ck__http_metrics_destroy(ck__http_metrics_t *m);
/* Records one answered request. Any thread. */
void ck__http_metrics_record(ck__http_metrics_t *m, int method, int route, int status,
                             double seconds);

enum { CK__HTTP_NEW, CK__HTTP_RUNNING, CK__HTTP_STOPPED };

struct ck_http {
    ck_http_config_t h_cfg;
    char *h_bind;
    ck__http_route_t **h_routes;
    int h_nroutes, h_caproutes;
    int h_state;
    struct MHD_Daemon *h_daemon;
    int h_port;
    atomic_bool h_stopping; /* answer new requests with 503 */
    atomic_bool h_starting; /* MHD log messages go to h_errbuf */
    pthread_mutex_t h_mu;   /* guards h_active for h_cv */
    pthread_cond_t h_cv;
    int h_active; /* requests begun and not completed */
    ck__http_metrics_t h_metrics;
    char h_errbuf[256];
};

#endif
