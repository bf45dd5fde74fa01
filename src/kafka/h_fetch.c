/* Fetch: reads whole stored batches below the high watermark (= the durable end), with
 * long-poll (max_wait_ms / min_bytes), the response and partition byte limits (KIP-74: the
 * first batch is returned even when larger, so a consumer can always make progress),
 * down-conversion to message format 0/1 for Fetch v0-3, and incremental fetch sessions
 * (KIP-227) as Java clients use them.
 *
 * Sessions: epoch 0 opens a session (its partitions are remembered), epoch N>0 sends only
 * changes, and the reply carries only partitions with records or with changed offsets or
 * errors; epoch -1 closes it. The number of sessions is bounded: the least recently used
 * one is evicted, and its client gets FETCH_SESSION_ID_NOT_FOUND and starts again. */
#include <stdio.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/logging.h"
#include "kafka/handlers.h"
#include "kafka/legacy.h"

#define MAX_SESSIONS 1000
#define SCRATCH_KEEP ((size_t)64 << 20) /* larger read buffers are not kept */

typedef struct sess_part {
    char *topic;
    uint8_t topic_id[16];
    int32_t partition;
    int64_t fetch_offset;
    int32_t max_bytes;
    int64_t last_hw, last_log_start; /* as last sent, to detect changes */
    bool sent_once;
} sess_part_t;

typedef struct ck_fetch_session {
    struct ck_fetch_session *next;
    int32_t id, epoch; /* epoch expected next */
    sess_part_t *parts;
    int nparts, cap;
    int64_t last_used_ms;
} fetch_session_t;

/* One partition to read in this request. */
typedef struct item {
    ck_slice_t topic;
    uint8_t topic_id[16];
    int32_t partition;
    int64_t offset;
    int32_t max_bytes;
    bool in_session; /* found again by name at reply time: the session may have changed */
} item_t;

typedef struct fetch_state {
    item_t *items;
    int nitems;
    int32_t min_bytes, max_bytes;
    bool incremental;
    int32_t session_id;
    int16_t top_error;
    bool by_id;
} fetch_state_t;

typedef __typeof__(((ck_kafka_fetch_response_t *)0)->responses.items[0]) tresp_t;
typedef __typeof__(((tresp_t *)0)->partitions.items[0]) presp_t;

/* ---- sessions ---- */

static void sess_free(fetch_session_t *s)
{
    for (int i = 0; i < s->nparts; i++)
        ck_free(s->parts[i].topic);
    ck_free(s->parts);
    ck_free(s);
}

void ck__fetch_sessions_free(ck_broker_t *b)
{
    while (b->sessions) {
        fetch_session_t *s = b->sessions;
        b->sessions = s->next;
        sess_free(s);
    }
}

static fetch_session_t *sess_find(ck_broker_t *b, int32_t id)
{
    for (fetch_session_t *s = b->sessions; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static void sess_remove(ck_broker_t *b, fetch_session_t *s)
{
    for (fetch_session_t **pp = &b->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            sess_free(s);
            return;
        }
}

static fetch_session_t *sess_new(ck_broker_t *b)
{
    int n = 0;
    fetch_session_t *lru = NULL;
    for (fetch_session_t *s = b->sessions; s; s = s->next, n++)
        if (!lru || s->last_used_ms < lru->last_used_ms)
            lru = s;
    if (n >= MAX_SESSIONS && lru)
        sess_remove(b, lru);
    fetch_session_t *s = ck_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    do {
        s->id = b->next_session_id++;
        if (b->next_session_id <= 0)
            b->next_session_id = 1;
    } while (sess_find(b, s->id));
    s->epoch = 1;
    s->next = b->sessions;
    b->sessions = s;
    return s;
}

static sess_part_t *sess_part(fetch_session_t *s, ck_slice_t topic, const uint8_t *id, bool by_id,
                              int32_t partition, bool create)
{
    for (int i = 0; i < s->nparts; i++) {
        sess_part_t *p = &s->parts[i];
        if (p->partition != partition)
            continue;
        if (by_id ? memcmp(p->topic_id, id, 16) == 0 : ck_slice_eq_cstr(topic, p->topic))
            return p;
    }
    if (!create)
        return NULL;
    if (s->nparts == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        sess_part_t *np = ck_realloc(s->parts, (size_t)cap * sizeof(*np));
        if (!np)
            return NULL;
        s->parts = np;
        s->cap = cap;
    }
    sess_part_t *p = &s->parts[s->nparts];
    memset(p, 0, sizeof(*p));
    p->topic = ck_strndup(topic.len > 0 ? (const char *)topic.ptr : "", topic.len > 0 ? (size_t)topic.len : 0);
    if (!p->topic)
        return NULL;
    memcpy(p->topic_id, id, 16);
    p->partition = partition;
    p->last_hw = -1;
    s->nparts++;
    return p;
}

static void sess_forget(fetch_session_t *s, ck_slice_t topic, const uint8_t *id, bool by_id, int32_t partition)
{
    sess_part_t *p = sess_part(s, topic, id, by_id, partition, false);
    if (!p)
        return;
    ck_free(p->topic);
    *p = s->parts[--s->nparts];
}

/* ---- reading ---- */

static ck_topic_t *item_topic(ck_broker_t *b, const fetch_state_t *st, const item_t *it)
{
    if (st->by_id)
        return ck_topics_by_id(b->topics, it->topic_id);
    return ck_topics_get(b->topics, (const char *)it->topic.ptr, it->topic.len);
}

/* Reads every item into *data; fills per-item byte ranges. Returns total bytes. */
typedef struct read_result {
    int16_t error;
    int64_t hw, log_start;
    size_t off, len;
} read_result_t;

static size_t read_all(ck_broker_t *b, ck_kreq_t *req, fetch_state_t *st, ck_wbuf_t *data,
                       read_result_t *res)
{
    size_t total = 0;
    int magic = req->api_version <= 1 ? 0 : (req->api_version <= 3 ? 1 : 2);
    ck_wbuf_t tmp = CK_WBUF_INIT;
    for (int i = 0; i < st->nitems; i++) {
        item_t *it = &st->items[i];
        read_result_t *rr = &res[i];
        memset(rr, 0, sizeof(*rr));
        rr->hw = -1;
        rr->log_start = -1;
        ck_topic_t *t = item_topic(b, st, it);
        if (!t || it->partition < 0 || it->partition >= t->npart) {
            rr->error = st->by_id && !t ? KERR_UNKNOWN_TOPIC_ID : KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        ck_partition_t *p = t->parts[it->partition];
        rr->hw = ck_partition_durable_end(p);
        rr->log_start = ck_partition_log_start(p);
        if (it->offset < rr->log_start || it->offset > ck_partition_log_end(p)) {
            rr->error = KERR_OFFSET_OUT_OF_RANGE;
            continue;
        }
        if (it->offset >= rr->hw || it->max_bytes <= 0)
            continue;
        size_t room = st->max_bytes > 0 && (size_t)st->max_bytes > total ? (size_t)st->max_bytes - total : 0;
        size_t limit = (size_t)it->max_bytes < room ? (size_t)it->max_bytes : room;
        bool min_one = total == 0; /* KIP-74: the first non-empty partition always progresses */
        if (limit == 0 && !min_one)
            continue;
        rr->off = data->len;
        int64_t n;
        if (magic == 2) {
            n = ck_partition_read(p, it->offset, rr->hw, limit, min_one, data);
        } else {
            ck_wbuf_reset(&tmp);
            n = ck_partition_read(p, it->offset, rr->hw, limit, min_one, &tmp);
            if (n > 0) {
                /* clients skip records below their fetch offset, as with v2 batches */
                int rc = ck_legacy_from_v2(tmp.data, tmp.len, magic, data, limit ? limit : 1);
                n = rc < 0 ? rc : (int64_t)(data->len - rr->off);
            }
        }
        if (n > 0)
            b->fetched_bytes += (uint64_t)n;
        if (n < 0) {
            rr->error = n == CK_ERANGE ? KERR_OFFSET_OUT_OF_RANGE : KERR_KAFKA_STORAGE_ERROR;
            data->len = rr->off;
            continue;
        }
        rr->len = (size_t)n;
        total += (size_t)n;
    }
    ck_wbuf_free(&tmp);
    return total;
}

static int build_response(ck_broker_t *b, ck_kreq_t *req, fetch_state_t *st, ck_wbuf_t *data,
                          read_result_t *res)
{
    ck_kafka_fetch_response_t resp;
    ck_kafka_fetch_response_init(&resp);
    resp.error_code = st->top_error;
    resp.session_id = st->session_id;
    /* group items by topic, in request order; incremental sessions send only changes */
    int ntopics = 0;
    int *topic_of = ck_arena_alloc(&req->arena, sizeof(int) * (size_t)(st->nitems ? st->nitems : 1));
    bool *include = ck_arena_calloc(&req->arena, sizeof(bool) * (size_t)(st->nitems ? st->nitems : 1));
    sess_part_t **sps = ck_arena_calloc(&req->arena, sizeof(*sps) * (size_t)(st->nitems ? st->nitems : 1));
    if (!topic_of || !include || !sps)
        return -1;
    fetch_session_t *sess = st->session_id ? sess_find(b, st->session_id) : NULL;
    for (int i = 0; i < st->nitems; i++) {
        item_t *it = &st->items[i];
        read_result_t *rr = &res[i];
        include[i] = true;
        sess_part_t *sp = sps[i] = (sess && it->in_session)
            ? sess_part(sess, it->topic, it->topic_id, st->by_id, it->partition, false) : NULL;
        if (st->incremental && sp && sp->sent_once && rr->len == 0 && rr->error == 0 &&
            rr->hw == sp->last_hw && rr->log_start == sp->last_log_start)
            include[i] = false;
        topic_of[i] = -1;
        if (!include[i])
            continue;
        for (int j = 0; j < i; j++)
            if (include[j] && st->items[j].partition >= 0 &&
                (st->by_id ? memcmp(st->items[j].topic_id, it->topic_id, 16) == 0
                           : ck_slice_eq(st->items[j].topic, it->topic))) {
                topic_of[i] = topic_of[j];
                break;
            }
        if (topic_of[i] < 0)
            topic_of[i] = ntopics++;
    }
    if (CK_ARRAY_ALLOC(req, resp.responses, ntopics))
        return -1;
    int *counts = ck_arena_calloc(&req->arena, sizeof(int) * (size_t)(ntopics ? ntopics : 1));
    if (!counts)
        return -1;
    for (int i = 0; i < st->nitems; i++)
        if (include[i])
            counts[topic_of[i]]++;
    for (int t = 0; t < ntopics; t++) {
        tresp_t *tr = &resp.responses.items[t];
        ck_kafka_fetch_response_fetchable_topic_response_init(tr);
        if (CK_ARRAY_ALLOC(req, tr->partitions, counts[t]))
            return -1;
        tr->partitions.count = 0;
    }
    for (int i = 0; i < st->nitems; i++) {
        if (!include[i])
            continue;
        item_t *it = &st->items[i];
        read_result_t *rr = &res[i];
        tresp_t *tr = &resp.responses.items[topic_of[i]];
        tr->topic = it->topic;
        memcpy(tr->topic_id.b, it->topic_id, 16);
        presp_t *pr = &tr->partitions.items[tr->partitions.count++];
        ck_kafka_fetch_response_partition_data_init(pr);
        pr->partition_index = it->partition;
        pr->error_code = rr->error;
        pr->high_watermark = rr->hw;
        pr->last_stable_offset = rr->hw;
        pr->log_start_offset = rr->log_start;
        pr->aborted_transactions.count = 0; /* no transactions yet: none aborted */
        pr->records = rr->len ? ck_slice(data->data + rr->off, rr->len) : ck_slice("", 0);
        if (sps[i]) {
            sps[i]->sent_once = true;
            sps[i]->last_hw = rr->hw;
            sps[i]->last_log_start = rr->log_start;
        }
    }
    /* the records go out by reference from the read buffer, which the request now owns */
    ck__kreq_reserve(b, req, 256 + 96 * (size_t)st->nitems);
    ck__kreq_records_by_reference(req, true);
    ck_kafka_fetch_response_encode(&req->resp, req->api_version, &resp);
    ck__kreq_records_by_reference(req, false);
    req->data = *data;
    *data = CK_WBUF_INIT;
    return 0;
}

static int fetch_attempt(ck_broker_t *b, ck_kreq_t *req, bool final)
{
    fetch_state_t *st = req->state;
    read_result_t *res = ck_arena_calloc(&req->arena, sizeof(*res) * (size_t)(st->nitems ? st->nitems : 1));
    if (!res)
        return CK_H_CLOSE;
    /* the broker's scratch buffer: its pages stay mapped from one fetch to the next */
    ck_wbuf_t data = b->scratch;
    b->scratch = CK_WBUF_INIT;
    ck_wbuf_reset(&data);
    size_t total = read_all(b, req, st, &data, res);
    bool errors = false;
    for (int i = 0; i < st->nitems; i++)
        errors |= res[i].error != 0;
    int rc;
    if (!final && total < (size_t)(st->min_bytes > 0 ? st->min_bytes : 1) && !errors && !st->top_error) {
        rc = CK_H_DEFER;
    } else if (data.err) {
        rc = CK_H_CLOSE;
    } else {
        b->fetch_requests++;
        rc = req->conn && build_response(b, req, st, &data, res) ? CK_H_CLOSE : CK_H_DONE;
    }
    /* the buffer goes back unless the reply took it (then req_free returns it) */
    if (data.cap && data.cap <= SCRATCH_KEEP)
        b->scratch = data;
    else
        ck_wbuf_free(&data);
    return rc;
}

static int fetch_resume(ck_broker_t *b, ck_kreq_t *req, bool timed_out)
{
    if (!req->conn)
        return CK_H_DONE;
    return fetch_attempt(b, req, timed_out);
}

int ck__h_fetch(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_fetch_request_t rq;
    ck_kafka_fetch_request_init(&rq);
    if (ck_kafka_fetch_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    fetch_state_t *st = ck_arena_calloc(&req->arena, sizeof(*st));
    if (!st)
        return CK_H_CLOSE;
    req->state = st;
    st->min_bytes = rq.min_bytes;
    st->max_bytes = req->api_version >= 3 ? rq.max_bytes : 0x7fffffff;
    st->by_id = req->api_version >= 13;
    int64_t now = ck_mono_ms();

    fetch_session_t *sess = NULL;
    if (req->api_version >= 7) {
        if (rq.session_epoch == -1) {
            if (rq.session_id != 0 && (sess = sess_find(b, rq.session_id)))
                sess_remove(b, sess);
            sess = NULL;
        } else if (rq.session_epoch == 0) {
            if (rq.session_id != 0 && (sess = sess_find(b, rq.session_id)))
                sess_remove(b, sess);
            sess = sess_new(b);
            if (!sess)
                return CK_H_CLOSE;
            st->session_id = sess->id;
        } else {
            sess = sess_find(b, rq.session_id);
            if (!sess) {
                st->top_error = KERR_FETCH_SESSION_ID_NOT_FOUND;
            } else if (sess->epoch != rq.session_epoch) {
                st->top_error = KERR_INVALID_FETCH_SESSION_EPOCH;
                sess = NULL;
            } else {
                st->incremental = true;
                st->session_id = sess->id;
            }
        }
    }
    if (st->top_error) {
        /* no partitions, just the error */
        ck_kafka_fetch_response_t resp;
        ck_kafka_fetch_response_init(&resp);
        resp.error_code = st->top_error;
        resp.responses.count = 0;
        ck_kafka_fetch_response_encode(&req->resp, req->api_version, &resp);
        return CK_H_DONE;
    }
    if (sess) {
        sess->last_used_ms = now;
        if (rq.session_epoch > 0 || rq.session_epoch == 0)
            sess->epoch = rq.session_epoch + 1 > 0 ? rq.session_epoch + 1 : 1;
        for (int i = 0; i < rq.forgotten_topics_data.count; i++) {
            __typeof__(rq.forgotten_topics_data.items[0]) *ft = &rq.forgotten_topics_data.items[i];
            for (int j = 0; j < ft->partitions.count; j++)
                sess_forget(sess, ft->topic, ft->topic_id.b, st->by_id, ft->partitions.items[j]);
        }
    }
    int n = 0;
    for (int i = 0; i < rq.topics.count; i++)
        n += rq.topics.items[i].partitions.count > 0 ? rq.topics.items[i].partitions.count : 0;
    if (sess)
        n += sess->nparts;
    st->items = ck_arena_calloc(&req->arena, sizeof(item_t) * (size_t)(n ? n : 1));
    if (!st->items)
        return CK_H_CLOSE;
    for (int i = 0; i < rq.topics.count; i++) {
        __typeof__(rq.topics.items[0]) *ft = &rq.topics.items[i];
        ck_slice_t tname = ft->topic;
        if (st->by_id) {
            ck_topic_t *t = ck_topics_by_id(b->topics, ft->topic_id.b);
            tname = t ? ck__str(t->name) : ck_slice("", 0);
        }
        for (int j = 0; j < ft->partitions.count; j++) {
            __typeof__(ft->partitions.items[0]) *fp = &ft->partitions.items[j];
            if (sess) {
                sess_part_t *sp = sess_part(sess, tname, ft->topic_id.b, st->by_id, fp->partition, true);
                if (!sp)
                    return CK_H_CLOSE;
                sp->fetch_offset = fp->fetch_offset;
                sp->max_bytes = fp->partition_max_bytes;
                sp->sent_once = false; /* changed partitions are always answered */
                continue;
            }
            item_t *it = &st->items[st->nitems++];
            it->topic = ck_slice(ck__cstr(req, tname), tname.len > 0 ? (size_t)tname.len : 0);
            memcpy(it->topic_id, ft->topic_id.b, 16);
            it->partition = fp->partition;
            it->offset = fp->fetch_offset;
            it->max_bytes = fp->partition_max_bytes;
        }
    }
    if (sess) {
        for (int i = 0; i < sess->nparts; i++) {
            sess_part_t *sp = &sess->parts[i];
            item_t *it = &st->items[st->nitems++];
            it->topic = ck__str(ck__cstr(req, ck__str(sp->topic)));
            memcpy(it->topic_id, sp->topic_id, 16);
            it->partition = sp->partition;
            it->offset = sp->fetch_offset;
            it->max_bytes = sp->max_bytes;
            it->in_session = true;
        }
    }
    int rc = fetch_attempt(b, req, rq.max_wait_ms <= 0);
    if (rc == CK_H_DEFER)
        ck__kreq_wait(b, req, fetch_resume, now + rq.max_wait_ms);
    return rc;
}
