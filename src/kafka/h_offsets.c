/* FindCoordinator, OffsetCommit, OffsetFetch and OffsetDelete over the committed-offsets
 * store (src/group/offsets.h). This broker coordinates every group. Commits are answered
 * once their record in the offsets log is durable, like a produce with acks=all.
 *
 * Commits with generation -1 and no member id ("simple" commits of consumers that assign
 * partitions themselves) are accepted for groups without members; others must come from
 * a member of the current generation (h_group.c, ck__group_commit_check). */
#include <stdio.h>

#include "core/clock.h"
#include "group/offsets.h"
#include "kafka/handlers.h"

#define MAX_METADATA 4096 /* offset.metadata.max.bytes */

/* ---- FindCoordinator ---- */

int ck__h_find_coordinator(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_find_coordinator_request_t rq;
    ck_kafka_find_coordinator_request_init(&rq);
    if (ck_kafka_find_coordinator_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_find_coordinator_response_t resp;
    ck_kafka_find_coordinator_response_init(&resp);
    int16_t err = 0;
    ck_slice_t msg = CK_SLICE_NULL;
    if (rq.key_type != 0) {
        err = KERR_COORDINATOR_NOT_AVAILABLE;
        msg = ck__str("Transactions are not supported yet");
    } else if (!b->offsets) {
        err = KERR_COORDINATOR_NOT_AVAILABLE;
    }
    int port = b->cfg.advertised_port > 0 ? b->cfg.advertised_port : b->bound_port;
    if (req->api_version < 4) {
        resp.error_code = err;
        resp.error_message = msg;
        resp.node_id = err ? -1 : b->cfg.node_id;
        resp.host = ck__str(err ? "" : b->advertised_host);
        resp.port = err ? -1 : port;
    } else {
        if (CK_ARRAY_ALLOC(req, resp.coordinators, rq.coordinator_keys.count))
            return CK_H_CLOSE;
        for (int i = 0; i < rq.coordinator_keys.count; i++) {
            __typeof__(resp.coordinators.items[0]) *c = &resp.coordinators.items[i];
            ck_kafka_find_coordinator_response_coordinator_init(c);
            c->key = rq.coordinator_keys.items[i];
            c->error_code = err;
            c->error_message = msg;
            c->node_id = err ? -1 : b->cfg.node_id;
            c->host = ck__str(err ? "" : b->advertised_host);
            c->port = err ? -1 : port;
        }
    }
    ck_kafka_find_coordinator_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

/* ---- OffsetCommit ---- */

typedef struct commit_state {
    ck_kafka_offset_commit_response_t resp;
    int64_t last; /* offsets-log offset that must be durable */
} commit_state_t;

static int commit_resume(ck_broker_t *b, ck_kreq_t *req, bool timed_out)
{
    commit_state_t *st = req->state;
    ck_partition_t *p = ck_offsets_partition(b->offsets);
    int16_t err = 0;
    if (ck_partition_durable_end(p) <= st->last) {
        if (ck_partition_error(p))
            err = KERR_COORDINATOR_NOT_AVAILABLE; /* the commit is not durable */
        else if (timed_out)
            err = KERR_REQUEST_TIMED_OUT;
        else
            return CK_H_DEFER;
    }
    if (err)
        for (int i = 0; i < st->resp.topics.count; i++)
            for (int j = 0; j < st->resp.topics.items[i].partitions.count; j++)
                if (!st->resp.topics.items[i].partitions.items[j].error_code)
                    st->resp.topics.items[i].partitions.items[j].error_code = err;
    if (req->conn)
        ck_kafka_offset_commit_response_encode(&req->resp, req->api_version, &st->resp);
    return CK_H_DONE;
}

int ck__h_offset_commit(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_offset_commit_request_t rq;
    ck_kafka_offset_commit_request_init(&rq);
    if (ck_kafka_offset_commit_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    commit_state_t *st = ck_arena_calloc(&req->arena, sizeof(*st));
    if (!st)
        return CK_H_CLOSE;
    ck_kafka_offset_commit_response_init(&st->resp);
    st->last = -1;
    int16_t gerr = 0;
    if (!b->offsets)
        gerr = KERR_COORDINATOR_NOT_AVAILABLE;
    else if (rq.group_id.len <= 0)
        gerr = KERR_INVALID_GROUP_ID;
    else
        gerr = ck__group_commit_check(b, rq.group_id, req->api_version >= 1 ? rq.generation_id_or_member_epoch : -1,
                                      req->api_version >= 1 ? rq.member_id : CK_SLICE_NULL,
                                      req->api_version >= 7 ? rq.group_instance_id : CK_SLICE_NULL);
    int total = 0;
    for (int i = 0; i < rq.topics.count; i++)
        total += rq.topics.items[i].partitions.count > 0 ? rq.topics.items[i].partitions.count : 0;
    ck_offset_commit_t *cs = ck_arena_calloc(&req->arena, sizeof(*cs) * (size_t)(total ? total : 1));
    if (!cs || CK_ARRAY_ALLOC(req, st->resp.topics, rq.topics.count))
        return CK_H_CLOSE;
    int n = 0;
    for (int i = 0; i < rq.topics.count; i++) {
        __typeof__(rq.topics.items[0]) *qt = &rq.topics.items[i];
        __typeof__(st->resp.topics.items[0]) *rt = &st->resp.topics.items[i];
        ck_kafka_offset_commit_response_offset_commit_response_topic_init(rt);
        rt->name = qt->name;
        if (CK_ARRAY_ALLOC(req, rt->partitions, qt->partitions.count))
            return CK_H_CLOSE;
        ck_topic_t *t = gerr ? NULL : ck_topics_get(b->topics, (const char *)qt->name.ptr, qt->name.len);
        for (int j = 0; j < qt->partitions.count; j++) {
            __typeof__(qt->partitions.items[0]) *qp = &qt->partitions.items[j];
            __typeof__(rt->partitions.items[0]) *rp = &rt->partitions.items[j];
            rp->partition_index = qp->partition_index;
            if (gerr) {
                rp->error_code = gerr;
            } else if (ck__partition_error(t, qp->partition_index)) {
                rp->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            } else if (qp->committed_metadata.len > MAX_METADATA) {
                rp->error_code = KERR_OFFSET_METADATA_TOO_LARGE;
            } else {
                cs[n++] = (ck_offset_commit_t){qt->name, qp->partition_index, qp->committed_offset,
                                               qp->committed_leader_epoch, qp->committed_metadata};
            }
        }
    }
    if (n > 0) {
        int rc = ck_offsets_commit(b->offsets, rq.group_id, cs, n, ck_wall_ms(), &st->last);
        if (rc) {
            int16_t e = rc == CK_EINVAL ? KERR_INVALID_REQUEST : KERR_COORDINATOR_NOT_AVAILABLE;
            for (int i = 0; i < st->resp.topics.count; i++)
                for (int j = 0; j < st->resp.topics.items[i].partitions.count; j++)
                    if (!st->resp.topics.items[i].partitions.items[j].error_code)
                        st->resp.topics.items[i].partitions.items[j].error_code = e;
            st->last = -1;
        }
    }
    req->state = st;
    int rc = commit_resume(b, req, false);
    if (rc == CK_H_DEFER)
        ck__kreq_wait(b, req, commit_resume, ck_mono_ms() + 30000);
    return rc;
}

/* ---- OffsetFetch ---- */

/* One requested partition's answer, shared by the v0-7 and v8+ reply shapes. */
typedef struct fetched {
    ck_slice_t topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    ck_slice_t metadata;
} fetched_t;

typedef struct fetch_list {
    ck_kreq_t *req;
    fetched_t *items;
    int n, cap;
    bool oom;
} fetch_list_t;

static void add_fetched(void *arg, ck_slice_t topic, int32_t partition, const ck_offset_entry_t *e)
{
    fetch_list_t *l = arg;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        fetched_t *ni = ck_arena_alloc(&l->req->arena, sizeof(*ni) * (size_t)cap);
        if (!ni) {
            l->oom = true;
            return;
        }
        if (l->n)
            memcpy(ni, l->items, sizeof(*ni) * (size_t)l->n);
        l->items = ni;
        l->cap = cap;
    }
    /* copy out of the store: a later commit in this loop turn may replace the entry */
    ck_slice_t t = ck__bytesdup(l->req, topic.ptr, (size_t)topic.len);
    ck_slice_t m = e && e->metadata.len >= 0 ? ck__bytesdup(l->req, e->metadata.ptr, (size_t)e->metadata.len)
                                             : CK_SLICE_NULL;
    l->items[l->n++] = (fetched_t){t, partition, e ? e->offset : -1, e ? e->leader_epoch : -1, e ? m : ck_slice("", 0)};
}

/* Collects the answers for one group: topics NULL (count < 0) = every stored offset. */
typedef struct want_topic {
    ck_slice_t name;
    int32_t *parts;
    int nparts;
} want_topic_t;

static void collect_group(ck_broker_t *b, fetch_list_t *l, ck_slice_t group, const want_topic_t *wt, int nwt)
{
    if (nwt < 0) {
        ck_offsets_foreach(b->offsets, group, add_fetched, l);
        return;
    }
    for (int i = 0; i < nwt; i++)
        for (int j = 0; j < wt[i].nparts; j++)
            add_fetched(l, wt[i].name, wt[i].parts[j], ck_offsets_get(b->offsets, group, wt[i].name, wt[i].parts[j]));
}

/* Groups the flat list by topic name into *ntopics runs (order of first appearance). */
static int topic_runs(ck_kreq_t *req, fetch_list_t *l, int **start, int **len)
{
    int *st = ck_arena_alloc(&req->arena, sizeof(int) * (size_t)(l->n + 1));
    int *ln = ck_arena_alloc(&req->arena, sizeof(int) * (size_t)(l->n + 1));
    fetched_t *sorted = ck_arena_alloc(&req->arena, sizeof(fetched_t) * (size_t)(l->n + 1));
    bool *used = ck_arena_calloc(&req->arena, sizeof(bool) * (size_t)(l->n + 1));
    if (!st || !ln || !sorted || !used)
        return -1;
    int nt = 0, k = 0;
    for (int i = 0; i < l->n; i++) {
        if (used[i])
            continue;
        st[nt] = k;
        for (int j = i; j < l->n; j++)
            if (!used[j] && ck_slice_eq(l->items[j].topic, l->items[i].topic)) {
                used[j] = true;
                sorted[k++] = l->items[j];
            }
        ln[nt] = k - st[nt];
        nt++;
    }
    l->items = sorted;
    *start = st;
    *len = ln;
    return nt;
}

/* Fills a reply's topic array from the grouped list. Needs `req` in scope; on allocation
 * failure it returns CK_H_CLOSE from the calling handler. */
#define FILL_TOPICS(arr, l, st, ln, nt, topic_init, part_init)                                     \
    do {                                                                                           \
        if (CK_ARRAY_ALLOC(req, arr, nt))                                                          \
            return CK_H_CLOSE;                                                                     \
        for (int t_ = 0; t_ < (nt); t_++) {                                                        \
            topic_init(&(arr).items[t_]);                                                          \
            (arr).items[t_].name = (l).items[(st)[t_]].topic;                                      \
            if (CK_ARRAY_ALLOC(req, (arr).items[t_].partitions, (ln)[t_]))                         \
                return CK_H_CLOSE;                                                                 \
            for (int p_ = 0; p_ < (ln)[t_]; p_++) {                                                \
                const fetched_t *f_ = &(l).items[(st)[t_] + p_];                                  \
                __typeof__((arr).items[t_].partitions.items[0]) *rp_ = &(arr).items[t_].partitions.items[p_]; \
                part_init(rp_);                                                                    \
                rp_->partition_index = f_->partition;                                              \
                rp_->committed_offset = f_->offset;                                                \
                rp_->committed_leader_epoch = f_->leader_epoch;                                    \
                rp_->metadata = f_->metadata;                                                      \
                rp_->error_code = 0;                                                               \
            }                                                                                      \
        }                                                                                          \
    } while (0)

int ck__h_offset_fetch(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_offset_fetch_request_t rq;
    ck_kafka_offset_fetch_request_init(&rq);
    if (ck_kafka_offset_fetch_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_offset_fetch_response_t resp;
    ck_kafka_offset_fetch_response_init(&resp);
    if (req->api_version < 8) {
        fetch_list_t l = {req, NULL, 0, 0, false};
        int nwt = rq.topics.count;
        want_topic_t *wt = ck_arena_calloc(&req->arena, sizeof(*wt) * (size_t)(nwt > 0 ? nwt : 1));
        if (!wt)
            return CK_H_CLOSE;
        for (int i = 0; i < nwt; i++)
            wt[i] = (want_topic_t){rq.topics.items[i].name, rq.topics.items[i].partition_indexes.items,
                                   rq.topics.items[i].partition_indexes.count};
        if (!b->offsets)
            resp.error_code = KERR_COORDINATOR_NOT_AVAILABLE;
        else if (rq.group_id.len <= 0)
            resp.error_code = KERR_INVALID_GROUP_ID;
        else
            collect_group(b, &l, rq.group_id, wt, nwt);
        int *st, *ln;
        int nt = topic_runs(req, &l, &st, &ln);
        if (l.oom || nt < 0)
            return CK_H_CLOSE;
        FILL_TOPICS(resp.topics, l, st, ln, nt, ck_kafka_offset_fetch_response_offset_fetch_response_topic_init,
                    ck_kafka_offset_fetch_response_offset_fetch_response_partition_init);
        if (req->api_version < 2 && resp.error_code) /* v0-1 have no top-level error */
            for (int i = 0; i < resp.topics.count; i++)
                for (int j = 0; j < resp.topics.items[i].partitions.count; j++)
                    resp.topics.items[i].partitions.items[j].error_code = resp.error_code;
    } else {
        if (CK_ARRAY_ALLOC(req, resp.groups, rq.groups.count))
            return CK_H_CLOSE;
        for (int g = 0; g < rq.groups.count; g++) {
            __typeof__(rq.groups.items[0]) *qg = &rq.groups.items[g];
            __typeof__(resp.groups.items[0]) *rg = &resp.groups.items[g];
            ck_kafka_offset_fetch_response_offset_fetch_response_group_init(rg);
            rg->group_id = qg->group_id;
            fetch_list_t l = {req, NULL, 0, 0, false};
            int nwt = qg->topics.count;
            want_topic_t *wt = ck_arena_calloc(&req->arena, sizeof(*wt) * (size_t)(nwt > 0 ? nwt : 1));
            if (!wt)
                return CK_H_CLOSE;
            for (int i = 0; i < nwt; i++)
                wt[i] = (want_topic_t){qg->topics.items[i].name, qg->topics.items[i].partition_indexes.items,
                                       qg->topics.items[i].partition_indexes.count};
            if (!b->offsets)
                rg->error_code = KERR_COORDINATOR_NOT_AVAILABLE;
            else if (qg->group_id.len <= 0)
                rg->error_code = KERR_INVALID_GROUP_ID;
            else
                collect_group(b, &l, qg->group_id, wt, nwt);
            int *st, *ln;
            int nt = topic_runs(req, &l, &st, &ln);
            if (l.oom || nt < 0)
                return CK_H_CLOSE;
            FILL_TOPICS(rg->topics, l, st, ln, nt, ck_kafka_offset_fetch_response_offset_fetch_response_topics_init,
                        ck_kafka_offset_fetch_response_offset_fetch_response_partitions_init);
        }
    }
    ck_kafka_offset_fetch_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

/* ---- OffsetDelete ---- */

int ck__h_offset_delete(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_offset_delete_request_t rq;
    ck_kafka_offset_delete_request_init(&rq);
    if (ck_kafka_offset_delete_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_offset_delete_response_t resp;
    ck_kafka_offset_delete_response_init(&resp);
    if (!b->offsets)
        resp.error_code = KERR_COORDINATOR_NOT_AVAILABLE;
    else if (rq.group_id.len <= 0)
        resp.error_code = KERR_INVALID_GROUP_ID;
    else if (!ck_offsets_group_has(b->offsets, rq.group_id))
        resp.error_code = KERR_GROUP_ID_NOT_FOUND;
    if (CK_ARRAY_ALLOC(req, resp.topics, resp.error_code ? 0 : rq.topics.count))
        return CK_H_CLOSE;
    for (int i = 0; i < resp.topics.count; i++) {
        __typeof__(rq.topics.items[0]) *qt = &rq.topics.items[i];
        __typeof__(resp.topics.items[0]) *rt = &resp.topics.items[i];
        ck_kafka_offset_delete_response_offset_delete_response_topic_init(rt);
        rt->name = qt->name;
        if (CK_ARRAY_ALLOC(req, rt->partitions, qt->partitions.count))
            return CK_H_CLOSE;
        ck_topic_t *t = ck_topics_get(b->topics, (const char *)qt->name.ptr, qt->name.len);
        for (int j = 0; j < qt->partitions.count; j++) {
            int32_t p = qt->partitions.items[j].partition_index;
            rt->partitions.items[j].partition_index = p;
            int64_t last;
            if (ck__partition_error(t, p))
                rt->partitions.items[j].error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else if (ck_offsets_delete(b->offsets, rq.group_id, qt->name, p, ck_wall_ms(), &last) != 0)
                rt->partitions.items[j].error_code = KERR_COORDINATOR_NOT_AVAILABLE;
        }
    }
    /* a tombstone that is lost in a crash only brings back an offset the client deleted:
     * the reply does not wait for the flusher */
    ck_kafka_offset_delete_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}
