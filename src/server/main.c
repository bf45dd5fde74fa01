/* chronik-server: wires the parts together and owns the process lifecycle.
 *
 * Start: settings → data folder (locked) → log (recovery) → topics → Kafka listener.
 * Stop (SIGTERM/SIGINT): stop accepting and reading new requests, let in-flight requests
 * finish (produce replies wait for their fsync), then close the log, which runs a final
 * fsync of everything, and exit 0. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "columnar/columnar.h"
#include "columnar/sql.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/logging.h"
#include "kafka/broker.h"
#include "group/offsets.h"
#include "index/indexer.h"
#include "log/log.h"
#include "log/topics.h"
#include "net/loop.h"
#include "search/sindex.h"
#include "vector/vindex.h"
#include "server/api.h"
#include "server/config.h"
#include "server/metrics.h"
#include "txn/pid.h"

#define SHUTDOWN_GRACE_MS 10000
#define INDEX_POLL_MS 20

typedef struct server {
    ck_settings_t cfg;
    ck_loop_t *loop;
    ck_log_t *log;
    ck_log_t *glog; /* the internal offsets log */
    ck_offsets_t *offsets;
    ck_pid_t *pids; /* producer-id allocator, <data>/meta */
    ck_topics_t *topics;
    ck_broker_t *broker;
    ck_metrics_t *metrics;
    ck_sql_db_t *sql;
    ck_columnar_t *columnar;
    ck_sidx_t *search;
    ck_vidx_t *vector;
    ck_restidx_set_t *rest;
    ck_indexer_t *indexer;
    ck_api_t *api;
    ck_wakeup_t durable;
    ck_wakeup_t kick; /* an indexer worker wants more data */
    ck_timer_t index_timer;
    ck_watch_t sigw;
    ck_timer_t drain;
    int64_t stop_deadline;
    bool stopping;
} server_t;

static void on_durable_thread(void *arg) { ck_wakeup_signal(arg); }

static void on_durable(ck_wakeup_t *wk)
{
    server_t *s = wk->data;
    if (s->broker)
        ck_broker_on_durable(s->broker);
    if (s->indexer)
        ck_indexer_poll(s->indexer);
}

static void on_kick_thread(void *arg) { ck_wakeup_signal(arg); }

static void on_kick(ck_wakeup_t *wk)
{
    server_t *s = wk->data;
    if (s->indexer)
        ck_indexer_poll(s->indexer);
}

static void on_index_timer(ck_timer_t *t)
{
    server_t *s = t->data;
    ck_indexer_poll(s->indexer);
    ck_timer_start(s->loop, t, ck_mono_ms() + INDEX_POLL_MS);
}

static void drain_check(ck_timer_t *t)
{
    server_t *s = t->data;
    int left = ck_broker_inflight(s->broker);
    if (left == 0 || ck_mono_ms() >= s->stop_deadline) {
        if (left)
            CK_WARN("server", "%d requests still in flight at the end of the grace period", left);
        ck_loop_stop(s->loop);
        return;
    }
    ck_log_flush_now(s->log);
    ck_log_flush_now(s->glog);
    ck_timer_start(s->loop, t, ck_mono_ms() + 5);
}

static void on_signal(ck_watch_t *w, int events)
{
    server_t *s = w->data;
    struct signalfd_siginfo si;
    while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
        if (s->stopping) {
            CK_WARN("server", "second signal: stopping now");
            ck_loop_stop(s->loop);
            return;
        }
        CK_INFO("server", "received %s, shutting down", strsignal((int)si.ssi_signo));
        s->stopping = true;
        ck_api_close_calls(s->api);
        ck_broker_stop_accepting(s->broker);
        s->stop_deadline = ck_mono_ms() + SHUTDOWN_GRACE_MS;
        ck_timer_init(&s->drain, drain_check, s);
        ck_log_flush_now(s->log);
        ck_timer_start(s->loop, &s->drain, ck_mono_ms());
    }
}

/* Tears down whatever was opened, in reverse order; the logs' close runs the final fsync. */
static void close_parts(server_t *s)
{
    ck_api_stop(s->api);
    s->api = NULL;
    if (s->indexer) {
        ck_timer_stop(s->loop, &s->index_timer);
        ck_indexer_free(s->indexer);
        ck_wakeup_close(s->loop, &s->kick);
    }
    s->indexer = NULL;
    ck_columnar_free(s->columnar);
    s->columnar = NULL;
    ck_sidx_free(s->search);
    ck_vidx_free(s->vector);
    s->vector = NULL;
    s->search = NULL;
    ck_restidx_close(s->rest);
    s->rest = NULL;
    ck_sql_db_close(s->sql);
    s->sql = NULL;
    ck_metrics_stop(s->metrics);
    ck_broker_free(s->broker);
    ck_pid_close(s->pids);
    s->pids = NULL;
    ck_topics_close(s->topics);
    ck_log_close(s->log);
    ck_offsets_close(s->offsets);
    ck_log_close(s->glog);
    s->metrics = NULL;
    s->broker = NULL;
    s->topics = NULL;
    s->log = NULL;
    s->offsets = NULL;
    s->glog = NULL;
}

static int lock_data_dir(const char *dir)
{
    char path[1100];
    snprintf(path, sizeof(path), "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return -2;
    }
    return fd; /* held until exit */
}

/* DuckDB, the columnar capability, the indexer and the HTTP API. */
static int start_sql(server_t *s)
{
    ck_settings_t *c = &s->cfg;
    char dir[PATH_MAX + 32], abs[PATH_MAX];
    if (!realpath(c->data_dir, abs)) {
        CK_ERROR("server", "cannot resolve the data folder %s: %s", c->data_dir, strerror(errno));
        return CK_EIO;
    }
    snprintf(dir, sizeof(dir), "%s/columnar", abs);
    if (ck_mkdirs(dir) != 0) {
        CK_ERROR("server", "cannot create %s: %s", dir, strerror(errno));
        return CK_EIO;
    }
    char err[512] = "";
    int rc = ck_sql_db_open(dir, c->sql_memory_limit[0] ? c->sql_memory_limit : NULL, &s->sql, err, sizeof(err));
    if (rc) {
        CK_ERROR("server", "cannot open DuckDB: %s", err);
        return rc;
    }
    ck_columnar_config_t cc = {dir, c->hot_max_records, c->columnar_flush_ms, 50};
    rc = ck_columnar_new(&cc, ck_sql_db_duckdb(s->sql), &s->columnar);
    if (!rc)
        rc = ck_indexer_new(s->topics, &s->indexer);
    if (!rc)
        rc = ck_wakeup_init(s->loop, &s->kick, on_kick, s);
    if (!rc) {
        ck_indexer_set_kick(s->indexer, on_kick_thread, &s->kick);
        rc = ck_indexer_add(s->indexer, &ck_columnar_ops, s->columnar);
    }
    if (!rc) {
        snprintf(dir, sizeof(dir), "%s/search", abs);
        ck_sidx_config_t sc = {dir, c->search_flush_ms, 64u << 20, c->search_index_threads};
        rc = ck_sidx_new(&sc, &s->search);
        if (!rc)
            rc = ck_indexer_add(s->indexer, &ck_sidx_ops, s->search);
    }
    if (!rc) {
        snprintf(dir, sizeof(dir), "%s/vector", abs);
        ck_vidx_config_t vc = {
            .dir = dir,
            .commit_ms = c->vector_commit_ms,
            .provider = c->embedding_provider,
            .model = c->embedding_model,
            .dims = c->embedding_dimensions > 0 ? (uint32_t)c->embedding_dimensions : 0,
            .endpoint = c->embedding_endpoint,
            .api_key = c->embedding_api_key,
            .model_dir = c->embedding_model_dir,
        };
        rc = ck_vidx_new(&vc, &s->vector);
        if (!rc)
            rc = ck_indexer_add(s->indexer, &ck_vidx_ops, s->vector);
    }
    if (!rc) {
        snprintf(dir, sizeof(dir), "%s/rest_indexes", abs);
        rc = ck_restidx_open(dir, &s->rest);
    }
    if (rc) {
        CK_ERROR("server", "cannot start the indexer: %s", ck_strerror(rc));
        return rc;
    }
    ck_timer_init(&s->index_timer, on_index_timer, s);
    ck_timer_start(s->loop, &s->index_timer, ck_mono_ms());
    ck_api_deps_t d = {s->loop,    s->broker, s->topics, s->indexer, s->columnar,
                       s->sql,     s->search, s->rest,   s->vector,  s->log,
                       c->default_partitions, c->query_timeout_secs * 1000, c->data_dir,
                       {c->reranker_endpoint, c->reranker_model, c->reranker_api_key, 0, 0}};
    const char *msg = "";
    int port = 0;
    rc = ck_api_start(&d, c->api_bind, c->api_port, (size_t)c->api_max_body_bytes, &s->api, &port, &msg);
    if (rc) {
        CK_ERROR("server", "cannot listen on %s:%d for HTTP: %s", c->api_bind, c->api_port, msg);
        return rc;
    }
    CK_INFO("server", "HTTP API on %s:%d (/_sql, /topics, /health, /metrics)", c->api_bind, port);
    return 0;
}

static int run(server_t *s)
{
    ck_settings_t *c = &s->cfg;
    if (ck_mkdirs(c->data_dir) != 0) {
        CK_ERROR("server", "cannot create data folder %s: %s", c->data_dir, strerror(errno));
        return 1;
    }
    int lk = lock_data_dir(c->data_dir);
    if (lk == -2) {
        CK_ERROR("server", "data folder %s is in use by another chronik-server", c->data_dir);
        return 1;
    }
    if (lk < 0) {
        CK_ERROR("server", "cannot lock data folder %s: %s", c->data_dir, strerror(errno));
        return 1;
    }
    int rc = ck_loop_new(&s->loop);
    if (rc || (rc = ck_wakeup_init(s->loop, &s->durable, on_durable, s))) {
        CK_ERROR("server", "cannot create the event loop: %s", ck_strerror(rc));
        return 1;
    }
    char logdir[1100];
    snprintf(logdir, sizeof(logdir), "%s/log", c->data_dir);
    int64_t t0 = ck_mono_ms();
    rc = ck_log_open(logdir, c->flush_interval_ms, on_durable_thread, &s->durable, &s->log);
    if (rc) {
        CK_ERROR("server", "cannot open the log in %s: %s", logdir, ck_strerror(rc));
        return 1;
    }
    snprintf(logdir, sizeof(logdir), "%s/groups", c->data_dir);
    rc = ck_log_open(logdir, c->flush_interval_ms, on_durable_thread, &s->durable, &s->glog);
    if (!rc)
        rc = ck_offsets_open(s->glog, &s->offsets);
    if (rc) {
        CK_ERROR("server", "cannot open the offsets log in %s: %s", logdir, ck_strerror(rc));
        close_parts(s);
        return 1;
    }
    ck_topic_defaults_t defs = {c->default_partitions, c->default_columnar, c->default_searchable, c->default_vector};
    rc = ck_topics_open(c->data_dir, s->log, &defs, &s->topics);
    if (rc) {
        CK_ERROR("server", "cannot load topics: %s", ck_strerror(rc));
        close_parts(s);
        return 1;
    }
    CK_INFO("server", "recovered %d topics in %lld ms", ck_topics_count(s->topics), (long long)(ck_mono_ms() - t0));

    ck_broker_config_t bc;
    ck_broker_config_default(&bc);
    bc.advertised_host = c->advertised_host;
    bc.advertised_port = c->advertised_port;
    bc.node_id = c->node_id;
    bc.max_request_bytes = c->max_request_bytes;
    bc.idle_ms = c->idle_ms;
    bc.offsets_retention_ms = c->offsets_retention_minutes * 60000;
    bc.auto_create_topics = c->auto_create_topics;
    bc.default_partitions = c->default_partitions;
    ck_broker_new(s->loop, s->log, s->topics, &bc, &s->broker);
    ck_broker_set_offsets(s->broker, s->offsets);
    snprintf(logdir, sizeof(logdir), "%s/meta", c->data_dir);
    rc = ck_pid_open(logdir, &s->pids);
    if (!rc)
        rc = ck_broker_set_pids(s->broker, s->pids);
    if (rc) {
        CK_ERROR("server", "cannot open the producer ids in %s: %s", logdir, ck_strerror(rc));
        close_parts(s);
        return 1;
    }
    const char *msg = "";
    int port = 0;
    rc = ck_broker_listen(s->broker, c->bind, c->kafka_port, &port, &msg);
    if (rc) {
        CK_ERROR("server", "cannot listen on %s:%d for Kafka clients: %s", c->bind, c->kafka_port, msg);
        close_parts(s);
        return 1;
    }

    if (!strcmp(c->bind, "0.0.0.0")) {
        /* the wildcard bind serves IPv6 clients too ("localhost" may resolve to ::1 first) */
        const char *m6 = "";
        if (ck_broker_listen(s->broker, "::", port, NULL, &m6) != 0)
            CK_DEBUG("server", "no IPv6 listener: %s", m6);
    }
    rc = start_sql(s);
    if (rc) {
        close_parts(s);
        return 1;
    }
    if (c->metrics_port) {
        rc = ck_metrics_start(s->loop, c->bind, c->metrics_port, s->broker, s->topics, &s->metrics, &msg);
        if (rc) {
            CK_ERROR("server", "cannot listen on %s:%d for metrics: %s", c->bind, c->metrics_port, msg);
            close_parts(s);
            return 1;
        }
        ck_metrics_set_extra(s->metrics, ck_api_metrics, s->api);
        CK_INFO("server", "metrics on %s:%d (/metrics, /health, /ready)", c->bind, c->metrics_port);
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    ck_watch_start(s->loop, &s->sigw, sfd, CK_EV_READ, on_signal, s);

    CK_INFO("server", "chronik-server %s listening: kafka %s:%d (advertised %s:%d), data %s, WAL profile %s (%d ms)",
            CK_VERSION, c->bind, port, c->advertised_host, c->advertised_port ? c->advertised_port : port,
            c->data_dir, c->wal_profile, c->flush_interval_ms);
    rc = ck_loop_run(s->loop);

    close_parts(s); /* final fsync */
    ck_watch_stop(s->loop, &s->sigw);
    close(sfd);
    ck_wakeup_close(s->loop, &s->durable);
    ck_loop_free(s->loop);
    CK_INFO("server", "stopped");
    close(lk);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    static server_t s;
    signal(SIGPIPE, SIG_IGN);
    int cmd = ck_settings_load(&s.cfg, argc, argv);
    if (cmd < 0)
        return 2;
    if (cmd == CK_CMD_HELP) {
        ck_settings_usage(stdout);
        return 0;
    }
    if (cmd == CK_CMD_VERSION) {
        printf("chronik-server %s\n", CK_VERSION);
        return 0;
    }
    ck_log_level = s.cfg.log_level;
    /* Request and response buffers of a few MiB come and go all the time: keep freed
     * memory mapped (up to 64 MiB at the top of the heap) instead of returning it to the
     * kernel and faulting it in again on the next request. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    /* A broker holds a descriptor per client and per segment file: use all we may. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Block the stop signals before any thread starts, so every thread inherits the mask
     * and they arrive only through the loop's signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    return run(&s);
}
