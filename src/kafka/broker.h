/* The Kafka front end: listeners, connections, request framing and dispatch to the API
 * handlers, deferred replies (produce waiting for fsync, fetch long-polls).
 *
 * Thread: everything runs on the loop thread given to ck_broker_new(). */
#ifndef CK_KAFKA_BROKER_H
#define CK_KAFKA_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "group/offsets.h"
#include "log/log.h"
#include "log/topics.h"
#include "net/loop.h"

typedef struct ck_broker ck_broker_t;

typedef struct ck_broker_config {
    const char *advertised_host; /* host written into Metadata replies */
    int advertised_port;         /* 0 = the port actually bound */
    int32_t node_id;
    const char *cluster_id;
    int64_t max_request_bytes;   /* socket.request.max.bytes (104857600) */
    int64_t idle_ms;             /* connections.max.idle.ms (600000) */
    bool auto_create_topics;     /* auto.create.topics.enable */
    int32_t default_partitions;
    int64_t max_conn_pending_bytes; /* stop reading a connection with this much queued */
    int64_t offsets_retention_ms;   /* offsets.retention.minutes, for groups without members */
} ck_broker_config_t;

void ck_broker_config_default(ck_broker_config_t *c);

int ck_broker_new(ck_loop_t *loop, ck_log_t *log, ck_topics_t *topics, const ck_broker_config_t *cfg,
                  ck_broker_t **out);
/* Starts listening; returns 0 and the bound port in *bound_port, or a CK_E* code with a
 * message in *msg. */
int ck_broker_listen(ck_broker_t *b, const char *host, int port, int *bound_port, const char **msg);
/* Gives the broker the committed-offsets store (owned by the caller, outlives the broker). */
void ck_broker_set_offsets(ck_broker_t *b, ck_offsets_t *offsets);
/* Enables idempotent producers (InitProducerId, sequence checks on Produce) with the
 * producer-id allocator `pids` (the caller's; it must outlive the broker). Call once,
 * before ck_broker_listen: it deletes producer-state snapshots newer than each recovered
 * log end (docs/PRODUCER_STATE.md, recovery step 2) and starts the periodic snapshot
 * timer. Returns 0 or CK_ENOMEM (idempotence then stays off). Loop thread. */
struct ck_pid;
int ck_broker_set_pids(ck_broker_t *b, struct ck_pid *pids);
/* Called on the loop thread after the log's flusher advanced durable offsets. */
void ck_broker_on_durable(ck_broker_t *b);
/* Topics were created or deleted outside the Kafka protocol (HTTP): parked requests
 * re-check the topics they wait on. */
void ck_broker_topics_changed(ck_broker_t *b);
/* Graceful stop, step 1: close listeners and stop reading new requests. */
void ck_broker_stop_accepting(ck_broker_t *b);
/* Number of requests still being processed or waiting to be written. */
int ck_broker_inflight(const ck_broker_t *b);
typedef struct ck_broker_stats {
    uint64_t produce_requests, fetch_requests, bytes_in, bytes_out;
    uint64_t produced_bytes, produced_records, fetched_bytes;
    int connections, inflight;
} ck_broker_stats_t;
void ck_broker_stats(const ck_broker_t *b, ck_broker_stats_t *out);

/* Prometheus histogram chronik_kafka_request_duration_seconds{api=...} of the APIs seen
 * so far. Any thread. */
struct ck_wbuf;
void ck_broker_render_latency(ck_broker_t *b, struct ck_wbuf *out);

/* Closes every connection and frees the broker. */
void ck_broker_free(ck_broker_t *b);

#endif
