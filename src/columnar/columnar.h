/* The columnar capability: a topic's records as SQL tables in DuckDB.
 *
 * For a topic with columnar.enabled=true, named <t> in SQL (ck_columnar_sql_name):
 *   <t>_hot   recent records, in DuckDB memory (one table per partition underneath)
 *   <t>_cold  Parquet files under <data>/columnar/<topic>/, written by DuckDB
 *   <t>       both, with no duplicate and no gap at the boundary
 * Columns: _topic, _partition, _offset, _timestamp, _timestamp_type, _key, _value,
 * _headers, then one typed column per top-level field of JSON object values (inferred,
 * widened on conflict, persisted). Formats and the commit protocol: docs/COLUMNAR.md.
 *
 * Threads: the capability ops run on the indexer's columnar worker; the ck_columnar_*
 * readers below may be called from any thread. */
#ifndef CK_COLUMNAR_COLUMNAR_H
#define CK_COLUMNAR_COLUMNAR_H

#include <duckdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/indexer.h"

typedef struct ck_columnar ck_columnar_t;

typedef struct ck_columnar_config {
    const char *dir;           /* <data>/columnar (absolute), created if missing */
    int64_t hot_max_records;   /* per partition: more hot rows than this are written to Parquet */
    int64_t flush_interval_ms; /* hot rows older than this are written to Parquet */
    int64_t refresh_ms;        /* appended rows become visible to queries at least this often */
} ck_columnar_config_t;

/* db: an open DuckDB database whose allowed directories include cfg->dir. */
int ck_columnar_new(const ck_columnar_config_t *cfg, duckdb_database db, ck_columnar_t **out);
/* After the indexer stopped (its close_topic calls released the topics). */
void ck_columnar_free(ck_columnar_t *c);

extern const ck_capability_ops_t ck_columnar_ops;

/* The topic's name in SQL: every character that is not [A-Za-z0-9_] becomes '_'. */
void ck_columnar_sql_name(const char *topic, char *out, size_t n);

/* ---- any thread ---- */

/* One table as /_sql/tables and /_sql/describe show it. */
typedef struct ck_columnar_table {
    char name[320];  /* SQL name (sanitised topic name + "_hot"/"_cold") */
    char topic[256]; /* the topic */
    int kind;        /* 0 unified, 1 hot, 2 cold */
} ck_columnar_table_t;
/* Fills up to max tables (3 per columnar topic); returns how many exist. */
int ck_columnar_tables(ck_columnar_t *c, ck_columnar_table_t *out, int max);
/* Looks a table name up (case-insensitively, as SQL does). */
bool ck_columnar_find_table(ck_columnar_t *c, const char *name, ck_columnar_table_t *out);

typedef struct ck_columnar_column {
    char name[256];
    char type[64]; /* DuckDB type name: BIGINT, DOUBLE, BOOLEAN, VARCHAR, TIMESTAMP, ... */
    bool nullable;
} ck_columnar_column_t;
/* The columns of a topic's tables (the same on all three). Returns the count (may exceed
 * max), or -1 if the topic is not columnar. */
int ck_columnar_columns(ck_columnar_t *c, const char *topic, ck_columnar_column_t *out, int max);
/* The inferred schema as text, "user_id:int64,city:string,amount:float64?" ('?' =
 * nullable). Returns false if the topic is not columnar. */
bool ck_columnar_schema(ck_columnar_t *c, const char *topic, char *out, size_t n);

typedef struct ck_columnar_stats {
    int64_t hot_rows, cold_rows, cold_files, cold_bytes;
} ck_columnar_stats_t;
bool ck_columnar_stats(ck_columnar_t *c, const char *topic, ck_columnar_stats_t *st);

#endif
