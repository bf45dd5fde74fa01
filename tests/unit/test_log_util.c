#include "test_log_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "log/batch.h"
#include "test.h"

size_t tl_batch(ck_wbuf_t *w, int nrec, int64_t ts0, int64_t dt, size_t vlen, uint32_t seed)
{
    ck_wbuf_t recs = CK_WBUF_INIT, body = CK_WBUF_INIT;
    for (int i = 0; i < nrec; i++) {
        ck_wbuf_reset(&body);
        ck_wr_i8(&body, 0);
        ck_wr_varlong(&body, (int64_t)i * dt);
        ck_wr_varint(&body, i);
        ck_wr_varint(&body, -1); /* null key */
        ck_wr_varint(&body, (int32_t)vlen);
        for (size_t j = 0; j < vlen; j++)
            ck_wr_u8(&body, (uint8_t)(seed * 31 + (uint32_t)i * 7 + (uint32_t)j));
        ck_wr_varint(&body, 0); /* headers */
        ck_wr_varint(&recs, (int32_t)body.len);
        ck_wr_bytes(&recs, body.data, body.len);
    }
    size_t start = w->len;
    int64_t max_ts = ts0 + (int64_t)(nrec - 1) * dt;
    if (dt < 0)
        max_ts = ts0;
    ck_wr_i64(w, 0);
    ck_wr_i32(w, (int32_t)(CK_BATCH_HEADER_SIZE - 12 + recs.len));
    ck_wr_i32(w, -1);
    ck_wr_i8(w, 2);
    ck_wr_u32(w, 0); /* crc below */
    ck_wr_i16(w, 0);
    ck_wr_i32(w, nrec - 1);
    ck_wr_i64(w, ts0);
    ck_wr_i64(w, max_ts);
    ck_wr_i64(w, -1);
    ck_wr_i16(w, -1);
    ck_wr_i32(w, -1);
    ck_wr_i32(w, nrec);
    ck_wr_bytes(w, recs.data, recs.len);
    CHECK_EQ(w->err, 0);
    size_t n = w->len - start;
    uint8_t *b = w->data + start;
    ck_put_u32(b + CK_BATCH_OFF_CRC,
               ck_crc32c(0, b + CK_BATCH_OFF_ATTRIBUTES, n - CK_BATCH_OFF_ATTRIBUTES));
    ck_wbuf_free(&recs);
    ck_wbuf_free(&body);
    return n;
}

bool tl_crc_ok(const uint8_t *b, size_t n)
{
    return n >= CK_BATCH_HEADER_SIZE &&
           ck_crc32c(0, b + CK_BATCH_OFF_ATTRIBUTES, n - CK_BATCH_OFF_ATTRIBUTES) ==
               ck_get_u32(b + CK_BATCH_OFF_CRC);
}

void tl_model_add(tl_model_t *m, const uint8_t *b, size_t len)
{
    for (size_t off = 0; off < len;) {
        size_t total = (size_t)ck_batch_total_size(b + off, len - off);
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 256;
            m->base = realloc(m->base, m->cap * sizeof(*m->base));
            m->last = realloc(m->last, m->cap * sizeof(*m->last));
            m->pos = realloc(m->pos, m->cap * sizeof(*m->pos));
        }
        m->base[m->n] = (int64_t)ck_get_u64(b + off);
        m->last[m->n] =
            m->base[m->n] + (int32_t)ck_get_u32(b + off + CK_BATCH_OFF_LAST_OFFSET_DELTA);
        m->pos[m->n] = m->bytes.len;
        m->n++;
        ck_wr_bytes(&m->bytes, b + off, total);
        off += total;
    }
}

size_t tl_model_find(const tl_model_t *m, int64_t off)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->last[mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    CHECK(lo < m->n);
    return lo;
}

void tl_model_cut(tl_model_t *m, size_t from)
{
    if (from < m->n) {
        m->bytes.len = m->pos[from];
        m->n = from;
    }
}

void tl_model_free(tl_model_t *m)
{
    ck_wbuf_free(&m->bytes);
    free(m->base);
    free(m->last);
    free(m->pos);
    memset(m, 0, sizeof(*m));
}

int64_t tl_append(ck_partition_t *p, tl_model_t *m, int nrec, size_t vlen, int64_t ts0, int64_t dt,
                  int64_t log_append_time)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    tl_batch(&w, nrec, ts0, dt, vlen, (uint32_t)ck_partition_log_end(p));
    int64_t end = ck_partition_log_end(p), base = -1, last = -1;
    int rc = ck_partition_append(p, w.data, w.len, log_append_time, &base, &last);
    CHECK_EQ(rc, 0);
    CHECK_EQ(base, end);
    CHECK_EQ(last, end + nrec - 1);
    CHECK_EQ(ck_partition_log_end(p), last + 1);
    if (m)
        tl_model_add(m, w.data, w.len);
    ck_wbuf_free(&w);
    return base;
}

void tl_cfg(ck_log_config_t *c, int64_t segment_bytes, int32_t interval)
{
    ck_log_config_default(c);
    c->segment_bytes = segment_bytes;
    c->index_interval_bytes = interval;
}

static atomic_long callbacks;
static void count_cb(void *arg)
{
    (void)arg;
    atomic_fetch_add(&callbacks, 1);
}
long tl_callbacks(void)
{
    return atomic_load(&callbacks);
}

ck_log_t *tl_open(const char *dir, int flush_ms)
{
    ck_log_t *log = NULL;
    int rc = ck_log_open(dir, flush_ms, count_cb, NULL, &log);
    CHECK_EQ(rc, 0);
    return log;
}

ck_partition_t *tl_part(ck_log_t *log, const char *topic, int32_t id, const ck_log_config_t *c)
{
    ck_partition_t *p = NULL;
    int rc = ck_log_partition_open(log, topic, id, c, &p);
    CHECK_EQ(rc, 0);
    return p;
}

void tl_wait_durable(ck_log_t *log, ck_partition_t *p)
{
    int64_t end = ck_partition_log_end(p);
    for (int i = 0; i < 10000; i++) {
        if (ck_partition_durable_end(p) >= end)
            return;
        ck_log_flush_now(log);
        usleep(1000);
    }
    CK_FAIL("durable_end %" PRId64 " never reached %" PRId64, ck_partition_durable_end(p), end);
}

int tl_verify(ck_partition_t *p, const tl_model_t *m, int64_t from, int64_t upper, size_t max_bytes)
{
    int reads = 0;
    int64_t off = from;
    ck_wbuf_t out = CK_WBUF_INIT;
    while (off < upper) {
        ck_wbuf_reset(&out);
        int64_t n = ck_partition_read(p, off, upper, max_bytes, true, &out);
        if (n <= 0)
            CK_FAIL("read at %" PRId64 " (upper %" PRId64 ") returned %" PRId64, off, upper, n);
        CHECK_EQ((size_t)n, out.len);
        size_t bi = tl_model_find(m, off);
        CHECK(m->pos[bi] + (size_t)n <= m->bytes.len);
        CHECK_MEM(out.data, m->bytes.data + m->pos[bi], (size_t)n);
        /* whole batches only: n must end exactly on a batch boundary */
        size_t o = 0;
        int64_t last = -1;
        while (o < (size_t)n) {
            size_t total = (size_t)ck_batch_total_size(out.data + o, (size_t)n - o);
            CHECK(o + total <= (size_t)n);
            CHECK(tl_crc_ok(out.data + o, total));
            last = (int64_t)ck_get_u64(out.data + o) +
                   (int32_t)ck_get_u32(out.data + o + CK_BATCH_OFF_LAST_OFFSET_DELTA);
            o += total;
        }
        CHECK(last >= off);
        CHECK(last < upper);
        off = last + 1;
        reads++;
    }
    ck_wbuf_free(&out);
    return reads;
}

const char *tl_dir(const char *sub)
{
    static char buf[4][512];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/%s", ck_test_tmpdir(), sub);
    return b;
}

const char *tl_seg_path(const char *dir, const char *part, int64_t base, const char *ext)
{
    static char buf[4][600];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 600, "%s/%s/%020" PRId64 "%s", dir, part, base, ext);
    return b;
}

int64_t tl_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

uint8_t *tl_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        CK_FAIL("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)sz + 1);
    CHECK_EQ(fread(d, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return d;
}

void tl_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        CK_FAIL("cannot create %s", path);
    if (n)
        CHECK_EQ(fwrite(data, 1, n, f), n);
    fclose(f);
}

int tl_count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    size_t sl = strlen(suffix);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}
