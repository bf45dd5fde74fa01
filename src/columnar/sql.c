/* The DuckDB database and the user-query executor (contracts and the JSON encoding of
 * values in sql.h).
 *
 * Lockdown order at open: DuckDB options that can be set in duckdb_config (threads,
 * memory_limit, temp_directory, no extension autoload/autoinstall) go there; allowed_directories
 * must be set while external access is still on, so the first connection runs SET
 * allowed_directories=[...]; SET enable_external_access=false; SET lock_configuration=true; before
 * anybody else sees the database.
 *
 * Timeouts: one process-wide watchdog thread (started by the first ck_sql_db_open,
 * joined by the last ck_sql_db_close) keeps the running user queries in a list with
 * their deadlines and calls duckdb_interrupt on a connection whose deadline passed —
 * again every WD_REFIRE_MS until the query returns, because DuckDB clears the interrupt
 * flag when a new statement starts on the connection (so one interrupt that lands
 * between prepare and execute would be lost). A query costs one lock/unlock to register
 * and one to leave; no thread is created per query.
 *
 * Results are read with the streaming API (duckdb_pending_prepared_streaming, marked
 * deprecated in 1.4 but the only C entry point that does not materialise the whole
 * result) and duckdb_fetch_chunk, so at most limit+1 rows are ever produced. */
#include "columnar/sql.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/jsonw.h"

#define DEFAULT_LIMIT 1000
#define DEFAULT_TIMEOUT_MS 30000
#define WD_REFIRE_MS 10

struct ck_sql_db {
    duckdb_database db;
};

static void copy_msg(char *dst, size_t n, const char *src)
{
    if (!dst || n == 0)
        return;
    snprintf(dst, n, "%s", src ? src : "unknown error");
}

/* ------------------------------------------------------------------ watchdog */

typedef struct ck__sql_watch {
    duckdb_connection conn;
    int64_t next_ms; /* monotonic ms of the next interrupt */
    bool fired;      /* interrupted at least once */
    struct ck__sql_watch *prev, *next;
} watch_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* open databases (under wd_life) */
    bool stop;
    pthread_t thr;
    int64_t wait_until; /* what the thread sleeps until; INT64_MAX = no deadline */
    watch_t *head;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER, .wait_until = INT64_MAX};

static pthread_once_t wd_once = PTHREAD_ONCE_INIT;

static void wd_init_cv(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&wd.cv, &a);
    pthread_condattr_destroy(&a);
}

static void *wd_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd.mu);
    while (!wd.stop) {
        int64_t now = ck_mono_ms(), next = INT64_MAX;
        for (watch_t *e = wd.head; e; e = e->next) {
            if (e->next_ms <= now) {
                duckdb_interrupt(e->conn); /* sets an atomic flag; does not block */
                e->fired = true;
                e->next_ms = now + WD_REFIRE_MS;
            }
            if (e->next_ms < next)
                next = e->next_ms;
        }
        wd.wait_until = next;
        if (next == INT64_MAX) {
            pthread_cond_wait(&wd.cv, &wd.mu);
        } else {
            struct timespec ts = {.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000};
            pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
        }
    }
    pthread_mutex_unlock(&wd.mu);
    return NULL;
}

/* Starting and stopping the thread, and refs, are serialised by wd_life so that a stop
 * (which joins) and a new start never interleave. */
static pthread_mutex_t wd_life = PTHREAD_MUTEX_INITIALIZER;

static int wd_acquire(void)
{
    pthread_once(&wd_once, wd_init_cv);
    pthread_mutex_lock(&wd_life);
    int rc = 0;
    if (wd.refs == 0) {
        wd.stop = false;
        if (pthread_create(&wd.thr, NULL, wd_main, NULL) != 0)
            rc = CK_ENOMEM;
    }
    if (!rc)
        wd.refs++;
    pthread_mutex_unlock(&wd_life);
    return rc;
}

static void wd_release(void)
{
    pthread_mutex_lock(&wd_life);
    if (--wd.refs == 0) {
        pthread_mutex_lock(&wd.mu);
        wd.stop = true;
        pthread_cond_signal(&wd.cv);
        pthread_mutex_unlock(&wd.mu);
        pthread_join(wd.thr, NULL);
    }
    pthread_mutex_unlock(&wd_life);
}

static void wd_add(watch_t *e, duckdb_connection c, int64_t timeout_ms)
{
    pthread_once(&wd_once, wd_init_cv);
    e->conn = c;
    e->fired = false;
    e->prev = NULL;
    int64_t now = ck_mono_ms();
    e->next_ms = timeout_ms > INT64_MAX - now ? INT64_MAX - 1 : now + timeout_ms;
    pthread_mutex_lock(&wd.mu);
    e->next = wd.head;
    if (wd.head)
        wd.head->prev = e;
    wd.head = e;
    if (e->next_ms < wd.wait_until)
        pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
}

/* After this returns the watchdog no longer touches c. Returns whether it interrupted c. */
static bool wd_del(watch_t *e)
{
    pthread_mutex_lock(&wd.mu);
    if (e->prev)
        e->prev->next = e->next;
    else
        wd.head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    bool fired = e->fired;
    pthread_mutex_unlock(&wd.mu);
    return fired;
}

/* ------------------------------------------------------------------ database */

static int mkdir_p(const char *path, char *err, int errlen)
{
    int rc = ck_mkdirs(path);
    if (rc == CK_ETOOBIG) {
        copy_msg(err, errlen > 0 ? (size_t)errlen : 0, "allowed_dir is too long");
        return CK_EINVAL;
    }
    if (rc) {
        if (err && errlen > 0)
            snprintf(err, (size_t)errlen, "cannot create %s: %s", path, strerror(errno));
        return CK_EIO;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (err && errlen > 0)
            snprintf(err, (size_t)errlen, "%s is not a folder", path);
        return CK_EIO;
    }
    return 0;
}

/* Maps a failed result's DuckDB error type to a CK_E* code. */
static int code_of(duckdb_error_type t)
{
    switch (t) {
    case DUCKDB_ERROR_IO:
        return CK_EIO;
    case DUCKDB_ERROR_OUT_OF_MEMORY:
        return CK_ENOMEM;
    default:
        return CK_EINVAL;
    }
}

int ck_sql_exec(duckdb_connection c, const char *sql, char *err, int errlen)
{
    duckdb_result res;
    if (duckdb_query(c, sql, &res) == DuckDBError) {
        copy_msg(err, errlen > 0 ? (size_t)errlen : 0, duckdb_result_error(&res));
        int rc = code_of(duckdb_result_error_type(&res));
        duckdb_destroy_result(&res);
        return rc;
    }
    duckdb_destroy_result(&res);
    return 0;
}

int ck_sql_db_open(const char *allowed_dir, const char *memory_limit, ck_sql_db_t **out, char *err,
                   int errlen)
{
    size_t en = errlen > 0 ? (size_t)errlen : 0;
    *out = NULL;
    if (!allowed_dir || allowed_dir[0] != '/') {
        copy_msg(err, en, "allowed_dir must be an absolute path");
        return CK_EINVAL;
    }
    int rc = mkdir_p(allowed_dir, err, errlen);
    if (rc)
        return rc;

    /* SET allowed_directories=['<dir, quotes doubled>'] ... */
    ck_wbuf_t sql = CK_WBUF_INIT;
    ck_jsonw_lit(&sql, "SET allowed_directories=['");
    for (const char *p = allowed_dir; *p; p++) {
        if (*p == '\'')
            ck_wr_u8(&sql, '\'');
        ck_wr_u8(&sql, (uint8_t)*p);
    }
    /* parquet_metadata_cache (a parquet extension setting, so not settable at open): our
     * Parquet files never change once written, so their footers can stay in memory */
    ck_jsonw_lit(&sql, "']; SET parquet_metadata_cache=true; SET enable_external_access=false; "
                       "SET lock_configuration=true;");
    ck_wr_u8(&sql, 0);
    ck_sql_db_t *db = ck_calloc(1, sizeof(*db));
    duckdb_config cfg = NULL;
    if (sql.err || !db || duckdb_create_config(&cfg) == DuckDBError) {
        copy_msg(err, en, "out of memory");
        rc = CK_ENOMEM;
        goto fail;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char threads[32];
    snprintf(threads, sizeof(threads), "%ld", ncpu > 0 ? ncpu : 1);
    /* DuckDB's default spill folder is ".tmp" under the process's working folder, and it
     * becomes readable by user queries with the allowed folder; use our own instead */
    size_t dl = strlen(allowed_dir);
    while (dl > 1 && allowed_dir[dl - 1] == '/')
        dl--;
    char tmpdir[4200];
    snprintf(tmpdir, sizeof(tmpdir), "%.*s.tmp", (int)dl, allowed_dir);
    const char *opts[][2] = {
        {"threads", threads},
        {"temp_directory", tmpdir},
        {"autoload_known_extensions", "false"},
        {"autoinstall_known_extensions", "false"},
        {"allow_community_extensions", "false"},
        {"memory_limit", memory_limit},
        /* Compressed materialization packs GROUP BY / ORDER BY strings into integers sized
         * from the column statistics. On a table being appended to, a query can read the
         * statistics from before the newest rows (e.g. a column that was all NULL) and then
         * decodes their strings to garbage ("Paris" came back as "T"); correctness first. */
        {"disabled_optimizers", "compressed_materialization"},
        {"force_compression", "uncompressed"},
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        if (!opts[i][1])
            continue;
        if (duckdb_set_config(cfg, opts[i][0], opts[i][1]) == DuckDBError) {
            if (err && errlen > 0)
                snprintf(err, en, "DuckDB refused %s=%s", opts[i][0], opts[i][1]);
            rc = CK_EINVAL;
            goto fail;
        }
    }
    char *open_err = NULL;
    if (duckdb_open_ext(NULL, &db->db, cfg, &open_err) == DuckDBError) {
        if (err && errlen > 0)
            snprintf(err, en, "cannot open DuckDB: %s", open_err ? open_err : "unknown error");
        duckdb_free(open_err);
        db->db = NULL;
        rc = CK_EINVAL;
        goto fail;
    }
    duckdb_destroy_config(&cfg);

    duckdb_connection c;
    if (duckdb_connect(db->db, &c) == DuckDBError) {
        copy_msg(err, en, "cannot connect to DuckDB");
        rc = CK_ENOMEM;
        goto fail;
    }
    rc = ck_sql_exec(c, (const char *)sql.data, err, errlen);
    duckdb_disconnect(&c);
    if (rc)
        goto fail;
    rc = wd_acquire();
    if (rc) {
        copy_msg(err, en, "cannot start the query watchdog thread");
        goto fail;
    }
    ck_wbuf_free(&sql);
    *out = db;
    return 0;
fail:
    if (cfg)
        duckdb_destroy_config(&cfg);
    if (db && db->db)
        duckdb_close(&db->db);
    ck_free(db);
    ck_wbuf_free(&sql);
    return rc;
}

void ck_sql_db_close(ck_sql_db_t *db)
{
    if (!db)
        return;
    duckdb_close(&db->db);
    wd_release();
    ck_free(db);
}

duckdb_database ck_sql_db_duckdb(ck_sql_db_t *db)
{
    return db->db;
}

int ck_sql_connect(ck_sql_db_t *db, duckdb_connection *out)
{
    return duckdb_connect(db->db, out) == DuckDBError ? CK_ENOMEM : 0;
}

/* ------------------------------------------------------------------ value encoding */

/* How to write one column (or nested child) of a result, built once per query. */
typedef struct col {
    duckdb_type id;
    duckdb_type store; /* DECIMAL, ENUM: the integer type that holds the value */
    uint8_t scale;     /* DECIMAL */
    bool unnamed;      /* STRUCT of empty names (row(1,2)): written as an array */
    idx_t array_size;  /* ARRAY */
    idx_t nkids;       /* LIST, ARRAY: 1 (the element); MAP: 2 (key, value); STRUCT, UNION */
    struct col *kids;
    char **keys; /* STRUCT: "\"name\":" ready to write */
    size_t *keylen;
    idx_t ndict; /* ENUM */
    char **dict; /* duckdb_malloc'd */
} col_t;

static void col_free(col_t *c)
{
    for (idx_t i = 0; i < c->nkids; i++) {
        if (c->kids)
            col_free(&c->kids[i]);
        if (c->keys)
            ck_free(c->keys[i]);
    }
    for (idx_t i = 0; i < c->ndict; i++)
        duckdb_free(c->dict[i]);
    ck_free(c->kids);
    ck_free(c->keys);
    ck_free(c->keylen);
    ck_free(c->dict);
    memset(c, 0, sizeof(*c));
}

/* "\"name\":" as a NUL-free byte string (ck_malloc'd) and its length. */
static char *json_key(const char *name, size_t *len)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_jsonw_cstr(&w, name ? name : "");
    ck_wr_u8(&w, ':');
    if (w.err) {
        ck_wbuf_free(&w);
        return NULL;
    }
    return (char *)ck_wbuf_steal(&w, len);
}

static int col_build(col_t *c, duckdb_logical_type t)
{
    memset(c, 0, sizeof(*c));
    c->id = duckdb_get_type_id(t);
    duckdb_logical_type kid[2] = {NULL, NULL};
    int rc = 0;
    switch (c->id) {
    case DUCKDB_TYPE_DECIMAL:
        c->store = duckdb_decimal_internal_type(t);
        c->scale = duckdb_decimal_scale(t);
        return 0;
    case DUCKDB_TYPE_ENUM:
        c->store = duckdb_enum_internal_type(t);
        c->ndict = duckdb_enum_dictionary_size(t);
        c->dict = ck_calloc(c->ndict ? c->ndict : 1, sizeof(char *));
        if (!c->dict) {
            c->ndict = 0;
            return CK_ENOMEM;
        }
        for (idx_t i = 0; i < c->ndict; i++)
            if (!(c->dict[i] = duckdb_enum_dictionary_value(t, i)))
                rc = CK_ENOMEM;
        return rc;
    case DUCKDB_TYPE_LIST:
        c->nkids = 1;
        kid[0] = duckdb_list_type_child_type(t);
        break;
    case DUCKDB_TYPE_ARRAY:
        c->nkids = 1;
        c->array_size = duckdb_array_type_array_size(t);
        kid[0] = duckdb_array_type_child_type(t);
        break;
    case DUCKDB_TYPE_MAP:
        c->nkids = 2;
        kid[0] = duckdb_map_type_key_type(t);
        kid[1] = duckdb_map_type_value_type(t);
        break;
    case DUCKDB_TYPE_STRUCT:
        c->nkids = duckdb_struct_type_child_count(t);
        break;
    case DUCKDB_TYPE_UNION:
        c->nkids = duckdb_union_type_member_count(t);
        break;
    default:
        return 0;
    }
    c->kids = ck_calloc(c->nkids ? c->nkids : 1, sizeof(col_t));
    if (c->id == DUCKDB_TYPE_STRUCT) {
        c->keys = ck_calloc(c->nkids ? c->nkids : 1, sizeof(char *));
        c->keylen = ck_calloc(c->nkids ? c->nkids : 1, sizeof(size_t));
    }
    if (!c->kids || (c->id == DUCKDB_TYPE_STRUCT && (!c->keys || !c->keylen))) {
        rc = CK_ENOMEM;
        for (int i = 0; i < 2; i++)
            if (kid[i])
                duckdb_destroy_logical_type(&kid[i]);
        ck_free(c->kids);
        c->kids = NULL;
        c->nkids = 0;
        return rc;
    }
    c->unnamed = c->id == DUCKDB_TYPE_STRUCT;
    for (idx_t i = 0; i < c->nkids; i++) {
        duckdb_logical_type k;
        if (c->id == DUCKDB_TYPE_STRUCT) {
            k = duckdb_struct_type_child_type(t, i);
            char *name = duckdb_struct_type_child_name(t, i);
            if (name && name[0])
                c->unnamed = false;
            if (!(c->keys[i] = json_key(name, &c->keylen[i])))
                rc = CK_ENOMEM;
            duckdb_free(name);
        } else if (c->id == DUCKDB_TYPE_UNION) {
            k = duckdb_union_type_member_type(t, i);
        } else {
            k = kid[i];
            kid[i] = NULL;
        }
        int r = col_build(&c->kids[i], k);
        if (r)
            rc = r;
        duckdb_destroy_logical_type(&k);
    }
    if (c->nkids == 0)
        c->unnamed = false;
    return rc;
}

static inline bool row_valid(const uint64_t *valid, idx_t row)
{
    return !valid || (valid[row >> 6] >> (row & 63)) & 1;
}

/* The digits of v, right-aligned in buf[40]; returns a pointer to the first. */
static char *u128_digits(char *buf, unsigned __int128 v)
{
    char *p = buf + 40;
    do {
        *--p = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    return p;
}

static void put_i128(ck_wbuf_t *w, __int128 v, unsigned scale)
{
    char buf[40];
    unsigned __int128 u =
        v < 0 ? (unsigned __int128)0 - (unsigned __int128)v : (unsigned __int128)v;
    char *d = u128_digits(buf, u);
    size_t n = (size_t)(buf + 40 - d);
    if (v < 0)
        ck_wr_u8(w, '-');
    if (scale == 0) {
        ck_wr_bytes(w, d, n);
        return;
    }
    if (n <= scale) { /* 0.00ddd */
        ck_jsonw_lit(w, "0.");
        for (size_t i = n; i < scale; i++)
            ck_wr_u8(w, '0');
        ck_wr_bytes(w, d, n);
        return;
    }
    ck_wr_bytes(w, d, n - scale);
    ck_wr_u8(w, '.');
    ck_wr_bytes(w, d + n - scale, scale);
}

static __int128 hugeint_of(const duckdb_hugeint *h)
{
    return (__int128)(((unsigned __int128)(uint64_t)h->upper << 64) | h->lower);
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* "HH:MM:SS" then, when frac != 0, '.' and the ndig-digit fraction without trailing
 * zeros (DuckDB's TIME text). Hours may exceed 23 (TIME '24:00:00', intervals). */
static size_t fmt_hms(char *b, uint64_t hours, int min, int sec, uint64_t frac, int ndig)
{
    size_t n = 0;
    if (hours < 10)
        b[n++] = '0';
    n += (size_t)sprintf(b + n, "%llu", (unsigned long long)hours);
    b[n++] = ':';
    two(b + n, min);
    n += 2;
    b[n++] = ':';
    two(b + n, sec);
    n += 2;
    if (frac) {
        char f[10];
        for (int i = ndig - 1; i >= 0; i--) {
            f[i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        int len = ndig;
        while (len > 1 && f[len - 1] == '0')
            len--;
        b[n++] = '.';
        memcpy(b + n, f, (size_t)len);
        n += (size_t)len;
    }
    return n;
}

/* A time of day from sub-second units (micros: per = 1e6, ndig 6; nanos: 1e9, 9). */
static size_t fmt_time(char *b, int64_t t, int64_t per, int ndig)
{
    if (t < 0) /* never stored by DuckDB; keep the text sane anyway */
        t = 0;
    uint64_t secs = (uint64_t)(t / per);
    return fmt_hms(b, secs / 3600, (int)(secs / 60 % 60), (int)(secs % 60), (uint64_t)(t % per),
                   ndig);
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days). */
static void civil(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void put_date(ck_wbuf_t *w, int32_t days)
{
    if (days == INT32_MAX || days == -INT32_MAX) {
        ck_jsonw_cstr(w, days > 0 ? "infinity" : "-infinity");
        return;
    }
    int64_t y;
    int m, d;
    civil(days, &y, &m, &d);
    char b[48];
    int n;
    if (y <= 0)
        n = snprintf(b, sizeof(b), "\"%04lld-%02d-%02d (BC)\"", (long long)(1 - y), m, d);
    else
        n = snprintf(b, sizeof(b), "\"%04lld-%02d-%02d\"", (long long)y, m, d);
    ck_wr_bytes(w, b, (size_t)n);
}

static void put_epoch_ms(ck_wbuf_t *w, int64_t v, int64_t div, int64_t mul)
{
    if (v == INT64_MAX || v == -INT64_MAX) {
        ck_jsonw_cstr(w, v > 0 ? "infinity" : "-infinity");
        return;
    }
    ck_jsonw_i64(w, div > 1 ? floor_div(v, div) : v * mul);
}

/* DuckDB's INTERVAL text (IntervalToStringCast::Format). */
static void put_interval(ck_wbuf_t *w, const duckdb_interval *iv)
{
    char b[128];
    size_t n = 0;
    const struct {
        int32_t v;
        const char *name;
    } parts[3] = {{iv->months / 12, " year"}, {iv->months % 12, " month"}, {iv->days, " day"}};
    for (int i = 0; i < 3; i++) {
        if (!parts[i].v)
            continue;
        n += (size_t)snprintf(b + n, sizeof(b) - n, "%s%d%s%s", n ? " " : "", parts[i].v,
                              parts[i].name, parts[i].v == 1 || parts[i].v == -1 ? "" : "s");
    }
    if (iv->micros) {
        if (n)
            b[n++] = ' ';
        uint64_t u = iv->micros < 0 ? (uint64_t)0 - (uint64_t)iv->micros : (uint64_t)iv->micros;
        if (iv->micros < 0)
            b[n++] = '-';
        uint64_t secs = u / 1000000;
        n += fmt_hms(b + n, secs / 3600, (int)(secs / 60 % 60), (int)(secs % 60), u % 1000000, 6);
    } else if (!n) {
        memcpy(b, "00:00:00", 8);
        n = 8;
    }
    ck_jsonw_str(w, b, n);
}

static void put_timetz(ck_wbuf_t *w, duckdb_time_tz v)
{
    duckdb_time_tz_struct s = duckdb_from_time_tz(v);
    char b[64];
    size_t n =
        fmt_hms(b, (uint64_t)s.time.hour, s.time.min, s.time.sec, (uint64_t)s.time.micros, 6);
    int32_t off = s.offset;
    b[n++] = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    two(b + n, off / 3600);
    n += 2;
    if (off % 3600) {
        b[n++] = ':';
        two(b + n, off / 60 % 60);
        n += 2;
        if (off % 60) {
            b[n++] = ':';
            two(b + n, off % 60);
            n += 2;
        }
    }
    ck_jsonw_str(w, b, n);
}

static void put_uuid(ck_wbuf_t *w, const duckdb_hugeint *h)
{
    static const char hex[] = "0123456789abcdef";
    /* DuckDB flips the top bit so that UUIDs sort as unsigned numbers */
    uint64_t hi = (uint64_t)h->upper ^ ((uint64_t)1 << 63), lo = h->lower;
    char b[38];
    size_t n = 0;
    b[n++] = '"';
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            b[n++] = '-';
        uint64_t word = i < 16 ? hi : lo;
        b[n++] = hex[(word >> (60 - 4 * (i % 16))) & 15];
    }
    b[n++] = '"';
    ck_wr_bytes(w, b, n);
}

/* BIT: first byte = count of padding bits at the top of the second byte. */
static void put_bit(ck_wbuf_t *w, const uint8_t *p, uint32_t n)
{
    ck_wr_u8(w, '"');
    for (uint32_t i = 1; i < n; i++)
        for (int bit = (i == 1 ? 7 - (p[0] & 7) : 7); bit >= 0; bit--)
            ck_wr_u8(w, (p[i] >> bit) & 1 ? '1' : '0');
    ck_wr_u8(w, '"');
}

/* BIGNUM: a 3-byte header (top bit set = non-negative; all bits inverted when negative),
 * then the big-endian magnitude (also inverted when negative). Written in base 10^9. */
static void put_bignum(ck_wbuf_t *w, const uint8_t *p, uint32_t n)
{
    if (n < 4) {
        ck_jsonw_null(w);
        return;
    }
    bool neg = !(p[0] & 0x80);
    uint8_t x = neg ? 0xFF : 0;
    size_t nb = n - 3, cap = nb * 8 / 29 + 2, used = 1; /* 2^29 < 10^9 */
    uint32_t *limb = ck_calloc(cap, sizeof(uint32_t));
    if (!limb) {
        w->err = CK_ENOMEM;
        return;
    }
    for (size_t i = 0; i < nb; i++) {
        uint64_t carry = (uint8_t)(p[3 + i] ^ x);
        for (size_t j = 0; j < used; j++) {
            uint64_t v = (uint64_t)limb[j] * 256 + carry;
            limb[j] = (uint32_t)(v % 1000000000u);
            carry = v / 1000000000u;
        }
        while (carry && used < cap) {
            limb[used++] = (uint32_t)(carry % 1000000000u);
            carry /= 1000000000u;
        }
    }
    while (used > 1 && !limb[used - 1])
        used--;
    char b[16];
    if (neg && (used > 1 || limb[0]))
        ck_wr_u8(w, '-');
    ck_wr_bytes(w, b, (size_t)snprintf(b, sizeof(b), "%u", limb[used - 1]));
    for (size_t j = used - 1; j-- > 0;)
        ck_wr_bytes(w, b, (size_t)snprintf(b, sizeof(b), "%09u", limb[j]));
    ck_free(limb);
}

static uint64_t uint_at(duckdb_type t, const void *data, idx_t row)
{
    switch (t) {
    case DUCKDB_TYPE_UTINYINT:
        return ((const uint8_t *)data)[row];
    case DUCKDB_TYPE_USMALLINT:
        return ((const uint16_t *)data)[row];
    case DUCKDB_TYPE_UINTEGER:
        return ((const uint32_t *)data)[row];
    default:
        return ((const uint64_t *)data)[row];
    }
}

static void put(ck_wbuf_t *w, const col_t *c, duckdb_vector v, idx_t row);

/* Writes the value at row of vector v (data and validity fetched by the caller). */
static void put_at(ck_wbuf_t *w, const col_t *c, duckdb_vector v, const void *data,
                   const uint64_t *valid, idx_t row)
{
    if (!row_valid(valid, row)) {
        ck_jsonw_null(w);
        return;
    }
    switch (c->id) {
    case DUCKDB_TYPE_BOOLEAN:
        ck_jsonw_bool(w, ((const bool *)data)[row]);
        return;
    case DUCKDB_TYPE_TINYINT:
        ck_jsonw_i64(w, ((const int8_t *)data)[row]);
        return;
    case DUCKDB_TYPE_SMALLINT:
        ck_jsonw_i64(w, ((const int16_t *)data)[row]);
        return;
    case DUCKDB_TYPE_INTEGER:
        ck_jsonw_i64(w, ((const int32_t *)data)[row]);
        return;
    case DUCKDB_TYPE_BIGINT:
        ck_jsonw_i64(w, ((const int64_t *)data)[row]);
        return;
    case DUCKDB_TYPE_UTINYINT:
    case DUCKDB_TYPE_USMALLINT:
    case DUCKDB_TYPE_UINTEGER:
    case DUCKDB_TYPE_UBIGINT:
        ck_jsonw_u64(w, uint_at(c->id, data, row));
        return;
    case DUCKDB_TYPE_HUGEINT:
        put_i128(w, hugeint_of(&((const duckdb_hugeint *)data)[row]), 0);
        return;
    case DUCKDB_TYPE_UHUGEINT: {
        const duckdb_uhugeint *h = &((const duckdb_uhugeint *)data)[row];
        char buf[40];
        char *d = u128_digits(buf, ((unsigned __int128)h->upper << 64) | h->lower);
        ck_wr_bytes(w, d, (size_t)(buf + 40 - d));
        return;
    }
    case DUCKDB_TYPE_FLOAT:
        ck_jsonw_float(w, ((const float *)data)[row]);
        return;
    case DUCKDB_TYPE_DOUBLE:
        ck_jsonw_double(w, ((const double *)data)[row]);
        return;
    case DUCKDB_TYPE_DECIMAL: {
        __int128 x;
        switch (c->store) {
        case DUCKDB_TYPE_SMALLINT:
            x = ((const int16_t *)data)[row];
            break;
        case DUCKDB_TYPE_INTEGER:
            x = ((const int32_t *)data)[row];
            break;
        case DUCKDB_TYPE_BIGINT:
            x = ((const int64_t *)data)[row];
            break;
        default:
            x = hugeint_of(&((const duckdb_hugeint *)data)[row]);
            break;
        }
        put_i128(w, x, c->scale);
        return;
    }
    case DUCKDB_TYPE_VARCHAR:
    case DUCKDB_TYPE_BLOB:
    case DUCKDB_TYPE_BIT:
    case DUCKDB_TYPE_BIGNUM: {
        duckdb_string_t *s = &((duckdb_string_t *)data)[row];
        const char *p = duckdb_string_t_data(s);
        uint32_t n = duckdb_string_t_length(*s);
        if (c->id == DUCKDB_TYPE_VARCHAR)
            ck_jsonw_str(w, p, n);
        else if (c->id == DUCKDB_TYPE_BLOB)
            ck_jsonw_base64(w, p, n);
        else if (c->id == DUCKDB_TYPE_BIT)
            put_bit(w, (const uint8_t *)p, n);
        else
            put_bignum(w, (const uint8_t *)p, n);
        return;
    }
    case DUCKDB_TYPE_TIMESTAMP:
    case DUCKDB_TYPE_TIMESTAMP_TZ:
        put_epoch_ms(w, ((const int64_t *)data)[row], 1000, 1);
        return;
    case DUCKDB_TYPE_TIMESTAMP_S:
        put_epoch_ms(w, ((const int64_t *)data)[row], 1, 1000);
        return;
    case DUCKDB_TYPE_TIMESTAMP_MS:
        put_epoch_ms(w, ((const int64_t *)data)[row], 1, 1);
        return;
    case DUCKDB_TYPE_TIMESTAMP_NS:
        put_epoch_ms(w, ((const int64_t *)data)[row], 1000000, 1);
        return;
    case DUCKDB_TYPE_DATE:
        put_date(w, ((const int32_t *)data)[row]);
        return;
    case DUCKDB_TYPE_TIME:
    case DUCKDB_TYPE_TIME_NS: {
        char b[48];
        bool ns = c->id == DUCKDB_TYPE_TIME_NS;
        size_t n = fmt_time(b, ((const int64_t *)data)[row], ns ? 1000000000 : 1000000, ns ? 9 : 6);
        ck_jsonw_str(w, b, n);
        return;
    }
    case DUCKDB_TYPE_TIME_TZ:
        put_timetz(w, ((const duckdb_time_tz *)data)[row]);
        return;
    case DUCKDB_TYPE_INTERVAL:
        put_interval(w, &((const duckdb_interval *)data)[row]);
        return;
    case DUCKDB_TYPE_UUID:
        put_uuid(w, &((const duckdb_hugeint *)data)[row]);
        return;
    case DUCKDB_TYPE_ENUM: {
        uint64_t i = uint_at(c->store, data, row);
        if (i < c->ndict)
            ck_jsonw_cstr(w, c->dict[i]);
        else
            ck_jsonw_null(w);
        return;
    }
    case DUCKDB_TYPE_LIST:
    case DUCKDB_TYPE_MAP: {
        const duckdb_list_entry *e = &((const duckdb_list_entry *)data)[row];
        duckdb_vector child = duckdb_list_vector_get_child(v);
        if (c->id == DUCKDB_TYPE_LIST) {
            ck_wr_u8(w, '[');
            for (uint64_t i = 0; i < e->length; i++) {
                if (i)
                    ck_wr_u8(w, ',');
                put(w, &c->kids[0], child, e->offset + i);
            }
            ck_wr_u8(w, ']');
            return;
        }
        /* MAP: a list of STRUCT(key, value) */
        duckdb_vector kv = duckdb_struct_vector_get_child(child, 0);
        duckdb_vector vv = duckdb_struct_vector_get_child(child, 1);
        ck_wr_u8(w, '{');
        for (uint64_t i = 0; i < e->length; i++) {
            if (i)
                ck_wr_u8(w, ',');
            size_t at = w->len;
            put(w, &c->kids[0], kv, e->offset + i);
            if (w->err)
                return;
            if (w->data[at] != '"') { /* a non-string key: quote its JSON text */
                size_t n = w->len - at;
                char small[64], *tmp = n <= sizeof(small) ? small : ck_malloc(n);
                if (!tmp) {
                    w->err = CK_ENOMEM;
                    return;
                }
                memcpy(tmp, w->data + at, n);
                w->len = at;
                ck_jsonw_str(w, tmp, n);
                if (tmp != small)
                    ck_free(tmp);
            }
            ck_wr_u8(w, ':');
            put(w, &c->kids[1], vv, e->offset + i);
        }
        ck_wr_u8(w, '}');
        return;
    }
    case DUCKDB_TYPE_ARRAY: {
        duckdb_vector child = duckdb_array_vector_get_child(v);
        ck_wr_u8(w, '[');
        for (idx_t i = 0; i < c->array_size; i++) {
            if (i)
                ck_wr_u8(w, ',');
            put(w, &c->kids[0], child, row * c->array_size + i);
        }
        ck_wr_u8(w, ']');
        return;
    }
    case DUCKDB_TYPE_STRUCT:
        ck_wr_u8(w, c->unnamed ? '[' : '{');
        for (idx_t i = 0; i < c->nkids; i++) {
            if (i)
                ck_wr_u8(w, ',');
            if (!c->unnamed)
                ck_wr_bytes(w, c->keys[i], c->keylen[i]);
            put(w, &c->kids[i], duckdb_struct_vector_get_child(v, i), row);
        }
        ck_wr_u8(w, c->unnamed ? ']' : '}');
        return;
    case DUCKDB_TYPE_UNION: {
        /* a STRUCT vector: child 0 is the tag, child 1 + i member i */
        duckdb_vector tagv = duckdb_struct_vector_get_child(v, 0);
        const uint64_t *tvalid = duckdb_vector_get_validity(tagv);
        uint8_t tag = ((const uint8_t *)duckdb_vector_get_data(tagv))[row];
        if (!row_valid(tvalid, row) || tag >= c->nkids)
            ck_jsonw_null(w);
        else
            put(w, &c->kids[tag], duckdb_struct_vector_get_child(v, (idx_t)tag + 1), row);
        return;
    }
    default:
        ck_jsonw_null(w);
        return;
    }
}

static void put(ck_wbuf_t *w, const col_t *c, duckdb_vector v, idx_t row)
{
    put_at(w, c, v, duckdb_vector_get_data(v), duckdb_vector_get_validity(v), row);
}

/* ------------------------------------------------------------------ user queries */

static const char *stmt_name(duckdb_statement_type t)
{
    static const char *names[] = {
        [DUCKDB_STATEMENT_TYPE_INVALID] = "an unknown statement",
        [DUCKDB_STATEMENT_TYPE_SELECT] = "SELECT",
        [DUCKDB_STATEMENT_TYPE_INSERT] = "INSERT",
        [DUCKDB_STATEMENT_TYPE_UPDATE] = "UPDATE",
        [DUCKDB_STATEMENT_TYPE_EXPLAIN] = "EXPLAIN",
        [DUCKDB_STATEMENT_TYPE_DELETE] = "DELETE",
        [DUCKDB_STATEMENT_TYPE_PREPARE] = "PREPARE",
        [DUCKDB_STATEMENT_TYPE_CREATE] = "CREATE",
        [DUCKDB_STATEMENT_TYPE_EXECUTE] = "EXECUTE",
        [DUCKDB_STATEMENT_TYPE_ALTER] = "ALTER",
        [DUCKDB_STATEMENT_TYPE_TRANSACTION] = "TRANSACTION",
        [DUCKDB_STATEMENT_TYPE_COPY] = "COPY",
        [DUCKDB_STATEMENT_TYPE_ANALYZE] = "ANALYZE",
        [DUCKDB_STATEMENT_TYPE_VARIABLE_SET] = "SET",
        [DUCKDB_STATEMENT_TYPE_CREATE_FUNC] = "CREATE FUNCTION",
        [DUCKDB_STATEMENT_TYPE_DROP] = "DROP",
        [DUCKDB_STATEMENT_TYPE_EXPORT] = "EXPORT",
        [DUCKDB_STATEMENT_TYPE_PRAGMA] = "PRAGMA",
        [DUCKDB_STATEMENT_TYPE_VACUUM] = "VACUUM",
        [DUCKDB_STATEMENT_TYPE_CALL] = "CALL",
        [DUCKDB_STATEMENT_TYPE_SET] = "SET",
        [DUCKDB_STATEMENT_TYPE_LOAD] = "LOAD",
        [DUCKDB_STATEMENT_TYPE_RELATION] = "RELATION",
        [DUCKDB_STATEMENT_TYPE_EXTENSION] = "EXTENSION",
        [DUCKDB_STATEMENT_TYPE_LOGICAL_PLAN] = "LOGICAL_PLAN",
        [DUCKDB_STATEMENT_TYPE_ATTACH] = "ATTACH",
        [DUCKDB_STATEMENT_TYPE_DETACH] = "DETACH",
        [DUCKDB_STATEMENT_TYPE_MULTI] = "MULTI",
    };
    if ((size_t)t < sizeof(names) / sizeof(names[0]) && names[t])
        return names[t];
    return names[0];
}

static int fail(ck_sql_error_t *err, int status, const char *type, const char *msg)
{
    err->status = status;
    err->error_type = type;
    copy_msg(err->message, sizeof(err->message), msg);
    return status == 504 ? CK_ERANGE : status == 500 ? CK_EIO : CK_EINVAL;
}

/* Functions a SELECT can call that change state beyond the query: global logging
 * settings and log files (enable_logging works even with the configuration locked),
 * checkpoints, sequences; and those that run SQL built from strings at bind time, which
 * this check could not see into. Compared case-insensitively with every function name in
 * DuckDB's parse tree of the query, so quoting or a schema prefix does not hide one. */
static const char *const denied_functions[] = {
    "enable_logging", "disable_logging", "truncate_duckdb_logs",
    "write_log",      "checkpoint",      "force_checkpoint",
    "nextval",        "query",           "json_execute_serialized_sql",
};

/* The first keyword of sql, upper-cased into buf (for messages only). */
static const char *first_word(const char *sql, char *buf, size_t n)
{
    const char *p = sql;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '(' || *p == ';')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            p += strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            break;
        }
    }
    size_t i = 0;
    while (i + 1 < n && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
        buf[i++] = (char)(*p >= 'a' && *p <= 'z' ? *p++ - 32 : *p++);
    buf[i] = 0;
    return buf;
}

/* Refuses a statement that is not a plain SELECT in DuckDB's parse tree, before it is
 * bound: binding alone has effects for some statements (preparing EXPORT DATABASE creates
 * its folder) and PRAGMAs that DuckDB rewrites into SELECTs would prepare as SELECT.
 * Then refuses a query that calls a denied function. The tree comes from
 * json_serialize_sql (parse only; it serialises SELECT statements and nothing else); a
 * key "function_name" only ever appears unescaped as a key, never inside a string value,
 * so a byte search finds exactly the calls. */
static int check_select(duckdb_connection c, const char *sql, const char *type, ck_sql_error_t *err)
{
    static const char key[] = "\"function_name\":\"";
    duckdb_prepared_statement ps = NULL;
    duckdb_result res;
    int rc = 0;
    if (duckdb_prepare(c, "SELECT json_serialize_sql($1::VARCHAR)", &ps) == DuckDBError) {
        rc = fail(err, 500, "InternalError", duckdb_prepare_error(ps));
        duckdb_destroy_prepare(&ps);
        return rc;
    }
    if (duckdb_bind_varchar(ps, 1, sql) == DuckDBError) { /* the only reason: bad UTF-8 */
        duckdb_destroy_prepare(&ps);
        return fail(err, 400, type, "the query is not valid UTF-8");
    }
    if (duckdb_execute_prepared(ps, &res) == DuckDBError) {
        rc = fail(err, 500, "InternalError", duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        duckdb_destroy_prepare(&ps);
        return rc;
    }
    duckdb_destroy_prepare(&ps);
    duckdb_data_chunk ch = duckdb_fetch_chunk(res);
    if (!ch || duckdb_data_chunk_get_size(ch) != 1) {
        rc = fail(err, 500, "InternalError", "json_serialize_sql returned nothing");
        goto done;
    }
    duckdb_string_t *st = duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0));
    const char *p = duckdb_string_t_data(st), *end = p + duckdb_string_t_length(*st);
    static const char ok[] = "{\"error\":false,";
    if ((size_t)(end - p) < sizeof(ok) - 1 || memcmp(p, ok, sizeof(ok) - 1) != 0) {
        char w[32], msg[96];
        first_word(sql, w, sizeof(w));
        bool selectish = !w[0] || !strcmp(w, "SELECT") || !strcmp(w, "WITH") ||
                         !strcmp(w, "FROM") || !strcmp(w, "VALUES") || !strcmp(w, "TABLE");
        snprintf(msg, sizeof(msg), "only SELECT queries are allowed (got %s)",
                 selectish ? "a statement that is not a plain SELECT" : w);
        rc = fail(err, 400, type, msg);
        goto done;
    }
    while ((p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1))) {
        p += sizeof(key) - 1;
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            break;
        for (size_t i = 0; i < sizeof(denied_functions) / sizeof(denied_functions[0]); i++) {
            size_t n = strlen(denied_functions[i]);
            if ((size_t)(q - p) == n && strncasecmp(p, denied_functions[i], n) == 0) {
                char msg[160];
                snprintf(msg, sizeof(msg), "function %s is not allowed in queries",
                         denied_functions[i]);
                rc = fail(err, 400, type, msg);
                goto done;
            }
        }
        p = q;
    }
done:
    if (ch)
        duckdb_destroy_data_chunk(&ch);
    duckdb_destroy_result(&res);
    return rc;
}

/* Parses sql as exactly one statement and prepares it; it must be of type want (a user
 * query: SELECT). On error fills err (400 with bad_type) and returns nonzero. */
static int prepare_one(duckdb_connection c, const char *sql, duckdb_statement_type want,
                       const char *bad_type, duckdb_prepared_statement *out, ck_sql_error_t *err)
{
    *out = NULL;
    duckdb_extracted_statements ex = NULL;
    idx_t n = duckdb_extract_statements(c, sql, &ex);
    int rc = 0;
    char msg[160];
    if (n == 0) {
        const char *e = duckdb_extract_statements_error(ex);
        rc = fail(err, 400, bad_type, e ? e : "empty query: no SQL statement given");
    } else if (n > 1) {
        snprintf(msg, sizeof(msg), "only one statement is allowed (got %llu)",
                 (unsigned long long)n);
        rc = fail(err, 400, bad_type, msg);
    } else if (want == DUCKDB_STATEMENT_TYPE_SELECT) {
        rc = check_select(c, sql, bad_type, err); /* before binding */
    }
    if (!rc && duckdb_prepare_extracted_statement(c, ex, 0, out) == DuckDBError) {
        rc = fail(err, 400, bad_type, duckdb_prepare_error(*out));
    } else if (!rc && duckdb_prepared_statement_type(*out) != want) {
        /* a second line: the bound statement must be what the parse tree said */
        snprintf(msg, sizeof(msg), "only SELECT queries are allowed (got %s)",
                 stmt_name(duckdb_prepared_statement_type(*out)));
        rc = fail(err, 400, bad_type, msg);
    }
    if (rc && *out)
        duckdb_destroy_prepare(out);
    duckdb_destroy_extracted(&ex);
    return rc;
}

/* An error from DuckDB while executing: a timeout when the watchdog fired, else 400. */
static int exec_fail(ck_sql_error_t *err, const char *type, duckdb_error_type et, const char *msg)
{
    if (et == DUCKDB_ERROR_INTERNAL || et == DUCKDB_ERROR_FATAL)
        return fail(err, 500, "InternalError", msg);
    return fail(err, 400, type, msg);
}

/* Column names made unique: a name that repeats an earlier one gets the first free
 * suffix _1, _2, ... (row objects must not lose a column). A hash set of the names given
 * out, each with the next suffix to try, keeps this linear in the number of columns. */
typedef struct names {
    struct name_slot {
        const char *name; /* owned by the caller's names[] */
        uint64_t next;    /* next suffix to try for this base name */
    } * slot;
    size_t cap; /* power of two, > 2 * columns */
} names_t;

static int names_init(names_t *s, size_t n)
{
    s->cap = 16;
    while (s->cap < 2 * n + 2)
        s->cap *= 2;
    s->slot = ck_calloc(s->cap, sizeof(*s->slot));
    return s->slot ? 0 : CK_ENOMEM;
}

static void names_free(names_t *s)
{
    ck_free(s->slot);
}

static struct name_slot *names_find(names_t *s, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    size_t i = (size_t)h & (s->cap - 1);
    while (s->slot[i].name && strcmp(s->slot[i].name, name) != 0)
        i = (i + 1) & (s->cap - 1);
    return &s->slot[i];
}

/* A fresh ck_malloc'd unique name for base (NULL = ""), remembered in s; NULL on OOM. */
static char *unique_name(names_t *s, const char *base)
{
    base = base ? base : "";
    size_t bl = strlen(base);
    struct name_slot *b = names_find(s, base);
    char *nm = ck_malloc(bl + 24);
    if (!nm)
        return NULL;
    if (!b->name) {
        memcpy(nm, base, bl + 1);
        b->name = nm;
        b->next = 1;
        return nm;
    }
    for (;;) {
        snprintf(nm, bl + 24, "%s_%llu", base, (unsigned long long)b->next++);
        struct name_slot *e = names_find(s, nm);
        if (!e->name) {
            e->name = nm;
            e->next = 1;
            return nm;
        }
    }
}

/* Streams the result's rows into out (see ck_sql_query). */
static int write_result(duckdb_result *res, int64_t limit, int64_t t0, ck_wbuf_t *out,
                        ck_sql_error_t *err)
{
    idx_t ncol = duckdb_column_count(res);
    col_t *cols = ck_calloc(ncol ? ncol : 1, sizeof(col_t));
    char **names = ck_calloc(ncol ? ncol : 1, sizeof(char *));
    char **keys = ck_calloc(ncol ? ncol : 1, sizeof(char *));
    size_t *keylen = ck_calloc(ncol ? ncol : 1, sizeof(size_t));
    names_t seen;
    int rc = 0;
    if (names_init(&seen, ncol) || !cols || !names || !keys || !keylen) {
        rc = fail(err, 500, "InternalError", "out of memory");
        goto done;
    }
    for (idx_t i = 0; i < ncol && !rc; i++) {
        duckdb_logical_type t = duckdb_column_logical_type(res, i);
        if (col_build(&cols[i], t))
            rc = fail(err, 500, "InternalError", "out of memory");
        duckdb_destroy_logical_type(&t);
        if (!rc && !(names[i] = unique_name(&seen, duckdb_column_name(res, i))))
            rc = fail(err, 500, "InternalError", "out of memory");
        if (!rc && !(keys[i] = json_key(names[i], &keylen[i])))
            rc = fail(err, 500, "InternalError", "out of memory");
    }
    if (rc)
        goto done;

    ck_jsonw_lit(out, "{\"columns\":[");
    for (idx_t i = 0; i < ncol; i++) {
        if (i)
            ck_wr_u8(out, ',');
        ck_jsonw_cstr(out, names[i]);
    }
    ck_jsonw_lit(out, "],\"rows\":[");
    int64_t nrows = 0;
    bool truncated = false;
    duckdb_vector vec[64];
    const void *data[64];
    const uint64_t *valid[64];
    duckdb_vector *vp = ncol <= 64 ? vec : ck_malloc(ncol * sizeof(*vp));
    const void **dp = ncol <= 64 ? data : ck_malloc(ncol * sizeof(*dp));
    const uint64_t **bp = ncol <= 64 ? valid : ck_malloc(ncol * sizeof(*bp));
    if (!vp || !dp || !bp) {
        rc = fail(err, 500, "InternalError", "out of memory");
        goto rows_done;
    }
    for (;;) {
        duckdb_data_chunk ch = duckdb_fetch_chunk(*res);
        if (!ch) {
            const char *e = duckdb_result_error(res);
            if (e)
                rc = exec_fail(err, "QueryError", duckdb_result_error_type(res), e);
            break;
        }
        idx_t n = duckdb_data_chunk_get_size(ch);
        if (n > 0 && nrows >= limit) {
            truncated = true;
            duckdb_destroy_data_chunk(&ch);
            break;
        }
        idx_t take = (uint64_t)(limit - nrows) < n ? (idx_t)(limit - nrows) : n;
        for (idx_t i = 0; i < ncol; i++) {
            vp[i] = duckdb_data_chunk_get_vector(ch, i);
            dp[i] = duckdb_vector_get_data(vp[i]);
            bp[i] = duckdb_vector_get_validity(vp[i]);
        }
        for (idx_t r = 0; r < take; r++) {
            if (nrows || r)
                ck_wr_u8(out, ',');
            ck_wr_u8(out, '{');
            for (idx_t i = 0; i < ncol; i++) {
                if (i)
                    ck_wr_u8(out, ',');
                ck_wr_bytes(out, keys[i], keylen[i]);
                put_at(out, &cols[i], vp[i], dp[i], bp[i], r);
            }
            ck_wr_u8(out, '}');
        }
        nrows += (int64_t)take;
        duckdb_destroy_data_chunk(&ch);
        if (take < n) {
            truncated = true;
            break;
        }
        if (out->err)
            break;
    }
    if (!rc) {
        char tail[128];
        int64_t ms = (ck_mono_ns() - t0) / 1000000;
        int n = snprintf(tail, sizeof(tail),
                         "],\"row_count\":%lld,\"execution_time_ms\":%lld,\"truncated\":%s}",
                         (long long)nrows, (long long)ms, truncated ? "true" : "false");
        ck_wr_bytes(out, tail, (size_t)n);
        if (out->err)
            rc = fail(err, 500, "InternalError", "out of memory");
    }
rows_done:
    if (vp != vec)
        ck_free(vp);
    if (dp != data)
        ck_free((void *)dp);
    if (bp != valid)
        ck_free((void *)bp);
done:
    for (idx_t i = 0; i < ncol; i++) {
        if (cols)
            col_free(&cols[i]);
        if (names)
            ck_free(names[i]);
        if (keys)
            ck_free(keys[i]);
    }
    ck_free(cols);
    ck_free(names);
    ck_free(keys);
    ck_free(keylen);
    names_free(&seen);
    return rc;
}

static void err_clear(ck_sql_error_t *err)
{
    err->status = 0;
    err->error_type = NULL;
    err->message[0] = 0;
}

/* On failure: a timeout if the watchdog fired; out back to how it was. */
static int finish(int rc, bool fired, int64_t timeout_ms, ck_wbuf_t *out, size_t len0, int err0,
                  ck_sql_error_t *err)
{
    if (!rc)
        return 0;
    bool oom = err->status == 500 && strcmp(err->message, "out of memory") == 0;
    if (fired && !oom) { /* whatever failed after the interrupt failed because of it */
        char msg[128];
        snprintf(msg, sizeof(msg), "query exceeded the time limit of %lld ms",
                 (long long)timeout_ms);
        rc = fail(err, 504, "Timeout", msg);
    }
    out->len = len0 <= out->len ? len0 : out->len;
    out->err = err0;
    return rc;
}

int ck_sql_query(duckdb_connection c, const char *sql, const ck_sql_opts_t *o, ck_wbuf_t *out,
                 ck_sql_error_t *err)
{
    int64_t t0 = ck_mono_ns();
    int64_t limit = o && o->limit > 0 ? o->limit : DEFAULT_LIMIT;
    int64_t timeout = o && o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    size_t len0 = out->len;
    int err0 = out->err;
    err_clear(err);
    if (!sql)
        return fail(err, 400, "QueryError", "empty query: no SQL statement given");

    watch_t wt;
    wd_add(&wt, c, timeout);
    duckdb_prepared_statement ps;
    int rc = prepare_one(c, sql, DUCKDB_STATEMENT_TYPE_SELECT, "QueryError", &ps, err);
    if (!rc) {
        duckdb_pending_result pend = NULL;
        duckdb_result res;
        if (duckdb_pending_prepared_streaming(ps, &pend) == DuckDBError) {
            rc = exec_fail(err, "QueryError", DUCKDB_ERROR_INVALID, duckdb_pending_error(pend));
        } else if (duckdb_execute_pending(pend, &res) == DuckDBError) {
            rc = exec_fail(err, "QueryError", duckdb_result_error_type(&res),
                           duckdb_result_error(&res));
            duckdb_destroy_result(&res);
        } else {
            rc = write_result(&res, limit, t0, out, err);
            duckdb_destroy_result(&res);
        }
        duckdb_destroy_pending(&pend);
        duckdb_destroy_prepare(&ps);
    }
    bool fired = wd_del(&wt);
    return finish(rc, fired, timeout, out, len0, err0, err);
}

int ck_sql_explain(duckdb_connection c, const char *sql, bool physical, ck_wbuf_t *out,
                   ck_sql_error_t *err)
{
    const char *type = "ExplainError";
    size_t len0 = out->len;
    int err0 = out->err;
    err_clear(err);
    if (!sql)
        return fail(err, 400, type, "empty query: no SQL statement given");

    watch_t wt;
    wd_add(&wt, c, DEFAULT_TIMEOUT_MS);
    duckdb_prepared_statement ps;
    int rc = prepare_one(c, sql, DUCKDB_STATEMENT_TYPE_SELECT, type, &ps, err);
    if (rc)
        goto done;
    duckdb_destroy_prepare(&ps);

    /* The checked statement behind EXPLAIN; it still has to be one EXPLAIN statement. */
    size_t n = strlen(sql);
    char *ex = ck_malloc(n + 10);
    if (!ex) {
        rc = fail(err, 500, "InternalError", "out of memory");
        goto done;
    }
    memcpy(ex, "EXPLAIN ", 8);
    memcpy(ex + 8, sql, n + 1);
    rc = prepare_one(c, ex, DUCKDB_STATEMENT_TYPE_EXPLAIN, type, &ps, err);
    ck_free(ex);
    if (rc)
        goto done;
    duckdb_result res;
    if (duckdb_execute_prepared(ps, &res) == DuckDBError) {
        rc = exec_fail(err, type, duckdb_result_error_type(&res), duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        duckdb_destroy_prepare(&ps);
        goto done;
    }
    duckdb_destroy_prepare(&ps);
    /* rows (explain_key, explain_value): "physical_plan", and with explain_output=all also
     * "logical_plan" (unoptimised) and "logical_opt" */
    ck_wbuf_t logical = CK_WBUF_INIT, phys = CK_WBUF_INIT;
    duckdb_data_chunk ch;
    while (duckdb_column_count(&res) == 2 && (ch = duckdb_fetch_chunk(res))) {
        duckdb_vector kv = duckdb_data_chunk_get_vector(ch, 0);
        duckdb_vector vv = duckdb_data_chunk_get_vector(ch, 1);
        duckdb_string_t *ks = duckdb_vector_get_data(kv), *vs = duckdb_vector_get_data(vv);
        for (idx_t r = 0; r < duckdb_data_chunk_get_size(ch); r++) {
            const char *k = duckdb_string_t_data(&ks[r]);
            uint32_t kl = duckdb_string_t_length(ks[r]);
            ck_wbuf_t *dst = NULL;
            if (kl == 11 && memcmp(k, "logical_opt", 11) == 0)
                dst = &logical;
            else if (kl == 13 && memcmp(k, "physical_plan", 13) == 0)
                dst = &phys;
            if (dst) {
                ck_wbuf_reset(dst);
                ck_jsonw_str(dst, duckdb_string_t_data(&vs[r]), duckdb_string_t_length(vs[r]));
            }
        }
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&res);
    ck_wbuf_t *lp = logical.len ? &logical : &phys;
    ck_jsonw_lit(out, "{\"logical_plan\":");
    if (lp->len)
        ck_wr_bytes(out, lp->data, lp->len);
    else
        ck_jsonw_null(out);
    ck_jsonw_lit(out, ",\"physical_plan\":");
    if (physical && phys.len)
        ck_wr_bytes(out, phys.data, phys.len);
    else
        ck_jsonw_null(out);
    ck_wr_u8(out, '}');
    if (out->err || logical.err || phys.err)
        rc = fail(err, 500, "InternalError", "out of memory");
    ck_wbuf_free(&logical);
    ck_wbuf_free(&phys);
done:;
    bool fired = wd_del(&wt);
    return finish(rc, fired, DEFAULT_TIMEOUT_MS, out, len0, err0, err);
}
