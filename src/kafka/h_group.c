/* JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups, DeleteGroups:
 * the Kafka side of the group state machine in src/group/groups.c (docs/GROUPS.md).
 *
 * JoinGroup and SyncGroup replies wait (parked requests) until the group moves: a parked
 * request remembers only the group and member ids and the generation it waits past, and
 * looks them up again when woken, so a member or group that went away in between is
 * answered with the right error instead of touching freed state. */
#include <stdio.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "kafka/handlers.h"

#define MIN_SESSION_MS 6000      /* group.min.session.timeout.ms */
#define MAX_SESSION_MS 1800000   /* group.max.session.timeout.ms */
#define GROUP_TICK_MS 100
#define PROTOCOL_TYPE_CONSUMER "consumer"

typedef struct park {
    char *group, *member;
    int32_t after_gen; /* the reply is due once the generation passed this */
} park_t;

static void wake(ck_broker_t *b) { ck__broker_wake_waiters(b); }

#define OFFSETS_EXPIRY_EVERY_MS 60000
#define OFFSETS_LOG_CLEAN_MIN_BYTES (64LL << 20)
#define OFFSETS_LOG_CLEAN_RATIO 4

static bool group_has_members(void *arg, ck_slice_t group)
{
    ck_group_t *g = ck_groups_find(arg, group);
    return g && ck_group_count(g) > 0;
}

/* Runs expiries and rebalance deadlines of every group; once a minute, the expiry of
 * committed offsets of groups without members. */
static void group_tick(ck_timer_t *t)
{
    ck_broker_t *b = t->data;
    int64_t now = ck_mono_ms();
    bool changed = false;
    if (b->offsets && now - b->offsets_expired_at >= OFFSETS_EXPIRY_EVERY_MS) {
        int64_t last;
        b->offsets_expired_at = now;
        ck_offsets_expire(b->offsets, ck_wall_ms(), b->cfg.offsets_retention_ms, group_has_members, &b->groups, &last);
    }
    if (b->offsets)
        ck_offsets_compact_step(b->offsets, OFFSETS_LOG_CLEAN_MIN_BYTES, OFFSETS_LOG_CLEAN_RATIO, ck_wall_ms());
    for (ck_group_t *g = b->groups.list; g; g = g->next) {
        changed |= ck_group_expire(g, now);
        changed |= ck_group_try_complete(g, now);
    }
    if (changed)
        wake(b);
    ck_timer_start(b->loop, t, now + GROUP_TICK_MS);
}

void ck__groups_start(ck_broker_t *b)
{
    ck_timer_init(&b->group_timer, group_tick, b);
    ck_timer_start(b->loop, &b->group_timer, ck_mono_ms() + GROUP_TICK_MS);
}

void ck__groups_stop(ck_broker_t *b)
{
    ck_timer_stop(b->loop, &b->group_timer);
    ck_groups_free(&b->groups);
}

static const char *client_host(ck_kreq_t *req)
{
    static char host[80];
    const char *peer = req->conn ? req->conn->peer : "";
    const char *colon = strrchr(peer, ':');
    snprintf(host, sizeof(host), "/%.*s", colon ? (int)(colon - peer) : (int)strlen(peer), peer);
    return host;
}

int16_t ck__group_commit_check(ck_broker_t *b, ck_slice_t group, int32_t generation, ck_slice_t member,
                               ck_slice_t instance)
{
    ck_group_t *g = ck_groups_find(&b->groups, group);
    bool simple = generation < 0 && member.len <= 0;
    if (simple)
        return (!g || ck_group_count(g) == 0) ? 0 : KERR_UNKNOWN_MEMBER_ID;
    if (!g)
        return KERR_UNKNOWN_MEMBER_ID;
    ck_gmember_t *m = ck_group_member(g, member);
    if (!m) {
        if (ck_group_member_by_instance(g, instance))
            return KERR_FENCED_INSTANCE_ID;
        return KERR_UNKNOWN_MEMBER_ID;
    }
    if (g->state == CK_GS_PREPARING || g->state == CK_GS_COMPLETING)
        return KERR_REBALANCE_IN_PROGRESS;
    if (generation != g->generation)
        return KERR_ILLEGAL_GENERATION;
    m->deadline = ck_mono_ms() + m->session_timeout_ms;
    return 0;
}

/* ---- JoinGroup ---- */

static void join_reply(ck_kreq_t *req, ck_group_t *g, ck_gmember_t *m, int16_t err, const char *member_id)
{
    ck_kafka_join_group_response_t resp;
    ck_kafka_join_group_response_init(&resp);
    resp.error_code = err;
    resp.member_id = ck__strdup(req, member_id ? member_id : "");
    if (!err && g && m) {
        resp.generation_id = g->generation;
        resp.protocol_type = ck__strdup(req, g->protocol_type ? g->protocol_type : "");
        resp.protocol_name = ck__strdup(req, g->protocol ? g->protocol : "");
        resp.leader = ck__strdup(req, g->leader ? g->leader : "");
        bool leader = g->leader && !strcmp(g->leader, m->id);
        int n = leader ? ck_group_count(g) : 0;
        if (CK_ARRAY_ALLOC(req, resp.members, n) == 0) {
            int k = 0;
            for (ck_gmember_t *o = g->members; o && leader; o = o->next) {
                if (o->pending)
                    continue;
                __typeof__(resp.members.items[0]) *rm = &resp.members.items[k++];
                ck_kafka_join_group_response_join_group_response_member_init(rm);
                rm->member_id = ck__strdup(req, o->id);
                rm->group_instance_id = o->instance_id ? ck__strdup(req, o->instance_id) : CK_SLICE_NULL;
                ck_slice_t meta = ck_group_member_meta(g, o);
                rm->metadata = ck__bytesdup(req, meta.ptr, (size_t)meta.len);
            }
        }
    } else {
        resp.generation_id = -1;
        resp.protocol_name = req->api_version >= 7 ? CK_SLICE_NULL : ck_slice("", 0);
        resp.leader = ck_slice("", 0);
    }
    ck_kafka_join_group_response_encode(&req->resp, req->api_version, &resp);
}

static int join_resume(ck_broker_t *b, ck_kreq_t *req, bool timed_out)
{
    park_t *pk = req->state;
    if (!req->conn)
        return CK_H_DONE;
    ck_group_t *g = ck_groups_find(&b->groups, ck_slice_cstr(pk->group));
    ck_gmember_t *m = g ? ck_group_member(g, ck_slice_cstr(pk->member)) : NULL;
    if (!g || !m) {
        join_reply(req, NULL, NULL, KERR_UNKNOWN_MEMBER_ID, pk->member);
        return CK_H_DONE;
    }
    if (g->generation > pk->after_gen && (g->state == CK_GS_COMPLETING || g->state == CK_GS_STABLE)) {
        join_reply(req, g, m, 0, m->id);
        return CK_H_DONE;
    }
    if (timed_out) {
        join_reply(req, NULL, NULL, KERR_REBALANCE_IN_PROGRESS, m->id);
        return CK_H_DONE;
    }
    return CK_H_DEFER;
}

int ck__h_join_group(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_join_group_request_t rq;
    ck_kafka_join_group_request_init(&rq);
    if (ck_kafka_join_group_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    int64_t now = ck_mono_ms();
    char *member = ck__cstr(req, rq.member_id);
    if (rq.group_id.len <= 0) {
        join_reply(req, NULL, NULL, KERR_INVALID_GROUP_ID, member);
        return CK_H_DONE;
    }
    if (rq.session_timeout_ms < MIN_SESSION_MS || rq.session_timeout_ms > MAX_SESSION_MS) {
        join_reply(req, NULL, NULL, KERR_INVALID_SESSION_TIMEOUT, member);
        return CK_H_DONE;
    }
    if (rq.protocol_type.len <= 0 || rq.protocols.count <= 0) {
        join_reply(req, NULL, NULL, KERR_INCONSISTENT_GROUP_PROTOCOL, member);
        return CK_H_DONE;
    }
    ck_group_t *g = ck_groups_get(&b->groups, rq.group_id);
    if (!g)
        return CK_H_CLOSE;
    if (ck_group_count(g) > 0 && g->protocol_type && !ck_slice_eq_cstr(rq.protocol_type, g->protocol_type)) {
        join_reply(req, NULL, NULL, KERR_INCONSISTENT_GROUP_PROTOCOL, member);
        return CK_H_DONE;
    }
    ck_gproto_t *protos = ck_arena_calloc(&req->arena, sizeof(*protos) * (size_t)rq.protocols.count);
    if (!protos)
        return CK_H_CLOSE;
    for (int i = 0; i < rq.protocols.count; i++) {
        protos[i].name = ck__cstr(req, rq.protocols.items[i].name);
        protos[i].meta = (uint8_t *)rq.protocols.items[i].metadata.ptr;
        protos[i].len = rq.protocols.items[i].metadata.len > 0 ? rq.protocols.items[i].metadata.len : 0;
    }
    if (!ck_group_protocols_compatible(g, protos, rq.protocols.count)) {
        join_reply(req, NULL, NULL, KERR_INCONSISTENT_GROUP_PROTOCOL, member);
        return CK_H_DONE;
    }
    int32_t rebalance_ms = req->api_version >= 1 ? rq.rebalance_timeout_ms : rq.session_timeout_ms;
    ck_slice_t instance = req->api_version >= 5 ? rq.group_instance_id : CK_SLICE_NULL;
    ck_gmember_t *sm = ck_group_member_by_instance(g, instance);

    if (rq.member_id.len <= 0) {
        char *id = ck_groups_new_member_id(&b->groups, req->client_id);
        if (!id)
            return CK_H_CLOSE;
        char *rid = ck__cstr(req, ck_slice_cstr(id));
        ck_free(id);
        if (sm) {
            /* a static member coming back: it takes over its old place, no rebalance when
             * the group is stable (KIP-345) */
            ck_free(sm->id);
            sm->id = ck_strdup(rid);
            if (g->leader && g->state == CK_GS_STABLE) {
                ck_free(g->leader);
                g->leader = ck_strdup(rid);
            }
            sm->deadline = now + sm->session_timeout_ms;
            if (g->state == CK_GS_STABLE) {
                join_reply(req, g, sm, 0, rid);
                return CK_H_DONE;
            }
            member = rid;
        } else if (req->api_version >= 4) {
            /* KIP-394: the client must come back with the id it is given */
            ck_gmember_t *pm = ck_group_upsert(g, rid, instance, req->client_id, client_host(req),
                                               rq.session_timeout_ms, rebalance_ms, protos, rq.protocols.count, now);
            if (!pm)
                return CK_H_CLOSE;
            pm->pending = true;
            if (!g->protocol_type)
                g->protocol_type = ck_strdup(ck__cstr(req, rq.protocol_type));
            join_reply(req, NULL, NULL, KERR_MEMBER_ID_REQUIRED, rid);
            return CK_H_DONE;
        } else {
            member = rid;
        }
    } else {
        ck_gmember_t *known = ck_group_member(g, rq.member_id);
        if (!known) {
            join_reply(req, NULL, NULL, sm ? KERR_FENCED_INSTANCE_ID : KERR_UNKNOWN_MEMBER_ID, member);
            return CK_H_DONE;
        }
    }
    ck_gmember_t *m = ck_group_upsert(g, member, instance, req->client_id, client_host(req), rq.session_timeout_ms,
                                      rebalance_ms, protos, rq.protocols.count, now);
    if (!m)
        return CK_H_CLOSE;
    if (!g->protocol_type || ck_group_count(g) == 1) {
        ck_free(g->protocol_type);
        g->protocol_type = ck_strdup(ck__cstr(req, rq.protocol_type));
    }
    m->joined = true;
    ck_group_prepare(g, now);
    park_t *pk = ck_arena_calloc(&req->arena, sizeof(*pk));
    if (!pk)
        return CK_H_CLOSE;
    pk->group = g->id ? ck__cstr(req, ck_slice_cstr(g->id)) : NULL;
    pk->member = ck__cstr(req, ck_slice_cstr(m->id));
    pk->after_gen = g->generation;
    req->state = pk;
    if (ck_group_try_complete(g, now))
        wake(b);
    int rc = join_resume(b, req, false);
    if (rc == CK_H_DEFER)
        ck__kreq_wait(b, req, join_resume, g->rebalance_deadline + 10000);
    return rc;
}

/* ---- SyncGroup ---- */

static void sync_reply(ck_kreq_t *req, ck_group_t *g, ck_gmember_t *m, int16_t err)
{
    ck_kafka_sync_group_response_t resp;
    ck_kafka_sync_group_response_init(&resp);
    resp.error_code = err;
    if (!err && g && m) {
        resp.protocol_type = ck__strdup(req, g->protocol_type ? g->protocol_type : "");
        resp.protocol_name = ck__strdup(req, g->protocol ? g->protocol : "");
        resp.assignment = ck__bytesdup(req, m->assignment, (size_t)m->alen);
    } else {
        resp.assignment = ck_slice("", 0);
    }
    ck_kafka_sync_group_response_encode(&req->resp, req->api_version, &resp);
}

static int sync_resume(ck_broker_t *b, ck_kreq_t *req, bool timed_out)
{
    park_t *pk = req->state;
    if (!req->conn)
        return CK_H_DONE;
    ck_group_t *g = ck_groups_find(&b->groups, ck_slice_cstr(pk->group));
    ck_gmember_t *m = g ? ck_group_member(g, ck_slice_cstr(pk->member)) : NULL;
    if (!g || !m) {
        sync_reply(req, NULL, NULL, KERR_UNKNOWN_MEMBER_ID);
        return CK_H_DONE;
    }
    if (g->generation != pk->after_gen || g->state == CK_GS_PREPARING) {
        sync_reply(req, NULL, NULL, KERR_REBALANCE_IN_PROGRESS);
        return CK_H_DONE;
    }
    if (g->state == CK_GS_STABLE) {
        sync_reply(req, g, m, 0);
        return CK_H_DONE;
    }
    if (timed_out) {
        sync_reply(req, NULL, NULL, KERR_REBALANCE_IN_PROGRESS);
        return CK_H_DONE;
    }
    return CK_H_DEFER;
}

int ck__h_sync_group(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_sync_group_request_t rq;
    ck_kafka_sync_group_request_init(&rq);
    if (ck_kafka_sync_group_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_group_t *g = ck_groups_find(&b->groups, rq.group_id);
    ck_gmember_t *m = g ? ck_group_member(g, rq.member_id) : NULL;
    ck_slice_t instance = req->api_version >= 3 ? rq.group_instance_id : CK_SLICE_NULL;
    if (!g || !m) {
        sync_reply(req, NULL, NULL, g && ck_group_member_by_instance(g, instance) ? KERR_FENCED_INSTANCE_ID : KERR_UNKNOWN_MEMBER_ID);
        return CK_H_DONE;
    }
    if ((rq.protocol_type.len >= 0 && g->protocol_type && !ck_slice_eq_cstr(rq.protocol_type, g->protocol_type)) ||
        (rq.protocol_name.len >= 0 && g->protocol && !ck_slice_eq_cstr(rq.protocol_name, g->protocol))) {
        sync_reply(req, NULL, NULL, KERR_INCONSISTENT_GROUP_PROTOCOL);
        return CK_H_DONE;
    }
    if (rq.generation_id != g->generation) {
        sync_reply(req, NULL, NULL, KERR_ILLEGAL_GENERATION);
        return CK_H_DONE;
    }
    if (g->state == CK_GS_PREPARING) {
        sync_reply(req, NULL, NULL, KERR_REBALANCE_IN_PROGRESS);
        return CK_H_DONE;
    }
    m->deadline = ck_mono_ms() + m->session_timeout_ms;
    if (g->state == CK_GS_COMPLETING && g->leader && !strcmp(g->leader, m->id)) {
        int n = rq.assignments.count > 0 ? rq.assignments.count : 0;
        const char **ids = ck_arena_calloc(&req->arena, sizeof(char *) * (size_t)(n ? n : 1));
        ck_slice_t *as = ck_arena_calloc(&req->arena, sizeof(ck_slice_t) * (size_t)(n ? n : 1));
        if (!ids || !as)
            return CK_H_CLOSE;
        for (int i = 0; i < n; i++) {
            ids[i] = ck__cstr(req, rq.assignments.items[i].member_id);
            as[i] = rq.assignments.items[i].assignment;
        }
        if (ck_group_assign(g, ids, as, n) != 0)
            return CK_H_CLOSE;
        wake(b); /* members waiting in SyncGroup get their assignment */
    }
    park_t *pk = ck_arena_calloc(&req->arena, sizeof(*pk));
    if (!pk)
        return CK_H_CLOSE;
    pk->group = ck__cstr(req, rq.group_id);
    pk->member = ck__cstr(req, rq.member_id);
    pk->after_gen = g->generation;
    req->state = pk;
    int rc = sync_resume(b, req, false);
    if (rc == CK_H_DEFER)
        ck__kreq_wait(b, req, sync_resume, ck_mono_ms() + m->rebalance_timeout_ms + 10000);
    return rc;
}

/* ---- Heartbeat ---- */

int ck__h_heartbeat(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_heartbeat_request_t rq;
    ck_kafka_heartbeat_request_init(&rq);
    if (ck_kafka_heartbeat_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_heartbeat_response_t resp;
    ck_kafka_heartbeat_response_init(&resp);
    ck_group_t *g = ck_groups_find(&b->groups, rq.group_id);
    ck_gmember_t *m = g ? ck_group_member(g, rq.member_id) : NULL;
    ck_slice_t instance = req->api_version >= 3 ? rq.group_instance_id : CK_SLICE_NULL;
    if (!g || !m || m->pending)
        resp.error_code = g && ck_group_member_by_instance(g, instance) ? KERR_FENCED_INSTANCE_ID : KERR_UNKNOWN_MEMBER_ID;
    else {
        m->deadline = ck_mono_ms() + m->session_timeout_ms;
        if (g->state == CK_GS_PREPARING)
            resp.error_code = KERR_REBALANCE_IN_PROGRESS;
        else if (rq.generation_id != g->generation)
            resp.error_code = KERR_ILLEGAL_GENERATION;
    }
    ck_kafka_heartbeat_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

/* ---- LeaveGroup ---- */

static int16_t leave_one(ck_broker_t *b, ck_group_t *g, ck_slice_t member, ck_slice_t instance)
{
    ck_gmember_t *m = member.len > 0 ? ck_group_member(g, member) : NULL;
    ck_gmember_t *sm = ck_group_member_by_instance(g, instance);
    if (instance.len >= 0) {
        if (!sm)
            return KERR_UNKNOWN_MEMBER_ID;
        if (m && m != sm)
            return KERR_FENCED_INSTANCE_ID;
        m = sm;
    }
    if (!m)
        return KERR_UNKNOWN_MEMBER_ID;
    bool real = !m->pending;
    ck_group_remove_member(g, m);
    if (real) {
        int64_t now = ck_mono_ms();
        if (ck_group_count(g) > 0) {
            ck_group_prepare(g, now);
            ck_group_try_complete(g, now);
        } else if (g->state != CK_GS_PREPARING) {
            g->state = CK_GS_EMPTY;
            g->generation++;
        } else {
            ck_group_try_complete(g, now);
        }
    }
    return 0;
}

int ck__h_leave_group(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_leave_group_request_t rq;
    ck_kafka_leave_group_request_init(&rq);
    if (ck_kafka_leave_group_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_leave_group_response_t resp;
    ck_kafka_leave_group_response_init(&resp);
    ck_group_t *g = ck_groups_find(&b->groups, rq.group_id);
    if (req->api_version < 3) {
        resp.error_code = g ? leave_one(b, g, rq.member_id, CK_SLICE_NULL) : KERR_UNKNOWN_MEMBER_ID;
    } else {
        if (CK_ARRAY_ALLOC(req, resp.members, rq.members.count))
            return CK_H_CLOSE;
        for (int i = 0; i < rq.members.count; i++) {
            __typeof__(rq.members.items[0]) *qm = &rq.members.items[i];
            __typeof__(resp.members.items[0]) *rm = &resp.members.items[i];
            ck_kafka_leave_group_response_member_response_init(rm);
            rm->member_id = qm->member_id;
            rm->group_instance_id = qm->group_instance_id;
            rm->error_code = g ? leave_one(b, g, qm->member_id, qm->group_instance_id) : KERR_UNKNOWN_MEMBER_ID;
        }
    }
    wake(b);
    ck_kafka_leave_group_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

/* ---- DescribeGroups, ListGroups, DeleteGroups ---- */

int ck__h_describe_groups(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_describe_groups_request_t rq;
    ck_kafka_describe_groups_request_init(&rq);
    if (ck_kafka_describe_groups_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_describe_groups_response_t resp;
    ck_kafka_describe_groups_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.groups, rq.groups.count))
        return CK_H_CLOSE;
    for (int i = 0; i < rq.groups.count; i++) {
        __typeof__(resp.groups.items[0]) *dg = &resp.groups.items[i];
        ck_kafka_describe_groups_response_described_group_init(dg);
        dg->group_id = rq.groups.items[i];
        ck_group_t *g = ck_groups_find(&b->groups, rq.groups.items[i]);
        bool offsets = b->offsets && ck_offsets_group_has(b->offsets, rq.groups.items[i]);
        int state = g ? g->state : (offsets ? CK_GS_EMPTY : CK_GS_DEAD);
        if (g && state == CK_GS_EMPTY && ck_group_count(g) == 0 && !offsets && !g->protocol_type)
            state = CK_GS_DEAD;
        dg->group_state = ck__str(ck_group_state_name(state));
        dg->protocol_type = ck__strdup(req, g && g->protocol_type ? g->protocol_type : (offsets ? PROTOCOL_TYPE_CONSUMER : ""));
        dg->protocol_data = ck__strdup(req, g && g->protocol && state != CK_GS_EMPTY ? g->protocol : "");
        int n = g ? ck_group_count(g) : 0;
        if (CK_ARRAY_ALLOC(req, dg->members, n))
            return CK_H_CLOSE;
        int k = 0;
        for (ck_gmember_t *m = g ? g->members : NULL; m; m = m->next) {
            if (m->pending)
                continue;
            __typeof__(dg->members.items[0]) *dm = &dg->members.items[k++];
            ck_kafka_describe_groups_response_described_group_member_init(dm);
            dm->member_id = ck__strdup(req, m->id);
            dm->group_instance_id = m->instance_id ? ck__strdup(req, m->instance_id) : CK_SLICE_NULL;
            dm->client_id = ck__strdup(req, m->client_id ? m->client_id : "");
            dm->client_host = ck__strdup(req, m->client_host ? m->client_host : "");
            ck_slice_t meta = ck_group_member_meta(g, m);
            dm->member_metadata = ck__bytesdup(req, meta.ptr, (size_t)meta.len);
            dm->member_assignment = ck__bytesdup(req, m->assignment, (size_t)m->alen);
        }
    }
    ck_kafka_describe_groups_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

typedef struct listed {
    ck_kreq_t *req;
    ck_kafka_list_groups_response_t *resp;
    int cap;
    const __typeof__(((ck_kafka_list_groups_request_t *)0)->states_filter) *states;
    bool oom;
} listed_t;

static void list_add(listed_t *l, const char *id, const char *ptype, int state)
{
    for (int i = 0; l->states && i < l->states->count; i++) {
        if (ck_slice_eq_cstr(l->states->items[i], ck_group_state_name(state)))
            goto keep;
        /* states are matched case-insensitively, as the Kafka tools send them */
        if ((size_t)l->states->items[i].len == strlen(ck_group_state_name(state)) &&
            !strncasecmp((const char *)l->states->items[i].ptr, ck_group_state_name(state), strlen(ck_group_state_name(state))))
            goto keep;
    }
    if (l->states && l->states->count > 0)
        return;
keep:
    for (int i = 0; i < l->resp->groups.count; i++)
        if (ck_slice_eq_cstr(l->resp->groups.items[i].group_id, id))
            return;
    if (l->resp->groups.count == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        __typeof__(l->resp->groups.items) n = ck_arena_calloc(&l->req->arena, sizeof(*n) * (size_t)cap);
        if (!n) {
            l->oom = true;
            return;
        }
        if (l->resp->groups.count)
            memcpy(n, l->resp->groups.items, sizeof(*n) * (size_t)l->resp->groups.count);
        l->resp->groups.items = n;
        l->cap = cap;
    }
    __typeof__(l->resp->groups.items[0]) *lg = &l->resp->groups.items[l->resp->groups.count++];
    ck_kafka_list_groups_response_listed_group_init(lg);
    lg->group_id = ck__strdup(l->req, id);
    lg->protocol_type = ck__strdup(l->req, ptype);
    lg->group_state = ck__str(ck_group_state_name(state));
    lg->group_type = ck__str("classic");
}

/* A group known only by its committed offsets is listed as Empty. */
static void list_offsets_group(void *arg, ck_slice_t group)
{
    listed_t *l = arg;
    char *id = ck__cstr(l->req, group);
    if (id)
        list_add(l, id, PROTOCOL_TYPE_CONSUMER, CK_GS_EMPTY);
}

int ck__h_list_groups(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_list_groups_request_t rq;
    ck_kafka_list_groups_request_init(&rq);
    if (ck_kafka_list_groups_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_list_groups_response_t resp;
    ck_kafka_list_groups_response_init(&resp);
    resp.groups.count = 0;
    bool types_ok = true;
    if (req->api_version >= 5 && rq.types_filter.count > 0) {
        types_ok = false;
        for (int i = 0; i < rq.types_filter.count; i++)
            if ((size_t)rq.types_filter.items[i].len == 7 && !strncasecmp((const char *)rq.types_filter.items[i].ptr, "classic", 7))
                types_ok = true;
    }
    listed_t l = {req, &resp, 0, req->api_version >= 4 ? &rq.states_filter : NULL, false};
    for (ck_group_t *g = b->groups.list; g && types_ok; g = g->next)
        if (ck_group_count(g) > 0 || g->protocol_type || (b->offsets && ck_offsets_group_has(b->offsets, ck_slice_cstr(g->id))))
            list_add(&l, g->id, g->protocol_type ? g->protocol_type : PROTOCOL_TYPE_CONSUMER, g->state);
    if (b->offsets && types_ok)
        ck_offsets_foreach_group(b->offsets, list_offsets_group, &l);
    if (l.oom)
        return CK_H_CLOSE;
    ck_kafka_list_groups_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}

int ck__h_delete_groups(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_delete_groups_request_t rq;
    ck_kafka_delete_groups_request_init(&rq);
    if (ck_kafka_delete_groups_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_delete_groups_response_t resp;
    ck_kafka_delete_groups_response_init(&resp);
    if (CK_ARRAY_ALLOC(req, resp.results, rq.groups_names.count))
        return CK_H_CLOSE;
    for (int i = 0; i < rq.groups_names.count; i++) {
        ck_slice_t name = rq.groups_names.items[i];
        __typeof__(resp.results.items[0]) *res = &resp.results.items[i];
        ck_kafka_delete_groups_response_deletable_group_result_init(res);
        res->group_id = name;
        ck_group_t *g = ck_groups_find(&b->groups, name);
        bool offsets = b->offsets && ck_offsets_group_has(b->offsets, name);
        if (g && ck_group_count(g) > 0) {
            res->error_code = KERR_NON_EMPTY_GROUP;
            continue;
        }
        if (!g && !offsets) {
            res->error_code = KERR_GROUP_ID_NOT_FOUND;
            continue;
        }
        int64_t last;
        if (offsets && ck_offsets_delete(b->offsets, name, CK_SLICE_NULL, 0, ck_wall_ms(), &last) != 0) {
            res->error_code = KERR_COORDINATOR_NOT_AVAILABLE;
            continue;
        }
        if (g)
            ck_groups_remove(&b->groups, g);
    }
    ck_kafka_delete_groups_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}
