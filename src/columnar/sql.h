/* SQL over topics: the embedded DuckDB database and the executor of user queries
 * (/_sql, /_sql/explain).
 *
 * The database is in memory and locked down at open: external access off except for one
 * allowed folder (the columnar data, so DuckDB can read and write our Parquet files
 * there), no extension auto-loading or installing, and the configuration locked so no
 * later SET can undo any of it. Our own code runs trusted SQL (DDL, appenders,
 * COPY ... TO Parquet in the allowed folder) on connections from ck_sql_connect.
 *
 * User queries (ck_sql_query, ck_sql_explain) must be exactly one statement that is a
 * SELECT both in DuckDB's parse tree (checked before binding, since binding alone has
 * effects for some statements) and once prepared. Refused with 400 before anything runs:
 * INSERT/UPDATE/DELETE/CREATE/DROP/ALTER, COPY, EXPORT/IMPORT, ATTACH/DETACH,
 * INSTALL/LOAD, SET/RESET/USE, PRAGMA (also those DuckDB rewrites into a SELECT, such as
 * PRAGMA table_info), CALL, CHECKPOINT, VACUUM/ANALYZE, transactions, PREPARE/EXECUTE,
 * EXPLAIN, several statements (also PIVOT without an IN list, which DuckDB expands into
 * two). SHOW, DESCRIBE and SUMMARIZE are read-only SELECTs and run. A SELECT may not call
 * the functions that change state beyond the query (enable_logging, disable_logging,
 * truncate_duckdb_logs, write_log — the logging settings are not covered by DuckDB's
 * configuration lock —, checkpoint, force_checkpoint, nextval) nor those that run SQL
 * built from strings (query, json_execute_serialized_sql; query_table is fine), however
 * quoted or qualified. Files outside the allowed folder cannot be read (DuckDB's
 * permission error, 400).
 *
 * Result rows are JSON objects keyed by column name; a name that repeats an earlier
 * column's gets a suffix "_1", "_2", ... (so no key is lost). Value encoding:
 *   NULL                          null
 *   BOOLEAN                       true / false
 *   TINYINT .. BIGINT, UTINYINT .. UBIGINT, HUGEINT, UHUGEINT, BIGNUM
 *                                 JSON number, exact digits
 *   FLOAT, DOUBLE                 shortest round-trip number; NaN, ±Inf → null
 *   DECIMAL(w,s)                  JSON number with exactly s decimals, from the integer
 *                                 storage (12.30, -0.05, 100), every width
 *   VARCHAR (and aliases: JSON)   string (invalid UTF-8 replaced by U+FFFD)
 *   BLOB                          base64 string
 *   TIMESTAMP, TIMESTAMP_S/_MS/_NS, TIMESTAMP WITH TIME ZONE
 *                                 epoch milliseconds, integer, floored toward −∞
 *                                 (infinity / -infinity → the strings "infinity",
 *                                 "-infinity")
 *   DATE                          "YYYY-MM-DD" ("YYYY-MM-DD (BC)" before year 1,
 *                                 "infinity", "-infinity") — DuckDB's own text
 *   TIME                          "HH:MM:SS" plus ".ffffff" with trailing zeros dropped
 *                                 ("12:34:56.5") — DuckDB's own text
 *   TIME WITH TIME ZONE           as TIME plus DuckDB's offset text: "+HH[:MM[:SS]]"
 *   INTERVAL                      DuckDB's text: "1 year 2 months 3 days 04:05:06.5",
 *                                 "00:00:00" when zero
 *   UUID                          canonical 8-4-4-4-12 lower-case hex
 *   ENUM                          its string
 *   LIST, ARRAY                   JSON array (elements encoded recursively)
 *   STRUCT                        JSON object (recursive); an unnamed struct (row(1,2))
 *                                 → JSON array
 *   MAP                           JSON object; keys as text (a string key as is, any
 *                                 other key as its JSON text: 1 → "1"), values recursive
 *   UNION                         the active member's value
 *   BIT                           string of '0'/'1' (DuckDB's text)
 *   any other type                null: the types the C API of DuckDB 1.4 reports as
 *                                 INVALID (TIME_NS, VARIANT); CAST them to VARCHAR in the
 *                                 query to see their text
 *
 * Thread: a ck_sql_db_t may be used from any thread; a duckdb_connection by one thread
 * at a time (each HTTP request uses its own). */
#ifndef CK_COLUMNAR_SQL_H
#define CK_COLUMNAR_SQL_H

#include <duckdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct ck_sql_db ck_sql_db_t;

/* Opens an in-memory DuckDB database. allowed_dir (absolute; created if missing) is the
 * only folder DuckDB may read or write files in, besides "<allowed_dir>.tmp" where DuckDB
 * spills what does not fit in memory (created by DuckDB when needed; also readable by
 * queries, as DuckDB allows its spill folder). memory_limit is DuckDB's syntax ("4GB") or
 * NULL for DuckDB's default; threads = online CPUs. The configuration is locked, so a
 * later SET of any option fails. Returns 0 or CK_EINVAL (bad argument, DuckDB refused the
 * configuration) / CK_EIO (cannot create the folder) / CK_ENOMEM, with a message in err.
 * Also starts the process-wide query watchdog thread on the first open. */
int ck_sql_db_open(const char *allowed_dir, const char *memory_limit, ck_sql_db_t **out, char *err,
                   int errlen);
/* Closes the database. Every connection from ck_sql_connect must be closed first. NULL ok. */
void ck_sql_db_close(ck_sql_db_t *db);
/* The underlying DuckDB database, owned by db (for the columnar capability). */
duckdb_database ck_sql_db_duckdb(ck_sql_db_t *db);

/* A new connection (close with duckdb_disconnect before ck_sql_db_close). Trusted: our
 * own code uses it for DDL, appenders, COPY ... TO Parquet in the allowed folder; the same
 * connection can also run user queries. Any thread. Returns 0 or CK_ENOMEM. */
int ck_sql_connect(ck_sql_db_t *db, duckdb_connection *out);
/* Runs trusted SQL (one or several statements). On error returns CK_EIO (DuckDB I/O
 * error), CK_ENOMEM (out of memory) or CK_EINVAL (any other), with DuckDB's message in
 * err (truncated to errlen; err may be NULL). */
int ck_sql_exec(duckdb_connection c, const char *sql, char *err, int errlen);

/* Why a user query failed, as the HTTP layer answers it:
 *   400 "QueryError"    (ck_sql_query) not one SELECT statement; parse, binder, catalog,
 *                       permission or execution error, with DuckDB's message
 *   400 "ExplainError"  the same, from ck_sql_explain
 *   504 "Timeout"       ran past the time limit (message says the limit)
 *   500 "InternalError" out of memory while building the answer; DuckDB internal error */
typedef struct ck_sql_error {
    int status;
    const char *error_type; /* static string */
    char message[1024];
} ck_sql_error_t;

typedef struct ck_sql_opts {
    int64_t limit;      /* most rows returned; <= 0 → 1000 */
    int64_t timeout_ms; /* <= 0 → 30000 */
} ck_sql_opts_t;

/* Runs one user query on c and appends to out
 *   {"columns":["a","b"],"rows":[{"a":1,"b":"x"},...],"row_count":N,
 *    "execution_time_ms":N,"truncated":bool}
 * row_count is the number of rows returned, truncated whether more existed. The result
 * is streamed: at most limit+1 rows are fetched, never the whole result. A query still
 * running after timeout_ms is interrupted (504). o may be NULL (defaults).
 * Returns 0, or on failure CK_EINVAL (400), CK_ERANGE (504 timeout) or CK_ENOMEM /
 * CK_EIO (500) with err filled; out is then left exactly as it was.
 * Thread: any, one query per connection at a time; c must come from ck_sql_connect. */
int ck_sql_query(duckdb_connection c, const char *sql, const ck_sql_opts_t *o, ck_wbuf_t *out,
                 ck_sql_error_t *err);

/* The plan of one user query (which passes the same checks as ck_sql_query; it is not
 * run). Appends {"logical_plan":"<text>","physical_plan":"<text>"|null}.
 * DuckDB's EXPLAIN gives only its physical plan under a locked configuration (the
 * explain_output setting that would add the logical plans is per connection and cannot be
 * SET once locked), so logical_plan holds DuckDB's EXPLAIN text — the plan that would
 * run — and physical_plan repeats that text when physical is true, else is null. Errors
 * and return values as ck_sql_query, with error_type "ExplainError" for 400s; the time
 * limit is the default 30 s. */
int ck_sql_explain(duckdb_connection c, const char *sql, bool physical, ck_wbuf_t *out,
                   ck_sql_error_t *err);

#endif
