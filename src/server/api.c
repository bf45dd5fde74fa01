/* The unified HTTP API routes (see api.h). Route table: ck_api_start. */
#include "server/api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/logging.h"
#include "http/http.h"
#include "server/api_int.h"
#include "server/metrics.h"

#define MAX_WAIT_MS 60000

/* ---------------------------------------------------------------- loop calls */

static void on_calls(ck_wakeup_t *wk)
{
    ck_api_t *a = wk->data;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        call_t *c = a->head;
        if (c) {
            a->head = c->next;
            if (!a->head)
                a->tail = NULL;
        }
        pthread_mutex_unlock(&a->mu);
        if (!c)
            break;
        c->fn(a, c->arg);
        pthread_mutex_lock(&a->mu);
        c->done = true;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
}

/* Runs fn(a, arg) on the loop thread and waits for it. CK_ECLOSED when shutting down. */
int ck__api_loop_call(ck_api_t *a, void (*fn)(ck_api_t *, void *), void *arg)
{
    call_t c = {NULL, fn, arg, false};
    pthread_mutex_lock(&a->mu);
    if (a->closed) {
        pthread_mutex_unlock(&a->mu);
        return CK_ECLOSED;
    }
    if (a->tail)
        a->tail->next = &c;
    else
        a->head = &c;
    a->tail = &c;
    pthread_mutex_unlock(&a->mu);
    ck_wakeup_signal(&a->wk);
    pthread_mutex_lock(&a->mu);
    while (!c.done)
        pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

void ck_api_close_calls(ck_api_t *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->closed = true; /* no call is queued from now on */
    pthread_mutex_unlock(&a->mu);
    on_calls(&a->wk); /* whatever was queued still runs */
    ck_indexer_cancel_waits(a->d.indexer);
}

void ck__api_bg_enter(ck_api_t *a)
{
    pthread_mutex_lock(&a->mu);
    a->bg++;
    pthread_mutex_unlock(&a->mu);
}

void ck__api_bg_leave(ck_api_t *a)
{
    pthread_mutex_lock(&a->mu);
    a->bg--;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static bool unavailable(ck_api_t *a, int rc, ck_http_resp_t *resp)
{
    if (rc == 0)
        return false;
    ck_http_resp_error(resp, 503, "ServiceUnavailable", "the server is shutting down");
    return true;
}

/* ---------------------------------------------------------------- JSON helpers */

static void topic_id_text(const uint8_t id[16], char out[24])
{
    /* Kafka prints topic ids as URL-safe base64 without padding */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int o = 0;
    for (int i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)id[i] << 16;
        if (i + 1 < 16)
            v |= (uint32_t)id[i + 1] << 8;
        if (i + 2 < 16)
            v |= id[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < 16)
            out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < 16)
            out[o++] = b64[v & 63];
    }
    out[o] = 0;
}

static json_t *capability_json(ck_api_t *a, const ck_topic_t *t, const char *cap, const char *key)
{
    const char *v = ck_topic_config(t, key, NULL);
    bool on = v && !strcasecmp(v, "true");
    json_t *j = json_object();
    json_object_set_new(j, "enabled", json_boolean(on));
    if (!on)
        return j;
    ck_idx_status_t st;
    int64_t vis[256], hw[256];
    int np = t->npart < 256 ? t->npart : 256;
    if (!ck_indexer_status(a->d.indexer, cap, t->name, &st, vis, hw, np)) {
        json_object_set_new(j, "status", json_string("starting"));
        return j;
    }
    json_object_set_new(j, "status",
                        json_string(st.status[0] ? st.status
                                    : st.ready   ? "ok"
                                                 : "starting"));
    json_object_set_new(j, "lag", json_integer(st.lag));
    json_t *parts = json_array();
    for (int p = 0; p < np && p < st.npart; p++)
        json_array_append_new(parts,
                              json_pack("{s:i,s:I,s:I,s:I}", "partition", p, "visible_offset",
                                        (json_int_t)vis[p], "high_watermark", (json_int_t)hw[p],
                                        "lag", (json_int_t)(hw[p] > vis[p] ? hw[p] - vis[p] : 0)));
    json_object_set_new(j, "partitions", parts);
    if (strcmp(cap, "vector") == 0) {
        ck_vidx_stats_t vs;
        if (!ck_vidx_stats(a->d.vector, t->name, &vs) && vs.found)
            json_object_set_new(j, "index",
                                json_pack("{s:I,s:i,s:s,s:s,s:s}", "vectors", (json_int_t)vs.total,
                                          "dimensions", (int)vs.dims, "provider", vs.provider,
                                          "model", vs.model, "metric", vs.metric));
        ck_free(vs.per_part);
        return j;
    }
    if (strcmp(cap, "searchable") == 0) {
        ck_sidx_stats_t ss;
        if (ck_sidx_stats(a->d.search, t->name, &ss))
            json_object_set_new(
                j, "index",
                json_pack("{s:I,s:i,s:i,s:I,s:I,s:I,s:I,s:b}", "docs", (json_int_t)ss.docs,
                          "segments_disk", (int)ss.segments_disk, "segments_memory",
                          (int)ss.segments_mem, "disk_bytes", (json_int_t)ss.disk_bytes,
                          "memory_bytes", (json_int_t)ss.mem_bytes, "flushes",
                          (json_int_t)ss.flushes, "merges", (json_int_t)ss.merges, "merging",
                          (int)ss.merging));
        return j;
    }
    char sname[300];
    ck_columnar_sql_name(t->name, sname, sizeof(sname));
    char buf[320];
    json_t *tabs = json_array();
    json_array_append_new(tabs, json_string(sname));
    snprintf(buf, sizeof(buf), "%s_hot", sname);
    json_array_append_new(tabs, json_string(buf));
    snprintf(buf, sizeof(buf), "%s_cold", sname);
    json_array_append_new(tabs, json_string(buf));
    json_object_set_new(j, "tables", tabs);
    char schema[4096];
    if (ck_columnar_schema(a->d.columnar, t->name, schema, sizeof(schema)))
        json_object_set_new(j, "json_schema", json_string(schema));
    ck_columnar_stats_t cs;
    if (ck_columnar_stats(a->d.columnar, t->name, &cs)) {
        json_object_set_new(j, "hot_rows", json_integer(cs.hot_rows));
        json_object_set_new(j, "cold_rows", json_integer(cs.cold_rows));
        json_object_set_new(j, "cold_files", json_integer(cs.cold_files));
        json_object_set_new(j, "cold_bytes", json_integer(cs.cold_bytes));
    }
    return j;
}

/* Loop thread. */
static json_t *topic_json(ck_api_t *a, const ck_topic_t *t, bool detail)
{
    char id[24];
    topic_id_text(t->id, id);
    json_t *j = json_pack("{s:s,s:s,s:i,s:i}", "name", t->name, "topic_id", id, "partitions",
                          (int)t->npart, "replication_factor", 1);
    json_t *cfg = json_object();
    for (const ck_cfg_def_t *d = ck_topic_cfg_defs; d->name; d++) {
        if (d->alias_of)
            continue;
        bool def = true;
        const char *v = ck_topic_config(t, d->name, &def);
        if (v && (detail || !def))
            json_object_set_new(cfg, d->name, json_string(v));
    }
    json_object_set_new(j, "config", cfg);
    json_t *caps = json_object();
    json_object_set_new(caps, "columnar", capability_json(a, t, "columnar", "columnar.enabled"));
    json_object_set_new(caps, "searchable", capability_json(a, t, "searchable", "searchable"));
    json_object_set_new(caps, "vector", capability_json(a, t, "vector", "vector.enabled"));
    json_object_set_new(j, "capabilities", caps);
    if (!detail)
        return j;
    json_t *parts = json_array();
    for (int32_t p = 0; p < t->npart; p++) {
        ck_partition_t *pp = t->parts[p];
        json_array_append_new(
            parts, json_pack("{s:i,s:i,s:I,s:I,s:I,s:I}", "partition", (int)p, "leader", 1,
                             "log_start_offset", (json_int_t)ck_partition_log_start(pp),
                             "log_end_offset", (json_int_t)ck_partition_log_end(pp),
                             "high_watermark", (json_int_t)ck_partition_durable_end(pp),
                             "size_bytes", (json_int_t)ck_partition_size_bytes(pp)));
    }
    json_object_set_new(j, "partition_info", parts);
    return j;
}

/* Config values may be given as strings, booleans or numbers. */
static int config_from_json(json_t *cfg, ck_kvs_t *out, char *msg, int msglen)
{
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v)
    {
        char num[64];
        const char *s = NULL;
        if (json_is_string(v))
            s = json_string_value(v);
        else if (json_is_boolean(v))
            s = json_is_true(v) ? "true" : "false";
        else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            s = num;
        } else if (json_is_real(v)) {
            snprintf(num, sizeof(num), "%.17g", json_real_value(v));
            s = num;
        } else if (!json_is_null(v)) {
            snprintf(msg, (size_t)msglen, "config value of %s must be a string, number or boolean",
                     k);
            return CK_EINVAL;
        }
        if (ck_kvs_set(out, k, s))
            return CK_ENOMEM;
    }
    return 0;
}

/* ---------------------------------------------------------------- topics */

typedef struct topic_op {
    const char *name;
    int32_t partitions;
    json_t *config; /* create: the config object; alter: the changes (null = reset) */
    int status;
    const char *etype;
    char msg[512];
    json_t *out;
} topic_op_t;

static void do_create(ck_api_t *a, void *arg)
{
    topic_op_t *op = arg;
    ck_kvs_t cfg = {0};
    const char *why = NULL;
    op->status = 400;
    op->etype = "InvalidRequest";
    if (!ck_topic_name_valid(op->name, (int)strlen(op->name), &why)) {
        op->etype = "InvalidTopic";
        snprintf(op->msg, sizeof(op->msg), "invalid topic name '%s': %s", op->name, why);
        goto out;
    }
    if (op->config && config_from_json(op->config, &cfg, op->msg, sizeof(op->msg)))
        goto out;
    for (int i = 0; i < cfg.count; i++) {
        if (ck_topic_cfg_validate(cfg.items[i].key, cfg.items[i].value, op->msg, sizeof(op->msg))) {
            op->etype = "InvalidConfig";
            goto out;
        }
    }
    ck_topic_t *t = NULL;
    int rc = ck_topics_create(a->d.topics, op->name, op->partitions, &cfg, false, op->msg,
                              sizeof(op->msg), &t);
    if (rc == CK_EEXIST) {
        op->status = 409;
        op->etype = "TopicAlreadyExists";
        snprintf(op->msg, sizeof(op->msg), "topic '%s' already exists", op->name);
    } else if (rc == CK_EINVAL || rc == CK_ERANGE) {
        op->etype = "InvalidConfig";
    } else if (rc) {
        op->status = 500;
        op->etype = "StorageError";
        snprintf(op->msg, sizeof(op->msg), "cannot create topic '%s': %s", op->name,
                 ck_strerror(rc));
    } else {
        op->status = 201;
        ck_indexer_poll(a->d.indexer);
        op->out = topic_json(a, t, true);
        CK_INFO("api", "created topic %s (%d partitions) over HTTP", op->name, (int)op->partitions);
    }
out:
    ck_kvs_free(&cfg);
}

static void do_get(ck_api_t *a, void *arg);

/* A capability just enabled answers queries once the worker opened it: wait for that
 * (bounded), so that a client's next request finds the tables. True if it waited. */
static bool wait_capabilities(ck_api_t *a, const char *topic)
{
    int64_t deadline = ck_mono_ms() + 5000;
    bool col = ck_indexer_wait_ready(a->d.indexer, "columnar", topic, deadline) != CK_ENOENT;
    bool srch = ck_indexer_wait_ready(a->d.indexer, "searchable", topic, deadline) != CK_ENOENT;
    return col || srch;
}

static void refresh_description(ck_api_t *a, topic_op_t *op)
{
    json_t *old = op->out;
    op->out = NULL;
    if (ck__api_loop_call(a, do_get, op) != 0 || !op->out) {
        op->out = old;
        return;
    }
    json_decref(old);
}

static void h_topics_create(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    json_t *b = ck_http_json_body(req, resp, false);
    if (!b)
        return;
    json_t *name = json_object_get(b, "name"), *parts = json_object_get(b, "partitions");
    json_t *cfg = json_object_get(b, "config");
    if (!cfg)
        cfg = json_object_get(b, "configs");
    if (!json_is_object(b) || !json_is_string(name)) {
        ck_http_resp_error(resp, 422, "InvalidRequest",
                           "body must be an object with a string field `name`");
    } else if (parts && !json_is_null(parts) &&
               (!json_is_integer(parts) || json_integer_value(parts) < 1 ||
                json_integer_value(parts) > 100000)) {
        ck_http_resp_error(resp, 422, "InvalidRequest",
                           "`partitions` must be an integer from 1 to 100000");
    } else if (cfg && !json_is_null(cfg) && !json_is_object(cfg)) {
        ck_http_resp_error(resp, 422, "InvalidRequest",
                           "`config` must be an object of key/value strings");
    } else {
        json_t *rf = json_object_get(b, "replication_factor");
        if (rf && json_is_integer(rf) && json_integer_value(rf) != 1 &&
            json_integer_value(rf) != -1) {
            ck_http_resp_error(resp, 400, "InvalidReplicationFactor",
                               "replication factor must be 1 on a single-node server (got %lld)",
                               (long long)json_integer_value(rf));
            json_decref(b);
            return;
        }
        topic_op_t op = {json_string_value(name),
                         parts && json_is_integer(parts) ? (int32_t)json_integer_value(parts)
                                                         : a->d.default_partitions,
                         json_is_object(cfg) ? cfg : NULL};
        if (!unavailable(a, ck__api_loop_call(a, do_create, &op), resp)) {
            if (op.out && wait_capabilities(a, op.name))
                refresh_description(a, &op);
            if (op.out)
                ck_http_resp_json(resp, op.status, op.out);
            else
                ck_http_resp_error(resp, op.status, op.etype, "%s", op.msg);
        }
    }
    json_decref(b);
}

static void do_list(ck_api_t *a, void *arg)
{
    topic_op_t *op = arg;
    json_t *arr = json_array();
    int n = ck_topics_count(a->d.topics);
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, topic_json(a, ck_topics_at(a->d.topics, i), false));
    op->out = json_pack("{s:o}", "topics", arr);
}

static void h_topics_list(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    topic_op_t op = {0};
    if (!unavailable(a, ck__api_loop_call(a, do_list, &op), resp))
        ck_http_resp_json(resp, 200, op.out);
}

static void do_get(ck_api_t *a, void *arg)
{
    topic_op_t *op = arg;
    ck_topic_t *t = ck_topics_get(a->d.topics, op->name, (int)strlen(op->name));
    if (t)
        op->out = topic_json(a, t, true);
}

static void not_found(ck_http_resp_t *resp, const char *name)
{
    ck_http_resp_error(resp, 404, "TopicNotFound", "topic '%s' does not exist", name);
}

static void h_topic_get(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    topic_op_t op = {ck_http_param(req, 0)};
    if (unavailable(a, ck__api_loop_call(a, do_get, &op), resp))
        return;
    if (op.out)
        ck_http_resp_json(resp, 200, op.out);
    else
        not_found(resp, op.name);
}

static void do_delete(ck_api_t *a, void *arg)
{
    topic_op_t *op = arg;
    ck_topic_t *t = ck_topics_get(a->d.topics, op->name, (int)strlen(op->name));
    if (!t) {
        op->status = 404;
        return;
    }
    if (ck_topics_delete(a->d.topics, t) != 0) {
        op->status = 500;
        return;
    }
    ck_broker_topics_changed(a->d.broker);
    ck_indexer_poll(a->d.indexer);
    op->status = 200;
    CK_INFO("api", "deleted topic %s over HTTP", op->name);
}

static void h_topic_delete(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    topic_op_t op = {ck_http_param(req, 0)};
    if (unavailable(a, ck__api_loop_call(a, do_delete, &op), resp))
        return;
    if (op.status == 404)
        not_found(resp, op.name);
    else if (op.status != 200)
        ck_http_resp_error(resp, 500, "StorageError", "cannot delete the files of topic '%s'",
                           op.name);
    else
        ck_http_resp_json(resp, 200, json_pack("{s:s,s:b}", "name", op.name, "deleted", 1));
}

static void do_alter(ck_api_t *a, void *arg)
{
    topic_op_t *op = arg;
    ck_topic_t *t = ck_topics_get(a->d.topics, op->name, (int)strlen(op->name));
    op->status = 400;
    op->etype = "InvalidConfig";
    if (!t) {
        op->status = 404;
        return;
    }
    ck_kvs_t cfg = {0}, changes = {0};
    if (ck_kvs_copy(&cfg, &t->configs) ||
        config_from_json(op->config, &changes, op->msg, sizeof(op->msg)))
        goto out;
    const char *k;
    json_t *v;
    json_object_foreach(op->config, k, v)
    {
        const char *val = ck_kvs_get(&changes, k);
        if (ck_topic_cfg_validate(k, val, op->msg, sizeof(op->msg)))
            goto out;
        const ck_cfg_def_t *d = ck_topic_cfg_find(k, (int)strlen(k));
        const char *canon = d && d->alias_of ? d->alias_of : k;
        if (ck_kvs_set(&cfg, canon, val))
            goto out;
    }
    if (ck_topic_cfg_check_set(&cfg, op->msg, sizeof(op->msg)))
        goto out;
    if (ck_topics_set_configs(a->d.topics, t, &cfg) != 0) {
        op->status = 500;
        op->etype = "StorageError";
        snprintf(op->msg, sizeof(op->msg), "cannot store the configs of topic '%s'", op->name);
        goto out;
    }
    ck_indexer_poll(a->d.indexer);
    op->status = 200;
    op->out = topic_json(a, t, true);
out:
    ck_kvs_free(&cfg);
    ck_kvs_free(&changes);
}

static void h_topic_config(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    json_t *b = ck_http_json_body(req, resp, false);
    if (!b)
        return;
    json_t *cfg = json_object_get(b, "config");
    if (!cfg)
        cfg = json_object_get(b, "configs");
    if (!cfg)
        cfg = b; /* a bare map of changes */
    if (!json_is_object(cfg)) {
        ck_http_resp_error(resp, 422, "InvalidRequest",
                           "body must be {\"config\": {\"key\": \"value\", ...}}");
        json_decref(b);
        return;
    }
    topic_op_t op = {ck_http_param(req, 0), 0, cfg};
    if (!unavailable(a, ck__api_loop_call(a, do_alter, &op), resp)) {
        if (op.out && wait_capabilities(a, op.name))
            refresh_description(a, &op);
        if (op.status == 404)
            not_found(resp, op.name);
        else if (op.out)
            ck_http_resp_json(resp, 200, op.out);
        else
            ck_http_resp_error(resp, op.status, op.etype, "%s", op.msg);
    }
    json_decref(b);
}

/* ---------------------------------------------------------------- health, metrics */

static void h_health(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_http_resp_json(resp, 200,
                      json_pack("{s:s,s:s,s:b,s:b,s:b,s:b}", "status", "ok", "version", CK_VERSION,
                                "sql_enabled", 1, "vector_enabled", 1, "search_enabled", 1,
                                "admin_enabled", 0));
}

void ck_api_metrics(void *arg, ck_wbuf_t *out)
{
    ck_api_t *a = arg;
    ck_indexer_metrics(a->d.indexer, out);
    ck_http_metrics_render(a->http, out);
}

typedef struct metrics_op {
    ck_wbuf_t out;
} metrics_op_t;

static void do_metrics(ck_api_t *a, void *arg)
{
    metrics_op_t *m = arg;
    ck_metrics_render(a->d.broker, a->d.topics, &m->out);
    ck_indexer_metrics(a->d.indexer, &m->out);
}

static void h_metrics(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    metrics_op_t m = {CK_WBUF_INIT};
    if (unavailable(a, ck__api_loop_call(a, do_metrics, &m), resp)) {
        ck_wbuf_free(&m.out);
        return;
    }
    ck_http_metrics_render(a->http, &m.out);
    size_t len;
    uint8_t *data = ck_wbuf_steal(&m.out, &len);
    ck_http_resp_take(resp, 200, "text/plain; version=0.0.4; charset=utf-8", data, len);
}

/* ---------------------------------------------------------------- SQL */

static duckdb_connection pool_get(ck_api_t *a)
{
    duckdb_connection c = NULL;
    pthread_mutex_lock(&a->pmu);
    if (a->npool)
        c = a->pool[--a->npool];
    pthread_mutex_unlock(&a->pmu);
    if (!c && ck_sql_connect(a->d.sql, &c) != 0)
        c = NULL;
    return c;
}

static void pool_put(ck_api_t *a, duckdb_connection c)
{
    pthread_mutex_lock(&a->pmu);
    if (a->npool < POOL_MAX) {
        a->pool[a->npool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&a->pmu);
    if (c)
        duckdb_disconnect(&c);
}

/* Does `query` mention the SQL name (as a whole word, any case)? */
static bool mentions(const char *query, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = query; (p = strcasestr(p, name)); p++) {
        char b = p == query ? ' ' : p[-1], e = p[n];
        bool wb = !((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
                    b == '_');
        bool we = !((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'));
        if (wb && we)
            return true;
    }
    return false;
}

/* Waits for one topic's {"<partition>": offset} map. Returns false after answering. */
static bool wait_offsets(ck_api_t *a, const char *topic, json_t *map, int64_t deadline,
                         ck_http_resp_t *resp)
{
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v)
    {
        char *end;
        long p = strtol(k, &end, 10);
        if (*end || p < 0 || !json_is_integer(v)) {
            ck_http_resp_error(
                resp, 422, "InvalidRequest",
                "min_offsets must map partition numbers to offsets, e.g. {\"0\": 42}");
            return false;
        }
        /* the record at that offset must be in the table: visible (next offset) > offset */
        int rc = ck_indexer_wait(a->d.indexer, "columnar", topic, (int32_t)p,
                                 json_integer_value(v) + 1, deadline);
        if (rc == CK_ECLOSED) {
            ck_http_resp_error(resp, 503, "ServiceUnavailable", "the server is shutting down");
            return false;
        }
        if (rc == CK_ENOENT) {
            ck_http_resp_error(resp, 404, "TableNotFound",
                               "topic '%s' has no columnar partition %ld", topic, p);
            return false;
        }
        if (rc) {
            ck_http_resp_error(
                resp, 504, "Timeout",
                "the SQL tables of '%s' did not reach offset %lld of partition %ld in time", topic,
                (long long)json_integer_value(v), p);
            return false;
        }
    }
    return true;
}

/* min_offsets: {"<p>": off} for the topic named by "topic" (or every columnar topic the
 * query mentions), or {"<topic>": {"<p>": off}}: wait until the record at each such
 * offset is in the tables (e.g. the offset a producer got back). */
static bool read_your_writes(ck_api_t *a, json_t *body, const char *query, int64_t deadline,
                             ck_http_resp_t *resp)
{
    json_t *mo = json_object_get(body, "min_offsets");
    if (!mo || json_is_null(mo))
        return true;
    if (!json_is_object(mo)) {
        ck_http_resp_error(resp, 422, "InvalidRequest", "min_offsets must be an object");
        return false;
    }
    const char *k;
    json_t *v;
    bool nested = false;
    json_object_foreach(mo, k, v) nested |= json_is_object(v);
    if (nested) {
        json_object_foreach(mo, k, v)
        {
            if (!json_is_object(v) || !wait_offsets(a, k, v, deadline, resp)) {
                if (!json_is_object(v))
                    ck_http_resp_error(resp, 422, "InvalidRequest",
                                       "min_offsets.%s must be an object", k);
                return false;
            }
        }
        return true;
    }
    const char *topic = json_string_value(json_object_get(body, "topic"));
    if (topic)
        return wait_offsets(a, topic, mo, deadline, resp);
    ck_columnar_table_t tabs[256];
    int n = ck_columnar_tables(a->d.columnar, tabs, 256);
    for (int i = 0; i < n && i < 256; i++) {
        if (tabs[i].kind != 0 || !mentions(query, tabs[i].name))
            continue;
        if (!wait_offsets(a, tabs[i].topic, mo, deadline, resp))
            return false;
    }
    return true;
}

static void sql_error(ck_api_t *a, ck_http_resp_t *resp, const ck_sql_error_t *e, const char *query)
{
    /* a topic without columnar.enabled: say so */
    if (strstr(e->message, "Catalog Error") && strstr(e->message, "does not exist")) {
        const char *q = strstr(e->message, "name ");
        char name[256] = "";
        if (q)
            sscanf(q + 5, "%255[A-Za-z0-9_.-]", name);
        if (name[0]) {
            ck_columnar_table_t t;
            if (!ck_columnar_find_table(a->d.columnar, name, &t)) {
                ck_http_resp_error(resp, 400, e->error_type ? e->error_type : "QueryError",
                                   "%s (SQL tables exist for topics with columnar.enabled=true; "
                                   "see GET /_sql/tables)",
                                   e->message);
                return;
            }
        }
    }
    ck_http_resp_error(resp, e->status ? e->status : 400,
                       e->error_type ? e->error_type : "QueryError", "%s", e->message);
}

/* Runs a user query (or its EXPLAIN) on a pooled connection and answers. */
static void run_sql(ck_api_t *a, ck_http_resp_t *resp, const char *query, const ck_sql_opts_t *o,
                    bool explain, bool physical)
{
    duckdb_connection c = pool_get(a);
    if (!c) {
        ck_http_resp_error(resp, 503, "ServiceUnavailable", "no SQL connection available");
        return;
    }
    ck_wbuf_t out = CK_WBUF_INIT;
    ck_sql_error_t err = {0};
    int rc = explain ? ck_sql_explain(c, query, physical, &out, &err)
                     : ck_sql_query(c, query, o, &out, &err);
    if (rc == 0) {
        size_t len;
        uint8_t *data = ck_wbuf_steal(&out, &len);
        ck_http_resp_take(resp, 200, "application/json", data, len);
    } else {
        if (explain && !strcmp(err.error_type ? err.error_type : "", "QueryError"))
            err.error_type = "ExplainError";
        sql_error(a, resp, &err, query);
    }
    pool_put(a, c);
    ck_wbuf_free(&out);
}

int ck__sql_rows(ck_api_t *a, const char *sql, int64_t limit, int64_t timeout_ms, json_t **rows,
                 char *err, size_t errlen)
{
    *rows = NULL;
    duckdb_connection c = pool_get(a);
    if (!c) {
        snprintf(err, errlen, "no SQL connection available");
        return CK_EAGAIN;
    }
    ck_wbuf_t out = CK_WBUF_INIT;
    ck_sql_error_t e = {0};
    ck_sql_opts_t o = {limit, timeout_ms};
    int rc = ck_sql_query(c, sql, &o, &out, &e);
    pool_put(a, c);
    if (rc) {
        snprintf(err, errlen, "%s", e.message);
    } else {
        json_t *j = json_loadb((const char *)out.data, out.len, 0, NULL);
        json_t *r = json_object_get(j, "rows");
        if (json_is_array(r))
            *rows = json_incref(r);
        else
            rc = CK_ENOMEM;
        json_decref(j);
    }
    ck_wbuf_free(&out);
    return rc;
}

static bool sql_body(ck_http_req_t *req, ck_http_resp_t *resp, json_t **body, const char **query)
{
    *body = ck_http_json_body(req, resp, false);
    if (!*body)
        return false;
    json_t *q = json_object_get(*body, "query");
    if (!json_is_object(*body) || !json_is_string(q)) {
        ck_http_resp_error(resp, 422, "InvalidRequest",
                           "body must be an object with a string field `query`");
        json_decref(*body);
        return false;
    }
    *query = json_string_value(q);
    return true;
}

static void h_sql(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    json_t *body;
    const char *query;
    if (!sql_body(req, resp, &body, &query))
        return;
    ck_sql_opts_t o = {1000, a->d.query_timeout_ms};
    json_t *lim = json_object_get(body, "limit"), *to = json_object_get(body, "timeout_secs");
    if ((lim && !json_is_null(lim) && (!json_is_integer(lim) || json_integer_value(lim) < 0)) ||
        (to && !json_is_null(to) && (!json_is_number(to) || json_number_value(to) <= 0))) {
        ck_http_resp_error(
            resp, 422, "InvalidRequest",
            "`limit` must be a non-negative integer and `timeout_secs` a positive number");
        json_decref(body);
        return;
    }
    if (json_is_integer(lim) && json_integer_value(lim) > 0)
        o.limit = json_integer_value(lim);
    if (json_is_number(to))
        o.timeout_ms = (int64_t)(json_number_value(to) * 1000);
    int64_t t0 = ck_mono_ms();
    int64_t deadline = t0 + (o.timeout_ms < MAX_WAIT_MS ? o.timeout_ms : MAX_WAIT_MS);
    if (!read_your_writes(a, body, query, deadline, resp)) {
        json_decref(body);
        return;
    }
    o.timeout_ms -= ck_mono_ms() - t0;
    if (o.timeout_ms < 1)
        o.timeout_ms = 1;
    run_sql(a, resp, query, &o, false, false);
    json_decref(body);
}

static void h_sql_explain(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    json_t *body;
    const char *query;
    if (!sql_body(req, resp, &body, &query))
        return;
    run_sql(a, resp, query, NULL, true, json_is_true(json_object_get(body, "physical")));
    json_decref(body);
}

static const char *const kind_names[] = {"TOPIC", "HOT", "COLD"};

static void h_sql_tables(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    int n = ck_columnar_tables(a->d.columnar, NULL, 0);
    ck_columnar_table_t *tabs = ck_calloc((size_t)n + 1, sizeof(*tabs));
    if (!tabs) {
        ck_http_resp_error(resp, 500, "InternalError", "out of memory");
        return;
    }
    n = ck_columnar_tables(a->d.columnar, tabs, n);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "name", tabs[i].name, "table_type",
                                             kind_names[tabs[i].kind], "topic", tabs[i].topic));
    ck_free(tabs);
    ck_http_resp_json(resp, 200, json_pack("{s:o}", "tables", arr));
}

static void h_sql_describe(ck_http_req_t *req, ck_http_resp_t *resp, void *ud)
{
    ck_api_t *a = ud;
    const char *name = ck_http_param(req, 0);
    ck_columnar_table_t t;
    if (!ck_columnar_find_table(a->d.columnar, name, &t)) {
        ck_http_resp_error(resp, 404, "TableNotFound", "table '%s' does not exist", name);
        return;
    }
    int n = ck_columnar_columns(a->d.columnar, t.topic, NULL, 0);
    ck_columnar_column_t *cols = n > 0 ? ck_calloc((size_t)n, sizeof(*cols)) : NULL;
    if (n > 0 && !cols) {
        ck_http_resp_error(resp, 500, "InternalError", "out of memory");
        return;
    }
    n = ck_columnar_columns(a->d.columnar, t.topic, cols, n);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:b}", "name", cols[i].name, "data_type",
                                             cols[i].type, "nullable", cols[i].nullable));
    ck_free(cols);
    ck_http_resp_json(resp, 200,
                      json_pack("{s:s,s:s,s:s,s:o}", "table", t.name, "topic", t.topic,
                                "table_type", kind_names[t.kind], "columns", arr));
}

/* ---------------------------------------------------------------- lifecycle */

int ck_api_start(const ck_api_deps_t *deps, const char *bind, int port, size_t max_body,
                 ck_api_t **out, int *bound_port, const char **msg)
{
    ck_api_t *a = ck_calloc(1, sizeof(*a));
    if (!a) {
        *msg = "out of memory";
        return CK_ENOMEM;
    }
    a->d = *deps;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    pthread_mutex_init(&a->pmu, NULL);
    int rc = ck_wakeup_init(deps->loop, &a->wk, on_calls, a);
    if (rc) {
        *msg = "cannot create a wakeup";
        ck_free(a);
        return rc;
    }
    ck_http_config_t hc;
    ck_http_config_default(&hc);
    hc.bind = bind;
    hc.port = port;
    if (max_body)
        hc.max_body_bytes = max_body;
    rc = ck_http_new(&hc, &a->http);
    if (rc) {
        *msg = "cannot create the HTTP server";
        ck_wakeup_close(deps->loop, &a->wk);
        ck_free(a);
        return rc;
    }
    static const struct {
        const char *method, *path;
        ck_http_handler fn;
    } routes[] = {
        {"GET", "/health", h_health},
        {"GET", "/metrics", h_metrics},
        {"GET", "/topics", h_topics_list},
        {"POST", "/topics", h_topics_create},
        {"GET", "/topics/{name}", h_topic_get},
        {"DELETE", "/topics/{name}", h_topic_delete},
        {"PUT", "/topics/{name}/config", h_topic_config},
        {"PATCH", "/topics/{name}/config", h_topic_config},
        {"POST", "/topics/{name}/config", h_topic_config},
        {"PATCH", "/topics/{name}", h_topic_config},
        {"POST", "/_sql", h_sql},
        {"POST", "/_sql/explain", h_sql_explain},
        {"GET", "/_sql/tables", h_sql_tables},
        {"GET", "/_sql/describe/{table}", h_sql_describe},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !rc; i++)
        rc = ck_http_route(a->http, routes[i].method, routes[i].path, routes[i].fn, a);
    if (!rc)
        rc = ck__search_routes(a, a->http);
    if (!rc)
        rc = ck__vector_routes(a, a->http);
    if (!rc)
        rc = ck__query_routes(a, a->http);
    if (!rc)
        rc = ck_http_start(a->http, bound_port, msg);
    if (rc) {
        ck_http_free(a->http);
        ck_wakeup_close(deps->loop, &a->wk);
        ck_free(a);
        return rc ? rc : CK_EIO;
    }
    *out = a;
    return 0;
}

void ck_api_stop(ck_api_t *a)
{
    if (!a)
        return;
    ck_api_close_calls(a);
    ck_http_stop(a->http);
    ck_http_free(a->http);
    pthread_mutex_lock(&a->mu);
    while (a->bg)
        pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    ck__search_routes_free(a);
    for (int i = 0; i < a->npool; i++)
        duckdb_disconnect(&a->pool[i]);
    ck_wakeup_close(a->d.loop, &a->wk);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->pmu);
    ck_free(a);
}
