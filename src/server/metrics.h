/* The optional metrics listener (CHRONIK_METRICS_PORT): a minimal HTTP/1.1 responder on
 * the event loop for GET /metrics (Prometheus text), /health (text OK) and /ready.
 * Thread: the loop thread. */
#ifndef CK_SERVER_METRICS_H
#define CK_SERVER_METRICS_H

#include "kafka/broker.h"
#include "log/topics.h"
#include "core/buf.h"
#include "net/loop.h"

typedef struct ck_metrics ck_metrics_t;

int ck_metrics_start(ck_loop_t *loop, const char *host, int port, ck_broker_t *b, ck_topics_t *topics,
                     ck_metrics_t **out, const char **msg);
void ck_metrics_stop(ck_metrics_t *m);
/* More lines for /metrics (the indexer, the HTTP API), rendered on the loop thread. */
void ck_metrics_set_extra(ck_metrics_t *m, void (*fn)(void *arg, ck_wbuf_t *out), void *arg);
/* The broker and log metrics in Prometheus text. Loop thread. */
void ck_metrics_render(ck_broker_t *broker, ck_topics_t *topics, ck_wbuf_t *out);

#endif
