/* The built-in embedding model (USE-lite): tokenizer ids and embeddings against the outputs
 * of the model package's own JavaScript runtime (tests/data/use-lite-reference), batch
 * versus one at a time, edge inputs, concurrent use, and a missing or damaged model folder.
 *
 * The model comes from $CHRONIK_EMBEDDING_MODEL_DIR or else CK_MODEL_DIR_DEFAULT (fetched by
 * scripts/setup.sh); the reference files from $CHRONIK_USE_REF_DIR or else
 * tests/data/use-lite-reference in the source tree. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/alloc.h"
#include "core/err.h"
#include "vector/model.h"
#include "vector/tokenizer.h"

#define REF_MAX 32

typedef struct {
    size_t n;
    char *s[REF_MAX];
    int32_t ids[REF_MAX][CK_USE_MAX_TOKENS];
    size_t nids[REF_MAX];
    float e[REF_MAX][CK_USE_DIMS];
} ref_t;

static const char *model_dir(void)
{
    const char *d = getenv(CK_USE_ENV_DIR);
    d = d && *d ? d : CK_MODEL_DIR_DEFAULT;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/model.json", d);
    if (access(p, R_OK) != 0)
        CK_FAIL("the embedding model is not in %s (%s): run scripts/setup.sh", d, strerror(errno));
    return d;
}

/* The reference folder: <repo>/tests/data/use-lite-reference (this file is at
 * <repo>/tests/unit/). */
static void ref_dir(char *buf, size_t len)
{
    const char *env = getenv("CHRONIK_USE_REF_DIR");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return;
    }
    char src[PATH_MAX - 64];
    snprintf(src, sizeof(src), "%s", __FILE__);
    for (int up = 0; up < 3; up++) { /* strip test_use_model.c, unit, tests */
        char *slash = strrchr(src, '/');
        if (!slash)
            CK_FAIL("cannot find the source tree from %s; set CHRONIK_USE_REF_DIR", __FILE__);
        *slash = 0;
    }
    snprintf(buf, len, "%s/tests/data/use-lite-reference", src);
}

static void ref_load_file(ref_t *r, const char *name)
{
    char dir[PATH_MAX], path[PATH_MAX + 64];
    ref_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        CK_FAIL("reference %s: %s", path, jerr.text);
    json_t *s = json_object_get(root, "s"), *ids = json_object_get(root, "ids"),
           *e = json_object_get(root, "e");
    CHECK(json_is_array(s) && json_is_array(ids) && json_is_array(e));
    CHECK_EQ(json_array_size(ids), json_array_size(s));
    CHECK_EQ(json_array_size(e), json_array_size(s));
    for (size_t i = 0; i < json_array_size(s); i++) {
        CHECK(r->n < REF_MAX);
        json_t *js = json_array_get(s, i), *ji = json_array_get(ids, i), *je = json_array_get(e, i);
        r->s[r->n] = strdup(json_string_value(js));
        CHECK(json_array_size(ji) <= CK_USE_MAX_TOKENS);
        r->nids[r->n] = json_array_size(ji);
        for (size_t k = 0; k < json_array_size(ji); k++)
            r->ids[r->n][k] = (int32_t)json_integer_value(json_array_get(ji, k));
        CHECK_EQ(json_array_size(je), CK_USE_DIMS);
        for (size_t k = 0; k < CK_USE_DIMS; k++)
            r->e[r->n][k] = (float)json_number_value(json_array_get(je, k));
        r->n++;
    }
    json_decref(root);
}

static ref_t *ref_load(void)
{
    static ref_t r;
    memset(&r, 0, sizeof(r));
    ref_load_file(&r, "ref.json");
    ref_load_file(&r, "ref2.json");
    CHECK_EQ(r.n, 15);
    return &r;
}

static ck_use_t *model_load(void)
{
    char err[512];
    ck_use_t *m = NULL;
    int rc = ck_use_load(model_dir(), &m, err, sizeof(err));
    if (rc)
        CK_FAIL("ck_use_load: %s (%s)", err, ck_strerror(rc));
    return m;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) /* NaN counts as worst */
            mx = isnan(d) ? INFINITY : d;
    }
    return mx;
}

static void check_unit(const float *v)
{
    double ss = 0;
    for (int j = 0; j < CK_USE_DIMS; j++) {
        CHECK(isfinite(v[j]));
        ss += (double)v[j] * v[j];
    }
    CHECK(fabs(ss - 1.0) < 1e-5);
}

static void ids_str(char *buf, size_t len, const int32_t *ids, size_t n)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && o + 12 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "," : "", ids[i]);
}

CK_TEST(use_tokenizer_reference)
{
    ref_t *r = ref_load();
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/vocab.json", model_dir());
    ck_sp_t *sp = NULL;
    CHECK_EQ(ck_sp_load(path, &sp), 0);
    CHECK_EQ(ck_sp_size(sp), 8000);
    for (size_t i = 0; i < r->n; i++) {
        int32_t ids[CK_USE_MAX_TOKENS];
        size_t n = 0;
        CHECK_EQ(ck_sp_encode(sp, r->s[i], strlen(r->s[i]), ids, CK_USE_MAX_TOKENS, &n), 0);
        if (n != r->nids[i] || memcmp(ids, r->ids[i], n * sizeof(int32_t)) != 0) {
            char got[2048], want[2048];
            ids_str(got, sizeof(got), ids, n);
            ids_str(want, sizeof(want), r->ids[i], r->nids[i]);
            CK_FAIL("\"%s\": ids [%s], expected [%s]", r->s[i], got, want);
        }
    }
    ck_sp_free(sp);
}

CK_TEST(use_tokenizer_edges)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/vocab.json", model_dir());
    ck_sp_t *sp = NULL;
    CHECK_EQ(ck_sp_load(path, &sp), 0);
    int32_t ids[4096];
    size_t n = 0;

    /* Empty text: the lone "▁" (id 30), with or without a pointer. */
    CHECK_EQ(ck_sp_encode(sp, NULL, 0, ids, 16, &n), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(ids[0], 30);
    CHECK_EQ(ck_sp_encode(sp, "", 0, ids, 16, &n), 0);
    CHECK_EQ(n, 1);
    /* max 0 writes nothing. */
    CHECK_EQ(ck_sp_encode(sp, "hello", 5, ids, 0, &n), 0);
    CHECK_EQ(n, 0);

    /* Bytes that are not UTF-8 are unknowns (a run of them one id 0), not an error. */
    CHECK_EQ(ck_sp_encode(sp, "\xff\xfe\xc3 ok \xe2\x82", 9, ids, 16, &n), 0);
    CHECK(n >= 3);
    int zeros = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && ids[i] < 8000);
        zeros += ids[i] == 0;
    }
    CHECK_EQ(zeros, 2);
    /* Embedded NUL and an emoji (outside the BMP) do not upset it either. */
    CHECK_EQ(ck_sp_encode(sp, "a\0b \xf0\x9f\x98\x80 c", 10, ids, 16, &n), 0);
    CHECK(n >= 4);

    /* A long text: the first 128 ids equal the first 128 of the whole text's ids (the
     * tokenizer works on a prefix). Mixed content, spaces now and then. */
    size_t cap = 200000, len = 0;
    char *big = malloc(cap);
    const char *parts[] = {"Streaming databases ingest events continuously. ", "naïve café ",
                           "漢字テスト", "2024-01-01T12:00:00Z ", "e-mail: foo@bar.com :) "};
    for (int i = 0; len + 64 < cap; i++) {
        const char *p = parts[(i * 7) % 5];
        memcpy(big + len, p, strlen(p));
        len += strlen(p);
    }
    size_t nall = 0, nfew = 0;
    int32_t *all = malloc(sizeof(int32_t) * cap);
    CHECK_EQ(ck_sp_encode(sp, big, len, all, cap, &nall), 0);
    CHECK(nall > 10000);
    for (size_t max = 1; max <= 4096; max = max * 3 + 1) {
        CHECK_EQ(ck_sp_encode(sp, big, len, ids, max, &nfew), 0);
        CHECK_EQ(nfew, max);
        CHECK_MEM(ids, all, max * sizeof(int32_t));
    }
    free(all);
    free(big);
    ck_sp_free(sp);
}

/* Every reference sentence one at a time and all in one batch, against the reference. */
static void check_reference(void)
{
    ref_t *r = ref_load();
    ck_use_t *m = model_load();
    char backend[128];
    fprintf(stderr, "  backend: %s\n", ck_use_backend(m, backend, sizeof(backend)));
    static float one[REF_MAX][CK_USE_DIMS], batch[REF_MAX][CK_USE_DIMS];
    double worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *t = r->s[i];
        size_t l = strlen(t);
        CHECK_EQ(ck_use_embed(m, &t, &l, 1, one[i]), 0);
        double d = max_abs_diff(one[i], r->e[i], CK_USE_DIMS);
        if (d > worst) {
            worst = d;
            worst_i = i;
        }
        check_unit(one[i]);
    }
    fprintf(stderr, "  one at a time: max abs error %.3g (\"%s\")\n", worst, r->s[worst_i]);
    if (!(worst <= 1e-5))
        CK_FAIL("max abs error %.3g > 1e-5 on \"%s\"", worst, r->s[worst_i]);

    /* All 15 in one batch (lens NULL: NUL-terminated). */
    CHECK_EQ(ck_use_embed(m, (const char *const *)r->s, NULL, r->n, batch[0]), 0);
    double bref = 0, bone = 0;
    for (size_t i = 0; i < r->n; i++) {
        double d = max_abs_diff(batch[i], r->e[i], CK_USE_DIMS);
        bref = d > bref ? d : bref;
        d = max_abs_diff(batch[i], one[i], CK_USE_DIMS);
        bone = d > bone ? d : bone;
    }
    fprintf(stderr, "  batch of %zu: max abs error %.3g, vs one at a time %.3g\n", r->n, bref,
            bone);
    CHECK(bref <= 1e-5);
    CHECK(bone <= 1e-6);
    ck_use_free(m);
}

CK_TEST(use_model_reference)
{
    check_reference();
}

/* The float (OpenBLAS) path too, where the AMX path would be the default. */
CK_TEST(use_model_reference_float)
{
    setenv("CHRONIK_EMBED_AMX", "0", 1); /* this test runs in a child process of its own */
    check_reference();
}

CK_TEST(use_model_edges)
{
    ck_use_t *m = model_load();
    static float v[4][CK_USE_DIMS];

    /* Empty text (NULL or not): a unit vector, the same both ways. */
    const char *e[2] = {NULL, ""};
    size_t el[2] = {0, 0};
    CHECK_EQ(ck_use_embed(m, e, el, 2, v[0]), 0);
    check_unit(v[0]);
    CHECK(max_abs_diff(v[0], v[1], CK_USE_DIMS) <= 1e-6);
    CHECK_EQ(ck_use_embed(m, NULL, NULL, 0, NULL), 0);
    CHECK_EQ(ck_use_embed(m, NULL, NULL, 1, v[0]), CK_EINVAL);

    /* A text of 300 one-token words is cut to its first 128 tokens: it embeds like the
     * text of its first 128 words. */
    const ck_sp_t *sp = ck_use_tokenizer(m);
    char *longt = malloc(300 * 6 + 1), *shortt = malloc(128 * 6 + 1);
    size_t ll = 0, sl = 0;
    for (int i = 0; i < 300; i++) {
        ll += (size_t)sprintf(longt + ll, "%sword", i ? " " : "");
        if (i < 128)
            sl += (size_t)sprintf(shortt + sl, "%sword", i ? " " : "");
    }
    int32_t a[CK_USE_MAX_TOKENS], b[CK_USE_MAX_TOKENS];
    size_t na = 0, nb = 0;
    CHECK_EQ(ck_sp_encode(sp, longt, ll, a, CK_USE_MAX_TOKENS, &na), 0);
    CHECK_EQ(ck_sp_encode(sp, shortt, sl, b, CK_USE_MAX_TOKENS, &nb), 0);
    CHECK_EQ(na, CK_USE_MAX_TOKENS);
    CHECK_EQ(nb, CK_USE_MAX_TOKENS);
    CHECK_MEM(a, b, sizeof(a));
    const char *lt[2] = {longt, shortt};
    size_t lens[2] = {ll, sl};
    CHECK_EQ(ck_use_embed(m, lt, lens, 2, v[2]), 0);
    check_unit(v[2]);
    CHECK(max_abs_diff(v[2], v[3], CK_USE_DIMS) <= 1e-6);

    /* Lots of texts: several groups; every vector equals the one of the text alone. */
    enum { NT = 300 };
    const char **many = malloc(NT * sizeof(char *));
    float *mv = malloc((size_t)NT * CK_USE_DIMS * sizeof(float));
    for (int i = 0; i < NT; i++)
        many[i] = i % 3 == 0 ? longt : i % 3 == 1 ? "The cat sat on the mat." : "";
    CHECK_EQ(ck_use_embed(m, many, NULL, NT, mv), 0);
    const char *cat = "The cat sat on the mat.";
    CHECK_EQ(ck_use_embed(m, &cat, NULL, 1, v[1]), 0);
    for (int i = 0; i < NT; i++) {
        const float *want = i % 3 == 0 ? v[2] : i % 3 == 1 ? v[1] : v[0];
        if (max_abs_diff(mv + (size_t)i * CK_USE_DIMS, want, CK_USE_DIMS) > 1e-6)
            CK_FAIL("text %d of a batch of %d differs from the text alone", i, NT);
    }
    free(many);
    free(mv);
    free(longt);
    free(shortt);
    ck_use_free(m);
}

typedef struct {
    const ck_use_t *m;
    ref_t *r;
    float out[REF_MAX][CK_USE_DIMS];
    int rc;
} thr_t;

static void *embed_thread(void *arg)
{
    thr_t *t = arg;
    for (int k = 0; k < 5 && !t->rc; k++)
        t->rc = ck_use_embed(t->m, (const char *const *)t->r->s, NULL, t->r->n, t->out[0]);
    return NULL;
}

CK_TEST(use_model_threads)
{
    ref_t *r = ref_load();
    ck_use_t *m = model_load();
    static thr_t th[3];
    pthread_t tid[3];
    for (int i = 0; i < 3; i++) {
        th[i].m = m;
        th[i].r = r;
        CHECK_EQ(pthread_create(&tid[i], NULL, embed_thread, &th[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(tid[i], NULL), 0);
        CHECK_EQ(th[i].rc, 0);
        for (size_t k = 0; k < r->n; k++)
            CHECK(max_abs_diff(th[i].out[k], r->e[k], CK_USE_DIMS) <= 1e-5);
    }
    ck_use_free(m);
}

/* Copies src to dst, only its first keep bytes when keep >= 0. */
static void copy_file(const char *src, const char *dst, long keep)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    CHECK(in && out);
    char buf[65536];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (keep >= 0 && total + n > (size_t)keep)
            n = (size_t)keep - total;
        CHECK_EQ(fwrite(buf, 1, n, out), n);
        total += n;
        if (keep >= 0 && total >= (size_t)keep)
            break;
    }
    fclose(in);
    CHECK_EQ(fclose(out), 0);
}

static const char *const model_files[] = {
    "model.json",       "vocab.json",       "group1-shard1of7",
    "group1-shard2of7", "group1-shard3of7", "group1-shard4of7",
    "group1-shard5of7", "group1-shard6of7", "group1-shard7of7",
};

CK_TEST(use_model_bad_folder)
{
    const char *src = model_dir();
    char err[512], dir[PATH_MAX], a[PATH_MAX + 64], b[PATH_MAX + 64];
    ck_use_t *m = (ck_use_t *)1;

    /* No folder at all. */
    snprintf(dir, sizeof(dir), "%s/none", ck_test_tmpdir());
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), CK_ENOENT);
    CHECK(m == NULL);
    CHECK(strstr(err, "model.json") && strstr(err, "setup.sh"));

    /* A copy (the shards as symlinks but the last, truncated). */
    snprintf(dir, sizeof(dir), "%s/model", ck_test_tmpdir());
    CHECK_EQ(mkdir(dir, 0755), 0);
    for (size_t i = 0; i < sizeof(model_files) / sizeof(model_files[0]); i++) {
        snprintf(a, sizeof(a), "%s/%s", src, model_files[i]);
        snprintf(b, sizeof(b), "%s/%s", dir, model_files[i]);
        if (i < 2)
            copy_file(a, b, -1);
        else if (i == 8)
            copy_file(a, b, 1000000);
        else
            CHECK_EQ(symlink(a, b), 0);
    }
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), CK_ETRUNC);
    CHECK(m == NULL);
    CHECK(strstr(err, "truncated"));

    /* A missing shard. */
    snprintf(b, sizeof(b), "%s/group1-shard7of7", dir);
    CHECK_EQ(unlink(b), 0);
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), CK_ENOENT);
    CHECK(strstr(err, "group1-shard7of7"));

    /* Complete again: loads. */
    snprintf(a, sizeof(a), "%s/group1-shard7of7", src);
    copy_file(a, b, -1);
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), 0);
    ck_use_free(m);

    /* One byte too many. */
    FILE *f = fopen(b, "ab");
    CHECK(f && fputc(0, f) == 0 && fclose(f) == 0);
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), CK_ECORRUPT);
    CHECK(m == NULL);
    copy_file(a, b, -1);

    /* No vocabulary. */
    snprintf(b, sizeof(b), "%s/vocab.json", dir);
    CHECK_EQ(unlink(b), 0);
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), CK_ENOENT);
    CHECK(strstr(err, "vocab.json"));
    f = fopen(b, "wb");
    CHECK(f && fputs("[[\"a\", 1]", f) >= 0 && fclose(f) == 0);
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), CK_ECORRUPT);
    snprintf(a, sizeof(a), "%s/vocab.json", src);
    copy_file(a, b, -1);

    /* A model.json that is not JSON, or whose weights have other shapes. */
    snprintf(b, sizeof(b), "%s/model.json", dir);
    f = fopen(b, "wb");
    CHECK(f && fputs("{\"weightsManifest\": [", f) >= 0 && fclose(f) == 0);
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), CK_ECORRUPT);
    CHECK(strstr(err, "model.json"));
    f = fopen(b, "wb");
    CHECK(f &&
          fputs("{\"weightsManifest\": [{\"paths\": [\"group1-shard1of7\"], \"weights\": "
                "[{\"name\": \"module/Embeddings_en\", \"shape\": [1048576], "
                "\"dtype\": \"float32\"}]}]}",
                f) >= 0 &&
          fclose(f) == 0);
    CHECK_EQ(ck_use_load(dir, &m, err, sizeof(err)), CK_ECORRUPT);
    CHECK(strstr(err, "module/Embeddings_en") || strstr(err, "missing"));
    CHECK(m == NULL);
}

/* Every allocation failure while loading or embedding gives CK_ENOMEM, nothing worse (and,
 * under the sanitizer build, no leak). */
CK_TEST(use_model_oom)
{
    const char *dir = model_dir();
    char err[512];
    int n, rc;
    ck_use_t *m = NULL;
    for (n = 1; n < 1000; n++) {
        ck_alloc_fail_after(n);
        rc = ck_use_load(dir, &m, err, sizeof(err));
        ck_alloc_fail_after(0);
        if (rc == 0)
            break;
        CHECK_EQ(rc, CK_ENOMEM);
        CHECK(m == NULL);
    }
    CHECK(m != NULL);
    const char *texts[3] = {"The cat sat on the mat.", "", "naïve café über"};
    static float v[3][CK_USE_DIMS];
    for (n = 1; n < 1000; n++) {
        ck_alloc_fail_after(n);
        rc = ck_use_embed(m, texts, NULL, 3, v[0]);
        ck_alloc_fail_after(0);
        if (rc == 0)
            break;
        CHECK_EQ(rc, CK_ENOMEM);
    }
    CHECK_EQ(rc, 0);
    check_unit(v[2]);
    ck_use_free(m);
}
