/* Request accessors and response setters handed to route handlers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "http/http_int.h"

/* ---- request ---- */

const char *ck_http_method(const ck_http_req_t *r)
{
    return r->rq_method;
}
const char *ck_http_path(const ck_http_req_t *r)
{
    return r->rq_url;
}
const char *ck_http_raw_path(const ck_http_req_t *r)
{
    return r->rq_raw_path;
}

const char *ck_http_route_pattern(const ck_http_req_t *r)
{
    return r->rq_route ? r->rq_route->rt_pattern : "";
}

const char *ck_http_param(const ck_http_req_t *r, int i)
{
    return i >= 0 && i < r->rq_nparam ? r->rq_param[i] : NULL;
}

int ck_http_param_count(const ck_http_req_t *r)
{
    return r->rq_nparam;
}

const char *ck_http_query_arg(const ck_http_req_t *r, const char *name)
{
    const char *v = NULL;
    if (MHD_lookup_connection_value_n(r->rq_conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v,
                                      NULL) != MHD_YES)
        return NULL;
    return v ? v : ""; /* "?name" without '=' */
}

const char *ck_http_header(const ck_http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->rq_conn, MHD_HEADER_KIND, name);
}

const char *ck_http_body(const ck_http_req_t *r, size_t *len)
{
    if (len)
        *len = r->rq_body ? r->rq_body_len : 0;
    return r->rq_body ? r->rq_body : "";
}

json_t *ck_http_json_body(ck_http_req_t *r, ck_http_resp_t *resp, bool allow_empty)
{
    size_t len;
    const char *body = ck_http_body(r, &len);
    size_t i = 0;
    while (i < len && body[i] && strchr(" \t\r\n", body[i]))
        i++;
    if (i == len) {
        if (allow_empty) {
            json_t *o = json_object();
            if (!o)
                ck_http_resp_error(resp, 500, "InternalError", "out of memory");
            return o;
        }
        ck_http_resp_error(resp, 400, "InvalidJson", "invalid JSON body: empty body");
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &err);
    if (!v) {
        if (json_error_code(&err) == json_error_out_of_memory)
            ck_http_resp_error(resp, 500, "InternalError", "out of memory");
        else
            ck_http_resp_error(resp, 400, "InvalidJson",
                               "invalid JSON body: %s at line %d column %d", err.text, err.line,
                               err.column);
    }
    return v;
}

/* ---- response ---- */

static void resp_body_clear(ck_http_resp_t *resp)
{
    ck_free(resp->rs_ctype);
    ck_free(resp->rs_data);
    ck_free(resp->rs_errmsg);
    resp->rs_ctype = NULL;
    resp->rs_data = NULL;
    resp->rs_errmsg = NULL;
    resp->rs_len = 0;
    resp->rs_status = 0;
}

void ck__http_resp_clear(ck_http_resp_t *resp)
{
    resp_body_clear(resp);
    for (int i = 0; i < resp->rs_nhdr; i++) {
        ck_free(resp->rs_hdr[i].name);
        ck_free(resp->rs_hdr[i].value);
    }
    ck_free(resp->rs_hdr);
    resp->rs_hdr = NULL;
    resp->rs_nhdr = resp->rs_caphdr = 0;
    resp->rs_oom = false;
}

void ck_http_resp_take(ck_http_resp_t *resp, int status, const char *content_type, void *data,
                       size_t len)
{
    resp_body_clear(resp);
    resp->rs_status = status;
    resp->rs_data = data;
    resp->rs_len = data ? len : 0;
    if (content_type && !(resp->rs_ctype = ck_strdup(content_type)))
        resp->rs_oom = true;
}

void ck_http_resp_raw(ck_http_resp_t *resp, int status, const char *content_type, const void *data,
                      size_t len)
{
    void *copy = NULL;
    if (len) {
        copy = ck_malloc(len);
        if (!copy) {
            resp_body_clear(resp);
            resp->rs_status = status;
            resp->rs_oom = true;
            return;
        }
        memcpy(copy, data, len);
    }
    ck_http_resp_take(resp, status, content_type, copy, len);
}

static int dump_to_wbuf(const char *buf, size_t size, void *data)
{
    ck_wbuf_t *w = data;
    ck_wr_bytes(w, buf, size);
    return w->err ? -1 : 0;
}

void ck_http_resp_json(ck_http_resp_t *resp, int status, json_t *body)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    if (!body || json_dump_callback(body, dump_to_wbuf, &w, JSON_COMPACT | JSON_ENCODE_ANY) != 0 ||
        w.err) {
        json_decref(body);
        ck_wbuf_free(&w);
        resp_body_clear(resp);
        resp->rs_status = status;
        resp->rs_oom = true;
        return;
    }
    json_decref(body);
    size_t len;
    uint8_t *data = ck_wbuf_steal(&w, &len);
    ck_http_resp_take(resp, status, "application/json", data, len);
}

/* Replaces the bytes of invalid UTF-8 sequences with '?', as JSON strings must be UTF-8
 * and messages quote client input. */
static void utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xe0) == 0xc0 ? 1
                : (*p & 0xf0) == 0xe0 ? 2
                : (*p & 0xf8) == 0xf0 ? 3
                                      : -1;
        int k = 0;
        if (n > 0)
            while (k < n && (p[k + 1] & 0xc0) == 0x80)
                k++;
        uint32_t cp = 0;
        if (n > 0 && k == n) {
            cp = *p & (0x3f >> n);
            for (int i = 1; i <= n; i++)
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        bool ok = n == 0 || (k == n &&
                             cp >= (n == 1   ? 0x80u
                                    : n == 2 ? 0x800u
                                             : 0x10000u) &&
                             cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff));
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
}

void ck_http_resp_error(ck_http_resp_t *resp, int status, const char *error_type, const char *fmt,
                        ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    char *msg = NULL;
    if (n < 0) {
        n = 0;
        small[0] = 0;
    }
    if ((size_t)n < sizeof(small)) {
        msg = ck_strdup(small);
    } else if ((msg = ck_malloc((size_t)n + 1))) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (msg)
        utf8_sanitize(msg);
    json_t *o = msg ? json_pack("{s:s, s:s}", "error", msg, "error_type", error_type) : NULL;
    ck_http_resp_json(resp, status, o);
    resp->rs_errmsg = msg; /* after resp_json, which clears the previous one */
}

void ck_http_resp_header(ck_http_resp_t *resp, const char *name, const char *value)
{
    if (strcasecmp(name, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        return;
    if (resp->rs_nhdr == resp->rs_caphdr) {
        int cap = resp->rs_caphdr ? resp->rs_caphdr * 2 : 4;
        ck__http_hdr_t *n = ck_realloc(resp->rs_hdr, (size_t)cap * sizeof(*n));
        if (!n) {
            resp->rs_oom = true;
            return;
        }
        resp->rs_hdr = n;
        resp->rs_caphdr = cap;
    }
    ck__http_hdr_t *hd = &resp->rs_hdr[resp->rs_nhdr];
    hd->name = ck_strdup(name);
    hd->value = ck_strdup(value);
    if (!hd->name || !hd->value) {
        ck_free(hd->name);
        ck_free(hd->value);
        resp->rs_oom = true;
        return;
    }
    resp->rs_nhdr++;
}
