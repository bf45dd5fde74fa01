/* ApiVersions, Metadata and DescribeCluster. */
#include <stdio.h>

#include "core/logging.h"
#include "kafka/handlers.h"

const ck_served_api_t ck__served_apis[] = {
    {CK_API_PRODUCE, 0, 11, ck__h_produce},
    {CK_API_FETCH, 0, 17, ck__h_fetch},
    {CK_API_LIST_OFFSETS, 0, 10, ck__h_list_offsets},
    {CK_API_METADATA, 0, 12, ck__h_metadata},
    {CK_API_OFFSET_COMMIT, 0, 9, ck__h_offset_commit},
    {CK_API_OFFSET_FETCH, 0, 9, ck__h_offset_fetch},
    {CK_API_FIND_COORDINATOR, 0, 6, ck__h_find_coordinator},
    {CK_API_JOIN_GROUP, 0, 9, ck__h_join_group},
    {CK_API_HEARTBEAT, 0, 4, ck__h_heartbeat},
    {CK_API_LEAVE_GROUP, 0, 5, ck__h_leave_group},
    {CK_API_SYNC_GROUP, 0, 5, ck__h_sync_group},
    {CK_API_DESCRIBE_GROUPS, 0, 5, ck__h_describe_groups},
    {CK_API_LIST_GROUPS, 0, 5, ck__h_list_groups},
    {CK_API_DELETE_GROUPS, 0, 2, ck__h_delete_groups},
    {CK_API_API_VERSIONS, 0, 4, ck__h_api_versions},
    {CK_API_CREATE_TOPICS, 0, 7, ck__h_create_topics},
    {CK_API_DELETE_TOPICS, 0, 6, ck__h_delete_topics},
    {CK_API_DELETE_RECORDS, 0, 2, ck__h_delete_records},
    {CK_API_DESCRIBE_CONFIGS, 0, 4, ck__h_describe_configs},
    {CK_API_ALTER_CONFIGS, 0, 2, ck__h_alter_configs},
    {CK_API_CREATE_PARTITIONS, 0, 3, ck__h_create_partitions},
    {CK_API_INCREMENTAL_ALTER_CONFIGS, 0, 1, ck__h_incremental_alter_configs},
    {CK_API_OFFSET_DELETE, 0, 0, ck__h_offset_delete},
    {CK_API_DESCRIBE_CLUSTER, 0, 1, ck__h_describe_cluster},
    {CK_API_INIT_PRODUCER_ID, 0, 5, ck__h_init_producer_id},
};
const int ck__served_apis_count = sizeof(ck__served_apis) / sizeof(ck__served_apis[0]);

const ck_served_api_t *ck__served_api(int16_t key)
{
    for (int i = 0; i < ck__served_apis_count; i++)
        if (ck__served_apis[i].key == key)
            return &ck__served_apis[i];
    return NULL;
}

int ck__h_api_versions(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_api_versions_response_t resp;
    ck_kafka_api_versions_response_init(&resp);
    if (r) {
        ck_kafka_api_versions_request_t rq;
        ck_kafka_api_versions_request_init(&rq);
        if (ck_kafka_api_versions_request_decode(r, req->api_version, &req->arena, &rq) != 0)
            return CK_H_CLOSE;
    } else {
        resp.error_code = KERR_UNSUPPORTED_VERSION;
    }
    if (CK_ARRAY_ALLOC(req, resp.api_keys, ck__served_apis_count))
        return CK_H_CLOSE;
    for (int i = 0; i < ck__served_apis_count; i++) {
        resp.api_keys.items[i].api_key = ck__served_apis[i].key;
        resp.api_keys.items[i].min_version = ck__served_apis[i].min_version;
        resp.api_keys.items[i].max_version = ck__served_apis[i].max_version;
    }
    ck_kafka_api_versions_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

static int port_of(ck_broker_t *b)
{
    return b->cfg.advertised_port > 0 ? b->cfg.advertised_port : b->bound_port;
}

static int fill_topic(ck_broker_t *b, ck_kreq_t *req, ck_topic_t *t,
                      __typeof__(((ck_kafka_metadata_response_t *)0)->topics.items[0]) *mt)
{
    ck_kafka_metadata_response_metadata_response_topic_init(mt);
    mt->name = ck__str(t->name);
    memcpy(mt->topic_id.b, t->id, 16);
    mt->is_internal = false;
    if (CK_ARRAY_ALLOC(req, mt->partitions, t->npart))
        return -1;
    for (int32_t p = 0; p < t->npart; p++) {
        __typeof__(mt->partitions.items[0]) *mp = &mt->partitions.items[p];
        ck_kafka_metadata_response_metadata_response_partition_init(mp);
        mp->error_code = 0;
        mp->partition_index = p;
        mp->leader_id = b->cfg.node_id;
        mp->leader_epoch = 0;
        if (CK_ARRAY_ALLOC(req, mp->replica_nodes, 1) || CK_ARRAY_ALLOC(req, mp->isr_nodes, 1))
            return -1;
        mp->replica_nodes.items[0] = b->cfg.node_id;
        mp->isr_nodes.items[0] = b->cfg.node_id;
        mp->offline_replicas.count = 0;
    }
    return 0;
}

ck_topic_t *ck__broker_topic(ck_broker_t *b, ck_slice_t name, bool create, int16_t *err)
{
    *err = 0;
    if (name.len <= 0) {
        *err = KERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    ck_topic_t *t = ck_topics_get(b->topics, (const char *)name.ptr, name.len);
    if (t)
        return t;
    const char *why;
    if (!ck_topic_name_valid((const char *)name.ptr, name.len, &why)) {
        *err = KERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    if (!create || !b->cfg.auto_create_topics) {
        *err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    char nm[256], msg[256];
    snprintf(nm, sizeof(nm), "%.*s", name.len, (const char *)name.ptr);
    int rc = ck_topics_create(b->topics, nm, b->cfg.default_partitions, NULL, false, msg, sizeof(msg), &t);
    if (rc) {
        CK_WARN("kafka", "auto-creating topic %s failed: %s", nm, msg);
        *err = rc == CK_EINVAL ? KERR_INVALID_TOPIC_EXCEPTION : KERR_UNKNOWN_SERVER_ERROR;
        return NULL;
    }
    return t;
}

int ck__h_metadata(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_metadata_request_t rq;
    ck_kafka_metadata_request_init(&rq);
    if (ck_kafka_metadata_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_metadata_response_t resp;
    ck_kafka_metadata_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.brokers, 1))
        return CK_H_CLOSE;
    ck_kafka_metadata_response_metadata_response_broker_init(&resp.brokers.items[0]);
    resp.brokers.items[0].node_id = b->cfg.node_id;
    resp.brokers.items[0].host = ck__str(b->advertised_host);
    resp.brokers.items[0].port = port_of(b);
    resp.cluster_id = ck__str(b->cluster_id);
    resp.controller_id = b->cfg.node_id;

    bool all = rq.topics.count < 0 || (req->api_version == 0 && rq.topics.count == 0);
    if (all) {
        int n = ck_topics_count(b->topics);
        if (CK_ARRAY_ALLOC(req, resp.topics, n))
            return CK_H_CLOSE;
        for (int i = 0; i < n; i++)
            if (fill_topic(b, req, ck_topics_at(b->topics, i), &resp.topics.items[i]))
                return CK_H_CLOSE;
    } else {
        if (CK_ARRAY_ALLOC(req, resp.topics, rq.topics.count))
            return CK_H_CLOSE;
        bool create = rq.allow_auto_topic_creation;
        for (int i = 0; i < rq.topics.count; i++) {
            __typeof__(rq.topics.items[0]) *qt = &rq.topics.items[i];
            __typeof__(resp.topics.items[0]) *mt = &resp.topics.items[i];
            ck_topic_t *t = NULL;
            int16_t err = 0;
            if (qt->name.len < 0) {
                t = ck_topics_by_id(b->topics, qt->topic_id.b);
                if (!t)
                    err = KERR_UNKNOWN_TOPIC_ID;
            } else {
                t = ck__broker_topic(b, qt->name, create, &err);
            }
            if (t) {
                if (fill_topic(b, req, t, mt))
                    return CK_H_CLOSE;
            } else {
                ck_kafka_metadata_response_metadata_response_topic_init(mt);
                mt->error_code = err;
                mt->name = qt->name;
                mt->topic_id = qt->topic_id;
            }
        }
    }
    ck_kafka_metadata_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

int ck__h_describe_cluster(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_describe_cluster_request_t rq;
    ck_kafka_describe_cluster_request_init(&rq);
    if (ck_kafka_describe_cluster_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_describe_cluster_response_t resp;
    ck_kafka_describe_cluster_response_init(&resp);
    resp.cluster_id = ck__str(b->cluster_id);
    resp.controller_id = b->cfg.node_id;
    resp.endpoint_type = rq.endpoint_type;
    if (rq.endpoint_type != 1) {
        resp.error_code = KERR_UNSUPPORTED_VERSION; /* only broker endpoints exist */
        resp.error_message = ck__str("Only endpoint type 1 (brokers) is supported");
    }
    if (CK_ARRAY_ALLOC(req, resp.brokers, 1))
        return CK_H_CLOSE;
    ck_kafka_describe_cluster_response_describe_cluster_broker_init(&resp.brokers.items[0]);
    resp.brokers.items[0].broker_id = b->cfg.node_id;
    resp.brokers.items[0].host = ck__str(b->advertised_host);
    resp.brokers.items[0].port = port_of(b);
    ck_kafka_describe_cluster_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}
