/* Produce: validate, convert old message formats, check idempotent producers' sequences,
 * append, and reply once the data is durable (acks=1 and acks=-1 wait for the flusher's
 * fsync; acks=0 gets no reply).
 *
 * Idempotence (KIP-98, docs/PRODUCER_STATE.md): batches with a producer id are checked
 * against the partition's producer state before anything is appended, all batches of the
 * partition together (all or nothing, later batches checked against the earlier ones of
 * the same request). A duplicate is not written again: the reply carries the original's
 * offsets, after waiting like an append if the original is not durable yet.
 *
 * Nothing but validation and the append happens here: parsing of values, indexing and
 * so on belong to the indexer (ARCHITECTURE.md, principle 2). */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/logging.h"
#include "kafka/handlers.h"
#include "kafka/idempotence.h"
#include "kafka/legacy.h"
#include "log/batch.h"

#define MAX_LEGACY_DECOMPRESSED (256u << 20)

typedef __typeof__(((ck_kafka_produce_response_t *)0)->responses.items[0].partition_responses.items[0]) presp_t;

/* One partition that waits for its data to become durable. */
typedef struct pending {
    uint8_t topic_id[16]; /* the topic may be deleted (and re-created) while we wait */
    char *topic_name;
    int32_t partition;
    int64_t last_offset;
    presp_t *out;
} pending_t;

typedef struct produce_state {
    ck_kafka_produce_response_t resp;
    pending_t *pend;
    int npend;
} produce_state_t;

static ck_partition_t *lookup(ck_broker_t *b, pending_t *p)
{
    ck_topic_t *t = ck_topics_get(b->topics, p->topic_name, -1);
    if (!t || memcmp(t->id, p->topic_id, 16) != 0 || p->partition >= t->npart)
        return NULL;
    return t->parts[p->partition];
}

static int produce_resume(ck_broker_t *b, ck_kreq_t *req, bool timed_out)
{
    produce_state_t *st = req->state;
    int left = 0;
    for (int i = 0; i < st->npend; i++) {
        pending_t *p = &st->pend[i];
        if (!p->out)
            continue;
        ck_partition_t *part = lookup(b, p);
        if (!part) {
            p->out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            p->out->base_offset = -1;
            p->out = NULL;
        } else if (ck_partition_durable_end(part) > p->last_offset) {
            p->out = NULL; /* durable: the reply already holds its offset */
        } else if (ck_partition_error(part)) {
            p->out->error_code = KERR_KAFKA_STORAGE_ERROR;
            p->out->error_message = ck__str("The partition cannot write to disk");
            p->out->base_offset = -1;
            p->out = NULL;
        } else if (timed_out) {
            p->out->error_code = KERR_REQUEST_TIMED_OUT;
            p->out->base_offset = -1;
            p->out = NULL;
        } else {
            left++;
        }
    }
    if (left)
        return CK_H_DEFER;
    if (req->conn)
        ck_kafka_produce_response_encode(&req->resp, req->api_version, &st->resp);
    return CK_H_DONE;
}

static int16_t map_validate_error(int rc)
{
    switch (rc) {
    case CK_ECORRUPT:
    case CK_ETRUNC: return KERR_CORRUPT_MESSAGE;
    case CK_ETOOBIG: return KERR_MESSAGE_TOO_LARGE;
    case CK_EUNSUP: return KERR_UNSUPPORTED_COMPRESSION_TYPE;
    case CK_ENOMEM: return KERR_UNKNOWN_SERVER_ERROR;
    default: return KERR_INVALID_RECORD;
    }
}

/* The newest batch of one producer earlier in the same request. */
typedef struct seen {
    int64_t pid;
    int16_t epoch;
    int32_t last_seq;
} seen_t;

static bool has_producer_ids(const uint8_t *data, size_t len)
{
    for (size_t pos = 0; pos + CK_BATCH_HEADER_SIZE <= len;) {
        ck_batch_header_t h;
        ck_batch_header_parse(data + pos, &h);
        if (h.producer_id >= 0)
            return true;
        pos += (size_t)h.batch_length + 12;
    }
    return false;
}

/* Checks every idempotent batch of one partition's validated records against state s.
 * Returns a Kafka error (nothing may be appended), or 0 with *all_dup set when every batch
 * is a duplicate (then *dup spans them: first batch's offsets to last batch's last). */
static int16_t check_sequences(ck_kreq_t *req, const ck_pstate_t *s, const uint8_t *data,
                               size_t len, int nbatches, presp_t *out, bool *all_dup,
                               ck_pstate_dup_t *dup)
{
    seen_t one, *seen = &one;
    if (nbatches > 1)
        seen = ck_arena_alloc(&req->arena, sizeof(*seen) * (size_t)nbatches);
    if (!seen)
        return KERR_UNKNOWN_SERVER_ERROR;
    int nseen = 0, ndup = 0, n = 0;
    for (size_t pos = 0; pos + CK_BATCH_HEADER_SIZE <= len; n++) {
        ck_batch_header_t h;
        ck_batch_header_parse(data + pos, &h);
        pos += (size_t)h.batch_length + 12;
        if (h.producer_id < 0)
            continue;
        int32_t first = h.base_sequence, last = ck_pstate_seq_add(first, h.last_offset_delta);
        seen_t *k = NULL;
        for (int i = 0; i < nseen && !k; i++)
            if (seen[i].pid == h.producer_id)
                k = &seen[i];
        ck_pstate_verdict_t v;
        ck_pstate_dup_t d = {-1, -1, -1};
        if (!k)
            v = ck_pstate_check(s, h.producer_id, h.producer_epoch, first, last, &d);
        else if (h.producer_epoch < k->epoch)
            v = CK_PSTATE_STALE_EPOCH;
        else if (h.producer_epoch > k->epoch)
            v = first == 0 ? CK_PSTATE_APPEND : CK_PSTATE_OUT_OF_ORDER;
        else
            v = first == ck_pstate_seq_add(k->last_seq, 1) ? CK_PSTATE_APPEND
                                                           : CK_PSTATE_OUT_OF_ORDER;
        char m[200];
        switch (v) {
        case CK_PSTATE_DUPLICATE:
            if (ndup++ == 0)
                *dup = d;
            else
                dup->last_offset = d.last_offset;
            break;
        case CK_PSTATE_OUT_OF_ORDER:
            snprintf(m, sizeof(m), "Out of order sequence number for producer %lld (epoch %d): %d",
                     (long long)h.producer_id, (int)h.producer_epoch, (int)first);
            out->error_message = ck__strdup(req, m);
            return KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
        case CK_PSTATE_STALE_EPOCH:
            snprintf(m, sizeof(m), "Producer %lld: epoch %d is older than the current one",
                     (long long)h.producer_id, (int)h.producer_epoch);
            out->error_message = ck__strdup(req, m);
            return KERR_INVALID_PRODUCER_EPOCH;
        case CK_PSTATE_APPEND:
            if (!k)
                k = &seen[nseen++];
            *k = (seen_t){h.producer_id, h.producer_epoch, last};
            break;
        }
    }
    *all_dup = ndup > 0 && ndup == n;
    if (ndup > 0 && ndup != n) {
        /* Kafka clients never mix them (v3+ sends one batch per partition) */
        out->error_message = ck__str("Duplicate and new batches in one produce request");
        return KERR_INVALID_RECORD;
    }
    return 0;
}

/* Validates and appends one partition's records. Returns the Kafka error code. */
static int16_t append_partition(ck_broker_t *b, ck_kreq_t *req, ck_topic_t *t, int32_t pidx,
                                ck_slice_t records, presp_t *out, int64_t *last_offset)
{
    if (records.len <= 0) {
        out->error_message = ck__str("Produce request with no records");
        return KERR_INVALID_RECORD;
    }
    uint8_t *data = (uint8_t *)records.ptr; /* points into the request frame, which we own */
    size_t len = (size_t)records.len;
    int magic = ck_legacy_detect_magic(data, len);
    if (magic < 0)
        return KERR_CORRUPT_MESSAGE;
    ck_wbuf_t conv = CK_WBUF_INIT;
    if (magic < 2) {
        int rc = ck_legacy_to_v2(data, len, ck_wall_ms(), &conv, MAX_LEGACY_DECOMPRESSED);
        if (rc) {
            ck_wbuf_free(&conv);
            CK_DEBUG("kafka", "message set v%d conversion failed: %s", magic, ck_strerror(rc));
            return map_validate_error(rc);
        }
        data = conv.data;
        len = conv.len;
    }
    ck_batch_info_t info;
    int rc = ck_batch_validate(data, len, &info);
    int16_t err = 0;
    if (rc) {
        err = map_validate_error(rc);
        if (err == KERR_INVALID_RECORD)
            out->error_message = ck__str("Invalid record batch");
    } else if (info.record_count < info.batch_count) {
        err = KERR_INVALID_RECORD; /* an empty batch would occupy no offset */
        out->error_message = ck__str("Record batch with no records");
    } else if (info.max_batch_size > (size_t)t->max_message_bytes) {
        err = KERR_MESSAGE_TOO_LARGE;
        char m[160];
        snprintf(m, sizeof(m), "The batch of %zu bytes is larger than max.message.bytes (%d)",
                 info.max_batch_size, t->max_message_bytes);
        out->error_message = ck__strdup(req, m);
    } else if (info.has_transactional || info.has_control) {
        err = KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        out->error_message = ck__str("Transactions are not supported yet");
    }
    ck__idem_part_t *ip = NULL;
    bool all_dup = false;
    ck_pstate_dup_t dup = {-1, -1, -1};
    if (!err && b->idem && has_producer_ids(data, len)) {
        ip = ck__idem_part(b, t, pidx);
        if (!ip) {
            err = KERR_KAFKA_STORAGE_ERROR;
            out->error_message = ck__str("Producer state unavailable (out of memory)");
        } else {
            err = check_sequences(req, ip->ip_state, data, len, info.batch_count, out, &all_dup,
                                  &dup);
        }
    }
    if (!err && all_dup) {
        out->base_offset = dup.first_offset;
        out->log_append_time_ms = t->log_append_time ? dup.timestamp : -1;
        out->log_start_offset = ck_partition_log_start(t->parts[pidx]);
        *last_offset = dup.last_offset; /* the reply waits until the original is durable */
    } else if (!err) {
        int64_t now = ck_wall_ms();
        int64_t base = -1, last = -1;
        rc = ck_partition_append(t->parts[pidx], data, len, t->log_append_time ? now : -1, &base, &last);
        if (rc) {
            err = KERR_KAFKA_STORAGE_ERROR;
            out->error_message = ck__str("The partition cannot write to disk");
        } else {
            out->base_offset = base;
            b->produced_bytes += len;
            b->produced_records += (uint64_t)(last - base + 1);
            out->log_append_time_ms = t->log_append_time ? now : -1;
            out->log_start_offset = ck_partition_log_start(t->parts[pidx]);
            *last_offset = last;
            if (ip) {
                /* the batches now carry their offsets (and LogAppendTime): as stored */
                int urc = ck_pstate_update_from_batches(ip->ip_state, data, len);
                ip->ip_dirty = true;
                if (urc)
                    CK_WARN("kafka", "%s-%d: producer state not updated: %s", t->name, (int)pidx,
                            ck_strerror(urc));
            }
        }
    }
    ck_wbuf_free(&conv);
    return err;
}

int ck__h_produce(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_produce_request_t rq;
    ck_kafka_produce_request_init(&rq);
    if (ck_kafka_produce_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    b->produce_requests++;
    produce_state_t *st = ck_arena_calloc(&req->arena, sizeof(*st));
    if (!st)
        return CK_H_CLOSE;
    ck_kafka_produce_response_init(&st->resp);
    int total = 0;
    for (int i = 0; i < rq.topic_data.count; i++)
        total += rq.topic_data.items[i].partition_data.count > 0 ? rq.topic_data.items[i].partition_data.count : 0;
    st->pend = ck_arena_calloc(&req->arena, sizeof(pending_t) * (size_t)(total ? total : 1));
    if (!st->pend || CK_ARRAY_ALLOC(req, st->resp.responses, rq.topic_data.count))
        return CK_H_CLOSE;
    bool bad_acks = rq.acks != 0 && rq.acks != 1 && rq.acks != -1;
    bool txn = rq.transactional_id.len >= 0;
    for (int i = 0; i < rq.topic_data.count; i++) {
        __typeof__(rq.topic_data.items[0]) *td = &rq.topic_data.items[i];
        __typeof__(st->resp.responses.items[0]) *tr = &st->resp.responses.items[i];
        ck_kafka_produce_response_topic_produce_response_init(tr);
        tr->name = td->name;
        if (CK_ARRAY_ALLOC(req, tr->partition_responses, td->partition_data.count))
            return CK_H_CLOSE;
        int16_t terr = 0;
        ck_topic_t *t = (bad_acks || txn) ? NULL : ck__broker_topic(b, td->name, true, &terr);
        for (int j = 0; j < td->partition_data.count; j++) {
            __typeof__(td->partition_data.items[0]) *pd = &td->partition_data.items[j];
            presp_t *pr = &tr->partition_responses.items[j];
            ck_kafka_produce_response_partition_produce_response_init(pr);
            pr->index = pd->index;
            pr->base_offset = -1;
            if (bad_acks) {
                pr->error_code = KERR_INVALID_REQUIRED_ACKS;
                continue;
            }
            if (txn) {
                pr->error_code = KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
                pr->error_message = ck__str("Transactions are not supported yet");
                continue;
            }
            if (!t || pd->index < 0 || pd->index >= t->npart) {
                pr->error_code = t ? KERR_UNKNOWN_TOPIC_OR_PARTITION : terr;
                continue;
            }
            int64_t last = -1;
            pr->error_code = append_partition(b, req, t, pd->index, pd->records, pr, &last);
            if (pr->error_code == 0) {
                pending_t *p = &st->pend[st->npend++];
                memcpy(p->topic_id, t->id, 16);
                p->topic_name = t->name; /* valid while the topic exists; lookup() checks */
                p->partition = pd->index;
                p->last_offset = last;
                p->out = pr;
            }
        }
    }
    /* topic names must outlive a topic delete while we wait */
    for (int i = 0; i < st->npend; i++)
        st->pend[i].topic_name = ck__cstr(req, ck__str(st->pend[i].topic_name));
    if (rq.acks == 0)
        return CK_H_NORESP; /* the next flusher round makes it durable */
    req->state = st;
    int rc = produce_resume(b, req, false);
    if (rc == CK_H_DEFER) {
        int64_t timeout = rq.timeout_ms > 0 ? rq.timeout_ms : 30000;
        if (timeout < 1000)
            timeout = 1000; /* an fsync round must get its chance */
        ck__kreq_wait(b, req, produce_resume, ck_mono_ms() + timeout);
    }
    return rc;
}
