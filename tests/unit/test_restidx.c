#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "search/restidx.h"
#include "test.h"

static ck_restidx_set_t *open_set(const char *dir)
{
    ck_restidx_set_t *s = NULL;
    CHECK_EQ(ck_restidx_open(dir, &s), 0);
    CHECK(s != NULL);
    return s;
}

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    CHECK(j != NULL);
    return j;
}

static int put(ck_restidx_set_t *s, const char *ix, const char *id, const char *doc,
               ck_restidx_write_t *w)
{
    json_t *d = J(doc);
    ck_search_error_t e;
    int rc = ck_restidx_index(s, ix, id, d, false, w, &e);
    json_decref(d);
    return rc;
}

/* The "k" string of a stored doc, or NULL when absent (caller frees). */
static char *get_k(ck_restidx_set_t *s, const char *ix, const char *id, uint64_t *version)
{
    json_t *src = NULL;
    CHECK_EQ(ck_restidx_get(s, ix, id, &src, version, NULL), 0);
    if (!src)
        return NULL;
    const char *k = json_string_value(json_object_get(src, "k"));
    char *r = strdup(k ? k : "");
    json_decref(src);
    return r;
}

/* Live docs of a snapshot that hold term in field (KEYWORD or TEXT). */
static size_t count_term(ck_restidx_snap_t *sn, const char *field, ck_seg_kind_t kind,
                         const char *term)
{
    ck_search_view_t v;
    ck_restidx_view(sn, &v);
    size_t n = 0;
    for (size_t i = 0; i < v.nsegs; i++) {
        int f = ck_segment_find_field(v.segs[i], field, strlen(field), kind);
        if (f < 0)
            continue;
        ck_postings_t cur;
        if (ck_segment_postings(v.segs[i], (uint32_t)f, term, strlen(term), &cur, NULL) != 0)
            continue;
        for (uint32_t d = ck_postings_doc(&cur); d != CK_POSTINGS_END; d = ck_postings_next(&cur))
            if (v.live(v.live_ctx, i, d))
                n++;
    }
    return n;
}

static size_t count_live(ck_restidx_snap_t *sn)
{
    ck_search_view_t v;
    ck_restidx_view(sn, &v);
    size_t n = 0;
    for (size_t i = 0; i < v.nsegs; i++)
        for (uint32_t d = 0; d < ck_segment_ndocs(v.segs[i]); d++)
            n += v.live(v.live_ctx, i, d);
    return n;
}

CK_TEST(restidx_names_create_drop)
{
    ck_search_error_t e;
    CHECK_EQ(ck_restidx_check_name("logs-2024.01", &e), 0);
    CHECK_EQ(ck_restidx_check_name(".hidden", &e), 0);
    const char *bad[] = {"",    "Upper", "a/b",  "a b", "a*", "a?", "a\"", "a<", "a>", "a|",
                         "a,b", "a#",    "a\\b", "_x",  "-x", "+x", ".",   "..", "a:b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        CHECK_EQ(ck_restidx_check_name(bad[i], &e), CK_EINVAL);
        CHECK_STREQ(e.type, "invalid_index_name_exception");
        CHECK_EQ(e.status, 400);
    }
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = 0;
    CHECK_EQ(ck_restidx_check_name(longname, &e), CK_EINVAL);
    longname[255] = 0;
    CHECK_EQ(ck_restidx_check_name(longname, &e), 0);

    ck_restidx_set_t *s = open_set(ck_test_tmpdir());
    CHECK(!ck_restidx_exists(s, "idx"));
    CHECK_EQ(ck_restidx_create(s, "idx", NULL, &e), 0);
    CHECK(ck_restidx_exists(s, "idx"));
    CHECK_EQ(ck_restidx_create(s, "idx", NULL, &e), CK_EEXIST);
    CHECK_STREQ(e.type, "resource_already_exists_exception");
    CHECK(strstr(e.reason, "index [idx/") != NULL);
    CHECK_EQ(ck_restidx_create(s, "Bad", NULL, &e), CK_EINVAL);
    CHECK_STREQ(e.type, "invalid_index_name_exception");

    json_t *b = J("{\"mappings\":{\"properties\":{\"f\":{\"type\":\"foo\"}}}}");
    CHECK_EQ(ck_restidx_create(s, "m1", b, &e), CK_EINVAL);
    CHECK_STREQ(e.type, "mapper_parsing_exception");
    CHECK_STREQ(e.reason, "No handler for type [foo] declared on field [f]");
    CHECK(!ck_restidx_exists(s, "m1"));
    json_decref(b);
    b = J("{\"mapping\":{}}");
    CHECK_EQ(ck_restidx_create(s, "m1", b, &e), CK_EINVAL);
    CHECK_EQ(e.status, 400);
    json_decref(b);

    json_t *m = ck_restidx_mapping(s, "idx");
    CHECK(json_is_object(m) && json_object_size(m) == 0);
    json_decref(m);
    CHECK(ck_restidx_mapping(s, "nope") == NULL);

    CHECK_EQ(ck_restidx_drop(s, "idx"), 0);
    CHECK(!ck_restidx_exists(s, "idx"));
    CHECK_EQ(ck_restidx_drop(s, "idx"), CK_ENOENT);
    /* the name is free again, and the files are gone */
    CHECK_EQ(ck_restidx_create(s, "idx", NULL, &e), 0);
    ck_restidx_close(s);
    s = open_set(ck_test_tmpdir());
    CHECK(ck_restidx_exists(s, "idx"));
    CHECK_EQ(ck_restidx_drop(s, "idx"), 0);
    ck_restidx_close(s);
    s = open_set(ck_test_tmpdir());
    CHECK(!ck_restidx_exists(s, "idx"));
    ck_restidx_info_t *info;
    size_t n;
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    CHECK_EQ(n, 0);
    ck_restidx_close(s);
}

CK_TEST(restidx_crud_versions)
{
    ck_restidx_set_t *s = open_set(ck_test_tmpdir());
    ck_search_error_t e;
    ck_restidx_write_t w;
    json_t *d = J("{\"k\":\"a\"}");
    CHECK_EQ(ck_restidx_index(s, "docs", "1", d, false, &w, &e), CK_ENOENT);
    CHECK_EQ(e.status, 404);
    CHECK_STREQ(e.type, "index_not_found_exception");
    CHECK_EQ(ck_restidx_index(s, "docs", "1", d, true, &w, &e), 0);
    CHECK_EQ(w.result, CK_RESTIDX_CREATED);
    CHECK_STREQ(ck_restidx_result_name(w.result), "created");
    CHECK_EQ(w.version, 1);
    CHECK_EQ(w.seq_no, 0);
    CHECK_STREQ(w.id, "1");
    json_t *arr = J("[1]");
    CHECK_EQ(ck_restidx_index(s, "docs", "x", arr, false, &w, &e), CK_EINVAL);
    CHECK_STREQ(e.type, "mapper_parsing_exception");
    CHECK_EQ(ck_restidx_index(s, "docs", "", d, false, &w, &e), CK_EINVAL);
    json_decref(arr);
    json_decref(d);

    CHECK_EQ(put(s, "docs", "1", "{\"k\":\"b\"}", &w), 0);
    CHECK_EQ(w.result, CK_RESTIDX_UPDATED);
    CHECK_EQ(w.version, 2);
    CHECK_EQ(w.seq_no, 1);
    CHECK_EQ(put(s, "docs", "2", "{\"k\":\"c\"}", &w), 0);
    CHECK_EQ(w.version, 1);
    CHECK_EQ(w.seq_no, 2);

    uint64_t ver = 0;
    char *k = get_k(s, "docs", "1", &ver);
    CHECK_STREQ(k, "b");
    CHECK_EQ(ver, 2);
    free(k);
    json_t *src = (json_t *)1;
    CHECK_EQ(ck_restidx_get(s, "docs", "zz", &src, NULL, NULL), 0);
    CHECK(src == NULL);
    CHECK_EQ(ck_restidx_get(s, "nosuch", "1", &src, NULL, NULL), CK_ENOENT);

    CHECK_EQ(ck_restidx_delete(s, "docs", "1", &w, &e), 0);
    CHECK_EQ(w.result, CK_RESTIDX_DELETED);
    CHECK_EQ(w.version, 3);
    CHECK_EQ(w.seq_no, 3);
    CHECK(get_k(s, "docs", "1", NULL) == NULL);
    CHECK_EQ(ck_restidx_delete(s, "docs", "1", &w, &e), 0);
    CHECK_EQ(w.result, CK_RESTIDX_NOT_FOUND);
    CHECK_EQ(ck_restidx_delete(s, "docs", "never", &w, &e), 0);
    CHECK_EQ(w.result, CK_RESTIDX_NOT_FOUND);
    CHECK_EQ(ck_restidx_delete(s, "nosuch", "1", &w, &e), CK_ENOENT);
    CHECK_EQ(e.status, 404);
    /* indexing again after a delete continues the version */
    CHECK_EQ(put(s, "docs", "1", "{\"k\":\"d\"}", &w), 0);
    CHECK_EQ(w.result, CK_RESTIDX_CREATED);
    CHECK_EQ(w.version, 4);
    CHECK_EQ(w.seq_no, 4);

    /* generated ids */
    CHECK_EQ(put(s, "docs", NULL, "{\"k\":\"gen\"}", &w), 0);
    CHECK_EQ(strlen(w.id), CK_RESTIDX_GEN_ID_LEN);
    CHECK_EQ(strspn(w.id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
             CK_RESTIDX_GEN_ID_LEN);
    char id1[CK_RESTIDX_ID_MAX + 1];
    snprintf(id1, sizeof(id1), "%s", w.id);
    k = get_k(s, "docs", id1, NULL);
    CHECK_STREQ(k, "gen");
    free(k);
    CHECK_EQ(put(s, "docs", NULL, "{\"k\":\"gen2\"}", &w), 0);
    CHECK(strcmp(w.id, id1) != 0);

    ck_restidx_info_t *info;
    size_t n;
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    CHECK_EQ(n, 1);
    CHECK_STREQ(info[0].name, "docs");
    CHECK_EQ(strlen(info[0].uuid), CK_RESTIDX_UUID_LEN);
    CHECK_EQ(info[0].docs_count, 4);
    CHECK(info[0].store_bytes > 0);
    ck_free(info);
    ck_restidx_close(s);
}

CK_TEST(restidx_persist)
{
    const char *dir = ck_test_tmpdir();
    ck_restidx_set_t *s = open_set(dir);
    ck_search_error_t e;
    ck_restidx_write_t w;
    json_t *b = J("{\"mappings\":{\"properties\":{\"tag\":{\"type\":\"keyword\"}}}}");
    CHECK_EQ(ck_restidx_create(s, "p", b, &e), 0);
    json_decref(b);
    for (int i = 0; i < 50; i++) {
        char id[16], doc[64];
        snprintf(id, sizeof(id), "d%d", i % 20);
        snprintf(doc, sizeof(doc), "{\"k\":\"v%d\",\"tag\":\"t%d\"}", i, i % 3);
        CHECK_EQ(put(s, "p", id, doc, &w), 0);
    }
    CHECK_EQ(ck_restidx_delete(s, "p", "d5", &w, &e), 0);
    CHECK_EQ(w.result, CK_RESTIDX_DELETED);
    char uuid[32];
    ck_restidx_info_t *info;
    size_t n;
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    snprintf(uuid, sizeof(uuid), "%s", info[0].uuid);
    ck_free(info);
    ck_restidx_close(s);

    s = open_set(dir);
    CHECK(ck_restidx_exists(s, "p"));
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    CHECK_EQ(n, 1);
    CHECK_STREQ(info[0].uuid, uuid);
    CHECK_EQ(info[0].docs_count, 19);
    ck_free(info);
    uint64_t ver;
    char *k = get_k(s, "p", "d9", &ver);
    CHECK_STREQ(k, "v49");
    CHECK_EQ(ver, 3);
    free(k);
    k = get_k(s, "p", "d19", &ver);
    CHECK_STREQ(k, "v39");
    CHECK_EQ(ver, 2);
    free(k);
    CHECK(get_k(s, "p", "d5", NULL) == NULL);
    json_t *m = ck_restidx_mapping(s, "p");
    CHECK_STREQ(json_string_value(json_object_get(
                    json_object_get(json_object_get(m, "properties"), "tag"), "type")),
                "keyword");
    json_decref(m);
    /* seq and versions continue */
    CHECK_EQ(put(s, "p", "d5", "{\"k\":\"again\"}", &w), 0);
    CHECK_EQ(w.seq_no, 51);
    CHECK_EQ(w.version, 5); /* written 3 times, deleted, written */
    /* and the docs are searchable after a restart */
    ck_restidx_snap_t *sn = ck_restidx_acquire(s, "p");
    CHECK(sn != NULL);
    CHECK_EQ(count_live(sn), 20);
    CHECK_EQ(count_term(sn, "tag", CK_SEG_KEYWORD, "t0"), 6); /* i = 30,33,36,39,42,48 */
    ck_restidx_release(sn);
    ck_restidx_close(s);
}

CK_TEST(restidx_torn_tail)
{
    const char *dir = ck_test_tmpdir();
    ck_restidx_set_t *s = open_set(dir);
    ck_search_error_t e;
    ck_restidx_write_t w;
    CHECK_EQ(ck_restidx_create(s, "t", NULL, &e), 0);
    CHECK_EQ(put(s, "t", "a", "{\"k\":\"one\"}", &w), 0);
    CHECK_EQ(put(s, "t", "b", "{\"k\":\"two\"}", &w), 0);
    CHECK_EQ(put(s, "t", "c", "{\"k\":\"three\"}", &w), 0);
    ck_restidx_close(s);

    char path[4096];
    snprintf(path, sizeof(path), "%s/t/ops.log", dir);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    off_t full = st.st_size;
    CHECK_EQ(truncate(path, full - 5), 0);

    s = open_set(dir);
    char *k = get_k(s, "t", "a", NULL);
    CHECK_STREQ(k, "one");
    free(k);
    k = get_k(s, "t", "b", NULL);
    CHECK_STREQ(k, "two");
    free(k);
    CHECK(get_k(s, "t", "c", NULL) == NULL);
    CHECK_EQ(stat(path, &st), 0);
    off_t cut = st.st_size;
    CHECK(cut < full - 5); /* the torn record is gone entirely */
    /* appends after recovery land after the last good record */
    CHECK_EQ(put(s, "t", "c", "{\"k\":\"new\"}", &w), 0);
    CHECK_EQ(w.seq_no, 2);
    ck_restidx_close(s);

    /* a flipped byte in the last record: same treatment */
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    CHECK_EQ(stat(path, &st), 0);
    char x = 'X';
    CHECK_EQ(pwrite(fd, &x, 1, st.st_size - 3), 1);
    close(fd);
    s = open_set(dir);
    CHECK(get_k(s, "t", "c", NULL) == NULL);
    k = get_k(s, "t", "b", NULL);
    CHECK_STREQ(k, "two");
    free(k);
    ck_restidx_close(s);
}

CK_TEST(restidx_compaction)
{
    const char *dir = ck_test_tmpdir();
    ck_restidx_set_t *s = open_set(dir);
    ck_search_error_t e;
    ck_restidx_write_t w;
    CHECK_EQ(ck_restidx_create(s, "c", NULL, &e), 0);
    char *big = malloc(4096);
    memset(big, 'x', 4000);
    big[4000] = 0;
    json_t *d = json_object();
    json_object_set_new(d, "pad", json_string(big));
    /* 10 ids rewritten many times: > 1 MiB of log, mostly dead */
    for (int i = 0; i < 600; i++) {
        char id[16], k[16];
        snprintf(id, sizeof(id), "id%d", i % 10);
        snprintf(k, sizeof(k), "r%d", i);
        json_object_set_new(d, "k", json_string(k));
        CHECK_EQ(ck_restidx_index(s, "c", id, d, false, &w, &e), 0);
    }
    CHECK_EQ(ck_restidx_delete(s, "c", "id3", &w, &e), 0);
    uint64_t last_seq = w.seq_no;
    json_decref(d);
    free(big);
    char path[4096];
    snprintf(path, sizeof(path), "%s/c/ops.log", dir);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK(st.st_size < 1200 * 1024); /* compacted at least once */
    ck_restidx_info_t *info;
    size_t n;
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    CHECK_EQ(info[0].docs_count, 9);
    ck_free(info);
    ck_restidx_close(s);

    s = open_set(dir);
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    CHECK_EQ(info[0].docs_count, 9);
    ck_free(info);
    for (int i = 0; i < 10; i++) {
        char id[16], want[16];
        snprintf(id, sizeof(id), "id%d", i);
        snprintf(want, sizeof(want), "r%d", 590 + i);
        uint64_t ver;
        char *k = get_k(s, "c", id, &ver);
        if (i == 3) {
            CHECK(k == NULL);
            continue;
        }
        CHECK(k != NULL);
        CHECK_STREQ(k, want);
        CHECK_EQ(ver, 60);
        free(k);
    }
    CHECK_EQ(put(s, "c", "new", "{\"k\":\"n\"}", &w), 0);
    CHECK_EQ(w.seq_no, last_seq + 1);
    ck_restidx_snap_t *sn = ck_restidx_acquire(s, "c");
    CHECK_EQ(count_live(sn), 10);
    ck_restidx_release(sn);
    ck_restidx_close(s);
}

CK_TEST(restidx_snapshot_live)
{
    ck_restidx_set_t *s = open_set(ck_test_tmpdir());
    ck_search_error_t e;
    ck_restidx_write_t w;
    CHECK_EQ(ck_restidx_create(s, "s", NULL, &e), 0);
    CHECK_EQ(put(s, "s", "a", "{\"body\":\"apple pie\"}", &w), 0);
    CHECK_EQ(put(s, "s", "b", "{\"body\":\"banana bread\"}", &w), 0);
    CHECK_EQ(put(s, "s", "c", "{\"body\":\"cherry cake\"}", &w), 0);
    CHECK(ck_restidx_acquire(s, "nosuch") == NULL);
    ck_restidx_snap_t *s1 = ck_restidx_acquire(s, "s");
    CHECK(s1 != NULL);
    CHECK_EQ(count_live(s1), 3);
    CHECK_EQ(count_term(s1, "body", CK_SEG_TEXT, "banana"), 1);

    CHECK_EQ(put(s, "s", "b", "{\"body\":\"blueberry muffin\"}", &w), 0);
    CHECK_EQ(ck_restidx_delete(s, "s", "c", &w, &e), 0);
    ck_restidx_snap_t *s2 = ck_restidx_acquire(s, "s");
    CHECK(s2 != s1);
    CHECK_EQ(count_live(s2), 2);
    CHECK_EQ(count_term(s2, "body", CK_SEG_TEXT, "banana"), 0);
    CHECK_EQ(count_term(s2, "body", CK_SEG_TEXT, "blueberri"), 1); /* english stemmer */
    CHECK_EQ(count_term(s2, "body", CK_SEG_TEXT, "cherri"), 0);
    CHECK_EQ(count_term(s2, "body.keyword", CK_SEG_KEYWORD, "apple pie"), 1);

    /* the older snapshot still sees its world, sources included */
    CHECK_EQ(count_live(s1), 3);
    CHECK_EQ(count_term(s1, "body", CK_SEG_TEXT, "banana"), 1);
    ck_search_view_t v;
    ck_restidx_view(s1, &v);
    CHECK_STREQ(v.index, "s");
    CHECK_STREQ(v.analyzer.language, "english");
    bool saw_banana = false, saw_cherry = false;
    for (size_t i = 0; i < v.nsegs; i++) {
        for (uint32_t d = 0; d < ck_segment_ndocs(v.segs[i]); d++) {
            char id[16];
            json_t *src = ck_restidx_hit_source(s1, i, d, id, sizeof(id));
            if (!src)
                continue;
            const char *body = json_string_value(json_object_get(src, "body"));
            if (!strcmp(id, "b"))
                saw_banana = !strcmp(body, "banana bread");
            if (!strcmp(id, "c"))
                saw_cherry = !strcmp(body, "cherry cake");
            json_decref(src);
        }
    }
    CHECK(saw_banana && saw_cherry);
    /* a snapshot without changes in between is shared */
    ck_restidx_snap_t *s3 = ck_restidx_acquire(s, "s");
    CHECK(s3 == s2);
    ck_restidx_release(s3);
    ck_restidx_release(s1);

    /* dropping the index keeps a held snapshot usable */
    CHECK_EQ(ck_restidx_drop(s, "s"), 0);
    CHECK_EQ(count_live(s2), 2);
    ck_restidx_view(s2, &v);
    json_t *src = NULL;
    for (size_t i = 0; i < v.nsegs && !src; i++)
        for (uint32_t d = 0; d < ck_segment_ndocs(v.segs[i]) && !src; d++)
            src = ck_restidx_hit_source(s2, i, d, NULL, 0);
    CHECK(src != NULL);
    json_decref(src);
    ck_restidx_release(s2);
    ck_restidx_close(s);
}

CK_TEST(restidx_mapping_kinds)
{
    ck_restidx_set_t *s = open_set(ck_test_tmpdir());
    ck_search_error_t e;
    ck_restidx_write_t w;
    const char *mapping =
        "{\"mappings\":{\"properties\":{"
        "\"tag\":{\"type\":\"keyword\"},\"n\":{\"type\":\"long\"},"
        "\"title\":{\"type\":\"text\"},"
        "\"name\":{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":\"keyword\"}}},"
        "\"loc\":{\"type\":\"geo_point\"},\"ok\":{\"type\":\"boolean\"},"
        "\"when\":{\"type\":\"date\"},"
        "\"user\":{\"properties\":{\"login\":{\"type\":\"keyword\"},"
        "\"age\":{\"type\":\"integer\"}}}}}}";
    json_t *b = J(mapping);
    CHECK_EQ(ck_restidx_create(s, "m", b, &e), 0);
    json_t *m = ck_restidx_mapping(s, "m");
    CHECK(json_equal(m, json_object_get(b, "mappings")));
    json_decref(m);
    json_decref(b);
    CHECK_EQ(put(s, "m", "1",
                 "{\"tag\":\"Hello World\",\"n\":42,\"title\":\"Quick Foxes\","
                 "\"name\":\"Ada Lovelace\",\"loc\":{\"lat\":1.5,\"lon\":2.5},\"ok\":true,"
                 "\"when\":\"2024-05-01\",\"user\":{\"login\":\"ADA\",\"age\":36},"
                 "\"other\":\"free text\"}",
                 &w),
             0);
    ck_restidx_snap_t *sn = ck_restidx_acquire(s, "m");
    ck_search_view_t v;
    ck_restidx_view(sn, &v);
    CHECK_EQ(v.nsegs, 1);
    ck_segment_t *sg = v.segs[0];
#define HAS(f, k) (ck_segment_find_field(sg, f, strlen(f), k) >= 0)
    CHECK(HAS("tag", CK_SEG_KEYWORD));
    CHECK(!HAS("tag", CK_SEG_TEXT));
    CHECK(!HAS("tag.keyword", CK_SEG_KEYWORD));
    CHECK_EQ(count_term(sn, "tag", CK_SEG_KEYWORD, "Hello World"), 1);
    CHECK(HAS("n", CK_SEG_NUMBER));
    CHECK(HAS("title", CK_SEG_TEXT));
    CHECK(!HAS("title.keyword", CK_SEG_KEYWORD));
    CHECK(HAS("name", CK_SEG_TEXT));
    CHECK(HAS("name.keyword", CK_SEG_KEYWORD));
    CHECK(HAS("ok", CK_SEG_KEYWORD));
    CHECK(HAS("when", CK_SEG_NUMBER));
    CHECK(!HAS("when", CK_SEG_TEXT));
    CHECK(HAS("user.login", CK_SEG_KEYWORD));
    CHECK(!HAS("user.login", CK_SEG_TEXT));
    CHECK(HAS("user.age", CK_SEG_NUMBER));
    CHECK(HAS("loc.lat", CK_SEG_NUMBER));
    CHECK(HAS("other", CK_SEG_TEXT));
    CHECK(HAS("other.keyword", CK_SEG_KEYWORD));
#undef HAS
    int f = ck_segment_find_field(sg, "n", 1, CK_SEG_NUMBER);
    const uint32_t *docs;
    const double *vals;
    CHECK_EQ(ck_segment_numbers(sg, (uint32_t)f, &docs, &vals), 1);
    CHECK(vals[0] == 42.0);
    ck_restidx_release(sn);

    /* bad mappings */
    const char *bad[] = {
        "{\"mappings\":{\"properties\":{\"x\":{\"type\":\"nope\"}}}}",
        "{\"mappings\":{\"properties\":{\"x\":{\"index\":true}}}}",
        "{\"mappings\":{\"properties\":{\"x\":\"text\"}}}",
        "{\"mappings\":{\"properties\":{\"o\":{\"properties\":{\"y\":{\"type\":\"geo_shape\"}}}}}}",
        "{\"mappings\":{\"properties\":{\"x\":{\"type\":\"text\",\"analyzer\":\"klingon\"}}}}",
        "{\"mappings\":{\"bogus\":1}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        b = J(bad[i]);
        CHECK_EQ(ck_restidx_create(s, "bad", b, &e), CK_EINVAL);
        CHECK_STREQ(e.type, "mapper_parsing_exception");
        json_decref(b);
    }
    b = J("{\"mappings\":{\"properties\":{\"o\":{\"properties\":{\"y\":{\"type\":\"geo_shape\"}}}}}"
          "}");
    CHECK_EQ(ck_restidx_create(s, "bad", b, &e), CK_EINVAL);
    CHECK_STREQ(e.reason, "No handler for type [geo_shape] declared on field [y]");
    json_decref(b);
    CHECK(!ck_restidx_exists(s, "bad"));
    ck_restidx_close(s);
}

CK_TEST(restidx_merge_purges)
{
    ck_restidx_set_t *s = open_set(ck_test_tmpdir());
    ck_search_error_t e;
    ck_restidx_write_t w;
    CHECK_EQ(ck_restidx_create(s, "g", NULL, &e), 0);
    /* one refresh per write: segments pile up and get merged */
    for (int i = 0; i < 200; i++) {
        char id[16], doc[64];
        snprintf(id, sizeof(id), "d%d", i % 25);
        snprintf(doc, sizeof(doc), "{\"k\":\"w%d\",\"body\":\"word%d\"}", i, i);
        CHECK_EQ(put(s, "g", id, doc, &w), 0);
        ck_restidx_snap_t *sn = ck_restidx_acquire(s, "g");
        ck_search_view_t v;
        ck_restidx_view(sn, &v);
        CHECK(v.nsegs <= 8);
        CHECK_EQ(count_live(sn), i < 25 ? i + 1 : 25);
        ck_restidx_release(sn);
    }
    ck_restidx_snap_t *sn = ck_restidx_acquire(s, "g");
    CHECK_EQ(count_term(sn, "body", CK_SEG_TEXT, "word199"), 1);
    CHECK_EQ(count_term(sn, "body", CK_SEG_TEXT, "word0"), 0);
    ck_search_view_t v;
    ck_restidx_view(sn, &v);
    size_t held = 0;
    for (size_t i = 0; i < v.nsegs; i++)
        held += ck_segment_ndocs(v.segs[i]);
    CHECK(held < 200); /* merges dropped dead docs */
    ck_restidx_info_t *info;
    size_t n;
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    CHECK_EQ(info[0].docs_count, 25);
    CHECK_EQ(info[0].docs_deleted, held - 25);
    ck_free(info);
    ck_restidx_release(sn);
    ck_restidx_close(s);
}

typedef struct {
    ck_restidx_set_t *s;
    int t;
} thr_arg_t;

static void *writer(void *p)
{
    thr_arg_t *a = p;
    for (int i = 0; i < 100; i++) {
        char id[32], doc[64];
        snprintf(id, sizeof(id), "t%d-%d", a->t, i);
        snprintf(doc, sizeof(doc), "{\"k\":\"%s\",\"thread\":%d}", id, a->t);
        json_t *d = json_loads(doc, 0, NULL);
        ck_restidx_write_t w;
        ck_search_error_t e;
        /* all threads race to auto-create the index */
        if (ck_restidx_index(a->s, "conc", id, d, true, &w, &e) != 0)
            abort();
        json_decref(d);
        if (i % 10 == 0) {
            ck_restidx_snap_t *sn = ck_restidx_acquire(a->s, "conc");
            if (!sn)
                abort();
            ck_restidx_release(sn);
        }
    }
    return NULL;
}

CK_TEST(restidx_concurrent_writers)
{
    const char *dir = ck_test_tmpdir();
    ck_restidx_set_t *s = open_set(dir);
    pthread_t th[4];
    thr_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg_t){s, i};
        CHECK_EQ(pthread_create(&th[i], NULL, writer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_restidx_info_t *info;
    size_t n;
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(info[0].docs_count, 400);
    ck_free(info);
    ck_restidx_snap_t *sn = ck_restidx_acquire(s, "conc");
    CHECK_EQ(count_live(sn), 400);
    ck_restidx_release(sn);
    ck_restidx_close(s);

    s = open_set(dir);
    CHECK_EQ(ck_restidx_list(s, &info, &n), 0);
    CHECK_EQ(info[0].docs_count, 400);
    ck_free(info);
    for (int t = 0; t < 4; t++) {
        char id[32];
        snprintf(id, sizeof(id), "t%d-99", t);
        char *k = get_k(s, "conc", id, NULL);
        CHECK(k != NULL);
        CHECK_STREQ(k, id);
        free(k);
    }
    ck_restidx_close(s);
}
