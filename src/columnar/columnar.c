/* The columnar capability (see columnar.h and docs/COLUMNAR.md).
 *
 * Per topic:
 *   hot:  per partition, an active DuckDB table "__ck_hot_<t>_<p>_<gen>" fed by the
 *         worker through an appender with data chunks (rows become visible when the
 *         appender is flushed, in the idle op), plus sealed tables waiting for Parquet;
 *   cold: Parquet files, one per sealed table, listed in MANIFEST;
 *   views "<t>_hot", "<t>_cold", "<t>" are re-created whenever tables, files or the
 *         schema change, in the same DuckDB transaction as that change, so a query sees
 *         each record exactly once.
 *
 * Seal (worker): a new active table takes the appends; the old one goes to the flusher
 * thread, which for each sealed table [a, b] of partition p, in order:
 *   1. COPYs it to partition=p/segment_<a>.parquet.tmp, fsync, rename, fsync dir
 *   2. writes MANIFEST.tmp (files + cold_end[p] = b + 1), fsync, rename, fsync dir <- commit
 *   3. DuckDB transaction: sealed table dropped, new views
 * A crash before 2 leaves a file the manifest does not list: deleted at open. After 2
 * the records are in the file; hot rows are rebuilt from the log from cold_end. */
#include "columnar/columnar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "columnar/jsonscan.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/logging.h"

#define MAX_COLS 256
#define MAX_SEALED 2 /* per topic: more waits for the flusher (backpressure) */
#define NSYS 6 /* columns stored in the hot tables before the typed ones */

enum ctype { T_INT, T_FLOAT, T_BOOL, T_STR };
static const char *const type_sql[] = {"BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR"};
static const char *const type_schema[] = {"int64", "float64", "boolean", "string"};

typedef struct ccol {
    char *name;
    size_t len; /* strlen(name) */
    int type;
    bool null_only; /* only nulls so far: the first non-null value decides the type */
    bool nullable;  /* missing or null in some record */
    bool in_cold;   /* some Parquet file has it */
    int64_t seen;   /* records that had it (for nullable) */
} ccol_t;

typedef struct cpart {
    int64_t next;       /* next offset to apply */
    int64_t cold_end;   /* next offset not in a Parquet file (under the topic's mu) */
    int64_t sealed_end; /* first offset of the active hot table */
    int gen;            /* generation of the active hot table "__ck_hot_<t>_<p>_<gen>" */
    int64_t hot_rows;
    int64_t hot_since; /* monotonic ms of the oldest unflushed-to-Parquet row, 0 = none */
    duckdb_appender app;
    bool dirty; /* appended rows not yet flushed to the table */
} cpart_t;

typedef struct cfile {
    int32_t partition;
    int64_t first, last, rows, bytes;
    char *rel;
    int schema; /* index into ctopic_t.schemas: the typed columns the file has; -1 unknown */
} cfile_t;

/* The typed columns (names and types) of the hot tables when a file was written. Files
 * of one schema are read with one read_parquet() without union_by_name, which would read
 * every file's footer whenever the views are bound. */
typedef struct cschema {
    int n;
    char **names;
    int *types;
} cschema_t;

/* A partition's hot table that no longer takes appends and waits for the flusher thread
 * to write it to Parquet; queries read it until then. */
typedef struct csealed {
    struct csealed *next;
    int32_t partition;
    int gen;
    int64_t first, last, rows;
    int schema; /* its typed columns (a file schema id) */
} csealed_t;

typedef struct ctopic {
    /* mu guards what the worker and the flusher thread share: files, schemas, cold_end,
     * the sealed list, the manifest, and every DDL (views, tables) of the topic */
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* pending dropped */
    csealed_t *sealed, *sealed_tail;
    int pending;              /* sealed tables not yet written */
    bool busy;                /* the flusher works on this topic (under the capability's fmu) */
    char *name;
    char sname[300];
    uint8_t id[16];
    char dir[1400];
    int32_t npart;
    cpart_t *parts;
    ccol_t *cols;
    int ncols;
    int64_t total_rows; /* records applied since open (for nullable) */
    cfile_t *files;
    int nfiles, cfiles;
    cschema_t *schemas;
    int nschemas;
    /* Parquet options */
    char codec[16];
    int level;
    int64_t row_group;
    int partitioning; /* 0 none, 1 daily, 2 hourly */
    /* the current data chunk, with its vectors' data and validity (refreshed by
     * chunk_refresh after every create or reset) */
    duckdb_data_chunk chunk;
    duckdb_vector vec[NSYS + MAX_COLS];
    void *vdata[NSYS + MAX_COLS];
    uint64_t *vvalid[NSYS + MAX_COLS];
    int chunk_rows;
    int32_t chunk_part;
    int hint[MAX_COLS];
    int64_t last_retention;
    int64_t *published; /* visible offset last published per partition */
    _Atomic bool pub_dirty; /* columns or stats changed since the last publish() */
    int64_t last_publish;
    ck_idx_topic_t *it;
    struct ctopic *lnext; /* the capability's list of open topics */
} ctopic_t;

/* What readers on other threads see of a topic. */
typedef struct centry {
    char topic[256];
    char sname[300];
    ck_columnar_column_t *cols;
    int ncols;
    char schema[4096];
    ck_columnar_stats_t st;
} centry_t;

typedef struct fjob {
    struct fjob *next;
    ctopic_t *t;
    csealed_t *s;
} fjob_t;

struct ck_columnar {
    /* the flusher thread: writes sealed hot tables to Parquet */
    pthread_t fthr;
    bool fstarted, fstop;
    pthread_mutex_t fmu;
    pthread_cond_t fcv;
    fjob_t *fhead, *ftail;
    duckdb_connection fconn;
    ck_wbuf_t fsql;
    ck_columnar_config_t cfg;
    char dir[1024];
    duckdb_database db;
    duckdb_connection conn;
    ck_jscan_t js;
    ck_wbuf_t sql;
    ctopic_t *open; /* worker thread */
    pthread_mutex_t mu;
    centry_t **ents;
    int nents, cents;
};

/* ---------------------------------------------------------------- helpers */

void ck_columnar_sql_name(const char *topic, char *out, size_t n)
{
    size_t i = 0;
    for (; topic[i] && i + 1 < n; i++) {
        char ch = topic[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
        out[i] = ok ? ch : '_';
    }
    if (n)
        out[i] = 0;
}

static void sqlf(ck_wbuf_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sqlf(ck_wbuf_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    uint8_t *d = ck_wbuf_reserve(w, (size_t)n + 1);
    if (!d)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n;
}

/* "name" with embedded quotes doubled */
static void sql_ident(ck_wbuf_t *w, const char *s)
{
    ck_wr_u8(w, '"');
    for (; *s; s++) {
        if (*s == '"')
            ck_wr_u8(w, '"');
        ck_wr_u8(w, (uint8_t)*s);
    }
    ck_wr_u8(w, '"');
}

/* 'text' with embedded quotes doubled */
static void sql_str(ck_wbuf_t *w, const char *s)
{
    ck_wr_u8(w, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            ck_wr_u8(w, '\'');
        ck_wr_u8(w, (uint8_t)*s);
    }
    ck_wr_u8(w, '\'');
}

static const char *sql_cstr(ck_wbuf_t *w)
{
    ck_wr_u8(w, 0);
    w->len--;
    return (const char *)w->data;
}

static int run_conn(duckdb_connection conn, const char *sql)
{
    duckdb_result res;
    if (duckdb_query(conn, sql, &res) == DuckDBError) {
        CK_WARN("columnar", "statement failed: %s [%.300s]", duckdb_result_error(&res), sql);
        duckdb_destroy_result(&res);
        return CK_EIO;
    }
    duckdb_destroy_result(&res);
    return 0;
}

static int run(ck_columnar_t *c, const char *sql) { return run_conn(c->conn, sql); }

static int run_buf(ck_columnar_t *c, ck_wbuf_t *w)
{
    if (w->err)
        return CK_ENOMEM;
    return run(c, sql_cstr(w));
}

static void hot_table_gen(ck_wbuf_t *w, const ctopic_t *t, int32_t p, int gen)
{
    char nm[400];
    snprintf(nm, sizeof(nm), "__ck_hot_%s_%d_%d", t->sname, p, gen);
    sql_ident(w, nm);
}

/* The partition's active hot table. */
static void hot_table(ck_wbuf_t *w, const ctopic_t *t, int32_t p) { hot_table_gen(w, t, p, t->parts[p].gen); }

/* ---------------------------------------------------------------- reader registry */

static centry_t *entry_find(ck_columnar_t *c, const char *topic)
{
    for (int i = 0; i < c->nents; i++)
        if (!strcmp(c->ents[i]->topic, topic))
            return c->ents[i];
    return NULL;
}

static const char *const sys_names[] = {"_topic", "_partition", "_offset", "_timestamp", "_timestamp_type",
                                        "_key", "_value", "_headers"};
static const char *const sys_types[] = {"VARCHAR", "INTEGER", "BIGINT", "TIMESTAMP", "TINYINT",
                                        "BLOB", "BLOB", "MAP(VARCHAR, BLOB)"};
#define NSYS_ALL 8

static int64_t cold_rows(const ctopic_t *t)
{
    int64_t n = 0;
    for (int i = 0; i < t->nfiles; i++)
        n += t->files[i].rows;
    return n;
}

/* Publishes the topic's columns and stats to readers. */
static void publish_locked(ck_columnar_t *c, ctopic_t *t);

/* Publishes the topic's columns and stats to readers. Worker thread. */
static void publish(ck_columnar_t *c, ctopic_t *t)
{
    pthread_mutex_lock(&t->mu);
    publish_locked(c, t);
    pthread_mutex_unlock(&t->mu);
}

static void publish_locked(ck_columnar_t *c, ctopic_t *t)
{
    int n = NSYS_ALL + t->ncols;
    ck_columnar_column_t *cols = ck_calloc((size_t)n, sizeof(*cols));
    if (!cols)
        return;
    for (int i = 0; i < NSYS_ALL; i++) {
        snprintf(cols[i].name, sizeof(cols[i].name), "%s", sys_names[i]);
        snprintf(cols[i].type, sizeof(cols[i].type), "%s", sys_types[i]);
        cols[i].nullable = i == 5 || i == 6; /* _key, _value */
    }
    char schema[4096];
    size_t sl = 0;
    schema[0] = 0;
    for (int i = 0; i < t->ncols; i++) {
        const ccol_t *cc = &t->cols[i];
        bool nullable = cc->nullable || cc->seen < t->total_rows || cc->null_only;
        ck_columnar_column_t *o = &cols[NSYS_ALL + i];
        snprintf(o->name, sizeof(o->name), "%s", cc->name);
        snprintf(o->type, sizeof(o->type), "%s", type_sql[cc->type]);
        o->nullable = nullable;
        int k = snprintf(schema + sl, sizeof(schema) - sl, "%s%s:%s%s", i ? "," : "", cc->name,
                         type_schema[cc->type], nullable ? "?" : "");
        if (k > 0 && (size_t)k < sizeof(schema) - sl)
            sl += (size_t)k;
    }
    ck_columnar_stats_t st = {0};
    for (int32_t p = 0; p < t->npart; p++)
        st.hot_rows += t->parts[p].hot_rows;
    for (const csealed_t *x = t->sealed; x; x = x->next)
        st.hot_rows += x->rows;
    st.cold_rows = cold_rows(t);
    st.cold_files = t->nfiles;
    for (int i = 0; i < t->nfiles; i++)
        st.cold_bytes += t->files[i].bytes;

    pthread_mutex_lock(&c->mu);
    centry_t *e = entry_find(c, t->name);
    if (!e) {
        if (c->nents == c->cents) {
            int nc = c->cents ? c->cents * 2 : 8;
            centry_t **ne = ck_realloc(c->ents, sizeof(*ne) * (size_t)nc);
            if (!ne)
                goto out;
            c->ents = ne;
            c->cents = nc;
        }
        e = ck_calloc(1, sizeof(*e));
        if (!e)
            goto out;
        snprintf(e->topic, sizeof(e->topic), "%s", t->name);
        snprintf(e->sname, sizeof(e->sname), "%s", t->sname);
        c->ents[c->nents++] = e;
    }
    ck_free(e->cols);
    e->cols = cols;
    e->ncols = n;
    cols = NULL;
    memcpy(e->schema, schema, sizeof(schema));
    e->st = st;
out:
    pthread_mutex_unlock(&c->mu);
    ck_free(cols);
}

static void unpublish(ck_columnar_t *c, const char *topic)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->nents; i++) {
        if (!strcmp(c->ents[i]->topic, topic)) {
            ck_free(c->ents[i]->cols);
            ck_free(c->ents[i]);
            c->ents[i] = c->ents[--c->nents];
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

int ck_columnar_tables(ck_columnar_t *c, ck_columnar_table_t *out, int max)
{
    static const char *const sfx[] = {"", "_hot", "_cold"};
    int n = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->nents; i++) {
        for (int k = 0; k < 3; k++, n++) {
            if (n >= max)
                continue;
            snprintf(out[n].name, sizeof(out[n].name), "%s%s", c->ents[i]->sname, sfx[k]);
            snprintf(out[n].topic, sizeof(out[n].topic), "%s", c->ents[i]->topic);
            out[n].kind = k;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

bool ck_columnar_find_table(ck_columnar_t *c, const char *name, ck_columnar_table_t *out)
{
    ck_columnar_table_t tabs[64];
    int n = ck_columnar_tables(c, tabs, 64);
    ck_columnar_table_t *all = tabs;
    if (n > 64) {
        all = ck_calloc((size_t)n + 16, sizeof(*all));
        if (!all)
            return false;
        n = ck_columnar_tables(c, all, n + 16);
    }
    bool found = false;
    for (int i = 0; i < n && !found; i++) {
        if (!strcasecmp(all[i].name, name)) {
            *out = all[i];
            found = true;
        }
    }
    if (all != tabs)
        ck_free(all);
    return found;
}

int ck_columnar_columns(ck_columnar_t *c, const char *topic, ck_columnar_column_t *out, int max)
{
    pthread_mutex_lock(&c->mu);
    centry_t *e = entry_find(c, topic);
    int n = e ? e->ncols : -1;
    for (int i = 0; i < n && i < max; i++)
        out[i] = e->cols[i];
    pthread_mutex_unlock(&c->mu);
    return n;
}

bool ck_columnar_schema(ck_columnar_t *c, const char *topic, char *out, size_t n)
{
    pthread_mutex_lock(&c->mu);
    centry_t *e = entry_find(c, topic);
    if (e)
        snprintf(out, n, "%s", e->schema);
    pthread_mutex_unlock(&c->mu);
    return e != NULL;
}

bool ck_columnar_stats(ck_columnar_t *c, const char *topic, ck_columnar_stats_t *st)
{
    pthread_mutex_lock(&c->mu);
    centry_t *e = entry_find(c, topic);
    if (e)
        *st = e->st;
    pthread_mutex_unlock(&c->mu);
    return e != NULL;
}

/* ---------------------------------------------------------------- file schemas */

static int fschema_add(ctopic_t *t, int n, char **names, const int *types)
{
    cschema_t *ns = ck_realloc(t->schemas, sizeof(*ns) * (size_t)(t->nschemas + 1));
    if (!ns)
        return -1;
    t->schemas = ns;
    cschema_t *sc = &ns[t->nschemas];
    sc->n = n;
    sc->names = ck_calloc((size_t)n + 1, sizeof(char *));
    sc->types = ck_calloc((size_t)n + 1, sizeof(int));
    if (!sc->names || !sc->types) {
        ck_free(sc->names);
        ck_free(sc->types);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        sc->names[i] = ck_strdup(names[i]);
        sc->types[i] = types[i];
        if (!sc->names[i]) {
            for (int k = 0; k < i; k++)
                ck_free(sc->names[k]);
            ck_free(sc->names);
            ck_free(sc->types);
            return -1;
        }
    }
    return t->nschemas++;
}

/* The schema id of the current columns (a new one when they changed), -1 on OOM. */
static int current_schema(ctopic_t *t)
{
    if (t->nschemas) {
        const cschema_t *last = &t->schemas[t->nschemas - 1];
        bool same = last->n == t->ncols;
        for (int i = 0; same && i < t->ncols; i++)
            same = last->types[i] == t->cols[i].type && !strcmp(last->names[i], t->cols[i].name);
        if (same)
            return t->nschemas - 1;
    }
    char **names = ck_calloc((size_t)t->ncols + 1, sizeof(char *));
    int *types = ck_calloc((size_t)t->ncols + 1, sizeof(int));
    int id = -1;
    if (names && types) {
        for (int i = 0; i < t->ncols; i++) {
            names[i] = t->cols[i].name;
            types[i] = t->cols[i].type;
        }
        id = fschema_add(t, t->ncols, names, types);
    }
    ck_free(names);
    ck_free(types);
    return id;
}

static void schemas_free(ctopic_t *t)
{
    for (int i = 0; i < t->nschemas; i++) {
        for (int k = 0; k < t->schemas[i].n; k++)
            ck_free(t->schemas[i].names[k]);
        ck_free(t->schemas[i].names);
        ck_free(t->schemas[i].types);
    }
    ck_free(t->schemas);
    t->schemas = NULL;
    t->nschemas = 0;
}

/* ---------------------------------------------------------------- manifest */

static void file_path(const ctopic_t *t, const cfile_t *f, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", t->dir, f->rel);
}

static int manifest_write(ctopic_t *t)
{
    json_t *m = json_object();
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", t->id[i]);
    json_object_set_new(m, "format", json_integer(1));
    json_object_set_new(m, "topic", json_string(t->name));
    json_object_set_new(m, "topic_id", json_string(hex));
    json_t *parts = json_array();
    for (int32_t p = 0; p < t->npart; p++)
        json_array_append_new(parts, json_pack("{s:I}", "cold_end", (json_int_t)t->parts[p].cold_end));
    json_object_set_new(m, "partitions", parts);
    json_t *cols = json_array();
    for (int i = 0; i < t->ncols; i++)
        json_array_append_new(cols, json_pack("{s:s,s:s,s:b,s:b,s:b}", "name", t->cols[i].name, "type",
                                              type_schema[t->cols[i].type], "nullable",
                                              t->cols[i].nullable || t->cols[i].seen < t->total_rows,
                                              "null_only", t->cols[i].null_only, "in_cold", t->cols[i].in_cold));
    json_object_set_new(m, "columns", cols);
    json_t *schemas = json_array();
    for (int i = 0; i < t->nschemas; i++) {
        json_t *sj = json_array();
        for (int k = 0; k < t->schemas[i].n; k++)
            json_array_append_new(sj, json_pack("[s,s]", t->schemas[i].names[k], type_schema[t->schemas[i].types[k]]));
        json_array_append_new(schemas, sj);
    }
    json_object_set_new(m, "schemas", schemas);
    json_t *files = json_array();
    for (int i = 0; i < t->nfiles; i++) {
        const cfile_t *f = &t->files[i];
        json_array_append_new(files, json_pack("{s:i,s:I,s:I,s:I,s:I,s:s,s:i}", "partition", (int)f->partition,
                                               "first", (json_int_t)f->first, "last", (json_int_t)f->last, "rows",
                                               (json_int_t)f->rows, "bytes", (json_int_t)f->bytes, "path", f->rel,
                                               "schema", f->schema));
    }
    json_object_set_new(m, "files", files);
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (!text)
        return CK_ENOMEM;
    char tmp[1500], fin[1500];
    snprintf(tmp, sizeof(tmp), "%s/MANIFEST.tmp", t->dir);
    snprintf(fin, sizeof(fin), "%s/MANIFEST", t->dir);
    int rc = ck_replace_file(tmp, fin, t->dir, text, strlen(text));
    free(text);
    return rc;
}

static int type_from_schema(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(s, type_schema[i]))
            return i;
    if (!strcasecmp(s, "int") || !strcasecmp(s, "bigint") || !strcasecmp(s, "long"))
        return T_INT;
    if (!strcasecmp(s, "double") || !strcasecmp(s, "float"))
        return T_FLOAT;
    if (!strcasecmp(s, "bool"))
        return T_BOOL;
    if (!strcasecmp(s, "utf8") || !strcasecmp(s, "varchar") || !strcasecmp(s, "text"))
        return T_STR;
    return -1;
}

static int add_col(ctopic_t *t, const char *name, size_t len, int type)
{
    if (t->ncols >= MAX_COLS)
        return CK_ETOOBIG;
    ccol_t *n = ck_realloc(t->cols, sizeof(ccol_t) * (size_t)(t->ncols + 1));
    if (!n)
        return CK_ENOMEM;
    t->cols = n;
    ccol_t *cc = &t->cols[t->ncols];
    memset(cc, 0, sizeof(*cc));
    cc->name = ck_strndup(name, len);
    if (!cc->name)
        return CK_ENOMEM;
    cc->len = len;
    cc->type = type;
    t->ncols++;
    return 0;
}

static int add_file(ctopic_t *t, const cfile_t *f)
{
    if (t->nfiles == t->cfiles) {
        int nc = t->cfiles ? t->cfiles * 2 : 16;
        cfile_t *n = ck_realloc(t->files, sizeof(*n) * (size_t)nc);
        if (!n)
            return CK_ENOMEM;
        t->files = n;
        t->cfiles = nc;
    }
    t->files[t->nfiles++] = *f;
    return 0;
}

/* Loads MANIFEST; a missing file or another topic id is a fresh start (folder wiped). */
static int manifest_load(ctopic_t *t)
{
    char path[1500];
    snprintf(path, sizeof(path), "%s/MANIFEST", t->dir);
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    if (!m) {
        if (access(path, F_OK) == 0) {
            CK_ERROR("columnar", "%s: unreadable manifest (%s); rebuilding from the log", t->name, jerr.text);
            ck_rmtree(t->dir);
        }
        return 0;
    }
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", t->id[i]);
    const char *id = json_string_value(json_object_get(m, "topic_id"));
    if (!id || strcmp(id, hex) != 0) {
        CK_INFO("columnar", "%s: data of an earlier topic with this name discarded", t->name);
        json_decref(m);
        ck_rmtree(t->dir);
        return 0;
    }
    json_t *parts = json_object_get(m, "partitions");
    for (int32_t p = 0; p < t->npart && p < (int32_t)json_array_size(parts); p++)
        t->parts[p].cold_end = json_integer_value(json_object_get(json_array_get(parts, (size_t)p), "cold_end"));
    json_t *cols = json_object_get(m, "columns");
    for (size_t i = 0; i < json_array_size(cols); i++) {
        json_t *cj = json_array_get(cols, i);
        const char *nm = json_string_value(json_object_get(cj, "name"));
        int ty = type_from_schema(json_string_value(json_object_get(cj, "type")) ?: "");
        if (!nm || ty < 0 || add_col(t, nm, strlen(nm), ty))
            continue;
        ccol_t *cc = &t->cols[t->ncols - 1];
        cc->nullable = json_is_true(json_object_get(cj, "nullable"));
        cc->null_only = json_is_true(json_object_get(cj, "null_only"));
        cc->in_cold = json_is_true(json_object_get(cj, "in_cold"));
    }
    json_t *schemas = json_object_get(m, "schemas");
    for (size_t i = 0; i < json_array_size(schemas); i++) {
        json_t *sj = json_array_get(schemas, i);
        int n = (int)json_array_size(sj);
        char **names = ck_calloc((size_t)n + 1, sizeof(char *));
        int *types = ck_calloc((size_t)n + 1, sizeof(int));
        bool ok = names && types;
        for (int k = 0; ok && k < n; k++) {
            json_t *cj = json_array_get(sj, (size_t)k);
            names[k] = (char *)json_string_value(json_array_get(cj, 0));
            types[k] = type_from_schema(json_string_value(json_array_get(cj, 1)) ?: "");
            ok = names[k] && types[k] >= 0;
        }
        if (!ok || fschema_add(t, n, names, types) < 0)
            n = -1;
        ck_free(names);
        ck_free(types);
        if (n < 0)
            break; /* files refer to schemas by index: stop at the first bad one */
    }
    json_t *files = json_object_get(m, "files");
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *fj = json_array_get(files, i);
        cfile_t f = {(int32_t)json_integer_value(json_object_get(fj, "partition")),
                     json_integer_value(json_object_get(fj, "first")),
                     json_integer_value(json_object_get(fj, "last")),
                     json_integer_value(json_object_get(fj, "rows")),
                     json_integer_value(json_object_get(fj, "bytes")), NULL, -1};
        json_t *sid = json_object_get(fj, "schema");
        if (json_is_integer(sid) && json_integer_value(sid) >= 0 && json_integer_value(sid) < t->nschemas)
            f.schema = (int)json_integer_value(sid);
        const char *rel = json_string_value(json_object_get(fj, "path"));
        if (!rel || !(f.rel = ck_strdup(rel)) || add_file(t, &f)) {
            ck_free(f.rel);
            continue;
        }
    }
    json_decref(m);
    return 0;
}

static bool listed(const ctopic_t *t, const char *rel)
{
    for (int i = 0; i < t->nfiles; i++)
        if (!strcmp(t->files[i].rel, rel))
            return true;
    return false;
}

/* Deletes files under the topic folder that the manifest does not list (a flush cut
 * short by a crash). */
static void remove_orphans(ctopic_t *t, const char *sub, int depth)
{
    char path[1500];
    snprintf(path, sizeof(path), "%s%s%s", t->dir, sub[0] ? "/" : "", sub);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "MANIFEST"))
            continue;
        char rel[1500];
        snprintf(rel, sizeof(rel), "%s%s%s", sub, sub[0] ? "/" : "", de->d_name);
        char full[3000];
        snprintf(full, sizeof(full), "%s/%s", t->dir, rel);
        struct stat st;
        if (lstat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < 3)
                remove_orphans(t, rel, depth + 1);
        } else if (!listed(t, rel)) {
            CK_INFO("columnar", "%s: removing unlisted file %s", t->name, rel);
            unlink(full);
        }
    }
    closedir(d);
}

/* ---------------------------------------------------------------- DDL */

static int create_hot(ck_columnar_t *c, ctopic_t *t, int32_t p, bool replace)
{
    ck_wbuf_t *w = &c->sql;
    ck_wbuf_reset(w);
    sqlf(w, "CREATE %sTABLE ", replace ? "OR REPLACE " : "");
    hot_table(w, t, p);
    sqlf(w, " (_offset BIGINT, _timestamp TIMESTAMP, _timestamp_type TINYINT, _key BLOB, _value BLOB, "
            "_headers MAP(VARCHAR, BLOB)");
    for (int i = 0; i < t->ncols; i++) {
        ck_wr_bytes(w, ", ", 2);
        sql_ident(w, t->cols[i].name);
        sqlf(w, " %s", type_sql[t->cols[i].type]);
    }
    ck_wr_u8(w, ')');
    return run_buf(c, w);
}

/* ", CAST(c AS <type now>) AS c" for each typed column that data of file schema sid has,
 * ", NULL::<type> AS c" for the others (sid -1: the in_cold flags decide). */
static void mapped_cols(ck_wbuf_t *w, const ctopic_t *t, int sid)
{
    for (int i = 0; i < t->ncols; i++) {
        bool has = sid < 0 ? t->cols[i].in_cold : false;
        for (int k = 0; sid >= 0 && k < t->schemas[sid].n && !has; k++)
            has = !strcasecmp(t->schemas[sid].names[k], t->cols[i].name);
        if (has) {
            sqlf(w, ", CAST(");
            sql_ident(w, t->cols[i].name);
            sqlf(w, " AS %s) AS ", type_sql[t->cols[i].type]);
        } else {
            sqlf(w, ", NULL::%s AS ", type_sql[t->cols[i].type]);
        }
        sql_ident(w, t->cols[i].name);
    }
}

/* The three views, as statements appended to w. */
static void views_sql(ck_wbuf_t *w, const ctopic_t *t)
{
    char nm[320];
    /* <t>_hot */
    snprintf(nm, sizeof(nm), "%s_hot", t->sname);
    sqlf(w, "CREATE OR REPLACE VIEW ");
    sql_ident(w, nm);
    sqlf(w, " AS ");
    bool first = true;
    for (int32_t p = 0; p < t->npart; p++) {
        /* sealed tables (waiting for their Parquet file) first, in offset order */
        for (const csealed_t *x = t->sealed; x; x = x->next) {
            if (x->partition != p)
                continue;
            sqlf(w, "%sSELECT ", first ? "" : " UNION ALL ");
            first = false;
            sql_str(w, t->name);
            sqlf(w, "::VARCHAR AS _topic, %d::INTEGER AS _partition, "
                    "_offset, _timestamp, _timestamp_type, _key, _value, _headers", p);
            mapped_cols(w, t, x->schema);
            sqlf(w, " FROM ");
            hot_table_gen(w, t, p, x->gen);
        }
        sqlf(w, "%sSELECT ", first ? "" : " UNION ALL ");
        first = false;
        sql_str(w, t->name);
        sqlf(w, "::VARCHAR AS _topic, %d::INTEGER AS _partition, * FROM ", p);
        hot_table(w, t, p);
    }
    sqlf(w, ";\n");
    /* <t>_cold */
    snprintf(nm, sizeof(nm), "%s_cold", t->sname);
    sqlf(w, "CREATE OR REPLACE VIEW ");
    sql_ident(w, nm);
    sqlf(w, " AS SELECT ");
    if (t->nfiles == 0) {
        for (int i = 0; i < NSYS_ALL; i++)
            sqlf(w, "%sNULL::%s AS %s", i ? ", " : "", sys_types[i], sys_names[i]);
        for (int i = 0; i < t->ncols; i++) {
            sqlf(w, ", NULL::%s AS ", type_sql[t->cols[i].type]);
            sql_ident(w, t->cols[i].name);
        }
        sqlf(w, " LIMIT 0;\n");
    } else {
        /* one read_parquet() per file schema (-1: files of unknown schema) */
        bool first_group = true;
        for (int sid = -1; sid < t->nschemas; sid++) {
            bool any = false;
            for (int i = 0; i < t->nfiles && !any; i++)
                any = t->files[i].schema == sid;
            if (!any)
                continue;
            if (!first_group)
                sqlf(w, " UNION ALL SELECT ");
            first_group = false;
            sqlf(w, "_topic, _partition, _offset, _timestamp, _timestamp_type, _key, _value, _headers");
            mapped_cols(w, t, sid);
            sqlf(w, " FROM read_parquet([");
            bool first = true;
            for (int i = 0; i < t->nfiles; i++) {
                if (t->files[i].schema != sid)
                    continue;
                char path[1500];
                file_path(t, &t->files[i], path, sizeof(path));
                if (!first)
                    ck_wr_u8(w, ',');
                first = false;
                sql_str(w, path);
            }
            sqlf(w, "]%s)", sid < 0 ? ", union_by_name = true" : "");
        }
        sqlf(w, ";\n");
    }
    /* <t> */
    sqlf(w, "CREATE OR REPLACE VIEW ");
    sql_ident(w, t->sname);
    sqlf(w, " AS SELECT * FROM ");
    snprintf(nm, sizeof(nm), "%s_cold", t->sname);
    sql_ident(w, nm);
    sqlf(w, " UNION ALL SELECT * FROM ");
    snprintf(nm, sizeof(nm), "%s_hot", t->sname);
    sql_ident(w, nm);
    sqlf(w, ";\n");
}

static int refresh_views(ck_columnar_t *c, ctopic_t *t)
{
    ck_wbuf_reset(&c->sql);
    sqlf(&c->sql, "BEGIN;\n");
    views_sql(&c->sql, t);
    sqlf(&c->sql, "COMMIT;");
    int rc = run_buf(c, &c->sql);
    if (rc)
        run(c, "ROLLBACK");
    return rc;
}

static void close_appenders(ctopic_t *t)
{
    for (int32_t p = 0; p < t->npart; p++) {
        if (t->parts[p].app) {
            if (duckdb_appender_destroy(&t->parts[p].app) == DuckDBError)
                CK_WARN("columnar", "%s-%d: appender close failed", t->name, p);
            t->parts[p].app = NULL;
        }
        t->parts[p].dirty = false;
    }
}

static int open_appender(ck_columnar_t *c, ctopic_t *t, int32_t p)
{
    if (t->parts[p].app)
        return 0;
    char nm[400];
    snprintf(nm, sizeof(nm), "__ck_hot_%s_%d_%d", t->sname, p, t->parts[p].gen);
    if (duckdb_appender_create(c->conn, NULL, nm, &t->parts[p].app) == DuckDBError) {
        CK_WARN("columnar", "%s: cannot create an appender: %s", nm, duckdb_appender_error(t->parts[p].app));
        duckdb_appender_destroy(&t->parts[p].app);
        t->parts[p].app = NULL;
        return CK_EIO;
    }
    return 0;
}

static duckdb_logical_type col_logical(int type)
{
    static const duckdb_type m[] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BOOLEAN, DUCKDB_TYPE_VARCHAR};
    return duckdb_create_logical_type(m[type]);
}

static void chunk_drop(ctopic_t *t)
{
    if (t->chunk)
        duckdb_destroy_data_chunk(&t->chunk);
    t->chunk = NULL;
    t->chunk_rows = 0;
}

static void chunk_refresh(ctopic_t *t)
{
    int n = NSYS + t->ncols;
    for (int i = 0; i < n; i++) {
        t->vec[i] = duckdb_data_chunk_get_vector(t->chunk, (idx_t)i);
        duckdb_vector_ensure_validity_writable(t->vec[i]);
        t->vdata[i] = duckdb_vector_get_data(t->vec[i]);
        t->vvalid[i] = duckdb_vector_get_validity(t->vec[i]);
    }
}

static int chunk_make(ctopic_t *t)
{
    int n = NSYS + t->ncols;
    duckdb_logical_type types[NSYS + MAX_COLS];
    types[0] = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    types[1] = duckdb_create_logical_type(DUCKDB_TYPE_TIMESTAMP);
    types[2] = duckdb_create_logical_type(DUCKDB_TYPE_TINYINT);
    types[3] = duckdb_create_logical_type(DUCKDB_TYPE_BLOB);
    types[4] = duckdb_create_logical_type(DUCKDB_TYPE_BLOB);
    duckdb_logical_type k = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
    duckdb_logical_type v = duckdb_create_logical_type(DUCKDB_TYPE_BLOB);
    types[5] = duckdb_create_map_type(k, v);
    duckdb_destroy_logical_type(&k);
    duckdb_destroy_logical_type(&v);
    for (int i = 0; i < t->ncols; i++)
        types[NSYS + i] = col_logical(t->cols[i].type);
    t->chunk = duckdb_create_data_chunk(types, (idx_t)n);
    for (int i = 0; i < n; i++)
        duckdb_destroy_logical_type(&types[i]);
    t->chunk_rows = 0;
    if (!t->chunk)
        return CK_ENOMEM;
    chunk_refresh(t);
    return 0;
}

/* Appends the rows collected in the chunk to the partition's hot table. */
static int chunk_flush(ck_columnar_t *c, ctopic_t *t)
{
    if (!t->chunk || t->chunk_rows == 0)
        return 0;
    int32_t p = t->chunk_part;
    int rc = open_appender(c, t, p);
    if (rc)
        return rc;
    duckdb_data_chunk_set_size(t->chunk, (idx_t)t->chunk_rows);
    if (duckdb_append_data_chunk(t->parts[p].app, t->chunk) == DuckDBError) {
        CK_WARN("columnar", "%s-%d: append failed: %s", t->name, p, duckdb_appender_error(t->parts[p].app));
        rc = CK_EIO;
    }
    duckdb_data_chunk_reset(t->chunk);
    chunk_refresh(t);
    t->chunk_rows = 0;
    t->parts[p].dirty = true;
    return rc;
}

/* Schema change: ALTER statements on every hot table, then new views; the appenders and
 * the chunk are rebuilt. `sql` holds the ALTER body for one table ("ADD COLUMN ..."). */
static int alter_all(ck_columnar_t *c, ctopic_t *t, const char *what)
{
    int rc = chunk_flush(c, t);
    close_appenders(t);
    chunk_drop(t);
    if (rc)
        return rc;
    ck_wbuf_t w = CK_WBUF_INIT;
    sqlf(&w, "BEGIN;\n");
    for (int32_t p = 0; p < t->npart; p++) {
        sqlf(&w, "ALTER TABLE ");
        hot_table(&w, t, p);
        sqlf(&w, " %s;\n", what);
    }
    views_sql(&w, t);
    sqlf(&w, "COMMIT;");
    rc = run_buf(c, &w);
    if (rc)
        run(c, "ROLLBACK");
    ck_wbuf_free(&w);
    return rc ? rc : chunk_make(t);
}

static int schema_add(ck_columnar_t *c, ctopic_t *t, const char *key, size_t klen, int type, bool null_only)
{
    pthread_mutex_lock(&t->mu); /* add_col may move t->cols, which the flusher reads */
    int rc = add_col(t, key, klen, type);
    pthread_mutex_unlock(&t->mu);
    if (rc)
        return rc;
    ccol_t *cc = &t->cols[t->ncols - 1];
    cc->null_only = null_only;
    cc->nullable = t->total_rows > 0;
    ck_wbuf_t w = CK_WBUF_INIT;
    sqlf(&w, "ADD COLUMN ");
    sql_ident(&w, cc->name);
    sqlf(&w, " %s", type_sql[type]);
    pthread_mutex_lock(&t->mu);
    rc = w.err ? CK_ENOMEM : alter_all(c, t, sql_cstr(&w));
    if (rc) {
        ck_free(cc->name);
        t->ncols--;
    }
    pthread_mutex_unlock(&t->mu);
    ck_wbuf_free(&w);
    if (rc)
        return rc;
    t->pub_dirty = true;
    CK_DEBUG("columnar", "%s: new column %s %s", t->name, cc->name, type_sql[type]);
    return 0;
}

static int schema_retype(ck_columnar_t *c, ctopic_t *t, int col, int type)
{
    ccol_t *cc = &t->cols[col];
    ck_wbuf_t w = CK_WBUF_INIT;
    sqlf(&w, "ALTER COLUMN ");
    sql_ident(&w, cc->name);
    sqlf(&w, " TYPE %s", type_sql[type]);
    int old = cc->type;
    pthread_mutex_lock(&t->mu);
    cc->type = type;
    int rc = w.err ? CK_ENOMEM : alter_all(c, t, sql_cstr(&w));
    if (rc)
        cc->type = old;
    pthread_mutex_unlock(&t->mu);
    ck_wbuf_free(&w);
    t->pub_dirty = true;
    if (!rc)
        CK_INFO("columnar", "%s: column %s widened %s -> %s", t->name, cc->name, type_sql[old], type_sql[type]);
    return rc;
}

/* ---------------------------------------------------------------- rows */

static int kind_type(int kind)
{
    switch (kind) {
    case CK_JV_INT: return T_INT;
    case CK_JV_FLOAT: return T_FLOAT;
    case CK_JV_BOOL: return T_BOOL;
    case CK_JV_NULL: return -1;
    default: return T_STR;
    }
}

static inline bool col_is(const ccol_t *c, const char *key, size_t len)
{
    return c->len == len && (!memcmp(c->name, key, len) || !strncasecmp(c->name, key, len));
}

/* The column of a JSON field (names compare case-insensitively, as SQL does), or -1.
 * Records of a topic usually list their fields in the same order: hint[pos] remembers
 * which column the field at position pos matched last time. */
static int find_col(ctopic_t *t, int pos, const char *key, size_t len)
{
    if (pos < MAX_COLS) {
        int h = t->hint[pos];
        if (h >= 0 && h < t->ncols && col_is(&t->cols[h], key, len))
            return h;
    }
    for (int i = 0; i < t->ncols; i++) {
        if (col_is(&t->cols[i], key, len)) {
            if (pos < MAX_COLS)
                t->hint[pos] = i;
            return i;
        }
    }
    return -1;
}

static bool sys_name(const char *key, size_t len)
{
    if (len < 5 || key[0] != '_') /* every system column is "_" and at least 4 more */
        return false;
    for (int i = 0; i < NSYS_ALL; i++)
        if (strlen(sys_names[i]) == len && !strncasecmp(sys_names[i], key, len))
            return true;
    return false;
}

/* Makes the schema fit every member of one record (may ALTER). Returns 0 or an error. */
static int fit_schema(ck_columnar_t *c, ctopic_t *t, const ck_jmember_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        if (m[i].key_len == 0 || m[i].key_len > 255 || memchr(m[i].key, 0, m[i].key_len) ||
            sys_name(m[i].key, m[i].key_len))
            continue;
        int want = kind_type(m[i].kind);
        int col = find_col(t, i, m[i].key, m[i].key_len);
        if (col < 0) {
            if (t->ncols >= MAX_COLS)
                continue;
            int rc = schema_add(c, t, m[i].key, m[i].key_len, want < 0 ? T_STR : want, want < 0);
            if (rc)
                return rc;
            continue;
        }
        ccol_t *cc = &t->cols[col];
        if (want < 0 || want == cc->type)
            continue;
        if (cc->null_only) {
            int rc = schema_retype(c, t, col, want);
            if (rc)
                return rc;
            cc->null_only = false;
            continue;
        }
        if (cc->type == T_STR || (cc->type == T_FLOAT && want == T_INT))
            continue;
        int to = ((cc->type == T_INT && want == T_FLOAT)) ? T_FLOAT : T_STR;
        int rc = schema_retype(c, t, col, to);
        if (rc)
            return rc;
    }
    return 0;
}

static inline void mask_set(uint64_t *m, int row, bool valid)
{
    if (valid)
        m[row >> 6] |= 1ULL << (row & 63);
    else
        m[row >> 6] &= ~(1ULL << (row & 63));
}

static inline void set_valid(duckdb_vector v, int row, bool valid)
{
    uint64_t *m = duckdb_vector_get_validity(v);
    if (valid)
        m[row >> 6] |= 1ULL << (row & 63);
    else
        m[row >> 6] &= ~(1ULL << (row & 63));
}

static void put_blob(duckdb_vector v, int row, ck_slice_t s)
{
    if (s.len < 0) {
        set_valid(v, row, false);
        return;
    }
    set_valid(v, row, true);
    duckdb_vector_assign_string_element_len(v, (idx_t)row, (const char *)s.ptr, (idx_t)s.len);
}

static void put_headers(duckdb_vector v, int row, const ck_record_t *r)
{
    duckdb_list_entry *ent = duckdb_vector_get_data(v);
    idx_t base = duckdb_list_vector_get_size(v);
    ent[row].offset = base;
    ent[row].length = 0;
    set_valid(v, row, true);
    if (r->header_count <= 0)
        return;
    duckdb_list_vector_reserve(v, base + (idx_t)r->header_count);
    duckdb_vector child = duckdb_list_vector_get_child(v);
    duckdb_vector kv = duckdb_struct_vector_get_child(child, 0);
    duckdb_vector vv = duckdb_struct_vector_get_child(child, 1);
    duckdb_vector_ensure_validity_writable(kv);
    duckdb_vector_ensure_validity_writable(vv);
    ck_slice_t cur = r->headers_raw;
    ck_record_header_t h;
    idx_t n = 0;
    while (ck_record_header_next(&cur, &h) == 1) {
        /* map keys are unique: a repeated header keeps its last value */
        idx_t at = base + n;
        bool dup = false;
        for (idx_t k = 0; k < n && !dup; k++) {
            /* compare with the keys already stored */
            duckdb_string_t *ks = duckdb_vector_get_data(kv);
            const char *kp = duckdb_string_t_data(&ks[base + k]);
            uint32_t kl = duckdb_string_t_length(ks[base + k]);
            if (kl == (uint32_t)h.key.len && !memcmp(kp, h.key.ptr, kl)) {
                at = base + k;
                dup = true;
            }
        }
        if (!dup) {
            set_valid(kv, (int)at, true);
            duckdb_vector_assign_string_element_len(kv, at, (const char *)h.key.ptr, (idx_t)h.key.len);
            n++;
        }
        put_blob(vv, (int)at, h.value);
    }
    ent[row].length = n;
    duckdb_list_vector_set_size(v, base + n);
}

static void put_text_number(duckdb_vector v, int row, const ck_jmember_t *m)
{
    char buf[64];
    int len = 0;
    if (m->kind == CK_JV_INT) {
        len = snprintf(buf, sizeof(buf), "%lld", (long long)m->i);
    } else {
        /* the shortest text that reads back as the same double */
        for (int prec = 15; prec <= 17; prec++) {
            len = snprintf(buf, sizeof(buf), "%.*g", prec, m->d);
            if (strtod(buf, NULL) == m->d)
                break;
        }
    }
    duckdb_vector_assign_string_element_len(v, (idx_t)row, buf, (idx_t)len);
}

/* Writes one record as row `row` of the chunk (the schema already fits). */
static void put_row(ctopic_t *t, int row, const ck_record_t *r, int8_t ts_type, const ck_jmember_t *m, int nm)
{
    ((int64_t *)t->vdata[0])[row] = r->offset;
    /* microseconds; timestamps beyond DuckDB's range (±290k years) are clamped */
    int64_t ts = r->timestamp;
    if (ts > 9000000000000000LL / 1000)
        ts = 9000000000000000LL / 1000;
    else if (ts < -9000000000000000LL / 1000)
        ts = -9000000000000000LL / 1000;
    ((int64_t *)t->vdata[1])[row] = ts * 1000;
    ((int8_t *)t->vdata[2])[row] = ts_type;
    put_blob(t->vec[3], row, r->key);
    put_blob(t->vec[4], row, r->value);
    put_headers(t->vec[5], row, r);
    for (int i = 0; i < t->ncols; i++)
        mask_set(t->vvalid[NSYS + i], row, false);
    for (int i = 0; i < nm; i++) {
        if (m[i].kind == CK_JV_NULL || m[i].key_len == 0 || m[i].key_len > 255)
            continue;
        int col = find_col(t, i, m[i].key, m[i].key_len);
        if (col < 0)
            continue;
        ccol_t *cc = &t->cols[col];
        cc->seen++;
        duckdb_vector v = t->vec[NSYS + col];
        void *d = t->vdata[NSYS + col];
        switch (cc->type) {
        case T_INT:
            if (m[i].kind != CK_JV_INT)
                continue;
            ((int64_t *)d)[row] = m[i].i;
            break;
        case T_FLOAT:
            if (m[i].kind == CK_JV_INT)
                ((double *)d)[row] = (double)m[i].i;
            else if (m[i].kind == CK_JV_FLOAT)
                ((double *)d)[row] = m[i].d;
            else
                continue;
            break;
        case T_BOOL:
            if (m[i].kind != CK_JV_BOOL)
                continue;
            ((bool *)d)[row] = m[i].b;
            break;
        default:
            if (m[i].kind == CK_JV_INT || m[i].kind == CK_JV_FLOAT)
                put_text_number(v, row, &m[i]);
            else if (m[i].kind == CK_JV_BOOL)
                duckdb_vector_assign_string_element_len(v, (idx_t)row, m[i].b ? "true" : "false", m[i].b ? 4 : 5);
            else
                duckdb_vector_assign_string_element_len(v, (idx_t)row, m[i].str, (idx_t)m[i].str_len);
            break;
        }
        mask_set(t->vvalid[NSYS + col], row, true);
    }
}

/* The JSON members of a record value, or 0 when it is not a JSON object. */
static int scan_value(ck_columnar_t *c, const ck_record_t *r, const ck_jmember_t **m)
{
    if (r->value.len <= 1)
        return 0;
    const uint8_t *p = r->value.ptr, *e = p + r->value.len;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    if (p == e || *p != '{')
        return 0;
    int n = ck_jscan_object(&c->js, (const char *)r->value.ptr, (size_t)r->value.len, m);
    return n > 0 ? n : 0;
}

/* ---------------------------------------------------------------- flush to Parquet */

static void parquet_options(ck_wbuf_t *w, const ctopic_t *t)
{
    const char *codec = t->codec;
    if (!strcmp(codec, "none"))
        codec = "uncompressed";
    sqlf(w, "(FORMAT parquet, COMPRESSION %s", codec);
    if (!strcmp(codec, "zstd"))
        sqlf(w, ", COMPRESSION_LEVEL %d", t->level);
    sqlf(w, ", ROW_GROUP_SIZE %lld)", (long long)t->row_group);
}

static void fq_push(ck_columnar_t *c, ctopic_t *t, csealed_t *x);

/* Seals partition p's hot table: it stops taking appends (a new, empty table takes over in
 * the same transaction as the new views) and goes to the flusher thread, which writes it
 * to Parquet. Worker thread. */
static int seal_partition(ck_columnar_t *c, ctopic_t *t, int32_t p)
{
    cpart_t *cp = &t->parts[p];
    if (cp->hot_rows == 0)
        return 0;
    int rc = chunk_flush(c, t);
    if (cp->app && duckdb_appender_flush(cp->app) == DuckDBError)
        rc = CK_EIO;
    if (rc)
        return rc;
    duckdb_appender_destroy(&cp->app);
    cp->app = NULL;
    cp->dirty = false;
    csealed_t *x = ck_calloc(1, sizeof(*x));
    if (!x)
        return CK_ENOMEM;
    pthread_mutex_lock(&t->mu);
    /* the flusher is behind: wait for it, but not forever (a failing disk must not hold
     * the worker, which serves every topic and must reach shutdown) */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    while (t->pending >= MAX_SEALED) {
        if (pthread_cond_timedwait(&t->cv, &t->mu, &until) == ETIMEDOUT && t->pending >= MAX_SEALED) {
            pthread_mutex_unlock(&t->mu);
            ck_free(x);
            return CK_EAGAIN; /* the rows stay in the active table; retried later */
        }
    }
    x->partition = p;
    x->gen = cp->gen;
    x->first = cp->sealed_end;
    x->last = cp->next - 1;
    x->rows = cp->hot_rows;
    x->schema = current_schema(t);
    if (x->schema < 0) {
        pthread_mutex_unlock(&t->mu);
        ck_free(x);
        return CK_ENOMEM;
    }
    if (t->sealed_tail)
        t->sealed_tail->next = x;
    else
        t->sealed = x;
    t->sealed_tail = x;
    cp->gen++;
    ck_wbuf_t *w = &c->sql;
    ck_wbuf_reset(w);
    sqlf(w, "BEGIN;\n");
    rc = run_buf(c, w);
    if (!rc)
        rc = create_hot(c, t, p, false);
    if (!rc) {
        ck_wbuf_reset(w);
        views_sql(w, t);
        sqlf(w, "COMMIT;");
        rc = run_buf(c, w);
    }
    if (rc) {
        run(c, "ROLLBACK");
        /* undo: the table stays the active one */
        cp->gen--;
        t->sealed_tail = NULL;
        csealed_t **pp = &t->sealed;
        while (*pp != x) {
            t->sealed_tail = *pp;
            pp = &(*pp)->next;
        }
        *pp = NULL;
        pthread_mutex_unlock(&t->mu);
        ck_free(x);
        return rc;
    }
    t->pending++;
    pthread_mutex_unlock(&t->mu);
    cp->sealed_end = cp->next;
    cp->hot_rows = 0;
    cp->hot_since = 0;
    fq_push(c, t, x);
    return 0;
}

/* Flusher thread: writes sealed table x of t to Parquet and commits it (see the top of
 * the file). Returns 0, or an error after which the job is retried. */
static int write_sealed(ck_columnar_t *c, ctopic_t *t, csealed_t *x)
{
    int32_t p = x->partition;
    cfile_t f = {p, x->first, x->last, x->rows, 0, NULL, x->schema};
    char rel[200], sub[64] = "";
    if (t->partitioning) {
        time_t secs = (time_t)(ck_wall_ms() / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(sub, sizeof(sub), t->partitioning == 1 ? "%Y-%m-%d/" : "%Y-%m-%d-%H/", &tm);
    }
    snprintf(rel, sizeof(rel), "partition=%d/%ssegment_%020lld.parquet", p, sub, (long long)x->first);
    char path[1600], tmp[1610], dir[1600];
    snprintf(path, sizeof(path), "%s/%s", t->dir, rel);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = 0;
    if (ck_mkdirs(dir))
        return CK_EIO;
    ck_wbuf_t *w = &c->fsql;
    ck_wbuf_reset(w);
    sqlf(w, "COPY (SELECT ");
    sql_str(w, t->name);
    sqlf(w, "::VARCHAR AS _topic, %d::INTEGER AS _partition, * FROM ", p);
    hot_table_gen(w, t, p, x->gen);
    sqlf(w, ") TO "); /* rows are in offset order: appended so, insertion order is kept */
    sql_str(w, tmp);
    ck_wr_u8(w, ' ');
    parquet_options(w, t);
    int rc = w->err ? CK_ENOMEM : run_conn(c->fconn, sql_cstr(w));
    struct stat st;
    if (!rc && (ck_fsync_path(tmp, false) || stat(tmp, &st) || rename(tmp, path) || ck_fsync_path(dir, true)))
        rc = CK_EIO;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    f.bytes = st.st_size;
    pthread_mutex_lock(&t->mu);
    f.rel = ck_strdup(rel);
    if (!f.rel || add_file(t, &f)) {
        pthread_mutex_unlock(&t->mu);
        ck_free(f.rel);
        unlink(path);
        return CK_ENOMEM;
    }
    cpart_t *cp = &t->parts[p];
    int64_t old_end = cp->cold_end;
    cp->cold_end = x->last + 1;
    rc = manifest_write(t);
    if (rc) {
        /* not committed: forget the file */
        cp->cold_end = old_end;
        ck_free(t->files[--t->nfiles].rel);
        pthread_mutex_unlock(&t->mu);
        unlink(path);
        return rc;
    }
    /* committed; now swap what queries see, atomically: the file in, the table out */
    t->sealed = x->next;
    if (!t->sealed)
        t->sealed_tail = NULL;
    ck_wbuf_reset(w);
    sqlf(w, "BEGIN;\nDROP TABLE ");
    hot_table_gen(w, t, p, x->gen);
    sqlf(w, ";\n");
    views_sql(w, t);
    sqlf(w, "COMMIT;");
    rc = w->err ? CK_ENOMEM : run_conn(c->fconn, sql_cstr(w));
    if (rc) {
        run_conn(c->fconn, "ROLLBACK");
        CK_ERROR("columnar", "%s-%d: cannot swap the written rows out of the hot tables", t->name, p);
        /* the file is committed; the rows also stay in the sealed table until a restart */
    }
    t->pending--;
    t->pub_dirty = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    CK_DEBUG("columnar", "%s-%d: %lld rows [%lld, %lld] -> %s (%lld bytes)", t->name, p, (long long)f.rows,
             (long long)x->first, (long long)x->last, rel, (long long)f.bytes);
    ck_free(x);
    return 0;
}

static void fq_push(ck_columnar_t *c, ctopic_t *t, csealed_t *x)
{
    fjob_t *j = ck_calloc(1, sizeof(*j));
    if (!j) {
        CK_ERROR("columnar", "%s: out of memory queueing a Parquet write", t->name);
        return;
    }
    j->t = t;
    j->s = x;
    pthread_mutex_lock(&c->fmu);
    if (c->ftail)
        c->ftail->next = j;
    else
        c->fhead = j;
    c->ftail = j;
    pthread_cond_broadcast(&c->fcv);
    pthread_mutex_unlock(&c->fmu);
}

static void *flusher_main(void *arg)
{
    ck_columnar_t *c = arg;
    pthread_mutex_lock(&c->fmu);
    for (;;) {
        while (!c->fhead && !c->fstop)
            pthread_cond_wait(&c->fcv, &c->fmu);
        if (c->fstop)
            break;
        fjob_t *j = c->fhead;
        c->fhead = j->next;
        if (!c->fhead)
            c->ftail = NULL;
        j->t->busy = true;
        pthread_mutex_unlock(&c->fmu);
        int rc = write_sealed(c, j->t, j->s);
        pthread_mutex_lock(&c->fmu);
        j->t->busy = false;
        pthread_cond_broadcast(&c->fcv);
        if (rc) {
            ck_idx_topic_set_status(j->t->it, "Parquet write failed: %s (retrying)", ck_strerror(rc));
            CK_WARN("columnar", "%s: Parquet write failed: %s (retrying in 1 s)", j->t->name, ck_strerror(rc));
            /* back to the head of the queue: files of a partition are written in order */
            j->next = c->fhead;
            c->fhead = j;
            if (!c->ftail)
                c->ftail = j;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&c->fcv, &c->fmu, &ts);
            continue;
        }
        ck_free(j);
    }
    pthread_mutex_unlock(&c->fmu);
    return NULL;
}

/* Before a topic is freed: its queued writes are dropped (the rows are rebuilt from the
 * log at the next start) and a write in progress finishes. Worker thread. */
static void fq_forget(ck_columnar_t *c, ctopic_t *t)
{
    pthread_mutex_lock(&c->fmu);
    for (fjob_t **pp = &c->fhead; *pp;) {
        fjob_t *j = *pp;
        if (j->t == t) {
            *pp = j->next;
            ck_free(j); /* j->s stays on t->sealed, freed with t */
        } else {
            pp = &j->next;
        }
    }
    c->ftail = NULL;
    for (fjob_t *j = c->fhead; j; j = j->next)
        c->ftail = j;
    while (t->busy)
        pthread_cond_wait(&c->fcv, &c->fmu);
    pthread_mutex_unlock(&c->fmu);
}

/* Files wholly below the log start (retention, DeleteRecords) go away. */
static void apply_retention_locked(ck_columnar_t *c, ctopic_t *t, ck_idx_topic_t *it);

static void apply_retention(ck_columnar_t *c, ctopic_t *t, ck_idx_topic_t *it)
{
    pthread_mutex_lock(&t->mu);
    apply_retention_locked(c, t, it);
    pthread_mutex_unlock(&t->mu);
}

static void apply_retention_locked(ck_columnar_t *c, ctopic_t *t, ck_idx_topic_t *it)
{
    bool any = false;
    for (int i = 0; i < t->nfiles; i++) {
        int64_t ls = ck_idx_topic_log_start(it, t->files[i].partition);
        if (t->files[i].last < ls)
            any = true;
    }
    if (!any)
        return;
    cfile_t *gone = ck_calloc((size_t)t->nfiles, sizeof(cfile_t));
    if (!gone)
        return;
    int ng = 0, k = 0;
    for (int i = 0; i < t->nfiles; i++) {
        if (t->files[i].last < ck_idx_topic_log_start(it, t->files[i].partition))
            gone[ng++] = t->files[i];
        else
            t->files[k++] = t->files[i];
    }
    t->nfiles = k;
    if (manifest_write(t) == 0 && refresh_views(c, t) == 0) {
        for (int i = 0; i < ng; i++) {
            char path[1600];
            file_path(t, &gone[i], path, sizeof(path));
            unlink(path);
            CK_INFO("columnar", "%s: retention removed %s", t->name, gone[i].rel);
            ck_free(gone[i].rel);
        }
    } else {
        for (int i = 0; i < ng; i++)
            add_file(t, &gone[i]);
    }
    ck_free(gone);
}

/* ---------------------------------------------------------------- ops */

static void read_options(ctopic_t *t, const ck_kvs_t *cfg)
{
    const char *v = ck_kvs_get(cfg, "columnar.compression");
    snprintf(t->codec, sizeof(t->codec), "%s", v ? v : "zstd");
    v = ck_kvs_get(cfg, "columnar.compression.level");
    t->level = v ? atoi(v) : 3;
    if (t->level < 1 || t->level > 22)
        t->level = 3;
    v = ck_kvs_get(cfg, "columnar.row_group_size");
    t->row_group = v ? atoll(v) : 100000;
    if (t->row_group < 1000)
        t->row_group = 100000;
    v = ck_kvs_get(cfg, "columnar.partitioning");
    t->partitioning = !v || !strcmp(v, "none") ? 0 : !strcmp(v, "daily") ? 1 : 2;
}

/* A user-given columnar.json_schema ("a:int64,b:string?") seeds the columns. */
static void seed_schema(ctopic_t *t, const char *s)
{
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char item[300];
        if (len < sizeof(item)) {
            memcpy(item, s, len);
            item[len] = 0;
            char *colon = strrchr(item, ':');
            if (colon) {
                *colon = 0;
                char *ty = colon + 1;
                size_t tl = strlen(ty);
                bool q = tl && ty[tl - 1] == '?';
                if (q)
                    ty[tl - 1] = 0;
                int type = type_from_schema(ty);
                if (type >= 0 && item[0] && !sys_name(item, strlen(item)) && add_col(t, item, strlen(item), type) == 0)
                    t->cols[t->ncols - 1].nullable = q;
            }
        }
        s = end ? end + 1 : NULL;
    }
}

static void topic_free(ctopic_t *t)
{
    if (!t)
        return;
    while (t->sealed) {
        csealed_t *x = t->sealed;
        t->sealed = x->next;
        ck_free(x);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    ck_free(t->published);
    close_appenders(t);
    chunk_drop(t);
    for (int i = 0; i < t->ncols; i++)
        ck_free(t->cols[i].name);
    for (int i = 0; i < t->nfiles; i++)
        ck_free(t->files[i].rel);
    ck_free(t->cols);
    ck_free(t->files);
    schemas_free(t);
    ck_free(t->parts);
    ck_free(t->name);
    ck_free(t);
}

static void drop_sql_objects(ck_columnar_t *c, ctopic_t *t)
{
    char nm[320];
    ck_wbuf_t *w = &c->sql;
    ck_wbuf_reset(w);
    sqlf(w, "DROP VIEW IF EXISTS ");
    sql_ident(w, t->sname);
    snprintf(nm, sizeof(nm), "%s_hot", t->sname);
    sqlf(w, "; DROP VIEW IF EXISTS ");
    sql_ident(w, nm);
    snprintf(nm, sizeof(nm), "%s_cold", t->sname);
    sqlf(w, "; DROP VIEW IF EXISTS ");
    sql_ident(w, nm);
    sqlf(w, ";");
    for (int32_t p = 0; p < t->npart; p++) {
        sqlf(w, " DROP TABLE IF EXISTS ");
        hot_table(w, t, p);
        sqlf(w, ";");
    }
    for (const csealed_t *x = t->sealed; x; x = x->next) {
        sqlf(w, " DROP TABLE IF EXISTS ");
        hot_table_gen(w, t, x->partition, x->gen);
        sqlf(w, ";");
    }
    run_buf(c, w);
}

static int op_open(void *cap, ck_idx_topic_t *it, int64_t *next)
{
    ck_columnar_t *c = cap;
    ctopic_t *t = it->priv;
    if (t) {
        /* more partitions */
        if (it->npart > t->npart) {
            int rc = chunk_flush(c, t);
            close_appenders(t);
            pthread_mutex_lock(&t->mu);
            cpart_t *np = ck_realloc(t->parts, sizeof(cpart_t) * (size_t)it->npart);
            if (np)
                t->parts = np;
            int64_t *pub = np ? ck_realloc(t->published, sizeof(int64_t) * (size_t)it->npart) : NULL;
            if (!pub) {
                pthread_mutex_unlock(&t->mu);
                return CK_ENOMEM;
            }
            t->published = pub;
            for (int32_t p = t->npart; p < it->npart; p++)
                pub[p] = -1;
            for (int32_t p = t->npart; p < it->npart; p++)
                memset(&np[p], 0, sizeof(np[p]));
            int32_t old = t->npart;
            t->npart = it->npart;
            for (int32_t p = old; p < t->npart && !rc; p++)
                rc = create_hot(c, t, p, true);
            if (!rc)
                rc = refresh_views(c, t);
            if (!rc)
                rc = manifest_write(t);
            pthread_mutex_unlock(&t->mu);
            if (rc)
                return rc;
        }
        for (int32_t p = 0; p < t->npart; p++)
            next[p] = t->parts[p].next;
        publish(c, t);
        return 0;
    }
    t = ck_calloc(1, sizeof(*t));
    if (!t)
        return CK_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    for (int i = 0; i < MAX_COLS; i++)
        t->hint[i] = -1;
    t->name = ck_strdup(it->name);
    t->npart = it->npart;
    t->parts = ck_calloc((size_t)it->npart, sizeof(cpart_t));
    t->published = ck_calloc((size_t)it->npart, sizeof(int64_t));
    if (!t->name || !t->parts || !t->published) {
        topic_free(t);
        return CK_ENOMEM;
    }
    memcpy(t->id, it->id, 16);
    ck_columnar_sql_name(t->name, t->sname, sizeof(t->sname));
    for (ctopic_t *o = c->open; o; o = o->lnext) {
        if (!strcasecmp(o->sname, t->sname)) {
            ck_idx_topic_set_status(it, "SQL name %s is taken by topic %s; rename one of them", t->sname, o->name);
            CK_WARN("columnar", "%s: SQL name %s is taken by topic %s; no SQL tables", t->name, t->sname, o->name);
            topic_free(t);
            return CK_EEXIST;
        }
    }
    snprintf(t->dir, sizeof(t->dir), "%s/%s", c->dir, t->name);
    read_options(t, &it->configs);
    int rc = manifest_load(t);
    if (!rc && t->ncols == 0)
        seed_schema(t, ck_kvs_get(&it->configs, "columnar.json_schema"));
    if (!rc)
        rc = ck_mkdirs(t->dir);
    if (!rc)
        remove_orphans(t, "", 0);
    /* files whose partition no longer exists cannot be: partitions only grow */
    for (int32_t p = 0; p < t->npart && !rc; p++) {
        t->parts[p].next = t->parts[p].cold_end;
        t->parts[p].sealed_end = t->parts[p].cold_end;
        rc = create_hot(c, t, p, true);
    }
    if (!rc)
        rc = refresh_views(c, t);
    if (!rc)
        rc = manifest_write(t);
    if (!rc)
        rc = chunk_make(t);
    if (rc) {
        drop_sql_objects(c, t);
        topic_free(t);
        return rc;
    }
    for (int32_t p = 0; p < t->npart; p++) {
        next[p] = t->parts[p].next;
        ck_idx_topic_set_visible(it, p, t->parts[p].next);
    }
    it->priv = t;
    t->it = it;
    t->lnext = c->open;
    c->open = t;
    publish(c, t);
    CK_INFO("columnar", "%s: SQL tables %s, %s_hot, %s_cold (%d files, %d columns)", t->name, t->sname, t->sname,
            t->sname, t->nfiles, t->ncols);
    return 0;
}

static int op_config(void *cap, ck_idx_topic_t *it)
{
    ctopic_t *t = it->priv;
    if (t)
        read_options(t, &it->configs);
    (void)cap;
    return 0;
}

static int op_apply(void *cap, ck_idx_topic_t *it, const ck_idx_batch_t *b)
{
    ck_columnar_t *c = cap;
    ctopic_t *t = it->priv;
    if (!t || b->partition >= t->npart)
        return CK_EINVAL;
    cpart_t *cp = &t->parts[b->partition];
    if (t->chunk_rows && t->chunk_part != b->partition) {
        int rc = chunk_flush(c, t);
        if (rc)
            return rc;
    }
    t->chunk_part = b->partition;
    int rc = 0;
    for (int i = 0; i < b->n && !rc; i++) {
        const ck_record_t *r = &b->recs[i];
        const ck_jmember_t *m = NULL;
        int nm = scan_value(c, r, &m);
        if (nm > 0) {
            rc = fit_schema(c, t, m, nm);
            if (rc)
                break;
            /* fit_schema may have flushed the chunk; the members stay valid (the scanner
             * is not used in between) */
        }
        if (!t->chunk && (rc = chunk_make(t)))
            break;
        t->chunk_part = b->partition;
        put_row(t, t->chunk_rows++, r, b->ts_type, m, nm);
        t->total_rows++;
        if (t->chunk_rows == (int)duckdb_vector_size())
            rc = chunk_flush(c, t);
        if (!rc) {
            cp->next = r->offset + 1;
            cp->hot_rows++;
            if (!cp->hot_since)
                cp->hot_since = ck_mono_ms();
        }
    }
    if (rc)
        return rc;
    if (c->cfg.hot_max_records > 0 && cp->hot_rows >= c->cfg.hot_max_records) {
        rc = seal_partition(c, t, b->partition);
        if (!rc)
            publish(c, t);
        else if (rc == CK_EAGAIN)
            rc = 0; /* the writer is behind: the hot table grows, sealed at a later call */
    }
    return rc;
}

static void make_visible(ck_columnar_t *c, ctopic_t *t)
{
    if (chunk_flush(c, t))
        return;
    for (int32_t p = 0; p < t->npart; p++) {
        cpart_t *cp = &t->parts[p];
        if (cp->dirty && cp->app) {
            if (duckdb_appender_flush(cp->app) == DuckDBError) {
                ck_idx_topic_set_status(t->it, "append failed: %s", duckdb_appender_error(cp->app));
                continue;
            }
            cp->dirty = false;
        }
        if (t->published[p] != cp->next) {
            ck_idx_topic_set_visible(t->it, p, cp->next);
            t->published[p] = cp->next;
        }
    }
}

static void op_idle(void *cap, int64_t now)
{
    ck_columnar_t *c = cap;
    for (ctopic_t *t = c->open; t; t = t->lnext) {
        make_visible(c, t);
        bool changed = false;
        for (int32_t p = 0; p < t->npart; p++) {
            cpart_t *cp = &t->parts[p];
            if (cp->hot_rows && cp->hot_since && now - cp->hot_since >= c->cfg.flush_interval_ms) {
                int rc = seal_partition(c, t, p);
                if (rc) {
                    if (rc != CK_EAGAIN) /* EAGAIN: the writer is behind, not failing */
                        ck_idx_topic_set_status(t->it, "cannot seal a hot table: %s", ck_strerror(rc));
                    cp->hot_since = now; /* retry after another interval */
                } else {
                    changed = true;
                }
            }
        }
        if (now - t->last_retention >= 1000) {
            t->last_retention = now;
            int before = t->nfiles;
            apply_retention(c, t, t->it);
            changed |= before != t->nfiles;
        }
        if (changed || t->pub_dirty || now - t->last_publish >= 1000) {
            publish(c, t);
            t->pub_dirty = false;
            t->last_publish = now;
        }
    }
}

static void unlink_open(ck_columnar_t *c, ctopic_t *t)
{
    for (ctopic_t **pp = &c->open; *pp; pp = &(*pp)->lnext) {
        if (*pp == t) {
            *pp = t->lnext;
            break;
        }
    }
}

static void op_drop(void *cap, ck_idx_topic_t *it)
{
    ck_columnar_t *c = cap;
    ctopic_t *t = it->priv;
    if (!t)
        return;
    unlink_open(c, t);
    fq_forget(c, t);
    close_appenders(t);
    chunk_drop(t);
    drop_sql_objects(c, t);
    ck_rmtree(t->dir);
    unpublish(c, t->name);
    CK_INFO("columnar", "%s: SQL tables and Parquet files removed", t->name);
    topic_free(t);
    it->priv = NULL;
}

static void op_close(void *cap, ck_idx_topic_t *it)
{
    ck_columnar_t *c = cap;
    ctopic_t *t = it->priv;
    if (!t)
        return;
    unlink_open(c, t);
    fq_forget(c, t);
    chunk_flush(c, t);
    close_appenders(t);
    unpublish(c, t->name);
    topic_free(t);
    it->priv = NULL;
}

static bool op_enabled(const ck_topic_t *tp)
{
    const char *v = ck_topic_config(tp, "columnar.enabled", NULL);
    return v && !strcasecmp(v, "true");
}

const ck_capability_ops_t ck_columnar_ops = {
    .name = "columnar",
    .enabled = op_enabled,
    .open_topic = op_open,
    .config_topic = op_config,
    .apply = op_apply,
    .idle = op_idle,
    .drop_topic = op_drop,
    .close_topic = op_close,
};

int ck_columnar_new(const ck_columnar_config_t *cfg, duckdb_database db, ck_columnar_t **out)
{
    ck_columnar_t *c = ck_calloc(1, sizeof(*c));
    if (!c)
        return CK_ENOMEM;
    c->cfg = *cfg;
    snprintf(c->dir, sizeof(c->dir), "%s", cfg->dir);
    c->cfg.dir = c->dir;
    c->db = db;
    pthread_mutex_init(&c->mu, NULL);
    ck_jscan_init(&c->js);
    pthread_mutex_init(&c->fmu, NULL);
    pthread_cond_init(&c->fcv, NULL);
    if (ck_mkdirs(c->dir) || duckdb_connect(db, &c->conn) == DuckDBError ||
        duckdb_connect(db, &c->fconn) == DuckDBError) {
        ck_columnar_free(c);
        return CK_EIO;
    }
    if (pthread_create(&c->fthr, NULL, flusher_main, c) != 0) {
        ck_columnar_free(c);
        return CK_ENOMEM;
    }
    c->fstarted = true;
    pthread_setname_np(c->fthr, "ck-parquet");
    *out = c;
    return 0;
}

void ck_columnar_free(ck_columnar_t *c)
{
    if (!c)
        return;
    if (c->fstarted) {
        pthread_mutex_lock(&c->fmu);
        c->fstop = true;
        pthread_cond_broadcast(&c->fcv);
        pthread_mutex_unlock(&c->fmu);
        pthread_join(c->fthr, NULL);
    }
    while (c->fhead) {
        fjob_t *j = c->fhead;
        c->fhead = j->next;
        ck_free(j);
    }
    if (c->fconn)
        duckdb_disconnect(&c->fconn);
    ck_wbuf_free(&c->fsql);
    pthread_mutex_destroy(&c->fmu);
    pthread_cond_destroy(&c->fcv);
    if (c->conn)
        duckdb_disconnect(&c->conn);
    ck_jscan_free(&c->js);
    ck_wbuf_free(&c->sql);
    for (int i = 0; i < c->nents; i++) {
        ck_free(c->ents[i]->cols);
        ck_free(c->ents[i]);
    }
    ck_free(c->ents);
    pthread_mutex_destroy(&c->mu);
    ck_free(c);
}
