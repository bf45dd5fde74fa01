/* Embedding providers (see embed.h). */
#include "vector/embed.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "vector/model.h"

#ifndef CK_MODEL_DIR_DEFAULT
#define CK_MODEL_DIR_DEFAULT "third_party/use-lite"
#endif

#define DEFAULT_OPENAI "https://api.openai.com"
#define MAX_ANSWER (256u << 20) /* bytes of a provider's answer we accept */

struct ck_embedder {
    ck_embed_kind_t kind;
    char *model, *url, *auth;
    _Atomic uint32_t dims;
    bool dims_fixed; /* configured (or local): answers of another size are errors */
    int timeout_ms, max_retries;
    const ck_use_t *use; /* local */
};

static void seterr(char err[CK_EMBED_ERR], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void seterr(char err[CK_EMBED_ERR], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, CK_EMBED_ERR, fmt, ap);
    va_end(ap);
}

ck_embed_kind_t ck_embed_kind_parse(const char *s)
{
    if (!s)
        return 0;
    if (!strcasecmp(s, "local"))
        return CK_EMBED_LOCAL;
    if (!strcasecmp(s, "openai"))
        return CK_EMBED_OPENAI;
    if (!strcasecmp(s, "external"))
        return CK_EMBED_EXTERNAL;
    return 0;
}

const char *ck_embed_kind_name(ck_embed_kind_t k)
{
    return k == CK_EMBED_LOCAL ? "local" : k == CK_EMBED_OPENAI ? "openai" : "external";
}

/* ---- the local model: loaded once, kept for the life of the process ---- */

static pthread_mutex_t use_mu = PTHREAD_MUTEX_INITIALIZER;
static ck_use_t *use_model;
static char use_dir[1024];

static const ck_use_t *local_model(const char *dir, char err[CK_EMBED_ERR])
{
    if (!dir || !*dir)
        dir = CK_MODEL_DIR_DEFAULT;
    pthread_mutex_lock(&use_mu);
    const ck_use_t *m = NULL;
    if (use_model && strcmp(use_dir, dir)) {
        seterr(err, "the local model is already loaded from another folder (%s)", use_dir);
    } else if (use_model) {
        m = use_model;
    } else {
        char e[256] = "";
        int rc = ck_use_load(dir, &use_model, e, sizeof(e));
        if (rc)
            seterr(err, "local embedding model in %s: %s (scripts/setup.sh fetches it)", dir,
                   *e ? e : ck_strerror(rc));
        else {
            snprintf(use_dir, sizeof(use_dir), "%s", dir);
            m = use_model;
        }
    }
    pthread_mutex_unlock(&use_mu);
    return m;
}

/* ---- construction ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_or_null(const char *s)
{
    return s ? ck_strdup(s) : NULL;
}

int ck_embedder_new(const ck_embed_config_t *cfg, ck_embedder_t **out, char err[CK_EMBED_ERR])
{
    *out = NULL;
    err[0] = 0;
    if (cfg->dims > CK_EMBED_MAX_DIMS) {
        seterr(err, "dimensions %u is over %u", cfg->dims, CK_EMBED_MAX_DIMS);
        return CK_EINVAL;
    }
    ck_embedder_t *e = ck_calloc(1, sizeof(*e));
    if (!e)
        return CK_ENOMEM;
    e->kind = cfg->kind;
    e->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    e->max_retries = cfg->max_retries >= 0 ? cfg->max_retries : 3;
    e->dims = cfg->dims;
    e->dims_fixed = cfg->dims != 0;
    int rc = 0;
    switch (cfg->kind) {
    case CK_EMBED_LOCAL:
        if (!(e->use = local_model(cfg->model_dir, err))) {
            rc = CK_EINVAL;
            break;
        }
        if (cfg->dims && cfg->dims != CK_USE_DIMS) {
            seterr(err, "the local model has %d dimensions, not %u", CK_USE_DIMS, cfg->dims);
            rc = CK_EINVAL;
            break;
        }
        e->dims = CK_USE_DIMS;
        e->dims_fixed = true;
        e->model = ck_strdup("use-lite");
        rc = e->model ? 0 : CK_ENOMEM;
        break;
    case CK_EMBED_OPENAI:
    case CK_EMBED_EXTERNAL: {
        const char *ep = cfg->endpoint && *cfg->endpoint ? cfg->endpoint
                         : cfg->kind == CK_EMBED_OPENAI  ? DEFAULT_OPENAI
                                                         : NULL;
        if (!ep || (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))) {
            seterr(err, "%s provider needs an http(s) endpoint%s%s", ck_embed_kind_name(cfg->kind),
                   ep ? ", not " : "", ep ? ep : "");
            rc = CK_EINVAL;
            break;
        }
        if (cfg->kind == CK_EMBED_OPENAI && (!cfg->model || !*cfg->model)) {
            seterr(err, "openai provider needs a model");
            rc = CK_EINVAL;
            break;
        }
        pthread_once(&curl_once, curl_init_once);
        size_t n = strlen(ep);
        while (n && ep[n - 1] == '/')
            n--;
        e->url = ck_malloc(n + 32);
        if (!e->url) {
            rc = CK_ENOMEM;
            break;
        }
        if (cfg->kind == CK_EMBED_EXTERNAL)
            snprintf(e->url, n + 32, "%.*s", (int)n, ep);
        else if (n >= 3 && !strncmp(ep + n - 3, "/v1", 3))
            snprintf(e->url, n + 32, "%.*s/embeddings", (int)n, ep);
        else
            snprintf(e->url, n + 32, "%.*s/v1/embeddings", (int)n, ep);
        e->model = dup_or_null(cfg->model);
        if (cfg->model && !e->model) {
            rc = CK_ENOMEM;
            break;
        }
        if (cfg->api_key && *cfg->api_key) {
            size_t kl = strlen(cfg->api_key) + 32;
            if (!(e->auth = ck_malloc(kl))) {
                rc = CK_ENOMEM;
                break;
            }
            snprintf(e->auth, kl, "Authorization: Bearer %s", cfg->api_key);
        }
        break;
    }
    default:
        seterr(err, "unknown embedding provider");
        rc = CK_EINVAL;
    }
    if (rc) {
        ck_embedder_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void ck_embedder_free(ck_embedder_t *e)
{
    if (!e)
        return;
    ck_free(e->model);
    ck_free(e->url);
    ck_free(e->auth);
    ck_free(e);
}

uint32_t ck_embedder_dims(const ck_embedder_t *e)
{
    return e->dims;
}

const char *ck_embedder_model(const ck_embedder_t *e)
{
    return e->model ? e->model : "";
}

ck_embed_kind_t ck_embedder_kind(const ck_embedder_t *e)
{
    return e->kind;
}

/* ---- HTTP ---- */

typedef struct answer {
    char *p;
    size_t n, cap;
    bool over;
} answer_t;

static size_t on_body(char *data, size_t sz, size_t nm, void *arg)
{
    answer_t *a = arg;
    size_t n = sz * nm;
    if (a->n + n + 1 > MAX_ANSWER) {
        a->over = true;
        return 0;
    }
    if (a->n + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 64 * 1024;
        while (cap < a->n + n + 1)
            cap *= 2;
        char *np = ck_realloc(a->p, cap);
        if (!np)
            return 0;
        a->p = np;
        a->cap = cap;
    }
    memcpy(a->p + a->n, data, n);
    a->n += n;
    a->p[a->n] = 0;
    return n;
}

/* One POST. Returns 0 with *status set (any HTTP status), or CK_EIO (transport failure,
 * err set). */
static int post(const char *url, const char *auth, const char *body, int timeout_ms, answer_t *a,
                long *status, char err[CK_EMBED_ERR])
{
    CURL *c = curl_easy_init();
    if (!c)
        return CK_ENOMEM;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h && auth)
        h = curl_slist_append(h, auth);
    a->n = 0;
    a->over = false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 10000 ? timeout_ms : 10000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "chronik/" CK_VERSION);
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    if (cc != CURLE_OK) {
        seterr(err, "%s: %s", url, a->over ? "answer too large" : curl_easy_strerror(cc));
        rc = CK_EIO;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

/* The provider's error message from a JSON answer ({"error":{"message"}} or {"error":"..."}),
 * or the start of the body. */
static void answer_error(const answer_t *a, long status, const char *url, char err[CK_EMBED_ERR])
{
    json_t *j = a->p ? json_loadb(a->p, a->n, 0, NULL) : NULL;
    json_t *ev = j ? json_object_get(j, "error") : NULL;
    const char *msg = json_is_string(ev) ? json_string_value(ev)
                      : json_is_object(ev) && json_is_string(json_object_get(ev, "message"))
                          ? json_string_value(json_object_get(ev, "message"))
                          : NULL;
    if (msg)
        seterr(err, "%s: HTTP %ld: %s", url, status, msg);
    else
        seterr(err, "%s: HTTP %ld: %.120s", url, status, a->p ? a->p : "");
    json_decref(j);
}

static char *request_body(const ck_embedder_t *e, const char *const *texts, const size_t *lens,
                          size_t n)
{
    json_t *arr = json_array();
    json_t *o = json_object();
    if (!arr || !o)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(arr, json_stringn_nocheck(texts[i], lens[i])))
            goto fail;
    if (e->model && json_object_set_new(o, "model", json_string(e->model)))
        goto fail;
    if (json_object_set_new(o, e->kind == CK_EMBED_OPENAI ? "input" : "texts", arr)) {
        arr = NULL;
        goto fail;
    }
    arr = NULL;
    if (e->kind == CK_EMBED_OPENAI && e->dims_fixed &&
        json_object_set_new(o, "dimensions", json_integer(e->dims)))
        goto fail;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
fail:
    json_decref(arr);
    json_decref(o);
    return NULL;
}

/* Copies one JSON array of numbers into out (dims floats), fixing dims on first use. */
static int take_vector(ck_embedder_t *e, json_t *v, float *out, size_t i, char err[CK_EMBED_ERR])
{
    size_t d = json_is_array(v) ? json_array_size(v) : 0;
    uint32_t want = e->dims;
    if (!d || d > CK_EMBED_MAX_DIMS || (want && d != want)) {
        seterr(err, "%s: embedding %zu has %zu numbers, expected %u", e->url, i, d,
               want ? want : 1);
        return CK_EINVAL;
    }
    if (!want) {
        uint32_t zero = 0;
        if (!atomic_compare_exchange_strong(&e->dims, &zero, (uint32_t)d) && zero != d) {
            seterr(err, "%s: embedding %zu has %zu numbers, expected %u", e->url, i, d, zero);
            return CK_EINVAL;
        }
    }
    for (size_t k = 0; k < d; k++) {
        json_t *x = json_array_get(v, k);
        if (!json_is_number(x)) {
            seterr(err, "%s: embedding %zu: element %zu is not a number", e->url, i, k);
            return CK_EINVAL;
        }
        out[i * d + k] = (float)json_number_value(x);
    }
    return 0;
}

static int parse_answer(ck_embedder_t *e, const answer_t *a, size_t n, float *out,
                        char err[CK_EMBED_ERR])
{
    json_error_t je;
    json_t *j = json_loadb(a->p ? a->p : "", a->n, 0, &je);
    if (!j) {
        seterr(err, "%s: answer is not JSON: %s", e->url, je.text);
        return CK_EINVAL;
    }
    int rc = 0;
    json_t *list = json_object_get(j, e->kind == CK_EMBED_OPENAI ? "data" : "embeddings");
    if (!json_is_array(list) || json_array_size(list) != n) {
        seterr(err, "%s: answer has %zu embeddings for %zu texts", e->url,
               json_is_array(list) ? json_array_size(list) : 0, n);
        rc = CK_EINVAL;
    }
    bool *seen = rc ? NULL : ck_calloc(n ? n : 1, 1);
    if (!rc && !seen)
        rc = CK_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *item = json_array_get(list, i);
        size_t at = i;
        json_t *vec = item;
        if (e->kind == CK_EMBED_OPENAI) {
            json_t *ix = json_object_get(item, "index");
            vec = json_object_get(item, "embedding");
            if (json_is_integer(ix)) {
                json_int_t v = json_integer_value(ix);
                if (v < 0 || (size_t)v >= n) {
                    seterr(err, "%s: answer index %lld out of range", e->url, (long long)v);
                    rc = CK_EINVAL;
                    break;
                }
                at = (size_t)v;
            }
        }
        if (seen[at]) {
            seterr(err, "%s: answer has index %zu twice", e->url, at);
            rc = CK_EINVAL;
            break;
        }
        seen[at] = true;
        rc = take_vector(e, vec, out, at, err);
    }
    ck_free(seen);
    json_decref(j);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

/* POSTs body with retries (transport failures, 429, 5xx: backoff from 100 ms doubling to
 * 5 s, at most max_retries times, none past deadline_ms): 0 with a 2xx answer in *a, or
 * CK_EIO with err set. */
static int post_retrying(const char *url, const char *auth, const char *body, int timeout_ms,
                         int max_retries, int64_t deadline_ms, answer_t *a, char err[CK_EMBED_ERR])
{
    int rc = CK_EIO, wait = 100;
    for (int attempt = 0;; attempt++) {
        int timeout = timeout_ms;
        if (deadline_ms) {
            int64_t left = deadline_ms - ck_mono_ms();
            if (left <= 0) {
                if (!attempt)
                    seterr(err, "%s: no time left to ask", url);
                return CK_EIO;
            }
            if (left < timeout)
                timeout = (int)left;
        }
        long status = 0;
        rc = post(url, auth, body, timeout, a, &status, err);
        if (!rc && status >= 200 && status < 300)
            return 0;
        bool again = rc == CK_EIO || status == 429 || status >= 500;
        if (!rc) {
            answer_error(a, status, url, err);
            rc = CK_EIO;
        }
        if (!again || attempt >= max_retries || (deadline_ms && ck_mono_ms() + wait >= deadline_ms))
            return rc;
        sleep_ms(wait);
        wait = wait * 2 > 5000 ? 5000 : wait * 2;
    }
}

static int embed_http(ck_embedder_t *e, const char *const *texts, const size_t *lens, size_t n,
                      float *out, int64_t deadline_ms, char err[CK_EMBED_ERR])
{
    char *body = request_body(e, texts, lens, n);
    if (!body)
        return CK_ENOMEM;
    answer_t a = {0};
    int rc =
        post_retrying(e->url, e->auth, body, e->timeout_ms, e->max_retries, deadline_ms, &a, err);
    if (!rc)
        rc = parse_answer(e, &a, n, out, err);
    ck_free(a.p);
    free(body); /* jansson's allocator */
    return rc;
}

int ck_embed_post_json(const char *url, const char *auth, const json_t *body, int timeout_ms,
                       int max_retries, int64_t deadline_ms, json_t **answer,
                       char err[CK_EMBED_ERR])
{
    pthread_once(&curl_once, curl_init_once);
    *answer = NULL;
    err[0] = 0;
    char *b = json_dumps(body, JSON_COMPACT);
    if (!b)
        return CK_ENOMEM;
    answer_t a = {0};
    int rc = post_retrying(url, auth, b, timeout_ms, max_retries, deadline_ms, &a, err);
    if (!rc) {
        json_error_t je;
        *answer = json_loadb(a.p ? a.p : "", a.n, 0, &je);
        if (!*answer) {
            seterr(err, "%s: the answer is not JSON (%s)", url, je.text);
            rc = CK_EINVAL;
        }
    }
    ck_free(a.p);
    free(b);
    return rc;
}

int ck_embedder_embed(ck_embedder_t *e, const char *const *texts, const size_t *lens, size_t n,
                      float *out, char err[CK_EMBED_ERR])
{
    return ck_embedder_embed_by(e, texts, lens, n, out, 0, err);
}

int ck_embedder_embed_by(ck_embedder_t *e, const char *const *texts, const size_t *lens, size_t n,
                         float *out, int64_t deadline_ms, char err[CK_EMBED_ERR])
{
    err[0] = 0;
    if (!n)
        return 0;
    if (e->kind == CK_EMBED_LOCAL) {
        int rc = ck_use_embed(e->use, texts, lens, n, out);
        if (rc)
            seterr(err, "local model: %s", ck_strerror(rc));
        return rc;
    }
    return embed_http(e, texts, lens, n, out, deadline_ms, err);
}
