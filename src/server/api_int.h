/* Internals shared by the API's route files (api.c, search_api.c). */
#ifndef CK_SERVER_API_INT_H
#define CK_SERVER_API_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
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

/* Registers the vector routes (/_vector/...). */
int ck__vector_routes(ck_api_t *a, ck_http_t *http);
/* Registers the query orchestrator's routes (/_query...). */
int ck__query_routes(ck_api_t *a, ck_http_t *http);

/* Runs one user SQL query (at most limit rows) on a pooled connection; *rows gets the
 * JSON array of row objects. Returns 0, or an error with err set. Any thread. */
int ck__sql_rows(ck_api_t *a, const char *sql, int64_t limit, int64_t timeout_ms, json_t **rows,
                 char *err, size_t errlen);

#endif
