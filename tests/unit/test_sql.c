#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "columnar/sql.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "test.h"

/* ---- helpers ---- */

static char dir[512];

static ck_sql_db_t *open_db(duckdb_connection *c)
{
    snprintf(dir, sizeof(dir), "%s/columnar/data", ck_test_tmpdir());
    ck_sql_db_t *db = NULL;
    char e[512];
    if (ck_sql_db_open(dir, NULL, &db, e, sizeof(e)) != 0)
        CK_FAIL("ck_sql_db_open: %s", e);
    if (c)
        CHECK_EQ(ck_sql_connect(db, c), 0);
    return db;
}

static void exec_ok(duckdb_connection c, const char *sql)
{
    char e[512];
    if (ck_sql_exec(c, sql, e, sizeof(e)) != 0)
        CK_FAIL("ck_sql_exec(%s): %s", sql, e);
}

/* Runs a user query; returns its JSON (ck_malloc'd, NUL-terminated) or NULL with *er set. */
static char *query(duckdb_connection c, const char *sql, int64_t limit, int64_t timeout_ms,
                   ck_sql_error_t *er)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_sql_opts_t o = {limit, timeout_ms};
    ck_sql_error_t tmp;
    if (!er)
        er = &tmp;
    int rc = ck_sql_query(c, sql, &o, &w, er);
    if (rc) {
        CHECK_EQ(w.len, 0);
        CHECK(er->status != 0 && er->error_type && er->message[0]);
        ck_wbuf_free(&w);
        return NULL;
    }
    CHECK_EQ(er->status, 0);
    ck_wr_u8(&w, 0);
    CHECK_EQ(w.err, 0);
    /* always valid JSON */
    json_error_t je;
    json_t *j = json_loads((const char *)w.data, JSON_DECODE_INT_AS_REAL, &je);
    if (!j)
        CK_FAIL("not JSON (%s): %s", je.text, (const char *)w.data);
    json_decref(j);
    return (char *)ck_wbuf_steal(&w, NULL);
}

static char *query_ok(duckdb_connection c, const char *sql)
{
    ck_sql_error_t er;
    char *s = query(c, sql, 0, 0, &er);
    if (!s)
        CK_FAIL("query failed: %s: %d %s: %s", sql, er.status, er.error_type, er.message);
    return s;
}

/* The text of "rows":[...] of a one-result query (the rest carries the timing). */
static const char *rows_of(duckdb_connection c, const char *sql)
{
    static char buf[8192];
    char *s = query_ok(c, sql);
    const char *a = strstr(s, "\"rows\":"), *b = strstr(s, ",\"row_count\":");
    CHECK(a && b && b > a);
    a += 7;
    CHECK((size_t)(b - a) < sizeof(buf));
    memcpy(buf, a, (size_t)(b - a));
    buf[b - a] = 0;
    ck_free(s);
    return buf;
}

#define CHECK_ROWS(c, sql, want) CHECK_STREQ(rows_of((c), (sql)), (want))

/* A user query that must fail with this status and type, its message containing want. */
static void check_fails(duckdb_connection c, const char *sql, int status, const char *type,
                        const char *want)
{
    ck_sql_error_t er;
    char *s = query(c, sql, 0, 0, &er);
    if (s)
        CK_FAIL("query should have failed: %s -> %s", sql, s);
    if (er.status != status || strcmp(er.error_type, type) != 0 || !strstr(er.message, want))
        CK_FAIL("%s: got %d %s \"%s\", want %d %s \"...%s...\"", sql, er.status, er.error_type,
                er.message, status, type, want);
}

static int64_t scalar_i64(duckdb_connection c, const char *sql)
{
    duckdb_result r;
    if (duckdb_query(c, sql, &r) == DuckDBError)
        CK_FAIL("%s: %s", sql, duckdb_result_error(&r));
    duckdb_data_chunk ch = duckdb_fetch_chunk(r);
    CHECK(ch && duckdb_data_chunk_get_size(ch) == 1);
    duckdb_vector v = duckdb_data_chunk_get_vector(ch, 0);
    duckdb_logical_type t = duckdb_vector_get_column_type(v);
    CHECK_EQ(duckdb_get_type_id(t), DUCKDB_TYPE_BIGINT);
    duckdb_destroy_logical_type(&t);
    int64_t x = ((int64_t *)duckdb_vector_get_data(v))[0];
    duckdb_destroy_data_chunk(&ch);
    duckdb_destroy_result(&r);
    return x;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* The runner ends a passing test with _exit, which skips LeakSanitizer's exit check: run
 * it here, after the database is closed (a no-op without -fsanitize=address). */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));
static void no_leaks(void)
{
    if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check() != 0)
        CK_FAIL("LeakSanitizer found leaks");
}

/* ---- the database ---- */

CK_TEST(sql_open_locks_configuration)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode)); /* created, parents too */
    char e[512];
    CHECK(ck_sql_exec(c, "SET enable_external_access=true", e, sizeof(e)) != 0);
    CHECK(strstr(e, "the configuration has been locked"));
    CHECK(ck_sql_exec(c, "SET allowed_directories=['/']", e, sizeof(e)) != 0);
    CHECK(ck_sql_exec(c, "SET lock_configuration=false", e, sizeof(e)) != 0);
    CHECK(ck_sql_exec(c, "RESET enable_external_access", e, sizeof(e)) != 0);
    CHECK(ck_sql_exec(c, "SET autoload_known_extensions=true", e, sizeof(e)) != 0);
    CHECK_ROWS(c,
               "SELECT current_setting('enable_external_access') a, "
               "current_setting('lock_configuration') l, "
               "current_setting('autoload_known_extensions') x, "
               "current_setting('autoinstall_known_extensions') y",
               "[{\"a\":false,\"l\":true,\"x\":false,\"y\":false}]");
    /* DuckDB's spill folder is ours, not ".tmp" under the working folder */
    char want[2048];
    snprintf(want, sizeof(want), "[{\"t\":\"%s.tmp\",\"a\":[\"%s.tmp/\",\"%s/\"]}]", dir, dir, dir);
    CHECK_ROWS(c,
               "SELECT current_setting('temp_directory') t, "
               "list_sort(current_setting('allowed_directories')) a",
               want);
    check_fails(c, "SELECT * FROM glob('.tmp/*')", 400, "QueryError", "Permission Error");
    /* a new connection is locked down just the same */
    duckdb_connection c2;
    CHECK_EQ(ck_sql_connect(db, &c2), 0);
    CHECK(ck_sql_exec(c2, "SET enable_external_access=true", e, sizeof(e)) != 0);
    duckdb_disconnect(&c2);
    /* trusted SQL: several statements; errors come back with DuckDB's message */
    exec_ok(c, "CREATE TABLE t(i INT); INSERT INTO t VALUES (1), (2);");
    CHECK_EQ(scalar_i64(c, "SELECT sum(i)::BIGINT FROM t"), 3);
    CHECK_EQ(ck_sql_exec(c, "SELECT * FROM missing", e, sizeof(e)), CK_EINVAL);
    CHECK(strstr(e, "Table with name missing does not exist"));
    duckdb_disconnect(&c);
    ck_sql_db_close(db);

    ck_sql_db_t *bad = NULL;
    CHECK_EQ(ck_sql_db_open("relative/dir", NULL, &bad, e, sizeof(e)), CK_EINVAL);
    CHECK(bad == NULL);
    char mem_dir[600];
    snprintf(mem_dir, sizeof(mem_dir), "%s/m", ck_test_tmpdir());
    CHECK(ck_sql_db_open(mem_dir, "not-a-size", &bad, e, sizeof(e)) != 0);
    CHECK(bad == NULL);
    CHECK_EQ(ck_sql_db_open(mem_dir, "256MB", &bad, e, sizeof(e)), 0);
    CHECK_EQ(ck_sql_connect(bad, &c), 0);
    CHECK_ROWS(c, "SELECT current_setting('memory_limit') m", "[{\"m\":\"244.1 MiB\"}]");
    duckdb_disconnect(&c);
    ck_sql_db_close(bad);
    ck_sql_db_close(NULL);
    no_leaks();
}

/* ---- value encoding ---- */

CK_TEST(sql_encode_integers_and_booleans)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    CHECK_ROWS(c, "SELECT NULL AS n, true AS t, false AS f",
               "[{\"n\":null,\"t\":true,\"f\":false}]");
    CHECK_ROWS(c,
               "SELECT (-128)::TINYINT a, (-32768)::SMALLINT b, (-2147483648)::INTEGER c, "
               "(-9223372036854775808)::BIGINT d, 255::UTINYINT e, 65535::USMALLINT f, "
               "4294967295::UINTEGER g, 18446744073709551615::UBIGINT h",
               "[{\"a\":-128,\"b\":-32768,\"c\":-2147483648,\"d\":-9223372036854775808,\"e\":255,"
               "\"f\":65535,\"g\":4294967295,\"h\":18446744073709551615}]");
    CHECK_ROWS(c,
               "SELECT 170141183460469231731687303715884105727::HUGEINT a, "
               "(-170141183460469231731687303715884105727)::HUGEINT - 1 b, 0::HUGEINT z, "
               "(-1)::HUGEINT m, 340282366920938463463374607431768211455::UHUGEINT u",
               "[{\"a\":170141183460469231731687303715884105727,"
               "\"b\":-170141183460469231731687303715884105728,\"z\":0,\"m\":-1,"
               "\"u\":340282366920938463463374607431768211455}]");
    CHECK_ROWS(c,
               "SELECT 123456789012345678901234567890::BIGNUM a, "
               "(-123456789012345678901234567890)::BIGNUM b, 0::BIGNUM z, (-1)::BIGNUM m, "
               "255::BIGNUM x, (-256)::BIGNUM y",
               "[{\"a\":123456789012345678901234567890,\"b\":-123456789012345678901234567890,"
               "\"z\":0,\"m\":-1,\"x\":255,\"y\":-256}]");
    /* rows of several chunks and a NULL in a typed column */
    CHECK_ROWS(c, "SELECT i::INT AS i FROM (VALUES (1), (NULL), (3)) v(i)",
               "[{\"i\":1},{\"i\":null},{\"i\":3}]");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_encode_floats_and_decimals)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    CHECK_ROWS(c,
               "SELECT 0.1::FLOAT f, 0.1::DOUBLE d, 1e300::DOUBLE big, -2.5::FLOAT nf, "
               "'nan'::DOUBLE n, 'inf'::DOUBLE i, '-inf'::FLOAT ni, 0.1::DOUBLE + 0.2::DOUBLE s",
               "[{\"f\":0.1,\"d\":0.1,\"big\":1e+300,\"nf\":-2.5,\"n\":null,\"i\":null,"
               "\"ni\":null,\"s\":0.30000000000000004}]");
    /* every storage width: int16, int32, int64, int128 */
    CHECK_ROWS(c,
               "SELECT 12.34::DECIMAL(4,2) a, -0.05::DECIMAL(9,2) b, "
               "123456789012.345678::DECIMAL(18,6) c, "
               "-12345678901234567890123456789.123456789::DECIMAL(38,9) d, "
               "100::DECIMAL(5,0) e, 0::DECIMAL(3,2) f, 12.30::DECIMAL(4,2) g, "
               "0.001::DECIMAL(38,3) h, -5::DECIMAL(4,1) i",
               "[{\"a\":12.34,\"b\":-0.05,\"c\":123456789012.345678,"
               "\"d\":-12345678901234567890123456789.123456789,\"e\":100,\"f\":0.00,"
               "\"g\":12.30,\"h\":0.001,\"i\":-5.0}]");
    CHECK_ROWS(c, "SELECT 9999999999999999999999999999.9999999999::DECIMAL(38,10) m",
               "[{\"m\":9999999999999999999999999999.9999999999}]");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_encode_strings_blobs_enums_uuids_bits)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    CHECK_ROWS(
        c, "SELECT 'a\"b\\c' s, 'h\xC3\xA9llo' u, chr(10) || chr(1) ctl, '' e",
        "[{\"s\":\"a\\\"b\\\\c\",\"u\":\"h\xC3\xA9llo\",\"ctl\":\"\\n\\u0001\",\"e\":\"\"}]");
    CHECK_ROWS(c, "SELECT 'a longer string than twelve bytes' s",
               "[{\"s\":\"a longer string than twelve bytes\"}]");
    CHECK_ROWS(c, "SELECT '\\x00\\xFF'::BLOB b, 'foobar'::BLOB f, ''::BLOB e",
               "[{\"b\":\"AP8=\",\"f\":\"Zm9vYmFy\",\"e\":\"\"}]");
    CHECK_ROWS(c, "SELECT '{\"a\":1}'::JSON j", "[{\"j\":\"{\\\"a\\\":1}\"}]");
    CHECK_ROWS(c, "SELECT 'b'::ENUM('a','b','c') e, NULL::ENUM('x') n",
               "[{\"e\":\"b\",\"n\":null}]");
    CHECK_ROWS(c,
               "SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::UUID u, "
               "'00000000-0000-0000-0000-000000000000'::UUID z, "
               "'ffffffff-ffff-ffff-ffff-ffffffffffff'::UUID f",
               "[{\"u\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\","
               "\"z\":\"00000000-0000-0000-0000-000000000000\","
               "\"f\":\"ffffffff-ffff-ffff-ffff-ffffffffffff\"}]");
    CHECK_ROWS(c, "SELECT '101010'::BIT a, '1'::BIT b, '0000000011111111'::BIT c",
               "[{\"a\":\"101010\",\"b\":\"1\",\"c\":\"0000000011111111\"}]");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_encode_timestamps_as_epoch_ms)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    CHECK_ROWS(c,
               "SELECT TIMESTAMP '2024-01-02 03:04:05.678901' t, "
               "TIMESTAMP '1969-12-31 23:59:59.9995' neg, TIMESTAMP '1970-01-01' zero, "
               "TIMESTAMP_S '2024-01-02 03:04:05' s, TIMESTAMP_MS '2024-01-02 03:04:05.123' ms, "
               "TIMESTAMP_NS '1969-12-31 23:59:59.999999999' ns, "
               "TIMESTAMP_NS '2024-01-02 03:04:05.678999999' ns2, "
               "TIMESTAMPTZ '2024-01-02 05:04:05.678+02' tz, "
               "'infinity'::TIMESTAMP inf, '-infinity'::TIMESTAMP ninf",
               "[{\"t\":1704164645678,\"neg\":-1,\"zero\":0,\"s\":1704164645000,"
               "\"ms\":1704164645123,\"ns\":-1,\"ns2\":1704164645678,\"tz\":1704164645678,"
               "\"inf\":\"infinity\",\"ninf\":\"-infinity\"}]");
    CHECK_ROWS(c, "SELECT TIMESTAMP '1900-01-01 00:00:00.001' o", "[{\"o\":-2208988799999}]");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_encode_dates_times_intervals)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    CHECK_ROWS(c,
               "SELECT DATE '2024-02-29' d, DATE '1969-12-31' e, DATE '0001-01-01' f, "
               "DATE '0044-03-15 (BC)' bc, 'infinity'::DATE inf, '-infinity'::DATE ninf",
               "[{\"d\":\"2024-02-29\",\"e\":\"1969-12-31\",\"f\":\"0001-01-01\","
               "\"bc\":\"0044-03-15 (BC)\",\"inf\":\"infinity\",\"ninf\":\"-infinity\"}]");
    CHECK_ROWS(c,
               "SELECT TIME '12:34:56' t, TIME '12:34:56.5' h, TIME '00:00:00.000001' u, "
               "TIME '24:00:00' e, TIMETZ '12:34:56.789+05:30' tz, TIMETZ '01:02:03-08' tz2, "
               "TIMETZ '01:02:03+00' utc",
               "[{\"t\":\"12:34:56\",\"h\":\"12:34:56.5\",\"u\":\"00:00:00.000001\","
               "\"e\":\"24:00:00\",\"tz\":\"12:34:56.789+05:30\",\"tz2\":\"01:02:03-08\","
               "\"utc\":\"01:02:03+00\"}]");
    CHECK_ROWS(c,
               "SELECT INTERVAL '1 year 2 months 3 days 04:05:06.5' i, INTERVAL '0 seconds' z, "
               "INTERVAL '-1 day' n, INTERVAL '-90 minutes' m, INTERVAL 14 MONTH y, "
               "INTERVAL '-2 years -1 month' ny, INTERVAL '100 hours' h",
               "[{\"i\":\"1 year 2 months 3 days 04:05:06.5\",\"z\":\"00:00:00\",\"n\":\"-1 day\","
               "\"m\":\"-01:30:00\",\"y\":\"1 year 2 months\",\"ny\":\"-2 years -1 month\","
               "\"h\":\"100:00:00\"}]");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

/* Our date, time, time-tz and interval texts equal DuckDB's CAST(x AS VARCHAR). */
CK_TEST(sql_encode_text_types_match_duckdb_cast)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    static const char *exprs[] = {
        "DATE '1970-01-01' + (i * 7919 - 1000000)::INT",
        "TIME '00:00:00' + INTERVAL (i * 287 + i * i) SECOND + INTERVAL (i * 13) MICROSECOND",
        ("('1970-01-01 ' || (TIME '00:00:00' + INTERVAL (i * 331) SECOND)::VARCHAR || "
         "(CASE WHEN i % 2 = 0 THEN '+' ELSE '-' END) || lpad(((i % 15))::VARCHAR, 2, '0') || "
         "':' || lpad(((i * 7) % 60)::VARCHAR, 2, '0'))::TIMETZ"),
        ("to_months((i % 40)::INT - 20) + to_days((i % 9)::INT - 4) + "
         "to_microseconds((i * 12345678901 - 1000000000000)::BIGINT)"),
    };
    for (size_t k = 0; k < sizeof(exprs) / sizeof(exprs[0]); k++) {
        char sql[1024];
        snprintf(sql, sizeof(sql),
                 "SELECT x, x::VARCHAR AS t FROM (SELECT %s AS x FROM range(400) r(i))", exprs[k]);
        char *s = query(c, sql, 1000, 0, NULL);
        if (!s)
            CK_FAIL("%s failed", sql);
        json_t *j = json_loads(s, 0, NULL), *rows = json_object_get(j, "rows");
        CHECK_EQ(json_array_size(rows), 400);
        for (size_t r = 0; r < json_array_size(rows); r++) {
            json_t *row = json_array_get(rows, r);
            const char *a = json_string_value(json_object_get(row, "x"));
            const char *b = json_string_value(json_object_get(row, "t"));
            if (!a || !b || strcmp(a, b) != 0)
                CK_FAIL("expr %zu row %zu: ours \"%s\" != DuckDB \"%s\"", k, r, a ? a : "?",
                        b ? b : "?");
        }
        json_decref(j);
        ck_free(s);
    }
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_encode_nested)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    CHECK_ROWS(c,
               "SELECT [1, 2, NULL] l, [[1], [2, 3], []] ll, []::INT[] e, [1, 2, 3]::INT[3] a, "
               "{'x': 1, 'y': 'z', 'n': NULL} s, row(1, 'a') r, NULL::INT[] nl",
               "[{\"l\":[1,2,null],\"ll\":[[1],[2,3],[]],\"e\":[],\"a\":[1,2,3],"
               "\"s\":{\"x\":1,\"y\":\"z\",\"n\":null},\"r\":[1,\"a\"],\"nl\":null}]");
    CHECK_ROWS(c,
               "SELECT MAP {'k1': 1, 'k2': NULL} m, MAP {1: 'a', 2: 'b'} ik, "
               "MAP {DATE '2024-01-01': [1]} dk, MAP {[1, 2]: 'x'} lk, MAP {'a\"b': 1} qk, "
               "MAP {true: {'v': 1.5::DOUBLE}} bk, MAP {}::MAP(INT, INT) em",
               "[{\"m\":{\"k1\":1,\"k2\":null},\"ik\":{\"1\":\"a\",\"2\":\"b\"},"
               "\"dk\":{\"2024-01-01\":[1]},\"lk\":{\"[1,2]\":\"x\"},\"qk\":{\"a\\\"b\":1},"
               "\"bk\":{\"true\":{\"v\":1.5}},\"em\":{}}]");
    CHECK_ROWS(c,
               "SELECT u FROM (VALUES (union_value(num := 2)::UNION(num INT, str VARCHAR)), "
               "(union_value(str := 'x')::UNION(num INT, str VARCHAR)), (NULL)) v(u)",
               "[{\"u\":2},{\"u\":\"x\"},{\"u\":null}]");
    /* per-row (non-constant) nested vectors, NULLs at each level */
    CHECK_ROWS(c,
               "SELECT [i, i + 1] l, {'a': i, 'b': [i]} s, MAP([i], ['x']) m, "
               "CASE WHEN i = 1 THEN NULL ELSE [i] END n, "
               "CASE WHEN i = 1 THEN NULL ELSE {'a': i} END ns, [[i], NULL] ln, "
               "[{'k': [i]::INT[1]}] deep FROM range(3) t(i)",
               "[{\"l\":[0,1],\"s\":{\"a\":0,\"b\":[0]},\"m\":{\"0\":\"x\"},\"n\":[0],"
               "\"ns\":{\"a\":0},\"ln\":[[0],null],\"deep\":[{\"k\":[0]}]},"
               "{\"l\":[1,2],\"s\":{\"a\":1,\"b\":[1]},\"m\":{\"1\":\"x\"},\"n\":null,\"ns\":null,"
               "\"ln\":[[1],null],\"deep\":[{\"k\":[1]}]},"
               "{\"l\":[2,3],\"s\":{\"a\":2,\"b\":[2]},\"m\":{\"2\":\"x\"},\"n\":[2],"
               "\"ns\":{\"a\":2},\"ln\":[[2],null],\"deep\":[{\"k\":[2]}]}]");
    CHECK_ROWS(c,
               "SELECT [TIMESTAMP '1970-01-01 00:00:01', NULL] ts, ['\\x01'::BLOB] b, "
               "[1.5::DECIMAL(3,1)] d, ['a'::ENUM('a')] en, [DATE '2000-01-01'] dt",
               "[{\"ts\":[1000,null],\"b\":[\"AQ==\"],\"d\":[1.5],\"en\":[\"a\"],"
               "\"dt\":[\"2000-01-01\"]}]");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_columns_and_duplicate_names)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    char *s = query_ok(c, "SELECT 1 AS a, 2 AS a, 3 AS a_1, 'q\"' AS \"we\"\"ird\"");
    CHECK(strncmp(s,
                  "{\"columns\":[\"a\",\"a_1\",\"a_1_1\",\"we\\\"ird\"],"
                  "\"rows\":[{\"a\":1,\"a_1\":2,\"a_1_1\":3,\"we\\\"ird\":\"q\\\"\"}],"
                  "\"row_count\":1,\"execution_time_ms\":",
                  strlen("{\"columns\":[\"a\",\"a_1\",\"a_1_1\",\"we\\\"ird\"],"
                         "\"rows\":[{\"a\":1,\"a_1\":2,\"a_1_1\":3,\"we\\\"ird\":\"q\\\"\"}],"
                         "\"row_count\":1,\"execution_time_ms\":")) == 0);
    CHECK(strstr(s, ",\"truncated\":false}"));
    ck_free(s);
    /* many clashes: every key distinct, in a linear number of steps */
    char *big = ck_malloc(600 * 16 + 16);
    CHECK(big);
    size_t n = (size_t)sprintf(big, "SELECT ");
    for (int i = 0; i < 600; i++)
        n += (size_t)sprintf(big + n, "%s%d AS %s", i ? ", " : "", i, i % 3 == 2 ? "x_2" : "x");
    s = query_ok(c, big);
    json_t *j = json_loads(s, JSON_DECODE_INT_AS_REAL, NULL);
    CHECK(j && json_array_size(json_object_get(j, "columns")) == 600);
    json_t *row = json_array_get(json_object_get(j, "rows"), 0);
    CHECK_EQ(json_object_size(row), 600);
    CHECK_EQ((int)json_real_value(json_object_get(row, "x_2")), 2);
    CHECK_EQ((int)json_real_value(json_object_get(row, "x_3")), 3);
    json_decref(j);
    ck_free(s);
    ck_free(big);
    /* no rows: columns still listed */
    s = query_ok(c, "SELECT 1 AS x WHERE false");
    CHECK(strncmp(s, "{\"columns\":[\"x\"],\"rows\":[],\"row_count\":0,", 41) == 0);
    ck_free(s);
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_limit_and_truncated)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    static const struct {
        int64_t limit;
        size_t rows;
        bool truncated;
    } cases[] = {{10, 10, true},     {100000, 5000, false}, {5000, 5000, false}, {4999, 4999, true},
                 {2048, 2048, true}, {0, 1000, true},       {-5, 1000, true},    {1, 1, true}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char *s = query(c, "SELECT range AS i FROM range(5000)", cases[k].limit, 0, NULL);
        CHECK(s);
        json_t *j = json_loads(s, 0, NULL);
        json_t *rows = json_object_get(j, "rows");
        CHECK_EQ(json_array_size(rows), cases[k].rows);
        CHECK_EQ(json_integer_value(json_object_get(j, "row_count")), cases[k].rows);
        CHECK(json_is_boolean(json_object_get(j, "truncated")));
        CHECK_EQ(json_is_true(json_object_get(j, "truncated")), cases[k].truncated);
        CHECK(json_is_integer(json_object_get(j, "execution_time_ms")));
        for (size_t r = 0; r < json_array_size(rows); r++)
            CHECK_EQ(json_integer_value(json_object_get(json_array_get(rows, r), "i")), r);
        json_decref(j);
        ck_free(s);
    }
    /* streaming: a huge result with a small limit returns at once */
    int64_t t0 = ck_mono_ms();
    char *s = query(c, "SELECT range AS i FROM range(10000000000)", 3, 5000, NULL);
    CHECK(s && strstr(s, "\"rows\":[{\"i\":0},{\"i\":1},{\"i\":2}]") &&
          strstr(s, "\"truncated\":true"));
    CHECK(ck_mono_ms() - t0 < 2000);
    ck_free(s);
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

/* ---- safety ---- */

static void check_t_unchanged(duckdb_connection c)
{
    CHECK_ROWS(c, "SELECT count(*) AS n, sum(i) AS s FROM t", "[{\"n\":3,\"s\":6}]");
    CHECK_ROWS(c,
               "SELECT list(column_name ORDER BY column_index) AS cols FROM duckdb_columns() "
               "WHERE table_name = 't'",
               "[{\"cols\":[\"i\"]}]");
    CHECK_ROWS(c, "SELECT count(*) AS n FROM duckdb_tables()", "[{\"n\":1}]");
}

CK_TEST(sql_rejects_everything_but_select)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    exec_ok(c, "CREATE TABLE t(i INT); INSERT INTO t VALUES (1), (2), (3); CREATE SEQUENCE s;");
    char sql[1024];
    static const struct {
        const char *sql, *got;
    } cases[] = {
        {"INSERT INTO t VALUES (4)", "INSERT"},
        {"INSERT INTO t SELECT 4 RETURNING *", "INSERT"},
        {"UPDATE t SET i = 0", "UPDATE"},
        {"DELETE FROM t", "DELETE"},
        {"CREATE TABLE u(i INT)", "CREATE"},
        {"CREATE OR REPLACE TABLE t AS SELECT 1 AS i", "CREATE"},
        {"CREATE VIEW v AS SELECT 1", "CREATE"},
        {"CREATE MACRO m(a) AS a", "CREATE"},
        {"DROP TABLE t", "DROP"},
        {"ALTER TABLE t ADD COLUMN j INT", "ALTER"},
        {"ALTER TABLE t RENAME TO t2", "ALTER"},
        {"COPY t TO '%s/out.csv'", "COPY"},
        {"COPY (SELECT 1) TO '%s/out.parquet' (FORMAT parquet)", "COPY"},
        {"EXPORT DATABASE '%s/exp'", "EXPORT"},
        {"ATTACH ':memory:' AS m2", "ATTACH"},
        {"ATTACH '%s/x.db' AS x", "ATTACH"},
        {"DETACH memory", "DETACH"},
        {"INSTALL httpfs", "INSTALL"},
        {"LOAD httpfs", "LOAD"},
        {"LOAD '/tmp/evil.so'", "LOAD"},
        {"SET threads = 1", "SET"},
        {"SET VARIABLE x = 1", "SET"},
        {"RESET threads", "RESET"},
        {"USE memory", "USE"},
        {"PRAGMA threads = 1", "PRAGMA"},
        {"PRAGMA enable_profiling", "PRAGMA"},
        {"PRAGMA force_checkpoint", "PRAGMA"},
        {"CALL pragma_table_info('t')", "CALL"},
        {"CALL duckdb_settings()", "CALL"},
        {"CHECKPOINT", "CHECKPOINT"},
        {"VACUUM", "VACUUM"},
        {"ANALYZE", "ANALYZE"},
        {"BEGIN TRANSACTION", "BEGIN"},
        {"PREPARE p AS SELECT 1", "PREPARE"},
        {"EXPLAIN SELECT 1", "EXPLAIN"},
        {"EXPLAIN ANALYZE SELECT * FROM t", "EXPLAIN"},
        {"UPDATE EXTENSIONS", "UPDATE"},
        {"/* c */ -- d\n DELETE FROM t", "DELETE"},
        {"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
         "a statement that is not a plain SELECT"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        snprintf(sql, sizeof(sql), cases[k].sql, dir);
        char want[128];
        snprintf(want, sizeof(want), "only SELECT queries are allowed (got %s)", cases[k].got);
        check_fails(c, sql, 400, "QueryError", want);
    }
    /* refused before they run, or failing in DuckDB itself: never executed */
    snprintf(sql, sizeof(sql), "IMPORT DATABASE '%s/exp'", dir);
    check_fails(c, sql, 400, "QueryError", "");
    snprintf(sql, sizeof(sql), "COPY t FROM '%s/out.csv'", dir);
    check_fails(c, sql, 400, "QueryError", "");
    check_fails(c, "EXECUTE p", 400, "QueryError", "");
    check_fails(c, "CREATE SECRET (TYPE s3)", 400, "QueryError", "");
    check_fails(c, "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", 400, "QueryError", "");
    check_t_unchanged(c);
    snprintf(sql, sizeof(sql), "%s/out.csv", dir);
    CHECK(!file_exists(sql));
    snprintf(sql, sizeof(sql), "%s/out.parquet", dir);
    CHECK(!file_exists(sql));
    snprintf(sql, sizeof(sql), "%s/exp", dir);
    CHECK(!file_exists(sql));
    /* PRAGMAs that DuckDB rewrites into a SELECT are refused too */
    check_fails(c, "PRAGMA table_info('t')", 400, "QueryError",
                "only SELECT queries are allowed (got PRAGMA)");
    check_fails(c, "PRAGMA show_tables", 400, "QueryError", "only SELECT queries are allowed");
    /* SHOW/DESCRIBE/SUMMARIZE are read-only queries */
    CHECK_ROWS(c, "SHOW TABLES", "[{\"name\":\"t\"}]");
    char *s = query_ok(c, "DESCRIBE t");
    ck_free(s);
    s = query_ok(c, "SUMMARIZE t");
    ck_free(s);
    check_t_unchanged(c);
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_rejects_several_statements)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    exec_ok(c, "CREATE TABLE t(i INT); INSERT INTO t VALUES (1), (2), (3);");
    check_fails(c, "SELECT 1; DROP TABLE t", 400, "QueryError",
                "only one statement is allowed (got 2)");
    check_fails(c, "DROP TABLE t; SELECT 1", 400, "QueryError", "only one statement is allowed");
    check_fails(c, "SELECT 1; SELECT 2; SELECT 3", 400, "QueryError",
                "only one statement is allowed (got 3)");
    check_fails(c, "PIVOT t ON i", 400, "QueryError", "only one statement is allowed");
    check_fails(c, "", 400, "QueryError", "empty query");
    check_fails(c, " ; -- nothing", 400, "QueryError", "empty query");
    CHECK_ROWS(c, "SELECT 1 AS x; ", "[{\"x\":1}]");
    CHECK_ROWS(c, "-- a comment\nSELECT 2 AS x -- trailing", "[{\"x\":2}]");
    check_t_unchanged(c);
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

/* SELECTs that would change state beyond the query are refused, however spelled. */
CK_TEST(sql_denies_functions_with_side_effects)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    exec_ok(c, "CREATE TABLE t(i INT); INSERT INTO t VALUES (1), (2), (3); CREATE SEQUENCE s;");
    static const char *cases[][2] = {
        {"SELECT * FROM enable_logging()", "enable_logging"},
        {"SELECT * FROM \"ENABLE_LOGGING\"()", "enable_logging"},
        {"SELECT * FROM system.main.enable_logging()", "enable_logging"},
        {"SELECT * FROM Enable_Logging(storage_path := '/tmp')", "enable_logging"},
        {"SELECT * FROM disable_logging()", "disable_logging"},
        {"SELECT * FROM truncate_duckdb_logs()", "truncate_duckdb_logs"},
        {"SELECT write_log('x')", "write_log"},
        {"SELECT * FROM checkpoint()", "checkpoint"},
        {"SELECT * FROM force_checkpoint()", "force_checkpoint"},
        {"SELECT nextval('s')", "nextval"},
        {"SELECT i FROM t WHERE i < (SELECT nextval('s'))", "nextval"},
        {"SELECT * FROM query('SELECT 1')", "query"},
        {"SELECT * FROM query('DROP TABLE t')", "query"},
        {"SELECT * FROM query('SELECT * FROM enable_' || 'logging()')", "query"},
        {"SELECT * FROM main.query('SELECT 1; DROP TABLE t')", "query"},
        {"WITH x AS (SELECT * FROM query('SELECT 1')) SELECT * FROM x", "query"},
        {"SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
         "json_execute_serialized_sql"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char want[128];
        snprintf(want, sizeof(want), "function %s is not allowed in queries", cases[k][1]);
        check_fails(c, cases[k][0], 400, "QueryError", want);
    }
    /* the names as data, columns or strings are fine */
    CHECK_ROWS(c, "SELECT 'SELECT * FROM enable_logging()' AS query, 'nextval(1)' AS nextval",
               "[{\"query\":\"SELECT * FROM enable_logging()\",\"nextval\":\"nextval(1)\"}]");
    CHECK_ROWS(c, "SELECT sum(i) AS s FROM query_table('t')", "[{\"s\":6}]");
    check_fails(c, "SELECT * FROM query_table('t; DROP TABLE t')", 400, "QueryError", "");
    /* nothing changed */
    CHECK_ROWS(c, "SELECT current_setting('enable_logging') AS l", "[{\"l\":0}]");
    check_fails(c, "SELECT currval('s')", 400, "QueryError",
                "currval: sequence is not yet defined");
    check_t_unchanged(c);
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_files_only_inside_the_allowed_folder)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    exec_ok(c, "CREATE TABLE t(i INT); INSERT INTO t VALUES (1), (2), (3);");
    char sql[1024];
    /* our own (trusted) COPY writes Parquet inside the folder; users can read it */
    snprintf(sql, sizeof(sql), "COPY t TO '%s/t.parquet' (FORMAT parquet)", dir);
    exec_ok(c, sql);
    snprintf(sql, sizeof(sql), "SELECT count(*) AS n, sum(i) AS s FROM '%s/t.parquet'", dir);
    CHECK_ROWS(c, sql, "[{\"n\":3,\"s\":6}]");
    snprintf(sql, sizeof(sql), "SELECT sum(i) AS s FROM read_parquet('%s/*.parquet')", dir);
    CHECK_ROWS(c, sql, "[{\"s\":6}]");
    /* ... but trusted code cannot write outside it either */
    char e[512], outside[600];
    snprintf(outside, sizeof(outside), "%s/outside.parquet", ck_test_tmpdir());
    snprintf(sql, sizeof(sql), "COPY t TO '%s' (FORMAT parquet)", outside);
    CHECK(ck_sql_exec(c, sql, e, sizeof(e)) != 0);
    CHECK(strstr(e, "Permission Error"));
    CHECK(!file_exists(outside));
    /* users read no file outside it */
    static const char *reads[] = {
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/tmp/x.parquet'",
        "SELECT * FROM '/etc/passwd.csv'",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM read_json('/etc/hostname')",
        "SELECT * FROM read_parquet('%s/../x.parquet')",
        "SELECT * FROM read_text('%s/../../../../../../etc/passwd')",
        "SELECT * FROM read_text('%s_sibling/x')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM parquet_metadata('/tmp/x.parquet')",
    };
    for (size_t k = 0; k < sizeof(reads) / sizeof(reads[0]); k++) {
        snprintf(sql, sizeof(sql), reads[k], dir);
        check_fails(c, sql, 400, "QueryError", "Permission Error");
    }
    /* a sibling folder whose name starts like the allowed one is outside too */
    snprintf(sql, sizeof(sql), "%s_sibling", dir);
    CHECK_EQ(mkdir(sql, 0755), 0);
    snprintf(sql, sizeof(sql), "%s_sibling/x.csv", dir);
    FILE *f = fopen(sql, "w");
    CHECK(f);
    fputs("a\n1\n", f);
    fclose(f);
    snprintf(sql, sizeof(sql), "SELECT * FROM read_csv('%s_sibling/x.csv')", dir);
    check_fails(c, sql, 400, "QueryError", "Permission Error");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

CK_TEST(sql_errors_are_query_errors_and_leave_out_alone)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    check_fails(c, "SELECT * FROM x", 400, "QueryError",
                "Catalog Error: Table with name x does not exist!");
    check_fails(c, "SELEC 1", 400, "QueryError", "Parser Error: syntax error at or near \"SELEC\"");
    check_fails(c, "SELECT nope FROM range(1)", 400, "QueryError", "Binder Error");
    check_fails(c, "SELECT CAST(v AS INTEGER) FROM (VALUES ('1'), ('x')) t(v)", 400, "QueryError",
                "Conversion Error");
    check_fails(c, "SELECT $1", 400, "QueryError", "Values were not provided");
    check_fails(c, "SELECT error('boom')", 400, "QueryError", "boom");
    /* an error in the middle of a streamed result */
    check_fails(c,
                "SELECT CASE WHEN range = 100000 THEN error('late') ELSE range END AS x "
                "FROM range(200000)",
                400, "QueryError", "late");
    /* out keeps what it had, byte for byte */
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_wr_bytes(&w, "prefix", 6);
    ck_sql_error_t er;
    CHECK(ck_sql_query(c, "SELECT * FROM x", NULL, &w, &er) != 0);
    CHECK_EQ(w.len, 6);
    CHECK_MEM(w.data, "prefix", 6);
    CHECK(ck_sql_query(c,
                       "SELECT CASE WHEN range = 100000 THEN error('late') ELSE range END "
                       "FROM range(200000)",
                       &(ck_sql_opts_t){1000000, 0}, &w, &er) != 0);
    CHECK_EQ(w.len, 6);
    /* and on success the answer follows it */
    CHECK_EQ(ck_sql_query(c, "SELECT 1 AS a", NULL, &w, &er), 0);
    CHECK(w.len > 6 && memcmp(w.data, "prefix{\"columns\":[\"a\"]", 22) == 0);
    ck_wbuf_free(&w);
    check_fails(c, NULL, 400, "QueryError", "empty query");
    check_fails(c, "SELECT '\xff\xfe' AS x", 400, "QueryError", "");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

/* Every allocation of ours failing in turn: a clean 500 or success, out unchanged on
 * failure, nothing leaked (LSan). */
CK_TEST(sql_query_out_of_memory)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    const char *sql = "SELECT i, [i, i] l, {'a': i} s, MAP {'k': i} m, 'x' || i AS \"s\" "
                      "FROM range(3000) t(i)";
    bool ok = false;
    for (long n = 1; n < 200 && !ok; n++) {
        ck_wbuf_t w = CK_WBUF_INIT;
        ck_wr_bytes(&w, "p", 1);
        ck_sql_error_t er;
        ck_alloc_fail_after(n);
        int rc = ck_sql_query(c, sql, &(ck_sql_opts_t){5000, 0}, &w, &er);
        ck_alloc_fail_after(0);
        if (rc) {
            CHECK_EQ(er.status, 500);
            CHECK_STREQ(er.error_type, "InternalError");
            CHECK_EQ(w.len, 1);
            CHECK_EQ(w.err, 0);
        } else {
            ok = true;
            CHECK_EQ(w.err, 0);
            CHECK(strstr((const char *)w.data, "\"row_count\":3000"));
        }
        ck_wbuf_free(&w);
    }
    CHECK(ok);
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

/* ---- time limit ---- */

CK_TEST(sql_timeout_interrupts_slow_queries)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    static const char *slow[] = {
        /* blocking: an aggregate over a big cross join */
        "SELECT count(*) AS n FROM range(100000000) a, range(100000) b WHERE a.range + b.range < 0",
        /* streaming: no row ever comes */
        "SELECT * FROM range(1000000000000) WHERE range < 0",
        /* a sort that never finishes its input */
        "SELECT * FROM range(1000000000000) ORDER BY range DESC",
    };
    for (size_t k = 0; k < sizeof(slow) / sizeof(slow[0]); k++) {
        ck_sql_error_t er;
        int64_t t0 = ck_mono_ms();
        char *s = query(c, slow[k], 10, 200, &er);
        int64_t took = ck_mono_ms() - t0;
        CHECK(s == NULL);
        CHECK_EQ(er.status, 504);
        CHECK_STREQ(er.error_type, "Timeout");
        CHECK_STREQ(er.message, "query exceeded the time limit of 200 ms");
        if (took < 200 || took > 2000)
            CK_FAIL("query %zu took %lld ms", k, (long long)took);
        fprintf(stderr, "  timeout 200 ms: query %zu returned after %lld ms\n", k, (long long)took);
        /* the connection works normally afterwards */
        CHECK_ROWS(c, "SELECT 42 AS x", "[{\"x\":42}]");
    }
    /* a deadline that passes at any step (checks, prepare, execute, fetch) is a 504 */
    for (int i = 0; i < 60; i++) {
        ck_sql_error_t er;
        char *s = query(c, "SELECT count(*) AS n FROM range(3000000)", 10, 1 + i % 3, &er);
        if (s)
            ck_free(s);
        else if (er.status != 504)
            CK_FAIL("got %d %s: %s", er.status, er.error_type, er.message);
    }
    /* a fast query is not affected by an earlier one's interrupt */
    for (int i = 0; i < 50; i++)
        CHECK_ROWS(c, "SELECT 1 AS x", "[{\"x\":1}]");
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

/* ---- threads ---- */

static ck_sql_db_t *mt_db;

static void *mt_worker(void *arg)
{
    long id = (long)arg;
    duckdb_connection c;
    CHECK_EQ(ck_sql_connect(mt_db, &c), 0);
    for (int i = 0; i < 40; i++) {
        char sql[256], want[128];
        snprintf(sql, sizeof(sql),
                 "SELECT sum(i)::BIGINT AS s, %ld AS id FROM t WHERE i %% 4 = %ld", id, id);
        snprintf(want, sizeof(want), "[{\"s\":%lld,\"id\":%ld}]",
                 /* sum of k in [0, 10000) with k % 4 == id */
                 (long long)(2500LL * id + 4LL * 2500 * 2499 / 2), id);
        char *s = query_ok(c, sql);
        if (!strstr(s, want))
            CK_FAIL("thread %ld: %s, want %s", id, s, want);
        ck_free(s);
        if (i % 10 == 0) { /* and a timeout now and then, on this connection only */
            ck_sql_error_t er;
            CHECK(query(c, "SELECT * FROM range(1000000000000) WHERE range < 0", 10, 50, &er) ==
                  NULL);
            CHECK_EQ(er.status, 504);
        }
    }
    duckdb_disconnect(&c);
    return NULL;
}

CK_TEST(sql_concurrent_connections)
{
    duckdb_connection c;
    mt_db = open_db(&c);
    exec_ok(c, "CREATE TABLE t AS SELECT range::INT AS i FROM range(10000)");
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, mt_worker, (void *)i), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    duckdb_disconnect(&c);
    ck_sql_db_close(mt_db);
    no_leaks();
}

/* Two databases share the watchdog; closing one leaves the other's timeouts working. */
CK_TEST(sql_two_databases_share_the_watchdog)
{
    duckdb_connection c1, c2;
    ck_sql_db_t *a = open_db(&c1), *b = open_db(&c2);
    duckdb_disconnect(&c1);
    ck_sql_db_close(a);
    ck_sql_error_t er;
    CHECK(query(c2, "SELECT * FROM range(1000000000000) WHERE range < 0", 10, 100, &er) == NULL);
    CHECK_EQ(er.status, 504);
    duckdb_disconnect(&c2);
    ck_sql_db_close(b);
    no_leaks();
}

/* ---- explain ---- */

CK_TEST(sql_explain)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    exec_ok(c, "CREATE TABLE t(i INT); INSERT INTO t VALUES (1), (2), (3);");
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_sql_error_t er;
    CHECK_EQ(ck_sql_explain(c, "SELECT i FROM t WHERE i > 1", false, &w, &er), 0);
    ck_wr_u8(&w, 0);
    json_t *j = json_loads((const char *)w.data, 0, NULL);
    CHECK(j);
    const char *lp = json_string_value(json_object_get(j, "logical_plan"));
    CHECK(lp && strstr(lp, "SEQ_SCAN") && strstr(lp, "t"));
    CHECK(json_is_null(json_object_get(j, "physical_plan")));
    CHECK_EQ(json_object_size(j), 2);
    json_decref(j);
    ck_wbuf_reset(&w);
    CHECK_EQ(ck_sql_explain(c, "(SELECT i FROM t) -- c", true, &w, &er), 0);
    ck_wr_u8(&w, 0);
    j = json_loads((const char *)w.data, 0, NULL);
    CHECK(j);
    const char *pp = json_string_value(json_object_get(j, "physical_plan"));
    CHECK(pp && strstr(pp, "SEQ_SCAN"));
    json_decref(j);
    ck_wbuf_reset(&w);
    /* the same checks as queries, answered as ExplainError */
    ck_wr_bytes(&w, "keep", 4);
    static const char *bad[][2] = {
        {"DELETE FROM t", "only SELECT queries are allowed (got DELETE)"},
        {"EXPLAIN SELECT 1", "only SELECT queries are allowed (got EXPLAIN)"},
        {"SELECT 1; DROP TABLE t", "only one statement is allowed (got 2)"},
        {"SELECT * FROM nope", "Catalog Error"},
        {"SELECT * FROM read_csv('/etc/passwd')", "Permission Error"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        CHECK(ck_sql_explain(c, bad[k][0], true, &w, &er) != 0);
        CHECK_EQ(er.status, 400);
        CHECK_STREQ(er.error_type, "ExplainError");
        if (!strstr(er.message, bad[k][1]))
            CK_FAIL("%s: %s", bad[k][0], er.message);
        CHECK_EQ(w.len, 4);
    }
    ck_wbuf_free(&w);
    check_t_unchanged(c);
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}

/* Per-query overhead of the checks, the watchdog and the JSON for a trivial query. */
CK_TEST(sql_fast_query_overhead)
{
    duckdb_connection c;
    ck_sql_db_t *db = open_db(&c);
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_sql_error_t er;
    int64_t t0 = ck_mono_ns();
    for (int i = 0; i < 500; i++) {
        ck_wbuf_reset(&w);
        CHECK_EQ(ck_sql_query(c, "SELECT 1 AS x", NULL, &w, &er), 0);
    }
    int64_t per = (ck_mono_ns() - t0) / 500;
    fprintf(stderr, "  SELECT 1: %lld us per query\n", (long long)(per / 1000));
    t0 = ck_mono_ns();
    ck_wbuf_reset(&w);
    CHECK_EQ(ck_sql_query(c,
                          "SELECT i, i * 1.5 AS d, 'row ' || i AS s, [i, i] AS l FROM "
                          "range(100000) t(i)",
                          &(ck_sql_opts_t){100000, 0}, &w, &er),
             0);
    fprintf(stderr, "  100000 rows x 4 columns: %lld ms, %zu bytes of JSON\n",
            (long long)((ck_mono_ns() - t0) / 1000000), w.len);
    ck_wbuf_free(&w);
    CHECK(per < 50 * 1000 * 1000); /* a sanity bound only: sanitizers, a loaded machine */
    duckdb_disconnect(&c);
    ck_sql_db_close(db);
    no_leaks();
}
