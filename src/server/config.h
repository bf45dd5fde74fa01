/* Server settings: built-in defaults < config file (TOML) < environment < command line.
 * Thread: called once at start, before any other thread exists. */
#ifndef CK_SERVER_CONFIG_H
#define CK_SERVER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ck_settings {
    char data_dir[1024];
    int log_level;
    char bind[256];
    int kafka_port;
    char advertised_host[256];
    int advertised_port;          /* 0 = the Kafka port */
    char api_bind[256];
    int api_port;
    int metrics_port;             /* 0 = no separate metrics listener */
    char wal_profile[32];
    int flush_interval_ms;        /* from the WAL profile */
    int default_partitions;
    bool auto_create_topics;
    bool default_columnar, default_searchable, default_vector;
    int node_id;
    int64_t max_request_bytes;
    int64_t idle_ms;
    int64_t offsets_retention_minutes;
    char config_file[1024];
    int64_t hot_max_records;      /* per partition before a Parquet file is written */
    int64_t columnar_flush_ms;    /* hot rows older than this are written to Parquet */
    int search_index_threads;     /* 0 = automatic */
    int64_t search_flush_ms;      /* in-memory search segments older than this are committed */
    int64_t query_timeout_secs;   /* default timeout_secs of /_sql */
    int64_t api_max_body_bytes;   /* largest HTTP request body */
    char sql_memory_limit[32];    /* DuckDB memory_limit ("" = DuckDB's default) */
    /* embeddings: server defaults for vector topics ("" / 0 = unset) */
    char embedding_provider[16];  /* local | openai | external */
    char embedding_model[128];
    int embedding_dimensions;
    char embedding_endpoint[512];
    char embedding_api_key[256];  /* OPENAI_API_KEY */
    char embedding_model_dir[1024]; /* the local model's files */
    /* the reranker of "rerank": true ("" = none) */
    char reranker_endpoint[512];
    char reranker_model[128];
    char reranker_api_key[256];
    int64_t vector_commit_ms;     /* vectors and checkpoint committed this often */
} ck_settings_t;

enum { CK_CMD_START, CK_CMD_VERSION, CK_CMD_HELP };

/* Parses argv and the environment into s. Returns the command, or -1 after printing a
 * clear message to stderr (bad flag, bad value, unreadable config file). */
int ck_settings_load(ck_settings_t *s, int argc, char **argv);
void ck_settings_usage(FILE *f);

#endif
