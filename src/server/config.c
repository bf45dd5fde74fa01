#include "server/config.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/logging.h"
#include "server/toml_adapter.h"

/* One setting: its names in each source and how to store it. */
typedef enum { T_STR, T_PORT, T_PORT0, T_INT, T_LONG, T_BOOL, T_LEVEL, T_PROFILE, T_ADDR } stype_t;

typedef struct setting {
    const char *flag;     /* --flag */
    char short_flag;      /* -x or 0 */
    const char *env[3];   /* environment names, first wins */
    const char *toml;     /* dotted key in the config file */
    stype_t type;
    size_t off;           /* offset in ck_settings_t */
    size_t size;          /* for strings */
    const char *help;
} setting_t;

#define OFF(f) offsetof(ck_settings_t, f), sizeof(((ck_settings_t *)0)->f)

static const setting_t settings[] = {
    {"data-dir", 'd', {"CHRONIK_DATA_DIR"}, "data_dir", T_STR, OFF(data_dir), "data folder (./data)"},
    {"log-level", 'l', {"CHRONIK_LOG_LEVEL", "RUST_LOG"}, "log_level", T_LEVEL, OFF(log_level), "trace|debug|info|warn|error (info)"},
    {"bind", 0, {"CHRONIK_BIND", "CHRONIK_BIND_ADDR"}, "bind.host", T_STR, OFF(bind), "address to listen on (0.0.0.0)"},
    {"kafka-port", 0, {"CHRONIK_KAFKA_PORT"}, "kafka_port", T_PORT, OFF(kafka_port), "Kafka protocol port (9092)"},
    {"advertise", 0, {"CHRONIK_ADVERTISED_ADDR", "CHRONIK_ADVERTISE"}, "advertise.kafka", T_ADDR, OFF(advertised_host), "HOST[:PORT] given to clients"},
    {"api-bind", 0, {"CHRONIK_UNIFIED_API_BIND"}, "api_bind", T_STR, OFF(api_bind), "HTTP API address (0.0.0.0)"},
    {"api-port", 0, {"CHRONIK_UNIFIED_API_PORT"}, "api_port", T_PORT, OFF(api_port), "HTTP API port (6092)"},
    {"metrics-port", 0, {"CHRONIK_METRICS_PORT"}, "bind.metrics", T_PORT0, OFF(metrics_port), "metrics port, 0 = none (0)"},
    {"wal-profile", 0, {"CHRONIK_WAL_PROFILE"}, "wal_profile", T_PROFILE, OFF(wal_profile), "low|medium|high|ultra group-commit window (low)"},
    {"default-partitions", 0, {"CHRONIK_DEFAULT_PARTITIONS"}, "default_partitions", T_INT, OFF(default_partitions), "partitions of auto-created topics (3)"},
    {"auto-create-topics", 0, {"CHRONIK_AUTO_CREATE_TOPICS"}, "auto_create_topics", T_BOOL, OFF(auto_create_topics), "auto.create.topics.enable (true)"},
    {"default-columnar", 0, {"CHRONIK_DEFAULT_COLUMNAR"}, "default_columnar", T_BOOL, OFF(default_columnar), "columnar.enabled for new topics (false)"},
    {"default-searchable", 0, {"CHRONIK_DEFAULT_SEARCHABLE"}, "default_searchable", T_BOOL, OFF(default_searchable), "searchable for new topics (false)"},
    {"default-vector", 0, {"CHRONIK_DEFAULT_VECTOR_ENABLED"}, "default_vector", T_BOOL, OFF(default_vector), "vector.enabled for new topics (false)"},
    {"node-id", 0, {"CHRONIK_NODE_ID"}, "node_id", T_INT, OFF(node_id), "broker id (1)"},
    {"socket-request-max-bytes", 0, {"CHRONIK_SOCKET_REQUEST_MAX_BYTES"}, "socket_request_max_bytes", T_LONG, OFF(max_request_bytes), "largest request (104857600)"},
    {"connections-max-idle-ms", 0, {"CHRONIK_CONNECTIONS_MAX_IDLE_MS"}, "connections_max_idle_ms", T_LONG, OFF(idle_ms), "idle connection timeout (600000)"},
    {"hot-buffer-max-records", 0, {"CHRONIK_HOT_BUFFER_MAX_RECORDS"}, "hot_buffer_max_records", T_LONG, OFF(hot_max_records), "SQL hot rows per partition before a Parquet file (100000)"},
    {"columnar-flush-interval-ms", 0, {"CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS"}, "columnar_flush_interval_ms", T_LONG, OFF(columnar_flush_ms), "hot rows older than this go to Parquet (30000)"},
    {"search-flush-interval-ms", 0, {"CHRONIK_SEARCH_FLUSH_INTERVAL_MS"}, "search_flush_interval_ms", T_LONG, OFF(search_flush_ms), "in-memory search segments older than this are committed to disk (30000)"},
    {"search-index-threads", 0, {"CHRONIK_SEARCH_INDEX_THREADS"}, "search_index_threads", T_INT, OFF(search_index_threads), "threads that index records for search (0 = 2 when the machine has 2+ CPUs, else 1; at most 8)"},
    {"query-timeout-secs", 0, {"CHRONIK_QUERY_TIMEOUT_SECS"}, "query_timeout_secs", T_LONG, OFF(query_timeout_secs), "default SQL timeout (30)"},
    {"api-max-body-bytes", 0, {"CHRONIK_API_MAX_BODY_BYTES"}, "api_max_body_bytes", T_LONG, OFF(api_max_body_bytes), "largest HTTP request body (16777216)"},
    {"sql-memory-limit", 0, {"CHRONIK_SQL_MEMORY_LIMIT"}, "sql_memory_limit", T_STR, OFF(sql_memory_limit), "DuckDB memory limit, e.g. 4GB (DuckDB's default)"},
    {"embedding-provider", 0, {"CHRONIK_EMBEDDING_PROVIDER"}, "embedding.provider", T_STR, OFF(embedding_provider), "embedding provider of vector topics that set none: local, openai or external (local, or openai when an API key or endpoint is set)"},
    {"embedding-model", 0, {"CHRONIK_EMBEDDING_MODEL"}, "embedding.model", T_STR, OFF(embedding_model), "model for openai/external providers (text-embedding-3-small)"},
    {"embedding-dimensions", 0, {"CHRONIK_EMBEDDING_DIMENSIONS"}, "embedding.dimensions", T_INT, OFF(embedding_dimensions), "dimensions asked of openai/external providers (the model's)"},
    {"embedding-endpoint", 0, {"CHRONIK_EMBEDDING_ENDPOINT"}, "embedding.endpoint", T_STR, OFF(embedding_endpoint), "base URL of an OpenAI-compatible server, or the external provider's URL"},
    {"embedding-api-key", 0, {"OPENAI_API_KEY", "CHRONIK_EMBEDDING_API_KEY"}, "embedding.api_key", T_STR, OFF(embedding_api_key), "API key for the openai provider"},
    {"embedding-model-dir", 0, {"CHRONIK_EMBEDDING_MODEL_DIR"}, "embedding.model_dir", T_STR, OFF(embedding_model_dir), "folder of the local model's files (the build's third_party/use-lite)"},
    {"reranker-endpoint", 0, {"CHRONIK_RERANKER_ENDPOINT"}, "reranker.endpoint", T_STR, OFF(reranker_endpoint), "URL of a rerank service ({query, documents} -> {results: [{index, relevance_score}]}) used by \"rerank\": true (none)"},
    {"reranker-model", 0, {"CHRONIK_RERANKER_MODEL"}, "reranker.model", T_STR, OFF(reranker_model), "model named in rerank requests (none)"},
    {"reranker-api-key", 0, {"CHRONIK_RERANKER_API_KEY"}, "reranker.api_key", T_STR, OFF(reranker_api_key), "bearer token for the rerank service (none)"},
    {"vector-commit-interval-ms", 0, {"CHRONIK_VECTOR_COMMIT_INTERVAL_MS"}, "vector_commit_interval_ms", T_LONG, OFF(vector_commit_ms), "vectors and their checkpoint are committed to disk this often (1000)"},
    {"offsets-retention-minutes", 0, {"CHRONIK_OFFSETS_RETENTION_MINUTES"}, "offsets_retention_minutes", T_LONG, OFF(offsets_retention_minutes), "committed offsets of empty groups kept (10080)"},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const struct { const char *name; int ms; } profiles[] = {
    {"low", 2}, {"small", 2}, {"container", 2},
    {"medium", 10}, {"balanced", 10},
    {"high", 50}, {"aggressive", 50}, {"dedicated", 50},
    {"ultra", 100}, {"maximum", 100}, {"throughput", 100},
};

static void defaults(ck_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->data_dir, sizeof(s->data_dir), "./data");
    s->log_level = CK_LOG_INFO;
    snprintf(s->bind, sizeof(s->bind), "0.0.0.0");
    s->kafka_port = 9092;
    snprintf(s->api_bind, sizeof(s->api_bind), "0.0.0.0");
    s->api_port = 6092;
    s->metrics_port = 0;
    snprintf(s->wal_profile, sizeof(s->wal_profile), "low");
    s->flush_interval_ms = 2;
    s->default_partitions = 3;
    s->auto_create_topics = true;
    s->node_id = 1;
    s->max_request_bytes = 104857600;
    s->idle_ms = 600000;
    s->offsets_retention_minutes = 10080;
    s->hot_max_records = 100000;
    s->columnar_flush_ms = 30000;
    s->search_flush_ms = 30000;
    s->vector_commit_ms = 1000;
    s->query_timeout_secs = 30;
    s->api_max_body_bytes = 16777216;
}

static int parse_long(const char *v, long long lo, long long hi, long long *out)
{
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

/* Stores value into the setting; prints why on failure. `from` names the source. */
static int apply(ck_settings_t *s, const setting_t *st, const char *value, const char *from)
{
    char *base = (char *)s + st->off;
    long long x;
    switch (st->type) {
    case T_STR:
        if (strlen(value) >= st->size) {
            fprintf(stderr, "chronik-server: %s: value too long\n", from);
            return -1;
        }
        snprintf(base, st->size, "%s", value);
        return 0;
    case T_ADDR: {
        /* HOST or HOST:PORT ([v6]:PORT) */
        char host[256];
        int port = 0;
        const char *colon = strrchr(value, ':');
        if (value[0] == '[') {
            const char *close = strchr(value, ']');
            if (!close) goto bad;
            snprintf(host, sizeof(host), "%.*s", (int)(close - value - 1), value + 1);
            if (close[1] == ':') colon = close + 1; else colon = NULL;
        } else if (colon && strchr(value, ':') == colon) {
            snprintf(host, sizeof(host), "%.*s", (int)(colon - value), value);
        } else {
            snprintf(host, sizeof(host), "%s", value);
            colon = NULL;
        }
        if (colon) {
            if (parse_long(colon + 1, 1, 65535, &x)) goto bad;
            port = (int)x;
        }
        if (!host[0]) goto bad;
        snprintf(s->advertised_host, sizeof(s->advertised_host), "%s", host);
        s->advertised_port = port;
        return 0;
    }
    case T_PORT:
    case T_PORT0:
        if (parse_long(value, st->type == T_PORT0 ? 0 : 1, 65535, &x)) {
            fprintf(stderr, "chronik-server: %s: '%s' is not a port number (%d-65535)\n", from, value, st->type == T_PORT0 ? 0 : 1);
            return -1;
        }
        *(int *)base = (int)x;
        return 0;
    case T_INT:
        if (parse_long(value, 1, 100000, &x)) {
            fprintf(stderr, "chronik-server: %s: '%s' is not a number between 1 and 100000\n", from, value);
            return -1;
        }
        *(int *)base = (int)x;
        return 0;
    case T_LONG:
        if (parse_long(value, 1, INT64_MAX, &x)) {
            fprintf(stderr, "chronik-server: %s: '%s' is not a positive number\n", from, value);
            return -1;
        }
        *(int64_t *)base = x;
        return 0;
    case T_BOOL:
        if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes") || !strcasecmp(value, "on"))
            *(bool *)base = true;
        else if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no") || !strcasecmp(value, "off"))
            *(bool *)base = false;
        else {
            fprintf(stderr, "chronik-server: %s: '%s' is not true or false\n", from, value);
            return -1;
        }
        return 0;
    case T_LEVEL: {
        int l = ck_log_parse_level(value);
        if (l < 0) {
            fprintf(stderr, "chronik-server: %s: '%s' is not a log level (trace, debug, info, warn, error, off)\n", from, value);
            return -1;
        }
        *(int *)base = l;
        return 0;
    }
    case T_PROFILE:
        for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
            if (!strcasecmp(value, profiles[i].name)) {
                snprintf(s->wal_profile, sizeof(s->wal_profile), "%s", profiles[i].name);
                s->flush_interval_ms = profiles[i].ms;
                return 0;
            }
        fprintf(stderr, "chronik-server: %s: '%s' is not a WAL profile (low, medium, high, ultra)\n", from, value);
        return -1;
    }
    return -1;
bad:
    fprintf(stderr, "chronik-server: %s: '%s' is not HOST or HOST:PORT\n", from, value);
    return -1;
}

static int toml_cb(void *arg, const char *key, const char *value)
{
    ck_settings_t *s = arg;
    for (size_t i = 0; i < NSETTINGS; i++)
        if (!strcmp(settings[i].toml, key) || !strcmp(settings[i].flag, key)) {
            char from[300];
            snprintf(from, sizeof(from), "config file key %s", key);
            return apply(s, &settings[i], value, from) ? 1 : 0;
        }
    /* [bind] kafka = "HOST:PORT" as in the cluster file format */
    if (!strcmp(key, "bind.kafka")) {
        const char *c = strrchr(value, ':');
        long long x;
        if (!c || parse_long(c + 1, 1, 65535, &x)) {
            fprintf(stderr, "chronik-server: config file key bind.kafka: '%s' is not HOST:PORT\n", value);
            return 1;
        }
        snprintf(s->bind, sizeof(s->bind), "%.*s", (int)(c - value), value);
        s->kafka_port = (int)x;
        return 0;
    }
    fprintf(stderr, "chronik-server: warning: config file key %s is not used by a single node\n", key);
    return 0;
}

void ck_settings_usage(FILE *f)
{
    fprintf(f, "Usage: chronik-server [GLOBAL FLAGS] COMMAND [FLAGS]\n\n"
               "Commands:\n"
               "  start [-c FILE]   start the server (Kafka protocol on port 9092)\n"
               "  version           print the version\n"
               "  help              this text\n\n"
               "Flags (environment variable in brackets; flags win over the environment,\n"
               "the environment over the config file):\n"
               "  -c, --config FILE   TOML config file [CHRONIK_CONFIG]\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        char fl[64];
        if (settings[i].short_flag)
            snprintf(fl, sizeof(fl), "-%c, --%s", settings[i].short_flag, settings[i].flag);
        else
            snprintf(fl, sizeof(fl), "    --%s", settings[i].flag);
        fprintf(f, "  %-32s %s [%s]\n", fl, settings[i].help, settings[i].env[0]);
    }
}

static const setting_t *find_flag(const char *arg, const char **value)
{
    *value = NULL;
    if (arg[0] == '-' && arg[1] && arg[1] != '-' && !arg[2]) {
        for (size_t i = 0; i < NSETTINGS; i++)
            if (settings[i].short_flag == arg[1])
                return &settings[i];
        return NULL;
    }
    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    if (eq)
        *value = eq + 1;
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(settings[i].flag) == n && !strncmp(settings[i].flag, name, n))
            return &settings[i];
    if (n == 15 && !strncmp(name, "advertised-addr", 15))
        return &settings[4]; /* the spelling older docs use */
    return NULL;
}

int ck_settings_load(ck_settings_t *s, int argc, char **argv)
{
    defaults(s);
    int cmd = -1;
    const char *config = getenv("CHRONIK_CONFIG");
    /* pass 1: command and config file */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "chronik-server: %s needs a file name\n", a);
                return -1;
            }
            config = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            config = a + 9;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "help")) {
            return CK_CMD_HELP;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version") || !strcmp(a, "version")) {
            if (cmd < 0)
                cmd = CK_CMD_VERSION;
        } else if (!strcmp(a, "start")) {
            if (cmd < 0)
                cmd = CK_CMD_START;
        } else if (a[0] == '-') {
            const char *v;
            const setting_t *st = find_flag(a, &v);
            if (!st) {
                fprintf(stderr, "chronik-server: unknown flag %s (see --help)\n", a);
                return -1;
            }
            if (!v)
                i++;
        } else {
            fprintf(stderr, "chronik-server: unknown command '%s' (see --help)\n", a);
            return -1;
        }
    }
    if (cmd < 0) {
        fprintf(stderr, "chronik-server: no command given\n\n");
        ck_settings_usage(stderr);
        return -1;
    }
    if (cmd == CK_CMD_VERSION)
        return cmd;
    if (config && *config) {
        char err[512];
        snprintf(s->config_file, sizeof(s->config_file), "%s", config);
        int rc = ck_toml_load(config, toml_cb, s, err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "chronik-server: cannot read config file: %s\n", err);
            return -1;
        }
        if (rc > 0)
            return -1;
    }
    /* environment */
    for (size_t i = 0; i < NSETTINGS; i++)
        for (int e = 0; e < 3 && settings[i].env[e]; e++) {
            const char *v = getenv(settings[i].env[e]);
            if (v && *v) {
                if (apply(s, &settings[i], v, settings[i].env[e]))
                    return -1;
                break;
            }
        }
    /* flags */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (a[0] != '-' || !strncmp(a, "--config=", 9))
            continue;
        const char *v;
        const setting_t *st = find_flag(a, &v);
        if (!st)
            continue;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "chronik-server: %s needs a value\n", a);
                return -1;
            }
            v = argv[++i];
        }
        char from[80];
        snprintf(from, sizeof(from), "--%s", st->flag);
        if (apply(s, st, v, from))
            return -1;
    }
    if (!s->advertised_host[0]) {
        bool wildcard = !strcmp(s->bind, "0.0.0.0") || !strcmp(s->bind, "::") || !s->bind[0];
        const char *h = wildcard ? getenv("DOCKER_HOSTNAME") : NULL;
        if (wildcard && !h)
            h = getenv("HOSTNAME");
        snprintf(s->advertised_host, sizeof(s->advertised_host), "%s",
                 h && *h ? h : (wildcard ? "127.0.0.1" : s->bind));
    }
    if (s->metrics_port && (s->metrics_port == s->kafka_port || s->metrics_port == s->api_port)) {
        fprintf(stderr, "chronik-server: the metrics port %d is already used by another listener\n", s->metrics_port);
        return -1;
    }
    if (s->api_port == s->kafka_port) {
        fprintf(stderr, "chronik-server: the HTTP API port and the Kafka port are both %d\n", s->api_port);
        return -1;
    }
    return cmd;
}
