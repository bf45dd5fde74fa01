/* ListOffsets, CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords. */
#include <stdio.h>

#include "core/logging.h"
#include "kafka/handlers.h"

/* ---- ListOffsets ---- */

enum { TS_LATEST = -1, TS_EARLIEST = -2, TS_MAX = -3, TS_EARLIEST_LOCAL = -4, TS_LATEST_TIERED = -5 };

int ck__h_list_offsets(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_list_offsets_request_t rq;
    ck_kafka_list_offsets_request_init(&rq);
    if (ck_kafka_list_offsets_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_list_offsets_response_t resp;
    ck_kafka_list_offsets_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.topics, rq.topics.count))
        return CK_H_CLOSE;
    for (int i = 0; i < rq.topics.count; i++) {
        __typeof__(rq.topics.items[0]) *qt = &rq.topics.items[i];
        __typeof__(resp.topics.items[0]) *rt = &resp.topics.items[i];
        ck_kafka_list_offsets_response_list_offsets_topic_response_init(rt);
        rt->name = qt->name;
        ck_topic_t *t = ck_topics_get(b->topics, (const char *)qt->name.ptr, qt->name.len);
        if (CK_ARRAY_ALLOC(req, rt->partitions, qt->partitions.count))
            return CK_H_CLOSE;
        for (int j = 0; j < qt->partitions.count; j++) {
            __typeof__(qt->partitions.items[0]) *qp = &qt->partitions.items[j];
            __typeof__(rt->partitions.items[0]) *rp = &rt->partitions.items[j];
            ck_kafka_list_offsets_response_list_offsets_partition_response_init(rp);
            rp->partition_index = qp->partition_index;
            rp->error_code = ck__partition_error(t, qp->partition_index);
            if (rp->error_code)
                continue;
            ck_partition_t *p = t->parts[qp->partition_index];
            int64_t off = -1, ts = -1;
            switch (qp->timestamp) {
            case TS_LATEST: off = ck_partition_durable_end(p); break;
            case TS_EARLIEST:
            case TS_EARLIEST_LOCAL: off = ck_partition_log_start(p); break;
            case TS_LATEST_TIERED: off = -1; break; /* nothing is tiered */
            case TS_MAX:
                if (ck_partition_max_timestamp(p, &off, &ts) != 0)
                    off = ts = -1;
                break;
            default:
                if (qp->timestamp < 0) {
                    rp->error_code = KERR_INVALID_REQUEST;
                } else if (ck_partition_offset_for_time(p, qp->timestamp, &off, &ts) != 0) {
                    off = ts = -1;
                }
                break;
            }
            rp->offset = off;
            rp->timestamp = ts;
            rp->leader_epoch = 0;
            if (req->api_version == 0 && !rp->error_code) {
                int n = off >= 0 && qp->max_num_offsets > 0 ? 1 : 0;
                if (CK_ARRAY_ALLOC(req, rp->old_style_offsets, n))
                    return CK_H_CLOSE;
                if (n)
                    rp->old_style_offsets.items[0] = off;
            }
        }
    }
    ck_kafka_list_offsets_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

/* ---- CreateTopics ---- */

int ck__h_create_topics(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_create_topics_request_t rq;
    ck_kafka_create_topics_request_init(&rq);
    if (ck_kafka_create_topics_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_create_topics_response_t resp;
    ck_kafka_create_topics_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.topics, rq.topics.count))
        return CK_H_CLOSE;
    for (int i = 0; i < rq.topics.count; i++) {
        __typeof__(rq.topics.items[0]) *qt = &rq.topics.items[i];
        __typeof__(resp.topics.items[0]) *rt = &resp.topics.items[i];
        ck_kafka_create_topics_response_creatable_topic_result_init(rt);
        rt->name = qt->name;
        char msg[512] = "";
        int16_t err = 0;
        bool dup = false;
        for (int j = 0; j < rq.topics.count; j++)
            if (j != i && ck_slice_eq(rq.topics.items[j].name, qt->name))
                dup = true;
        int32_t parts = qt->num_partitions;
        if (dup) {
            err = KERR_INVALID_REQUEST;
            snprintf(msg, sizeof(msg), "Create topics request from client contains the topic more than once");
        } else if (qt->assignments.count > 0) {
            if (parts != -1) {
                err = KERR_INVALID_REQUEST;
                snprintf(msg, sizeof(msg), "Both numPartitions and replicasAssignments were set");
            }
            for (int j = 0; !err && j < qt->assignments.count; j++) {
                __typeof__(qt->assignments.items[0]) *as = &qt->assignments.items[j];
                if (as->partition_index != j || as->broker_ids.count != 1 ||
                    as->broker_ids.items[0] != b->cfg.node_id) {
                    err = KERR_INVALID_REPLICA_ASSIGNMENT;
                    snprintf(msg, sizeof(msg), "Replica assignment must place partitions 0..n-1 on broker %d only", b->cfg.node_id);
                }
            }
            parts = qt->assignments.count;
        } else if (parts == -1) {
            parts = b->cfg.default_partitions;
        }
        if (!err && parts < 1) {
            err = KERR_INVALID_PARTITIONS;
            snprintf(msg, sizeof(msg), "Number of partitions must be larger than 0.");
        }
        if (!err && qt->replication_factor != -1 && qt->replication_factor != 1 && qt->assignments.count <= 0) {
            err = KERR_INVALID_REPLICATION_FACTOR;
            snprintf(msg, sizeof(msg), "Replication factor must be 1 on a single-node cluster (got %d).", qt->replication_factor);
        }
        ck_kvs_t cfgs = {0};
        for (int j = 0; !err && j < qt->configs.count; j++) {
            char *k = ck__cstr(req, qt->configs.items[j].name);
            char *v = qt->configs.items[j].value.len >= 0 ? ck__cstr(req, qt->configs.items[j].value) : NULL;
            if (!k || ck_topic_cfg_validate(k, v, msg, sizeof(msg)) != 0) {
                err = KERR_INVALID_CONFIG;
                break;
            }
            if (v && ck_kvs_set(&cfgs, k, v))
                err = KERR_UNKNOWN_SERVER_ERROR;
        }
        ck_topic_t *t = NULL;
        const char *why;
        if (!err && !ck_topic_name_valid((const char *)qt->name.ptr, qt->name.len, &why)) {
            err = KERR_INVALID_TOPIC_EXCEPTION;
            snprintf(msg, sizeof(msg), "%s", why);
        }
        if (!err) {
            char *name = ck__cstr(req, qt->name);
            int rc = ck_topics_create(b->topics, name, parts, &cfgs, rq.validate_only, msg, sizeof(msg), &t);
            if (rc == CK_EEXIST)
                err = KERR_TOPIC_ALREADY_EXISTS;
            else if (rc == CK_EINVAL)
                err = KERR_INVALID_CONFIG; /* the name was checked above */
            else if (rc == CK_ERANGE)
                err = KERR_INVALID_PARTITIONS;
            else if (rc)
                err = KERR_UNKNOWN_SERVER_ERROR;
        }
        ck_kvs_free(&cfgs);
        rt->error_code = err;
        if (err) {
            rt->error_message = ck__strdup(req, msg);
            rt->configs.count = -1;
            continue;
        }
        rt->num_partitions = parts;
        rt->replication_factor = 1;
        if (t)
            memcpy(rt->topic_id.b, t->id, 16);
        if (req->api_version >= 5 && t) {
            int n = 0;
            for (const ck_cfg_def_t *d = ck_topic_cfg_defs; d->name; d++)
                n += !d->alias_of && ck_topic_config(t, d->name, NULL) != NULL;
            if (CK_ARRAY_ALLOC(req, rt->configs, n))
                return CK_H_CLOSE;
            int k = 0;
            for (const ck_cfg_def_t *d = ck_topic_cfg_defs; d->name; d++) {
                bool def;
                const char *v = d->alias_of ? NULL : ck_topic_config(t, d->name, &def);
                if (!v)
                    continue;
                __typeof__(rt->configs.items[0]) *c = &rt->configs.items[k++];
                ck_kafka_create_topics_response_creatable_topic_configs_init(c);
                c->name = ck__str(d->name);
                c->value = ck__str(v);
                c->config_source = def ? 5 : 1; /* DEFAULT_CONFIG : DYNAMIC_TOPIC_CONFIG */
            }
        } else if (req->api_version >= 5) {
            rt->configs.count = 0;
        }
    }
    ck_kafka_create_topics_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

/* ---- DeleteTopics ---- */

int ck__h_delete_topics(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_delete_topics_request_t rq;
    ck_kafka_delete_topics_request_init(&rq);
    if (ck_kafka_delete_topics_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_delete_topics_response_t resp;
    ck_kafka_delete_topics_response_init(&resp);
    int n = req->api_version >= 6 ? rq.topics.count : rq.topic_names.count;
    if (CK_ARRAY_ALLOC(req, resp.responses, n))
        return CK_H_CLOSE;
    for (int i = 0; i < n; i++) {
        __typeof__(resp.responses.items[0]) *rr = &resp.responses.items[i];
        ck_kafka_delete_topics_response_deletable_topic_result_init(rr);
        ck_topic_t *t;
        if (req->api_version >= 6 && rq.topics.items[i].name.len < 0) {
            memcpy(rr->topic_id.b, rq.topics.items[i].topic_id.b, 16);
            t = ck_topics_by_id(b->topics, rq.topics.items[i].topic_id.b);
            rr->name = CK_SLICE_NULL;
            if (!t) {
                rr->error_code = KERR_UNKNOWN_TOPIC_ID;
                continue;
            }
        } else {
            ck_slice_t name = req->api_version >= 6 ? rq.topics.items[i].name : rq.topic_names.items[i];
            rr->name = name;
            t = ck_topics_get(b->topics, (const char *)name.ptr, name.len);
            if (!t) {
                rr->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
        }
        if (rr->name.len < 0)
            rr->name = ck__str(ck__cstr(req, ck__str(t->name)));
        else
            rr->name = ck__str(ck__cstr(req, rr->name));
        memcpy(rr->topic_id.b, t->id, 16);
        if (ck_topics_delete(b->topics, t) != 0) {
            rr->error_code = KERR_KAFKA_STORAGE_ERROR;
            rr->error_message = ck__str("Cannot delete the topic's files");
        }
    }
    ck_kafka_delete_topics_response_encode(&req->resp, req->api_version, &resp);
    /* parked requests that referred to the topic find it gone */
    ck__broker_wake_waiters(b);
    return CK_H_DONE;
}

/* ---- CreatePartitions ---- */

int ck__h_create_partitions(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_create_partitions_request_t rq;
    ck_kafka_create_partitions_request_init(&rq);
    if (ck_kafka_create_partitions_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_create_partitions_response_t resp;
    ck_kafka_create_partitions_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.results, rq.topics.count))
        return CK_H_CLOSE;
    for (int i = 0; i < rq.topics.count; i++) {
        __typeof__(rq.topics.items[0]) *qt = &rq.topics.items[i];
        __typeof__(resp.results.items[0]) *rr = &resp.results.items[i];
        ck_kafka_create_partitions_response_create_partitions_topic_result_init(rr);
        rr->name = qt->name;
        ck_topic_t *t = ck_topics_get(b->topics, (const char *)qt->name.ptr, qt->name.len);
        char msg[256];
        if (!t) {
            rr->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (qt->assignments.count > 0) {
            for (int j = 0; j < qt->assignments.count; j++) {
                __typeof__(qt->assignments.items[0]) *as = &qt->assignments.items[j];
                if (as->broker_ids.count != 1 || as->broker_ids.items[0] != b->cfg.node_id) {
                    rr->error_code = KERR_INVALID_REPLICA_ASSIGNMENT;
                    rr->error_message = ck__str("Replicas can only be placed on this broker");
                }
            }
            if (rr->error_code)
                continue;
        }
        int rc = ck_topics_add_partitions(b->topics, t, qt->count, rq.validate_only, msg, sizeof(msg));
        if (rc) {
            rr->error_code = rc == CK_EINVAL || rc == CK_ERANGE ? KERR_INVALID_PARTITIONS : KERR_KAFKA_STORAGE_ERROR;
            rr->error_message = ck__strdup(req, msg);
        }
    }
    ck_kafka_create_partitions_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

/* ---- DeleteRecords ---- */

int ck__h_delete_records(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_delete_records_request_t rq;
    ck_kafka_delete_records_request_init(&rq);
    if (ck_kafka_delete_records_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_delete_records_response_t resp;
    ck_kafka_delete_records_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.topics, rq.topics.count))
        return CK_H_CLOSE;
    for (int i = 0; i < rq.topics.count; i++) {
        __typeof__(rq.topics.items[0]) *qt = &rq.topics.items[i];
        __typeof__(resp.topics.items[0]) *rt = &resp.topics.items[i];
        ck_kafka_delete_records_response_delete_records_topic_result_init(rt);
        rt->name = qt->name;
        ck_topic_t *t = ck_topics_get(b->topics, (const char *)qt->name.ptr, qt->name.len);
        if (CK_ARRAY_ALLOC(req, rt->partitions, qt->partitions.count))
            return CK_H_CLOSE;
        for (int j = 0; j < qt->partitions.count; j++) {
            __typeof__(qt->partitions.items[0]) *qp = &qt->partitions.items[j];
            __typeof__(rt->partitions.items[0]) *rp = &rt->partitions.items[j];
            ck_kafka_delete_records_response_delete_records_partition_result_init(rp);
            rp->partition_index = qp->partition_index;
            rp->low_watermark = -1;
            rp->error_code = ck__partition_error(t, qp->partition_index);
            if (rp->error_code)
                continue;
            ck_partition_t *p = t->parts[qp->partition_index];
            int64_t hw = ck_partition_durable_end(p);
            int64_t off = qp->offset == -1 ? hw : qp->offset;
            if (off < 0 || off > hw) {
                rp->error_code = KERR_OFFSET_OUT_OF_RANGE;
                continue;
            }
            if (off > ck_partition_log_start(p) && ck_partition_delete_records(p, off) != 0) {
                rp->error_code = KERR_KAFKA_STORAGE_ERROR;
                continue;
            }
            rp->low_watermark = ck_partition_log_start(p);
        }
    }
    ck_kafka_delete_records_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}
