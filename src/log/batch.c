#include "log/batch.h"

#include <string.h>

#include "core/compress.h"
#include "core/crc32c.h"

void ck_batch_header_parse(const uint8_t *p, ck_batch_header_t *h)
{
    h->base_offset = (int64_t)ck_get_u64(p + CK_BATCH_OFF_BASE_OFFSET);
    h->batch_length = (int32_t)ck_get_u32(p + CK_BATCH_OFF_LENGTH);
    h->leader_epoch = (int32_t)ck_get_u32(p + CK_BATCH_OFF_LEADER_EPOCH);
    h->magic = (int8_t)p[CK_BATCH_OFF_MAGIC];
    h->crc = ck_get_u32(p + CK_BATCH_OFF_CRC);
    h->attributes = (int16_t)ck_get_u16(p + CK_BATCH_OFF_ATTRIBUTES);
    h->last_offset_delta = (int32_t)ck_get_u32(p + CK_BATCH_OFF_LAST_OFFSET_DELTA);
    h->base_timestamp = (int64_t)ck_get_u64(p + CK_BATCH_OFF_BASE_TIMESTAMP);
    h->max_timestamp = (int64_t)ck_get_u64(p + CK_BATCH_OFF_MAX_TIMESTAMP);
    h->producer_id = (int64_t)ck_get_u64(p + CK_BATCH_OFF_PRODUCER_ID);
    h->producer_epoch = (int16_t)ck_get_u16(p + CK_BATCH_OFF_PRODUCER_EPOCH);
    h->base_sequence = (int32_t)ck_get_u32(p + CK_BATCH_OFF_BASE_SEQUENCE);
    h->record_count = (int32_t)ck_get_u32(p + CK_BATCH_OFF_RECORD_COUNT);
}

int64_t ck_batch_total_size(const uint8_t *p, size_t n)
{
    if (n < 12)
        return -1;
    return (int64_t)(int32_t)ck_get_u32(p + CK_BATCH_OFF_LENGTH) + 12;
}

void ck_batch_update_crc(uint8_t *p, size_t n)
{
    uint32_t crc = ck_crc32c(0, p + CK_BATCH_OFF_ATTRIBUTES, n - CK_BATCH_OFF_ATTRIBUTES);
    ck_put_u32(p + CK_BATCH_OFF_CRC, crc);
}

/* ---- records ----
 *
 * Both validation and iteration walk records with record_parse. */

#define RECORD_MIN_BODY 6 /* attributes, tsDelta, offsetDelta, keyLen, valueLen, count */
#define RECORD_MIN_SIZE (RECORD_MIN_BODY + 1)

/* Record fields are read with pointer-based varint readers rather than ck_rbuf: the
 * produce path walks every uncompressed record, and most varints there are one byte. The
 * limits match ck_rd_varint/ck_rd_varlong: no more than 32/64 significant bits. */
static inline int32_t unzigzag32(uint32_t u) { return (int32_t)((u >> 1) ^ (0u - (u & 1))); }

static inline bool rd_varint32(const uint8_t **pp, const uint8_t *end, int32_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && !(*p & 0x80)) {
        *out = unzigzag32(*p);
        *pp = p + 1;
        return true;
    }
    uint32_t u = 0;
    for (int shift = 0; shift < 35 && p < end; shift += 7) {
        uint8_t b = *p++;
        if (shift == 28 && (b & 0x70))
            return false;
        u |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = unzigzag32(u);
            *pp = p;
            return true;
        }
    }
    return false;
}

static inline bool rd_varint64(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t u = 0;
    for (int shift = 0; shift < 70 && p < end; shift += 7) {
        uint8_t b = *p++;
        if (shift == 63 && (b & 0x7e))
            return false;
        u |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)((u >> 1) ^ ((uint64_t)0 - (u & 1)));
            *pp = p;
            return true;
        }
    }
    return false;
}

/* Reads a varint-length byte field (-1 = null, allowed only if nullable). */
static inline bool rd_field(const uint8_t **pp, const uint8_t *end, bool nullable,
                            ck_slice_t *out)
{
    int32_t len;
    if (!rd_varint32(pp, end, &len))
        return false;
    if (len < 0) {
        *out = CK_SLICE_NULL;
        return len == -1 && nullable;
    }
    if (len > end - *pp)
        return false;
    *out = (ck_slice_t){*pp, len};
    *pp += len;
    return true;
}

/* Decodes the record at *pp (before end) into rec, leaving offset/timestamp relative:
 * rec->timestamp holds the timestampDelta. Every read is bounded by the record's own
 * length, so a record can never claim bytes of its neighbour. Advances *pp. Returns 0
 * or CK_ECORRUPT. */
static int record_parse(const uint8_t **pp, const uint8_t *end, ck_record_t *rec)
{
    const uint8_t *p = *pp;
    int32_t len;
    if (!rd_varint32(&p, end, &len) || len < RECORD_MIN_BODY || len > end - p)
        return CK_ECORRUPT;
    const uint8_t *rend = p + len;
    rec->attributes = (int8_t)*p++;
    int32_t hc;
    if (!rd_varint64(&p, rend, &rec->timestamp) || !rd_varint32(&p, rend, &rec->offset_delta) ||
        !rd_field(&p, rend, true, &rec->key) || !rd_field(&p, rend, true, &rec->value) ||
        !rd_varint32(&p, rend, &hc))
        return CK_ECORRUPT;
    /* Each header takes at least two bytes: this bounds the loop by the record size. */
    if (hc < 0 || hc > (rend - p) / 2)
        return CK_ECORRUPT;
    const uint8_t *hstart = p;
    ck_slice_t ignored;
    for (int32_t i = 0; i < hc; i++) {
        if (!rd_field(&p, rend, false, &ignored) || !rd_field(&p, rend, true, &ignored))
            return CK_ECORRUPT;
    }
    if (p != rend)
        return CK_ECORRUPT;
    rec->header_count = hc;
    rec->headers_raw = ck_slice(hstart, (size_t)(rend - hstart));
    *pp = rend;
    return 0;
}

int ck_record_header_next(ck_slice_t *cursor, ck_record_header_t *h)
{
    if (cursor->len <= 0)
        return 0;
    const uint8_t *p = cursor->ptr, *end = p + cursor->len;
    if (!rd_field(&p, end, false, &h->key) || !rd_field(&p, end, true, &h->value))
        return CK_ECORRUPT;
    cursor->len = (int32_t)(end - p);
    cursor->ptr = p;
    return 1;
}

/* Checks what every batch header needs before anything else is read: enough bytes for
 * the header, a plausible length, magic 2. Returns the total size or a CK_E* code. */
static int64_t header_check(const uint8_t *p, size_t n)
{
    if (n < CK_BATCH_HEADER_SIZE)
        return CK_ETRUNC;
    int32_t blen = (int32_t)ck_get_u32(p + CK_BATCH_OFF_LENGTH);
    if (blen < CK_BATCH_HEADER_SIZE - 12 || p[CK_BATCH_OFF_MAGIC] != 2)
        return CK_ECORRUPT;
    if ((uint64_t)blen + 12 > n)
        return CK_ETRUNC;
    return (int64_t)blen + 12;
}

int ck_batch_check_crc(const uint8_t *p, size_t n)
{
    int64_t total = header_check(p, n);
    if (total < 0)
        return (int)total;
    uint32_t crc =
        ck_crc32c(0, p + CK_BATCH_OFF_ATTRIBUTES, (size_t)total - CK_BATCH_OFF_ATTRIBUTES);
    return crc == ck_get_u32(p + CK_BATCH_OFF_CRC) ? 0 : CK_ECORRUPT;
}

/* ---- validation ---- */

/* Walks the records of an uncompressed batch on the produce path. Returns 0 or CK_EINVAL,
 * and raises *max_ts to the largest record timestamp. */
static int validate_records(const uint8_t *p, const uint8_t *end, int32_t count,
                            int64_t base_ts, int64_t *max_ts)
{
    if ((size_t)count > (size_t)(end - p) / RECORD_MIN_SIZE)
        return CK_EINVAL;
    int64_t mx = *max_ts;
    ck_record_t rec = {0};
    for (int32_t i = 0; i < count; i++) {
        if (p == end || record_parse(&p, end, &rec) != 0 || rec.offset_delta != i)
            return CK_EINVAL;
        int64_t ts = (int64_t)((uint64_t)base_ts + (uint64_t)rec.timestamp);
        if (ts > mx)
            mx = ts;
    }
    if (p != end)
        return CK_EINVAL; /* bytes after the last counted record */
    *max_ts = mx;
    return 0;
}

int ck_batch_validate(const uint8_t *p, size_t n, ck_batch_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->max_timestamp = -1;
    info->producer_id = -1;
    info->producer_epoch = -1;
    info->base_sequence = -1;
    info->last_offset_delta = -1;
    if (n == 0)
        return CK_EINVAL;
    size_t pos = 0;
    while (pos < n) {
        const uint8_t *b = p + pos;
        size_t left = n - pos;
        /* Magic first: past it, nothing else in the header can be interpreted. */
        if (left > CK_BATCH_OFF_MAGIC && b[CK_BATCH_OFF_MAGIC] != 2)
            return CK_ECORRUPT;
        if (left < 12)
            return CK_ETRUNC;
        int32_t blen = (int32_t)ck_get_u32(b + CK_BATCH_OFF_LENGTH);
        if (blen < CK_BATCH_HEADER_SIZE - 12)
            return CK_ECORRUPT;
        if ((uint64_t)blen + 12 > left)
            return CK_ETRUNC;
        size_t total = (size_t)blen + 12;
        uint32_t crc = ck_crc32c(0, b + CK_BATCH_OFF_ATTRIBUTES, total - CK_BATCH_OFF_ATTRIBUTES);
        if (crc != ck_get_u32(b + CK_BATCH_OFF_CRC))
            return CK_ECORRUPT;

        ck_batch_header_t h;
        ck_batch_header_parse(b, &h);
        int codec = h.attributes & CK_ATTR_CODEC_MASK;
        if (codec > CK_CODEC_ZSTD)
            return CK_EUNSUP;
        if (h.record_count < 0)
            return CK_EINVAL;
        if (h.record_count > 0 && h.last_offset_delta != h.record_count - 1)
            return CK_EINVAL;
        const uint8_t *rp = b + CK_BATCH_HEADER_SIZE, *rend = b + total;
        int64_t max_ts = h.max_timestamp;
        if (codec == CK_CODEC_NONE) {
            /* Under LogAppendTime record timestamps are overwritten; only check shape. */
            int64_t rec_max = INT64_MIN;
            if (validate_records(rp, rend, h.record_count, h.base_timestamp, &rec_max))
                return CK_EINVAL;
            if (!(h.attributes & CK_ATTR_TIMESTAMP_LOG_APPEND) && rec_max > max_ts)
                max_ts = rec_max;
        } else if (rp == rend) {
            return CK_EINVAL;
        }

        if (info->batch_count == 0) {
            info->producer_id = h.producer_id;
            info->producer_epoch = h.producer_epoch;
            info->base_sequence = h.base_sequence;
            info->last_offset_delta = h.last_offset_delta;
            info->codec = codec;
        }
        info->batch_count++;
        info->record_count += h.record_count;
        if (max_ts > info->max_timestamp)
            info->max_timestamp = max_ts;
        info->has_transactional |= (h.attributes & CK_ATTR_TRANSACTIONAL) != 0;
        info->has_control |= (h.attributes & CK_ATTR_CONTROL) != 0;
        if (total > info->max_batch_size)
            info->max_batch_size = total;
        pos += total;
    }
    return 0;
}

/* ---- iteration ---- */

int ck_batch_iter_init_max(ck_batch_iter_t *it, const uint8_t *batch, size_t n,
                           ck_wbuf_t *scratch, size_t max_decompressed)
{
    it->rp = it->rend = NULL;
    it->left = 0;
    int64_t total = header_check(batch, n);
    if (total < 0)
        return it->err = (int)total;
    ck_batch_header_parse(batch, &it->hdr);
    if (it->hdr.record_count < 0)
        return it->err = CK_ECORRUPT;
    int codec = it->hdr.attributes & CK_ATTR_CODEC_MASK;
    const uint8_t *rp = batch + CK_BATCH_HEADER_SIZE;
    size_t rlen = (size_t)total - CK_BATCH_HEADER_SIZE;
    if (codec != CK_CODEC_NONE) {
        if (codec > CK_CODEC_ZSTD)
            return it->err = CK_EUNSUP;
        if (!scratch)
            return it->err = CK_EINVAL;
        ck_wbuf_reset(scratch);
        int rc = ck_decompress(codec, rp, rlen, scratch, max_decompressed);
        if (rc)
            return it->err = rc;
        rp = scratch->data;
        rlen = scratch->len;
    }
    it->rbase = it->rp = rp;
    it->rend = rlen ? rp + rlen : rp; /* rp may be NULL when nothing was decompressed */
    it->left = it->hdr.record_count;
    it->err = 0;
    return 0;
}

int ck_batch_iter_init(ck_batch_iter_t *it, const uint8_t *batch, size_t n, ck_wbuf_t *scratch)
{
    return ck_batch_iter_init_max(it, batch, n, scratch, CK_BATCH_MAX_DECOMPRESSED);
}

int ck_batch_iter_next(ck_batch_iter_t *it, ck_record_t *rec)
{
    if (it->err)
        return it->err;
    if (it->left == 0) {
        if (it->rp != it->rend)
            return it->err = CK_ECORRUPT; /* more records than recordCount */
        return 0;
    }
    rec->pos = (uint32_t)(it->rp - it->rbase);
    if (it->rp == it->rend || record_parse(&it->rp, it->rend, rec) != 0)
        return it->err = CK_ECORRUPT;
    it->left--;
    /* Unsigned arithmetic: garbage deltas wrap instead of being undefined behaviour. */
    rec->offset = (int64_t)((uint64_t)it->hdr.base_offset + (uint64_t)(int64_t)rec->offset_delta);
    if (it->hdr.attributes & CK_ATTR_TIMESTAMP_LOG_APPEND)
        rec->timestamp = it->hdr.max_timestamp;
    else
        rec->timestamp = (int64_t)((uint64_t)it->hdr.base_timestamp + (uint64_t)rec->timestamp);
    return 1;
}

int64_t ck_batch_record_at(const uint8_t *hdr, const uint8_t *rec, size_t n, ck_record_t *out)
{
    const uint8_t *p = rec, *end = rec + n;
    int32_t len;
    if (!rd_varint32(&p, end, &len))
        return n >= 5 ? CK_ECORRUPT : CK_ETRUNC;
    if (len < RECORD_MIN_BODY)
        return CK_ECORRUPT;
    int64_t size = (p - rec) + (int64_t)len;
    if ((uint64_t)size > n)
        return CK_ETRUNC;
    const uint8_t *q = rec;
    if (record_parse(&q, end, out) != 0)
        return CK_ECORRUPT;
    ck_batch_header_t h;
    ck_batch_header_parse(hdr, &h);
    out->offset = (int64_t)((uint64_t)h.base_offset + (uint64_t)(int64_t)out->offset_delta);
    if (h.attributes & CK_ATTR_TIMESTAMP_LOG_APPEND)
        out->timestamp = h.max_timestamp;
    else
        out->timestamp = (int64_t)((uint64_t)h.base_timestamp + (uint64_t)out->timestamp);
    return size;
}

int ck_batch_find_timestamp(const uint8_t *p, size_t n, int64_t ts, int64_t *offset,
                            int64_t *found_ts)
{
    ck_wbuf_t scratch = CK_WBUF_INIT;
    ck_batch_iter_t it;
    int rc = ck_batch_iter_init(&it, p, n, &scratch);
    if (rc)
        goto out;
    /* LogAppendTime: every record carries maxTimestamp, so no need to decompress. */
    if ((it.hdr.attributes & CK_ATTR_TIMESTAMP_LOG_APPEND) && it.hdr.max_timestamp < ts) {
        rc = CK_ENOENT;
        goto out;
    }
    ck_record_t rec = {0};
    while ((rc = ck_batch_iter_next(&it, &rec)) == 1) {
        if (rec.timestamp >= ts) {
            *offset = rec.offset;
            *found_ts = rec.timestamp;
            rc = 0;
            goto out;
        }
    }
    if (rc == 0)
        rc = CK_ENOENT;
out:
    ck_wbuf_free(&scratch);
    return rc;
}

/* ---- building ---- */

void ck_batch_builder_init(ck_batch_builder_t *b, ck_wbuf_t *out, int codec, int level)
{
    memset(b, 0, sizeof(*b));
    b->out = out;
    b->start = out->len;
    b->out_err = out->err;
    b->raw = CK_WBUF_INIT;
    b->codec = codec;
    b->level = level;
    b->leader_epoch = -1;
    b->producer_id = -1;
    b->producer_epoch = -1;
    b->base_sequence = -1;
    b->base_timestamp = -1;
    b->max_timestamp = -1;
    b->last_delta = -1;
    if (codec < CK_CODEC_NONE || codec > CK_CODEC_ZSTD)
        b->err = CK_EUNSUP;
    /* The header is written at finish; reserve its place now so records follow it. */
    uint8_t *h = ck_wbuf_reserve(out, CK_BATCH_HEADER_SIZE);
    if (!h) {
        if (!b->err)
            b->err = CK_ENOMEM;
        return;
    }
    memset(h, 0, CK_BATCH_HEADER_SIZE);
    out->len += CK_BATCH_HEADER_SIZE;
}

void ck_batch_builder_set_base_offset(ck_batch_builder_t *b, int64_t base_offset)
{
    b->base_offset = base_offset;
}

void ck_batch_builder_set_producer(ck_batch_builder_t *b, int64_t producer_id, int16_t epoch,
                                   int32_t base_sequence)
{
    b->producer_id = producer_id;
    b->producer_epoch = epoch;
    b->base_sequence = base_sequence;
}

void ck_batch_builder_set_flags(ck_batch_builder_t *b, int16_t flags)
{
    b->flags = (int16_t)(flags & ~CK_ATTR_CODEC_MASK);
}

size_t ck_batch_builder_bytes(const ck_batch_builder_t *b)
{
    if (b->codec != CK_CODEC_NONE)
        return b->raw.len;
    return b->out->len >= b->start + CK_BATCH_HEADER_SIZE
               ? b->out->len - b->start - CK_BATCH_HEADER_SIZE
               : 0;
}

static inline size_t field_size(ck_slice_t s)
{
    return s.len < 0 ? 1 : ck_varint_size(s.len) + (size_t)s.len;
}

static inline void wr_field(ck_wbuf_t *w, ck_slice_t s)
{
    if (s.len < 0) {
        ck_wr_varint(w, -1);
        return;
    }
    ck_wr_varint(w, s.len);
    ck_wr_bytes(w, s.ptr, (size_t)s.len);
}

int ck_batch_builder_add_delta(ck_batch_builder_t *b, int32_t offset_delta, int64_t timestamp,
                               ck_slice_t key, ck_slice_t value, const ck_record_header_t *headers,
                               size_t n)
{
    if (b->err)
        return b->err;
    if (offset_delta <= b->last_delta || b->count == INT32_MAX || n > INT32_MAX)
        return CK_EINVAL;
    if (b->count == 0)
        b->base_timestamp = b->max_timestamp = timestamp;
    int64_t ts_delta = (int64_t)((uint64_t)timestamp - (uint64_t)b->base_timestamp);

    /* The length prefix comes first, so size the body before writing it. */
    uint64_t body = 1 + ck_varint_size(ts_delta) + ck_varint_size(offset_delta) +
                    field_size(key) + field_size(value) + ck_varint_size((int64_t)n);
    for (size_t i = 0; i < n; i++) {
        if (headers[i].key.len < 0)
            return CK_EINVAL;
        body += field_size(headers[i].key) + field_size(headers[i].value);
    }
    if (body > INT32_MAX - 16)
        return CK_ETOOBIG;

    ck_wbuf_t *w = b->codec == CK_CODEC_NONE ? b->out : &b->raw;
    ck_wr_varint(w, (int32_t)body);
    ck_wr_i8(w, 0);
    ck_wr_varlong(w, ts_delta);
    ck_wr_varint(w, offset_delta);
    wr_field(w, key);
    wr_field(w, value);
    ck_wr_varint(w, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        wr_field(w, headers[i].key);
        wr_field(w, headers[i].value);
    }
    if (w->err)
        return b->err = CK_ENOMEM;
    if (timestamp > b->max_timestamp)
        b->max_timestamp = timestamp;
    b->count++;
    b->last_delta = offset_delta;
    return 0;
}

int ck_batch_builder_add(ck_batch_builder_t *b, int64_t timestamp, ck_slice_t key,
                         ck_slice_t value, const ck_record_header_t *headers, size_t n)
{
    if (b->last_delta == INT32_MAX)
        return CK_EINVAL;
    return ck_batch_builder_add_delta(b, b->last_delta + 1, timestamp, key, value, headers, n);
}

void ck_batch_builder_abort(ck_batch_builder_t *b)
{
    if (b->out->len > b->start)
        b->out->len = b->start;
    b->out->err = b->out_err;
    ck_wbuf_free(&b->raw);
}

int ck_batch_builder_finish(ck_batch_builder_t *b)
{
    ck_wbuf_t *out = b->out;
    int rc = b->err;
    if (!rc && out->err)
        rc = CK_ENOMEM;
    if (!rc && b->codec != CK_CODEC_NONE)
        rc = ck_compress(b->codec, b->level, b->raw.data, b->raw.len, out);
    if (!rc && out->len - b->start - 12 > INT32_MAX)
        rc = CK_ETOOBIG;
    if (rc) {
        ck_batch_builder_abort(b);
        return rc;
    }
    uint8_t *h = out->data + b->start;
    size_t total = out->len - b->start;
    ck_put_u64(h + CK_BATCH_OFF_BASE_OFFSET, (uint64_t)b->base_offset);
    ck_put_u32(h + CK_BATCH_OFF_LENGTH, (uint32_t)(total - 12));
    ck_put_u32(h + CK_BATCH_OFF_LEADER_EPOCH, (uint32_t)b->leader_epoch);
    h[CK_BATCH_OFF_MAGIC] = 2;
    ck_put_u16(h + CK_BATCH_OFF_ATTRIBUTES, (uint16_t)(b->flags | b->codec));
    ck_put_u32(h + CK_BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)b->last_delta);
    ck_put_u64(h + CK_BATCH_OFF_BASE_TIMESTAMP, (uint64_t)b->base_timestamp);
    ck_put_u64(h + CK_BATCH_OFF_MAX_TIMESTAMP, (uint64_t)b->max_timestamp);
    ck_put_u64(h + CK_BATCH_OFF_PRODUCER_ID, (uint64_t)b->producer_id);
    ck_put_u16(h + CK_BATCH_OFF_PRODUCER_EPOCH, (uint16_t)b->producer_epoch);
    ck_put_u32(h + CK_BATCH_OFF_BASE_SEQUENCE, (uint32_t)b->base_sequence);
    ck_put_u32(h + CK_BATCH_OFF_RECORD_COUNT, (uint32_t)b->count);
    ck_batch_update_crc(h, total);
    ck_wbuf_free(&b->raw);
    return 0;
}
