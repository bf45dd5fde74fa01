/* Internals shared by the API's route files (api.c, search_api.c). */
#ifndef CK_SERVER_API_INT_H
#define CK_SERVER_API_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "log/batch.h"
#include "server/api.h"

#define POOL_MAX 16

typedef struct call {
    struct call *next;
    void (*fn)(ck_api_t *a, void *arg);
    void *arg;
    bool done;
} call_t;

struct ck_api {
    ck_api_deps_t d;
    ck_http_t *http;
    ck_wakeup_t wk;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast when a call is done or a background thread leaves */
    call_t *head, *tail;
    bool closed;
    int bg; /* background threads of the API still running */
    pthread_mutex_t pmu;
    duckdb_connection pool[POOL_MAX];
    int npool;
};

/* Runs fn(a, arg) on the loop thread and waits for it. CK_ECLOSED when shutting down. */
int ck__api_loop_call(ck_api_t *a, void (*fn)(ck_api_t *, void *), void *arg);

/* A thread of the API's own that may outlive its request (a /_query backend past its
 * deadline) enters before it starts and leaves when it is done; ck_api_stop waits for every
 * one to leave before it frees what they use. Any thread. */
void ck__api_bg_enter(ck_api_t *a);
void ck__api_bg_leave(ck_api_t *a);

/* Registers the search routes (/_search, /{index}/_search, REST indexes). */
int ck__search_routes(ck_api_t *a, ck_http_t *http);
/* Frees what the search routes hold (after the HTTP server stopped). */
void ck__search_routes_free(ck_api_t *a);

/* A BM25 hit of ck__text_search. */
typedef struct ck__text_hit {
    int32_t partition;
    int64_t offset, timestamp;
    double score;
} ck__text_hit_t;
/* The k (at most 10,000) best hits of `query` as a match over every text field (_all) of
 * a searchable topic, best first (*out: ck_free). Returns 0, CK_ENOENT (not a searchable topic), or
 * another error with err set. Any thread. */
int ck__text_search(ck_api_t *a, const char *topic, const char *query, size_t k,
                    ck__text_hit_t **out, size_t *n, char *err, size_t errlen);

/* A record by its place; ck__read_records reads a batch of them. */
typedef struct ck__rec_ref {
    const char *topic;
    int32_t partition;
    int64_t offset;
} ck__rec_ref_t;
/* Reads the records (each batch once, on the loop thread) and calls fn(ctx, i, record) on
 * the calling thread for each refs[i] found; the record is valid during the call. Records
 * gone (retention, compaction) are left out. Returns 0, CK_ECLOSED or CK_ENOMEM. */
int ck__read_records(ck_api_t *a, const ck__rec_ref_t *refs, size_t n,
                     void (*fn)(void *ctx, size_t i, const ck_record_t *r), void *ctx);

/* Registers the vector routes (/_vector/...). */
int ck__vector_routes(ck_api_t *a, ck_http_t *http);
/* A reranker is configured (CHRONIK_RERANKER_ENDPOINT). */
bool ck__reranker_on(const ck_api_t *a);

/* Finishes a best-first array of result objects (each with "topic", "partition",
 * "offset"): with rerank, and a reranker configured and a query text, every entry's text is
 * scored against query (given up at deadline_ms), gets "rerank_score" and the array is
 * re-ordered by it (*reranked true); else, or when the reranker fails, the order stays and
 * warn says why. Then the array is cut to k and each entry gets "text_preview": the first
 * 100 characters of the text its topic embeds (vector.field; else the value's text),
 * none for a record gone. Returns 0, CK_ECLOSED, CK_ENOMEM, CK_EINVAL (an entry lacks its
 * topic). Any thread but the loop's. */
int ck__finish_results(ck_api_t *a, json_t *arr, size_t k, const char *query, bool rerank,
                       int64_t deadline_ms, bool *reranked, char *warn, size_t warnlen);

/* Registers the query orchestrator's routes (/_query...). */
int ck__query_routes(ck_api_t *a, ck_http_t *http);

/* Runs one user SQL query (at most limit rows) on a pooled connection; *rows gets the
 * JSON array of row objects. Returns 0, or an error with err set. Any thread. */
int ck__sql_rows(ck_api_t *a, const char *sql, int64_t limit, int64_t timeout_ms, json_t **rows,
                 char *err, size_t errlen);

#endif
