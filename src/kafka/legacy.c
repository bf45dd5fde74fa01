/* Magic 0/1 message sets <-> v2 batches. The format is described in legacy.h.
 *
 * Up-conversion (produce) decodes each entry with lmsg_parse, which checks the CRC-32
 * before trusting any field after it, and feeds records to a v2 batch builder. Down-
 * conversion (fetch) walks stored batches with the v2 iterator and writes one message
 * per record. Neither keeps state beyond the call. */
#include "kafka/legacy.h"

#include <string.h>

#include "core/compress.h"
#include "core/crc32c.h"
#include "log/batch.h"

#define LEGACY_ATTR_LOG_APPEND 0x08

typedef struct lmsg {
    int64_t offset;
    int magic;
    int8_t attributes;
    int64_t timestamp; /* -1 for magic 0 */
    ck_slice_t key;
    ck_slice_t value;
} lmsg_t;

int ck_legacy_detect_magic(const uint8_t *p, size_t n)
{
    if (n < 17)
        return CK_ETRUNC;
    return p[16] <= 2 ? p[16] : CK_ECORRUPT;
}

/* Reads an int32-length-prefixed nullable field of message body [*pos, end). */
static int rd_bytes(const uint8_t *p, size_t *pos, size_t end, ck_slice_t *out)
{
    if (end - *pos < 4)
        return CK_ECORRUPT;
    int32_t len = (int32_t)ck_get_u32(p + *pos);
    *pos += 4;
    if (len == -1) {
        *out = CK_SLICE_NULL;
        return 0;
    }
    if (len < 0 || (size_t)len > end - *pos)
        return CK_ECORRUPT;
    *out = ck_slice(p + *pos, (size_t)len);
    *pos += (size_t)len;
    return 0;
}

/* Decodes the entry at p (n bytes available). Returns its total size (> 0), CK_ETRUNC if
 * n holds only part of it, or CK_ECORRUPT. */
static int64_t lmsg_parse(const uint8_t *p, size_t n, lmsg_t *m)
{
    if (n < 12)
        return CK_ETRUNC;
    int32_t size = (int32_t)ck_get_u32(p + 8);
    if (size < CK_LEGACY_MIN_SIZE_V0)
        return CK_ECORRUPT;
    if ((uint64_t)size + 12 > n)
        return CK_ETRUNC;
    size_t end = (size_t)size + 12;
    if (ck_crc32(0, p + 16, end - 16) != ck_get_u32(p + 12))
        return CK_ECORRUPT;
    m->offset = (int64_t)ck_get_u64(p);
    m->magic = p[16];
    if (m->magic > 1 || (m->magic == 1 && size < CK_LEGACY_MIN_SIZE_V1))
        return CK_ECORRUPT;
    m->attributes = (int8_t)p[17];
    size_t pos = 18;
    m->timestamp = -1;
    if (m->magic == 1) {
        m->timestamp = (int64_t)ck_get_u64(p + pos);
        pos += 8;
    }
    if (rd_bytes(p, &pos, end, &m->key) || rd_bytes(p, &pos, end, &m->value) || pos != end)
        return CK_ECORRUPT;
    return (int64_t)end;
}

/* ---- magic 0/1 -> v2 ---- */

typedef struct up {
    ck_batch_builder_t bld;
    bool started;
    int64_t now_ms;
    size_t budget;     /* decompressed bytes still allowed */
    ck_wbuf_t scratch; /* one wrapper's inner message set */
} up_t;

static int up_add(up_t *u, const lmsg_t *m, int64_t ts)
{
    if (m->magic == 0)
        ts = u->now_ms;
    if (ck_batch_builder_count(&u->bld) == INT32_MAX)
        return CK_ETOOBIG;
    return ck_batch_builder_add(&u->bld, ts, m->key, m->value, NULL, 0);
}

static int up_wrapper(up_t *u, const lmsg_t *w, int codec)
{
    if (ck_slice_is_null(w->value))
        return CK_EINVAL;
    /* Before 0.10 the Java client computed the lz4 header checksum wrongly, and Kafka
     * kept doing so for magic 0; librdkafka and the broker accept both, so do we. */
    unsigned flags = w->magic == 0 ? CK_DECOMPRESS_LZ4_IGNORE_HC : 0;
    ck_wbuf_reset(&u->scratch);
    int rc = ck_decompress_ex(codec, flags, w->value.ptr, (size_t)w->value.len, &u->scratch,
                              u->budget);
    if (rc)
        return rc;
    u->budget -= u->scratch.len;
    const uint8_t *p = u->scratch.data;
    size_t n = u->scratch.len, pos = 0;
    if (n == 0)
        return CK_EINVAL;
    bool log_append = w->magic == 1 && (w->attributes & LEGACY_ATTR_LOG_APPEND);
    while (pos < n) {
        lmsg_t m;
        int64_t sz = lmsg_parse(p + pos, n - pos, &m);
        if (sz < 0)
            return CK_ECORRUPT; /* a partial entry inside a compressed set is corruption */
        if (m.magic != w->magic || (m.attributes & CK_ATTR_CODEC_MASK) != 0)
            return CK_EINVAL;
        rc = up_add(u, &m, log_append ? w->timestamp : m.timestamp);
        if (rc)
            return rc;
        pos += (size_t)sz;
    }
    return 0;
}

int ck_legacy_to_v2(const uint8_t *p, size_t n, int64_t now_ms, ck_wbuf_t *out,
                    size_t max_decompressed)
{
    if (n == 0)
        return CK_EINVAL;
    if (out->err)
        return CK_ENOMEM;
    up_t u = {.started = false, .now_ms = now_ms, .budget = max_decompressed,
              .scratch = CK_WBUF_INIT};
    size_t pos = 0;
    int rc = 0;
    while (pos < n) {
        lmsg_t m;
        int64_t sz = lmsg_parse(p + pos, n - pos, &m);
        if (sz < 0) {
            rc = (int)sz;
            break;
        }
        int codec = m.attributes & CK_ATTR_CODEC_MASK;
        if (codec > CK_CODEC_ZSTD) {
            rc = CK_EUNSUP;
            break;
        }
        if (!u.started) {
            /* Keeping the producer's codec keeps the stored size what the producer chose. */
            ck_batch_builder_init(&u.bld, out, codec, CK_COMPRESS_LEVEL_DEFAULT);
            if (m.magic == 1 && (m.attributes & LEGACY_ATTR_LOG_APPEND))
                ck_batch_builder_set_flags(&u.bld, CK_ATTR_TIMESTAMP_LOG_APPEND);
            u.started = true;
        }
        rc = codec == CK_CODEC_NONE ? up_add(&u, &m, m.timestamp) : up_wrapper(&u, &m, codec);
        if (rc)
            break;
        pos += (size_t)sz;
    }
    ck_wbuf_free(&u.scratch);
    if (!u.started)
        return rc;
    if (rc) {
        ck_batch_builder_abort(&u.bld);
        return rc;
    }
    return ck_batch_builder_finish(&u.bld);
}

/* ---- v2 -> magic 0/1 ---- */

void ck_legacy_write_message(ck_wbuf_t *out, int magic, int64_t offset, int8_t attributes,
                             int64_t timestamp, ck_slice_t key, ck_slice_t value)
{
    size_t total = ck_legacy_message_size(magic, key.len, value.len);
    uint8_t *d = ck_wbuf_reserve(out, total);
    if (!d)
        return;
    ck_put_u64(d, (uint64_t)offset);
    ck_put_u32(d + 8, (uint32_t)(total - 12));
    d[16] = (uint8_t)magic;
    d[17] = (uint8_t)attributes;
    size_t pos = 18;
    if (magic != 0) {
        ck_put_u64(d + pos, (uint64_t)timestamp);
        pos += 8;
    }
    ck_put_u32(d + pos, (uint32_t)key.len);
    pos += 4;
    if (key.len > 0) {
        memcpy(d + pos, key.ptr, (size_t)key.len);
        pos += (size_t)key.len;
    }
    ck_put_u32(d + pos, (uint32_t)value.len);
    pos += 4;
    if (value.len > 0) {
        memcpy(d + pos, value.ptr, (size_t)value.len);
        pos += (size_t)value.len;
    }
    ck_put_u32(d + 12, ck_crc32(0, d + 16, total - 16));
    out->len += total;
}

int ck_legacy_from_v2(const uint8_t *batches, size_t n, int magic, ck_wbuf_t *out,
                      size_t max_bytes)
{
    if (magic != 0 && magic != 1)
        return CK_EINVAL;
    if (out->err)
        return CK_ENOMEM;
    size_t start = out->len;
    ck_wbuf_t scratch = CK_WBUF_INIT;
    int count = 0, rc = 0;
    bool full = false;
    size_t pos = 0;
    while (pos < n && !full) {
        ck_batch_iter_t it;
        rc = ck_batch_iter_init(&it, batches + pos, n - pos, &scratch);
        if (rc == CK_ETRUNC) {
            rc = 0; /* a partial batch at the end of a read: not ours to return */
            break;
        }
        if (rc)
            break;
        pos += (size_t)it.hdr.batch_length + 12;
        if (it.hdr.attributes & CK_ATTR_CONTROL)
            continue;
        int8_t attrs = 0;
        if (magic == 1 && (it.hdr.attributes & CK_ATTR_TIMESTAMP_LOG_APPEND))
            attrs = LEGACY_ATTR_LOG_APPEND;
        ck_record_t rec = {0};
        while ((rc = ck_batch_iter_next(&it, &rec)) == 1) {
            size_t sz = ck_legacy_message_size(magic, rec.key.len, rec.value.len);
            if (count == INT32_MAX || (count > 0 && out->len - start + sz > max_bytes)) {
                full = true;
                break;
            }
            ck_legacy_write_message(out, magic, rec.offset, attrs, rec.timestamp, rec.key,
                                    rec.value);
            count++;
        }
        if (rc < 0)
            break;
        rc = 0;
    }
    ck_wbuf_free(&scratch);
    if (!rc && out->err)
        rc = CK_ENOMEM;
    if (rc) {
        out->len = start;
        out->err = 0;
        return rc;
    }
    return count;
}
