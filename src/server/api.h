/* The unified HTTP API (port 6092): health, metrics, topics and SQL routes, wired to the
 * broker's state. HTTP handlers run on the HTTP server's threads; whatever touches the
 * topics or the broker (owned by the event loop) runs on the loop through ck_api's call
 * queue, and SQL runs on the handler's thread with its own DuckDB connection. */
#ifndef CK_SERVER_API_H
#define CK_SERVER_API_H

#include <duckdb.h>

#include "columnar/columnar.h"
#include "columnar/sql.h"
#include "index/indexer.h"
#include "kafka/broker.h"
#include "log/log.h"
#include "log/topics.h"
#include "search/restidx.h"
#include "search/sindex.h"
#include "vector/rerank.h"
#include "vector/vindex.h"
#include "net/loop.h"

typedef struct ck_api ck_api_t;

typedef struct ck_api_deps {
    ck_loop_t *loop;
    ck_broker_t *broker;
    ck_topics_t *topics;
    ck_indexer_t *indexer;
    ck_columnar_t *columnar;
    ck_sql_db_t *sql;
    ck_sidx_t *search;
    ck_restidx_set_t *rest; /* REST-created indexes (PUT /{index}) */
    ck_vidx_t *vector;      /* vector indexes of vector.enabled topics */
    ck_log_t *log; /* for _source: records are read from the log (on the loop) */
    int default_partitions;
    int64_t query_timeout_ms; /* default timeout_secs of /_sql */
    const char *data_dir;     /* ranking profiles of /_query in <data_dir>/profiles */
    ck_reranker_config_t reranker; /* "rerank": true (endpoint "" or NULL: none) */
} ck_api_deps_t;

/* Starts the HTTP server on bind:port (loop thread). On error returns nonzero and a message. */
int ck_api_start(const ck_api_deps_t *deps, const char *bind, int port, size_t max_body, ck_api_t **out,
                 int *bound_port, const char **msg);
/* Answers new requests that need the loop with 503 from now on (loop thread). */
void ck_api_close_calls(ck_api_t *api);
/* Stops the server (waits for handlers) and frees it. Loop thread, after close_calls. */
void ck_api_stop(ck_api_t *api);
/* The indexer and HTTP metrics in Prometheus text (loop thread). */
void ck_api_metrics(void *api, ck_wbuf_t *out);

#endif
