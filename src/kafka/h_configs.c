/* DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (resource type 2);
 * broker configs (type 4) are described and read-only. */
#include <stdio.h>
#include <stdlib.h>

#include "kafka/handlers.h"

enum { RES_TOPIC = 2, RES_BROKER = 4 };
enum { SRC_TOPIC = 1, SRC_STATIC_BROKER = 4, SRC_DEFAULT = 5 };
enum { OP_SET = 0, OP_DELETE = 1, OP_APPEND = 2, OP_SUBTRACT = 3 };

typedef __typeof__(((ck_kafka_describe_configs_response_t *)0)->results.items[0]) dres_t;
typedef __typeof__(((dres_t *)0)->configs.items[0]) dentry_t;

static bool wanted(ck_kreq_t *req, const __typeof__(((ck_kafka_describe_configs_request_t *)0)->resources.items[0]) *res,
                   const char *name)
{
    if (res->configuration_keys.count < 0)
        return true;
    for (int i = 0; i < res->configuration_keys.count; i++)
        if (ck_slice_eq_cstr(res->configuration_keys.items[i], name))
            return true;
    return false;
}

static void fill_entry(ck_kreq_t *req, dentry_t *e, const char *name, const char *value, int source,
                       bool read_only, int type, const char *doc, bool synonyms, bool docs)
{
    ck_kafka_describe_configs_response_describe_configs_resource_result_init(e);
    e->name = ck__str(name);
    e->value = value ? ck__str(value) : CK_SLICE_NULL;
    e->read_only = read_only;
    e->is_default = source == SRC_DEFAULT;
    e->config_source = (int8_t)source;
    e->is_sensitive = false;
    e->config_type = (int8_t)type;
    e->documentation = docs && doc ? ck__str(doc) : CK_SLICE_NULL;
    e->synonyms.count = 0;
    if (synonyms && CK_ARRAY_ALLOC(req, e->synonyms, 1) == 0) {
        ck_kafka_describe_configs_response_describe_configs_synonym_init(&e->synonyms.items[0]);
        e->synonyms.items[0].name = e->name;
        e->synonyms.items[0].value = e->value;
        e->synonyms.items[0].source = (int8_t)source;
    }
}

static void describe_broker(ck_broker_t *b, ck_kreq_t *req, dres_t *out, bool syn, bool docs,
                            const __typeof__(((ck_kafka_describe_configs_request_t *)0)->resources.items[0]) *res)
{
    char parts[16], maxb[24], idle[24], node[16];
    snprintf(parts, sizeof(parts), "%d", b->cfg.default_partitions);
    snprintf(maxb, sizeof(maxb), "%lld", (long long)b->cfg.max_request_bytes);
    snprintf(idle, sizeof(idle), "%lld", (long long)b->cfg.idle_ms);
    snprintf(node, sizeof(node), "%d", b->cfg.node_id);
    const struct { const char *n, *v; int type; } items[] = {
        {"auto.create.topics.enable", b->cfg.auto_create_topics ? "true" : "false", 1},
        {"broker.id", node, 3},
        {"connections.max.idle.ms", idle, 5},
        {"default.replication.factor", "1", 3},
        {"log.retention.ms", "604800000", 5},
        {"log.segment.bytes", "1073741824", 3},
        {"message.max.bytes", "1048588", 3},
        {"min.insync.replicas", "1", 3},
        {"num.partitions", parts, 3},
        {"offsets.retention.minutes", "10080", 3},
        {"socket.request.max.bytes", maxb, 3},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        n += wanted(req, res, items[i].n);
    if (CK_ARRAY_ALLOC(req, out->configs, n))
        return;
    int k = 0;
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        if (wanted(req, res, items[i].n))
            fill_entry(req, &out->configs.items[k++], items[i].n, items[i].v, SRC_STATIC_BROKER, true,
                       items[i].type, NULL, syn, docs);
}

int ck__h_describe_configs(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_describe_configs_request_t rq;
    ck_kafka_describe_configs_request_init(&rq);
    if (ck_kafka_describe_configs_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_describe_configs_response_t resp;
    ck_kafka_describe_configs_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.results, rq.resources.count))
        return CK_H_CLOSE;
    bool syn = req->api_version >= 1 && rq.include_synonyms;
    bool docs = req->api_version >= 3 && rq.include_documentation;
    for (int i = 0; i < rq.resources.count; i++) {
        __typeof__(rq.resources.items[0]) *res = &rq.resources.items[i];
        dres_t *out = &resp.results.items[i];
        ck_kafka_describe_configs_response_describe_configs_result_init(out);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
        out->configs.count = 0;
        if (res->resource_type == RES_BROKER) {
            describe_broker(b, req, out, syn, docs, res);
            continue;
        }
        if (res->resource_type != RES_TOPIC) {
            out->error_code = KERR_INVALID_REQUEST;
            out->error_message = ck__str("Only topic and broker configs can be described");
            continue;
        }
        ck_topic_t *t = ck_topics_get(b->topics, (const char *)res->resource_name.ptr, res->resource_name.len);
        if (!t) {
            out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            out->error_message = ck__str("Topic not found");
            continue;
        }
        int n = 0;
        for (const ck_cfg_def_t *d = ck_topic_cfg_defs; d->name; d++) {
            /* aliases are shown only when asked for by name */
            if (d->alias_of ? res->configuration_keys.count >= 0 && wanted(req, res, d->name) : wanted(req, res, d->name))
                n++;
        }
        if (CK_ARRAY_ALLOC(req, out->configs, n))
            return CK_H_CLOSE;
        int k = 0;
        for (const ck_cfg_def_t *d = ck_topic_cfg_defs; d->name && k < n; d++) {
            bool show = d->alias_of ? res->configuration_keys.count >= 0 && wanted(req, res, d->name)
                                    : wanted(req, res, d->name);
            if (!show)
                continue;
            bool def;
            const char *v = ck_topic_config(t, d->name, &def);
            fill_entry(req, &out->configs.items[k++], d->name, v, def ? SRC_DEFAULT : SRC_TOPIC, false,
                       ck_cfg_kafka_type(d), d->doc, syn, docs);
        }
        out->configs.count = k;
    }
    ck_kafka_describe_configs_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

/* Applies one alteration to a config set; returns a Kafka error code and a message. */
static int16_t apply_op(ck_kvs_t *cfg, const ck_topic_t *t, const char *key, const char *value, int op,
                        char *msg, int msglen)
{
    const ck_cfg_def_t *d = ck_topic_cfg_find(key, -1);
    if (!d) {
        snprintf(msg, (size_t)msglen, "Unknown topic config name: %s", key);
        return KERR_INVALID_CONFIG;
    }
    const char *canon = d->alias_of ? d->alias_of : key;
    if (op == OP_DELETE) {
        ck_kvs_set(cfg, canon, NULL);
        return 0;
    }
    char buf[4096];
    if (op == OP_APPEND || op == OP_SUBTRACT) {
        if (d->type != CK_CFG_LIST) {
            snprintf(msg, (size_t)msglen, "Config %s is not a list; APPEND/SUBTRACT need a list", key);
            return KERR_INVALID_CONFIG;
        }
        const char *cur = ck_kvs_get(cfg, canon);
        if (!cur)
            cur = d->default_value ? d->default_value : "";
        buf[0] = 0;
        if (op == OP_APPEND) {
            bool has = false;
            for (const char *p = cur; *p;) {
                size_t n = strcspn(p, ",");
                if (value && strlen(value) == n && strncmp(p, value, n) == 0)
                    has = true;
                p += n + (p[n] == ',');
            }
            snprintf(buf, sizeof(buf), "%s%s%s", cur, (*cur && !has) ? "," : "", has ? "" : (value ? value : ""));
        } else {
            size_t o = 0;
            for (const char *p = cur; *p;) {
                size_t n = strcspn(p, ",");
                if (!(value && strlen(value) == n && strncmp(p, value, n) == 0))
                    o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%.*s", o ? "," : "", (int)n, p);
                p += n + (p[n] == ',');
            }
        }
        value = buf;
        if (!*value) {
            ck_kvs_set(cfg, canon, NULL);
            return 0;
        }
    } else if (op != OP_SET) {
        snprintf(msg, (size_t)msglen, "Unknown config operation %d", op);
        return KERR_INVALID_REQUEST;
    }
    if (!value) {
        snprintf(msg, (size_t)msglen, "Null value not supported for %s", key);
        return KERR_INVALID_CONFIG;
    }
    if (ck_topic_cfg_validate(key, value, msg, msglen) != 0)
        return KERR_INVALID_CONFIG;
    if (ck_kvs_set(cfg, canon, value))
        return KERR_UNKNOWN_SERVER_ERROR;
    return 0;
}

typedef struct alter_entry {
    ck_slice_t name, value;
    int8_t op;
} alter_entry_t;

/* Shared by both Alter APIs: incremental=false replaces the whole set. */
static int16_t alter_topic(ck_broker_t *b, ck_kreq_t *req, int8_t rtype, ck_slice_t rname,
                           const alter_entry_t *ents, int n, bool incremental, bool validate_only,
                           ck_slice_t *err_msg)
{
    char msg[512] = "";
    if (rtype == RES_BROKER) {
        *err_msg = ck__str("Broker configs are read-only; set them with environment variables or flags");
        return KERR_INVALID_REQUEST;
    }
    if (rtype != RES_TOPIC) {
        *err_msg = ck__str("Only topic configs can be altered");
        return KERR_INVALID_REQUEST;
    }
    ck_topic_t *t = ck_topics_get(b->topics, (const char *)rname.ptr, rname.len);
    if (!t) {
        *err_msg = ck__str("Topic not found");
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    ck_kvs_t cfg = {0};
    if (incremental && ck_kvs_copy(&cfg, &t->configs))
        return KERR_UNKNOWN_SERVER_ERROR;
    int16_t err = 0;
    for (int i = 0; i < n && !err; i++) {
        char *k = ck__cstr(req, ents[i].name);
        char *v = ents[i].value.len >= 0 ? ck__cstr(req, ents[i].value) : NULL;
        int op = incremental ? ents[i].op : (v ? OP_SET : OP_DELETE);
        err = apply_op(&cfg, t, k, v, op, msg, sizeof(msg));
    }
    if (!err && ck_topic_cfg_check_set(&cfg, msg, sizeof(msg)) != 0)
        err = KERR_INVALID_CONFIG;
    if (!err && !validate_only && ck_topics_set_configs(b->topics, t, &cfg) != 0) {
        err = KERR_KAFKA_STORAGE_ERROR;
        snprintf(msg, sizeof(msg), "Cannot store the topic's configs");
    }
    ck_kvs_free(&cfg);
    if (err)
        *err_msg = ck__strdup(req, msg);
    return err;
}

int ck__h_alter_configs(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_alter_configs_request_t rq;
    ck_kafka_alter_configs_request_init(&rq);
    if (ck_kafka_alter_configs_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_alter_configs_response_t resp;
    ck_kafka_alter_configs_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.responses, rq.resources.count))
        return CK_H_CLOSE;
    for (int i = 0; i < rq.resources.count; i++) {
        __typeof__(rq.resources.items[0]) *res = &rq.resources.items[i];
        __typeof__(resp.responses.items[0]) *out = &resp.responses.items[i];
        ck_kafka_alter_configs_response_alter_configs_resource_response_init(out);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
        int n = res->configs.count > 0 ? res->configs.count : 0;
        alter_entry_t *ents = ck_arena_calloc(&req->arena, sizeof(*ents) * (size_t)(n ? n : 1));
        if (!ents)
            return CK_H_CLOSE;
        for (int j = 0; j < n; j++)
            ents[j] = (alter_entry_t){res->configs.items[j].name, res->configs.items[j].value, OP_SET};
        out->error_code = alter_topic(b, req, res->resource_type, res->resource_name, ents, n, false,
                                      rq.validate_only, &out->error_message);
    }
    ck_kafka_alter_configs_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

int ck__h_incremental_alter_configs(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_incremental_alter_configs_request_t rq;
    ck_kafka_incremental_alter_configs_request_init(&rq);
    if (ck_kafka_incremental_alter_configs_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_incremental_alter_configs_response_t resp;
    ck_kafka_incremental_alter_configs_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.responses, rq.resources.count))
        return CK_H_CLOSE;
    for (int i = 0; i < rq.resources.count; i++) {
        __typeof__(rq.resources.items[0]) *res = &rq.resources.items[i];
        __typeof__(resp.responses.items[0]) *out = &resp.responses.items[i];
        ck_kafka_incremental_alter_configs_response_alter_configs_resource_response_init(out);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
        int n = res->configs.count > 0 ? res->configs.count : 0;
        alter_entry_t *ents = ck_arena_calloc(&req->arena, sizeof(*ents) * (size_t)(n ? n : 1));
        if (!ents)
            return CK_H_CLOSE;
        for (int j = 0; j < n; j++)
            ents[j] = (alter_entry_t){res->configs.items[j].name, res->configs.items[j].value,
                                      res->configs.items[j].config_operation};
        out->error_code = alter_topic(b, req, res->resource_type, res->resource_name, ents, n, true,
                                      rq.validate_only, &out->error_message);
    }
    ck_kafka_incremental_alter_configs_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}
