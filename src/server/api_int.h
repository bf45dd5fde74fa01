/* Internals shared by the API's route files (api.c, search_api.c). */
#ifndef CK_SERVER_API_INT_H
#define CK_SERVER_API_INT_H

#include <pthread.h>
#include <stdbool.h>

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
    pthread_cond_t cv;
    call_t *head, *tail;
    bool closed;
    pthread_mutex_t pmu;
    duckdb_connection pool[POOL_MAX];
    int npool;
};

/* Runs fn(a, arg) on the loop thread and waits for it. CK_ECLOSED when shutting down. */
int ck__api_loop_call(ck_api_t *a, void (*fn)(ck_api_t *, void *), void *arg);

/* Registers the search routes (/_search, /{index}/_search, REST indexes). */
int ck__search_routes(ck_api_t *a, ck_http_t *http);
/* Frees what the search routes hold (after the HTTP server stopped). */
void ck__search_routes_free(ck_api_t *a);

#endif
