/* InitProducerId for idempotent producers (KIP-98), with KIP-360 re-initialisation.
 *
 * Transactions are not implemented yet: a non-null transactional id is refused with
 * TRANSACTIONAL_ID_AUTHORIZATION_FAILED (as Produce refuses transactional batches); the
 * transaction coordinator will answer those requests when it exists.
 *
 * Without a transactional id: a fresh producer id from the durable allocator, epoch 0.
 * v3+ may name the producer's current (id, epoch) to have the epoch bumped (the producer
 * resets its sequences after an error): same id, epoch + 1 when the given epoch is the
 * newest the broker knows (or newer: the broker may have forgotten the epoch it handed
 * out if no batch carried it before a restart); a fresh id when the broker knows nothing
 * of the id or the epoch would reach 32767; PRODUCER_FENCED (v4+) or
 * INVALID_PRODUCER_EPOCH for an older epoch. */
#include "core/logging.h"
#include "kafka/handlers.h"
#include "kafka/idempotence.h"
#include "txn/pid.h"

static int16_t new_id(ck_broker_t *b, int64_t *pid)
{
    int rc = ck_pid_next(b->pids, pid);
    if (rc) {
        CK_WARN("kafka", "cannot hand out a producer id: %s", ck_strerror(rc));
        return KERR_UNKNOWN_SERVER_ERROR;
    }
    return 0;
}

int ck__h_init_producer_id(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r)
{
    ck_kafka_init_producer_id_request_t rq;
    ck_kafka_init_producer_id_request_init(&rq);
    if (ck_kafka_init_producer_id_request_decode(r, req->api_version, &req->arena, &rq) != 0)
        return CK_H_CLOSE;
    ck_kafka_init_producer_id_response_t resp;
    ck_kafka_init_producer_id_response_init(&resp);
    resp.producer_id = -1;
    resp.producer_epoch = -1;
    int64_t pid = -1;
    int16_t epoch = 0;
    if (rq.transactional_id.len >= 0) {
        resp.error_code = KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED; /* no transactions yet */
    } else if (!b->pids || !b->idem) {
        resp.error_code = KERR_COORDINATOR_NOT_AVAILABLE;
    } else if ((rq.producer_id >= 0) != (rq.producer_epoch >= 0)) {
        resp.error_code = KERR_INVALID_REQUEST; /* both set or both -1 */
    } else if (rq.producer_id >= 0) {
        int16_t known;
        if (!ck__idem_known_epoch(b, rq.producer_id, &known)) {
            resp.error_code = new_id(b, &pid);
        } else if (rq.producer_epoch < known) {
            resp.error_code =
                req->api_version >= 4 ? KERR_PRODUCER_FENCED : KERR_INVALID_PRODUCER_EPOCH;
        } else if (rq.producer_epoch >= INT16_MAX - 1) {
            resp.error_code = new_id(b, &pid); /* epoch exhausted */
        } else {
            pid = rq.producer_id;
            epoch = (int16_t)(rq.producer_epoch + 1);
        }
    } else {
        resp.error_code = new_id(b, &pid);
    }
    if (resp.error_code == 0) {
        resp.producer_id = pid;
        resp.producer_epoch = epoch;
        ck__idem_issued(b, pid, epoch);
    }
    ck_kafka_init_producer_id_response_encode(&req->resp, req->api_version, &resp);
    return CK_H_DONE;
}
