/* The vector log: append, read back across the buffer and the file, reopen at a
 * committed count (the tail is cut), header checks. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "test.h"
#include "vector/vlog.h"

static void vec_of(uint32_t dims, int64_t off, float *v)
{
    for (uint32_t d = 0; d < dims; d++)
        v[d] = (float)off * 0.5f + (float)d;
}

static void check_records(ck_vlog_t *l, uint32_t dims, uint64_t first, size_t n)
{
    int64_t *offs = malloc(n * sizeof(int64_t)), *ts = malloc(n * sizeof(int64_t));
    float *v = malloc(n * dims * sizeof(float)), *want = malloc(dims * sizeof(float));
    CHECK_EQ(ck_vlog_read(l, first, n, offs, ts, v), 0);
    for (size_t i = 0; i < n; i++) {
        int64_t off = 10 + 3 * (int64_t)(first + i); /* as appended below */
        CHECK_EQ(offs[i], off);
        CHECK_EQ(ts[i], 1000 + off);
        vec_of(dims, off, want);
        CHECK_MEM(v + i * dims, want, dims * sizeof(float));
    }
    free(offs);
    free(ts);
    free(v);
    free(want);
}

CK_TEST(vlog_append_read_reopen)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/p0.vec", ck_test_tmpdir());
    const uint32_t dims = 37;
    ck_vlog_params_t p = {dims, CK_VMETRIC_COSINE, "use-lite"};
    ck_vlog_t *l;
    CHECK_EQ(ck_vlog_open(path, &p, 5, &l), CK_ETRUNC); /* no file, but records expected */
    CHECK_EQ(ck_vlog_open(path, &p, 0, &l), 0);
    float v[37];
    for (int64_t i = 0; i < 20000; i++) { /* crosses the 1 MiB write-out several times */
        vec_of(dims, 10 + 3 * i, v);
        CHECK_EQ(ck_vlog_append(l, 10 + 3 * i, 1000 + 10 + 3 * i, v), 0);
    }
    CHECK_EQ(ck_vlog_append(l, 5, 0, v), CK_EINVAL); /* offsets only grow */
    CHECK_EQ(ck_vlog_count(l), 20000);
    check_records(l, dims, 0, 20000);    /* file and buffer */
    check_records(l, dims, 19990, 10);   /* buffer only */
    int64_t o;
    CHECK_EQ(ck_vlog_read(l, 19999, 2, &o, NULL, NULL), CK_ERANGE);
    CHECK_EQ(ck_vlog_sync(l), 0);
    check_records(l, dims, 12345, 100);
    ck_vlog_close(l);

    /* reopen at a smaller committed count: the tail is cut, appends continue from there */
    CHECK_EQ(ck_vlog_open(path, &p, 15000, &l), 0);
    CHECK_EQ(ck_vlog_count(l), 15000);
    check_records(l, dims, 14990, 10);
    vec_of(dims, 10 + 3 * 14999, v);
    CHECK_EQ(ck_vlog_append(l, 10 + 3 * 14999, 0, v), CK_EINVAL); /* must exceed the last */
    vec_of(dims, 10 + 3 * 15000, v);
    CHECK_EQ(ck_vlog_append(l, 10 + 3 * 15000, 1000 + 10 + 3 * 15000, v), 0);
    CHECK_EQ(ck_vlog_sync(l), 0);
    ck_vlog_close(l);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, CK_VLOG_HEADER + 15001 * ck_vlog_record_size(dims));
    CHECK_EQ(ck_vlog_open(path, &p, 15002, &l), CK_ETRUNC); /* more than the file holds */
    CHECK_EQ(ck_vlog_open(path, &p, 15001, &l), 0);
    check_records(l, dims, 14995, 6);
    ck_vlog_close(l);
}

CK_TEST(vlog_header_checks)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/p1.vec", ck_test_tmpdir());
    ck_vlog_params_t p = {8, CK_VMETRIC_DOT, "m"};
    ck_vlog_t *l;
    CHECK_EQ(ck_vlog_open(path, &p, 0, &l), 0);
    float v[8] = {0};
    CHECK_EQ(ck_vlog_append(l, 0, 0, v), 0);
    CHECK_EQ(ck_vlog_sync(l), 0);
    ck_vlog_close(l);
    /* other parameters */
    ck_vlog_params_t q = {9, CK_VMETRIC_DOT, "m"};
    CHECK_EQ(ck_vlog_open(path, &q, 1, &l), CK_EEXIST);
    q = (ck_vlog_params_t){8, CK_VMETRIC_COSINE, "m"};
    CHECK_EQ(ck_vlog_open(path, &q, 1, &l), CK_EEXIST);
    q = (ck_vlog_params_t){8, CK_VMETRIC_DOT, "other"};
    CHECK_EQ(ck_vlog_open(path, &q, 1, &l), CK_EEXIST);
    /* bad parameters */
    q = (ck_vlog_params_t){0, CK_VMETRIC_DOT, "m"};
    CHECK_EQ(ck_vlog_open(path, &q, 1, &l), CK_EINVAL);
    q = (ck_vlog_params_t){8, 9, "m"};
    CHECK_EQ(ck_vlog_open(path, &q, 1, &l), CK_EINVAL);
    q = (ck_vlog_params_t){8, CK_VMETRIC_DOT, "a-model-name-that-is-longer-than-39-bytes!!"};
    CHECK_EQ(ck_vlog_open(path, &q, 1, &l), CK_EINVAL);
    /* a flipped header byte fails the CRC */
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    uint8_t b;
    CHECK_EQ(pread(fd, &b, 1, 20), 1);
    b ^= 0x40;
    CHECK_EQ(pwrite(fd, &b, 1, 20), 1);
    close(fd);
    CHECK_EQ(ck_vlog_open(path, &p, 1, &l), CK_ECORRUPT);
    /* a file shorter than its header */
    CHECK_EQ(truncate(path, 10), 0);
    CHECK_EQ(ck_vlog_open(path, &p, 1, &l), CK_ECORRUPT);
}
